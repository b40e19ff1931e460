//! Environments: several isolated stacks on one server.
//!
//! An environment is a whole set of services (collections and records,
//! users and sessions, functions and their versions, schedules, the queue,
//! buckets and objects, secrets, realtime channels and presence, the audit
//! log, backups), opened by [`open`] from its own directory. The default
//! environment lives in the data directory itself, so a server with one
//! environment is laid out as it always was; environment `NAME` lives in
//! `DATA/envs/NAME` and, on PostgreSQL, in schema `aura_env_NAME`.
//!
//! What environments share is what a process has once: the listener, the
//! admin token, the wasmtime engine with its instance pool and compiled
//! artifact cache, and the metrics. Nothing else crosses between them.

use crate::api::AppState;
use crate::db::{Database, Location};
use crate::functions::Functions;
use crate::functions::logs::{InvocationLog, LogStore};
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::realtime::Broker;
use crate::runtime::{Runtime, Sandbox};
use crate::scheduler::Scheduler;
use crate::server::ServeOptions;
use crate::store;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The environment of requests that name none.
pub const DEFAULT: &str = "default";

/// What every environment of the process shares.
pub struct Shared {
    /// The server's options.
    pub options: ServeOptions,
    /// The engine, its instance pool and the compiled-artifact cache.
    pub sandbox: Arc<Sandbox>,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
    /// The admin credentials.
    pub admin: Arc<crate::admin_tokens::AdminTokens>,
    /// Where clients reach the server (`--public-url`, else the listener).
    pub base_url: String,
}

/// The environments of the server, by name.
pub struct Environments {
    shared: Shared,
    open: RwLock<BTreeMap<String, Arc<AppState>>>,
    /// Serializes creations, so a name is opened once.
    creating: tokio::sync::Mutex<()>,
}

/// Why an environment cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The name is not allowed.
    #[error("{0}")]
    InvalidName(String),
    /// It exists already.
    #[error("environment `{0}` exists already")]
    Exists(String),
    /// Opening its services failed.
    #[error("opening environment `{0}`: {1:#}")]
    Open(String, anyhow::Error),
}

impl Environments {
    /// Opens the default environment and every one under `DATA/envs`.
    pub async fn open(shared: Shared) -> anyhow::Result<Arc<Self>> {
        let data_dir = shared.options.data_dir.clone();
        let mut open_envs = BTreeMap::new();
        let default = open(DEFAULT, &data_dir, &shared).await?;
        // Named admin tokens live in the default environment's database.
        shared.admin.attach(default.db.backend().clone());
        open_envs.insert(DEFAULT.to_owned(), default);
        for name in existing(&data_dir)? {
            let state = open(&name, &root(&data_dir, &name), &shared)
                .await
                .with_context(|| format!("opening environment `{name}`"))?;
            open_envs.insert(name, state);
        }
        Ok(Arc::new(Self {
            shared,
            open: RwLock::new(open_envs),
            creating: tokio::sync::Mutex::new(()),
        }))
    }

