//! Group commit of webhook deliveries: deliveries that arrive together are recorded, with
//! their jobs, in one transaction, and each caller is answered only once that transaction
//! committed.
//!
//! Callers hand a [`NewDelivery`] to a [`DeliveryQueue`] and wait for their own answer. A
//! committer task takes everything waiting (up to the batch size) and records it in one
//! transaction: one multi-row insert of the delivery ids (`ON CONFLICT DO NOTHING
//! RETURNING`, so the database says which are new), then the jobs of the new ones, each with
//! the same statement as a single enqueue, the jobs of one key in arrival order (so they
//! coalesce exactly as they would one transaction at a time) and the keys sorted (so that
//! concurrent batches take row locks in one order). A delivery id twice in one batch: the
//! first is the candidate, the others are "already received". When the batch transaction
//! fails, its deliveries are recorded again one transaction each, so only a delivery that
//! cannot be recorded on its own gets an error. The workers are woken once per batch.
//!
//! A batch size of 1 skips the committer: each delivery is its own transaction, on the
//! caller's task, as before group commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{NewJob, Result, Store, StoreError, in_tx};

/// Rows per insert statement (4 parameters each: well inside SQLite's and PostgreSQL's
/// limits on bound parameters).
const ROWS_PER_INSERT: usize = 256;

/// A webhook delivery to record with the jobs it asks for.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// GitHub's `X-GitHub-Delivery`: the same id twice is one delivery.
    pub id: String,
    pub event: String,
    pub action: Option<String>,
    pub jobs: Vec<NewJob>,
    pub now: DateTime<Utc>,
}

struct Pending {
    delivery: NewDelivery,
    answer: oneshot::Sender<Result<bool>>,
}

type Inbox = Arc<Mutex<mpsc::Receiver<Pending>>>;

/// Where deliveries are handed in for recording. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryQueue {
    store: Store,
    /// `None`: batch size 1, each delivery recorded on the caller's task.
    sender: Option<mpsc::Sender<Pending>>,
}

/// The committer tasks; [`Committer::finish`] commits what was handed in and stops them.
pub struct Committer {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Store {
    /// A queue recording up to `max_batch` deliveries per transaction, and its committer.
    /// SQLite gets one committer (one writer at a time anyway); PostgreSQL two, so one
    /// batch gathers while the other commits.
    pub fn delivery_queue(&self, max_batch: usize) -> (DeliveryQueue, Committer) {
        let stop = CancellationToken::new();
        if max_batch <= 1 {
            let queue = DeliveryQueue {
                store: self.clone(),
                sender: None,
            };
            return (
                queue,
                Committer {
                    stop,
                    tasks: vec![],
                },
            );
        }
        let (sender, receiver) = mpsc::channel(max_batch * 4);
        let inbox: Inbox = Arc::new(Mutex::new(receiver));
        let committers = match self.backend() {
            super::Backend::Sqlite => 1,
            super::Backend::Postgres => 2,
        };
        let tasks = (0..committers)
            .map(|_| {
                let (store, inbox, stop) = (self.clone(), inbox.clone(), stop.clone());
                tokio::spawn(
                    async move { commit_until_stopped(store, inbox, max_batch, stop).await },
                )
            })
            .collect();
        let queue = DeliveryQueue {
            store: self.clone(),
            sender: Some(sender),
        };
        (queue, Committer { stop, tasks })
    }

    /// Records `batch` and enqueues the jobs of its new deliveries in one transaction; per
    /// delivery, whether it was new (a delivery id seen before, in the database or earlier
    /// in `batch`, is not). On an error nothing is recorded.
    pub async fn record_deliveries(&self, batch: &[&NewDelivery]) -> Result<Vec<bool>> {
        // The first occurrence of each id is the candidate; ids sorted, so that concurrent
        // batches on PostgreSQL take the key locks in one order and do not deadlock.
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, d) in batch.iter().enumerate() {
            first.entry(d.id.as_str()).or_insert(i);
        }
        let mut candidates: Vec<usize> = first.values().copied().collect();
        candidates.sort_by(|a, b| batch[*a].id.cmp(&batch[*b].id));
        let inserted: HashSet<String> = in_tx!(self, |tx| {
            let mut inserted = HashSet::new();
            for chunk in candidates.chunks(ROWS_PER_INSERT) {
                let sql = sqlx::AssertSqlSafe(insert_sql(chunk.len()));
                let mut q = sqlx::query_scalar::<_, String>(sql);
                for &i in chunk {
                    let d = batch[i];
                    q = q.bind(&d.id).bind(&d.event).bind(&d.action).bind(d.now);
                }
                inserted.extend(q.fetch_all(&mut *tx).await?);
            }
            // Jobs of one key in arrival order, as one transaction per delivery would
            // enqueue them; keys in sorted order (a stable sort), so that concurrent batches
            // on PostgreSQL lock the queued job rows in one order and do not deadlock.
            let mut fresh_in_order: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&i| inserted.contains(&batch[i].id))
                .collect();
            fresh_in_order.sort_unstable();
            let mut jobs: Vec<(&NewJob, DateTime<Utc>)> = fresh_in_order
                .iter()
                .flat_map(|&i| batch[i].jobs.iter().map(move |j| (j, batch[i].now)))
                .collect();
            jobs.sort_by(|a, b| a.0.unique_key.cmp(&b.0.unique_key));
            for (job, now) in jobs {
                super::jobs::enqueue_in!(tx, job, now);
            }
            Ok(inserted)
        })?;
        let fresh: Vec<bool> = batch
            .iter()
            .enumerate()
            .map(|(i, d)| first.get(d.id.as_str()) == Some(&i) && inserted.contains(&d.id))
            .collect();
        let any_jobs = batch
            .iter()
            .zip(&fresh)
            .any(|(d, f)| *f && !d.jobs.is_empty());
        if any_jobs {
            self.wake.notify_waiters();
        }
        Ok(fresh)
    }
}

