//! One-time sign-in links for the dashboard: `aura serve` prints one when
//! its output is a terminal (never into service logs) and `aura dashboard`
//! asks for another. The code rides in the URL's fragment
//! (`/_/#code=…`), which browsers never send, so no log sees it; the app
//! exchanges it once for the admin token. Codes live in this process's
//! memory: a link works on the node that made it, until it is used or
//! expires.

use super::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Unused codes kept at most; the oldest go first.
const MAX_CODES: usize = 1000;

/// Codes not yet used, with when each expires.
#[derive(Default)]
pub struct SignInCodes {
    codes: Mutex<HashMap<String, Instant>>,
}

impl SignInCodes {
    /// A new code that works once within `lifetime`.
    pub fn issue(&self, lifetime: Duration) -> String {
        let code = hex::encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, expires| *expires > now);
        if codes.len() >= MAX_CODES
            && let Some(oldest) = codes
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(c, _)| c.clone())
        {
            codes.remove(&oldest);
        }
        codes.insert(code.clone(), now + lifetime);
        code
    }

    /// Uses `code` up: Ok if it was issued and has not expired.
    pub fn redeem(&self, code: &str) -> Result<(), ApiError> {
        let expires = self
            .codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code);
        match expires {
            Some(expires) if expires > Instant::now() => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_code",
                "this sign-in link was used, has expired or was made by another server process: run `aura dashboard` for a new one",
            )),
        }
    }
}

/// The dashboard path a code signs in at.
pub fn link_path(code: &str) -> String {
    format!("/_/#code={code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_not_after_it_expires() {
        let codes = SignInCodes::default();
        let code = codes.issue(LINK_LIFETIME);
        assert_eq!(code.len(), 64);
        assert!(codes.redeem(&code).is_ok());
        assert_eq!(codes.redeem(&code).unwrap_err().code, "invalid_code");
        assert!(codes.redeem("made-up").is_err());
        let expired = codes.issue(Duration::ZERO);
        assert!(codes.redeem(&expired).is_err());
    }
}
