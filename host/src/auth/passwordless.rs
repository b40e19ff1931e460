//! Signing in without a password: a link or a six-digit code sent to the
//! address. An address without an account gets one when the link or code
//! is used (so the request answers the same for every address), and using
//! either verifies the address.

use super::limits::Lockout;
use super::once::Purpose;
use super::recovery::Sender;
use super::{Auth, AuthError, Client, SignIn, lockout_detail, normal_email};
use crate::db::schema;
use crate::db::{Caller, DbError, ReadQuery, values};
use serde_json::{Value, json};

/// The lockout key of an address's sign-in codes is this plus the address.
const CODE_ATTEMPTS: &str = "code:";

impl Auth {
    fn checked_email(email: &str) -> Result<String, AuthError> {
        let email = normal_email(email);
        if !values::valid_email(&email) {
            return Err(AuthError::Invalid(format!(
                "`{email}` is not an email address"
            )));
        }
        Ok(email)
    }

    /// `POST /api/auth/magic-link`: mails a sign-in link.
    pub async fn send_magic_link(&self, email: &str, client: &Client) -> Result<(), AuthError> {
        self.limit(client)?;
        let email = Self::checked_email(email)?;
        self.limit_mail(&email, Sender::Client(client))?;
        let user = self.user_id_by_email(&email).await?;
        let token = self
            .issue_once(Purpose::MagicLink, user.as_deref(), &email, json!({}))
            .await?;
        let link = self
            .link("magic-link", Some("/api/auth/magic-link/verify"), &token)
            .unwrap_or_default();
        self.mailer.send(
            &email,
            "Your sign-in link",
            format!(
                "Sign in by opening:\n{link}\n\nIt works once, for {} minutes. If you did not ask for it, ignore this mail.\n",
                Purpose::MagicLink.lifetime().num_minutes()
            ),
        );
        Ok(())
    }

    /// `GET /api/auth/magic-link/verify`: signs in with a link's token.
    pub async fn verify_magic_link(
        &self,
        token: &str,
        client: &Client,
    ) -> Result<SignIn, AuthError> {
        self.limit(client)?;
        let found = self.consume_once(Purpose::MagicLink, token).await?;
        let user = self.passwordless_user(&found.email).await?;
        self.sign_in(user, client, "magic_link").await
    }

    /// `POST /api/auth/otp/request`: mails a six-digit sign-in code.
    pub async fn send_code(&self, email: &str, client: &Client) -> Result<(), AuthError> {
        self.limit(client)?;
        let email = Self::checked_email(email)?;
        self.limit_mail(&email, Sender::Client(client))?;
        let user = self.user_id_by_email(&email).await?;
        let code = self
            .issue_once(Purpose::Code, user.as_deref(), &email, json!({}))
            .await?;
        self.mailer.send(
            &email,
            &format!("Your sign-in code: {code}"),
            format!(
                "Your sign-in code is {code}\n\nIt works once, for {} minutes. If you did not ask for it, ignore this mail.\n",
                Purpose::Code.lifetime().num_minutes()
            ),
        );
        Ok(())
    }

    /// `POST /api/auth/otp/verify`: signs in with a code. Wrong codes count
    /// against the address; past the limit its codes are voided and it is
    /// locked out for a while.
    pub async fn verify_code(
        &self,
        email: &str,
        code: &str,
        client: &Client,
    ) -> Result<SignIn, AuthError> {
        self.limit(client)?;
        let email = normal_email(email);
        let account = format!("{CODE_ATTEMPTS}{email}");
        self.limits
            .check_account(&account, &email, client.address())
            .map_err(AuthError::RateLimited)?;
        let found = match self.consume_code(&email, code.trim()).await {
            Ok(found) => found,
            Err(err) => {
                if let Some(lockout) = self.limits.failed(&account, client.address()) {
                    // Only guesses from everywhere void the codes: one
                    // address guessing must not void its owner's.
                    if let Lockout::Account(_) = lockout {
                        self.retire_once(Purpose::Code, &email).await?;
                    }
                    self.audit.record(
                        "lockout",
                        None,
                        client.ip.as_deref(),
                        lockout_detail(lockout, json!({ "email": email, "method": "code" })),
                    );
                }
                return Err(err);
            }
        };
        self.limits.succeeded(&account, client.address());
        let user = self.passwordless_user(&found.email).await?;
        self.sign_in(user, client, "code").await
    }

    /// The verified account of `email`, created if there is none.
    async fn passwordless_user(&self, email: &str) -> Result<Value, AuthError> {
        if let Some(id) = self.user_id_by_email(email).await? {
            return self.set_verified(&id).await;
        }
        let created = self
            .db
            .create(
                &Caller::Service,
                schema::USERS,
                json!({ "email": email, "roles": [], "verified": true }),
                &ReadQuery::default(),
            )
            .await;
        match created {
            Ok(user) => Ok(user),
            // Created meanwhile by a concurrent request.
            Err(DbError::Unique(_)) => match self.user_id_by_email(email).await? {
                Some(id) => self.set_verified(&id).await,
                None => Err(AuthError::Internal(anyhow::anyhow!("account vanished"))),
            },
            Err(other) => Err(other.into()),
        }
    }
}
