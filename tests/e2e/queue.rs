//! Asynchronous invocations: 202 at once, a durable queue, stored responses,
//! per-function concurrency, a bound, and surviving a restart.

use crate::support::{Aura, assert_error};
use serde_json::{Value, json};
use std::time::Duration;

async fn enqueue(aura: &Aura, path: &str, body: &str) -> reqwest::Response {
    aura.http
        .post(aura.at(path))
        .header("prefer", "respond-async")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn accepted(aura: &Aura, path: &str, body: &str) -> String {
    let response = enqueue(aura, path, body).await;
    assert_eq!(response.status(), 202);
    let id = response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.headers()["location"],
        format!("/api/invocations/{id}").as_str()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["id"].as_str(), body["status"].as_str()),
        (Some(id.as_str()), Some("queued"))
    );
    id
}

/// Polls `/api/invocations/{id}` until `done` holds; returns that answer.
async fn invocation_until(aura: &Aura, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut answer = Value::Null;
    for _ in 0..200 {
        answer = aura
            .http
            .get(aura.at(&format!("/api/invocations/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&answer) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("invocation {id} never got there: {answer}");
}

async fn finished(aura: &Aura, id: &str) -> Value {
    invocation_until(aura, id, |a| {
        a["status"] == "succeeded" || a["status"] == "failed"
    })
    .await
}

#[tokio::test]
async fn an_async_invocation_answers_202_and_stores_the_response() {
    let aura = Aura::start();
    aura.deploy("echo", "echo", json!({})).await;
    let id = accepted(&aura, "/fn/echo/jobs?x=1", "the body").await;
    let answer = finished(&aura, &id).await;
    assert_eq!(answer["status"], "succeeded", "{answer}");
    assert_eq!(answer["attempts"], 1);
    let response = &answer["response"];
    assert_eq!(response["status"], 200);
    assert_eq!(response["headers"]["content-type"], "application/json");
    let echoed: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            echoed["method"].clone(),
            echoed["path"].clone(),
            echoed["query"].clone()
        ),
        (json!("POST"), json!("/jobs"), json!("x=1"))
    );
    assert_eq!(echoed["body"], "the body");
    assert!(echoed["headers"].get("prefer").is_none(), "{echoed}");
    // The run is logged under the same id.
    assert_eq!(aura.invocation_log("echo", &id).await["status"], 200);
}

#[tokio::test]
async fn failures_unknown_functions_and_unknown_ids_are_reported() {
    let aura = Aura::start();
    aura.deploy("trap", "trap", json!({})).await;
    let id = accepted(&aura, "/fn/trap", "").await;
    let answer = finished(&aura, &id).await;
    assert_eq!(answer["status"], "failed");
    assert!(
        answer["error"].as_str().unwrap().contains("trapped"),
        "{answer}"
    );

    assert_error(
        enqueue(&aura, "/fn/nobody", "").await,
        404,
        "function_not_found",
    )
    .await;
    let response = aura
        .http
        .get(aura.at("/api/invocations/no-such-id"))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "invocation_not_found").await;
}

#[tokio::test]
async fn each_function_runs_at_most_its_async_concurrency() {
    let aura = Aura::start();
    aura.deploy(
        "sleepy",
        "sleepy",
        json!({"limits": {"async_concurrency": 1}}),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(accepted(&aura, "/fn/sleepy?ms=300", "").await);
    }
    let mut spans = Vec::new();
    for id in &ids {
        let answer = finished(&aura, id).await;
        assert_eq!(answer["status"], "succeeded", "{answer}");
        let at = |key: &str| {
            chrono::DateTime::parse_from_rfc3339(answer[key].as_str().unwrap()).unwrap()
        };
        spans.push((at("started_at"), at("finished_at")));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "runs overlapped: {spans:?}");
    }
}

#[tokio::test]
async fn a_full_queue_refuses_more() {
    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--max-queued", "2"]);
    aura.deploy(
        "sleepy",
        "sleepy",
        json!({"limits": {"async_concurrency": 1}}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = enqueue(&aura, "/fn/sleepy?ms=1000", "").await;
        statuses.push(response.status().as_u16());
        if response.status() == 503 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "queue_full");
        }
    }
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 202).count() >= 2,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn queued_invocations_survive_a_restart() {
    let aura = Aura::start();
    aura.deploy(
        "sleepy",
        "sleepy",
        json!({"limits": {"async_concurrency": 1}}),
    )
    .await;
    let running = accepted(&aura, "/fn/sleepy?ms=3000", "").await;
    let waiting = accepted(&aura, "/fn/sleepy?ms=10", "").await;
    // Stop the server while the first one runs.
    invocation_until(&aura, &running, |a| a["status"] == "running").await;
    let aura = Aura::start_in(aura.stop());
    for id in [&running, &waiting] {
        let answer = finished(&aura, id).await;
        assert_eq!(answer["status"], "succeeded", "{answer}");
        assert_eq!(answer["response"]["body"], "slept");
    }
    // The interrupted one ran again after the restart.
    assert_eq!(finished(&aura, &running).await["attempts"], 2);
}

