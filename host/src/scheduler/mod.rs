//! The scheduler: cron schedules that invoke functions, with run history,
//! retries with backoff, an overlap policy and a missed-run policy.
//!
//! A scheduled run is an HTTP request to the function: `POST {path}` (default
//! `/`) with the schedule's JSON payload as body and the headers
//! `x-aura-schedule`, `x-aura-scheduled-for` and `x-aura-attempt`. A 2xx
//! answer is success; anything else (or a trap, timeout…) fails the attempt.
//!
//! It owns the `schedules` and `schedule_runs` tables. Single node for now:
//! a due run is claimed by moving `next_run_at` forward with a conditional
//! update, the same step a multi-node lease will build on.

mod spec;

pub use spec::{Missed, Overlap, ScheduleSpec};

use crate::functions::Functions;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Runs kept per schedule; older ones are pruned.
const RETAINED_RUNS: i64 = 1000;
/// Longest wait between checks for due schedules.
const MAX_SLEEP: Duration = Duration::from_millis(500);

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
    /// `ok`, `failed`, `skipped` (overlap) or `missed` (downtime).
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
    Internal(#[from] sqlx::Error),
}

#[derive(Default)]
struct Flight {
    running: bool,
    queued: Option<String>,
}

/// The scheduler service.
pub struct Scheduler {
    db: SqlitePool,
    functions: Arc<Functions>,
    flights: Mutex<HashMap<String, Flight>>,
    wake: Notify,
}

impl Scheduler {
    /// Applies the missed-run policy to schedules that fell due while the
    /// server was down, then starts the firing loop.
    pub async fn start(
        db: SqlitePool,
        functions: Arc<Functions>,
    ) -> Result<Arc<Self>, ScheduleError> {
        let scheduler = Arc::new(Self {
            db,
            functions,
            flights: Mutex::default(),
            wake: Notify::new(),
        });
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
            sqlx::query("UPDATE schedules SET next_run_at = ? WHERE name = ?")
                .bind(format_time(next))
                .bind(&schedule.name)
                .execute(&scheduler.db)
                .await?;
            let record = Attempt::new(&schedule, &schedule.next_run_at, 0);
            scheduler
                .record(record.finish(
                    "missed",
                    None,
                    Some("the server was down at this time".into()),
                    None,
                ))
                .await;
        }
        tokio::spawn(scheduler.clone().run_loop());
        Ok(scheduler)
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
        sqlx::query(
            "INSERT INTO schedules (name, function, cron, tz, payload, path, retries, overlap, missed, paused, \
             next_run_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) \
             ON CONFLICT(name) DO UPDATE SET function = excluded.function, cron = excluded.cron, tz = excluded.tz, \
             payload = excluded.payload, path = excluded.path, retries = excluded.retries, overlap = excluded.overlap, \
             missed = excluded.missed, next_run_at = excluded.next_run_at, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(&spec.function)
        .bind(&spec.cron)
        .bind(&spec.tz)
        .bind(spec.payload.to_string())
        .bind(&spec.path)
        .bind(i64::from(spec.retries))
        .bind(spec.overlap.as_str())
        .bind(spec.missed.as_str())
        .bind(&next)
        .bind(&stamp)
        .bind(&stamp)
        .execute(&self.db)
        .await?;
        self.wake.notify_one();
        self.get(name).await
    }

