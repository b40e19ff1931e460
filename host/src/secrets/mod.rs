//! Secrets: named values the operator sets (`aura secrets set NAME`), stored
//! in `_aura_secrets` sealed with XChaCha20-Poly1305 under the master key
//! (see [`keys`]), bound to their name and version so a value can't be
//! moved to another secret. Values are never logged, audited or answered
//! back; functions read them through `aura:platform/secrets`, only for the
//! names their `secrets` grant lists.

pub mod keys;

use crate::audit::AuditLog;
use crate::db::Database;
use crate::db::backend::{Arg, column_type, text_arg};
use crate::db::filter::Dialect;
use crate::db::schema::Storage;
use crate::db::values;
use keys::{Keyring, MasterKey, MasterKeyOptions, Source};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// Longest secret value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Why a secrets request failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A bad name or value.
    #[error("{0}")]
    Invalid(String),
    /// No such secret.
    #[error("no secret named `{0}`")]
    NotFound(String),
    /// The key can't be rotated from here.
    #[error("{0}")]
    Rotation(String),
    /// Anything else (never holds a value).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, Serialize)]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// 1, then one more at each change.
    pub version: u64,
    /// Created.
    pub created: String,
    /// Last set.
    pub updated: String,
}

/// The table, created with the other system tables.
pub fn tables(dialect: Dialect) -> Vec<String> {
    let number = column_type(dialect, Storage::Number);
    vec![format!(
        "CREATE TABLE IF NOT EXISTS _aura_secrets (name TEXT PRIMARY KEY, version {number} NOT NULL, key_id TEXT NOT NULL, \
         nonce TEXT NOT NULL, sealed TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL)"
    )]
}

/// Names look like environment variables: `STRIPE_KEY`.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(SecretError::Invalid(format!(
            "`{name}` is not a secret name: use A-Z, 0-9 and _, starting with a letter or _ (at most 128)"
        )))
    }
}

/// What a sealed value is bound to.
fn context(name: &str, version: u64) -> String {
    format!("aura-secret\n{name}\n{version}")
}

/// One stored row.
struct Row {
    name: String,
    version: u64,
    key_id: String,
    nonce: String,
    sealed: String,
}

/// The secrets service.
pub struct Secrets {
    db: Arc<Database>,
    audit: Arc<AuditLog>,
    keyring: RwLock<Keyring>,
    /// Sets take it shared, a rotation whole: no value is sealed under a
    /// key being retired.
    rotation: tokio::sync::RwLock<()>,
}

impl Secrets {
    /// Loads the master key, checks every stored secret is under a known
    /// key, and seals again those under an older one.
    pub async fn start(
        db: Arc<Database>,
        audit: Arc<AuditLog>,
        options: &MasterKeyOptions,
        data_dir: &Path,
    ) -> anyhow::Result<Arc<Self>> {
        let keyring = Keyring::load(options, data_dir)?;
        let secrets = Arc::new(Self {
            db,
            audit,
            keyring: RwLock::new(keyring),
            rotation: tokio::sync::RwLock::new(()),
        });
        secrets.settle().await?;
        Ok(secrets)
    }

    /// The master key values are sealed under now (backups are encrypted
    /// with it too).
    pub fn current_key(&self) -> keys::MasterKey {
        self.keyring().current.clone()
    }

