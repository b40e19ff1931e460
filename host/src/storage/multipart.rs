//! Multipart uploads: parts arrive as blobs of their own (any order, a part
//! sent again replaces the earlier one); completing joins the listed parts
//! into the object's blob, with S3's ETag (the MD5 of the parts' MD5s,
//! then `-N`). A completed upload is remembered for a day, so that a
//! completion sent again (its answer lost) answers as the first did.

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
    /// When it was started.
    pub created: String,
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
            &format!(
                "SELECT {UPLOAD_COLUMNS} FROM _aura_uploads WHERE id = ? AND bucket = ? AND key = ?"
            ),
            [text_arg(id), text_arg(bucket), text_arg(key)],
        );
        let row = self
            .db
            .fetch(&select, &[Column::Text; 6])
            .await?
            .pop()
            .ok_or_else(|| StorageError::NoSuchUpload(id.to_owned()))?;
        Ok(upload_of(row))
    }

    /// The uploads in progress in `bucket` under `prefix`, by key, then
    /// by start.
    pub async fn uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<Upload>> {
        self.bucket(bucket).await?;
        let key = self.key_column();
        let select = self.db.statement(
            &format!("SELECT {UPLOAD_COLUMNS} FROM _aura_uploads WHERE bucket = ? AND substr(key, 1, length(?)) = ? ORDER BY {key}, created, id"),
            [text_arg(bucket), text_arg(prefix), text_arg(prefix)],
        );
        Ok(self
            .db
            .fetch(&select, &[Column::Text; 6])
            .await?
            .into_iter()
            .map(upload_of)
            .collect())
    }

    /// Stores part `number` of an upload from `length` bytes of `source`
    /// from `start` (UploadPartCopy); returns its ETag.
    pub async fn copy_part(
        &self,
        (bucket, key, id): (&str, &str, &str),
        number: i32,
        source: &Object,
        start: u64,
        length: u64,
    ) -> Result<String> {
        self.upload(bucket, key, id).await?;
        let bytes = self.read(source, start, length).await?;
        self.upload_part(bucket, key, id, number, bytes, None).await
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
    /// ascending order; the parts not listed are dropped. `conditions`
    /// (`If-Match`, `If-None-Match`) are held against the object the key
    /// has. An upload completed already answers the object it made, while
    /// the key still holds it.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        listed: &[(i32, String)],
        conditions: &PutOptions,
    ) -> Result<Object> {
        let upload = match self.upload(bucket, key, id).await {
            Err(StorageError::NoSuchUpload(_)) => {
                return match self.completed(bucket, key, id).await? {
                    Some(object) => Ok(object),
                    None => Err(StorageError::NoSuchUpload(id.to_owned())),
                };
            }
            other => other?,
        };
        let found = self.bucket(bucket).await?;
        self.check_preconditions(bucket, key, conditions).await?;
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
            parts: chosen.iter().map(|p| p.size).collect(),
            checksums: BTreeMap::new(),
            blob: written.id,
        };
        self.commit_object(bucket, &object, conditions).await?;
        self.forget_upload(id, &stored, Some((bucket, &object)))
            .await?;
        Ok(object)
    }

    /// The object upload `id` made, if it was completed in the last day and
    /// the key still holds what it made.
    async fn completed(&self, bucket: &str, key: &str, id: &str) -> Result<Option<Object>> {
        let select = self.db.statement(
            "SELECT etag FROM _aura_completed_uploads WHERE id = ? AND bucket = ? AND key = ?",
            [text_arg(id), text_arg(bucket), text_arg(key)],
        );
        let Some(row) = self.db.fetch(&select, &[Column::Text]).await?.pop() else {
            return Ok(None);
        };
        match self.head(bucket, key).await {
            Ok(object) if Some(object.etag.as_str()) == row[0].as_str() => Ok(Some(object)),
            Ok(_) | Err(StorageError::NoSuchKey(_)) => Ok(None),
            Err(other) => Err(other),
        }
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
        self.forget_upload(id, &stored, None).await
    }

    /// Removes an upload and its parts; `completed` (the bucket and the
    /// object it made) is remembered for a day.
    async fn forget_upload(
        &self,
        id: &str,
        parts: &[Part],
        completed: Option<(&str, &Object)>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        for sql in [
            "DELETE FROM _aura_upload_parts WHERE upload_id = ?",
            "DELETE FROM _aura_uploads WHERE id = ?",
        ] {
            tx.execute(&self.db.statement(sql, [text_arg(id)])).await?;
        }
        if let Some((bucket, object)) = completed {
            let a_day_ago = values::format_time(chrono::Utc::now() - chrono::TimeDelta::days(1));
            tx.execute(&self.db.statement(
                "DELETE FROM _aura_completed_uploads WHERE completed < ?",
                [text_arg(&a_day_ago)],
            ))
            .await?;
            tx.execute(&self.db.statement(
                "INSERT INTO _aura_completed_uploads (id, bucket, key, etag, completed) VALUES (?, ?, ?, ?, ?)",
                [
                    text_arg(id),
                    text_arg(bucket),
                    text_arg(&object.key),
                    text_arg(&object.etag),
                    text_arg(&object.modified),
                ],
            ))
            .await?;
        }
        tx.commit().await?;
        for part in parts {
            self.blobs.remove(&part.blob).await;
        }
        Ok(())
    }
}

const UPLOAD_COLUMNS: &str = "id, key, created, content_type, metadata, headers";

fn upload_of(row: Vec<serde_json::Value>) -> Upload {
    let text = |i: usize| row[i].as_str().unwrap_or_default().to_owned();
    Upload {
        id: text(0),
        key: text(1),
        created: text(2),
        content_type: row[3].as_str().map(str::to_owned),
        metadata: row[4]
            .as_str()
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default(),
        headers: ObjectHeaders::from_column(&row[5]),
    }
}
