-- Version 5: what a tag pointed at, shared by replicas so a cycle asks a registry once per
-- tag however many replicas run it. A row is an answer (`digest`, `media_type`, asked at
-- `asked_at`, arrived at `resolved_at`), a claim on asking (`claimed_by` until
-- `claim_until`: the others wait for its answer; a claim that lapses may be taken over), or
-- both (a claim on refreshing an old answer).
CREATE TABLE registry_tags (
    registry    TEXT NOT NULL,
    repository  TEXT NOT NULL,
    tag         TEXT NOT NULL,
    digest      TEXT,
    media_type  TEXT,
    asked_at    TEXT,
    resolved_at TEXT,
    claimed_by  TEXT,
    claim_until TEXT,
    PRIMARY KEY (registry, repository, tag)
);