    fn keyring(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.keyring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Finishes or undoes an interrupted rotation, refuses secrets under
    /// an unknown key, and seals older ones under the current key.
    async fn settle(&self) -> anyhow::Result<()> {
        let rows = self.rows(None).await?;
        {
            let mut keyring = self.keyring.write().unwrap_or_else(|e| e.into_inner());
            let file = match &keyring.source {
                Source::File(path) => Some(path.clone()),
                Source::Environment => None,
            };
            if let Some(path) = file
                && let Some(next) = keyring.previous.pop()
            {
                // A rotation wrote `.next`: it committed if secrets use it.
                if rows.iter().any(|row| row.key_id == next.id) {
                    std::fs::rename(keys::next_path(&path), &path)?;
                    keys::sync_dir(&path)?;
                    let old = std::mem::replace(&mut keyring.current, next);
                    keyring.previous.push(old);
                } else {
                    std::fs::remove_file(keys::next_path(&path))?;
                }
            }
        }
        let current = self.keyring().current.clone();
        if let Some(row) = rows
            .iter()
            .find(|row| self.keyring().key(&row.key_id).is_none())
        {
            anyhow::bail!(
                "secret `{}` is encrypted under master key {}, and this server has key {}: start it with the key the secrets were set under (AURA_MASTER_KEY or the key file), or with that key in AURA_MASTER_KEY_PREVIOUS during a rotation",
                row.name,
                row.key_id,
                current.id
            );
        }
        crate::cluster::check_master_key(self.db.backend(), &current.id, |id| {
            self.keyring().key(id).is_some()
        })
        .await?;
        let stale: Vec<&Row> = rows.iter().filter(|row| row.key_id != current.id).collect();
        if !stale.is_empty() {
            let count = self.reseal(&stale, &current).await?;
            tracing::info!(count, key = %current.id, "secrets sealed again under the current master key");
        }
        self.keyring
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .previous
            .clear();
        Ok(())
    }

    async fn rows(&self, name: Option<&str>) -> anyhow::Result<Vec<Row>> {
        let backend = self.db.backend();
        let mut select = backend.query();
        select.sql("SELECT name, version, key_id, nonce, sealed FROM _aura_secrets");
        if let Some(name) = name {
            select
                .sql(" WHERE name = ")
                .arg(text_arg(name), Storage::Text);
        }
        select.sql(" ORDER BY name");
        Ok(backend
            .fetch(
                &select,
                &[
                    Storage::Text,
                    Storage::Number,
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                ],
            )
            .await?
            .into_iter()
            .map(|row| {
                let text = |i: usize| row[i].as_str().unwrap_or_default().to_owned();
                Row {
                    name: text(0),
                    version: row[1].as_f64().map_or(0, |n| n as u64),
                    key_id: text(2),
                    nonce: text(3),
                    sealed: text(4),
                }
            })
            .collect())
    }

    /// Seals `rows` again under `key`, in one transaction.
    async fn reseal(&self, rows: &[&Row], key: &MasterKey) -> anyhow::Result<usize> {
        let backend = self.db.backend();
        let mut tx = backend.begin().await?;
        for row in rows {
            let context = context(&row.name, row.version);
            let old = self.keyring().key(&row.key_id).cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "secret `{}`: its master key {} is unknown",
                    row.name,
                    row.key_id
                )
            })?;
            let value = old.open(&context, &row.nonce, &row.sealed)?;
            let (nonce, sealed) = key.seal(&context, &value);
            let update = backend.statement(
                "UPDATE _aura_secrets SET key_id = ?, nonce = ?, sealed = ? WHERE name = ? AND version = ?",
                [
                    text_arg(&key.id),
                    Arg::Text(nonce),
                    Arg::Text(sealed),
                    text_arg(&row.name),
                    Arg::Number(row.version as f64),
                ],
            );
            anyhow::ensure!(
                tx.execute(&update).await? == 1,
                "secret `{}` changed during the rotation",
                row.name
            );
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// `GET /api/admin/secrets`: names and versions, never values.
    pub async fn list(&self) -> Result<Vec<SecretInfo>, SecretError> {
        let select = self.db.backend().statement(
            "SELECT name, version, created, updated FROM _aura_secrets ORDER BY name",
            [],
        );
        Ok(self
            .db
            .backend()
            .fetch(
                &select,
                &[Storage::Text, Storage::Number, Storage::Text, Storage::Text],
            )
            .await?
            .into_iter()
            .map(|row| {
                let text = |i: usize| row[i].as_str().unwrap_or_default().to_owned();
                SecretInfo {
                    name: text(0),
                    version: row[1].as_f64().map_or(0, |n| n as u64),
                    created: text(2),
                    updated: text(3),
                }
            })
            .collect())
    }

