//! Invocation logs: one record per invocation (status, outcome, duration,
//! captured stdout/stderr), written in batches by a background task so the
//! request path never waits on the database.
//!
//! On one node they live in the environment's own `logs.db` (log writes
//! never contend with data writes). With a shared PostgreSQL database they
//! live in it (`_aura_invocation_logs`), so every node reads every node's
//! invocations: `aura logs` and the dashboard show them wherever they ran.

use crate::metrics::Metrics;
use serde::Serialize;
use sqlx::{PgPool, Row, SqlitePool};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Records kept in the log database; older ones are pruned.
const RETAINED_RECORDS: i64 = 100_000;
/// Records written per transaction at most.
const BATCH: usize = 512;
/// Records waiting to be written before new ones are dropped.
const QUEUE: usize = 16_384;

/// One invocation's log record.
#[derive(Debug, Clone, Serialize)]
pub struct InvocationRecord {
    /// Position in the log, increasing; use it as `after` to follow.
    pub seq: i64,
    /// The invocation id (also sent as `x-aura-invocation-id`).
    pub id: String,
    /// Function name.
    pub function: String,
    /// Version that ran.
    pub version: i64,
    /// HTTP method of the request.
    pub method: String,
    /// Path after `/fn/{name}`.
    pub path: String,
    /// HTTP status sent, if a response was sent.
    pub status: Option<i64>,
    /// `ok` or the failure label (`trapped`, `timeout`, `memory_limit`…).
    pub outcome: String,
    /// What went wrong, for failures.
    pub error: Option<String>,
    /// Time from request to the guest finishing, in milliseconds.
    pub duration_ms: f64,
    /// When the invocation started (RFC 3339).
    pub started_at: String,
    /// Captured stdout (bounded).
    pub stdout: String,
    /// Captured stderr (bounded).
    pub stderr: String,
}

/// Invocations of one function since a moment, for the dashboard's overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionStats {
    /// Function name.
    pub function: String,
    /// Invocations that started since then.
    pub invocations: i64,
    /// Those that failed: an outcome other than `ok`, or a 5xx status.
    pub errors: i64,
    /// Mean duration in milliseconds.
    pub mean_ms: f64,
}

/// Where the records are kept.
#[derive(Clone)]
pub enum LogStore {
    /// This node's `logs.db`.
    Local(SqlitePool),
    /// The shared PostgreSQL database ([`postgres_tables`]).
    Shared(PgPool),
}

/// The shared store's table, created with the system tables on
/// PostgreSQL (under their lock, so nodes starting together agree).
pub fn postgres_tables() -> Vec<String> {
    vec![
        "CREATE TABLE IF NOT EXISTS _aura_invocation_logs (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, \
         function TEXT NOT NULL, version BIGINT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, \
         status BIGINT, outcome TEXT NOT NULL, error TEXT, duration_ms DOUBLE PRECISION NOT NULL, \
         started_at TEXT NOT NULL, stdout TEXT NOT NULL, stderr TEXT NOT NULL)"
            .into(),
        "CREATE INDEX IF NOT EXISTS _aura_invocation_logs_function_seq ON _aura_invocation_logs (function, seq)"
            .into(),
        "CREATE INDEX IF NOT EXISTS _aura_invocation_logs_started_at ON _aura_invocation_logs (started_at)"
            .into(),
    ]
}

/// Runs `$body` with `$pool` the store's pool and `$sql` a function that
/// gives a statement written with `?` and `invocations` in the store's
/// dialect (`$1`…, `_aura_invocation_logs` on PostgreSQL).
macro_rules! with_store {
    ($store:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match $store {
            LogStore::Local($pool) => {
                let $sql = |text: &str| text.to_owned();
                $body
            }
            LogStore::Shared($pool) => {
                let $sql = postgres;
                $body
            }
        }
    };
}

/// The record in `$row` (a row of either store).
macro_rules! from_row {
    ($row:expr) => {{
        let row = $row;
        Ok::<_, sqlx::Error>(InvocationRecord {
            seq: row.try_get("seq")?,
            id: row.try_get("id")?,
            function: row.try_get("function")?,
            version: row.try_get("version")?,
            method: row.try_get("method")?,
            path: row.try_get("path")?,
            status: row.try_get("status")?,
            outcome: row.try_get("outcome")?,
            error: row.try_get("error")?,
            duration_ms: row.try_get("duration_ms")?,
            started_at: row.try_get("started_at")?,
            stdout: row.try_get("stdout")?,
            stderr: row.try_get("stderr")?,
        })
    }};
}

