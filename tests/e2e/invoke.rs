//! Invoking functions: pass-through of the request, streaming, concurrency, logs.

use crate::support::{Aura, assert_error};
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn hello_answers_and_every_response_has_an_invocation_id() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    let response = aura
        .http
        .get(aura.at("/fn/hello/some/path?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-aura-invocation-id"));
    assert_eq!(response.text().await.unwrap(), "Hello from Aura!\n");

    for path in ["/fn/hello", "/fn/hello/"] {
        let response = aura.http.get(aura.at(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }

    let response = aura.http.get(aura.at("/fn/nobody/x")).send().await.unwrap();
    assert!(response.headers().contains_key("x-aura-invocation-id"));
    assert_error(response, 404, "function_not_found").await;
}

#[tokio::test]
async fn echo_sees_method_path_query_headers_and_body() {
    let aura = Aura::start();
    aura.deploy("echo", "echo", json!({})).await;
    let response = aura
        .http
        .put(aura.at("/fn/echo/items/42?x=1&y=two"))
        .header("x-custom", "value-1")
        .body("the body")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/items/42");
    assert_eq!(echo["query"], "x=1&y=two");
    assert_eq!(echo["headers"]["x-custom"], "value-1");
    assert_eq!(echo["body"], "the body");
    assert_eq!(echo["body_len"], 8);
}

#[tokio::test]
async fn request_bodies_stream_into_the_guest() {
    let aura = Aura::start();
    aura.deploy("echo", "echo", json!({})).await;
    // A chunked body of 4 MiB sent in 64 KiB pieces.
    let chunks =
        futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 64 * 1024])));
    let response = aura
        .http
        .post(aura.at("/fn/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["body_len"], 4 * 1024 * 1024);
}

#[tokio::test]
async fn streamed_chunks_arrive_as_they_are_written() {
    let aura = Aura::start();
    aura.deploy("stream", "stream", json!({})).await;
    let started = Instant::now();
    let response = aura
        .http
        .get(aura.at("/fn/stream?n=5&delay_ms=200"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    let mut first_chunk_at = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        first_chunk_at.get_or_insert_with(|| started.elapsed());
        received.extend_from_slice(&chunk);
    }
    let finished_at = started.elapsed();
    let first_chunk_at = first_chunk_at.expect("a chunk");
    assert_eq!(
        String::from_utf8(received).unwrap(),
        "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n"
    );
    // Four 200 ms pauses separate the five chunks: the first must arrive
    // before the guest has finished writing, not with the last.
    assert!(
        finished_at >= Duration::from_millis(800),
        "finished after {finished_at:?}"
    );
    assert!(
        finished_at - first_chunk_at >= Duration::from_millis(600),
        "first chunk at {first_chunk_at:?}, last at {finished_at:?}"
    );
}

#[tokio::test]
async fn two_hundred_concurrent_invocations_all_succeed() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    let requests = (0..200).map(|i| {
        let http = aura.http.clone();
        let url = aura.at(&format!("/fn/hello/{i}"));
        async move {
            let response = http.get(url).send().await.expect("request");
            (
                response.status().as_u16(),
                response.text().await.expect("body"),
            )
        }
    });
    let results = futures::future::join_all(requests).await;
    assert_eq!(results.len(), 200);
    for (status, body) in results {
        assert_eq!((status, body.as_str()), (200, "Hello from Aura!\n"));
    }
}

#[tokio::test]
async fn stdout_and_stderr_are_logged_per_invocation() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    let response = aura
        .http
        .post(aura.at("/fn/hello/logged"))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let record = aura.invocation_log("hello", &id).await;
    assert_eq!(record["function"], "hello");
    assert_eq!(record["version"], 1);
    assert_eq!(record["method"], "POST");
    assert_eq!(record["path"], "/logged");
    assert_eq!(record["status"], 200);
    assert_eq!(record["outcome"], "ok");
    assert_eq!(record["stdout"], "hello: POST /logged\n");
    assert_eq!(record["stderr"], "hello: done\n");
    assert!(record["duration_ms"].as_f64().is_some_and(|d| d > 0.0));
    assert_eq!(aura.metric("aura_instantiate_seconds_count").await, 1);
    assert_eq!(
        aura.metric("aura_invocations_total{outcome=\"ok\"}").await,
        1
    );
}

#[tokio::test]
async fn stats_count_the_last_hours_invocations_and_errors_per_function() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    aura.deploy("trap", "trap", json!({})).await;
    let mut last = String::new();
    for path in ["/fn/hello", "/fn/hello/again", "/fn/trap"] {
        let response = aura.http.get(aura.at(path)).send().await.unwrap();
        last = response.headers()["x-aura-invocation-id"]
            .to_str()
            .unwrap()
            .to_owned();
    }
    // Logs are written in order, so the last one's record means all are in.
    aura.invocation_log("trap", &last).await;
    let (status, stats) = aura.admin_get("/api/admin/stats").await;
    assert_eq!(status, 200);
    assert_eq!(
        (stats["invocations"].as_i64(), stats["errors"].as_i64()),
        (Some(3), Some(1))
    );
    let functions = stats["functions"].as_array().unwrap();
    let counts: Vec<_> = functions
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap(),
                f["invocations"].as_i64().unwrap(),
                f["errors"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [("hello", 2, 0), ("trap", 1, 1)]);
    assert!(functions[0]["mean_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    assert!(stats["since"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn unknown_routes_answer_json_errors() {
    let aura = Aura::start();
    let response = aura.http.get(aura.at("/nowhere")).send().await.unwrap();
    assert_error(response, 404, "not_found").await;
    let response = aura.http.get(aura.at("/api/health")).send().await.unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let response = aura
        .http
        .get(aura.at("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["paths"]["/api/admin/functions/{name}/versions"].is_object(),
        "{doc}"
    );
}
