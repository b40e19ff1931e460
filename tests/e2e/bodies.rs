//! Every route bounds the body it reads and answers errors in JSON: each
//! operation of the OpenAPI document that takes a body is sent a 64 MiB
//! one, without a token, and must answer before taking most of it.

use crate::support::Aura;
use futures::StreamExt as _;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const SENT: u64 = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// A `SENT`-byte body that counts what the server has taken.
fn counted_body(taken: Arc<AtomicU64>) -> reqwest::Body {
    let chunks = (SENT / CHUNK as u64) as usize;
    let stream = futures::stream::iter(0..chunks).map(move |_| {
        taken.fetch_add(CHUNK as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(vec![b'{'; CHUNK])
    });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn every_route_bounds_its_body_and_answers_errors_in_json() {
    let aura = Aura::start();
    let document: Value = serde_json::from_str(include_str!("../../docs/openapi.json"))
        .expect("the OpenAPI document");
    let mut checked = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["post", "put", "patch"] {
            if item
                .get(method)
                .and_then(|op| op.get("requestBody"))
                .is_none()
            {
                continue;
            }
            let url: String = path
                .split('/')
                .map(|part| if part.starts_with('{') { "x" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            let taken = Arc::new(AtomicU64::new(0));
            let answer = aura
                .http
                .request(method.to_uppercase().parse().unwrap(), aura.at(&url))
                .header("content-type", "application/json")
                .body(counted_body(taken.clone()))
                .send()
                .await;
            let taken = taken.load(Ordering::Relaxed);
            assert!(
                taken < SENT / 2,
                "{method} {path} read {taken} bytes of a {SENT}-byte body"
            );
            // The server may close the connection while the body is still
            // being sent; when the answer arrives, it is a JSON error.
            if let Ok(response) = answer {
                let status = response.status();
                assert!(status.is_client_error(), "{method} {path}: {status}");
                if !path.starts_with("/fn/") {
                    let body: Value = response.json().await.unwrap_or_else(|err| {
                        panic!("{method} {path}: {status} is not JSON: {err}")
                    });
                    assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
                }
            }
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(checked.len() > 20, "{checked:?}");
}

/// Refused requests are the client's business: the server log holds no
/// error for them, on the API port or the S3 port.
#[tokio::test]
async fn refusals_are_not_logged_as_errors() {
    let aura = Aura::start();
    for url in [
        aura.at("/api/collections/missing/records"),
        aura.at("/api/collections/missing/records?filter=%28"),
        aura.at("/fn/missing"),
        format!("{}/bucket/key", aura.s3_url),
        format!("{}/", aura.s3_url),
    ] {
        let status = aura.http.get(&url).send().await.unwrap().status();
        assert!(status.is_client_error(), "{url}: {status}");
    }
    let put = format!("{}/bucket/key", aura.s3_url);
    let status = aura.http.put(&put).body("x").send().await.unwrap().status();
    assert!(status.is_client_error(), "{status}");
    let log = aura.log();
    assert!(!log.contains("ERROR"), "{log}");
}
