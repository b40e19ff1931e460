//! Asynchronous invocations: `POST /fn/{name}` with `Prefer: respond-async`
//! is stored in a durable queue and answered 202 at once; a dispatcher runs
//! queued invocations, at most `async_concurrency` per function at a time,
//! and stores each response for `GET /api/invocations/{id}`.
//!
//! It owns the `async_invocations` table. Invocations that were running when
//! the server stopped are queued again at start-up, so each queued invocation
//! runs at least once (exactly once unless the server dies mid-run).

use crate::functions::Functions;
use base64::Engine as _;
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Largest response body stored per invocation; the rest is dropped and
/// the response marked truncated.
pub const MAX_STORED_RESPONSE: usize = 1024 * 1024;
/// Finished invocations are kept this long.
const RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);

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
    Internal(#[from] sqlx::Error),
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
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Bytes,
}

/// The durable queue and its dispatcher.
pub struct Queue {
    db: SqlitePool,
    functions: Arc<Functions>,
    max_queued: u64,
    running: Mutex<HashMap<String, u32>>,
    wake: Notify,
}

impl Queue {
    /// Re-queues invocations a stop interrupted and starts the dispatcher.
    pub async fn start(
        db: SqlitePool,
        functions: Arc<Functions>,
        max_queued: u64,
    ) -> Result<Arc<Self>, QueueError> {
        let requeued =
            sqlx::query("UPDATE async_invocations SET status = 'queued' WHERE status = 'running'")
                .execute(&db)
                .await?
                .rows_affected();
        if requeued > 0 {
            tracing::warn!(
                requeued,
                "re-queued asynchronous invocations interrupted by the last stop"
            );
        }
        let queue = Arc::new(Self {
            db,
            functions,
            max_queued,
            running: Mutex::default(),
            wake: Notify::new(),
        });
        tokio::spawn(queue.clone().dispatch());
        Ok(queue)
    }

    /// Stores `queued` for running; refuses when the queue is full.
    pub async fn enqueue(&self, queued: Queued) -> Result<(), QueueError> {
        let waiting: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM async_invocations WHERE status = 'queued'")
                .fetch_one(&self.db)
                .await?;
        if u64::try_from(waiting).unwrap_or(0) >= self.max_queued {
            return Err(QueueError::Full(self.max_queued));
        }
        let headers = serde_json::to_string(&queued.headers).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO async_invocations (id, function, method, path, headers, body, status, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)",
        )
        .bind(&queued.id)
        .bind(&queued.function)
        .bind(&queued.method)
        .bind(&queued.path)
        .bind(headers)
        .bind(queued.body.as_ref())
        .bind(now())
        .execute(&self.db)
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// The invocation's status and, when finished, its stored response.
    pub async fn get(&self, id: &str) -> Result<Value, QueueError> {
        let row = sqlx::query("SELECT * FROM async_invocations WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| QueueError::NotFound(id.to_owned()))?;
        let mut answer = json!({
            "id": row.try_get::<String, _>("id")?,
            "function": row.try_get::<String, _>("function")?,
            "status": row.try_get::<String, _>("status")?,
            "attempts": row.try_get::<i64, _>("attempts")?,
            "error": row.try_get::<Option<String>, _>("error")?,
            "created_at": row.try_get::<String, _>("created_at")?,
            "started_at": row.try_get::<Option<String>, _>("started_at")?,
            "finished_at": row.try_get::<Option<String>, _>("finished_at")?,
            "response": Value::Null,
        });
        if let Some(status) = row.try_get::<Option<i64>, _>("response_status")? {
            let headers: Vec<(String, String)> =
                serde_json::from_str(&row.try_get::<String, _>("response_headers")?)
                    .unwrap_or_default();
            let headers: Map<String, Value> = headers
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let body: Vec<u8> = row.try_get("response_body")?;
            let mut response = json!({
                "status": status,
                "headers": headers,
                "truncated": row.try_get::<bool, _>("response_truncated")?,
            });
            match String::from_utf8(body) {
                Ok(text) => response["body"] = Value::String(text),
                Err(bytes) => {
                    let encoded =
                        base64::engine::general_purpose::STANDARD.encode(bytes.as_bytes());
                    response["body_base64"] = Value::String(encoded);
                }
            }
            answer["response"] = response;
        }
        Ok(answer)
    }

    async fn dispatch(self: Arc<Self>) {
        let mut last_prune = std::time::Instant::now();
        loop {
            if let Err(err) = self.start_ready().await {
                tracing::error!(error = %err, "async queue: dispatching failed");
            }
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = std::time::Instant::now();
                let cutoff = (Utc::now() - RETENTION).to_rfc3339_opts(SecondsFormat::Millis, true);
                let _ = sqlx::query("DELETE FROM async_invocations WHERE finished_at < ?")
                    .bind(cutoff)
                    .execute(&self.db)
                    .await;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// Claims and starts queued invocations, oldest first, within each
    /// function's concurrency limit.
    async fn start_ready(self: &Arc<Self>) -> Result<(), QueueError> {
        let rows = sqlx::query(
            "SELECT id, function FROM async_invocations WHERE status = 'queued' ORDER BY created_at, id LIMIT 200",
        )
        .fetch_all(&self.db)
        .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let function: String = row.try_get("function")?;
            let limit = self
                .functions
                .active(&function)
                .map_or(1, |f| f.limits.async_concurrency);
            if !self.take_slot(&function, limit) {
                continue;
            }
            let claimed = sqlx::query(
                "UPDATE async_invocations SET status = 'running', started_at = ?, attempts = attempts + 1 \
                 WHERE id = ? AND status = 'queued'",
            )
            .bind(now())
            .bind(&id)
            .execute(&self.db)
            .await?
            .rows_affected()
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
        let row = sqlx::query(
            "SELECT function, method, path, headers, body FROM async_invocations WHERE id = ?",
        )
        .bind(id)
        .fetch_one(&self.db)
        .await?;
        let function: String = row.try_get("function")?;
        let Some(active) = self.functions.active(&function) else {
            return self
                .fail(id, &format!("no function named `{function}` is deployed"))
                .await;
        };
        let headers: Vec<(String, String)> =
            serde_json::from_str(&row.try_get::<String, _>("headers")?).unwrap_or_default();
        let body: Vec<u8> = row.try_get("body")?;
        let mut request = http::Request::builder()
            .method(row.try_get::<String, _>("method")?.as_str())
            .uri(format!(
                "http://aura-queue{}",
                row.try_get::<String, _>("path")?
            ));
        for (name, value) in &headers {
            request = request.header(name, value);
        }
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
                let status = i64::from(response.status().as_u16());
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
                sqlx::query(
                    "UPDATE async_invocations SET status = ?, response_status = ?, response_headers = ?, \
                     response_body = ?, response_truncated = ?, error = ?, finished_at = ? WHERE id = ?",
                )
                .bind(if failed.is_some() { "failed" } else { "succeeded" })
                .bind(status)
                .bind(serde_json::to_string(&response_headers).unwrap_or_else(|_| "[]".into()))
                .bind(stored)
                .bind(truncated)
                .bind(failed)
                .bind(now())
                .bind(id)
                .execute(&self.db)
                .await?;
                Ok(())
            }
            Err(failure) => self.fail(id, &failure.to_string()).await,
        }
    }

    async fn fail(&self, id: &str, error: &str) -> Result<(), QueueError> {
        sqlx::query("UPDATE async_invocations SET status = 'failed', error = ?, finished_at = ? WHERE id = ?")
            .bind(error)
            .bind(now())
            .bind(id)
            .execute(&self.db)
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

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}
