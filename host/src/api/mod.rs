//! The HTTP API: routes, the admin-token guard, and the invoke route.
//!
//! Handlers are thin: they parse and check input, call a service, and map
//! the result to JSON or to an [`ApiError`]. No business rule lives here.

mod accounts;
mod admin;
mod auth;
mod backups;
mod collections;
mod cookies;
mod dashboard;
mod definition;
pub mod environments;
mod error;
mod file_refs;
mod files;
mod form_values;
mod invoke;
mod oauth;
mod realtime;
mod record_form;
mod records;
mod schedules;
mod secrets;
pub mod sign_in;
mod storage;
mod tokens;

pub use error::ApiError;

use crate::db::Database;
use crate::functions::Functions;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::realtime::Broker;
use crate::scheduler::Scheduler;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use std::sync::Arc;

/// The services of one environment: the state of its handlers.
pub struct AppState {
    /// The environment's name.
    pub environment: String,
    /// The functions service.
    pub functions: Arc<Functions>,
    /// The database service.
    pub db: Arc<Database>,
    /// The auth service.
    pub auth: Arc<crate::auth::Auth>,
    /// The audit log.
    pub audit: Arc<crate::audit::AuditLog>,
    /// The scheduler.
    pub scheduler: Arc<Scheduler>,
    /// The queue of asynchronous invocations.
    pub queue: Arc<Queue>,
    /// Buckets and objects.
    pub storage: Arc<crate::storage::Storage>,
    /// The realtime event broker.
    pub realtime: Arc<Broker>,
    /// Who is on which channel.
    pub presence: Arc<crate::realtime::presence::Presence>,
    /// The secrets.
    pub secrets: Arc<crate::secrets::Secrets>,
    /// Backups of this node's data.
    pub backups: Arc<crate::backup::Backups>,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
    /// The admin credentials (the same in every environment).
    pub admin: Arc<crate::admin_tokens::AdminTokens>,
    /// Held while the definition changes as a whole (push, rollback).
    pub applying: tokio::sync::Mutex<()>,
}

/// The OpenAPI document of the REST API.
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    let admin = admin::routes()
        .merge(schedules::routes())
        .merge(collections::routes())
        .merge(storage::routes())
        .merge(secrets::routes())
        .merge(tokens::routes())
        .merge(definition::routes())
        .route("/api/admin/audit", get(audit))
        .merge(backups::routes())
        .route("/api/admin/realtime/rules", get(realtime::rules))
        .route(
            "/api/admin/realtime/rules/{pattern}",
            axum::routing::put(realtime::put_rule).delete(realtime::delete_rule),
        )
        .merge(accounts::routes())
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route("/fn/{name}", any(invoke::invoke))
        .route("/fn/{name}/", any(invoke::invoke))
        .route("/fn/{name}/{*path}", any(invoke::invoke))
        .route("/api/invocations/{id}", get(invoke::status))
        .route("/api/realtime", get(realtime::subscribe))
        .route(
            "/api/realtime/channels/{channel}",
            axum::routing::post(realtime::publish),
        )
        .route("/api/realtime/presence/{channel}", get(realtime::members))
        .route(
            "/api/realtime/members/{connection}",
            axum::routing::put(realtime::update_member),
        )
        .route(
            "/api/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/api/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .merge(records::routes())
        .merge(files::routes())
        .merge(auth::routes())
        .merge(oauth::routes())
        .merge(admin)
        .fallback(|| async { ApiError::route_not_found() })
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), audit_admin))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            cookies::cookie_auth,
        ))
        .layer(state.auth.cors())
        .with_state(state)
}

/// Rewraps the plain-text errors of axum's own extractors (a body over its
/// limit, a query, path or form that does not parse, a wrong content type)
/// as the API's JSON errors, keeping their status and headers. Functions'
/// answers (`/fn/…`) pass as they are.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let function = request.uri().path().starts_with("/fn/");
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if function || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let rewrapped = ApiError::new(status, code, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (new_parts, body) = rewrapped.into_parts();
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, body)
}

/// A JSON body of at most `limit` bytes: 413 `payload_too_large` past it
/// (reading stops there), 400 `invalid_body` when it is not a `T`.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request,
    limit: usize,
) -> Result<T, ApiError> {
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::payload_too_large(limit as u64))?;
    serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is not what this route takes: {err}"),
        )
    })
}

/// `GET /api/admin/audit?event=&user=&before=&limit=`: newest first.
async fn audit(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(mut filter): axum::extract::Query<crate::audit::Filter>,
) -> Result<impl IntoResponse, ApiError> {
    // Stored times have one form; `since` is compared in it.
    if let Some(since) = &filter.since {
        let parsed = chrono::DateTime::parse_from_rfc3339(since).map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("`since` must be an RFC 3339 time (2026-11-24T12:00:00Z), not `{since}`"),
            )
        })?;
        filter.since = Some(crate::db::values::format_time(
            parsed.with_timezone(&chrono::Utc),
        ));
    }
    let entries = state
        .audit
        .read(&filter)
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::Json(serde_json::json!({ "entries": entries })))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Rejects requests without `Authorization: Bearer <admin token>`.
async fn require_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if state.is_admin(bearer(request.headers())).await {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// Records every successful change made with the admin token to the
/// platform's definitions (`/api/admin/…`, collection schemas) or to
/// `users` records (roles), as `admin_action` with its method and path.
/// Bodies are not recorded (a secret's value is in one).
async fn audit_admin(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let audited = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
        && (path.starts_with("/api/admin/")
            || (path.starts_with("/api/collections")
                && (!path.contains("/records")
                    || path.starts_with("/api/collections/users/records"))))
        && state.is_admin(bearer(request.headers())).await;
    let response = next.run(request).await;
    if audited && response.status().is_success() {
        state.audit.record(
            "admin_action",
            None,
            None,
            serde_json::json!({ "method": method.as_str(), "path": path, "status": response.status().as_u16() }),
        );
    }
    response
}

/// The bearer token of a request, if any.
pub(super) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    // The scheme is case-insensitive (RFC 9110).
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl AppState {
    /// The path prefix that reaches this environment: `/env/NAME`, or
    /// nothing for the default one (for URLs the API hands out).
    pub(super) fn path_prefix(&self) -> String {
        match self.environment.as_str() {
            crate::environments::DEFAULT => String::new(),
            name => format!("/env/{name}"),
        }
    }

    /// Whether `token` is an admin token.
    async fn is_admin(&self, token: Option<&str>) -> bool {
        match token {
            Some(token) => self.admin.is_admin(token).await,
            None => false,
        }
    }

    /// Who a request presenting `token` acts for: the admin token means
    /// service access; a user's access token means that user; no token
    /// means nobody signed in; any other token is refused.
    pub(super) async fn caller(&self, token: Option<&str>) -> Result<crate::db::Caller, ApiError> {
        match token {
            None => Ok(crate::db::Caller::ANONYMOUS),
            Some(_) if self.is_admin(token).await => Ok(crate::db::Caller::Service),
            Some(token) => Ok(crate::db::Caller::User(Some(
                self.auth.authenticate(token).await?.user,
            ))),
        }
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
