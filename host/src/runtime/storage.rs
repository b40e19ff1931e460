//! `aura:platform/storage` for functions: the storage service, limited to
//! the buckets the version's grants name. Bytes stream both ways: a reader
//! hands out chunks of an open file; a writer feeds a bounded channel that
//! the storage service drains into a new blob, so nothing holds a whole
//! object in memory.

use super::platform::aura::platform::storage::{
    self as wit, Error, Host, HostReader, HostWriter, Listing, ObjectInfo,
};
use super::state::InvocationState;
use crate::grants::BucketAccess;
use crate::storage::signing::{MAX_EXPIRY_SECONDS, Signed};
use crate::storage::{Object, PutOptions, Storage, StorageError};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, Resource};

/// The largest chunk a `read` hands out.
const MAX_CHUNK: u32 = 1024 * 1024;
/// Chunks a writer may have in flight before `write` waits.
const WRITE_QUEUE: usize = 4;

/// What a version may do with buckets, compiled from its grants.
#[derive(Clone)]
pub struct StorageAccess {
    pub(super) storage: Arc<Storage>,
    pub(super) grants: Arc<BTreeMap<String, BucketAccess>>,
    /// Where signed URLs point.
    pub(super) public_url: Arc<str>,
}

impl StorageAccess {
    fn check(&self, bucket: &str, write: bool) -> Result<(), Error> {
        match self.grants.get(bucket) {
            Some(BucketAccess::ReadWrite) => Ok(()),
            Some(BucketAccess::Read) if !write => Ok(()),
            granted => Err(Error::Denied(format!(
                "the function's grants do not allow {} bucket `{bucket}`{}; add `{bucket} = \"{}\"` to `buckets` under [grants] in aura.toml",
                if write { "writing" } else { "reading" },
                if granted.is_some() {
                    " (it is granted read-only)"
                } else {
                    ""
                },
                if write { "read-write" } else { "read" },
            ))),
        }
    }
}

/// An object being read: its byte stream, and what is left of the last
/// chunk.
pub struct Reader {
    chunks: crate::storage::ByteStream,
    pending: Bytes,
}

/// An object being written: chunks go to the storage service's write.
pub struct Writer {
    chunks: Option<tokio::sync::mpsc::Sender<Result<Bytes, String>>>,
    done: Option<tokio::task::JoinHandle<Result<Object, StorageError>>>,
}

fn error(err: StorageError) -> Error {
    let message = err.to_string();
    match err {
        StorageError::NoSuchBucket(_)
        | StorageError::NoSuchKey(_)
        | StorageError::NoSuchUpload(_) => Error::NotFound(message),
        StorageError::TooLarge(_) => Error::TooLarge(message),
        StorageError::Internal(err) => {
            tracing::error!(error = %format!("{err:#}"), "storage error in a function call");
            Error::Internal("an internal error occurred; see the server log".into())
        }
        _ => Error::Invalid(message),
    }
}

fn info(object: &Object) -> ObjectInfo {
    ObjectInfo {
        key: object.key.clone(),
        size: object.size,
        etag: object.etag.clone(),
        content_type: object.content_type.clone(),
        modified: object.modified.clone(),
    }
}

fn internal(err: impl std::fmt::Display) -> Error {
    tracing::error!(error = %err, "storage error in a function call");
    Error::Internal("an internal error occurred; see the server log".into())
}

impl Host for InvocationState {
    async fn head(&mut self, bucket: String, key: String) -> Result<ObjectInfo, Error> {
        let access = self.storage().clone();
        access.check(&bucket, false)?;
        let object = access.storage.head(&bucket, &key).await.map_err(error)?;
        Ok(info(&object))
    }

    async fn get(
        &mut self,
        bucket: String,
        key: String,
        range: Option<(u64, u64)>,
    ) -> Result<(ObjectInfo, Resource<Reader>), Error> {
        let access = self.storage().clone();
        access.check(&bucket, false)?;
        let object = access.storage.head(&bucket, &key).await.map_err(error)?;
        let (offset, length) = range.unwrap_or((0, object.size));
        if offset > object.size {
            return Err(Error::Invalid(format!(
                "the range starts after the object's end ({} bytes)",
                object.size
            )));
        }
        let chunks = access
            .storage
            .read(&object, offset, length.min(object.size - offset))
            .await
            .map_err(error)?;
        let reader = Reader {
            chunks,
            pending: Bytes::new(),
        };
        let handle = self.table().push(reader).map_err(internal)?;
        Ok((info(&object), handle))
    }

