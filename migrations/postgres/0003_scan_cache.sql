-- What the last scan of each repository read, so the next one downloads only what changed:
-- the branch head with GitHub's ETag (a 304 answer is free), and each candidate file by
-- blob sha. `content` is NULL for a file that yields no reference (it need not be kept).
CREATE TABLE scan_states (
    repository_id     BIGINT  PRIMARY KEY REFERENCES repositories (id) ON DELETE CASCADE,
    head_sha          TEXT    NOT NULL,
    tree_sha          TEXT    NOT NULL,
    head_etag         TEXT,
    extractor_version INTEGER NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE scanned_files (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    path          TEXT   NOT NULL,
    blob_sha      TEXT   NOT NULL,
    mode          TEXT   NOT NULL,
    content       TEXT,
    PRIMARY KEY (repository_id, path)
);
