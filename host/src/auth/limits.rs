//! Rate limits of the auth endpoints, in memory (per node): requests per
//! client address; failed sign-ins per account and client address, with a
//! lockout that doubles with each further failure; and a ceiling per
//! account across addresses. The ceiling never shuts out an address the
//! account has signed in from before, so failures elsewhere cannot keep
//! its owner out; mails are limited the same way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests to the auth endpoints one address may make per window, by
/// default.
pub const PER_ADDRESS: u32 = 30;
/// The window of [`PER_ADDRESS`].
pub const WINDOW: Duration = Duration::from_secs(60);
/// Failed sign-ins of one account from one address before that address is
/// locked out of it.
pub const FAILURES_BEFORE_LOCKOUT: u32 = 5;
/// The first lockout; each further failure doubles it, up to [`MAX_LOCKOUT`].
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(30);
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Failed sign-ins of one account from all addresses within
/// [`CEILING_WINDOW`] before every address it has not signed in from is
/// locked out of it for [`MAX_LOCKOUT`].
pub const FAILURES_CEILING: u32 = 50;
/// The window of [`FAILURES_CEILING`].
pub const CEILING_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Mails one address may be sent per [`MAIL_WINDOW`] (reset, links, codes)
/// at the request of one client address.
pub const MAILS_PER_SENDER: u32 = 5;
/// Mails one address may be sent per [`MAIL_WINDOW`] at the request of
/// clients it has not signed in from.
pub const MAILS_PER_MAILBOX: u32 = 20;
/// The window of the mail limits.
pub const MAIL_WINDOW: Duration = Duration::from_secs(60 * 60);
/// Addresses remembered per account as ones it signed in from.
const KNOWN_PER_ACCOUNT: usize = 16;
/// Entries kept before old ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    count: u32,
}

impl Window {
    /// Counts one event; `Err(retry_after)` past `limit` within `length`.
    fn count(&mut self, now: Instant, limit: u32, length: Duration) -> Result<(), u64> {
        self.check(now, limit, length)?;
        match self.started {
            Some(started) if now - started < length => self.count += 1,
            _ => {
                self.started = Some(now);
                self.count = 1;
            }
        }
        Ok(())
    }

    /// `Err(retry_after)` if the window is full.
    fn check(&self, now: Instant, limit: u32, length: Duration) -> Result<(), u64> {
        match self.started {
            Some(started) if now - started < length && self.count >= limit => {
                Err(seconds(length - (now - started)))
            }
            _ => Ok(()),
        }
    }

    fn live(&self, now: Instant, length: Duration) -> bool {
        self.started.is_some_and(|s| now - s < length)
    }
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// The failed sign-ins of one account (of one kind: password, email code,
/// second step).
#[derive(Default)]
struct Account {
    /// Per client address.
    addresses: HashMap<String, Failures>,
    /// From every address, in the current [`CEILING_WINDOW`].
    recent: Window,
    /// Unknown addresses are shut out until then.
    ceiling_until: Option<Instant>,
}

impl Account {
    fn locked_until(&self, now: Instant) -> Option<Instant> {
        self.addresses
            .values()
            .filter_map(|f| f.locked_until)
            .chain(self.ceiling_until)
            .filter(|until| *until > now)
            .max()
    }
}

/// What a failed sign-in started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    /// This address is locked out of the account for a while.
    Address(Duration),
    /// Every address the account has not signed in from is.
    Account(Duration),
}

impl Lockout {
    /// How long the lockout lasts.
    pub fn duration(self) -> Duration {
        match self {
            Lockout::Address(d) | Lockout::Account(d) => d,
        }
    }
}

/// A locked account, for admins.
pub struct Locked {
    /// The account's key (an email address; `code:` or `2fa:` before it
    /// for those kinds).
    pub account: String,
    /// Failures in the current window, from every address.
    pub failures: u32,
    /// Until the last of its locks lifts.
    pub left: Duration,
    /// The addresses locked out of it, one by one.
    pub addresses: Vec<String>,
    /// Whether every address it has not signed in from is locked out.
    pub ceiling: bool,
}

#[derive(Default)]
struct Mailbox {
    /// Per requesting client address.
    senders: HashMap<String, Window>,
    /// From clients the mailbox's account has not signed in from.
    strangers: Window,
}

