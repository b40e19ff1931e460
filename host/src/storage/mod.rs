//! Object storage: buckets of objects, their bytes in the local blob store
//! and their metadata (key, size, ETag, content type, user metadata) in the
//! database beside the collections. The S3 API (`s3`) is one door to it.
//!
//! - Keys are checked (`names`) and never touch the filesystem.
//! - A write lands in a new blob first; the metadata row then points at it
//!   in one statement, and the blob it replaced is removed after: readers
//!   see the old object or the new one, never a mix.
//! - Multipart uploads keep their parts as blobs until completed.

pub mod access;
mod blobs;
pub mod headers;
pub mod names;
pub mod payload;
pub mod remote;
pub mod rules;
pub mod s3;
pub mod signing;

use crate::db::backend::{Arg, Backend, text_arg};
use crate::db::filter::Dialect;
use crate::db::schema::Storage as Column;
use crate::db::{Database, values};
use blobs::{Blobs, WriteError};
pub use blobs::{ByteStream, READ_CHUNK};
use bytes::Bytes;
use futures::Stream;
pub use headers::ObjectHeaders;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The largest object by default (per bucket it may be lower).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Multipart parts but the last must be at least this large (S3's rule).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// The most parts an upload may have.
pub const MAX_PARTS: i32 = 10_000;
/// Blob files older than this that no object names are removed at start.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket does not exist.
    #[error("no bucket `{0}`")]
    NoSuchBucket(String),
    /// The object does not exist.
    #[error("no object `{0}`")]
    NoSuchKey(String),
    /// The bucket exists already.
    #[error("a bucket `{0}` exists")]
    BucketExists(String),
    /// The bucket still holds objects.
    #[error("bucket `{0}` is not empty")]
    BucketNotEmpty(String),
    /// A bucket name or key that is refused, and why.
    #[error("{0}")]
    InvalidName(String),
    /// Bucket rules that do not parse or name unknown fields: what is
    /// wrong with each, by rule (`listRule`…).
    #[error("{}", .0.iter().map(|(rule, problem)| format!("{rule}: {problem}")).collect::<Vec<_>>().join("; "))]
    InvalidRule(std::collections::BTreeMap<String, String>),
    /// The object is over the limit.
    #[error("the object is larger than this bucket's limit of {0} bytes")]
    TooLarge(u64),
    /// The body does not match its Content-MD5.
    #[error("the body does not match its Content-MD5")]
    BadDigest,
    /// An If-Match or If-None-Match condition failed.
    #[error("a precondition (If-Match, If-None-Match…) failed")]
    PreconditionFailed,
    /// The multipart upload does not exist.
    #[error("no upload `{0}`")]
    NoSuchUpload(String),
    /// A part list that does not match the uploaded parts.
    #[error("{0}")]
    InvalidPart(String),
    /// A part but the last is under the minimum.
    #[error("every part but the last must be at least {MIN_PART_BYTES} bytes")]
    PartTooSmall,
    /// The body stream failed.
    #[error("reading the body: {0}")]
    Body(String),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<WriteError> for StorageError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::TooLarge(limit) => StorageError::TooLarge(limit),
            WriteError::Body(why) => StorageError::Body(why),
            WriteError::Io(err) => StorageError::Internal(err.into()),
            WriteError::Remote(err) => StorageError::Internal(err),
        }
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        StorageError::Internal(err.into())
    }
}

type Result<T> = std::result::Result<T, StorageError>;

/// A bucket's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSettings {
    /// The largest object (below the server's limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_object_bytes: Option<u64>,
    /// Serve active content (HTML, SVG, JavaScript) inline; otherwise it is
    /// downloaded as an attachment.
    #[serde(default)]
    pub website: bool,
    /// Who may list objects over REST (absent: admins only; `""`:
    /// everyone; otherwise a rule over `key`, `size`, `content_type`,
    /// `owner` and `@request.auth.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_rule: Option<String>,
    /// Who may download an object over REST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_rule: Option<String>,
    /// Who may upload a new object over REST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_rule: Option<String>,
    /// Who may replace an object over REST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_rule: Option<String>,
    /// Who may delete an object over REST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_rule: Option<String>,
}

