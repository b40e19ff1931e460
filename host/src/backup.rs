//! Backups: a consistent copy of a node's data taken while it serves, and
//! restoring one into a fresh data directory.
//!
//! A backup is a directory holding
//! - `collections.db`: the environment's SQLite database (records, users,
//!   auth, functions with their versions and components, object metadata,
//!   schedules, the queue, secrets sealed as they are), by `VACUUM INTO`
//!   on a reader, so writes go on meanwhile;
//! - `storage/blobs/`: object bytes, hard-linked (copied across
//!   filesystems). They are immutable files under random ids; while a
//!   backup runs, blob removals wait, so every file the database names is
//!   there;
//! - `manifest.json`: what it holds, with each file's size and SHA-256.
//!
//! Not in it: the master key (keep it apart: without it the secrets in a
//! backup can't be read), invocation logs, compiled artifacts, the admin
//! token. With PostgreSQL, `collections.db` is left out: back that
//! database up with its own tools (`pg_dump`).
//!
//! Automatic backups (`--auto-backup`) run hourly and keep every backup of
//! the last 24 hours, the newest of each day for 7 days and the newest of
//! each week for 30 days. The weekly ones, kept longest, are encrypted
//! under the environment's master key (see [`seal`]); `aura backup create
//! --encrypt` encrypts one at once. Restoring an encrypted backup needs
//! that key.

use crate::db::Database;
use crate::secrets::keys::MasterKey;
use crate::storage::Storage;
use anyhow::Context as _;
use chrono::{DateTime, Datelike as _, Utc};
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// How often automatic backups run.
const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
/// The name format of backup directories (UTC).
const NAME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// The backup service of one node.
pub struct Backups {
    data_dir: PathBuf,
    records: Arc<Database>,
    storage: Arc<Storage>,
    secrets: Arc<crate::secrets::Secrets>,
    /// One backup at a time.
    running: tokio::sync::Mutex<()>,
}

/// Hard-links (or, across filesystems, copies) every file under `from`
/// into `to`; answers the relative paths.
fn link_tree(from: &Path, to: &Path, prefix: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut linked = Vec::new();
    if !from.exists() {
        return Ok(linked);
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let relative = prefix.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            linked.extend(link_tree(&source, &target, &relative)?);
        } else {
            if std::fs::hard_link(&source, &target).is_err() {
                std::fs::copy(&source, &target)
                    .with_context(|| format!("copying {}", source.display()))?;
            }
            linked.push(relative);
        }
    }
    Ok(linked)
}

fn sha256_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0; 256 * 1024];
    let mut size = 0;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Which of `backups` (names in [`NAME_FORMAT`]) the retention policy
/// drops at `now`: all of the last 24 hours are kept, then the newest of
/// each day for 7 days, then the newest of each ISO week for 30 days.
pub fn expired(backups: &[String], now: DateTime<Utc>) -> Vec<String> {
    let mut dated: Vec<(DateTime<Utc>, &String)> = backups
        .iter()
        .filter_map(|name| {
            chrono::NaiveDateTime::parse_from_str(name, NAME_FORMAT)
                .ok()
                .map(|t| (t.and_utc(), name))
        })
        .collect();
    dated.sort();
    dated.reverse();
    let (mut days, mut weeks) = (BTreeSet::new(), BTreeSet::new());
    let mut dropped = Vec::new();
    for (at, name) in dated {
        let age = now - at;
        let keep = if age <= chrono::Duration::hours(24) {
            true
        } else if age <= chrono::Duration::days(7) {
            days.insert(at.date_naive())
        } else if age <= chrono::Duration::days(30) {
            let week = at.iso_week();
            weeks.insert((week.year(), week.week()))
        } else {
            false
        };
        if !keep {
            dropped.push(name.clone());
        }
    }
    dropped
}

