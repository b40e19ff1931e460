//! `echo`: answers with a JSON description of the request — method, path,
//! query, headers and body. The body is read as a stream, so large bodies work.

use std::io::Read;

use aura_sdk::serde_json::{Map, Value, json};
use aura_sdk::{Request, Response};

fn handle(req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.path().to_string();
    let query = req.query().map(str::to_string);
    let headers: Map<String, Value> = req
        .headers()
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), Value::from(value.as_str())))
        .collect();

    let mut body = Vec::new();
    let mut reader = req.body_reader();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => return Response::text(400, format!("reading body failed: {e}\n")),
        }
    }

    Response::json(
        200,
        &json!({
            "method": method,
            "path": path,
            "query": query,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
            "body_len": body.len(),
        }),
    )
}

aura_sdk::http_function!(handle);