/// A bucket.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created: String,
    /// Its settings.
    pub settings: BucketSettings,
}

/// An object's metadata.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    /// The key.
    pub key: String,
    /// Length in bytes.
    pub size: u64,
    /// The ETag (hex MD5, or `md5-of-parts-N` for multipart), unquoted.
    pub etag: String,
    /// The content type, as stored.
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: BTreeMap<String, String>,
    /// The standard headers it is served with.
    #[serde(skip_serializing_if = "is_default")]
    pub headers: ObjectHeaders,
    /// Last modified.
    pub modified: String,
    /// The user who uploaded it over REST (none for S3 and admin uploads).
    pub owner: Option<String>,
    /// The sizes of the parts it was uploaded in (none unless multipart).
    #[serde(skip)]
    pub parts: Vec<u64>,
    /// Checksums of its bytes, by algorithm (`CRC32`…, base64), those the
    /// upload sent and had verified.
    #[serde(skip)]
    pub checksums: BTreeMap<String, String>,
    #[serde(skip)]
    blob: String,
}

/// What a write carries besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// The content type.
    pub content_type: Option<String>,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// The standard headers to serve it with.
    pub headers: ObjectHeaders,
    /// The MD5 the client says the body has.
    pub content_md5: Option<[u8; 16]>,
    /// Only if no object has the key (`If-None-Match: *`).
    pub if_none_match: bool,
    /// Only if the current object has this ETag (`If-Match`).
    pub if_match: Option<String>,
    /// The uploading user.
    pub owner: Option<String>,
    /// Checksums of the body, filled in by whoever verifies them by the
    /// time the body has ended; stored with the object.
    pub checksums: Checksums,
}

/// Checksums by algorithm, known once a body has been read.
pub type Checksums = Arc<std::sync::Mutex<BTreeMap<String, String>>>;

impl PutOptions {
    /// Holds the write's conditions against the current object's ETag
    /// (`None`: no object has `key`). As in S3, `If-Match` on a key that
    /// holds nothing is `NoSuchKey`.
    fn check(&self, key: &str, current: Option<&str>) -> Result<()> {
        match (current, &self.if_match) {
            (Some(_), _) if self.if_none_match => Err(StorageError::PreconditionFailed),
            (None, Some(_)) => Err(StorageError::NoSuchKey(key.to_owned())),
            (Some(etag), Some(condition)) if !etag_matches(condition, etag) => {
                Err(StorageError::PreconditionFailed)
            }
            _ => Ok(()),
        }
    }
}

/// A page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Objects, by key.
    pub objects: Vec<Object>,
    /// Common prefixes (up to and including the delimiter).
    pub prefixes: Vec<String>,
    /// Where the next page starts (after this key or prefix), if any.
    pub next: Option<String>,
}

/// A part of a multipart upload.
#[derive(Debug, Clone)]
pub struct Part {
    /// Its number, 1 to 10,000.
    pub number: i32,
    /// Its length.
    pub size: u64,
    /// Its ETag (hex MD5).
    pub etag: String,
    /// When it was uploaded.
    pub modified: String,
    blob: String,
}

/// The storage service.
pub struct Storage {
    records: Arc<Database>,
    db: Backend,
    blobs: Blobs,
    max_object_bytes: u64,
    /// The key of Aura-signed URLs.
    signing: Vec<u8>,
}

const OBJECT_COLUMNS: &str =
    "key, size, etag, content_type, metadata, modified, blob, owner, headers, parts, checksums";
/// How each of [`OBJECT_COLUMNS`] decodes: the size is a number, the
/// rest text.
const OBJECT_STORAGE: [Column; 11] = {
    let mut storage = [Column::Text; 11];
    storage[1] = Column::Number;
    storage
};

