//! Signing in with OAuth 2.0 and OpenID Connect providers (a generic
//! issuer, and GitHub and Google presets), configured by a TOML file
//! (`--oauth-providers`).
//!
//! The flow, all of it server side:
//! 1. `GET /api/auth/oauth/{provider}?redirect_to=URL` stores a state (a
//!    single-use token bound to this browser by the `aura_oauth` cookie)
//!    with a PKCE verifier and a nonce, and redirects to the provider.
//! 2. The provider redirects to `/api/auth/oauth/{provider}/callback` with
//!    a code and the state. The state is checked (known, unused, unexpired,
//!    started in this browser, for this provider), the code is traded with
//!    the PKCE verifier, and the profile is read (ID token checked against
//!    the issuer's keys, or GitHub's API).
//! 3. The browser is sent to `redirect_to?code=…`, a single-use exchange
//!    code good for one minute, which the app trades at
//!    `POST /api/auth/oauth/exchange` for tokens, cookies, or a second
//!    step, like any sign-in. An app may bind that code to itself with
//!    its own PKCE pair (`code_challenge` at the start, `code_verifier` at
//!    the exchange).
//!
//! Accounts: an identity (provider, subject) signs in its account. A new
//! identity needs an address the provider verified: it joins the account of
//! that address when the account's address is confirmed too, and is
//! refused when it is not (whoever registered it has not proven the
//! address); with no account, a verified one is created.

mod provider;

use super::once::Purpose;
use super::{Auth, AuthError, Authenticated, Client, SignIn, normal_email, sha256_hex};
use crate::db::schema::{self, Storage};
use crate::db::{Caller, DbError, ReadQuery, values};
use base64::Engine as _;
use provider::{Profile, Provider, ProviderConfig};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The configured providers and the client that talks to them.
pub struct Providers {
    by_name: BTreeMap<String, Provider>,
    http: reqwest::Client,
}

impl Providers {
    /// The providers of a `--oauth-providers` file: a table per provider.
    ///
    /// ```toml
    /// [github]
    /// client_id = "…"
    /// client_secret = "…"
    ///
    /// [corp]            # any OpenID Connect issuer
    /// issuer = "https://id.example.com"
    /// client_id = "…"
    /// client_secret = "…"
    /// ```
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut by_name = BTreeMap::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let tables: BTreeMap<String, ProviderConfig> =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            for (name, config) in tables {
                let provider = Provider::new(&name, config)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                by_name.insert(name, provider);
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { by_name, http })
    }
}

/// `?redirect_to=&code_challenge=` at the start of a sign-in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// Where the browser goes at the end (an allowed origin's URL);
    /// default: the app URL.
    #[serde(default)]
    pub redirect_to: Option<String>,
    /// The app's own PKCE challenge (S256, base64url): the exchange then
    /// needs its verifier.
    #[serde(default)]
    pub code_challenge: Option<String>,
}

/// A started sign-in: where to send the browser, and the value of its
/// `aura_oauth` cookie.
pub struct Started {
    /// The provider's consent page.
    pub location: String,
    /// The browser's binding (the `aura_oauth` cookie).
    pub binding: String,
}

/// The provider's redirect back.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    /// The authorization code.
    #[serde(default)]
    pub code: Option<String>,
    /// Our state.
    #[serde(default)]
    pub state: Option<String>,
    /// The provider's error (the user declined…).
    #[serde(default)]
    pub error: Option<String>,
    /// Its explanation.
    #[serde(default)]
    pub error_description: Option<String>,
}