    /// The services of environment `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<AppState>> {
        self.read().get(name).cloned()
    }

    /// The names of the environments, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// The admin credentials (the same in every environment).
    pub fn admin(&self) -> &Arc<crate::admin_tokens::AdminTokens> {
        &self.shared.admin
    }

    /// Creates environment `name` and opens its services.
    pub async fn create(&self, name: &str) -> Result<Arc<AppState>, CreateError> {
        check_name(name).map_err(CreateError::InvalidName)?;
        let _creating = self.creating.lock().await;
        if self.get(name).is_some() {
            return Err(CreateError::Exists(name.to_owned()));
        }
        let dir = root(&self.shared.options.data_dir, name);
        let opened = async {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            open(name, &dir, &self.shared).await
        }
        .await;
        match opened {
            Ok(state) => {
                self.write().insert(name.to_owned(), state.clone());
                tracing::info!(environment = name, "environment created");
                Ok(state)
            }
            Err(err) => {
                // Nothing was served from it: leave no half-made directory.
                let _ = std::fs::remove_dir_all(&dir);
                Err(CreateError::Open(name.to_owned(), err))
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<AppState>>> {
        self.open.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<AppState>>> {
        self.open.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Checks an environment name: 1–40 of `a-z`, `0-9`, `-`, starting with a
/// letter or digit (it becomes a directory, a URL segment and part of a
/// PostgreSQL schema name).
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an environment name: use 1-40 of a-z, 0-9 and -, not starting with -"
        ))
    }
}

/// The directory of environment `name`.
fn root(data_dir: &Path, name: &str) -> PathBuf {
    if name == DEFAULT {
        data_dir.to_owned()
    } else {
        data_dir.join("envs").join(name)
    }
}

/// The environments under `DATA/envs`.
fn existing(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    let dir = data_dir.join("envs");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && name != DEFAULT && check_name(&name).is_ok() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Where environment `name` keeps collections and records: the default
/// environment where `--database` says; another one in its own SQLite file,
/// its own in-memory database, or its own PostgreSQL schema.
async fn location(options: &ServeOptions, name: &str, dir: &Path) -> anyhow::Result<Location> {
    let configured = options.database.as_deref().map(Location::parse);
    Ok(match configured {
        None => Location::File(dir.join("collections.db")),
        Some(location) if name == DEFAULT => location,
        Some(Location::File(_)) => Location::File(dir.join("collections.db")),
        Some(Location::Memory) => Location::Memory,
        Some(Location::Postgres(url)) => {
            let schema = format!("aura_env_{}", name.replace('-', "_"));
            crate::db::create_postgres_schema(&url, &schema).await?;
            let mut url = url::Url::parse(&url).context("parsing the PostgreSQL URL")?;
            url.query_pairs_mut()
                .append_pair("options[search_path]", &schema);
            Location::Postgres(url.into())
        }
    })
}

/// Opens the services of environment `name` from directory `dir`.
async fn open(name: &str, dir: &Path, shared: &Shared) -> anyhow::Result<Arc<AppState>> {
    let options = &shared.options;
    let broker = Arc::new(Broker::new(options.realtime_buffer));
    let location = location(options, name, dir).await?;
    let records = Database::open(location.clone(), options.query_timeout, options.durability)
        .await
        .with_context(|| format!("opening the database ({})", location.describe()))?;
    tracing::info!(environment = name, database = %location.describe(), "database open");
    records.publish_changes_to(broker.clone());
    if let Some(pool) = records.postgres_pool() {
        let channel = match name {
            DEFAULT => "aura_events".to_owned(),
            _ => format!("aura_events_{}", name.replace('-', "_")),
        };
        crate::realtime::relay::start(pool, broker.clone(), channel).await?;
    }
    let audit = Arc::new(crate::audit::AuditLog::start(
        records.backend().clone(),
        options.audit_retention_days,
    ));
    let mut auth_options = options.auth.clone();
    let public_url = match name {
        DEFAULT => shared.base_url.clone(),
        _ => format!("{}/env/{name}", shared.base_url),
    };
    auth_options.public_url = Some(public_url.clone());
    let auth =
        crate::auth::Auth::start(records.clone(), audit.clone(), &auth_options, public_url).await?;
    let (storage_root, remote) =
        crate::storage::place(options.storage_url.as_deref(), &dir.join("storage"), name)?;
    let storage = crate::storage::Storage::open(
        records.clone(),
        &storage_root,
        &crate::cluster::node_id(&options.data_dir)?,
        crate::storage::DEFAULT_MAX_OBJECT_BYTES,
        remote,
        options.durability,
    )
    .await
    .context("opening the object store")?;
    let secrets = crate::secrets::Secrets::start(
        records.clone(),
        audit.clone(),
        &options.master_key.for_environment(name),
        dir,
    )
    .await
    .context("opening the secrets")?;
    let runtime = Runtime::new(
        shared.sandbox.clone(),
        crate::runtime::Services {
            broker: broker.clone(),
            database: records.clone(),
            storage: storage.clone(),
            secrets: secrets.clone(),
        },
        auth.public_url(),
    );
    // The node's own database: what earlier versions kept there is moved
    // into the environment's database.
    let local = store::open_data(dir).await?;
    let kept = crate::functions::store::Store::open(
        records.backend().clone(),
        dir.join("components"),
        crate::functions::store::channel(name),
    )
    .await?;
    kept.adopt(&local)
        .await
        .context("moving functions out of aura.db")?;
    // With a shared database every node reads every node's invocations.
    let log_store = match records.postgres_pool() {
        Some(pool) => LogStore::Shared(pool),
        None => LogStore::Local(store::open_logs(dir).await?),
    };
    let logs = InvocationLog::start(log_store, shared.metrics.clone());
    let functions = Arc::new(Functions::load(kept, runtime, logs, shared.metrics.clone()).await?);
    if let Some(pool) = records.postgres_pool() {
        crate::functions::follow::start(&functions, pool).await?;
    }
    let scheduler = Scheduler::start(
        &local,
        records.clone(),
        functions.clone(),
        crate::cluster::node_id(&options.data_dir)?,
    )
    .await?;
    let queue = Queue::start(
        &local,
        records.clone(),
        dir,
        functions.clone(),
        options.max_queued,
    )
    .await?;
    let backups = crate::backup::Backups::start(
        dir,
        records.clone(),
        storage.clone(),
        secrets.clone(),
        options.auto_backup,
    );
    let presence = crate::realtime::presence::Presence::start(
        records.clone(),
        broker.clone(),
        options.presence_timeout,
    );
    Ok(Arc::new(AppState {
        environment: name.to_owned(),
        functions,
        db: records,
        auth,
        audit,
        scheduler,
        queue,
        presence,
        secrets,
        backups,
        realtime: broker,
        storage,
        metrics: shared.metrics.clone(),
        admin: shared.admin.clone(),
        applying: tokio::sync::Mutex::new(()),
    }))
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_safe_as_paths_urls_and_schemas() {
        for good in ["dev", "staging", "preview-42", "a", "0"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "Dev", "a_b", "a/b", "..", "a.b", &"x".repeat(41)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
