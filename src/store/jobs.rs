//! The job queue: durable, leased, retried with backoff, parked as dead after N attempts.
//!
//! A job is `queued` until a worker leases it (`running`, with an owner and an expiry),
//! then `done`, back to `queued` (retry after a backoff, or released on shutdown), or
//! `dead`. A lease that expires (the worker died) makes the job leasable again; every
//! lease counts as an attempt, so a job that kills its workers ends up dead too.
//!
//! Uniqueness: at most one *queued* and at most one *running* job per `unique_key` (two
//! partial unique indexes). Enqueueing a key that is queued already is a no-op that returns
//! the queued job (moving its `run_at` earlier if the new one is sooner). A key that is
//! only running gets a new queued job, which is not leased until the running one ends: a
//! push that arrives while its repository is being scanned must not be lost, and the two
//! scans must not run at once.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::Json;

use super::{Pool, Result, Store, StoreError, in_tx, on_pool};

/// What a job does; handlers dispatch on [`JobKind::as_str`]. Stored as text so a newer
/// replica's kinds do not break an older one (its handler reports them as unknown).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobKind(pub Cow<'static, str>);

impl JobKind {
    pub const SCAN_REPO: JobKind = JobKind(Cow::Borrowed("scan_repo"));
    pub const SYNC_INSTALLATION: JobKind = JobKind(Cow::Borrowed("sync_installation"));
    pub const HANDLE_PR_EVENT: JobKind = JobKind(Cow::Borrowed("handle_pr_event"));
    pub const HANDLE_COMMENT: JobKind = JobKind(Cow::Borrowed("handle_comment"));
    pub const HANDLE_PUSH: JobKind = JobKind(Cow::Borrowed("handle_push"));

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Running,
    Done,
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "queued" => Ok(JobState::Queued),
            "running" => Ok(JobState::Running),
            "done" => Ok(JobState::Done),
            "dead" => Ok(JobState::Dead),
            _ => Err(StoreError::Unknown {
                what: "job state",
                value: s.to_string(),
            }),
        }
    }
}

impl TryFrom<String> for JobState {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        s.parse()
    }
}

/// Default attempts before a job is dead.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 8;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub payload: serde_json::Value,
    pub unique_key: Option<String>,
    /// `None`: now.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// When a job with the same key is already queued, this one's payload replaces its
    /// payload (a scan a person asked for supersedes a routine one it merges with).
    pub supersedes: bool,
}

impl NewJob {
    pub fn new(kind: JobKind, payload: impl Serialize) -> Result<NewJob> {
        Ok(NewJob {
            kind,
            payload: serde_json::to_value(payload)?,
            unique_key: None,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            supersedes: false,
        })
    }

    pub fn unique(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }

    pub fn at(mut self, run_at: DateTime<Utc>) -> NewJob {
        self.run_at = Some(run_at);
        self
    }

    pub fn max_attempts(mut self, n: i32) -> NewJob {
        self.max_attempts = n.max(1);
        self
    }

    /// Scan one repository. At most one queued per repository.
    pub fn scan_repo(repository_id: i64, reason: &str) -> NewJob {
        NewJob {
            kind: JobKind::SCAN_REPO,
            payload: serde_json::json!({ "repository_id": repository_id, "reason": reason }),
            unique_key: Some(scan_repo_key(repository_id)),
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            supersedes: false,
        }
    }

    /// Bring an installation's repository list in line with GitHub's.
    pub fn sync_installation(installation_id: i64) -> NewJob {
        NewJob {
            kind: JobKind::SYNC_INSTALLATION,
            payload: serde_json::json!({ "installation_id": installation_id }),
            unique_key: Some(format!("sync_installation:{installation_id}")),
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            supersedes: false,
        }
    }
}

/// The unique key of a repository's scan job.
pub fn scan_repo_key(repository_id: i64) -> String {
    format!("scan_repo:{repository_id}")
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: Json<serde_json::Value>,
    pub unique_key: Option<String>,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub run_at: DateTime<Utc>,
    /// Leases so far, this one included.
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.payload.0.clone())
    }
}

/// How many jobs are in each state (metrics, status page).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub dead: i64,
}

/// Exponential backoff with jitter: attempt n waits a random time in
/// `[d/2, d]` with `d = min(max, base · 2^(n-1))`, so retries of many jobs that failed
/// together (a registry outage) spread out instead of coming back in one wave.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(15),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    pub fn delay(&self, attempt: i32) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        let d = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = d / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
}

