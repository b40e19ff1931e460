//! The two storage backends behind one small API: statements with bound
//! arguments, write transactions, and rows decoded by column storage.
//!
//! SQLite runs with one writer connection (writes are serialised in the
//! process, so concurrent writers never meet `SQLITE_BUSY`) and a pool of
//! readers (WAL lets them read while the writer writes). PostgreSQL uses
//! one pool; schema changes there take an advisory lock so that several
//! nodes never migrate at once.

use super::filter::{Dialect, Param};
use super::schema::Storage;
use super::values::number_value;
use anyhow::Context as _;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// SQLite virtual-machine steps between checks of a read's deadline.
const DEADLINE_CHECK_OPS: i32 = 1000;

/// Whether `err` is a read cut off at its deadline (SQLite's interrupt,
/// PostgreSQL's `statement_timeout`).
pub fn timed_out(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some("9" | "57014")),
            _ => false,
        })
}

/// Whether `err` is a statement on a table that is gone: a collection
/// deleted while a request on it was under way.
pub fn missing_table(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => {
                db.code().as_deref() == Some("42P01") || db.message().starts_with("no such table")
            }
            _ => false,
        })
}

/// While alive, statements on a SQLite connection stop at a deadline (its
/// progress handler interrupts them); once dropped the handler lets every
/// statement run, until the next deadline replaces it.
struct Deadline(Arc<AtomicBool>);

impl Deadline {
    async fn set(conn: &mut sqlx::SqliteConnection, limit: Duration) -> anyhow::Result<Self> {
        let armed = Arc::new(AtomicBool::new(true));
        let flag = armed.clone();
        let until = Instant::now() + limit;
        conn.lock_handle()
            .await?
            .set_progress_handler(DEADLINE_CHECK_OPS, move || {
                !flag.load(Ordering::Relaxed) || Instant::now() < until
            });
        Ok(Self(armed))
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Where records live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// SQLite in memory: gone when the process ends.
    Memory,
    /// A SQLite file (WAL).
    File(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Location {
    /// Parses `memory`, `postgres://…`, `sqlite:PATH` or a file path.
    pub fn parse(text: &str) -> Self {
        if text == "memory" || text == ":memory:" {
            Location::Memory
        } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_owned())
        } else {
            Location::File(PathBuf::from(text.strip_prefix("sqlite:").unwrap_or(text)))
        }
    }

    /// How it is named in logs (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Location::Memory => "sqlite in memory".into(),
            Location::File(path) => format!("sqlite {}", path.display()),
            Location::Postgres(url) => match url::Url::parse(url) {
                Ok(url) => format!(
                    "postgres {}:{}{}",
                    url.host_str().unwrap_or(""),
                    url.port().unwrap_or(5432),
                    url.path()
                ),
                Err(_) => "postgres".into(),
            },
        }
    }
}

/// A bound argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// Text.
    Text(String),
    /// A double.
    Number(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// JSON text (cast to JSONB in PostgreSQL by its placeholder).
    Json(String),
    /// NULL.
    Null,
    /// NULL of a column type: PostgreSQL prepares a statement once with its
    /// parameter types, so a NULL must have the same type as the values
    /// the same statement binds later.
    NullOf(Storage),
    /// Bytes (a BLOB in SQLite, BYTEA in PostgreSQL).
    Bytes(bytes::Bytes),
}

impl From<Param> for Arg {
    fn from(param: Param) -> Self {
        match param {
            Param::Text(v) => Arg::Text(v),
            Param::Number(v) => Arg::Number(v),
            Param::Bool(v) => Arg::Bool(v),
            Param::Null => Arg::Null,
        }
    }
}

/// What an acknowledged write survives. On PostgreSQL it is the server's
/// to say (`synchronous_commit`), in either mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// The process being killed (SQLite `synchronous=NORMAL` in WAL mode:
    /// an OS crash or power loss may lose the newest writes, never
    /// corrupt the database).
    #[default]
    Fast,
    /// An OS crash or power loss too: SQLite `synchronous=FULL`, and each
    /// directory a file is renamed into is synced before the write is
    /// acknowledged.
    Safe,
}

