//! The scheduler loop: every few seconds it claims the repositories whose scan is due and
//! enqueues their `scan_repo` jobs. The cron math (when is the next slot) is
//! [`crate::schedule`]'s; the claim is one store transaction per batch
//! ([`Store::claim_due_repositories`]): rows are locked (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL; SQLite's write lock), their next time is computed by the closure this loop
//! passes and written back, and their scan jobs are enqueued before commit. N replicas
//! ticking together claim each due repository once; a repository that missed several slots
//! while the service was down is scanned once and its next time is the next slot after now.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::schedule::next_scan_at;
use crate::store::{DueRepository, Store, StoreError};

/// Claims due repositories and enqueues their scans, every `interval`.
#[derive(Debug, Clone)]
pub struct Scheduler {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Repositories claimed per transaction.
    pub batch: i64,
    pub interval: Duration,
}

impl Scheduler {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Scheduler {
            store,
            clock,
            batch: 500,
            interval: Duration::from_secs(5),
        }
    }

    /// One tick: claims every repository due now (in batches) and enqueues a scan for each.
    pub async fn tick(&self) -> Result<Vec<DueRepository>, StoreError> {
        let now = self.clock.now();
        let mut claimed = Vec::new();
        loop {
            let batch = self
                .store
                .claim_due_repositories(now, self.batch, |r| {
                    next_scan_at(r.id, &r.schedule, &r.timezone, now)
                })
                .await?;
            let n = batch.len();
            claimed.extend(batch);
            if i64::try_from(n).unwrap_or(i64::MAX) < self.batch {
                break;
            }
        }
        if !claimed.is_empty() {
            info!(count = claimed.len(), "scheduled scans");
        }
        Ok(claimed)
    }

    /// Ticks until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(self.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            match self.tick().await {
                Ok(c) => debug!(claimed = c.len(), "scheduler tick"),
                Err(e) => warn!(error = %e, "scheduler tick failed"),
            }
        }
        debug!("scheduler stopped");
    }
}
