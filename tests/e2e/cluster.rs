//! Nodes of one PostgreSQL database agree on what must be the same on
//! every node: a node with another admin token or master key refuses to
//! start and says how to fix it (rather than answering 401 or 500 later),
//! and one given the first node's joins (issue 19).

use crate::database::{Db, node_env, postgres_url_of, second_node};
use serde_json::json;
use std::process::{Command, Stdio};

/// Starts `aura serve` on `url` with `env`, expecting it to refuse: answers
/// what it said.
fn refused(url: &str, storage: Option<&str>, env: &[(&str, &str)]) -> String {
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
        .args(storage.map(|s| ["--storage-url", s]).into_iter().flatten())
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
    let storage = format!("file://{}", a.aura.data_dir().join("storage").display());
    let shared = Some(storage.as_str());
    let said = refused(&url, shared, &[]);
    assert!(
        said.contains("master key") && said.contains("AURA_MASTER_KEY"),
        "{said}"
    );
    let said = refused(&url, shared, &[("AURA_MASTER_KEY", &key)]);
    assert!(
        said.contains("admin token") && said.contains("AURA_ADMIN_TOKEN"),
        "{said}"
    );
    let said = refused(
        &url,
        shared,
        &[("AURA_MASTER_KEY", &key), ("AURA_ADMIN_TOKEN", "short")],
    );
    assert!(said.contains("at least 32"), "{said}");

    // With both but object bytes in a directory of its own, it would
    // list objects it cannot read: it refuses too.
    let said = refused(
        &url,
        None,
        &[("AURA_MASTER_KEY", &key), ("AURA_ADMIN_TOKEN", &token)],
    );
    assert!(
        said.contains("object store") && said.contains("--storage-url"),
        "{said}"
    );

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

/// What `GET /fn/greet` answers on `node`: status and body.
async fn greet(node: &crate::support::Aura) -> (u16, String) {
    let response = node.http.get(node.at("/fn/greet")).send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// Waits until every node of `nodes` answers `/fn/greet` as `expected`
/// says; answers how long the slowest took.
async fn until_all(
    nodes: &[&crate::support::Aura],
    expected: impl Fn(u16, &str) -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    for node in nodes {
        loop {
            let (status, body) = greet(node).await;
            if expected(status, &body) {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{}: still {status} {body}",
                node.url
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

/// A function deployed on one node is served by every node of the
/// database, and a rollback or delete on any node reaches all of them: the
/// versions and components live in the shared database (issue 19).
#[tokio::test]
async fn a_function_deployed_on_one_node_runs_on_every_node() {
    let Some(a) = Db::postgres().await else {
        return;
    };
    let b = second_node(&a, &[]);
    let c = second_node(&a, &[]);
    let nodes = [&a.aura, &b, &c];
    let hello = |status: u16, body: &str| status == 200 && body.starts_with("Hello from Aura");
    let echo = |status: u16, body: &str| status == 200 && body.contains("\"method\"");

    a.aura.deploy("greet", "hello", json!({})).await;
    let took = until_all(&nodes, hello).await;
    eprintln!("deploy on A -> every node serves it: {took:?}");

    // A new version deployed on B replaces it everywhere.
    let deployed = b.deploy("greet", "echo", json!({})).await;
    assert_eq!(deployed["version"], 2, "{deployed}");
    until_all(&nodes, echo).await;
    let (status, listed) = c.admin_get("/api/admin/functions/greet/versions").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["versions"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );

    // A rollback on C: every node runs version 1 again.
    let (status, rolled) = c
        .admin_post("/api/admin/functions/greet/rollback", json!({}))
        .await;
    assert_eq!(status, 200, "{rolled}");
    until_all(&nodes, hello).await;

    // A node started after the changes serves the active version at once.
    let late = second_node(&a, &[]);
    let (status, body) = greet(&late).await;
    assert!(hello(status, &body), "{status} {body}");

    // A delete on A: gone from every node.
    let (status, _) = a.aura.admin_delete("/api/admin/functions/greet").await;
    assert_eq!(status, 204);
    until_all(&[&a.aura, &b, &c, &late], |status, _| status == 404).await;
    drop((b, c, late));
    a.finish().await;
}

/// Nodes that keep object bytes in one directory (`file://`, a filesystem
/// they all mount) read each other's objects.
#[tokio::test]
async fn nodes_on_a_shared_directory_read_each_others_objects() {
    let Some(a) = Db::postgres().await else {
        return;
    };
    let b = second_node(&a, &[]);
    let (status, created) = a
        .aura
        .admin_post("/api/admin/storage/buckets", json!({"name": "files"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let put = a
        .aura
        .http
        .put(a.aura.at("/api/storage/files/notes/a.txt"))
        .bearer_auth(&a.aura.token)
        .body("written on A")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let got = b
        .http
        .get(b.at("/api/storage/files/notes/a.txt"))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.unwrap(), "written on A");
    drop(b);
    a.finish().await;
}

/// A named admin token minted on one node works on every node; revoked on
/// another, it stops working everywhere (issue 19). On one node too: the
/// CLI mints, lists and revokes.
#[tokio::test]
async fn named_admin_tokens_work_on_every_node_until_revoked() {
    let Some(a) = Db::postgres().await else {
        return;
    };
    let b = second_node(&a, &[]);
    let (status, minted) = a
        .aura
        .admin_post("/api/admin/tokens", json!({"name": "ci"}))
        .await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("aura_admin_"), "{token}");
    let with = |node: &crate::support::Aura, token: &str| {
        node.http
            .get(node.at("/api/admin/functions"))
            .bearer_auth(token)
            .send()
    };
    for node in [&a.aura, &b] {
        assert_eq!(with(node, &token).await.unwrap().status(), 200);
    }
    // Listed by name, never with the token; a name is taken once.
    let (status, listed) = b.admin_get("/api/admin/tokens").await;
    assert_eq!(status, 200);
    assert_eq!(listed["tokens"][0]["name"], "ci", "{listed}");
    assert!(!listed.to_string().contains(&token));
    let (status, again) = b
        .admin_post("/api/admin/tokens", json!({"name": "ci"}))
        .await;
    assert_eq!(
        (status, &again["error"]["code"]),
        (409, &json!("token_exists"))
    );
    let (status, bad) = b
        .admin_post("/api/admin/tokens", json!({"name": "no spaces"}))
        .await;
    assert_eq!(
        (status, &bad["error"]["code"]),
        (400, &json!("invalid_name"))
    );

    // Revoked on B: refused on B at once, on A within a second or two.
    let (status, _) = b.admin_delete("/api/admin/tokens/ci").await;
    assert_eq!(status, 204);
    assert_eq!(with(&b, &token).await.unwrap().status(), 401);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while with(&a.aura, &token).await.unwrap().status() != 401 {
        assert!(std::time::Instant::now() < deadline, "still accepted on A");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, _) = a.aura.admin_delete("/api/admin/tokens/ci").await;
    assert_eq!(status, 404);
    // A made-up token of the same shape is refused.
    let forged = format!("aura_admin_{}", "0".repeat(64));
    assert_eq!(with(&b, &forged).await.unwrap().status(), 401);
    drop(b);
    a.finish().await;
}

/// `aura tokens` mints a token that works as the admin token, lists it by
/// name and revokes it.
#[tokio::test]
async fn the_cli_mints_lists_and_revokes_admin_tokens() {
    let aura = crate::support::Aura::start();
    let minted = aura.cli(&["tokens", "create", "laptop", "--json"]);
    assert!(minted.status.success(), "{minted:?}");
    let minted: serde_json::Value = serde_json::from_slice(&minted.stdout).unwrap();
    let token = minted["token"].as_str().unwrap().to_owned();
    let status = |token: String| {
        let aura = &aura;
        async move {
            aura.http
                .get(aura.at("/api/admin/secrets"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(token.clone()).await, 200);
    let listed = aura.cli(&["tokens", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("laptop") && !listed.contains(&token),
        "{listed}"
    );
    let revoked = aura.cli(&["tokens", "revoke", "laptop", "--yes"]);
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(status(token).await, 401);
    let again = aura.cli(&["tokens", "revoke", "laptop", "--yes"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no admin token"));
}

/// With a shared database the invocation logs are shared too: each node
/// lists the invocations that ran on the others (issue 19).
#[tokio::test]
async fn every_node_reads_the_invocations_of_every_node() {
    let Some(a) = Db::postgres().await else {
        return;
    };
    let b = second_node(&a, &[]);
    a.aura.deploy("greet", "hello", json!({})).await;
    until_all(&[&a.aura, &b], |status, _| status == 200).await;
    let mut ids = Vec::new();
    for node in [&a.aura, &b] {
        let response = node.http.get(node.at("/fn/greet")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        ids.push(
            response.headers()["x-aura-invocation-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    for node in [&a.aura, &b] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, body) = node.admin_get("/api/admin/functions/greet/logs").await;
            assert_eq!(status, 200, "{body}");
            let text = body.to_string();
            if ids.iter().all(|id| text.contains(id.as_str())) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{}: {body}", node.url);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    drop(b);
    a.finish().await;
}
