//! The audit log: security and admin events, stored beside the collections
//! (so every node writes to one log) and readable by admins. Writes go
//! through a bounded queue to a background task, so a request never waits
//! on them; an entry that does not fit the queue is counted in the server
//! log instead. Entries older than the retention (`--audit-retention-days`,
//! default 90) are removed at start and daily.
//!
//! Besides the events services record (auth, secrets by name, backups),
//! every successful change made with the admin token is recorded as
//! `admin_action` with its method and path (see `api::audit_admin`):
//! deploys, rollbacks, schema changes, grants, rules, buckets, keys,
//! schedules, and changes to `users` records such as roles.

use crate::db::backend::{Arg, Backend, text_arg};
use crate::db::schema::Storage;
use crate::db::values;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

/// Entries waiting to be written.
const QUEUE: usize = 4096;
/// Most entries one query returns.
pub const MAX_LIMIT: u32 = 1000;

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Sequence number.
    pub id: i64,
    /// When (UTC).
    pub at: String,
    /// What happened: `login`, `login_failed`, `refresh_reuse`, …
    pub event: String,
    /// The user it concerns, if any.
    pub user: Option<String>,
    /// The client address, if known.
    pub ip: Option<String>,
    /// More about it.
    pub detail: Value,
}

/// What to read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    /// Only this event.
    pub event: Option<String>,
    /// Only this user.
    pub user: Option<String>,
    /// Only entries before this id (paging backwards).
    pub before: Option<i64>,
    /// Only entries at or after this time (RFC 3339, UTC).
    pub since: Option<String>,
    /// How many (default 100).
    pub limit: Option<u32>,
}

struct Pending {
    event: &'static str,
    user: Option<String>,
    ip: Option<String>,
    detail: Value,
    at: String,
}

/// The audit log.
pub struct AuditLog {
    backend: Backend,
    sender: mpsc::Sender<Pending>,
}

impl AuditLog {
    /// Starts the writer, and the pruning of entries older than
    /// `retention_days` (0: kept forever).
    pub fn start(backend: Backend, retention_days: u32) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write(backend.clone(), receiver));
        if retention_days > 0 {
            let pruned = backend.clone();
            tokio::spawn(async move {
                loop {
                    let cutoff = values::format_time(
                        chrono::Utc::now() - chrono::Duration::days(i64::from(retention_days)),
                    );
                    let result = async {
                        let mut tx = pruned.begin().await?;
                        let delete = pruned
                            .statement("DELETE FROM _aura_audit WHERE at < ?", [text_arg(&cutoff)]);
                        let removed = tx.execute(&delete).await?;
                        tx.commit().await?;
                        anyhow::Ok(removed)
                    };
                    match result.await {
                        Ok(0) => {}
                        Ok(removed) => tracing::info!(removed, "pruned the audit log"),
                        Err(err) => {
                            tracing::warn!(error = %format!("{err:#}"), "pruning the audit log")
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(24 * 3600)).await;
                }
            });
        }
        Self { backend, sender }
    }

    /// Records an event (never blocks).
    pub fn record(&self, event: &'static str, user: Option<&str>, ip: Option<&str>, detail: Value) {
        tracing::info!(target: "aura::audit", event, user, ip, %detail);
        let pending = Pending {
            event,
            user: user.map(str::to_owned),
            ip: ip.map(str::to_owned),
            detail,
            at: values::now(),
        };
        if self.sender.try_send(pending).is_err() {
            tracing::warn!(event, "audit queue full; entry kept in the server log only");
        }
    }

    /// Entries matching `filter`, newest first.
    pub async fn read(&self, filter: &Filter) -> anyhow::Result<Vec<Entry>> {
        let mut query = self.backend.query();
        query.sql(
            "SELECT CAST(id AS TEXT), at, event, user_id, ip, detail FROM _aura_audit WHERE 1 = 1",
        );
        if let Some(event) = &filter.event {
            query
                .sql(" AND event = ")
                .arg(text_arg(event), Storage::Text);
        }
        if let Some(user) = &filter.user {
            query
                .sql(" AND user_id = ")
                .arg(text_arg(user), Storage::Text);
        }
        if let Some(before) = filter.before {
            query.sql(" AND id < ").int(before);
        }
        if let Some(since) = &filter.since {
            query.sql(" AND at >= ").arg(text_arg(since), Storage::Text);
        }
        let limit = filter.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
        query.sql(" ORDER BY id DESC LIMIT ").int(i64::from(limit));
        let rows = self
            .backend
            .fetch(
                &query,
                &[
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Json,
                ],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| Entry {
                id: row[0]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                    .unwrap_or_default(),
                at: row[1].as_str().unwrap_or_default().to_owned(),
                event: row[2].as_str().unwrap_or_default().to_owned(),
                user: row[3].as_str().map(str::to_owned),
                ip: row[4].as_str().map(str::to_owned),
                detail: row[5].clone(),
            })
            .collect())
    }
}

async fn write(backend: Backend, mut receiver: mpsc::Receiver<Pending>) {
    while let Some(pending) = receiver.recv().await {
        let mut insert = backend.query();
        let optional = |value: &Option<String>| value.as_deref().map_or(Arg::Null, text_arg);
        insert
            .sql("INSERT INTO _aura_audit (at, event, user_id, ip, detail) VALUES (")
            .arg(text_arg(&pending.at), Storage::Text)
            .sql(", ")
            .arg(text_arg(pending.event), Storage::Text)
            .sql(", ")
            .arg(optional(&pending.user), Storage::Text)
            .sql(", ")
            .arg(optional(&pending.ip), Storage::Text)
            .sql(", ")
            .arg(text_arg(&pending.detail.to_string()), Storage::Text)
            .sql(")");
        let written = async {
            let mut tx = backend.begin().await?;
            tx.execute(&insert).await?;
            tx.commit().await?;
            anyhow::Ok(())
        };
        if let Err(err) = written.await {
            tracing::warn!(error = %format!("{err:#}"), event = pending.event, "audit entry not written");
        }
    }
}
