//! The auth service: accounts with passwords (argon2id), short-lived JWT
//! access tokens and rotating refresh tokens, sessions.
//!
//! Accounts are records of the system collection `users` (so rules and
//! relations refer to them like any record); password hashes, signing keys,
//! sessions and refresh tokens live in tables of their own beside it.
//!
//! - An access token is an HS256 JWT (`kid` header; keys in
//!   `_aura_auth_keys`, shared by every node) naming the user and the
//!   session. It is accepted while unexpired and while its session stands,
//!   so logging out ends it at once.
//! - A refresh token is opaque, stored only as a SHA-256 hash, and single
//!   use: refreshing returns a new one. Presenting a used one again revokes
//!   the whole session (reuse detection) and is logged.
//! - Mail flows (`recovery`, `passwordless`) use single-purpose, single-use
//!   tokens (`once`); two-factor sign-in is in `totp`, provider sign-in in
//!   `oauth`.

mod admin;
mod keys;
pub mod limits;
pub mod mail;
pub mod oauth;
mod once;
mod passwordless;
pub mod proxies;
mod recovery;
use recovery::Sender;
pub mod totp;

use crate::audit::AuditLog;
use crate::db::backend::{Query, select_column, text_arg};
use crate::db::schema::{self, Storage};
use crate::db::{ApplyOptions, Caller, Database, DbError, ReadQuery, User, values};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// How long an access token lives.
pub const ACCESS_TTL_SECONDS: i64 = 15 * 60;
/// How long a session (and its refresh tokens) lives without refreshing.
pub const SESSION_TTL_DAYS: i64 = 30;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// Longest password accepted (argon2 work is bounded).
pub const MAX_PASSWORD: usize = 256;

/// Why an auth request failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown email or wrong password (never says which).
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// The token is not valid (forged, expired, for an ended session…).
    #[error("the token is not valid: {0}")]
    InvalidToken(String),
    /// A refresh token was used twice: its session is revoked.
    #[error("this refresh token was already used; the session has been revoked, sign in again")]
    TokenReused,
    /// Input that breaks a policy (password length, email format).
    #[error("{0}")]
    Invalid(String),
    /// The email belongs to an account.
    #[error("an account with this email exists")]
    EmailTaken,
    /// No such session (of this user).
    #[error("no such session")]
    SessionNotFound,
    /// Sign-in needs a verified address first.
    #[error(
        "confirm your email address first: open the link in the mail we sent (POST /api/auth/verify-email/request sends another once signed in another way)"
    )]
    NotVerified,
    /// Something named (a signing key) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A one-time code (email, authenticator, recovery) that is wrong,
    /// used or expired.
    #[error("the code is wrong, used or expired")]
    InvalidCode,
    /// An OAuth callback whose state is unknown, used, expired or from
    /// another browser.
    #[error("{0}")]
    InvalidState(String),
    /// An OAuth provider refused, or vouched for nothing usable.
    #[error("{0}")]
    OAuthFailed(String),
    /// An OAuth provider could not be reached or failed.
    #[error("{0}")]
    ProviderUnavailable(String),
    /// A provider's identity may not join the account of its address.
    #[error("{0}")]
    AccountExists(String),
    /// Too many attempts: retry after this many seconds.
    #[error("too many attempts; retry in {0} seconds")]
    RateLimited(u64),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AuthError {
    fn from(err: sqlx::Error) -> Self {
        AuthError::Internal(err.into())
    }
}

impl From<DbError> for AuthError {
    fn from(err: DbError) -> Self {
        AuthError::Internal(anyhow::anyhow!("{err}"))
    }
}

/// Where a request came from, recorded with its session.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The peer address.
    pub ip: Option<String>,
}

/// The audit detail of a lockout: `detail` with its length and scope.
fn lockout_detail(lockout: limits::Lockout, mut detail: Value) -> Value {
    detail["seconds"] = json!(lockout.duration().as_secs());
    detail["scope"] = json!(match lockout {
        limits::Lockout::Address(_) => "address",
        limits::Lockout::Account(_) => "account",
    });
    detail
}

impl Client {
    /// The peer address, or "" where there is none (the key of its limits).
    pub fn address(&self) -> &str {
        self.ip.as_deref().unwrap_or_default()
    }
}

/// What sign-in and refresh answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    /// The JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The single-use refresh token.
    pub refresh_token: String,
    /// The user's record.
    pub user: Value,
}

