//! The S3-compatible API, built on s3s: SigV4 (header and presigned
//! query) against the admin's access keys, each key held to its buckets,
//! and the storage service behind. It listens on a port of its own
//! (`--s3-addr`): SigV4 signs the request path, so it can't sit under a
//! prefix of the main port.

use super::access::AccessKey;
use super::{BucketSettings, Object, PutOptions, Storage, StorageError};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The s3s service over `storage`.
pub fn service(storage: Arc<Storage>) -> s3s::service::S3Service {
    let mut builder = s3s::service::S3ServiceBuilder::new(Api(storage.clone()));
    builder.set_auth(Keys(storage.clone()));
    builder.set_access(Scopes(storage));
    builder.build()
}

/// Serves the S3 API on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    storage: Arc<Storage>,
) -> std::io::Result<()> {
    let service = service(storage);
    let app = axum::Router::new()
        .fallback_service(axum::error_handling::HandleError::new(
            service,
            |err: s3s::HttpError| async move {
                tracing::error!("S3 transport error: {err:?}");
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            },
        ))
        .layer(axum::middleware::from_fn(checked_payload))
        .layer(axum::middleware::from_fn(logged));
    axum::serve(listener, app).await
}

/// Reads a body s3s would read whole and answers 400 if it is not the
/// one the request declared (see [`super::payload`]).
async fn checked_payload(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use super::payload;
    if !payload::read_whole(request.method(), request.uri().path())
        || payload::declared(request.headers()).is_none()
    {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, payload::MAX_WHOLE_BODY).await else {
        return s3_refusal(
            axum::http::StatusCode::BAD_REQUEST,
            "MaxMessageLengthExceeded",
            "the request body is longer than allowed or was cut off",
        );
    };
    if !payload::matches(&parts.headers, &body) {
        return s3_refusal(
            axum::http::StatusCode::BAD_REQUEST,
            "XAmzContentSHA256Mismatch",
            "the request body is not the one its x-amz-content-sha256 header declares",
        );
    }
    next.run(axum::extract::Request::from_parts(parts, body.into()))
        .await
}

/// An S3 error document.
fn s3_refusal(
    status: axum::http::StatusCode,
    code: &str,
    message: &str,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

/// Logs a request's outcome: server errors as errors, refusals (a missing
/// key, a bad signature: the client's business) at debug level.
async fn logged(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_server_error() {
        tracing::error!(%method, %path, %status, "S3 request failed");
    } else if status.is_client_error() {
        tracing::debug!(%method, %path, %status, "S3 request refused");
    }
    response
}

impl From<StorageError> for S3Error {
    fn from(err: StorageError) -> Self {
        let message = err.to_string();
        let code = match &err {
            StorageError::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
            StorageError::NoSuchKey(_) => S3ErrorCode::NoSuchKey,
            StorageError::BucketExists(_) => S3ErrorCode::BucketAlreadyOwnedByYou,
            StorageError::BucketNotEmpty(_) => S3ErrorCode::BucketNotEmpty,
            StorageError::InvalidName(_) | StorageError::InvalidRule(_) => {
                S3ErrorCode::InvalidArgument
            }
            StorageError::TooLarge(_) => S3ErrorCode::EntityTooLarge,
            StorageError::BadDigest => S3ErrorCode::BadDigest,
            StorageError::PreconditionFailed => S3ErrorCode::PreconditionFailed,
            StorageError::NoSuchUpload(_) => S3ErrorCode::NoSuchUpload,
            StorageError::InvalidPart(_) => S3ErrorCode::InvalidPart,
            StorageError::PartTooSmall => S3ErrorCode::EntityTooSmall,
            StorageError::Body(_) => S3ErrorCode::IncompleteBody,
            StorageError::Internal(err) => {
                tracing::error!("storage: {err:#}");
                return S3Error::with_message(S3ErrorCode::InternalError, "internal error");
            }
        };
        let mut error = S3Error::with_message(code, message);
        if matches!(err, StorageError::TooLarge(_)) {
            error.set_status_code(http::StatusCode::PAYLOAD_TOO_LARGE);
        }
        error
    }
}

/// Secrets of access keys.
struct Keys(Arc<Storage>);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.key(access_key).await? {
            Some((_, secret)) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(InvalidAccessKeyId, "no such access key")),
        }
    }
}

