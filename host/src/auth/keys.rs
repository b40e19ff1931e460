//! Signing keys of access tokens: rotation without signing anyone out.
//!
//! Keys live in `_aura_auth_keys`, shared by every node; the newest signs,
//! every stored key verifies (tokens carry their key's id in `kid`).
//! Rotating adds a key: new tokens use it, tokens signed before stay valid
//! until they expire (15 minutes) or their old key is retired. Nodes reload
//! the keys every [`RELOAD`] and whenever a token names a key they don't
//! know.

use super::{Auth, AuthError, sha256_hex};
use crate::db::backend::text_arg;
use crate::db::schema::Storage;
use crate::db::values;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How often every node reloads the signing keys.
pub const RELOAD: Duration = Duration::from_secs(30);

impl Auth {
    /// Stores a new signing key (the newest signs); returns its id.
    pub(super) async fn insert_key(&self) -> anyhow::Result<String> {
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let kid = sha256_hex(&secret)[..16].to_owned();
        let insert = self.db.backend().statement(
            "INSERT INTO _aura_auth_keys (kid, secret, created) VALUES (?, ?, ?)",
            [text_arg(&kid), text_arg(&secret), text_arg(&values::now())],
        );
        self.write(insert).await?;
        Ok(kid)
    }

    pub(super) fn reload_keys_periodically(self: &Arc<Self>) {
        let auth = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD).await;
                let Some(auth) = auth.upgrade() else {
                    return;
                };
                if let Err(err) = auth.load_keys().await {
                    tracing::warn!("reloading the signing keys: {err:#}");
                }
            }
        });
    }

    /// `GET /api/admin/auth/keys`: the keys (never their secrets), oldest
    /// first, and which one signs.
    pub async fn signing_keys(&self) -> Result<Vec<Value>, AuthError> {
        self.load_keys().await?;
        let active = self.keys.read().expect("keys lock").active.clone();
        let select = self.db.backend().statement(
            "SELECT kid, created FROM _aura_auth_keys ORDER BY created, kid",
            [],
        );
        Ok(self
            .db
            .backend()
            .fetch(&select, &[Storage::Text, Storage::Text])
            .await?
            .into_iter()
            .map(|row| json!({ "kid": row[0], "created": row[1], "active": row[0].as_str() == Some(active.as_str()) }))
            .collect())
    }

    /// `POST /api/admin/auth/keys`: a new key signs from now on.
    pub async fn rotate_key(&self) -> Result<String, AuthError> {
        let kid = self.insert_key().await?;
        self.load_keys().await?;
        self.audit
            .record("signing_key_rotated", None, None, json!({ "kid": kid }));
        Ok(kid)
    }

    /// `DELETE /api/admin/auth/keys/{kid}`: tokens signed with the key stop
    /// working. The signing key can't be retired (rotate first).
    pub async fn retire_key(&self, kid: &str) -> Result<(), AuthError> {
        self.load_keys().await?;
        if self.keys.read().expect("keys lock").active == kid {
            return Err(AuthError::Invalid(
                "this key signs new tokens: rotate first, then retire it".into(),
            ));
        }
        let delete = self
            .db
            .backend()
            .statement("DELETE FROM _aura_auth_keys WHERE kid = ?", [text_arg(kid)]);
        if self.write(delete).await? == 0 {
            return Err(AuthError::NotFound(format!("no signing key `{kid}`")));
        }
        self.load_keys().await?;
        self.audit
            .record("signing_key_retired", None, None, json!({ "kid": kid }));
        Ok(())
    }
}