/// What registering answers.
#[derive(Debug)]
pub enum Registered {
    /// Signed in at once.
    SignedIn(Tokens),
    /// With `--require-verified-email`: a mail went to the address (a
    /// confirmation link, or a notice if it has an account); the same for
    /// every address.
    Pending,
}

/// What a successful first sign-in step answers.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum SignIn {
    /// Signed in.
    Tokens(Tokens),
    /// Two-factor sign-in is on: send a code with this token to
    /// `POST /api/auth/2fa/totp/verify`.
    #[serde(rename_all = "camelCase")]
    SecondStep {
        /// Always true.
        mfa_required: bool,
        /// The single-use second-step token.
        mfa_token: String,
        /// Seconds it stays valid.
        expires_in: i64,
    },
}

/// How the auth service reaches users: mail delivery and the URLs links in
/// mails point at.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthOptions {
    /// SMTP server for auth mail (`smtp://user:pass@host:587?tls=required`,
    /// `smtps://host:465`, `smtp://127.0.0.1:2525` without TLS); without
    /// one, mail goes to the log and the admin outbox
    #[arg(long, env = "AURA_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,
    /// The sender of auth mail
    #[arg(
        long,
        env = "AURA_MAIL_FROM",
        default_value = "Aura <no-reply@aura.localhost>"
    )]
    pub mail_from: String,
    /// The URL clients reach this server at, for links in mail
    /// [default: http://ADDR]
    #[arg(long, env = "AURA_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Requests a client address may make per minute to the auth
    /// endpoints that take no token (0: no limit, e.g. behind a proxy that
    /// limits, or for benchmarks)
    #[arg(long = "auth-rate-limit", env = "AURA_AUTH_RATE_LIMIT", default_value_t = limits::PER_ADDRESS)]
    pub rate_limit: u32,
    /// Accounts with a password must confirm their email before signing
    /// in; registering then answers the same for new and taken addresses
    #[arg(long = "require-verified-email", env = "AURA_REQUIRE_VERIFIED_EMAIL")]
    pub require_verified: bool,
    /// Reverse proxies (addresses or networks, `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client, for rate limits, sessions and
    /// the audit log; from others the header is ignored
    #[arg(
        long = "trusted-proxy",
        env = "AURA_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Origins (`https://app.example.com`) whose pages may call the API
    /// with credentials (CORS), and whose cookie sessions may change state;
    /// the public and app URLs' origins always may
    #[arg(
        long = "cors-origin",
        env = "AURA_CORS_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// A TOML file of OAuth / OpenID Connect providers, a table each
    /// (`[github]`, `[google]`, `[corp]` with `issuer`; `client_id`,
    /// `client_secret`); see docs/auth.md
    #[arg(long, env = "AURA_OAUTH_PROVIDERS", value_name = "FILE")]
    pub oauth_providers: Option<std::path::PathBuf>,
    /// Your app's URL: links in mail then open its pages
    /// (`/auth/verify-email`, `/auth/reset-password`, `/auth/magic-link`,
    /// with `?token=`) instead of Aura's endpoints
    #[arg(long, env = "AURA_APP_URL", value_name = "URL")]
    pub app_url: Option<String>,
    /// Seconds after a refresh token's first use in which a second use (two
    /// tabs refreshing at once, a retry whose answer was lost) gets tokens
    /// of the same session instead of revoking it as a replay
    #[arg(
        long,
        env = "AURA_REFRESH_REUSE_GRACE",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    pub refresh_reuse_grace: u64,
}

/// Where links in mails point, and the origins trusted with credentials.
struct Links {
    public_url: String,
    app_url: Option<String>,
    origins: Vec<String>,
}

/// The origin (`scheme://host[:port]`) of a URL.
fn origin_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    Some(url.origin().ascii_serialization())
}

/// An authenticated request: the user and their session.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The user, as rules see them.
    pub user: User,
    /// The session the token belongs to.
    pub session: String,
    /// The client's address, where the request's is known.
    pub address: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    email: String,
    roles: Vec<String>,
    verified: bool,
    typ: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// Signing keys by id; the newest signs.
struct Keys {
    active: String,
    secrets: HashMap<String, Vec<u8>>,
}

