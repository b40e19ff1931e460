//! Versions over time: rollback, delete, and restart from the compiled cache.

use crate::support::{Aura, assert_error};
use serde_json::{Value, json};

#[tokio::test]
async fn rollback_changes_the_answer() {
    let aura = Aura::start();
    aura.deploy("app", "hello", json!({})).await;
    aura.deploy("app", "echo", json!({})).await;
    let response = aura.http.get(aura.at("/fn/app/x")).send().await.unwrap();
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["path"], "/x");

    let (status, version) = aura
        .admin_post("/api/admin/functions/app/rollback", Value::Null)
        .await;
    assert_eq!(
        (status, version["version"].clone()),
        (200, json!(1)),
        "{version}"
    );
    let response = aura.http.get(aura.at("/fn/app/x")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello from Aura!\n");

    let (status, body) = aura
        .admin_post("/api/admin/functions/app/rollback", Value::Null)
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("no_previous_version"))
    );

    let (status, version) = aura
        .admin_post("/api/admin/functions/app/rollback", json!({"version": 2}))
        .await;
    assert_eq!((status, version["version"].clone()), (200, json!(2)));
    let response = aura.http.get(aura.at("/fn/app/x")).send().await.unwrap();
    assert!(response.json::<Value>().await.is_ok());

    let (status, body) = aura
        .admin_post("/api/admin/functions/app/rollback", json!({"version": 9}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("version_not_found"))
    );
}

#[tokio::test]
async fn delete_removes_the_function() {
    let aura = Aura::start();
    aura.deploy("gone", "hello", json!({})).await;
    let response = aura
        .http
        .delete(aura.at("/api/admin/functions/gone"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = aura.http.get(aura.at("/fn/gone")).send().await.unwrap();
    assert_error(response, 404, "function_not_found").await;
    let (status, body) = aura.admin_get("/api/admin/functions/gone/versions").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("function_not_found"))
    );
    let blobs = std::fs::read_dir(aura.data_dir().join("components"))
        .unwrap()
        .count();
    assert_eq!(
        blobs, 0,
        "the component blob is removed with its last version"
    );
}

#[tokio::test]
async fn restart_serves_from_the_compiled_cache() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    aura.deploy("echo", "echo", json!({})).await;
    assert_eq!(aura.metric("aura_components_compiled_total").await, 2);
    let dir = aura.stop();

    let aura = Aura::start_in(dir);
    assert_eq!(aura.metric("aura_component_cache_hits_total").await, 2);
    assert_eq!(aura.metric("aura_components_compiled_total").await, 0);
    let response = aura.http.get(aura.at("/fn/hello")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello from Aura!\n");
    let (_, functions) = aura.admin_get("/api/admin/functions").await;
    assert_eq!(functions["functions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_damaged_cache_is_recompiled() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    let dir = aura.stop();
    // Compiled artifacts and the incremental cache's compiled functions.
    let mut damaged = 0;
    let mut folders = vec![dir.path().join("cache")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                std::fs::write(path, b"garbage").unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 1, "the artifact and compiled functions");
    let aura = Aura::start_in(dir);
    assert_eq!(aura.metric("aura_components_compiled_total").await, 1);
    let response = aura.http.get(aura.at("/fn/hello")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}
