//! The WebAssembly runtime: one wasmtime [`Engine`] for the process, the
//! linker assembled from the capabilities Aura offers, compilation with an
//! on-disk cache of compiled artifacts, and per-request invocation.
//!
//! This module knows nothing of function names, versions or HTTP routes; the
//! `functions` service decides *what* runs and this module runs it.

mod auth;
mod budget;
mod capabilities;
mod compile_cache;
mod db;
mod events;
mod invoke;
mod limits;
mod links;
mod outbound;
mod output;
mod platform;
mod secrets;
mod split;
mod state;
mod storage;

pub use budget::MemoryBudget;
pub use capabilities::MissingGrant;
pub use invoke::{Failure, Invocation, ResponseBody};
pub use limits::{Limits, MAX_MEMORY_MB};
pub use links::{CallRecord, Callees, Link, Loaded};
pub use outbound::{Egress, NetworkAccess};
pub use state::{LimitHit, Monitor};

use crate::grants::Grants;
use crate::realtime::Broker;
use anyhow::Context as _;
use state::InvocationState;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// How often the epoch advances; the granularity of CPU-time limits.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default number of instances that may be alive at once (the pooling
/// allocator's slot count).
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;

/// Why a component was refused at deploy. The message is for the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InvalidComponent {
    /// The stable error code (`invalid_component`, `missing_grant`, `import_cycle`).
    pub code: &'static str,
    /// What is wrong with the component.
    pub message: String,
    /// Imports the host does not provide, by name (empty if not the reason).
    pub unknown_imports: Vec<String>,
    /// Imports the grants do not allow (empty if not the reason).
    pub missing_grants: Vec<MissingGrant>,
}

impl InvalidComponent {
    fn new(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_component",
            message: message.into(),
            unknown_imports: Vec::new(),
            missing_grants: Vec::new(),
        }
    }
}

/// Where a prepared component's code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a previously compiled artifact.
    Hit,
    /// Compiled now with the optimizing compiler (and written to the cache).
    Compiled,
    /// Compiled now with the baseline compiler: ready at once, slower to
    /// run; [`Runtime::optimize`] makes the optimized code to replace it.
    Baseline,
    /// The optimized code of its language engine, compiled for an earlier
    /// build, with the rest compiled now ([`split`]): ready at once;
    /// [`Runtime::optimize`] makes the whole component's code to replace it
    /// (whose memory snapshot maps copy-on-write instead of being copied).
    Reused,
}

/// Components at least this large compile first with the baseline
/// compiler (Winch) when no optimized artifact is cached: a JavaScript or
/// Python component (13-40 MB) takes Cranelift seconds, Winch a fraction of
/// that. Smaller ones (Rust functions are tens to hundreds of KiB) compile
/// with Cranelift directly, which is already quick for them.
pub const BASELINE_FROM_BYTES: usize = 4 * 1024 * 1024;

/// A component compiled, checked against its grants and pre-linked: ready
/// to instantiate.
pub struct Prepared {
    pre: ProxyPre<InvocationState>,
    baseline: bool,
    network: NetworkAccess,
    events: events::EventAccess,
    db: db::DbAccess,
    auth: auth::AuthAccess,
    storage: storage::StorageAccess,
    secrets: secrets::SecretAccess,
    exports: Vec<String>,
    links: Vec<Link>,
}

impl Prepared {
    /// The interfaces the component exports (versioned names).
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// The other functions' interfaces it imports.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Whether its code is the baseline compiler's (to be optimized).
    pub fn is_baseline(&self) -> bool {
        self.baseline
    }
}

/// The process-wide part of the runtime, shared by every environment: the
/// engines (optimizing, with its instance pool, and baseline) and their
/// linkers, the compiled-artifact cache and the outbound HTTP policy.
pub struct Sandbox {
    optimized: Compiler,
    baseline: Compiler,
    cache_dir: PathBuf,
    pooling: bool,
    egress: Arc<Egress>,
    /// One optimizing compilation in the background at a time, so a burst
    /// of deploys does not take every core from requests.
    optimizing: std::sync::Mutex<()>,
    incremental: Arc<compile_cache::DiskCacheStore>,
    max_instances: u32,
    /// The linear memory all instances may hold together.
    budget: Arc<MemoryBudget>,
}

/// An engine and the linker of Aura's capabilities on it. Code compiled
/// by one engine runs only in stores of that engine.
struct Compiler {
    engine: Engine,
    linker: Linker<InvocationState>,
}

impl Compiler {
    fn new(engine: Engine) -> wasmtime::Result<Self> {
        let linker = capabilities::linker(&engine)?;
        start_epoch_ticker(&engine);
        Ok(Self { engine, linker })
    }
}

