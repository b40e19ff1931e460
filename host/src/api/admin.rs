//! `/api/admin/...`: deploy, list, inspect, roll back and delete functions,
//! and read their invocation logs. Every route requires the admin token.

use super::{ApiError, AppState};
use crate::functions::FunctionError;
use crate::functions::VersionConfig;
use axum::Json;
use axum::Router;
use axum::extract::multipart::{Multipart, MultipartError};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Largest component accepted by deploy.
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/functions", get(list))
        .route("/api/admin/functions/{name}", get(show).delete(delete))
        .route(
            "/api/admin/functions/{name}/versions",
            get(versions)
                .post(deploy)
                .layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .route("/api/admin/functions/{name}/rollback", post(rollback))
        .route("/api/admin/functions/{name}/logs", get(logs))
        .route("/api/admin/stats", get(stats))
}

impl From<FunctionError> for ApiError {
    fn from(err: FunctionError) -> Self {
        match err {
            FunctionError::InvalidName(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", err.to_string())
            }
            FunctionError::InvalidLimits(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_limits", err.to_string())
            }
            FunctionError::InvalidGrants(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_grants", err.to_string())
            }
            FunctionError::InvalidComponent(invalid) => {
                let details = if !invalid.missing_grants.is_empty() {
                    Some(json!({ "missing_grants": invalid.missing_grants }))
                } else if !invalid.unknown_imports.is_empty() {
                    Some(json!({ "unknown_imports": invalid.unknown_imports }))
                } else {
                    None
                };
                let error = ApiError::new(StatusCode::BAD_REQUEST, invalid.code, invalid.message);
                match details {
                    Some(details) => error.with_details(details),
                    None => error,
                }
            }
            FunctionError::InUse(_) => {
                ApiError::new(StatusCode::CONFLICT, "function_in_use", err.to_string())
            }
            FunctionError::NotFound(name) => ApiError::function_not_found(&name),
            FunctionError::VersionNotFound(..) => {
                ApiError::new(StatusCode::NOT_FOUND, "version_not_found", err.to_string())
            }
            FunctionError::NoPreviousVersion(..) => {
                ApiError::new(StatusCode::CONFLICT, "no_previous_version", err.to_string())
            }
            FunctionError::Internal(err) => ApiError::internal(format!("{err:#}")),
        }
    }
}

async fn list(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "functions": state.functions.list().await? })))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.functions.info(&name).await?))
}

async fn versions(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "versions": state.functions.versions(&name).await? }),
    ))
}

async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.functions.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `multipart/form-data` with a `component` file part and an optional
/// `config` JSON part: `{"limits": {...}}`.
async fn deploy(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    mut form: Multipart,
) -> Result<impl IntoResponse, ApiError> {
    let mut component = None;
    let mut config = VersionConfig::default();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("component") => component = Some(field.bytes().await.map_err(multipart_error)?),
            Some("config") => {
                let text = field.text().await.map_err(multipart_error)?;
                config = serde_json::from_str(&text).map_err(|err| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_config",
                        format!("the `config` part is not valid: {err}"),
                    )
                })?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected form field `{}`: expected `component` and optionally `config`",
                    other.unwrap_or("")
                )));
            }
        }
    }
    let component =
        component.ok_or_else(|| ApiError::bad_request("the form has no `component` file part"))?;
    let version = state.functions.deploy(&name, component, config).await?;
    Ok((StatusCode::CREATED, Json(version)))
}

fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the component exceeds the deploy limit of {MAX_COMPONENT_BYTES} bytes"),
        )
    } else {
        ApiError::bad_request(format!(
            "the upload is not valid multipart/form-data: {}",
            err.body_text()
        ))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    version: Option<i64>,
}

async fn rollback(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice::<Option<RollbackRequest>>(&body)
            .map_err(|err| {
                ApiError::bad_request(format!(
                    "the body must be {{\"version\": N}} or empty: {err}"
                ))
            })?
            .unwrap_or_default()
    };
    let to = request.version;
    Ok(Json(state.functions.rollback(&name, to).await?))
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn logs(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    state.functions.info(&name).await?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let records = state
        .functions
        .logs
        .list(&name, query.after, limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "invocations": records })))
}

/// How far back `/api/admin/stats` counts.
const STATS_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Invocations and errors over the last hour, in all and per function.
async fn stats(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let since =
        (chrono::Utc::now() - STATS_WINDOW).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let functions = state
        .functions
        .logs
        .stats_since(&since)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "since": since,
        "invocations": functions.iter().map(|f| f.invocations).sum::<i64>(),
        "errors": functions.iter().map(|f| f.errors).sum::<i64>(),
        "functions": functions,
    })))
}
