//! Asynchronous invocations: `POST /fn/{name}` with `Prefer: respond-async`
//! is stored in a durable queue and answered 202 at once; a dispatcher runs
//! queued invocations, at most `async_concurrency` per function at a time,
//! and stores each response for `GET /api/invocations/{id}`.
//!
//! It owns the table `_aura_invocations`, in the collections' database, so
//! nodes sharing a PostgreSQL database share the queue: any node may run an
//! invocation queued on another, and `GET /api/invocations/{id}` answers on
//! every node. A queued invocation is claimed with a conditional update
//! (one node wins) and runs under a lease its node renews. Invocations a
//! node was running when it stopped are queued again when it starts (its
//! id is kept in `DATA/node.id`), or by any node once their lease lapses,
//! so each runs at least once (exactly once unless a node dies mid-run).
//!
//! The request is stored without its `Authorization` and `Cookie` headers:
//! the caller they named is resolved when the request is accepted and
//! stored instead, and the function runs for that caller.

use crate::db::backend::{Arg, column_type, text_arg};
use crate::db::filter::Dialect;
use crate::db::schema::Storage;
use crate::db::values::{format_time, now};
use crate::db::{Caller, Database, User};
use crate::functions::Functions;
use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The request header that carries the invocation's id to the function.
pub const IDEMPOTENCY_KEY: &str = "x-aura-idempotency-key";

/// Largest response body stored per invocation; the rest is dropped and
/// the response marked truncated.
pub const MAX_STORED_RESPONSE: usize = 1024 * 1024;
/// Finished invocations are kept this long.
const RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// How long a running invocation's lease lasts unless renewed.
const LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// How often a node renews the leases of what it runs.
const RENEW: Duration = Duration::from_secs(10);

/// Errors of the queue; the API maps each to a stable code.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue holds its maximum of waiting invocations.
    #[error("the queue already holds {0} waiting invocations; try again later")]
    Full(u64),
    /// No such invocation.
    #[error("no invocation `{0}`")]
    NotFound(String),
    /// Database trouble; logged, never shown verbatim.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for QueueError {
    fn from(err: sqlx::Error) -> Self {
        QueueError::Internal(err.into())
    }
}

/// A request to run later.
pub struct Queued {
    /// The invocation id.
    pub id: String,
    /// The function.
    pub function: String,
    /// HTTP method.
    pub method: String,
    /// Path and query after `/fn/{name}`.
    pub path: String,
    /// Request headers (without credentials).
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Bytes,
    /// Who asked.
    pub caller: Caller,
}

/// The queue's table, created with the other system tables.
pub fn tables(dialect: Dialect) -> Vec<String> {
    let number = column_type(dialect, Storage::Number);
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS _aura_invocations (id TEXT PRIMARY KEY, function TEXT NOT NULL, method TEXT NOT NULL, \
             path TEXT NOT NULL, headers TEXT NOT NULL, body TEXT NOT NULL, caller TEXT NOT NULL, status TEXT NOT NULL, \
             attempts {number} NOT NULL, node TEXT, lease_until TEXT, response_status {number}, response_headers TEXT, \
             response_body TEXT, response_truncated BOOLEAN NOT NULL, error TEXT, created_at TEXT NOT NULL, \
             started_at TEXT, finished_at TEXT)"
        ),
        "CREATE INDEX IF NOT EXISTS _aura_invocations_queue ON _aura_invocations (status, created_at)".to_owned(),
    ]
}

/// How a caller is stored with its invocation.
fn caller_json(caller: &Caller) -> String {
    match caller {
        Caller::Service => json!({ "service": true }),
        Caller::User(user) => json!({ "user": user }),
    }
    .to_string()
}

fn caller_from(text: &str) -> Caller {
    let value: Value = serde_json::from_str(text).unwrap_or_default();
    if value["service"] == json!(true) {
        return Caller::Service;
    }
    Caller::User(serde_json::from_value::<Option<User>>(value["user"].clone()).unwrap_or(None))
}

fn base64_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The durable queue and its dispatcher.
pub struct Queue {
    db: Arc<Database>,
    functions: Arc<Functions>,
    max_queued: u64,
    node: String,
    running: Mutex<HashMap<String, u32>>,
    wake: Notify,
}

