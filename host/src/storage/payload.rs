//! The declared hash of an S3 request body s3s reads whole, checked before
//! s3s reads it. s3s checks `x-amz-content-sha256` as a body streams, but
//! for the XML bodies of DeleteObjects, CompleteMultipartUpload and
//! CreateBucket it turns a mismatch into a 500 `InternalError`; S3
//! answers 400 `XAmzContentSHA256Mismatch`, and so does Aura. Uploads
//! (PutObject, UploadPart) stream, and their mismatch reaches the storage
//! service as a body error. The fuzz target `s3` runs this check in front
//! of s3s as the S3 port does.

use http::{HeaderMap, Method};
use sha2::Digest as _;

/// The most s3s reads of a whole body (its `xml_max_body_size`).
pub const MAX_WHOLE_BODY: usize = 20 << 20;

/// Whether s3s reads the body of a request whole: a POST (an XML
/// document, or the form of a browser upload), or a PUT on a bucket
/// rather than on a key.
pub fn read_whole(method: &Method, path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let _bucket = segments.next();
    let on_key = segments.next().is_some_and(|key| !key.is_empty());
    *method == Method::POST || (*method == Method::PUT && !on_key)
}

/// The SHA-256 a request declares for its body, if it declares one (not
/// `UNSIGNED-PAYLOAD` or a streaming mode).
pub fn declared(headers: &HeaderMap) -> Option<[u8; 32]> {
    let value = headers.get("x-amz-content-sha256")?.to_str().ok()?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(value, &mut hash).ok()?;
    Some(hash)
}

/// Whether `body` is what the request declared, or declared nothing.
pub fn matches(headers: &HeaderMap, body: &[u8]) -> bool {
    declared(headers).is_none_or(|hash| sha2::Sha256::digest(body)[..] == hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_bodies_are_read_whole_and_uploads_stream() {
        assert!(read_whole(&Method::POST, "/bucket"));
        assert!(read_whole(&Method::POST, "/bucket/key"));
        assert!(read_whole(&Method::PUT, "/bucket"));
        assert!(read_whole(&Method::PUT, "/bucket/"));
        assert!(!read_whole(&Method::PUT, "/bucket/key"));
        assert!(!read_whole(&Method::PUT, "/bucket/dir/key"));
        assert!(!read_whole(&Method::GET, "/bucket"));
    }

    #[test]
    fn declared_hashes_are_checked() {
        let mut headers = HeaderMap::new();
        assert!(matches(&headers, b"anything"));
        headers.insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        assert!(matches(&headers, b"anything"));
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        headers.insert("x-amz-content-sha256", empty.parse().unwrap());
        assert!(matches(&headers, b""));
        assert!(!matches(&headers, b"x"));
    }
}
