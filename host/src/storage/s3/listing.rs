//! Object listings: ListObjectsV2 and the older ListObjects (v1), with
//! `encoding-type=url`.

use super::api::{Api, owner, timestamp};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// Past every key under a rolled-up common prefix (see `Storage::list`).
const PAST: char = '\u{10FFFF}';

/// A page of objects and common prefixes, and the cursor after it.
struct Page {
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    next: Option<String>,
}

/// `text` as `encoding-type=url` asks (percent-encoded but for `/` and
/// unreserved characters), or as it is.
pub fn encoded(url: bool, text: String) -> String {
    if url {
        crate::storage::encode_key(&text)
    } else {
        text
    }
}

/// Whether the request asks for `encoding-type=url` (any other value is
/// refused).
pub fn url_encoding(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "encoding-type must be url")),
    }
}

#[allow(clippy::too_many_arguments)]
async fn page(
    api: &Api,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
    fetch_owner: bool,
    url: bool,
) -> S3Result<Page> {
    let listing = api.0.list(bucket, prefix, delimiter, after, max).await?;
    let owner = fetch_owner.then(owner);
    let contents = listing
        .objects
        .into_iter()
        .map(|o| Object {
            key: Some(encoded(url, o.key)),
            size: Some(o.size as i64),
            e_tag: Some(ETag::Strong(o.etag)),
            last_modified: Some(timestamp(&o.modified)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: owner.clone(),
            ..Default::default()
        })
        .collect();
    let prefixes = listing
        .prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(encoded(url, p)),
        })
        .collect();
    // With max-keys=0 nothing is listed and there is no next page to ask
    // for (a paginator would ask for the same empty page forever).
    Ok(Page {
        contents,
        prefixes,
        next: listing.next.filter(|_| max > 0),
    })
}

/// ListObjectsV2; the continuation token is the cursor, base64-encoded.
pub async fn v2(
    api: &Api,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    use base64::Engine as _;
    let input = req.input;
    let url = url_encoding(input.encoding_type.as_ref())?;
    let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
    let after = match &input.continuation_token {
        Some(token) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))?,
        ),
        None => input.start_after.clone(),
    };
    let prefix = input.prefix.clone().unwrap_or_default();
    let page = page(
        api,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        after.as_deref(),
        max,
        input.fetch_owner.unwrap_or(false),
        url,
    )
    .await?;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encoded(url, prefix)),
        delimiter: input.delimiter.map(|d| encoded(url, d)),
        max_keys: Some(max as i32),
        key_count: Some((page.contents.len() + page.prefixes.len()) as i32),
        is_truncated: Some(page.next.is_some()),
        continuation_token: input.continuation_token,
        next_continuation_token: page
            .next
            .map(|next| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next)),
        start_after: input.start_after.map(|s| encoded(url, s)),
        encoding_type: input.encoding_type,
        contents: Some(page.contents),
        common_prefixes: Some(page.prefixes),
        ..Default::default()
    }))
}

/// ListObjects (v1): `marker` is a key, or a common prefix a page ended
/// on (the next page starts past every key under it), as S3's
/// `NextMarker` is.
pub async fn v1(
    api: &Api,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let url = url_encoding(input.encoding_type.as_ref())?;
    let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    // A marker that is a common prefix (the prefix, then text whose first
    // delimiter ends it).
    let rolled_up = |marker: &str, d: &str| {
        marker
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.find(d).map(|at| at + d.len() == rest.len()))
            .unwrap_or(false)
    };
    let after = input.marker.clone().map(|marker| match &delimiter {
        Some(d) if rolled_up(&marker, d) => format!("{marker}{PAST}"),
        _ => marker,
    });
    let page = page(
        api,
        &input.bucket,
        &prefix,
        delimiter.as_deref(),
        after.as_deref(),
        max,
        true,
        url,
    )
    .await?;
    let next = page
        .next
        .map(|next| next.strip_suffix(PAST).map(str::to_owned).unwrap_or(next));
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(encoded(url, prefix)),
        delimiter: input.delimiter.map(|d| encoded(url, d)),
        marker: Some(encoded(url, input.marker.unwrap_or_default())),
        max_keys: Some(max as i32),
        is_truncated: Some(next.is_some()),
        next_marker: next.map(|n| encoded(url, n)),
        encoding_type: input.encoding_type,
        contents: Some(page.contents),
        common_prefixes: Some(page.prefixes),
        ..Default::default()
    }))
}
