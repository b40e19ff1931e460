//! `/api/admin/tokens`: named admin tokens, minted (the token is shown
//! once), listed (names and dates only) and revoked. They work on every
//! node of a shared database (see `admin_tokens`).

use super::{ApiError, AppState};
use crate::admin_tokens::TokenError;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/tokens", get(list).post(create))
        .route("/api/admin/tokens/{name}", delete(revoke))
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        let message = err.to_string();
        match err {
            TokenError::InvalidName(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_name", message)
            }
            TokenError::Exists(_) => Self::new(StatusCode::CONFLICT, "token_exists", message),
            TokenError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "token_not_found", message),
            TokenError::Internal(err) => Self::internal(format!("{err:#}")),
        }
    }
}

async fn list(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "tokens": state.admin.list().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
}

async fn create(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let Create { name } = super::json_body(request, 4 * 1024).await?;
    let (token, named) = state.admin.create(&name).await?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(json!({ "name": named.name, "created": named.created, "token": token })),
    ))
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.admin.revoke(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
