//! Secrets: set over the admin API and the CLI, read by functions whose
//! grant names them, never shown again, encrypted at rest (the data
//! directory and the log are searched for the value), and the master key
//! rotated from a file or through the environment.

use crate::support::{Aura, assert_error};
use serde_json::{Value, json};
use std::path::Path;

async fn set(aura: &Aura, name: &str, value: &str) -> reqwest::Response {
    aura.http
        .put(aura.at(&format!("/api/admin/secrets/{name}")))
        .bearer_auth(&aura.token)
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap()
}

async fn read(aura: &Aura, name: &str) -> (u16, Value) {
    let response = aura
        .http
        .get(aura.at(&format!("/fn/vault?name={name}")))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Files under `dir` (but `skip`) that hold `needle`.
fn files_holding(dir: &Path, needle: &[u8], skip: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().and_then(|n| n.to_str()) != Some(skip)
                && std::fs::read(&path)
                    .unwrap_or_default()
                    .windows(needle.len())
                    .any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn unique_value() -> String {
    format!("sk_live_{}", hex::encode(rand::random::<[u8; 12]>()))
}

#[tokio::test]
async fn granted_functions_read_secrets_that_are_never_shown_or_stored_in_clear() {
    let aura = Aura::start();
    let stripe = unique_value();
    let first = set(&aura, "STRIPE_KEY", "an older value").await;
    assert_eq!(first.status(), 200);
    let updated = set(&aura, "STRIPE_KEY", &stripe).await;
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(
        (&updated["name"], &updated["version"]),
        (&json!("STRIPE_KEY"), &json!(2))
    );
    assert!(!updated.to_string().contains(&stripe));
    assert_eq!(set(&aura, "OTHER_KEY", "other").await.status(), 200);

    // Bad input.
    assert_error(set(&aura, "lower-case", "x").await, 400, "invalid_secret").await;
    let bad_body = aura
        .http
        .put(aura.at("/api/admin/secrets/X"))
        .bearer_auth(&aura.token)
        .json(&json!({ "value": 12345 }))
        .send()
        .await
        .unwrap();
    let refused = assert_error(bad_body, 400, "invalid_body").await;
    assert!(!refused.to_string().contains("12345"), "{refused}");
    assert_error(
        set(&aura, "BIG", &"x".repeat(70 * 1024)).await,
        400,
        "invalid_secret",
    )
    .await;
    let anonymous = aura
        .http
        .get(aura.at("/api/admin/secrets"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "unauthorized").await;

    // Listed by name and version only.
    let (status, listed) = aura.admin_get("/api/admin/secrets").await;
    assert_eq!(status, 200);
    let names: Vec<(&str, u64)> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(names, [("OTHER_KEY", 1), ("STRIPE_KEY", 2)]);
    assert!(!listed.to_string().contains(&stripe));

    // A function must be granted secrets to import the interface...
    let (status, body) = aura
        .deploy_bytes("vault", crate::support::wasm("vault"), json!({}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("missing_grant")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["missing_grants"][0]["grant"],
        "secrets"
    );
    let (status, body) = aura
        .deploy_bytes(
            "vault",
            crate::support::wasm("vault"),
            json!({"grants": {"secrets": ["not a name"]}}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_grants")),
        "{body}"
    );
    // ...and reads only the names it lists.
    aura.deploy(
        "vault",
        "vault",
        json!({"grants": {"secrets": ["STRIPE_KEY", "NOT_SET_YET"]}}),
    )
    .await;
    assert_eq!(
        read(&aura, "STRIPE_KEY").await,
        (200, json!({ "value": stripe }))
    );
    let (status, denied) = read(&aura, "OTHER_KEY").await;
    assert_eq!(
        (status, &denied["error"]),
        (403, &json!("denied")),
        "{denied}"
    );
    let (status, missing) = read(&aura, "NOT_SET_YET").await;
    assert_eq!(
        (status, &missing["error"]),
        (404, &json!("not_found")),
        "{missing}"
    );

    // Unset.
    let unset = |name: &'static str| {
        aura.http
            .delete(aura.at(&format!("/api/admin/secrets/{name}")))
            .bearer_auth(&aura.token)
            .send()
    };
    assert_eq!(unset("OTHER_KEY").await.unwrap().status(), 204);
    assert_error(unset("OTHER_KEY").await.unwrap(), 404, "secret_not_found").await;

    // Audited by name, never by value.
    let mut audit = Value::Null;
    for _ in 0..50 {
        audit = aura.admin_get("/api/admin/audit?event=secret_set").await.1;
        if audit["entries"].as_array().is_some_and(|e| e.len() == 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(audit["entries"].as_array().unwrap().len(), 3, "{audit}");
    assert!(!audit.to_string().contains(&stripe));

    // Nowhere in clear: not in the databases, their journals, the object
    // store or the server's log (the key file aside).
    let dir = aura.stop();
    assert_eq!(
        files_holding(dir.path(), stripe.as_bytes(), "master.key"),
        Vec::<String>::new()
    );
    assert!(
        !files_holding(dir.path(), b"STRIPE_KEY", "master.key").is_empty(),
        "the search works"
    );
}

#[tokio::test]
async fn the_cli_sets_from_stdin_and_lists_without_values() {
    use std::io::Write as _;
    use std::process::Stdio;
    let aura = Aura::start();
    let value = unique_value();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aura"))
        .args(["secrets", "set", "FROM_STDIN"])
        .env("AURA_URL", &aura.url)
        .env("AURA_TOKEN", &aura.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "set FROM_STDIN (version 1)"
    );
    let listed = aura.cli(&["secrets", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("FROM_STDIN") && !text.contains(&value),
        "{text}"
    );
    aura.deploy(
        "vault",
        "vault",
        json!({"grants": {"secrets": ["FROM_STDIN"]}}),
    )
    .await;
    assert_eq!(
        read(&aura, "FROM_STDIN").await,
        (200, json!({ "value": value })),
        "one newline dropped"
    );
    let unset = aura.cli(&["secrets", "unset", "FROM_STDIN", "--yes"]);
    assert!(unset.status.success());
    let again = aura.cli(&["secrets", "unset", "FROM_STDIN", "-y"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no secret named"));
}

#[tokio::test]
async fn a_rotated_key_file_reseals_every_secret() {
    let aura = Aura::start();
    let value = unique_value();
    assert_eq!(set(&aura, "API_TOKEN", &value).await.status(), 200);
    aura.deploy(
        "vault",
        "vault",
        json!({"grants": {"secrets": ["API_TOKEN"]}}),
    )
    .await;
    let key_file = aura.data_dir().join("master.key");
    let before = std::fs::read_to_string(&key_file).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let rotated = aura.cli(&["secrets", "rotate-key"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("1 secrets sealed"));
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), before);
    assert_eq!(
        read(&aura, "API_TOKEN").await,
        (200, json!({ "value": value }))
    );

    let aura = Aura::start_in(aura.stop());
    assert_eq!(
        read(&aura, "API_TOKEN").await,
        (200, json!({ "value": value }))
    );
}

#[tokio::test]
async fn a_key_from_the_environment_rotates_by_restarting() {
    let key = |byte: u8| hex::encode([byte; 32]);
    let (old, new) = (key(1), key(2));
    let aura = Aura::start_with_env(
        tempfile::tempdir().unwrap(),
        &[],
        &[("AURA_MASTER_KEY", &old)],
    );
    let value = unique_value();
    assert_eq!(set(&aura, "DB_PASSWORD", &value).await.status(), 200);
    assert!(!aura.data_dir().join("master.key").exists(), "no key file");
    let refused = aura
        .http
        .post(aura.at("/api/admin/secrets/rotate-key"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_error(refused, 409, "rotation_unavailable").await;
    let dir = aura.stop();

    // The wrong key stops the start with the reason, and loses nothing.
    let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_aura"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--s3-addr",
            "off",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("AURA_MASTER_KEY", &new)
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("is encrypted under master key"), "{stderr}");

    // The old key as the previous one: resealed at start.
    let aura = Aura::start_with_env(
        dir,
        &[],
        &[
            ("AURA_MASTER_KEY", &new),
            ("AURA_MASTER_KEY_PREVIOUS", &old),
        ],
    );
    aura.deploy(
        "vault",
        "vault",
        json!({"grants": {"secrets": ["DB_PASSWORD"]}}),
    )
    .await;
    assert_eq!(
        read(&aura, "DB_PASSWORD").await,
        (200, json!({ "value": value }))
    );
    let aura = Aura::start_with_env(aura.stop(), &[], &[("AURA_MASTER_KEY", &new)]);
    assert_eq!(
        read(&aura, "DB_PASSWORD").await,
        (200, json!({ "value": value }))
    );
}

/// A rotation stopped midway is settled at the next start: finished when
/// the secrets are under the new key, undone when they are not, and an
/// unfinished key file is dropped.
#[tokio::test]
async fn an_interrupted_rotation_is_settled_at_start() {
    let aura = Aura::start();
    let value = unique_value();
    assert_eq!(set(&aura, "TOKEN", &value).await.status(), 200);
    let dir = aura.data_dir();
    let (key, next) = (dir.join("master.key"), dir.join("master.key.next"));
    let old = std::fs::read(&key).unwrap();
    let rotated = aura.cli(&["secrets", "rotate-key"]);
    assert!(rotated.status.success());
    let data = aura.stop();

    // Committed, not yet renamed: the secrets are under `.next`.
    std::fs::rename(&key, &next).unwrap();
    std::fs::write(&key, &old).unwrap();
    let aura = Aura::start_in(data);
    aura.deploy("vault", "vault", json!({"grants": {"secrets": ["TOKEN"]}}))
        .await;
    assert_eq!(read(&aura, "TOKEN").await, (200, json!({ "value": value })));
    assert!(!next.exists());
    assert_ne!(std::fs::read(&key).unwrap(), old, "the new key is kept");
    let data = aura.stop();

    // Written, not committed: the secrets are not under `.next`.
    std::fs::write(&next, format!("{}\n", "A".repeat(43) + "=")).unwrap();
    let aura = Aura::start_in(data);
    assert_eq!(read(&aura, "TOKEN").await, (200, json!({ "value": value })));
    assert!(!next.exists());
    let data = aura.stop();

    // Created, not yet written.
    std::fs::write(&next, "").unwrap();
    let aura = Aura::start_in(data);
    assert_eq!(read(&aura, "TOKEN").await, (200, json!({ "value": value })));
    assert!(!next.exists());
}
