//! Durable state: everything the server learns or decides, on SQLite or PostgreSQL.
//!
//! # One `Store`, an enum over two pools, and the `on_pool!` macro (kept after review)
//! 58 statements and 5 transactions are the same SQL on both backends (SQLite accepts `$1`,
//! `TRUE`, `RETURNING`, `ON CONFLICT … WHERE`): `on_pool!`/`in_tx!` write each once, compiled
//! per pool; the 3 that differ (leasing, the scheduler's claim, requeue) have both arms side
//! by side. sqlx's `Any` driver binds only ints, floats, text and blobs (no `DateTime`, JSON
//! or arrays) and hides the backend; per-backend modules behind a trait would keep 63 copies
//! in step by hand. So a reader finds one operation's SQL, for both backends, in one place.
//!
//! # Conventions
//! - Times come from the caller (`now` parameters, from the caller's clock), never from
//!   the database's clock, so tests can fix the clock and SQLite's text timestamps (RFC 3339,
//!   always `+00:00`, written by sqlx) compare correctly as text.
//! - Installations and repositories are keyed by their GitHub ids, which survive renames.
//! - `LIMIT` and `OFFSET` take `CAST($n AS BIGINT)`, never a bare `$n`: SQLite plans with a
//!   bare parameter's value and so re-prepares the statement each time it is bound, which
//!   on the job lease cost an eighth of the server's CPU under webhook load.
//! - Write transactions on SQLite start with `BEGIN IMMEDIATE`: a deferred transaction that
//!   reads and then writes can fail with `SQLITE_BUSY` without waiting when another process
//!   (`digestif trigger`) wrote in between; an immediate one waits for the busy timeout.

mod claim;
mod decisions;
mod deliveries;
mod files;
mod jobs;
mod model;
mod ops;
mod registry_tags;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::Digest as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::types::Json;
use tokio::sync::Notify;

pub use deliveries::{Committer, DeliveryQueue, NewDelivery};
pub use files::{CachedFile, ScanState};
pub use jobs::{
    DEFAULT_MAX_ATTEMPTS, FailOutcome, Failure, Job, JobCounts, JobKind, JobState, NewJob, Retry,
    RetryPolicy, scan_repo_key,
};
pub use model::*;
pub use ops::RepoOverview;
pub use registry_tags::{TagAnswer, TagClaim, TagFreshness, TagKey};

/// Used when `DIGESTIF_DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://digestif.db";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL must start with sqlite:, postgres:// or postgresql:// (got {0:?})")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the database holds an unknown {what}: {value:?}")]
    Unknown { what: &'static str, value: String },
    #[error("no repository with id {0}")]
    NoSuchRepository(i64),
    #[error("the server is stopping: no more webhook deliveries are recorded")]
    Stopped,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// At most this many idle workers are woken by one enqueue (far more than a process runs).
const MAX_WAKE: usize = 64;

/// The database. Cheap to clone (pools are reference counted).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// Woken on every local enqueue so idle workers in this process start at once;
    /// workers in other processes find the job on their next poll.
    wake: Arc<Notify>,
    /// When this process last buried jobs whose final lease expired (unix seconds); see
    /// `lease_jobs`.
    pub(crate) last_bury: Arc<std::sync::atomic::AtomicI64>,
    /// SQLite has one writer at a time. Writers of this process queue here, first come
    /// first served, instead of in SQLite's busy handler, which sleeps in growing steps
    /// and gave the webhook intake a p99 of hundreds of milliseconds under load.
    pub(crate) sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// PostgreSQL: jobs enqueued since this process last had `jobs` analyzed; see
    /// `jobs::Store::note_enqueued`.
    pub(crate) queue_analyze: Arc<jobs::AnalyzeState>,
}