fn object_of(row: Vec<Value>) -> Object {
    let text = |i: usize| row[i].as_str().unwrap_or_default().to_owned();
    Object {
        key: text(0),
        size: row[1].as_f64().unwrap_or(0.0) as u64,
        etag: text(2),
        content_type: row[3].as_str().map(str::to_owned),
        metadata: row[4]
            .as_str()
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default(),
        modified: text(5),
        blob: text(6),
        owner: row[7].as_str().map(str::to_owned),
        headers: ObjectHeaders::from_column(&row[8]),
        parts: row[9]
            .as_str()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default(),
        checksums: row[10]
            .as_str()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default(),
    }
}

/// Columns later versions added to the storage tables.
const ADDED_COLUMNS: [(&str, &str, &str); 4] = [
    ("_aura_objects", "headers", "TEXT"),
    ("_aura_uploads", "headers", "TEXT"),
    // The part sizes of a multipart object, a JSON array.
    ("_aura_objects", "parts", "TEXT"),
    // The verified checksums, a JSON object by algorithm.
    ("_aura_objects", "checksums", "TEXT"),
];

/// `value` as JSON text, or NULL when `none`.
fn json_column<T: Serialize>(value: &T, none: bool) -> Result<Arg> {
    if none {
        return Ok(Arg::NullOf(Column::Text));
    }
    Ok(text_arg(
        &serde_json::to_string(value).map_err(anyhow::Error::from)?,
    ))
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    value == &T::default()
}

fn number(value: u64) -> Arg {
    Arg::Number(value as f64)
}

/// Where environment `environment` keeps object bytes, from
/// `--storage-url`: under `own` (its directory) when none is given; in
/// the directory of a `file://` URL (a filesystem every node mounts); or in
/// the bucket of an `s3+https://` URL (with temporary files under `own`).
pub fn place(
    url: Option<&str>,
    own: &Path,
    environment: &str,
) -> anyhow::Result<(std::path::PathBuf, Option<remote::Remote>)> {
    match url {
        None => Ok((own.to_owned(), None)),
        Some(url) if url.starts_with("file:") => {
            let path = url::Url::parse(url)
                .ok()
                .and_then(|url| url.to_file_path().ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("the storage URL `{url}` names no absolute path: file:///path")
                })?;
            Ok(match environment {
                crate::environments::DEFAULT => path,
                other => path.join("envs").join(other),
            })
            .map(|path| (path, None))
        }
        Some(url) => Ok((own.to_owned(), Some(remote::Remote::from_url(url)?))),
    }
}

