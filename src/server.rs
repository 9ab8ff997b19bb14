//! `digestif serve` put together: database, GitHub App client, registry resolver, the HTTP
//! server, the job workers and the scheduler, with one shutdown for all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::github::api::{GitHubApp, RetryPolicy};
use crate::jobs::{Handler, Work};
use crate::jobs::{Scheduler, Worker, WorkerOptions};
use crate::registry::{RegistryConfig, Resolver};
use crate::server_settings::{OpsSettings, Settings, redact_url};
use crate::shared_tags::StoreSharedTags;
use crate::store::{Backend, DeliveryQueue, Store};
use crate::web::{self, OpsState, WebState};

/// Knobs tests turn; the defaults are the production values.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub github_retry: RetryPolicy,
    pub scheduler_interval: Duration,
    pub worker_poll: Duration,
    /// Backoff of failed jobs.
    pub job_retry: crate::store::RetryPolicy,
    /// How long a job's lease lasts without a heartbeat.
    pub job_lease: Duration,
    /// Connection and webhook body limits of the HTTP server.
    pub http: web::Limits,
    /// How long the status page's login cookie is valid.
    pub admin_session: Duration,
    /// Most webhook deliveries recorded in one transaction (`DIGESTIF_WEBHOOK_BATCH`).
    pub webhook_batch: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            github_retry: RetryPolicy::default(),
            scheduler_interval: Duration::from_secs(5),
            worker_poll: Duration::from_secs(1),
            job_retry: crate::store::RetryPolicy::default(),
            job_lease: WorkerOptions::default().lease,
            http: web::Limits::default(),
            admin_session: web::ADMIN_SESSION,
            webhook_batch: crate::server_settings::DEFAULT_WEBHOOK_BATCH,
        }
    }
}

/// A server ready to run.
pub struct Server {
    pub store: Store,
    pub github: Arc<GitHubApp>,
    pub handler: Handler,
    settings: Settings,
    tuning: Tuning,
    app_ready: Arc<AtomicBool>,
    ops: OpsSettings,
}

impl Server {
    /// Connects to the database (running migrations) and builds the clients.
    pub async fn build(
        settings: Settings,
        registry: RegistryConfig,
        clock: Arc<dyn Clock>,
        tuning: Tuning,
    ) -> anyhow::Result<Server> {
        crate::metrics::install();
        let settings_api_url = settings.github_api_url.clone();
        let store = Store::connect(&settings.database_url)
            .await
            .with_context(|| format!("database {}", redact_url(&settings.database_url)))?;
        let github = Arc::new(
            GitHubApp::new(
                &settings.github_api_url,
                settings.app_id,
                &settings.private_key_pem,
                tuning.github_retry.clone(),
            )
            .context("DIGESTIF_GITHUB_PRIVATE_KEY")?,
        );
        // Replicas share tag answers through PostgreSQL; one SQLite process shares them in
        // its own cache already (README, "Replicas").
        let resolver = match store.backend() {
            Backend::Postgres => {
                let shared = StoreSharedTags::new(store.clone(), clock.clone());
                Resolver::with_shared_tags(registry, Arc::new(shared))
            }
            Backend::Sqlite => Resolver::new(registry),
        };
        let resolver = Arc::new(resolver.context("registry settings")?);
        let handler = Handler {
            store: store.clone(),
            github: github.clone(),
            resolver,
            clock: clock.clone(),
            limits: crate::repo_config::Limits::default(),
            osv: None,
        };
        Ok(Server {
            store,
            github,
            handler,
            settings,
            tuning,
            app_ready: Arc::new(AtomicBool::new(false)),
            ops: OpsSettings {
                github_web_url: crate::server_settings::github_web_url(&settings_api_url),
                ..OpsSettings::default()
            },
        })
    }

    /// The operator settings: admin and metrics tokens, previous webhook secret, GitHub's
    /// web address (defaults: all off, web address derived from the API URL).
    pub fn with_ops(mut self, ops: OpsSettings) -> Server {
        let derived = std::mem::take(&mut self.ops.github_web_url);
        self.handler.limits.min_schedule_interval = ops.min_schedule_interval;
        self.handler.osv = ops
            .osv_url
            .as_deref()
            .map(|u| Arc::new(crate::osv::Osv::new(u)));
        self.ops = ops;
        if self.ops.github_web_url.is_empty() {
            self.ops.github_web_url = derived;
        }
        self
    }

