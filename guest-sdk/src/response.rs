//! The HTTP response a function returns — a fixed body or a streamed one —
//! and the code that sends it to the host over `wasi:http`.

use std::io;

use crate::bindings::wasi::http::types::{
    Fields, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use crate::bindings::wasi::io::streams::{OutputStream, StreamError};

/// Largest chunk `blocking-write-and-flush` accepts in one call.
const MAX_WRITE: usize = 4096;

/// Closure producing a streamed body.
type StreamFn = Box<dyn FnOnce(&mut BodyWriter) -> io::Result<()>>;

enum Body {
    Bytes(Vec<u8>),
    Stream(StreamFn),
}

/// An HTTP response: status, headers and a body that is either a byte buffer
/// or produced incrementally by a closure ([`Response::stream`]).
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.into())
    }

    /// An `application/json` response with `value` serialized as the body.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status)
            .header("content-type", "application/json")
            .body(value.to_string())
    }

    /// Appends a header (repeat a name to send several values).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the whole body. A `content-length` header is added when the
    /// response is sent unless one was set explicitly.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    /// Streams the body: after the status and headers are sent, `write` is
    /// called with a [`BodyWriter`]; every `write` goes to the host at once,
    /// so the client receives data as it is produced.
    ///
    /// If `write` returns an error the body is abandoned unfinished, which the
    /// host treats as a failed (truncated) response.
    pub fn stream(
        mut self,
        write: impl FnOnce(&mut BodyWriter) -> io::Result<()> + 'static,
    ) -> Self {
        self.body = Body::Stream(Box::new(write));
        self
    }

    /// Sends this response through `out`. Invalid status codes or headers
    /// become a 500 response (and a message on stderr).
    pub(crate) fn send(self, out: ResponseOutparam) {
        let (response, body) = match self.head() {
            Ok(head) => (head, self.body),
            Err(message) => {
                eprintln!("aura-sdk: {message}");
                let fallback = Response::text(500, format!("aura-sdk: {message}\n"));
                (
                    fallback.head().expect("fallback head is valid"),
                    fallback.body,
                )
            }
        };
        let outgoing_body = response.body().expect("response body taken once");
        ResponseOutparam::set(out, Ok(response));

        let mut writer = BodyWriter {
            stream: outgoing_body.write().expect("body stream taken once"),
        };
        let result = match body {
            Body::Bytes(bytes) => io::Write::write_all(&mut writer, &bytes),
            Body::Stream(write) => write(&mut writer).and_then(|()| io::Write::flush(&mut writer)),
        };
        // The stream is a child of the body and must be dropped before it.
        drop(writer);
        match result {
            Ok(()) => {
                if let Err(e) = OutgoingBody::finish(outgoing_body, None) {
                    eprintln!("aura-sdk: finishing response body failed: {e:?}");
                }
            }
            // Dropping the body without `finish` tells the host it is incomplete.
            Err(e) => eprintln!("aura-sdk: writing response body failed: {e}"),
        }
    }

    /// Builds the `wasi:http` response head (status and headers).
    fn head(&self) -> Result<OutgoingResponse, String> {
        let fields = Fields::new();
        for (name, value) in &self.headers {
            fields
                .append(name, value.as_bytes())
                .map_err(|e| format!("invalid response header `{name}`: {e:?}"))?;
        }
        if let Body::Bytes(bytes) = &self.body
            && !fields.has("content-length")
        {
            let len = bytes.len().to_string();
            fields
                .append("content-length", len.as_bytes())
                .map_err(|e| format!("cannot set content-length: {e:?}"))?;
        }
        let response = OutgoingResponse::new(fields);
        response
            .set_status_code(self.status)
            .map_err(|()| format!("invalid status code {}", self.status))?;
        Ok(response)
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            Body::Bytes(b) => format!("{} bytes", b.len()),
            Body::Stream(_) => "stream".to_string(),
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .finish()
    }
}

/// Writes a streamed response body straight to the host.
///
/// Each `write` call hands its bytes to the host (flushing them) before
/// returning, so the client sees them without waiting for the handler to
/// finish. `flush` is therefore cheap, but calling it is still good style.
pub struct BodyWriter {
    stream: OutputStream,
}

impl io::Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        for chunk in buf.chunks(MAX_WRITE) {
            match self.stream.blocking_write_and_flush(chunk) {
                Ok(()) => written += chunk.len(),
                // Report what already went out; the next write sees the error.
                Err(_) if written > 0 => break,
                Err(e) => return Err(stream_error(e)),
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.blocking_flush().map_err(stream_error)
    }
}

impl std::fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyWriter").finish_non_exhaustive()
    }
}

fn stream_error(e: StreamError) -> io::Error {
    match e {
        StreamError::Closed => io::Error::new(io::ErrorKind::BrokenPipe, "response stream closed"),
        StreamError::LastOperationFailed(e) => io::Error::other(e.to_debug_string()),
    }
}