/// The runtime of one environment: the shared [`Sandbox`] and the
/// environment's services behind the `aura:platform` interfaces.
pub struct Runtime {
    sandbox: Arc<Sandbox>,
    broker: Arc<Broker>,
    database: Arc<crate::db::Database>,
    storage: Arc<crate::storage::Storage>,
    secrets: Arc<crate::secrets::Secrets>,
    public_url: Arc<str>,
}

/// The services behind the `aura:platform` interfaces.
pub struct Services {
    /// Realtime events.
    pub broker: Arc<Broker>,
    /// Collections and records.
    pub database: Arc<crate::db::Database>,
    /// Buckets and objects.
    pub storage: Arc<crate::storage::Storage>,
    /// Secrets.
    pub secrets: Arc<crate::secrets::Secrets>,
}

impl Sandbox {
    /// Builds the engine (pooling allocator when the address space allows it,
    /// epoch interruption), the linker, and starts the epoch ticker thread.
    pub fn new(
        cache_dir: &Path,
        max_instances: u32,
        budget: MemoryBudget,
        egress: Egress,
    ) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(max_instances > 0, "the instance limit must be at least 1");
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("creating {}", cache_dir.display()))?;
        let incremental = Arc::new(compile_cache::DiskCacheStore::new(
            cache_dir.join("incremental"),
        ));
        let (engine, pooling) = match Engine::new(&engine_config(
            Some(max_instances),
            incremental.clone(),
        )?) {
            Ok(engine) => (engine, true),
            Err(err) => {
                tracing::warn!(error = %err, "pooling allocator unavailable; using on-demand allocation");
                (
                    Engine::new(&engine_config(None, incremental.clone())?)?,
                    false,
                )
            }
        };
        Ok(Arc::new(Self {
            optimized: Compiler::new(engine)?,
            baseline: Compiler::new(Engine::new(&baseline_config())?)?,
            cache_dir: cache_dir.to_owned(),
            pooling,
            egress: Arc::new(egress),
            optimizing: std::sync::Mutex::default(),
            incremental,
            max_instances,
            budget: Arc::new(budget),
        }))
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.pooling
    }
}

impl Runtime {
    /// The runtime of one environment: `services` on the shared `sandbox`;
    /// `public_url` is the environment's base URL (for presigned links).
    pub fn new(
        sandbox: Arc<Sandbox>,
        Services {
            broker,
            database,
            storage,
            secrets,
        }: Services,
        public_url: &str,
    ) -> Arc<Self> {
        Arc::new(Self {
            sandbox,
            broker,
            database,
            storage,
            secrets,
            public_url: public_url.into(),
        })
    }

    /// Compiles (or loads from the cache) a component whose bytes hash to
    /// `hash`, and checks it against `grants`. A large component with no
    /// cached artifact compiles with the baseline compiler
    /// ([`CacheOutcome::Baseline`]); [`Runtime::optimize`] then makes the
    /// optimized code. CPU-heavy: call from a blocking thread.
    pub fn prepare(
        self: &Arc<Self>,
        function: &str,
        wasm: &[u8],
        hash: &str,
        grants: &Grants,
        callees: &Arc<dyn Callees>,
    ) -> Result<(Prepared, CacheOutcome), InvalidComponent> {
        self.prepare_with(
            function,
            wasm,
            hash,
            grants,
            callees,
            wasm.len() >= BASELINE_FROM_BYTES,
        )
    }

    /// Compiles a component with the optimizing compiler (or loads its
    /// cached artifact), to replace its baseline code. Waits for other
    /// optimizations to finish first. CPU-heavy: call from a blocking thread.
    pub fn optimize(
        self: &Arc<Self>,
        function: &str,
        wasm: &[u8],
        hash: &str,
        grants: &Grants,
        callees: &Arc<dyn Callees>,
    ) -> Result<Prepared, InvalidComponent> {
        let _turn = self
            .sandbox
            .optimizing
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.prepare_with(function, wasm, hash, grants, callees, false)
            .map(|(prepared, _)| prepared)
    }

    /// Compiles and caches the language engine of `wasm` ([`split`]) if it
    /// has one not cached yet, so later builds on it deploy in a moment.
    /// Waits for other optimizations to finish first; true if it compiled
    /// one. CPU-heavy: call from a blocking thread.
    pub fn keep_engine(&self, wasm: &[u8]) -> bool {
        let _turn = self
            .sandbox
            .optimizing
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.sandbox.keep_engine(wasm)
    }