/// When a failed attempt may run again, as its handler judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// After the [`RetryPolicy`]'s backoff (network, 5xx).
    Backoff,
    /// No earlier than this time (a rate limit's reset).
    At(DateTime<Utc>),
    /// Never: retrying cannot help, the job is dead at once.
    Never,
}

/// A failed attempt as the queue records it (the job runtime builds one from its
/// handler's error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Kept as the job's `last_error`.
    pub message: String,
    pub retry: Retry,
}

/// What [`Store::fail_job`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again for this time.
    Retry { at: DateTime<Utc> },
    /// Attempts exhausted or the error is permanent.
    Dead,
    /// A newer job with the same key is queued and will do the work; this one ended.
    Superseded { by: i64 },
    /// The lease expired and another worker took the job; nothing changed.
    LeaseLost,
}

/// Every column of `jobs`, as `Job` reads them.
macro_rules! job_cols {
    () => {
        "id, kind, payload, unique_key, state, run_at, attempts, max_attempts,
         lease_owner, lease_expires_at, last_error, created_at, updated_at, finished_at"
    };
}
const JOB_COLS: &str = job_cols!();

/// What enqueuing a key that is queued already does to the queued job: the earlier time
/// wins, the payload is `$payload`'s choice, and the job is marked updated. Shared with the
/// batch enqueue (`store::deliveries`), which writes many rows with one statement.
macro_rules! queued_key_conflict {
    ($payload:expr) => {
        concat!(
            " ON CONFLICT (unique_key) WHERE state = 'queued'
    DO UPDATE SET run_at = CASE WHEN excluded.run_at < jobs.run_at
                                THEN excluded.run_at ELSE jobs.run_at END,
                  payload = ",
            $payload,
            ",
                  updated_at = excluded.updated_at"
        )
    };
}
pub(crate) use queued_key_conflict;

const ENQUEUE: &str = concat!(
    "INSERT INTO jobs (kind, payload, unique_key, state, run_at, attempts,
        max_attempts, created_at, updated_at)
    VALUES ($1, $2, $3, 'queued', $4, 0, $5, $6, $6)",
    queued_key_conflict!("CASE WHEN $7 THEN excluded.payload ELSE jobs.payload END"),
    "
    RETURNING id"
);

/// Inserts one job inside a transaction of either backend (the caller's `$tx`).
macro_rules! enqueue_in {
    ($tx:expr, $job:expr, $now:expr) => {{
        let job: &$crate::store::NewJob = $job;
        let now: chrono::DateTime<chrono::Utc> = $now;
        let id: i64 = sqlx::query_scalar($crate::store::jobs::ENQUEUE_SQL)
            .bind(job.kind.as_str())
            .bind(sqlx::types::Json(&job.payload))
            .bind(job.unique_key.as_deref())
            .bind(job.run_at.unwrap_or(now))
            .bind(job.max_attempts)
            .bind(now)
            .bind(job.supersedes)
            .fetch_one(&mut *$tx)
            .await?;
        id
    }};
}
pub(crate) use enqueue_in;
pub(crate) const ENQUEUE_SQL: &str = ENQUEUE;

const BURY_EVERY_SECS: u64 = 5;

/// Jobs whose lease expired after their last allowed attempt: dead, not leased again.
const BURY_EXPIRED: &str = "UPDATE jobs SET state = 'dead', lease_owner = NULL,
        last_error = coalesce(last_error || '; ', '') || 'lease expired on the last attempt',
        finished_at = $1, updated_at = $1
    WHERE state = 'running' AND lease_expires_at <= $1 AND attempts >= max_attempts";

