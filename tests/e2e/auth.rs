//! Accounts and tokens, and signed-in users under collection rules, in
//! functions and in realtime.

use crate::support::{Aura, assert_error};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// Registers `email`; returns the answer (tokens and user).
async fn register(aura: &Aura, email: &str) -> Value {
    let response = aura
        .http
        .post(aura.at("/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn post(aura: &Aura, path: &str, body: Value) -> reqwest::Response {
    aura.http
        .post(aura.at(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get_as(aura: &Aura, path: &str, token: &str) -> reqwest::Response {
    aura.http
        .get(aura.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn access(tokens: &Value) -> String {
    tokens["accessToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn register_login_refresh_logout() {
    // No reuse grace: a second use of a refresh token is always a replay.
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--refresh-reuse-grace", "0"],
    );
    let tokens = register(&aura, "Ada@Example.com").await;
    assert_eq!(tokens["tokenType"], "Bearer");
    assert_eq!(
        tokens["user"]["email"], "ada@example.com",
        "emails are normalised"
    );
    let me: Value = get_as(&aura, "/api/auth/me", &access(&tokens))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], tokens["user"]["id"]);

    // Wrong password and unknown account answer the same.
    let wrong = assert_error(
        post(
            &aura,
            "/api/auth/login",
            json!({"email": "ada@example.com", "password": "nope nope nope"}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    let unknown = assert_error(
        post(
            &aura,
            "/api/auth/login",
            json!({"email": "bob@example.com", "password": "nope nope nope"}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown);
    assert_error(
        post(
            &aura,
            "/api/auth/register",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await,
        409,
        "email_taken",
    )
    .await;
    assert_error(
        post(
            &aura,
            "/api/auth/register",
            json!({"email": "x@example.com", "password": "short"}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    assert_error(
        post(
            &aura,
            "/api/auth/register",
            json!({"email": "not-an-email", "password": PASSWORD}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    assert_error(
        post(&aura, "/api/auth/login", json!({"email": "x"})).await,
        400,
        "invalid_body",
    )
    .await;

    // Login opens a second session; refresh rotates its refresh token.
    let login: Value = post(
        &aura,
        "/api/auth/login",
        json!({"email": "ADA@example.com", "password": PASSWORD}),
    )
    .await
    .json()
    .await
    .unwrap();
    let first = login["refreshToken"].as_str().unwrap().to_owned();
    let response = post(&aura, "/api/auth/refresh", json!({"refreshToken": first})).await;
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    assert_ne!(rotated["refreshToken"], login["refreshToken"]);
    let sessions: Value = get_as(&aura, "/api/auth/sessions", &access(&rotated))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        2,
        "{sessions}"
    );

    // Reusing a refresh token revokes its whole session: the rotated
    // refresh token and the access tokens of that session stop working.
    assert_error(
        post(&aura, "/api/auth/refresh", json!({"refreshToken": first})).await,
        401,
        "token_reused",
    )
    .await;
    assert_error(
        post(
            &aura,
            "/api/auth/refresh",
            json!({"refreshToken": rotated["refreshToken"]}),
        )
        .await,
        401,
        "invalid_token",
    )
    .await;
    assert_error(
        get_as(&aura, "/api/auth/me", &access(&rotated)).await,
        401,
        "invalid_token",
    )
    .await;
    // The first session is untouched; logging out ends it.
    assert_eq!(
        get_as(&aura, "/api/auth/me", &access(&tokens))
            .await
            .status(),
        200
    );
    let response = aura
        .http
        .post(aura.at("/api/auth/logout"))
        .bearer_auth(access(&tokens))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_error(
        get_as(&aura, "/api/auth/me", &access(&tokens)).await,
        401,
        "invalid_token",
    )
    .await;
    assert_error(
        post(
            &aura,
            "/api/auth/refresh",
            json!({"refreshToken": tokens["refreshToken"]}),
        )
        .await,
        401,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let aura = Aura::start();
    let tokens = register(&aura, "ada@example.com").await;
    let good = access(&tokens);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    // The real key, read from the database, to sign well-formed bad claims.
    let secret = {
        use sqlx::Connection as _;
        let url = format!(
            "sqlite://{}",
            aura.data_dir().join("collections.db").display()
        );
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let secret: String = sqlx::query_scalar("SELECT secret FROM _aura_auth_keys")
            .fetch_one(&mut db)
            .await
            .unwrap();
        hex::decode(secret).unwrap()
    };
    let kid = header["kid"].as_str().unwrap().to_owned();
    let sign = |claims: &Value, secret: &[u8]| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let with = |key: &str, value: Value| {
        let mut claims = claims.clone();
        claims[key] = value;
        claims
    };
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let mut tampered_claims = claims.clone();
    tampered_claims["roles"] = json!(["admin"]);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(tampered_claims.to_string()),
        parts[2]
    );
    let forged = [
        ("alg none", none),
        (
            "wrong key",
            sign(&claims, b"not the key at all, not at all!!"),
        ),
        ("tampered claims", tampered),
        ("expired", sign(&with("exp", json!(now - 3600)), &secret)),
        (
            "not yet valid",
            sign(&with("nbf", json!(now + 3600)), &secret),
        ),
        (
            "not an access token",
            sign(&with("typ", json!("refresh")), &secret),
        ),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, token) in forged {
        let response = get_as(&aura, "/api/auth/me", &token).await;
        assert_eq!(response.status(), 401, "{what}");
        let response = get_as(&aura, "/api/collections/users/records", &token).await;
        assert_eq!(response.status(), 401, "{what} on the records API");
    }
    // The same claims, properly signed, pass: the refusals above are about
    // what was forged.
    assert_eq!(
        get_as(&aura, "/api/auth/me", &sign(&claims, &secret))
            .await
            .status(),
        200
    );
}

/// Rules with two users, on SQLite and on PostgreSQL.
mod rules_hold_for_each_user {
    #[tokio::test]
    async fn sqlite() {
        super::rules_hold_for_each_user(&crate::support::Aura::start()).await;
    }

    #[tokio::test]
    async fn postgres() {
        if let Some(db) = crate::database::Db::postgres().await {
            super::rules_hold_for_each_user(&db.aura).await;
            db.finish().await;
        }
    }
}

/// Rules with two users: owner-only records, body checks, roles, relation
/// paths; the users collection shows each user only their own record.
async fn rules_hold_for_each_user(aura: &Aura) {
    let ada = register(aura, "ada@example.com").await;
    let bob = register(aura, "bob@other.org").await;
    let (ada_token, bob_token) = (access(&ada), access(&bob));
    let ada_id = ada["user"]["id"].as_str().unwrap().to_owned();
    let (status, body) = aura
        .admin_post(
            "/api/collections",
            json!({"name": "posts", "fields": [
                {"name": "title", "type": "text"},
                {"name": "author", "type": "relation", "collection": "users"},
                {"name": "public", "type": "bool"}
            ],
            "listRule": "author = @request.auth.id || public = true",
            "viewRule": "author = @request.auth.id || public = true",
            "createRule": "@request.auth.id != '' && @request.body.author = @request.auth.id",
            "updateRule": "author = @request.auth.id || @request.auth.roles ?= 'editor'",
            "deleteRule": "author = @request.auth.id && author.email ~ '@example.com'"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let records = aura.at("/api/collections/posts/records");
    let create = |token: String, body: Value| {
        let http = aura.http.clone();
        let records = records.clone();
        async move {
            http.post(records)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let response = create(
        ada_token.clone(),
        json!({"title": "ada's", "author": ada_id}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let one = format!("{records}/{id}");

    // Bob can't create as Ada, nor anonymously.
    assert_error(
        create(
            bob_token.clone(),
            json!({"title": "fake", "author": ada_id}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let response = aura
        .http
        .post(&records)
        .json(&json!({"title": "anon"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "forbidden").await;

    // Ada sees her post; Bob neither lists nor reads it, and can't change
    // or delete what he can't see (404, not 403).
    let page: Value = get_as(aura, "/api/collections/posts/records", &ada_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalItems"], 1);
    let page: Value = get_as(aura, "/api/collections/posts/records", &bob_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalItems"], 0);
    assert_error(
        get_as(
            aura,
            &format!("/api/collections/posts/records/{id}"),
            &bob_token,
        )
        .await,
        404,
        "record_not_found",
    )
    .await;
    let response = aura
        .http
        .patch(&one)
        .bearer_auth(&bob_token)
        .json(&json!({"title": "bob was here"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "record_not_found").await;

    // Once public, Bob reads it but still may not change it (403).
    let response = aura
        .http
        .patch(&one)
        .bearer_auth(&ada_token)
        .json(&json!({"public": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        get_as(
            aura,
            &format!("/api/collections/posts/records/{id}"),
            &bob_token
        )
        .await
        .status(),
        200
    );
    let response = aura
        .http
        .patch(&one)
        .bearer_auth(&bob_token)
        .json(&json!({"title": "bob was here"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "forbidden").await;

    // The admin makes Bob an editor; with a fresh token, the role rule lets
    // him edit.
    let response = aura
        .http
        .patch(aura.at(&format!(
            "/api/collections/users/records/{}",
            bob["user"]["id"].as_str().unwrap()
        )))
        .bearer_auth(&aura.token)
        .json(&json!({"roles": ["editor"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bob_again: Value = post(
        aura,
        "/api/auth/login",
        json!({"email": "bob@other.org", "password": PASSWORD}),
    )
    .await
    .json()
    .await
    .unwrap();
    let response = aura
        .http
        .patch(&one)
        .bearer_auth(access(&bob_again))
        .json(&json!({"title": "edited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Taking the role away counts at once, for the token he already has.
    let response = aura
        .http
        .patch(aura.at(&format!(
            "/api/collections/users/records/{}",
            bob["user"]["id"].as_str().unwrap()
        )))
        .bearer_auth(&aura.token)
        .json(&json!({"roles": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = aura
        .http
        .patch(&one)
        .bearer_auth(access(&bob_again))
        .json(&json!({"title": "edited again"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "forbidden").await;
    // Delete follows a relation path: Ada's email matches, Bob is not the author.
    let response = aura
        .http
        .delete(&one)
        .bearer_auth(access(&bob_again))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "forbidden").await;
    let response = aura
        .http
        .delete(&one)
        .bearer_auth(&ada_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    // Each user sees only their own account in `users`.
    let page: Value = get_as(aura, "/api/collections/users/records", &bob_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalItems"], 1);
    assert_eq!(page["items"][0]["email"], "bob@other.org");
    // The system collection keeps its system fields and can't be dropped.
    let response = aura
        .http
        .put(aura.at("/api/collections/users"))
        .bearer_auth(&aura.token)
        .json(&json!({"name": "users", "fields": [{"name": "email", "type": "text"}]}))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_schema").await;
    let response = aura
        .http
        .delete(aura.at("/api/collections/users?force=true"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_error(response, 409, "collection_in_use").await;
}

/// A function's database calls act for the signed-in caller; realtime
/// delivers a user only the records their view rule allows.
#[tokio::test]
async fn identity_flows_into_functions_and_realtime() {
    use eventsource_stream::Eventsource as _;
    use futures::StreamExt as _;
    let aura = Aura::start();
    let ada = register(&aura, "ada@example.com").await;
    let (status, body) = aura
        .admin_post(
            "/api/collections",
            json!({"name": "todos", "fields": [
                {"name": "title", "type": "text", "required": true}, {"name": "done", "type": "bool"}
            ], "listRule": "@request.auth.id != ''", "viewRule": "@request.auth.id != '' && done != true",
            "createRule": "@request.auth.email ~ '@example.com'"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    aura.deploy(
        "todo-api",
        "todo_api",
        json!({"grants": {"collections": {"todos": "read-write"}}}),
    )
    .await;
    let todos = aura.at("/fn/todo-api/todos");

    // Realtime for Ada: she may view open todos only.
    let response = aura
        .http
        .get(aura.at(&format!(
            "/api/realtime?channels=collections.todos.*&token={}",
            access(&ada)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response
        .bytes_stream()
        .eventsource()
        .map(|e| e.expect("SSE event"))
        .boxed();

    let response = aura
        .http
        .post(&todos)
        .json(&json!({"title": "anon"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "denied").await;
    let page: Value = aura
        .http
        .get(&todos)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["totalItems"], 0,
        "nobody signed in lists nothing: {page}"
    );
    for (title, done) in [("closed", true), ("open", false)] {
        let response = aura
            .http
            .post(&todos)
            .bearer_auth(access(&ada))
            .json(&json!({"title": title, "done": done}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "as Ada");
    }
    let page: Value = aura
        .http
        .get(&todos)
        .bearer_auth(access(&ada))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalItems"], 2, "{page}");

    let mut next = async || {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("an open stream");
        (
            event.event,
            serde_json::from_str::<Value>(&event.data).unwrap(),
        )
    };
    assert_eq!(next().await.0, "ready");
    let (_, event) = next().await;
    assert_eq!(
        event["data"]["record"]["title"], "open",
        "the closed todo is not Ada's to view: {event}"
    );
}

/// Failed sign-ins lock an account out, with growing delays; each address
/// has a request budget; both answer 429 with Retry-After. The audit log
/// records what happened, for admins.
#[tokio::test]
async fn lockouts_rate_limits_and_the_audit_log() {
    let aura = Aura::start();
    register(&aura, "ada@example.com").await;
    let wrong = json!({"email": "ada@example.com", "password": "wrong password"});
    for _ in 0..5 {
        assert_error(
            post(&aura, "/api/auth/login", wrong.clone()).await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    // Locked: even the right password waits.
    let response = post(
        &aura,
        "/api/auth/login",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_error(response, 429, "rate_limited").await;

    // The audit log has it all (written in the background).
    let audit = |event: &'static str| {
        let aura = &aura;
        async move {
            let (status, body) = aura
                .admin_get(&format!("/api/admin/audit?event={event}"))
                .await;
            assert_eq!(status, 200);
            body["entries"].as_array().unwrap().clone()
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while audit("lockout").await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no lockout entry");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let failed = audit("login_failed").await;
    assert_eq!(failed.len(), 5);
    assert_eq!(failed[0]["ip"], "127.0.0.1");
    assert_eq!(failed[0]["detail"]["email"], "ada@example.com");
    assert_eq!(audit("register").await.len(), 1);
    let response = aura
        .http
        .get(aura.at("/api/admin/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the audit log is for admins");

    // This address has made 7 requests; its budget is 30 a minute.
    let mut statuses = Vec::new();
    for i in 0..24 {
        let response = post(
            &aura,
            "/api/auth/login",
            json!({"email": format!("nobody{i}@example.com"), "password": "whatever1"}),
        )
        .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        23,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429));
}

#[tokio::test]
async fn a_refresh_token_used_twice_at_once_keeps_the_session_but_not_later() {
    let aura = Aura::start_with(
        tempfile::tempdir().unwrap(),
        &["--refresh-reuse-grace", "1"],
    );
    let tokens = register(&aura, "tabs@example.com").await;
    let refresh = json!({"refreshToken": tokens["refreshToken"]});
    // Two tabs refresh with the same token at the same moment.
    let (one, two) = tokio::join!(
        post(&aura, "/api/auth/refresh", refresh.clone()),
        post(&aura, "/api/auth/refresh", refresh.clone())
    );
    assert_eq!((one.status().as_u16(), two.status().as_u16()), (200, 200));
    let one: Value = one.json().await.unwrap();
    let two: Value = two.json().await.unwrap();
    for answer in [&one, &two] {
        assert_eq!(
            get_as(&aura, "/api/auth/me", &access(answer))
                .await
                .status(),
            200
        );
    }
    // Each answer's refresh token goes on working.
    let next = post(
        &aura,
        "/api/auth/refresh",
        json!({"refreshToken": two["refreshToken"]}),
    )
    .await;
    assert_eq!(next.status(), 200);

    // After the grace, the same token again is a replay: the session ends.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_error(
        post(&aura, "/api/auth/refresh", refresh).await,
        401,
        "token_reused",
    )
    .await;
    assert_error(
        get_as(&aura, "/api/auth/me", &access(&one)).await,
        401,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn the_admin_revokes_sessions_and_unlocks_accounts() {
    let aura = Aura::start();
    let registered = register(&aura, "ada@example.com").await;
    let id = registered["user"]["id"].as_str().unwrap().to_owned();
    let credentials = json!({"email": "ada@example.com", "password": PASSWORD});
    let login: Value = post(&aura, "/api/auth/login", credentials.clone())
        .await
        .json()
        .await
        .unwrap();
    let sessions_path = format!("/api/admin/users/{id}/sessions");
    let (status, listed) = aura.admin_get(&sessions_path).await;
    assert_eq!(status, 200);
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{listed}");
    assert!(sessions.iter().all(|s| s["current"] == false));

    // Ending the first session makes its refresh token useless.
    let first = sessions.last().unwrap()["id"].as_str().unwrap();
    let (status, _) = aura.admin_delete(&format!("{sessions_path}/{first}")).await;
    assert_eq!(status, 204);
    let refresh = json!({"refreshToken": registered["refreshToken"]});
    assert_eq!(
        post(&aura, "/api/auth/refresh", refresh).await.status(),
        401
    );
    let (_, listed) = aura.admin_get(&sessions_path).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1);
    let (status, body) = aura.admin_delete(&sessions_path).await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(1)));
    let refresh = json!({"refreshToken": login["refreshToken"]});
    assert_eq!(
        post(&aura, "/api/auth/refresh", refresh).await.status(),
        401
    );
    let (status, body) = aura.admin_get("/api/admin/users/nobody/sessions").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    // A locked account is listed and can be unlocked before its time.
    let wrong = json!({"email": "ada@example.com", "password": "wrong password"});
    for _ in 0..5 {
        post(&aura, "/api/auth/login", wrong.clone()).await;
    }
    let (_, locked) = aura.admin_get("/api/admin/auth/lockouts").await;
    assert_eq!(
        locked["lockouts"][0]["account"], "ada@example.com",
        "{locked}"
    );
    assert_eq!(locked["lockouts"][0]["failures"], 5);
    assert_eq!(
        post(&aura, "/api/auth/login", credentials.clone())
            .await
            .status(),
        429
    );
    let (status, _) = aura
        .admin_delete("/api/admin/auth/lockouts/ada@example.com")
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        post(&aura, "/api/auth/login", credentials).await.status(),
        200
    );
    let (status, body) = aura
        .admin_delete("/api/admin/auth/lockouts/ada@example.com")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_locked"))
    );
}

/// `aura:platform/auth`: a function sees who invoked it, and looks users up
/// only with `auth = "service"`; importing it needs an `auth` grant.
#[tokio::test]
async fn functions_see_their_caller() {
    let aura = Aura::start();
    let ada = register(&aura, "ada@example.com").await;
    let ada_id = ada["user"]["id"].as_str().unwrap().to_owned();
    let (status, body) = aura
        .deploy_bytes("whoami", crate::support::wasm("whoami"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_grant")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["missing_grants"][0]["grant"],
        "auth"
    );
    aura.deploy("whoami", "whoami", json!({"grants": {"auth": "caller"}}))
        .await;

    let who = |token: Option<String>, query: String| {
        let aura = &aura;
        async move {
            let mut request = aura.http.get(aura.at(&format!("/fn/whoami{query}")));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (_, body) = who(Some(access(&ada)), String::new()).await;
    assert_eq!(body["caller"]["id"], ada_id.as_str());
    assert_eq!(body["caller"]["email"], "ada@example.com");
    let (_, body) = who(None, String::new()).await;
    assert_eq!(body["caller"], Value::Null);
    let (_, body) = who(Some("not-ours".into()), String::new()).await;
    assert_eq!(
        body["caller"],
        Value::Null,
        "a foreign token is the function's business"
    );

    let lookup = format!("?lookup={ada_id}");
    let (status, _) = who(None, lookup.clone()).await;
    assert_eq!(status, 403, "lookup needs the service grant");
    aura.deploy("whoami", "whoami", json!({"grants": {"auth": "service"}}))
        .await;
    let (status, body) = who(None, lookup).await;
    assert_eq!(
        (status, body["email"].as_str()),
        (200, Some("ada@example.com"))
    );
    let (status, _) = who(None, "?lookup=nosuchuser".into()).await;
    assert_eq!(status, 404);
    let (status, body) = aura
        .deploy_bytes(
            "whoami",
            crate::support::wasm("whoami"),
            json!({"grants": {"auth": "everything"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

/// Profile changes, signing out everywhere else, and deleting the account.
#[tokio::test]
async fn profiles_sessions_and_account_deletion() {
    let aura = Aura::start();
    let first = register(&aura, "ada@example.com").await;
    let second: Value = post(
        &aura,
        "/api/auth/login",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await
    .json()
    .await
    .unwrap();
    let third: Value = post(
        &aura,
        "/api/auth/login",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await
    .json()
    .await
    .unwrap();

    let put = |token: String, body: Value| {
        let aura = &aura;
        async move {
            aura.http
                .put(aura.at("/api/auth/me"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let response = put(access(&first), json!({"name": "Ada Lovelace"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["name"],
        "Ada Lovelace"
    );
    assert_error(
        put(access(&first), json!({"roles": ["admin"]})).await,
        400,
        "invalid_input",
    )
    .await;
    assert_error(
        put(access(&first), json!({"nope": 1})).await,
        400,
        "invalid_input",
    )
    .await;

    // Sign out everywhere else: the other two sessions end, this one stays.
    let response = aura
        .http
        .delete(aura.at("/api/auth/sessions"))
        .bearer_auth(access(&second))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["revoked"], 2);
    assert_error(
        get_as(&aura, "/api/auth/me", &access(&first)).await,
        401,
        "invalid_token",
    )
    .await;
    assert_error(
        post(
            &aura,
            "/api/auth/refresh",
            json!({"refreshToken": third["refreshToken"]}),
        )
        .await,
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(
        get_as(&aura, "/api/auth/me", &access(&second))
            .await
            .status(),
        200
    );

    // Deleting the account ends everything; the email is free again.
    let response = aura
        .http
        .delete(aura.at("/api/auth/me"))
        .bearer_auth(access(&second))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_error(
        get_as(&aura, "/api/auth/me", &access(&second)).await,
        401,
        "invalid_token",
    )
    .await;
    assert_error(
        post(
            &aura,
            "/api/auth/login",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    register(&aura, "ada@example.com").await;
}
