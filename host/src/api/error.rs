//! The one error type of the HTTP layer.
//!
//! Every error response has the shape `{"error": {"code", "message", "details"?}}`
//! with a stable machine-readable `code`. Messages are written for the user and
//! never carry internal detail (SQL, paths, backtraces): internal failures are
//! logged with `tracing` and answered with a generic `internal` error.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status code.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `function_not_found`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Optional structured details (e.g. the list of unknown imports).
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A new error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required (Authorization: Bearer <token>)",
        )
    }

    /// 404 `function_not_found`.
    pub fn function_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "function_not_found",
            format!("no function named `{name}` is deployed"),
        )
    }

    /// 404 `not_found` for routes that do not exist.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 500 `internal`, logging the real cause server-side only.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; see the server log",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        use crate::db::DbError as E;
        let message = err.to_string();
        match err {
            E::CollectionNotFound(name) => {
                Self::new(StatusCode::NOT_FOUND, "collection_not_found", message)
                    .with_details(json!({ "collection": name }))
            }
            E::CollectionExists(_) => Self::new(StatusCode::CONFLICT, "collection_exists", message),
            E::InvalidSchema(problems) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_schema", message)
                    .with_details(json!({ "problems": problems }))
            }
            E::Lossy(changes) => Self::new(StatusCode::CONFLICT, "lossy_migration", message)
                .with_details(json!({ "lossy": changes })),
            E::InUse(..) => Self::new(StatusCode::CONFLICT, "collection_in_use", message),
            E::RecordNotFound(..) => Self::new(StatusCode::NOT_FOUND, "record_not_found", message),
            E::Validation(fields) => Self::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "some fields are invalid",
            )
            .with_details(json!({ "fields": fields })),
            E::InvalidBody(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_body", message),
            E::Query {
                param, position, ..
            } => {
                let code = match param {
                    "filter" => "invalid_filter",
                    "sort" => "invalid_sort",
                    "expand" => "invalid_expand",
                    "fields" => "invalid_fields",
                    "cursor" => "invalid_cursor",
                    _ => "invalid_paging",
                };
                let mut details = json!({ "param": param });
                if let Some(position) = position {
                    details["position"] = json!(position);
                }
                Self::new(StatusCode::BAD_REQUEST, code, message).with_details(details)
            }
            E::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            E::Unique(fields) => Self::new(StatusCode::CONFLICT, "unique_violation", message)
                .with_details(json!({ "fields": fields })),
            E::Timeout(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "query_timeout", message),
            E::Busy => Self::new(StatusCode::SERVICE_UNAVAILABLE, "database_busy", message)
                .with_retry_after(1),
            E::Internal(err) if crate::db::backend::missing_table(&err) => Self::new(
                StatusCode::NOT_FOUND,
                "collection_not_found",
                "the collection was deleted while the request was under way",
            ),
            E::Internal(err) => Self::internal(format!("{err:#}")),
        }
    }
}
