//! The functions service: deploying components as immutable versions,
//! activating and rolling back versions, and invoking the active version.
//!
//! It owns the `functions` and `function_versions` tables, the component
//! blobs under `DATA/components/`, and the in-memory table of active,
//! pre-linked versions. The admin API and the invoke route are thin doors
//! onto it; it knows nothing of axum.

pub mod logs;
mod registry;

use crate::grants::Grants;
use crate::metrics::Metrics;
use crate::runtime::{
    CacheOutcome, Callees, Failure, InvalidComponent, Invocation, Limits, Loaded, Monitor,
    Prepared, ResponseBody, Runtime,
};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http_body::Body;
use logs::InvocationLog;
use registry::{Finished, Registry};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Row, SqlitePool};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a version is deployed with besides its component: limits and grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VersionConfig {
    /// Resource limits.
    pub limits: Limits,
    /// Capabilities beyond the sandbox.
    pub grants: Grants,
}

/// A deployed function, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionInfo {
    /// Name, used in `/fn/{name}`.
    pub name: String,
    /// The version requests go to.
    pub active_version: i64,
    /// How many versions exist.
    pub versions: i64,
    /// First deploy (RFC 3339).
    pub created_at: String,
    /// Last deploy, rollback (RFC 3339).
    pub updated_at: String,
}

/// One immutable version of a function.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// Function name.
    pub function: String,
    /// Version number, from 1.
    pub version: i64,
    /// SHA-256 of the component bytes (hex).
    pub hash: String,
    /// Component size in bytes.
    pub size: i64,
    /// Resource limits.
    pub limits: Limits,
    /// Grants.
    pub grants: Grants,
    /// Whether this is the active version.
    pub active: bool,
    /// When it was deployed (RFC 3339).
    pub created_at: String,
    /// How a deploy made its code (only in a deploy's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile: Option<CompileReport>,
}

/// How a deploy made a component's code, and how long that took.
#[derive(Debug, Clone, Serialize)]
pub struct CompileReport {
    /// `cached` (an artifact of these bytes existed), `optimized`
    /// (compiled by Cranelift now) or `baseline` (compiled by Winch now;
    /// optimized code replaces it in the background).
    pub code: &'static str,
    /// Milliseconds spent compiling or loading.
    pub ms: u64,
}

/// Errors of the functions service; the API maps each to a stable code.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The name is not a valid function name.
    #[error(
        "invalid function name `{0}`: use 1-63 characters a-z, 0-9, `-` or `_`, starting with a letter or digit"
    )]
    InvalidName(String),
    /// The limits are out of range.
    #[error("{0}")]
    InvalidLimits(String),
    /// A grant is malformed.
    #[error("{0}")]
    InvalidGrants(String),
    /// The component was refused.
    #[error(transparent)]
    InvalidComponent(#[from] InvalidComponent),
    /// No such function.
    #[error("no function named `{0}` is deployed")]
    NotFound(String),
    /// No such version.
    #[error("function `{0}` has no version {1}")]
    VersionNotFound(String, i64),
    /// Other functions import interfaces the change would remove.
    #[error("{0}")]
    InUse(String),
    /// Rollback asked for with nothing to roll back to.
    #[error("function `{0}` has no version before version {1}")]
    NoPreviousVersion(String, i64),
    /// Anything else (database, disk); logged, never shown verbatim.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for FunctionError {
    fn from(err: sqlx::Error) -> Self {
        FunctionError::Internal(err.into())
    }
}

/// The longest a request waits for its function's share of the instance
/// pool (less if the function's own timeout is shorter).
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// How many of each function's newest versions keep their compiled
/// artifacts (besides the active one), so a rollback to them is instant.
pub const KEEP_COMPILED: i64 = 3;

/// The functions service.
pub struct Functions {
    db: SqlitePool,
    runtime: Arc<Runtime>,
    blobs: PathBuf,
    registry: Arc<Registry>,
    /// Serialises deploy, rollback and delete so versions activate in order.
    admin: tokio::sync::Mutex<()>,
    /// Invocation logs.
    pub logs: InvocationLog,
    metrics: Arc<Metrics>,
    /// This environment's share of the instance pool.
    slots: Arc<tokio::sync::Semaphore>,
}