impl Storage {
    /// Opens the store: metadata tables beside the collections of
    /// `records`, bytes under `root`.
    pub async fn open(
        records: Arc<Database>,
        root: &Path,
        node: &str,
        max_object_bytes: u64,
        remote: Option<remote::Remote>,
        durability: crate::db::Durability,
    ) -> anyhow::Result<Arc<Self>> {
        if let Some(remote) = &remote {
            remote.check().await?;
        }
        let db = records.backend().clone();
        let real = match db.dialect() {
            Dialect::Sqlite => "REAL",
            Dialect::Postgres => "DOUBLE PRECISION",
        };
        let mut tx = db.begin_schema_change().await?;
        for statement in [
            "CREATE TABLE IF NOT EXISTS _aura_buckets (name TEXT PRIMARY KEY, created TEXT NOT NULL, settings TEXT NOT NULL)".to_owned(),
            format!("CREATE TABLE IF NOT EXISTS _aura_objects (bucket TEXT NOT NULL, key TEXT NOT NULL, size {real} NOT NULL, etag TEXT NOT NULL, content_type TEXT, metadata TEXT NOT NULL, modified TEXT NOT NULL, blob TEXT NOT NULL, owner TEXT, PRIMARY KEY (bucket, key))"),
            "CREATE TABLE IF NOT EXISTS _aura_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)".to_owned(),
            "CREATE TABLE IF NOT EXISTS _aura_uploads (id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, content_type TEXT, metadata TEXT NOT NULL, created TEXT NOT NULL)".to_owned(),
            "CREATE TABLE IF NOT EXISTS _aura_s3_keys (access_key TEXT PRIMARY KEY, secret TEXT NOT NULL, buckets TEXT NOT NULL, description TEXT NOT NULL, created TEXT NOT NULL)".to_owned(),
            // Uploads completed in the last day, so that a completion sent
            // again (its answer was lost) answers as the first did.
            "CREATE TABLE IF NOT EXISTS _aura_completed_uploads (id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL, completed TEXT NOT NULL)".to_owned(),
            format!("CREATE TABLE IF NOT EXISTS _aura_upload_parts (upload_id TEXT NOT NULL, number {real} NOT NULL, size {real} NOT NULL, etag TEXT NOT NULL, modified TEXT NOT NULL, blob TEXT NOT NULL, PRIMARY KEY (upload_id, number))"),
        ] {
            let mut query = db.query();
            query.sql(&statement);
            tx.execute(&query).await?;
        }
        crate::db::backend::add_columns(&db, &mut tx, &ADDED_COLUMNS).await?;
        tx.commit().await?;
        let signing = signing::load_secret(&db).await?;
        let blobs = Blobs::open(root, node, remote, durability)?;
        crate::cluster::check_object_store(&db, &blobs.identity()?).await?;
        let storage = Arc::new(Self {
            records,
            signing,
            db,
            blobs,
            max_object_bytes,
        });
        let sweeping = storage.clone();
        tokio::spawn(async move {
            match sweeping
                .sweep(std::time::SystemTime::now() - ORPHAN_AGE)
                .await
            {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed blob files no object names"),
                Err(err) => tracing::warn!("sweeping orphaned blobs: {err:#}"),
            }
        });
        Ok(storage)
    }

    /// Removes the blob files older than `before` that no object or
    /// upload part names: what a crash between writing a blob and
    /// recording its object leaves. (The age keeps writes in flight, on
    /// this node or another sharing the directory, out of it.) Answers how
    /// many went.
    pub async fn sweep(&self, before: std::time::SystemTime) -> anyhow::Result<usize> {
        let candidates = self.blobs.older_than(before).await?;
        if candidates.is_empty() {
            return Ok(0);
        }
        let named: std::collections::HashSet<String> = self
            .db
            .rows(
                "SELECT blob FROM _aura_objects UNION SELECT blob FROM _aura_upload_parts",
                [],
                &[Column::Text],
            )
            .await?
            .into_iter()
            .filter_map(|row| row.into_iter().next()?.as_str().map(str::to_owned))
            .collect();
        let mut removed = 0;
        for id in candidates.iter().filter(|id| !named.contains(*id)) {
            self.blobs.remove(id).await;
            removed += 1;
        }
        Ok(removed)
    }

