//! The database service: collections with typed schemas, their migrations,
//! and records under access rules, on SQLite or PostgreSQL.
//!
//! One service, two doors: the REST API (`api::records`,
//! `api::collections`) and functions' `aura:platform/db` both call the
//! methods here, with a [`Caller`] that says whose rules apply.

pub mod backend;
pub use aura_filter as filter;
mod migrate;
pub mod plan;
mod records;
pub mod resolve;
pub mod schema;
pub mod values;

pub use backend::{Durability, Location};
pub use migrate::{Applied, Migration};
pub use records::{BatchOp, ListQuery, Page, ReadQuery, caller_filter};
pub use resolve::{Caller, User};

use backend::Backend;
use filter::Expr;
use schema::{Action, Collection, Compiled};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use values::FieldError;

/// A collection as the service holds it: definition, compiled patterns and
/// parsed rules.
#[derive(Debug)]
pub struct Entry {
    /// The definition.
    pub definition: Collection,
    /// Compiled field patterns.
    pub compiled: Compiled,
    rules: [Rule; 5],
}

/// A parsed access rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// Admins (and service callers) only.
    Locked,
    /// Everyone.
    Public,
    /// Those for whom the expression holds.
    Expr(Expr),
}

impl Entry {
    /// Checks and compiles a definition: its fields and the syntax of its
    /// rules (problems by path). Stored collections are made this way, and
    /// so are standalone definitions that only carry rules.
    pub fn new(definition: Collection) -> Result<Self, BTreeMap<String, String>> {
        let compiled = schema::check(&definition)?;
        let mut problems = BTreeMap::new();
        let rules = Action::ALL.map(|action| match definition.rule(action).map(str::trim) {
            None => Rule::Locked,
            Some("") => Rule::Public,
            Some(text) => match filter::parse(text) {
                Ok(expr) => Rule::Expr(expr),
                Err(error) => {
                    problems.insert(action.rule_name().to_owned(), error.to_string());
                    Rule::Locked
                }
            },
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            definition,
            compiled,
            rules,
        })
    }

    /// The rule of `action`.
    pub fn rule(&self, action: Action) -> &Rule {
        &self.rules[Action::ALL.iter().position(|a| *a == action).unwrap_or(0)]
    }
}

/// Collections by name.
pub type Catalog = HashMap<String, Arc<Entry>>;

/// A database error, mapped to HTTP by the API layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No such collection.
    #[error("no collection named `{0}`")]
    CollectionNotFound(String),
    /// The collection exists (create only).
    #[error("a collection named `{0}` already exists")]
    CollectionExists(String),
    /// The definition is invalid; problems keyed by property.
    #[error("the collection definition is invalid")]
    InvalidSchema(BTreeMap<String, String>),
    /// The change would lose data.
    #[error("the change would lose data; apply it with force to accept that")]
    Lossy(Vec<String>),
    /// Other collections relate to this one.
    #[error("collection `{0}` is the target of relation fields in: {1}")]
    InUse(String, String),
    /// No such record (or the caller may not see it).
    #[error("no record `{0}` in `{1}`")]
    RecordNotFound(String, String),
    /// Field values are invalid.
    #[error("the record is invalid")]
    Validation(BTreeMap<String, FieldError>),
    /// The body is not what the route takes.
    #[error("{0}")]
    InvalidBody(String),
    /// A query parameter is invalid.
    #[error("invalid `{param}`: {message}")]
    Query {
        /// The parameter (`filter`, `sort`, …).
        param: &'static str,
        /// Where in a filter the problem starts.
        position: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A rule denies the action.
    #[error("the {} rule does not allow this", .0.rule_name())]
    Forbidden(Action),
    /// A unique field or index already holds the value.
    #[error("another record has the same {}", .0.join(", "))]
    Unique(Vec<String>),
    /// A read whose cost the caller shaped ran past the query timeout.
    #[error("the query ran longer than {} ms and was stopped: narrow the filter, or sort by an indexed field", .0.as_millis())]
    Timeout(std::time::Duration),
    /// Anonymous reads have their share of the database's connections in
    /// use and none came free in time.
    #[error("too many anonymous reads are running; try again shortly, or sign in")]
    Busy,
    /// Anything else: logged, answered as an internal error.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The default of `--query-timeout-ms`.
pub const DEFAULT_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Creates `schema` in the PostgreSQL database at `url` if it is missing
/// (an environment's tables live in a schema of their own).
pub async fn create_postgres_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use sqlx::Connection as _;

    anyhow::ensure!(
        schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "`{schema}` is not a schema name"
    );
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("creating schema {schema}"))?;
    conn.close().await?;
    Ok(())
}

