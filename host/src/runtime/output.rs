//! Bounded capture of a guest's stdout or stderr.
//!
//! Each invocation gets its own pair of buffers. Output past the capacity is
//! dropped (and the truncation remembered) rather than failing the guest's
//! write: a chatty function must not trap because its log is full.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    truncated: bool,
}

/// A cloneable, bounded, in-memory output stream.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    capacity: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl CapturedOutput {
    /// A new empty capture keeping at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            buffer: Arc::default(),
        }
    }

    /// Appends `data`, dropping what does not fit.
    pub fn append(&self, data: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(buffer.bytes.len());
        if data.len() > room {
            buffer.truncated = true;
        }
        buffer
            .bytes
            .extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The captured text (lossy UTF-8), with a marker when output was dropped.
    pub fn text(&self) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        if buffer.truncated {
            text.push_str("\n[aura: output truncated]\n");
        }
        text
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_capacity_is_dropped_and_marked() {
        let out = CapturedOutput::new(5);
        out.append(b"hello world");
        assert_eq!(out.text(), "hello\n[aura: output truncated]\n");
    }

    #[test]
    fn output_within_capacity_is_kept_whole() {
        let out = CapturedOutput::new(64);
        out.append(b"one\n");
        out.append(b"two\n");
        assert_eq!(out.text(), "one\ntwo\n");
    }
}