impl Functions {
    /// Opens the service and loads every function's active version
    /// (from the compiled cache when possible).
    pub async fn load(
        db: SqlitePool,
        runtime: Arc<Runtime>,
        blobs: PathBuf,
        logs: InvocationLog,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        tokio::fs::create_dir_all(&blobs).await?;
        let share = runtime.per_function_share();
        let slots = Arc::new(tokio::sync::Semaphore::new(
            runtime.per_environment_share() as usize
        ));
        let service = Self {
            slots,
            db,
            runtime,
            blobs,
            registry: Arc::new(Registry::new(logs.clone(), metrics.clone(), share)),
            admin: tokio::sync::Mutex::default(),
            logs,
            metrics,
        };
        let rows = sqlx::query(
            "SELECT f.name, v.version, v.hash, v.limits, v.grants FROM functions f \
             JOIN function_versions v ON v.function = f.name AND v.version = f.active_version",
        )
        .fetch_all(&service.db)
        .await?;
        let mut pending = Vec::new();
        for row in rows {
            let name: String = row.try_get("name")?;
            let version: i64 = row.try_get("version")?;
            let hash: String = row.try_get("hash")?;
            let limits: Limits = serde_json::from_str(row.try_get("limits")?)?;
            let grants: Grants = serde_json::from_str(row.try_get("grants")?)?;
            pending.push((name, version, hash, limits, grants));
        }
        // A function that imports another loads after it: retry in rounds
        // until nothing more loads.
        loop {
            let before = pending.len();
            let mut failed = Vec::new();
            for (name, version, hash, limits, grants) in pending {
                match service.prepare_stored(&name, &hash, &grants).await {
                    Ok((prepared, outcome)) => {
                        tracing::info!(function = %name, version, cache = ?outcome, "loaded function");
                        service.activate(&name, version, limits, prepared, &hash, &grants);
                    }
                    Err(err) => failed.push(((name, version, hash, limits, grants), err)),
                }
            }
            let stuck = failed.len() == before;
            if failed.is_empty() || stuck {
                for ((name, version, ..), err) in failed {
                    tracing::error!(function = %name, version, error = %err, "cannot load function");
                }
                break;
            }
            pending = failed.into_iter().map(|(entry, _)| entry).collect();
        }
        Ok(service)
    }