/// A statement under construction: text plus arguments in order.
#[derive(Debug, Clone)]
pub struct Query {
    dialect: Dialect,
    /// The SQL text.
    pub text: String,
    /// The arguments of its placeholders.
    pub args: Vec<Arg>,
}

impl Query {
    /// An empty statement for `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            text: String::new(),
            args: Vec::new(),
        }
    }

    /// The dialect of the statement.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Appends trusted SQL text.
    pub fn sql(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `arg`, typed for `storage` in PostgreSQL.
    pub fn arg(&mut self, arg: Arg, storage: Storage) -> &mut Self {
        self.args.push(match arg {
            Arg::Null => Arg::NullOf(storage),
            other => other,
        });
        match self.dialect {
            Dialect::Sqlite => self.text.push_str(&format!("?{}", self.args.len())),
            Dialect::Postgres => {
                let cast = match storage {
                    Storage::Text => "text",
                    Storage::Number => "float8",
                    Storage::Bool => "boolean",
                    Storage::Json => "jsonb",
                };
                self.text.push_str(&format!("${}::{cast}", self.args.len()));
            }
        }
        self
    }

    /// Appends `sql`, binding its `?` marks in order to `args`, each typed
    /// by its kind (a NULL as text unless `NullOf` says otherwise).
    pub fn marks(&mut self, sql: &str, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        let mut parts = sql.split('?');
        self.sql(parts.next().unwrap_or_default());
        let mut args = args.into_iter();
        for part in parts {
            match args.next().expect("an argument for every `?`") {
                Arg::Int(value) => self.int(value),
                arg @ Arg::Number(_) => self.arg(arg, Storage::Number),
                arg @ Arg::Bool(_) => self.arg(arg, Storage::Bool),
                arg @ Arg::Json(_) => self.arg(arg, Storage::Json),
                Arg::NullOf(storage) => self.arg(Arg::Null, storage),
                arg @ Arg::Bytes(_) => self.bytes(arg),
                arg => self.arg(arg, Storage::Text),
            };
            self.sql(part);
        }
        debug_assert!(args.next().is_none(), "more arguments than `?` marks");
        self
    }

    fn bytes(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        match self.dialect {
            Dialect::Sqlite => self.text.push_str(&format!("?{}", self.args.len())),
            Dialect::Postgres => self.text.push_str(&format!("${}::bytea", self.args.len())),
        }
        self
    }

    /// Appends an integer placeholder (limits, offsets).
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.args.push(Arg::Int(value));
        match self.dialect {
            Dialect::Sqlite => self.text.push_str(&format!("?{}", self.args.len())),
            Dialect::Postgres => self.text.push_str(&format!("${}::int8", self.args.len())),
        }
        self
    }

    /// Appends a compiled filter condition whose placeholders were numbered
    /// after this statement's arguments.
    pub fn condition(&mut self, sql: super::filter::Sql) -> &mut Self {
        self.text.push_str(&sql.text);
        self.args.extend(sql.params.into_iter().map(Arg::from));
        self
    }
}

/// Quotes an identifier built from a validated name.
pub fn ident(name: &str) -> String {
    debug_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    format!("\"{name}\"")
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) | Arg::Json(v) => query.bind(v.clone()),
                Arg::Number(v) => query.bind(*v),
                Arg::Int(v) => query.bind(*v),
                Arg::Bool(v) => query.bind(*v),
                Arg::Null | Arg::NullOf(Storage::Text | Storage::Json) => {
                    query.bind(None::<String>)
                }
                Arg::NullOf(Storage::Number) => query.bind(None::<f64>),
                Arg::NullOf(Storage::Bool) => query.bind(None::<bool>),
                Arg::Bytes(v) => query.bind(&v[..]),
            };
        }
        query
    }};
}

