//! The scheduler: cron schedules that invoke functions, with run history,
//! retries with backoff, an overlap policy and a missed-run policy.
//!
//! A scheduled run is an HTTP request to the function: `POST {path}` (default
//! `/`) with the schedule's JSON payload as body and the headers
//! `x-aura-schedule`, `x-aura-scheduled-for` and `x-aura-attempt`. A 2xx
//! answer is success; anything else (or a trap, timeout…) fails the attempt.
//!
//! It owns the tables `_aura_schedules`, `_aura_schedule_queue` and
//! `_aura_schedule_runs`, in the collections' database, so that nodes
//! sharing a PostgreSQL database share their schedules:
//! - a due tick is claimed by moving `next_run_at` forward with a
//!   conditional update: of all nodes, exactly one wins each tick;
//! - a running schedule holds a lease (`busy_until`), renewed while it runs
//!   and lapsing if its node stops; a tick claimed while the lease is held
//!   is skipped, or queued (one waiting tick per schedule) for whichever
//!   node holds or next takes the lease;
//! - an attempt is in the history from its start (`running`, with its
//!   node); the node that next takes the lease records attempts still
//!   `running` as `lost` (their node stopped) and retries them under the
//!   schedule's retry policy. A node restarting gives up the leases it
//!   held at once.

mod spec;

pub use spec::{Missed, Overlap, ScheduleSpec};

use crate::db::Database;
use crate::db::backend::{Arg, column_type, text_arg};
use crate::db::filter::Dialect;
use crate::db::schema::Storage;
use crate::db::values::format_time;
use crate::functions::Functions;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Row, SqlitePool};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Runs kept per schedule; older ones are pruned.
const RETAINED_RUNS: i64 = 1000;
/// Longest wait between checks for due schedules.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// How long a running schedule's lease lasts unless renewed: how long a
/// run whose node died holds later ticks back.
const LEASE: Duration = Duration::from_secs(6);
/// How often a running schedule renews its lease.
const RENEW: Duration = Duration::from_secs(2);

/// A stored schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// Its name.
    pub name: String,
    /// What it runs and when.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// When it fires next (RFC 3339, UTC).
    pub next_run_at: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

/// One attempt of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Increasing id.
    pub id: i64,
    /// The schedule.
    pub schedule: String,
    /// The function invoked.
    pub function: String,
    /// The tick this run is for.
    pub scheduled_for: String,
    /// Start of the attempt.
    pub started_at: String,
    /// End of the attempt.
    pub finished_at: String,
    /// `running`, `ok`, `failed`, `lost` (its node stopped during the
    /// run), `skipped` (overlap) or `missed` (downtime).
    pub status: String,
    /// 1 for the first attempt, 2 for the first retry…
    pub attempt: i64,
    /// The function's HTTP status, if it answered.
    pub http_status: Option<i64>,
    /// What went wrong.
    pub error: Option<String>,
    /// The invocation id, to find its logs.
    pub invocation_id: Option<String>,
    /// Attempt duration in milliseconds.
    pub duration_ms: f64,
    /// The node that ran it (none for skipped and missed ticks).
    pub node: Option<String>,
}

/// Errors of the scheduler; the API maps each to a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The spec or name is invalid.
    #[error("{0}")]
    Invalid(String),
    /// No such schedule.
    #[error("no schedule named `{0}`")]
    NotFound(String),
    /// The function is not deployed.
    #[error("no function named `{0}` is deployed")]
    FunctionNotFound(String),
    /// Database trouble; logged, never shown verbatim.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Columns added to the scheduler's tables after they were first made.
