//! `aura:platform/auth` for functions: who invoked the function (the same
//! caller its database calls act for) and, with `auth = "service"`, user
//! lookup in the `users` collection.

use super::platform::aura::platform::auth::{self as wit, Error, Host, User};
use super::state::InvocationState;
use crate::db::schema::USERS;
use crate::db::{Caller, Database, DbError, ReadQuery};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// What a version may ask of auth, compiled from its grants.
#[derive(Clone)]
pub struct AuthAccess {
    pub(super) db: Arc<Database>,
    /// `auth = "service"`: user lookup allowed.
    pub(super) service: bool,
}

fn user(record: &serde_json::Value) -> User {
    User {
        id: record["id"].as_str().unwrap_or_default().to_owned(),
        email: record["email"].as_str().unwrap_or_default().to_owned(),
        roles: serde_json::from_value(record["roles"].clone()).unwrap_or_default(),
        verified: record["verified"].as_bool().unwrap_or(false),
    }
}

impl Host for InvocationState {
    async fn caller(&mut self) -> Option<User> {
        match self.invoker() {
            Caller::User(Some(user)) => Some(User {
                id: user.id.clone(),
                email: user.email.clone(),
                roles: user.roles.clone(),
                verified: user.verified,
            }),
            _ => None,
        }
    }

    async fn lookup(&mut self, id: String) -> Result<User, Error> {
        let access = self.auth().clone();
        if !access.service {
            return Err(Error::Denied(
                "user lookup needs `auth = \"service\"` under [grants] in aura.toml".into(),
            ));
        }
        match access
            .db
            .view(&Caller::Service, USERS, &id, &ReadQuery::default())
            .await
        {
            Ok(record) => Ok(user(&record)),
            Err(DbError::RecordNotFound(..)) => Err(Error::NotFound(format!("no user `{id}`"))),
            Err(err) => {
                tracing::error!(error = %err, "user lookup in a function call");
                Err(Error::Internal(
                    "an internal error occurred; see the server log".into(),
                ))
            }
        }
    }
}

/// Links `aura:platform/auth`.
pub(super) fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<InvocationState, HasSelf<InvocationState>>(linker, |state| state)
}