/// Decodes rows, column `i` as `columns[i]`, on either backend.
fn decode<R: sqlx::Row>(rows: Vec<R>, columns: &[Storage]) -> anyhow::Result<Vec<Vec<Value>>>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, storage)| {
                    let value = match storage {
                        Storage::Text => row.try_get::<Option<String>, _>(i)?.map(Value::String),
                        Storage::Number => row.try_get::<Option<f64>, _>(i)?.map(number_value),
                        Storage::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
                        Storage::Json => match row.try_get::<Option<String>, _>(i)? {
                            Some(text) => {
                                Some(serde_json::from_str(&text).context("a stored JSON value")?)
                            }
                            None => None,
                        },
                    };
                    Ok(value.unwrap_or(Value::Null))
                })
                .collect()
        })
        .collect()
}

/// The connection pools.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite: one writer, several readers (the same pool in memory).
    Sqlite {
        /// Pool of read connections.
        reader: SqlitePool,
        /// The single write connection.
        writer: SqlitePool,
        /// Groups concurrent autocommit inserts.
        inserts: InsertBatcher,
    },
    /// PostgreSQL.
    Postgres(PgPool),
}

/// A write transaction, or a write connection in autocommit mode for work
/// that is a single statement (each statement commits as it runs, which
/// saves the `BEGIN` and `COMMIT` round trips).
pub enum Tx {
    /// On SQLite's writer connection.
    Sqlite(Transaction<'static, Sqlite>),
    /// On PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
    /// SQLite in autocommit mode: single-row inserts go to the
    /// [`InsertBatcher`], reads to the reader pool.
    SqliteBatched {
        /// Pool of read connections.
        reader: SqlitePool,
        /// The insert batcher.
        inserts: InsertBatcher,
    },
    /// A PostgreSQL connection, autocommitting.
    PostgresAutocommit(PoolConnection<Postgres>),
}

/// The PostgreSQL notification channel of schema changes.
pub const SCHEMA_CHANNEL: &str = "aura_schema";

/// The key of the advisory lock that serialises schema changes.
const SCHEMA_LOCK: i64 = 0x4155_5241_0001;

/// Evaluates `$body` with `$conn` a reader whose statements stop after
/// `$limit`: SQLite's progress handler, PostgreSQL's `statement_timeout`
/// for the transaction.
macro_rules! bounded {
    ($backend:expr, $limit:expr, $conn:ident => $body:expr) => {
        match $backend {
            Backend::Sqlite { reader, .. } => {
                let mut connection = reader.acquire().await?;
                let _deadline = Deadline::set(&mut connection, $limit).await?;
                let $conn = Conn::Sqlite(&mut connection);
                $body
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let timeout = format!(
                    "SET LOCAL statement_timeout = {}",
                    $limit.as_millis().max(1)
                );
                sqlx::query(&timeout).execute(&mut *tx).await?;
                let result = {
                    let $conn = Conn::Postgres(&mut tx);
                    $body?
                };
                tx.commit().await?;
                Ok(result)
            }
        }
    };
}

impl Backend {
    /// Writes a consistent copy of a SQLite database to `path` (`VACUUM
    /// INTO`, on a reader: writes go on meanwhile). `None` for PostgreSQL,
    /// which its own tools back up.
    pub async fn snapshot_into(&self, path: &Path) -> anyhow::Result<Option<()>> {
        let Backend::Sqlite { reader, .. } = self else {
            return Ok(None);
        };
        sqlx::query("VACUUM INTO ?")
            .bind(path.to_string_lossy().into_owned())
            .execute(reader)
            .await
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Some(()))
    }

    /// Connects, creating the SQLite file if needed.
    pub async fn open(location: &Location, durability: Durability) -> anyhow::Result<Self> {
        Ok(match location {
            Location::Memory => {
                // One connection that never closes: the database lives in it.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(SqliteConnectOptions::from_str("sqlite::memory:")?)
                    .await?;
                Backend::Sqlite {
                    reader: pool.clone(),
                    inserts: InsertBatcher::start(pool.clone()),
                    writer: pool,
                }
            }
            Location::File(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(match durability {
                        Durability::Fast => SqliteSynchronous::Normal,
                        Durability::Safe => SqliteSynchronous::Full,
                    })
                    .busy_timeout(Duration::from_secs(10))
                    .pragma("cache_size", "-16000");
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                let reader = SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                Backend::Sqlite {
                    reader,
                    inserts: InsertBatcher::start(writer.clone()),
                    writer,
                }
            }
            Location::Postgres(url) => {
                let options =
                    PgConnectOptions::from_str(url).context("parsing the PostgreSQL URL")?;
                Backend::Postgres(
                    PgPoolOptions::new()
                        .max_connections(16)
                        .acquire_timeout(Duration::from_secs(10))
                        .connect_with(options)
                        .await
                        .context("connecting to PostgreSQL")?,
                )
            }
        })
    }

