//! Backups: taken while records and objects are written, restored into a
//! fresh data directory, and compared; a damaged backup or a data
//! directory in use is refused.

use crate::support::{Aura, assert_error};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

async fn admin(
    aura: &Aura,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = aura
        .http
        .request(method, aura.at(path))
        .bearer_auth(&aura.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates (201) or replaces (200) an object; answers whether it worked.
async fn put_object(aura: &Aura, key: &str) -> bool {
    aura.http
        .put(aura.at(&format!("/api/storage/docs/{key}")))
        .bearer_auth(&aura.token)
        .body(format!("bytes of {key}").repeat(100))
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

async fn record_count(aura: &Aura) -> u64 {
    let (_, page) = admin(
        aura,
        reqwest::Method::GET,
        "/api/collections/notes/records?perPage=1",
        None,
    )
    .await;
    page["totalItems"]
        .as_u64()
        .unwrap_or_else(|| panic!("{page}"))
}

#[tokio::test]
async fn a_backup_taken_under_writes_restores_consistently() {
    let aura = Arc::new(Aura::start());
    let notes = json!({"name": "notes", "fields": [{"name": "text", "type": "text"}], "listRule": "", "viewRule": ""});
    assert_eq!(
        admin(
            &aura,
            reqwest::Method::POST,
            "/api/collections",
            Some(notes)
        )
        .await
        .0,
        201
    );
    let bucket = json!({"name": "docs"});
    assert_eq!(
        admin(
            &aura,
            reqwest::Method::POST,
            "/api/admin/storage/buckets",
            Some(bucket)
        )
        .await
        .0,
        201
    );
    aura.deploy("hello", "hello", json!({})).await;
    for n in 0..20 {
        assert!(put_object(&aura, &format!("kept-{n}")).await);
    }

    // Writers: records, new objects, and objects replaced and deleted
    // (whose old bytes are removed) while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (aura, stop, written) = (aura.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = admin(
                    &aura,
                    reqwest::Method::POST,
                    "/api/collections/notes/records",
                    Some(json!({"text": format!("note {n}")})),
                )
                .await;
                assert_eq!(status, 201);
                written.fetch_add(1, Ordering::Relaxed);
                assert!(put_object(&aura, &format!("churn-{}", n % 5)).await);
                if n % 7 == 3 {
                    let key = format!("kept-{}", n % 20);
                    aura.http
                        .delete(aura.at(&format!("/api/storage/docs/{key}")))
                        .bearer_auth(&aura.token)
                        .send()
                        .await
                        .unwrap();
                    assert!(put_object(&aura, &key).await);
                }
                n += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = record_count(&aura).await;
    let (status, made) = admin(
        &aura,
        reqwest::Method::POST,
        "/api/admin/backups",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let after = record_count(&aura).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(written.load(Ordering::Relaxed) > 0);
    let path = made["path"].as_str().unwrap().to_owned();
    let files: Vec<&str> = made["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    // Functions and their components are in collections.db.
    assert!(files.contains(&"collections.db"), "{files:?}");
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("components/") || *f == "aura.db"),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.starts_with("storage/blobs/")));
    assert!(
        !files.iter().any(|f| f.contains("master.key")),
        "the key stays apart"
    );

    let (_, listed) = admin(&aura, reqwest::Method::GET, "/api/admin/backups", None).await;
    assert_eq!(listed["backups"][0]["path"], path.as_str());
    let (status, refused) = admin(
        &aura,
        reqwest::Method::POST,
        "/api/admin/backups",
        Some(json!({"to": aura.data_dir()})),
    )
    .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("backup_failed"))
    );

    // Restore with the CLI into a fresh directory, and start from it.
    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("data");
    let restored = aura.cli(&[
        "backup",
        "restore",
        &path,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let again = aura.cli(&[
        "backup",
        "restore",
        &path,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds data"));
    std::fs::copy(aura.data_dir().join("master.key"), data.join("master.key")).unwrap();
    let dir = tempfile::TempDir::new_in(fresh.path()).unwrap();
    std::fs::remove_dir(dir.path()).unwrap();
    std::fs::rename(&data, dir.path()).unwrap();
    let copy = Aura::start_in(dir);

    // Records: a state between the counts around the backup.
    let restored_count = record_count(&copy).await;
    assert!(
        before <= restored_count && restored_count <= after,
        "{before} <= {restored_count} <= {after}"
    );
    // Objects: every one the restored metadata names has its bytes.
    let (status, objects) = admin(
        &copy,
        reqwest::Method::GET,
        "/api/storage/docs?limit=1000",
        None,
    )
    .await;
    assert_eq!(status, 200, "{objects}");
    let objects = objects["objects"].as_array().unwrap();
    assert!(objects.len() >= 20, "{objects:?}");
    for object in objects {
        let key = object["key"].as_str().unwrap();
        let body = copy
            .http
            .get(copy.at(&format!("/api/storage/docs/{key}")))
            .bearer_auth(&copy.token)
            .send()
            .await
            .unwrap();
        assert_eq!(body.status(), 200, "{key}");
        assert_eq!(
            body.text().await.unwrap(),
            format!("bytes of {key}").repeat(100)
        );
    }
    // Functions.
    let hello = copy.http.get(copy.at("/fn/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);

    // A damaged backup is refused before anything is copied.
    // (collections.db is a copy; blobs are links to the live files.)
    std::fs::write(
        std::path::Path::new(&path).join("collections.db"),
        b"tampered",
    )
    .unwrap();
    let target = tempfile::tempdir().unwrap();
    let damaged = aura.cli(&[
        "backup",
        "restore",
        &path,
        "--data-dir",
        target.path().to_str().unwrap(),
    ]);
    assert!(!damaged.status.success());
    assert!(String::from_utf8_lossy(&damaged.stderr).contains("damaged"));
    assert!(!target.path().join("collections.db").exists());

    let anonymous = aura
        .http
        .post(aura.at("/api/admin/backups"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "unauthorized").await;
}

/// A manifest naming paths outside the backup is refused before anything
/// is copied.
#[test]
fn restore_refuses_paths_outside_the_backup() {
    let backup = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    for bad in ["../escape", "/etc/passwd", "a//b", ""] {
        let manifest = json!({"files": [{"path": bad, "bytes": 0, "sha256": ""}]});
        std::fs::write(backup.path().join("manifest.json"), manifest.to_string()).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_aura"))
            .args(["backup", "restore"])
            .arg(backup.path())
            .arg("--data-dir")
            .arg(target.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("bad path"), "{bad}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
}

/// Every file under `dir` holding `needle`.
fn holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(holding(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// An encrypted backup holds no plaintext; it restores only with its
/// master key, and a tampered file is refused, leaving nothing behind.
#[tokio::test]
async fn encrypted_backups_restore_only_with_their_key() {
    let aura = Aura::start();
    let marker = format!("plain-{}", hex::encode(rand::random::<[u8; 8]>()));
    let (status, _) = admin(
        &aura,
        reqwest::Method::PUT,
        "/api/collections/notes",
        Some(json!({"name": "notes", "fields": [{"name": "text", "type": "text"}]})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = admin(
        &aura,
        reqwest::Method::POST,
        "/api/collections/notes/records",
        Some(json!({ "text": marker })),
    )
    .await;
    assert_eq!(status, 201);
    let out = aura.cli(&["--json", "backup", "create", "--encrypt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = std::path::PathBuf::from(made["path"].as_str().unwrap());
    assert!(made["sealed"]["key"].is_string(), "{made}");
    assert!(path.join("collections.db.sealed").exists());
    assert!(!path.join("collections.db").exists());
    assert_eq!(holding(&path, marker.as_bytes()), Vec::<String>::new());

    let restore = |key: Option<&std::path::Path>, into: &std::path::Path| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aura"));
        command
            .args(["backup", "restore"])
            .arg(&path)
            .arg("--data-dir")
            .arg(into)
            .env_remove("AURA_MASTER_KEY")
            .env_remove("AURA_MASTER_KEY_FILE");
        if let Some(key) = key {
            command.arg("--master-key-file").arg(key);
        }
        command.output().unwrap()
    };
    let work = tempfile::tempdir().unwrap();
    // Without the key, or with another one: refused, nothing written.
    let out = restore(None, &work.path().join("a"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("encrypted under master key"));
    let other = work.path().join("other.key");
    std::fs::write(&other, "11".repeat(32)).unwrap();
    let out = restore(Some(&other), &work.path().join("b"));
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("not under the key given")
    );
    // With it: the record is back.
    let key = aura.data_dir().join("master.key");
    let data = work.path().join("c");
    let out = restore(Some(&key), &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(&key, data.join("master.key")).unwrap();
    let dir = tempfile::TempDir::new_in(work.path()).unwrap();
    std::fs::remove_dir(dir.path()).unwrap();
    std::fs::rename(&data, dir.path()).unwrap();
    let copy = Aura::start_in(dir);
    let (_, page) = admin(
        &copy,
        reqwest::Method::GET,
        "/api/collections/notes/records",
        None,
    )
    .await;
    assert_eq!(page["items"][0]["text"], marker.as_str());
    // A flipped byte is noticed, and the data directory is left empty.
    let sealed = path.join("collections.db.sealed");
    let mut bytes = std::fs::read(&sealed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&sealed, bytes).unwrap();
    let damaged = work.path().join("d");
    let out = restore(Some(&key), &damaged);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("damaged"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!damaged.join("collections.db").exists() && !damaged.join("aura.db").exists());
}

#[tokio::test]
async fn a_backup_downloads_as_a_tar_archive_of_its_directory() {
    let aura = Aura::start();
    let (status, made) = aura.admin_post("/api/admin/backups", json!({})).await;
    assert_eq!(status, 201, "{made}");
    let (_, listed) = aura.admin_get("/api/admin/backups").await;
    let name = listed["backups"][0]["name"].as_str().unwrap().to_owned();
    let path = listed["backups"][0]["path"].as_str().unwrap().to_owned();

    let response = aura
        .http
        .get(aura.at(&format!("/api/admin/backups/{name}/archive")))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("aura-backup-{name}.tar"))
    );
    let bytes = response.bytes().await.unwrap();
    let mut archive = tar::Archive::new(bytes.as_ref());
    let mut files = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
            files.insert(entry.path().unwrap().display().to_string(), content);
        }
    }
    let manifest = &files[&format!("{name}/manifest.json")];
    assert_eq!(
        manifest,
        &std::fs::read(std::path::Path::new(&path).join("manifest.json")).unwrap()
    );
    let on_disk = walk(std::path::Path::new(&path));
    assert_eq!(files.len(), on_disk, "every file of the backup is archived");

    for missing in ["nope", "...", "%2e%2e%2fadmin.token"] {
        let response = aura
            .http
            .get(aura.at(&format!("/api/admin/backups/{missing}/archive")))
            .bearer_auth(&aura.token)
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "backup_not_found").await;
    }
    let response = aura
        .http
        .get(aura.at(&format!("/api/admin/backups/{name}/archive")))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "unauthorized").await;
}

/// How many files are under `dir`.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| {
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path())
            } else {
                1
            }
        })
        .sum()
}