/// The database service.
pub struct Database {
    backend: Backend,
    location: Location,
    catalog: RwLock<Arc<Catalog>>,
    /// Where committed changes are published, once set.
    events: std::sync::OnceLock<Arc<crate::realtime::Broker>>,
    /// How long a read whose cost the caller shapes (a filter, a sort) may
    /// run.
    query_timeout: std::time::Duration,
    /// Anonymous lists hold one of these while they read: at most half of
    /// the readers, so signed-in users and the admin always find one.
    anonymous_readers: tokio::sync::Semaphore,
}

impl Database {
    /// Connects, creates the system tables and loads the collections. On
    /// PostgreSQL, also follows other nodes' schema changes.
    pub async fn open(
        location: Location,
        query_timeout: std::time::Duration,
        durability: Durability,
    ) -> anyhow::Result<Arc<Self>> {
        let backend = Backend::open(&location, durability).await?;
        backend::prepare(&backend).await?;
        let anonymous_readers =
            tokio::sync::Semaphore::new((backend.readers() as usize / 2).max(1));
        let db = Arc::new(Self {
            backend,
            location,
            catalog: RwLock::new(Arc::default()),
            events: std::sync::OnceLock::new(),
            query_timeout,
            anonymous_readers,
        });
        db.reload().await?;
        if let Backend::Postgres(pool) = &db.backend {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen(backend::SCHEMA_CHANNEL).await?;
            tokio::spawn(follow_schema_changes(Arc::downgrade(&db), listener));
        }
        Ok(db)
    }

    /// Publishes every committed record change to `broker`, on channel
    /// `collections.{collection}.{id}`.
    pub fn publish_changes_to(&self, broker: Arc<crate::realtime::Broker>) {
        let _ = self.events.set(broker);
    }

    /// The storage backend, for services that keep tables of their own
    /// beside the collections (auth).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The PostgreSQL pool, when records live there (for other services
    /// that coordinate nodes through it).
    pub fn postgres_pool(&self) -> Option<sqlx::PgPool> {
        match &self.backend {
            Backend::Postgres(pool) => Some(pool.clone()),
            Backend::Sqlite { .. } => None,
        }
    }

