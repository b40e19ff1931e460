-- Deployed functions and their immutable versions.
CREATE TABLE functions (
    name           TEXT PRIMARY KEY,
    active_version INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE function_versions (
    function   TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    limits     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (function, version)
);

CREATE INDEX function_versions_hash ON function_versions(hash);
