//! `/api/admin/secrets`: set, list (names and versions only), unset, and
//! rotate the master key. Values go in and never come out.

use super::{ApiError, AppState};
use crate::secrets::SecretError;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/secrets", get(list))
        .route("/api/admin/secrets/rotate-key", post(rotate_key))
        .route("/api/admin/secrets/{name}", put(set).delete(unset))
}

impl From<SecretError> for ApiError {
    fn from(err: SecretError) -> Self {
        let message = err.to_string();
        match err {
            SecretError::Invalid(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_secret", message)
            }
            SecretError::NotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "secret_not_found", message)
            }
            SecretError::Rotation(_) => {
                Self::new(StatusCode::CONFLICT, "rotation_unavailable", message)
            }
            SecretError::Internal(err) => Self::internal(format!("{err:#}")),
        }
    }
}

async fn list(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "secrets": state.secrets.list().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Value {
    value: String,
}

async fn set(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The parser's message could quote the value: answer a fixed one.
    let input: Value = serde_json::from_slice(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the body is {\"value\": \"…\"}, the value a JSON string",
        )
    })?;
    Ok(Json(state.secrets.set(&name, &input.value).await?))
}

async fn unset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.secrets.unset(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_key(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.secrets.rotate_key().await?))
}
