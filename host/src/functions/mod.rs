//! The functions service: deploying components as immutable versions,
//! activating and rolling back versions, and invoking the active version.
//!
//! Versions and components live in the environment's database
//! ([`store`]); this service keeps the in-memory table of active,
//! pre-linked versions, and on a database shared by several nodes follows
//! the changes other nodes make ([`follow`]). The admin API and the invoke
//! route are thin doors onto it; it knows nothing of axum.

pub mod follow;
pub mod logs;
mod registry;
pub mod store;

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
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Store;

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
    store: Arc<Store>,
    runtime: Arc<Runtime>,
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
        store: Store,
        runtime: Arc<Runtime>,
        logs: InvocationLog,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let share = runtime.per_function_share();
        let slots = Arc::new(tokio::sync::Semaphore::new(
            runtime.per_environment_share() as usize
        ));
        let service = Self {
            slots,
            store: Arc::new(store),
            runtime,
            registry: Arc::new(Registry::new(logs.clone(), metrics.clone(), share)),
            admin: tokio::sync::Mutex::default(),
            logs,
            metrics,
        };
        let actives = service.store.actives(None).await?;
        service.load_all(actives).await;
        Ok(service)
    }

    /// Prepares and activates `pending` versions. A function that imports
    /// another loads after it: retries in rounds until nothing more loads.
    async fn load_all(&self, mut pending: Vec<(String, store::Version)>) {
        loop {
            let before = pending.len();
            let mut failed = Vec::new();
            for (name, version) in pending {
                match self
                    .prepare_stored(&name, &version.hash, &version.grants)
                    .await
                {
                    Ok((prepared, outcome)) => {
                        tracing::info!(function = %name, version = version.version, cache = ?outcome, "loaded function");
                        self.activate(&name, &version, prepared);
                    }
                    Err(err) => failed.push(((name, version), err)),
                }
            }
            let stuck = failed.len() == before;
            if failed.is_empty() || stuck {
                for ((name, version), err) in failed {
                    tracing::error!(function = %name, version = version.version, error = %err, "cannot load function");
                }
                break;
            }
            pending = failed.into_iter().map(|(entry, _)| entry).collect();
        }
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
        let now = now();
        let version = self
            .store
            .add_version(name, &hash, &wasm, &limits, &grants, &now)
            .await?;
        let stored = store::Version {
            version,
            hash,
            size: wasm.len() as i64,
            limits,
            grants,
            created_at: now,
        };
        self.activate(name, &stored, prepared);
        tracing::info!(function = name, version, hash = stored.hash, "deployed");
        if let Err(err) = self.prune_compiled(name).await {
            tracing::warn!(function = name, "pruning compiled artifacts: {err:#}");
        }
        Ok(VersionInfo {
            compile: Some(compile),
            ..VersionInfo::of(name, stored, true)
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
            None => self
                .store
                .previous(name, active)
                .await?
                .ok_or_else(|| FunctionError::NoPreviousVersion(name.to_owned(), active))?,
        };
        let version = self
            .store
            .versions(name)
            .await?
            .into_iter()
            .find(|v| v.version == target)
            .ok_or_else(|| FunctionError::VersionNotFound(name.to_owned(), target))?;
        let (prepared, _) = self
            .prepare_stored(name, &version.hash, &version.grants)
            .await?;
        self.check_importers(name, &prepared)?;
        self.store.set_active(name, target, &now()).await?;
        self.activate(name, &version, prepared);
        tracing::info!(function = name, from = active, to = target, "rolled back");
        Ok(VersionInfo::of(name, version, true))
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
                    None => self.component(hash).await.ok_or_else(|| {
                        FunctionError::Internal(anyhow::anyhow!("component {hash} is not stored"))
                    })?,
                };
                self.deploy(name, wasm, config).await.map(drop)
            }
        }
    }

    /// Whether the component with SHA-256 `hash` is stored.
    pub async fn has_component(&self, hash: &str) -> bool {
        self.store.has_component(hash).await.unwrap_or_else(|err| {
            tracing::warn!(hash, "looking up a component: {err:#}");
            false
        })
    }

    /// The stored component with SHA-256 `hash`.
    pub async fn component(&self, hash: &str) -> Option<Bytes> {
        self.store.component(hash).await.unwrap_or_else(|err| {
            tracing::warn!(hash, "reading a component: {err:#}");
            None
        })
    }

    /// Removes the compiled artifacts of `name`'s older versions: those
    /// that are neither active nor among the newest [`KEEP_COMPILED`] of any
    /// function here. Their components stay, so a rollback to one compiles
    /// it again (and another environment running the same bytes does so at
    /// its next start).
    async fn prune_compiled(&self, name: &str) -> Result<(), FunctionError> {
        for hash in self.store.stale(name, KEEP_COMPILED).await? {
            self.runtime.evict(&hash);
        }
        Ok(())
    }

    /// Removes a function, its versions, its logs and blobs no other version uses.
    pub async fn delete(&self, name: &str) -> Result<(), FunctionError> {
        let _guard = self.admin.lock().await;
        self.info(name).await?;
        let importers = self.registry.importers_of(name);
        if !importers.is_empty() {
            return Err(FunctionError::InUse(in_use_message(name, &importers)));
        }
        self.registry.remove(name);
        for hash in self.store.remove(name).await? {
            self.runtime.evict(&hash);
        }
        self.logs.delete_function(name).await?;
        tracing::info!(function = name, "deleted");
        Ok(())
    }

    /// All functions, by name.
    pub async fn list(&self) -> Result<Vec<FunctionInfo>, FunctionError> {
        Ok(self.store.functions(None).await?)
    }

    /// One function.
    pub async fn info(&self, name: &str) -> Result<FunctionInfo, FunctionError> {
        self.store
            .functions(Some(name))
            .await?
            .pop()
            .ok_or_else(|| FunctionError::NotFound(name.to_owned()))
    }

    /// A function's versions, newest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, FunctionError> {
        let active = self.info(name).await?.active_version;
        Ok(self
            .store
            .versions(name)
            .await?
            .into_iter()
            .map(|v| {
                let is_active = v.version == active;
                VersionInfo::of(name, v, is_active)
            })
            .collect())
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
    fn activate(&self, name: &str, stored: &store::Version, prepared: Prepared) {
        let baseline = prepared.is_baseline();
        let version = stored.version;
        self.registry.activate(
            name,
            Loaded {
                version,
                hash: stored.hash.clone(),
                limits: stored.limits,
                prepared,
            },
        );
        if !baseline {
            return;
        }
        let runtime = self.runtime.clone();
        let registry = self.registry.clone();
        let metrics = self.metrics.clone();
        let store = self.store.clone();
        let (name, hash, grants) = (name.to_owned(), stored.hash.clone(), stored.grants.clone());
        tokio::spawn(async move {
            let compiled = async {
                let wasm = store
                    .component(&hash)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("component {hash} is not stored"))?;
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
        let wasm = self
            .store
            .component(hash)
            .await?
            .ok_or_else(|| anyhow::anyhow!("component {hash} is not stored"))?;
        self.prepare(name, wasm, hash.to_owned(), grants.clone())
            .await
    }
}

impl VersionInfo {
    fn of(function: &str, stored: store::Version, active: bool) -> Self {
        Self {
            function: function.to_owned(),
            version: stored.version,
            hash: stored.hash,
            size: stored.size,
            limits: stored.limits,
            grants: stored.grants,
            active,
            created_at: stored.created_at,
            compile: None,
        }
    }
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
