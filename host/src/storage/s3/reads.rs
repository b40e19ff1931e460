//! GetObject and HeadObject: ranges, parts, conditions, checksums and the
//! headers an object is served with.

use super::api::{Api, condition_text, http_date, timestamp, unix_seconds};
use super::checksums::{as_fields, set_checksums};
use crate::storage::{Object, ObjectHeaders, etag_matches, inline_safe};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// A stored `Expires` read back (one that is not an HTTP date is left out).
fn expires_of(headers: &ObjectHeaders) -> Option<Timestamp> {
    Timestamp::parse(
        s3s::dto::TimestampFormat::HttpDate,
        headers.expires.as_deref()?,
    )
    .ok()
}

/// The stored checksums, when `x-amz-checksum-mode: ENABLED` asks for them
/// and the answer is the whole object (they are checksums of all of it).
fn checksums_asked(object: &Object, mode: Option<&ChecksumMode>, length: u64) -> Checksum {
    let enabled = mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
    if enabled && length == object.size {
        as_fields(&object.checksums)
    } else {
        Checksum::default()
    }
}

/// The bytes a GET or HEAD answers.
struct Span {
    start: u64,
    length: u64,
    content_range: Option<String>,
    /// With `partNumber`, how many parts the object has (if multipart).
    parts_count: Option<i32>,
}

/// The bytes of `object` that `range` or part `part_number` asks for.
fn span(object: &Object, range: Option<&Range>, part_number: Option<i32>) -> S3Result<Span> {
    let whole = |start: u64, length: u64, parts_count: Option<i32>| Span {
        start,
        length,
        content_range: (length != object.size || parts_count.is_some()).then(|| {
            format!(
                "bytes {start}-{}/{}",
                (start + length).saturating_sub(1),
                object.size
            )
        }),
        parts_count,
    };
    match (range, part_number) {
        (None, None) => Ok(whole(0, object.size, None)),
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "ask for a range or a part number, not both"
        )),
        (Some(range), None) => {
            let span = range.check(object.size).map_err(|_| {
                s3_error!(
                    InvalidRange,
                    "the requested range is not satisfiable: the object has {} bytes",
                    object.size
                )
            })?;
            Ok(whole(span.start, span.end - span.start, None))
        }
        // An object uploaded in one piece has one part: itself.
        (None, Some(1)) if object.parts.is_empty() => Ok(whole(0, object.size, None)),
        (None, Some(n)) => {
            let count = object.parts.len();
            let Some(index) = usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .filter(|&i| i < count)
            else {
                return Err(s3_error!(
                    InvalidPart,
                    "the object has {} part(s); part numbers start at 1",
                    count.max(1)
                ));
            };
            let start = object.parts[..index].iter().sum();
            Ok(whole(start, object.parts[index], Some(count as i32)))
        }
    }
}

/// A 304, with the validators a cache revalidates against (RFC 9110
/// 15.4.5: the ETag and Last-Modified a 200 would have sent).
fn not_modified(object: &Object) -> s3s::S3Error {
    let mut error = s3_error!(NotModified);
    let mut headers = http::HeaderMap::new();
    if let Ok(etag) = http::HeaderValue::from_str(&format!("\"{}\"", object.etag)) {
        headers.insert(http::header::ETAG, etag);
    }
    if let Ok(modified) = http::HeaderValue::from_str(&http_date(&timestamp(&object.modified))) {
        headers.insert(http::header::LAST_MODIFIED, modified);
    }
    error.set_headers(headers);
    error
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
        if !etag_matches(&condition_text(condition), &object.etag) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(since) = if_unmodified_since
        && modified > unix_seconds(since)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if let Some(condition) = if_none_match {
        if etag_matches(&condition_text(condition), &object.etag) {
            return Err(not_modified(object));
        }
    } else if let Some(since) = if_modified_since
        && modified <= unix_seconds(since)
    {
        return Err(not_modified(object));
    }
    Ok(())
}

