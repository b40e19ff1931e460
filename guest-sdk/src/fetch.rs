//! Outbound HTTP: a small blocking client over `wasi:http/outgoing-handler`
//! ([`fetch`]), with its request builder, buffered response and error type.
//!
//! The host decides which hosts a function may reach (its network grant); a
//! refused request fails with a [`FetchError`] whose
//! [`error_code`](FetchError::error_code) is `HttpRequestDenied`.

use std::fmt;

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Largest read requested from the host in one call.
const MAX_READ: u64 = 64 * 1024;

/// Largest chunk `blocking-write-and-flush` accepts in one call.
const MAX_WRITE: usize = 4096;

/// Sends `request` and waits for the whole response, body included.
///
/// Blocks the (synchronous) handler until the response has arrived. Any
/// status code, 4xx and 5xx included, is a successful [`OutboundResponse`];
/// a [`FetchError`] means the request was invalid, refused by the host (no
/// network grant for that host: `HttpRequestDenied`) or failed in transit
/// (DNS, connection, TLS, timeout, ...).
///
/// ```no_run
/// let response = aura_sdk::fetch(aura_sdk::OutboundRequest::get("https://example.org/"))?;
/// println!("{} {}", response.status(), response.text());
/// # Ok::<(), aura_sdk::FetchError>(())
/// ```
pub fn fetch(request: OutboundRequest) -> Result<OutboundResponse, FetchError> {
    let url = parse_url(&request.url).map_err(|reason| {
        FetchError::invalid(format!("invalid URL `{}`: {reason}", request.url))
    })?;

    let headers = Fields::new();
    for (name, value) in &request.headers {
        headers.append(name, value.as_bytes()).map_err(|e| {
            FetchError::invalid(format!("invalid header `{name}`: {}", header_error(&e)))
        })?;
    }
    if let Some(body) = &request.body
        && !headers.has("content-length")
    {
        headers
            .append("content-length", body.len().to_string().as_bytes())
            .map_err(|e| {
                FetchError::invalid(format!("cannot set content-length: {}", header_error(&e)))
            })?;
    }

    let outgoing = OutgoingRequest::new(headers);
    outgoing
        .set_method(&wasi_method(&request.method))
        .map_err(|()| FetchError::invalid(format!("invalid method `{}`", request.method)))?;
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| FetchError::invalid("invalid scheme"))?;
    outgoing
        .set_authority(Some(&url.authority))
        .map_err(|()| FetchError::invalid(format!("invalid authority `{}`", url.authority)))?;
    outgoing
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| FetchError::invalid(format!("invalid path `{}`", url.path_with_query)))?;

    // The body handle must be taken before the request is handed over; it is
    // written after `handle`, once the host is ready to stream it out.
    let outgoing_body = match &request.body {
        Some(_) => Some(
            outgoing
                .body()
                .map_err(|()| FetchError::other("request body unavailable"))?,
        ),
        None => None,
    };

    let future = outgoing_handler::handle(outgoing, None).map_err(FetchError::http)?;

    if let (Some(outgoing_body), Some(bytes)) = (outgoing_body, &request.body)
        && let Err(write_error) = write_body(outgoing_body, bytes)
    {
        // A refused or failed request closes the body stream; the response
        // future then holds the reason, which says more than the write error.
        return Err(match wait(&future) {
            Err(e) if e.kind == Kind::Http => e,
            _ => write_error,
        });
    }

    let response = wait(&future)?;
    read_response(response)
}

/// An outbound HTTP request for [`fetch`]: method, URL, headers and an
/// optional body.
///
/// The URL must be an absolute `http://` or `https://` URL in ASCII, without
/// user info; a fragment (`#...`) is dropped. It is checked when the request
/// is sent, so a bad URL makes [`fetch`] return a [`FetchError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl OutboundRequest {
    /// A `GET` request for `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A request with `method` (e.g. `"POST"`; standard methods are matched
    /// case-insensitively) for `url`.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Appends a header (repeat a name to send several values).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the request body. A `content-length` header is added unless one
    /// was set explicitly.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The request method as given.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A response received by [`fetch`], with its body read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl OutboundResponse {
    /// The status code, e.g. `200`.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// All headers in the order received; values are decoded as lossy UTF-8.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::find_header(&self.headers, name)
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body decoded as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Takes the body bytes, consuming the response.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// Why [`fetch`] failed.
///
/// When the host refused or failed the request, [`FetchError::error_code`]
/// names the `wasi:http` `error-code` (e.g. `HttpRequestDenied`,
/// `ConnectionRefused`, `DnsError`), and the [`Display`](fmt::Display) text
/// contains the code in debug form, e.g. `request failed: HttpRequestDenied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    kind: Kind,
    /// For [`Kind::Http`], the error code's debug form.
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The request could not be built (bad URL, header, method...).
    Invalid,
    /// The host reported a `wasi:http` error code; `detail` is its debug form.
    Http,
    /// Anything else (host streams misbehaving).
    Other,
}