    /// `PUT /api/admin/secrets/{name}`: sets a value (a new version).
    pub async fn set(&self, name: &str, value: &str) -> Result<SecretInfo, SecretError> {
        check_name(name)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(SecretError::Invalid(format!(
                "a secret value is at most {MAX_VALUE_BYTES} bytes"
            )));
        }
        let _rotation = self.rotation.read().await;
        let backend = self.db.backend();
        let mut tx = backend.begin().await?;
        let mut select = backend.query();
        select
            .sql("SELECT version, created FROM _aura_secrets WHERE name = ")
            .arg(text_arg(name), Storage::Text);
        let existing = tx.fetch(&select, &[Storage::Number, Storage::Text]).await?;
        let now = values::now();
        let (version, created) = match existing.first() {
            Some(row) => (
                row[0].as_f64().map_or(0, |n| n as u64) + 1,
                row[1].as_str().unwrap_or_default().to_owned(),
            ),
            None => (1, now.clone()),
        };
        let key = self.keyring().current.clone();
        let (nonce, sealed) = key.seal(&context(name, version), value.as_bytes());
        let delete =
            backend.statement("DELETE FROM _aura_secrets WHERE name = ?", [text_arg(name)]);
        tx.execute(&delete).await.map_err(anyhow::Error::from)?;
        let insert = backend.statement(
            "INSERT INTO _aura_secrets (name, version, key_id, nonce, sealed, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                text_arg(name),
                Arg::Number(version as f64),
                text_arg(&key.id),
                Arg::Text(nonce),
                Arg::Text(sealed),
                text_arg(&created),
                text_arg(&now),
            ],
        );
        tx.execute(&insert).await.map_err(anyhow::Error::from)?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        self.audit.record(
            "secret_set",
            None,
            None,
            json!({ "name": name, "version": version }),
        );
        Ok(SecretInfo {
            name: name.to_owned(),
            version,
            created,
            updated: now,
        })
    }

    /// `DELETE /api/admin/secrets/{name}`.
    pub async fn unset(&self, name: &str) -> Result<(), SecretError> {
        let deleted = self
            .db
            .backend()
            .run("DELETE FROM _aura_secrets WHERE name = ?", [text_arg(name)])
            .await?;
        if deleted == 0 {
            return Err(SecretError::NotFound(name.to_owned()));
        }
        self.audit
            .record("secret_unset", None, None, json!({ "name": name }));
        Ok(())
    }

    /// A secret's value, for functions (their grant is checked by the
    /// caller).
    pub async fn get(&self, name: &str) -> Result<String, SecretError> {
        let row = self
            .rows(Some(name))
            .await?
            .pop()
            .ok_or_else(|| SecretError::NotFound(name.to_owned()))?;
        let key = self.keyring().key(&row.key_id).cloned().ok_or_else(|| {
            SecretError::Internal(anyhow::anyhow!(
                "secret `{name}` is under master key {}, which this node does not have (rotated on another node?)",
                row.key_id
            ))
        })?;
        let value = key.open(&context(&row.name, row.version), &row.nonce, &row.sealed)?;
        String::from_utf8(value)
            .map_err(|_| SecretError::Internal(anyhow::anyhow!("secret `{name}` is not UTF-8")))
    }

    /// `POST /api/admin/secrets/rotate-key`: a new key file, every secret
    /// sealed under it in one transaction. With the key from
    /// `AURA_MASTER_KEY`, rotation is a restart instead.
    pub async fn rotate_key(&self) -> Result<Value, SecretError> {
        let path = match &self.keyring().source {
            Source::File(path) => path.clone(),
            Source::Environment => {
                return Err(SecretError::Rotation(
                    "the master key comes from AURA_MASTER_KEY: to rotate it, restart with the old key in AURA_MASTER_KEY_PREVIOUS and a new one (32 random bytes, base64) in AURA_MASTER_KEY; secrets are sealed again at start".into(),
                ));
            }
        };
        let _rotation = self.rotation.write().await;
        let next = keys::next_path(&path);
        let key = keys::write_key_file(&next).map_err(|e| {
            SecretError::Rotation(format!(
                "{e:#} (a rotation under way, or one interrupted: restart to settle it)"
            ))
        })?;
        let rows = self.rows(None).await?;
        let all: Vec<&Row> = rows.iter().collect();
        let count = match self.reseal(&all, &key).await {
            Ok(count) => count,
            Err(err) => {
                let _ = std::fs::remove_file(&next);
                return Err(err.into());
            }
        };
        std::fs::rename(&next, &path).map_err(anyhow::Error::from)?;
        keys::sync_dir(&path)?;
        crate::cluster::register(self.db.backend(), crate::cluster::MASTER_KEY, &key.id).await?;
        let old = {
            let mut keyring = self.keyring.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut keyring.current, key.clone()).id
        };
        self.audit.record(
            "master_key_rotated",
            None,
            None,
            json!({ "from": old, "to": key.id, "secrets": count }),
        );
        Ok(json!({ "keyId": key.id, "resealed": count }))
    }
}