/// The auth service.
pub struct Auth {
    db: Arc<Database>,
    keys: RwLock<Keys>,
    /// Verified against for unknown emails, so both answers take as long.
    decoy_hash: String,
    limits: limits::Limits,
    audit: Arc<AuditLog>,
    mailer: Arc<mail::Mailer>,
    links: Links,
    proxies: proxies::TrustedProxies,
    require_verified: bool,
    oauth: oauth::Providers,
    /// See [`AuthOptions::refresh_reuse_grace`].
    reuse_grace: chrono::TimeDelta,
}

fn hasher() -> Argon2<'static> {
    // argon2id v19 with OWASP's parameters: 19 MiB, 2 passes, 1 lane.
    Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        Params::default(),
    )
}

/// Runs argon2 work on a blocking thread, at most one per core at a time:
/// more would not finish sooner (it is CPU-bound), and each holds 19 MiB,
/// so a burst of sign-ins queues here instead of growing memory.
async fn argon2_work<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _slot = slots.acquire().await?;
    tokio::task::spawn_blocking(work).await?
}

async fn hash_password(password: String) -> anyhow::Result<String> {
    argon2_work(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(hasher()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
            .to_string())
    })
    .await
}

/// Whether `password` matches `hash`, and whether the hash should be
/// redone with today's parameters.
async fn verify_password(password: String, hash: String) -> anyhow::Result<(bool, bool)> {
    argon2_work(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let ok = hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        let current = Params::default();
        let stale = parsed.algorithm.as_str() != "argon2id"
            || Params::try_from(&parsed).map_or(true, |p| {
                p.m_cost() != current.m_cost()
                    || p.t_cost() != current.t_cost()
                    || p.p_cost() != current.p_cost()
            });
        Ok((ok, stale))
    })
    .await
}

fn sha256_hex(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn normal_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_password(password: &str) -> Result<(), AuthError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD {
        return Err(AuthError::Invalid(format!(
            "the password needs at least {MIN_PASSWORD} characters"
        )));
    }
    if length > MAX_PASSWORD {
        return Err(AuthError::Invalid(format!(
            "the password may have at most {MAX_PASSWORD} characters"
        )));
    }
    Ok(())
}

impl Auth {
    /// Creates the `users` collection and a signing key if missing.
    /// `public_url` is where clients reach the server.
    pub async fn start(
        db: Arc<Database>,
        audit: Arc<AuditLog>,
        options: &AuthOptions,
        public_url: String,
    ) -> anyhow::Result<Arc<Self>> {
        let mailer = Arc::new(mail::Mailer::new(
            options.smtp_url.as_deref(),
            &options.mail_from,
        )?);
        if db.collection(schema::USERS).is_err() {
            db.apply(
                schema::users_collection(),
                ApplyOptions::default(),
                schema::SYSTEM_ACTOR,
            )
            .await
            .map_err(|e| anyhow::anyhow!("creating the users collection: {e}"))?;
        }
        let decoy_hash = hash_password(hex::encode(rand::random::<[u8; 16]>())).await?;
        let auth = Arc::new(Self {
            db,
            keys: RwLock::new(Keys {
                active: String::new(),
                secrets: HashMap::new(),
            }),
            decoy_hash,
            limits: limits::Limits::new(options.rate_limit),
            proxies: proxies::TrustedProxies::parse(&options.trusted_proxies)?,
            require_verified: options.require_verified,
            oauth: oauth::Providers::load(options.oauth_providers.as_deref())?,
            reuse_grace: chrono::TimeDelta::seconds(options.refresh_reuse_grace.min(3600) as i64),
            audit,
            mailer,
            links: {
                let public_url = options.public_url.clone().unwrap_or(public_url);
                let origins = options
                    .cors_origins
                    .iter()
                    .map(|o| {
                        origin_of(o).ok_or_else(|| {
                            anyhow::anyhow!("`{o}` is not an origin (https://app.example.com)")
                        })
                    })
                    .chain(
                        [&public_url]
                            .into_iter()
                            .chain(&options.app_url)
                            .filter_map(|u| origin_of(u))
                            .map(Ok),
                    )
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Links {
                    public_url,
                    app_url: options.app_url.clone(),
                    origins,
                }
            },
        });
        auth.load_keys().await?;
        auth.reload_keys_periodically();
        Ok(auth)
    }

    /// Counts a request against its address's limit.
    fn limit(&self, client: &Client) -> Result<(), AuthError> {
        match &client.ip {
            Some(ip) => self.limits.request(ip).map_err(AuthError::RateLimited),
            None => Ok(()),
        }
    }

    fn query(&self) -> Query {
        self.db.backend().query()
    }