/// The limiter.
pub struct Limits {
    /// Requests per address per window (0: no limit).
    per_address: u32,
    addresses: Mutex<HashMap<String, Window>>,
    accounts: Mutex<HashMap<String, Account>>,
    mailboxes: Mutex<HashMap<String, Mailbox>>,
    /// Per account (email address or user id), the client addresses it
    /// signed in from, oldest first.
    known: Mutex<HashMap<String, Vec<String>>>,
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
            known: Mutex::default(),
        }
    }

    /// Counts a request from `address`; `Err(retry_after)` past the limit.
    pub fn request(&self, address: &str) -> Result<(), u64> {
        if self.per_address == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut windows = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > SWEEP_AT {
            windows.retain(|_, w| w.live(now, WINDOW));
        }
        windows
            .entry(address.to_owned())
            .or_default()
            .count(now, self.per_address, WINDOW)
    }

    /// Whether `person` (an email address or a user id) has signed in from
    /// `address` before.
    pub fn knows(&self, person: &str, address: &str) -> bool {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(person)
            .is_some_and(|addresses| addresses.iter().any(|a| a == address))
    }

    /// Remembers that `persons` (the account's email address and id)
    /// signed in from `address`.
    pub fn signed_in(&self, persons: &[&str], address: &str) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() > SWEEP_AT {
            known.clear();
        }
        for person in persons {
            let addresses = known.entry((*person).to_owned()).or_default();
            addresses.retain(|a| a != address);
            if addresses.len() == KNOWN_PER_ACCOUNT {
                addresses.remove(0);
            }
            addresses.push(address.to_owned());
        }
    }

    /// Counts a mail to `email` asked for by `sender` (a client address);
    /// `exempt` senders (ones the account signed in from, or its owner)
    /// are not held to the mailbox's ceiling. `Err(retry_after)` past a
    /// limit.
    pub fn mail(&self, email: &str, sender: &str, exempt: bool) -> Result<(), u64> {
        let now = Instant::now();
        let mut mailboxes = self.mailboxes.lock().unwrap_or_else(|e| e.into_inner());
        if mailboxes.len() > SWEEP_AT {
            mailboxes.retain(|_, m| m.senders.values().any(|w| w.live(now, MAIL_WINDOW)));
        }
        let mailbox = mailboxes.entry(email.to_owned()).or_default();
        let window = mailbox.senders.entry(sender.to_owned()).or_default();
        window.check(now, MAILS_PER_SENDER, MAIL_WINDOW)?;
        if !exempt {
            mailbox
                .strangers
                .count(now, MAILS_PER_MAILBOX, MAIL_WINDOW)?;
        }
        window.count(now, MAILS_PER_SENDER, MAIL_WINDOW)
    }

    /// `Err(retry_after)` while `address` is locked out of `account`;
    /// `person` is whose account it is (for the addresses it signed in
    /// from).
    pub fn check_account(&self, account: &str, person: &str, address: &str) -> Result<(), u64> {
        let now = Instant::now();
        let (own, ceiling) = {
            let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
            let Some(found) = accounts.get(account) else {
                return Ok(());
            };
            let own = found.addresses.get(address).and_then(|f| f.locked_until);
            (own, found.ceiling_until)
        };
        if let Some(until) = own.filter(|until| *until > now) {
            return Err(seconds(until - now));
        }
        match ceiling.filter(|until| *until > now) {
            Some(until) if !self.knows(person, address) => Err(seconds(until - now)),
            _ => Ok(()),
        }
    }

    /// Records a failed sign-in to `account` from `address`; returns the
    /// lockout it starts, if any.
    pub fn failed(&self, account: &str, address: &str) -> Option<Lockout> {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if accounts.len() > SWEEP_AT {
            accounts
                .retain(|_, a| a.recent.live(now, CEILING_WINDOW) || a.locked_until(now).is_some());
        }
        let found = accounts.entry(account.to_owned()).or_default();
        let _ = found.recent.count(now, u32::MAX, CEILING_WINDOW);
        let ceiling = found.recent.count >= FAILURES_CEILING;
        let failures = found.addresses.entry(address.to_owned()).or_default();
        failures.count += 1;
        let mut lockout = None;
        if failures.count >= FAILURES_BEFORE_LOCKOUT {
            let doublings = (failures.count - FAILURES_BEFORE_LOCKOUT).min(10);
            let length = (FIRST_LOCKOUT * 2u32.pow(doublings)).min(MAX_LOCKOUT);
            failures.locked_until = Some(now + length);
            lockout = Some(Lockout::Address(length));
        }
        if ceiling {
            found.ceiling_until = Some(now + MAX_LOCKOUT);
            lockout = Some(Lockout::Account(MAX_LOCKOUT));
        }
        lockout
    }

    /// The accounts locked now, longest first.
    pub fn lockouts(&self) -> Vec<Locked> {
        let now = Instant::now();
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let mut locked: Vec<_> = accounts
            .iter()
            .filter_map(|(account, found)| {
                let until = found.locked_until(now)?;
                let mut addresses: Vec<_> = found
                    .addresses
                    .iter()
                    .filter(|(_, f)| f.locked_until.is_some_and(|u| u > now))
                    .map(|(a, _)| a.clone())
                    .collect();
                addresses.sort();
                Some(Locked {
                    account: account.clone(),
                    failures: if found.recent.live(now, CEILING_WINDOW) {
                        found.recent.count
                    } else {
                        0
                    },
                    left: until - now,
                    addresses,
                    ceiling: found.ceiling_until.is_some_and(|u| u > now),
                })
            })
            .collect();
        locked.sort_by(|a, b| b.left.cmp(&a.left).then_with(|| a.account.cmp(&b.account)));
        locked
    }

    /// Clears the failures of `address` after a successful sign-in to
    /// `account` from it.
    pub fn succeeded(&self, account: &str, address: &str) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = accounts.get_mut(account) {
            found.addresses.remove(address);
        }
    }

    /// Lifts every lock of `account`; false if it had none.
    pub fn unlock(&self, account: &str) -> bool {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts
            .remove(account)
            .is_some_and(|found| found.locked_until(now).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(limits: &Limits, account: &str, address: &str, times: u32) -> Option<Lockout> {
        (0..times)
            .map(|_| limits.failed(account, address))
            .last()
            .flatten()
    }

    #[test]
    fn lockouts_start_after_failures_from_one_address_and_double() {
        let limits = Limits::default();
        assert_eq!(
            fail(&limits, "a", "10.0.0.1", FAILURES_BEFORE_LOCKOUT - 1),
            None
        );
        assert!(limits.check_account("a", "a", "10.0.0.1").is_ok());
        assert_eq!(
            limits.failed("a", "10.0.0.1"),
            Some(Lockout::Address(FIRST_LOCKOUT))
        );
        assert!(limits.check_account("a", "a", "10.0.0.1").is_err());
        assert!(
            limits.check_account("a", "a", "10.0.0.2").is_ok(),
            "another address still signs in"
        );
        assert_eq!(
            limits.failed("a", "10.0.0.1"),
            Some(Lockout::Address(FIRST_LOCKOUT * 2))
        );
        limits.succeeded("a", "10.0.0.1");
        assert!(limits.check_account("a", "a", "10.0.0.1").is_ok());
    }

    #[test]
    fn the_ceiling_shuts_out_strangers_but_not_known_addresses() {
        let limits = Limits::default();
        limits.signed_in(&["a@x", "id-a"], "10.0.0.9");
        let mut started = None;
        for n in 0..FAILURES_CEILING / 2 {
            started = fail(&limits, "a@x", &format!("192.0.2.{n}"), 2).or(started);
        }
        assert_eq!(started, Some(Lockout::Account(MAX_LOCKOUT)));
        assert!(limits.check_account("a@x", "a@x", "192.0.2.200").is_err());
        assert!(limits.check_account("a@x", "a@x", "10.0.0.9").is_ok());
        assert!(
            limits.check_account("2fa:id-a", "id-a", "10.0.0.9").is_ok(),
            "other kinds are counted apart"
        );
        let locked = limits.lockouts();
        assert_eq!(locked.len(), 1);
        assert_eq!(
            (
                locked[0].account.as_str(),
                locked[0].failures,
                locked[0].ceiling
            ),
            ("a@x", FAILURES_CEILING, true)
        );
        assert!(locked[0].addresses.is_empty(), "no address failed 5 times");
        assert!(limits.unlock("a@x"));
        assert!(!limits.unlock("a@x"));
        assert!(limits.check_account("a@x", "a@x", "192.0.2.200").is_ok());
    }

    #[test]
    fn lockouts_list_locked_accounts_until_unlocked() {
        let limits = Limits::new(0);
        fail(&limits, "a", "10.0.0.1", FAILURES_BEFORE_LOCKOUT);
        limits.failed("b", "10.0.0.1");
        let locked = limits.lockouts();
        assert_eq!(locked.len(), 1);
        assert_eq!(
            (locked[0].account.as_str(), locked[0].failures),
            ("a", FAILURES_BEFORE_LOCKOUT)
        );
        assert_eq!(locked[0].addresses, ["10.0.0.1"]);
        assert!(locked[0].left <= FIRST_LOCKOUT && locked[0].left > Duration::ZERO);
        assert!(limits.unlock("a"));
        assert!(limits.lockouts().is_empty());
    }

    #[test]
    fn mails_are_limited_per_sender_and_for_strangers_per_mailbox() {
        let limits = Limits::default();
        for _ in 0..MAILS_PER_SENDER {
            assert!(limits.mail("a@x", "192.0.2.1", false).is_ok());
        }
        assert!(limits.mail("a@x", "192.0.2.1", false).is_err());
        assert!(
            limits.mail("a@x", "192.0.2.2", false).is_ok(),
            "one sender does not use up the mailbox"
        );
        for n in 3..(MAILS_PER_MAILBOX / MAILS_PER_SENDER + 3) {
            for _ in 0..MAILS_PER_SENDER {
                let _ = limits.mail("a@x", &format!("192.0.2.{n}"), false);
            }
        }
        assert!(limits.mail("a@x", "192.0.2.100", false).is_err());
        assert!(
            limits.mail("a@x", "10.0.0.9", true).is_ok(),
            "a known sender still gets mail"
        );
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
    fn known_addresses_are_bounded_per_account() {
        let limits = Limits::default();
        for n in 0..=KNOWN_PER_ACCOUNT {
            limits.signed_in(&["a"], &format!("10.0.0.{n}"));
        }
        assert!(!limits.knows("a", "10.0.0.0"), "the oldest is forgotten");
        assert!(limits.knows("a", &format!("10.0.0.{KNOWN_PER_ACCOUNT}")));
    }
}
