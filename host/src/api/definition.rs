//! `/api/admin/definition`, `/api/admin/components/{sha256}` and
//! `/api/admin/snapshots`: read and apply an environment's definition
//! (`aura pull`, `aura push`, `aura env promote`) and roll back to a
//! snapshot. Admin token required.

use super::admin::MAX_COMPONENT_BYTES;
use super::{ApiError, AppState};
use crate::definition::{self, ApplyRequest, Definition};
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// Largest apply request: a definition and its components.
const MAX_APPLY_BYTES: usize = 4 * MAX_COMPONENT_BYTES;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/admin/definition",
            get(show)
                .post(apply)
                .layer(DefaultBodyLimit::max(MAX_APPLY_BYTES)),
        )
        .route("/api/admin/components/{hash}", get(component))
        .route("/api/admin/snapshots", get(snapshots))
        .route("/api/admin/snapshots/{id}", get(snapshot))
        .route("/api/admin/snapshots/{id}/restore", post(restore))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Flags {
    dry_run: bool,
    allow_destructive: bool,
    label: Option<String>,
}

fn flags(
    query: Result<Query<Flags>, axum::extract::rejection::QueryRejection>,
) -> Result<Flags, ApiError> {
    query.map(|Query(flags)| flags).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("{err} (dry_run, allow_destructive: true|false; label)"),
        )
    })
}

/// `GET /api/admin/definition`.
async fn show(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(definition::capture(&state).await?))
}

/// A body over [`MAX_APPLY_BYTES`] is 413; other unreadable bodies 400.
fn unreadable(status: StatusCode, err: impl std::fmt::Display) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "payload_too_large",
            format!("an apply request is at most {MAX_APPLY_BYTES} bytes"),
        )
    } else {
        ApiError::bad_request(err.to_string())
    }
}

fn invalid_definition(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_definition",
        format!("the definition is not valid: {err}"),
    )
}

/// `POST /api/admin/definition?dry_run=&allow_destructive=&label=`: a JSON
/// definition, or a form with a `definition` part and a `component` part
/// per component the server may lack (its file name is its SHA-256).
async fn apply(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Flags>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let flags = flags(query)?;
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut definition = None;
    let mut components = HashMap::new();
    if is_form {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|err| unreadable(err.status(), err.body_text()))?;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|err| unreadable(err.status(), err.body_text()))?
        {
            match field.name() {
                Some("definition") => {
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|err| unreadable(err.status(), err.body_text()))?;
                    definition = Some(
                        serde_json::from_slice::<Definition>(&bytes).map_err(invalid_definition)?,
                    );
                }
                Some("component") => {
                    let hash = field.file_name().unwrap_or("").to_owned();
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|err| unreadable(err.status(), err.body_text()))?;
                    components.insert(hash, bytes);
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unexpected form field `{}`: expected `definition` and `component` parts",
                        other.unwrap_or("")
                    )));
                }
            }
        }
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_APPLY_BYTES)
            .await
            .map_err(|err| unreadable(StatusCode::PAYLOAD_TOO_LARGE, err))?;
        definition = Some(serde_json::from_slice(&bytes).map_err(invalid_definition)?);
    }
    let definition =
        definition.ok_or_else(|| ApiError::bad_request("the form has no `definition` part"))?;
    let applied = definition::apply(
        &state,
        ApplyRequest {
            definition,
            components,
            allow_destructive: flags.allow_destructive,
            dry_run: flags.dry_run,
            label: flags.label.unwrap_or_else(|| "push".to_owned()),
        },
    )
    .await?;
    Ok(Json(applied))
}

/// `GET /api/admin/components/{sha256}`: a stored component's bytes.
async fn component(
    State(state): State<Arc<AppState>>,
    Path(hash): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = state.functions.component(&hash).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "component_not_found",
            format!("no stored component has SHA-256 {hash}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes))
}

/// `GET /api/admin/snapshots`: newest first, without their definitions.
async fn snapshots(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let list: Vec<_> = definition::snapshots(&state)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id,
                "label": s.label,
                "created_at": s.created_at,
                "collections": s.definition.collections.len(),
                "functions": s.definition.functions.len(),
                "schedules": s.definition.schedules.len(),
            })
        })
        .collect();
    Ok(Json(json!({ "snapshots": list })))
}

/// `GET /api/admin/snapshots/{id}`.
async fn snapshot(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(definition::snapshot(&state, id).await?))
}

/// `POST /api/admin/snapshots/{id}/restore?dry_run=&allow_destructive=`:
/// rollback: the environment's definition becomes the snapshot's.
async fn restore(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    query: Result<Query<Flags>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let flags = flags(query)?;
    let snapshot = definition::snapshot(&state, id).await?;
    let applied = definition::apply(
        &state,
        ApplyRequest {
            definition: snapshot.definition,
            components: HashMap::new(),
            allow_destructive: flags.allow_destructive,
            dry_run: flags.dry_run,
            label: format!("rollback to {id}"),
        },
    )
    .await?;
    Ok(Json(applied))
}
