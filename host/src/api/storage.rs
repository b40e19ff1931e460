//! `/api/admin/storage/...`: buckets and S3 access keys. Admin token
//! required. The objects themselves go through the S3 API (`--s3-addr`).

use super::{ApiError, AppState};
use crate::storage::access::Permission;
use crate::storage::{BucketSettings, StorageError};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/admin/storage/buckets",
            get(list_buckets).post(create_bucket),
        )
        .route(
            "/api/admin/storage/buckets/{name}",
            get(show_bucket).put(configure_bucket).delete(delete_bucket),
        )
        .route("/api/admin/storage/keys", get(list_keys).post(create_key))
        .route("/api/admin/storage/keys/{id}", delete(delete_key))
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        let message = err.to_string();
        let (status, code) = match err {
            StorageError::NoSuchBucket(_) => (StatusCode::NOT_FOUND, "bucket_not_found"),
            StorageError::NoSuchKey(_) => (StatusCode::NOT_FOUND, "object_not_found"),
            StorageError::NoSuchUpload(_) => (StatusCode::NOT_FOUND, "upload_not_found"),
            StorageError::BucketExists(_) => (StatusCode::CONFLICT, "bucket_exists"),
            StorageError::BucketNotEmpty(_) => (StatusCode::CONFLICT, "bucket_not_empty"),
            StorageError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            StorageError::InvalidRule(problems) => {
                return ApiError::new(StatusCode::BAD_REQUEST, "invalid_rule", message)
                    .with_details(json!({ "problems": problems }));
            }
            StorageError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            StorageError::BadDigest => (StatusCode::BAD_REQUEST, "bad_digest"),
            StorageError::PreconditionFailed => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            StorageError::InvalidPart(_) | StorageError::PartTooSmall => {
                (StatusCode::BAD_REQUEST, "invalid_part")
            }
            StorageError::Body(_) => (StatusCode::BAD_REQUEST, "incomplete_body"),
            StorageError::Internal(err) => return ApiError::internal(format!("{err:#}")),
        };
        ApiError::new(status, code, message)
    }
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is not what this route takes: {err}"),
        )
    })
}

async fn list_buckets(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "buckets": state.storage.buckets().await? })))
}

async fn create_bucket(
    State(state): State<Arc<AppState>>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // `{name, …settings}`.
    let mut input: serde_json::Map<String, serde_json::Value> = body(&bytes)?;
    let Some(serde_json::Value::String(name)) = input.remove("name") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the body needs the bucket's `name`",
        ));
    };
    let settings: BucketSettings = serde_json::from_value(input.into()).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the bucket's settings are not valid: {err}"),
        )
    })?;
    let bucket = state.storage.create_bucket(&name, settings).await?;
    Ok((StatusCode::CREATED, Json(bucket)))
}

async fn show_bucket(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.storage.bucket(&name).await?))
}

async fn configure_bucket(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let settings: BucketSettings = body(&bytes)?;
    Ok(Json(state.storage.configure_bucket(&name, settings).await?))
}

async fn delete_bucket(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.storage.delete_bucket(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_keys(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "keys": state.storage.keys().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(default)]
    description: String,
    buckets: BTreeMap<String, Permission>,
}

async fn create_key(
    State(state): State<Arc<AppState>>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: NewKey = body(&bytes)?;
    let (key, secret) = state
        .storage
        .create_key(&input.description, input.buckets)
        .await?;
    let mut answer = serde_json::to_value(key).map_err(ApiError::internal)?;
    answer["secretKey"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn delete_key(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !state.storage.delete_key(&id).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "access_key_not_found",
            format!("no access key `{id}`"),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
