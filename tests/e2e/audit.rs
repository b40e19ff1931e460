//! The audit log of admin changes: every successful change made with the
//! admin token is recorded with its method and path (never a body), is
//! filtered by event and time, and old entries are pruned by policy.

use crate::support::Aura;
use serde_json::{Value, json};
use std::time::Duration;

/// Entries of `event` (up to 100), once at least `count` are written.
async fn entries(aura: &Aura, event: &str, count: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    for _ in 0..50 {
        let (_, body) = aura
            .admin_get(&format!("/api/admin/audit?event={event}&limit=100"))
            .await;
        entries = body["entries"].as_array().cloned().unwrap_or_default();
        if entries.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    entries
}

/// The `admin_action` entries, once at least `count` are written.
async fn admin_actions(aura: &Aura, count: usize) -> Vec<Value> {
    entries(aura, "admin_action", count).await
}

#[tokio::test]
async fn admin_changes_are_audited_by_method_and_path() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    let (status, _) = aura
        .admin_post(
            "/api/collections",
            json!({"name": "notes", "fields": [{"name": "text", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 201);
    let secret = "a-value-never-audited";
    let set = aura
        .http
        .put(aura.at("/api/admin/secrets/API_KEY"))
        .bearer_auth(&aura.token)
        .json(&json!({ "value": secret }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let user: Value = aura
        .http
        .post(aura.at("/api/auth/register"))
        .json(&json!({"email": "ops@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = user["user"]["id"].as_str().unwrap();
    let roles = aura
        .http
        .patch(aura.at(&format!("/api/collections/users/records/{id}")))
        .bearer_auth(&aura.token)
        .json(&json!({ "roles": ["admin"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(roles.status(), 200);
    // Not audited: reads, failures, and record writes outside `users`.
    let _ = aura.admin_get("/api/admin/functions").await;
    let failed = aura
        .http
        .delete(aura.at("/api/admin/functions/nope"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 404);
    let (status, _) = aura
        .admin_post("/api/collections/notes/records", json!({"text": "hi"}))
        .await;
    assert_eq!(status, 201);

    let entries = admin_actions(&aura, 4).await;
    let actions: Vec<String> = entries
        .iter()
        .rev()
        .map(|e| {
            format!(
                "{} {}",
                e["detail"]["method"].as_str().unwrap(),
                e["detail"]["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "POST /api/admin/functions/hello/versions".to_owned(),
            "POST /api/collections".to_owned(),
            "PUT /api/admin/secrets/API_KEY".to_owned(),
            format!("PATCH /api/collections/users/records/{id}"),
        ]
    );
    let (_, everything) = aura.admin_get("/api/admin/audit?limit=1000").await;
    assert!(!everything.to_string().contains(secret));

    let first = entries.last().unwrap()["at"].as_str().unwrap().to_owned();
    let later = entries[0]["at"].as_str().unwrap().to_owned();
    let (_, since) = aura
        .admin_get(&format!(
            "/api/admin/audit?event=admin_action&since={}",
            crate::support::encode(&later)
        ))
        .await;
    let since = since["entries"].as_array().unwrap();
    assert!(!since.is_empty() && since.len() <= entries.len());
    assert!(
        since
            .iter()
            .all(|e| e["at"].as_str().unwrap() >= first.as_str())
    );
    let bad = aura
        .http
        .get(aura.at("/api/admin/audit?since=yesterday"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    crate::support::assert_error(bad, 400, "invalid_query").await;
}

#[tokio::test]
async fn old_audit_entries_are_pruned_by_policy() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    assert_eq!(admin_actions(&aura, 1).await.len(), 1);
    let dir = aura.stop();
    let file = dir.path().join("collections.db");
    crate::support::sqlite_exec(
        &file,
        &["INSERT INTO _aura_audit (at, event, detail) VALUES ('2020-01-01T00:00:00.000Z', 'admin_action', '{\"path\": \"/old\"}')"],
    )
    .await;

    let aura = Aura::start_in(dir);
    let mut paths = Vec::new();
    for _ in 0..50 {
        paths = admin_actions(&aura, 1)
            .await
            .iter()
            .map(|e| e["detail"]["path"].as_str().unwrap_or_default().to_owned())
            .collect();
        if !paths.contains(&"/old".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(paths, ["/api/admin/functions/hello/versions"]);
}

/// Sends `request` from client `address` (behind the trusted loopback
/// proxy) with `token`: status and JSON body.
async fn sent(
    request: reqwest::RequestBuilder,
    address: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = request.header("x-forwarded-for", address);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn ended_sessions_are_audited_with_the_client_address() {
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--trusted-proxy", "127.0.0.0/8"],
    );
    let credentials = json!({"email": "ada@example.com", "password": "correct horse battery"});
    let mut tokens = Vec::new();
    for path in ["/api/auth/register", "/api/auth/login", "/api/auth/login"] {
        let request = aura.http.post(aura.at(path)).json(&credentials);
        let (_, body) = sent(request, "198.51.100.7", None).await;
        tokens.push(body["accessToken"].as_str().unwrap().to_owned());
    }
    let ada = Some(tokens[0].as_str());
    let (_, me) = sent(aura.http.get(aura.at("/api/auth/me")), "198.51.100.7", ada).await;
    let (_, sessions) = sent(
        aura.http.get(aura.at("/api/auth/sessions")),
        "198.51.100.7",
        ada,
    )
    .await;
    let other = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] != json!(true))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = aura
        .http
        .delete(aura.at(&format!("/api/auth/sessions/{other}")));
    assert_eq!(sent(one, "198.51.100.7", ada).await.0, 204);
    let others = aura.http.delete(aura.at("/api/auth/sessions"));
    assert_eq!(sent(others, "198.51.100.7", ada).await.0, 200);
    let logout = aura.http.post(aura.at("/api/auth/logout"));
    assert_eq!(sent(logout, "198.51.100.7", ada).await.0, 204);
    let user = me["id"].as_str().unwrap();
    let all = aura
        .http
        .delete(aura.at(&format!("/api/admin/users/{user}/sessions")));
    assert_eq!(sent(all, "192.0.2.1", Some(&aura.token)).await.0, 200);

    let revoked = entries(&aura, "sessions_revoked", 3).await;
    let mut addresses: Vec<_> = revoked.iter().map(|e| e["ip"].clone()).collect();
    addresses.sort_by_key(|a| a.to_string());
    assert_eq!(
        addresses,
        [
            json!("192.0.2.1"),
            json!("198.51.100.7"),
            json!("198.51.100.7")
        ],
        "{revoked:?}"
    );
    let logout = entries(&aura, "logout", 1).await;
    assert_eq!(logout[0]["ip"], "198.51.100.7", "{logout:?}");
}
