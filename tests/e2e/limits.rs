//! Limits: traps, CPU and wall-clock time, memory, body sizes. A misbehaving
//! function must never harm other requests.

use crate::support::{Aura, assert_error};
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn a_trap_is_reported_and_its_stderr_kept() {
    let aura = Aura::start();
    aura.deploy("trap", "trap", json!({})).await;
    let response = aura.http.get(aura.at("/fn/trap")).send().await.unwrap();
    let id = response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_error(response, 500, "function_trapped").await;
    let record = aura.invocation_log("trap", &id).await;
    assert_eq!(record["outcome"], "trapped");
    assert!(
        record["stderr"].as_str().unwrap().contains("about to trap"),
        "{record}"
    );
}

#[tokio::test]
async fn a_looping_function_times_out_while_others_are_served() {
    let aura = Aura::start();
    aura.deploy("spin", "spin", json!({"limits": {"cpu_ms": 1500}}))
        .await;
    aura.deploy("hello", "hello", json!({})).await;

    let spinning = {
        let http = aura.http.clone();
        let url = aura.at("/fn/spin");
        tokio::spawn(async move { http.get(url).send().await.expect("spin request") })
    };
    // While the guest spins, hello keeps answering.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for _ in 0..20 {
        let response = aura.http.get(aura.at("/fn/hello")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(
        !spinning.is_finished(),
        "the spinning request ended before hello was served"
    );
    let response = spinning.await.unwrap();
    let body = assert_error(response, 504, "function_timeout").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("time limit"),
        "{body}"
    );
}

