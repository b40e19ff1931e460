//! S3 access keys: created by the admin, each scoped to buckets with read
//! or read-write access (`*` for every bucket, which with read-write also
//! creates and deletes buckets). The secret is shown once, at creation;
//! it is kept because SigV4 verification needs it (HMAC, not a hash).

use super::{Result, Storage, StorageError};
use crate::db::backend::text_arg;
use crate::db::schema::Storage as Column;
use crate::db::values;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a key may do in a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Get, head and list.
    Read,
    /// Also put, copy, delete and multipart.
    ReadWrite,
}

/// An access key (without its secret).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    /// The access key id.
    pub access_key: String,
    /// What it is for.
    pub description: String,
    /// Bucket (or `*`) to permission.
    pub buckets: BTreeMap<String, Permission>,
    /// When it was created.
    pub created: String,
}

impl AccessKey {
    /// Whether the key may read (or, with `write`, change) `bucket`.
    pub fn allows(&self, bucket: &str, write: bool) -> bool {
        [bucket, "*"].iter().any(|name| {
            self.buckets
                .get(*name)
                .is_some_and(|p| !write || *p == Permission::ReadWrite)
        })
    }

    /// Whether the key may create and delete buckets.
    pub fn manages_buckets(&self) -> bool {
        self.buckets.get("*") == Some(&Permission::ReadWrite)
    }
}

fn key_of(row: &[serde_json::Value]) -> AccessKey {
    AccessKey {
        access_key: row[0].as_str().unwrap_or_default().to_owned(),
        description: row[2].as_str().unwrap_or_default().to_owned(),
        buckets: row[1]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or_default(),
        created: row[3].as_str().unwrap_or_default().to_owned(),
    }
}

impl Storage {
    /// Creates a key; returns it and its secret.
    pub async fn create_key(
        &self,
        description: &str,
        buckets: BTreeMap<String, Permission>,
    ) -> Result<(AccessKey, String)> {
        if buckets.is_empty() {
            return Err(StorageError::InvalidName(
                "name at least one bucket (or `*`) the key may use".into(),
            ));
        }
        if let Some(problem) = buckets
            .keys()
            .filter(|b| b.as_str() != "*")
            .find_map(|b| super::names::bucket_problem(b))
        {
            return Err(StorageError::InvalidName(problem));
        }
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let access_key: String = std::iter::once("AK".to_owned())
            .chain(
                rand::random::<[u8; 18]>()
                    .iter()
                    .map(|b| (ALPHABET[(*b % 32) as usize] as char).to_string()),
            )
            .collect();
        let secret =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 30]>());
        let key = AccessKey {
            access_key,
            description: description.to_owned(),
            buckets,
            created: values::now(),
        };
        let insert = self.db.statement(
            "INSERT INTO _aura_s3_keys (access_key, secret, buckets, description, created) VALUES (?, ?, ?, ?, ?)",
            [
                text_arg(&key.access_key),
                text_arg(&secret),
                text_arg(&serde_json::to_string(&key.buckets).map_err(anyhow::Error::from)?),
                text_arg(&key.description),
                text_arg(&key.created),
            ],
        );
        let mut tx = self.db.begin().await?;
        tx.execute(&insert).await?;
        tx.commit().await?;
        Ok((key, secret))
    }

    /// Every key, oldest first.
    pub async fn keys(&self) -> Result<Vec<AccessKey>> {
        let select = self.db.statement(
            "SELECT access_key, buckets, description, created FROM _aura_s3_keys ORDER BY created, access_key",
            [],
        );
        Ok(self
            .db
            .fetch(&select, &[Column::Text; 4])
            .await?
            .iter()
            .map(|row| key_of(row))
            .collect())
    }

    /// A key and its secret.
    pub async fn key(&self, access_key: &str) -> Result<Option<(AccessKey, String)>> {
        let select = self.db.statement(
            "SELECT access_key, buckets, description, created, secret FROM _aura_s3_keys WHERE access_key = ?",
            [text_arg(access_key)],
        );
        Ok(self
            .db
            .fetch(&select, &[Column::Text; 5])
            .await?
            .pop()
            .map(|row| (key_of(&row), row[4].as_str().unwrap_or_default().to_owned())))
    }

    /// Deletes a key; false if there was none.
    pub async fn delete_key(&self, access_key: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let deleted = tx
            .execute(&self.db.statement(
                "DELETE FROM _aura_s3_keys WHERE access_key = ?",
                [text_arg(access_key)],
            ))
            .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_grant_what_they_name() {
        let key = |pairs: &[(&str, Permission)]| AccessKey {
            access_key: "AK".into(),
            description: String::new(),
            buckets: pairs.iter().map(|(b, p)| (b.to_string(), *p)).collect(),
            created: String::new(),
        };
        let reader = key(&[("avatars", Permission::Read)]);
        assert!(reader.allows("avatars", false));
        assert!(!reader.allows("avatars", true));
        assert!(!reader.allows("other", false));
        assert!(!reader.manages_buckets());
        let writer = key(&[("avatars", Permission::ReadWrite), ("*", Permission::Read)]);
        assert!(writer.allows("avatars", true));
        assert!(writer.allows("other", false));
        assert!(!writer.allows("other", true));
        assert!(key(&[("*", Permission::ReadWrite)]).manages_buckets());
    }
}