    /// Where the records live.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Re-reads the definitions from the database.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let mut catalog = Catalog::new();
        for text in backend::load_definitions(&self.backend).await? {
            let definition: Collection = serde_json::from_str(&text)?;
            let name = definition.name.clone();
            let entry = Entry::new(definition).map_err(|problems| {
                anyhow::anyhow!("stored collection `{name}` is invalid: {problems:?}")
            })?;
            catalog.insert(name, Arc::new(entry));
        }
        *self.catalog.write().expect("catalog lock") = Arc::new(catalog);
        Ok(())
    }

    /// A snapshot of the collections.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    /// Every collection, by name.
    pub fn collections(&self) -> Vec<Collection> {
        let catalog = self.catalog();
        let mut all: Vec<Collection> = catalog.values().map(|e| e.definition.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// One collection.
    pub fn collection(&self, name: &str) -> Result<Collection, DbError> {
        self.catalog()
            .get(name)
            .map(|e| e.definition.clone())
            .ok_or_else(|| DbError::CollectionNotFound(name.to_owned()))
    }

    /// Creates or changes a collection to match `definition`, migrating its
    /// table. `create_only` refuses an existing name; `force` accepts data
    /// loss; `dry_run` reports the changes without making them.
    pub async fn apply(
        &self,
        definition: Collection,
        options: ApplyOptions,
        actor: &str,
    ) -> Result<Applied, DbError> {
        if definition.name == schema::USERS && actor != schema::SYSTEM_ACTOR {
            schema::check_users(&definition).map_err(DbError::InvalidSchema)?;
        }
        let entry = Entry::new(definition.clone()).map_err(DbError::InvalidSchema)?;
        let mut catalog = (*self.catalog()).clone();
        if options.create_only && catalog.contains_key(&definition.name) {
            return Err(DbError::CollectionExists(definition.name));
        }
        let mut problems = BTreeMap::new();
        for field in &definition.fields {
            if let Some(target) = &field.collection
                && target != &definition.name
                && !catalog.contains_key(target)
            {
                problems.insert(
                    format!("fields.{}", field.name),
                    format!("no collection named `{target}`"),
                );
            }
        }
        catalog.insert(definition.name.clone(), Arc::new(entry));
        // Rules must compile against the new schema.
        let entry = &catalog[&definition.name];
        let request = resolve::RequestData::default();
        let resolver = resolve::PathResolver::new(
            &catalog,
            &entry.definition,
            "r0",
            self.backend.dialect(),
            &request,
        );
        for action in Action::ALL {
            if let Rule::Expr(expr) = entry.rule(action)
                && let Err(error) = filter::compile(expr, &resolver, self.backend.dialect())
            {
                problems.insert(action.rule_name().to_owned(), error.to_string());
            }
        }
        if !problems.is_empty() {
            return Err(DbError::InvalidSchema(problems));
        }
        let applied =
            migrate::apply(self, definition, options.force, options.dry_run, actor).await?;
        if applied.applied {
            self.reload().await?;
        }
        Ok(applied)
    }

    /// Drops a collection and its records (`force` if it holds any).
    pub async fn drop_collection(
        &self,
        name: &str,
        force: bool,
        actor: &str,
    ) -> Result<(), DbError> {
        if name == schema::USERS {
            return Err(DbError::InUse(
                name.to_owned(),
                "the auth service (accounts live there)".to_owned(),
            ));
        }
        let users: Vec<String> = self
            .collections()
            .into_iter()
            .filter(|c| {
                c.name != name
                    && c.fields
                        .iter()
                        .any(|f| f.collection.as_deref() == Some(name))
            })
            .map(|c| c.name)
            .collect();
        if !users.is_empty() {
            return Err(DbError::InUse(name.to_owned(), users.join(", ")));
        }
        migrate::drop_collection(self, name, force, actor).await?;
        self.reload().await?;
        Ok(())
    }

    /// A collection's migration history.
    pub async fn migrations(&self, name: &str) -> Result<Vec<Migration>, DbError> {
        migrate::history(self, name).await
    }
}

/// Reloads the catalog whenever any node changes a definition, and after
/// every reconnection (notifications sent meanwhile are lost).
async fn follow_schema_changes(
    db: std::sync::Weak<Database>,
    mut listener: sqlx::postgres::PgListener,
) {
    loop {
        let received = listener.recv().await;
        let Some(db) = db.upgrade() else {
            return;
        };
        if let Err(err) = &received {
            tracing::warn!(error = %err, "schema-change listener lost its connection; reconnecting");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        if let Err(err) = db.reload().await {
            tracing::warn!(error = %format!("{err:#}"), "reloading collection definitions");
        }
    }
}

/// How [`Database::apply`] treats existing collections and data loss.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Refuse if the collection exists.
    pub create_only: bool,
    /// Accept data loss.
    pub force: bool,
    /// Report the changes only.
    pub dry_run: bool,
}
