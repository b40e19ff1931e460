//! Where functions are kept: names, immutable versions (each with its
//! limits and grants), the active pointer, and component bytes by SHA-256,
//! all in the environment's database. On PostgreSQL every node of the
//! database therefore serves the same functions: each change is announced
//! on a channel (`NOTIFY`) once it commits, and the other nodes follow it
//! (see `Functions::follow`).
//!
//! A node keeps the components it has read in a local cache
//! (`DATA/components/HASH.wasm`), so a restart compiles, or loads compiled
//! code, without reading them from the database again.

use super::FunctionInfo;
use crate::db::backend::{Arg, Backend, column_type, text_arg};
use crate::db::filter::Dialect;
use crate::db::schema::Storage;
use crate::grants::Grants;
use crate::runtime::Limits;
use anyhow::Context as _;
use bytes::Bytes;
use serde_json::Value;
use sqlx::{Row, SqlitePool};
use std::path::PathBuf;

/// The tables, created with the other system tables.
pub fn tables(dialect: Dialect) -> Vec<String> {
    let real = column_type(dialect, Storage::Number);
    let (id, blob) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "BYTEA"),
    };
    vec![
        format!("CREATE TABLE IF NOT EXISTS _aura_functions (name TEXT PRIMARY KEY, active_version {real} NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"),
        format!("CREATE TABLE IF NOT EXISTS _aura_function_versions (function TEXT NOT NULL, version {real} NOT NULL, hash TEXT NOT NULL, size {real} NOT NULL, limits TEXT NOT NULL, grants TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (function, version))"),
        "CREATE INDEX IF NOT EXISTS _aura_function_versions_hash ON _aura_function_versions (hash)".to_owned(),
        format!("CREATE TABLE IF NOT EXISTS _aura_components (hash TEXT PRIMARY KEY, size {real} NOT NULL, bytes {blob} NOT NULL, created_at TEXT NOT NULL)"),
        // Snapshots of the environment's definition (see `definition`); the
        // components a snapshot names are kept while it exists.
        format!("CREATE TABLE IF NOT EXISTS _aura_snapshots (id {id}, label TEXT NOT NULL, definition TEXT NOT NULL, created_at TEXT NOT NULL)"),
        format!("CREATE TABLE IF NOT EXISTS _aura_snapshot_components (snapshot {real} NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (snapshot, hash))"),
        "CREATE INDEX IF NOT EXISTS _aura_snapshot_components_hash ON _aura_snapshot_components (hash)".to_owned(),
    ]
}

/// One stored version.
#[derive(Debug, Clone)]
pub struct Version {
    /// Version number, from 1.
    pub version: i64,
    /// SHA-256 of the component (hex).
    pub hash: String,
    /// Component size in bytes.
    pub size: i64,
    /// Resource limits.
    pub limits: Limits,
    /// Grants.
    pub grants: Grants,
    /// When it was deployed (RFC 3339).
    pub created_at: String,
}

const VERSION_COLUMNS: &str = "v.version, v.hash, v.size, v.limits, v.grants, v.created_at";
const VERSION_STORAGE: [Storage; 6] = [
    Storage::Number,
    Storage::Text,
    Storage::Number,
    Storage::Text,
    Storage::Text,
    Storage::Text,
];

