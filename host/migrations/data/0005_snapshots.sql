-- Snapshots of an environment's definition (collections, functions,
-- schedules), recorded by every push and restored by rollback. The
-- components a snapshot names are kept while it exists.
CREATE TABLE snapshots (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    label      TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE snapshot_components (
    snapshot INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    hash     TEXT NOT NULL,
    PRIMARY KEY (snapshot, hash)
);

CREATE INDEX snapshot_components_hash ON snapshot_components(hash);
