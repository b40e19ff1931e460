//! Invocation logs: one record per invocation (status, outcome, duration,
//! captured stdout/stderr), written in batches by a background task so the
//! request path never waits on the database.

use crate::metrics::Metrics;
use serde::Serialize;
use sqlx::{Row, SqlitePool};
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

/// Writes and reads invocation logs.
#[derive(Clone)]
pub struct InvocationLog {
    pool: SqlitePool,
    queue: mpsc::Sender<InvocationRecord>,
    metrics: Arc<Metrics>,
}

impl InvocationLog {
    /// Starts the background writer over `pool`.
    pub fn start(pool: SqlitePool, metrics: Arc<Metrics>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool.clone(), receiver));
        Self {
            pool,
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
        let rows =
            match after {
                Some(after) => sqlx::query(
                    "SELECT * FROM invocations WHERE function = ? AND seq > ? ORDER BY seq LIMIT ?",
                )
                .bind(function)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
                None => {
                    let mut rows = sqlx::query(
                        "SELECT * FROM invocations WHERE function = ? ORDER BY seq DESC LIMIT ?",
                    )
                    .bind(function)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.reverse();
                    rows
                }
            };
        rows.iter().map(from_row).collect()
    }

    /// Per-function counts of the invocations that started at or after
    /// `since` (RFC 3339 in UTC with milliseconds, as records store it).
    pub async fn stats_since(&self, since: &str) -> sqlx::Result<Vec<FunctionStats>> {
        let rows = sqlx::query(
            "SELECT function, COUNT(*) AS invocations, \
             SUM(CASE WHEN outcome <> 'ok' OR status >= 500 THEN 1 ELSE 0 END) AS errors, \
             AVG(duration_ms) AS mean_ms \
             FROM invocations WHERE started_at >= ? GROUP BY function ORDER BY function",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FunctionStats {
                    function: row.try_get("function")?,
                    invocations: row.try_get("invocations")?,
                    errors: row.try_get("errors")?,
                    mean_ms: row.try_get("mean_ms")?,
                })
            })
            .collect()
    }

    /// Removes every record of `function`.
    pub async fn delete_function(&self, function: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM invocations WHERE function = ?")
            .bind(function)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn from_row(row: &sqlx::sqlite::SqliteRow) -> sqlx::Result<InvocationRecord> {
    Ok(InvocationRecord {
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
}

async fn write_batches(pool: SqlitePool, mut receiver: mpsc::Receiver<InvocationRecord>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(err) = write(&pool, &batch).await {
            tracing::error!(error = %err, records = batch.len(), "writing invocation logs failed");
        }
        batch.clear();
    }
}

async fn write(pool: &SqlitePool, batch: &[InvocationRecord]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for r in batch {
        sqlx::query(
            "INSERT INTO invocations (id, function, version, method, path, status, outcome, error, \
             duration_ms, started_at, stdout, stderr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
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
    sqlx::query("DELETE FROM invocations WHERE seq <= (SELECT MAX(seq) FROM invocations) - ?")
        .bind(RETAINED_RECORDS)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
