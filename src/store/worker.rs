//! The worker runtime: N concurrent slots lease jobs, run a handler, heartbeat the lease,
//! and record the outcome. Shutdown stops leasing, lets running handlers finish within a
//! grace period, then aborts them and releases their jobs for another worker.
//!
//! A handler runs only while its lease is held: when a heartbeat finds the lease gone
//! (another worker took the job after this one stalled past the lease), or cannot renew it
//! before it runs out, the handler is aborted. And since a stall can come at any moment,
//! every GitHub write first renews the lease ([`ensure_lease_held`]): a write goes out at
//! most one lease period after this worker last proved it held the job, and another worker
//! can only take the job once that period has passed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::{FailOutcome, Job, RetryPolicy, Store, StoreError};
use crate::schedule::Clock;

/// Why a handler did not finish its job.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Worth retrying with backoff (network, rate limit without a reset time, 5xx).
    #[error("{0}")]
    Transient(String),
    /// Retry no earlier than the given time (e.g. a rate limit's reset).
    #[error("{message} (retry at {at})")]
    RetryAt {
        message: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Retrying cannot help (unknown job kind, malformed payload): dead at once.
    #[error("{0}")]
    Permanent(String),
}

/// Runs jobs. Implemented for `Fn(Job) -> impl Future<Output = Result<(), JobError>>`.
pub trait JobHandler: Send + Sync + 'static {
    fn handle(&self, job: Job) -> impl Future<Output = Result<(), JobError>> + Send;
}

impl<F, Fut> JobHandler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send,
{
    fn handle(&self, job: Job) -> impl Future<Output = Result<(), JobError>> + Send {
        self(job)
    }
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs run at once by this process.
    pub concurrency: usize,
    /// How long a lease lasts without a heartbeat; a dead worker's jobs wait this long.
    pub lease: Duration,
    /// Idle slots look for work this often (work enqueued by this process wakes them
    /// at once; other replicas' and `digestif trigger`'s within this interval).
    pub poll_interval: Duration,
    /// After shutdown starts, running handlers get this long before they are aborted.
    pub shutdown_grace: Duration,
    /// Lease owner, unique per process.
    pub owner: String,
    pub retry: RetryPolicy,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 4,
            lease: Duration::from_secs(300),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(20),
            owner: default_owner(),
            retry: RetryPolicy::default(),
        }
    }
}

/// `host:pid:random`, so two replicas (or two runs of one) never share leases.
pub fn default_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "digestif".to_string());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The lease a running handler holds, for [`ensure_lease_held`].
#[derive(Clone)]
struct HeldLease {
    store: Store,
    job_id: i64,
    owner: String,
    lease: Duration,
    clock: Arc<dyn Clock>,
    /// Cancelled once the lease is known lost: the worker aborts the handler.
    lost: CancellationToken,
}

tokio::task_local! {
    static LEASE: HeldLease;
}

/// Why a handler may not write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    #[error("job {0}: lease lost to another worker; not writing")]
    Lost(i64),
    #[error("job {job}: cannot confirm the lease ({error}); not writing")]
    Unconfirmed { job: i64, error: String },
}

/// Renews the running job's lease before a side effect; an error means the side effect
/// must not happen (and the worker is told to stop the handler). Outside a worker's
/// handler (the CLI) there is no lease and this is a no-op.
pub async fn ensure_lease_held() -> Result<(), LeaseError> {
    let Ok(held) = LEASE.try_with(HeldLease::clone) else {
        return Ok(());
    };
    if held.lost.is_cancelled() {
        return Err(LeaseError::Lost(held.job_id));
    }
    let renewed: Result<bool, StoreError> = held
        .store
        .extend_lease(held.job_id, &held.owner, held.lease, held.clock.now())
        .await;
    match renewed {
        Ok(true) => Ok(()),
        Ok(false) => {
            held.lost.cancel();
            Err(LeaseError::Lost(held.job_id))
        }
        Err(e) => Err(LeaseError::Unconfirmed {
            job: held.job_id,
            error: e.to_string(),
        }),
    }
}

/// Whether the running job's lease is known lost (then its handler must not record
/// anything either: the job belongs to another worker).
pub fn lease_lost() -> bool {
    LEASE.try_with(|l| l.lost.is_cancelled()).unwrap_or(false)
}

pub struct Worker<H> {
    store: Store,
    handler: Arc<H>,
    clock: Arc<dyn Clock>,
    opts: WorkerOptions,
}

impl<H: JobHandler> Worker<H> {
    pub fn new(store: Store, handler: H, clock: Arc<dyn Clock>, opts: WorkerOptions) -> Self {
        Worker {
            store,
            handler: Arc::new(handler),
            clock,
            opts,
        }
    }

    /// Runs until `shutdown` is cancelled and every slot has finished or released its job.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut slots = JoinSet::new();
        for slot in 0..self.opts.concurrency.max(1) {
            let s = Slot {
                store: self.store.clone(),
                handler: self.handler.clone(),
                clock: self.clock.clone(),
                opts: self.opts.clone(),
                shutdown: shutdown.clone(),
            };
            slots.spawn(s.run().instrument(info_span!("worker", slot)));
        }
        while let Some(r) = slots.join_next().await {
            if let Err(e) = r {
                warn!(error = %e, "worker slot ended abnormally");
            }
        }
        info!(owner = %self.opts.owner, "workers stopped");
    }
}

struct Slot<H> {
    store: Store,
    handler: Arc<H>,
    clock: Arc<dyn Clock>,
    opts: WorkerOptions,
    shutdown: CancellationToken,
}

