//! Cranelift's incremental compilation cache, kept on disk.
//!
//! Components built from JavaScript or Python embed the same engine (a
//! StarlingMonkey or CPython build of many megabytes); the user's code is a
//! data snapshot beside it. Cranelift keys each compiled function by its
//! IR, so when a new build (or another function) carries the same engine,
//! its functions are not compiled again: deploying a changed TypeScript
//! function compiles little more than the parts that changed.

use std::borrow::Cow;
use std::path::PathBuf;
use wasmtime::CacheStore;

/// Compiled functions by key under `dir`, as `ab/cdef….bin` (the key's
/// SHA-256), written atomically; a failed read is a miss.
#[derive(Debug)]
pub(super) struct DiskCacheStore {
    dir: PathBuf,
}

impl DiskCacheStore {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        use sha2::Digest as _;
        let name = hex::encode(sha2::Sha256::digest(key));
        self.dir.join(&name[..2]).join(&name[2..])
    }
}

impl CacheStore for DiskCacheStore {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        std::fs::read(self.path(key)).ok().map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let path = self.path(key);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().expect("a shard directory"))?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, &value)?;
            std::fs::rename(&tmp, &path)
        };
        write().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_new_store_on_the_same_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskCacheStore::new(dir.path().to_owned());
        assert!(store.get(b"key").is_none());
        assert!(store.insert(b"key", b"compiled".to_vec()));
        let again = DiskCacheStore::new(dir.path().to_owned());
        assert_eq!(again.get(b"key").as_deref(), Some(&b"compiled"[..]));
        assert!(again.get(b"other").is_none());
    }
}