fn int(value: &Value) -> i64 {
    value.as_f64().unwrap_or_default() as i64
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn version_from(row: &[Value]) -> anyhow::Result<Version> {
    Ok(Version {
        version: int(&row[0]),
        hash: text(&row[1]),
        size: int(&row[2]),
        limits: serde_json::from_str(row[3].as_str().unwrap_or("{}")).context("stored limits")?,
        grants: serde_json::from_str(row[4].as_str().unwrap_or("{}")).context("stored grants")?,
        created_at: text(&row[5]),
    })
}

/// The functions of one environment, in its database.
pub struct Store {
    backend: Backend,
    cache: PathBuf,
    channel: String,
}

impl Store {
    /// The store of `backend`, caching components under `cache`, announcing
    /// changes on `channel`.
    pub async fn open(backend: Backend, cache: PathBuf, channel: String) -> anyhow::Result<Self> {
        tokio::fs::create_dir_all(&cache)
            .await
            .with_context(|| format!("creating {}", cache.display()))?;
        Ok(Self {
            backend,
            cache,
            channel,
        })
    }

    /// The channel changes are announced on (their payload: the name).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Every function's active version, or `name`'s alone.
    pub async fn actives(&self, name: Option<&str>) -> anyhow::Result<Vec<(String, Version)>> {
        let mut sql = format!(
            "SELECT f.name, {VERSION_COLUMNS} FROM _aura_functions f \
             JOIN _aura_function_versions v ON v.function = f.name AND v.version = f.active_version"
        );
        let mut args = Vec::new();
        if let Some(name) = name {
            sql.push_str(" WHERE f.name = ?");
            args.push(text_arg(name));
        }
        let mut columns = vec![Storage::Text];
        columns.extend(VERSION_STORAGE);
        self.backend
            .rows(&sql, args, &columns)
            .await?
            .iter()
            .map(|row| Ok((text(&row[0]), version_from(&row[1..])?)))
            .collect()
    }

    /// Every function by name, or `name` alone.
    pub async fn functions(&self, name: Option<&str>) -> anyhow::Result<Vec<FunctionInfo>> {
        let real = column_type(self.backend.dialect(), Storage::Number);
        let mut sql = format!(
            "SELECT f.name, f.active_version, f.created_at, f.updated_at, \
             CAST((SELECT COUNT(*) FROM _aura_function_versions v WHERE v.function = f.name) AS {real}) \
             FROM _aura_functions f"
        );
        let mut args = Vec::new();
        if let Some(name) = name {
            sql.push_str(" WHERE f.name = ?");
            args.push(text_arg(name));
        }
        sql.push_str(" ORDER BY f.name");
        let columns = [
            Storage::Text,
            Storage::Number,
            Storage::Text,
            Storage::Text,
            Storage::Number,
        ];
        Ok(self
            .backend
            .rows(&sql, args, &columns)
            .await?
            .iter()
            .map(|row| FunctionInfo {
                name: text(&row[0]),
                active_version: int(&row[1]),
                created_at: text(&row[2]),
                updated_at: text(&row[3]),
                versions: int(&row[4]),
            })
            .collect())
    }

    /// `name`'s versions, newest first.
    pub async fn versions(&self, name: &str) -> anyhow::Result<Vec<Version>> {
        self.backend
            .rows(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM _aura_function_versions v WHERE v.function = ? ORDER BY v.version DESC"
                ),
                [text_arg(name)],
                &VERSION_STORAGE,
            )
            .await?
            .iter()
            .map(|row| version_from(row))
            .collect()
    }

    /// The newest version of `name` before `before`.
    pub async fn previous(&self, name: &str, before: i64) -> anyhow::Result<Option<i64>> {
        let rows = self
            .backend
            .rows(
                "SELECT MAX(version) FROM _aura_function_versions WHERE function = ? AND version < ?",
                [text_arg(name), Arg::Number(before as f64)],
                &[Storage::Number],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|row| row[0].as_f64())
            .map(|v| v as i64))
    }

    /// Stores `wasm` (SHA-256 `hash`) as the next version of `name` and
    /// makes it active; answers its number.
    pub async fn add_version(
        &self,
        name: &str,
        hash: &str,
        wasm: &Bytes,
        limits: &Limits,
        grants: &Grants,
        now: &str,
    ) -> anyhow::Result<i64> {
        let backend = &self.backend;
        // The schema lock orders deploys of every node, so numbers are unique.
        let mut tx = backend.begin_schema_change().await?;
        let stored = tx
            .count(&backend.statement(
                "SELECT COUNT(*) FROM _aura_components WHERE hash = ?",
                [text_arg(hash)],
            ))
            .await?;
        if stored == 0 {
            tx.execute(&backend.statement(
                "INSERT INTO _aura_components (hash, size, bytes, created_at) VALUES (?, ?, ?, ?)",
                [
                    text_arg(hash),
                    Arg::Number(wasm.len() as f64),
                    Arg::Bytes(wasm.clone()),
                    text_arg(now),
                ],
            ))
            .await?;
        }
        let version = tx
            .count(&backend.statement(
                "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM _aura_function_versions WHERE function = ?",
                [text_arg(name)],
            ))
            .await?;
        tx.execute(&backend.statement(
            "INSERT INTO _aura_functions (name, active_version, created_at, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET active_version = excluded.active_version, updated_at = excluded.updated_at",
            [
                text_arg(name),
                Arg::Number(version as f64),
                text_arg(now),
                text_arg(now),
            ],
        ))
        .await?;
        tx.execute(&backend.statement(
            "INSERT INTO _aura_function_versions (function, version, hash, size, limits, grants, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                text_arg(name),
                Arg::Number(version as f64),
                text_arg(hash),
                Arg::Number(wasm.len() as f64),
                Arg::Text(serde_json::to_string(limits)?),
                Arg::Text(serde_json::to_string(grants)?),
                text_arg(now),
            ],
        ))
        .await?;
        tx.notify(&self.channel, name).await?;
        tx.commit().await?;
        self.cache_put(hash, wasm).await;
        Ok(version)
    }

    /// Makes `version` the active version of `name`.
    pub async fn set_active(&self, name: &str, version: i64, now: &str) -> anyhow::Result<()> {
        let mut tx = self.backend.begin_schema_change().await?;
        tx.execute(&self.backend.statement(
            "UPDATE _aura_functions SET active_version = ?, updated_at = ? WHERE name = ?",
            [Arg::Number(version as f64), text_arg(now), text_arg(name)],
        ))
        .await?;
        tx.notify(&self.channel, name).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes `name` and its versions, and the components no version or
    /// snapshot names any more; answers those components' hashes.
    pub async fn remove(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let backend = &self.backend;
        let mut tx = backend.begin_schema_change().await?;
        let hashes: Vec<String> = tx
            .fetch(
                &backend.statement(
                    "SELECT DISTINCT hash FROM _aura_function_versions WHERE function = ?",
                    [text_arg(name)],
                ),
                &[Storage::Text],
            )
            .await?
            .iter()
            .map(|row| text(&row[0]))
            .collect();
        for sql in [
            "DELETE FROM _aura_function_versions WHERE function = ?",
            "DELETE FROM _aura_functions WHERE name = ?",
        ] {
            tx.execute(&backend.statement(sql, [text_arg(name)]))
                .await?;
        }
        let mut removed = Vec::new();
        for hash in hashes {
            let gone = tx
                .execute(&backend.statement(
                    "DELETE FROM _aura_components WHERE hash = ? \
                     AND NOT EXISTS (SELECT 1 FROM _aura_function_versions WHERE hash = ?) \
                     AND NOT EXISTS (SELECT 1 FROM _aura_snapshot_components WHERE hash = ?)",
                    [text_arg(&hash), text_arg(&hash), text_arg(&hash)],
                ))
                .await?;
            if gone > 0 {
                removed.push(hash);
            }
        }
        tx.notify(&self.channel, name).await?;
        tx.commit().await?;
        for hash in &removed {
            self.uncache(hash).await;
        }
        Ok(removed)
    }

    /// The components of `name`'s versions that are neither active nor
    /// among the newest `keep` versions of any function.
    pub async fn stale(&self, name: &str, keep: i64) -> anyhow::Result<Vec<String>> {
        Ok(self
            .backend
            .rows(
                "SELECT DISTINCT v.hash FROM _aura_function_versions v WHERE v.function = ? \
                 AND v.hash NOT IN ( \
                   SELECT k.hash FROM _aura_function_versions k \
                   WHERE k.version > (SELECT MAX(m.version) FROM _aura_function_versions m WHERE m.function = k.function) - ? \
                   UNION SELECT a.hash FROM _aura_function_versions a \
                   JOIN _aura_functions f ON f.name = a.function AND f.active_version = a.version)",
                [text_arg(name), Arg::Number(keep as f64)],
                &[Storage::Text],
            )
            .await?
            .iter()
            .map(|row| text(&row[0]))
            .collect())
    }

    /// Whether component `hash` is stored.
    pub async fn has_component(&self, hash: &str) -> anyhow::Result<bool> {
        if !is_hash(hash) {
            return Ok(false);
        }
        let count = self
            .backend
            .count(&self.backend.statement(
                "SELECT COUNT(*) FROM _aura_components WHERE hash = ?",
                [text_arg(hash)],
            ))
            .await?;
        Ok(count > 0)
    }

    /// Component `hash`: from the local cache, else from the database
    /// (then cached).
    pub async fn component(&self, hash: &str) -> anyhow::Result<Option<Bytes>> {
        if !is_hash(hash) {
            return Ok(None);
        }
        if let Ok(wasm) = tokio::fs::read(self.cache_path(hash)).await {
            return Ok(Some(Bytes::from(wasm)));
        }
        let Some(wasm) = self
            .backend
            .bytes(
                "SELECT bytes FROM _aura_components WHERE hash = ?",
                [text_arg(hash)],
            )
            .await?
        else {
            return Ok(None);
        };
        let wasm = Bytes::from(wasm);
        self.cache_put(hash, &wasm).await;
        Ok(Some(wasm))
    }

    /// Drops component `hash` from the local cache if the database no
    /// longer has it (another node removed it).
    pub async fn forget(&self, hash: &str) -> anyhow::Result<bool> {
        if self.has_component(hash).await? {
            return Ok(false);
        }
        self.uncache(hash).await;
        Ok(true)
    }

    fn cache_path(&self, hash: &str) -> PathBuf {
        self.cache.join(format!("{hash}.wasm"))
    }

    /// Caches `wasm`; a failure only costs a read from the database later.
    async fn cache_put(&self, hash: &str, wasm: &[u8]) {
        let path = self.cache_path(hash);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return;
        }
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7()));
        let written = async {
            tokio::fs::write(&tmp, wasm).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(err) = written.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            tracing::warn!(hash, "caching a component: {err}");
        }
    }

    async fn uncache(&self, hash: &str) {
        let _ = tokio::fs::remove_file(self.cache_path(hash)).await;
    }

    /// Moves the functions, versions and snapshots an earlier version kept
    /// in `local` (the node's `aura.db`), with the components of
    /// `self.cache`, into the database (when it has no functions yet), then
    /// drops the old tables.
    pub async fn adopt(&self, local: &SqlitePool) -> anyhow::Result<()> {
        if !crate::store::has_table(local, "functions").await? {
            return Ok(());
        }
        let old: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM functions) + (SELECT COUNT(*) FROM snapshots)",
        )
        .fetch_one(local)
        .await?;
        if old > 0 {
            let empty = self.functions(None).await?.is_empty()
                && self
                    .backend
                    .count(
                        &self
                            .backend
                            .statement("SELECT COUNT(*) FROM _aura_snapshots", []),
                    )
                    .await?
                    == 0;
            if !empty {
                // Not merged into another node's functions: kept for the operator.
                tracing::warn!(
                    old,
                    "aura.db holds functions of an earlier version and the database has functions already: they were not moved (tables `functions`, `function_versions`, `snapshots` in aura.db)"
                );
                return Ok(());
            }
            self.copy_from(local).await?;
        }
        for table in [
            "snapshot_components",
            "snapshots",
            "function_versions",
            "functions",
        ] {
            sqlx::query(&format!("DROP TABLE {table}"))
                .execute(local)
                .await?;
        }
        Ok(())
    }

    async fn copy_from(&self, local: &SqlitePool) -> anyhow::Result<()> {
        let backend = &self.backend;
        let mut tx = backend.begin_schema_change().await?;
        let mut hashes = std::collections::BTreeSet::new();
        for row in sqlx::query("SELECT name, active_version, created_at, updated_at FROM functions")
            .fetch_all(local)
            .await?
        {
            tx.execute(&backend.statement(
                "INSERT INTO _aura_functions (name, active_version, created_at, updated_at) VALUES (?, ?, ?, ?)",
                [
                    Arg::Text(row.try_get("name")?),
                    Arg::Number(row.try_get::<i64, _>("active_version")? as f64),
                    Arg::Text(row.try_get("created_at")?),
                    Arg::Text(row.try_get("updated_at")?),
                ],
            ))
            .await?;
        }
        for row in sqlx::query(
            "SELECT function, version, hash, size, limits, grants, created_at FROM function_versions",
        )
        .fetch_all(local)
        .await?
        {
            let hash: String = row.try_get("hash")?;
            tx.execute(&backend.statement(
                "INSERT INTO _aura_function_versions (function, version, hash, size, limits, grants, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    Arg::Text(row.try_get("function")?),
                    Arg::Number(row.try_get::<i64, _>("version")? as f64),
                    text_arg(&hash),
                    Arg::Number(row.try_get::<i64, _>("size")? as f64),
                    Arg::Text(row.try_get("limits")?),
                    Arg::Text(row.try_get("grants")?),
                    Arg::Text(row.try_get("created_at")?),
                ],
            ))
            .await?;
            hashes.insert(hash);
        }
        for row in
            sqlx::query("SELECT id, label, definition, created_at FROM snapshots ORDER BY id")
                .fetch_all(local)
                .await?
        {
            tx.execute(&backend.statement(
                "INSERT INTO _aura_snapshots (id, label, definition, created_at) VALUES (?, ?, ?, ?)",
                [
                    Arg::Int(row.try_get("id")?),
                    Arg::Text(row.try_get("label")?),
                    Arg::Text(row.try_get("definition")?),
                    Arg::Text(row.try_get("created_at")?),
                ],
            ))
            .await?;
        }
        for row in sqlx::query("SELECT snapshot, hash FROM snapshot_components")
            .fetch_all(local)
            .await?
        {
            let hash: String = row.try_get("hash")?;
            tx.execute(&backend.statement(
                "INSERT INTO _aura_snapshot_components (snapshot, hash) VALUES (?, ?)",
                [
                    Arg::Number(row.try_get::<i64, _>("snapshot")? as f64),
                    text_arg(&hash),
                ],
            ))
            .await?;
            hashes.insert(hash);
        }
        if backend.dialect() == Dialect::Postgres {
            tx.execute(&backend.statement(
                "SELECT setval(pg_get_serial_sequence('_aura_snapshots', 'id'), COALESCE((SELECT MAX(id) FROM _aura_snapshots), 0) + 1, false)",
                [],
            ))
            .await?;
        }
        let now = crate::db::values::now();
        for hash in hashes {
            let wasm = match tokio::fs::read(self.cache_path(&hash)).await {
                Ok(wasm) => wasm,
                Err(err) => {
                    tracing::warn!(
                        hash,
                        "a version's component is missing from aura.db's directory: {err}"
                    );
                    continue;
                }
            };
            tx.execute(&backend.statement(
                "INSERT INTO _aura_components (hash, size, bytes, created_at) VALUES (?, ?, ?, ?)",
                [
                    text_arg(&hash),
                    Arg::Number(wasm.len() as f64),
                    Arg::Bytes(Bytes::from(wasm)),
                    text_arg(&now),
                ],
            ))
            .await?;
        }
        tx.commit().await?;
        tracing::info!("moved functions and snapshots from aura.db into the database");
        Ok(())
    }
}

fn is_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The channel of environment `environment`'s function changes.
pub fn channel(environment: &str) -> String {
    match environment {
        crate::environments::DEFAULT => "aura_functions".to_owned(),
        other => format!("aura_functions_{}", other.replace('-', "_")),
    }
}
