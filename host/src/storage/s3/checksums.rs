//! Checksums (`x-amz-checksum-*`) a write claims, verified as its body
//! streams.

use super::super::StorageError;
use s3s::dto::*;
use s3s::{S3Error, s3_error};
use std::sync::Arc;

/// The [`Claimed`] checksums of a put or part `input` (both carry the same
/// `checksum_*` fields).
macro_rules! claimed {
    ($input:ident, $algorithm:expr, $trailers:expr) => {
        Claimed {
            algorithm: $algorithm,
            values: Checksum {
                checksum_crc32: $input.checksum_crc32,
                checksum_crc32c: $input.checksum_crc32c,
                checksum_crc64nvme: $input.checksum_crc64nvme,
                checksum_sha1: $input.checksum_sha1,
                checksum_sha256: $input.checksum_sha256,
                ..Default::default()
            },
            trailers: $trailers,
        }
    };
}

pub(super) use claimed;

/// Sets the `checksum_*` fields of an operation's output `$output` (puts,
/// parts, GET and HEAD answers all have them) from a [`Checksum`].
macro_rules! set_checksums {
    ($output:expr, $found:expr) => {{
        let found: Checksum = $found;
        $output.checksum_crc32 = found.checksum_crc32;
        $output.checksum_crc32c = found.checksum_crc32c;
        $output.checksum_crc64nvme = found.checksum_crc64nvme;
        $output.checksum_sha1 = found.checksum_sha1;
        $output.checksum_sha256 = found.checksum_sha256;
    }};
}
pub(super) use set_checksums;

/// The checksums (`x-amz-checksum-*`) a request says its body has, in
/// headers or, for aws-chunked bodies, in trailers that arrive after it.
#[derive(Clone, Default)]
pub struct Claimed {
    pub algorithm: Option<String>,
    pub values: Checksum,
    pub trailers: Option<s3s::TrailingHeaders>,
}

impl Claimed {
    /// Whether the body must be hashed.
    fn any(&self) -> bool {
        self.algorithm.is_some()
            || self.trailers.is_some()
            || self.values.checksum_crc32.is_some()
            || self.values.checksum_crc32c.is_some()
            || self.values.checksum_crc64nvme.is_some()
            || self.values.checksum_sha1.is_some()
            || self.values.checksum_sha256.is_some()
    }

    fn hasher(&self) -> s3s::checksum::ChecksumHasher {
        use s3s::crypto::Checksum as _;
        let named = |name: &str, value: bool| {
            value
                || self
                    .algorithm
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(name))
        };
        let v = &self.values;
        s3s::checksum::ChecksumHasher {
            crc32: named("CRC32", v.checksum_crc32.is_some()).then(s3s::crypto::Crc32::new),
            crc32c: named("CRC32C", v.checksum_crc32c.is_some()).then(s3s::crypto::Crc32c::new),
            crc64nvme: named("CRC64NVME", v.checksum_crc64nvme.is_some())
                .then(s3s::crypto::Crc64Nvme::new),
            sha1: named("SHA1", v.checksum_sha1.is_some()).then(s3s::crypto::Sha1::new),
            sha256: named("SHA256", v.checksum_sha256.is_some()).then(s3s::crypto::Sha256::new),
        }
    }

    /// Whether `computed` agrees with every value claimed (trailers are
    /// read now, after the body).
    fn matches(&self, computed: &Checksum) -> bool {
        let mut claimed = self.values.clone();
        if let Some(trailers) = self.trailers.as_ref().and_then(|t| t.take()) {
            let value = |name: &str| {
                trailers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            claimed.checksum_crc32 = claimed.checksum_crc32.or(value("x-amz-checksum-crc32"));
            claimed.checksum_crc32c = claimed.checksum_crc32c.or(value("x-amz-checksum-crc32c"));
            claimed.checksum_crc64nvme = claimed
                .checksum_crc64nvme
                .or(value("x-amz-checksum-crc64nvme"));
            claimed.checksum_sha1 = claimed.checksum_sha1.or(value("x-amz-checksum-sha1"));
            claimed.checksum_sha256 = claimed.checksum_sha256.or(value("x-amz-checksum-sha256"));
        }
        let agree = |claimed: &Option<String>, computed: &Option<String>| match claimed {
            Some(claimed) => computed.as_ref() == Some(claimed),
            None => true,
        };
        agree(&claimed.checksum_crc32, &computed.checksum_crc32)
            && agree(&claimed.checksum_crc32c, &computed.checksum_crc32c)
            && agree(&claimed.checksum_crc64nvme, &computed.checksum_crc64nvme)
            && agree(&claimed.checksum_sha1, &computed.checksum_sha1)
            && agree(&claimed.checksum_sha256, &computed.checksum_sha256)
    }
}

