//! The multipart operations: uploads, parts, completion.

use super::api::{
    Api, condition_text, given_headers, http_date, md5_header, metadata_of, owner, timestamp,
};
use super::checksums::{Claimed, claimed, set_checksums, verified, write_error};
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
        checksum_algorithm: input.checksum_algorithm,
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
    let hashed = Arc::new(super::checksums::Hashed::default());
    let etag = api
        .0
        .upload_part(
            &input.bucket,
            &input.key,
            &input.upload_id,
            input.part_number,
            verified(body, claimed, hashed.clone()),
            md5_header(input.content_md5.as_deref())?,
        )
        .await
        .map_err(|err| write_error(err, &hashed))?;
    let mut output = UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    };
    set_checksums!(output, hashed.found());
    Ok(S3Response::new(output))
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
    let conditions = PutOptions {
        if_none_match: input
            .if_none_match
            .as_ref()
            .is_some_and(ETagCondition::is_any),
        if_match: input.if_match.as_ref().map(condition_text),
        ..PutOptions::default()
    };
    let object = api
        .0
        .complete_upload(
            &input.bucket,
            &input.key,
            &input.upload_id,
            &listed,
            &conditions,
        )
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

/// UploadPartCopy: a part from a range of an existing object (how clients
/// copy objects over 5 GB, and `aws s3 cp` any over its threshold).
pub async fn upload_part_copy(
    api: &Api,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    let CopySource::Bucket { bucket, key, .. } = &input.copy_source else {
        return Err(s3_error!(NotImplemented, "copy from buckets only"));
    };
    let source = api.0.head(bucket, key).await?;
    if let Some(condition) = &input.copy_source_if_match
        && !crate::storage::etag_matches(&condition_text(condition), &source.etag)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if let Some(condition) = &input.copy_source_if_none_match
        && crate::storage::etag_matches(&condition_text(condition), &source.etag)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    let (start, length) = match &input.copy_source_range {
        None => (0, source.size),
        Some(range) => copy_range(range, source.size)?,
    };
    let etag = api
        .0
        .copy_part(
            (&input.bucket, &input.key, &input.upload_id),
            input.part_number,
            &source,
            start,
            length,
        )
        .await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(etag)),
            last_modified: Some(timestamp(&crate::db::values::now())),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// `x-amz-copy-source-range: bytes=first-last` within an object of
/// `size` bytes, as (start, length).
fn copy_range(range: &str, size: u64) -> S3Result<(u64, u64)> {
    let parsed = range
        .strip_prefix("bytes=")
        .and_then(|span| span.split_once('-'))
        .and_then(|(first, last)| Some((first.parse::<u64>().ok()?, last.parse::<u64>().ok()?)));
    match parsed {
        None => Err(s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last"
        )),
        Some((first, last)) if first > last || last >= size => Err(s3_error!(
            InvalidRange,
            "the copy source range is not within the source object"
        )),
        Some((first, last)) => Ok((first, last - first + 1)),
    }
}

/// ListMultipartUploads: the uploads in progress, by key then start, with
/// `prefix`, `delimiter`, `key-marker`/`upload-id-marker` and
/// `max-uploads` (up to 1000).
pub async fn list_uploads(
    api: &Api,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let url = super::listing::url_encoding(input.encoding_type.as_ref())?;
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input
        .upload_id_marker
        .clone()
        .filter(|_| !key_marker.is_empty());
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut last: Option<(String, String)> = None;
    let mut truncated = false;
    let all = api.0.uploads(&input.bucket, &prefix).await?;
    // Past the key marker; at it, past the upload id marker (in the
    // listing's order when that upload is still listed, else by id).
    let marked = id_marker
        .as_ref()
        .and_then(|id| all.iter().position(|u| u.key == key_marker && &u.id == id));
    for (i, upload) in all.into_iter().enumerate() {
        let after = match (&id_marker, marked) {
            (Some(_), Some(at)) => i > at,
            (Some(id), None) => {
                upload.key > key_marker || (upload.key == key_marker && &upload.id > id)
            }
            (None, _) => upload.key > key_marker,
        };
        if !after {
            continue;
        }
        let common = delimiter.as_deref().and_then(|d| {
            let rest = &upload.key[prefix.len()..];
            rest.find(d)
                .map(|at| format!("{prefix}{}", &rest[..at + d.len()]))
        });
        if let Some(common) = &common
            && prefixes.last() == Some(common)
        {
            // Rolled up already: the next page starts past it too.
            last = Some((upload.key.clone(), upload.id.clone()));
            continue;
        }
        if uploads.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        last = Some((upload.key.clone(), upload.id.clone()));
        match common {
            Some(common) => prefixes.push(common),
            None => uploads.push(MultipartUpload {
                upload_id: Some(upload.id),
                key: Some(super::listing::encoded(url, upload.key)),
                initiated: Some(timestamp(&upload.created)),
                owner: Some(owner()),
                initiator: Some(Initiator {
                    id: owner().id,
                    display_name: owner().display_name,
                }),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            }),
        }
    }
    let (next_key, next_id) = match (truncated, last) {
        (true, Some((key, id))) => (Some(key), Some(id)),
        _ => (None, None),
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: next_key.map(|k| super::listing::encoded(url, k)),
        encoding_type: input.encoding_type,
        next_upload_id_marker: next_id,
        uploads: Some(uploads),
        common_prefixes: Some(
            prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(super::listing::encoded(url, p)),
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
