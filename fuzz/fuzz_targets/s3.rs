//! S3 requests, from any bytes, through the S3 protocol layer Aura serves
//! its S3 port with (s3s, configured as `host/src/storage/s3.rs` does:
//! path-style, SigV4 with one access key) down to a store that accepts
//! every operation Aura implements. The input is a request as text:
//!
//! ```text
//! METHOD /path?query
//! header: value
//!
//! body
//! ```
//!
//! The seeds are validly signed (header, presigned and streaming
//! `aws-chunked` uploads, XML bodies of CompleteMultipartUpload and
//! DeleteObjects, a POST-object form), so mutations reach the XML
//! parsers, canonicalization and chunk decoding behind the signature
//! check. The port's own check of a whole body's declared hash
//! (`host/src/storage/payload.rs`) runs first, as it does in front of s3s.
//! Nothing panics, a request never ends in a transport error, and no
//! answer is a server error but NotImplemented (an operation Aura does not
//! serve).
#![no_main]

use bytes::Bytes;
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use std::sync::{Arc, LazyLock};

// The S3 port's check in front of s3s, compiled without the server.
#[allow(dead_code)]
#[path = "../../host/src/storage/payload.rs"]
mod payload;

/// The access key the seeds are signed with.
const ACCESS_KEY: &str = "AKIAFUZZ";
const SECRET_KEY: &str = "fuzz-secret";

/// Accepts each operation Aura's S3 port implements, reading any body.
struct Store;

async fn drain(body: Option<StreamingBlob>) -> S3Result<()> {
    if let Some(mut body) = body {
        use futures_util::StreamExt as _;
        while let Some(chunk) = body.next().await {
            chunk.map_err(|e| s3s::s3_error!(IncompleteBody, "{e}"))?;
        }
    }
    Ok(())
}

fn ok<T>(output: T) -> S3Result<S3Response<T>> {
    Ok(S3Response::new(output))
}

#[async_trait::async_trait]
impl S3 for Store {
    async fn list_buckets(
        &self,
        _: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        ok(ListBucketsOutput::default())
    }
    async fn create_bucket(
        &self,
        _: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        ok(CreateBucketOutput::default())
    }
    async fn head_bucket(
        &self,
        _: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        ok(HeadBucketOutput::default())
    }
    async fn get_bucket_location(
        &self,
        _: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        ok(GetBucketLocationOutput::default())
    }
    async fn delete_bucket(
        &self,
        _: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        ok(DeleteBucketOutput::default())
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        drain(req.input.body).await?;
        ok(PutObjectOutput::default())
    }
    async fn get_object(
        &self,
        _: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        ok(GetObjectOutput {
            body: Some(StreamingBlob::from(s3s::Body::from(Bytes::from_static(
                b"hello",
            )))),
            content_length: Some(5),
            ..Default::default()
        })
    }
    async fn head_object(
        &self,
        _: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        ok(HeadObjectOutput::default())
    }
    async fn delete_object(
        &self,
        _: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        ok(DeleteObjectOutput::default())
    }
    async fn delete_objects(
        &self,
        _: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        ok(DeleteObjectsOutput::default())
    }
    async fn copy_object(
        &self,
        _: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        ok(CopyObjectOutput::default())
    }
    async fn list_objects_v2(
        &self,
        _: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        ok(ListObjectsV2Output::default())
    }
    async fn create_multipart_upload(
        &self,
        _: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        ok(CreateMultipartUploadOutput {
            upload_id: Some("upload".into()),
            ..Default::default()
        })
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        drain(req.input.body).await?;
        ok(UploadPartOutput::default())
    }
    async fn list_parts(
        &self,
        _: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        ok(ListPartsOutput::default())
    }
    async fn complete_multipart_upload(
        &self,
        _: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        ok(CompleteMultipartUploadOutput::default())
    }
    async fn abort_multipart_upload(
        &self,
        _: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        ok(AbortMultipartUploadOutput::default())
    }
}

/// Lets every signed request through, as a key scoped to all buckets;
/// refuses anonymous ones, as Aura does.
struct Signed;

#[async_trait::async_trait]
impl s3s::access::S3Access for Signed {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3s::s3_error!(
                AccessDenied,
                "sign the request with an access key"
            )),
        }
    }
}

static SERVICE: LazyLock<s3s::service::S3Service> = LazyLock::new(|| {
    let mut builder = s3s::service::S3ServiceBuilder::new(Store);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    builder.set_access(Signed);
    // The seeds are signed for a fixed moment; any moment is recent enough.
    let mut config = s3s::config::S3Config::default();
    config.presigned_url_max_skew_time_secs = u32::MAX;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    builder.build()
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
});

/// The request `data` spells, if it is one `http` can hold.
fn request(data: &[u8]) -> Option<http::Request<s3s::Body>> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next()?;
    let space = first.iter().position(|&b| b == b' ')?;
    let mut builder = http::Request::builder()
        .method(&first[..space])
        .uri(&first[space + 1..]);
    for line in lines {
        let colon = line.iter().position(|&b| b == b':')?;
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        builder = builder.header(&line[..colon], value);
    }
    let request = builder
        .body(s3s::Body::from(Bytes::copy_from_slice(body)))
        .ok()?;
    // A whole body that is not the one declared never reaches s3s: the
    // port answers 400 XAmzContentSHA256Mismatch.
    if payload::read_whole(request.method(), request.uri().path())
        && !payload::matches(request.headers(), body)
    {
        return None;
    }
    Some(request)
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = request(data) else {
        return;
    };
    RUNTIME.block_on(async {
        let response = match SERVICE.call(request).await {
            Ok(response) => response,
            Err(err) => panic!("transport error: {err:?}"),
        };
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        if std::env::var_os("AURA_FUZZ_SHOW").is_some() {
            eprintln!("{status} {body:?}");
        }
        let body = body.expect("a response body reads whole");
        if status.is_server_error() {
            assert!(
                status == http::StatusCode::NOT_IMPLEMENTED,
                "{status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    });
});