    /// The key compared in byte order on both backends (S3 lists in UTF-8
    /// binary order; PostgreSQL would otherwise use the locale's).
    fn key_column(&self) -> &'static str {
        match self.db.dialect() {
            Dialect::Sqlite => "key",
            Dialect::Postgres => "key COLLATE \"C\"",
        }
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, name: &str, settings: BucketSettings) -> Result<Bucket> {
        if let Some(problem) = names::bucket_problem(name) {
            return Err(StorageError::InvalidName(problem));
        }
        self.check_rules(&settings)?;
        let created = values::now();
        let insert = self.db.statement(
            "INSERT INTO _aura_buckets (name, created, settings) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
            [
                text_arg(name),
                text_arg(&created),
                text_arg(&serde_json::to_string(&settings).map_err(anyhow::Error::from)?),
            ],
        );
        let mut tx = self.db.begin().await?;
        let inserted = tx.execute(&insert).await?;
        tx.commit().await?;
        if inserted == 0 {
            return Err(StorageError::BucketExists(name.to_owned()));
        }
        Ok(Bucket {
            name: name.to_owned(),
            created,
            settings,
        })
    }

    /// Changes a bucket's settings.
    pub async fn configure_bucket(&self, name: &str, settings: BucketSettings) -> Result<Bucket> {
        self.check_rules(&settings)?;
        let update = self.db.statement(
            "UPDATE _aura_buckets SET settings = ? WHERE name = ?",
            [
                text_arg(&serde_json::to_string(&settings).map_err(anyhow::Error::from)?),
                text_arg(name),
            ],
        );
        let mut tx = self.db.begin().await?;
        let updated = tx.execute(&update).await?;
        tx.commit().await?;
        if updated == 0 {
            return Err(StorageError::NoSuchBucket(name.to_owned()));
        }
        self.bucket(name).await
    }

    /// Every bucket, by name.
    pub async fn buckets(&self) -> Result<Vec<Bucket>> {
        let select = self.db.statement(
            "SELECT name, created, settings FROM _aura_buckets ORDER BY name",
            [],
        );
        Ok(self
            .db
            .fetch(&select, &[Column::Text; 3])
            .await?
            .into_iter()
            .map(|row| Bucket {
                name: row[0].as_str().unwrap_or_default().to_owned(),
                created: row[1].as_str().unwrap_or_default().to_owned(),
                settings: row[2]
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// One bucket.
    pub async fn bucket(&self, name: &str) -> Result<Bucket> {
        let select = self.db.statement(
            "SELECT name, created, settings FROM _aura_buckets WHERE name = ?",
            [text_arg(name)],
        );
        let row = self
            .db
            .fetch(&select, &[Column::Text; 3])
            .await?
            .pop()
            .ok_or_else(|| StorageError::NoSuchBucket(name.to_owned()))?;
        Ok(Bucket {
            name: name.to_owned(),
            created: row[1].as_str().unwrap_or_default().to_owned(),
            settings: row[2]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
        })
    }

    /// The local blob directory, with blob removals held off while the
    /// guard lives (for a backup); `None` with a remote store.
    pub async fn hold_blobs(
        &self,
    ) -> Option<(std::path::PathBuf, tokio::sync::RwLockWriteGuard<'_, ()>)> {
        self.blobs.hold().await
    }

    /// Deletes an empty bucket.
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        self.bucket(name).await?;
        let mut tx = self.db.begin().await?;
        let count = tx
            .count(&self.db.statement(
                "SELECT COUNT(*) FROM _aura_objects WHERE bucket = ?",
                [text_arg(name)],
            ))
            .await?;
        if count > 0 {
            return Err(StorageError::BucketNotEmpty(name.to_owned()));
        }
        tx.execute(
            &self
                .db
                .statement("DELETE FROM _aura_buckets WHERE name = ?", [text_arg(name)]),
        )
        .await?;
        tx.commit().await?;
        let uploads = self.db.statement(
            "SELECT id FROM _aura_uploads WHERE bucket = ?",
            [text_arg(name)],
        );
        for row in self.db.fetch(&uploads, &[Column::Text]).await? {
            if let Some(id) = row[0].as_str() {
                let _ = self.abort_upload(name, id).await;
            }
        }
        Ok(())
    }

    fn check_key(key: &str) -> Result<()> {
        match names::key_problem(key) {
            Some(problem) => Err(StorageError::InvalidName(problem)),
            None => Ok(()),
        }
    }

    /// The largest object `bucket` takes.
    fn limit(&self, bucket: &Bucket) -> u64 {
        bucket
            .settings
            .max_object_bytes
            .map_or(self.max_object_bytes, |limit| {
                limit.min(self.max_object_bytes)
            })
    }

    /// An object's metadata.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Object> {
        let select = self.db.statement(
            &format!("SELECT {OBJECT_COLUMNS} FROM _aura_objects WHERE bucket = ? AND key = ?"),
            [text_arg(bucket), text_arg(key)],
        );
        match self.db.fetch(&select, &OBJECT_STORAGE).await?.pop() {
            Some(row) => Ok(object_of(row)),
            None => {
                self.bucket(bucket).await?;
                Err(StorageError::NoSuchKey(key.to_owned()))
            }
        }
    }

    /// The `length` bytes of an object from `start`, as a stream.
    pub async fn read(&self, object: &Object, start: u64, length: u64) -> Result<ByteStream> {
        self.blobs
            .read(&object.blob, start, length)
            .await
            .map_err(|err| match err.kind() {
                // Replaced between reading the metadata and opening.
                std::io::ErrorKind::NotFound => StorageError::NoSuchKey(object.key.clone()),
                _ => StorageError::Internal(err.into()),
            })
    }

    /// Stores an object from a stream of bytes.
    pub async fn put<S, E>(
        &self,
        bucket: &str,
        key: &str,
        body: S,
        options: PutOptions,
    ) -> Result<Object>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        Self::check_key(key)?;
        let found = self.bucket(bucket).await?;
        self.check_preconditions(bucket, key, &options).await?;
        let written = self.blobs.write(body, self.limit(&found)).await?;
        if options.content_md5.is_some_and(|md5| md5 != written.md5) {
            self.blobs.remove(&written.id).await;
            return Err(StorageError::BadDigest);
        }
        let object = Object {
            key: key.to_owned(),
            size: written.size,
            etag: hex::encode(written.md5),
            content_type: options.content_type.clone(),
            metadata: options.metadata.clone(),
            headers: options.headers.clone(),
            modified: values::now(),
            owner: options.owner.clone(),
            parts: Vec::new(),
            checksums: options.checksums.lock().expect("checksums").clone(),
            blob: written.id,
        };
        self.commit_object(bucket, &object, &options).await?;
        Ok(object)
    }

    async fn check_preconditions(
        &self,
        bucket: &str,
        key: &str,
        options: &PutOptions,
    ) -> Result<()> {
        if !options.if_none_match && options.if_match.is_none() {
            return Ok(());
        }
        let current = match self.head(bucket, key).await {
            Ok(object) => Some(object),
            Err(StorageError::NoSuchKey(_)) => None,
            Err(other) => return Err(other),
        };
        options.check(key, current.as_ref().map(|o| o.etag.as_str()))
    }

    /// Points `bucket`/`object.key` at the new blob; removes the blob it
    /// replaced. Preconditions are checked again in the transaction.
    async fn commit_object(
        &self,
        bucket: &str,
        object: &Object,
        options: &PutOptions,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let previous = tx
            .fetch(
                &self.db.statement(
                    "SELECT etag, blob FROM _aura_objects WHERE bucket = ? AND key = ?",
                    [text_arg(bucket), text_arg(&object.key)],
                ),
                &[Column::Text, Column::Text],
            )
            .await?
            .pop();
        let current = previous
            .as_ref()
            .map(|row| row[0].as_str().unwrap_or_default());
        if let Err(failed) = options.check(&object.key, current) {
            drop(tx);
            self.blobs.remove(&object.blob).await;
            return Err(failed);
        }
        tx.execute(&self.db.statement(
            "INSERT INTO _aura_objects (bucket, key, size, etag, content_type, metadata, modified, blob, owner, headers, parts, checksums) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (bucket, key) DO UPDATE SET size = excluded.size, etag = excluded.etag, content_type = excluded.content_type, \
             metadata = excluded.metadata, modified = excluded.modified, blob = excluded.blob, owner = excluded.owner, headers = excluded.headers, \
             parts = excluded.parts, checksums = excluded.checksums",
            [
                text_arg(bucket),
                text_arg(&object.key),
                number(object.size),
                text_arg(&object.etag),
                object
                    .content_type
                    .as_deref()
                    .map_or(Arg::NullOf(Column::Text), text_arg),
                text_arg(&serde_json::to_string(&object.metadata).map_err(anyhow::Error::from)?),
                text_arg(&object.modified),
                text_arg(&object.blob),
                object
                    .owner
                    .as_deref()
                    .map_or(Arg::NullOf(Column::Text), text_arg),
                object.headers.to_arg(),
                json_column(&object.parts, object.parts.is_empty())?,
                json_column(&object.checksums, object.checksums.is_empty())?,
            ],
        ))
        .await?;
        tx.commit().await?;
        if let Some(blob) = previous.as_ref().and_then(|row| row[1].as_str()) {
            self.blobs.remove(blob).await;
        }
        Ok(())
    }

    /// Deletes an object (a missing one is not an error, as in S3).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.bucket(bucket).await?;
        let mut tx = self.db.begin().await?;
        let previous = tx
            .fetch(
                &self.db.statement(
                    "SELECT blob FROM _aura_objects WHERE bucket = ? AND key = ?",
                    [text_arg(bucket), text_arg(key)],
                ),
                &[Column::Text],
            )
            .await?
            .pop();
        tx.execute(&self.db.statement(
            "DELETE FROM _aura_objects WHERE bucket = ? AND key = ?",
            [text_arg(bucket), text_arg(key)],
        ))
        .await?;
        tx.commit().await?;
        if let Some(blob) = previous.as_ref().and_then(|row| row[0].as_str()) {
            self.blobs.remove(blob).await;
        }
        Ok(())
    }

    /// Copies an object; `replace` gives a new content type, headers and
    /// metadata (otherwise the source's are kept).
    pub async fn copy(
        &self,
        from: (&str, &str),
        to: (&str, &str),
        replace: Option<PutOptions>,
    ) -> Result<Object> {
        Self::check_key(to.1)?;
        let destination = self.bucket(to.0).await?;
        let source = self.head(from.0, from.1).await?;
        if source.size > self.limit(&destination) {
            return Err(StorageError::TooLarge(self.limit(&destination)));
        }
        let written = self.blobs.copy(&source.blob).await?;
        let (content_type, headers, metadata) = match replace {
            Some(given) => (given.content_type, given.headers, given.metadata),
            None => (source.content_type, source.headers, source.metadata),
        };
        let object = Object {
            key: to.1.to_owned(),
            size: written.size,
            etag: source.etag,
            content_type,
            metadata,
            headers,
            modified: values::now(),
            owner: source.owner,
            parts: source.parts,
            checksums: source.checksums,
            blob: written.id,
        };
        self.commit_object(to.0, &object, &PutOptions::default())
            .await?;
        Ok(object)
    }

    /// Lists objects under `prefix` in key order, after the cursor `after`
    /// (a key, or a page's `next`), rolling keys up to `delimiter` into
    /// common prefixes; at most `max` entries.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> Result<Listing> {
        const BATCH: usize = 1000;
        self.bucket(bucket).await?;
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let mut listing = Listing::default();
        let mut cursor = after.unwrap_or_default().to_owned();
        loop {
            let key = self.key_column();
            let select = self.db.statement(
                &format!("SELECT {OBJECT_COLUMNS} FROM _aura_objects WHERE bucket = ? AND {key} > ? AND substr(key, 1, length(?)) = ? ORDER BY {key} LIMIT ?"),
                [
                    text_arg(bucket),
                    text_arg(&cursor),
                    text_arg(prefix),
                    text_arg(prefix),
                    Arg::Int(BATCH as i64),
                ],
            );
            let rows = self.db.fetch(&select, &OBJECT_STORAGE).await?;
            let full = rows.len() == BATCH;
            let mut rolled_up = false;
            for row in rows {
                let object = object_of(row);
                if object.key <= cursor {
                    continue;
                }
                if listing.objects.len() + listing.prefixes.len() == max {
                    listing.next = Some(cursor);
                    return Ok(listing);
                }
                let rest = &object.key[prefix.len()..];
                if let Some(end) = delimiter.and_then(|d| rest.find(d).map(|at| at + d.len())) {
                    let common = format!("{prefix}{}", &rest[..end]);
                    // Past every key under the common prefix.
                    cursor = format!("{common}\u{10FFFF}");
                    listing.prefixes.push(common);
                    rolled_up = true;
                    break;
                }
                cursor.clone_from(&object.key);
                listing.objects.push(object);
            }
            if !rolled_up && !full {
                return Ok(listing);
            }
        }
    }
}

