//! `ANY /fn/{name}[/{*path}]`: invoke the active version of a function.
//!
//! The request is handed to the guest with its path rewritten to what follows
//! `/fn/{name}`; the guest's response streams back as it is written. Every
//! response, success or error, carries `x-aura-invocation-id`.

use super::{ApiError, AppState};
use crate::runtime::Failure;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The response header naming the invocation.
pub const INVOCATION_ID_HEADER: &str = "x-aura-invocation-id";

pub(super) async fn invoke(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let id = uuid::Uuid::now_v7().to_string();
    let mut response = match run(&state, id.clone(), request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(INVOCATION_ID_HEADER, value);
    }
    response
}

async fn run(state: &AppState, id: String, request: Request) -> Result<Response, ApiError> {
    let (name, path_and_query) = split_path(request.uri()).ok_or_else(ApiError::route_not_found)?;
    let active = state
        .functions
        .active(&name)
        .ok_or_else(|| ApiError::function_not_found(&name))?;
    let (mut parts, body) = request.into_parts();
    let limit = active.limits.max_request_bytes;

    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        let failure = Failure::RequestTooLarge(limit);
        state
            .functions
            .record_refused(&name, active.version, id, &parts, &failure, 413);
        return Err(ApiError::payload_too_large(limit));
    }

    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| ApiError::bad_request("the request URI is not valid"))?;

    let request = http::Request::from_parts(parts, body);
    match state.functions.invoke(&name, &active, id, request).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(failure) => Err(failure_error(&name, &failure)),
    }
}

/// Splits `/fn/{name}/rest?q` into `name` and `/rest?q`.
fn split_path(uri: &Uri) -> Option<(String, String)> {
    let rest = uri.path().strip_prefix("/fn/")?;
    let (name, tail) = match rest.split_once('/') {
        Some((name, tail)) => (name, format!("/{tail}")),
        None => (rest, "/".to_owned()),
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{tail}?{query}"),
        None => tail,
    };
    Some((name.to_owned(), path_and_query))
}

fn failure_error(name: &str, failure: &Failure) -> ApiError {
    let message = format!("function `{name}`: {failure}");
    match failure {
        Failure::Trapped(_) | Failure::NoResponse => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "function_trapped",
            message,
        ),
        Failure::GuestError(_) => ApiError::new(StatusCode::BAD_GATEWAY, "function_error", message),
        Failure::Timeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "function_timeout", message),
        Failure::MemoryLimit(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "function_memory_limit",
            message,
        ),
        Failure::RequestTooLarge(_) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
        }
        Failure::ResponseTooLarge(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "response_too_large",
            message,
        ),
        Failure::Capacity => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "capacity_exhausted",
            message,
        ),
    }
}