/// A queued invocation runs for the user who queued it, though their
/// token is not kept with the request.
#[tokio::test]
async fn async_invocations_run_for_their_caller() {
    let aura = Aura::start();
    aura.deploy("whoami", "whoami", json!({"grants": {"auth": "caller"}}))
        .await;
    let registered: Value = aura
        .http
        .post(aura.at("/api/auth/register"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["accessToken"].as_str().unwrap();
    let response = aura
        .http
        .post(aura.at("/fn/whoami"))
        .header("prefer", "respond-async")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let done = finished(&aura, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let body: Value = serde_json::from_str(done["response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["caller"]["email"], "ada@example.com", "{body}");
    assert_eq!(body["caller"]["id"], registered["user"]["id"]);

    let anonymous = accepted(&aura, "/fn/whoami", "").await;
    let done = finished(&aura, &anonymous).await;
    let body: Value = serde_json::from_str(done["response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["caller"], Value::Null);
}

/// Two nodes on one PostgreSQL database share the queue: invocations
/// queued on one run on either, once each, and are answered on both.
#[tokio::test]
async fn two_nodes_share_the_queue_over_postgres() {
    let Some(a) = crate::database::Db::postgres().await else {
        return;
    };
    let b = crate::database::second_node(&a, &[]);
    // Deployed on A: B loads it as soon as it claims a job for it.
    a.aura.deploy("echo", "echo", json!({})).await;
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(accepted(&a.aura, "/fn/echo", &format!("job {n}")).await);
    }
    for (n, id) in ids.iter().enumerate() {
        let done = finished(&b, id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["attempts"], 1, "ran once: {done}");
        let echoed: Value =
            serde_json::from_str(done["response"]["body"].as_str().unwrap()).unwrap();
        assert_eq!(echoed["body"], format!("job {n}"));
        assert_eq!(echoed["headers"]["x-aura-idempotency-key"], id.as_str());
        assert_eq!(finished(&a.aura, id).await, done);
    }
}

/// Invocations an earlier version kept in the node's `aura.db` move to the
/// shared table at start, and the waiting ones run.
#[tokio::test]
async fn invocations_of_an_earlier_version_are_moved_at_start() {
    let aura = Aura::start();
    aura.deploy("echo", "echo", json!({})).await;
    let dir = aura.stop();
    let file = dir.path().join("aura.db");
    crate::support::sqlite_exec(
        &file,
        &[
        "CREATE TABLE async_invocations (id TEXT PRIMARY KEY, function TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, response_status INTEGER, response_headers TEXT, response_body BLOB, response_truncated INTEGER NOT NULL DEFAULT 0, error TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT)",
        "INSERT INTO async_invocations (id, function, method, path, headers, body, status, created_at) VALUES ('old-1', 'echo', 'POST', '/', '[]', X'6F6C64', 'queued', '2026-01-01T00:00:00.000Z')",
        "INSERT INTO async_invocations (id, function, method, path, headers, body, status, attempts, response_status, response_headers, response_body, created_at, finished_at) VALUES ('old-2', 'echo', 'GET', '/', '[]', X'', 'succeeded', 1, 200, '[[\"x-kept\",\"yes\"]]', X'FF00', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z')",
        ],
    )
    .await;

    let aura = Aura::start_in(dir);
    let ran = finished(&aura, "old-1").await;
    let echoed: Value = serde_json::from_str(ran["response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["body"], "old");
    let kept = finished(&aura, "old-2").await;
    assert_eq!(kept["response"]["headers"]["x-kept"], "yes");
    assert_eq!(kept["response"]["body_base64"], "/wA=");
}

/// 200 jobs accepted by two nodes of one database, one node killed while
/// they run: every accepted job ends with one result, on the node that
/// lives (the dead node's running jobs once their lease lapses) (issue 19).
#[tokio::test]
async fn accepted_jobs_survive_a_node_killed_midway() {
    let Some(mut a) = crate::database::Db::postgres().await else {
        return;
    };
    let b = crate::database::second_node(&a, &[]);
    a.aura.deploy("sleepy", "sleepy", json!({})).await;
    // B serves what A deployed within moments.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while b
        .http
        .get(b.at("/fn/sleepy?ms=1"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "B never served it");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ids = Vec::new();
    for n in 0..200 {
        let node = if n % 2 == 0 { &a.aura } else { &b };
        ids.push(accepted(node, "/fn/sleepy?ms=40", "").await);
    }
    // Kill A once some jobs are done, with others running or waiting.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = 0;
        for id in ids.iter().step_by(10) {
            let answer: Value = b
                .http
                .get(b.at(&format!("/api/invocations/{id}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            done += usize::from(answer["status"] == "succeeded");
        }
        if done >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no job finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.aura.kill();
    // Every job ends on B, once: a lapsed lease is 30 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for id in &ids {
        loop {
            let answer: Value = b
                .http
                .get(b.at(&format!("/api/invocations/{id}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if answer["status"] == "succeeded" {
                assert_eq!(answer["response"]["body"], "slept", "{answer}");
                break;
            }
            assert_ne!(answer["status"], "failed", "{answer}");
            assert!(std::time::Instant::now() < deadline, "{id}: {answer}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(b);
    a.finish().await;
}
