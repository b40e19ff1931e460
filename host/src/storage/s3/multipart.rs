//! The multipart operations: uploads, parts, completion.

use super::api::{Api, given_headers, http_date, md5_header, metadata_of, timestamp};
use super::checksums::{Claimed, claimed, verified, write_error};
use crate::storage::{ObjectHeaders, PutOptions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::sync::Arc;

pub async fn create(
    api: &Api,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    let id = api
        .0
        .create_upload(
            &input.bucket,
            &input.key,
            PutOptions {
                content_type: input.content_type.clone(),
                metadata: metadata_of(input.metadata.clone()),
                headers: given_headers!(input),
                ..PutOptions::default()
            },
        )
        .await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(id),
        ..Default::default()
    }))
}

pub async fn upload_part(
    api: &Api,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let input = req.input;
    let body = input
        .body
        .ok_or_else(|| s3_error!(IncompleteBody, "the request has no body"))?;
    let claimed = claimed!(input, None, req.trailing_headers);
    let mismatch = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let etag = api
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

pub async fn list_parts(
    api: &Api,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let parts = api
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

pub async fn complete(
    api: &Api,
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
    let object = api
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

pub async fn abort(
    api: &Api,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    api.0
        .abort_upload(&req.input.bucket, &req.input.upload_id)
        .await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}
