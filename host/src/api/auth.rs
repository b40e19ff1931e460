//! `/api/auth/...`: register, sign in, refresh, sign out, the current user
//! and their sessions. Thin: the auth service does the work.

use super::{ApiError, AppState};
use crate::auth::{AuthError, Authenticated, Client};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/signup", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me).put(update_me).delete(delete_me))
        .route("/api/auth/sessions", get(sessions).delete(revoke_others))
        .route("/api/auth/sessions/{id}", delete(revoke))
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let message = err.to_string();
        match err {
            AuthError::InvalidCredentials => {
                Self::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message)
            }
            AuthError::InvalidToken(_) => {
                Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
            }
            AuthError::TokenReused => Self::new(StatusCode::UNAUTHORIZED, "token_reused", message),
            AuthError::Invalid(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_input", message),
            AuthError::EmailTaken => Self::new(StatusCode::CONFLICT, "email_taken", message),
            AuthError::SessionNotFound => {
                Self::new(StatusCode::NOT_FOUND, "session_not_found", message)
            }
            AuthError::RateLimited(seconds) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
                    .with_retry_after(seconds)
            }
            AuthError::Internal(err) => Self::internal(format!("{err:#}")),
        }
    }
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is not what this route takes: {err}"),
        )
    })
}

/// The client: its user agent and its address (the peer's: behind a proxy,
/// every client shares the proxy's address).
fn client(headers: &HeaderMap, peer: SocketAddr) -> Client {
    Client {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ip: Some(peer.ip().to_string()),
    }
}

/// The signed-in user of a request with `Authorization: Bearer <access token>`.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Authenticated, ApiError> {
    let token = super::bearer(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in first: send Authorization: Bearer <access token>",
        )
    })?;
    Ok(state.auth.authenticate(token).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
}

async fn register(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: Register = body(&bytes)?;
    let tokens = state
        .auth
        .register(
            &input.email,
            &input.password,
            input.name.as_deref(),
            &client(&headers, peer),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(tokens)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: Login = body(&bytes)?;
    Ok(Json(
        state
            .auth
            .login(&input.email, &input.password, &client(&headers, peer))
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Refresh {
    refresh_token: String,
}

async fn refresh(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: Refresh = body(&bytes)?;
    Ok(Json(
        state
            .auth
            .refresh(&input.refresh_token, &client(&headers, peer))
            .await?,
    ))
}

async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers).await?;
    state.auth.logout(&auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers).await?;
    Ok(Json(state.auth.me(&auth).await?))
}

async fn sessions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers).await?;
    Ok(Json(
        json!({ "sessions": state.auth.sessions(&auth).await? }),
    ))
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers).await?;
    state.auth.revoke(&auth, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update_me(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers).await?;
    let changes: serde_json::Value = body(&bytes)?;
    Ok(Json(state.auth.update_profile(&auth, changes).await?))
}

async fn delete_me(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers).await?;
    state.auth.delete_account(&auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/auth/sessions`: sign out everywhere else.
async fn revoke_others(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers).await?;
    let revoked = state.auth.revoke_others(&auth).await?;
    Ok(Json(json!({ "revoked": revoked })))
}