/// Holds every signed request to its key's buckets.
struct Scopes(Arc<Storage>);

/// Operations that change something.
fn writes(operation: &str) -> bool {
    matches!(
        operation,
        "PutObject"
            | "CopyObject"
            | "DeleteObject"
            | "DeleteObjects"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload"
            | "AbortMultipartUpload"
    )
}

impl Scopes {
    async fn key(&self, credentials: Option<&s3s::auth::Credentials>) -> S3Result<AccessKey> {
        let credentials = credentials
            .ok_or_else(|| s3_error!(AccessDenied, "sign the request with an access key"))?;
        match self.0.key(&credentials.access_key).await? {
            Some((key, _)) => Ok(key),
            None => Err(s3_error!(InvalidAccessKeyId, "no such access key")),
        }
    }
}

#[async_trait::async_trait]
impl s3s::access::S3Access for Scopes {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        let key = self.key(cx.credentials()).await?;
        let operation = cx.s3_op().name();
        let allowed = match (operation, cx.s3_path().get_bucket_name()) {
            // ListBuckets answers only the key's buckets.
            (_, None) => true,
            ("CreateBucket" | "DeleteBucket", Some(_)) => key.manages_buckets(),
            (operation, Some(bucket)) => key.allows(bucket, writes(operation)),
        };
        if !allowed {
            return Err(s3_error!(
                AccessDenied,
                "this access key may not {operation} here"
            ));
        }
        Ok(())
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let key = self.key(req.credentials.as_ref()).await?;
        if let CopySource::Bucket { bucket, .. } = &req.input.copy_source
            && !key.allows(bucket, false)
        {
            return Err(s3_error!(
                AccessDenied,
                "this access key may not read the copy source"
            ));
        }
        Ok(())
    }
}

/// The operations.
struct Api(Arc<Storage>);

/// The owner of every bucket and object: the server's one account.
fn owner() -> Owner {
    Owner {
        id: Some("aura".into()),
        display_name: Some("aura".into()),
    }
}

fn timestamp(time: &str) -> Timestamp {
    let parsed = chrono::DateTime::parse_from_rfc3339(time)
        .map(|t| std::time::SystemTime::from(t.with_timezone(&chrono::Utc)))
        .unwrap_or(std::time::UNIX_EPOCH);
    Timestamp::from(parsed)
}

fn unix_seconds(time: &Timestamp) -> i64 {
    time::OffsetDateTime::from(time.clone()).unix_timestamp()
}

fn md5_header(value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    use base64::Engine as _;
    match value {
        None => Ok(None),
        Some(text) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .map(Some)
            .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not a base64 MD5")),
    }
}

/// The [`Claimed`] checksums of a put or part `input` (both carry the same
/// `checksum_*` fields).
macro_rules! claimed {
    ($input:ident, $algorithm:expr, $trailers:expr) => {
        Claimed {
            algorithm: $algorithm,
            values: Checksum {
                checksum_crc32: $input.checksum_crc32,
                checksum_crc32c: $input.checksum_crc32c,
                checksum_crc64nvme: $input.checksum_crc64nvme,
                checksum_sha1: $input.checksum_sha1,
                checksum_sha256: $input.checksum_sha256,
                ..Default::default()
            },
            trailers: $trailers,
        }
    };
}

/// The checksums (`x-amz-checksum-*`) a request says its body has, in
/// headers or, for aws-chunked bodies, in trailers that arrive after it.
#[derive(Clone, Default)]
struct Claimed {
    algorithm: Option<String>,
    values: Checksum,
    trailers: Option<s3s::TrailingHeaders>,
}

impl Claimed {
    /// Whether the body must be hashed.
    fn any(&self) -> bool {
        self.algorithm.is_some()
            || self.trailers.is_some()
            || self.values.checksum_crc32.is_some()
            || self.values.checksum_crc32c.is_some()
            || self.values.checksum_crc64nvme.is_some()
            || self.values.checksum_sha1.is_some()
            || self.values.checksum_sha256.is_some()
    }

