//! Per-function resource limits: what one invocation may consume.
//!
//! Limits are stored with each deployed version (a new version may change
//! them; rollback restores the old ones). Missing fields take the documented
//! defaults; values outside the allowed ranges are refused at deploy.

use serde::{Deserialize, Serialize};

/// The resource limits of one function version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory an instance may grow to, in MiB.
    pub memory_mb: u64,
    /// CPU time an invocation may spend running guest code, in milliseconds
    /// (measured with epoch ticks of [`super::EPOCH_TICK`]).
    pub cpu_ms: u64,
    /// Wall-clock time an invocation may take, in milliseconds, including time
    /// spent waiting (sleeps, slow clients, outbound calls).
    pub timeout_ms: u64,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: u64,
    /// Largest response body sent, in bytes; the body is cut past it.
    pub max_response_bytes: u64,
    /// Outbound HTTP requests one invocation may make.
    pub max_outbound_requests: u32,
    /// Time an outbound request may take to connect, to answer, and between
    /// body chunks, in milliseconds.
    pub outbound_timeout_ms: u64,
    /// Largest outbound response body read, in bytes.
    pub max_outbound_response_bytes: u64,
    /// Queued asynchronous invocations of this function that run at once.
    pub async_concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mb: 128,
            cpu_ms: 10_000,
            timeout_ms: 60_000,
            max_request_bytes: 16 * MIB,
            max_response_bytes: 256 * MIB,
            max_outbound_requests: 50,
            outbound_timeout_ms: 30_000,
            max_outbound_response_bytes: 32 * MIB,
            async_concurrency: 4,
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// The largest memory limit a function may ask for; the pooling allocator
/// reserves address space for this much per instance slot.
pub const MAX_MEMORY_MB: u64 = 1024;

impl Limits {
    /// Checks that every limit is within its allowed range.
    pub fn validate(&self) -> Result<(), String> {
        let check = |name: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "limit `{name}` must be between {min} and {max}, got {value}"
                ))
            }
        };
        check("memory_mb", self.memory_mb, 1, MAX_MEMORY_MB)?;
        check("cpu_ms", self.cpu_ms, 10, 15 * 60_000)?;
        check("timeout_ms", self.timeout_ms, 10, 60 * 60_000)?;
        check(
            "max_request_bytes",
            self.max_request_bytes,
            0,
            4 * 1024 * MIB,
        )?;
        check(
            "max_response_bytes",
            self.max_response_bytes,
            0,
            64 * 1024 * MIB,
        )?;
        check(
            "max_outbound_requests",
            u64::from(self.max_outbound_requests),
            0,
            10_000,
        )?;
        check(
            "outbound_timeout_ms",
            self.outbound_timeout_ms,
            10,
            15 * 60_000,
        )?;
        check(
            "max_outbound_response_bytes",
            self.max_outbound_response_bytes,
            0,
            4 * 1024 * MIB,
        )?;
        check(
            "async_concurrency",
            u64::from(self.async_concurrency),
            1,
            100,
        )?;
        Ok(())
    }

    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mb * MIB).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_limit_is_named() {
        let limits = Limits {
            memory_mb: 0,
            ..Limits::default()
        };
        assert_eq!(
            limits.validate(),
            Err("limit `memory_mb` must be between 1 and 1024, got 0".to_string())
        );
    }

    #[test]
    fn every_limit_is_range_checked() {
        let cases = [
            Limits {
                cpu_ms: 5,
                ..Limits::default()
            },
            Limits {
                timeout_ms: 0,
                ..Limits::default()
            },
            Limits {
                max_outbound_requests: 10_001,
                ..Limits::default()
            },
            Limits {
                outbound_timeout_ms: 1,
                ..Limits::default()
            },
            Limits {
                async_concurrency: 0,
                ..Limits::default()
            },
        ];
        for limits in cases {
            assert!(limits.validate().is_err(), "{limits:?}");
        }
    }

    #[test]
    fn partial_json_takes_defaults() {
        let limits: Limits = serde_json::from_str(r#"{"cpu_ms": 500}"#).unwrap();
        assert_eq!(limits.cpu_ms, 500);
        assert_eq!(limits.memory_mb, Limits::default().memory_mb);
    }

    #[test]
    fn unknown_limit_is_refused() {
        let err = serde_json::from_str::<Limits>(r#"{"cpu": 500}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `cpu`"), "{err}");
    }
}
