//! Rate limits of the auth endpoints, in memory (per node): requests per
//! client address, and failed sign-ins per account with a lockout that
//! doubles with each further failure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests to the auth endpoints one address may make per window, by
/// default.
pub const PER_ADDRESS: u32 = 30;
/// The window of [`PER_ADDRESS`].
pub const WINDOW: Duration = Duration::from_secs(60);
/// Failed sign-ins of one account before it is locked.
pub const FAILURES_BEFORE_LOCKOUT: u32 = 5;
/// The first lockout; each further failure doubles it, up to [`MAX_LOCKOUT`].
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(30);
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Mails one address may be sent per [`MAIL_WINDOW`] (reset, links, codes).
pub const MAILS_PER_ADDRESS: u32 = 5;
/// The window of [`MAILS_PER_ADDRESS`].
pub const MAIL_WINDOW: Duration = Duration::from_secs(60 * 60);
/// Entries kept before old ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    count: u32,
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// The limiter.
pub struct Limits {
    /// Requests per address per window (0: no limit).
    per_address: u32,
    addresses: Mutex<HashMap<String, Window>>,
    accounts: Mutex<HashMap<String, Failures>>,
    mailboxes: Mutex<HashMap<String, Window>>,
}

/// Counts one event in `key`'s window; `Err(retry_after)` past `limit`.
fn count(
    windows: &Mutex<HashMap<String, Window>>,
    key: &str,
    limit: u32,
    length: Duration,
) -> Result<(), u64> {
    let now = Instant::now();
    let mut windows = windows.lock().unwrap_or_else(|e| e.into_inner());
    if windows.len() > SWEEP_AT {
        windows.retain(|_, w| w.started.is_some_and(|s| now - s < length));
    }
    let window = windows.entry(key.to_owned()).or_default();
    match window.started {
        Some(started) if now - started < length => {
            if window.count >= limit {
                return Err(seconds(length - (now - started)));
            }
            window.count += 1;
        }
        _ => {
            *window = Window {
                started: Some(now),
                count: 1,
            }
        }
    }
    Ok(())
}

/// Seconds until the next attempt is allowed (at least 1).
fn seconds(duration: Duration) -> u64 {
    duration.as_secs_f64().ceil().max(1.0) as u64
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(PER_ADDRESS)
    }
}

impl Limits {
    /// A limiter allowing `per_address` requests per address per minute
    /// (0: no per-address limit; account lockouts stay).
    pub fn new(per_address: u32) -> Self {
        Self {
            per_address,
            addresses: Mutex::default(),
            accounts: Mutex::default(),
            mailboxes: Mutex::default(),
        }
    }

    /// Counts a request from `address`; `Err(retry_after)` past the limit.
    pub fn request(&self, address: &str) -> Result<(), u64> {
        if self.per_address == 0 {
            return Ok(());
        }
        count(&self.addresses, address, self.per_address, WINDOW)
    }

    /// Counts a mail to `address`; `Err(retry_after)` past the limit.
    pub fn mail(&self, address: &str) -> Result<(), u64> {
        count(&self.mailboxes, address, MAILS_PER_ADDRESS, MAIL_WINDOW)
    }

    /// `Err(retry_after)` while `account` is locked out.
    pub fn check_account(&self, account: &str) -> Result<(), u64> {
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        match accounts.get(account).and_then(|f| f.locked_until) {
            Some(until) if until > Instant::now() => Err(seconds(until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Records a failed sign-in; returns the lockout it starts, if any.
    pub fn failed(&self, account: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if accounts.len() > SWEEP_AT {
            accounts.retain(|_, f| f.locked_until.is_some_and(|u| u > now) || f.count > 0);
        }
        let failures = accounts.entry(account.to_owned()).or_default();
        failures.count += 1;
        if failures.count < FAILURES_BEFORE_LOCKOUT {
            return None;
        }
        let doublings = (failures.count - FAILURES_BEFORE_LOCKOUT).min(10);
        let lockout = (FIRST_LOCKOUT * 2u32.pow(doublings)).min(MAX_LOCKOUT);
        failures.locked_until = Some(now + lockout);
        Some(lockout)
    }

    /// The accounts locked now: name, failures and the time left, longest
    /// first.
    pub fn lockouts(&self) -> Vec<(String, u32, Duration)> {
        let now = Instant::now();
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let mut locked: Vec<_> = accounts
            .iter()
            .filter_map(|(account, f)| {
                let until = f.locked_until.filter(|until| *until > now)?;
                Some((account.clone(), f.count, until - now))
            })
            .collect();
        locked.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        locked
    }

    /// Clears an account's failures after a successful sign-in.
    pub fn succeeded(&self, account: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_list_locked_accounts_until_cleared() {
        let limits = Limits::new(0);
        for _ in 0..FAILURES_BEFORE_LOCKOUT {
            limits.failed("a");
        }
        limits.failed("b");
        let locked = limits.lockouts();
        assert_eq!(locked.len(), 1);
        assert_eq!(
            (locked[0].0.as_str(), locked[0].1),
            ("a", FAILURES_BEFORE_LOCKOUT)
        );
        assert!(locked[0].2 <= FIRST_LOCKOUT && locked[0].2 > Duration::ZERO);
        limits.succeeded("a");
        assert!(limits.lockouts().is_empty());
    }

    #[test]
    fn addresses_are_limited_per_window() {
        let limits = Limits::default();
        for _ in 0..PER_ADDRESS {
            assert!(limits.request("10.0.0.1").is_ok());
        }
        let retry = limits.request("10.0.0.1").unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(
            limits.request("10.0.0.2").is_ok(),
            "other addresses are not affected"
        );
    }

    #[test]
    fn lockouts_start_after_failures_and_double() {
        let limits = Limits::default();
        for _ in 1..FAILURES_BEFORE_LOCKOUT {
            assert_eq!(limits.failed("a"), None);
        }
        assert!(limits.check_account("a").is_ok());
        assert_eq!(limits.failed("a"), Some(FIRST_LOCKOUT));
        assert!(limits.check_account("a").is_err());
        assert_eq!(limits.failed("a"), Some(FIRST_LOCKOUT * 2));
        limits.succeeded("a");
        assert!(limits.check_account("a").is_ok());
    }
}
