//! `/api/storage/{bucket}/...`: objects for apps, under each bucket's
//! rules (the collections' rule language over `key`, `size`,
//! `content_type`, `owner`), and Aura-signed URLs (`/api/signed-urls`).
//! The admin token passes every rule; a valid signature passes the rule of
//! its method.

use super::{ApiError, AppState, bearer};
use crate::db::Caller;
use crate::db::schema::Action;
use crate::storage::signing::{MAX_EXPIRY_SECONDS, Signed};
use crate::storage::{Bucket, Object, PutOptions, Storage, StorageError, rules};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::multipart::Multipart;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::TryStreamExt as _;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/storage/{bucket}", get(list).post(upload_form))
        .route(
            "/api/storage/{bucket}/{*key}",
            get(download).put(upload).delete(remove),
        )
        .route("/api/signed-urls", post(sign))
        // The bucket's own limit applies while the body streams.
        .layer(DefaultBodyLimit::disable())
}

fn forbidden(action: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("the bucket's {action} rule does not allow this"),
    )
}

fn not_found(key: &str) -> ApiError {
    StorageError::NoSuchKey(key.to_owned()).into()
}

fn caller_id(caller: &Caller) -> Option<String> {
    match caller {
        Caller::User(Some(user)) => Some(user.id.clone()),
        _ => None,
    }
}

/// `?expires=&signature=&owner=` of an Aura-signed URL.
#[derive(Deserialize, Default)]
struct Signature {
    expires: Option<i64>,
    signature: Option<String>,
    owner: Option<String>,
    /// What a signed upload may overwrite (see [`Signed::condition`]).
    #[serde(rename = "match")]
    condition: Option<String>,
    /// `?download`: always as an attachment.
    download: Option<String>,
}

impl Signature {
    /// `Some(valid)` when the URL is signed.
    fn check(&self, state: &AppState, method: &str, bucket: &str, key: &str) -> Option<bool> {
        let (expires, signature) = (self.expires?, self.signature.as_deref()?);
        let signed = Signed {
            method,
            bucket,
            key,
            expires,
            owner: self.owner.as_deref(),
            condition: self.condition.as_deref().unwrap_or_default(),
        };
        Some(state.storage.verify(&signed, signature))
    }
}