/// Due queued jobs and expired leases, oldest first, skipping keys that are running: asked
/// as two runs, each in its own order and limit, then merged. The queued jobs come through
/// the index on `(run_at, id)` of queued jobs, which stops after `$4` rows; the expired
/// leases through the index on `lease_expires_at` of running jobs. With the two in one `OR`,
/// both databases read and sorted every queued job on each lease, and a cycle that queues a
/// scan per repository then cost time in the square of their number (found by the cycle
/// bench's sweep; with 10,000 jobs queued, a lease took 4 ms on SQLite and 22 ms on
/// PostgreSQL, and 0.01 ms and 0.6 ms this way).
///
/// `$index` names the queued jobs' index for SQLite (`INDEXED BY`), whose planner does not
/// pick it by itself here; `$lock` is `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent
/// leasers skip each other's rows instead of waiting or taking the same job (PostgreSQL
/// allows it in each run, not on a `UNION`). SQLite has one writer at a time, so the single
/// `UPDATE` is atomic as it is.
macro_rules! lease_sql {
    ($index:literal, $lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2,
                attempts = attempts + 1, updated_at = $3
            WHERE id IN (
                SELECT id FROM (
                    SELECT * FROM (
                        SELECT j.id, j.run_at FROM jobs j ",
            $index,
            "
                        WHERE j.state = 'queued' AND j.run_at <= $3 AND ",
            free_key!(),
            "
                        ORDER BY j.run_at, j.id LIMIT CAST($4 AS BIGINT) ",
            $lock,
            ") queued
                    UNION ALL
                    SELECT * FROM (
                        SELECT j.id, j.run_at FROM jobs j
                        WHERE j.state = 'running' AND j.lease_expires_at <= $3
                          AND j.attempts < j.max_attempts AND j.run_at <= $3 AND ",
            free_key!(),
            "
                        ORDER BY j.run_at, j.id LIMIT CAST($4 AS BIGINT) ",
            $lock,
            ") expired) due
                ORDER BY run_at, id LIMIT CAST($4 AS BIGINT))
            RETURNING ",
            job_cols!()
        )
    };
}
/// The job `j`'s key is not running (a job without a key never waits).
macro_rules! free_key {
    () => {
        "(j.unique_key IS NULL OR NOT EXISTS (
             SELECT 1 FROM jobs r
             WHERE r.unique_key = j.unique_key AND r.state = 'running' AND r.id <> j.id))"
    };
}
const LEASE_POSTGRES: &str = lease_sql!("", "FOR UPDATE SKIP LOCKED");
const LEASE_SQLITE: &str = lease_sql!("INDEXED BY jobs_queued_run_at", "");

/// PostgreSQL plans the lease from the `jobs` table's statistics, and a queue's mix of
/// states drifts faster than autovacuum looks (once a minute at most, and only after a
/// tenth of the table changed). Planned on statistics that say few jobs are queued (a new
/// database, or one whose queue was empty when last analyzed) while thousands are, the
/// lease reads and sorts every queued job instead of walking the `(run_at, id)` index: 4.4
/// ms a lease instead of 0.16 ms while a cycle and webhooks filled the queue
/// (`pg_stat_statements`, webhook bench). So after every [`ANALYZE_AFTER_JOBS`] jobs
/// enqueued, this process has the table analyzed, at most once per
/// [`ANALYZE_AT_MOST_EVERY`] (an `ANALYZE` of a few thousand rows takes some 25 ms).
pub(crate) const ANALYZE_AFTER_JOBS: u64 = 1_000;
pub(crate) const ANALYZE_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// Jobs enqueued since the last `ANALYZE`, and when it ran (unix seconds).
#[derive(Debug)]
pub(crate) struct AnalyzeState {
    enqueued: std::sync::atomic::AtomicU64,
    last: std::sync::atomic::AtomicI64,
}

impl Default for AnalyzeState {
    fn default() -> Self {
        AnalyzeState {
            enqueued: 0.into(),
            last: i64::MIN.into(),
        }
    }
}

