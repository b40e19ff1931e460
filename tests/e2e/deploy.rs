//! Deploy validation: what is accepted, what is refused and why.

use crate::support::{Aura, assert_error, wasm};
use serde_json::{Value, json};

#[tokio::test]
async fn deploy_creates_an_active_immutable_version() {
    let aura = Aura::start();
    let version = aura.deploy("hello", "hello", json!({})).await;
    assert_eq!(version["function"], "hello");
    assert_eq!(version["version"], 1);
    assert_eq!(version["active"], true);
    assert_eq!(version["hash"].as_str().map(str::len), Some(64));
    assert_eq!(version["size"], wasm("hello").len());
    assert_eq!(version["limits"]["memory_mb"], 128);
    // A small component is compiled by the optimizing compiler at once.
    assert_eq!(version["compile"]["code"], "optimized", "{version}");

    let second = aura
        .deploy("hello", "hello", json!({"limits": {"cpu_ms": 500}}))
        .await;
    assert_eq!(second["version"], 2);
    assert_eq!(second["compile"]["code"], "cached", "{second}");
    let (status, versions) = aura.admin_get("/api/admin/functions/hello/versions").await;
    assert_eq!(status, 200);
    let versions = versions["versions"].as_array().expect("versions").clone();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[0]["active"], true);
    assert_eq!(versions[0]["limits"]["cpu_ms"], 500);
    assert_eq!(versions[1]["active"], false);
    assert_eq!(versions[1]["limits"]["cpu_ms"], 10_000);
    assert!(versions[0].get("compile").is_none(), "{}", versions[0]);
}

