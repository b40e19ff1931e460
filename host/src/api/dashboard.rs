//! The admin dashboard (`/_/`) and the landing page (`/`).
//!
//! The dashboard is a single-page app built from `dashboard/` into
//! `dashboard/dist`, which is committed and embedded here, so a build of
//! the binary never needs Node. It calls the public JSON API like any other
//! client; nothing here knows about its pages. Hashed assets are cached for
//! a year, `index.html` never, and every answer forbids framing and any
//! script or style not served from this origin.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../dashboard/dist");

/// Routes of the dashboard and the landing page, for every environment
/// (the dashboard picks the environment itself).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(landing))
        .route("/_", get(|| async { redirect("/_/") }))
        .route("/_/", get(|| async { asset("index.html") }))
        .route(
            "/_/{*path}",
            get(|Path(path): Path<String>| async move { asset(&path) }),
        )
}

const LANDING: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Aura</title><link rel="icon" href="/_/favicon.svg"><link rel="stylesheet" href="/_/landing.css"></head>
<body><main><h1>Aura</h1><p>This server is running.</p><ul>
<li><a href="/_/">Dashboard</a>: manage functions, collections, storage and more (sign in with the admin token).</li>
<li><a href="/api/openapi.json">OpenAPI document</a> of the REST API.</li>
<li><a href="/api/health">Health</a>.</li>
</ul></main></body></html>
"#;

async fn landing() -> Response {
    secured(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            LANDING,
        )
            .into_response(),
    )
}

fn redirect(to: &'static str) -> Response {
    secured((StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, to)]).into_response())
}

/// A file of the build, or `index.html` for the app's own paths.
fn asset(path: &str) -> Response {
    let (file, path) = match DIST.get_file(path) {
        Some(file) => (file, path),
        // Unknown asset-looking paths are 404s; anything else is the app.
        None if path.starts_with("assets/") || path.contains('.') => {
            return super::ApiError::route_not_found().into_response();
        }
        None => match DIST.get_file("index.html") {
            Some(file) => (file, "index.html"),
            None => return super::ApiError::route_not_found().into_response(),
        },
    };
    let cache = if path.starts_with("assets/") {
        // Vite names these after their content.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    secured(
        (
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::CACHE_CONTROL, cache),
            ],
            file.contents(),
        )
            .into_response(),
    )
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
