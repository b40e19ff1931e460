//! Test component `bigout`: streams a response of `size` bytes (query
//! `?size=N`, default 64 MiB) in 64 KiB writes. Used by the end-to-end tests
//! for response size limits and streaming throughput.

use std::io::Write;

use aura_sdk::{Request, Response};

const DEFAULT_SIZE: u64 = 64 * 1024 * 1024;
const WRITE: usize = 64 * 1024;

fn handle(req: Request) -> Response {
    let size = req
        .query_param("size")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SIZE);
    Response::new(200)
        .header("content-type", "application/octet-stream")
        .stream(move |w| {
            let buf = [b'x'; WRITE];
            let mut left = size;
            while left > 0 {
                let n = left.min(WRITE as u64) as usize;
                w.write_all(&buf[..n])?;
                left -= n as u64;
            }
            w.flush()
        })
}

aura_sdk::http_function!(handle);
