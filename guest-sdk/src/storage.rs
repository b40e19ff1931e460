//! Objects in buckets (`aura:platform/storage`): the same store as the S3 API
//! and the REST API `/api/storage`.
//!
//! The function may only use the buckets its `buckets` grant lists:
//!
//! ```toml
//! [grants]
//! buckets = { avatars = "read-write", reports = "read" }
//! ```
//!
//! `"read"` allows [`head`], [`get`], [`get_range`], [`list`] and
//! [`presign`] for `GET`; `"read-write"` also allows [`put`], [`put_bytes`],
//! [`delete`] and [`presign`] for `PUT`. The function acts as itself, not as
//! the user who invoked it: the buckets' REST rules are for apps, the grant
//! is what a function may do.
//!
//! Bytes stream in chunks both ways: [`get`] hands out a [`Reader`]
//! (`std::io::Read`) and [`put`] a [`Writer`] (`std::io::Write`), so an
//! object of any size passes through a function in bounded memory. Every
//! failure is a [`StorageError`], whose [`StorageError::status`] is the HTTP
//! status that fits it.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use aura_sdk::storage::{self, ListOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Small objects in one call…
//! storage::put_bytes("avatars", "u1/small.txt", Some("text/plain"), b"hello")?;
//!
//! // …large ones in pieces; nothing is visible until `finish`.
//! let mut writer = storage::put("avatars", "u1/big.bin", None)?;
//! for _ in 0..1000 {
//!     writer.write_all(&[0u8; 4096])?;
//! }
//! let info = writer.finish()?;
//! assert_eq!(info.size, 4096 * 1000);
//!
//! let (info, mut reader) = storage::get("avatars", "u1/small.txt")?;
//! let mut text = String::new();
//! reader.read_to_string(&mut text)?;
//! println!("{} ({:?}): {text}", info.key, info.content_type);
//!
//! let page = storage::list("avatars", &ListOptions::new().prefix("u1/").limit(50))?;
//! for object in &page.objects {
//!     println!("{} {} bytes", object.key, object.size);
//! }
//!
//! let url = storage::presign("reports", "2024/q1.pdf", "GET", 600)?;
//! # let _ = url;
//! # Ok(())
//! # }
//! ```
//!
//! The module's calls import `aura:platform/storage@0.1.0`; a function that
//! never calls them does not import it and needs no grant.

use std::io;

use crate::bindings::aura::platform::storage as wit;

/// The largest chunk moved across the host boundary in one call, both ways.
const CHUNK: usize = 64 * 1024;

/// How many objects [`list`] returns when [`ListOptions::limit`] is unset
/// (the REST API's default too).
const DEFAULT_LIST_LIMIT: u32 = 100;

/// Why a storage call failed. Each variant carries the host's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The bucket is not in the function's grant, or is granted only for
    /// reading (HTTP 403).
    Denied(String),
    /// No such bucket or object (HTTP 404).
    NotFound(String),
    /// A key that is refused (`..`, control characters…), a bad range or a
    /// bad method (HTTP 400).
    Invalid(String),
    /// Over the bucket's size limit (HTTP 413).
    TooLarge(String),
    /// Anything else; details are in the server log (HTTP 500).
    Internal(String),
}

impl StorageError {
    /// The HTTP status matching the error: 403 [`Denied`](Self::Denied),
    /// 404 [`NotFound`](Self::NotFound), 400 [`Invalid`](Self::Invalid),
    /// 413 [`TooLarge`](Self::TooLarge), 500 [`Internal`](Self::Internal).
    pub fn status(&self) -> u16 {
        match self {
            StorageError::Denied(_) => 403,
            StorageError::NotFound(_) => 404,
            StorageError::Invalid(_) => 400,
            StorageError::TooLarge(_) => 413,
            StorageError::Internal(_) => 500,
        }
    }