/// Percent-encodes a key for a URL path, keeping its `/`.
pub fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether an object of `content_type` may be shown inline by a browser
/// on Aura's origin. Only well-formed types of an allow-list qualify
/// (images other than SVG, audio, video, plain text, CSV, JSON); anything
/// else, including types a browser parses differently than a server
/// (`text/plain;,text/html`, a second type after a comma, stray bytes), is
/// downloaded as an attachment unless the bucket is a website.
pub fn inline_safe(content_type: Option<&str>) -> bool {
    let Some(essence) = content_type.and_then(media_essence) else {
        return false;
    };
    let (kind, subtype) = essence.split_once('/').unwrap_or_default();
    match kind {
        "image" => !subtype.contains("svg") && !subtype.contains("xml"),
        "audio" | "video" => !subtype.contains("xml"),
        "text" => matches!(subtype, "plain" | "csv"),
        "application" => subtype == "json",
        _ => false,
    }
}

/// The lower-case `type/subtype` of a well-formed media type (RFC 9110:
/// tokens, then `; name=value` parameters, values tokens or quoted
/// strings), or `None`.
fn media_essence(value: &str) -> Option<String> {
    fn token(text: &str) -> bool {
        !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }
    let blank = |c: char| c == ' ' || c == '\t';
    let mut parts = value.split(';');
    let essence = parts.next()?.trim_matches(blank);
    let (kind, subtype) = essence.split_once('/')?;
    if !token(kind) || !token(subtype) {
        return None;
    }
    for parameter in parts {
        let (name, value) = parameter.trim_matches(blank).split_once('=')?;
        let quoted = value.len() >= 2
            && value.starts_with('"')
            && value.ends_with('"')
            && value[1..value.len() - 1]
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        if !token(name) || !(token(value) || quoted) {
            return None;
        }
    }
    Some(essence.to_ascii_lowercase())
}