impl Queue {
    /// Moves invocations an earlier version kept in `local` (`aura.db`),
    /// re-queues those this node's last run left running, and starts the
    /// dispatcher.
    pub async fn start(
        local: &SqlitePool,
        db: Arc<Database>,
        data_dir: &std::path::Path,
        functions: Arc<Functions>,
        max_queued: u64,
    ) -> Result<Arc<Self>, QueueError> {
        let queue = Arc::new(Self {
            db,
            functions,
            max_queued,
            node: crate::cluster::node_id(data_dir)?,
            running: Mutex::default(),
            wake: Notify::new(),
        });
        queue
            .adopt(local)
            .await
            .map_err(|e| anyhow::anyhow!("moving invocations out of aura.db: {e:#}"))?;
        let requeued = queue.db.backend().run(
                "UPDATE _aura_invocations SET status = 'queued', node = NULL WHERE status = 'running' AND node = ?",
                vec![text_arg(&queue.node)],
            )
            .await?;
        if requeued > 0 {
            tracing::warn!(
                requeued,
                "re-queued asynchronous invocations interrupted by the last stop"
            );
        }
        tokio::spawn(queue.clone().dispatch());
        Ok(queue)
    }

    /// Copies the old `async_invocations` table of `local` into the shared
    /// one, then drops it.
    async fn adopt(&self, local: &SqlitePool) -> anyhow::Result<()> {
        if !crate::store::has_table(local, "async_invocations").await? {
            return Ok(());
        }
        let backend = self.db.backend();
        let mut tx = backend.begin().await?;
        for row in sqlx::query("SELECT * FROM async_invocations")
            .fetch_all(local)
            .await?
        {
            let text = |name: &str| row.try_get::<String, _>(name).map(Arg::Text);
            let optional = |name: &str| {
                row.try_get::<Option<String>, _>(name)
                    .map(|v| v.map_or(Arg::NullOf(Storage::Text), Arg::Text))
            };
            let status: String = row.try_get("status")?;
            let status = if status == "running" {
                "queued".to_owned()
            } else {
                status
            };
            let insert = backend.statement(
                "INSERT INTO _aura_invocations (id, function, method, path, headers, body, caller, status, attempts, \
                 response_status, response_headers, response_body, response_truncated, error, created_at, started_at, \
                 finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                [
                    text("id")?,
                    text("function")?,
                    text("method")?,
                    text("path")?,
                    text("headers")?,
                    Arg::Text(base64_text(&row.try_get::<Vec<u8>, _>("body")?)),
                    Arg::Text(caller_json(&Caller::ANONYMOUS)),
                    Arg::Text(status),
                    Arg::Number(row.try_get::<i64, _>("attempts")? as f64),
                    row.try_get::<Option<i64>, _>("response_status")?
                        .map_or(Arg::NullOf(Storage::Number), |s| Arg::Number(s as f64)),
                    optional("response_headers")?,
                    row.try_get::<Option<Vec<u8>>, _>("response_body")?
                        .map_or(Arg::NullOf(Storage::Text), |b| Arg::Text(base64_text(&b))),
                    Arg::Bool(row.try_get::<bool, _>("response_truncated")?),
                    optional("error")?,
                    text("created_at")?,
                    optional("started_at")?,
                    optional("finished_at")?,
                ],
            );
            tx.execute(&insert).await?;
        }
        tx.commit().await?;
        sqlx::query("DROP TABLE async_invocations")
            .execute(local)
            .await?;
        Ok(())
    }

    /// Stores `queued` for running; refuses when the queue is full.
    pub async fn enqueue(&self, queued: Queued) -> Result<(), QueueError> {
        let waiting = self
            .db
            .backend()
            .rows(
                "SELECT CAST(COUNT(*) AS TEXT) FROM _aura_invocations WHERE status = 'queued'",
                vec![],
                &[Storage::Text],
            )
            .await?
            .first()
            .and_then(|row| row[0].as_str()?.parse::<u64>().ok())
            .unwrap_or(0);
        if waiting >= self.max_queued {
            return Err(QueueError::Full(self.max_queued));
        }
        let headers = serde_json::to_string(&queued.headers).unwrap_or_else(|_| "[]".into());
        self.db.backend().run(
            "INSERT INTO _aura_invocations (id, function, method, path, headers, body, caller, status, attempts, \
             response_truncated, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
            vec![
                text_arg(&queued.id),
                text_arg(&queued.function),
                text_arg(&queued.method),
                text_arg(&queued.path),
                Arg::Text(headers),
                Arg::Text(base64_text(&queued.body)),
                Arg::Text(caller_json(&queued.caller)),
                Arg::Number(0.0),
                Arg::Bool(false),
                Arg::Text(now()),
            ],
        )
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// The invocation's status and, when finished, its stored response.
    pub async fn get(&self, id: &str) -> Result<Value, QueueError> {
        let row = self.db.backend().rows(
                "SELECT id, function, status, attempts, error, created_at, started_at, finished_at, response_status, \
                 response_headers, response_body, response_truncated FROM _aura_invocations WHERE id = ?",
                vec![text_arg(id)],
                &[
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Number,
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Number,
                    Storage::Text,
                    Storage::Text,
                    Storage::Bool,
                ],
            )
            .await?
            .pop()
            .ok_or_else(|| QueueError::NotFound(id.to_owned()))?;
        let mut answer = json!({
            "id": row[0],
            "function": row[1],
            "status": row[2],
            "attempts": row[3].as_f64().map_or(0, |n| n as i64),
            "error": row[4],
            "created_at": row[5],
            "started_at": row[6],
            "finished_at": row[7],
            "response": Value::Null,
        });
        if let Some(status) = row[8].as_f64() {
            let headers: Vec<(String, String)> =
                serde_json::from_str(row[9].as_str().unwrap_or("[]")).unwrap_or_default();
            let headers: Map<String, Value> = headers
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let body = base64::engine::general_purpose::STANDARD
                .decode(row[10].as_str().unwrap_or_default())
                .unwrap_or_default();
            let mut response = json!({
                "status": status as i64,
                "headers": headers,
                "truncated": row[11].as_bool().unwrap_or(false),
            });
            match String::from_utf8(body) {
                Ok(text) => response["body"] = Value::String(text),
                Err(bytes) => {
                    response["body_base64"] = Value::String(base64_text(bytes.as_bytes()));
                }
            }
            answer["response"] = response;
        }
        Ok(answer)
    }

    async fn dispatch(self: Arc<Self>) {
        let mut last_prune = std::time::Instant::now();
        let mut last_renew = std::time::Instant::now();
        loop {
            if let Err(err) = self.start_ready().await {
                tracing::error!(error = %err, "async queue: dispatching failed");
            }
            if last_renew.elapsed() > RENEW {
                last_renew = std::time::Instant::now();
                if let Err(err) = self.renew().await {
                    tracing::error!(error = %err, "async queue: renewing leases failed");
                }
            }
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = std::time::Instant::now();
                let cutoff = format_time(Utc::now() - RETENTION);
                let _ = self
                    .db
                    .backend()
                    .run(
                        "DELETE FROM _aura_invocations WHERE finished_at < ?",
                        vec![text_arg(&cutoff)],
                    )
                    .await;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// Renews the leases of what this node runs; queues again what a
    /// stopped node left running.
    async fn renew(&self) -> anyhow::Result<()> {
        let lease = format_time(Utc::now() + LEASE);
        self.db.backend().run(
            "UPDATE _aura_invocations SET lease_until = ? WHERE status = 'running' AND node = ?",
            vec![text_arg(&lease), text_arg(&self.node)],
        )
        .await?;
        let lapsed = self.db.backend().run(
                "UPDATE _aura_invocations SET status = 'queued', node = NULL WHERE status = 'running' AND lease_until < ?",
                vec![text_arg(&now())],
            )
            .await?;
        if lapsed > 0 {
            tracing::warn!(
                lapsed,
                "re-queued asynchronous invocations of a stopped node"
            );
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Claims and starts queued invocations, oldest first, within each
    /// function's concurrency limit on this node.
    async fn start_ready(self: &Arc<Self>) -> Result<(), QueueError> {
        let rows = self.db.backend().rows(
                "SELECT id, function FROM _aura_invocations WHERE status = 'queued' ORDER BY created_at, id LIMIT 200",
                vec![],
                &[Storage::Text, Storage::Text],
            )
            .await?;
        for row in rows {
            let (Some(id), Some(function)) = (row[0].as_str(), row[1].as_str()) else {
                continue;
            };
            let (id, function) = (id.to_owned(), function.to_owned());
            let limit = self
                .functions
                .active(&function)
                .map_or(1, |f| f.limits.async_concurrency);
            if !self.take_slot(&function, limit) {
                continue;
            }
            let lease = format_time(Utc::now() + LEASE);
            let claimed = self.db.backend().run(
                    "UPDATE _aura_invocations SET status = 'running', node = ?, lease_until = ?, started_at = ?, \
                     attempts = attempts + 1 WHERE id = ? AND status = 'queued'",
                    vec![
                        text_arg(&self.node),
                        text_arg(&lease),
                        text_arg(&now()),
                        text_arg(&id),
                    ],
                )
                .await?
                == 1;
            if !claimed {
                self.release_slot(&function);
                continue;
            }
            let queue = self.clone();
            tokio::spawn(async move {
                if let Err(err) = queue.run(&id).await {
                    tracing::error!(id, error = %err, "async invocation failed to record");
                }
                queue.release_slot(&function);
                queue.wake.notify_one();
            });
        }
        Ok(())
    }

    fn take_slot(&self, function: &str, limit: u32) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let count = running.entry(function.to_owned()).or_default();
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    fn release_slot(&self, function: &str) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = running.get_mut(function) {
            *count = count.saturating_sub(1);
        }
    }

    async fn run(&self, id: &str) -> Result<(), QueueError> {
        let row = self.db.backend().rows(
                "SELECT function, method, path, headers, body, caller FROM _aura_invocations WHERE id = ?",
                vec![text_arg(id)],
                &[Storage::Text; 6],
            )
            .await?
            .pop()
            .ok_or_else(|| QueueError::NotFound(id.to_owned()))?;
        let text = |i: usize| row[i].as_str().unwrap_or_default();
        let function = text(0).to_owned();
        let Some(active) = self.functions.active_or_load(&function).await else {
            return self
                .fail(id, &format!("no function named `{function}` is deployed"))
                .await;
        };
        let headers: Vec<(String, String)> = serde_json::from_str(text(3)).unwrap_or_default();
        let body = base64::engine::general_purpose::STANDARD
            .decode(text(4))
            .unwrap_or_default();
        let mut request = http::Request::builder()
            .method(text(1))
            .uri(format!("http://aura-queue{}", text(2)))
            .extension(caller_from(text(5)));
        for (name, value) in &headers {
            if !name.eq_ignore_ascii_case(IDEMPOTENCY_KEY) {
                request = request.header(name, value);
            }
        }
        // The same on every attempt: a function whose effects must not
        // repeat when a node dies mid-run keys them on it.
        request = request.header(IDEMPOTENCY_KEY, id);
        let request = match request.body(Full::new(Bytes::from(body))) {
            Ok(request) => request,
            Err(err) => {
                return self
                    .fail(id, &format!("the stored request is not valid: {err}"))
                    .await;
            }
        };
        match self
            .functions
            .invoke(&function, &active, id.to_owned(), request)
            .await
        {
            Ok(response) => {
                let status = f64::from(response.status().as_u16());
                let response_headers: Vec<(String, String)> = response
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let mut body = response.into_body();
                let mut stored = Vec::new();
                let mut truncated = false;
                let mut failed = None;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(frame) => {
                            if let Some(data) = frame.data_ref() {
                                let room = MAX_STORED_RESPONSE.saturating_sub(stored.len());
                                truncated |= data.len() > room;
                                stored.extend_from_slice(&data[..data.len().min(room)]);
                            }
                        }
                        Err(err) => {
                            failed = Some(format!("the response body failed: {err}"));
                            break;
                        }
                    }
                }
                self.db.backend().run(
                    "UPDATE _aura_invocations SET status = ?, response_status = ?, response_headers = ?, \
                     response_body = ?, response_truncated = ?, error = ?, finished_at = ?, node = NULL \
                     WHERE id = ? AND node = ? AND status = 'running'",
                    vec![
                        text_arg(if failed.is_some() { "failed" } else { "succeeded" }),
                        Arg::Number(status),
                        Arg::Text(
                            serde_json::to_string(&response_headers)
                                .unwrap_or_else(|_| "[]".into()),
                        ),
                        Arg::Text(base64_text(&stored)),
                        Arg::Bool(truncated),
                        failed.map_or(Arg::NullOf(Storage::Text), Arg::Text),
                        Arg::Text(now()),
                        text_arg(id),
                        text_arg(&self.node),
                    ],
                )
                .await?;
                Ok(())
            }
            Err(failure) => self.fail(id, &failure.to_string()).await,
        }
    }

    async fn fail(&self, id: &str, error: &str) -> Result<(), QueueError> {
        self.db.backend().run(
            "UPDATE _aura_invocations SET status = 'failed', error = ?, finished_at = ?, node = NULL \
             WHERE id = ? AND node = ? AND status = 'running'",
            vec![text_arg(error), Arg::Text(now()), text_arg(id), text_arg(&self.node)],
        )
        .await?;
        Ok(())
    }
}

/// The status of a queued invocation, for the 202 answer.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// The invocation id.
    pub id: String,
    /// Always `queued`.
    pub status: &'static str,
    /// Where to ask for the result.
    pub status_url: String,
}
