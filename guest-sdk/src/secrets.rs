//! Secrets (`aura:platform/secrets`): values the operator sets with
//! `aura secrets set NAME`, stored encrypted. The function may read only the
//! secrets its `secrets` grant names, exactly (no patterns):
//!
//! ```toml
//! [grants]
//! secrets = ["STRIPE_KEY"]
//! ```
//!
//! ```no_run
//! use aura_sdk::secrets;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = secrets::get("STRIPE_KEY")?;
//! # let _ = key;
//! # Ok(())
//! # }
//! ```
//!
//! The module's calls import `aura:platform/secrets@0.1.0`; a function that
//! never calls them does not import it and needs no grant.

use crate::bindings::aura::platform::secrets as wit;

/// Why a read was refused. Each variant carries the host's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The function's `secrets` grant does not name this secret.
    Denied(String),
    /// No secret has this name.
    NotFound(String),
    /// Anything else; details are in the server log.
    Internal(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Denied(message) => write!(f, "secret denied: {message}"),
            Error::NotFound(message) => write!(f, "secret not found: {message}"),
            Error::Internal(message) => write!(f, "secret unavailable: {message}"),
        }
    }
}

impl std::error::Error for Error {}

/// The value of secret `name`.
pub fn get(name: &str) -> Result<String, Error> {
    wit::get(name).map_err(|err| match err {
        wit::Error::Denied(message) => Error::Denied(message),
        wit::Error::NotFound(message) => Error::NotFound(message),
        wit::Error::Internal(message) => Error::Internal(message),
    })
}