impl<H: JobHandler> Slot<H> {
    async fn run(self) {
        let wake = self.store.wake.clone();
        while !self.shutdown.is_cancelled() {
            // Registered before leasing, so an enqueue between an empty lease and the wait
            // still wakes this slot.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let leased = self
                .store
                .lease_jobs(&self.opts.owner, 1, self.opts.lease, self.clock.now())
                .await;
            match leased {
                Ok(mut jobs) if !jobs.is_empty() => {
                    let job = jobs.swap_remove(0);
                    self.run_job(job).await;
                }
                Ok(_) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep(self.opts.poll_interval) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot lease jobs");
                    tokio::select! {
                        _ = tokio::time::sleep(self.opts.poll_interval) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    async fn run_job(&self, job: Job) {
        // Installation and repository as span fields, so every line a job logs says whose
        // work it is (payloads carry ids; the name is one indexed lookup away).
        let installation = job
            .payload
            .0
            .get("installation_id")
            .and_then(|v| v.as_i64());
        let repo = match job.payload.0.get("full_name").and_then(|v| v.as_str()) {
            Some(name) => Some(name.to_string()),
            None => match job.payload.0.get("repository_id").and_then(|v| v.as_i64()) {
                Some(id) => Some(match self.store.repository(id).await {
                    Ok(Some(r)) => r.full_name,
                    _ => id.to_string(),
                }),
                None => None,
            },
        };
        let span = info_span!(
            "job",
            id = job.id,
            kind = %job.kind,
            attempt = job.attempts,
            installation = installation,
            repo = repo.as_deref(),
        );
        let started = std::time::Instant::now();
        async {
            debug!("running");
            let owner = self.opts.owner.as_str();
            // The handler runs in its own task so a panic is a failed attempt, not a dead
            // slot, and so it can be aborted; dropping the set (the worker itself aborted)
            // aborts it too, exactly like a killed process.
            let mut task = JoinSet::new();
            let handler = self.handler.clone();
            let j = job.clone();
            let lost = CancellationToken::new();
            let held = HeldLease {
                store: self.store.clone(),
                job_id: job.id,
                owner: owner.to_string(),
                lease: self.opts.lease,
                clock: self.clock.clone(),
                lost: lost.clone(),
            };
            // A spawned task does not inherit the span: hand it over, so the handler's own
            // log lines carry the job's fields.
            task.spawn(
                LEASE
                    .scope(held, async move { handler.handle(j).await })
                    .instrument(tracing::Span::current()),
            );
            let grace = self.opts.shutdown_grace;
            let shutdown = self.shutdown.clone();
            let deadline = async move {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            tokio::pin!(deadline);
            let beat = (self.opts.lease / 3).max(Duration::from_millis(10));
            let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
            // Until when this worker is sure it holds the lease (by its own clock).
            let mut held_until = tokio::time::Instant::now() + self.opts.lease;
            let outcome = loop {
                tokio::select! {
                    r = task.join_next() => break r,
                    _ = heartbeat.tick() => {
                        let asked = tokio::time::Instant::now();
                        match self.store.extend_lease(job.id, owner, self.opts.lease, self.clock.now()).await {
                            Ok(true) => held_until = asked + self.opts.lease,
                            Ok(false) => lost.cancel(),
                            Err(e) => {
                                warn!(error = %e, "cannot extend lease");
                                if tokio::time::Instant::now() >= held_until {
                                    lost.cancel();
                                }
                            }
                        }
                    }
                    _ = lost.cancelled() => {
                        // Another worker may be running this job now: stop, and record
                        // nothing (the job's row is that worker's to write).
                        task.abort_all();
                        crate::metrics::job_finished(&job.kind, "lease-lost", started.elapsed());
                        warn!("lease lost; handler stopped");
                        return;
                    }
                    _ = &mut deadline => {
                        task.abort_all();
                        crate::metrics::job_finished(&job.kind, "released", started.elapsed());
                        match self.store.release_job(&job, owner, self.clock.now()).await {
                            Ok(o) => info!(outcome = ?o, "released on shutdown"),
                            Err(e) => warn!(error = %e, "cannot release job; its lease will expire"),
                        }
                        return;
                    }
                }
            };
            let now = self.clock.now();
            let result = match outcome {
                Some(Ok(r)) => r,
                Some(Err(e)) => Err(JobError::Transient(format!("handler panicked: {e}"))),
                None => Err(JobError::Transient("handler vanished".to_string())),
            };
            let took = started.elapsed();
            let recorded = match &result {
                Ok(()) => self.store.complete_job(job.id, owner, now).await.map(|ok| {
                    crate::metrics::job_finished(&job.kind, "ok", took);
                    if !ok {
                        warn!("finished, but the lease was lost meanwhile");
                    }
                }),
                Err(e) => {
                    let msg = e.to_string();
                    self.store
                        .fail_job(&job, owner, e, &self.opts.retry, now)
                        .await
                        .map(|o| {
                            let outcome = match o {
                                FailOutcome::Dead => "dead",
                                FailOutcome::Retry { .. } => "retry",
                                FailOutcome::Superseded { .. } => "superseded",
                                FailOutcome::LeaseLost => "lease-lost",
                            };
                            crate::metrics::job_finished(&job.kind, outcome, took);
                            match o {
                                FailOutcome::Dead => warn!(error = %msg, "job is dead"),
                                other => info!(error = %msg, outcome = ?other, "job failed"),
                            }
                        })
                }
            };
            if let Err(e) = recorded {
                warn!(error = %e, "cannot record the job's outcome; its lease will expire");
            }
        }
        .instrument(span)
        .await
    }
}