#[tokio::test]
async fn core_module_is_refused_with_the_reason() {
    let aura = Aura::start();
    // The smallest valid core module: magic and version 1.
    let (status, body) = aura
        .deploy_bytes("core", b"\0asm\x01\0\0\0".to_vec(), json!({}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_component");
    assert!(text(&body).contains("core WebAssembly module"), "{body}");
}

#[tokio::test]
async fn random_bytes_are_refused_with_the_reason() {
    let aura = Aura::start();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (status, body) = aura.deploy_bytes("noise", noise, json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_component");
    assert!(
        text(&body).contains("not a WebAssembly component"),
        "{body}"
    );
}

#[tokio::test]
async fn truncated_component_is_refused() {
    let aura = Aura::start();
    let mut bytes = wasm("hello");
    bytes.truncate(bytes.len() / 2);
    let (status, body) = aura.deploy_bytes("half", bytes, json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_component");
    assert!(text(&body).contains("does not compile"), "{body}");
}

#[tokio::test]
async fn unknown_import_is_refused_and_named() {
    let aura = Aura::start();
    let (status, body) = aura
        .deploy_bytes("unknown", wasm("unknown_import"), json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_component");
    let unknown = body["error"]["details"]["unknown_imports"]
        .as_array()
        .expect("unknown_imports");
    assert!(
        unknown.iter().any(|name| name
            .as_str()
            .is_some_and(|n| n.starts_with("aura-test:nonexistent/widgets"))),
        "{body}"
    );
    assert!(
        text(&body).contains("aura-test:nonexistent/widgets"),
        "{body}"
    );
    // Nothing was stored.
    let (status, _) = aura.admin_get("/api/admin/functions/unknown").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_names_limits_and_forms_are_refused() {
    let aura = Aura::start();
    let (status, body) = aura
        .deploy_bytes("Bad_Name", wasm("hello"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_name")),
        "{body}"
    );

    let (status, body) = aura
        .deploy_bytes("hello", wasm("hello"), json!({"limits": {"memory_mb": 0}}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_limits")),
        "{body}"
    );
    assert!(text(&body).contains("memory_mb"), "{body}");

    let (status, body) = aura
        .deploy_bytes("hello", wasm("hello"), json!({"limits": {"cpu": 1}}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_config")),
        "{body}"
    );

    let form = reqwest::multipart::Form::new().text("config", "{}");
    let response = aura
        .http
        .post(aura.at("/api/admin/functions/hello/versions"))
        .bearer_auth(&aura.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 400, "bad_request").await;
    assert!(text(&body).contains("component"), "{body}");
}

#[tokio::test]
async fn oversized_component_is_refused() {
    let aura = Aura::start();
    let (status, body) = aura
        .deploy_bytes("big", vec![0u8; 65 * 1024 * 1024], json!({}))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn admin_api_requires_the_token() {
    let aura = Aura::start();
    let response = aura
        .http
        .get(aura.at("/api/admin/functions"))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "unauthorized").await;
    let response = aura
        .http
        .get(aura.at("/api/admin/functions"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "unauthorized").await;
    let response = aura.http.get(aura.at("/metrics")).send().await.unwrap();
    assert_error(response, 401, "unauthorized").await;
    let (status, body) = aura.admin_get("/api/admin/functions").await;
    assert_eq!((status, body), (200, json!({"functions": []})));
    // The scheme is case-insensitive.
    let response = aura
        .http
        .get(aura.at("/api/admin/functions"))
        .header("authorization", format!("bearer {}", aura.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[cfg(unix)]
#[tokio::test]
async fn admin_token_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let aura = Aura::start();
    let mode = std::fs::metadata(aura.data_dir().join("admin.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

fn text(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Functions, versions and snapshots an earlier version kept in the node's
/// `aura.db` (components in `DATA/components`) move into the environment's
/// database at start, where every node of a shared database finds them.
#[tokio::test]
async fn functions_of_an_earlier_version_are_moved_at_start() {
    let aura = Aura::start();
    let dir = aura.stop();
    let component = wasm("hello");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&component));
    std::fs::write(
        dir.path().join("components").join(format!("{hash}.wasm")),
        &component,
    )
    .unwrap();
    let size = component.len();
    crate::support::sqlite_exec(
        &dir.path().join("aura.db"),
        &[
            "CREATE TABLE functions (name TEXT PRIMARY KEY, active_version INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
            "CREATE TABLE function_versions (function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE, version INTEGER NOT NULL, hash TEXT NOT NULL, size INTEGER NOT NULL, limits TEXT NOT NULL, created_at TEXT NOT NULL, grants TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (function, version))",
            "CREATE TABLE snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL, definition TEXT NOT NULL, created_at TEXT NOT NULL)",
            "CREATE TABLE snapshot_components (snapshot INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE, hash TEXT NOT NULL, PRIMARY KEY (snapshot, hash))",
            "INSERT INTO functions VALUES ('greet', 2, '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z')",
            &format!("INSERT INTO function_versions (function, version, hash, size, limits, created_at) VALUES ('greet', 1, '{hash}', {size}, '{{}}', '2026-01-01T00:00:00.000Z')"),
            &format!("INSERT INTO function_versions (function, version, hash, size, limits, created_at) VALUES ('greet', 2, '{hash}', {size}, '{{}}', '2026-01-02T00:00:00.000Z')"),
            "INSERT INTO snapshots (id, label, definition, created_at) VALUES (7, 'push', '{}', '2026-01-02T00:00:00.000Z')",
            &format!("INSERT INTO snapshot_components VALUES (7, '{hash}')"),
        ],
    )
    .await;

    let aura = Aura::start_in(dir);
    let response = aura.http.get(aura.at("/fn/greet")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (status, versions) = aura.admin_get("/api/admin/functions/greet/versions").await;
    assert_eq!(status, 200, "{versions}");
    let numbers: Vec<&Value> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(numbers, [&json!(2), &json!(1)]);
    assert_eq!(versions["versions"][0]["active"], true);
    let (status, snapshot) = aura.admin_get("/api/admin/snapshots/7").await;
    assert_eq!(
        (status, &snapshot["label"]),
        (200, &json!("push")),
        "{snapshot}"
    );
    // The snapshot outlives the function, and a restart moves nothing twice.
    let (status, _) = aura.admin_delete("/api/admin/functions/greet").await;
    assert_eq!(status, 204);
    let dir = aura.stop();
    let aura = Aura::start_in(dir);
    let (status, _) = aura.admin_get("/api/admin/snapshots/7").await;
    assert_eq!(status, 200);
}
