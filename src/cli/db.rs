//! `digestif migrate`, `digestif jobs` and `digestif trigger`: operator commands that talk
//! to the database directly, so they work beside a running server (or without one).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use super::Format;
use crate::clock::{Clock, SystemClock};
use crate::store::{ConnectOptions, DEFAULT_DATABASE_URL, Job, JobState, Store};

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// sqlite://PATH (the default, created when missing) or postgres://…
    #[arg(long, env = "DIGESTIF_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only dead jobs (attempts used up), with their errors.
    #[arg(long, conflicts_with = "state")]
    pub dead: bool,
    /// Only jobs in this state.
    #[arg(long, value_parser = ["queued", "running", "done", "dead"])]
    pub state: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Put this dead job back in the queue with fresh attempts.
    #[arg(long, value_name = "ID")]
    pub retry: Option<i64>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The repository, as OWNER/REPO.
    pub repository: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ReposArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// At most this many, by name.
    #[arg(long, default_value_t = 10_000)]
    pub limit: i64,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn open(db: &DbArgs, migrate: bool) -> anyhow::Result<Store> {
    let mut o = ConnectOptions::new(db.database_url.clone());
    o.migrate = migrate;
    o.max_connections = 2;
    Store::connect_with(o).await.with_context(|| {
        format!(
            "cannot open the database {}",
            crate::server_settings::redact_url(&db.database_url)
        )
    })
}

/// Applies pending migrations and prints the versions applied.
pub fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(&args.db, false).await?;
        let before = store.applied_migrations().await.unwrap_or_default();
        store.migrate().await.context("migration failed")?;
        let after = store.applied_migrations().await?;
        let new: Vec<i64> = after
            .iter()
            .copied()
            .filter(|v| !before.contains(v))
            .collect();
        let latest = after.last().copied().unwrap_or(0);
        if args.format == Format::Json {
            let out = serde_json::json!({"applied": new, "version": latest});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else if new.is_empty() {
            println!("database is up to date (version {latest})");
        } else {
            for v in &new {
                let desc = store
                    .migrator()
                    .iter()
                    .find(|m| m.version == *v)
                    .map(|m| m.description.to_string())
                    .unwrap_or_default();
                println!("applied {v:04} {desc}");
            }
            println!("database is at version {latest}");
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Lists jobs (or retries a dead one).
pub fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(&args.db, true).await?;
        let clock = SystemClock;
        if let Some(id) = args.retry {
            if store.retry_dead_job(id, clock.now()).await? {
                println!("job {id} queued again");
                return Ok(ExitCode::SUCCESS);
            }
            anyhow::bail!("job {id} is not dead (or does not exist)");
        }
        let state = if args.dead {
            Some(JobState::Dead)
        } else {
            args.state.as_deref().map(str::parse).transpose()?
        };
        let jobs = store.list_jobs(state, args.limit).await?;
        let counts = store.job_counts().await?;
        match args.format {
            Format::Json => {
                let list: Vec<serde_json::Value> = jobs.iter().map(job_json).collect();
                let out = serde_json::json!({
                    "counts": {"queued": counts.queued, "running": counts.running,
                               "done": counts.done, "dead": counts.dead},
                    "jobs": list,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            Format::Text => {
                println!(
                    "queued {}  running {}  done {}  dead {}",
                    counts.queued, counts.running, counts.done, counts.dead
                );
                if !jobs.is_empty() {
                    println!(
                        "{:>8}  {:<8}  {:<18}  {:>8}  {:<25}  payload / error",
                        "id", "state", "kind", "attempts", "run at"
                    );
                }
                for j in &jobs {
                    println!(
                        "{:>8}  {:<8}  {:<18}  {:>4}/{:<3}  {:<25}  {}",
                        j.id,
                        j.state.as_str(),
                        j.kind,
                        j.attempts,
                        j.max_attempts,
                        j.run_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        j.payload.0
                    );
                    if let Some(e) = &j.last_error {
                        println!("{:>8}  error: {e}", "");
                    }
                }
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn job_json(j: &Job) -> serde_json::Value {
    serde_json::json!({
        "id": j.id, "kind": j.kind, "state": j.state.as_str(), "payload": j.payload.0,
        "unique_key": j.unique_key, "run_at": j.run_at, "attempts": j.attempts,
        "max_attempts": j.max_attempts, "lease_owner": j.lease_owner,
        "lease_expires_at": j.lease_expires_at, "last_error": j.last_error,
        "created_at": j.created_at, "finished_at": j.finished_at,
    })
}

/// Enqueues a scan of one repository now; a running server picks it up on its next poll.
pub fn trigger(args: TriggerArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(&args.db, true).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let Some(repo) = store.repository_by_full_name(&args.repository).await? else {
            anyhow::bail!(
                "repository {} is not known to digestif (is the App installed on it?)",
                args.repository
            );
        };
        let id = store
            .enqueue(
                &crate::jobs::Work::ScanRepo {
                    repository_id: repo.id,
                    reason: "trigger".into(),
                    // A person asked: the registries are asked afresh.
                    fresh: true,
                }
                .to_job(),
                clock.now(),
            )
            .await?;
        match args.format {
            Format::Json => {
                let out = serde_json::json!({"repository": repo.full_name, "job_id": id});
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            Format::Text => println!("queued scan of {} as job {id}", repo.full_name),
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Lists repositories with their installation, scans and status.
pub fn repos(args: ReposArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(&args.db, true).await?;
        let repos = store.repositories_overview(args.limit, 0).await?;
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "-".into())
        };
        match args.format {
            Format::Json => {
                let list: Vec<serde_json::Value> = repos
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.repo.id, "full_name": r.repo.full_name,
                            "installation_id": r.repo.installation_id,
                            "installation": r.account_login,
                            "status": r.status(), "archived": r.repo.archived,
                            "last_scan_at": r.repo.last_scan_at,
                            "last_scan_status": r.repo.last_scan_status,
                            "next_scan_at": r.repo.next_scan_at,
                            "schedule": r.repo.schedule, "timezone": r.repo.timezone,
                            "config_error": r.repo.config_error,
                            "last_error": r.repo.last_error,
                        })
                    })
                    .collect();
                let out = serde_json::json!({ "repositories": list });
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            Format::Text => {
                if repos.is_empty() {
                    println!("no repositories (install the App on some)");
                } else {
                    let w = repos
                        .iter()
                        .map(|r| r.repo.full_name.chars().count())
                        .max()
                        .unwrap_or(10)
                        .max(10);
                    let wi = repos
                        .iter()
                        .map(|r| r.account_login.as_deref().unwrap_or("?").chars().count())
                        .max()
                        .unwrap_or(12)
                        .max(12);
                    println!(
                        "{:<w$}  {:<wi$}  {:<12}  {:<20}  {:<20}  last error",
                        "repository", "installation", "status", "last scan", "next scan"
                    );
                    for r in &repos {
                        // One line per repository: a multi-line error shows its first line.
                        let error = r
                            .repo
                            .config_error
                            .as_deref()
                            .or(r.repo.last_error.as_deref())
                            .and_then(|e| e.lines().next())
                            .unwrap_or("");
                        println!(
                            "{:<w$}  {:<wi$}  {:<12}  {:<20}  {:<20}  {error}",
                            r.repo.full_name,
                            r.account_login.as_deref().unwrap_or("?"),
                            r.status(),
                            time(r.repo.last_scan_at),
                            time(r.repo.next_scan_at),
                        );
                    }
                }
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
