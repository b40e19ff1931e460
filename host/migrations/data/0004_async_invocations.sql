-- Durable queue of asynchronous invocations and their stored responses.
CREATE TABLE async_invocations (
    id                 TEXT PRIMARY KEY,
    function           TEXT NOT NULL,
    method             TEXT NOT NULL,
    path               TEXT NOT NULL,
    headers            TEXT NOT NULL,
    body               BLOB NOT NULL,
    status             TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    response_status    INTEGER,
    response_headers   TEXT,
    response_body      BLOB,
    response_truncated INTEGER NOT NULL DEFAULT 0,
    error              TEXT,
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT
);

CREATE INDEX async_invocations_queue ON async_invocations(status, created_at);