    fn hasher(&self) -> s3s::checksum::ChecksumHasher {
        use s3s::crypto::Checksum as _;
        let named = |name: &str, value: bool| {
            value
                || self
                    .algorithm
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(name))
        };
        let v = &self.values;
        s3s::checksum::ChecksumHasher {
            crc32: named("CRC32", v.checksum_crc32.is_some()).then(s3s::crypto::Crc32::new),
            crc32c: named("CRC32C", v.checksum_crc32c.is_some()).then(s3s::crypto::Crc32c::new),
            crc64nvme: named("CRC64NVME", v.checksum_crc64nvme.is_some())
                .then(s3s::crypto::Crc64Nvme::new),
            sha1: named("SHA1", v.checksum_sha1.is_some()).then(s3s::crypto::Sha1::new),
            sha256: named("SHA256", v.checksum_sha256.is_some()).then(s3s::crypto::Sha256::new),
        }
    }

    /// Whether `computed` agrees with every value claimed (trailers are
    /// read now, after the body).
    fn matches(&self, computed: &Checksum) -> bool {
        let mut claimed = self.values.clone();
        if let Some(trailers) = self.trailers.as_ref().and_then(|t| t.take()) {
            let value = |name: &str| {
                trailers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            claimed.checksum_crc32 = claimed.checksum_crc32.or(value("x-amz-checksum-crc32"));
            claimed.checksum_crc32c = claimed.checksum_crc32c.or(value("x-amz-checksum-crc32c"));
            claimed.checksum_crc64nvme = claimed
                .checksum_crc64nvme
                .or(value("x-amz-checksum-crc64nvme"));
            claimed.checksum_sha1 = claimed.checksum_sha1.or(value("x-amz-checksum-sha1"));
            claimed.checksum_sha256 = claimed.checksum_sha256.or(value("x-amz-checksum-sha256"));
        }
        let agree = |claimed: &Option<String>, computed: &Option<String>| match claimed {
            Some(claimed) => computed.as_ref() == Some(claimed),
            None => true,
        };
        agree(&claimed.checksum_crc32, &computed.checksum_crc32)
            && agree(&claimed.checksum_crc32c, &computed.checksum_crc32c)
            && agree(&claimed.checksum_crc64nvme, &computed.checksum_crc64nvme)
            && agree(&claimed.checksum_sha1, &computed.checksum_sha1)
            && agree(&claimed.checksum_sha256, &computed.checksum_sha256)
    }
}

