//! The task-local "this job's lease is still held" check. The job runtime
//! (`jobs::runtime`) runs each handler inside [`scope`] with a way to renew the job's lease;
//! the GitHub client calls [`ensure_held`] before every write, so a write goes out at most
//! one lease period after this worker last proved it held the job (another worker can only
//! take the job once that period has passed). Outside a job (the CLI) there is no lease and
//! every check passes.
//!
//! This module knows neither the store nor the runtime: the runtime hands it a closure.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// What renewing answers: `Ok(true)` renewed, `Ok(false)` lost to another worker,
/// `Err(why)` could not tell (the database did not answer).
pub type Renewal = Pin<Box<dyn Future<Output = Result<bool, String>> + Send>>;

/// The lease a running handler holds.
#[derive(Clone)]
pub struct HeldLease {
    job_id: i64,
    renew: Arc<dyn Fn() -> Renewal + Send + Sync>,
    /// Cancelled once the lease is known lost: the runtime then aborts the handler.
    lost: CancellationToken,
}

impl HeldLease {
    /// `renew` extends the lease by one period from now; `lost` is the runtime's signal,
    /// cancelled here too when a renewal finds the lease gone.
    pub fn new(
        job_id: i64,
        renew: impl Fn() -> Renewal + Send + Sync + 'static,
        lost: CancellationToken,
    ) -> Self {
        HeldLease {
            job_id,
            renew: Arc::new(renew),
            lost,
        }
    }
}

tokio::task_local! {
    static LEASE: HeldLease;
}

/// Runs `work` (a handler) as the holder of `held`.
pub async fn scope<F: Future>(held: HeldLease, work: F) -> F::Output {
    LEASE.scope(held, work).await
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
/// must not happen (and the runtime is told to stop the handler). Outside a job's handler
/// (the CLI) there is no lease and this is a no-op.
pub async fn ensure_held() -> Result<(), LeaseError> {
    let Ok(held) = LEASE.try_with(HeldLease::clone) else {
        return Ok(());
    };
    if held.lost.is_cancelled() {
        return Err(LeaseError::Lost(held.job_id));
    }
    match (held.renew)().await {
        Ok(true) => Ok(()),
        Ok(false) => {
            held.lost.cancel();
            Err(LeaseError::Lost(held.job_id))
        }
        Err(error) => Err(LeaseError::Unconfirmed {
            job: held.job_id,
            error,
        }),
    }
}

/// Whether the running job's lease is known lost (then its handler must not record
/// anything either: the job belongs to another worker).
pub fn is_lost() -> bool {
    LEASE.try_with(|l| l.lost.is_cancelled()).unwrap_or(false)
}