    /// What the HTTP handlers share; deliveries are recorded through `deliveries`.
    pub fn web_state(&self, deliveries: DeliveryQueue) -> WebState {
        WebState {
            store: self.store.clone(),
            webhook_secret: Arc::from(self.settings.webhook_secret.clone().into_boxed_slice()),
            clock: self.handler.clock.clone(),
            app_ready: self.app_ready.clone(),
            ops: Arc::new(OpsState {
                admin_token: self.ops.admin_token.clone(),
                metrics_token: self.ops.metrics_token.clone(),
                previous_webhook_secret: self
                    .ops
                    .webhook_secret_previous
                    .clone()
                    .map(|s| Arc::from(s.into_boxed_slice())),
                github_web_url: self.ops.github_web_url.clone(),
                secure_cookies: self
                    .ops
                    .public_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("https://")),
                app_id: Some(self.github.app_id()),
                rate_limit: Some(self.github.rate_limit()),
                resolver: Some((*self.handler.resolver).clone()),
                session_lifetime: web::SessionLifetime(self.tuning.admin_session),
            }),
            intake: Arc::new(web::intake::Intake::new(&self.tuning.http)),
            deliveries,
        }
    }

    /// Serves on `listener` until `shutdown` is cancelled; then stops taking work, lets
    /// running jobs finish (or releases them) and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr().ok();
        tracing::info!(?addr, database = %redact_url(&self.settings.database_url), "digestif serving");
        let (deliveries, committer) = self.store.delivery_queue(self.tuning.webhook_batch);
        let router = web::router(self.web_state(deliveries));
        let web_shutdown = shutdown.clone();
        let limits = self.tuning.http.clone();
        let web = tokio::spawn(async move {
            web::serve(listener, router, &limits, async move {
                web_shutdown.cancelled().await
            })
            .await
        });

        let handler = self.handler.clone();
        let worker = Worker::new(
            self.store.clone(),
            move |job| {
                let h = handler.clone();
                async move { h.handle(job).await }
            },
            self.handler.clock.clone(),
            WorkerOptions {
                concurrency: self.settings.workers,
                poll_interval: self.tuning.worker_poll,
                retry: self.tuning.job_retry,
                lease: self.tuning.job_lease,
                ..WorkerOptions::default()
            },
        );
        let workers = tokio::spawn(worker.run(shutdown.clone()));

        let mut scheduler = Scheduler::new(self.store.clone(), self.handler.clock.clone());
        scheduler.interval = self.tuning.scheduler_interval;
        let scheduler = tokio::spawn(scheduler.run(shutdown.clone()));

        // Histogram samples are drained into buckets on scrape; this keeps an unscraped
        // process from buffering them without bound.
        let upkeep_shutdown = shutdown.clone();
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => crate::metrics::upkeep(),
                    _ = upkeep_shutdown.cancelled() => return,
                }
            }
        });

        let startup = tokio::spawn(startup_sync(
            self.github.clone(),
            self.store.clone(),
            self.handler.clock.clone(),
            self.app_ready.clone(),
            shutdown.clone(),
        ));

        let pruner = tokio::spawn(prune_periodically(
            self.store.clone(),
            self.handler.clock.clone(),
            shutdown.clone(),
        ));

        let served = web.await.context("web server task")?;
        shutdown.cancel();
        // Deliveries handed in are committed (or refused) before the database closes.
        committer.finish().await;
        pruner.abort();
        let _ = workers.await;
        let _ = scheduler.await;
        startup.abort();
        upkeep.abort();
        self.store.close().await;
        served.context("web server")?;
        tracing::info!("digestif stopped");
        Ok(())
    }
}

/// Deliveries are remembered for a week (GitHub redelivers within days) and finished jobs
/// for as long; pruning hourly keeps both tables, and the lease query, small.
async fn prune_periodically(store: Store, clock: Arc<dyn Clock>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let before = clock.now() - chrono::TimeDelta::days(7);
        match store.prune(before).await {
            Ok(n) => tracing::debug!(
                rows = n,
                "pruned old deliveries, finished jobs and shared tag answers"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
    }
}

/// Checks the App's credentials, then queues a sync of every installation GitHub lists and
/// forgets installations it no longer lists (an uninstall while we were down). Retries
/// with backoff until it succeeds or the server stops.
async fn startup_sync(
    github: Arc<GitHubApp>,
    store: Store,
    clock: Arc<dyn Clock>,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_secs(2);
    loop {
        match try_startup_sync(&github, &store, &clock, &ready).await {
            Ok(n) => {
                tracing::info!(installations = n, "installations queued for sync");
                return;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "start-up sync with GitHub failed; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(300));
    }
}

async fn try_startup_sync(
    github: &GitHubApp,
    store: &Store,
    clock: &Arc<dyn Clock>,
    ready: &AtomicBool,
) -> anyhow::Result<usize> {
    let login = github.bot_login().await.context("GitHub App credentials")?;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(app = %login, "GitHub App credentials accepted");
    let installs = crate::github::apps::installation_ids(&github.as_app())
        .await
        .context("listing installations")?;
    let now = clock.now();
    for known in store.list_installations().await? {
        if known.deleted_at.is_none() && !installs.contains(&known.id) {
            store.mark_installation_deleted(known.id, now).await?;
            tracing::info!(
                installation = known.id,
                "installation gone from GitHub; removed"
            );
        }
    }
    for &installation_id in &installs {
        let job = Work::SyncInstallation {
            installation_id,
            action: "startup".into(),
        }
        .to_job();
        store.enqueue(&job, now).await?;
    }
    Ok(installs.len())
}