pub fn added_columns() -> [(&'static str, &'static str, &'static str); 1] {
    [("_aura_schedule_runs", "node", "TEXT")]
}

/// The scheduler's tables, created with the other system tables.
pub fn tables(dialect: Dialect) -> Vec<String> {
    let id = match dialect {
        Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    let number = column_type(dialect, Storage::Number);
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS _aura_schedules (name TEXT PRIMARY KEY, function TEXT NOT NULL, cron TEXT NOT NULL, \
             tz TEXT NOT NULL, payload TEXT NOT NULL, path TEXT NOT NULL, retries {number} NOT NULL, overlap TEXT NOT NULL, \
             missed TEXT NOT NULL, paused BOOLEAN NOT NULL, next_run_at TEXT NOT NULL, created_at TEXT NOT NULL, \
             updated_at TEXT NOT NULL, busy_until TEXT, busy_holder TEXT)"
        ),
        "CREATE TABLE IF NOT EXISTS _aura_schedule_queue (schedule TEXT PRIMARY KEY, scheduled_for TEXT NOT NULL)".to_owned(),
        format!(
            "CREATE TABLE IF NOT EXISTS _aura_schedule_runs (id {id}, schedule TEXT NOT NULL, function TEXT NOT NULL, \
             scheduled_for TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, status TEXT NOT NULL, \
             attempt {number} NOT NULL, http_status {number}, error TEXT, invocation_id TEXT, duration_ms {number} NOT NULL)"
        ),
        "CREATE INDEX IF NOT EXISTS _aura_schedule_runs_schedule ON _aura_schedule_runs (schedule, id)".to_owned(),
    ]
}

const SCHEDULE_COLUMNS: &str = "name, function, cron, tz, payload, path, retries, overlap, missed, paused, next_run_at, created_at, updated_at";
const SCHEDULE_STORAGE: [Storage; 13] = [
    Storage::Text,
    Storage::Text,
    Storage::Text,
    Storage::Text,
    Storage::Text,
    Storage::Text,
    Storage::Number,
    Storage::Text,
    Storage::Text,
    Storage::Bool,
    Storage::Text,
    Storage::Text,
    Storage::Text,
];

/// The scheduler service.
pub struct Scheduler {
    db: Arc<Database>,
    functions: Arc<Functions>,
    /// This node's lasting id, on its leases and runs.
    node: String,
    wake: Notify,
}

impl Scheduler {
    /// Moves schedules kept by an earlier version in `local` (the node's
    /// `aura.db`), applies the missed-run policy to schedules that fell due
    /// while no node ran them, then starts the firing loop.
    pub async fn start(
        local: &SqlitePool,
        db: Arc<Database>,
        functions: Arc<Functions>,
        node: String,
    ) -> Result<Arc<Self>, ScheduleError> {
        let scheduler = Arc::new(Self {
            db,
            functions,
            node,
            wake: Notify::new(),
        });
        // What this node ran before it stopped is over: the next node to
        // take those leases records the runs lost and retries them.
        scheduler
            .db
            .backend()
            .run(
                "UPDATE _aura_schedules SET busy_until = NULL, busy_holder = NULL WHERE busy_holder LIKE ?",
                [Arg::Text(format!("{}/%", scheduler.node))],
            )
            .await?;
        scheduler
            .adopt(local)
            .await
            .map_err(|e| anyhow::anyhow!("moving schedules out of aura.db: {e:#}"))?;
        let now = Utc::now();
        for schedule in scheduler.list().await? {
            let due = parse_time(&schedule.next_run_at);
            if schedule.paused
                || due >= now - chrono::Duration::seconds(1)
                || schedule.spec.missed == Missed::RunOnce
            {
                continue;
            }
            let Some(next) = scheduler.next_or_pause(&schedule, now).await? else {
                continue;
            };
            // Another node may have moved it on meanwhile: only the winner records.
            if !scheduler.claim(&schedule, next).await? {
                continue;
            }
            let record = Attempt::new(&schedule, &schedule.next_run_at, 0);
            scheduler
                .record(
                    None,
                    record.finish(
                        "missed",
                        None,
                        Some("every server was down at this time".into()),
                        None,
                    ),
                )
                .await;
        }
        tokio::spawn(scheduler.clone().run_loop());
        Ok(scheduler)
    }

