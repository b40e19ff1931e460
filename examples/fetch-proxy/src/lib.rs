//! `fetch-proxy`: fetches the URL given in `?url=` with [`aura_sdk::fetch`]
//! and answers with the upstream body, showing outbound HTTP and how a
//! missing network grant surfaces (`502` with `HttpRequestDenied`).

use aura_sdk::serde_json::json;
use aura_sdk::{OutboundRequest, Request, Response, fetch};

fn handle(req: Request) -> Response {
    if req.method() != "GET" {
        return error(405, "only GET is supported");
    }
    let url = match query_param(req.query().unwrap_or(""), "url") {
        Ok(Some(url)) if !url.is_empty() => url,
        Ok(_) => return error(400, "missing query parameter `url`"),
        Err(e) => return error(400, &e),
    };
    match fetch(OutboundRequest::get(url)) {
        Ok(upstream) => {
            let mut response =
                Response::new(200).header("x-upstream-status", upstream.status().to_string());
            if let Some(content_type) = upstream.header("content-type") {
                response = response.header("content-type", content_type);
            }
            response.body(upstream.into_body())
        }
        Err(e) => error(502, &e.to_string()),
    }
}

/// A `{"error": message}` JSON response.
fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "error": message }))
}

/// The decoded value of the first `name=value` pair in `query`
/// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte).
fn query_param(query: &str, name: &str) -> Result<Option<String>, String> {
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key)? == name {
            return percent_decode(value).map(Some);
        }
    }
    Ok(None)
}

/// Decodes `+` and `%XX` escapes; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| format!("malformed percent escape in `{s}`"))?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("query value `{s}` is not UTF-8"))
}

aura_sdk::http_function!(handle);
