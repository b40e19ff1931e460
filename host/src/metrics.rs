//! Process-wide counters, rendered in the Prometheus text format at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the things an operator watches.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Invocations that completed normally.
    pub invocations_ok: AtomicU64,
    /// Invocations that ended in a failure (trap, timeout, limit…).
    pub invocations_failed: AtomicU64,
    /// Components loaded from the compiled-artifact cache.
    pub component_cache_hits: AtomicU64,
    /// Components compiled from source.
    pub components_compiled: AtomicU64,
    /// Invocation log entries dropped because the log writer fell behind.
    pub logs_dropped: AtomicU64,
}

impl Metrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let counters = [
            (
                "aura_invocations_total{outcome=\"ok\"}",
                &self.invocations_ok,
            ),
            (
                "aura_invocations_total{outcome=\"failed\"}",
                &self.invocations_failed,
            ),
            (
                "aura_component_cache_hits_total",
                &self.component_cache_hits,
            ),
            ("aura_components_compiled_total", &self.components_compiled),
            ("aura_invocation_logs_dropped_total", &self.logs_dropped),
        ];
        let mut out = String::new();
        for (name, value) in counters {
            out.push_str(&format!("{name} {}\n", value.load(Ordering::Relaxed)));
        }
        out
    }
}