    fn prepare_with(
        self: &Arc<Self>,
        function: &str,
        wasm: &[u8],
        hash: &str,
        grants: &Grants,
        callees: &Arc<dyn Callees>,
        baseline_first: bool,
    ) -> Result<(Prepared, CacheOutcome), InvalidComponent> {
        let network = NetworkAccess::from_grants(grants).map_err(InvalidComponent::new)?;
        let events = events::EventAccess {
            broker: self.broker.clone(),
            patterns: grants
                .event_patterns()
                .map_err(InvalidComponent::new)?
                .into(),
        };
        let db = db::DbAccess {
            db: self.database.clone(),
            grants: Arc::new(grants.collection_access().map_err(InvalidComponent::new)?),
        };
        let storage = storage::StorageAccess {
            storage: self.storage.clone(),
            grants: Arc::new(grants.bucket_access().map_err(InvalidComponent::new)?),
            public_url: self.public_url.clone(),
        };
        let auth = auth::AuthAccess {
            db: self.database.clone(),
            service: grants.auth_service().map_err(InvalidComponent::new)?,
        };
        let secrets = secrets::SecretAccess {
            secrets: self.secrets.clone(),
            names: grants.secret_names().map_err(InvalidComponent::new)?.into(),
        };
        capabilities::check_format(wasm)?;
        let sandbox = &self.sandbox;
        let cached = sandbox.cached_artifact(hash);
        let mut imported_modules = Vec::new();
        let (component, outcome) = match sandbox.load_cached(&cached) {
            Some(component) => (component, CacheOutcome::Hit),
            None if let Some((component, modules)) =
                baseline_first.then(|| sandbox.reuse_engine(wasm)).flatten() =>
            {
                imported_modules = modules;
                (component, CacheOutcome::Reused)
            }
            None => {
                let (compiler, outcome) = if baseline_first {
                    (&sandbox.baseline, CacheOutcome::Baseline)
                } else {
                    (&sandbox.optimized, CacheOutcome::Compiled)
                };
                let started = Instant::now();
                let component = Component::new(&compiler.engine, wasm).map_err(|err| {
                    InvalidComponent::new(format!("the component does not compile: {err:#}"))
                })?;
                tracing::info!(hash, elapsed = ?started.elapsed(), ?outcome, "compiled component");
                if outcome == CacheOutcome::Compiled {
                    sandbox.store_artifact(&component, &cached);
                    sandbox.incremental.trim(compile_cache::MAX_BYTES);
                }
                (component, outcome)
            }
        };
        let compiler = if outcome == CacheOutcome::Baseline {
            &sandbox.baseline
        } else {
            &sandbox.optimized
        };
        let engine = &compiler.engine;
        let with_modules;
        let base = if imported_modules.is_empty() {
            &compiler.linker
        } else {
            let mut linker = compiler.linker.clone();
            for (name, module) in &imported_modules {
                linker
                    .root()
                    .module(name, module)
                    .map_err(|err| InvalidComponent::new(format!("{err:#}")))?;
            }
            with_modules = linker;
            &with_modules
        };
        let foreign = capabilities::foreign_imports(engine, &component);
        let links = links::resolve(engine, function, &foreign, grants, callees.as_ref())?;
        let pre = if links.is_empty() {
            capabilities::pre_link(engine, base, &component, grants)?
        } else {
            let linker = links::linker(self, base, &foreign, &links, callees)?;
            capabilities::pre_link(engine, &linker, &component, grants)?
        };
        let exports = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        Ok((
            Prepared {
                pre,
                baseline: matches!(outcome, CacheOutcome::Baseline | CacheOutcome::Reused),
                network,
                events,
                db,
                auth,
                storage,
                secrets,
                exports,
                links,
            },
            outcome,
        ))
    }

    /// How many invocations of one function may run at once: a quarter of
    /// the instance pool (at least one), so a flood on one function leaves
    /// the rest of the pool to the others.
    pub fn per_function_share(&self) -> u32 {
        (self.sandbox.max_instances / 4).max(1)
    }

    /// How many invocations of one environment's functions may run at
    /// once: three quarters of the pool (at least one), so a flood on
    /// several functions of one environment leaves the rest to the others.
    pub fn per_environment_share(&self) -> u32 {
        (self.sandbox.max_instances.saturating_mul(3) / 4).max(1)
    }

    /// Removes the compiled artifacts of the component with `hash`.
    pub fn evict(&self, hash: &str) {
        self.sandbox.evict(hash);
    }
}

impl Sandbox {
    fn evict(&self, hash: &str) {
        let Ok(entries) = std::fs::read_dir(&self.cache_dir) else {
            return;
        };
        let prefix = format!("{hash}-");
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn cached_artifact(&self, hash: &str) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.optimized
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        self.cache_dir
            .join(format!("{hash}-{:016x}.cwasm", hasher.finish()))
    }

