//! A new build of a TypeScript function on the same language engine
//! deploys around the engine's compiled code (issue 17: redeploys reach
//! their first response in well under a second in a release build; see
//! `bench/README.md`), answers as the new build, and is later replaced by
//! the whole component's optimized code.

use crate::support::Aura;
use serde_json::json;
use std::time::{Duration, Instant};

/// Waits until the server's log holds `needle` `times` times.
async fn logged(aura: &Aura, needle: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while aura.log().matches(needle).count() < times {
        assert!(
            Instant::now() < deadline,
            "never logged {needle:?}:\n{}",
            aura.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get(aura: &Aura, path: &str) -> String {
    let response = aura.http.get(aura.at(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_new_build_on_the_same_engine_reuses_its_compiled_code() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/ts-hello/dist/ts-hello.wasm"
    );
    let first = std::fs::read(path).expect("the TypeScript examples are built (scripts/test.sh)");
    let aura = Aura::start();
    let (status, body) = aura.deploy_bytes("hi", first.clone(), json!({})).await;
    assert_eq!(
        (status, &body["compile"]["code"]),
        (201, &json!("baseline")),
        "{body}"
    );
    // In the background: the whole component's optimized code, then the
    // engine's alone, for later builds.
    logged(&aura, "compiled a language engine for later builds", 1).await;

    // Another build: the same engine, another snapshot (here the greeting
    // changed in place, as a rebuild of changed code changes the data).
    let second = replace(&first, b"Hello from TypeScript!", b"Hello from TypeSCRIPT!");
    assert_ne!(second, first, "the greeting is in the snapshot");
    let (status, body) = aura.deploy_bytes("hi", second, json!({})).await;
    assert_eq!(
        (status, &body["compile"]["code"]),
        (201, &json!("reused")),
        "{body}"
    );
    assert_eq!(get(&aura, "/fn/hi/").await, "Hello from TypeSCRIPT!\n");
    assert_eq!(get(&aura, "/fn/hi/stream?n=2").await.lines().count(), 2);
    assert_eq!(aura.metric("aura_components_reused_total").await, 1);

    // Its whole component's code replaces it, answering the same.
    logged(&aura, "optimized code is active function=hi version=2", 1).await;
    assert_eq!(get(&aura, "/fn/hi/").await, "Hello from TypeSCRIPT!\n");
}

/// `bytes` with every `from` replaced by `to` (of the same length).
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    while let Some(at) = out[i..].windows(from.len()).position(|w| w == from) {
        out[i + at..i + at + from.len()].copy_from_slice(to);
        i += at + from.len();
    }
    out
}
