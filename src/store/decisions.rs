//! What people decided on digestif's pull requests: hand a PR back, take an ignore back.

use chrono::{DateTime, Utc};

use super::{Result, Store, on_pool};

impl Store {
    /// `@digestif rebase`: digestif owns the PR again, and rebuilds it on the current base
    /// (an empty recorded base reads as "moved" to the planner).
    pub async fn hand_back_pr(
        &self,
        repository_id: i64,
        number: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE pull_requests SET human_edited = FALSE, handoff_notified = FALSE,
                       base_blobs = '{}', updated_at = $3
                   WHERE repository_id = $1 AND number = $2";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(repository_id)
            .bind(number)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Forgets that one digest of an image (and tag) is ignored (`@digestif recreate`, a
    /// reopened PR).
    pub async fn remove_ignore_digest(
        &self,
        repository_id: i64,
        image: &str,
        tag: Option<&str>,
        digest: &str,
    ) -> Result<u64> {
        let sql = "DELETE FROM ignores WHERE repository_id = $1 AND image = $2
                   AND coalesce(tag, '') = coalesce($3, '') AND digest = $4";
        Ok(on_pool!(self, |p| sqlx::query(sql)
            .bind(repository_id)
            .bind(image)
            .bind(tag)
            .bind(digest)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?)
    }
}
