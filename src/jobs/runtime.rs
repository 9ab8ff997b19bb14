//! The job runtime: N concurrent slots lease jobs, run a handler, heartbeat the lease,
//! and record the outcome. Shutdown stops leasing, lets running handlers finish within a
//! grace period, then aborts them and releases their jobs for another worker.
//!
//! A handler runs only while its lease is held: when a heartbeat finds the lease gone
//! (another worker took the job after this one stalled past the lease), or cannot renew it
//! before it runs out, the handler is aborted. And since a stall can come at any moment,
//! every GitHub write first renews the lease ([`crate::lease::ensure_held`], which this
//! runtime sets up for each handler).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::clock::Clock;
use crate::lease::HeldLease;
use crate::store::{FailOutcome, Failure, Job, Retry, RetryPolicy, Store};

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

/// What the queue records of a failed attempt: the message, and when it may run again.
impl From<&JobError> for Failure {
    fn from(e: &JobError) -> Failure {
        let retry = match e {
            JobError::Transient(_) => Retry::Backoff,
            JobError::RetryAt { at, .. } => Retry::At(*at),
            JobError::Permanent(_) => Retry::Never,
        };
        Failure {
            message: e.to_string(),
            retry,
        }
    }
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

/// Names the running job's repository in its span, once the handler has read its row.
pub fn record_repo(full_name: &str) {
    tracing::Span::current().record("repo", full_name);
}

/// How a supervised handler ended.
enum Ended {
    /// It returned (or panicked, or vanished): record the outcome.
    Returned(Option<Result<Result<(), JobError>, JoinError>>),
    /// The lease is lost: another worker may be running the job; record nothing.
    LeaseLost,
    /// Shutdown's grace period ran out: give the job back.
    ShutDown,
}

impl<H: JobHandler> Slot<H> {
    async fn run(self) {
        let wake = self.store.wakeup();
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
                    let span = Self::job_span(&job);
                    self.run_job(job).instrument(span).await;
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

    /// Installation and repository as span fields, so every line a job logs says whose
    /// work it is. Payloads name the repository by id; the handler records its name when it
    /// reads the repository row anyway ([`record_repo`]), rather than every job paying a
    /// lookup for its log lines.
    fn job_span(job: &Job) -> tracing::Span {
        let payload = &job.payload.0;
        let field = |name: &str| payload.get(name).and_then(|v| v.as_i64());
        info_span!(
            "job",
            id = job.id,
            kind = %job.kind,
            attempt = job.attempts,
            installation = field("installation_id"),
            repository_id = field("repository_id"),
            repo = payload.get("full_name").and_then(|v| v.as_str()),
        )
    }

    /// Runs the handler under its lease and records how it ended.
    async fn run_job(&self, job: Job) {
        let started = std::time::Instant::now();
        debug!("running");
        let lost = CancellationToken::new();
        let task = self.spawn_handler(&job, lost.clone());
        match self.supervise(&job, task, &lost).await {
            Ended::Returned(outcome) => {
                let result = match outcome {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => Err(JobError::Transient(format!("handler panicked: {e}"))),
                    None => Err(JobError::Transient("handler vanished".to_string())),
                };
                self.record_outcome(&job, result, started.elapsed()).await;
            }
            Ended::LeaseLost => {
                crate::metrics::job_finished(&job.kind, "lease-lost", started.elapsed());
                warn!("lease lost; handler stopped");
            }
            Ended::ShutDown => {
                crate::metrics::job_finished(&job.kind, "released", started.elapsed());
                let owner = self.opts.owner.as_str();
                match self.store.release_job(&job, owner, self.clock.now()).await {
                    Ok(o) => info!(outcome = ?o, "released on shutdown"),
                    Err(e) => warn!(error = %e, "cannot release job; its lease will expire"),
                }
            }
        }
    }

    /// Starts the handler in its own task, as the holder of the job's lease. Its own task,
    /// so a panic is a failed attempt, not a dead slot, and so it can be aborted; dropping
    /// the set (the worker itself aborted) aborts it too, exactly like a killed process.
    fn spawn_handler(&self, job: &Job, lost: CancellationToken) -> JoinSet<Result<(), JobError>> {
        let (store, clock) = (self.store.clone(), self.clock.clone());
        let (id, owner, lease) = (job.id, self.opts.owner.clone(), self.opts.lease);
        let renew = move || -> crate::lease::Renewal {
            let (store, clock, owner) = (store.clone(), clock.clone(), owner.clone());
            Box::pin(async move {
                store
                    .extend_lease(id, &owner, lease, clock.now())
                    .await
                    .map_err(|e| e.to_string())
            })
        };
        let held = HeldLease::new(job.id, renew, lost);
        let handler = self.handler.clone();
        let j = job.clone();
        let mut task = JoinSet::new();
        // A spawned task does not inherit the span: hand it over, so the handler's own
        // log lines carry the job's fields.
        task.spawn(
            crate::lease::scope(held, async move { handler.handle(j).await })
                .instrument(tracing::Span::current()),
        );
        task
    }

    /// Waits for the handler while renewing its lease every third of a lease period; stops
    /// it when the lease is lost or shutdown's grace period runs out.
    async fn supervise(
        &self,
        job: &Job,
        mut task: JoinSet<Result<(), JobError>>,
        lost: &CancellationToken,
    ) -> Ended {
        let grace = self.opts.shutdown_grace;
        let shutdown = self.shutdown.clone();
        let deadline = async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::pin!(deadline);
        let lease = self.opts.lease;
        let beat = (lease / 3).max(Duration::from_millis(10));
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        // Until when this worker is sure it holds the lease (by its own clock).
        let mut held_until = tokio::time::Instant::now() + lease;
        loop {
            tokio::select! {
                r = task.join_next() => return Ended::Returned(r),
                _ = heartbeat.tick() => {
                    let asked = tokio::time::Instant::now();
                    let renewed = self.store
                        .extend_lease(job.id, &self.opts.owner, lease, self.clock.now())
                        .await;
                    match renewed {
                        Ok(true) => held_until = asked + lease,
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
                    return Ended::LeaseLost;
                }
                _ = &mut deadline => {
                    task.abort_all();
                    return Ended::ShutDown;
                }
            }
        }
    }

    /// Marks the job done, or failed (retried later or dead), and counts it.
    async fn record_outcome(&self, job: &Job, result: Result<(), JobError>, took: Duration) {
        let now = self.clock.now();
        let owner = self.opts.owner.as_str();
        let recorded = match &result {
            Ok(()) => self.store.complete_job(job.id, owner, now).await.map(|ok| {
                crate::metrics::job_finished(&job.kind, "ok", took);
                if !ok {
                    warn!("finished, but the lease was lost meanwhile");
                }
            }),
            Err(e) => self
                .store
                .fail_job(job, owner, e, &self.opts.retry, now)
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
                        FailOutcome::Dead => warn!(error = %e, "job is dead"),
                        other => info!(error = %e, outcome = ?other, "job failed"),
                    }
                }),
        };
        if let Err(e) = recorded {
            warn!(error = %e, "cannot record the job's outcome; its lease will expire");
        }
    }
}
