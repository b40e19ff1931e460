//! `/api/auth/...`: register, sign in (password, link, code, second step),
//! refresh, sign out, the current user and their sessions, password reset,
//! email verification, two-factor enrollment. Thin: the auth service does
//! the work.

use super::cookies::{self, SessionMode};
use super::{ApiError, AppState};
use crate::auth::totp::Proof;
use crate::auth::{AuthError, Authenticated, Client, Registered, SignIn};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
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
        .route("/api/auth/password/forgot", post(forgot_password))
        .route("/api/auth/password/reset", post(reset_password))
        .route("/api/auth/verify-email/request", post(request_verification))
        .route(
            "/api/auth/verify-email/confirm",
            get(confirm_email_link).post(confirm_email),
        )
        .route("/api/auth/magic-link", post(magic_link))
        .route("/api/auth/magic-link/verify", get(verify_magic_link))
        .route("/api/auth/otp/request", post(request_code))
        .route("/api/auth/otp/verify", post(verify_code))
        .route("/api/auth/2fa/totp/enroll", post(enroll_totp))
        .route("/api/auth/2fa/totp/verify", post(verify_totp))
        .route("/api/auth/2fa/totp/disable", post(disable_totp))
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
            AuthError::InvalidCode => Self::new(StatusCode::UNAUTHORIZED, "invalid_code", message),
            AuthError::TokenReused => Self::new(StatusCode::UNAUTHORIZED, "token_reused", message),
            AuthError::Invalid(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_input", message),
            AuthError::EmailTaken => Self::new(StatusCode::CONFLICT, "email_taken", message),
            AuthError::SessionNotFound => {
                Self::new(StatusCode::NOT_FOUND, "session_not_found", message)
            }
            AuthError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            AuthError::NotVerified => {
                Self::new(StatusCode::FORBIDDEN, "email_not_verified", message)
            }
            AuthError::InvalidState(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_state", message)
            }
            AuthError::OAuthFailed(_) => {
                Self::new(StatusCode::BAD_REQUEST, "oauth_failed", message)
            }
            AuthError::ProviderUnavailable(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "provider_unavailable", message)
            }
            AuthError::AccountExists(_) => {
                Self::new(StatusCode::CONFLICT, "account_exists", message)
            }
            AuthError::RateLimited(seconds) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
                    .with_retry_after(seconds)
            }
            AuthError::Internal(err) => Self::internal(format!("{err:#}")),
        }
    }
}

pub(super) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is not what this route takes: {err}"),
        )
    })
}

/// The client: its user agent and its address (the peer's, or from
/// `X-Forwarded-For` when the peer is a trusted proxy).
pub(super) fn client(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> Client {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    Client {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ip: Some(state.auth.client_ip(peer.ip(), forwarded).to_string()),
    }
}

/// The signed-in user of a request with `Authorization: Bearer <access
/// token>`, with the client's address (for the audit log).
pub(super) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Authenticated, ApiError> {
    let token = super::bearer(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in first: send Authorization: Bearer <access token>",
        )
    })?;
    let mut auth = state.auth.authenticate(token).await?;
    auth.address = client(state, headers, peer).ip;
    Ok(auth)
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
    Query(mode): Query<SessionMode>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    cookies::check_sign_in(&state, &headers, &mode)?;
    let input: Register = body(&bytes)?;
    let tokens = state
        .auth
        .register(
            &input.email,
            &input.password,
            input.name.as_deref(),
            &client(&state, &headers, peer),
        )
        .await?;
    Ok(match tokens {
        Registered::SignedIn(tokens) => {
            cookies::answer(&state, &mode, StatusCode::CREATED, SignIn::Tokens(tokens))
        }
        Registered::Pending => mail_accepted().into_response(),
    })
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
    Query(mode): Query<SessionMode>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    cookies::check_sign_in(&state, &headers, &mode)?;
    let input: Login = body(&bytes)?;
    let answer = state
        .auth
        .login(
            &input.email,
            &input.password,
            &client(&state, &headers, peer),
        )
        .await?;
    Ok(cookies::answer(&state, &mode, StatusCode::OK, answer))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Refresh {
    refresh_token: String,
}

/// Bearer mode: `{refreshToken}`. Cookie mode: no body, the
/// `aura_refresh` cookie (and the CSRF check); the answer sets new cookies.
async fn refresh(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(mode): Query<SessionMode>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let (token, mode) = match cookies::cookie(&state, &headers, cookies::REFRESH) {
        Some(token) if bytes.is_empty() => {
            cookies::check_csrf(&state, &headers)?;
            (token.to_owned(), SessionMode::cookie())
        }
        _ => (body::<Refresh>(&bytes)?.refresh_token, mode),
    };
    let tokens = state
        .auth
        .refresh(&token, &client(&state, &headers, peer))
        .await?;
    Ok(cookies::answer(
        &state,
        &mode,
        StatusCode::OK,
        SignIn::Tokens(tokens),
    ))
}

async fn logout(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    state.auth.logout(&auth).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if cookies::cookie(&state, &headers, cookies::ACCESS).is_some() {
        cookies::cleared(&state, &mut response);
    }
    Ok(response)
}

async fn me(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    Ok(Json(state.auth.me(&auth).await?))
}