    /// Copies the schedules and runs of `local`'s old `schedules` tables
    /// into the shared ones (when those are empty), then drops them.
    async fn adopt(&self, local: &SqlitePool) -> anyhow::Result<()> {
        if !crate::store::has_table(local, "schedules").await? {
            return Ok(());
        }
        let empty = self
            .db
            .backend()
            .rows("SELECT name FROM _aura_schedules", vec![], &[Storage::Text])
            .await?
            .is_empty();
        let old_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schedules")
            .fetch_one(local)
            .await?;
        if old_rows > 0 && !empty {
            // Not merged into another node's schedules: kept for the operator.
            tracing::warn!(
                old_rows,
                "aura.db holds schedules of an earlier version and the shared database has schedules already: they were not moved (tables `schedules` and `schedule_runs` in aura.db)"
            );
            return Ok(());
        }
        if empty {
            let backend = self.db.backend();
            let mut tx = backend.begin().await?;
            for row in sqlx::query(&format!("SELECT {SCHEDULE_COLUMNS} FROM schedules"))
                .fetch_all(local)
                .await?
            {
                let text = |i: usize| row.try_get::<String, _>(i).map(Arg::Text);
                let insert = backend.statement(
                    &format!("INSERT INTO _aura_schedules ({SCHEDULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    [
                        text(0)?, text(1)?, text(2)?, text(3)?, text(4)?, text(5)?,
                        Arg::Number(row.try_get::<i64, _>(6)? as f64),
                        text(7)?, text(8)?,
                        Arg::Bool(row.try_get::<bool, _>(9)?),
                        text(10)?, text(11)?, text(12)?,
                    ],
                );
                tx.execute(&insert).await?;
            }
            for row in sqlx::query(
                "SELECT schedule, function, scheduled_for, started_at, finished_at, status, attempt, http_status, \
                 error, invocation_id, duration_ms FROM schedule_runs ORDER BY id",
            )
            .fetch_all(local)
            .await?
            {
                let text = |i: usize| row.try_get::<String, _>(i).map(Arg::Text);
                let optional = |i: usize| {
                    row.try_get::<Option<String>, _>(i)
                        .map(|v| v.map_or(Arg::NullOf(Storage::Text), Arg::Text))
                };
                let insert = backend.statement(
                    "INSERT INTO _aura_schedule_runs (schedule, function, scheduled_for, started_at, finished_at, status, \
                     attempt, http_status, error, invocation_id, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        text(0)?, text(1)?, text(2)?, text(3)?, text(4)?, text(5)?,
                        Arg::Number(row.try_get::<i64, _>(6)? as f64),
                        row.try_get::<Option<i64>, _>(7)?
                            .map_or(Arg::NullOf(Storage::Number), |s| Arg::Number(s as f64)),
                        optional(8)?,
                        optional(9)?,
                        Arg::Number(row.try_get::<f64, _>(10)?),
                    ],
                );
                tx.execute(&insert).await?;
            }
            tx.commit().await?;
        }
        sqlx::query("DROP TABLE schedule_runs")
            .execute(local)
            .await?;
        sqlx::query("DROP TABLE schedules").execute(local).await?;
        tracing::info!("schedules moved from aura.db to the collections' database");
        Ok(())
    }

    async fn schedules(
        &self,
        condition: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<Schedule>, ScheduleError> {
        let rows = self
            .db
            .backend()
            .rows(
                &format!("SELECT {SCHEDULE_COLUMNS} FROM _aura_schedules {condition}"),
                args,
                &SCHEDULE_STORAGE,
            )
            .await?;
        Ok(rows.iter().map(|row| schedule_from_row(row)).collect())
    }

    /// Creates or replaces schedule `name`.
    pub async fn put(&self, name: &str, spec: ScheduleSpec) -> Result<Schedule, ScheduleError> {
        crate::functions::validate_name(name).map_err(|err| {
            ScheduleError::Invalid(err.to_string().replace("function name", "schedule name"))
        })?;
        spec.validate()?;
        if self.functions.active(&spec.function).is_none() {
            return Err(ScheduleError::FunctionNotFound(spec.function.clone()));
        }
        let now = Utc::now();
        let next = format_time(spec.next_after(now)?);
        let stamp = format_time(now);
        self.db.backend().run(
            &format!(
                "INSERT INTO _aura_schedules ({SCHEDULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE SET function = excluded.function, cron = excluded.cron, tz = excluded.tz, \
                 payload = excluded.payload, path = excluded.path, retries = excluded.retries, overlap = excluded.overlap, \
                 missed = excluded.missed, next_run_at = excluded.next_run_at, updated_at = excluded.updated_at"
            ),
            vec![
                text_arg(name),
                text_arg(&spec.function),
                text_arg(&spec.cron),
                text_arg(&spec.tz),
                text_arg(&spec.payload.to_string()),
                text_arg(&spec.path),
                Arg::Number(f64::from(spec.retries)),
                text_arg(spec.overlap.as_str()),
                text_arg(spec.missed.as_str()),
                Arg::Bool(false),
                text_arg(&next),
                text_arg(&stamp),
                text_arg(&stamp),
            ],
        )
        .await?;
        self.wake.notify_one();
        self.get(name).await
    }

    /// One schedule.
    pub async fn get(&self, name: &str) -> Result<Schedule, ScheduleError> {
        self.schedules("WHERE name = ?", vec![text_arg(name)])
            .await?
            .pop()
            .ok_or_else(|| ScheduleError::NotFound(name.to_owned()))
    }

    /// All schedules, by name.
    pub async fn list(&self) -> Result<Vec<Schedule>, ScheduleError> {
        self.schedules("ORDER BY name", vec![]).await
    }

    /// Removes a schedule and its history.
    pub async fn remove(&self, name: &str) -> Result<(), ScheduleError> {
        let backend = self.db.backend();
        let mut tx = backend.begin().await?;
        let mut deleted = 0;
        for table in [
            "_aura_schedules WHERE name",
            "_aura_schedule_queue WHERE schedule",
            "_aura_schedule_runs WHERE schedule",
        ] {
            let delete = backend.statement(&format!("DELETE FROM {table} = ?"), [text_arg(name)]);
            let changed = tx.execute(&delete).await.map_err(anyhow::Error::from)?;
            if deleted == 0 {
                deleted = changed;
            }
        }
        if deleted == 0 {
            return Err(ScheduleError::NotFound(name.to_owned()));
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// Pauses or resumes a schedule; resuming starts from the next tick.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<Schedule, ScheduleError> {
        let schedule = self.get(name).await?;
        let next = format_time(schedule.spec.next_after(Utc::now())?);
        self.db.backend().run(
            "UPDATE _aura_schedules SET paused = ?, next_run_at = ?, updated_at = ? WHERE name = ?",
            vec![
                Arg::Bool(paused),
                text_arg(&next),
                text_arg(&format_time(Utc::now())),
                text_arg(name),
            ],
        )
        .await?;
        self.wake.notify_one();
        self.get(name).await
    }

    /// Fires a run now, outside the cron timetable (the overlap policy applies).
    pub async fn run_now(self: &Arc<Self>, name: &str) -> Result<(), ScheduleError> {
        let schedule = self.get(name).await?;
        tokio::spawn(self.clone().fire(schedule, format_time(Utc::now())));
        Ok(())
    }

    /// The newest runs of a schedule, newest first.
    pub async fn runs(&self, name: &str, limit: i64) -> Result<Vec<Run>, ScheduleError> {
        self.get(name).await?;
        let rows = self.db.backend().rows(
                "SELECT CAST(id AS TEXT), schedule, function, scheduled_for, started_at, finished_at, status, attempt, \
                 http_status, error, invocation_id, duration_ms, node FROM _aura_schedule_runs WHERE schedule = ? \
                 ORDER BY id DESC LIMIT ?",
                vec![text_arg(name), Arg::Int(limit)],
                &[
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Text,
                    Storage::Number,
                    Storage::Number,
                    Storage::Text,
                    Storage::Text,
                    Storage::Number,
                    Storage::Text,
                ],
            )
            .await?;
        Ok(rows.iter().map(|row| run_from_row(row)).collect())
    }

    async fn run_loop(self: Arc<Self>) {
        loop {
            let now = Utc::now();
            match self.claim_due(now).await {
                Ok(due) => {
                    for (schedule, scheduled_for) in due {
                        let scheduler = self.clone();
                        tokio::spawn(async move { scheduler.fire(schedule, scheduled_for).await });
                    }
                }
                Err(err) => tracing::error!(error = %err, "scheduler: claiming due runs failed"),
            }
            let sleep = match self.next_due().await {
                Some(next) => (next - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// Claims every due schedule by moving its `next_run_at` past now; of
    /// several nodes, one wins each tick.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Schedule, String)>, ScheduleError> {
        let due = self
            .schedules(
                "WHERE paused = ? AND next_run_at <= ?",
                vec![Arg::Bool(false), text_arg(&format_time(now))],
            )
            .await?;
        let mut claimed = Vec::new();
        for schedule in due {
            let Some(next) = self.next_or_pause(&schedule, now).await? else {
                continue;
            };
            if self.claim(&schedule, next).await? {
                let scheduled_for = schedule.next_run_at.clone();
                claimed.push((schedule, scheduled_for));
            }
        }
        Ok(claimed)
    }

    /// Moves the schedule's due tick on to `next`; true for the one caller
    /// (of all nodes) that did.
    async fn claim(&self, schedule: &Schedule, next: DateTime<Utc>) -> anyhow::Result<bool> {
        let moved = self
            .db
            .backend()
            .run(
                "UPDATE _aura_schedules SET next_run_at = ? WHERE name = ? AND next_run_at = ?",
                [
                    text_arg(&format_time(next)),
                    text_arg(&schedule.name),
                    text_arg(&schedule.next_run_at),
                ],
            )
            .await?;
        Ok(moved == 1)
    }

    /// The schedule's next tick after `now`; a schedule that can never fire
    /// again (a year-bounded expression in the past) is paused instead.
    async fn next_or_pause(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ScheduleError> {
        match schedule.spec.next_after(now) {
            Ok(next) => Ok(Some(next)),
            Err(err) => {
                tracing::warn!(schedule = %schedule.name, error = %err, "pausing a schedule that cannot fire again");
                self.db
                    .backend()
                    .run(
                        "UPDATE _aura_schedules SET paused = ?, updated_at = ? WHERE name = ?",
                        vec![
                            Arg::Bool(true),
                            text_arg(&format_time(now)),
                            text_arg(&schedule.name),
                        ],
                    )
                    .await?;
                Ok(None)
            }
        }
    }

    async fn next_due(&self) -> Option<DateTime<Utc>> {
        let rows = self
            .db
            .backend()
            .rows(
                "SELECT MIN(next_run_at) FROM _aura_schedules WHERE paused = ?",
                vec![Arg::Bool(false)],
                &[Storage::Text],
            )
            .await
            .ok()?;
        rows.first()?.first()?.as_str().map(parse_time)
    }

    /// Takes the schedule's lease for `holder` if no one holds it.
    async fn acquire(&self, name: &str, holder: &str) -> bool {
        let now = Utc::now();
        let lease = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        self.db.backend().run(
            "UPDATE _aura_schedules SET busy_until = ?, busy_holder = ? WHERE name = ? AND (busy_until IS NULL OR busy_until < ?)",
            vec![
                text_arg(&format_time(lease)),
                text_arg(holder),
                text_arg(name),
                text_arg(&format_time(now)),
            ],
        )
        .await
        .inspect_err(|err| tracing::error!(schedule = %name, error = %err, "taking a schedule's lease"))
        .is_ok_and(|changed| changed == 1)
    }

    /// Extends `holder`'s lease; 0 when it was lost (it lapsed and another
    /// took it).
    async fn renew(&self, name: &str, holder: &str) -> anyhow::Result<u64> {
        let lease = Utc::now() + chrono::Duration::from_std(LEASE)?;
        self.db
            .backend()
            .run(
                "UPDATE _aura_schedules SET busy_until = ? WHERE name = ? AND busy_holder = ?",
                vec![
                    text_arg(&format_time(lease)),
                    text_arg(name),
                    text_arg(holder),
                ],
            )
            .await
    }

    /// Gives up `holder`'s lease (not another's).
    async fn release(&self, name: &str, holder: &str) -> anyhow::Result<u64> {
        self.db
            .backend()
            .run(
                "UPDATE _aura_schedules SET busy_until = NULL, busy_holder = NULL WHERE name = ? AND busy_holder = ?",
                vec![text_arg(name), text_arg(holder)],
            )
            .await
    }

    /// Takes the waiting tick of a schedule, if any.
    async fn pop_queued(&self, name: &str) -> anyhow::Result<Option<String>> {
        let rows = self
            .db
            .backend()
            .run_returning(
                "DELETE FROM _aura_schedule_queue WHERE schedule = ? RETURNING scheduled_for",
                [text_arg(name)],
                &[Storage::Text],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|row| row.first()?.as_str().map(str::to_owned)))
    }

    /// Starts a run if the schedule's lease is free; else the overlap policy
    /// decides: record a skip, or leave the tick waiting (replacing an
    /// older waiting one).
    async fn fire(self: Arc<Self>, schedule: Schedule, scheduled_for: String) {
        let holder = format!("{}/{}", self.node, uuid::Uuid::now_v7());
        if self.acquire(&schedule.name, &holder).await {
            self.drive(schedule, holder, Some(scheduled_for)).await;
            return;
        }
        match schedule.spec.overlap {
            Overlap::Skip => {
                let record = Attempt::new(&schedule, &scheduled_for, 0).finish(
                    "skipped",
                    None,
                    Some("the previous run was still going".into()),
                    None,
                );
                self.record(None, record).await;
            }
            Overlap::Queue => {
                let queued = self.db.backend().run(
                        "INSERT INTO _aura_schedule_queue (schedule, scheduled_for) VALUES (?, ?) \
                         ON CONFLICT (schedule) DO UPDATE SET scheduled_for = excluded.scheduled_for",
                        vec![text_arg(&schedule.name), text_arg(&scheduled_for)],
                    )
                    .await;
                if let Err(err) = queued {
                    tracing::error!(schedule = %schedule.name, error = %err, "queueing a run");
                    return;
                }
                // The run in flight may have ended before the tick was queued.
                if self.acquire(&schedule.name, &holder).await {
                    self.drive(schedule, holder, None).await;
                }
            }
        }
    }

    /// Holding the lease: runs `first`, then waiting ticks, renewing the
    /// lease meanwhile; releases it when nothing waits.
    async fn drive(self: Arc<Self>, schedule: Schedule, holder: String, first: Option<String>) {
        let _renewing = {
            let scheduler = self.clone();
            let (name, holder) = (schedule.name.clone(), holder.clone());
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW).await;
                    match scheduler.renew(&name, &holder).await {
                        Ok(0) => {
                            tracing::warn!(schedule = %name, "a schedule's lease lapsed during its run; another node may run it too")
                        }
                        Ok(_) => {}
                        Err(err) => {
                            tracing::error!(schedule = %name, error = %err, "renewing a schedule's lease")
                        }
                    }
                }
            }))
        };
        for (scheduled_for, attempt) in self.recover(&schedule.name).await {
            if attempt <= schedule.spec.retries {
                self.run(&schedule, &scheduled_for, attempt + 1).await;
            }
        }
        let mut next = first;
        loop {
            let scheduled_for = match next.take() {
                Some(tick) => tick,
                None => match self.pop_queued(&schedule.name).await {
                    Ok(Some(tick)) => tick,
                    Ok(None) => {
                        if let Err(err) = self.release(&schedule.name, &holder).await {
                            tracing::error!(schedule = %schedule.name, error = %err, "releasing a schedule's lease");
                            break;
                        }
                        // A tick queued just before the release is ours
                        // to run if the lease is still free.
                        let waiting = self
                            .db
                            .backend()
                            .rows(
                                "SELECT schedule FROM _aura_schedule_queue WHERE schedule = ?",
                                vec![text_arg(&schedule.name)],
                                &[Storage::Text],
                            )
                            .await
                            .is_ok_and(|rows| !rows.is_empty());
                        if waiting && self.acquire(&schedule.name, &holder).await {
                            continue;
                        }
                        break;
                    }
                    Err(err) => {
                        tracing::error!(schedule = %schedule.name, error = %err, "taking a queued run");
                        let _ = self.release(&schedule.name, &holder).await;
                        break;
                    }
                },
            };
            self.run(&schedule, &scheduled_for, 1).await;
        }
    }

    /// Records the attempts of `name` still `running` as `lost`: the one
    /// who calls it holds the lease, so their node stopped. Answers their
    /// ticks and attempt numbers.
    async fn recover(&self, name: &str) -> Vec<(String, u32)> {
        let lost = self
            .db
            .backend()
            .run_returning(
                "UPDATE _aura_schedule_runs SET status = 'lost', finished_at = ?, \
                 error = 'node ' || COALESCE(node, 'unknown') || ' stopped during this run' \
                 WHERE schedule = ? AND status = 'running' RETURNING scheduled_for, attempt",
                [text_arg(&format_time(Utc::now())), text_arg(name)],
                &[Storage::Text, Storage::Number],
            )
            .await;
        match lost {
            Ok(rows) => rows
                .iter()
                .map(|row| {
                    let attempt = row[1].as_f64().unwrap_or(1.0) as u32;
                    tracing::warn!(schedule = %name, attempt, "a scheduled run was lost with its node");
                    (text_of(&row[0]), attempt)
                })
                .collect(),
            Err(err) => {
                tracing::error!(schedule = %name, error = %err, "recording lost runs");
                Vec::new()
            }
        }
    }

    /// One run: attempts from `first` up to `retries` more than the first,
    /// with backoff.
    async fn run(&self, schedule: &Schedule, scheduled_for: &str, first: u32) {
        let attempts = 1 + schedule.spec.retries;
        for attempt in first..=attempts {
            let running = self.begin(schedule, scheduled_for, attempt).await;
            let record = self.attempt(schedule, scheduled_for, attempt).await;
            let ok = record.status == "ok";
            self.record(running, record).await;
            if ok {
                return;
            }
            if attempt < attempts {
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
    async fn attempt(&self, schedule: &Schedule, scheduled_for: &str, attempt: u32) -> Attempt {
        let record = Attempt::new(schedule, scheduled_for, attempt);
        let Some(active) = self.functions.active_or_load(&schedule.spec.function).await else {
            let error = format!("no function named `{}` is deployed", schedule.spec.function);
            return record.finish("failed", None, Some(error), None);
        };
        let id = uuid::Uuid::now_v7().to_string();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://aura-scheduler{}", schedule.spec.path))
            .header("host", "aura-scheduler")
            .header("content-type", "application/json")
            .header("x-aura-schedule", &schedule.name)
            .header("x-aura-scheduled-for", scheduled_for)
            .header("x-aura-attempt", attempt.to_string())
            .body(Full::new(Bytes::from(schedule.spec.payload.to_string())));
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                return record.finish(
                    "failed",
                    None,
                    Some(format!("cannot build the request: {err}")),
                    None,
                );
            }
        };
        match self
            .functions
            .invoke(&schedule.spec.function, &active, id.clone(), request)
            .await
        {
            Ok(response) => {
                let status = response.status();
                // Drain the body so the function runs to its end.
                let mut body = response.into_body();
                let mut failed = None;
                while let Some(frame) = body.frame().await {
                    if let Err(err) = frame {
                        failed = Some(format!("the response body failed: {err}"));
                        break;
                    }
                }
                let http_status = Some(i64::from(status.as_u16()));
                match (status.is_success(), failed) {
                    (true, None) => record.finish("ok", http_status, None, Some(id)),
                    (_, Some(error)) => record.finish("failed", http_status, Some(error), Some(id)),
                    (false, None) => {
                        let error = format!("the function answered {status}");
                        record.finish("failed", http_status, Some(error), Some(id))
                    }
                }
            }
            Err(failure) => record.finish("failed", None, Some(failure.to_string()), Some(id)),
        }
    }

    /// Puts an attempt starting now in the history as `running`, on this
    /// node; answers its id.
    async fn begin(&self, schedule: &Schedule, scheduled_for: &str, attempt: u32) -> Option<i64> {
        let now = text_arg(&format_time(Utc::now()));
        let rows = self
            .db
            .backend()
            .run_returning(
                "INSERT INTO _aura_schedule_runs (schedule, function, scheduled_for, started_at, finished_at, status, \
                 attempt, duration_ms, node) VALUES (?, ?, ?, ?, ?, 'running', ?, 0, ?) RETURNING CAST(id AS TEXT)",
                [
                    text_arg(&schedule.name),
                    text_arg(&schedule.spec.function),
                    text_arg(scheduled_for),
                    now.clone(),
                    now,
                    Arg::Number(f64::from(attempt)),
                    text_arg(&self.node),
                ],
                &[Storage::Text],
            )
            .await
            .inspect_err(|err| tracing::error!(schedule = %schedule.name, error = %err, "recording a run's start"))
            .ok()?;
        rows.first()?.first()?.as_str()?.parse().ok()
    }

    /// Records how an attempt ended: in its `running` row if it has one,
    /// else (skipped and missed ticks) in a new one.
    async fn record(&self, running: Option<i64>, run: Attempt) {
        let optional = |value: &Option<String>| {
            value
                .as_deref()
                .map_or(Arg::NullOf(Storage::Text), text_arg)
        };
        let result = async {
            let backend = self.db.backend();
            let mut tx = backend.begin().await?;
            let outcome = [
                text_arg(&format_time(Utc::now())),
                text_arg(run.status),
                run.http_status
                    .map_or(Arg::NullOf(Storage::Number), |s| Arg::Number(s as f64)),
                optional(&run.error),
                optional(&run.invocation_id),
                Arg::Number(run.started.elapsed().as_secs_f64() * 1000.0),
            ];
            let statement = match running {
                Some(id) => backend.statement(
                    "UPDATE _aura_schedule_runs SET finished_at = ?, status = ?, http_status = ?, error = ?, \
                     invocation_id = ?, duration_ms = ? WHERE id = ?",
                    outcome.into_iter().chain([Arg::Int(id)]),
                ),
                None => backend.statement(
                    "INSERT INTO _aura_schedule_runs (finished_at, status, http_status, error, invocation_id, duration_ms, \
                     schedule, function, scheduled_for, started_at, attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    outcome.into_iter().chain([
                        text_arg(&run.schedule),
                        text_arg(&run.function),
                        text_arg(&run.scheduled_for),
                        text_arg(&format_time(run.started_at)),
                        Arg::Number(f64::from(run.attempt)),
                    ]),
                ),
            };
            tx.execute(&statement).await?;
            let prune = backend.statement(
                "DELETE FROM _aura_schedule_runs WHERE schedule = ? AND id <= \
                 (SELECT MAX(id) FROM _aura_schedule_runs WHERE schedule = ?) - ?",
                [
                    text_arg(&run.schedule),
                    text_arg(&run.schedule),
                    Arg::Int(RETAINED_RUNS),
                ],
            );
            tx.execute(&prune).await?;
            tx.commit().await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(err) = result {
            tracing::error!(schedule = %run.schedule, error = %err, "recording a scheduled run failed");
        }
    }
}

