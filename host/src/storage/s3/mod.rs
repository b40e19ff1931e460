//! The S3-compatible API, built on s3s: SigV4 (header and presigned
//! query) against the admin's access keys, each key held to its buckets,
//! and the storage service behind. It listens on a port of its own
//! (`--s3-addr`): SigV4 signs the request path, so it can't sit under a
//! prefix of the main port.

mod api;
mod checksums;
mod listing;
mod multipart;
mod reads;

use super::access::AccessKey;
use super::{Storage, StorageError};
use api::Api;
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result, s3_error};
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
        .layer(axum::middleware::from_fn(checked_request))
        .layer(axum::middleware::from_fn(request_ids))
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

/// The longest a presigned URL may be valid, as S3 allows: a week.
const MAX_PRESIGNED_SECONDS: i64 = 7 * 24 * 3600;

/// Refuses what S3 refuses before it reads a request and s3s lets
/// through: a presigned URL valid for more than a week, or for a
/// negative time (403, as S3), and an empty `Content-MD5` (400).
async fn checked_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let expires = request.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "X-Amz-Expires")
            .map(|(_, value)| value.into_owned())
    });
    if let Some(expires) = expires
        && !expires
            .parse::<i64>()
            .is_ok_and(|seconds| (0..=MAX_PRESIGNED_SECONDS).contains(&seconds))
    {
        return s3_refusal(
            StatusCode::FORBIDDEN,
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be a number of seconds from 0 to 604800 (a week)",
        );
    }
    if request
        .headers()
        .get("content-md5")
        .is_some_and(|value| value.as_bytes().trim_ascii().is_empty())
    {
        return s3_refusal(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "Content-MD5 is empty: send the base64 MD5 of the body, or no header",
        );
    }
    next.run(request).await
}

/// Gives every answer an `x-amz-request-id`, also written into the
/// `<RequestId>` of error documents (what a user quotes when reporting a
/// failure, and what the server log names).
async fn request_ids(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    const MAX_ERROR_DOCUMENT: usize = 64 * 1024;
    let id = hex::encode_upper(rand::random::<[u8; 8]>());
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(
        "x-amz-request-id",
        axum::http::HeaderValue::from_str(&id).expect("hex is a header value"),
    );
    let xml = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/xml"));
    if !(parts.status.is_client_error() || parts.status.is_server_error()) || !xml {
        return axum::response::Response::from_parts(parts, body);
    }
    let Ok(document) = axum::body::to_bytes(body, MAX_ERROR_DOCUMENT).await else {
        return s3_refusal(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the error document could not be read",
        );
    };
    let mut text = String::from_utf8_lossy(&document).into_owned();
    if !text.contains("<RequestId>")
        && let Some(at) = text.rfind("</Error>")
    {
        text.insert_str(at, &format!("<RequestId>{id}</RequestId>"));
    }
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    axum::response::Response::from_parts(parts, axum::body::Body::from(text))
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

impl Scopes {
    /// A copy needs `read` on its source's bucket too.
    async fn may_read_source(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
        source: &CopySource,
    ) -> S3Result<()> {
        let key = self.key(credentials).await?;
        if let CopySource::Bucket { bucket, .. } = source
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
        self.may_read_source(req.credentials.as_ref(), &req.input.copy_source)
            .await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.may_read_source(req.credentials.as_ref(), &req.input.copy_source)
            .await
    }
}