    /// A stable machine-readable name for the variant: `"denied"`,
    /// `"not_found"`, `"invalid"`, `"too_large"` or `"internal"`.
    pub fn code(&self) -> &'static str {
        match self {
            StorageError::Denied(_) => "denied",
            StorageError::NotFound(_) => "not_found",
            StorageError::Invalid(_) => "invalid",
            StorageError::TooLarge(_) => "too_large",
            StorageError::Internal(_) => "internal",
        }
    }

    /// The host's message, without the variant prefix that `Display` adds.
    pub fn message(&self) -> &str {
        match self {
            StorageError::Denied(message)
            | StorageError::NotFound(message)
            | StorageError::Invalid(message)
            | StorageError::TooLarge(message)
            | StorageError::Internal(message) => message,
        }
    }

    /// The `std::io::ErrorKind` closest to the variant.
    fn io_kind(&self) -> io::ErrorKind {
        match self {
            StorageError::Denied(_) => io::ErrorKind::PermissionDenied,
            StorageError::NotFound(_) => io::ErrorKind::NotFound,
            StorageError::Invalid(_) => io::ErrorKind::InvalidInput,
            StorageError::TooLarge(_) => io::ErrorKind::FileTooLarge,
            StorageError::Internal(_) => io::ErrorKind::Other,
        }
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Denied(message) => write!(f, "storage access denied: {message}"),
            StorageError::NotFound(message) => write!(f, "storage object not found: {message}"),
            StorageError::Invalid(message) => write!(f, "storage input invalid: {message}"),
            StorageError::TooLarge(message) => write!(f, "storage object too large: {message}"),
            StorageError::Internal(message) => write!(f, "storage internal error: {message}"),
        }
    }
}

impl std::error::Error for StorageError {}

impl From<wit::Error> for StorageError {
    fn from(err: wit::Error) -> Self {
        match err {
            wit::Error::Denied(message) => StorageError::Denied(message),
            wit::Error::NotFound(message) => StorageError::NotFound(message),
            wit::Error::Invalid(message) => StorageError::Invalid(message),
            wit::Error::TooLarge(message) => StorageError::TooLarge(message),
            wit::Error::Internal(message) => StorageError::Internal(message),
        }
    }
}

/// The `io::Error` that [`Reader`] and [`Writer`] return: the kind closest
/// to the variant (`PermissionDenied`, `NotFound`, `InvalidInput`,
/// `FileTooLarge`, `Other`) wrapping the `StorageError` itself.
impl From<StorageError> for io::Error {
    fn from(err: StorageError) -> Self {
        io::Error::new(err.io_kind(), err)
    }
}

/// Recovers the `StorageError` inside an `io::Error` from a [`Reader`] or
/// [`Writer`]; any other `io::Error` becomes [`StorageError::Internal`]
/// with its text.
impl From<io::Error> for StorageError {
    fn from(err: io::Error) -> Self {
        let text = err.to_string();
        match err
            .into_inner()
            .map(|inner| inner.downcast::<StorageError>())
        {
            Some(Ok(storage)) => *storage,
            _ => StorageError::Internal(text),
        }
    }
}

/// An object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's key in its bucket.
    pub key: String,
    /// Length in bytes.
    pub size: u64,
    /// The ETag (hex MD5, or `…-N` for multipart uploads), unquoted.
    pub etag: String,
    /// The media type given when the object was stored, if any.
    pub content_type: Option<String>,
    /// Last modified (RFC 3339).
    pub modified: String,
}

impl From<wit::ObjectInfo> for ObjectInfo {
    fn from(info: wit::ObjectInfo) -> Self {
        Self {
            key: info.key,
            size: info.size,
            etag: info.etag,
            content_type: info.content_type,
            modified: info.modified,
        }
    }
}

/// A page of a [`list`], in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The objects of the page.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes, when a delimiter was given (each ends with it).
    pub prefixes: Vec<String>,
    /// Pass as [`ListOptions::after`] for the next page; `None` on the last
    /// page. A page may hold fewer than `limit` entries before the end.
    pub next: Option<String>,
}

