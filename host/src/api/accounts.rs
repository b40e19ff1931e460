//! `/api/admin/...` over accounts: the users' sessions (list, revoke),
//! locked accounts (list, unlock), the access-token signing keys (rotate,
//! retire) and the dev outbox. The admin token is required (the caller
//! wraps these routes).

use super::{ApiError, AppState};
use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/outbox", get(outbox))
        .route("/api/admin/auth/keys", get(signing_keys).post(rotate_key))
        .route("/api/admin/auth/keys/{kid}", delete(retire_key))
        .route("/api/admin/auth/lockouts", get(lockouts))
        .route("/api/admin/auth/lockouts/{account}", delete(unlock))
        .route(
            "/api/admin/users/{id}/sessions",
            get(user_sessions).delete(revoke_all),
        )
        .route(
            "/api/admin/users/{id}/sessions/{session}",
            delete(revoke_one),
        )
}

/// `GET /api/admin/users/{id}/sessions`: the user's open sessions.
async fn user_sessions(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "sessions": state.auth.user_sessions(&id).await? }),
    ))
}

/// `DELETE /api/admin/users/{id}/sessions`: signs the user out everywhere.
async fn revoke_all(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let ip = super::auth::client(&state, &headers, peer).ip;
    let revoked = state
        .auth
        .revoke_user_sessions(&id, None, ip.as_deref())
        .await?;
    Ok(Json(json!({ "revoked": revoked })))
}

/// `DELETE /api/admin/users/{id}/sessions/{session}`: ends one session.
async fn revoke_one(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, session)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let ip = super::auth::client(&state, &headers, peer).ip;
    state
        .auth
        .revoke_user_sessions(&id, Some(&session), ip.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/admin/auth/lockouts`: accounts locked after failed sign-ins.
async fn lockouts(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(json!({ "lockouts": state.auth.lockouts() }))
}

/// `DELETE /api/admin/auth/lockouts/{account}`: unlocks an account now.
async fn unlock(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if state.auth.unlock(&account) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_locked",
            format!("`{account}` is not locked"),
        ))
    }
}

/// `GET /api/admin/auth/keys`: the access-token signing keys.
async fn signing_keys(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "keys": state.auth.signing_keys().await? })))
}

/// `POST /api/admin/auth/keys`: a new key signs from now on.
async fn rotate_key(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let kid = state.auth.rotate_key().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "kid": kid, "active": true })),
    ))
}

/// `DELETE /api/admin/auth/keys/{kid}`: tokens signed with it stop working.
async fn retire_key(
    State(state): State<Arc<AppState>>,
    Path(kid): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.auth.retire_key(&kid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/admin/outbox`: auth mail kept instead of sent, newest first.
async fn outbox(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let messages = state.auth.outbox().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "outbox_not_kept",
            "mail goes to the configured SMTP server; the outbox is kept only without one",
        )
    })?;
    Ok(Json(json!({ "messages": messages })))
}
