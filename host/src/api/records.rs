//! `/api/collections/{collection}/records[/{id}]`: record CRUD under the
//! collection's access rules. The admin token bypasses rules; other
//! requests are held to them.

use super::record_form::{self, RecordForm};
use super::{ApiError, AppState};
use crate::db::BatchOp;
use crate::db::{Caller, ListQuery, ReadQuery};
use axum::Json;
use axum::Router;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest JSON body (a form's files are held to their bucket's limits).
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
        .route("/api/batch", post(batch))
        .layer(axum::extract::DefaultBodyLimit::disable())
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

/// A record body: JSON, or a `multipart/form-data` form whose files are
/// stored first (see [`record_form`]).
async fn record_body(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    collection: &str,
    request: Request,
) -> Result<(Value, Option<RecordForm>), ApiError> {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !multipart {
        return Ok((super::json_body(request, MAX_BODY).await?, None));
    }
    let form = Multipart::from_request(request, &())
        .await
        .map_err(|rejection| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_form",
                rejection.body_text(),
            )
        })?;
    let mut form = record_form::read(state, caller, collection, form).await?;
    Ok((std::mem::take(&mut form.data), Some(form)))
}

/// The file keys of `data` name only objects the caller may reference
/// ([`super::file_refs`]), besides those its form stored.
async fn checked_files(
    state: &AppState,
    caller: &Caller,
    collection: &str,
    data: &Value,
    form: Option<&RecordForm>,
) -> Result<(), ApiError> {
    let stored = form.map(RecordForm::stored).unwrap_or_default();
    super::file_refs::check(state, caller, collection, data, stored).await
}

/// Removes the files of `form` before answering `err`.
async fn discard_after(state: &AppState, form: Option<RecordForm>, err: ApiError) -> ApiError {
    if let Some(form) = form {
        form.discard(state).await;
    }
    err
}

/// Removes the files of a form whose record was not written.
async fn discard_on_error<T>(
    state: &AppState,
    form: Option<RecordForm>,
    result: Result<T, crate::db::DbError>,
) -> Result<T, ApiError> {
    match result {
        Ok(value) => Ok(value),
        Err(err) => {
            if let Some(form) = form {
                form.discard(state).await;
            }
            Err(err.into())
        }
    }
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
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let caller = caller(&state, &headers).await?;
    let (data, form) = record_body(&state, &caller, &headers, &collection, request).await?;
    let result = match checked_files(&state, &caller, &collection, &data, form.as_ref()).await {
        Ok(()) => state.db.create(&caller, &collection, data, &query).await,
        Err(err) => return Err(discard_after(&state, form, err).await),
    };
    let record = discard_on_error(&state, form, result).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

async fn update(
    State(state): State<Arc<AppState>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<ReadQuery>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let caller = caller(&state, &headers).await?;
    let (data, form) = record_body(&state, &caller, &headers, &collection, request).await?;
    if let Err(err) = checked_files(&state, &caller, &collection, &data, form.as_ref()).await {
        return Err(discard_after(&state, form, err).await);
    }
    let result = state
        .db
        .update(&caller, &collection, &id, data, &query)
        .await;
    Ok(Json(discard_on_error(&state, form, result).await?))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    operations: Vec<BatchOp>,
}

/// `POST /api/batch`: record creates, updates and deletes in one
/// transaction, each under its collection's rules for the caller: all take
/// effect or none does. Answers each operation's record (`null` for a
/// delete); a failure names the operation (`details.index`).
async fn batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let caller = caller(&state, &headers).await?;
    let Batch { operations } = super::json_body(request, MAX_BODY).await?;
    for (index, op) in operations.iter().enumerate() {
        if let BatchOp::Create { collection, data }
        | BatchOp::Update {
            collection, data, ..
        } = op
            && let Err(mut error) = checked_files(&state, &caller, collection, data, None).await
        {
            let mut details = error.details.take().unwrap_or_else(|| json!({}));
            details["index"] = json!(index);
            return Err(error.with_details(details));
        }
    }
    let operations = operations
        .into_iter()
        .map(|op| (caller.clone(), op))
        .collect();
    let results = state.db.batch(operations).await.map_err(|(index, err)| {
        let mut error = ApiError::from(err);
        let mut details = error.details.take().unwrap_or_else(|| json!({}));
        details["index"] = json!(index);
        error.with_details(details)
    })?;
    Ok(Json(json!({ "results": results })))
}