impl From<wit::Listing> for Listing {
    fn from(listing: wit::Listing) -> Self {
        Self {
            objects: listing.objects.into_iter().map(ObjectInfo::from).collect(),
            prefixes: listing.prefixes,
            next: listing.next,
        }
    }
}

/// What [`list`] returns: objects under a prefix, after a key, rolled up at
/// a delimiter. [`ListOptions::default`] asks for the first 100 objects of
/// the bucket.
///
/// ```
/// use aura_sdk::storage::ListOptions;
///
/// let options = ListOptions::new().prefix("photos/").delimiter("/").limit(20);
/// assert_eq!(options.limit, Some(20));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys that start with this (`""`: every key).
    pub prefix: String,
    /// Roll keys up at the first occurrence of this after the prefix: such
    /// keys come back once, as a [`Listing::prefixes`] entry.
    pub delimiter: Option<String>,
    /// Only keys after this one: the previous page's [`Listing::next`].
    pub after: Option<String>,
    /// At most this many entries, 1 to 1000 (100 if unset).
    pub limit: Option<u32>,
}

impl ListOptions {
    /// Every key, first page (same as [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the delimiter.
    pub fn delimiter(mut self, delimiter: impl Into<String>) -> Self {
        self.delimiter = Some(delimiter.into());
        self
    }

    /// Starts after `key` (the previous page's [`Listing::next`]).
    pub fn after(mut self, key: impl Into<String>) -> Self {
        self.after = Some(key.into());
        self
    }

    /// Sets the largest number of entries (1 to 1000).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// An object's metadata.
pub fn head(bucket: &str, key: &str) -> Result<ObjectInfo, StorageError> {
    Ok(wit::head(bucket, key)?.into())
}

/// Reads an object: its metadata and a [`Reader`] over its bytes.
pub fn get(bucket: &str, key: &str) -> Result<(ObjectInfo, Reader), StorageError> {
    open(bucket, key, None)
}

/// Reads `length` bytes of an object from `offset`; a range that runs past
/// the end stops there, one that starts past the end is
/// [`StorageError::Invalid`]. The [`ObjectInfo`] is the whole object's
/// (its `size` is not the range's).
pub fn get_range(
    bucket: &str,
    key: &str,
    offset: u64,
    length: u64,
) -> Result<(ObjectInfo, Reader), StorageError> {
    open(bucket, key, Some((offset, length)))
}

fn open(
    bucket: &str,
    key: &str,
    range: Option<(u64, u64)>,
) -> Result<(ObjectInfo, Reader), StorageError> {
    let (info, inner) = wit::get(bucket, key, range)?;
    let reader = Reader {
        inner,
        chunk: Vec::new(),
        pos: 0,
        done: false,
    };
    Ok((info.into(), reader))
}

/// Starts writing an object; write its bytes to the [`Writer`], then call
/// [`Writer::finish`]. `content_type` is stored with it and served back.
pub fn put(bucket: &str, key: &str, content_type: Option<&str>) -> Result<Writer, StorageError> {
    let inner = wit::put(bucket, key, content_type)?;
    Ok(Writer {
        inner,
        buffer: Vec::new(),
        failed: None,
    })
}

/// Stores `bytes` as an object in one call (they are still sent in chunks).
pub fn put_bytes(
    bucket: &str,
    key: &str,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<ObjectInfo, StorageError> {
    let mut writer = put(bucket, key, content_type)?;
    for chunk in bytes.chunks(CHUNK) {
        writer.send(chunk)?;
    }
    writer.finish()
}

/// Deletes an object; a missing one is not an error.
pub fn delete(bucket: &str, key: &str) -> Result<(), StorageError> {
    wit::delete(bucket, key)?;
    Ok(())
}

/// One page of the objects of `bucket` that `options` select.
pub fn list(bucket: &str, options: &ListOptions) -> Result<Listing, StorageError> {
    let listing = wit::list(
        bucket,
        &options.prefix,
        options.delimiter.as_deref(),
        options.after.as_deref(),
        options.limit.unwrap_or(DEFAULT_LIST_LIMIT),
    )?;
    Ok(listing.into())
}

/// An Aura-signed URL that lets whoever holds it `method` (`"GET"` or
/// `"PUT"`) the one object for `expires_in_seconds` (at most 7 days).
/// `"PUT"` needs a `"read-write"` grant.
pub fn presign(
    bucket: &str,
    key: &str,
    method: &str,
    expires_in_seconds: u32,
) -> Result<String, StorageError> {
    Ok(wit::presign(bucket, key, method, expires_in_seconds)?)
}

/// An object's bytes, from [`get`] or [`get_range`], read in order.
///
/// Bytes come from the host in chunks of up to 64 KiB, kept until read, so
/// small reads are cheap; [`io::BufRead`] exposes the chunk directly.
/// Errors are `io::Error`s wrapping a [`StorageError`] (convert back with
/// `StorageError::from`).
pub struct Reader {
    inner: wit::Reader,
    /// The last chunk from the host; `chunk[pos..]` is not read yet.
    chunk: Vec<u8>,
    pos: usize,
    /// The host signalled the end (an empty chunk).
    done: bool,
}

impl io::BufRead for Reader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.chunk.len() && !self.done {
            self.chunk = self.inner.read(CHUNK as u32).map_err(StorageError::from)?;
            self.pos = 0;
            self.done = self.chunk.is_empty();
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.chunk.len());
    }
}

