//! The scheduler's claim: due repositories get their next time and a scan job, atomically.

use chrono::{DateTime, Utc};

use super::jobs::{DEFAULT_MAX_ATTEMPTS, JobKind, NewJob, enqueue_in};
use super::{DueRepository, Pool, Result, Store};

/// Active repositories whose slot has come. `{lock}`: see [`Store::claim_due_repositories`].
macro_rules! due_sql {
    ($lock:literal) => {
        concat!(
            "SELECT r.id, r.full_name, r.schedule, r.timezone, r.next_scan_at
             FROM repositories r JOIN installations i ON i.id = r.installation_id
             WHERE r.next_scan_at <= $1 AND r.archived = FALSE
               AND i.suspended_at IS NULL AND i.deleted_at IS NULL
             ORDER BY r.next_scan_at, r.id LIMIT CAST($2 AS BIGINT) ",
            $lock
        )
    };
}

impl Store {
    /// Claims up to `limit` repositories due at `now`: sets each one's `next_scan_at` to
    /// `next(repo)` and enqueues its `scan_repo` job, in one transaction. On PostgreSQL the
    /// rows are locked with `FOR UPDATE SKIP LOCKED`, so concurrent schedulers on other
    /// replicas take disjoint sets, and once committed the rows are no longer due; SQLite's
    /// `BEGIN IMMEDIATE` serialises claimers outright.
    pub async fn claim_due_repositories(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        next: impl Fn(&DueRepository) -> DateTime<Utc>,
    ) -> Result<Vec<DueRepository>> {
        let claimed = match &self.pool {
            Pool::Sqlite(pool) => {
                let _writer = self.sqlite_writer.lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let mut due: Vec<DueRepository> = sqlx::query_as(due_sql!(""))
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                for r in &mut due {
                    sqlx::query("UPDATE repositories SET next_scan_at = $2 WHERE id = $1")
                        .bind(r.id)
                        .bind(next(r))
                        .execute(&mut *tx)
                        .await?;
                    let job = NewJob::scan_repo(r.id, "schedule");
                    r.job_id = enqueue_in!(tx, &job, now);
                }
                tx.commit().await?;
                due
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let mut due: Vec<DueRepository> =
                    sqlx::query_as(due_sql!("FOR UPDATE OF r SKIP LOCKED"))
                        .bind(now)
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;
                if !due.is_empty() {
                    // One statement per batch, not per repository: a claim of 10,000
                    // repositories is a handful of round trips.
                    let ids: Vec<i64> = due.iter().map(|r| r.id).collect();
                    let nexts: Vec<DateTime<Utc>> = due.iter().map(&next).collect();
                    sqlx::query(
                        "UPDATE repositories r SET next_scan_at = v.next
                         FROM UNNEST($1::bigint[], $2::timestamptz[]) AS v(id, next)
                         WHERE r.id = v.id",
                    )
                    .bind(&ids)
                    .bind(&nexts)
                    .execute(&mut *tx)
                    .await?;
                    let jobs: Vec<NewJob> = due
                        .iter()
                        .map(|r| NewJob::scan_repo(r.id, "schedule"))
                        .collect();
                    let payloads: Vec<String> =
                        jobs.iter().map(|j| j.payload.to_string()).collect();
                    let keys: Vec<Option<String>> =
                        jobs.iter().map(|j| j.unique_key.clone()).collect();
                    let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
                        "INSERT INTO jobs (kind, payload, unique_key, state, run_at, attempts,
                             max_attempts, created_at, updated_at)
                         SELECT $1, v.payload::jsonb, v.key, 'queued', $2, 0, $3, $2, $2
                         FROM UNNEST($4::text[], $5::text[]) AS v(payload, key)
                         ON CONFLICT (unique_key) WHERE state = 'queued'
                         DO UPDATE SET run_at = CASE WHEN excluded.run_at < jobs.run_at
                                                     THEN excluded.run_at ELSE jobs.run_at END,
                                       updated_at = excluded.updated_at
                         RETURNING id, unique_key",
                    )
                    .bind(JobKind::SCAN_REPO.as_str())
                    .bind(now)
                    .bind(DEFAULT_MAX_ATTEMPTS)
                    .bind(&payloads)
                    .bind(&keys)
                    .fetch_all(&mut *tx)
                    .await?;
                    let by_key: std::collections::HashMap<String, i64> = rows
                        .into_iter()
                        .filter_map(|(id, k)| k.map(|k| (k, id)))
                        .collect();
                    for (r, key) in due.iter_mut().zip(keys) {
                        r.job_id = key.and_then(|k| by_key.get(&k).copied()).unwrap_or(0);
                    }
                }
                tx.commit().await?;
                due
            }
        };
        self.wake_workers(claimed.len());
        Ok(claimed)
    }
}
