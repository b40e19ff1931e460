//! Choosing the environment of a request, and the environments' admin API.
//!
//! A request names its environment with the path prefix `/env/{name}/…`
//! (which is removed before routing) or with the header `x-aura-env: name`;
//! the prefix wins when both are given. A request naming none goes to the
//! default environment. Every environment answers the same routes.

use super::sign_in::{self, SignInCodes};
use super::{ApiError, bearer};
use crate::environments::{CreateError, DEFAULT, Environments};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use tower::ServiceExt as _;

/// The header naming a request's environment.
pub const HEADER: &str = "x-aura-env";

/// The router of the whole server: the environments' admin API, and every
/// other request handed to its environment's router.
pub fn router(environments: Arc<Environments>, codes: Arc<SignInCodes>) -> Router {
    let routers: Arc<std::sync::RwLock<std::collections::HashMap<String, Router>>> = Arc::default();
    Router::new()
        .route("/api/admin/environments", get(list).post(create))
        .route("/api/admin/dashboard/links", post(issue_link))
        .route("/api/dashboard/exchange", post(exchange))
        .merge(super::dashboard::routes())
        // The environments' own routers rewrap their errors themselves.
        .layer(axum::middleware::from_fn(super::json_errors))
        .fallback(dispatch)
        .with_state(Dispatch {
            environments,
            routers,
            codes,
        })
}

/// The environments and, built once each, their routers.
#[derive(Clone)]
struct Dispatch {
    environments: Arc<Environments>,
    routers: Arc<std::sync::RwLock<std::collections::HashMap<String, Router>>>,
    codes: Arc<SignInCodes>,
}

impl Dispatch {
    fn router(&self, name: &str) -> Option<Router> {
        if let Some(router) = self
            .routers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Some(router.clone());
        }
        let state = self.environments.get(name)?;
        let router = super::router(state);
        self.routers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), router.clone());
        Some(router)
    }

    async fn is_admin(&self, request: &axum::http::HeaderMap) -> bool {
        match bearer(request) {
            Some(token) => self.environments.admin().is_admin(token).await,
            None => false,
        }
    }
}

/// The environment a path names with `/env/{name}`, and the path without
/// that prefix.
fn split_prefix(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/env/")?;
    match rest.find('/') {
        Some(slash) => Some((&rest[..slash], &rest[slash..])),
        None => Some((rest, "/")),
    }
}

async fn dispatch(State(dispatch): State<Dispatch>, mut request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let (name, rest) = match split_prefix(&path) {
        Some((name, rest)) => (name.to_owned(), Some(rest.to_owned())),
        None => match request.headers().get(HEADER) {
            Some(value) => match value.to_str() {
                Ok(name) => (name.trim().to_owned(), None),
                Err(_) => (String::new(), None),
            },
            None => (DEFAULT.to_owned(), None),
        },
    };
    let Some(router) = dispatch.router(&name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "environment_not_found",
            format!("there is no environment `{name}` (GET /api/admin/environments lists them)"),
        )
        .into_response();
    };
    if let Some(rest) = rest {
        let uri = match request.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest,
        };
        match uri.parse::<Uri>() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return ApiError::route_not_found().into_response(),
        }
    }
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// `GET /api/admin/environments`.
async fn list(State(dispatch): State<Dispatch>, request: Request) -> Response {
    if !dispatch.is_admin(request.headers()).await {
        return ApiError::unauthorized().into_response();
    }
    let environments: Vec<_> = dispatch
        .environments
        .names()
        .into_iter()
        .map(|name| serde_json::json!({ "name": name, "default": name == DEFAULT }))
        .collect();
    axum::Json(serde_json::json!({ "environments": environments })).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
}

/// `POST /api/admin/environments {"name"}`: creates an empty environment.
async fn create(State(dispatch): State<Dispatch>, request: Request) -> Response {
    if !dispatch.is_admin(request.headers()).await {
        return ApiError::unauthorized().into_response();
    }
    let CreateRequest { name } = match super::json_body(request, 16 * 1024).await {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    match dispatch.environments.create(&name).await {
        Ok(_) => {
            if let Some(default) = dispatch.environments.get(DEFAULT) {
                default.audit.record(
                    "environment_created",
                    None,
                    None,
                    serde_json::json!({ "environment": name }),
                );
            }

            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({ "name": name, "default": false })),
            )
                .into_response()
        }
        Err(err @ CreateError::InvalidName(_)) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", err.to_string()).into_response()
        }
        Err(err @ CreateError::Exists(_)) => {
            ApiError::new(StatusCode::CONFLICT, "environment_exists", err.to_string())
                .into_response()
        }
        Err(err @ CreateError::Open(..)) => ApiError::internal(err).into_response(),
    }
}

/// `POST /api/admin/dashboard/links`: a one-time sign-in link.
async fn issue_link(State(dispatch): State<Dispatch>, request: Request) -> Response {
    if !dispatch.is_admin(request.headers()).await {
        return ApiError::unauthorized().into_response();
    }
    let code = dispatch.codes.issue(sign_in::LINK_LIFETIME);
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({
            "path": sign_in::link_path(&code),
            "expiresIn": sign_in::LINK_LIFETIME.as_secs(),
        })),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeRequest {
    code: String,
}

/// `POST /api/dashboard/exchange {"code"}`: the admin token, once per code.
async fn exchange(State(dispatch): State<Dispatch>, request: Request) -> Response {
    let ExchangeRequest { code } = match super::json_body(request, 16 * 1024).await {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = dispatch.codes.redeem(&code) {
        return err.into_response();
    }
    if let Some(default) = dispatch.environments.get(DEFAULT) {
        default
            .audit
            .record("dashboard_link_used", None, None, serde_json::json!({}));
    }
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "token": dispatch.environments.admin().root() })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::split_prefix;

    #[test]
    fn the_prefix_names_the_environment_and_is_removed() {
        assert_eq!(split_prefix("/env/dev/api/x"), Some(("dev", "/api/x")));
        assert_eq!(split_prefix("/env/dev"), Some(("dev", "/")));
        assert_eq!(split_prefix("/api/env/dev"), None);
        assert_eq!(split_prefix("/fn/x"), None);
    }
}