pub async fn get(
    api: &Api,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let bucket = api.0.bucket(&input.bucket).await?;
    let object = api.0.head(&input.bucket, &input.key).await?;
    check_read_preconditions(
        &object,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let Span {
        start,
        length,
        content_range,
        parts_count,
    } = span(&object, input.range.as_ref(), input.part_number)?;
    let stream = api.0.read(&object, start, length).await?;
    let checksums = checksums_asked(&object, input.checksum_mode.as_ref(), length);
    let website = bucket.settings.website;
    // What a (presigned) request asks the response to say instead.
    let mut headers = object.headers.clone();
    let overrides = [
        (&mut headers.cache_control, input.response_cache_control),
        (
            &mut headers.content_disposition,
            input.response_content_disposition,
        ),
        (
            &mut headers.content_encoding,
            input.response_content_encoding,
        ),
        (
            &mut headers.content_language,
            input.response_content_language,
        ),
        (
            &mut headers.expires,
            input.response_expires.as_ref().map(http_date),
        ),
    ];
    // (s3s refuses values that are no header value before this runs.)
    for (stored, given) in overrides {
        if given.is_some() {
            *stored = given;
        }
    }
    let content_type = input.response_content_type.or(object.content_type);
    let attachment = !website && !inline_safe(content_type.as_deref());
    let disposition = match headers.content_disposition.take() {
        Some(given) if !attachment || given.trim_start().starts_with("attachment") => Some(given),
        _ => attachment.then(|| "attachment".to_owned()),
    };
    let mut output = GetObjectOutput {
        body: Some(StreamingBlob::wrap(stream)),
        content_length: Some(length as i64),
        content_range,
        parts_count,
        accept_ranges: Some("bytes".into()),
        expires: expires_of(&headers),
        cache_control: headers.cache_control,
        content_encoding: headers.content_encoding,
        content_language: headers.content_language,
        content_type,
        content_disposition: disposition,
        e_tag: Some(ETag::Strong(object.etag.clone())),
        last_modified: Some(timestamp(&object.modified)),
        metadata: Some(object.metadata.into_iter().collect()),
        ..Default::default()
    };
    set_checksums!(output, checksums);
    let mut response = S3Response::new(output);
    response.headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    if !website {
        response.headers.insert(
            http::header::CONTENT_SECURITY_POLICY,
            http::HeaderValue::from_static(crate::storage::OBJECT_CSP),
        );
    }
    Ok(response)
}

pub async fn head(
    api: &Api,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let object = api.0.head(&input.bucket, &input.key).await?;
    check_read_preconditions(
        &object,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let Span {
        length,
        content_range,
        parts_count,
        ..
    } = span(&object, input.range.as_ref(), input.part_number)?;
    let checksums = checksums_asked(&object, input.checksum_mode.as_ref(), length);
    let mut output = HeadObjectOutput {
        content_length: Some(length as i64),
        content_range,
        parts_count,
        accept_ranges: Some("bytes".into()),
        expires: expires_of(&object.headers),
        cache_control: object.headers.cache_control,
        content_disposition: object.headers.content_disposition,
        content_encoding: object.headers.content_encoding,
        content_language: object.headers.content_language,
        content_type: object.content_type,
        e_tag: Some(ETag::Strong(object.etag)),
        last_modified: Some(timestamp(&object.modified)),
        metadata: Some(object.metadata.into_iter().collect()),
        ..Default::default()
    };
    set_checksums!(output, checksums);
    Ok(S3Response::new(output))
}

/// GetObjectAttributes: the ETag, size, storage class, stored checksums
/// and parts (paged by `max-parts` and `part-number-marker`) asked for.
pub async fn attributes(
    api: &Api,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = req.input;
    let object = api.0.head(&input.bucket, &input.key).await?;
    let asked = |name: &str| {
        input
            .object_attributes
            .iter()
            .any(|a| a.as_str().eq_ignore_ascii_case(name))
    };
    let parts = asked(ObjectAttributes::OBJECT_PARTS)
        .then(|| {
            let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
            let after = input.part_number_marker.unwrap_or(0).max(0) as usize;
            let listed: Vec<ObjectPart> = object
                .parts
                .iter()
                .enumerate()
                .skip(after)
                .take(max)
                .map(|(i, size)| ObjectPart {
                    part_number: Some(i as i32 + 1),
                    size: Some(*size as i64),
                    ..Default::default()
                })
                .collect();
            let last = listed.last().and_then(|p| p.part_number);
            let truncated = after + listed.len() < object.parts.len();
            GetObjectAttributesParts {
                total_parts_count: Some(object.parts.len() as i32),
                part_number_marker: input.part_number_marker,
                next_part_number_marker: truncated.then_some(last).flatten(),
                max_parts: Some(max as i32),
                is_truncated: Some(truncated),
                parts: Some(listed),
            }
        })
        .filter(|_| !object.parts.is_empty());
    Ok(S3Response::new(GetObjectAttributesOutput {
        e_tag: asked(ObjectAttributes::ETAG).then(|| ETag::Strong(object.etag.clone())),
        object_size: asked(ObjectAttributes::OBJECT_SIZE).then_some(object.size as i64),
        storage_class: asked(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        checksum: (asked(ObjectAttributes::CHECKSUM) && !object.checksums.is_empty())
            .then(|| as_fields(&object.checksums)),
        object_parts: parts,
        last_modified: Some(timestamp(&object.modified)),
        ..Default::default()
    }))
}