impl Backups {
    /// The service; with `auto`, hourly backups under the retention policy.
    pub fn start(
        data_dir: &Path,
        records: Arc<Database>,
        storage: Arc<Storage>,
        secrets: Arc<crate::secrets::Secrets>,
        auto: bool,
    ) -> Arc<Self> {
        let backups = Arc::new(Self {
            data_dir: data_dir.to_owned(),
            records,
            storage,
            secrets,
            running: tokio::sync::Mutex::new(()),
        });
        if auto {
            let weak = Arc::downgrade(&backups);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(EVERY).await;
                    let Some(backups) = weak.upgrade() else {
                        return;
                    };
                    match backups.create(None, false).await {
                        Ok(made) => tracing::info!(path = %made["path"], "automatic backup"),
                        Err(err) => {
                            tracing::error!(error = %format!("{err:#}"), "automatic backup failed")
                        }
                    }
                    if let Err(err) = backups.prune() {
                        tracing::error!(error = %format!("{err:#}"), "pruning backups failed");
                    }
                }
            });
        }
        backups
    }

    fn root(&self) -> PathBuf {
        self.data_dir.join("backups")
    }

    /// Takes a backup into `to` (a new or empty directory), or into
    /// `DATA/backups/{time}`, encrypted if `encrypt`; answers its manifest
    /// and path.
    pub async fn create(&self, to: Option<PathBuf>, encrypt: bool) -> anyhow::Result<Value> {
        let _one = self.running.lock().await;
        let started = Instant::now();
        let now = Utc::now();
        let dir = to.unwrap_or_else(|| self.root().join(now.format(NAME_FORMAT).to_string()));
        if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
            anyhow::bail!(
                "{} is not empty: back up into a new directory",
                dir.display()
            );
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut result = self.fill(&dir, now).await;
        if encrypt && result.is_ok() {
            let (key, sealing) = (self.secrets.current_key(), dir.clone());
            result = tokio::task::spawn_blocking(move || seal(&sealing, &key))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|sealed| sealed);
        }
        match result {
            Ok(mut manifest) => {
                manifest["path"] = json!(dir.display().to_string());
                manifest["tookMs"] = json!(started.elapsed().as_millis() as u64);
                Ok(manifest)
            }
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(err)
            }
        }
    }

    async fn fill(&self, dir: &Path, now: DateTime<Utc>) -> anyhow::Result<Value> {
        let mut files: Vec<PathBuf> = Vec::new();
        let collections = {
            // Blob removals wait until every file is linked.
            let blobs = self.storage.hold_blobs().await;
            let collections = self
                .records
                .backend()
                .snapshot_into(&dir.join("collections.db"))
                .await?
                .is_some();
            if collections {
                files.push("collections.db".into());
            }
            if let Some((blobs, _removals)) = blobs {
                files.extend(link_tree(
                    &blobs,
                    &dir.join("storage/blobs"),
                    Path::new("storage/blobs"),
                )?);
            }
            collections
        };
        let dir_owned = dir.to_owned();
        let listed = tokio::task::spawn_blocking(move || {
            files
                .into_iter()
                .map(|file| {
                    let (size, sha256) = sha256_file(&dir_owned.join(&file))?;
                    Ok(json!({ "path": file.display().to_string(), "bytes": size, "sha256": sha256 }))
                })
                .collect::<anyhow::Result<Vec<Value>>>()
        })
        .await??;
        let manifest = json!({
            "format": 1,
            "created": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "version": env!("CARGO_PKG_VERSION"),
            "collections": if collections { "sqlite" } else { "postgres: not included, use pg_dump" },
            "bytes": listed.iter().map(|f| f["bytes"].as_u64().unwrap_or(0)).sum::<u64>(),
            "files": listed,
        });
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec_pretty(&manifest)?,
        )?;
        Ok(manifest)
    }

    /// The backups under `DATA/backups`, newest first.
    pub fn list(&self) -> anyhow::Result<Vec<Value>> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.root()) else {
            return Ok(found);
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("manifest.json")) else {
                continue;
            };
            let manifest: Value = serde_json::from_str(&text).unwrap_or_default();
            found.push(json!({
                "name": entry.file_name().to_string_lossy(),
                "path": entry.path().display().to_string(),
                "created": manifest["created"],
                "bytes": manifest["bytes"],
                "files": manifest["files"].as_array().map_or(0, Vec::len),
            }));
        }
        found.sort_by(|a, b| b["name"].as_str().cmp(&a["name"].as_str()));
        Ok(found)
    }

    /// The directory of the backup called `name`, if `list` has it (so no
    /// other path can be named).
    pub fn dir_of(&self, name: &str) -> Option<PathBuf> {
        let listed = self.list().ok()?;
        listed
            .iter()
            .any(|b| b["name"] == name)
            .then(|| self.root().join(name))
    }

    /// Removes the backups the retention policy no longer keeps, and
    /// encrypts those kept as weekly ones (older than 7 days).
    fn prune(&self) -> anyhow::Result<()> {
        let names: Vec<String> = self
            .list()?
            .iter()
            .filter_map(|b| b["name"].as_str().map(str::to_owned))
            .collect();
        let now = Utc::now();
        let dropped = expired(&names, now);
        for name in &dropped {
            std::fs::remove_dir_all(self.root().join(name))?;
            tracing::info!(backup = %name, "removed an expired backup");
        }
        for name in weekly(&names, &dropped, now) {
            let dir = self.root().join(name);
            let manifest = std::fs::read(dir.join("manifest.json"))?;
            if serde_json::from_slice::<Value>(&manifest)?["sealed"].is_null() {
                seal(&dir, &self.secrets.current_key())?;
                tracing::info!(backup = %name, "encrypted a weekly backup");
            }
        }
        Ok(())
    }
}