    async fn load_keys(&self) -> anyhow::Result<()> {
        let backend = self.db.backend();
        let mut select = self.query();
        select.sql("SELECT kid, secret FROM _aura_auth_keys ORDER BY created, kid");
        let mut rows = backend
            .fetch(&select, &[Storage::Text, Storage::Text])
            .await?;
        if rows.is_empty() {
            self.insert_key().await?;
            rows = backend
                .fetch(&select, &[Storage::Text, Storage::Text])
                .await?;
        }
        let mut keys = Keys {
            active: String::new(),
            secrets: HashMap::new(),
        };
        for row in rows {
            let (Some(kid), Some(secret)) = (row[0].as_str(), row[1].as_str()) else {
                continue;
            };
            keys.secrets.insert(kid.to_owned(), hex::decode(secret)?);
            keys.active = kid.to_owned();
        }
        *self.keys.write().expect("keys lock") = keys;
        Ok(())
    }

    /// Runs one write statement in its own transaction.
    async fn write(&self, query: Query) -> anyhow::Result<u64> {
        let mut tx = self.db.backend().begin().await?;
        let affected = tx.execute(&query).await?;
        tx.commit().await?;
        Ok(affected)
    }

    async fn user_by_email(&self, email: &str) -> anyhow::Result<Option<(String, String)>> {
        let mut query = self.query();
        query
            .sql("SELECT u.\"id\", c.password_hash FROM \"users\" u JOIN _aura_credentials c ON c.user_id = u.\"id\" WHERE u.\"email\" = ")
            .arg(text_arg(email), Storage::Text);
        let rows = self
            .db
            .backend()
            .fetch(&query, &[Storage::Text, Storage::Text])
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|row| Some((row[0].as_str()?.to_owned(), row[1].as_str()?.to_owned()))))
    }

    /// The id of the account of `email`, with or without a password.
    async fn user_id_by_email(&self, email: &str) -> anyhow::Result<Option<String>> {
        let select = self.statement("SELECT \"id\" FROM \"users\" WHERE \"email\" = ?", &[email]);
        Ok(self
            .db
            .backend()
            .fetch(&select, &[Storage::Text])
            .await?
            .pop()
            .and_then(|mut row| row.pop()?.as_str().map(str::to_owned)))
    }

    /// The URL clients reach this server at (for links it hands out).
    pub fn public_url(&self) -> &str {
        self.links.public_url.trim_end_matches('/')
    }

    /// The address a request comes from (see [`proxies`]).
    pub fn client_ip(
        &self,
        peer: std::net::IpAddr,
        forwarded_for: Option<&str>,
    ) -> std::net::IpAddr {
        self.proxies.client_ip(peer, forwarded_for)
    }

    /// Whether pages of `origin` may use the API with credentials.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.links.origins.iter().any(|o| o == origin)
    }

    /// The CORS policy: the allowed origins, with credentials.
    pub fn cors(&self) -> tower_http::cors::CorsLayer {
        use axum::http::{HeaderName, HeaderValue, Method, header};
        tower_http::cors::CorsLayer::new()
            .allow_origin(
                self.links
                    .origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok())
                    .collect::<Vec<_>>(),
            )
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-csrf-token"),
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-aura-env"),
            ])
            .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
    }

    /// Mail kept instead of sent (no SMTP server configured), newest first.
    pub fn outbox(&self) -> Option<Vec<mail::Mail>> {
        self.mailer.outbox()
    }

    async fn user_record(&self, id: &str) -> Result<Value, AuthError> {
        self.db
            .view(&Caller::Service, schema::USERS, id, &ReadQuery::default())
            .await
            .map_err(|err| match err {
                DbError::RecordNotFound(..) => {
                    AuthError::InvalidToken("the account no longer exists".into())
                }
                other => other.into(),
            })
    }

    /// Creates an account and signs it in.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
        client: &Client,
    ) -> Result<Registered, AuthError> {
        self.limit(client)?;
        check_password(password)?;
        let email = normal_email(email);
        let mut data = json!({ "email": email, "roles": [], "verified": false });
        if let Some(name) = name {
            data["name"] = json!(name);
        }
        let hash = hash_password(password.to_owned()).await?;
        let user = match self
            .db
            .create(&Caller::Service, schema::USERS, data, &ReadQuery::default())
            .await
        {
            Ok(user) => user,
            Err(DbError::Unique(_)) if self.require_verified => {
                // The same answer as for a new address; the owner hears of it.
                self.limit_mail(&email, Sender::Client(client))?;
                self.mailer.send(
                    &email,
                    "Someone tried to register with your address",
                    "Someone tried to create an account with this email address, which already has one. If it was you, sign in, or reset your password. Otherwise, ignore this mail.\n".into(),
                );
                return Ok(Registered::Pending);
            }
            Err(DbError::Unique(_)) => return Err(AuthError::EmailTaken),
            Err(DbError::Validation(fields)) => {
                let reasons: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.message))
                    .collect();
                return Err(AuthError::Invalid(reasons.join("; ")));
            }
            Err(other) => return Err(other.into()),
        };
        let id = user["id"].as_str().unwrap_or_default().to_owned();
        let mut insert = self.query();
        insert
            .sql("INSERT INTO _aura_credentials (user_id, password_hash) VALUES (")
            .arg(text_arg(&id), Storage::Text)
            .sql(", ")
            .arg(text_arg(&hash), Storage::Text)
            .sql(")");
        if let Err(err) = self.write(insert).await {
            // No account without a password.
            let _ = self.db.delete(&Caller::Service, schema::USERS, &id).await;
            return Err(err.into());
        }
        self.audit
            .record("register", Some(&id), client.ip.as_deref(), json!({}));
        if self.require_verified {
            self.send_verification(&id, &email, Sender::Client(client))
                .await?;
            return Ok(Registered::Pending);
        }
        Ok(Registered::SignedIn(self.open_session(user, client).await?))
    }

    /// Signs in with email and password.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: &Client,
    ) -> Result<SignIn, AuthError> {
        self.limit(client)?;
        let email = normal_email(email);
        self.limits
            .check_account(&email, &email, client.address())
            .map_err(AuthError::RateLimited)?;
        let found = self.user_by_email(&email).await?;
        let (id, hash) = match &found {
            Some((id, hash)) => (id.clone(), hash.clone()),
            None => (String::new(), self.decoy_hash.clone()),
        };
        let (ok, stale) = verify_password(password.to_owned(), hash).await?;
        if !ok || found.is_none() {
            let user = found.as_ref().map(|(id, _)| id.as_str());
            self.audit.record(
                "login_failed",
                user,
                client.ip.as_deref(),
                json!({ "email": email }),
            );
            if let Some(lockout) = self.limits.failed(&email, client.address()) {
                self.audit.record(
                    "lockout",
                    user,
                    client.ip.as_deref(),
                    lockout_detail(lockout, json!({ "email": email })),
                );
            }
            return Err(AuthError::InvalidCredentials);
        }
        self.limits.succeeded(&email, client.address());
        if stale {
            let hash = hash_password(password.to_owned()).await?;
            let mut update = self.query();
            update
                .sql("UPDATE _aura_credentials SET password_hash = ")
                .arg(text_arg(&hash), Storage::Text)
                .sql(" WHERE user_id = ")
                .arg(text_arg(&id), Storage::Text);
            self.write(update).await?;
        }
        let user = self.user_record(&id).await?;
        if self.require_verified && user["verified"] != json!(true) {
            return Err(AuthError::NotVerified);
        }
        self.sign_in(user, client, "password").await
    }

    async fn open_session(&self, user: Value, client: &Client) -> Result<Tokens, AuthError> {
        let session = values::new_id();
        let now = values::now();
        let expires =
            values::format_time(chrono::Utc::now() + chrono::Duration::days(SESSION_TTL_DAYS));
        let mut insert = self.query();
        insert
            .sql("INSERT INTO _aura_sessions (id, user_id, user_agent, ip, created, last_used, expires) VALUES (")
            .arg(text_arg(&session), Storage::Text)
            .sql(", ")
            .arg(text_arg(user["id"].as_str().unwrap_or_default()), Storage::Text)
            .sql(", ")
            .arg(client.user_agent.as_deref().map_or(crate::db::backend::Arg::Null, text_arg), Storage::Text)
            .sql(", ")
            .arg(client.ip.as_deref().map_or(crate::db::backend::Arg::Null, text_arg), Storage::Text)
            .sql(", ")
            .arg(text_arg(&now), Storage::Text)
            .sql(", ")
            .arg(text_arg(&now), Storage::Text)
            .sql(", ")
            .arg(text_arg(&expires), Storage::Text)
            .sql(")");
        self.write(insert).await?;
        let persons = [
            user["email"].as_str().unwrap_or_default(),
            user["id"].as_str().unwrap_or_default(),
        ];
        self.limits.signed_in(&persons, client.address());
        self.issue(user, &session).await
    }

    /// A new access token and refresh token for `session`.
    async fn issue(&self, user: Value, session: &str) -> Result<Tokens, AuthError> {
        let refresh = format!(
            "{session}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        );
        let mut insert = self.query();
        insert
            .sql("INSERT INTO _aura_refresh_tokens (hash, session_id, created) VALUES (")
            .arg(text_arg(&sha256_hex(&refresh)), Storage::Text)
            .sql(", ")
            .arg(text_arg(session), Storage::Text)
            .sql(", ")
            .arg(text_arg(&values::now()), Storage::Text)
            .sql(")");
        self.write(insert).await?;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user["id"].as_str().unwrap_or_default().to_owned(),
            sid: session.to_owned(),
            email: user["email"].as_str().unwrap_or_default().to_owned(),
            roles: serde_json::from_value(user["roles"].clone()).unwrap_or_default(),
            verified: user["verified"].as_bool().unwrap_or(false),
            typ: "access".into(),
            iat: now,
            nbf: now,
            exp: now + ACCESS_TTL_SECONDS,
        };
        let access_token = {
            let keys = self.keys.read().expect("keys lock");
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(keys.active.clone());
            jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_secret(&keys.secrets[&keys.active]),
            )
            .map_err(|e| anyhow::anyhow!("signing: {e}"))?
        };
        Ok(Tokens {
            access_token,
            token_type: "Bearer",
            expires_in: ACCESS_TTL_SECONDS,
            refresh_token: refresh,
            user,
        })
    }

    /// Trades a refresh token for new tokens. A token used before revokes
    /// its session, unless that first use was within the reuse grace: then
    /// the second use gets new tokens of the same session too.
    pub async fn refresh(&self, token: &str, client: &Client) -> Result<Tokens, AuthError> {
        self.limit(client)?;
        let invalid = || AuthError::InvalidToken("unknown refresh token".into());
        let hash = sha256_hex(token);
        let mut select = self.query();
        select
            .sql("SELECT t.session_id, t.used, s.user_id, s.revoked, s.expires FROM _aura_refresh_tokens t JOIN _aura_sessions s ON s.id = t.session_id WHERE t.hash = ")
            .arg(text_arg(&hash), Storage::Text);
        let row = self
            .db
            .backend()
            .fetch(&select, &[Storage::Text; 5])
            .await?
            .pop()
            .ok_or_else(invalid)?;
        let session = row[0].as_str().unwrap_or_default().to_owned();
        let user = row[2].as_str().unwrap_or_default().to_owned();
        if !row[3].is_null() || row[4].as_str().is_some_and(|e| e < values::now().as_str()) {
            return Err(AuthError::InvalidToken("the session has ended".into()));
        }
        // Mark it used; only one of several concurrent uses can win, and the
        // others are replays unless they come within the grace.
        let first_use = match row[1].as_str() {
            Some(used) => Some(used.to_owned()),
            None => {
                let mut mark = self.query();
                mark.sql("UPDATE _aura_refresh_tokens SET used = ")
                    .arg(text_arg(&values::now()), Storage::Text)
                    .sql(" WHERE used IS NULL AND hash = ")
                    .arg(text_arg(&hash), Storage::Text);
                if self.write(mark).await? == 1 {
                    None
                } else {
                    Some(values::now())
                }
            }
        };
        let within_grace = |used: &str| {
            chrono::DateTime::parse_from_rfc3339(used)
                .is_ok_and(|at| chrono::Utc::now() - at.to_utc() <= self.reuse_grace)
        };
        if let Some(used) = &first_use
            && within_grace(used)
        {
            tracing::info!(user = %user, session = %session, "refresh token used again within the grace");
        } else if first_use.is_some() {
            self.revoke_session(&session).await?;
            tracing::warn!(user = %user, session = %session, "refresh token reused; session revoked");
            self.audit.record(
                "refresh_reuse",
                Some(&user),
                client.ip.as_deref(),
                json!({ "session": session }),
            );
            return Err(AuthError::TokenReused);
        }
        let mut touch = self.query();
        touch
            .sql("UPDATE _aura_sessions SET last_used = ")
            .arg(text_arg(&values::now()), Storage::Text)
            .sql(" WHERE id = ")
            .arg(text_arg(&session), Storage::Text);
        self.write(touch).await?;
        let record = self.user_record(&user).await?;
        self.issue(record, &session).await
    }

    async fn revoke_session(&self, session: &str) -> anyhow::Result<u64> {
        let mut revoke = self.query();
        revoke
            .sql("UPDATE _aura_sessions SET revoked = ")
            .arg(text_arg(&values::now()), Storage::Text)
            .sql(" WHERE revoked IS NULL AND id = ")
            .arg(text_arg(session), Storage::Text);
        self.write(revoke).await
    }

    /// Ends the session of an access token.
    pub async fn logout(&self, auth: &Authenticated) -> Result<(), AuthError> {
        self.revoke_session(&auth.session).await?;
        self.audit.record(
            "logout",
            Some(&auth.user.id),
            auth.address.as_deref(),
            json!({ "session": auth.session }),
        );
        Ok(())
    }

    /// Checks an access token: signature, algorithm, expiry, not-before,
    /// purpose, and that its session stands.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, AuthError> {
        let invalid = |why: &str| AuthError::InvalidToken(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid("unexpected algorithm"));
        }
        let secret = {
            let keys = self.keys.read().expect("keys lock");
            header
                .kid
                .as_ref()
                .and_then(|kid| keys.secrets.get(kid))
                .cloned()
        };
        let secret = match secret {
            Some(secret) => secret,
            None => {
                // Another node may have added a key since.
                self.load_keys().await?;
                let keys = self.keys.read().expect("keys lock");
                header
                    .kid
                    .as_ref()
                    .and_then(|kid| keys.secrets.get(kid))
                    .cloned()
                    .ok_or_else(|| invalid("unknown signing key"))?
            }
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "nbf", "sub"]);
        let claims =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&secret), &validation)
                .map_err(|err| invalid(&format!("{:?}", err.kind()).to_lowercase()))?
                .claims;
        if claims.typ != "access" {
            return Err(invalid("not an access token"));
        }
        let user = self
            .session_user(&claims.sid, &claims.sub)
            .await?
            .ok_or_else(|| invalid("the session has ended"))?;
        Ok(Authenticated {
            user,
            session: claims.sid,
            address: None,
        })
    }

    /// The user of session `session` as the account is now, or `None` when
    /// the session has ended (logout, revocation, password change) or the
    /// account is gone: a role taken away or an email changed counts at
    /// once, not when the access token expires.
    pub async fn session_user(&self, session: &str, user: &str) -> Result<Option<User>, AuthError> {
        let mut select = self.query();
        let roles = select_column(select.dialect(), "u.\"roles\"", Storage::Json);
        select
            .sql(&format!(
                "SELECT u.\"email\", {roles}, u.\"verified\" FROM _aura_sessions s \
                 JOIN \"{}\" u ON u.\"id\" = s.user_id \
                 WHERE s.revoked IS NULL AND s.id = ",
                schema::USERS
            ))
            .arg(text_arg(session), Storage::Text)
            .sql(" AND s.user_id = ")
            .arg(text_arg(user), Storage::Text);
        let rows = self
            .db
            .backend()
            .fetch(&select, &[Storage::Text, Storage::Json, Storage::Bool])
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|row| <[Value; 3]>::try_from(row).ok())
            .map(|[email, roles, verified]| User {
                id: user.to_owned(),
                email: email.as_str().unwrap_or_default().to_owned(),
                roles: serde_json::from_value(roles).unwrap_or_default(),
                verified: verified.as_bool().unwrap_or(false),
            }))
    }

    /// The signed-in user's record.
    pub async fn me(&self, auth: &Authenticated) -> Result<Value, AuthError> {
        self.user_record(&auth.user.id).await
    }

    /// The user's open sessions, newest first.
    pub async fn sessions(&self, auth: &Authenticated) -> Result<Vec<Value>, AuthError> {
        self.open_sessions(&auth.user.id, Some(&auth.session)).await
    }

    /// Revokes every session of the user but the current one ("sign out
    /// everywhere else"); returns how many.
    pub async fn revoke_others(&self, auth: &Authenticated) -> Result<u64, AuthError> {
        let mut revoke = self.query();
        revoke
            .sql("UPDATE _aura_sessions SET revoked = ")
            .arg(text_arg(&values::now()), Storage::Text)
            .sql(" WHERE revoked IS NULL AND user_id = ")
            .arg(text_arg(&auth.user.id), Storage::Text)
            .sql(" AND id <> ")
            .arg(text_arg(&auth.session), Storage::Text);
        let revoked = self.write(revoke).await?;
        self.audit.record(
            "sessions_revoked",
            Some(&auth.user.id),
            auth.address.as_deref(),
            json!({ "count": revoked, "kept": auth.session }),
        );
        Ok(revoked)
    }

    /// Changes the user's own profile: any field of `users` except the
    /// system ones the auth service manages (`email`, `roles`, `verified`).
    pub async fn update_profile(
        &self,
        auth: &Authenticated,
        changes: Value,
    ) -> Result<Value, AuthError> {
        let Value::Object(mut changes) = changes else {
            return Err(AuthError::Invalid("the body must be a JSON object".into()));
        };
        let new_email = match changes.remove("email") {
            None => None,
            Some(Value::String(email)) => Some(email),
            Some(_) => return Err(AuthError::Invalid("`email` must be a string".into())),
        };
        if let Some(field) = ["email", "roles", "verified"]
            .iter()
            .find(|f| changes.contains_key(**f) || changes.contains_key(&format!("{f}+")))
        {
            return Err(AuthError::Invalid(format!(
                "`{field}` is managed by the auth service and can't be changed here"
            )));
        }
        // Check the new address before changing anything else.
        let pending = match new_email {
            Some(email) if normal_email(&email) != auth.user.email => {
                Some(self.request_email_change(auth, &email).await?)
            }
            _ => None,
        };
        let updated = if changes.is_empty() {
            self.user_record(&auth.user.id).await
        } else {
            self.db
                .update(
                    &Caller::Service,
                    schema::USERS,
                    &auth.user.id,
                    Value::Object(changes),
                    &ReadQuery::default(),
                )
                .await
                .map_err(AuthError::from_update)
        };
        let mut record = updated?;
        if let Some(email) = pending {
            record["pendingEmail"] = json!(email);
        }
        Ok(record)
    }
}

