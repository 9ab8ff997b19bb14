//! Tag answers shared by replicas (`registry_tags`): what a tag pointed at, and who is
//! asking the registry now, so replicas on one database ask once per tag. The single flight
//! is a claim with an expiry: the claimer asks and answers, the others wait for the answer,
//! and a claim whose holder died lapses and may be taken over.

use chrono::{DateTime, Utc};

use super::{Result, Store, on_pool};

/// A tag: registry host, repository, tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagKey<'a> {
    pub registry: &'a str,
    pub repository: &'a str,
    pub tag: &'a str,
}

/// Which answers may be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagFreshness {
    /// Answers that arrived after this (now minus the TTL).
    pub arrived_after: DateTime<Utc>,
    /// And, when set, only from a request sent at or after this (a scan a person asked for).
    pub asked_since: Option<DateTime<Utc>>,
}

/// What a tag's digest and manifest type were, as a registry answered.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TagAnswer {
    pub digest: String,
    pub media_type: String,
}

/// The outcome of [`Store::claim_registry_tag`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagClaim {
    /// A fresh answer: no one needs to ask.
    Answer(TagAnswer),
    /// The caller holds the claim: it asks, then answers or releases.
    Claimed,
    /// Another replica holds a live claim: wait for its answer.
    Waiting,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    digest: Option<String>,
    media_type: Option<String>,
    asked_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
}

impl Row {
    fn fresh(self, f: &TagFreshness) -> Option<TagAnswer> {
        let arrived = self.resolved_at.is_some_and(|r| r > f.arrived_after);
        let asked = f
            .asked_since
            .is_none_or(|s| self.asked_at.is_some_and(|a| a >= s));
        match (self.digest, self.media_type) {
            (Some(digest), Some(media_type)) if arrived && asked => {
                Some(TagAnswer { digest, media_type })
            }
            _ => None,
        }
    }
}

impl Store {
    /// A fresh answer for `key`, or else the claim on asking the registry for it until
    /// `claim_until` (when no one else holds a live claim), or else [`TagClaim::Waiting`].
    /// The claim is one conditional upsert, so of replicas claiming at once exactly one
    /// gets it.
    pub async fn claim_registry_tag(
        &self,
        key: TagKey<'_>,
        owner: &str,
        fresh: TagFreshness,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
    ) -> Result<TagClaim> {
        if let Some(a) = self.registry_tag(key, &fresh).await? {
            return Ok(TagClaim::Answer(a));
        }
        let sql = "INSERT INTO registry_tags (registry, repository, tag, claimed_by, claim_until)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (registry, repository, tag) DO UPDATE
                   SET claimed_by = excluded.claimed_by, claim_until = excluded.claim_until
                   WHERE (registry_tags.claim_until IS NULL OR registry_tags.claim_until <= $6
                          OR registry_tags.claimed_by = $4)
                     AND NOT (registry_tags.digest IS NOT NULL
                              AND registry_tags.resolved_at > $7
                              AND ($8 IS NULL OR registry_tags.asked_at >= $8))";
        let claimed = on_pool!(self, |p| sqlx::query(sql)
            .bind(key.registry)
            .bind(key.repository)
            .bind(key.tag)
            .bind(owner)
            .bind(claim_until)
            .bind(now)
            .bind(fresh.arrived_after)
            .bind(fresh.asked_since)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if claimed > 0 {
            return Ok(TagClaim::Claimed);
        }
        // Someone answered or claimed in between.
        Ok(match self.registry_tag(key, &fresh).await? {
            Some(a) => TagClaim::Answer(a),
            None => TagClaim::Waiting,
        })
    }

    /// The fresh answer for `key`, if there is one.
    pub async fn registry_tag(
        &self,
        key: TagKey<'_>,
        fresh: &TagFreshness,
    ) -> Result<Option<TagAnswer>> {
        let sql = "SELECT digest, media_type, asked_at, resolved_at FROM registry_tags
                   WHERE registry = $1 AND repository = $2 AND tag = $3";
        let row: Option<Row> = on_pool!(self, |p| sqlx::query_as(sql)
            .bind(key.registry)
            .bind(key.repository)
            .bind(key.tag)
            .fetch_optional(p)
            .await)?;
        Ok(row.and_then(|r| r.fresh(fresh)))
    }

    /// Records the registry's answer to a request sent at `asked_at` (unless a later
    /// request's answer is there already) and drops `owner`'s claim.
    pub async fn answer_registry_tag(
        &self,
        key: TagKey<'_>,
        owner: &str,
        answer: &TagAnswer,
        asked_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let sql = "INSERT INTO registry_tags (registry, repository, tag, digest, media_type,
                       asked_at, resolved_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (registry, repository, tag) DO UPDATE
                   SET digest = excluded.digest, media_type = excluded.media_type,
                       asked_at = excluded.asked_at, resolved_at = excluded.resolved_at,
                       claimed_by = CASE WHEN registry_tags.claimed_by = $8 THEN NULL
                                         ELSE registry_tags.claimed_by END,
                       claim_until = CASE WHEN registry_tags.claimed_by = $8 THEN NULL
                                          ELSE registry_tags.claim_until END
                   WHERE registry_tags.asked_at IS NULL OR registry_tags.asked_at <= $6";
        on_pool!(self, |p| sqlx::query(sql)
            .bind(key.registry)
            .bind(key.repository)
            .bind(key.tag)
            .bind(&answer.digest)
            .bind(&answer.media_type)
            .bind(asked_at)
            .bind(now)
            .bind(owner)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Drops `owner`'s claim without an answer (the registry failed): the next asker claims.
    pub async fn release_registry_tag(&self, key: TagKey<'_>, owner: &str) -> Result<()> {
        let sql = "UPDATE registry_tags SET claimed_by = NULL, claim_until = NULL
                   WHERE registry = $1 AND repository = $2 AND tag = $3 AND claimed_by = $4";
        on_pool!(self, |p| sqlx::query(sql)
            .bind(key.registry)
            .bind(key.repository)
            .bind(key.tag)
            .bind(owner)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Forgets every shared tag answer (benchmarks: "a day later").
    pub async fn forget_registry_tags(&self) -> Result<u64> {
        let sql = "DELETE FROM registry_tags";
        Ok(on_pool!(self, |p| sqlx::query(sql)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?)
    }
}
