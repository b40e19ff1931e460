//! `stream`: a streamed text response. Writes `chunk 0\n` .. `chunk {n-1}\n`,
//! flushing each and sleeping `delay_ms` between them, so clients see the
//! chunks arrive one by one. Query: `n` (default 5), `delay_ms` (default 200).

use std::io::Write;
use std::time::Duration;

use aura_sdk::{Request, Response};

/// Returns query parameter `name` parsed as a number, or `default`.
fn param(req: &Request, name: &str, default: u64) -> u64 {
    req.query_param(name)
        .ok()
        .flatten()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn handle(req: Request) -> Response {
    let n = param(&req, "n", 5);
    let delay = Duration::from_millis(param(&req, "delay_ms", 200));
    Response::new(200)
        .header("content-type", "text/plain; charset=utf-8")
        .stream(move |w| {
            for i in 0..n {
                if i > 0 {
                    std::thread::sleep(delay);
                }
                writeln!(w, "chunk {i}")?;
                w.flush()?;
            }
            Ok(())
        })
}

aura_sdk::http_function!(handle);
