//! Cranelift's incremental compilation cache, kept on disk.
//!
//! Components built from JavaScript or Python embed the same engine (a
//! StarlingMonkey or CPython build of many megabytes); the user's code is a
//! data snapshot beside it. Cranelift keys each compiled function by its
//! IR, so when a new build (or another function) carries the same engine,
//! its functions are not compiled again: deploying a changed TypeScript
//! function compiles little more than the parts that changed.
//!
//! The folder is kept under [`MAX_BYTES`]: after a compilation, the entries
//! used longest ago go first (a read marks an entry as used).

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::SystemTime;
use wasmtime::CacheStore;

/// The most the incremental cache keeps: the compiled functions of about
/// ten different engine builds.
pub(super) const MAX_BYTES: u64 = 512 * 1024 * 1024;

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

    /// Removes the entries used longest ago until the folder holds at most
    /// three quarters of `max` bytes, if it holds more than `max`.
    pub(super) fn trim(&self, max: u64) {
        let mut entries = Vec::new();
        let shards = std::fs::read_dir(&self.dir).into_iter().flatten().flatten();
        for shard in shards {
            for entry in std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(meta) = entry.metadata() {
                    let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    entries.push((used, meta.len(), entry.path()));
                }
            }
        }
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        if total <= max {
            return;
        }
        entries.sort();
        let goal = max / 4 * 3;
        let mut removed = 0;
        for (_, size, path) in entries {
            if total <= goal {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
                removed += 1;
            }
        }
        tracing::info!(
            removed,
            bytes = total,
            "trimmed the incremental compilation cache"
        );
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        use sha2::Digest as _;
        let name = hex::encode(sha2::Sha256::digest(key));
        self.dir.join(&name[..2]).join(&name[2..])
    }
}

impl CacheStore for DiskCacheStore {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        use std::io::Read as _;
        let mut file = std::fs::File::options()
            .read(true)
            .append(true)
            .open(self.path(key))
            .ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        // The modification time is the entry's last use, for `trim`.
        let _ = file.set_modified(SystemTime::now());
        Some(Cow::Owned(bytes))
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

    #[test]
    fn trimming_removes_the_entries_used_longest_ago() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskCacheStore::new(dir.path().to_owned());
        let keys: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i]).collect();
        for key in &keys {
            assert!(store.insert(key, vec![0; 100]));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Reading the oldest makes it the newest.
        assert!(store.get(&keys[0]).is_some());
        let kept = || -> Vec<usize> { (0..8).filter(|&i| store.path(&keys[i]).exists()).collect() };
        store.trim(1000);
        assert_eq!(kept().len(), 8, "under the cap");
        store.trim(500);
        let kept = kept();
        assert_eq!(
            kept,
            vec![0, 6, 7],
            "down to 3/4 of the cap (375 bytes), the oldest use first"
        );
    }
}
