//! Publishing realtime events (`aura:platform/events`): what subscribers of
//! `GET /api/realtime` receive. The function needs an `events` grant that
//! matches the channel (`[grants] events = ["chat.*"]`).

use crate::bindings::aura::platform::events as wit;

/// Why a publish failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The channel is not covered by the function's `events` grant.
    Denied(String),
    /// The channel name or the data is not valid.
    Invalid(String),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Denied(message) => write!(f, "publish denied: {message}"),
            PublishError::Invalid(message) => write!(f, "publish refused: {message}"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Publishes `data` on `channel`; returns the event id.
pub fn publish(channel: &str, data: &serde_json::Value) -> Result<u64, PublishError> {
    wit::publish(channel, &data.to_string()).map_err(|err| match err {
        wit::Error::Denied(message) => PublishError::Denied(message),
        wit::Error::Invalid(message) => PublishError::Invalid(message),
    })
}
