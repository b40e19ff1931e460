//! `fetch-proxy`: fetches the URL given in `?url=` with [`aura_sdk::fetch`]
//! and answers with the upstream body, showing outbound HTTP and how a
//! missing network grant surfaces (`502` with `HttpRequestDenied`).

use aura_sdk::serde_json::json;
use aura_sdk::{OutboundRequest, Request, Response, fetch};

fn handle(req: Request) -> Response {
    if req.method() != "GET" {
        return error(405, "only GET is supported");
    }
    let url = match req.query_param("url") {
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

aura_sdk::http_function!(handle);
