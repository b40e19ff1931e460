//! Two-factor sign-in with time-based one-time passwords (RFC 6238:
//! HMAC-SHA1, 30-second steps, 6 digits, one step of clock drift either
//! way) and single-use recovery codes.
//!
//! Enrollment is two steps: `enroll` hands out a secret, `verify` with a
//! code from the authenticator turns it on and returns ten recovery codes
//! (shown once, stored as hashes). From then on every sign-in (password,
//! link, code) answers with a short-lived second-step token instead of
//! tokens, which `verify` with a code or a recovery code completes. A code
//! is accepted once: its step is remembered.

use super::once::Purpose;
use super::{Auth, AuthError, Authenticated, Client, SignIn, sha256_hex};
use crate::db::schema::Storage;
use crate::db::values;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};

/// Seconds per step.
const STEP: u64 = 30;
/// Recovery codes handed out at enrollment.
pub const RECOVERY_CODES: usize = 10;
/// The lockout key of an account's second step is this plus its id.
const SECOND_STEP: &str = "2fa:";

/// The code of `secret` at `step`.
fn code_at(secret: &[u8], step: u64) -> u32 {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    value % 1_000_000
}

fn current_step() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64 / STEP
}

/// RFC 4648 base32 without padding, as authenticator apps take secrets.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut buffer = [0u8; 5];
        buffer[..chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes([
            0, 0, 0, buffer[0], buffer[1], buffer[2], buffer[3], buffer[4],
        ]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(ALPHABET[((bits >> (35 - i * 5)) & 31) as usize] as char);
        }
    }
    out
}

/// What enrollment hands out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enrollment {
    /// The secret, base32, for typing into an authenticator.
    pub secret: String,
    /// The `otpauth://` URI, for a QR code.
    pub uri: String,
}

