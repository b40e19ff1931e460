//! `file-store`: an HTTP API over buckets, written as a function over
//! `aura_sdk::storage`. Bytes stream both ways, so files of any size pass
//! through in bounded memory.
//!
//! - `PUT /{bucket}/{key...}` stores the request body (201, the object's
//!   info);
//! - `GET /{bucket}/{key...}` streams the object back (`?offset=&length=`
//!   for a range), `?info` answers its info instead;
//! - `DELETE /{bucket}/{key...}` deletes it (204);
//! - `GET /{bucket}` lists the bucket (`prefix`, `delimiter`, `after`,
//!   `limit`);
//! - `POST /presign/{bucket}/{key...}?method=GET&expires=60` answers a
//!   signed URL as text.
//!
//! Keys may contain `/`: everything after the bucket segment is the key,
//! percent-decoded. Errors are `{"error": {"code", "message"}}` with the
//! status the storage error maps to; the function needs the grant
//! `buckets = { files = "read-write", public = "read" }`.

use std::io::{BufRead, Read, Write};

use aura_sdk::serde_json::{Value, json};
use aura_sdk::storage::{self, ListOptions, ObjectInfo, StorageError};
use aura_sdk::{BodyWriter, Request, Response};

/// Bytes read from the request body per storage write.
const CHUNK: usize = 64 * 1024;

/// Signed URLs last this long unless `expires` says otherwise (seconds).
const DEFAULT_EXPIRY: u32 = 3600;

/// A handler's answer: the `Err` side is an error response, so `?` can
/// return early with it.
type Answer = Result<Response, Response>;

/// What a path names: a whole bucket, or one object in it.
enum Target {
    Bucket(String),
    Object { bucket: String, key: String },
}

fn handle(req: Request) -> Response {
    route(req).unwrap_or_else(|error| error)
}

fn route(req: Request) -> Answer {
    let method = req.method().to_owned();
    let path = req.path().to_owned();
    let rest = path.strip_prefix('/').unwrap_or(&path);
    // `presign` is a valid bucket name too, so only POST (which buckets and
    // objects do not take) makes it the presign endpoint.
    if method == "POST"
        && let Some(tail) = rest.strip_prefix("presign")
        && (tail.is_empty() || tail.starts_with('/'))
    {
        return match target(tail.strip_prefix('/').unwrap_or(tail), &path)? {
            Target::Object { bucket, key } => presign(&req, &bucket, &key),
            Target::Bucket(_) => Err(missing_key()),
        };
    }
    match (target(rest, &path)?, method.as_str()) {
        (Target::Bucket(bucket), "GET") => list(&req, &bucket),
        (Target::Bucket(_), "PUT" | "DELETE") => Err(missing_key()),
        (Target::Bucket(_), _) => Err(method_not_allowed(&method, "GET")),
        (Target::Object { bucket, key }, "GET") => {
            if query(&req, "info")?.is_some() {
                info(&bucket, &key)
            } else {
                download(&req, &bucket, &key)
            }
        }
        (Target::Object { bucket, key }, "PUT") => upload(req, &bucket, &key),
        (Target::Object { bucket, key }, "DELETE") => delete(&bucket, &key),
        (Target::Object { .. }, _) => Err(method_not_allowed(&method, "GET, PUT, DELETE")),
    }
}

/// Splits `bucket[/key...]` (raw, without the leading `/`) and decodes both
/// parts. No bucket is an unknown route; `bucket/` is the bucket.
fn target(raw: &str, path: &str) -> Result<Target, Response> {
    let (bucket, key) = raw.split_once('/').unwrap_or((raw, ""));
    if bucket.is_empty() {
        return Err(route_not_found(path));
    }
    let bucket = percent_decode(bucket)?;
    if key.is_empty() {
        Ok(Target::Bucket(bucket))
    } else {
        let key = percent_decode(key)?;
        Ok(Target::Object { bucket, key })
    }
}

/// `GET /{bucket}`: one page of the listing.
fn list(req: &Request, bucket: &str) -> Answer {
    let options = ListOptions {
        prefix: query(req, "prefix")?.unwrap_or_default(),
        delimiter: query(req, "delimiter")?.filter(|d| !d.is_empty()),
        after: query(req, "after")?.filter(|a| !a.is_empty()),
        limit: query_number(req, "limit")?,
    };
    let listing = storage::list(bucket, &options).map_err(storage_error)?;
    let objects: Vec<Value> = listing.objects.iter().map(info_json).collect();
    Ok(Response::json(
        200,
        &json!({ "objects": objects, "prefixes": listing.prefixes, "next": listing.next }),
    ))
}

/// `GET /{bucket}/{key...}?info`: the object's info as JSON.
fn info(bucket: &str, key: &str) -> Answer {
    let info = storage::head(bucket, key).map_err(storage_error)?;
    Ok(Response::json(200, &info_json(&info)))
}