    /// Deploys `wasm` as a new version of `name` and makes it active.
    pub async fn deploy(
        &self,
        name: &str,
        wasm: Bytes,
        config: VersionConfig,
    ) -> Result<VersionInfo, FunctionError> {
        validate_name(name)?;
        let VersionConfig { limits, grants } = config;
        limits.validate().map_err(FunctionError::InvalidLimits)?;
        grants.validate().map_err(FunctionError::InvalidGrants)?;
        let hash = hex::encode(Sha256::digest(&wasm));
        let _guard = self.admin.lock().await;
        let started = Instant::now();
        let (prepared, outcome) = self
            .prepare(name, wasm.clone(), hash.clone(), grants.clone())
            .await?;
        let compile = CompileReport {
            code: match outcome {
                CacheOutcome::Hit => "cached",
                CacheOutcome::Compiled => "optimized",
                CacheOutcome::Baseline => "baseline",
                CacheOutcome::Reused => "reused",
            },
            ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        self.check_importers(name, &prepared)?;
        self.store_blob(&hash, &wasm).await?;
        let now = now();
        let limits_json = serde_json::to_string(&limits).map_err(anyhow::Error::from)?;
        let grants_json = serde_json::to_string(&grants).map_err(anyhow::Error::from)?;
        let mut tx = self.db.begin().await?;
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM function_versions WHERE function = ?",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO functions (name, active_version, created_at, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(name) DO UPDATE SET active_version = excluded.active_version, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(version)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO function_versions (function, version, hash, size, limits, grants, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(name)
        .bind(version)
        .bind(&hash)
        .bind(wasm.len() as i64)
        .bind(&limits_json)
        .bind(&grants_json)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.activate(name, version, limits, prepared, &hash, &grants);
        tracing::info!(function = name, version, hash, "deployed");
        if let Err(err) = self.prune_compiled(name).await {
            tracing::warn!(function = name, "pruning compiled artifacts: {err:#}");
        }
        Ok(VersionInfo {
            function: name.to_owned(),
            version,
            hash,
            size: wasm.len() as i64,
            limits,
            grants,
            active: true,
            created_at: now,
            compile: Some(compile),
        })
    }

    /// Re-activates `to`, or the version before the active one.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<i64>,
    ) -> Result<VersionInfo, FunctionError> {
        let _guard = self.admin.lock().await;
        let active = self.info(name).await?.active_version;
        let target = match to {
            Some(version) => version,
            None => sqlx::query_scalar::<_, Option<i64>>(
                "SELECT MAX(version) FROM function_versions WHERE function = ? AND version < ?",
            )
            .bind(name)
            .bind(active)
            .fetch_one(&self.db)
            .await?
            .ok_or_else(|| FunctionError::NoPreviousVersion(name.to_owned(), active))?,
        };
        let mut version = self
            .versions(name)
            .await?
            .into_iter()
            .find(|v| v.version == target)
            .ok_or_else(|| FunctionError::VersionNotFound(name.to_owned(), target))?;
        let (prepared, _) = self
            .prepare_stored(name, &version.hash, &version.grants)
            .await?;
        sqlx::query("UPDATE functions SET active_version = ?, updated_at = ? WHERE name = ?")
            .bind(target)
            .bind(now())
            .bind(name)
            .execute(&self.db)
            .await?;
        self.check_importers(name, &prepared)?;
        self.activate(
            name,
            target,
            version.limits,
            prepared,
            &version.hash,
            &version.grants,
        );
        tracing::info!(function = name, from = active, to = target, "rolled back");
        version.active = true;
        Ok(version)
    }

    /// Makes `name`'s active version the component with SHA-256 `hash`
    /// under `config`: nothing if it is already, the existing version that
    /// matches if there is one, else a new version from `wasm` or from the
    /// stored component.
    pub async fn ensure(
        &self,
        name: &str,
        hash: &str,
        config: VersionConfig,
        wasm: Option<Bytes>,
    ) -> Result<(), FunctionError> {
        let versions = match self.versions(name).await {
            Ok(versions) => versions,
            Err(FunctionError::NotFound(_)) => Vec::new(),
            Err(err) => return Err(err),
        };
        let matching = versions
            .iter()
            .filter(|v| v.hash == hash && v.limits == config.limits && v.grants == config.grants)
            .max_by_key(|v| v.version);
        match matching {
            Some(version) if version.active => Ok(()),
            Some(version) => self.rollback(name, Some(version.version)).await.map(drop),
            None => {
                let wasm = match wasm {
                    Some(wasm) => wasm,
                    None => tokio::fs::read(self.blob_path(hash))
                        .await
                        .map(Bytes::from)
                        .map_err(|err| {
                            FunctionError::Internal(anyhow::anyhow!(
                                "component {hash} is not stored: {err}"
                            ))
                        })?,
                };
                self.deploy(name, wasm, config).await.map(drop)
            }
        }
    }

    /// Whether the component with SHA-256 `hash` is stored.
    pub async fn has_component(&self, hash: &str) -> bool {
        hash.bytes().all(|b| b.is_ascii_hexdigit())
            && tokio::fs::try_exists(self.blob_path(hash))
                .await
                .unwrap_or(false)
    }

    /// The stored component with SHA-256 `hash`.
    pub async fn component(&self, hash: &str) -> Option<Bytes> {
        if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        tokio::fs::read(self.blob_path(hash))
            .await
            .ok()
            .map(Bytes::from)
    }

    /// The database of functions (`aura.db`), which also keeps the
    /// environment's snapshots.
    pub fn pool(&self) -> &SqlitePool {
        &self.db
    }

