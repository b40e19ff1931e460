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
    /// Components compiled from source by the optimizing compiler.
    pub components_compiled: AtomicU64,
    /// Components compiled from source by the baseline compiler first (their
    /// optimized code follows in the background).
    pub components_baseline: AtomicU64,
    /// Components compiled around their language engine's cached code.
    pub components_reused: AtomicU64,
    /// Language engines compiled alone, for later builds to reuse.
    pub engines_compiled: AtomicU64,
    /// Invocation log entries dropped because the log writer fell behind.
    pub logs_dropped: AtomicU64,
    /// Instantiations measured, and their total time in nanoseconds.
    pub instantiations: AtomicU64,
    /// Total instantiation time in nanoseconds.
    pub instantiate_ns: AtomicU64,
}

impl Metrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one instantiation's duration.
    pub fn instantiated(&self, elapsed: std::time::Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.instantiations.fetch_add(1, Ordering::Relaxed);
        self.instantiate_ns.fetch_add(nanos, Ordering::Relaxed);
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
            ("aura_components_baseline_total", &self.components_baseline),
            ("aura_components_reused_total", &self.components_reused),
            ("aura_engines_compiled_total", &self.engines_compiled),
            ("aura_invocation_logs_dropped_total", &self.logs_dropped),
        ];
        let mut out = String::new();
        for (name, value) in counters {
            out.push_str(&format!("{name} {}\n", value.load(Ordering::Relaxed)));
        }
        let seconds = self.instantiate_ns.load(Ordering::Relaxed) as f64 / 1e9;
        out.push_str(&format!("aura_instantiate_seconds_sum {seconds:.9}\n"));
        out.push_str(&format!(
            "aura_instantiate_seconds_count {}\n",
            self.instantiations.load(Ordering::Relaxed)
        ));
        out
    }
}