/// What hashing a body found: whether it disagreed with a claim, and the
/// checksums it has (by algorithm, `CRC32`…, base64 as S3 sends them),
/// known once the body has ended.
#[derive(Default)]
pub struct Hashed {
    mismatch: std::sync::atomic::AtomicBool,
    /// Shared with the write (`PutOptions::checksums`), which stores them.
    pub checksums: crate::storage::Checksums,
}

impl Hashed {
    /// The checksums found, as an answer's `x-amz-checksum-*` fields.
    pub fn found(&self) -> Checksum {
        as_fields(&self.checksums.lock().expect("checksums").clone())
    }
}

/// Stored checksums as the `x-amz-checksum-*` fields.
pub fn as_fields(stored: &std::collections::BTreeMap<String, String>) -> Checksum {
    let value = |name: &str| stored.get(name).cloned();
    Checksum {
        checksum_crc32: value("CRC32"),
        checksum_crc32c: value("CRC32C"),
        checksum_crc64nvme: value("CRC64NVME"),
        checksum_sha1: value("SHA1"),
        checksum_sha256: value("SHA256"),
        ..Default::default()
    }
}

/// The checksums computed, by algorithm.
fn by_algorithm(computed: &Checksum) -> std::collections::BTreeMap<String, String> {
    [
        ("CRC32", &computed.checksum_crc32),
        ("CRC32C", &computed.checksum_crc32c),
        ("CRC64NVME", &computed.checksum_crc64nvme),
        ("SHA1", &computed.checksum_sha1),
        ("SHA256", &computed.checksum_sha256),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
    .collect()
}

/// The body, hashed as it streams; if the claimed checksums do not match,
/// its last item is an error (so the write stores nothing) and `hashed`
/// says so; otherwise `hashed` holds the checksums before the stream ends.
pub fn verified(
    body: StreamingBlob,
    claimed: Claimed,
    hashed: Arc<Hashed>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, String>> + Send {
    use futures::StreamExt;
    let hasher = claimed.any().then(|| claimed.hasher());
    futures::stream::unfold(
        (body, hasher, claimed, false),
        move |(mut body, mut hasher, claimed, ended)| {
            let hashed = hashed.clone();
            async move {
                if ended {
                    return None;
                }
                match body.next().await {
                    Some(Ok(chunk)) => {
                        if let Some(hasher) = &mut hasher {
                            hasher.update(&chunk);
                        }
                        Some((Ok(chunk), (body, hasher, claimed, false)))
                    }
                    Some(Err(err)) => Some((Err(err.to_string()), (body, None, claimed, true))),
                    None => {
                        let computed = hasher.take()?.finalize();
                        if claimed.matches(&computed) {
                            *hashed.checksums.lock().expect("checksums") = by_algorithm(&computed);
                            return None;
                        }
                        hashed
                            .mismatch
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        Some((
                            Err("the body does not match its checksum".to_owned()),
                            (body, None, claimed, true),
                        ))
                    }
                }
            }
        },
    )
}

/// A write's error, with a checksum mismatch reported as `BadDigest`.
pub fn write_error(err: StorageError, hashed: &Hashed) -> S3Error {
    if hashed.mismatch.load(std::sync::atomic::Ordering::Relaxed) {
        return s3_error!(BadDigest, "the body does not match its x-amz-checksum");
    }
    err.into()
}