/// A statement for the local store written for PostgreSQL's.
fn postgres(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let text = text
        .replace("FROM invocations", "FROM _aura_invocation_logs")
        .replace("INTO invocations", "INTO _aura_invocation_logs");
    for c in text.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes and reads invocation logs.
#[derive(Clone)]
pub struct InvocationLog {
    store: LogStore,
    queue: mpsc::Sender<InvocationRecord>,
    metrics: Arc<Metrics>,
}

impl InvocationLog {
    /// Starts the background writer over `store`.
    pub fn start(store: LogStore, metrics: Arc<Metrics>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store.clone(), receiver));
        Self {
            store,
            queue,
            metrics,
        }
    }

    /// Queues a record; drops it (and counts the drop) if the writer is behind.
    pub fn record(&self, record: InvocationRecord) {
        if self.queue.try_send(record).is_err() {
            Metrics::inc(&self.metrics.logs_dropped);
        }
    }

    /// Records of `function` with `seq > after`, oldest first, at most `limit`.
    /// Without `after`, the most recent `limit` records.
    pub async fn list(
        &self,
        function: &str,
        after: Option<i64>,
        limit: i64,
    ) -> sqlx::Result<Vec<InvocationRecord>> {
        let (text, newest) = match after {
            Some(_) => (
                "SELECT * FROM invocations WHERE function = ? AND seq > ? ORDER BY seq LIMIT ?",
                false,
            ),
            None => (
                "SELECT * FROM invocations WHERE function = ? ORDER BY seq DESC LIMIT ?",
                true,
            ),
        };
        let mut records = with_store!(&self.store, |pool, sql| {
            let statement = sql(text);
            let mut query = sqlx::query(&statement).bind(function);
            if let Some(after) = after {
                query = query.bind(after);
            }
            let rows = query.bind(limit).fetch_all(pool).await?;
            rows.iter()
                .map(|row| from_row!(row))
                .collect::<sqlx::Result<Vec<_>>>()?
        });
        if newest {
            records.reverse();
        }
        Ok(records)
    }

    /// Per-function counts of the invocations that started at or after
    /// `since` (RFC 3339 in UTC with milliseconds, as records store it).
    pub async fn stats_since(&self, since: &str) -> sqlx::Result<Vec<FunctionStats>> {
        // Cast, so that both backends answer the same types.
        let text = "SELECT function, CAST(COUNT(*) AS BIGINT) AS invocations, \
             CAST(SUM(CASE WHEN outcome <> 'ok' OR status >= 500 THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
             CAST(AVG(duration_ms) AS DOUBLE PRECISION) AS mean_ms \
             FROM invocations WHERE started_at >= ? GROUP BY function ORDER BY function";
        Ok(with_store!(&self.store, |pool, sql| {
            let statement = sql(text);
            let rows = sqlx::query(&statement).bind(since).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(FunctionStats {
                        function: row.try_get("function")?,
                        invocations: row.try_get("invocations")?,
                        errors: row.try_get("errors")?,
                        mean_ms: row.try_get("mean_ms")?,
                    })
                })
                .collect::<sqlx::Result<Vec<_>>>()?
        }))
    }

    /// Removes every record of `function`.
    pub async fn delete_function(&self, function: &str) -> sqlx::Result<()> {
        with_store!(&self.store, |pool, sql| {
            sqlx::query(&sql("DELETE FROM invocations WHERE function = ?"))
                .bind(function)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

async fn write_batches(store: LogStore, mut receiver: mpsc::Receiver<InvocationRecord>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(err) = write(&store, &batch).await {
            tracing::error!(error = %err, records = batch.len(), "writing invocation logs failed");
        }
        batch.clear();
    }
}

async fn write(store: &LogStore, batch: &[InvocationRecord]) -> sqlx::Result<()> {
    let insert = "INSERT INTO invocations (id, function, version, method, path, status, outcome, error, \
         duration_ms, started_at, stdout, stderr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let prune = "DELETE FROM invocations WHERE seq <= (SELECT MAX(seq) FROM invocations) - ?";
    with_store!(store, |pool, sql| {
        let (insert, prune) = (sql(insert), sql(prune));
        let mut tx = pool.begin().await?;
        for r in batch {
            sqlx::query(&insert)
                .bind(&r.id)
                .bind(&r.function)
                .bind(r.version)
                .bind(&r.method)
                .bind(&r.path)
                .bind(r.status)
                .bind(&r.outcome)
                .bind(&r.error)
                .bind(r.duration_ms)
                .bind(&r.started_at)
                .bind(&r.stdout)
                .bind(&r.stderr)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(&prune)
            .bind(RETAINED_RECORDS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    })
}
