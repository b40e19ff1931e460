//! The S3 operations over the storage service.

use super::checksums::{Claimed, Hashed, claimed, set_checksums, verified, write_error};
use super::{listing, multipart, reads};
use crate::storage::{BucketSettings, ObjectHeaders, PutOptions, Storage, etag_matches};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The operations.
pub struct Api(pub Arc<Storage>);

/// The owner of every bucket and object: the server's one account.
pub fn owner() -> Owner {
    Owner {
        id: Some("aura".into()),
        display_name: Some("aura".into()),
    }
}

pub fn timestamp(time: &str) -> Timestamp {
    let parsed = chrono::DateTime::parse_from_rfc3339(time)
        .map(|t| std::time::SystemTime::from(t.with_timezone(&chrono::Utc)))
        .unwrap_or(std::time::UNIX_EPOCH);
    Timestamp::from(parsed)
}

pub fn unix_seconds(time: &Timestamp) -> i64 {
    time::OffsetDateTime::from(time.clone()).unix_timestamp()
}

pub fn md5_header(value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
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

pub fn condition_text(condition: &ETagCondition) -> String {
    match condition {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(etag) => etag.value().to_owned(),
    }
}

/// The standard headers (`Cache-Control`…) a write `$input` gives (puts,
/// copies and new uploads carry the same fields).
macro_rules! given_headers {
    ($input:ident) => {
        ObjectHeaders {
            cache_control: $input.cache_control.clone(),
            content_disposition: $input.content_disposition.clone(),
            content_encoding: $input.content_encoding.clone(),
            content_language: $input.content_language.clone(),
            expires: $input.expires.as_ref().map(http_date),
        }
    };
}
pub(super) use given_headers;

/// `time` as an HTTP date.
pub fn http_date(time: &Timestamp) -> String {
    let mut text = Vec::new();
    let _ = time.format(s3s::dto::TimestampFormat::HttpDate, &mut text);
    String::from_utf8(text).unwrap_or_default()
}

pub fn metadata_of(metadata: Option<Metadata>) -> BTreeMap<String, String> {
    metadata.unwrap_or_default().into_iter().collect()
}

#[async_trait::async_trait]
impl S3 for Api {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let key = super::Scopes(self.0.clone())
            .key(req.credentials.as_ref())
            .await?;
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
        let hashed = Arc::new(Hashed::default());
        let options = PutOptions {
            content_type: input.content_type,
            metadata: metadata_of(input.metadata),
            headers: given_headers!(input),
            content_md5: md5_header(input.content_md5.as_deref())?,
            if_none_match: input
                .if_none_match
                .as_ref()
                .is_some_and(ETagCondition::is_any),
            if_match: input.if_match.as_ref().map(condition_text),
            owner: None,
            checksums: hashed.checksums.clone(),
        };
        let object = self
            .0
            .put(
                &input.bucket,
                &input.key,
                verified(body, claimed, hashed.clone()),
                options,
            )
            .await
            .map_err(|err| write_error(err, &hashed))?;
        let mut output = PutObjectOutput {
            e_tag: Some(ETag::Strong(object.etag)),
            size: Some(object.size as i64),
            checksum_type: (!object.checksums.is_empty())
                .then(|| ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
            ..Default::default()
        };
        set_checksums!(output, hashed.found());
        Ok(S3Response::new(output))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        reads::get(self, req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        reads::attributes(self, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        reads::head(self, req).await
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
                    let err = s3s::S3Error::from(err);
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
            && !etag_matches(&condition_text(condition), &source.etag)
        {
            return Err(s3_error!(PreconditionFailed));
        }
        if let Some(condition) = &input.copy_source_if_none_match
            && etag_matches(&condition_text(condition), &source.etag)
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
        let replace = replacing.then(|| PutOptions {
            content_type: input.content_type.clone(),
            metadata: metadata_of(input.metadata.clone()),
            headers: given_headers!(input),
            ..PutOptions::default()
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

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        listing::v1(self, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        listing::v2(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req).await
    }
}
