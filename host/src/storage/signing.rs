//! Aura-signed URLs: a link to one object for one method (GET downloads,
//! PUT uploads) until an expiry, HMAC-SHA256 under a secret every node
//! shares (kept in the database). The signer's rights are checked when the
//! link is made; whoever holds it acts with them until it expires.

use super::Storage;
use crate::db::backend::{Backend, text_arg};
use crate::db::schema::Storage as Column;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The longest a signed URL may live.
pub const MAX_EXPIRY_SECONDS: u64 = 7 * 24 * 60 * 60;

/// Reads the signing secret, creating it on first start.
pub(super) async fn load_secret(db: &Backend) -> anyhow::Result<Vec<u8>> {
    let fresh = hex::encode(rand::random::<[u8; 32]>());
    let mut tx = db.begin().await?;
    tx.execute(&db.statement(
        "INSERT INTO _aura_settings (name, value) VALUES ('storage_signing_key', ?) ON CONFLICT (name) DO NOTHING",
        [text_arg(&fresh)],
    ))
    .await?;
    tx.commit().await?;
    let select = db.statement(
        "SELECT value FROM _aura_settings WHERE name = 'storage_signing_key'",
        [],
    );
    let row = db
        .fetch(&select, &[Column::Text])
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("the storage signing key is missing"))?;
    Ok(hex::decode(row[0].as_str().unwrap_or_default())?)
}

/// What a signature covers.
#[derive(Debug, Clone)]
pub struct Signed<'a> {
    /// `GET` or `PUT`.
    pub method: &'a str,
    /// The bucket.
    pub bucket: &'a str,
    /// The key.
    pub key: &'a str,
    /// Unix seconds after which it is refused.
    pub expires: i64,
    /// The user it acts for (uploads record them as owner).
    pub owner: Option<&'a str>,
    /// What an upload may overwrite: `new` (nothing: the key must be free),
    /// an ETag (exactly that version, which the signer could update), or
    /// `*` (anything: a function's grant). Empty for downloads.
    pub condition: &'a str,
}

impl Signed<'_> {
    fn message(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.bucket,
            self.key,
            self.expires,
            self.owner.unwrap_or_default(),
            self.condition
        )
    }
}

impl Storage {
    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.signing).expect("HMAC takes any key length")
    }

    /// The hex signature of `signed`.
    pub fn sign(&self, signed: &Signed<'_>) -> String {
        let mut mac = self.mac();
        mac.update(signed.message().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is `signed`'s (compared in constant time) and has
    /// not expired.
    pub fn verify(&self, signed: &Signed<'_>, signature: &str) -> bool {
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        if signed.expires < chrono::Utc::now().timestamp() {
            return false;
        }
        let mut mac = self.mac();
        mac.update(signed.message().as_bytes());
        mac.verify_slice(&signature).is_ok()
    }
}
