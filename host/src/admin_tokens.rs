//! Admin credentials: the token every node starts with (`DATA/admin.token`
//! or `AURA_ADMIN_TOKEN`, the same on every node) and named tokens an admin
//! mints and revokes. Named tokens are kept as SHA-256 hashes in the
//! default environment's database, so with a shared PostgreSQL database a
//! token minted on one node works on every node, and a revoked one stops
//! working on every node within [`RECHECK`].
//!
//! Named tokens start with [`PREFIX`]: any other bearer token (a user's
//! access token) is never looked up, so checking them costs nothing.

use crate::db::backend::{Backend, text_arg};
use crate::db::schema::Storage;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How every named token begins.
pub const PREFIX: &str = "aura_admin_";
/// How long a node trusts what it last read about a token (a revocation on
/// another node takes effect here within this).
pub const RECHECK: Duration = Duration::from_secs(1);
/// The most token answers kept (unknown tokens included: a flood of
/// made-up ones cannot grow memory).
const CACHED: usize = 10_000;

/// The table, created with the other system tables.
pub fn tables() -> Vec<String> {
    vec!["CREATE TABLE IF NOT EXISTS _aura_admin_tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created TEXT NOT NULL)".into()]
}

/// A named token, as listed (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    /// Its name.
    pub name: String,
    /// When it was minted.
    pub created: String,
}

/// Why a token cannot be minted or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name is not allowed.
    #[error("{0}")]
    InvalidName(String),
    /// A token has the name already.
    #[error("an admin token `{0}` exists already")]
    Exists(String),
    /// No token has the name.
    #[error("no admin token `{0}`")]
    NotFound(String),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The admin credentials of the process.
pub struct AdminTokens {
    root: String,
    db: OnceLock<Backend>,
    /// Token hash → whether it was valid, and when that was read.
    seen: Mutex<HashMap<String, (bool, Instant)>>,
}

/// How a token is kept: its SHA-256, in hex.
pub fn hash(token: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()))
}

impl AdminTokens {
    /// The credentials with `root`, the token the node was started with.
    pub fn new(root: String) -> Self {
        Self {
            root,
            db: OnceLock::new(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps named tokens in `db` (the default environment's database);
    /// until then only the root token is honoured.
    pub fn attach(&self, db: Backend) {
        let _ = self.db.set(db);
    }

    /// The token the node was started with.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn db(&self) -> anyhow::Result<&Backend> {
        self.db
            .get()
            .ok_or_else(|| anyhow::anyhow!("admin tokens are not open yet"))
    }

    /// Whether `token` is an admin token (the root one, compared in
    /// constant time, or a named one that is not revoked).
    pub async fn is_admin(&self, token: &str) -> bool {
        if crate::api::constant_time_eq(token.as_bytes(), self.root.as_bytes()) {
            return true;
        }
        if !token.starts_with(PREFIX) {
            return false;
        }
        let hash = hash(token);
        if let Some((valid, at)) = self.lock().get(&hash)
            && at.elapsed() < RECHECK
        {
            return *valid;
        }
        let valid = match self.lookup(&hash).await {
            Ok(valid) => valid,
            Err(err) => {
                tracing::warn!("checking an admin token: {err:#}");
                return false;
            }
        };
        let mut seen = self.lock();
        if seen.len() >= CACHED {
            seen.retain(|_, (_, at)| at.elapsed() < RECHECK);
            if seen.len() >= CACHED {
                seen.clear();
            }
        }
        seen.insert(hash, (valid, Instant::now()));
        valid
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (bool, Instant)>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn lookup(&self, hash: &str) -> anyhow::Result<bool> {
        let rows = self
            .db()?
            .rows(
                "SELECT name FROM _aura_admin_tokens WHERE hash = ?",
                [text_arg(hash)],
                &[Storage::Text],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Mints a token named `name`; answers it (shown this once) and its
    /// listing.
    pub async fn create(&self, name: &str) -> Result<(String, Named), TokenError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(TokenError::InvalidName(format!(
                "`{name}` is not a token name: 1 to 64 characters of A-Z, a-z, 0-9, `-`, `_` and `.`"
            )));
        }
        let token = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        let created = crate::db::values::now();
        let inserted = self
            .db()?
            .run(
                "INSERT INTO _aura_admin_tokens (name, hash, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                [text_arg(name), text_arg(&hash(&token)), text_arg(&created)],
            )
            .await?;
        if inserted == 0 {
            return Err(TokenError::Exists(name.to_owned()));
        }
        Ok((
            token,
            Named {
                name: name.to_owned(),
                created,
            },
        ))
    }

    /// The named tokens, by name.
    pub async fn list(&self) -> Result<Vec<Named>, TokenError> {
        let rows = self
            .db()?
            .rows(
                "SELECT name, created FROM _aura_admin_tokens ORDER BY name",
                [],
                &[Storage::Text, Storage::Text],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| Named {
                name: row[0].as_str().unwrap_or_default().to_owned(),
                created: row[1].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Revokes the token named `name`: it stops working at once on this
    /// node, and within [`RECHECK`] on the others.
    pub async fn revoke(&self, name: &str) -> Result<(), TokenError> {
        let rows = self
            .db()?
            .run_returning(
                "DELETE FROM _aura_admin_tokens WHERE name = ? RETURNING hash",
                [text_arg(name)],
                &[Storage::Text],
            )
            .await?;
        let Some(hash) = rows.first().and_then(|r| r[0].as_str()) else {
            return Err(TokenError::NotFound(name.to_owned()));
        };
        self.lock().remove(hash);
        Ok(())
    }
}
