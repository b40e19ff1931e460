//! `/api/admin/schedules/...`: create, list, pause, resume, run and remove
//! cron schedules, and read their run history. Admin token required.

use super::{ApiError, AppState};
use crate::scheduler::{ScheduleError, ScheduleSpec};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/schedules", get(list))
        .route(
            "/api/admin/schedules/{name}",
            get(show).put(put).delete(remove),
        )
        .route("/api/admin/schedules/{name}/pause", post(pause))
        .route("/api/admin/schedules/{name}/resume", post(resume))
        .route("/api/admin/schedules/{name}/run", post(run_now))
        .route("/api/admin/schedules/{name}/runs", get(runs))
}

impl From<ScheduleError> for ApiError {
    fn from(err: ScheduleError) -> Self {
        match err {
            ScheduleError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_schedule", err.to_string())
            }
            ScheduleError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "schedule_not_found", err.to_string())
            }
            ScheduleError::FunctionNotFound(name) => ApiError::function_not_found(&name),
            ScheduleError::Internal(err) => ApiError::internal(err),
        }
    }
}

async fn list(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "schedules": state.scheduler.list().await? })))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.scheduler.get(&name).await?))
}

async fn put(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let spec: ScheduleSpec = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_schedule",
            format!("the body is not a valid schedule: {err}"),
        )
    })?;
    Ok(Json(state.scheduler.put(&name, spec).await?))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.scheduler.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.scheduler.set_paused(&name, true).await?))
}

async fn resume(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.scheduler.set_paused(&name, false).await?))
}

async fn run_now(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.scheduler.run_now(&name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "schedule": name, "started": true })),
    ))
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    limit: Option<i64>,
}

async fn runs(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<RunsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    Ok(Json(
        json!({ "runs": state.scheduler.runs(&name, limit).await? }),
    ))
}
