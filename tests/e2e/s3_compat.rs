//! The S3 port as the clients people use expect S3 to behave: listings,
//! batches, copies, standard object headers, multipart edge cases (issue
//! by issue against what S3 answers), through the AWS SDK.

use crate::storage::{admin_client, failure};
use crate::support::Aura;
use aws_sdk_s3::primitives::ByteStream;

#[tokio::test]
async fn listings_batches_and_copies_behave_like_s3() {
    let aura = Aura::start();
    let s3 = admin_client(&aura).await;
    for bucket in ["lb-a", "lb-b", "lb-c", "other"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }

    // ListBuckets pages by max-buckets and filters by prefix.
    let first = s3
        .list_buckets()
        .prefix("lb-")
        .max_buckets(2)
        .send()
        .await
        .unwrap();
    let names = |out: &aws_sdk_s3::operation::list_buckets::ListBucketsOutput| -> Vec<String> {
        out.buckets()
            .iter()
            .map(|b| b.name().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["lb-a", "lb-b"]);
    let token = first.continuation_token().expect("a next page");
    let rest = s3
        .list_buckets()
        .prefix("lb-")
        .max_buckets(2)
        .continuation_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(names(&rest), ["lb-c"]);
    assert_eq!(rest.continuation_token(), None);
    assert!(first.owner().and_then(|o| o.id()).is_some());

    for key in ["a", "b"] {
        s3.put_object()
            .bucket("lb-a")
            .key(key)
            .content_type("text/plain")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    // max-keys=0 lists nothing and offers no next page.
    let none = s3
        .list_objects_v2()
        .bucket("lb-a")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            none.is_truncated(),
            none.next_continuation_token(),
            none.key_count()
        ),
        (Some(false), None, Some(0))
    );
    // FetchOwner gives each object its owner.
    let owned = s3
        .list_objects_v2()
        .bucket("lb-a")
        .fetch_owner(true)
        .send()
        .await
        .unwrap();
    assert!(owned.contents().iter().all(|o| o.owner().is_some()));
    let plain = s3.list_objects_v2().bucket("lb-a").send().await.unwrap();
    assert!(plain.contents().iter().all(|o| o.owner().is_none()));

    // DeleteObjects takes at most 1000 keys; Quiet answers failures only.
    let identifiers = |keys: Vec<String>| {
        keys.into_iter()
            .map(|key| {
                aws_sdk_s3::types::ObjectIdentifier::builder()
                    .key(key)
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let too_many = aws_sdk_s3::types::Delete::builder()
        .set_objects(Some(identifiers(
            (0..1001).map(|i| format!("k{i}")).collect(),
        )))
        .build()
        .unwrap();
    let err = s3
        .delete_objects()
        .bucket("lb-a")
        .delete(too_many)
        .send()
        .await
        .unwrap_err();
    assert_eq!(failure(err), ("MalformedXML".into(), 400));
    let quiet = aws_sdk_s3::types::Delete::builder()
        .set_objects(Some(identifiers(vec!["b".into()])))
        .quiet(true)
        .build()
        .unwrap();
    let out = s3
        .delete_objects()
        .bucket("lb-a")
        .delete(quiet)
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty() && out.errors().is_empty());
    let (_, status) = failure(
        s3.head_object()
            .bucket("lb-a")
            .key("b")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404, "deleted all the same");

    // Copying an object onto itself must change it.
    let err = s3
        .copy_object()
        .bucket("lb-a")
        .key("a")
        .copy_source("lb-a/a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(failure(err), ("InvalidRequest".into(), 400));
    s3.copy_object()
        .bucket("lb-a")
        .key("a")
        .copy_source("lb-a/a")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .content_type("text/markdown")
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("lb-a")
        .key("a")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/markdown"));
}

/// `Cache-Control`, `Content-Disposition`, `Content-Encoding`,
/// `Content-Language` and `Expires` given on a put, a copy or a new upload
/// come back on HEAD and GET, over S3 and REST (gzip'd assets served
/// without their `Content-Encoding` break silently).
#[tokio::test]
async fn standard_object_headers_are_kept_and_served() {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
    let aura = Aura::start();
    let s3 = admin_client(&aura).await;
    s3.create_bucket().bucket("assets").send().await.unwrap();
    let expires = DateTime::from_secs(4_102_444_800); // 2100-01-01
    s3.put_object()
        .bucket("assets")
        .key("app.js.gz")
        .content_type("text/plain")
        .cache_control("public, max-age=31536000, immutable")
        .content_encoding("gzip")
        .content_language("fr-CA")
        .content_disposition("inline; filename=\"app.js\"")
        .expires(expires)
        .body(ByteStream::from_static(b"\x1f\x8b gzip bytes"))
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("assets")
        .key("app.js.gz")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            head.cache_control(),
            head.content_encoding(),
            head.content_language(),
            head.content_disposition(),
            head.expires_string(),
        ),
        (
            Some("public, max-age=31536000, immutable"),
            Some("gzip"),
            Some("fr-CA"),
            Some("inline; filename=\"app.js\""),
            Some("Fri, 01 Jan 2100 00:00:00 GMT"),
        )
    );
    let get = s3
        .get_object()
        .bucket("assets")
        .key("app.js.gz")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (get.cache_control(), get.content_encoding()),
        (Some("public, max-age=31536000, immutable"), Some("gzip"))
    );

    // A presigned GET may ask the response to say otherwise.
    let presigned = s3
        .get_object()
        .bucket("assets")
        .key("app.js.gz")
        .response_cache_control("no-store")
        .response_content_disposition("attachment; filename=\"x.gz\"")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let response = aura.http.get(presigned.uri()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"x.gz\""
    );
    assert_eq!(response.headers()["content-encoding"], "gzip");
    // One that is no header value is refused (by s3s, before the handler).
    let bad = s3
        .get_object()
        .bucket("assets")
        .key("app.js.gz")
        .response_cache_control("no-store\nx-injected: 1")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let response = aura.http.get(bad.uri()).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("x-injected").is_none());
    let body = response.text().await.unwrap();
    assert!(body.contains("InvalidRequest"), "{body}");

    // Copied as they are, or replaced with the metadata.
    s3.copy_object()
        .bucket("assets")
        .key("copy.js.gz")
        .copy_source("assets/app.js.gz")
        .send()
        .await
        .unwrap();
    let copy = s3
        .head_object()
        .bucket("assets")
        .key("copy.js.gz")
        .send()
        .await
        .unwrap();
    assert_eq!(copy.content_encoding(), Some("gzip"));
    s3.copy_object()
        .bucket("assets")
        .key("copy.js.gz")
        .copy_source("assets/app.js.gz")
        .metadata_directive(MetadataDirective::Replace)
        .cache_control("no-cache")
        .send()
        .await
        .unwrap();
    let replaced = s3
        .head_object()
        .bucket("assets")
        .key("copy.js.gz")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (replaced.cache_control(), replaced.content_encoding()),
        (Some("no-cache"), None)
    );

    // A multipart upload keeps what its creation gave.
    let upload = s3
        .create_multipart_upload()
        .bucket("assets")
        .key("big.bin")
        .cache_control("max-age=60")
        .content_language("de")
        .send()
        .await
        .unwrap();
    let part = s3
        .upload_part()
        .bucket("assets")
        .key("big.bin")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from_static(b"one part"))
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("assets")
        .key("big.bin")
        .upload_id(upload.upload_id().unwrap())
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let big = s3
        .head_object()
        .bucket("assets")
        .key("big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (big.cache_control(), big.content_language()),
        (Some("max-age=60"), Some("de"))
    );

    // REST downloads send them too, and REST uploads keep them.
    let response = aura
        .http
        .get(aura.at("/api/storage/assets/app.js.gz"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for (name, value) in [
        ("cache-control", "public, max-age=31536000, immutable"),
        ("content-encoding", "gzip"),
        ("content-language", "fr-CA"),
        ("expires", "Fri, 01 Jan 2100 00:00:00 GMT"),
    ] {
        assert_eq!(response.headers()[name], value, "{name}");
    }
    let response = aura
        .http
        .put(aura.at("/api/storage/assets/page.html"))
        .bearer_auth(&aura.token)
        .header("content-type", "text/html")
        .header("cache-control", "max-age=5")
        .header("content-disposition", "inline")
        .body("<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let page = s3
        .get_object()
        .bucket("assets")
        .key("page.html")
        .send()
        .await
        .unwrap();
    // Active content is still downloaded, whatever disposition it was given.
    assert_eq!(
        (page.cache_control(), page.content_disposition()),
        (Some("max-age=5"), Some("attachment"))
    );
}

/// Completes `key`'s upload `id` from its `(number, etag)` parts.
async fn complete(
    s3: &aws_sdk_s3::Client,
    key: &str,
    id: &str,
    parts: &[(i32, String)],
) -> aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder
{
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let mut listed = CompletedMultipartUpload::builder();
    for (number, etag) in parts {
        listed = listed.parts(
            CompletedPart::builder()
                .part_number(*number)
                .e_tag(etag)
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("mpu")
        .key(key)
        .upload_id(id)
        .multipart_upload(listed.build())
}

async fn get_part(s3: &aws_sdk_s3::Client, key: &str, number: i32) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket("mpu")
        .key(key)
        .part_number(number)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// UploadPartCopy (what `aws s3 cp` S3→S3 and boto3's `copy()` use over
/// their threshold), part downloads by `partNumber`, a completion sent
/// again, conditions on completion and ListMultipartUploads.
#[tokio::test]
async fn multipart_copies_parts_retries_conditions_and_listings() {
    multipart_edges(&Aura::start()).await;
}

/// The same with the bytes in another S3 service (the other blob backend).
#[tokio::test]
async fn multipart_edges_hold_with_a_remote_blob_store() {
    let remote = Aura::start();
    let (status, _) = remote
        .admin_post(
            "/api/admin/storage/buckets",
            serde_json::json!({"name": "blobs"}),
        )
        .await;
    assert_eq!(status, 201);
    let (access, secret) =
        crate::storage::key(&remote, serde_json::json!({"blobs": "read-write"})).await;
    let url = format!(
        "s3+http://{access}:{secret}@{}/blobs/aura",
        remote.s3_url.trim_start_matches("http://")
    );
    let node = Aura::start_with(tempfile::tempdir().unwrap(), &["--storage-url", &url]);
    multipart_edges(&node).await;
}

async fn multipart_edges(aura: &Aura) {
    const MIB: usize = 1024 * 1024;
    let s3 = admin_client(aura).await;
    s3.create_bucket().bucket("mpu").send().await.unwrap();
    let original: Vec<u8> = (0..11 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    s3.put_object()
        .bucket("mpu")
        .key("src")
        .body(ByteStream::from(original.clone()))
        .send()
        .await
        .unwrap();

    // A copy in two ranged parts equals the source.
    let upload = s3
        .create_multipart_upload()
        .bucket("mpu")
        .key("dst")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (number, range) in [
        (1, format!("bytes=0-{}", 6 * MIB - 1)),
        (2, format!("bytes={}-{}", 6 * MIB, 11 * MIB - 1)),
    ] {
        let copied = s3
            .upload_part_copy()
            .bucket("mpu")
            .key("dst")
            .upload_id(id)
            .part_number(number)
            .copy_source("mpu/src")
            .copy_source_range(range)
            .send()
            .await
            .unwrap();
        let etag = copied
            .copy_part_result()
            .unwrap()
            .e_tag()
            .unwrap()
            .to_owned();
        parts.push((number, etag));
    }
    for (range, code, status) in [
        ("bytes=0-99999999", "InvalidRange", 416),
        ("bytes=5-1", "InvalidRange", 416),
        ("0-10", "InvalidArgument", 400),
    ] {
        let err = s3
            .upload_part_copy()
            .bucket("mpu")
            .key("dst")
            .upload_id(id)
            .part_number(3)
            .copy_source("mpu/src")
            .copy_source_range(range)
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(err), (code.to_owned(), status), "{range}");
    }
    let done = complete(&s3, "dst", id, &parts).await.send().await.unwrap();
    let etag = done.e_tag().unwrap().to_owned();
    assert!(etag.ends_with("-2\""), "{etag}");
    assert_eq!(crate::storage::body_of(&s3, "mpu", "dst").await, original);

    // Sent again (its answer lost), the completion answers the same.
    let again = complete(&s3, "dst", id, &parts).await.send().await.unwrap();
    assert_eq!(again.e_tag(), Some(etag.as_str()));

    // Parts by number: a parallel part download joins to the original.
    let head = s3
        .head_object()
        .bucket("mpu")
        .key("dst")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (head.parts_count(), head.content_length()),
        (Some(2), Some(6 * MIB as i64))
    );
    let (first, second) = tokio::join!(get_part(&s3, "dst", 1), get_part(&s3, "dst", 2));
    assert_eq!([first, second].concat(), original);
    for (key, number) in [("dst", 3), ("src", 2)] {
        let err = s3
            .get_object()
            .bucket("mpu")
            .key(key)
            .part_number(number)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            failure(err),
            ("InvalidPart".to_owned(), 400),
            "{key} {number}"
        );
    }
    // An object put in one piece is its only part.
    assert_eq!(get_part(&s3, "src", 1).await, original);

    // GetObjectAttributes: size, ETag, parts paged by max-parts.
    use aws_sdk_s3::types::ObjectAttributes;
    let attributes = s3
        .get_object_attributes()
        .bucket("mpu")
        .key("dst")
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::ObjectParts)
        .max_parts(1)
        .send()
        .await
        .unwrap();
    assert_eq!(attributes.object_size(), Some(11 * MIB as i64));
    let parts = attributes.object_parts().expect("parts");
    assert_eq!(
        (
            parts.total_parts_count(),
            parts.is_truncated(),
            parts.parts().len()
        ),
        (Some(2), Some(true), 1)
    );
    assert_eq!(parts.parts()[0].size(), Some(6 * MIB as i64));
    let single = s3
        .get_object_attributes()
        .bucket("mpu")
        .key("src")
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await
        .unwrap();
    assert!(single.object_parts().is_none() && single.e_tag().is_some());

    // Conditions on completion: nothing is overwritten when they fail.
    let upload = s3
        .create_multipart_upload()
        .bucket("mpu")
        .key("dst")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("mpu")
        .key("dst")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"replacement"))
        .send()
        .await
        .unwrap();
    let parts = [(1, part.e_tag().unwrap().to_owned())];
    for attempt in [
        complete(&s3, "dst", id, &parts).await.if_none_match("*"),
        complete(&s3, "dst", id, &parts).await.if_match("\"0123\""),
    ] {
        let err = attempt.send().await.unwrap_err();
        assert_eq!(failure(err), ("PreconditionFailed".to_owned(), 412));
    }
    assert_eq!(crate::storage::body_of(&s3, "mpu", "dst").await, original);
    complete(&s3, "dst", id, &parts)
        .await
        .if_match(&etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        crate::storage::body_of(&s3, "mpu", "dst").await,
        b"replacement"
    );

    // Uploads in progress, by key, paged, rolled up by a delimiter.
    let mut started = Vec::new();
    for key in ["a/1", "a/2", "b", "b"] {
        let upload = s3
            .create_multipart_upload()
            .bucket("mpu")
            .key(key)
            .send()
            .await
            .unwrap();
        started.push(upload.upload_id().unwrap().to_owned());
    }
    let all = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    let keys = |out: &aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput| {
        out.uploads()
            .iter()
            .map(|u| u.key().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&all), ["a/1", "a/2", "b", "b"]);
    let first = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .max_uploads(3)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (keys(&first), first.is_truncated()),
        (vec!["a/1".to_owned(), "a/2".into(), "b".into()], Some(true))
    );
    let rest = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .max_uploads(3)
        .key_marker(first.next_key_marker().unwrap())
        .upload_id_marker(first.next_upload_id_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        (keys(&rest), rest.is_truncated()),
        (vec!["b".to_owned()], Some(false))
    );
    let ids: Vec<&str> = first
        .uploads()
        .iter()
        .chain(rest.uploads())
        .map(|u| u.upload_id().unwrap())
        .collect();
    let mut expected: Vec<&str> = started.iter().map(String::as_str).collect();
    expected.sort_by_key(|id| ids.iter().position(|i| i == id));
    assert_eq!(ids, expected, "every upload once");
    let rolled = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = rolled
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap())
        .collect();
    assert_eq!(
        (prefixes, keys(&rolled)),
        (vec!["a/"], vec!["b".to_owned(), "b".into()])
    );
}