    async fn put(
        &mut self,
        bucket: String,
        key: String,
        content_type: Option<String>,
    ) -> Result<Resource<Writer>, Error> {
        let access = self.storage().clone();
        access.check(&bucket, true)?;
        if let Some(problem) = crate::storage::names::key_problem(&key) {
            return Err(Error::Invalid(problem));
        }
        access.storage.bucket(&bucket).await.map_err(error)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(WRITE_QUEUE);
        let storage = access.storage.clone();
        let done = tokio::spawn(async move {
            let options = PutOptions {
                content_type,
                ..PutOptions::default()
            };
            let chunks = futures::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|chunk| (chunk, receiver))
            });
            storage.put(&bucket, &key, chunks, options).await
        });
        let writer = Writer {
            chunks: Some(sender),
            done: Some(done),
        };
        self.table().push(writer).map_err(internal)
    }

    async fn delete(&mut self, bucket: String, key: String) -> Result<(), Error> {
        let access = self.storage().clone();
        access.check(&bucket, true)?;
        access.storage.delete(&bucket, &key).await.map_err(error)
    }

    async fn list(
        &mut self,
        bucket: String,
        prefix: String,
        delimiter: Option<String>,
        after: Option<String>,
        limit: u32,
    ) -> Result<Listing, Error> {
        let access = self.storage().clone();
        access.check(&bucket, false)?;
        let listing = access
            .storage
            .list(
                &bucket,
                &prefix,
                delimiter.as_deref(),
                after.as_deref(),
                limit.clamp(1, 1000) as usize,
            )
            .await
            .map_err(error)?;
        Ok(Listing {
            objects: listing.objects.iter().map(info).collect(),
            prefixes: listing.prefixes,
            next: listing.next,
        })
    }

    async fn presign(
        &mut self,
        bucket: String,
        key: String,
        method: String,
        expires_in: u32,
    ) -> Result<String, Error> {
        let access = self.storage().clone();
        let method = method.to_ascii_uppercase();
        match method.as_str() {
            "GET" => access.check(&bucket, false)?,
            "PUT" => access.check(&bucket, true)?,
            _ => return Err(Error::Invalid("method must be GET or PUT".into())),
        }
        if !(1..=MAX_EXPIRY_SECONDS).contains(&u64::from(expires_in)) {
            return Err(Error::Invalid(format!(
                "expires-in must be between 1 and {MAX_EXPIRY_SECONDS} seconds"
            )));
        }
        if let Some(problem) = crate::storage::names::key_problem(&key) {
            return Err(Error::Invalid(problem));
        }
        access.storage.bucket(&bucket).await.map_err(error)?;
        let expires = chrono::Utc::now().timestamp() + i64::from(expires_in);
        let signature = access.storage.sign(&Signed {
            method: &method,
            bucket: &bucket,
            key: &key,
            expires,
            owner: None,
            condition: if method == "PUT" { "*" } else { "" },
        });
        let condition = if method == "PUT" { "&match=%2A" } else { "" };
        Ok(format!(
            "{}/api/storage/{bucket}/{}?expires={expires}&signature={signature}{condition}",
            access.public_url,
            crate::storage::encode_key(&key)
        ))
    }
}

impl HostReader for InvocationState {
    async fn read(&mut self, reader: Resource<Reader>, max: u32) -> Result<Vec<u8>, Error> {
        use futures::StreamExt;
        let reader = self.table().get_mut(&reader).map_err(internal)?;
        let max = max.clamp(1, MAX_CHUNK) as usize;
        let mut chunk = Vec::new();
        // Fill the chunk unless the object ends first.
        while chunk.len() < max {
            if reader.pending.is_empty() {
                match reader.chunks.next().await {
                    Some(next) => reader.pending = next.map_err(internal)?,
                    None => break,
                }
            }
            let take = reader.pending.len().min(max - chunk.len());
            chunk.extend_from_slice(&reader.pending.split_to(take));
        }
        Ok(chunk)
    }

    async fn drop(&mut self, reader: Resource<Reader>) -> wasmtime::Result<()> {
        self.table().delete(reader)?;
        Ok(())
    }
}

impl HostWriter for InvocationState {
    async fn write(&mut self, writer: Resource<Writer>, chunk: Vec<u8>) -> Result<(), Error> {
        let writer = self.table().get_mut(&writer).map_err(internal)?;
        let Some(chunks) = &writer.chunks else {
            return Err(Error::Invalid("the writer is finished".into()));
        };
        if chunks.send(Ok(Bytes::from(chunk))).await.is_err() {
            // The write stopped (too large, disk): finish says why.
            writer.chunks = None;
            return finish(writer).await.map(|_| ());
        }
        Ok(())
    }

    async fn finish(&mut self, writer: Resource<Writer>) -> Result<ObjectInfo, Error> {
        let writer = self.table().get_mut(&writer).map_err(internal)?;
        writer.chunks = None;
        finish(writer).await.map(|object| info(&object))
    }

    async fn drop(&mut self, writer: Resource<Writer>) -> wasmtime::Result<()> {
        let mut writer = self.table().delete(writer)?;
        if let Some(chunks) = writer.chunks.take() {
            // Unfinished: fail the write so nothing is stored.
            let _ = chunks
                .send(Err("the writer was dropped unfinished".into()))
                .await;
        }
        Ok(())
    }
}

/// Waits for a writer's storage write to end.
async fn finish(writer: &mut Writer) -> Result<Object, Error> {
    let done = writer
        .done
        .take()
        .ok_or_else(|| Error::Invalid("the writer is finished".into()))?;
    match done.await {
        Ok(result) => result.map_err(error),
        Err(err) => Err(internal(err)),
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<InvocationState, HasSelf<InvocationState>>(linker, |state| state)
}
