//! Cron schedules: firing, history, retries, overlap, pause, missed runs.

use crate::support::{Aura, assert_error};
use serde_json::{Value, json};
use std::time::Duration;

async fn put(aura: &Aura, name: &str, spec: Value) -> (u16, Value) {
    let response = aura
        .http
        .put(aura.at(&format!("/api/admin/schedules/{name}")))
        .bearer_auth(&aura.token)
        .json(&spec)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn runs(aura: &Aura, name: &str) -> Vec<Value> {
    let (status, body) = aura
        .admin_get(&format!("/api/admin/schedules/{name}/runs?limit=1000"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().cloned().unwrap_or_default()
}

/// Polls a schedule's runs until `done` holds; returns them.
async fn runs_until(aura: &Aura, name: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut all = Vec::new();
    for _ in 0..100 {
        all = runs(aura, name).await;
        if done(&all) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the runs of {name} never got there: {all:?}");
}

/// Whether no run of `runs` is still going.
fn ended(runs: &[Value]) -> bool {
    with_status(runs, "running").is_empty()
}

fn with_status<'a>(runs: &'a [Value], status: &str) -> Vec<&'a Value> {
    runs.iter().filter(|r| r["status"] == status).collect()
}

#[tokio::test]
async fn a_schedule_every_second_fires_and_records_history() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    let (status, schedule) = put(
        &aura,
        "tick",
        json!({"function": "hello", "cron": "* * * * * *"}),
    )
    .await;
    assert_eq!(status, 200, "{schedule}");
    assert_eq!(schedule["paused"], false);
    tokio::time::sleep(Duration::from_secs(4)).await;

    let runs = runs(&aura, "tick").await;
    let ok = with_status(&runs, "ok");
    assert!(ok.len() >= 3, "at least 3 runs in 4 s: {runs:?}");
    let run = ok[0];
    assert_eq!(
        (run["attempt"].clone(), run["http_status"].clone()),
        (json!(1), json!(200))
    );
    let id = run["invocation_id"].as_str().unwrap();
    let record = aura.invocation_log("hello", id).await;
    assert_eq!(
        (record["method"].clone(), record["path"].clone()),
        (json!("POST"), json!("/"))
    );
}

#[tokio::test]
async fn payload_path_and_headers_reach_the_function() {
    let aura = Aura::start();
    aura.deploy("recorder", "recorder", json!({})).await;
    let spec = json!({"function": "recorder", "cron": "0 0 1 1 *", "path": "/jobs/cleanup", "payload": {"older_than": 30}});
    assert_eq!(put(&aura, "cleanup", spec).await.0, 200);
    let response = aura
        .http
        .post(aura.at("/api/admin/schedules/cleanup/run"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    // A run is in the history from its start (`running`): wait for its end.
    let ok = runs_until(&aura, "cleanup", |runs| !runs.is_empty() && ended(runs)).await;
    assert_eq!(ok[0]["status"], "ok", "{ok:?}");
    let record = aura
        .invocation_log("recorder", ok[0]["invocation_id"].as_str().unwrap())
        .await;
    let stdout = record["stdout"].as_str().unwrap();
    let scheduled_for = ok[0]["scheduled_for"].as_str().unwrap();
    assert!(stdout.starts_with("POST /jobs/cleanup\n"), "{stdout}");
    assert!(
        stdout.contains("content-type: application/json\n"),
        "{stdout}"
    );
    assert!(stdout.contains("x-aura-schedule: cleanup\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("x-aura-scheduled-for: {scheduled_for}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("x-aura-attempt: 1\n"), "{stdout}");
    assert!(stdout.ends_with("{\"older_than\":30}\n"), "{stdout}");
}

#[tokio::test]
async fn a_failing_run_retries_with_backoff() {
    let aura = Aura::start();
    aura.deploy("trap", "trap", json!({})).await;
    let spec = json!({"function": "trap", "cron": "0 0 1 1 *", "retries": 2});
    assert_eq!(put(&aura, "flaky", spec).await.0, 200);
    aura.http
        .post(aura.at("/api/admin/schedules/flaky/run"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    let all = runs_until(&aura, "flaky", |runs| runs.len() >= 3 && ended(runs)).await;
    let attempts: Vec<i64> = all
        .iter()
        .rev()
        .map(|r| r["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3], "{all:?}");
    assert!(all.iter().all(|r| r["status"] == "failed"));
    assert!(
        all[0]["error"].as_str().unwrap().contains("trapped"),
        "{all:?}"
    );
    // Backoff: attempt 2 starts about a second after attempt 1 ends.
    let first_end =
        chrono::DateTime::parse_from_rfc3339(all[2]["finished_at"].as_str().unwrap()).unwrap();
    let second_start =
        chrono::DateTime::parse_from_rfc3339(all[1]["started_at"].as_str().unwrap()).unwrap();
    assert!(
        (second_start - first_end).num_milliseconds() >= 900,
        "{all:?}"
    );
}

#[tokio::test]
async fn overlapping_runs_are_skipped() {
    let aura = Aura::start();
    aura.deploy("sleepy", "sleepy", json!({})).await;
    let spec =
        json!({"function": "sleepy", "cron": "* * * * * *", "path": "/?ms=2500", "retries": 0});
    assert_eq!(put(&aura, "slow", spec).await.0, 200);
    tokio::time::sleep(Duration::from_millis(4200)).await;
    let all = runs(&aura, "slow").await;
    assert!(!with_status(&all, "skipped").is_empty(), "{all:?}");
    assert!(with_status(&all, "ok").len() <= 2, "{all:?}");
}

#[tokio::test]
async fn paused_schedules_do_not_fire_and_removal_is_final() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    assert_eq!(
        put(
            &aura,
            "tick",
            json!({"function": "hello", "cron": "* * * * * *"})
        )
        .await
        .0,
        200
    );
    let (status, paused) = aura
        .admin_post("/api/admin/schedules/tick/pause", Value::Null)
        .await;
    assert_eq!((status, paused["paused"].clone()), (200, json!(true)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = runs(&aura, "tick").await.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        runs(&aura, "tick").await.len(),
        before,
        "no runs while paused"
    );

    let (status, _) = aura
        .admin_post("/api/admin/schedules/tick/resume", Value::Null)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        runs(&aura, "tick").await.len() > before,
        "runs again after resume"
    );

    let response = aura
        .http
        .delete(aura.at("/api/admin/schedules/tick"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = aura
        .http
        .get(aura.at("/api/admin/schedules/tick"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "schedule_not_found").await;
}

#[tokio::test]
async fn runs_missed_while_down_are_recorded_as_missed() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    assert_eq!(
        put(
            &aura,
            "tick",
            json!({"function": "hello", "cron": "*/2 * * * * *"})
        )
        .await
        .0,
        200
    );
    let dir = aura.stop();
    // Down for well over one 2 s tick.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let aura = Aura::start_in(dir);
    let all = runs(&aura, "tick").await;
    let missed = with_status(&all, "missed");
    assert_eq!(missed.len(), 1, "{all:?}");
    assert!(
        missed[0]["error"].as_str().unwrap().contains("down"),
        "{all:?}"
    );
}

#[tokio::test]
async fn bad_schedules_are_refused_with_the_reason() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    for (spec, code, needle) in [
        (
            json!({"function": "hello", "cron": "61 * * * *"}),
            "invalid_schedule",
            "not valid",
        ),
        (
            json!({"function": "hello", "cron": "* *"}),
            "invalid_schedule",
            "5 fields",
        ),
        (
            json!({"function": "hello", "cron": "* * * * *", "tz": "Mars/Base"}),
            "invalid_schedule",
            "time zone",
        ),
        (
            json!({"function": "hello", "cron": "* * * * *", "retries": 99}),
            "invalid_schedule",
            "retries",
        ),
        (
            json!({"function": "hello", "cron": "* * * * *", "every": 5}),
            "invalid_schedule",
            "unknown field",
        ),
        (
            json!({"function": "nobody", "cron": "* * * * *"}),
            "function_not_found",
            "nobody",
        ),
    ] {
        let (status, body) = put(&aura, "bad", spec.clone()).await;
        assert_eq!(body["error"]["code"], code, "{spec}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{spec}: {body}"
        );
        assert!(status == 400 || status == 404, "{status}");
    }
    let (_, list) = aura.admin_get("/api/admin/schedules").await;
    assert_eq!(list, json!({"schedules": []}));
}

#[tokio::test]
async fn cli_manages_schedules() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    let output = aura.cli(&[
        "schedules",
        "add",
        "nightly",
        "--cron",
        "0 3 * * *",
        "--function",
        "hello",
        "--tz",
        "Europe/Paris",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("scheduled nightly: next run at"));
    let out = String::from_utf8_lossy(&aura.cli(&["schedules", "list"]).stdout).into_owned();
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("nightly")
            && l.contains("Europe/Paris")
            && l.contains("active")),
        "{out}"
    );
    assert!(
        aura.cli(&["schedules", "run-now", "nightly"])
            .status
            .success()
    );
    let mut out = String::new();
    for _ in 0..50 {
        out = String::from_utf8_lossy(&aura.cli(&["schedules", "runs", "nightly"]).stdout)
            .into_owned();
        if out.contains("attempt 1 ok 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(out.contains("attempt 1 ok 200"), "{out}");
    assert!(
        aura.cli(&["schedules", "remove", "nightly", "--yes"])
            .status
            .success()
    );
}

#[tokio::test]
async fn schedules_in_the_manifest_are_applied_on_deploy() {
    let aura = Aura::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aura.toml"),
        "[function]\nname = \"greeter\"\n\n[[schedules]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\ntz = \"Europe/Paris\"\npayload = { days = 30 }\n",
    )
    .unwrap();
    let output = aura.cli_in(dir.path(), &["deploy", &crate::support::wasm_path("hello")]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("scheduled nightly: next run at"));
    let (status, schedule) = aura.admin_get("/api/admin/schedules/nightly").await;
    assert_eq!(status, 200, "{schedule}");
    assert_eq!(schedule["function"], "greeter");
    assert_eq!(schedule["tz"], "Europe/Paris");
    assert_eq!(schedule["payload"], json!({"days": 30}));
}

/// Two nodes on one PostgreSQL database share their schedules: each tick
/// fires once across both, and a run in flight on one node makes the
/// other skip (the lease is in the database).
#[tokio::test]
async fn two_nodes_fire_each_tick_once_over_postgres() {
    let Some(a) = crate::database::Db::postgres().await else {
        return;
    };
    let b = crate::database::second_node(&a, &[]);
    a.aura.deploy("hello", "hello", json!({})).await;
    a.aura.deploy("sleepy", "sleepy", json!({})).await;
    serving(&b, "/fn/sleepy?ms=1").await;
    serving(&b, "/fn/hello").await;
    let spec = json!({"function": "hello", "cron": "* * * * * *"});
    assert_eq!(put(&a.aura, "tick", spec).await.0, 200);
    let slow =
        json!({"function": "sleepy", "cron": "* * * * * *", "path": "/?ms=2500", "retries": 0});
    assert_eq!(put(&b, "slow", slow).await.0, 200);
    tokio::time::sleep(Duration::from_millis(4200)).await;
    for name in ["tick", "slow"] {
        let paused = b
            .http
            .post(b.at(&format!("/api/admin/schedules/{name}/pause")))
            .bearer_auth(&b.token)
            .send()
            .await
            .unwrap();
        assert_eq!(paused.status(), 200);
    }
    // Runs in flight finish; their history is shared.
    tokio::time::sleep(Duration::from_millis(3000)).await;

    let ticks = runs(&a.aura, "tick").await;
    let ok = with_status(&ticks, "ok");
    assert!(ok.len() >= 3, "at least 3 runs in 4 s: {ticks:?}");
    let mut fired: Vec<&str> = ticks
        .iter()
        .map(|r| r["scheduled_for"].as_str().unwrap())
        .collect();
    fired.sort_unstable();
    let count = fired.len();
    fired.dedup();
    assert_eq!(fired.len(), count, "a tick fired twice: {ticks:?}");
    assert_eq!(runs(&b, "tick").await.len(), ticks.len());

    let slow = runs(&a.aura, "slow").await;
    assert!(!with_status(&slow, "skipped").is_empty(), "{slow:?}");
    assert!(with_status(&slow, "ok").len() <= 2, "{slow:?}");
}

/// Schedules an earlier version kept in the node's `aura.db` move to the
/// shared tables at start, history included.
#[tokio::test]
async fn schedules_of_an_earlier_version_are_moved_at_start() {
    use sqlx::Connection as _;
    let aura = Aura::start();
    aura.deploy("hello", "hello", json!({})).await;
    let dir = aura.stop();
    let file = dir.path().join("aura.db");
    crate::support::sqlite_exec(
        &file,
        &[
        "CREATE TABLE schedules (name TEXT PRIMARY KEY, function TEXT NOT NULL, cron TEXT NOT NULL, tz TEXT NOT NULL, payload TEXT NOT NULL, path TEXT NOT NULL, retries INTEGER NOT NULL, overlap TEXT NOT NULL, missed TEXT NOT NULL, paused INTEGER NOT NULL DEFAULT 0, next_run_at TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
        "CREATE TABLE schedule_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, schedule TEXT NOT NULL, function TEXT NOT NULL, scheduled_for TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, status TEXT NOT NULL, attempt INTEGER NOT NULL, http_status INTEGER, error TEXT, invocation_id TEXT, duration_ms REAL NOT NULL)",
        "INSERT INTO schedules VALUES ('nightly', 'hello', '0 3 * * *', 'UTC', '{\"n\":1}', '/', 2, 'skip', 'skip', 1, '2099-01-01T03:00:00.000Z', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        "INSERT INTO schedule_runs (schedule, function, scheduled_for, started_at, finished_at, status, attempt, http_status, error, invocation_id, duration_ms) VALUES ('nightly', 'hello', '2026-01-02T03:00:00.000Z', '2026-01-02T03:00:00.001Z', '2026-01-02T03:00:00.010Z', 'ok', 1, 200, NULL, 'inv-1', 9.5)",
        ],
    )
    .await;

    let aura = Aura::start_in(dir);
    let (status, moved) = aura.admin_get("/api/admin/schedules/nightly").await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (
            &moved["cron"],
            &moved["payload"],
            &moved["retries"],
            &moved["paused"]
        ),
        (
            &json!("0 3 * * *"),
            &json!({"n": 1}),
            &json!(2),
            &json!(true)
        )
    );
    let history = runs(&aura, "nightly").await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (
            &history[0]["http_status"],
            &history[0]["invocation_id"],
            &history[0]["duration_ms"]
        ),
        (&json!(200), &json!("inv-1"), &json!(9.5))
    );
    let mut now = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let left: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'schedules'")
            .fetch_optional(&mut now)
            .await
            .unwrap();
    assert_eq!(left, None, "the old table is gone");
}

/// With `overlap = "queue"`, a tick due while a run goes on waits for it
/// (one waiting tick at most), then runs: nothing is skipped and runs
/// never overlap.
#[tokio::test]
async fn overlapping_runs_wait_their_turn_when_queued() {
    let aura = Aura::start();
    aura.deploy("sleepy", "sleepy", json!({})).await;
    let spec = json!({"function": "sleepy", "cron": "* * * * * *", "path": "/?ms=1500", "retries": 0, "overlap": "queue"});
    assert_eq!(put(&aura, "slow", spec).await.0, 200);
    let all = runs_until(&aura, "slow", |runs| with_status(runs, "ok").len() >= 2).await;
    assert!(with_status(&all, "skipped").is_empty(), "{all:?}");
    let mut ok: Vec<&Value> = with_status(&all, "ok");
    ok.sort_by_key(|r| r["started_at"].as_str().unwrap().to_owned());
    let end = |r: &Value| r["finished_at"].as_str().unwrap().to_owned();
    let start = |r: &Value| r["started_at"].as_str().unwrap().to_owned();
    assert!(start(ok[1]) >= end(ok[0]), "runs overlap: {ok:?}");
    assert_ne!(ok[0]["scheduled_for"], ok[1]["scheduled_for"]);
}

/// Waits until `node` answers 200 on `path` (a function deployed on
/// another node reaches it within moments).
async fn serving(node: &Aura, path: &str) {
    for _ in 0..500 {
        let response = node.http.get(node.at(path)).send().await.unwrap();
        if response.status() == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never served {path}", node.url);
}

/// A scheduled run whose node is killed mid-run is recorded `lost`, naming
/// that node, once its lease lapses; a surviving node retries it under the
/// schedule's policy, and later ticks run (issue 19).
#[tokio::test]
async fn a_run_killed_with_its_node_is_recorded_lost_and_retried() {
    let Some(mut a) = crate::database::Db::postgres().await else {
        return;
    };
    let mut b = crate::database::second_node(&a, &[]);
    a.aura.deploy("sleepy", "sleepy", json!({})).await;
    serving(&b, "/fn/sleepy?ms=1").await;
    let slow =
        json!({"function": "sleepy", "cron": "* * * * * *", "path": "/?ms=2500", "retries": 1});
    assert_eq!(put(&a.aura, "slow", slow).await.0, 200);
    let first = runs_until(&a.aura, "slow", |runs| {
        !with_status(runs, "running").is_empty()
    })
    .await;
    let running = with_status(&first, "running")[0].clone();
    let node_of = |aura: &Aura| {
        std::fs::read_to_string(aura.data_dir().join("node.id"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let victim = running["node"].as_str().unwrap().to_owned();
    let survivor = if victim == node_of(&a.aura) {
        a.aura.kill();
        &b
    } else {
        assert_eq!(victim, node_of(&b), "{running}");
        b.kill();
        &a.aura
    };

    // Once the lease lapses, the run is lost (naming the node), retried
    // as attempt 2 of the same tick, and later ticks run.
    let tick = running["scheduled_for"].clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let history = loop {
        let history = runs(survivor, "slow").await;
        let lost = history
            .iter()
            .find(|r| r["scheduled_for"] == tick && r["attempt"] == 1);
        let retried = history
            .iter()
            .any(|r| r["scheduled_for"] == tick && r["attempt"] == 2 && r["status"] == "ok");
        let later = history
            .iter()
            .any(|r| r["status"] == "ok" && r["scheduled_for"].as_str() > tick.as_str());
        if lost.is_some_and(|r| r["status"] == "lost") && retried && later {
            break history;
        }
        assert!(std::time::Instant::now() < deadline, "{history:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lost = history
        .iter()
        .find(|r| r["scheduled_for"] == tick && r["attempt"] == 1)
        .unwrap();
    assert!(lost["error"].as_str().unwrap().contains(&victim), "{lost}");
    assert!(
        with_status(&history, "running").len() <= 1,
        "only the survivor's run may be going: {history:?}"
    );
    drop(b);
    a.finish().await;
}