#[tokio::test]
async fn sleeping_is_not_cpu_time_but_counts_against_the_timeout() {
    let aura = Aura::start();
    aura.deploy(
        "sleepy",
        "sleepy",
        json!({"limits": {"cpu_ms": 200, "timeout_ms": 5000}}),
    )
    .await;
    let response = aura
        .http
        .get(aura.at("/fn/sleepy?ms=800"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slept");

    aura.deploy("sleepy", "sleepy", json!({"limits": {"timeout_ms": 300}}))
        .await;
    let response = aura
        .http
        .get(aura.at("/fn/sleepy?ms=2000"))
        .send()
        .await
        .unwrap();
    assert_error(response, 504, "function_timeout").await;
}

#[tokio::test]
async fn a_memory_hog_is_stopped() {
    let aura = Aura::start();
    aura.deploy("memhog", "memhog", json!({"limits": {"memory_mb": 32}}))
        .await;
    aura.deploy("hello", "hello", json!({})).await;
    let response = aura.http.get(aura.at("/fn/memhog")).send().await.unwrap();
    let id = response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = assert_error(response, 500, "function_memory_limit").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("32 MiB"),
        "{body}"
    );
    let record = aura.invocation_log("memhog", &id).await;
    assert_eq!(record["outcome"], "memory_limit");
    let response = aura.http.get(aura.at("/fn/hello")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn request_bodies_over_the_limit_are_refused() {
    let aura = Aura::start();
    aura.deploy(
        "echo",
        "echo",
        json!({"limits": {"max_request_bytes": 1000}}),
    )
    .await;

    // Declared length over the limit: refused before the guest runs.
    let response = aura
        .http
        .post(aura.at("/fn/echo"))
        .body(vec![b'x'; 1001])
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "payload_too_large").await;

    // Chunked body that grows past the limit while the guest reads it.
    let chunks = futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 600])));
    let response = aura
        .http
        .post(aura.at("/fn/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "payload_too_large").await;

    let response = aura
        .http
        .post(aura.at("/fn/echo"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn large_responses_stream_whole() {
    let aura = Aura::start();
    aura.deploy("bigout", "bigout", json!({})).await;
    let size = 64 * 1024 * 1024;
    let response = aura
        .http
        .get(aura.at(&format!("/fn/bigout?size={size}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut total = 0usize;
    while let Some(chunk) = body.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, size);
}

#[tokio::test]
async fn responses_over_the_limit_are_cut_and_logged() {
    let aura = Aura::start();
    aura.deploy(
        "bigout",
        "bigout",
        json!({"limits": {"max_response_bytes": 1048576}}),
    )
    .await;
    let response = aura
        .http
        .get(aura.at("/fn/bigout?size=8388608"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "headers were sent before the limit was reached"
    );
    let id = response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.bytes_stream();
    let mut total = 0usize;
    let mut failed = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => total += chunk.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed,
        "the cut body must end in an error, not look complete"
    );
    assert!(total <= 1048576, "received {total} bytes");
    let record = aura.invocation_log("bigout", &id).await;
    assert_eq!(record["outcome"], "response_too_large");
}

#[tokio::test]
async fn invocations_beyond_the_instance_pool_get_503_and_others_recover() {
    // Four slots: one per function, three per environment. Three sleeping
    // functions of the default environment and one of another fill them.
    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--max-instances", "4"]);
    for name in ["a", "b", "c"] {
        aura.deploy(name, "sleepy", json!({})).await;
    }
    staging(&aura, &["x", "y"], "sleepy").await;
    let slow: Vec<_> = ["/fn/a", "/fn/b", "/fn/c", "/env/staging/fn/x"]
        .into_iter()
        .map(|path| {
            let request = aura.http.get(aura.at(&format!("{path}?ms=1500"))).send();
            tokio::spawn(async move { request.await.expect("request").status().as_u16() })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let y = aura.at("/env/staging/fn/y?ms=1");
    let response = aura.http.get(&y).send().await.unwrap();
    assert_error(response, 503, "capacity_exhausted").await;
    for task in slow {
        assert_eq!(task.await.unwrap(), 200);
    }
    let response = aura.http.get(&y).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "slots are returned when invocations end"
    );
}

/// Creates environment `staging` with `names` deployed from `component`.
async fn staging(aura: &Aura, names: &[&str], component: &str) {
    let (status, body) = aura
        .admin_post("/api/admin/environments", json!({"name": "staging"}))
        .await;
    assert_eq!(status, 201, "{body}");
    for name in names {
        let form = reqwest::multipart::Form::new().part(
            "component",
            reqwest::multipart::Part::bytes(crate::support::wasm(component)).file_name("c.wasm"),
        );
        let deployed = aura
            .http
            .post(aura.at(&format!("/env/staging/api/admin/functions/{name}/versions")))
            .bearer_auth(&aura.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(deployed.status(), 201);
    }
}

/// A flood on one slow function takes only its share of the instance pool
/// (a quarter): another function keeps answering, and past the share the
/// flood's requests wait their turn, then are told the function is busy.
#[tokio::test]
async fn a_flood_on_one_function_leaves_instances_for_the_others() {
    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--max-instances", "8"]);
    aura.deploy("sleepy", "sleepy", json!({})).await;
    aura.deploy("hello", "hello", json!({})).await;
    let flood: Vec<_> = (0..12)
        .map(|_| {
            let request = aura.http.get(aura.at("/fn/sleepy?ms=3000")).send();
            tokio::spawn(request)
        })
        .collect();
    // The flood holds its two slots (and queues the rest) while hello runs.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for _ in 0..10 {
        let response = aura.http.get(aura.at("/fn/hello")).send().await.unwrap();
        assert_eq!(response.status(), 200, "another function still answers");
    }
    let (mut slept, mut busy) = (0, 0);
    for request in flood {
        let response = request.await.unwrap().unwrap();
        if response.status() == 200 {
            slept += 1;
            continue;
        }
        assert_eq!(response.headers()["retry-after"], "1");
        assert_error(response, 503, "function_busy").await;
        busy += 1;
    }
    assert!(slept >= 2 && busy >= 1, "{slept} ran, {busy} were refused");
}

/// Instances hold their memory against one process-wide budget: growth past
/// it fails the invocation with 503 and `Retry-After`, and the memory comes
/// back when the instance ends.
#[tokio::test]
async fn invocations_share_one_memory_budget() {
    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--memory-budget-mb", "48"]);
    aura.deploy("memhog", "memhog", json!({"limits": {"memory_mb": 512}}))
        .await;
    aura.deploy("hello", "hello", json!({})).await;
    for _ in 0..2 {
        let response = aura.http.get(aura.at("/fn/memhog")).send().await.unwrap();
        assert_eq!(response.headers()["retry-after"], "1");
        let body = assert_error(response, 503, "memory_budget_exhausted").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("memory budget"),
            "{body}"
        );
        // Its memory was given back: another function runs.
        let response = aura.http.get(aura.at("/fn/hello")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// Floods on several functions of one environment take at most three
/// quarters of the pool: another environment's functions keep answering.
#[tokio::test]
async fn floods_in_one_environment_leave_instances_for_another() {
    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--max-instances", "8"]);
    for name in ["a", "b", "c", "d"] {
        aura.deploy(name, "sleepy", json!({})).await;
    }
    staging(&aura, &["hello"], "hello").await;
    let flood: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .flat_map(|name| std::iter::repeat_n(*name, 3))
        .map(|name| {
            tokio::spawn(
                aura.http
                    .get(aura.at(&format!("/fn/{name}?ms=2000")))
                    .send(),
            )
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for _ in 0..5 {
        let response = aura
            .http
            .get(aura.at("/env/staging/fn/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "the other environment still answers"
        );
    }
    for request in flood {
        let status = request.await.unwrap().unwrap().status();
        assert!(status == 200 || status == 503, "{status}");
    }
}
