//! `ANY /fn/{name}[/{*path}]`: invoke the active version of a function.
//!
//! The request is handed to the guest with its path rewritten to what follows
//! `/fn/{name}`; the guest's response streams back as it is written. Every
//! response, success or error, carries `x-aura-invocation-id`.

use super::{ApiError, AppState};
use crate::db::Caller;
use crate::queue::{Accepted, QueueError, Queued};
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
    let respond_async = parts
        .headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        });

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

    if respond_async {
        return enqueue(state, id, name, path_and_query, parts, body, limit).await;
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

    // The function's database calls act for the caller. A token that is
    // not Aura's is the function's business: it runs for nobody then.
    let caller = super::records::caller(state, &parts.headers)
        .await
        .unwrap_or(Caller::ANONYMOUS);
    parts.extensions.insert(caller);
    let request = http::Request::from_parts(parts, body);
    match state.functions.invoke(&name, &active, id, request).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(failure) => Err(failure_error(&name, &failure)),
    }
}

/// Stores the request in the durable queue and answers 202 with where to
/// find the result.
async fn enqueue(
    state: &AppState,
    id: String,
    function: String,
    path_and_query: String,
    parts: http::request::Parts,
    body: Body,
    limit: u64,
) -> Result<Response, ApiError> {
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit_usize))
        .await
        .map_err(|_| ApiError::payload_too_large(limit))?
        .to_bytes();
    // Credentials are not kept: the caller they name is.
    let caller = super::records::caller(state, &parts.headers)
        .await
        .unwrap_or(Caller::ANONYMOUS);
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| {
            ![header::HOST, header::AUTHORIZATION, header::COOKIE].contains(*name)
                && *name != "prefer"
        })
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    state
        .queue
        .enqueue(Queued {
            id: id.clone(),
            function,
            method: parts.method.to_string(),
            path: path_and_query,
            headers,
            body,
            caller,
        })
        .await?;
    let status_url = format!("{}/api/invocations/{id}", state.path_prefix());
    let accepted = Accepted {
        id,
        status: "queued",
        status_url: status_url.clone(),
    };
    Ok((
        StatusCode::ACCEPTED,
        [
            (header::LOCATION, status_url),
            (
                header::HeaderName::from_static("preference-applied"),
                "respond-async".to_owned(),
            ),
        ],
        axum::Json(accepted),
    )
        .into_response())
}

/// `GET /api/invocations/{id}`: an asynchronous invocation's status and,
/// once finished, its stored response. The id is the capability: it is
/// random and only its creator learned it.
pub(super) async fn status(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.queue.get(&id).await?).into_response())
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Full(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                err.to_string(),
            ),
            QueueError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "invocation_not_found",
                err.to_string(),
            ),
            QueueError::Internal(err) => ApiError::internal(err),
        }
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
        Failure::MemoryBudget => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory_budget_exhausted",
            message,
        )
        .with_retry_after(1),
        Failure::Busy(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "function_busy", message)
                .with_retry_after(1)
        }
    }
}