    /// The SQL dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Backend::Sqlite { .. } => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A new statement in this backend's dialect.
    pub fn query(&self) -> Query {
        Query::new(self.dialect())
    }

    /// A statement whose `?` marks are bound, in order, to `args`.
    pub fn statement(&self, sql: &str, args: impl IntoIterator<Item = Arg>) -> Query {
        let mut query = self.query();
        query.marks(sql, args);
        query
    }

    /// Runs one statement (`?` marks bound to `args`) in a transaction of
    /// its own; answers the rows it changed.
    pub async fn run(&self, sql: &str, args: impl IntoIterator<Item = Arg>) -> anyhow::Result<u64> {
        let mut tx = self.begin().await?;
        let changed = tx.execute(&self.statement(sql, args)).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Runs one statement that answers rows (`… RETURNING`) in a
    /// transaction of its own, decoding them as `columns`.
    pub async fn run_returning(
        &self,
        sql: &str,
        args: impl IntoIterator<Item = Arg>,
        columns: &[Storage],
    ) -> anyhow::Result<Vec<Vec<Value>>> {
        let mut tx = self.begin().await?;
        let rows = tx.fetch(&self.statement(sql, args), columns).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Reads with `?` marks bound to `args`, decoding rows as `columns`.
    pub async fn rows(
        &self,
        sql: &str,
        args: impl IntoIterator<Item = Arg>,
        columns: &[Storage],
    ) -> anyhow::Result<Vec<Vec<Value>>> {
        self.fetch(&self.statement(sql, args), columns).await
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> anyhow::Result<Tx> {
        Ok(match self {
            Backend::Sqlite { writer, .. } => Tx::Sqlite(writer.begin().await?),
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// The write connection in autocommit mode: only for work that is one
    /// statement.
    pub async fn autocommit(&self) -> anyhow::Result<Tx> {
        Ok(match self {
            Backend::Sqlite {
                reader, inserts, ..
            } => Tx::SqliteBatched {
                reader: reader.clone(),
                inserts: inserts.clone(),
            },
            Backend::Postgres(pool) => Tx::PostgresAutocommit(pool.acquire().await?),
        })
    }

    /// Starts a transaction for a schema change, holding the schema lock.
    pub async fn begin_schema_change(&self) -> anyhow::Result<Tx> {
        let mut tx = self.begin().await?;
        if let Tx::Postgres(tx) = &mut tx {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SCHEMA_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        Ok(tx)
    }

    /// A connection for reads outside a transaction.
    fn reader(&self) -> Conn<'_> {
        match self {
            Backend::Sqlite { reader, .. } => Conn::SqlitePool(reader),
            Backend::Postgres(pool) => Conn::PostgresPool(pool),
        }
    }

    /// Runs a read, decoding each row's columns as `columns`.
    pub async fn fetch(
        &self,
        query: &Query,
        columns: &[Storage],
    ) -> anyhow::Result<Vec<Vec<Value>>> {
        self.reader().fetch(query, columns).await
    }

    /// Runs a read returning one integer (a count).
    pub async fn count(&self, query: &Query) -> anyhow::Result<i64> {
        self.reader().count(query).await
    }

    /// Reads the one binary column of the first row, if there is one.
    pub async fn bytes(
        &self,
        sql: &str,
        args: impl IntoIterator<Item = Arg>,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        self.reader().bytes(&self.statement(sql, args)).await
    }

    /// Connections that serve reads at once.
    pub fn readers(&self) -> u32 {
        match self {
            Backend::Sqlite { reader, .. } => reader.options().get_max_connections(),
            Backend::Postgres(pool) => pool.options().get_max_connections(),
        }
    }

    /// Runs a read like [`Backend::fetch`], cut off after `limit` (an
    /// error for which [`timed_out`] holds): for statements whose cost
    /// callers control, such as their filters.
    pub async fn fetch_bounded(
        &self,
        query: &Query,
        columns: &[Storage],
        limit: Duration,
    ) -> anyhow::Result<Vec<Vec<Value>>> {
        bounded!(self, limit, conn => conn.fetch(query, columns).await)
    }

    /// Runs a count like [`Backend::count`], cut off after `limit`.
    pub async fn count_bounded(&self, query: &Query, limit: Duration) -> anyhow::Result<i64> {
        bounded!(self, limit, conn => conn.count(query).await)
    }
}

/// Where a statement runs: a connection (in a transaction or not) or a
/// pool.
enum Conn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    SqlitePool(&'a SqlitePool),
    Postgres(&'a mut sqlx::PgConnection),
    PostgresPool(&'a PgPool),
}

/// Evaluates `$body` with `$executor` bound to whatever `$conn` holds.
macro_rules! on_conn {
    ($conn:expr, $executor:ident => $body:expr) => {
        match $conn {
            Conn::Sqlite($executor) => $body,
            Conn::SqlitePool($executor) => $body,
            Conn::Postgres($executor) => $body,
            Conn::PostgresPool($executor) => $body,
        }
    };
}

impl Conn<'_> {
    async fn execute(self, query: &Query) -> Result<u64, sqlx::Error> {
        Ok(
            on_conn!(self, e => bind_all!(sqlx::query(&query.text), &query.args)
            .execute(e)
            .await?
            .rows_affected()),
        )
    }

    async fn fetch(self, query: &Query, columns: &[Storage]) -> anyhow::Result<Vec<Vec<Value>>> {
        on_conn!(self, e => decode(
            bind_all!(sqlx::query(&query.text), &query.args).fetch_all(e).await?,
            columns
        ))
    }

    async fn bytes(self, query: &Query) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(
            on_conn!(self, e => bind_all!(sqlx::query_scalar::<_, Vec<u8>>(&query.text), &query.args)
            .fetch_optional(e)
            .await?),
        )
    }

    async fn count(self, query: &Query) -> anyhow::Result<i64> {
        Ok(
            on_conn!(self, e => bind_all!(sqlx::query_scalar::<_, i64>(&query.text), &query.args)
            .fetch_one(e)
            .await?),
        )
    }
}

impl Tx {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
            Tx::SqliteBatched { reader, .. } => Conn::SqlitePool(reader),
            Tx::Postgres(tx) => Conn::Postgres(tx),
            Tx::PostgresAutocommit(conn) => Conn::Postgres(conn),
        }
    }

    /// Runs a statement; returns the rows it affected.
    pub async fn execute(&mut self, query: &Query) -> Result<u64, sqlx::Error> {
        match self {
            Tx::SqliteBatched { inserts, .. } => inserts.insert(query).await,
            _ => self.conn().execute(query).await,
        }
    }

    /// Runs a read inside the transaction.
    pub async fn fetch(
        &mut self,
        query: &Query,
        columns: &[Storage],
    ) -> anyhow::Result<Vec<Vec<Value>>> {
        self.conn().fetch(query, columns).await
    }

    /// Runs a read returning one integer.
    pub async fn count(&mut self, query: &Query) -> anyhow::Result<i64> {
        self.conn().count(query).await
    }

    /// Tells the other nodes, once this transaction commits, that the
    /// definition of `collection` changed (PostgreSQL `NOTIFY`; a no-op on
    /// SQLite, which one process owns).
    pub async fn notify_schema_change(&mut self, collection: &str) -> Result<(), sqlx::Error> {
        self.notify(SCHEMA_CHANNEL, collection).await
    }

    /// Sends `payload` on PostgreSQL channel `channel` once this
    /// transaction commits (a no-op on SQLite, which one process owns).
    pub async fn notify(&mut self, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
        if let Conn::Postgres(conn) = self.conn() {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Commits (statements in autocommit mode are committed already).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
            Tx::SqliteBatched { .. } | Tx::PostgresAutocommit(_) => Ok(()),
        }
    }
}

/// Most rows in one grouped insert.
const MAX_GROUPED_ROWS: usize = 200;

/// An autocommit single-row insert waiting for the writer.
struct PendingInsert {
    /// `INSERT INTO "t" ("a", "b") VALUES `: rows with equal heads group.
    head: String,
    args: Vec<Arg>,
    done: tokio::sync::oneshot::Sender<Result<u64, sqlx::Error>>,
}

/// Turns concurrent single-row autocommit inserts (record creates) into
/// multi-row inserts on SQLite's one writer connection: one statement and
/// one commit for many rows instead of one each. If a grouped insert fails
/// (a unique violation, say), its rows are retried one by one so each gets
/// its own answer.
#[derive(Debug, Clone)]
pub struct InsertBatcher {
    sender: tokio::sync::mpsc::UnboundedSender<PendingInsert>,
}

impl std::fmt::Debug for PendingInsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.head)
    }
}

impl InsertBatcher {
    fn start(writer: SqlitePool) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(run_inserts(writer, receiver));
        Self { sender }
    }