async fn sessions(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    Ok(Json(
        json!({ "sessions": state.auth.sessions(&auth).await? }),
    ))
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    state.auth.revoke(&auth, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update_me(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    let changes: serde_json::Value = body(&bytes)?;
    Ok(Json(state.auth.update_profile(&auth, changes).await?))
}

async fn delete_me(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    state.auth.delete_account(&auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/auth/sessions`: sign out everywhere else.
async fn revoke_others(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    let revoked = state.auth.revoke_others(&auth).await?;
    Ok(Json(json!({ "revoked": revoked })))
}

/// What requests that mail someone answer, whether or not the address has
/// an account.
fn mail_accepted() -> impl IntoResponse {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "message": "if the address can receive it, a mail is on its way" })),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailOnly {
    email: String,
}

async fn forgot_password(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: EmailOnly = body(&bytes)?;
    state
        .auth
        .forgot_password(&input.email, &client(&state, &headers, peer))
        .await?;
    Ok(mail_accepted())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    token: String,
    password: String,
}

async fn reset_password(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: Reset = body(&bytes)?;
    state
        .auth
        .reset_password(
            &input.token,
            &input.password,
            &client(&state, &headers, peer),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn request_verification(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    state.auth.request_verification(&auth).await?;
    Ok(mail_accepted())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenOnly {
    token: String,
}

async fn confirm_email(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: TokenOnly = body(&bytes)?;
    Ok(Json(
        state
            .auth
            .confirm_email(&input.token, &client(&state, &headers, peer))
            .await?,
    ))
}

/// `?token=` of a link opened from a mail.
fn token_query(
    query: Result<Query<TokenOnly>, axum::extract::rejection::QueryRejection>,
) -> Result<String, ApiError> {
    query.map(|Query(q)| q.token).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "this link needs ?token= (copy the whole link from the mail)",
        )
    })
}

async fn confirm_email_link(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<TokenOnly>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let token = token_query(query)?;
    Ok(Json(
        state
            .auth
            .confirm_email(&token, &client(&state, &headers, peer))
            .await?,
    ))
}

async fn magic_link(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: EmailOnly = body(&bytes)?;
    state
        .auth
        .send_magic_link(&input.email, &client(&state, &headers, peer))
        .await?;
    Ok(mail_accepted())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkQuery {
    token: String,
    #[serde(default)]
    session: Option<String>,
}

async fn verify_magic_link(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "this link needs ?token= (copy the whole link from the mail)",
        )
    })?;
    let answer = state
        .auth
        .verify_magic_link(&query.token, &client(&state, &headers, peer))
        .await?;
    let mode = SessionMode {
        session: query.session,
    };
    Ok(cookies::answer(&state, &mode, StatusCode::OK, answer))
}

async fn request_code(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: EmailOnly = body(&bytes)?;
    state
        .auth
        .send_code(&input.email, &client(&state, &headers, peer))
        .await?;
    Ok(mail_accepted())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeSignIn {
    email: String,
    code: String,
}

async fn verify_code(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(mode): Query<SessionMode>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    cookies::check_sign_in(&state, &headers, &mode)?;
    let input: CodeSignIn = body(&bytes)?;
    let answer = state
        .auth
        .verify_code(&input.email, &input.code, &client(&state, &headers, peer))
        .await?;
    Ok(cookies::answer(&state, &mode, StatusCode::OK, answer))
}

async fn enroll_totp(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    Ok(Json(state.auth.enroll_totp(&auth).await?))
}

/// A code from the authenticator or a recovery code, and for the second
/// sign-in step its token.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TotpProof {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
    #[serde(default)]
    mfa_token: Option<String>,
}

impl TotpProof {
    fn proof(&self) -> Result<Proof<'_>, ApiError> {
        match (&self.code, &self.recovery_code) {
            (Some(code), None) => Ok(Proof::Code(code)),
            (None, Some(code)) => Ok(Proof::Recovery(code)),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "send either `code` (from the authenticator) or `recoveryCode`",
            )),
        }
    }
}

/// With `mfaToken`: the second sign-in step. Signed in: turns two-factor
/// sign-in on and answers the recovery codes.
async fn verify_totp(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(mode): Query<SessionMode>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<axum::response::Response, ApiError> {
    cookies::check_sign_in(&state, &headers, &mode)?;
    let input: TotpProof = body(&bytes)?;
    let proof = input.proof()?;
    if let Some(token) = &input.mfa_token {
        let tokens = state
            .auth
            .complete_sign_in(token, proof, &client(&state, &headers, peer))
            .await?;
        return Ok(cookies::answer(
            &state,
            &mode,
            StatusCode::OK,
            SignIn::Tokens(tokens),
        ));
    }
    let auth = signed_in(&state, &headers, peer).await?;
    let Proof::Code(code) = proof else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "turning two-factor sign-in on takes a `code` from the authenticator",
        ));
    };
    let codes = state.auth.confirm_totp(&auth, code).await?;
    Ok(Json(json!({ "enabled": true, "recoveryCodes": codes })).into_response())
}

async fn disable_totp(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    let input: TotpProof = body(&bytes)?;
    state.auth.disable_totp(&auth, input.proof()?).await?;
    Ok(StatusCode::NO_CONTENT)
}