/// An attempt being timed, then its outcome.
struct Attempt {
    schedule: String,
    function: String,
    scheduled_for: String,
    started_at: DateTime<Utc>,
    started: Instant,
    attempt: u32,
    status: &'static str,
    http_status: Option<i64>,
    error: Option<String>,
    invocation_id: Option<String>,
}

impl Attempt {
    fn new(schedule: &Schedule, scheduled_for: &str, attempt: u32) -> Self {
        Self {
            schedule: schedule.name.clone(),
            function: schedule.spec.function.clone(),
            scheduled_for: scheduled_for.to_owned(),
            started_at: Utc::now(),
            started: Instant::now(),
            attempt,
            status: "failed",
            http_status: None,
            error: None,
            invocation_id: None,
        }
    }

    fn finish(
        mut self,
        status: &'static str,
        http_status: Option<i64>,
        error: Option<String>,
        invocation_id: Option<String>,
    ) -> Self {
        self.status = status;
        self.http_status = http_status;
        self.error = error;
        self.invocation_id = invocation_id;
        self
    }
}

/// Stops a background task when dropped (the lease renewal of a run,
/// however the run ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// 1 s, 2 s, 4 s … capped at a minute.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc))
}

fn text_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A row of [`SCHEDULE_COLUMNS`].
fn schedule_from_row(row: &[Value]) -> Schedule {
    Schedule {
        name: text_of(&row[0]),
        spec: ScheduleSpec {
            function: text_of(&row[1]),
            cron: text_of(&row[2]),
            tz: text_of(&row[3]),
            payload: serde_json::from_str(&text_of(&row[4])).unwrap_or_default(),
            path: text_of(&row[5]),
            retries: row[6].as_f64().map_or(0, |n| n as u32),
            overlap: Overlap::parse(&text_of(&row[7])),
            missed: Missed::parse(&text_of(&row[8])),
        },
        paused: row[9].as_bool().unwrap_or(false),
        next_run_at: text_of(&row[10]),
        created_at: text_of(&row[11]),
        updated_at: text_of(&row[12]),
    }
}

fn run_from_row(row: &[Value]) -> Run {
    let optional = |value: &Value| value.as_str().map(str::to_owned);
    Run {
        id: text_of(&row[0]).parse().unwrap_or_default(),
        schedule: text_of(&row[1]),
        function: text_of(&row[2]),
        scheduled_for: text_of(&row[3]),
        started_at: text_of(&row[4]),
        finished_at: text_of(&row[5]),
        status: text_of(&row[6]),
        attempt: row[7].as_f64().map_or(0, |n| n as i64),
        http_status: row[8].as_f64().map(|n| n as i64),
        error: optional(&row[9]),
        invocation_id: optional(&row[10]),
        duration_ms: row[11].as_f64().unwrap_or_default(),
        node: optional(&row[12]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
