//! Test component `sleepy`: sleeps `ms` milliseconds (query `?ms=N`, default
//! 1000), then answers 200 `slept`. Checks that time spent sleeping in the
//! host does not count as CPU time. Used by the end-to-end tests.

use std::time::Duration;

use aura_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    let ms = req
        .query_param("ms")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    std::thread::sleep(Duration::from_millis(ms));
    Response::text(200, "slept")
}

aura_sdk::http_function!(handle);