/// A code the user typed: from the authenticator or a recovery code.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    /// Six digits from the authenticator.
    Code(&'a str),
    /// One of the recovery codes.
    Recovery(&'a str),
}

fn recovery_hash(code: &str) -> String {
    sha256_hex(&code.trim().to_lowercase().replace('-', ""))
}

impl Auth {
    /// The secret and whether it is turned on, if the user enrolled.
    async fn totp_secret(&self, user: &str) -> Result<Option<(Vec<u8>, bool)>, AuthError> {
        let select = self.statement(
            "SELECT secret, enabled FROM _aura_totp WHERE user_id = ?",
            &[user],
        );
        let row = self
            .db
            .backend()
            .fetch(&select, &[Storage::Text, Storage::Text])
            .await?
            .pop();
        Ok(match row {
            Some(row) => Some((
                hex::decode(row[0].as_str().unwrap_or_default())
                    .map_err(|e| anyhow::anyhow!("stored secret: {e}"))?,
                !row[1].is_null(),
            )),
            None => None,
        })
    }

    /// Whether the user must pass a second step to sign in.
    pub(super) async fn second_factor_on(&self, user: &str) -> Result<bool, AuthError> {
        Ok(matches!(self.totp_secret(user).await?, Some((_, true))))
    }

    /// `POST /api/auth/2fa/totp/enroll`: a new secret, not yet turned on.
    pub async fn enroll_totp(&self, auth: &Authenticated) -> Result<Enrollment, AuthError> {
        if self.second_factor_on(&auth.user.id).await? {
            return Err(AuthError::Invalid(
                "two-factor sign-in is already on; disable it first to enroll again".into(),
            ));
        }
        let secret: [u8; 20] = rand::random();
        let mut tx = self.db.backend().begin().await?;
        tx.execute(&self.statement("DELETE FROM _aura_totp WHERE user_id = ?", &[&auth.user.id]))
            .await?;
        tx.execute(&self.statement(
            "INSERT INTO _aura_totp (user_id, secret, created) VALUES (?, ?, ?)",
            &[&auth.user.id, &hex::encode(secret), &values::now()],
        ))
        .await?;
        tx.commit().await?;
        let secret = base32(&secret);
        let label: String =
            url::form_urlencoded::byte_serialize(format!("Aura:{}", auth.user.email).as_bytes())
                .collect();
        Ok(Enrollment {
            uri: format!(
                "otpauth://totp/{label}?secret={secret}&issuer=Aura&algorithm=SHA1&digits=6&period={STEP}"
            ),
            secret,
        })
    }

    /// Checks an authenticator code; a code's step is used once.
    async fn check_totp(&self, user: &str, secret: &[u8], code: &str) -> Result<bool, AuthError> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(false);
        }
        let code: u32 = code.parse().unwrap_or(u32::MAX);
        let now = current_step();
        for step in [now, now - 1, now + 1] {
            if code_at(secret, step) != code {
                continue;
            }
            let mut claim = self.query();
            claim
                .sql("UPDATE _aura_totp SET last_step = ")
                .arg(
                    crate::db::backend::Arg::Number(step as f64),
                    Storage::Number,
                )
                .sql(" WHERE user_id = ")
                .arg(crate::db::backend::text_arg(user), Storage::Text)
                .sql(" AND (last_step IS NULL OR last_step < ")
                .arg(
                    crate::db::backend::Arg::Number(step as f64),
                    Storage::Number,
                )
                .sql(")");
            return Ok(self.write(claim).await? == 1);
        }
        Ok(false)
    }

    /// Checks a proof against the user's enrollment; recovery codes are
    /// used up.
    async fn check_proof(
        &self,
        user: &str,
        secret: &[u8],
        proof: Proof<'_>,
    ) -> Result<bool, AuthError> {
        match proof {
            Proof::Code(code) => self.check_totp(user, secret, code).await,
            Proof::Recovery(code) => {
                let used = self.statement(
                    "UPDATE _aura_recovery_codes SET used = ? WHERE used IS NULL AND user_id = ? AND hash = ?",
                    &[&values::now(), user, &recovery_hash(code)],
                );
                Ok(self.write(used).await? == 1)
            }
        }
    }

    /// `POST /api/auth/2fa/totp/verify` when signed in: turns two-factor
    /// sign-in on with a first code; returns the recovery codes.
    pub async fn confirm_totp(
        &self,
        auth: &Authenticated,
        code: &str,
    ) -> Result<Vec<String>, AuthError> {
        let user = &auth.user.id;
        let Some((secret, enabled)) = self.totp_secret(user).await? else {
            return Err(AuthError::Invalid(
                "enroll first: POST /api/auth/2fa/totp/enroll".into(),
            ));
        };
        if enabled {
            return Err(AuthError::Invalid(
                "two-factor sign-in is already on".into(),
            ));
        }
        if !self.check_totp(user, &secret, code).await? {
            return Err(AuthError::InvalidCode);
        }
        let codes: Vec<String> = (0..RECOVERY_CODES)
            .map(|_| {
                let raw = base32(&rand::random::<[u8; 5]>()).to_lowercase();
                format!("{}-{}", &raw[..4], &raw[4..])
            })
            .collect();
        let mut tx = self.db.backend().begin().await?;
        tx.execute(&self.statement(
            "DELETE FROM _aura_recovery_codes WHERE user_id = ?",
            &[user],
        ))
        .await?;
        for code in &codes {
            tx.execute(&self.statement(
                "INSERT INTO _aura_recovery_codes (hash, user_id) VALUES (?, ?)",
                &[&recovery_hash(code), user],
            ))
            .await?;
        }
        tx.execute(&self.statement(
            "UPDATE _aura_totp SET enabled = ? WHERE user_id = ?",
            &[&values::now(), user],
        ))
        .await?;
        tx.commit().await?;
        self.audit.record(
            "2fa_enabled",
            Some(user),
            auth.address.as_deref(),
            json!({}),
        );
        Ok(codes)
    }

    /// `POST /api/auth/2fa/totp/disable`: turns two-factor sign-in off,
    /// given a current code or a recovery code.
    pub async fn disable_totp(
        &self,
        auth: &Authenticated,
        proof: Proof<'_>,
    ) -> Result<(), AuthError> {
        let user = &auth.user.id;
        let Some((secret, true)) = self.totp_secret(user).await? else {
            return Err(AuthError::Invalid("two-factor sign-in is not on".into()));
        };
        let address = auth.address.as_deref();
        self.second_step_allowed(user, address)?;
        if !self.check_proof(user, &secret, proof).await? {
            self.second_step_failed(user, address);
            return Err(AuthError::InvalidCode);
        }
        let mut tx = self.db.backend().begin().await?;
        tx.execute(&self.statement("DELETE FROM _aura_totp WHERE user_id = ?", &[user]))
            .await?;
        tx.execute(&self.statement(
            "DELETE FROM _aura_recovery_codes WHERE user_id = ?",
            &[user],
        ))
        .await?;
        tx.commit().await?;
        self.audit.record(
            "2fa_disabled",
            Some(user),
            auth.address.as_deref(),
            json!({}),
        );
        Ok(())
    }

    fn second_step_allowed(&self, user: &str, address: Option<&str>) -> Result<(), AuthError> {
        let address = address.unwrap_or_default();
        self.limits
            .check_account(&format!("{SECOND_STEP}{user}"), user, address)
            .map_err(AuthError::RateLimited)
    }

    fn second_step_failed(&self, user: &str, ip: Option<&str>) {
        self.audit.record("2fa_failed", Some(user), ip, json!({}));
        let address = ip.unwrap_or_default();
        if let Some(lockout) = self.limits.failed(&format!("{SECOND_STEP}{user}"), address) {
            self.audit.record(
                "lockout",
                Some(user),
                ip,
                super::lockout_detail(lockout, json!({ "method": "2fa" })),
            );
        }
    }

    /// Finishes a sign-in whose first step passed: tokens, or a
    /// second-step token when two-factor sign-in is on.
    pub(super) async fn sign_in(
        &self,
        user: Value,
        client: &Client,
        method: &str,
    ) -> Result<SignIn, AuthError> {
        let id = user["id"].as_str().unwrap_or_default().to_owned();
        if !self.second_factor_on(&id).await? {
            self.audit.record(
                "login",
                Some(&id),
                client.ip.as_deref(),
                json!({ "method": method }),
            );
            return Ok(SignIn::Tokens(self.open_session(user, client).await?));
        }
        let email = user["email"].as_str().unwrap_or_default();
        let token = self
            .issue_once(
                Purpose::SecondFactor,
                Some(&id),
                email,
                json!({ "method": method }),
            )
            .await?;
        Ok(SignIn::SecondStep {
            mfa_required: true,
            mfa_token: token,
            expires_in: Purpose::SecondFactor.lifetime().num_seconds(),
        })
    }

    /// `POST /api/auth/2fa/totp/verify` with a second-step token: completes
    /// the sign-in.
    pub async fn complete_sign_in(
        &self,
        mfa_token: &str,
        proof: Proof<'_>,
        client: &Client,
    ) -> Result<super::Tokens, AuthError> {
        self.limit(client)?;
        let found = self.find_once(Purpose::SecondFactor, mfa_token).await?;
        let user = found.user.clone().unwrap_or_default();
        self.second_step_allowed(&user, client.ip.as_deref())?;
        let Some((secret, true)) = self.totp_secret(&user).await? else {
            return Err(AuthError::InvalidToken(
                "two-factor sign-in is no longer on".into(),
            ));
        };
        if !self.check_proof(&user, &secret, proof).await? {
            self.second_step_failed(&user, client.ip.as_deref());
            return Err(AuthError::InvalidCode);
        }
        self.use_up(&found).await?;
        self.limits
            .succeeded(&format!("{SECOND_STEP}{user}"), client.address());
        self.audit.record(
            "login",
            Some(&user),
            client.ip.as_deref(),
            json!({ "method": found.detail["method"], "secondFactor": match proof {
                Proof::Code(_) => "totp",
                Proof::Recovery(_) => "recovery_code",
            } }),
        );
        let record = self.user_record(&user).await?;
        self.open_session(record, client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vectors() {
        // RFC 6238 appendix B, SHA-1, truncated to 6 digits.
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59u64, 287_082),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            assert_eq!(code_at(secret, time / STEP), expected, "at {time}");
        }
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }
}
