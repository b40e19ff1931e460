-- Cron schedules that invoke functions, and their run history.
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    function    TEXT NOT NULL,
    cron        TEXT NOT NULL,
    tz          TEXT NOT NULL,
    payload     TEXT NOT NULL,
    path        TEXT NOT NULL,
    retries     INTEGER NOT NULL,
    overlap     TEXT NOT NULL,
    missed      TEXT NOT NULL,
    paused      INTEGER NOT NULL DEFAULT 0,
    next_run_at TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE schedule_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule      TEXT NOT NULL,
    function      TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    http_status   INTEGER,
    error         TEXT,
    invocation_id TEXT,
    duration_ms   REAL NOT NULL
);

CREATE INDEX schedule_runs_schedule ON schedule_runs(schedule, id);
