//! The S3-compatible API driven by a real S3 client (the AWS SDK for Rust):
//! buckets, objects, listing, conditional and range requests, copies,
//! multipart uploads, presigned URLs; refused signatures, scopes and keys.

use crate::support::{Aura, assert_error};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt as _;
use md5::Digest as _;
use serde_json::{Value, json};
use std::time::Duration;

/// An S3 client of `aura`'s S3 API with these credentials (sending
/// checksums only where S3 requires them).
pub fn client(aura: &Aura, access_key: &str, secret: &str) -> Client {
    client_with(
        aura,
        access_key,
        secret,
        RequestChecksumCalculation::WhenRequired,
    )
}

pub fn client_with(
    aura: &Aura,
    access_key: &str,
    secret: &str,
    checksums: RequestChecksumCalculation,
) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(&aura.s3_url)
        .credentials_provider(Credentials::new(access_key, secret, None, None, "test"))
        .region(Region::new("us-east-1"))
        .force_path_style(true)
        .request_checksum_calculation(checksums)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// Creates an access key over the admin API; returns (access key, secret).
pub async fn key(aura: &Aura, buckets: Value) -> (String, String) {
    let (status, body) = aura
        .admin_post(
            "/api/admin/storage/keys",
            json!({"description": "test", "buckets": buckets}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["accessKey"].as_str().unwrap().to_owned(),
        body["secretKey"].as_str().unwrap().to_owned(),
    )
}

/// A client whose key may do everything.
pub async fn admin_client(aura: &Aura) -> Client {
    let (access, secret) = key(aura, json!({"*": "read-write"})).await;
    client(aura, &access, &secret)
}

/// The S3 error code and HTTP status of a failed call.
pub fn failure<E: ProvideErrorMetadata>(err: SdkError<E, HttpResponse>) -> (String, u16) {
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or("");
    (code.to_owned(), status)
}

pub async fn body_of(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

/// Objects' metadata lives in the collections database: both backends.
mod buckets_objects_listing_ranges_conditions_and_copies {
    #[tokio::test]
    async fn sqlite() {
        let db = crate::database::Db::sqlite();
        super::objects(&db.aura).await;
        db.finish().await;
    }

    #[tokio::test]
    async fn postgres() {
        if let Some(db) = crate::database::Db::postgres().await {
            super::objects(&db.aura).await;
            db.finish().await;
        }
    }
}

async fn objects(aura: &Aura) {
    let s3 = admin_client(aura).await;

    s3.create_bucket().bucket("photos").send().await.unwrap();
    let (code, _) = failure(
        s3.create_bucket()
            .bucket("photos")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "BucketAlreadyOwnedByYou");
    let (code, status) = failure(
        s3.create_bucket()
            .bucket("Bad_Name")
            .send()
            .await
            .unwrap_err(),
    );
    assert!(status == 400, "{code} {status}");
    s3.head_bucket().bucket("photos").send().await.unwrap();
    let buckets = s3.list_buckets().send().await.unwrap();
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["photos"]);

    let put = s3
        .put_object()
        .bucket("photos")
        .key("2026/cat.txt")
        .content_type("text/plain")
        .metadata("owner", "ada")
        .body(ByteStream::from_static(b"hello, cat"))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().trim_matches('"').to_owned();
    assert_eq!(etag, hex::encode(md5::Md5::digest(b"hello, cat")));

    let got = s3
        .get_object()
        .bucket("photos")
        .key("2026/cat.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.metadata().unwrap()["owner"], "ada");
    assert_eq!(got.content_length(), Some(10));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"hello, cat"
    );
    let head = s3
        .head_object()
        .bucket("photos")
        .key("2026/cat.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(10));
    assert_eq!(
        head.e_tag().map(|e| e.trim_matches('"')),
        Some(etag.as_str())
    );

    // Ranges.
    let part = s3
        .get_object()
        .bucket("photos")
        .key("2026/cat.txt")
        .range("bytes=7-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.content_range(), Some("bytes 7-9/10"));
    assert_eq!(
        part.body.collect().await.unwrap().into_bytes().as_ref(),
        b"cat"
    );
    let suffix = s3
        .get_object()
        .bucket("photos")
        .key("2026/cat.txt")
        .range("bytes=-3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        suffix.body.collect().await.unwrap().into_bytes().as_ref(),
        b"cat"
    );
    let (code, status) = failure(
        s3.get_object()
            .bucket("photos")
            .key("2026/cat.txt")
            .range("bytes=50-60")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((code.as_str(), status), ("InvalidRange", 416));

    // Conditions.
    let (_, status) = failure(
        s3.get_object()
            .bucket("photos")
            .key("2026/cat.txt")
            .if_none_match(format!("\"{etag}\""))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 304);
    let (code, status) = failure(
        s3.get_object()
            .bucket("photos")
            .key("2026/cat.txt")
            .if_match("\"0123\"")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((code.as_str(), status), ("PreconditionFailed", 412));
    s3.get_object()
        .bucket("photos")
        .key("2026/cat.txt")
        .if_match(format!("\"{etag}\""))
        .send()
        .await
        .unwrap();
    let long_ago = DateTime::from_secs(chrono::Utc::now().timestamp() - 3600);
    let in_an_hour = DateTime::from_secs(chrono::Utc::now().timestamp() + 3600);
    let (_, status) = failure(
        s3.get_object()
            .bucket("photos")
            .key("2026/cat.txt")
            .if_modified_since(in_an_hour)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 304);
    s3.head_object()
        .bucket("photos")
        .key("2026/cat.txt")
        .if_modified_since(long_ago)
        .send()
        .await
        .unwrap();
    let (_, status) = failure(
        s3.head_object()
            .bucket("photos")
            .key("2026/cat.txt")
            .if_unmodified_since(long_ago)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 412);
    let (code, _) = failure(
        s3.put_object()
            .bucket("photos")
            .key("2026/cat.txt")
            .if_none_match("*")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "PreconditionFailed");
    assert_eq!(
        body_of(&s3, "photos", "2026/cat.txt").await,
        b"hello, cat",
        "a refused write loses nothing"
    );

    // A wrong Content-MD5 stores nothing.
    let (code, _) = failure(
        s3.put_object()
            .bucket("photos")
            .key("bad.txt")
            .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "BadDigest");
    let (code, status) = failure(
        s3.head_object()
            .bucket("photos")
            .key("bad.txt")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404, "{code}");

    // Copies keep metadata unless replaced.
    s3.copy_object()
        .bucket("photos")
        .key("copy.txt")
        .copy_source("photos/2026/cat.txt")
        .send()
        .await
        .unwrap();
    let copied = s3
        .get_object()
        .bucket("photos")
        .key("copy.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(copied.metadata().unwrap()["owner"], "ada");
    assert_eq!(
        copied.body.collect().await.unwrap().into_bytes().as_ref(),
        b"hello, cat"
    );

    // Listing: prefixes, delimiters, pages.
    for key in [
        "2026/dog.txt",
        "2026/jan/a.txt",
        "2026/jan/b.txt",
        "2027/x.txt",
        "root.txt",
    ] {
        s3.put_object()
            .bucket("photos")
            .key(key)
            .body(ByteStream::from_static(b"1"))
            .send()
            .await
            .unwrap();
    }
    let top = s3
        .list_objects_v2()
        .bucket("photos")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = top.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<&str> = top
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["copy.txt", "root.txt"]);
    assert_eq!(prefixes, ["2026/", "2027/"]);
    let under = s3
        .list_objects_v2()
        .bucket("photos")
        .prefix("2026/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = under.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<&str> = under
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["2026/cat.txt", "2026/dog.txt"]);
    assert_eq!(prefixes, ["2026/jan/"]);
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("photos")
            .max_keys(3)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        all.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        if page.is_truncated() != Some(true) {
            break;
        }
        token = page.next_continuation_token().map(str::to_owned);
    }
    assert_eq!(pages, 3);
    assert_eq!(
        all,
        [
            "2026/cat.txt",
            "2026/dog.txt",
            "2026/jan/a.txt",
            "2026/jan/b.txt",
            "2027/x.txt",
            "copy.txt",
            "root.txt"
        ]
    );

    // Deleting: a bucket with objects stays.
    let (code, status) = failure(
        s3.delete_bucket()
            .bucket("photos")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((code.as_str(), status), ("BucketNotEmpty", 409));
    for key in &all {
        s3.delete_object()
            .bucket("photos")
            .key(key)
            .send()
            .await
            .unwrap();
    }
    s3.delete_object()
        .bucket("photos")
        .key("never-existed")
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("photos").send().await.unwrap();
    let (code, _) = failure(s3.head_bucket().bucket("photos").send().await.unwrap_err());
    assert!(
        code.is_empty() || code == "NoSuchBucket" || code == "NotFound",
        "{code}"
    );
    assert_eq!(
        std::fs::read_dir(aura.data_dir().join("storage/tmp"))
            .unwrap()
            .flat_map(|node| std::fs::read_dir(node.unwrap().path()).unwrap())
            .count(),
        0,
        "no temporary files are left"
    );
}

#[tokio::test]
async fn multipart_uploads_and_presigned_urls() {
    let aura = Aura::start();
    let s3 = admin_client(&aura).await;
    s3.create_bucket().bucket("big").send().await.unwrap();

    let upload = s3
        .create_multipart_upload()
        .bucket("big")
        .key("video.bin")
        .content_type("video/mp4")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap().to_owned();
    let first = vec![b'a'; 5 * 1024 * 1024];
    let second = vec![b'b'; 1000];
    // Out of order, and part 2 sent twice (the second replaces the first).
    let mut etags = std::collections::BTreeMap::new();
    for (number, bytes) in [(2, vec![b'x'; 10]), (1, first.clone()), (2, second.clone())] {
        let sent = s3
            .upload_part()
            .bucket("big")
            .key("video.bin")
            .upload_id(&id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap();
        etags.insert(number, sent.e_tag().unwrap().to_owned());
    }
    let parts: Vec<CompletedPart> = etags
        .iter()
        .map(|(number, etag)| {
            CompletedPart::builder()
                .part_number(*number)
                .e_tag(etag)
                .build()
        })
        .collect();
    let listed = s3
        .list_parts()
        .bucket("big")
        .key("video.bin")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let sizes: Vec<(i32, i64)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    assert_eq!(sizes, [(1, 5 * 1024 * 1024), (2, 1000)]);
    let done = s3
        .complete_multipart_upload()
        .bucket("big")
        .key("video.bin")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(done.e_tag().unwrap().trim_matches('"').ends_with("-2"));
    let whole = body_of(&s3, "big", "video.bin").await;
    assert_eq!(whole.len(), first.len() + second.len());
    assert!(whole[..first.len()] == first[..] && whole[first.len()..] == second[..]);
    let head = s3
        .head_object()
        .bucket("big")
        .key("video.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("video/mp4"));
    let (code, _) = failure(
        s3.list_parts()
            .bucket("big")
            .key("video.bin")
            .upload_id(&id)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "NoSuchUpload", "a completed upload is gone");

    // A small part that is not the last is refused; aborting drops an upload.
    let small = s3
        .create_multipart_upload()
        .bucket("big")
        .key("small.bin")
        .send()
        .await
        .unwrap();
    let small_id = small.upload_id().unwrap().to_owned();
    let mut small_parts = Vec::new();
    for number in [1, 2] {
        let sent = s3
            .upload_part()
            .bucket("big")
            .key("small.bin")
            .upload_id(&small_id)
            .part_number(number)
            .body(ByteStream::from_static(b"tiny"))
            .send()
            .await
            .unwrap();
        small_parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(sent.e_tag().unwrap())
                .build(),
        );
    }
    let (code, _) = failure(
        s3.complete_multipart_upload()
            .bucket("big")
            .key("small.bin")
            .upload_id(&small_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(small_parts))
                    .build(),
            )
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "EntityTooSmall");
    s3.abort_multipart_upload()
        .bucket("big")
        .key("small.bin")
        .upload_id(&small_id)
        .send()
        .await
        .unwrap();
    let (code, _) = failure(
        s3.list_parts()
            .bucket("big")
            .key("small.bin")
            .upload_id(&small_id)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "NoSuchUpload");

    // Presigned URLs: work for their method and key until they expire.
    let http = reqwest::Client::new();
    let put = s3
        .put_object()
        .bucket("big")
        .key("shared.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let response = http
        .put(put.uri())
        .body("via a presigned URL")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let get = s3
        .get_object()
        .bucket("big")
        .key("shared.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let response = http.get(get.uri()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "via a presigned URL");
    let forbidden = http.delete(get.uri()).send().await.unwrap();
    assert_eq!(forbidden.status(), 403, "a GET URL does not delete");
    let other_key = get.uri().replace("/big/shared.txt", "/big/video.bin");
    assert_eq!(
        http.get(&other_key).send().await.unwrap().status(),
        403,
        "nor reads another key"
    );
    let short = s3
        .get_object()
        .bucket("big")
        .key("shared.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = http.get(short.uri()).send().await.unwrap();
    assert_eq!(expired.status(), 403, "an expired URL is refused");
    assert!(expired.text().await.unwrap().contains("AccessDenied"));
}

#[tokio::test]
async fn signatures_scopes_limits_hostile_keys_and_active_content() {
    let aura = Aura::start();
    let s3 = admin_client(&aura).await;
    for bucket in ["public-site", "private"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    s3.put_object()
        .bucket("private")
        .key("secret.txt")
        .body(ByteStream::from_static(b"top secret"))
        .send()
        .await
        .unwrap();

    // Unsigned, wrongly signed and unknown keys are refused.
    let unsigned = reqwest::get(format!("{}/private/secret.txt", aura.s3_url))
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    let (access, _) = key(&aura, json!({"private": "read"})).await;
    let (code, status) = failure(
        client(&aura, &access, "not-the-secret")
            .get_object()
            .bucket("private")
            .key("secret.txt")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((code.as_str(), status), ("SignatureDoesNotMatch", 403));
    let (code, _) = failure(
        client(&aura, "AKNOSUCHKEY000000000", "x")
            .list_buckets()
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidAccessKeyId");
    // Malformed dates (in a header, a presigned query, a credential scope)
    // are refused, not a dropped connection (s3s's date parser panicked in
    // debug builds on a non-digit, found by the fuzz target `s3`).
    let http = reqwest::Client::new();
    let scope = format!("{access}/2099010#/us-east-1/s3/aws4_request");
    let header = http
        .get(format!("{}/private/secret.txt", aura.s3_url))
        .header("x-amz-date", "20990101T00#000Z")
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host;x-amz-date, Signature={}",
                "0".repeat(64)
            ),
        )
        .send()
        .await
        .unwrap();
    let presigned = http
        .get(format!(
            "{}/private/secret.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date=2099%23101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
            aura.s3_url,
            scope.replace('/', "%2F").replace('#', "%23"),
            "0".repeat(64)
        ))
        .send()
        .await
        .unwrap();
    for response in [header, presigned] {
        assert!(response.status().is_client_error(), "{}", response.status());
        assert!(response.text().await.unwrap().contains("<Error>"));
    }

    // A read-only key scoped to one bucket.
    let (access, secret) = key(&aura, json!({"private": "read"})).await;
    let reader = client(&aura, &access, &secret);
    assert_eq!(
        body_of(&reader, "private", "secret.txt").await,
        b"top secret"
    );
    let listed = reader.list_buckets().send().await.unwrap();
    assert_eq!(
        listed
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .collect::<Vec<_>>(),
        ["private"]
    );
    for result in [
        reader
            .put_object()
            .bucket("private")
            .key("x")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .map(|_| ())
            .map_err(failure),
        reader
            .delete_object()
            .bucket("private")
            .key("secret.txt")
            .send()
            .await
            .map(|_| ())
            .map_err(failure),
        reader
            .get_object()
            .bucket("public-site")
            .key("x")
            .send()
            .await
            .map(|_| ())
            .map_err(failure),
        reader
            .create_bucket()
            .bucket("mine")
            .send()
            .await
            .map(|_| ())
            .map_err(failure),
        reader
            .copy_object()
            .bucket("private")
            .key("copy")
            .copy_source("public-site/x")
            .send()
            .await
            .map(|_| ())
            .map_err(failure),
    ] {
        let (code, status) = result.unwrap_err();
        assert_eq!((code.as_str(), status), ("AccessDenied", 403));
    }
    assert_eq!(body_of(&s3, "private", "secret.txt").await, b"top secret");

    // Keys that could confuse are refused and store nothing.
    for hostile in [
        "../escape.txt",
        "a/../../b",
        "a//b",
        "/absolute",
        &"k".repeat(1025),
    ] {
        let result = s3
            .put_object()
            .bucket("private")
            .key(hostile)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        let (code, status) = failure(result.unwrap_err());
        assert!(
            status == 400 || status == 403,
            "{hostile:?}: {code} {status}"
        );
    }
    let all = s3.list_objects_v2().bucket("private").send().await.unwrap();
    assert_eq!(
        all.contents()
            .iter()
            .filter_map(|o| o.key())
            .collect::<Vec<_>>(),
        ["secret.txt"]
    );
    assert!(
        !aura.data_dir().join("escape.txt").exists()
            && !aura.data_dir().join("storage/escape.txt").exists()
    );

    // Size limits per bucket.
    let limited = aura
        .http
        .put(aura.at("/api/admin/storage/buckets/private"))
        .bearer_auth(&aura.token)
        .json(&json!({"maxObjectBytes": 1024}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 200);
    let (code, status) = failure(
        s3.put_object()
            .bucket("private")
            .key("big")
            .body(ByteStream::from(vec![0u8; 2048]))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((code.as_str(), status), ("EntityTooLarge", 413));
    s3.put_object()
        .bucket("private")
        .key("fits")
        .body(ByteStream::from(vec![0u8; 1024]))
        .send()
        .await
        .unwrap();

    // Active content downloads as an attachment unless the bucket is a website.
    for bucket in ["private", "public-site"] {
        s3.put_object()
            .bucket(bucket)
            .key("page.html")
            .content_type("text/html")
            .body(ByteStream::from_static(b"<script>alert(1)</script>"))
            .send()
            .await
            .unwrap();
    }
    aura.http
        .put(aura.at("/api/admin/storage/buckets/public-site"))
        .bearer_auth(&aura.token)
        .json(&json!({"website": true}))
        .send()
        .await
        .unwrap();
    let attachment = s3
        .get_object()
        .bucket("private")
        .key("page.html")
        .send()
        .await
        .unwrap();
    assert_eq!(attachment.content_disposition(), Some("attachment"));
    let inline = s3
        .get_object()
        .bucket("public-site")
        .key("page.html")
        .send()
        .await
        .unwrap();
    assert_eq!(inline.content_disposition(), None);
    let presigned = s3
        .get_object()
        .bucket("private")
        .key("page.html")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let raw = reqwest::get(presigned.uri()).await.unwrap();
    assert_eq!(raw.headers()["x-content-type-options"], "nosniff");
    assert_eq!(raw.headers()["content-disposition"], "attachment");

    // Types a browser reads otherwise than a lenient parser (a second type
    // after a comma, XSLT, SVG) are attachments too, on the S3 port and
    // over REST, and nothing served from a bucket runs scripts.
    let tricks = [
        "text/plain;,text/html",
        "text/xsl",
        "application/octet-stream;,image/svg+xml",
        "image/svg+xml",
        "text/html",
    ];
    for (i, content_type) in tricks.iter().enumerate() {
        let key = format!("trick-{i}");
        s3.put_object()
            .bucket("private")
            .key(&key)
            .content_type(*content_type)
            .body(ByteStream::from_static(b"<script>alert(1)</script>"))
            .send()
            .await
            .unwrap();
        let got = s3
            .get_object()
            .bucket("private")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.content_disposition(),
            Some("attachment"),
            "{content_type}"
        );
        let rest = aura
            .http
            .get(aura.at(&format!("/api/storage/private/{key}")))
            .bearer_auth(&aura.token)
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status(), 200);
        let header = |name: &str| rest.headers()[name].to_str().unwrap().to_owned();
        assert!(
            header("content-disposition").starts_with("attachment"),
            "{content_type}"
        );
        assert!(
            header("content-security-policy").contains("sandbox"),
            "{content_type}"
        );
    }
    s3.put_object()
        .bucket("private")
        .key("photo.png")
        .content_type("image/png")
        .body(ByteStream::from_static(b"\x89PNG"))
        .send()
        .await
        .unwrap();
    let photo = s3
        .get_object()
        .bucket("private")
        .key("photo.png")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let photo = reqwest::get(photo.uri()).await.unwrap();
    assert!(
        photo.headers().get("content-disposition").is_none(),
        "an image shows inline"
    );
    assert!(
        photo.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
}

#[tokio::test]
async fn the_admin_api_manages_buckets_and_keys() {
    let aura = Aura::start();
    let (status, bucket) = aura
        .admin_post(
            "/api/admin/storage/buckets",
            json!({"name": "avatars", "maxObjectBytes": 1000000}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(bucket["settings"]["maxObjectBytes"], 1000000);
    let (status, body) = aura
        .admin_post("/api/admin/storage/buckets", json!({"name": "avatars"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("bucket_exists"))
    );
    let (status, body) = aura
        .admin_post("/api/admin/storage/buckets", json!({"name": "../etc"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_name"))
    );
    let (status, body) = aura
        .admin_post("/api/admin/storage/keys", json!({"buckets": {}}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_name"))
    );
    let (status, body) = aura
        .admin_post(
            "/api/admin/storage/keys",
            json!({"buckets": {"avatars": "admin"}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );

    let (access, secret) = key(&aura, json!({"avatars": "read-write"})).await;
    let (_, keys) = aura.admin_get("/api/admin/storage/keys").await;
    let listed = keys["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["accessKey"], access);
    assert!(
        listed[0].get("secretKey").is_none(),
        "secrets are shown once"
    );
    let s3 = client(&aura, &access, &secret);
    s3.put_object()
        .bucket("avatars")
        .key("me.png")
        .body(ByteStream::from_static(b"png"))
        .send()
        .await
        .unwrap();

    let unauthorised = aura
        .http
        .get(aura.at("/api/admin/storage/keys"))
        .send()
        .await
        .unwrap();
    assert_error(unauthorised, 401, "unauthorized").await;
    let deleted = aura
        .http
        .delete(aura.at(&format!("/api/admin/storage/keys/{access}")))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (code, _) = failure(
        s3.get_object()
            .bucket("avatars")
            .key("me.png")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        code, "InvalidAccessKeyId",
        "a deleted key stops working at once"
    );
    let refused = aura
        .http
        .delete(aura.at("/api/admin/storage/buckets/avatars"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_error(refused, 409, "bucket_not_empty").await;
}

#[tokio::test]
async fn a_1_gib_upload_streams_in_bounded_memory() {
    const GIB: u64 = 1024 * 1024 * 1024;
    const CHUNK: usize = 1024 * 1024;
    let aura = Aura::start();
    let s3 = admin_client(&aura).await;
    s3.create_bucket().bucket("large").send().await.unwrap();
    let before = aura.peak_rss();

    // A presigned PUT with a body generated on the fly: nothing buffers it.
    let url = s3
        .put_object()
        .bucket("large")
        .key("gib.bin")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap();
    let chunks = futures::stream::iter(0..GIB as usize / CHUNK)
        .map(|i| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![(i % 251) as u8; CHUNK])));
    let response = reqwest::Client::new()
        .put(url.uri())
        .header("content-length", GIB)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let head = s3
        .head_object()
        .bucket("large")
        .key("gib.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(GIB as i64));
    // Read it back through a range at the end: the last chunk's byte value.
    let tail = s3
        .get_object()
        .bucket("large")
        .key("gib.bin")
        .range("bytes=-4")
        .send()
        .await
        .unwrap();
    let last = ((GIB as usize / CHUNK - 1) % 251) as u8;
    assert_eq!(
        tail.body.collect().await.unwrap().into_bytes().as_ref(),
        [last; 4]
    );

    let growth = aura.peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS grew by {} MiB for a 1 GiB upload",
        growth / (1024 * 1024)
    );
    assert!(
        growth < 128 * 1024 * 1024,
        "peak RSS grew by {growth} bytes"
    );
}

/// Registers a user; returns their access token and id.
pub(crate) async fn user(aura: &Aura, email: &str) -> (String, String) {
    let response = aura
        .http
        .post(aura.at("/api/auth/register"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (
        body["accessToken"].as_str().unwrap().to_owned(),
        body["user"]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn rest_uploads_and_downloads_follow_bucket_rules() {
    let aura = Aura::start();
    let http = &aura.http;
    let (status, body) = aura
        .admin_post(
            "/api/admin/storage/buckets",
            json!({"name": "avatars", "viewRule": "", "nope": 1}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (status, body) = aura
        .admin_post(
            "/api/admin/storage/buckets",
            json!({"name": "avatars", "viewRule": "nope = 1"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_rule")),
        "{body}"
    );
    assert!(
        body["error"]["details"]["problems"]["viewRule"].is_string(),
        "each problem is named by its rule: {body}"
    );
    let (status, _) = aura
        .admin_post(
            "/api/admin/storage/buckets",
            json!({
                "name": "avatars",
                "viewRule": "",
                "createRule": "@request.auth.id != '' && size <= 1000",
                "updateRule": "owner = @request.auth.id",
                "deleteRule": "owner = @request.auth.id",
            }),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = aura
        .admin_post(
            "/api/admin/storage/buckets",
            json!({
                "name": "docs",
                "listRule": "owner = @request.auth.id",
                "viewRule": "owner = @request.auth.id",
                "createRule": "@request.auth.id != ''",
            }),
        )
        .await;
    assert_eq!(status, 201);
    let (alice, alice_id) = user(&aura, "alice@example.com").await;
    let (bob, _) = user(&aura, "bob@example.com").await;
    let url = |path: &str| aura.at(path);

    // Create: signed in, and small enough (the declared length).
    let anonymous = http
        .put(url("/api/storage/avatars/alice.png"))
        .body("png")
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 403, "forbidden").await;
    let too_big = http
        .put(url("/api/storage/avatars/alice.png"))
        .bearer_auth(&alice)
        .body(vec![0u8; 2000])
        .send()
        .await
        .unwrap();
    assert_error(too_big, 403, "forbidden").await;
    let created = http
        .put(url("/api/storage/avatars/alice.png"))
        .bearer_auth(&alice)
        .header("content-type", "image/png")
        .body("png bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let object: Value = created.json().await.unwrap();
    assert_eq!(object["owner"], alice_id.as_str());
    assert_eq!(object["size"], 9);
    // Update: only the owner.
    let replaced = http
        .put(url("/api/storage/avatars/alice.png"))
        .bearer_auth(&bob)
        .body("bob's")
        .send()
        .await
        .unwrap();
    assert_error(replaced, 403, "forbidden").await;
    let replaced = http
        .put(url("/api/storage/avatars/alice.png"))
        .bearer_auth(&alice)
        .header("content-type", "image/png")
        .body("new png")
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);

    // View: public, with ETag revalidation and ranges.
    let got = http
        .get(url("/api/storage/avatars/alice.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.headers()["x-content-type-options"], "nosniff");
    let etag = got.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(got.text().await.unwrap(), "new png");
    let cached = http
        .get(url("/api/storage/avatars/alice.png"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let range = http
        .get(url("/api/storage/avatars/alice.png"))
        .header("range", "bytes=4-")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.headers()["content-range"], "bytes 4-6/7");
    assert_eq!(range.text().await.unwrap(), "png");
    let outside = http
        .get(url("/api/storage/avatars/alice.png"))
        .header("range", "bytes=50-")
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 416);
    // No list rule: listing is for admins.
    assert_error(
        http.get(url("/api/storage/avatars"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;

    // A private bucket: form upload; each user sees their own objects only.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"alice's notes".to_vec())
            .file_name("notes.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let uploaded = http
        .post(url("/api/storage/docs"))
        .bearer_auth(&alice)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let form = reqwest::multipart::Form::new()
        .text("key", "bob/plan.txt")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"bob's plan".to_vec()),
        );
    assert_eq!(
        http.post(url("/api/storage/docs"))
            .bearer_auth(&bob)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    assert_error(
        http.get(url("/api/storage/docs/notes.txt"))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap(),
        404,
        "object_not_found",
    )
    .await;
    assert_error(
        http.get(url("/api/storage/docs/notes.txt"))
            .send()
            .await
            .unwrap(),
        404,
        "object_not_found",
    )
    .await;
    assert_eq!(
        http.get(url("/api/storage/docs/notes.txt"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "alice's notes"
    );
    let listed: Value = http
        .get(url("/api/storage/docs"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["key"].as_str())
        .collect();
    assert_eq!(keys, ["bob/plan.txt"]);
    let listed: Value = http
        .get(url("/api/storage/docs?delimiter=/"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["prefixes"], json!(["bob/"]));
    assert_eq!(
        listed["objects"].as_array().unwrap().len(),
        1,
        "the admin sees every object"
    );

    // Delete: the owner only; a hidden object is not found.
    assert_error(
        http.delete(url("/api/storage/avatars/alice.png"))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    assert_error(
        http.delete(url("/api/storage/docs/notes.txt"))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap(),
        404,
        "object_not_found",
    )
    .await;
    assert_eq!(
        http.delete(url("/api/storage/avatars/alice.png"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_error(
        http.get(url("/api/storage/avatars/alice.png"))
            .send()
            .await
            .unwrap(),
        404,
        "object_not_found",
    )
    .await;

    // Active content is downloaded, not rendered.
    let page = http
        .put(url("/api/storage/avatars/page.html"))
        .bearer_auth(&aura.token)
        .header("content-type", "text/html")
        .body("<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 201);
    let got = http
        .get(url("/api/storage/avatars/page.html"))
        .send()
        .await
        .unwrap();
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    // Hostile keys are refused over REST too.
    let hostile = http
        .put(url("/api/storage/avatars/a%2F..%2F..%2Fescape"))
        .bearer_auth(&aura.token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(hostile, 400, "invalid_name").await;
}

#[tokio::test]
async fn signed_urls_are_bound_to_object_method_and_time() {
    let aura = Aura::start();
    let http = &aura.http;
    aura.admin_post(
        "/api/admin/storage/buckets",
        json!({"name": "docs", "viewRule": "owner = @request.auth.id", "createRule": "@request.auth.id != ''"}),
    )
    .await;
    let (alice, alice_id) = user(&aura, "alice@example.com").await;
    let (bob, _) = user(&aura, "bob@example.com").await;
    http.put(aura.at("/api/storage/docs/report.pdf"))
        .bearer_auth(&alice)
        .body("the report")
        .send()
        .await
        .unwrap();
    let sign = |token: &str, body: Value| {
        http.post(aura.at("/api/signed-urls"))
            .bearer_auth(token.to_owned())
            .json(&body)
            .send()
    };

    // Only someone who may read it can share it.
    assert_error(
        sign(
            &bob,
            json!({"bucket": "docs", "key": "report.pdf", "method": "GET"}),
        )
        .await
        .unwrap(),
        404,
        "object_not_found",
    )
    .await;
    assert_error(
        sign(
            &alice,
            json!({"bucket": "docs", "key": "report.pdf", "method": "DELETE"}),
        )
        .await
        .unwrap(),
        400,
        "bad_request",
    )
    .await;
    let signed: Value = sign(
        &alice,
        json!({"bucket": "docs", "key": "report.pdf", "method": "GET", "expiresIn": 60}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let link = signed["url"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&aura.url));
    assert_eq!(
        reqwest::get(&link).await.unwrap().text().await.unwrap(),
        "the report"
    );
    let other = link.replace("report.pdf", "other.pdf");
    assert_error(reqwest::get(&other).await.unwrap(), 404, "object_not_found").await;
    http.put(aura.at("/api/storage/docs/other.pdf"))
        .bearer_auth(&alice)
        .body("other")
        .send()
        .await
        .unwrap();
    assert_error(
        reqwest::get(&other).await.unwrap(),
        403,
        "invalid_signature",
    )
    .await;
    assert_error(
        http.put(&link).body("overwrite").send().await.unwrap(),
        403,
        "invalid_signature",
    )
    .await;
    let tampered = link.replace("expires=", "expires=9");
    assert_error(
        reqwest::get(&tampered).await.unwrap(),
        403,
        "invalid_signature",
    )
    .await;

    // An upload link: anyone holding it uploads as its signer.
    let signed: Value = sign(
        &alice,
        json!({"bucket": "docs", "key": "inbox/scan.png", "method": "PUT", "expiresIn": 60}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let uploaded = http
        .put(signed["url"].as_str().unwrap())
        .body("scan")
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    assert_eq!(
        uploaded.json::<Value>().await.unwrap()["owner"],
        alice_id.as_str()
    );
    assert_eq!(
        http.get(aura.at("/api/storage/docs/inbox/scan.png"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "scan"
    );
    // It was signed for a free key: it creates, and never overwrites what
    // is there now (its own upload, or another user's object made since).
    assert_error(
        http.put(signed["url"].as_str().unwrap())
            .body("again")
            .send()
            .await
            .unwrap(),
        412,
        "precondition_failed",
    )
    .await;
    let early: Value = sign(
        &alice,
        json!({"bucket": "docs", "key": "inbox/bob.png", "method": "PUT"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let bobs = http
        .put(aura.at("/api/storage/docs/inbox/bob.png"))
        .bearer_auth(&bob)
        .body("bob's")
        .send()
        .await
        .unwrap();
    assert_eq!(bobs.status(), 201);
    assert_error(
        http.put(early["url"].as_str().unwrap())
            .body("alice's")
            .send()
            .await
            .unwrap(),
        412,
        "precondition_failed",
    )
    .await;

    // Expiry.
    let short: Value = sign(
        &alice,
        json!({"bucket": "docs", "key": "report.pdf", "method": "GET", "expiresIn": 1}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_error(
        reqwest::get(short["url"].as_str().unwrap()).await.unwrap(),
        403,
        "invalid_signature",
    )
    .await;
}

/// `examples/file-store` streams objects in and out through
/// `aura:platform/storage`, held to its `buckets` grant.
#[tokio::test]
async fn functions_use_granted_buckets_only() {
    let aura = Aura::start();
    let s3 = admin_client(&aura).await;
    for bucket in ["files", "public", "private"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    s3.put_object()
        .bucket("public")
        .key("notice.txt")
        .body(ByteStream::from_static(b"read me"))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("private")
        .key("secret.txt")
        .body(ByteStream::from_static(b"not for functions"))
        .send()
        .await
        .unwrap();

    // No grant, no deploy: the import is named.
    let (status, body) = aura
        .deploy_bytes("file-store", crate::support::wasm("file_store"), json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"]["missing_grants"][0]["grant"],
        "buckets"
    );
    let (status, body) = aura
        .deploy_bytes(
            "file-store",
            crate::support::wasm("file_store"),
            json!({"grants": {"buckets": {"files": "admin"}}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    aura.deploy(
        "file-store",
        "file_store",
        json!({"grants": {"buckets": {"files": "read-write", "public": "read"}}}),
    )
    .await;
    let at = |path: &str| aura.at(&format!("/fn/file-store{path}"));
    let http = &aura.http;

    // Write and read back 3 MiB through the function, streamed both ways.
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    let stored = http
        .put(at("/files/dir/big.bin"))
        .header("content-type", "application/x-test")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201);
    let info: Value = stored.json().await.unwrap();
    assert_eq!(info["size"], big.len());
    assert_eq!(info["etag"], hex::encode(md5::Md5::digest(&big)));
    let read = http.get(at("/files/dir/big.bin")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["content-type"], "application/x-test");
    assert_eq!(read.bytes().await.unwrap().as_ref(), big.as_slice());
    assert_eq!(
        body_of(&s3, "files", "dir/big.bin").await,
        big,
        "the S3 API sees the same object"
    );
    let part = http
        .get(at("/files/dir/big.bin?offset=10&length=5"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(part.as_ref(), &big[10..15]);
    let listed: Value = http
        .get(at("/files?prefix=dir/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["objects"][0]["key"], "dir/big.bin");

    // Read-only and ungranted buckets.
    assert_eq!(
        http.get(at("/public/notice.txt"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "read me"
    );
    assert_error(
        http.put(at("/public/notice.txt"))
            .body("overwrite")
            .send()
            .await
            .unwrap(),
        403,
        "denied",
    )
    .await;
    assert_error(
        http.get(at("/private/secret.txt")).send().await.unwrap(),
        403,
        "denied",
    )
    .await;
    assert_eq!(body_of(&s3, "public", "notice.txt").await, b"read me");

    // Bad keys and missing objects.
    assert_error(
        http.put(at("/files/a/..%2F..%2Fx"))
            .body("x")
            .send()
            .await
            .unwrap(),
        400,
        "invalid",
    )
    .await;
    assert_error(
        http.get(at("/files/nope.txt")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    // A presigned URL from the function works over REST.
    let url = http
        .post(at("/presign/files/dir/big.bin?method=GET&expires=60"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(url.starts_with(&aura.url), "{url}");
    assert_eq!(
        reqwest::get(&url)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len(),
        big.len()
    );

    assert_eq!(
        http.delete(at("/files/dir/big.bin"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_error(
        http.get(at("/files/dir/big.bin")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
}

/// Records point at objects with file fields, on both database backends.
mod records_have_file_fields {
    #[tokio::test]
    async fn sqlite() {
        let db = crate::database::Db::sqlite();
        super::file_fields(&db).await;
        db.finish().await;
    }

    #[tokio::test]
    async fn postgres() {
        if let Some(db) = crate::database::Db::postgres().await {
            super::file_fields(&db).await;
            db.finish().await;
        }
    }
}

async fn file_fields(db: &crate::database::Db) {
    let aura = &db.aura;
    aura.admin_post(
        "/api/admin/storage/buckets",
        json!({"name": "avatars", "viewRule": ""}),
    )
    .await;
    for key in ["ada.png", "grace.png"] {
        let stored = aura
            .http
            .put(aura.at(&format!("/api/storage/avatars/{key}")))
            .bearer_auth(&aura.token)
            .body("png")
            .send()
            .await
            .unwrap();
        assert_eq!(stored.status(), 201);
    }
    for (field, problem) in [
        (
            json!({"name": "avatar", "type": "file"}),
            "a file field needs `bucket`",
        ),
        (
            json!({"name": "avatar", "type": "text", "bucket": "avatars"}),
            "`bucket` applies to file fields only",
        ),
        (
            json!({"name": "avatar", "type": "file", "bucket": "Bad_Bucket"}),
            "not a bucket name",
        ),
    ] {
        let (status, body) = db
            .apply(json!({"name": "profiles", "fields": [field]}))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_schema")),
            "{body}"
        );
        assert!(body.to_string().contains(problem), "{problem} in {body}");
    }
    db.define(json!({
        "name": "profiles",
        "fields": [
            {"name": "avatar", "type": "file", "bucket": "avatars"},
            {"name": "photos", "type": "file", "bucket": "avatars", "multiple": true, "max": 3},
        ],
        "listRule": "", "viewRule": "", "createRule": "",
    }))
    .await;
    let create = |record: Value| {
        db.send(
            "POST",
            "/api/collections/profiles/records",
            Some(record),
            false,
        )
    };
    let (status, record) =
        create(json!({"avatar": "ada.png", "photos": ["ada.png", "grace.png"]})).await;
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["avatar"], "ada.png");
    assert_eq!(record["photos"], json!(["ada.png", "grace.png"]));
    for (record, code) in [
        (json!({"avatar": "missing.png"}), "file_not_found"),
        (
            json!({"photos": ["ada.png", "missing.png"]}),
            "file_not_found",
        ),
        (json!({"avatar": "../../etc/passwd"}), "invalid_key"),
        (json!({"avatar": 7}), "invalid_type"),
    ] {
        let (status, body) = create(record.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("validation_failed")),
            "{record}: {body}"
        );
        let field = record.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(
            body["error"]["details"]["fields"][&field]["code"], code,
            "{body}"
        );
    }
    let (_, page) = db
        .send(
            "GET",
            "/api/collections/profiles/records?filter=avatar%20%3D%20'ada.png'",
            None,
            false,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    // The key is what the app downloads.
    let bytes = aura
        .http
        .get(aura.at(&format!(
            "/api/storage/avatars/{}",
            record["avatar"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.text().await.unwrap(), "png");
}

/// With `--storage-url`, object bytes live in a bucket of another S3
/// service (here: another Aura's S3 API), so nodes on one PostgreSQL
/// database share objects. Without PostgreSQL, one node on SQLite.
#[tokio::test]
async fn nodes_share_objects_through_a_remote_s3_service() {
    let remote = Aura::start();
    let (status, _) = remote
        .admin_post("/api/admin/storage/buckets", json!({"name": "blobs"}))
        .await;
    assert_eq!(status, 201);
    let (access, secret) = key(&remote, json!({"blobs": "read-write"})).await;
    let url = format!(
        "s3+http://{access}:{secret}@{}/blobs/aura",
        remote.s3_url.trim_start_matches("http://")
    );
    let extra = ["--storage-url", url.as_str()];
    let (first, second) = match crate::database::Db::postgres_with(&extra).await {
        Some(first) => {
            let second = crate::database::second_node(&first, &["--storage-url", &url]);
            (first, Some(second))
        }
        None => (crate::database::Db::sqlite_with(&extra), None),
    };
    let node = &first.aura;
    let s3 = admin_client(node).await;
    s3.create_bucket().bucket("shared").send().await.unwrap();
    let big: Vec<u8> = (0..(600 * 1024)).map(|i| (i % 249) as u8).collect();
    s3.put_object()
        .bucket("shared")
        .key("big.bin")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("shared")
        .key("small.txt")
        .body(ByteStream::from_static(b"small"))
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(&s3, "shared", "big.bin").await, big);
    let range = s3
        .get_object()
        .bucket("shared")
        .key("big.bin")
        .range("bytes=1000-1009")
        .send()
        .await
        .unwrap();
    assert_eq!(
        range.body.collect().await.unwrap().into_bytes().as_ref(),
        &big[1000..1010]
    );

    // The bytes are in the remote bucket, not on the node's disk.
    let remote_s3 = client(&remote, &access, &secret);
    let held = remote_s3
        .list_objects_v2()
        .bucket("blobs")
        .prefix("aura/")
        .send()
        .await
        .unwrap();
    assert_eq!(held.contents().len(), 2, "one blob per object");
    let local = node.data_dir().join("storage/blobs");
    assert_eq!(
        std::fs::read_dir(&local).unwrap().count(),
        0,
        "nothing under {}",
        local.display()
    );

    // Copies work through the remote too.
    s3.copy_object()
        .bucket("shared")
        .key("copy.txt")
        .copy_source("shared/small.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(&s3, "shared", "copy.txt").await, b"small");

    // Another node on the same database serves the same objects.
    if let Some(second) = &second {
        let (access, secret) = key(second, json!({"shared": "read"})).await;
        let other = client(second, &access, &secret);
        assert_eq!(body_of(&other, "shared", "big.bin").await, big);
    }

    // Replacing and deleting remove the remote blobs.
    s3.put_object()
        .bucket("shared")
        .key("small.txt")
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .unwrap();
    for key in ["big.bin", "copy.txt"] {
        s3.delete_object()
            .bucket("shared")
            .key(key)
            .send()
            .await
            .unwrap();
    }
    let held = remote_s3
        .list_objects_v2()
        .bucket("blobs")
        .prefix("aura/")
        .send()
        .await
        .unwrap();
    assert_eq!(held.contents().len(), 1, "only the current small.txt");
    drop(second);
    first.finish().await;
}

/// `x-amz-checksum-*` values, sent as headers or as trailers of an
/// aws-chunked body, are verified; a mismatch stores nothing.
#[tokio::test]
async fn checksums_are_verified_when_sent() {
    let aura = Aura::start();
    let (access, secret) = key(&aura, json!({"*": "read-write"})).await;
    let plain = client(&aura, &access, &secret);
    let checking = client_with(
        &aura,
        &access,
        &secret,
        RequestChecksumCalculation::WhenSupported,
    );
    plain.create_bucket().bucket("sums").send().await.unwrap();

    // The SDK's own checksums: a header for bytes in memory, a trailer for
    // a streamed file.
    checking
        .put_object()
        .bucket("sums")
        .key("memory.txt")
        .body(ByteStream::from_static(b"in memory"))
        .send()
        .await
        .unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..300_000).map(|i| (i % 241) as u8).collect();
    std::fs::write(file.path(), &data).unwrap();
    checking
        .put_object()
        .bucket("sums")
        .key("file.bin")
        .body(ByteStream::from_path(file.path()).await.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(&plain, "sums", "file.bin").await, data);

    // Wrong values are refused and store nothing.
    let (code, status) = failure(
        plain
            .put_object()
            .bucket("sums")
            .key("bad.txt")
            .checksum_crc32("AAAAAA==")
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((code.as_str(), status), ("BadDigest", 400));
    let (code, _) = failure(
        plain
            .put_object()
            .bucket("sums")
            .key("memory.txt")
            .checksum_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
            .body(ByteStream::from_static(b"not empty"))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "BadDigest");
    assert_eq!(
        body_of(&plain, "sums", "memory.txt").await,
        b"in memory",
        "the previous object stays"
    );
    let (_, status) = failure(
        plain
            .head_object()
            .bucket("sums")
            .key("bad.txt")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404);
}

/// Changes a request's body after the SDK signed it, as a faulty network
/// or a tampering proxy would: `from` becomes `to` (of the same length).
#[derive(Debug)]
struct Tamper {
    from: &'static [u8],
    to: &'static [u8],
}

impl aws_sdk_s3::config::Intercept for Tamper {
    fn name(&self) -> &'static str {
        "tamper"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let request = context.request_mut();
        let body = request.body().bytes().expect("a body in memory");
        let at = body
            .windows(self.from.len())
            .position(|w| w == self.from)
            .expect("the text to change");
        let mut changed = body.to_vec();
        changed[at..at + self.to.len()].copy_from_slice(self.to);
        *request.body_mut() = aws_sdk_s3::primitives::SdkBody::from(changed);
        Ok(())
    }
}

#[tokio::test]
async fn xml_bodies_changed_after_signing_are_refused() {
    let aura = Aura::start();
    let s3 = admin_client(&aura).await;
    s3.create_bucket().bucket("tamper").send().await.unwrap();
    for key in ["keep", "gone"] {
        s3.put_object()
            .bucket("tamper")
            .key(key)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap();
    }

    // Deleting `keep`, changed on the way into deleting `gone`: refused
    // as S3 does (it was a 500), and nothing is deleted.
    let delete = aws_sdk_s3::types::Delete::builder()
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("keep")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = s3
        .delete_objects()
        .bucket("tamper")
        .delete(delete)
        .customize()
        .interceptor(Tamper {
            from: b"<Key>keep",
            to: b"<Key>gone",
        })
        .send()
        .await
        .unwrap_err();
    assert_eq!(failure(err), ("XAmzContentSHA256Mismatch".into(), 400));
    for key in ["keep", "gone"] {
        assert_eq!(body_of(&s3, "tamper", key).await, b"data", "{key}");
    }

    // A completion whose part list changed is refused; the upload stays
    // and completes when sent as signed.
    let upload = s3
        .create_multipart_upload()
        .bucket("tamper")
        .key("big")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("tamper")
        .key("big")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"one part"))
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    let err = s3
        .complete_multipart_upload()
        .bucket("tamper")
        .key("big")
        .upload_id(id)
        .multipart_upload(parts.clone())
        .customize()
        .interceptor(Tamper {
            from: b"<PartNumber>1",
            to: b"<PartNumber>2",
        })
        .send()
        .await
        .unwrap_err();
    assert_eq!(failure(err), ("XAmzContentSHA256Mismatch".into(), 400));
    s3.complete_multipart_upload()
        .bucket("tamper")
        .key("big")
        .upload_id(id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(&s3, "tamper", "big").await, b"one part");
}

#[tokio::test]
async fn the_cli_manages_buckets_and_keys() {
    let aura = Aura::start();
    let run = |args: &[&str]| {
        let output = aura.cli(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stdout, stderr)
    };
    let (ok, out, err) = run(&["storage", "create-bucket", "avatars", "--view-rule", ""]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("created bucket avatars"), "{out}");
    let (ok, _, err) = run(&["storage", "create-bucket", "Bad_Name"]);
    assert!(!ok && err.contains("not a bucket name"), "{err}");
    let (ok, out, err) = run(&[
        "storage",
        "create-key",
        "--bucket",
        "avatars",
        "--description",
        "laptop",
    ]);
    assert!(ok, "{out}{err}");
    let value = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .to_owned()
    };
    let (access, secret) = (value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY"));
    client(&aura, &access, &secret)
        .put_object()
        .bucket("avatars")
        .key("me.png")
        .body(ByteStream::from_static(b"png"))
        .send()
        .await
        .unwrap();
    let (_, keys, _) = run(&["storage", "keys"]);
    assert!(
        keys.contains(&access) && keys.contains("avatars:read-write") && !keys.contains(&secret),
        "{keys}"
    );
    let (_, buckets, _) = run(&["storage", "buckets"]);
    assert!(buckets.contains("avatars"), "{buckets}");
    let (ok, _, err) = run(&["storage", "delete-bucket", "avatars"]);
    assert!(!ok && err.contains("not empty"), "{err}");
    let (ok, out, err) = run(&["storage", "delete-key", &access]);
    assert!(ok && out.contains("deleted access key"), "{out}{err}");
}

/// Blob files a crash left without an object (written, never recorded) are
/// removed at the next start once they are an hour old; named ones stay.
#[tokio::test]
async fn orphaned_blob_files_are_swept_at_start() {
    let aura = Aura::start();
    let (status, _) = aura
        .admin_post("/api/admin/storage/buckets", json!({"name": "files"}))
        .await;
    assert_eq!(status, 201);
    let put = aura
        .http
        .put(aura.at("/api/storage/files/kept.txt"))
        .bearer_auth(&aura.token)
        .body("kept")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let dir = aura.stop();
    let blobs = dir.path().join("storage/blobs");
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    // Every blob, the object's included, is old: only the orphans go.
    let mut planted = Vec::new();
    for id in ["ab".repeat(16), "cd".repeat(16)] {
        let sub = blobs.join(&id[..2]);
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(&id), b"orphan").unwrap();
        planted.push(sub.join(&id));
    }
    let young = blobs.join("ef").join("ef".repeat(16));
    std::fs::create_dir_all(young.parent().unwrap()).unwrap();
    std::fs::write(&young, b"a write in flight").unwrap();
    for entry in walk(&blobs) {
        if entry != young {
            std::fs::File::options()
                .write(true)
                .open(&entry)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
    }
    let aura = Aura::start_in(dir);
    for _ in 0..200 {
        if planted.iter().all(|p| !p.exists()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(planted.iter().all(|p| !p.exists()), "the orphans stay");
    assert!(young.exists(), "a young blob is not swept");
    let got = aura
        .http
        .get(aura.at("/api/storage/files/kept.txt"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.unwrap(), "kept");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