    /// Inserts one row (`INSERT INTO … VALUES (?1, …)`), grouped with
    /// others when several wait.
    async fn insert(&self, query: &Query) -> Result<u64, sqlx::Error> {
        let head = match query.text.find(" VALUES (") {
            Some(at) => query.text[..at + " VALUES ".len()].to_owned(),
            None => return Err(sqlx::Error::Protocol("only inserts are batched".into())),
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        self.sender
            .send(PendingInsert {
                head,
                args: query.args.clone(),
                done,
            })
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn run_inserts(
    writer: SqlitePool,
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<PendingInsert>,
) {
    while let Some(first) = receiver.recv().await {
        let mut waiting = vec![first];
        while waiting.len() < MAX_GROUPED_ROWS {
            match receiver.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        let mut conn = match writer.acquire().await {
            Ok(conn) => conn,
            Err(_) => {
                for pending in waiting {
                    let _ = pending.done.send(Err(sqlx::Error::PoolTimedOut));
                }
                continue;
            }
        };
        // Group by statement head, keeping arrival order within a group.
        let mut groups: Vec<Vec<PendingInsert>> = Vec::new();
        for pending in waiting {
            match groups.iter_mut().find(|g| g[0].head == pending.head) {
                Some(group) => group.push(pending),
                None => groups.push(vec![pending]),
            }
        }
        for group in groups {
            if group.len() > 1 {
                let mut text = group[0].head.clone();
                let mut args = Vec::new();
                for (row, pending) in group.iter().enumerate() {
                    text.push_str(if row == 0 { "(" } else { ", (" });
                    for column in 0..pending.args.len() {
                        if column > 0 {
                            text.push_str(", ");
                        }
                        args.push(pending.args[column].clone());
                        text.push_str(&format!("?{}", args.len()));
                    }
                    text.push(')');
                }
                let grouped = bind_all!(sqlx::query(&text), &args)
                    .execute(&mut *conn)
                    .await;
                if grouped.is_ok() {
                    for pending in group {
                        let _ = pending.done.send(Ok(1));
                    }
                    continue;
                }
            }
            for pending in group {
                let mut text = pending.head.clone();
                text.push('(');
                for column in 0..pending.args.len() {
                    if column > 0 {
                        text.push_str(", ");
                    }
                    text.push_str(&format!("?{}", column + 1));
                }
                text.push(')');
                let result = bind_all!(sqlx::query(&text), &pending.args)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected());
                let _ = pending.done.send(result);
            }
        }
    }
}

/// The column type of `storage` in `dialect`.
pub fn column_type(dialect: Dialect, storage: Storage) -> &'static str {
    match (dialect, storage) {
        (_, Storage::Text) => "TEXT",
        (Dialect::Sqlite, Storage::Number) => "REAL",
        (Dialect::Postgres, Storage::Number) => "DOUBLE PRECISION",
        (_, Storage::Bool) => "BOOLEAN",
        (Dialect::Sqlite, Storage::Json) => "TEXT",
        (Dialect::Postgres, Storage::Json) => "JSONB",
    }
}

/// The SQL that reads column `column` so that [`Backend::fetch`] decodes it.
///
/// On PostgreSQL every column is cast to the type it is decoded as, so the
/// result type of a statement is fixed by its text: a prepared statement
/// cached on a pooled connection (of this node or another) before a field
/// changed type would otherwise fail with "cached plan must not change
/// result type" when run again with the same text.
pub fn select_column(dialect: Dialect, column: &str, storage: Storage) -> String {
    match (dialect, storage) {
        (Dialect::Sqlite, _) => column.to_owned(),
        (Dialect::Postgres, Storage::Text | Storage::Json) => format!("{column}::text"),
        (Dialect::Postgres, Storage::Number) => format!("{column}::float8"),
        (Dialect::Postgres, Storage::Bool) => format!("{column}::boolean"),
    }
}

/// A text argument.
pub fn text_arg(text: &str) -> Arg {
    Arg::Text(text.to_owned())
}

/// The argument storing a normal JSON value in a column of `storage`.
pub fn to_arg(value: &Value, storage: Storage) -> Arg {
    match (value, storage) {
        (Value::Null, _) => Arg::Null,
        (_, Storage::Json) => Arg::Json(value.to_string()),
        (Value::String(text), _) => Arg::Text(text.clone()),
        (Value::Number(n), _) => Arg::Number(n.as_f64().unwrap_or(0.0)),
        (Value::Bool(b), _) => Arg::Bool(*b),
        (other, _) => Arg::Text(other.to_string()),
    }
}

/// Whether `err` is a unique violation; if so, what the database named
/// (a constraint in PostgreSQL, `table.column` list in SQLite).
pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    let db = err.as_database_error()?;
    if !db.is_unique_violation() {
        return None;
    }
    Some(match db.constraint() {
        Some(name) => name.to_owned(),
        None => db
            .message()
            .rsplit_once(": ")
            .map(|(_, columns)| columns.to_owned())
            .unwrap_or_default(),
    })
}

/// The system tables, created on open.
pub async fn prepare(backend: &Backend) -> anyhow::Result<()> {
    let id = match backend.dialect() {
        Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    let real = match backend.dialect() {
        Dialect::Sqlite => "REAL",
        Dialect::Postgres => "DOUBLE PRECISION",
    };
    let statements = [
        "CREATE TABLE IF NOT EXISTS _aura_collections (name TEXT PRIMARY KEY, definition TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL)".to_owned(),
        format!("CREATE TABLE IF NOT EXISTS _aura_migrations (id {id}, collection TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL, changes TEXT NOT NULL)"),
        // Auth (see the auth module): password hashes, signing keys,
        // sessions and their refresh tokens.
        "CREATE TABLE IF NOT EXISTS _aura_credentials (user_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL)".to_owned(),
        "CREATE TABLE IF NOT EXISTS _aura_auth_keys (kid TEXT PRIMARY KEY, secret TEXT NOT NULL, created TEXT NOT NULL)".to_owned(),
        "CREATE TABLE IF NOT EXISTS _aura_sessions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, user_agent TEXT, ip TEXT, created TEXT NOT NULL, last_used TEXT NOT NULL, expires TEXT NOT NULL, revoked TEXT)".to_owned(),
        "CREATE TABLE IF NOT EXISTS _aura_refresh_tokens (hash TEXT PRIMARY KEY, session_id TEXT NOT NULL, created TEXT NOT NULL, used TEXT)".to_owned(),
        // Single-use tokens of the mail flows and the second sign-in step,
        // and two-factor enrollments (see auth::once and auth::totp).
        "CREATE TABLE IF NOT EXISTS _aura_auth_tokens (hash TEXT PRIMARY KEY, purpose TEXT NOT NULL, email TEXT NOT NULL, user_id TEXT, detail TEXT NOT NULL, created TEXT NOT NULL, expires TEXT NOT NULL, used TEXT)".to_owned(),
        format!("CREATE TABLE IF NOT EXISTS _aura_totp (user_id TEXT PRIMARY KEY, secret TEXT NOT NULL, created TEXT NOT NULL, enabled TEXT, last_step {real})"),
        "CREATE TABLE IF NOT EXISTS _aura_recovery_codes (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, used TEXT)".to_owned(),
        // Provider accounts linked to users (see auth::oauth).
        "CREATE TABLE IF NOT EXISTS _aura_identities (provider TEXT NOT NULL, subject TEXT NOT NULL, user_id TEXT NOT NULL, email TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (provider, subject))".to_owned(),
        "CREATE INDEX IF NOT EXISTS _aura_auth_tokens_email ON _aura_auth_tokens (email, purpose)".to_owned(),
        // Realtime: channel rules and presence members (see realtime::access
        // and realtime::presence).
        "CREATE TABLE IF NOT EXISTS _aura_channel_rules (pattern TEXT PRIMARY KEY, subscribe_rule TEXT, publish_rule TEXT, updated TEXT NOT NULL)".to_owned(),
        "CREATE TABLE IF NOT EXISTS _aura_presence (connection TEXT NOT NULL, channel TEXT NOT NULL, key TEXT NOT NULL, user_id TEXT, state TEXT NOT NULL, node TEXT NOT NULL, joined TEXT NOT NULL, seen TEXT NOT NULL, PRIMARY KEY (connection, channel))".to_owned(),
        "CREATE INDEX IF NOT EXISTS _aura_presence_channel ON _aura_presence (channel, joined)".to_owned(),
        // The audit log (see the audit module).
        format!("CREATE TABLE IF NOT EXISTS _aura_audit (id {id}, at TEXT NOT NULL, event TEXT NOT NULL, user_id TEXT, ip TEXT, detail TEXT NOT NULL)"),
    ];
    let mut statements = statements.to_vec();
    statements.extend(crate::scheduler::tables(backend.dialect()));
    statements.extend(crate::queue::tables(backend.dialect()));
    statements.extend(crate::secrets::tables(backend.dialect()));
    statements.extend(crate::cluster::tables(backend.dialect()));
    statements.extend(crate::functions::store::tables(backend.dialect()));
    if backend.dialect() == Dialect::Postgres {
        // Realtime events too large for a NOTIFY payload (see realtime::relay).
        statements.push("CREATE TABLE IF NOT EXISTS _aura_event_payloads (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())".to_owned());
        // Invocation logs every node reads (see functions::logs).
        statements.extend(crate::functions::logs::postgres_tables());
    }
    let mut tx = backend.begin_schema_change().await?;
    for statement in statements {
        let mut query = backend.query();
        query.sql(&statement);
        tx.execute(&query).await?;
    }
    add_columns(backend, &mut tx, &crate::scheduler::added_columns()).await?;
    tx.commit().await?;
    Ok(())
}

/// Adds the `(table, column, definition)` columns a later version gave to
/// tables that exist already (a column present is left alone).
pub async fn add_columns(
    backend: &Backend,
    tx: &mut Tx,
    columns: &[(&str, &str, &str)],
) -> anyhow::Result<()> {
    for (table, column, definition) in columns {
        let present = match backend.dialect() {
            Dialect::Sqlite => {
                tx.count(&backend.statement(
                    "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?",
                    [text_arg(table), text_arg(column)],
                ))
                .await?
                    > 0
            }
            Dialect::Postgres => false,
        };
        if !present {
            let exists = match backend.dialect() {
                Dialect::Sqlite => "",
                Dialect::Postgres => "IF NOT EXISTS ",
            };
            let mut query = backend.query();
            query.sql(&format!(
                "ALTER TABLE {table} ADD COLUMN {exists}{column} {definition}"
            ));
            tx.execute(&query).await?;
        }
    }
    Ok(())
}

/// Reads every stored definition.
pub async fn load_definitions(backend: &Backend) -> anyhow::Result<Vec<String>> {
    let mut query = backend.query();
    query.sql("SELECT definition FROM _aura_collections ORDER BY name");
    Ok(backend
        .fetch(&query, &[Storage::Text])
        .await?
        .into_iter()
        .filter_map(|mut row| row.pop()?.as_str().map(str::to_owned))
        .collect())
}