fn invalid_signature() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "invalid_signature",
        "the signed URL is not valid for this object and method, or has expired",
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    delimiter: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/storage/{bucket}?prefix=&delimiter=&after=&limit=`: the
/// objects the caller may list (a page may hold fewer than `limit`; follow
/// `next`).
async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let caller = state.caller(bearer(&headers)).await?;
    let bucket = state.storage.bucket(&name).await?;
    let rules = Storage::rules(&bucket.settings)?;
    if bucket.settings.list_rule.is_none() && !matches!(caller, Caller::Service) {
        return Err(forbidden("list"));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let listing = state
        .storage
        .list(
            &name,
            &query.prefix,
            query.delimiter.as_deref(),
            query.after.as_deref(),
            limit,
        )
        .await?;
    let mut objects = Vec::with_capacity(listing.objects.len());
    for object in listing.objects {
        if state
            .storage
            .allowed(&rules, Action::List, &caller, &object.facts())
            .await?
        {
            objects.push(object);
        }
    }
    Ok(Json(json!({
        "objects": objects,
        "prefixes": listing.prefixes,
        "next": listing.next,
    })))
}

/// A byte range of `size`: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
fn byte_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let length: u64 = suffix.parse().ok()?;
            (size.checked_sub(length.min(size))?, size.checked_sub(1)?)
        }
        (first, "") => (first.parse().ok()?, size.checked_sub(1)?),
        (first, last) => (
            first.parse().ok()?,
            last.parse::<u64>().ok()?.min(size.saturating_sub(1)),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

/// `GET /api/storage/{bucket}/{key}`: the object's bytes, streamed, with
/// ranges and ETag revalidation.
async fn download(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((name, key)): Path<(String, String)>,
    Query(signature): Query<Signature>,
) -> Result<Response, ApiError> {
    let bucket = state.storage.bucket(&name).await?;
    let rules = Storage::rules(&bucket.settings)?;
    let object = state.storage.head(&name, &key).await?;
    match signature.check(&state, "GET", &name, &key) {
        Some(true) => {}
        Some(false) => return Err(invalid_signature()),
        None => {
            let caller = state.caller(bearer(&headers)).await?;
            if !state
                .storage
                .allowed(&rules, Action::View, &caller, &object.facts())
                .await?
            {
                return Err(not_found(&key));
            }
        }
    }
    let etag = format!("\"{}\"", object.etag);
    let mut response = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::LAST_MODIFIED, http_date(&object.modified));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| crate::storage::etag_matches(v, &object.etag))
    {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    let content_type = object
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    response = response.header(header::CONTENT_TYPE, &content_type);
    if !bucket.settings.website {
        response = response.header(header::CONTENT_SECURITY_POLICY, crate::storage::OBJECT_CSP);
    }
    let forced = signature.download.is_some()
        || (!bucket.settings.website && !crate::storage::inline_safe(Some(&content_type)));
    if forced {
        response = response.header(header::CONTENT_DISPOSITION, attachment(&key));
    }
    for (name, value) in object.headers.pairs() {
        if !(forced && name == header::CONTENT_DISPOSITION) {
            response = response.header(name, value);
        }
    }
    let (status, start, length) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => (StatusCode::OK, 0, object.size),
        Some(range) => match byte_range(range, object.size) {
            Some((start, end)) => {
                response = response.header(
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{end}/{}", object.size),
                );
                (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
            }
            None => {
                return response
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", object.size))
                    .body(Body::empty())
                    .map_err(ApiError::internal);
            }
        },
    };
    let stream = state.storage.read(&object, start, length).await?;
    response
        .status(status)
        .header(header::CONTENT_LENGTH, length)
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

fn http_date(time: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(time)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

fn attachment(key: &str) -> HeaderValue {
    let name = key.rsplit('/').next().unwrap_or(key);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        crate::storage::encode_key(name)
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

/// Checks the create or update rule for a write of `key`; returns the
/// owner the object will have and whether it replaces one.
async fn authorize_write(
    state: &AppState,
    headers: &HeaderMap,
    bucket: &Bucket,
    rules: &crate::db::Entry,
    key: &str,
    declared: (Option<u64>, Option<&str>),
    signature: &Signature,
) -> Result<(Option<String>, bool), ApiError> {
    let existing = match state.storage.head(&bucket.name, key).await {
        Ok(object) => Some(object),
        Err(StorageError::NoSuchKey(_)) => None,
        Err(other) => return Err(other.into()),
    };
    let replaces = existing.is_some();
    match signature.check(state, "PUT", &bucket.name, key) {
        Some(true) => {
            // The URL overwrites only what its signer could: nothing, the
            // version it saw, or (a function's) anything.
            let allowed = match signature.condition.as_deref().unwrap_or_default() {
                "*" => true,
                "new" => existing.is_none(),
                etag => existing.as_ref().is_some_and(|o| o.etag == etag),
            };
            if !allowed {
                return Err(StorageError::PreconditionFailed.into());
            }
            let owner = existing
                .and_then(|o| o.owner)
                .or_else(|| signature.owner.clone());
            return Ok((owner, replaces));
        }
        Some(false) => return Err(invalid_signature()),
        None => {}
    }
    let caller = state.caller(bearer(headers)).await?;
    let (action, facts, owner) = match &existing {
        Some(object) => (Action::Update, object.facts(), object.owner.clone()),
        None => {
            let owner = caller_id(&caller);
            let facts = rules::facts(key, declared.0, declared.1, owner.as_deref());
            (Action::Create, facts, owner)
        }
    };
    if !state
        .storage
        .allowed(rules, action, &caller, &facts)
        .await?
    {
        return Err(forbidden(action.rule_name().trim_end_matches("Rule")));
    }
    Ok((owner, replaces))
}

fn stored(object: Object, created: bool) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(object)).into_response()
}

/// `PUT /api/storage/{bucket}/{key}`: the raw body becomes the object
/// (`Content-Type`, `Cache-Control`, `Content-Disposition`,
/// `Content-Encoding`, `Content-Language` and `Expires` are kept and sent
/// back on downloads).
async fn upload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((name, key)): Path<(String, String)>,
    Query(signature): Query<Signature>,
    body: Body,
) -> Result<Response, ApiError> {
    let bucket = state.storage.bucket(&name).await?;
    let rules = Storage::rules(&bucket.settings)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let (owner, replaces) = authorize_write(
        &state,
        &headers,
        &bucket,
        &rules,
        &key,
        (length, content_type.as_deref()),
        &signature,
    )
    .await?;
    let options = PutOptions {
        content_type,
        headers: crate::storage::ObjectHeaders::from_request(&headers),
        owner,
        ..PutOptions::default()
    };
    let object = state
        .storage
        .put(&name, &key, body.into_data_stream(), options)
        .await?;
    Ok(stored(object, !replaces))
}

/// `POST /api/storage/{bucket}` with `multipart/form-data`: a `file` part
/// (its file name is the key unless a `key` part comes first).
async fn upload_form(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let bucket = state.storage.bucket(&name).await?;
    let rules = Storage::rules(&bucket.settings)?;
    let invalid = |why: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_form", why);
    let mut key: Option<String> = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| invalid(format!("the form is not valid multipart/form-data: {e}")))?
    {
        match field.name() {
            Some("key") => {
                key = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| invalid(format!("reading `key`: {e}")))?,
                );
            }
            Some("file") => {
                let key = key
                    .clone()
                    .or_else(|| field.file_name().map(str::to_owned))
                    .ok_or_else(|| {
                        invalid("name the object: a `key` part, or a file name".into())
                    })?;
                let content_type = field.content_type().map(str::to_owned);
                let (owner, replaces) = authorize_write(
                    &state,
                    &headers,
                    &bucket,
                    &rules,
                    &key,
                    (None, content_type.as_deref()),
                    &Signature::default(),
                )
                .await?;
                let options = PutOptions {
                    content_type,
                    owner,
                    ..PutOptions::default()
                };
                let object = state
                    .storage
                    .put(&name, &key, field.map_err(|e| e.body_text()), options)
                    .await?;
                return Ok(stored(object, !replaces));
            }
            _ => {}
        }
    }
    Err(invalid("the form has no `file` part".into()))
}

/// Stores a form's file part as the new `key` of `bucket` for `caller`,
/// who owns it. The create rule is checked against the stored object, so
/// rules on `size` hold for parts of unknown length; a refused object is
/// removed again.
pub(super) async fn store_new_part(
    state: &AppState,
    caller: &Caller,
    bucket: &Bucket,
    key: &str,
    part: axum::extract::multipart::Field<'_>,
) -> Result<Object, ApiError> {
    let rules = Storage::rules(&bucket.settings)?;
    let options = PutOptions {
        content_type: part.content_type().map(str::to_owned),
        owner: caller_id(caller),
        ..PutOptions::default()
    };
    let object = state
        .storage
        .put(&bucket.name, key, part.map_err(|e| e.body_text()), options)
        .await?;
    let allowed = state
        .storage
        .allowed(&rules, Action::Create, caller, &object.facts())
        .await;
    if !matches!(allowed, Ok(true)) {
        state.storage.delete(&bucket.name, key).await?;
        allowed?;
        return Err(forbidden("create"));
    }
    Ok(object)
}

/// `DELETE /api/storage/{bucket}/{key}`.
async fn remove(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((name, key)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let bucket = state.storage.bucket(&name).await?;
    let rules = Storage::rules(&bucket.settings)?;
    let object = state.storage.head(&name, &key).await?;
    let caller = state.caller(bearer(&headers)).await?;
    if !state
        .storage
        .allowed(&rules, Action::View, &caller, &object.facts())
        .await?
    {
        return Err(not_found(&key));
    }
    if !state
        .storage
        .allowed(&rules, Action::Delete, &caller, &object.facts())
        .await?
    {
        return Err(forbidden("delete"));
    }
    state.storage.delete(&name, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignRequest {
    bucket: String,
    key: String,
    method: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `POST /api/signed-urls`: a URL for one object and method, made by a
/// caller whom the bucket's rules allow that now.
async fn sign(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<impl IntoResponse, ApiError> {
    let input: SignRequest = super::json_body(request, 16 * 1024).await?;
    let method = input.method.to_ascii_uppercase();
    let expires_in = input.expires_in.unwrap_or(3600);
    if !(1..=MAX_EXPIRY_SECONDS).contains(&expires_in) {
        return Err(ApiError::bad_request(format!(
            "expiresIn must be between 1 and {MAX_EXPIRY_SECONDS} seconds"
        )));
    }
    let bucket = state.storage.bucket(&input.bucket).await?;
    let rules = Storage::rules(&bucket.settings)?;
    if let Some(problem) = crate::storage::names::key_problem(&input.key) {
        return Err(StorageError::InvalidName(problem).into());
    }
    let caller = state.caller(bearer(&headers)).await?;
    let owner = match method.as_str() {
        "GET" => {
            let object = state.storage.head(&input.bucket, &input.key).await?;
            if !state
                .storage
                .allowed(&rules, Action::View, &caller, &object.facts())
                .await?
            {
                return Err(not_found(&input.key));
            }
            None
        }
        "PUT" => {
            authorize_write(
                &state,
                &headers,
                &bucket,
                &rules,
                &input.key,
                (None, None),
                &Signature::default(),
            )
            .await?
            .0
        }
        _ => {
            return Err(ApiError::bad_request(
                "method must be GET (download) or PUT (upload)",
            ));
        }
    };
    // An upload URL may overwrite only what the signer could now: the
    // version of the object it saw (the update rule allowed it), or nothing.
    let condition = match method.as_str() {
        "PUT" => match state.storage.head(&input.bucket, &input.key).await {
            Ok(object) => object.etag,
            Err(StorageError::NoSuchKey(_)) => "new".to_owned(),
            Err(other) => return Err(other.into()),
        },
        _ => String::new(),
    };
    let expires = chrono::Utc::now().timestamp() + expires_in as i64;
    let signed = Signed {
        method: &method,
        bucket: &input.bucket,
        key: &input.key,
        expires,
        owner: owner.as_deref(),
        condition: &condition,
    };
    let mut path = format!(
        "/api/storage/{}/{}?expires={expires}&signature={}",
        input.bucket,
        crate::storage::encode_key(&input.key),
        state.storage.sign(&signed)
    );
    if let Some(owner) = &owner {
        path.push_str(&format!("&owner={owner}"));
    }
    if !condition.is_empty() {
        path.push_str(&format!("&match={condition}"));
    }
    Ok(Json(json!({
        "url": format!("{}{path}", state.auth.public_url()),
        "path": path,
        "method": method,
        "expires": expires,
    })))
}
