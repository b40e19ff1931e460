//! Single-use, single-purpose tokens: password reset, email verification,
//! email change, magic links, email codes, the second sign-in step, and
//! OAuth states and exchange codes.
//!
//! A token is stored only as a SHA-256 hash with its purpose, the email it
//! was sent to and an expiry; consuming it marks it used in a conditional
//! update, so of two concurrent uses exactly one wins. A token of one
//! purpose is never accepted for another.

use super::{Auth, AuthError, sha256_hex};
use crate::db::backend::{Arg, Query, text_arg};
use crate::db::schema::Storage;
use crate::db::values;
use base64::Engine as _;
use serde_json::Value;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Setting a new password.
    Reset,
    /// Confirming the account's email address.
    Verify,
    /// Confirming a new email address (the new address is in the detail).
    EmailChange,
    /// Signing in by a link.
    MagicLink,
    /// Signing in by a code (the token is the code, bound to the email).
    Code,
    /// The second sign-in step, after the first succeeded.
    SecondFactor,
    /// An OAuth sign-in under way (the token is its `state`; the email
    /// column holds the hash of the browser's binding).
    OAuthState,
    /// The code an app trades for an OAuth sign-in.
    OAuthCode,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::Reset => "reset",
            Purpose::Verify => "verify",
            Purpose::EmailChange => "email_change",
            Purpose::MagicLink => "magic_link",
            Purpose::Code => "code",
            Purpose::SecondFactor => "second_factor",
            Purpose::OAuthState => "oauth_state",
            Purpose::OAuthCode => "oauth_code",
        }
    }

    /// How long a token of this purpose stays valid.
    pub fn lifetime(self) -> chrono::Duration {
        match self {
            Purpose::Reset => chrono::Duration::minutes(30),
            Purpose::Verify | Purpose::EmailChange => chrono::Duration::hours(24),
            Purpose::MagicLink | Purpose::Code => chrono::Duration::minutes(10),
            Purpose::SecondFactor => chrono::Duration::minutes(5),
            Purpose::OAuthState => chrono::Duration::minutes(10),
            Purpose::OAuthCode => chrono::Duration::minutes(1),
        }
    }
}

/// A valid token's content.
#[derive(Debug, Clone)]
pub struct OneTime {
    /// The account it was issued for (none for a sign-in link to an
    /// address without an account yet).
    pub user: Option<String>,
    /// The address it was sent to.
    pub email: String,
    /// Purpose-specific detail.
    pub detail: Value,
    hash: String,
}

/// The stored key of an email code: bound to the address, so a code is
/// only good with the email it was sent to.
fn code_key(email: &str, code: &str) -> String {
    format!("{email}\n{code}")
}

impl Auth {
    /// Builds a statement whose `?` marks are bound, in order, to `args`.
    pub(super) fn statement(&self, sql: &str, args: &[&str]) -> Query {
        self.db
            .backend()
            .statement(sql, args.iter().map(|arg| text_arg(arg)))
    }

    /// Issues a token for `purpose`. Earlier unused tokens of the same
    /// purpose for the same address stop working.
    pub(super) async fn issue_once(
        &self,
        purpose: Purpose,
        user: Option<&str>,
        email: &str,
        detail: Value,
    ) -> Result<String, AuthError> {
        let token = match purpose {
            Purpose::Code => format!("{:06}", rand::random_range(0..1_000_000u32)),
            _ => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
            }
        };
        let key = match purpose {
            Purpose::Code => code_key(email, &token),
            _ => token.clone(),
        };
        let now = chrono::Utc::now();
        let mut tx = self.db.backend().begin().await?;
        let retire = self.statement(
            "UPDATE _aura_auth_tokens SET used = ? WHERE used IS NULL AND purpose = ? AND email = ?",
            &[&values::format_time(now), purpose.name(), email],
        );
        tx.execute(&retire).await?;
        let mut insert = self.statement(
            "INSERT INTO _aura_auth_tokens (hash, purpose, email, detail, created, expires, user_id) VALUES (?, ?, ?, ?, ?, ?, ",
            &[
                &sha256_hex(&key),
                purpose.name(),
                email,
                &detail.to_string(),
                &values::format_time(now),
                &values::format_time(now + purpose.lifetime()),
            ],
        );
        insert
            .arg(
                user.map_or(Arg::NullOf(Storage::Text), text_arg),
                Storage::Text,
            )
            .sql(")");
        tx.execute(&insert).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The content of a valid (issued, unused, unexpired) token, without
    /// using it up.
    pub(super) async fn find_once(
        &self,
        purpose: Purpose,
        token: &str,
    ) -> Result<OneTime, AuthError> {
        let hash = sha256_hex(token);
        let select = self.statement(
            "SELECT user_id, email, detail FROM _aura_auth_tokens WHERE used IS NULL AND hash = ? AND purpose = ? AND expires > ?",
            &[&hash, purpose.name(), &values::now()],
        );
        let row = self
            .db
            .backend()
            .fetch(&select, &[Storage::Text; 3])
            .await?
            .pop()
            .ok_or_else(|| {
                AuthError::InvalidToken("the token is unknown, used or expired".into())
            })?;
        Ok(OneTime {
            user: row[0].as_str().map(str::to_owned),
            email: row[1].as_str().unwrap_or_default().to_owned(),
            detail: row[2]
                .as_str()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null),
            hash,
        })
    }

    /// Uses a token up; of concurrent uses only one succeeds.
    pub(super) async fn consume_once(
        &self,
        purpose: Purpose,
        token: &str,
    ) -> Result<OneTime, AuthError> {
        let found = self.find_once(purpose, token).await?;
        self.use_up(&found).await?;
        Ok(found)
    }

    /// Marks a found token used; fails if another use got there first.
    pub(super) async fn use_up(&self, found: &OneTime) -> Result<(), AuthError> {
        let mark = self.statement(
            "UPDATE _aura_auth_tokens SET used = ? WHERE used IS NULL AND hash = ?",
            &[&values::now(), &found.hash],
        );
        if self.write(mark).await? == 0 {
            return Err(AuthError::InvalidToken(
                "the token is unknown, used or expired".into(),
            ));
        }
        Ok(())
    }

    /// Uses up the email code `code` sent to `email`.
    pub(super) async fn consume_code(&self, email: &str, code: &str) -> Result<OneTime, AuthError> {
        self.consume_once(Purpose::Code, &code_key(email, code))
            .await
            .map_err(|_| AuthError::InvalidCode)
    }

    /// Voids every unused token of `purpose` sent to `email`.
    pub(super) async fn retire_once(&self, purpose: Purpose, email: &str) -> Result<(), AuthError> {
        let retire = self.statement(
            "UPDATE _aura_auth_tokens SET used = ? WHERE used IS NULL AND purpose = ? AND email = ?",
            &[&values::now(), purpose.name(), email],
        );
        self.write(retire).await?;
        Ok(())
    }
}