fn chrono_duration(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

impl Store {
    /// Counts `jobs` enqueued by this process; on PostgreSQL, has the `jobs` table
    /// analyzed in the background once enough were (see [`ANALYZE_AFTER_JOBS`]).
    pub(crate) fn note_enqueued(&self, jobs: usize) {
        let Pool::Postgres(pool) = &self.pool else {
            return;
        };
        let state = &self.queue_analyze;
        let enqueued = state.enqueued.fetch_add(jobs as u64, Ordering::Relaxed) + jobs as u64;
        let now = Utc::now().timestamp();
        let last = state.last.load(Ordering::Relaxed);
        if enqueued < ANALYZE_AFTER_JOBS
            || now.saturating_sub(last) < ANALYZE_AT_MOST_EVERY.as_secs() as i64
            // Another task of this process got here first.
            || state
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        state.enqueued.store(0, Ordering::Relaxed);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = pool.clone();
        runtime.spawn(async move {
            if let Err(e) = sqlx::query("ANALYZE jobs").execute(&pool).await {
                tracing::warn!(error = %e, "cannot analyze the job queue");
            }
        });
    }

    /// The lease's plan on PostgreSQL (`EXPLAIN`, JSON), for the test that keeps it on the
    /// queued jobs' index; `None` on SQLite.
    #[doc(hidden)]
    pub async fn lease_plan(&self, now: DateTime<Utc>) -> Result<Option<serde_json::Value>> {
        let Pool::Postgres(p) = &self.pool else {
            return Ok(None);
        };
        let sql = sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {LEASE_POSTGRES}"));
        let plan: Json<serde_json::Value> = sqlx::query_scalar(sql)
            .bind("explain")
            .bind(now)
            .bind(now)
            .bind(1_i64)
            .fetch_one(p)
            .await?;
        Ok(Some(plan.0))
    }

    /// Enqueues a job; with a `unique_key` that is queued already, returns that job's id.
    pub async fn enqueue(&self, job: &NewJob, now: DateTime<Utc>) -> Result<i64> {
        // One statement: atomic on its own, no transaction needed.
        let id: i64 = on_pool!(self, |p| sqlx::query_scalar(ENQUEUE)
            .bind(job.kind.as_str())
            .bind(Json(&job.payload))
            .bind(job.unique_key.as_deref())
            .bind(job.run_at.unwrap_or(now))
            .bind(job.max_attempts)
            .bind(now)
            .bind(job.supersedes)
            .fetch_one(p)
            .await)?;
        self.wake_workers(1);
        Ok(id)
    }

    /// Leases up to `limit` due jobs for `owner` until `now + lease`.
    pub async fn lease_jobs(
        &self,
        owner: &str,
        limit: i64,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>> {
        let until = now + chrono_duration(lease);
        // Burying is a write (on SQLite it takes the write lock even when nothing
        // matches), and nothing waits for it: jobs past their last attempt are not leased
        // either way. So at most every few seconds per process, not on every poll.
        let last = self.last_bury.load(Ordering::Relaxed);
        if now.timestamp().abs_diff(last) >= BURY_EVERY_SECS {
            self.last_bury.store(now.timestamp(), Ordering::Relaxed);
            on_pool!(self, |p| sqlx::query(BURY_EXPIRED)
                .bind(now)
                .execute(p)
                .await
                .map(|_| ()))?;
        }
        let jobs = match &self.pool {
            Pool::Sqlite(p) => {
                let _writer = self.sqlite_writer.lock().await;
                sqlx::query_as(LEASE_SQLITE)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(p)
                    .await?
            }
            Pool::Postgres(p) => {
                sqlx::query_as(LEASE_POSTGRES)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(p)
                    .await?
            }
        };
        Ok(jobs)
    }

    /// Marks a leased job done. False when the lease was lost (expired and taken).
    pub async fn complete_job(&self, id: i64, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        let sql = "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL,
                       finished_at = $3, updated_at = $3
                   WHERE id = $1 AND lease_owner = $2 AND state = 'running'";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(owner)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Extends a lease the worker still holds (heartbeat). False when it was lost.
    pub async fn extend_lease(
        &self,
        id: i64,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE jobs SET lease_expires_at = $3, updated_at = $4
                   WHERE id = $1 AND lease_owner = $2 AND state = 'running'";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(owner)
            .bind(now + chrono_duration(lease))
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Records a failure: retried after the error's time or the policy's backoff, or dead
    /// when the attempts are used up or the error is permanent.
    pub async fn fail_job(
        &self,
        job: &Job,
        owner: &str,
        failure: impl Into<Failure>,
        policy: &RetryPolicy,
        now: DateTime<Utc>,
    ) -> Result<FailOutcome> {
        let Failure { message, retry } = failure.into();
        let (permanent, retry_at) = match retry {
            Retry::Never => (true, None),
            Retry::At(at) => (false, Some(at)),
            Retry::Backoff => (false, None),
        };
        if permanent || job.attempts >= job.max_attempts {
            let sql = "UPDATE jobs SET state = 'dead', last_error = $3, lease_owner = NULL,
                           lease_expires_at = NULL, finished_at = $4, updated_at = $4
                       WHERE id = $1 AND lease_owner = $2 AND state = 'running'";
            let n = on_pool!(self, |p| sqlx::query(sql)
                .bind(job.id)
                .bind(owner)
                .bind(&message)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            return Ok(if n > 0 {
                FailOutcome::Dead
            } else {
                FailOutcome::LeaseLost
            });
        }
        let at = retry_at.unwrap_or_else(|| now + chrono_duration(policy.delay(job.attempts)));
        self.requeue(job, owner, Some(&message), at, false, now)
            .await
    }

    /// Gives a job back without counting the attempt (shutdown): leasable again at once.
    pub async fn release_job(
        &self,
        job: &Job,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<FailOutcome> {
        self.requeue(job, owner, None, now, true, now).await
    }

    /// Back to `queued`; when a job with the same key was queued meanwhile, that one does
    /// the work (moved earlier to `at` if need be) and this one ends as done.
    async fn requeue(
        &self,
        job: &Job,
        owner: &str,
        error: Option<&str>,
        at: DateTime<Utc>,
        uncount: bool,
        now: DateTime<Utc>,
    ) -> Result<FailOutcome> {
        match self.requeue_once(job, owner, error, at, uncount, now).await {
            // On PostgreSQL a twin can be queued between the check for one and the update
            // (both under READ COMMITTED); the second try sees it and supersedes.
            Err(StoreError::Sqlx(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                self.requeue_once(job, owner, error, at, uncount, now).await
            }
            other => other,
        }
    }

    async fn requeue_once(
        &self,
        job: &Job,
        owner: &str,
        error: Option<&str>,
        at: DateTime<Utc>,
        uncount: bool,
        now: DateTime<Utc>,
    ) -> Result<FailOutcome> {
        let requeue = "UPDATE jobs SET state = 'queued', run_at = $3,
                           last_error = coalesce($4, last_error), lease_owner = NULL,
                           lease_expires_at = NULL, updated_at = $5,
                           attempts = CASE WHEN $6 THEN max(attempts - 1, 0) ELSE attempts END
                       WHERE id = $1 AND lease_owner = $2 AND state = 'running'";
        // PostgreSQL spells the two-argument maximum GREATEST.
        let requeue_pg = requeue.replace("max(attempts - 1, 0)", "GREATEST(attempts - 1, 0)");
        let sibling = "SELECT id FROM jobs WHERE unique_key = $1 AND state = 'queued' AND id <> $2";
        let supersede = "UPDATE jobs SET state = 'done', last_error = $3, lease_owner = NULL,
                             lease_expires_at = NULL, finished_at = $4, updated_at = $4
                         WHERE id = $1 AND lease_owner = $2 AND state = 'running'";
        let pull_earlier = "UPDATE jobs SET run_at = $2 WHERE id = $1 AND run_at > $2";
        let postgres = matches!(self.pool, Pool::Postgres(_));
        let requeue_sql = if postgres {
            sqlx::AssertSqlSafe(requeue_pg)
        } else {
            sqlx::AssertSqlSafe(requeue.to_string())
        };
        in_tx!(self, |tx| {
            if let Some(key) = &job.unique_key {
                let other: Option<i64> = sqlx::query_scalar(sibling)
                    .bind(key)
                    .bind(job.id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(by) = other {
                    let msg = match error {
                        Some(e) => format!("superseded by job {by} after: {e}"),
                        None => format!("superseded by job {by} on release"),
                    };
                    let n = sqlx::query(supersede)
                        .bind(job.id)
                        .bind(owner)
                        .bind(msg)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Ok(FailOutcome::LeaseLost);
                    }
                    sqlx::query(pull_earlier)
                        .bind(by)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    return Ok(FailOutcome::Superseded { by });
                }
            }
            let n = sqlx::query(requeue_sql)
                .bind(job.id)
                .bind(owner)
                .bind(at)
                .bind(error)
                .bind(now)
                .bind(uncount)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(if n > 0 {
                FailOutcome::Retry { at }
            } else {
                FailOutcome::LeaseLost
            })
        })
    }

    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1");
        Ok(on_pool!(self, |p| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// Jobs for operators, newest first; `state` None lists every state.
    pub async fn list_jobs(&self, state: Option<JobState>, limit: i64) -> Result<Vec<Job>> {
        let sql = format!(
            "SELECT {JOB_COLS} FROM jobs WHERE ($1 IS NULL OR state = $1) ORDER BY id DESC LIMIT CAST($2 AS BIGINT)"
        );
        let state = state.map(JobState::as_str);
        Ok(on_pool!(self, |p| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(state)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    pub async fn job_counts(&self) -> Result<JobCounts> {
        let sql = "SELECT state, count(*) FROM jobs GROUP BY state";
        let rows: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(sql).fetch_all(p).await)?;
        let mut c = JobCounts::default();
        for (state, n) in rows {
            match state.parse::<JobState>()? {
                JobState::Queued => c.queued = n,
                JobState::Running => c.running = n,
                JobState::Done => c.done = n,
                JobState::Dead => c.dead = n,
            }
        }
        Ok(c)
    }

    /// Puts a dead job back in the queue with fresh attempts (operator action).
    pub async fn retry_dead_job(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let sql = "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $2, updated_at = $2,
                       finished_at = NULL
                   WHERE id = $1 AND state = 'dead'";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if n > 0 {
            self.wake_workers(1);
        }
        Ok(n > 0)
    }
}
