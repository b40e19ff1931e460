//! `/api/collections[/{name}]`: define, change and drop collections, and
//! read their migration history. Admin token required.

use super::{ApiError, AppState};
use crate::db::schema::Collection;
use crate::db::{Applied, ApplyOptions};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Who the history names for changes made with the admin token.
const ADMIN: &str = "admin";

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/collections", get(list).post(create))
        .route("/api/collections/{name}", get(show).put(put).delete(remove))
        .route("/api/collections/{name}/migrations", get(migrations))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Flags {
    #[serde(default)]
    force: Option<String>,
    #[serde(default)]
    dry_run: Option<String>,
}

fn flag(value: &Option<String>) -> bool {
    matches!(value.as_deref(), Some("" | "1" | "true"))
}

fn definition(body: &[u8]) -> Result<Collection, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_schema",
            format!("the body is not a valid collection definition: {err}"),
        )
    })
}

fn answer(applied: Applied, created: bool) -> impl IntoResponse {
    let status = if created && applied.applied {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(applied))
}

async fn list(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(json!({ "collections": state.db.collections() }))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.db.collection(&name)?))
}

async fn create(
    State(state): State<Arc<AppState>>,
    Query(flags): Query<Flags>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let options = ApplyOptions {
        create_only: true,
        force: false,
        dry_run: flag(&flags.dry_run),
    };
    let applied = state.db.apply(definition(&body)?, options, ADMIN).await?;
    Ok(answer(applied, true))
}

async fn put(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(flags): Query<Flags>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let mut collection = definition(&body)?;
    if collection.name.is_empty() {
        collection.name = name.clone();
    }
    if collection.name != name {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_schema",
            format!(
                "the body names `{}` but the path names `{name}`",
                collection.name
            ),
        ));
    }
    let existed = state.db.collection(&name).is_ok();
    let options = ApplyOptions {
        create_only: false,
        force: flag(&flags.force),
        dry_run: flag(&flags.dry_run),
    };
    let applied = state.db.apply(collection, options, ADMIN).await?;
    Ok(answer(applied, !existed))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .db
        .drop_collection(&name, flag(&flags.force), ADMIN)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn migrations(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.db.collection(&name)?;
    Ok(Json(
        json!({ "migrations": state.db.migrations(&name).await? }),
    ))
}