/// `GET /{bucket}/{key...}`: the object's bytes, streamed, with its content
/// type and ETag. `offset` and `length` select a range (from 0, to the end
/// when absent).
fn download(req: &Request, bucket: &str, key: &str) -> Answer {
    let offset: Option<u64> = query_number(req, "offset")?;
    let length: Option<u64> = query_number(req, "length")?;
    let (info, reader, content_length) = if offset.is_none() && length.is_none() {
        let (info, reader) = storage::get(bucket, key).map_err(storage_error)?;
        let size = info.size;
        (info, reader, size)
    } else {
        let offset = offset.unwrap_or(0);
        // The host stops a range at the object's end.
        let length = length.unwrap_or(u64::MAX);
        let (info, reader) =
            storage::get_range(bucket, key, offset, length).map_err(storage_error)?;
        let available = info.size.saturating_sub(offset);
        (info, reader, length.min(available))
    };
    let content_type = info
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    Ok(Response::new(200)
        .header("content-type", content_type)
        .header("etag", format!("\"{}\"", info.etag))
        .header("content-length", content_length.to_string())
        .stream(move |out| pipe(reader, out)))
}

/// Copies an object to the response a host chunk at a time.
fn pipe(mut reader: storage::Reader, out: &mut BodyWriter) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return out.flush();
        }
        out.write_all(chunk)?;
        let n = chunk.len();
        reader.consume(n);
    }
}

/// `PUT /{bucket}/{key...}`: streams the request body into the object, a
/// chunk at a time, and stores it with the request's content type.
fn upload(req: Request, bucket: &str, key: &str) -> Answer {
    let content_type = req.header("content-type").map(str::to_owned);
    let mut writer = storage::put(bucket, key, content_type.as_deref()).map_err(storage_error)?;
    let mut body = req.body_reader();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match body.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(error(400, "bad_request", &e.to_string())),
        };
        writer
            .write_all(&chunk[..n])
            .map_err(|e| storage_error(e.into()))?;
    }
    let info = writer.finish().map_err(storage_error)?;
    Ok(Response::json(201, &info_json(&info)))
}

/// `DELETE /{bucket}/{key...}`: 204, no body (also for a missing object).
fn delete(bucket: &str, key: &str) -> Answer {
    storage::delete(bucket, key).map_err(storage_error)?;
    Ok(Response::new(204))
}

/// `POST /presign/{bucket}/{key...}?method=GET&expires=60`: the signed URL
/// as plain text.
fn presign(req: &Request, bucket: &str, key: &str) -> Answer {
    let method = query(req, "method")?
        .unwrap_or_else(|| "GET".to_owned())
        .to_ascii_uppercase();
    let expires = query_number(req, "expires")?.unwrap_or(DEFAULT_EXPIRY);
    let url = storage::presign(bucket, key, &method, expires).map_err(storage_error)?;
    Ok(Response::text(200, url))
}

/// An object's info as `{"key", "size", "etag", "contentType", "modified"}`.
fn info_json(info: &ObjectInfo) -> Value {
    json!({
        "key": info.key,
        "size": info.size,
        "etag": info.etag,
        "contentType": info.content_type,
        "modified": info.modified,
    })
}

/// The decoded query parameter `name`, if present.
fn query(req: &Request, name: &str) -> Result<Option<String>, Response> {
    req.query_param(name)
        .map_err(|e| invalid(&format!("query parameter `{name}`: {e}")))
}

/// The query parameter `name` as a non-negative integer, if present.
fn query_number<T: std::str::FromStr>(req: &Request, name: &str) -> Result<Option<T>, Response> {
    query(req, name)?
        .map(|value| {
            value.parse::<T>().map_err(|_| {
                invalid(&format!(
                    "query parameter `{name}` must be a whole number, not `{value}`"
                ))
            })
        })
        .transpose()
}

/// Decodes the `%XX` escapes of a raw path part (a `+` stays a `+`); the
/// result must be UTF-8.
fn percent_decode(raw: &str) -> Result<String, Response> {
    let malformed = || invalid(&format!("malformed percent escape in `{raw}`"));
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                .ok_or_else(malformed)?;
            out.push(hex_value(hex[0]) << 4 | hex_value(hex[1]));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(&format!("path part `{raw}` is not UTF-8")))
}

/// The value of an ASCII hex digit.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// The response for a storage error: its status, code and message.
fn storage_error(err: StorageError) -> Response {
    error(err.status(), err.code(), err.message())
}

/// A `{"error": {"code", "message"}}` JSON response.
fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

/// 400 `invalid`: a bad query parameter or path.
fn invalid(message: &str) -> Response {
    error(400, "invalid", message)
}

/// 400 `invalid` for an object route without a key.
fn missing_key() -> Response {
    invalid("the path names a bucket but no key: use /{bucket}/{key}")
}

/// 404 `route_not_found` for a path this API does not serve.
fn route_not_found(path: &str) -> Response {
    error(404, "route_not_found", &format!("no route for `{path}`"))
}

/// 405 `method_not_allowed`, with the `allow` header listing `allowed`.
fn method_not_allowed(method: &str, allowed: &str) -> Response {
    error(
        405,
        "method_not_allowed",
        &format!("{method} is not allowed here; use {allowed}"),
    )
    .header("allow", allowed)
}

aura_sdk::http_function!(handle);