/// How to connect; [`ConnectOptions::new`] gives the defaults the server uses.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub url: String,
    /// Run pending migrations after connecting.
    pub migrate: bool,
    pub max_connections: u32,
    /// PostgreSQL only: use this schema (`search_path`); tests isolate themselves with it.
    pub pg_schema: Option<String>,
    /// PostgreSQL only: session settings, e.g. `("synchronous_commit", "off")`.
    pub pg_settings: Vec<(String, String)>,
    /// SQLite only: how long a writer waits for another writer.
    pub busy_timeout: Duration,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            migrate: true,
            max_connections: 10,
            pg_schema: None,
            pg_settings: Vec::new(),
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// Runs the same expression against whichever pool the store has; the expression is
/// type-checked once per backend.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` (which uses `$tx` as `&mut *$tx`) in a write transaction and commits when it
/// returns `Ok`. SQLite takes the write lock up front (see the module doc).
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:block) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite(pool) => {
                let _writer = $store.sqlite_writer.lock().await;
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out: $crate::store::Result<_> = async { $body }.await;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
            $crate::store::Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out: $crate::store::Result<_> = async { $body }.await;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
        }
    };
}
pub(crate) use in_tx;

/// [`Store::upsert_repository`]'s statement on `$exec` (a pool or a transaction), fetching
/// the row; `$next_scan_at` is written only for a new repository.
macro_rules! upsert_repository_on {
    ($exec:expr, $repo:expr, $next_scan_at:expr, $now:expr) => {{
        let repo: &NewRepository<'_> = $repo;
        let now: DateTime<Utc> = $now;
        let next_scan_at: DateTime<Utc> = $next_scan_at;
        sqlx::query_as::<_, Repository>(
            "INSERT INTO repositories (id, installation_id, full_name, default_branch,
                    archived, next_scan_at, created_at, updated_at)
                VALUES ($1, $2, $3, $4, coalesce($5, FALSE), $7, $6, $6)
                ON CONFLICT (id) DO UPDATE SET installation_id = excluded.installation_id,
                    full_name = excluded.full_name,
                    default_branch = coalesce($4, repositories.default_branch),
                    archived = coalesce($5, repositories.archived),
                    updated_at = excluded.updated_at
                RETURNING *",
        )
        .bind(repo.id)
        .bind(repo.installation_id)
        .bind(repo.full_name)
        .bind(repo.default_branch)
        .bind(repo.archived)
        .bind(now)
        .bind(next_scan_at)
        .fetch_one($exec)
        .await
    }};
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Store {
    /// Connects and runs pending migrations. SQLite files are created when missing.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(ConnectOptions::new(url)).await
    }

    pub async fn connect_with(opts: ConnectOptions) -> Result<Store> {
        let pool = if is_postgres_url(&opts.url) {
            let mut o = PgConnectOptions::from_str(&opts.url)?;
            if let Some(schema) = &opts.pg_schema {
                o = o.options([("search_path", schema.as_str())]);
            }
            if !opts.pg_settings.is_empty() {
                o = o.options(opts.pg_settings.iter().map(|(k, v)| (k, v)));
            }
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(opts.max_connections)
                    .connect_with(o)
                    .await?,
            )
        } else if opts.url.starts_with("sqlite:") {
            let o = SqliteConnectOptions::from_str(&opts.url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(opts.busy_timeout)
                .foreign_keys(true)
                // WAL makes NORMAL durable against application crashes; only a power loss
                // can drop the last transactions, which the job queue re-derives anyway.
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(opts.max_connections)
                    .connect_with(o)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl(opts.url));
        };
        let store = Store {
            pool,
            wake: Arc::new(Notify::new()),
            last_bury: Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
            queue_analyze: Arc::default(),
        };
        if opts.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Notified on every enqueue by this process (see `wake`): idle workers wait on it.
    pub fn wakeup(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Wakes one idle worker per job enqueued (up to [`MAX_WAKE`]); with none idle, the
    /// next worker to go idle leases once more before it waits. Not every idle worker:
    /// with one job, the others' leases come back empty (60% of all leases on PostgreSQL
    /// under webhook load, when every enqueue woke every worker).
    pub(crate) fn wake_workers(&self, jobs: usize) {
        for _ in 0..jobs.min(MAX_WAKE) {
            self.wake.notify_one();
        }
        self.note_enqueued(jobs);
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The migration set of this backend.
    pub fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Both migration sets, for the test that keeps them in step.
    pub fn migrators() -> [(Backend, &'static sqlx::migrate::Migrator); 2] {
        [
            (Backend::Sqlite, &SQLITE_MIGRATIONS),
            (Backend::Postgres, &POSTGRES_MIGRATIONS),
        ]
    }

    /// Applies pending migrations (PostgreSQL takes an advisory lock, so replicas starting
    /// together apply each once).
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    /// Applies migrations up to and including `version` (tests of upgrades).
    pub async fn migrate_to(&self, version: i64) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run_to(version, p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run_to(version, p).await?,
        }
        Ok(())
    }

    /// Versions applied successfully, ascending.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>> {
        let sql = "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version";
        Ok(on_pool!(self, |p| sqlx::query_scalar(sql)
            .fetch_all(p)
            .await)?)
    }

    /// For `/readyz`: the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }

    /// Runs raw SQL (tests seed old schema versions with it).
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<()> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        on_pool!(self, |p| sqlx::raw_sql(sql).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    // ---- installations ------------------------------------------------------------------

    /// Creates or refreshes an installation; a re-created one is no longer deleted or
    /// suspended.
    pub async fn upsert_installation(
        &self,
        id: i64,
        account_login: &str,
        account_type: &str,
        now: DateTime<Utc>,
    ) -> Result<Installation> {
        let sql =
            "INSERT INTO installations (id, account_login, account_type, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $4)
                   ON CONFLICT (id) DO UPDATE SET account_login = excluded.account_login,
                       account_type = excluded.account_type, deleted_at = NULL,
                       updated_at = excluded.updated_at
                   RETURNING *";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(id)
            .bind(account_login)
            .bind(account_type)
            .bind(now)
            .fetch_one(p)
            .await)?)
    }

    pub async fn installation(&self, id: i64) -> Result<Option<Installation>> {
        let sql = "SELECT * FROM installations WHERE id = $1";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    /// `suspended = true` on `installation.suspend`, false on `unsuspend`. Repositories of a
    /// suspended installation are not scheduled; they scan once when it comes back.
    pub async fn set_installation_suspended(
        &self,
        id: i64,
        suspended: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let at = suspended.then_some(now);
        let sql = "UPDATE installations SET suspended_at = $2, updated_at = $3 WHERE id = $1";
        let r = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(at)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(r > 0)
    }

    /// `installation.deleted`: the installation stays (for the status page) and its
    /// repositories, with their references, PRs and ignores, are forgotten.
    pub async fn mark_installation_deleted(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        in_tx!(self, |tx| {
            sqlx::query("DELETE FROM repositories WHERE installation_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let r = sqlx::query(
                "UPDATE installations SET deleted_at = $2, updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    pub async fn list_installations(&self) -> Result<Vec<Installation>> {
        let sql = "SELECT * FROM installations ORDER BY account_login, id";
        Ok(on_pool!(self, |p| sqlx::query_as(sql).fetch_all(p).await)?)
    }

    // ---- repositories -------------------------------------------------------------------

    /// Creates or refreshes a repository. A new one is due for a scan at `now`; `None`
    /// fields keep what is known (installation events do not carry the default branch).
    pub async fn upsert_repository(
        &self,
        repo: &NewRepository<'_>,
        now: DateTime<Utc>,
    ) -> Result<Repository> {
        Ok(on_pool!(self, |p| upsert_repository_on!(
            p, repo, now, now
        ))?)
    }

    /// Creates or refreshes a repository and enqueues `scan`, in one transaction. A new
    /// repository is due to the scheduler at `next_scan_at`: `scan` is its first scan, so
    /// the scheduler does not scan it a second time meanwhile, and a crash before the
    /// commit leaves neither (the next sync finds it new again).
    pub async fn add_repository(
        &self,
        repo: &NewRepository<'_>,
        next_scan_at: DateTime<Utc>,
        scan: &NewJob,
        now: DateTime<Utc>,
    ) -> Result<Repository> {
        let added = in_tx!(self, |tx| {
            let added = upsert_repository_on!(&mut *tx, repo, next_scan_at, now)?;
            jobs::enqueue_in!(tx, scan, now);
            Ok(added)
        })?;
        self.wake_workers(1);
        Ok(added)
    }

    /// Removes a repository and everything known about it (cascades).
    pub async fn remove_repository(&self, id: i64) -> Result<bool> {
        let sql = "DELETE FROM repositories WHERE id = $1";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    pub async fn rename_repository(
        &self,
        id: i64,
        full_name: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE repositories SET full_name = $2, updated_at = $3 WHERE id = $1";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(full_name)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    pub async fn set_repository_archived(
        &self,
        id: i64,
        archived: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE repositories SET archived = $2, updated_at = $3 WHERE id = $1";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(archived)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    pub async fn repository(&self, id: i64) -> Result<Option<Repository>> {
        let sql = "SELECT * FROM repositories WHERE id = $1";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    /// Case-insensitive, like GitHub. If a rename left two rows with one name (the event
    /// for the old one not seen yet), the most recently updated wins.
    pub async fn repository_by_full_name(&self, full_name: &str) -> Result<Option<Repository>> {
        let sql = "SELECT * FROM repositories WHERE lower(full_name) = lower($1)
                   ORDER BY updated_at DESC LIMIT 1";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(full_name)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn repositories_of_installation(
        &self,
        installation_id: i64,
    ) -> Result<Vec<Repository>> {
        let sql = "SELECT * FROM repositories WHERE installation_id = $1 ORDER BY full_name";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(installation_id)
            .fetch_all(p)
            .await)?)
    }

    /// Every repository, for the status page, ordered by name.
    pub async fn list_repositories(&self, limit: i64, offset: i64) -> Result<Vec<Repository>> {
        let sql = "SELECT * FROM repositories ORDER BY lower(full_name), id LIMIT CAST($1 AS BIGINT) OFFSET CAST($2 AS BIGINT)";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await)?)
    }

    /// Records the repository's config file as read from the default branch (`text` None:
    /// no file; `error`: why it is invalid) and the schedule it asks for. When the schedule
    /// or time zone changed, the next scan becomes `config.next_scan_at`.
    pub async fn set_repo_config(
        &self,
        id: i64,
        config: &RepoConfigUpdate<'_>,
        now: DateTime<Utc>,
    ) -> Result<Repository> {
        let hash = config
            .text
            .map(|t| hex::encode(sha2::Sha256::digest(t.as_bytes())));
        // One statement, so comparing with the stored schedule and writing the new one are
        // atomic: SET expressions read the row as it was before this update, under the
        // row's write lock. The next time depends only on the new schedule, time zone and
        // `now`, which the caller knows, so it is computed before and passed in.
        let sql = "UPDATE repositories SET config_text = $2, config_hash = $3, config_error = $4,
                       schedule = $5, timezone = $6,
                       next_scan_at = CASE
                           WHEN schedule <> $5 OR timezone <> $6 OR next_scan_at IS NULL THEN $7
                           ELSE next_scan_at END,
                       updated_at = $8
                   WHERE id = $1 RETURNING *";
        let repo: Option<Repository> = on_pool!(self, |p| sqlx::query_as(sql)
            .bind(id)
            .bind(config.text)
            .bind(hash.as_deref())
            .bind(config.error)
            .bind(config.schedule)
            .bind(config.timezone)
            .bind(config.next_scan_at)
            .bind(now)
            .fetch_optional(p)
            .await)?;
        repo.ok_or(StoreError::NoSuchRepository(id))
    }

    /// Outcome of a scan (`status` e.g. `ok`, `error`), shown on the status page.
    pub async fn record_scan_result(
        &self,
        id: i64,
        status: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql =
            "UPDATE repositories SET last_scan_at = $2, last_scan_status = $3, last_error = $4,
                       updated_at = $2 WHERE id = $1";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(now)
            .bind(status)
            .bind(error)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    pub async fn set_dashboard_issue(&self, id: i64, issue: Option<i64>) -> Result<bool> {
        let sql = "UPDATE repositories SET dashboard_issue = $2 WHERE id = $1";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(issue)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Sets when the scheduler scans this repository next (tests, `trigger`-like tools).
    pub async fn set_next_scan_at(&self, id: i64, at: Option<DateTime<Utc>>) -> Result<bool> {
        let sql = "UPDATE repositories SET next_scan_at = $2 WHERE id = $1";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(id)
            .bind(at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    // ---- references and digests --------------------------------------------------------

    /// Replaces the references recorded for a repository with the ones a scan found.
    pub async fn replace_references(
        &self,
        repository_id: i64,
        refs: &[ImageRefRecord],
        now: DateTime<Utc>,
    ) -> Result<()> {
        in_tx!(self, |tx| {
            sqlx::query("DELETE FROM image_refs WHERE repository_id = $1")
                .bind(repository_id)
                .execute(&mut *tx)
                .await?;
            for r in refs {
                sqlx::query(
                    "INSERT INTO image_refs (repository_id, file, line, image, tag, digest, status,
                         current_digest, message, seen_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(repository_id)
                .bind(&r.file)
                .bind(r.line)
                .bind(&r.image)
                .bind(r.tag.as_deref())
                .bind(r.digest.as_deref())
                .bind(&r.status)
                .bind(r.current_digest.as_deref())
                .bind(r.message.as_deref())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
    }

    pub async fn references_for_repo(&self, repository_id: i64) -> Result<Vec<ImageRefRecord>> {
        let sql = "SELECT file, line, image, tag, digest, status, current_digest, message
                   FROM image_refs WHERE repository_id = $1 ORDER BY id";
        let mut refs: Vec<ImageRefRecord> = on_pool!(self, |p| sqlx::query_as(sql)
            .bind(repository_id)
            .fetch_all(p)
            .await)?;
        // Sorted here: PostgreSQL's text order follows the database's collation.
        refs.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Ok(refs)
    }

    /// Records that `tag` pointed at `digest` and returns when digestif first saw that,
    /// which the `min-age` cooldown measures from. Only the first call inserts.
    pub async fn record_digest_seen(
        &self,
        registry: &str,
        repository: &str,
        tag: &str,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let insert = "INSERT INTO digests_seen (registry, repository, tag, digest, first_seen_at)
                      VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING first_seen_at";
        let select = "SELECT first_seen_at FROM digests_seen
                      WHERE registry = $1 AND repository = $2 AND tag = $3 AND digest = $4";
        let inserted: Option<DateTime<Utc>> = on_pool!(self, |p| sqlx::query_scalar(insert)
            .bind(registry)
            .bind(repository)
            .bind(tag)
            .bind(digest)
            .bind(now)
            .fetch_optional(p)
            .await)?;
        if let Some(t) = inserted {
            return Ok(t);
        }
        Ok(on_pool!(self, |p| sqlx::query_scalar(select)
            .bind(registry)
            .bind(repository)
            .bind(tag)
            .bind(digest)
            .fetch_one(p)
            .await)?)
    }

    // ---- pull requests ------------------------------------------------------------------

    /// Creates or updates the record of a PR digestif owns, keyed by repository and
    /// number. `human_edited` and `handoff_notified` are never reset here.
    pub async fn upsert_pr(&self, pr: &PrUpsert<'_>, now: DateTime<Utc>) -> Result<PullRequest> {
        let sql =
            "INSERT INTO pull_requests (repository_id, number, branch, state, head_sha, base_sha,
                       updates, base_blobs, created_at, updated_at, closed_at, details_pending)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9,
                       CASE WHEN $4 = 'open' THEN NULL ELSE $9 END, $10)
                   ON CONFLICT (repository_id, number) DO UPDATE SET branch = excluded.branch,
                       state = excluded.state, head_sha = excluded.head_sha,
                       base_sha = excluded.base_sha, updates = excluded.updates,
                       base_blobs = excluded.base_blobs, updated_at = excluded.updated_at,
                       details_pending = excluded.details_pending,
                       closed_at = CASE WHEN excluded.state = 'open' THEN NULL
                           ELSE coalesce(pull_requests.closed_at, excluded.updated_at) END
                   RETURNING *";
        let updates = Json(pr.updates);
        let blobs = Json(pr.base_blobs);
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(pr.repository_id)
            .bind(pr.number)
            .bind(pr.branch)
            .bind(pr.state.as_str())
            .bind(pr.head_sha)
            .bind(pr.base_sha)
            .bind(updates)
            .bind(blobs)
            .bind(now)
            .bind(pr.details_pending)
            .fetch_one(p)
            .await)?)
    }

    /// Records whether PR `number`'s description still owes its details.
    pub async fn set_pr_details_pending(
        &self,
        repository_id: i64,
        number: i64,
        pending: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE pull_requests SET details_pending = $1, updated_at = $2
                   WHERE repository_id = $3 AND number = $4";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(pending)
            .bind(now)
            .bind(repository_id)
            .bind(number)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Every PR recorded for the repository, open and closed (the planner uses closed ones
    /// as "not this digest"), newest first.
    pub async fn prs_for_repo(&self, repository_id: i64) -> Result<Vec<PullRequest>> {
        let sql = "SELECT * FROM pull_requests WHERE repository_id = $1 ORDER BY number DESC";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(repository_id)
            .fetch_all(p)
            .await)?)
    }

    /// The PR on `branch`: the open one if any, else the newest.
    pub async fn pr_by_branch(
        &self,
        repository_id: i64,
        branch: &str,
    ) -> Result<Option<PullRequest>> {
        let sql = "SELECT * FROM pull_requests WHERE repository_id = $1 AND branch = $2
                   ORDER BY CASE WHEN state = 'open' THEN 0 ELSE 1 END, number DESC LIMIT 1";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(repository_id)
            .bind(branch)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn pr_by_number(
        &self,
        repository_id: i64,
        number: i64,
    ) -> Result<Option<PullRequest>> {
        let sql = "SELECT * FROM pull_requests WHERE repository_id = $1 AND number = $2";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(repository_id)
            .bind(number)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn set_pr_state(
        &self,
        repository_id: i64,
        number: i64,
        state: PrStatus,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE pull_requests SET state = $3, updated_at = $4,
                       closed_at = CASE WHEN $3 = 'open' THEN NULL ELSE coalesce(closed_at, $4) END
                   WHERE repository_id = $1 AND number = $2";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(repository_id)
            .bind(number)
            .bind(state.as_str())
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Someone else pushed to the PR's branch: digestif stops touching it. Returns whether
    /// the PR is known.
    pub async fn mark_pr_human_edited(
        &self,
        repository_id: i64,
        number: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE pull_requests SET human_edited = TRUE, updated_at = $3
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

    /// Claims the right to post the hand-off comment: true for exactly one caller, even
    /// across replicas. Claimed before posting, so a crash in between loses the comment
    /// rather than repeating it.
    pub async fn claim_pr_handoff_notice(
        &self,
        repository_id: i64,
        number: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE pull_requests SET handoff_notified = TRUE, updated_at = $3
                   WHERE repository_id = $1 AND number = $2 AND handoff_notified = FALSE";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(repository_id)
            .bind(number)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// PRs digestif opened in the repository since `since` (the hourly limit).
    pub async fn prs_created_since(&self, repository_id: i64, since: DateTime<Utc>) -> Result<u32> {
        let sql =
            "SELECT count(*) FROM pull_requests WHERE repository_id = $1 AND created_at >= $2";
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(sql)
            .bind(repository_id)
            .bind(since)
            .fetch_one(p)
            .await)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Open PRs across all repositories, for the status page.
    pub async fn open_prs(&self, limit: i64) -> Result<Vec<OpenPr>> {
        let sql = "SELECT r.full_name, p.* FROM pull_requests p
                   JOIN repositories r ON r.id = p.repository_id
                   WHERE p.state = 'open' ORDER BY p.updated_at DESC LIMIT CAST($1 AS BIGINT)";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }

    // ---- ignores ------------------------------------------------------------------------

    /// Returns false when the same ignore (image, tag, digest) exists already.
    pub async fn add_ignore(
        &self,
        repository_id: i64,
        ignore: &NewIgnore<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "INSERT INTO ignores (repository_id, image, tag, digest, reason, source, created_by, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(repository_id)
            .bind(ignore.image)
            .bind(ignore.tag)
            .bind(ignore.digest)
            .bind(ignore.reason)
            .bind(ignore.source.as_str())
            .bind(ignore.created_by)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Removes ignores of `image` (and `tag`, when given); returns how many.
    pub async fn remove_ignores(
        &self,
        repository_id: i64,
        image: &str,
        tag: Option<&str>,
    ) -> Result<u64> {
        let sql = "DELETE FROM ignores WHERE repository_id = $1 AND image = $2
                   AND ($3 IS NULL OR tag = $3)";
        Ok(on_pool!(self, |p| sqlx::query(sql)
            .bind(repository_id)
            .bind(image)
            .bind(tag)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?)
    }

    pub async fn ignores_for_repo(&self, repository_id: i64) -> Result<Vec<IgnoreRecord>> {
        let sql = "SELECT * FROM ignores WHERE repository_id = $1 ORDER BY id";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(repository_id)
            .fetch_all(p)
            .await)?)
    }

    // ---- webhook deliveries -------------------------------------------------------------

    /// Records a webhook delivery and enqueues its jobs in one transaction. Returns false
    /// for a delivery id seen before (a redelivery): nothing is enqueued then.
    pub async fn record_delivery_and_enqueue(
        &self,
        delivery_id: &str,
        event: &str,
        action: Option<&str>,
        jobs: &[NewJob],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let insert = "INSERT INTO webhook_deliveries (delivery_id, event, action, received_at)
                      VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        let fresh = in_tx!(self, |tx| {
            let n = sqlx::query(insert)
                .bind(delivery_id)
                .bind(event)
                .bind(action)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            for job in jobs {
                jobs::enqueue_in!(tx, job, now);
            }
            Ok(true)
        })?;
        if fresh {
            self.wake_workers(jobs.len());
        }
        Ok(fresh)
    }

    pub async fn delivery_seen(&self, delivery_id: &str) -> Result<bool> {
        let sql = "SELECT count(*) FROM webhook_deliveries WHERE delivery_id = $1";
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(sql)
            .bind(delivery_id)
            .fetch_one(p)
            .await)?;
        Ok(n > 0)
    }

    /// Forgets deliveries received before `before` (GitHub redelivers within days),
    /// finished jobs that ended before it and shared tag answers that arrived before it;
    /// dead jobs stay until an operator looks.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        let d = "DELETE FROM webhook_deliveries WHERE received_at < $1";
        let j = "DELETE FROM jobs WHERE state = 'done' AND finished_at < $1";
        // Shared tag answers of tags no one asked about since (a claim lapses in minutes).
        let t = "DELETE FROM registry_tags WHERE coalesce(resolved_at, claim_until) < $1
                 OR (resolved_at IS NULL AND claim_until IS NULL)";
        let a = on_pool!(self, |p| sqlx::query(d)
            .bind(before)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        let b = on_pool!(self, |p| sqlx::query(j)
            .bind(before)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        let c = on_pool!(self, |p| sqlx::query(t)
            .bind(before)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(a + b + c)
    }

    // ---- status page --------------------------------------------------------------------

    /// Repositories whose config is invalid or whose last scan failed, newest first.
    pub async fn recent_errors(&self, limit: i64) -> Result<Vec<RepoError>> {
        let sql = "SELECT id AS repository_id, full_name, last_scan_at, config_error, last_error
                   FROM repositories
                   WHERE config_error IS NOT NULL OR last_error IS NOT NULL
                   ORDER BY CASE WHEN last_scan_at IS NULL THEN 1 ELSE 0 END, last_scan_at DESC, id
                   LIMIT CAST($1 AS BIGINT)";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }
}