    /// For a component whose language engine's optimized code is cached
    /// ([`split`]): the rest (its artifact, or compiled now) and the modules
    /// it imports by name (the engine, and its snapshot compiled now).
    fn reuse_engine(&self, wasm: &[u8]) -> Option<(Component, Vec<(String, wasmtime::Module)>)> {
        let started = Instant::now();
        let split = split::split(wasm)?;
        let engine = &self.optimized.engine;
        let engine_module = self.load_module(&self.cached_artifact(&split.hash))?;
        let loaded = started.elapsed();
        let component = self.rest(&split)?;
        let rest = started.elapsed();
        let mut modules = vec![(split.import, engine_module)];
        if let Some(snapshot) = &split.snapshot {
            match wasmtime::Module::new(engine, snapshot) {
                Ok(module) => modules.push((split::SNAPSHOT_IMPORT.to_owned(), module)),
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "the snapshot of a component does not compile");
                    return None;
                }
            }
        }
        tracing::info!(engine = %split.hash, ?loaded, ?rest, elapsed = ?started.elapsed(), "compiled component around a cached engine");
        Some((component, modules))
    }

    /// The rest of a split component: its cached artifact, or compiled and
    /// cached now.
    fn rest(&self, split: &split::Split) -> Option<Component> {
        let path = self.cached_artifact(&split.component_hash);
        if let Some(component) = self.load_cached(&path) {
            return Some(component);
        }
        match Component::new(&self.optimized.engine, &split.component) {
            Ok(component) => {
                self.store_artifact(&component, &path);
                Some(component)
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "the component without its engine does not compile");
                None
            }
        }
    }

    /// A module compiled earlier into `path`, if it is there and usable.
    fn load_module(&self, path: &Path) -> Option<wasmtime::Module> {
        if !path.exists() {
            return None;
        }
        // SAFETY: as in `load_cached`: written by `keep_engine` from
        // `Module::serialize` of this engine configuration, in Aura's own
        // data directory; wasmtime re-checks compatibility.
        match unsafe { wasmtime::Module::deserialize_file(&self.optimized.engine, path) } {
            Ok(module) => Some(module),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "ignoring unusable compiled engine");
                None
            }
        }
    }

    /// Compiles and caches the language engine of `wasm` ([`split`]) and
    /// the rest around it, if it has one that is not cached yet; true if it
    /// did.
    fn keep_engine(&self, wasm: &[u8]) -> bool {
        let Some(split) = split::split(wasm) else {
            return false;
        };
        let path = self.cached_artifact(&split.hash);
        if path.exists() {
            return false;
        }
        let started = Instant::now();
        let result = wasmtime::Module::new(&self.optimized.engine, &split.engine)
            .and_then(|module| module.serialize())
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)?;
                Ok(())
            });
        match result {
            Ok(()) => {
                self.rest(&split);
                tracing::info!(engine = %split.hash, elapsed = ?started.elapsed(), "compiled a language engine for later builds");
                true
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "could not compile a language engine");
                false
            }
        }
    }

    fn load_cached(&self, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store_artifact` from
        // `Component::serialize` of this same engine configuration (its name
        // carries the engine's compatibility hash) inside Aura's own data
        // directory; wasmtime re-checks compatibility and we fall back to
        // compiling if it refuses.
        match unsafe { Component::deserialize_file(&self.optimized.engine, path) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "ignoring unusable compiled artifact");
                None
            }
        }
    }

    fn store_artifact(&self, component: &Component, path: &Path) {
        let result = component
            .serialize()
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, path)?;
                Ok(())
            });
        if let Err(err) = result {
            tracing::warn!(path = %path.display(), error = %err, "could not cache compiled component");
        }
    }
}

/// The engine configuration; `pooling` is the instance slot count, or `None`
/// for on-demand allocation; compiled functions are kept in `incremental`
/// for later compilations of the same code ([`compile_cache`]).
fn engine_config(
    pooling: Option<u32>,
    incremental: Arc<compile_cache::DiskCacheStore>,
) -> anyhow::Result<Config> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config.enable_incremental_compilation(incremental)?;
    if let Some(slots) = pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(4))
            .total_memories(slots)
            .total_tables(slots.saturating_mul(2))
            .max_memories_per_component(2)
            .max_memory_size(usize::try_from(MAX_MEMORY_MB * 1024 * 1024).unwrap_or(usize::MAX))
            // Resetting a reused slot's memory in place instead of handing
            // the pages back to the kernel avoids a page fault per touched
            // page on the next instantiation: measured 7.6k -> 14.8k req/s
            // and 32 -> 15 us per instantiation (bench/README.md).
            .linear_memory_keep_resident(8 * 1024 * 1024)
            .table_keep_resident(64 * 1024);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Ok(config)
}

/// The baseline compiler's configuration: Winch, on-demand instance
/// allocation (its instances live only until the optimized code is ready),
/// and the same interruption as the optimized engine.
fn baseline_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.strategy(wasmtime::Strategy::Winch);
    config
}

/// One thread per engine advances the epoch; stores measure CPU time and
/// yield to other tasks at each tick.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("aura-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}
