//! `/api/auth/oauth/...` and `/api/auth/identities`: signing in with
//! OAuth / OpenID Connect providers (see [`crate::auth::oauth`]).

use super::auth::{body, client, signed_in};
use super::cookies::{self, SessionMode};
use super::{ApiError, AppState};
use crate::auth::oauth::{Callback, Start};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// The cookie binding a sign-in under way to the browser that started it.
const BINDING: &str = "aura_oauth";
/// The binding cookie's path: only the start and the callback see it.
const BINDING_PATH: &str = "/api/auth/oauth";

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/auth/oauth", get(providers))
        .route("/api/auth/oauth/exchange", post(exchange))
        .route("/api/auth/oauth/{provider}", get(start))
        .route("/api/auth/oauth/{provider}/callback", get(callback))
        .route("/api/auth/identities", get(identities))
        .route("/api/auth/identities/{provider}", delete(unlink))
}

async fn providers(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(json!({ "providers": state.auth.oauth_providers() }))
}

fn redirect(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn start(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Start>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(start) = query.map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!(
                "{}; this route takes ?redirect_to= and ?code_challenge=",
                err.body_text()
            ),
        )
    })?;
    let started = state
        .auth
        .start_oauth(&provider, &start, &client(&state, &headers, peer))
        .await?;
    let mut response = redirect(&started.location);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::set_cookie(&state, BINDING, &started.binding, BINDING_PATH, 600, true),
    );
    Ok(response)
}

/// Sends the browser on to the app: with `?code=`, or with `?error=` and
/// `?error_description=`. A callback whose state can't be trusted answers
/// the error itself, since its app URL can't be trusted either.
async fn callback(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let finished = state
        .auth
        .finish_oauth(
            &provider,
            &answer,
            cookies::cookie(&state, &headers, BINDING),
            &client(&state, &headers, peer),
        )
        .await;
    let mut response = match finished {
        Ok(location) => redirect(&location),
        Err(failure) => {
            let error = ApiError::from(failure.error);
            match failure.redirect_to.and_then(|to| url::Url::parse(&to).ok()) {
                Some(mut url) => {
                    url.query_pairs_mut()
                        .append_pair("error", error.code)
                        .append_pair("error_description", &error.message);
                    redirect(url.as_str())
                }
                None => error.into_response(),
            }
        }
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::set_cookie(&state, BINDING, "", BINDING_PATH, 0, true),
    );
    response
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Exchange {
    code: String,
    #[serde(default)]
    code_verifier: Option<String>,
}

async fn exchange(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(mode): Query<SessionMode>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    cookies::check_sign_in(&state, &headers, &mode)?;
    let input: Exchange = body(&bytes)?;
    let answer = state
        .auth
        .exchange_oauth(
            &input.code,
            input.code_verifier.as_deref(),
            &client(&state, &headers, peer),
        )
        .await?;
    Ok(cookies::answer(&state, &mode, StatusCode::OK, answer))
}

async fn identities(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    Ok(Json(
        json!({ "identities": state.auth.identities(&auth).await? }),
    ))
}

async fn unlink(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let auth = signed_in(&state, &headers, peer).await?;
    state.auth.unlink(&auth, &provider).await?;
    Ok(StatusCode::NO_CONTENT)
}
