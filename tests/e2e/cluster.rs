//! Nodes of one PostgreSQL database agree on what must be the same on
//! every node: a node with another admin token or master key refuses to
//! start and says how to fix it (rather than answering 401 or 500 later),
//! and one given the first node's joins (issue 19).

use crate::database::{Db, node_env, postgres_url_of, second_node};
use serde_json::json;
use std::process::{Command, Stdio};

/// Starts `aura serve` on `url` with `env`, expecting it to refuse: answers
/// what it said.
fn refused(url: &str, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aura"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--s3-addr",
            "off",
            "--database",
            url,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("AURA_ADMIN_TOKEN")
        .env_remove("AURA_MASTER_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "it started: {said}");
    said
}

#[tokio::test]
async fn a_node_with_another_token_or_key_refuses_to_join() {
    let Some(a) = Db::postgres().await else {
        return;
    };
    let url = postgres_url_of(&a);
    let [(_, token), (_, key)] = node_env(&a);
    let said = refused(&url, &[]);
    assert!(
        said.contains("master key") && said.contains("AURA_MASTER_KEY"),
        "{said}"
    );
    let said = refused(&url, &[("AURA_MASTER_KEY", &key)]);
    assert!(
        said.contains("admin token") && said.contains("AURA_ADMIN_TOKEN"),
        "{said}"
    );
    let said = refused(
        &url,
        &[("AURA_MASTER_KEY", &key), ("AURA_ADMIN_TOKEN", "short")],
    );
    assert!(said.contains("at least 32"), "{said}");

    // With both, it joins: the first node's token works on it.
    let b = second_node(&a, &[]);
    assert_eq!(b.token, token);
    let (status, _) = b.admin_get("/api/admin/secrets").await;
    assert_eq!(status, 200);
    let set = a
        .aura
        .http
        .put(a.aura.at("/api/admin/secrets/SHARED"))
        .bearer_auth(&a.aura.token)
        .json(&json!({"value": "from A"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    // A secret set on A is read on B.
    b.deploy("vault", "vault", json!({"grants": {"secrets": ["SHARED"]}}))
        .await;
    let read = b
        .http
        .get(b.at("/fn/vault?name=SHARED"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert!(read.text().await.unwrap().contains("from A"));
    drop(b);
    a.finish().await;
}