    /// Holds off deploys, rollbacks and deletes while the guard lives (for
    /// a backup); answers the component directory.
    pub async fn hold_changes(&self) -> (std::path::PathBuf, tokio::sync::MutexGuard<'_, ()>) {
        (self.blobs.clone(), self.admin.lock().await)
    }

    /// Removes the compiled artifacts of `name`'s older versions: those
    /// that are neither active nor among the newest [`KEEP_COMPILED`] of any
    /// function here. Their components stay, so a rollback to one compiles
    /// it again (and another environment running the same bytes does so at
    /// its next start).
    async fn prune_compiled(&self, name: &str) -> Result<(), FunctionError> {
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT v.hash FROM function_versions v WHERE v.function = ?1 \
             AND v.hash NOT IN ( \
               SELECT k.hash FROM function_versions k \
               WHERE k.version > (SELECT MAX(m.version) FROM function_versions m WHERE m.function = k.function) - ?2 \
               UNION SELECT a.hash FROM function_versions a \
               JOIN functions f ON f.name = a.function AND f.active_version = a.version)",
        )
        .bind(name)
        .bind(KEEP_COMPILED)
        .fetch_all(&self.db)
        .await?;
        for hash in stale {
            self.runtime.evict(&hash);
        }
        Ok(())
    }

    /// Removes a function, its versions, its logs and blobs no other version uses.
    pub async fn delete(&self, name: &str) -> Result<(), FunctionError> {
        let _guard = self.admin.lock().await;
        let versions = self.versions(name).await?;
        let importers = self.registry.importers_of(name);
        if !importers.is_empty() {
            return Err(FunctionError::InUse(in_use_message(name, &importers)));
        }
        self.registry.remove(name);
        sqlx::query("DELETE FROM functions WHERE name = ?")
            .bind(name)
            .execute(&self.db)
            .await?;
        for version in versions {
            let still_used: bool = sqlx::query_scalar(
                "SELECT EXISTS(SELECT 1 FROM function_versions WHERE hash = ?1) \
                     OR EXISTS(SELECT 1 FROM snapshot_components WHERE hash = ?1)",
            )
            .bind(&version.hash)
            .fetch_one(&self.db)
            .await?;
            if !still_used {
                let _ = tokio::fs::remove_file(self.blob_path(&version.hash)).await;
                self.runtime.evict(&version.hash);
            }
        }
        self.logs.delete_function(name).await?;
        tracing::info!(function = name, "deleted");
        Ok(())
    }

    /// All functions, by name.
    pub async fn list(&self) -> Result<Vec<FunctionInfo>, FunctionError> {
        let rows = sqlx::query(
            "SELECT f.name, f.active_version, f.created_at, f.updated_at, \
             (SELECT COUNT(*) FROM function_versions v WHERE v.function = f.name) AS versions \
             FROM functions f ORDER BY f.name",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(function_from_row).collect()
    }

    /// One function.
    pub async fn info(&self, name: &str) -> Result<FunctionInfo, FunctionError> {
        let row = sqlx::query(
            "SELECT f.name, f.active_version, f.created_at, f.updated_at, \
             (SELECT COUNT(*) FROM function_versions v WHERE v.function = f.name) AS versions \
             FROM functions f WHERE f.name = ?",
        )
        .bind(name)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| FunctionError::NotFound(name.to_owned()))?;
        function_from_row(&row)
    }

    /// A function's versions, newest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, FunctionError> {
        let active = self.info(name).await?.active_version;
        let rows = sqlx::query(
            "SELECT version, hash, size, limits, grants, created_at FROM function_versions \
             WHERE function = ? ORDER BY version DESC",
        )
        .bind(name)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                let version: i64 = row.try_get("version")?;
                Ok(VersionInfo {
                    function: name.to_owned(),
                    version,
                    hash: row.try_get("hash")?,
                    size: row.try_get("size")?,
                    limits: serde_json::from_str(row.try_get("limits")?)
                        .map_err(anyhow::Error::from)?,
                    grants: serde_json::from_str(row.try_get("grants")?)
                        .map_err(anyhow::Error::from)?,
                    active: version == active,
                    created_at: row.try_get("created_at")?,
                    compile: None,
                })
            })
            .collect()
    }

    /// The active version of `name`, if deployed.
    pub fn active(&self, name: &str) -> Option<Arc<Loaded>> {
        self.registry.active(name)
    }

    /// Invokes `function` with `request` (whose URI is the path after
    /// `/fn/{name}`), recording the invocation in the log when the guest
    /// finishes. Returns the response as soon as the guest sets it.
    pub async fn invoke<B>(
        &self,
        function: &str,
        active: &Loaded,
        id: String,
        request: http::Request<B>,
    ) -> Result<http::Response<ResponseBody>, Failure>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let started_at = now();
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        // Past its function's share of the pool, then past its
        // environment's, a request waits its turn (in order) for a while,
        // then is refused; other functions and environments keep theirs.
        let wait = QUEUE_WAIT.min(Duration::from_millis(active.limits.timeout_ms));
        let shares = async {
            let function_slot = self.registry.slots(function).acquire_owned().await?;
            let environment_slot = self.slots.clone().acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>((function_slot, environment_slot))
        };
        let slot = match tokio::time::timeout(wait, shares).await {
            Ok(Ok(slot)) => slot,
            _ => {
                let failure = Failure::Busy(self.registry.share);
                self.registry.finished(Finished {
                    id,
                    function,
                    version: active.version,
                    method,
                    path,
                    status: Some(503),
                    started_at,
                    duration: started.elapsed(),
                    failure: Some(failure.clone()),
                    monitor: &Monitor::default(),
                });
                return Err(failure);
            }
        };
        let monitor = Arc::new(Monitor::default());
        let Invocation { response, finished } = self
            .runtime
            .invoke(&active.prepared, &active.limits, request, monitor.clone())
            .await;
        let status = response
            .as_ref()
            .ok()
            .map(|r| i64::from(r.status().as_u16()));
        let registry = self.registry.clone();
        let function = function.to_owned();
        let version = active.version;
        tokio::spawn(async move {
            let failure = finished.await;
            drop(slot);
            registry.finished(Finished {
                id,
                function: &function,
                version,
                method,
                path,
                status,
                started_at,
                duration: started.elapsed(),
                failure,
                monitor: &monitor,
            });
        });
        response
    }

    /// Records an invocation refused before it ran (e.g. body too large).
    pub fn record_refused(
        &self,
        function: &str,
        version: i64,
        id: String,
        request: &http::request::Parts,
        failure: &Failure,
        status: u16,
    ) {
        self.registry.finished(Finished {
            id,
            function,
            version,
            method: request.method.to_string(),
            path: request.uri.path().to_owned(),
            status: Some(i64::from(status)),
            started_at: now(),
            duration: std::time::Duration::ZERO,
            failure: Some(failure.clone()),
            monitor: &Monitor::default(),
        });
    }

    /// Makes `prepared` (the component with SHA-256 `hash` under `grants`)
    /// the active `version` of `name`. Baseline code is replaced by
    /// optimized code compiled in the background, if the version is still
    /// active when it is ready.
    fn activate(
        &self,
        name: &str,
        version: i64,
        limits: Limits,
        prepared: Prepared,
        hash: &str,
        grants: &Grants,
    ) {
        let baseline = prepared.is_baseline();
        self.registry.activate(
            name,
            Loaded {
                version,
                limits,
                prepared,
            },
        );
        if !baseline {
            return;
        }
        let runtime = self.runtime.clone();
        let registry = self.registry.clone();
        let metrics = self.metrics.clone();
        let path = self.blob_path(hash);
        let (name, hash, grants) = (name.to_owned(), hash.to_owned(), grants.clone());
        tokio::spawn(async move {
            let compiled = async {
                let wasm = tokio::fs::read(&path).await?;
                let callees: Arc<dyn Callees> = registry.clone();
                let (name, hash, runtime) = (name.clone(), hash.clone(), runtime.clone());
                tokio::task::spawn_blocking(move || {
                    let prepared = runtime.optimize(&name, &wasm, &hash, &grants, &callees);
                    prepared.map(|prepared| (prepared, wasm))
                })
                .await?
                .map_err(anyhow::Error::from)
            };
            match compiled.await {
                Ok((prepared, wasm)) => {
                    Metrics::inc(&metrics.components_compiled);
                    if registry.upgrade(&name, version, prepared) {
                        tracing::info!(function = %name, version, "optimized code is active");
                    }
                    // Then the language engine alone, for the next builds.
                    let kept = tokio::task::spawn_blocking(move || runtime.keep_engine(&wasm));
                    if let Ok(true) = kept.await {
                        Metrics::inc(&metrics.engines_compiled);
                    }
                }
                Err(err) => {
                    tracing::warn!(function = %name, version, hash, "optimizing: {err:#}");
                }
            }
        });
    }

    /// Refuses to activate `prepared` as `name` if a function importing
    /// from `name` needs an interface it no longer exports.
    fn check_importers(&self, name: &str, prepared: &Prepared) -> Result<(), FunctionError> {
        let broken: Vec<(String, String)> = self
            .registry
            .importers_of(name)
            .into_iter()
            .filter(|(_, interface)| !prepared.exports().contains(interface))
            .collect();
        if broken.is_empty() {
            Ok(())
        } else {
            Err(FunctionError::InUse(in_use_message(name, &broken)))
        }
    }

    async fn prepare(
        &self,
        name: &str,
        wasm: Bytes,
        hash: String,
        grants: Grants,
    ) -> Result<(Prepared, CacheOutcome), FunctionError> {
        let runtime = self.runtime.clone();
        let name = name.to_owned();
        let callees: Arc<dyn Callees> = self.registry.clone();
        let (prepared, outcome) = tokio::task::spawn_blocking(move || {
            runtime.prepare(&name, &wasm, &hash, &grants, &callees)
        })
        .await
        .map_err(anyhow::Error::from)??;
        Metrics::inc(match outcome {
            CacheOutcome::Hit => &self.metrics.component_cache_hits,
            CacheOutcome::Compiled => &self.metrics.components_compiled,
            CacheOutcome::Baseline => &self.metrics.components_baseline,
            CacheOutcome::Reused => &self.metrics.components_reused,
        });
        Ok((prepared, outcome))
    }

    async fn prepare_stored(
        &self,
        name: &str,
        hash: &str,
        grants: &Grants,
    ) -> Result<(Prepared, CacheOutcome), FunctionError> {
        let wasm = tokio::fs::read(self.blob_path(hash))
            .await
            .map_err(|err| anyhow::anyhow!("reading component {hash}: {err}"))?;
        self.prepare(name, wasm.into(), hash.to_owned(), grants.clone())
            .await
    }

    async fn store_blob(&self, hash: &str, wasm: &[u8]) -> anyhow::Result<()> {
        let path = self.blob_path(hash);
        if tokio::fs::try_exists(&path).await? {
            return Ok(());
        }
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7()));
        tokio::fs::write(&tmp, wasm).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(())
    }

    fn blob_path(&self, hash: &str) -> PathBuf {
        self.blobs.join(format!("{hash}.wasm"))
    }
}

fn function_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<FunctionInfo, FunctionError> {
    Ok(FunctionInfo {
        name: row.try_get("name")?,
        active_version: row.try_get("active_version")?,
        versions: row.try_get("versions")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Function names: 1-63 of `a-z 0-9 - _`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), FunctionError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(FunctionError::InvalidName(name.to_owned()))
    }
}

/// "`pricing` is imported by checkout (example:pricing/quote@0.1.0)".
fn in_use_message(name: &str, importers: &[(String, String)]) -> String {
    let list: Vec<String> = importers
        .iter()
        .map(|(importer, interface)| format!("`{importer}` imports {interface}"))
        .collect();
    format!(
        "function `{name}` is in use: {}; change or delete those functions first",
        list.join(", ")
    )
}

fn now() -> String {
    timestamp(Utc::now())
}

fn timestamp(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn function_names_are_validated() {
        for good in ["hello", "a", "my-fn_2", "9lives"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Hello", "-x", "a/b", "a b", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