/// ListObjects (v1), which older tools and many libraries still use, and
/// `encoding-type=url` on both versions.
#[tokio::test]
async fn list_objects_v1_pages_and_url_encoding() {
    use aws_sdk_s3::types::EncodingType;
    let aura = Aura::start();
    let s3 = admin_client(&aura).await;
    s3.create_bucket().bucket("v1-list").send().await.unwrap();
    let keys = ["a/1", "a/2", "b c", "d+e", "é"];
    for key in keys {
        s3.put_object()
            .bucket("v1-list")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    // Paged by NextMarker, two at a time, every key once in byte order.
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = s3
            .list_objects()
            .bucket("v1-list")
            .max_keys(2)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        seen.extend(page.contents().iter().map(|o| o.key().unwrap().to_owned()));
        assert!(page.contents().iter().all(|o| o.owner().is_some()));
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = Some(page.next_marker().expect("a next marker").to_owned());
    }
    assert_eq!(seen, keys);

    // A page that ends on a common prefix resumes past it.
    let first = s3
        .list_objects()
        .bucket("v1-list")
        .delimiter("/")
        .max_keys(1)
        .send()
        .await
        .unwrap();
    assert_eq!(first.common_prefixes()[0].prefix(), Some("a/"));
    assert_eq!(first.next_marker(), Some("a/"));
    let second = s3
        .list_objects()
        .bucket("v1-list")
        .delimiter("/")
        .marker("a/")
        .send()
        .await
        .unwrap();
    let rest: Vec<&str> = second.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(
        (rest, second.common_prefixes().len()),
        (vec!["b c", "d+e", "é"], 0)
    );

    // encoding-type=url percent-encodes keys and prefixes, on v1 and v2.
    let v1 = s3
        .list_objects()
        .bucket("v1-list")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    let v2 = s3
        .list_objects_v2()
        .bucket("v1-list")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    let err = s3
        .list_objects_v2()
        .bucket("v1-list")
        .encoding_type(EncodingType::from("base64"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(failure(err), ("InvalidArgument".to_owned(), 400));
    let encoded = ["a/1", "a/2", "b%20c", "d%2Be", "%C3%A9"];
    assert_eq!(
        v1.contents()
            .iter()
            .map(|o| o.key().unwrap())
            .collect::<Vec<_>>(),
        encoded
    );
    assert_eq!(
        v2.contents()
            .iter()
            .map(|o| o.key().unwrap())
            .collect::<Vec<_>>(),
        encoded
    );
}

/// Errors and refusals as S3 gives them: validators on 304, a message on
/// 416, request ids, presign lifetimes, If-Match on a missing key, an
/// empty Content-MD5; and keys in any Unicode form.
#[tokio::test]
async fn errors_request_ids_and_keys_as_s3_answers_them() {
    use aws_sdk_s3::error::ProvideErrorMetadata as _;
    use aws_sdk_s3::operation::RequestId as _;
    let aura = Aura::start();
    let s3 = admin_client(&aura).await;
    s3.create_bucket().bucket("errs").send().await.unwrap();
    let put = s3
        .put_object()
        .bucket("errs")
        .key("k")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();
    assert!(put.request_id().is_some_and(|id| !id.is_empty()));

    // A 304 carries the validators a cache revalidates against.
    let err = s3
        .get_object()
        .bucket("errs")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    let raw = err.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 304);
    assert_eq!(raw.headers().get("etag"), Some(etag.as_str()));
    assert!(raw.headers().get("last-modified").is_some());

    // A 416 says why.
    let err = s3
        .get_object()
        .bucket("errs")
        .key("k")
        .range("bytes=100-200")
        .send()
        .await
        .unwrap_err();
    let message = err.message().unwrap_or_default().to_owned();
    assert_eq!(failure(err), ("InvalidRange".to_owned(), 416));
    assert!(message.contains("5 bytes"), "{message}");

    // Error documents name the request id the header gives.
    let response = aura
        .http
        .get(format!("{}/errs/k", aura.s3_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let id = response.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert!(
        body.contains(&format!("<RequestId>{id}</RequestId>")),
        "{body}"
    );

    // A presigned URL lives at most a week, and never negatively.
    let presigned = s3
        .get_object()
        .bucket("errs")
        .key("k")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let url = presigned.uri().to_owned();
    assert!(url.contains("X-Amz-Expires=60"), "{url}");
    for expires in ["604801", "-1", "soon"] {
        let tampered = url.replace("X-Amz-Expires=60", &format!("X-Amz-Expires={expires}"));
        let response = aura.http.get(tampered).send().await.unwrap();
        assert_eq!(response.status(), 403, "{expires}");
        let body = response.text().await.unwrap();
        assert!(body.contains("AuthorizationQueryParametersError"), "{body}");
    }

    // If-Match on a key that holds nothing: NoSuchKey, as S3 answers.
    let err = s3
        .put_object()
        .bucket("errs")
        .key("missing")
        .if_match(&etag)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(failure(err), ("NoSuchKey".to_owned(), 404));

    // An empty Content-MD5 is refused.
    let response = aura
        .http
        .put(format!("{}/errs/md5", aura.s3_url))
        .header("content-md5", "")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("InvalidDigest"));

    // Keys in NFC and NFD are two keys, each stored byte for byte.
    let (composed, decomposed) = ("caf\u{e9}.txt", "cafe\u{301}.txt");
    for (key, body) in [(composed, "nfc"), (decomposed, "nfd")] {
        s3.put_object()
            .bucket("errs")
            .key(key)
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(crate::storage::body_of(&s3, "errs", composed).await, b"nfc");
    assert_eq!(
        crate::storage::body_of(&s3, "errs", decomposed).await,
        b"nfd"
    );
    let listed = s3.list_objects_v2().bucket("errs").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().map(|o| o.key().unwrap()).collect();
    assert!(
        keys.contains(&composed) && keys.contains(&decomposed),
        "{keys:?}"
    );
}

/// Verified checksums are answered on the write and kept: HEAD and GET
/// give them in checksum mode (and the SDK checks the GET's body against
/// them).
#[tokio::test]
async fn checksums_sent_are_returned_and_kept() {
    use aws_sdk_s3::config::RequestChecksumCalculation;
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
    const EMPTY_SHA256: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    let aura = Aura::start();
    let (access, secret) = crate::storage::key(&aura, serde_json::json!({"*": "read-write"})).await;
    let s3 = crate::storage::client_with(
        &aura,
        &access,
        &secret,
        RequestChecksumCalculation::WhenSupported,
    );
    s3.create_bucket().bucket("sums").send().await.unwrap();
    let put = s3
        .put_object()
        .bucket("sums")
        .key("empty")
        .checksum_sha256(EMPTY_SHA256)
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .unwrap();
    assert_eq!(put.checksum_sha256(), Some(EMPTY_SHA256));

    // The SDK's own CRC32, computed as the body streams.
    let put = s3
        .put_object()
        .bucket("sums")
        .key("data")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_static(b"some bytes worth a checksum"))
        .send()
        .await
        .unwrap();
    let crc32 = put.checksum_crc32().expect("the CRC32 answered").to_owned();
    let head = s3
        .head_object()
        .bucket("sums")
        .key("data")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc32(), Some(crc32.as_str()));
    let plain = s3
        .head_object()
        .bucket("sums")
        .key("data")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.checksum_crc32(), None, "only in checksum mode");
    let get = s3
        .get_object()
        .bucket("sums")
        .key("data")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(get.checksum_crc32(), Some(crc32.as_str()));
    let body = get
        .body
        .collect()
        .await
        .expect("the body matches its CRC32");
    assert_eq!(body.into_bytes().as_ref(), b"some bytes worth a checksum");

    // A multipart upload says which algorithm it was started with, and
    // each part answers its checksum.
    let upload = s3
        .create_multipart_upload()
        .bucket("sums")
        .key("parts")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.checksum_algorithm(), Some(&ChecksumAlgorithm::Crc32));
    let part = s3
        .upload_part()
        .bucket("sums")
        .key("parts")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_static(b"some bytes worth a checksum"))
        .send()
        .await
        .unwrap();
    assert_eq!(part.checksum_crc32(), Some(crc32.as_str()));
}
