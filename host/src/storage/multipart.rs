//! Multipart uploads: parts arrive as blobs of their own (any order, a part
//! sent again replaces the earlier one); completing joins the listed parts
//! into the object's blob, with S3's ETag (the MD5 of the parts' MD5s,
//! then `-N`).

use super::{
    MAX_PARTS, MIN_PART_BYTES, Object, ObjectHeaders, Part, PutOptions, Result, Storage,
    StorageError,
};
use crate::db::backend::{Arg, text_arg};
use crate::db::schema::Storage as Column;
use crate::db::values;
use bytes::Bytes;
use futures::Stream;
use md5::Digest as _;
use std::collections::BTreeMap;

/// An upload in progress.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Its id.
    pub id: String,
    /// The key the object will have.
    pub key: String,
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
    headers: ObjectHeaders,
}

impl Storage {
    /// Starts an upload of `key`, to be stored with the content type,
    /// metadata and headers of `described`.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        described: PutOptions,
    ) -> Result<String> {
        Self::check_key(key)?;
        self.bucket(bucket).await?;
        let id = hex::encode(rand::random::<[u8; 16]>());
        let insert = self.db.statement(
            "INSERT INTO _aura_uploads (id, bucket, key, content_type, metadata, created, headers) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                text_arg(&id),
                text_arg(bucket),
                text_arg(key),
                described
                    .content_type
                    .as_deref()
                    .map_or(Arg::NullOf(Column::Text), text_arg),
                text_arg(&serde_json::to_string(&described.metadata).map_err(anyhow::Error::from)?),
                text_arg(&values::now()),
                described.headers.to_arg(),
            ],
        );
        let mut tx = self.db.begin().await?;
        tx.execute(&insert).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The upload `id` of `bucket`/`key`.
    pub async fn upload(&self, bucket: &str, key: &str, id: &str) -> Result<Upload> {
        let select = self.db.statement(
            "SELECT key, content_type, metadata, headers FROM _aura_uploads WHERE id = ? AND bucket = ? AND key = ?",
            [text_arg(id), text_arg(bucket), text_arg(key)],
        );
        let row = self
            .db
            .fetch(&select, &[Column::Text; 4])
            .await?
            .pop()
            .ok_or_else(|| StorageError::NoSuchUpload(id.to_owned()))?;
        Ok(Upload {
            id: id.to_owned(),
            key: key.to_owned(),
            content_type: row[1].as_str().map(str::to_owned),
            metadata: row[2]
                .as_str()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default(),
            headers: ObjectHeaders::from_column(&row[3]),
        })
    }

    /// Stores part `number` of an upload; returns its ETag.
    pub async fn upload_part<S, E>(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        number: i32,
        body: S,
        content_md5: Option<[u8; 16]>,
    ) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(StorageError::InvalidPart(format!(
                "part numbers go from 1 to {MAX_PARTS}"
            )));
        }
        let found = self.bucket(bucket).await?;
        self.upload(bucket, key, id).await?;
        let written = self.blobs.write(body, self.limit(&found)).await?;
        if content_md5.is_some_and(|md5| md5 != written.md5) {
            self.blobs.remove(&written.id).await;
            return Err(StorageError::BadDigest);
        }
        let etag = hex::encode(written.md5);
        let mut tx = self.db.begin().await?;
        let previous = tx
            .fetch(
                &self.db.statement(
                    "SELECT blob FROM _aura_upload_parts WHERE upload_id = ? AND number = ?",
                    [text_arg(id), Arg::Number(number as f64)],
                ),
                &[Column::Text],
            )
            .await?
            .pop();
        tx.execute(&self.db.statement(
            "INSERT INTO _aura_upload_parts (upload_id, number, size, etag, modified, blob) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (upload_id, number) DO UPDATE SET size = excluded.size, etag = excluded.etag, modified = excluded.modified, blob = excluded.blob",
            [
                text_arg(id),
                Arg::Number(number as f64),
                super::number(written.size),
                text_arg(&etag),
                text_arg(&values::now()),
                text_arg(&written.id),
            ],
        ))
        .await?;
        tx.commit().await?;
        if let Some(blob) = previous.as_ref().and_then(|row| row[0].as_str()) {
            self.blobs.remove(blob).await;
        }
        Ok(etag)
    }

    /// The parts of an upload, by number.
    pub async fn parts(&self, bucket: &str, key: &str, id: &str) -> Result<Vec<Part>> {
        self.upload(bucket, key, id).await?;
        self.stored_parts(id).await
    }

    async fn stored_parts(&self, id: &str) -> Result<Vec<Part>> {
        let select = self.db.statement(
            "SELECT number, size, etag, modified, blob FROM _aura_upload_parts WHERE upload_id = ? ORDER BY number",
            [text_arg(id)],
        );
        Ok(self
            .db
            .fetch(
                &select,
                &[
                    Column::Number,
                    Column::Number,
                    Column::Text,
                    Column::Text,
                    Column::Text,
                ],
            )
            .await?
            .into_iter()
            .map(|row| Part {
                number: row[0].as_f64().unwrap_or(0.0) as i32,
                size: row[1].as_f64().unwrap_or(0.0) as u64,
                etag: row[2].as_str().unwrap_or_default().to_owned(),
                modified: row[3].as_str().unwrap_or_default().to_owned(),
                blob: row[4].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Completes an upload from the listed `(number, etag)` parts, in
    /// ascending order; the parts not listed are dropped.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        listed: &[(i32, String)],
    ) -> Result<Object> {
        let upload = self.upload(bucket, key, id).await?;
        let found = self.bucket(bucket).await?;
        if listed.is_empty() {
            return Err(StorageError::InvalidPart("list at least one part".into()));
        }
        if listed.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err(StorageError::InvalidPart(
                "list the parts in ascending order of number, each once".into(),
            ));
        }
        let stored = self.stored_parts(id).await?;
        let mut chosen = Vec::with_capacity(listed.len());
        for (i, (number, etag)) in listed.iter().enumerate() {
            let part = stored
                .iter()
                .find(|p| p.number == *number && super::etag_matches(etag, &p.etag))
                .ok_or_else(|| {
                    StorageError::InvalidPart(format!(
                        "part {number} with ETag {etag} was not uploaded"
                    ))
                })?;
            if i + 1 < listed.len() && part.size < MIN_PART_BYTES {
                return Err(StorageError::PartTooSmall);
            }
            chosen.push(part);
        }
        let size: u64 = chosen.iter().map(|p| p.size).sum();
        if size > self.limit(&found) {
            return Err(StorageError::TooLarge(self.limit(&found)));
        }
        let blobs: Vec<String> = chosen.iter().map(|p| p.blob.clone()).collect();
        let written = self.blobs.concat(&blobs).await?;
        let mut digests = md5::Md5::new();
        for part in &chosen {
            digests.update(hex::decode(&part.etag).map_err(anyhow::Error::from)?);
        }
        let object = Object {
            key: upload.key.clone(),
            size: written.size,
            etag: format!("{}-{}", hex::encode(digests.finalize()), chosen.len()),
            content_type: upload.content_type,
            metadata: upload.metadata,
            headers: upload.headers,
            modified: values::now(),
            owner: None,
            blob: written.id,
        };
        self.commit_object(bucket, &object, &PutOptions::default())
            .await?;
        self.forget_upload(id, &stored).await?;
        Ok(object)
    }

    /// Abandons an upload and its parts.
    pub async fn abort_upload(&self, bucket: &str, id: &str) -> Result<()> {
        let select = self.db.statement(
            "SELECT key FROM _aura_uploads WHERE id = ? AND bucket = ?",
            [text_arg(id), text_arg(bucket)],
        );
        if self.db.fetch(&select, &[Column::Text]).await?.is_empty() {
            return Err(StorageError::NoSuchUpload(id.to_owned()));
        }
        let stored = self.stored_parts(id).await?;
        self.forget_upload(id, &stored).await
    }

    async fn forget_upload(&self, id: &str, parts: &[Part]) -> Result<()> {
        let mut tx = self.db.begin().await?;
        for sql in [
            "DELETE FROM _aura_upload_parts WHERE upload_id = ?",
            "DELETE FROM _aura_uploads WHERE id = ?",
        ] {
            tx.execute(&self.db.statement(sql, [text_arg(id)])).await?;
        }
        tx.commit().await?;
        for part in parts {
            self.blobs.remove(&part.blob).await;
        }
        Ok(())
    }
}