/// A failed callback, and where to tell the browser (none when the state
/// could not be trusted).
pub struct Failure {
    /// The app's URL of this sign-in, if known.
    pub redirect_to: Option<String>,
    /// Why.
    pub error: AuthError,
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The S256 PKCE challenge of a verifier.
fn challenge_of(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

impl Auth {
    fn provider(&self, name: &str) -> Result<&Provider, AuthError> {
        self.oauth
            .by_name
            .get(name)
            .ok_or_else(|| AuthError::NotFound(format!("no OAuth provider `{name}` is configured")))
    }

    fn callback_url(&self, provider: &str) -> String {
        format!("{}/api/auth/oauth/{provider}/callback", self.public_url())
    }

    /// `GET /api/auth/oauth`: the configured providers, for a sign-in page.
    pub fn oauth_providers(&self) -> Vec<Value> {
        self.oauth
            .by_name
            .values()
            .map(|p| {
                json!({
                    "name": p.name,
                    "kind": p.kind(),
                    "url": format!("{}/api/auth/oauth/{}", self.public_url(), p.name),
                })
            })
            .collect()
    }

    /// `GET /api/auth/oauth/{provider}`: starts a sign-in.
    pub async fn start_oauth(
        &self,
        name: &str,
        start: &Start,
        client: &Client,
    ) -> Result<Started, AuthError> {
        self.limit(client)?;
        let provider = self.provider(name)?;
        let redirect_to = start
            .redirect_to
            .clone()
            .or_else(|| self.links.app_url.clone())
            .ok_or_else(|| {
                AuthError::Invalid("pass ?redirect_to= (your app's page that finishes the sign-in), or start Aura with --app-url".into())
            })?;
        let allowed = super::origin_of(&redirect_to).is_some_and(|o| self.origin_allowed(&o));
        if !allowed {
            return Err(AuthError::Invalid(format!(
                "redirect_to `{redirect_to}` is not on an allowed origin (the public URL, the app URL or a --cors-origin)"
            )));
        }
        if let Some(challenge) = &start.code_challenge {
            let valid = challenge.len() == 43
                && base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(challenge)
                    .is_ok();
            if !valid {
                return Err(AuthError::Invalid(
                    "code_challenge must be the base64url SHA-256 of your verifier (43 characters, S256)".into(),
                ));
            }
        }
        // Always a fresh binding: one planted in the browser binds nothing.
        let binding = random_token();
        let verifier = random_token();
        let nonce = random_token();
        let state = self
            .issue_once(
                Purpose::OAuthState,
                None,
                &sha256_hex(&binding),
                json!({
                    "provider": name,
                    "verifier": verifier,
                    "nonce": nonce,
                    "redirectTo": redirect_to,
                    "challenge": start.code_challenge,
                }),
            )
            .await?;
        let location = provider
            .authorize_url(
                &self.oauth.http,
                &self.callback_url(name),
                &state,
                &challenge_of(&verifier),
                &nonce,
            )
            .await?;
        Ok(Started { location, binding })
    }

    /// `GET /api/auth/oauth/{provider}/callback`: finishes the provider's
    /// part; answers the app URL with an exchange code.
    pub async fn finish_oauth(
        &self,
        name: &str,
        callback: &Callback,
        binding: Option<&str>,
        client: &Client,
    ) -> Result<String, Failure> {
        let untrusted = |error| Failure {
            redirect_to: None,
            error,
        };
        self.limit(client).map_err(untrusted)?;
        let state = callback.state.as_deref().ok_or_else(|| {
            untrusted(AuthError::InvalidState("the provider sent no state".into()))
        })?;
        let found = self
            .find_once(Purpose::OAuthState, state)
            .await
            .map_err(|_| {
                untrusted(AuthError::InvalidState(
                    "the sign-in is unknown, used or expired: start it again".into(),
                ))
            })?;
        // Hashes are compared, so timing tells nothing of the binding.
        let same_browser = binding.is_some_and(|b| sha256_hex(b) == found.email);
        if !same_browser {
            return Err(untrusted(AuthError::InvalidState(
                "the sign-in was started in another browser (its aura_oauth cookie is missing or different)".into(),
            )));
        }
        if found.detail["provider"] != json!(name) {
            return Err(untrusted(AuthError::InvalidState(
                "the sign-in was started with another provider".into(),
            )));
        }
        self.use_up(&found).await.map_err(|_| {
            untrusted(AuthError::InvalidState(
                "the sign-in is unknown, used or expired: start it again".into(),
            ))
        })?;
        let detail = &found.detail;
        let text = |key: &str| detail[key].as_str().unwrap_or_default().to_owned();
        let redirect_to = text("redirectTo");
        let fail = |error| Failure {
            redirect_to: Some(redirect_to.clone()),
            error,
        };
        let provider = self.provider(name).map_err(fail)?;
        if let Some(error) = &callback.error {
            let description = callback.error_description.as_deref().unwrap_or_default();
            return Err(fail(AuthError::OAuthFailed(
                format!("{name} answered `{error}` {description}")
                    .trim()
                    .to_owned(),
            )));
        }
        let code = callback
            .code
            .as_deref()
            .ok_or_else(|| fail(AuthError::OAuthFailed(format!("{name} sent no code"))))?;
        let profile = provider
            .profile(
                &self.oauth.http,
                code,
                &self.callback_url(name),
                &text("verifier"),
                &text("nonce"),
            )
            .await
            .map_err(fail)?;
        let user = self.oauth_user(name, profile, client).await.map_err(fail)?;
        if self.require_verified && user["verified"] != json!(true) {
            return Err(fail(AuthError::NotVerified));
        }
        let id = user["id"].as_str().unwrap_or_default();
        let exchange = self
            .issue_once(
                Purpose::OAuthCode,
                Some(id),
                user["email"].as_str().unwrap_or_default(),
                json!({ "provider": name, "challenge": detail["challenge"] }),
            )
            .await
            .map_err(fail)?;
        let mut url = url::Url::parse(&redirect_to)
            .map_err(|e| fail(AuthError::Internal(anyhow::anyhow!("redirect_to: {e}"))))?;
        url.query_pairs_mut().append_pair("code", &exchange);
        Ok(url.into())
    }

    /// `POST /api/auth/oauth/exchange`: trades an exchange code for a
    /// sign-in.
    pub async fn exchange_oauth(
        &self,
        code: &str,
        verifier: Option<&str>,
        client: &Client,
    ) -> Result<SignIn, AuthError> {
        self.limit(client)?;
        let found = self.find_once(Purpose::OAuthCode, code).await?;
        // One attempt per code, right or wrong.
        self.use_up(&found).await?;
        if let Some(challenge) = found.detail["challenge"].as_str() {
            let matches = verifier.is_some_and(|v| challenge_of(v) == challenge);
            if !matches {
                return Err(AuthError::InvalidToken(
                    "the code_verifier does not match this sign-in's code_challenge".into(),
                ));
            }
        }
        let user = self
            .user_record(found.user.as_deref().unwrap_or_default())
            .await?;
        let provider = found.detail["provider"].as_str().unwrap_or_default();
        self.sign_in(user, client, &format!("oauth:{provider}"))
            .await
    }

    /// The account an identity signs in: linked, joined by a verified
    /// address, or created.
    async fn oauth_user(
        &self,
        provider: &str,
        profile: Profile,
        client: &Client,
    ) -> Result<Value, AuthError> {
        if let Some(id) = self.identity_user(provider, &profile.subject).await? {
            match self.user_record(&id).await {
                Ok(user) => return Ok(user),
                Err(AuthError::InvalidToken(_)) => {
                    self.unlink_identity(provider, &profile.subject, &id)
                        .await?;
                }
                Err(other) => return Err(other),
            }
        }
        let email = profile
            .email
            .as_deref()
            .map(normal_email)
            .filter(|e| values::valid_email(e))
            .ok_or_else(|| {
                AuthError::OAuthFailed(format!(
                    "{provider} shared no email address; allow access to it and sign in again"
                ))
            })?;
        // An address the provider has not verified makes or joins nothing:
        // its owner could later prove it and find someone else's login on
        // the account.
        if !profile.email_verified {
            return Err(AuthError::OAuthFailed(format!(
                "{provider} has not verified {email}: verify it there, then sign in again"
            )));
        }
        let user = match self.user_id_by_email(&email).await? {
            Some(id) => {
                let user = self.user_record(&id).await?;
                if user["verified"] != json!(true) {
                    return Err(AuthError::AccountExists(format!(
                        "an account with {email} exists, but its address is not confirmed; confirm it (or reset the password) and sign in with {provider} again"
                    )));
                }
                user
            }
            None => {
                let mut data = json!({ "email": email, "roles": [], "verified": true });
                if let Some(name) = &profile.name {
                    data["name"] = json!(name.chars().take(200).collect::<String>());
                }
                match self
                    .db
                    .create(&Caller::Service, schema::USERS, data, &ReadQuery::default())
                    .await
                {
                    Ok(user) => user,
                    Err(DbError::Unique(_)) => {
                        return Err(AuthError::AccountExists(format!(
                            "an account with {email} was created meanwhile: sign in again"
                        )));
                    }
                    Err(other) => return Err(other.into()),
                }
            }
        };
        let id = user["id"].as_str().unwrap_or_default();
        let insert = self.statement(
            "INSERT INTO _aura_identities (provider, subject, user_id, email, created) VALUES (?, ?, ?, ?, ?)",
            &[provider, &profile.subject, id, &email, &values::now()],
        );
        self.write(insert).await?;
        self.audit.record(
            "identity_linked",
            Some(id),
            client.ip.as_deref(),
            json!({ "provider": provider, "email": email }),
        );
        Ok(user)
    }

    async fn identity_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<String>, AuthError> {
        let select = self.statement(
            "SELECT user_id FROM _aura_identities WHERE provider = ? AND subject = ?",
            &[provider, subject],
        );
        Ok(self
            .db
            .backend()
            .fetch(&select, &[Storage::Text])
            .await?
            .pop()
            .and_then(|mut row| row.pop()?.as_str().map(str::to_owned)))
    }

    async fn unlink_identity(
        &self,
        provider: &str,
        subject: &str,
        user: &str,
    ) -> Result<u64, AuthError> {
        let delete = self.statement(
            "DELETE FROM _aura_identities WHERE provider = ? AND subject = ? AND user_id = ?",
            &[provider, subject, user],
        );
        Ok(self.write(delete).await?)
    }

    /// `GET /api/auth/identities`: the providers linked to the user.
    pub async fn identities(&self, auth: &Authenticated) -> Result<Vec<Value>, AuthError> {
        let select = self.statement(
            "SELECT provider, email, created FROM _aura_identities WHERE user_id = ? ORDER BY created, provider",
            &[&auth.user.id],
        );
        Ok(self
            .db
            .backend()
            .fetch(&select, &[Storage::Text; 3])
            .await?
            .into_iter()
            .map(|row| json!({ "provider": row[0], "email": row[1], "created": row[2] }))
            .collect())
    }

    /// `DELETE /api/auth/identities/{provider}`: unlinks a provider (the
    /// account still signs in by password, link or code).
    pub async fn unlink(&self, auth: &Authenticated, provider: &str) -> Result<(), AuthError> {
        let delete = self.statement(
            "DELETE FROM _aura_identities WHERE provider = ? AND user_id = ?",
            &[provider, &auth.user.id],
        );
        if self.write(delete).await? == 0 {
            return Err(AuthError::NotFound(format!(
                "no {provider} identity is linked to this account"
            )));
        }
        self.audit.record(
            "identity_unlinked",
            Some(&auth.user.id),
            None,
            json!({ "provider": provider }),
        );
        Ok(())
    }
}
