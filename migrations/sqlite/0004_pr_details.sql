-- Version 4: a PR whose description says "details will follow" (a registry's pull budget
-- was spent) gets its description rewritten at a later scan. Older rows owe nothing.
ALTER TABLE pull_requests ADD COLUMN details_pending BOOLEAN NOT NULL DEFAULT 0;