impl FetchError {
    fn invalid(detail: impl Into<String>) -> Self {
        Self {
            kind: Kind::Invalid,
            detail: detail.into(),
        }
    }

    fn http(code: ErrorCode) -> Self {
        // The generated `Debug` prefixes the type name; drop it so the text
        // reads like the host's (`HttpRequestDenied`, `DnsError(...)`).
        let debug = format!("{code:?}");
        let detail = debug.strip_prefix("ErrorCode::").unwrap_or(&debug);
        Self {
            kind: Kind::Http,
            detail: detail.to_string(),
        }
    }

    fn other(detail: impl Into<String>) -> Self {
        Self {
            kind: Kind::Other,
            detail: detail.into(),
        }
    }

    /// The name of the `wasi:http` error code (e.g. `"HttpRequestDenied"`,
    /// `"ConnectionRefused"`, `"DnsError"`) when the host refused or failed
    /// the request; `None` for errors found before sending (such as an
    /// invalid URL). The [`Display`](fmt::Display) text has the code's
    /// payload too, if any.
    pub fn error_code(&self) -> Option<&str> {
        match self.kind {
            Kind::Http => {
                let end = self.detail.find('(').unwrap_or(self.detail.len());
                Some(&self.detail[..end])
            }
            Kind::Invalid | Kind::Other => None,
        }
    }

    /// Whether the request was invalid and never sent (bad URL, header or
    /// method).
    pub fn is_invalid_request(&self) -> bool {
        self.kind == Kind::Invalid
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Invalid => write!(f, "invalid request: {}", self.detail),
            Kind::Http | Kind::Other => write!(f, "request failed: {}", self.detail),
        }
    }
}

impl std::error::Error for FetchError {}

/// A header error's name, e.g. `Forbidden` (the generated `Debug` prefixes
/// the type name).
fn header_error(e: &HeaderError) -> String {
    let debug = format!("{e:?}");
    debug
        .strip_prefix("HeaderError::")
        .unwrap_or(&debug)
        .to_string()
}

/// Maps a method name to `wasi:http`; standard names case-insensitively.
fn wasi_method(method: &str) -> Method {
    match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        _ => Method::Other(method.to_string()),
    }
}

/// Writes the whole request body and finishes it.
fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), FetchError> {
    let stream = body
        .write()
        .map_err(|()| FetchError::other("request body stream unavailable"))?;
    let written = write_all(&stream, bytes);
    // The stream is a child of the body and must be dropped before it.
    drop(stream);
    // On error the body is dropped unfinished, which aborts the request.
    written?;
    OutgoingBody::finish(body, None).map_err(FetchError::http)
}

fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), FetchError> {
    for chunk in bytes.chunks(MAX_WRITE) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| stream_error("writing request body", e))?;
    }
    Ok(())
}

/// Blocks until the response head has arrived.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, FetchError> {
    // The pollable is a child of the future and is dropped first.
    let pollable = future.subscribe();
    loop {
        match future.get() {
            None => pollable.block(),
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(FetchError::http(code)),
            Some(Err(())) => return Err(FetchError::other("response already taken")),
        }
    }
}

/// Reads status, headers and the whole body of `response`.
fn read_response(response: IncomingResponse) -> Result<OutboundResponse, FetchError> {
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let body = response
        .consume()
        .map_err(|()| FetchError::other("response body already consumed"))?;
    let stream = body
        .stream()
        .map_err(|()| FetchError::other("response body stream unavailable"))?;
    let bytes = read_all(&stream);
    // Drop order: stream, then body, then the response they came from.
    drop(stream);
    let bytes = bytes?;
    // Trailers are not exposed; finishing just releases the body.
    drop(IncomingBody::finish(body));
    drop(response);
    Ok(OutboundResponse {
        status,
        headers,
        body: bytes,
    })
}

fn read_all(stream: &InputStream) -> Result<Vec<u8>, FetchError> {
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(MAX_READ) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(e) => return Err(stream_error("reading response body", e)),
        }
    }
}

/// Turns a stream error into a [`FetchError`], keeping the `wasi:http` error
/// code when the host attached one.
fn stream_error(context: &str, e: StreamError) -> FetchError {
    match e {
        StreamError::Closed => FetchError::other(format!("{context}: stream closed")),
        StreamError::LastOperationFailed(e) => {
            match crate::bindings::wasi::http::types::http_error_code(&e) {
                Some(code) => FetchError::http(code),
                None => FetchError::other(format!("{context}: {}", e.to_debug_string())),
            }
        }
    }
}

