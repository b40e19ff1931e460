//! Browser sessions in cookies, as an alternative to bearer tokens.
//!
//! A sign-in with `?session=cookie` answers the user and a CSRF token, and
//! sets three cookies instead of returning tokens: `aura_access` (the access
//! token, HttpOnly), `aura_refresh` (the refresh token, HttpOnly, sent only
//! to `/api/auth`) and `aura_csrf` (readable by the page). All are
//! `SameSite=Lax`, and `Secure` when the public URL is https.
//!
//! A request with no `Authorization` header but an `aura_access` cookie acts
//! as that token ([`cookie_auth`] turns it into the header). If it changes
//! state (any method but GET, HEAD, OPTIONS) it must pass the CSRF check:
//! its `Origin`, when sent, is an allowed origin, and its `X-CSRF-Token`
//! header equals the `aura_csrf` cookie (double submit).

use super::{ApiError, AppState, constant_time_eq};
use crate::auth::{SignIn, Tokens};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The access token's cookie.
pub const ACCESS: &str = "aura_access";
/// The refresh token's cookie.
pub const REFRESH: &str = "aura_refresh";
/// The CSRF token's cookie.
pub const CSRF: &str = "aura_csrf";
/// The header that must repeat the CSRF cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `?session=cookie` on a sign-in route.
#[derive(Debug, Default, Deserialize)]
pub struct SessionMode {
    /// `cookie` for cookies; anything else (or nothing) for bearer tokens.
    pub session: Option<String>,
}

impl SessionMode {
    /// Cookie mode.
    pub fn cookie() -> Self {
        Self {
            session: Some("cookie".into()),
        }
    }

    fn cookies(&self) -> bool {
        self.session.as_deref() == Some("cookie")
    }
}

/// The name cookie `base` has in `state`'s environment: `base` in the
/// default one, `base.NAME` in environment NAME, so a browser signed in to
/// one environment never presents that session to another.
fn cookie_name(state: &AppState, base: &str) -> String {
    match state.environment.as_str() {
        crate::environments::DEFAULT => base.to_owned(),
        name => format!("{base}.{name}"),
    }
}

/// Cookie `base`'s value in a request to `state`'s environment.
pub fn cookie<'a>(state: &AppState, headers: &'a HeaderMap, base: &str) -> Option<&'a str> {
    let name = cookie_name(state, base);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name.as_str())
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value (`Secure` when the public URL is https). In an
/// environment other than the default one, the cookie has that
/// environment's name ([`cookie_name`]) and `path` is under its
/// `/env/{name}` prefix: browsers use such sessions through the prefix.
pub fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    http_only: bool,
) -> HeaderValue {
    let secure = if state.auth.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let http_only = if http_only { "; HttpOnly" } else { "" };
    let prefix = state.path_prefix();
    let path = match path {
        "/" if !prefix.is_empty() => prefix,
        path => format!("{prefix}{path}"),
    };
    let name = cookie_name(state, name);
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Lax{http_only}{secure}"
    ))
    .expect("cookie values are URL-safe")
}

/// The answer to a sign-in: tokens in the body (bearer mode), or cookies
/// and a CSRF token (cookie mode).
pub fn answer(
    state: &AppState,
    mode: &SessionMode,
    status: StatusCode,
    answer: SignIn,
) -> Response {
    match answer {
        SignIn::Tokens(tokens) if mode.cookies() => with_cookies(state, status, tokens),
        other => (status, Json(other)).into_response(),
    }
}

fn with_cookies(state: &AppState, status: StatusCode, tokens: Tokens) -> Response {
    use base64::Engine as _;
    let csrf = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let session_seconds = crate::auth::SESSION_TTL_DAYS * 24 * 60 * 60;
    let mut response = (
        status,
        Json(json!({
            "user": tokens.user,
            "csrfToken": csrf,
            "expiresIn": tokens.expires_in,
        })),
    )
        .into_response();
    let headers = response.headers_mut();
    for cookie in [
        set_cookie(
            state,
            ACCESS,
            &tokens.access_token,
            "/",
            tokens.expires_in,
            true,
        ),
        set_cookie(
            state,
            REFRESH,
            &tokens.refresh_token,
            "/api/auth",
            session_seconds,
            true,
        ),
        set_cookie(state, CSRF, &csrf, "/", session_seconds, false),
    ] {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// Headers that clear the session cookies (sign-out).
pub fn cleared(state: &AppState, response: &mut Response) {
    for (name, path, http_only) in [
        (ACCESS, "/", true),
        (REFRESH, "/api/auth", true),
        (CSRF, "/", false),
    ] {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, name, "", path, 0, http_only),
        );
    }
}

/// The CSRF check of a cookie-authenticated request that changes state.
/// A sign-in that would set cookies must send its body as JSON and, when
/// it names an `Origin`, come from an allowed one: a form or `text/plain`
/// post from another site (which browsers send without asking) cannot
/// sign the browser in to an account of the attacker's (login CSRF).
pub fn check_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    mode: &SessionMode,
) -> Result<(), ApiError> {
    if !mode.cookies() {
        return Ok(());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a sign-in with ?session=cookie sends its body as application/json",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !state.auth.origin_allowed(origin)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            format!("a cookie sign-in from {origin} was refused: it is not an allowed origin"),
        ));
    }
    Ok(())
}

pub fn check_csrf(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            format!("a cookie session's change was refused: {why}"),
        )
    };
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !state.auth.origin_allowed(origin)
    {
        return Err(refused("its Origin is not an allowed origin"));
    }
    let expected = cookie(state, headers, CSRF).ok_or_else(|| refused("no aura_csrf cookie"))?;
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refused("send the aura_csrf cookie's value in X-CSRF-Token"))?;
    if !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        return Err(refused("X-CSRF-Token does not match the aura_csrf cookie"));
    }
    Ok(())
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Turns an `aura_access` cookie into `Authorization: Bearer`, after the
/// CSRF check for requests that change state.
pub async fn cookie_auth(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if headers.contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let Some(token) = cookie(&state, headers, ACCESS).map(str::to_owned) else {
        return next.run(request).await;
    };
    if changes_state(request.method())
        && let Err(err) = check_csrf(&state, request.headers())
    {
        return err.into_response();
    }
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    next.run(request).await
}
