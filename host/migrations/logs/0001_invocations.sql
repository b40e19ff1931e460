-- One row per function invocation, kept in its own database file so that
-- log writes never contend with data writes.
CREATE TABLE invocations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    function    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    status      INTEGER,
    outcome     TEXT NOT NULL,
    error       TEXT,
    duration_ms REAL NOT NULL,
    started_at  TEXT NOT NULL,
    stdout      TEXT NOT NULL,
    stderr      TEXT NOT NULL
);

CREATE INDEX invocations_function_seq ON invocations(function, seq);