/// A URL split the way `wasi:http` wants it.
#[derive(Debug, PartialEq, Eq)]
struct ParsedUrl {
    https: bool,
    /// `host[:port]`, host lowercased.
    authority: String,
    /// Starts with `/`; the fragment is removed.
    path_with_query: String,
}

/// Parses an absolute `http(s)://host[:port][/path][?query][#fragment]` URL.
///
/// Deliberately strict: ASCII only, no whitespace or control characters, no
/// user info, host made of letters, digits, `-`, `.` and `_` (or a bracketed
/// IPv6 address), well-formed `%XX` escapes.
fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("unexpected character {c:?}"));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected an absolute URL (`http://...` or `https://...`)")?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => {
            return Err(format!(
                "unsupported scheme `{scheme}` (only http and https)"
            ));
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    check_authority(authority)?;
    let path_with_query = rest.split_once('#').map_or(rest, |(before, _)| before);
    check_path(path_with_query)?;
    let path_with_query = if path_with_query.starts_with('/') {
        path_with_query.to_string()
    } else {
        // Empty, or just a query: `http://h?x` means `/?x`.
        format!("/{path_with_query}")
    };
    Ok(ParsedUrl {
        https,
        authority: authority.to_ascii_lowercase(),
        path_with_query,
    })
}

fn check_authority(authority: &str) -> Result<(), String> {
    if authority.is_empty() {
        return Err("missing host".to_string());
    }
    if authority.contains('@') {
        return Err("user info (`user@host`) is not supported".to_string());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unterminated `[` in host")?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("invalid IPv6 host `[{addr}]`"));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("unexpected text after `]`")?),
        };
        (None, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    if let Some(host) = host
        && (host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(format!("invalid host `{host}`"));
    }
    if let Some(port) = port
        && (port.is_empty()
            || port.len() > 5
            || !port.chars().all(|c| c.is_ascii_digit())
            || port.parse::<u32>().map_or(true, |p| p > 65535))
    {
        return Err(format!("invalid port `{port}`"));
    }
    Ok(())
}

fn check_path(path_with_query: &str) -> Result<(), String> {
    let bytes = path_with_query.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' => {
                let escape = bytes.get(i + 1..i + 3);
                if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
                    return Err("malformed `%` escape in path".to_string());
                }
            }
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' => {
                return Err(format!("character `{}` must be percent-encoded", b as char));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (bool, String, String) {
        let p = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (p.https, p.authority, p.path_with_query)
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            ok("https://example.org"),
            (true, "example.org".into(), "/".into())
        );
        assert_eq!(
            ok("HTTP://Example.ORG:8080/a/b?x=1&y=%20#frag"),
            (false, "example.org:8080".into(), "/a/b?x=1&y=%20".into())
        );
        assert_eq!(ok("http://h?x=1"), (false, "h".into(), "/?x=1".into()));
        assert_eq!(ok("http://[::1]:9/"), (false, "[::1]:9".into(), "/".into()));
        assert_eq!(
            ok("http://127.0.0.1#top"),
            (false, "127.0.0.1".into(), "/".into())
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "",
            "example.org",
            "/relative",
            "ftp://example.org/",
            "https://",
            "https:///path",
            "https://user@example.org/",
            "https://exa mple.org/",
            "https://example.org/a b",
            "https://exämple.org/",
            "https://example.org:/",
            "https://example.org:99999/",
            "https://example.org:8o/",
            "https://[::1/",
            "https://[::1]x/",
            "https://example.org/%zz",
            "https://example.org/%4",
            "https://example.org/{x}",
            "https://example.org\\evil/",
        ] {
            assert!(parse_url(url).is_err(), "{url:?} should be rejected");
        }
    }

    #[test]
    fn error_display_carries_code() {
        let e = FetchError::http(ErrorCode::HttpRequestDenied);
        assert_eq!(e.error_code(), Some("HttpRequestDenied"));
        assert_eq!(e.to_string(), "request failed: HttpRequestDenied");
        let e = FetchError::http(ErrorCode::DnsError(
            crate::bindings::wasi::http::types::DnsErrorPayload {
                rcode: Some("nxdomain".into()),
                info_code: None,
            },
        ));
        assert_eq!(e.error_code(), Some("DnsError"));
        assert!(
            e.to_string()
                .starts_with("request failed: DnsError(DnsErrorPayload {")
        );
        let e = FetchError::invalid("invalid URL `x`: nope");
        assert_eq!(e.error_code(), None);
        assert!(e.is_invalid_request());
    }
}
