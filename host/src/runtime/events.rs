//! `aura:platform/events` for functions: a thin door onto the same realtime
//! broker `POST /api/realtime/channels/{channel}` publishes to, limited to
//! the channels the version's `events` grant matches.

use super::state::InvocationState;
use crate::realtime::{Broker, Pattern};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

use super::platform::aura::platform::events::{self as wit, Error, Host};

/// What a version may publish, compiled from its grants at deploy.
#[derive(Clone)]
pub struct EventAccess {
    pub(super) broker: Arc<Broker>,
    pub(super) patterns: Arc<[Pattern]>,
}

impl Host for InvocationState {
    fn publish(&mut self, channel: String, data: String) -> Result<u64, Error> {
        let access = self.events();
        if !access.patterns.iter().any(|p| p.matches(&channel)) {
            return Err(Error::Denied(format!(
                "`{channel}` is not covered by the function's events grant; to allow it, add \"{channel}\" \
                 (or a pattern such as \"{}.*\") to `events` under [grants] in aura.toml",
                channel.split('.').next().unwrap_or(&channel)
            )));
        }
        crate::realtime::check_publishable(&channel).map_err(Error::Invalid)?;
        let data = serde_json::from_str(&data)
            .map_err(|err| Error::Invalid(format!("the data is not JSON: {err}")))?;
        access
            .broker
            .publish(&channel, data)
            .map_err(Error::Invalid)
    }
}

/// Links `aura:platform/events`.
pub(super) fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<InvocationState, HasSelf<InvocationState>>(linker, |state| state)
}
