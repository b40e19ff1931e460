//! What the admin does to other people's accounts: list and revoke a
//! user's sessions, see locked accounts and unlock them.

use super::{Auth, AuthError};
use crate::db::backend::text_arg;
use crate::db::schema::Storage;
use crate::db::values;
use serde_json::{Value, json};

impl Auth {
    /// A user's open sessions, newest first; `current` is marked.
    pub(super) async fn open_sessions(
        &self,
        user: &str,
        current: Option<&str>,
    ) -> Result<Vec<Value>, AuthError> {
        let mut select = self.query();
        select
            .sql("SELECT id, user_agent, ip, created, last_used, expires FROM _aura_sessions WHERE revoked IS NULL AND user_id = ")
            .arg(text_arg(user), Storage::Text)
            .sql(" ORDER BY created DESC");
        let rows = self
            .db
            .backend()
            .fetch(&select, &[Storage::Text; 6])
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let current = current.is_some_and(|c| row[0].as_str() == Some(c));
                json!({
                    "id": row[0], "userAgent": row[1], "ip": row[2], "created": row[3],
                    "lastUsed": row[4], "expires": row[5], "current": current,
                })
            })
            .collect())
    }

    /// The open sessions of the user with id `user` (who must exist).
    pub async fn user_sessions(&self, user: &str) -> Result<Vec<Value>, AuthError> {
        self.existing(user).await?;
        self.open_sessions(user, None).await
    }

    /// Revokes one session of `user`, or all of them, at the request of an
    /// admin at `ip`; answers how many.
    pub async fn revoke_user_sessions(
        &self,
        user: &str,
        session: Option<&str>,
        ip: Option<&str>,
    ) -> Result<u64, AuthError> {
        self.existing(user).await?;
        let mut revoke = self.query();
        revoke
            .sql("UPDATE _aura_sessions SET revoked = ")
            .arg(text_arg(&values::now()), Storage::Text)
            .sql(" WHERE revoked IS NULL AND user_id = ")
            .arg(text_arg(user), Storage::Text);
        if let Some(session) = session {
            revoke
                .sql(" AND id = ")
                .arg(text_arg(session), Storage::Text);
        }
        let revoked = self.write(revoke).await?;
        if session.is_some() && revoked == 0 {
            return Err(AuthError::SessionNotFound);
        }
        self.audit.record(
            "sessions_revoked",
            Some(user),
            ip,
            json!({ "count": revoked, "by": "admin", "session": session }),
        );
        Ok(revoked)
    }

    /// Accounts locked after failed sign-ins (on this node), with the
    /// seconds left.
    pub fn lockouts(&self) -> Vec<Value> {
        self.limits
            .lockouts()
            .into_iter()
            .map(|locked| {
                json!({
                    "account": locked.account,
                    "failures": locked.failures,
                    "seconds": locked.left.as_secs().max(1),
                    "addresses": locked.addresses,
                    "everywhere": locked.ceiling,
                })
            })
            .collect()
    }

    /// Unlocks an account before its lockout ends; false if it was not locked.
    pub fn unlock(&self, account: &str) -> bool {
        let locked = self.limits.unlock(account);
        if locked {
            self.audit.record(
                "account_unlocked",
                None,
                None,
                json!({ "account": account }),
            );
        }
        locked
    }

    async fn existing(&self, user: &str) -> Result<(), AuthError> {
        match self.user_record(user).await {
            Err(AuthError::InvalidToken(_)) => {
                Err(AuthError::NotFound(format!("no user with id `{user}`")))
            }
            other => other.map(drop),
        }
    }
}
