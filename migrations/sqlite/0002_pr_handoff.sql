-- Version 2: what the writer needs to respect people on its pull requests, and the
-- dashboard issue. Rows from version 1 get "not edited, nothing said yet, no blobs known".
ALTER TABLE pull_requests ADD COLUMN human_edited BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE pull_requests ADD COLUMN handoff_notified BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE pull_requests ADD COLUMN base_blobs TEXT NOT NULL DEFAULT '{}';
ALTER TABLE pull_requests ADD COLUMN closed_at TEXT;
ALTER TABLE repositories ADD COLUMN dashboard_issue INTEGER;
