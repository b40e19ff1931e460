//! Flows that go through the user's mailbox: forgotten passwords, email
//! verification and email changes.
//!
//! Requests that name an address (`forgot`) answer the same whether or
//! not it has an account; the mail goes out in the background.

use super::once::Purpose;
use super::{Auth, AuthError, Authenticated, Client, check_password, hash_password, normal_email};
use crate::db::schema;
use crate::db::{Caller, DbError, ReadQuery, values};
use serde_json::{Value, json};

/// Who asks for a mail.
#[derive(Clone, Copy)]
pub(super) enum Sender<'a> {
    /// A client, by address: held to the mailbox's ceiling unless the
    /// mailbox's account signed in from there.
    Client(&'a Client),
    /// Signed-in user `user`, for their own address (`own`) or another.
    User { user: &'a str, own: bool },
}

impl Auth {
    /// A link for a mail: to the app's page when an app URL is configured,
    /// otherwise to Aura's own endpoint (if the flow has one).
    pub(super) fn link(
        &self,
        app_page: &str,
        endpoint: Option<&str>,
        token: &str,
    ) -> Option<String> {
        let token = url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>();
        match (&self.links.app_url, endpoint) {
            (Some(app), _) => Some(format!(
                "{}/auth/{app_page}?token={token}",
                app.trim_end_matches('/')
            )),
            (None, Some(endpoint)) => Some(format!(
                "{}{endpoint}?token={token}",
                self.links.public_url.trim_end_matches('/')
            )),
            (None, None) => None,
        }
    }

    /// Counts a mail to `email` against its limits (429 past them).
    pub(super) fn limit_mail(&self, email: &str, sender: Sender) -> Result<(), AuthError> {
        let (from, exempt) = match sender {
            Sender::Client(client) => (
                client.address().to_owned(),
                self.limits.knows(email, client.address()),
            ),
            Sender::User { user, own } => (format!("user:{user}"), own),
        };
        self.limits
            .mail(email, &from, exempt)
            .map_err(AuthError::RateLimited)
    }

    /// `POST /api/auth/password/forgot`: mails a reset token if the address
    /// has an account; answers the same either way.
    pub async fn forgot_password(&self, email: &str, client: &Client) -> Result<(), AuthError> {
        self.limit(client)?;
        let email = normal_email(email);
        self.limit_mail(&email, Sender::Client(client))?;
        let Some(user) = self.user_id_by_email(&email).await? else {
            return Ok(());
        };
        let token = self
            .issue_once(Purpose::Reset, Some(&user), &email, json!({}))
            .await?;
        let mut text = format!(
            "Someone asked to reset the password of your account.\n\nYour reset code: {token}\n"
        );
        if let Some(link) = self.link("reset-password", None, &token) {
            text.push_str(&format!("\nOr open: {link}\n"));
        }
        text.push_str(&format!(
            "\nIt works once, for {} minutes. If you did not ask, ignore this mail: your password stays as it is.\n",
            Purpose::Reset.lifetime().num_minutes()
        ));
        self.mailer.send(&email, "Reset your password", text);
        self.audit.record(
            "password_reset_requested",
            Some(&user),
            client.ip.as_deref(),
            json!({}),
        );
        Ok(())
    }

    /// `POST /api/auth/password/reset`: sets a new password with a reset
    /// token. Every session of the account ends; the address counts as
    /// verified (the mail reached it).
    pub async fn reset_password(
        &self,
        token: &str,
        password: &str,
        client: &Client,
    ) -> Result<(), AuthError> {
        self.limit(client)?;
        check_password(password)?;
        let found = self.consume_once(Purpose::Reset, token).await?;
        let user = found.user.unwrap_or_default();
        let hash = hash_password(password.to_owned()).await?;
        let mut tx = self.db.backend().begin().await?;
        tx.execute(&self.statement(
            "INSERT INTO _aura_credentials (user_id, password_hash) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash",
            &[&user, &hash],
        ))
        .await?;
        tx.execute(&self.statement(
            "UPDATE _aura_sessions SET revoked = ? WHERE revoked IS NULL AND user_id = ?",
            &[&values::now(), &user],
        ))
        .await?;
        tx.commit().await?;
        self.set_verified(&user).await?;
        self.limits.unlock(&found.email);
        self.audit.record(
            "password_reset",
            Some(&user),
            client.ip.as_deref(),
            json!({}),
        );
        Ok(())
    }

    /// `POST /api/auth/verify-email/request`: mails the signed-in user a
    /// link that confirms their address.
    pub async fn request_verification(&self, auth: &Authenticated) -> Result<(), AuthError> {
        let record = self.user_record(&auth.user.id).await?;
        if record["verified"] == json!(true) {
            return Err(AuthError::Invalid(
                "the email address is already verified".into(),
            ));
        }
        let email = record["email"].as_str().unwrap_or_default().to_owned();
        let sender = Sender::User {
            user: &auth.user.id,
            own: true,
        };
        self.send_verification(&auth.user.id, &email, sender).await
    }

    /// Mails `email` a link that confirms it for account `user`.
    pub(super) async fn send_verification(
        &self,
        user: &str,
        email: &str,
        sender: Sender<'_>,
    ) -> Result<(), AuthError> {
        self.limit_mail(email, sender)?;
        let token = self
            .issue_once(Purpose::Verify, Some(user), email, json!({}))
            .await?;
        let link = self
            .link(
                "verify-email",
                Some("/api/auth/verify-email/confirm"),
                &token,
            )
            .unwrap_or_default();
        self.mailer.send(
            email,
            "Confirm your email address",
            format!(
                "Confirm your email address by opening:\n{link}\n\nOr use this code: {token}\n\nIt works once, for {} hours.\n",
                Purpose::Verify.lifetime().num_hours()
            ),
        );
        Ok(())
    }

    /// Starts an email change from `PUT /api/auth/me`: mails the new address
    /// a confirmation link (the change happens when it is opened) and tells
    /// the old address.
    pub async fn request_email_change(
        &self,
        auth: &Authenticated,
        new_email: &str,
    ) -> Result<String, AuthError> {
        let new_email = normal_email(new_email);
        if !values::valid_email(&new_email) {
            return Err(AuthError::Invalid(format!(
                "`{new_email}` is not an email address"
            )));
        }
        let record = self.user_record(&auth.user.id).await?;
        let old_email = record["email"].as_str().unwrap_or_default().to_owned();
        if new_email == old_email {
            return Err(AuthError::Invalid(
                "that is the current email address".into(),
            ));
        }
        if self.user_id_by_email(&new_email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let sender = Sender::User {
            user: &auth.user.id,
            own: false,
        };
        self.limit_mail(&new_email, sender)?;
        let token = self
            .issue_once(
                Purpose::EmailChange,
                Some(&auth.user.id),
                &new_email,
                json!({ "from": old_email }),
            )
            .await?;
        let link = self
            .link(
                "verify-email",
                Some("/api/auth/verify-email/confirm"),
                &token,
            )
            .unwrap_or_default();
        self.mailer.send(
            &new_email,
            "Confirm your new email address",
            format!(
                "Confirm that this is your account's new email address by opening:\n{link}\n\nOr use this code: {token}\n"
            ),
        );
        self.mailer.send(
            &old_email,
            "Your email address is being changed",
            format!(
                "Someone signed in to your account asked to change its email address to {new_email}. Nothing changes until the new address confirms. If this was not you, change your password.\n"
            ),
        );
        self.audit.record(
            "email_change_requested",
            Some(&auth.user.id),
            auth.address.as_deref(),
            json!({ "to": new_email }),
        );
        Ok(new_email)
    }

    /// `/api/auth/verify-email/confirm`: confirms an address with a token
    /// from a verification or email-change mail; returns the user record.
    pub async fn confirm_email(&self, token: &str, client: &Client) -> Result<Value, AuthError> {
        self.limit(client)?;
        if let Ok(found) = self.consume_once(Purpose::Verify, token).await {
            let user = found.user.unwrap_or_default();
            self.audit.record(
                "email_verified",
                Some(&user),
                client.ip.as_deref(),
                json!({}),
            );
            return self.set_verified(&user).await;
        }
        let found = self.consume_once(Purpose::EmailChange, token).await?;
        let user = found.user.unwrap_or_default();
        let changed = self
            .db
            .update(
                &Caller::Service,
                schema::USERS,
                &user,
                json!({ "email": found.email, "verified": true }),
                &ReadQuery::default(),
            )
            .await;
        match changed {
            Ok(record) => {
                self.audit.record(
                    "email_changed",
                    Some(&user),
                    client.ip.as_deref(),
                    json!({ "from": found.detail["from"], "to": found.email }),
                );
                Ok(record)
            }
            Err(DbError::Unique(_)) => Err(AuthError::EmailTaken),
            Err(DbError::RecordNotFound(..)) => Err(AuthError::InvalidToken(
                "the account no longer exists".into(),
            )),
            Err(other) => Err(other.into()),
        }
    }

    /// Marks an account's address verified; returns its record.
    pub(super) async fn set_verified(&self, user: &str) -> Result<Value, AuthError> {
        self.db
            .update(
                &Caller::Service,
                schema::USERS,
                user,
                json!({ "verified": true }),
                &ReadQuery::default(),
            )
            .await
            .map_err(|err| match err {
                DbError::RecordNotFound(..) => {
                    AuthError::InvalidToken("the account no longer exists".into())
                }
                other => other.into(),
            })
    }
}