impl io::Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = io::BufRead::fill_buf(self)?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("buffered", &(self.chunk.len() - self.pos))
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// An object being written, from [`put`].
///
/// Writes are gathered into chunks of up to 64 KiB before they go to the
/// host. Nothing is visible until [`Writer::finish`] stores the object; a
/// writer dropped unfinished (or one whose write failed) leaves the previous
/// object, if any, as it was. Errors are `io::Error`s wrapping a
/// [`StorageError`]; after one, [`Writer::finish`] returns that error.
pub struct Writer {
    inner: wit::Writer,
    /// Bytes not yet sent to the host, at most [`CHUNK`].
    buffer: Vec<u8>,
    /// The first error from the host; nothing more is sent after it.
    failed: Option<StorageError>,
}

impl Writer {
    /// Sends the buffered bytes and stores the object, which replaces any
    /// object with the key; returns its metadata.
    pub fn finish(mut self) -> Result<ObjectInfo, StorageError> {
        self.send_buffer()?;
        Ok(self.inner.finish()?.into())
    }

    /// Sends `chunk` to the host, remembering a failure.
    fn send(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        self.inner.write(chunk).map_err(|err| {
            let err = StorageError::from(err);
            self.failed = Some(err.clone());
            err
        })
    }

    fn send_buffer(&mut self) -> Result<(), StorageError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if !self.buffer.is_empty() {
            let buffer = std::mem::take(&mut self.buffer);
            self.send(&buffer)?;
            // Reuse the allocation for the next chunk.
            self.buffer = buffer;
            self.buffer.clear();
        }
        Ok(())
    }
}

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(err) = &self.failed {
            return Err(err.clone().into());
        }
        if self.buffer.len() == CHUNK {
            self.send_buffer()?;
        }
        // A whole chunk with nothing buffered goes out without a copy.
        if self.buffer.is_empty() && buf.len() >= CHUNK {
            self.send(&buf[..CHUNK])?;
            return Ok(CHUNK);
        }
        if self.buffer.capacity() == 0 {
            self.buffer.reserve_exact(CHUNK);
        }
        let n = buf.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Sends the buffered bytes to the host (they are still invisible until
    /// [`Writer::finish`]).
    fn flush(&mut self) -> io::Result<()> {
        Ok(self.send_buffer()?)
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("buffered", &self.buffer.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
