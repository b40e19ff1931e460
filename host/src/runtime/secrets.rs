//! `aura:platform/secrets` for functions: reads of the secrets the
//! version's `secrets` grant names, exactly.

use super::platform::aura::platform::secrets::{self as wit, Error, Host};
use super::state::InvocationState;
use crate::secrets::{SecretError, Secrets};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// What a version may read, from its grants.
#[derive(Clone)]
pub struct SecretAccess {
    pub(super) secrets: Arc<Secrets>,
    pub(super) names: Arc<[String]>,
}

impl Host for InvocationState {
    async fn get(&mut self, name: String) -> Result<String, Error> {
        let access = self.secrets().clone();
        if !access.names.contains(&name) {
            return Err(Error::Denied(format!(
                "`{name}` is not in the function's secrets grant; to allow it, add \"{name}\" to `secrets` under [grants] in aura.toml"
            )));
        }
        match access.secrets.get(&name).await {
            Ok(value) => Ok(value),
            Err(SecretError::NotFound(_)) => {
                Err(Error::NotFound(format!("no secret named `{name}`")))
            }
            Err(err) => {
                tracing::error!(secret = %name, error = %err, "reading a secret in a function call");
                Err(Error::Internal(
                    "an internal error occurred; see the server log".into(),
                ))
            }
        }
    }
}

/// Links `aura:platform/secrets`.
pub(super) fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<InvocationState, HasSelf<InvocationState>>(linker, |state| state)
}
