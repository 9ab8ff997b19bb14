-- digestif schema, version 1 (SQLite).
-- Timestamps are TEXT in RFC 3339 with a +00:00 offset, always written from Rust
-- (never SQLite's datetime()), so text comparison orders them correctly.
-- Booleans are INTEGER 0/1. Ids of installations and repositories are GitHub's.

CREATE TABLE installations (
    id            INTEGER PRIMARY KEY,
    account_login TEXT    NOT NULL,
    account_type  TEXT    NOT NULL,
    suspended_at  TEXT,
    deleted_at    TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);

CREATE TABLE repositories (
    id               INTEGER PRIMARY KEY,
    installation_id  INTEGER NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    full_name        TEXT    NOT NULL,
    default_branch   TEXT,
    archived         BOOLEAN NOT NULL DEFAULT 0,
    config_text      TEXT,
    config_hash      TEXT,
    config_error     TEXT,
    schedule         TEXT    NOT NULL DEFAULT 'daily',
    timezone         TEXT    NOT NULL DEFAULT 'UTC',
    next_scan_at     TEXT,
    last_scan_at     TEXT,
    last_scan_status TEXT,
    last_error       TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
);
CREATE INDEX repositories_full_name ON repositories (lower(full_name));
CREATE INDEX repositories_installation ON repositories (installation_id);
CREATE INDEX repositories_next_scan ON repositories (next_scan_at);

CREATE TABLE image_refs (
    id             INTEGER PRIMARY KEY,
    repository_id  INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    file           TEXT    NOT NULL,
    line           INTEGER NOT NULL,
    image          TEXT    NOT NULL,
    tag            TEXT,
    digest         TEXT,
    status         TEXT    NOT NULL,
    current_digest TEXT,
    message        TEXT,
    seen_at        TEXT    NOT NULL
);
CREATE INDEX image_refs_repository ON image_refs (repository_id);

CREATE TABLE digests_seen (
    registry      TEXT NOT NULL,
    repository    TEXT NOT NULL,
    tag           TEXT NOT NULL,
    digest        TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    PRIMARY KEY (registry, repository, tag, digest)
);

CREATE TABLE pull_requests (
    id            INTEGER PRIMARY KEY,
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    branch        TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    head_sha      TEXT,
    base_sha      TEXT,
    updates       TEXT    NOT NULL DEFAULT '[]',
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    UNIQUE (repository_id, number)
);
CREATE INDEX pull_requests_branch ON pull_requests (repository_id, branch);

CREATE TABLE ignores (
    id            INTEGER PRIMARY KEY,
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    image         TEXT    NOT NULL,
    tag           TEXT,
    digest        TEXT,
    reason        TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    created_by    TEXT,
    created_at    TEXT    NOT NULL
);
CREATE UNIQUE INDEX ignores_unique
    ON ignores (repository_id, image, coalesce(tag, ''), coalesce(digest, ''));

CREATE TABLE webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    event       TEXT NOT NULL,
    action      TEXT,
    received_at TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    unique_key       TEXT,
    state            TEXT    NOT NULL,
    run_at           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    finished_at      TEXT
);
-- At most one queued and at most one running job per key: a request that arrives while
-- the same work runs waits behind it instead of being lost or running concurrently.
CREATE UNIQUE INDEX jobs_queued_key ON jobs (unique_key) WHERE state = 'queued';
CREATE UNIQUE INDEX jobs_running_key ON jobs (unique_key) WHERE state = 'running';
CREATE INDEX jobs_queued_run_at ON jobs (run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state, id);