    /// One schedule.
    pub async fn get(&self, name: &str) -> Result<Schedule, ScheduleError> {
        let row = sqlx::query("SELECT * FROM schedules WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| ScheduleError::NotFound(name.to_owned()))?;
        schedule_from_row(&row)
    }

    /// All schedules, by name.
    pub async fn list(&self) -> Result<Vec<Schedule>, ScheduleError> {
        let rows = sqlx::query("SELECT * FROM schedules ORDER BY name")
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    /// Removes a schedule and its history.
    pub async fn remove(&self, name: &str) -> Result<(), ScheduleError> {
        let deleted = sqlx::query("DELETE FROM schedules WHERE name = ?")
            .bind(name)
            .execute(&self.db)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(ScheduleError::NotFound(name.to_owned()));
        }
        sqlx::query("DELETE FROM schedule_runs WHERE schedule = ?")
            .bind(name)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Pauses or resumes a schedule; resuming starts from the next tick.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<Schedule, ScheduleError> {
        let schedule = self.get(name).await?;
        let next = format_time(schedule.spec.next_after(Utc::now())?);
        sqlx::query(
            "UPDATE schedules SET paused = ?, next_run_at = ?, updated_at = ? WHERE name = ?",
        )
        .bind(paused)
        .bind(next)
        .bind(format_time(Utc::now()))
        .bind(name)
        .execute(&self.db)
        .await?;
        self.wake.notify_one();
        self.get(name).await
    }

    /// Fires a run now, outside the cron timetable (the overlap policy applies).
    pub async fn run_now(self: &Arc<Self>, name: &str) -> Result<(), ScheduleError> {
        let schedule = self.get(name).await?;
        self.clone().fire(schedule, format_time(Utc::now()));
        Ok(())
    }

    /// The newest runs of a schedule, newest first.
    pub async fn runs(&self, name: &str, limit: i64) -> Result<Vec<Run>, ScheduleError> {
        self.get(name).await?;
        let rows =
            sqlx::query("SELECT * FROM schedule_runs WHERE schedule = ? ORDER BY id DESC LIMIT ?")
                .bind(name)
                .bind(limit)
                .fetch_all(&self.db)
                .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn run_loop(self: Arc<Self>) {
        loop {
            let now = Utc::now();
            match self.claim_due(now).await {
                Ok(due) => {
                    for (schedule, scheduled_for) in due {
                        self.clone().fire(schedule, scheduled_for);
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

    /// Claims every due schedule by moving its `next_run_at` past now.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Schedule, String)>, ScheduleError> {
        let rows = sqlx::query("SELECT * FROM schedules WHERE paused = 0 AND next_run_at <= ?")
            .bind(format_time(now))
            .fetch_all(&self.db)
            .await?;
        let mut claimed = Vec::new();
        for row in &rows {
            let schedule = schedule_from_row(row)?;
            let Some(next) = self.next_or_pause(&schedule, now).await? else {
                continue;
            };
            let next = format_time(next);
            let won = sqlx::query(
                "UPDATE schedules SET next_run_at = ? WHERE name = ? AND next_run_at = ?",
            )
            .bind(&next)
            .bind(&schedule.name)
            .bind(&schedule.next_run_at)
            .execute(&self.db)
            .await?
            .rows_affected()
                == 1;
            if won {
                let scheduled_for = schedule.next_run_at.clone();
                claimed.push((schedule, scheduled_for));
            }
        }
        Ok(claimed)
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
                sqlx::query("UPDATE schedules SET paused = 1, updated_at = ? WHERE name = ?")
                    .bind(format_time(now))
                    .bind(&schedule.name)
                    .execute(&self.db)
                    .await?;
                Ok(None)
            }
        }
    }

    async fn next_due(&self) -> Option<DateTime<Utc>> {
        let next: Option<String> =
            sqlx::query_scalar("SELECT MIN(next_run_at) FROM schedules WHERE paused = 0")
                .fetch_one(&self.db)
                .await
                .ok()?;
        next.map(|n| parse_time(&n))
    }

    /// Starts a run unless one is in flight; then the overlap policy decides.
    fn fire(self: Arc<Self>, schedule: Schedule, scheduled_for: String) {
        let start = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            let flight = flights.entry(schedule.name.clone()).or_default();
            match (flight.running, schedule.spec.overlap) {
                (false, _) => {
                    flight.running = true;
                    true
                }
                (true, Overlap::Queue) => {
                    flight.queued = Some(scheduled_for.clone());
                    false
                }
                (true, Overlap::Skip) => false,
            }
        };
        if !start {
            if schedule.spec.overlap == Overlap::Skip {
                let record = Attempt::new(&schedule, &scheduled_for, 0).finish(
                    "skipped",
                    None,
                    Some("the previous run was still going".into()),
                    None,
                );
                tokio::spawn(async move { self.record(record).await });
            }
            return;
        }
        tokio::spawn(async move {
            let mut scheduled_for = scheduled_for;
            loop {
                self.run(&schedule, &scheduled_for).await;
                let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
                let flight = flights.entry(schedule.name.clone()).or_default();
                match flight.queued.take() {
                    Some(next) => scheduled_for = next,
                    None => {
                        flight.running = false;
                        return;
                    }
                }
            }
        });
    }

    /// One run: the first attempt and up to `retries` more, with backoff.
    async fn run(&self, schedule: &Schedule, scheduled_for: &str) {
        let attempts = 1 + schedule.spec.retries;
        for attempt in 1..=attempts {
            let record = self.attempt(schedule, scheduled_for, attempt).await;
            let ok = record.status == "ok";
            self.record(record).await;
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
        let Some(active) = self.functions.active(&schedule.spec.function) else {
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

    async fn record(&self, run: Attempt) {
        let result = async {
            sqlx::query(
                "INSERT INTO schedule_runs (schedule, function, scheduled_for, started_at, finished_at, status, \
                 attempt, http_status, error, invocation_id, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&run.schedule)
            .bind(&run.function)
            .bind(&run.scheduled_for)
            .bind(format_time(run.started_at))
            .bind(format_time(Utc::now()))
            .bind(run.status)
            .bind(i64::from(run.attempt))
            .bind(run.http_status)
            .bind(&run.error)
            .bind(&run.invocation_id)
            .bind(run.started.elapsed().as_secs_f64() * 1000.0)
            .execute(&self.db)
            .await?;
            sqlx::query(
                "DELETE FROM schedule_runs WHERE schedule = ? AND id <= \
                 (SELECT MAX(id) FROM schedule_runs WHERE schedule = ?) - ?",
            )
            .bind(&run.schedule)
            .bind(&run.schedule)
            .bind(RETAINED_RUNS)
            .execute(&self.db)
            .await
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

/// 1 s, 2 s, 4 s … capped at a minute.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc))
}

fn schedule_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Schedule, ScheduleError> {
    let text = |column: &str| row.try_get::<String, _>(column);
    Ok(Schedule {
        name: text("name")?,
        spec: ScheduleSpec {
            function: text("function")?,
            cron: text("cron")?,
            tz: text("tz")?,
            payload: serde_json::from_str(&text("payload")?).unwrap_or_default(),
            path: text("path")?,
            retries: u32::try_from(row.try_get::<i64, _>("retries")?).unwrap_or(0),
            overlap: Overlap::parse(&text("overlap")?),
            missed: Missed::parse(&text("missed")?),
        },
        paused: row.try_get("paused")?,
        next_run_at: text("next_run_at")?,
        created_at: text("created_at")?,
        updated_at: text("updated_at")?,
    })
}

fn run_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Run, ScheduleError> {
    Ok(Run {
        id: row.try_get("id")?,
        schedule: row.try_get("schedule")?,
        function: row.try_get("function")?,
        scheduled_for: row.try_get("scheduled_for")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        status: row.try_get("status")?,
        attempt: row.try_get("attempt")?,
        http_status: row.try_get("http_status")?,
        error: row.try_get("error")?,
        invocation_id: row.try_get("invocation_id")?,
        duration_ms: row.try_get("duration_ms")?,
    })
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
