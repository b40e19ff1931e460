//! Object bytes, under random blob ids (never under their keys), on the
//! local filesystem or, for several nodes, in a bucket of any S3 service
//! (`remote`).
//!
//! A write streams into a temporary file while hashing and counting, is
//! synced to disk, and only then renamed into place (or uploaded): a reader
//! never sees half an object, and a crash leaves at most a temporary file,
//! which the next start removes. Each node has its own temporary directory
//! (`tmp/NODE`), so nodes sharing one directory (`file://` storage on a
//! shared filesystem) never remove each other's.

use super::remote::Remote;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::Digest as _;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWriteExt, BufWriter};

/// Bytes gathered before a write to disk.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Bytes read from disk at a time when streaming an object out.
pub const READ_CHUNK: usize = 512 * 1024;
/// Reads up to this size take one trip to the blocking pool.
const SMALL_READ: u64 = 256 * 1024;

/// An object's bytes on their way out.
pub type ByteStream =
    std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static>>;

/// A blob made from others (their MD5 is not needed: a copy keeps its
/// source's ETag, a multipart object has the ETag of its parts).
#[derive(Debug, Clone)]
pub struct Stored {
    /// The blob's id.
    pub id: String,
    /// Its length in bytes.
    pub size: u64,
}

/// A finished write.
#[derive(Debug, Clone)]
pub struct Written {
    /// The blob's id.
    pub id: String,
    /// Its length in bytes.
    pub size: u64,
    /// Its MD5 digest.
    pub md5: [u8; 16],
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The body is longer than the limit.
    #[error("the object is larger than {0} bytes")]
    TooLarge(u64),
    /// The body's stream failed (the client went away, a bad signature…).
    #[error("reading the body: {0}")]
    Body(String),
    /// The disk failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The remote store failed.
    #[error(transparent)]
    Remote(#[from] anyhow::Error),
}

/// The blob store.
pub struct Blobs {
    root: PathBuf,
    tmp: PathBuf,
    remote: Option<Remote>,
    /// Whether a rename is followed by a sync of its directory.
    sync_dirs: bool,
    /// Removals take it shared; a backup takes it whole, so no blob it
    /// links goes away under it.
    removals: tokio::sync::RwLock<()>,
}

/// A temporary file removed unless it was renamed into place.
struct Temporary(Option<PathBuf>);

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Blobs {
    /// Opens the store under `root` (temporary files; the blobs too unless
    /// `remote` keeps them), removing temporary files a crash of node
    /// `node` left.
    pub fn open(
        root: &Path,
        node: &str,
        remote: Option<Remote>,
        durability: crate::db::Durability,
    ) -> std::io::Result<Self> {
        let tmp = root.join("tmp").join(node);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        // Temporary files of earlier versions, which kept them in `tmp/`.
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        std::fs::create_dir_all(root.join("blobs"))?;
        Ok(Self {
            root: root.to_owned(),
            tmp,
            remote,
            sync_dirs: durability == crate::db::Durability::Safe,
            removals: tokio::sync::RwLock::new(()),
        })
    }

    /// Where blob `id` lives on the local filesystem.
    fn path(&self, id: &str) -> PathBuf {
        self.root.join("blobs").join(&id[..2]).join(id)
    }

    /// Streams `body` into a new blob; fails past `limit` bytes.
    pub async fn write<S, E>(&self, body: S, limit: u64) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let (temporary, mut file) = self.temporary().await?;
        let mut md5 = md5::Md5::new();
        let mut size = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| WriteError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(WriteError::TooLarge(limit));
            }
            md5.update(&chunk);
            file.write_all(&chunk).await?;
        }
        let Stored { id, size } = self.finish(temporary, file, size).await?;
        Ok(Written {
            id,
            size,
            md5: md5.finalize().into(),
        })
    }

    /// Writes the blobs `parts` one after the other into a new blob. On
    /// the local filesystem the kernel copies the bytes (`copy_file_range`),
    /// never through this process.
    pub async fn concat(&self, parts: &[String]) -> Result<Stored, WriteError> {
        if self.remote.is_some() {
            let (temporary, mut file) = self.temporary().await?;
            let mut size = 0u64;
            for part in parts {
                let mut chunks = self.read(part, 0, u64::MAX).await?;
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk?;
                    file.write_all(&chunk).await?;
                    size += chunk.len() as u64;
                }
            }
            return self.finish(temporary, file, size).await;
        }
        let path = self.tmp.join(new_id());
        let temporary = Temporary(Some(path.clone()));
        let sources: Vec<PathBuf> = parts.iter().map(|part| self.path(part)).collect();
        let size = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut out = std::fs::File::create(&path)?;
            let mut size = 0;
            for source in sources {
                size += std::io::copy(&mut std::fs::File::open(source)?, &mut out)?;
            }
            out.sync_all()?;
            Ok(size)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.place(temporary, size).await
    }

    /// Copies blob `id` into a new blob.
    pub async fn copy(&self, id: &str) -> Result<Stored, WriteError> {
        self.concat(&[id.to_owned()]).await
    }

    async fn temporary(&self) -> std::io::Result<(Temporary, BufWriter<tokio::fs::File>)> {
        let path = self.tmp.join(new_id());
        let file = tokio::fs::File::create(&path).await?;
        // Batches the body's small frames into few writes (each a trip to
        // the blocking pool).
        Ok((
            Temporary(Some(path)),
            BufWriter::with_capacity(WRITE_BUFFER, file),
        ))
    }

    /// Syncs the temporary file written through `file`, then places it.
    async fn finish(
        &self,
        temporary: Temporary,
        mut file: BufWriter<tokio::fs::File>,
        size: u64,
    ) -> Result<Stored, WriteError> {
        file.flush().await?;
        file.get_ref().sync_all().await?;
        drop(file);
        self.place(temporary, size).await
    }

    /// Moves the synced temporary file into place under a new id (or
    /// uploads it).
    async fn place(&self, mut temporary: Temporary, size: u64) -> Result<Stored, WriteError> {
        let id = new_id();
        let from = temporary.0.take().expect("temporary path");
        if let Some(remote) = &self.remote {
            // The temporary file goes when `temporary` drops.
            temporary.0 = Some(from.clone());
            remote.put_file(&id, &from, size).await?;
            return Ok(Stored { id, size });
        }
        let path = self.path(&id);
        let dir = path.parent().expect("blob dir");
        tokio::fs::create_dir_all(dir).await?;
        if let Err(err) = tokio::fs::rename(&from, &path).await {
            temporary.0 = Some(from);
            return Err(err.into());
        }
        if self.sync_dirs {
            // The rename is durable once the directory entry is (and the
            // entry of the directory, which may be new).
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::File::open(&dir)?.sync_all()?;
                match dir.parent() {
                    Some(parent) => std::fs::File::open(parent)?.sync_all(),
                    None => Ok(()),
                }
            })
            .await
            .map_err(std::io::Error::other)??;
        }
        Ok(Stored { id, size })
    }

    /// The `length` bytes of blob `id` from `start` (fewer at its end). A
    /// small local read is one trip to the blocking pool; a large one
    /// streams in chunks of [`READ_CHUNK`]. A missing blob is `NotFound`.
    pub async fn read(&self, id: &str, start: u64, length: u64) -> std::io::Result<ByteStream> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        if let Some(remote) = &self.remote {
            return remote.get(id, start, length).await;
        }
        let path = self.path(id);
        if length <= SMALL_READ {
            let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                use std::io::{Read, Seek};
                let mut file = std::fs::File::open(path)?;
                file.seek(std::io::SeekFrom::Start(start))?;
                let mut bytes = Vec::with_capacity(length as usize);
                file.take(length).read_to_end(&mut bytes)?;
                Ok(bytes)
            })
            .await??;
            return Ok(Box::pin(futures::stream::once(async move {
                Ok(Bytes::from(bytes))
            })));
        }
        let mut file = tokio::fs::File::open(path).await?;
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            file.take(length),
            READ_CHUNK,
        )))
    }

    /// The local blob directory, with removals held off while the guard
    /// lives; `None` when blobs live in a remote store.
    pub async fn hold(&self) -> Option<(PathBuf, tokio::sync::RwLockWriteGuard<'_, ()>)> {
        if self.remote.is_some() {
            return None;
        }
        Some((self.root.join("blobs"), self.removals.write().await))
    }

    /// What the other nodes of a shared database compare to know they
    /// keep object bytes in the same place: the remote bucket, or the id
    /// written in the directory (`store.id`), which is the same for every
    /// node only if they share the directory itself.
    pub fn identity(&self) -> std::io::Result<String> {
        if let Some(remote) = &self.remote {
            return Ok(remote.describe());
        }
        let marker = self.root.join("store.id");
        let id = uuid::Uuid::now_v7().to_string();
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, id.as_bytes())?;
                file.sync_all()?;
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        let id = std::fs::read_to_string(&marker)?;
        Ok(format!("the directory whose store.id is {}", id.trim()))
    }

    /// The local blobs last changed before `before`, by id (none when blobs
    /// live in a remote store).
    pub async fn older_than(&self, before: std::time::SystemTime) -> std::io::Result<Vec<String>> {
        if self.remote.is_some() {
            return Ok(Vec::new());
        }
        let root = self.root.join("blobs");
        tokio::task::spawn_blocking(move || local_older_than(&root, before))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Removes a blob (missing is fine).
    pub async fn remove(&self, id: &str) {
        let _held = self.removals.read().await;
        if let Some(remote) = &self.remote {
            if let Err(err) = remote.delete(id).await {
                tracing::warn!(blob = id, "removing a blob: {err:#}");
            }
            return;
        }
        match tokio::fs::remove_file(self.path(id)).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!(blob = id, "removing a blob: {err}"),
        }
    }
}

fn local_older_than(root: &Path, before: std::time::SystemTime) -> std::io::Result<Vec<String>> {
    let mut ids = Vec::new();
    for dir in std::fs::read_dir(root)? {
        let dir = dir?;
        if !dir.file_type()?.is_dir() {
            continue;
        }
        for blob in std::fs::read_dir(dir.path())? {
            let blob = blob?;
            let old = blob.metadata()?.modified()? < before;
            let id = blob.file_name().to_string_lossy().into_owned();
            if old && id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
