//! `/api/collections/{collection}/records[/{id}]`: record CRUD under the
//! collection's access rules. The admin token bypasses rules; other
//! requests are held to them.

use super::{ApiError, AppState};
use crate::db::{Caller, ListQuery, ReadQuery};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;
use std::sync::Arc;

/// Largest record body.
const MAX_BODY: usize = 4 << 20;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/collections/{collection}/records",
            get(list).post(create),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(view).patch(update).delete(remove),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// Who is calling, from `Authorization: Bearer` (see [`AppState::caller`]).
pub(super) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        // A header that is not `Bearer …` is a token no one accepts.
        state
            .caller(Some(super::bearer(headers).unwrap_or_default()))
            .await
    } else {
        state.caller(None).await
    }
}

fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(_) => ApiError::payload_too_large(MAX_BODY as u64),
        other => ApiError::bad_request(other.body_text()),
    })?;
    serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is not valid JSON: {err}"),
        )
    })
}

async fn list(
    State(state): State<Arc<AppState>>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let caller = caller(&state, &headers).await?;
    Ok(Json(state.db.list(&caller, &collection, &query).await?))
}

async fn view(
    State(state): State<Arc<AppState>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<ReadQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let caller = caller(&state, &headers).await?;
    Ok(Json(
        state.db.view(&caller, &collection, &id, &query).await?,
    ))
}

async fn create(
    State(state): State<Arc<AppState>>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    Query(query): Query<ReadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let caller = caller(&state, &headers).await?;
    let record = state
        .db
        .create(&caller, &collection, json_body(body)?, &query)
        .await?;
    Ok((StatusCode::CREATED, Json(record)))
}

async fn update(
    State(state): State<Arc<AppState>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<ReadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let caller = caller(&state, &headers).await?;
    Ok(Json(
        state
            .db
            .update(&caller, &collection, &id, json_body(body)?, &query)
            .await?,
    ))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let caller = caller(&state, &headers).await?;
    state.db.delete(&caller, &collection, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