/// The body, hashed as it streams; if the claimed checksums do not match,
/// its last item is an error (so the write stores nothing) and `mismatch`
/// is set.
fn verified(
    body: StreamingBlob,
    claimed: Claimed,
    mismatch: Arc<std::sync::atomic::AtomicBool>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, String>> + Send {
    use futures::StreamExt;
    let hasher = claimed.any().then(|| claimed.hasher());
    futures::stream::unfold(
        (body, hasher, claimed, false),
        move |(mut body, mut hasher, claimed, ended)| {
            let mismatch = mismatch.clone();
            async move {
                if ended {
                    return None;
                }
                match body.next().await {
                    Some(Ok(chunk)) => {
                        if let Some(hasher) = &mut hasher {
                            hasher.update(&chunk);
                        }
                        Some((Ok(chunk), (body, hasher, claimed, false)))
                    }
                    Some(Err(err)) => Some((Err(err.to_string()), (body, None, claimed, true))),
                    None => {
                        let computed = hasher.take()?.finalize();
                        if claimed.matches(&computed) {
                            return None;
                        }
                        mismatch.store(true, std::sync::atomic::Ordering::Relaxed);
                        Some((
                            Err("the body does not match its checksum".to_owned()),
                            (body, None, claimed, true),
                        ))
                    }
                }
            }
        },
    )
}

/// A write's error, with a checksum mismatch reported as `BadDigest`.
fn write_error(err: StorageError, mismatch: &std::sync::atomic::AtomicBool) -> S3Error {
    if mismatch.load(std::sync::atomic::Ordering::Relaxed) {
        return s3_error!(BadDigest, "the body does not match its x-amz-checksum");
    }
    err.into()
}

fn condition_text(condition: &ETagCondition) -> String {
    match condition {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(etag) => etag.value().to_owned(),
    }
}

fn metadata_of(metadata: Option<Metadata>) -> BTreeMap<String, String> {
    metadata.unwrap_or_default().into_iter().collect()
}

/// Evaluates GET/HEAD preconditions (RFC 9110 order).
fn check_read_preconditions(
    object: &Object,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = unix_seconds(&timestamp(&object.modified));
    if let Some(condition) = if_match {
        if !super::etag_matches(&condition_text(condition), &object.etag) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(since) = if_unmodified_since
        && modified > unix_seconds(since)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if let Some(condition) = if_none_match {
        if super::etag_matches(&condition_text(condition), &object.etag) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(since) = if_modified_since
        && modified <= unix_seconds(since)
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

#[async_trait::async_trait]
impl S3 for Api {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let key = Scopes(self.0.clone()).key(req.credentials.as_ref()).await?;
        let input = req.input;
        let max = match input.max_buckets {
            None => usize::MAX,
            Some(max @ 1..=10_000) => max as usize,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-buckets must be between 1 and 10000"
                ));
            }
        };
        // The token is the name of the last bucket of the previous page.
        let after = input.continuation_token.unwrap_or_default();
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut buckets: Vec<_> = self
            .0
            .buckets()
            .await?
            .into_iter()
            .filter(|b| key.allows(&b.name, false))
            .filter(|b| b.name.starts_with(&prefix) && b.name > after)
            .collect();
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        let next = (buckets.len() > max).then(|| buckets[max - 1].name.clone());
        let buckets = buckets
            .into_iter()
            .take(max)
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(&b.created)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            continuation_token: next,
            prefix: input.prefix,
            owner: Some(owner()),
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let name = &req.input.bucket;
        self.0
            .create_bucket(name, BucketSettings::default())
            .await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.0.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.0.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.0.delete_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let body = input
            .body
            .ok_or_else(|| s3_error!(IncompleteBody, "the request has no body"))?;
        let claimed = claimed!(
            input,
            input.checksum_algorithm.map(|a| a.as_str().to_owned()),
            req.trailing_headers
        );
        let mismatch = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let options = PutOptions {
            content_type: input.content_type,
            metadata: metadata_of(input.metadata),
            content_md5: md5_header(input.content_md5.as_deref())?,
            if_none_match: input
                .if_none_match
                .as_ref()
                .is_some_and(ETagCondition::is_any),
            if_match: input.if_match.as_ref().map(condition_text),
            owner: None,
        };
        let object = self
            .0
            .put(
                &input.bucket,
                &input.key,
                verified(body, claimed, mismatch.clone()),
                options,
            )
            .await
            .map_err(|err| write_error(err, &mismatch))?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(object.etag)),
            size: Some(object.size as i64),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let bucket = self.0.bucket(&input.bucket).await?;
        let object = self.0.head(&input.bucket, &input.key).await?;
        check_read_preconditions(
            &object,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let (start, length, content_range) = match &input.range {
            None => (0, object.size, None),
            Some(range) => {
                let span = range.check(object.size)?;
                (
                    span.start,
                    span.end - span.start,
                    Some(format!(
                        "bytes {}-{}/{}",
                        span.start,
                        span.end - 1,
                        object.size
                    )),
                )
            }
        };
        let stream = self.0.read(&object, start, length).await?;
        let website = bucket.settings.website;
        let attachment = !website && !super::inline_safe(object.content_type.as_deref());
        let mut response = S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(length as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            content_type: object.content_type.clone(),
            content_disposition: attachment.then(|| "attachment".to_owned()),
            e_tag: Some(ETag::Strong(object.etag.clone())),
            last_modified: Some(timestamp(&object.modified)),
            metadata: Some(object.metadata.into_iter().collect()),
            ..Default::default()
        });
        response.headers.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            http::HeaderValue::from_static("nosniff"),
        );
        if !website {
            response.headers.insert(
                http::header::CONTENT_SECURITY_POLICY,
                http::HeaderValue::from_static(super::OBJECT_CSP),
            );
        }
        Ok(response)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let object = self.0.head(&input.bucket, &input.key).await?;
        check_read_preconditions(
            &object,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(object.size as i64),
            accept_ranges: Some("bytes".into()),
            content_type: object.content_type,
            e_tag: Some(ETag::Strong(object.etag)),
            last_modified: Some(timestamp(&object.modified)),
            metadata: Some(object.metadata.into_iter().collect()),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.0.delete(&req.input.bucket, &req.input.key).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "a DeleteObjects request names at most 1000 keys"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in input.delete.objects {
            match self.0.delete(&input.bucket, &object.key).await {
                // Quiet mode answers only the failures.
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(object.key),
                    ..Default::default()
                }),
                Err(err) => {
                    let err = S3Error::from(err);
                    errors.push(Error {
                        key: Some(object.key),
                        code: Some(err.code().as_str().to_owned()),
                        message: err.message().map(str::to_owned),
                        ..Default::default()
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let CopySource::Bucket { bucket, key, .. } = &input.copy_source else {
            return Err(s3_error!(NotImplemented, "copy from buckets only"));
        };
        let source = self.0.head(bucket, key).await?;
        if let Some(condition) = &input.copy_source_if_match
            && !super::etag_matches(&condition_text(condition), &source.etag)
        {
            return Err(s3_error!(PreconditionFailed));
        }
        if let Some(condition) = &input.copy_source_if_none_match
            && super::etag_matches(&condition_text(condition), &source.etag)
        {
            return Err(s3_error!(PreconditionFailed));
        }
        let replacing = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replacing
            && (bucket.as_ref(), key.as_ref()) == (input.bucket.as_str(), input.key.as_str())
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata"
            ));
        }
        let replace = replacing.then(|| {
            (
                input.content_type.clone(),
                metadata_of(input.metadata.clone()),
            )
        });
        let object = self
            .0
            .copy((bucket, key), (&input.bucket, &input.key), replace)
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(object.etag)),
                last_modified: Some(timestamp(&object.modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        use base64::Engine as _;
        let input = req.input;
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let after = match &input.continuation_token {
            Some(token) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| {
                        s3_error!(InvalidArgument, "the continuation token is not valid")
                    })?,
            ),
            None => input.start_after.clone(),
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        let listing = self
            .0
            .list(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                after.as_deref(),
                max,
            )
            .await?;
        let contents: Vec<s3s::dto::Object> = listing
            .objects
            .into_iter()
            .map(|o| s3s::dto::Object {
                key: Some(o.key),
                size: Some(o.size as i64),
                e_tag: Some(ETag::Strong(o.etag)),
                last_modified: Some(timestamp(&o.modified)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect();
        let prefixes: Vec<CommonPrefix> = listing
            .prefixes
            .into_iter()
            .map(|p| CommonPrefix { prefix: Some(p) })
            .collect();
        let key_count = (contents.len() + prefixes.len()) as i32;
        // With max-keys=0 nothing is listed and there is no next page to
        // ask for (a paginator would ask for the same empty page forever).
        let next = listing.next.filter(|_| max > 0);
        let owner = input.fetch_owner.unwrap_or(false).then(owner);
        let contents = contents
            .into_iter()
            .map(|object| s3s::dto::Object {
                owner: owner.clone(),
                ..object
            })
            .collect();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(prefix),
            delimiter: input.delimiter,
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            is_truncated: Some(next.is_some()),
            continuation_token: input.continuation_token,
            next_continuation_token: next
                .map(|next| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next)),
            start_after: input.start_after,
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let id = self
            .0
            .create_upload(
                &input.bucket,
                &input.key,
                input.content_type,
                metadata_of(input.metadata),
            )
            .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let body = input
            .body
            .ok_or_else(|| s3_error!(IncompleteBody, "the request has no body"))?;
        let claimed = claimed!(input, None, req.trailing_headers);
        let mismatch = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let etag = self
            .0
            .upload_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                input.part_number,
                verified(body, claimed, mismatch.clone()),
                md5_header(input.content_md5.as_deref())?,
            )
            .await
            .map_err(|err| write_error(err, &mismatch))?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let parts = self
            .0
            .parts(&input.bucket, &input.key, &input.upload_id)
            .await?
            .into_iter()
            .map(|p| s3s::dto::Part {
                part_number: Some(p.number),
                size: Some(p.size as i64),
                e_tag: Some(ETag::Strong(p.etag)),
                last_modified: Some(timestamp(&p.modified)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            parts: Some(parts),
            is_truncated: Some(false),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let listed: Vec<(i32, String)> = input
            .multipart_upload
            .and_then(|upload| upload.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|part| {
                (
                    part.part_number.unwrap_or(0),
                    part.e_tag.map(|e| e.value().to_owned()).unwrap_or_default(),
                )
            })
            .collect();
        let object = self
            .0
            .complete_upload(&input.bucket, &input.key, &input.upload_id, &listed)
            .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(object.key.clone()),
            e_tag: Some(ETag::Strong(object.etag)),
            location: Some(format!("/{}/{}", input.bucket, object.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.0
            .abort_upload(&req.input.bucket, &req.input.upload_id)
            .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}