impl AuthError {
    fn from_update(err: DbError) -> Self {
        match err {
            DbError::Validation(fields) => {
                let reasons: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.message))
                    .collect();
                AuthError::Invalid(reasons.join("; "))
            }
            other => other.into(),
        }
    }
}

impl Auth {
    /// Deletes the user's account: record, password and sessions.
    pub async fn delete_account(&self, auth: &Authenticated) -> Result<(), AuthError> {
        let id = &auth.user.id;
        let mut tx = self.db.backend().begin().await?;
        for statement in [
            "DELETE FROM _aura_refresh_tokens WHERE session_id IN (SELECT id FROM _aura_sessions WHERE user_id = ",
            "DELETE FROM _aura_sessions WHERE (user_id = ",
            "DELETE FROM _aura_credentials WHERE (user_id = ",
            "DELETE FROM _aura_totp WHERE (user_id = ",
            "DELETE FROM _aura_recovery_codes WHERE (user_id = ",
            "DELETE FROM _aura_auth_tokens WHERE (user_id = ",
            "DELETE FROM _aura_identities WHERE (user_id = ",
        ] {
            let mut delete = self.query();
            delete
                .sql(statement)
                .arg(text_arg(id), Storage::Text)
                .sql(")");
            tx.execute(&delete).await.map_err(anyhow::Error::from)?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        match self.db.delete(&Caller::Service, schema::USERS, id).await {
            Ok(()) | Err(DbError::RecordNotFound(..)) => {}
            Err(other) => return Err(other.into()),
        }
        self.audit.record(
            "account_deleted",
            Some(id),
            auth.address.as_deref(),
            json!({}),
        );
        Ok(())
    }

    /// Revokes one of the user's sessions.
    pub async fn revoke(&self, auth: &Authenticated, session: &str) -> Result<(), AuthError> {
        let mut revoke = self.query();
        revoke
            .sql("UPDATE _aura_sessions SET revoked = ")
            .arg(text_arg(&values::now()), Storage::Text)
            .sql(" WHERE revoked IS NULL AND id = ")
            .arg(text_arg(session), Storage::Text)
            .sql(" AND user_id = ")
            .arg(text_arg(&auth.user.id), Storage::Text);
        if self.write(revoke).await? == 0 {
            return Err(AuthError::SessionNotFound);
        }
        self.audit.record(
            "sessions_revoked",
            Some(&auth.user.id),
            auth.address.as_deref(),
            json!({ "count": 1, "session": session }),
        );
        Ok(())
    }
}