/// `INSERT … VALUES ($1, $2, $3, $4), ($5, …) ON CONFLICT DO NOTHING RETURNING delivery_id`.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO webhook_deliveries (delivery_id, event, action, received_at) VALUES ",
    );
    for r in 0..rows {
        let p = r * 4;
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4));
    }
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING delivery_id");
    sql
}

impl DeliveryQueue {
    /// Records the delivery and enqueues its jobs, durably, before returning: true when it
    /// is new, false for a delivery id seen before (nothing is enqueued then).
    pub async fn record(&self, delivery: NewDelivery) -> Result<bool> {
        let Some(sender) = &self.sender else {
            let d = &delivery;
            return self
                .store
                .record_delivery_and_enqueue(&d.id, &d.event, d.action.as_deref(), &d.jobs, d.now)
                .await;
        };
        let (answer, answered) = oneshot::channel();
        sender
            .send(Pending { delivery, answer })
            .await
            .map_err(|_| StoreError::Stopped)?;
        answered.await.map_err(|_| StoreError::Stopped)?
    }
}

impl Committer {
    /// Stops taking deliveries: those already handed in are committed (or answered with
    /// an error), later ones are refused; returns when the committers are done.
    pub async fn finish(self) {
        self.stop.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "delivery committer failed");
            }
        }
    }
}

async fn commit_until_stopped(
    store: Store,
    inbox: Inbox,
    max_batch: usize,
    stop: CancellationToken,
) {
    while let Some(batch) = next_batch(&inbox, max_batch, &stop).await {
        commit(&store, batch).await;
    }
}

/// Waits for a delivery, then takes what else is waiting, up to `max_batch`. After `stop`
/// the inbox is closed (senders get an error) and what it holds is still handed out.
async fn next_batch(
    inbox: &Inbox,
    max_batch: usize,
    stop: &CancellationToken,
) -> Option<Vec<Pending>> {
    let mut rx = inbox.lock().await;
    let first = tokio::select! {
        biased;
        p = rx.recv() => p,
        _ = stop.cancelled() => {
            rx.close();
            rx.recv().await
        }
    }?;
    let mut batch = vec![first];
    while batch.len() < max_batch {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Records `batch` in one transaction and answers each caller; when that fails, records
/// each delivery in a transaction of its own.
async fn commit(store: &Store, batch: Vec<Pending>) {
    let deliveries: Vec<&NewDelivery> = batch.iter().map(|p| &p.delivery).collect();
    let recorded = store.record_deliveries(&deliveries).await;
    match recorded {
        Ok(fresh) => {
            for (p, f) in batch.into_iter().zip(fresh) {
                // A caller that went away (its client disconnected) needs no answer.
                let _ = p.answer.send(Ok(f));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, deliveries = batch.len(),
                "a batch of webhook deliveries failed; recording them one at a time");
            for p in batch {
                let d = &p.delivery;
                let r = store
                    .record_delivery_and_enqueue(
                        &d.id,
                        &d.event,
                        d.action.as_deref(),
                        &d.jobs,
                        d.now,
                    )
                    .await;
                let _ = p.answer.send(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::insert_sql;

    #[test]
    fn insert_numbers_four_parameters_per_row() {
        let sql = insert_sql(2);
        assert!(
            sql.contains("VALUES ($1, $2, $3, $4), ($5, $6, $7, $8) ON CONFLICT"),
            "{sql}"
        );
    }
}
