//! The compiled-artifact cache: artifacts of old versions are pruned, and
//! compiled functions are kept for later compilations of the same code.

use crate::support::{Aura, wasm};
use serde_json::json;

fn artifacts(aura: &Aura) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(aura.data_dir().join("cache"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    names.sort();
    names
}

fn hash(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn only_recent_and_active_versions_keep_compiled_artifacts() {
    let aura = Aura::start();
    let components = ["hello", "echo", "stream", "fetch_proxy", "sandbox"];
    for component in components {
        let (status, body) = aura.deploy_bytes("f", wasm(component), json!({})).await;
        assert_eq!(status, 201, "{component}: {body}");
    }
    let kept = artifacts(&aura);
    let has = |component: &str| kept.iter().any(|n| n.starts_with(&hash(&wasm(component))));
    assert!(
        !has("hello") && !has("echo"),
        "the two oldest are pruned: {kept:?}"
    );
    assert!(
        has("stream") && has("fetch_proxy") && has("sandbox"),
        "{kept:?}"
    );
    assert!(
        aura.data_dir()
            .join("cache/incremental")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "compiled functions are kept for the next compilation"
    );

    // A rollback to a pruned version compiles it again and serves.
    let (status, body) = aura
        .admin_post("/api/admin/functions/f/rollback", json!({"version": 1}))
        .await;
    assert_eq!(status, 200, "{body}");
    let answer = aura.http.get(aura.at("/fn/f")).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "Hello from Aura!\n");
}