/// The backups kept as weekly ones at `now` (older than 7 days and not
/// `dropped`): those to encrypt.
fn weekly<'a>(names: &'a [String], dropped: &[String], now: DateTime<Utc>) -> Vec<&'a String> {
    let week_ago = (now - chrono::Duration::days(7))
        .format(NAME_FORMAT)
        .to_string();
    names
        .iter()
        .filter(|n| !dropped.contains(n) && **n < week_ago)
        .collect()
}

/// The file an encrypted backup keeps `path` in.
fn sealed_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sealed");
    PathBuf::from(name)
}

/// A manifest's file path, if it stays inside the backup.
fn safe_path(file: &Value) -> anyhow::Result<&str> {
    let path = file["path"].as_str().unwrap_or_default();
    anyhow::ensure!(
        !path.is_empty() && !path.split('/').any(|part| part == ".." || part.is_empty()),
        "the manifest names a bad path `{path}`"
    );
    Ok(path)
}

/// Encrypts backup `dir` under `key`: each file becomes `FILE.sealed`
/// (bound to its path; the manifest keeps the plain checksums, checked
/// after decryption) and the plain file goes. A file already sealed is
/// skipped, so an interrupted run finishes the next time.
pub fn seal(dir: &Path, key: &MasterKey) -> anyhow::Result<Value> {
    let manifest_path = dir.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path)?)?;
    for file in manifest["files"].as_array().into_iter().flatten() {
        let path = safe_path(file)?;
        let plain = dir.join(path);
        if !plain.exists() {
            continue;
        }
        let sealed = sealed_path(&plain);
        let partial = sealed.with_extension("sealing");
        key.seal_file(path, &plain, &partial)?;
        std::fs::rename(&partial, &sealed)?;
        std::fs::remove_file(&plain)?;
    }
    manifest["sealed"] = json!({ "key": key.id, "cipher": "xchacha20poly1305, 1 MiB chunks" });
    let partial = manifest_path.with_extension("json.tmp");
    std::fs::write(&partial, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::rename(&partial, &manifest_path)?;
    Ok(manifest)
}