/// The `Content-Security-Policy` of every object served from a bucket that
/// is not a website: nothing in it runs, even if a browser renders it.
pub const OBJECT_CSP: &str = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox";

/// Whether an `If-Match`/`If-None-Match` value names `etag` (`*` names any).
pub fn etag_matches(condition: &str, etag: &str) -> bool {
    condition
        .split(',')
        .map(|c| c.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|c| c == "*" || c == etag)
}

mod multipart;

#[cfg(test)]
mod tests {
    use super::inline_safe;

    #[test]
    fn only_well_formed_types_of_the_allow_list_are_inline() {
        for inline in [
            "image/png",
            "IMAGE/JPEG",
            "text/plain; charset=utf-8",
            "text/plain;charset=\"utf-8\"",
            "video/mp4",
            "application/json",
        ] {
            assert!(inline_safe(Some(inline)), "{inline}");
        }
        for attachment in [
            "text/html",
            "text/plain;,text/html",
            "text/plain, text/html",
            "application/octet-stream;,image/svg+xml",
            "image/svg+xml",
            "text/xsl",
            "application/xhtml+xml",
            "text/javascript",
            "application/pdf",
            "text/plain; charset=utf-8 text/html",
            "text/plain\u{b}",
            "image/png; a",
            "",
            "image",
        ] {
            assert!(!inline_safe(Some(attachment)), "{attachment:?}");
        }
        assert!(!inline_safe(None));
    }
}
