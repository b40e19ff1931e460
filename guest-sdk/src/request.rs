//! The incoming HTTP request handed to a function: method, path, query,
//! headers, and the body (read whole or streamed).

use std::io;

use crate::Error;
use crate::bindings::wasi::http::types::{IncomingBody, IncomingRequest, Method};
use crate::bindings::wasi::io::streams::{InputStream, StreamError};

/// Largest read requested from the host in one call.
const MAX_READ: usize = 64 * 1024;

/// An incoming HTTP request.
///
/// The head (method, path, query, headers) is read eagerly; the body is read
/// on demand with [`Request::body_bytes`] or [`Request::body_reader`].
pub struct Request {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    inner: IncomingRequest,
}

impl Request {
    pub(crate) fn from_wasi(inner: IncomingRequest) -> Self {
        let method = match inner.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Other(m) => m,
        };
        let path_with_query = inner.path_with_query().unwrap_or_default();
        let (path, query) = match path_with_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_with_query, None),
        };
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        let headers = inner
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        Self {
            method,
            path,
            query,
            headers,
            inner,
        }
    }

    /// The request method, e.g. `"GET"`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path as received by the function, without the query string.
    ///
    /// The host strips its `/fn/{name}` routing prefix, so a request to
    /// `/fn/hello/some/path?x=1` has path `/some/path`. Never empty.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string (after `?`, not decoded), if there was one.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The decoded value of the first `name` parameter of the query
    /// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte);
    /// `Ok(None)` if absent, `Err` for a malformed escape or non-UTF-8 value.
    pub fn query_param(&self, name: &str) -> Result<Option<String>, String> {
        query_param(self.query().unwrap_or(""), name)
    }

    /// All headers in the order received; values are decoded as lossy UTF-8.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::find_header(&self.headers, name)
    }

    /// Reads the whole request body into memory.
    pub fn body_bytes(self) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        io::Read::read_to_end(&mut self.body_reader(), &mut body)?;
        Ok(body)
    }

    /// Streams the request body; each `read` pulls the next bytes from the
    /// host, so large bodies need not fit in memory.
    pub fn body_reader(self) -> impl io::Read {
        BodyReader::open(self.inner)
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// Reader over the incoming body stream.
///
/// Field order matters: the stream is a child of the body resource and must
/// be dropped first, and the body before the request it came from.
struct BodyReader {
    state: Result<(InputStream, IncomingBody), Error>,
    _request: IncomingRequest,
}

impl BodyReader {
    fn open(request: IncomingRequest) -> Self {
        let state = request
            .consume()
            .map_err(|()| Error::new("body already consumed"))
            .and_then(|body| match body.stream() {
                Ok(stream) => Ok((stream, body)),
                Err(()) => Err(Error::new("body stream unavailable")),
            });
        Self {
            state,
            _request: request,
        }
    }
}

impl io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (stream, _) = self
            .state
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))?;
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(MAX_READ) as u64;
        loop {
            match stream.blocking_read(len) {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    return Ok(bytes.len());
                }
                Err(StreamError::Closed) => return Ok(0),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(io::Error::other(Error::new(e.to_debug_string())));
                }
            }
        }
    }
}

/// The decoded value of the first `name=value` pair in `query`
/// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte).
fn query_param(query: &str, name: &str) -> Result<Option<String>, String> {
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key)? == name {
            return percent_decode(value).map(Some);
        }
    }
    Ok(None)
}

/// Decodes `+` and `%XX` escapes; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| format!("malformed percent escape in `{s}`"))?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("query value `{s}` is not UTF-8"))
}