/// Restores `backup` into `data_dir`, which must not hold data yet: checks
/// every plain file against the manifest, then copies them in; encrypted
/// files are opened with the master key (`AURA_MASTER_KEY` or `key_file`)
/// and checked as they are written.
pub fn restore(backup: &Path, data_dir: &Path, key_file: Option<&Path>) -> anyhow::Result<Value> {
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(backup.join("manifest.json"))
            .with_context(|| format!("{} is not a backup (no manifest.json)", backup.display()))?,
    )?;
    for existing in ["collections.db", "aura.db"] {
        anyhow::ensure!(
            !data_dir.join(existing).exists(),
            "{} already holds data ({existing}): restore into a new data directory",
            data_dir.display()
        );
    }
    let files = manifest["files"].as_array().cloned().unwrap_or_default();
    let matches =
        |file: &Value, path: &Path| -> anyhow::Result<bool> {
            let (size, sha256) = sha256_file(path)?;
            Ok(Some(size) == file["bytes"].as_u64()
                && Some(sha256.as_str()) == file["sha256"].as_str())
        };
    let mut sealed = false;
    for file in &files {
        let path = safe_path(file)?;
        if !backup.join(path).exists() && sealed_path(&backup.join(path)).exists() {
            sealed = true;
            continue;
        }
        anyhow::ensure!(
            matches(file, &backup.join(path))
                .with_context(|| format!("the backup lacks {path}"))?,
            "{path} differs from the manifest: the backup is damaged"
        );
    }
    let key = if sealed {
        let id = manifest["sealed"]["key"].as_str().unwrap_or("unknown");
        let key = crate::secrets::keys::key_for_restore(key_file)?.ok_or_else(|| {
            anyhow::anyhow!(
                "the backup is encrypted under master key {id}: give that key with AURA_MASTER_KEY or --master-key-file"
            )
        })?;
        anyhow::ensure!(
            key.id == id,
            "the backup is encrypted under master key {id}, not under the key given ({})",
            key.id
        );
        Some(key)
    } else {
        None
    };
    let copied = || -> anyhow::Result<()> {
        for file in &files {
            let path = safe_path(file)?;
            let (from, target) = (backup.join(path), data_dir.join(path));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match &key {
                Some(key) if !from.exists() => {
                    key.open_file(path, &sealed_path(&from), &target)
                        .with_context(|| format!("decrypting {path}"))?;
                    anyhow::ensure!(
                        matches(file, &target)?,
                        "{path} differs from the manifest: the backup is damaged"
                    );
                }
                _ => {
                    std::fs::copy(&from, &target).with_context(|| format!("copying {path}"))?;
                }
            }
        }
        Ok(())
    };
    if let Err(err) = copied() {
        // Leave the data directory as empty as it was.
        for file in &files {
            if let Ok(path) = safe_path(file) {
                let _ = std::fs::remove_file(data_dir.join(path));
            }
        }
        return Err(err);
    }
    Ok(
        json!({ "restored": files.len(), "into": data_dir.display().to_string(), "created": manifest["created"] }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_a_day_hourly_a_week_daily_a_month_weekly() {
        let now = chrono::NaiveDateTime::parse_from_str("20261124T120000Z", NAME_FORMAT)
            .unwrap()
            .and_utc();
        let names: Vec<String> = (0..24 * 40)
            .map(|hours| {
                (now - chrono::Duration::hours(hours))
                    .format(NAME_FORMAT)
                    .to_string()
            })
            .collect();
        let dropped = expired(&names, now);
        let kept: Vec<&String> = names.iter().filter(|n| !dropped.contains(n)).collect();
        // 25 within 24 h (both ends); then the newest of each of the 7
        // dates from Nov 23 back to Nov 17; then the newest of each ISO
        // week back to Oct 25 12:00 (weeks 47 to 43).
        let within_day = kept.iter().filter(|n| **n >= &names[24]).count();
        assert_eq!(within_day, 25);
        assert_eq!(kept.len(), 25 + 7 + 5);
        assert!(dropped.contains(&names[24 * 35]), "older than 30 days goes");
        assert!(!kept.iter().any(|n| {
            **n < (now - chrono::Duration::days(30))
                .format(NAME_FORMAT)
                .to_string()
        }));
        assert!(expired(&["not a backup".to_owned()], now).is_empty());
        // The weekly ones, and only they, are encrypted.
        let weekly = weekly(&names, &dropped, now);
        assert_eq!(weekly.len(), 5);
        assert!(weekly.iter().all(|n| **n < names[24 * 7]));
    }
}
