//! The process-wide memory budget: the linear memory all running
//! instances hold together. Each instance charges its memory as it grows
//! (and at instantiation) and gives it back when its store is dropped;
//! growth past the budget fails the invocation, and while the budget is
//! spent new invocations are refused at once, so a burst of memory-hungry
//! invocations cannot take the process past what the machine has.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of linear memory the instances may hold together.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// The default: half of the machine's memory (`/proc/meminfo`), or
    /// 4 GiB where that cannot be read.
    pub fn default_limit() -> u64 {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024 / 2)
            })
            .unwrap_or(4 << 30)
    }

    /// Takes `bytes` if they fit.
    pub(super) fn take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `bytes` taken before.
    pub(super) fn give(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Whether nothing is left for another instance.
    pub(super) fn spent(&self) -> bool {
        self.used.load(Ordering::Acquire) >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryBudget;

    #[test]
    fn takes_what_fits_and_gets_it_back() {
        let budget = MemoryBudget::new(100);
        assert!(budget.take(60));
        assert!(!budget.take(50), "over the budget");
        assert!(budget.take(40));
        assert!(budget.spent());
        budget.give(60);
        assert!(!budget.spent());
        assert!(budget.take(50));
        assert!(MemoryBudget::default_limit() > 0);
    }
}
