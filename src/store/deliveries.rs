//! Group commit of webhook deliveries: deliveries that arrive together are recorded, with
//! their jobs, in one transaction, and each caller is answered only once that transaction
//! committed.
//!
//! Callers hand a [`NewDelivery`] to a [`DeliveryQueue`] and wait for their own answer. A
//! committer task takes everything waiting (up to the batch size) and records it in one
//! transaction: one multi-row insert of the delivery ids (`ON CONFLICT DO NOTHING
//! RETURNING`, so the database says which are new), then the jobs of the new ones, merged per
//! key in arrival order into the row that enqueuing them one transaction at a time would
//! leave, and inserted with multi-row upserts in key order (so that concurrent batches take
//! row locks in one order). On PostgreSQL all of that is one statement (the deliveries and
//! jobs bound as arrays, merged in SQL: [`RECORD_POSTGRES`]), so a batch is one round trip
//! and one prepared statement. A delivery id twice in one batch: the
//! first is the candidate, the others are "already received". When the batch transaction
//! fails, its deliveries are recorded again one transaction each, so only a delivery that
//! cannot be recorded on its own gets an error. One idle worker is woken per job.
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

/// Rows per insert statement on SQLite (at most 7 parameters each, 1,792 in all: well
/// inside its limit on bound parameters).
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
        let inserted: HashSet<String> = if let super::Pool::Postgres(pool) = &self.pool {
            record_on_postgres(pool, batch, &candidates).await?
        } else {
            // SQLite: one transaction, multi-row statements of up to 256 rows.
            in_tx!(self, |tx| {
                let mut inserted = HashSet::new();
                for chunk in candidates.chunks(ROWS_PER_INSERT) {
                    let sql = sqlx::AssertSqlSafe(insert_sql(chunk.len()));
                    // One text per row count: kept out of the statement cache, where up to 256
                    // of them would push out the statements used all the time.
                    let mut q = sqlx::query_scalar::<_, String>(sql).persistent(false);
                    for &i in chunk {
                        let d = batch[i];
                        q = q.bind(&d.id).bind(&d.event).bind(&d.action).bind(d.now);
                    }
                    inserted.extend(q.fetch_all(&mut *tx).await?);
                }
                // Jobs in arrival order, merged per key as one transaction per delivery would
                // leave them, then inserted a chunk of rows per statement, in key order.
                let mut fresh_in_order: Vec<usize> = candidates
                    .iter()
                    .copied()
                    .filter(|&i| inserted.contains(&batch[i].id))
                    .collect();
                fresh_in_order.sort_unstable();
                let arrived = fresh_in_order
                    .iter()
                    .flat_map(|&i| batch[i].jobs.iter().map(move |j| (j, batch[i].now)));
                for (supersedes, rows) in merge_jobs(arrived) {
                    for chunk in rows.chunks(ROWS_PER_INSERT) {
                        let sql = sqlx::AssertSqlSafe(enqueue_sql(chunk.len(), supersedes));
                        let mut q = sqlx::query(sql).persistent(false);
                        for m in chunk {
                            q = q
                                .bind(m.job.kind.as_str())
                                .bind(sqlx::types::Json(m.payload))
                                .bind(m.job.unique_key.as_deref())
                                .bind(m.run_at)
                                .bind(m.job.max_attempts)
                                .bind(m.created_at)
                                .bind(m.updated_at);
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
                Ok(inserted)
            })?
        };
        let fresh: Vec<bool> = batch
            .iter()
            .enumerate()
            .map(|(i, d)| first.get(d.id.as_str()) == Some(&i) && inserted.contains(&d.id))
            .collect();
        let jobs: usize = batch
            .iter()
            .zip(&fresh)
            .filter(|(_, f)| **f)
            .map(|(d, _)| d.jobs.len())
            .sum();
        self.wake_workers(jobs);
        Ok(fresh)
    }
}

/// `INSERT … VALUES ($1, $2, $3, $4), ($5, …) ON CONFLICT DO NOTHING RETURNING delivery_id`.
fn insert_sql(rows: usize) -> String {
    let values = values(rows, 4, |p| {
        format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4)
    });
    format!(
        "INSERT INTO webhook_deliveries (delivery_id, event, action, received_at) VALUES \
         {values} ON CONFLICT DO NOTHING RETURNING delivery_id"
    )
}

/// `rows` rows of `per_row` parameters each, numbered from `$1`: `row(p)` writes the row
/// whose parameters follow `$p`.
fn values(rows: usize, per_row: usize, row: impl Fn(usize) -> String) -> String {
    (0..rows)
        .map(|r| row(r * per_row))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The jobs of a batch as one row each: same-key jobs merged into the row that enqueuing
/// them one after another would leave.
#[derive(Debug)]
struct MergedJob<'a> {
    /// The first job of its key: kind, key and attempts are the first's, as later enqueues
    /// of a queued key change none of them.
    job: &'a NewJob,
    /// The last superseding job's payload, or else the first's.
    payload: &'a serde_json::Value,
    /// The earliest.
    run_at: DateTime<Utc>,
    /// When the first and the last were handed in.
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Merges `arrived` (jobs with the time each was handed in, in arrival order) per key, and
/// splits the rows into those that keep a queued job's payload (`false`) and those that
/// replace it (`true`, some job of the key superseded), each sorted by key: concurrent
/// batches on PostgreSQL then lock the queued rows in one order and do not deadlock (a batch
/// holding both kinds locks in two runs; a deadlock there fails the batch, which is then
/// recorded one delivery at a time).
fn merge_jobs<'a>(
    arrived: impl Iterator<Item = (&'a NewJob, DateTime<Utc>)>,
) -> [(bool, Vec<MergedJob<'a>>); 2] {
    let mut rows: Vec<(MergedJob<'a>, bool)> = Vec::new();
    let mut by_key: HashMap<&'a str, usize> = HashMap::new();
    for (job, now) in arrived {
        let run_at = job.run_at.unwrap_or(now);
        if let Some(&i) = job.unique_key.as_deref().and_then(|k| by_key.get(k)) {
            let (m, supersedes) = &mut rows[i];
            m.run_at = m.run_at.min(run_at);
            m.updated_at = now;
            if job.supersedes {
                m.payload = &job.payload;
                *supersedes = true;
            }
            continue;
        }
        if let Some(k) = job.unique_key.as_deref() {
            by_key.insert(k, rows.len());
        }
        let merged = MergedJob {
            job,
            payload: &job.payload,
            run_at,
            created_at: now,
            updated_at: now,
        };
        rows.push((merged, job.supersedes));
    }
    rows.sort_by(|a, b| a.0.job.unique_key.cmp(&b.0.job.unique_key));
    let (replace, keep): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, s)| *s);
    let strip = |v: Vec<(MergedJob<'a>, bool)>| v.into_iter().map(|(m, _)| m).collect();
    [(false, strip(keep)), (true, strip(replace))]
}

/// [`super::jobs::ENQUEUE_SQL`] for `rows` rows, 7 parameters each; a queued job of the same
/// key takes the new payload when `supersedes`.
fn enqueue_sql(rows: usize, supersedes: bool) -> String {
    let values = values(rows, 7, |p| {
        let [a, b, c, d, e, f, g] = [1, 2, 3, 4, 5, 6, 7].map(|n| p + n);
        format!("(${a}, ${b}, ${c}, 'queued', ${d}, 0, ${e}, ${f}, ${g})")
    });
    let conflict = if supersedes {
        super::jobs::queued_key_conflict!("excluded.payload")
    } else {
        super::jobs::queued_key_conflict!("jobs.payload")
    };
    format!(
        "INSERT INTO jobs (kind, payload, unique_key, state, run_at, attempts, max_attempts, \
         created_at, updated_at) VALUES {values}{conflict}"
    )
}

/// The whole batch as one statement on PostgreSQL, in its own implicit transaction: the
/// delivery ids inserted (`fresh`), then the jobs of the fresh deliveries merged per key as
/// [`merge_jobs`] merges them (first job's kind, attempts and creation time, earliest
/// `run_at`, last arrival's time, the last superseding payload or else the first's),
/// upserted in key order in two runs, rows that keep a queued payload and rows that replace
/// it. Arrays bound once, so the statement is prepared once; one round trip instead of
/// BEGIN, two or three statements and COMMIT (`tests/deliveries.rs` compares the queue it
/// leaves with one transaction per delivery).
const RECORD_POSTGRES: &str = concat!(
    "WITH fresh AS (
        INSERT INTO webhook_deliveries (delivery_id, event, action, received_at)
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[])
        ON CONFLICT DO NOTHING
        RETURNING delivery_id
    ), arrived AS (
        SELECT a.* FROM UNNEST($5::text[], $6::text[], $7::jsonb[], $8::text[],
                               $9::timestamptz[], $10::int[], $11::timestamptz[], $12::bool[])
            WITH ORDINALITY AS a(delivery_id, kind, payload, unique_key, run_at, max_attempts,
                                 handed_in, supersedes, n)
        WHERE a.delivery_id IN (SELECT delivery_id FROM fresh)
    ), merged AS (
        SELECT (array_agg(kind ORDER BY n))[1] AS kind,
               coalesce((array_agg(payload ORDER BY n DESC) FILTER (WHERE supersedes))[1],
                        (array_agg(payload ORDER BY n))[1]) AS payload,
               unique_key,
               min(run_at) AS run_at,
               (array_agg(max_attempts ORDER BY n))[1] AS max_attempts,
               (array_agg(handed_in ORDER BY n))[1] AS created_at,
               (array_agg(handed_in ORDER BY n DESC))[1] AS updated_at,
               bool_or(supersedes) AS supersedes
        FROM arrived
        GROUP BY unique_key, CASE WHEN unique_key IS NULL THEN n END
    ), kept AS (
        INSERT INTO jobs (kind, payload, unique_key, state, run_at, attempts, max_attempts,
                          created_at, updated_at)
        SELECT kind, payload, unique_key, 'queued', run_at, 0, max_attempts, created_at,
               updated_at
        FROM merged WHERE NOT supersedes ORDER BY unique_key",
    super::jobs::queued_key_conflict!("jobs.payload"),
    "
    ), replaced AS (
        INSERT INTO jobs (kind, payload, unique_key, state, run_at, attempts, max_attempts,
                          created_at, updated_at)
        SELECT kind, payload, unique_key, 'queued', run_at, 0, max_attempts, created_at,
               updated_at
        FROM merged WHERE supersedes ORDER BY unique_key",
    super::jobs::queued_key_conflict!("excluded.payload"),
    "
    )
    SELECT delivery_id FROM fresh"
);

/// [`RECORD_POSTGRES`] for `candidates` (indexes into `batch`, one per delivery id): the
/// ids that were new.
async fn record_on_postgres(
    pool: &sqlx::PgPool,
    batch: &[&NewDelivery],
    candidates: &[usize],
) -> Result<HashSet<String>> {
    let deliveries: Vec<&NewDelivery> = candidates.iter().map(|&i| batch[i]).collect();
    // Jobs in arrival order (the batch's order), each with its delivery.
    let mut in_order: Vec<usize> = candidates.to_vec();
    in_order.sort_unstable();
    let jobs: Vec<(&NewDelivery, &NewJob)> = in_order
        .iter()
        .flat_map(|&i| batch[i].jobs.iter().map(move |j| (batch[i], j)))
        .collect();
    // One array per column.
    fn delivery_col<'a, T>(ds: &[&'a NewDelivery], f: impl Fn(&'a NewDelivery) -> T) -> Vec<T> {
        ds.iter().map(|d| f(d)).collect()
    }
    fn job_col<'a, T>(
        js: &[(&'a NewDelivery, &'a NewJob)],
        f: impl Fn(&'a NewDelivery, &'a NewJob) -> T,
    ) -> Vec<T> {
        js.iter().map(|(d, j)| f(d, j)).collect()
    }
    let fresh: Vec<String> = sqlx::query_scalar(RECORD_POSTGRES)
        .bind(delivery_col(&deliveries, |d| d.id.as_str()))
        .bind(delivery_col(&deliveries, |d| d.event.as_str()))
        .bind(delivery_col(&deliveries, |d| d.action.as_deref()))
        .bind(delivery_col(&deliveries, |d| d.now))
        .bind(job_col(&jobs, |d, _| d.id.as_str()))
        .bind(job_col(&jobs, |_, j| j.kind.as_str()))
        .bind(job_col(&jobs, |_, j| sqlx::types::Json(&j.payload)))
        .bind(job_col(&jobs, |_, j| j.unique_key.as_deref()))
        .bind(job_col(&jobs, |d, j| j.run_at.unwrap_or(d.now)))
        .bind(job_col(&jobs, |_, j| j.max_attempts))
        .bind(job_col(&jobs, |d, _| d.now))
        .bind(job_col(&jobs, |_, j| j.supersedes))
        .fetch_all(pool)
        .await?;
    Ok(fresh.into_iter().collect())
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
    use super::{enqueue_sql, insert_sql, merge_jobs};
    use crate::store::NewJob;
    use chrono::{TimeZone as _, Utc};

    #[test]
    fn enqueue_numbers_seven_parameters_per_row_and_picks_the_payload() {
        let keep = enqueue_sql(2, false);
        assert!(
            keep.contains("($1, $2, $3, 'queued', $4, 0, $5, $6, $7), ($8, $9, $10, 'queued', $11, 0, $12, $13, $14) ON CONFLICT"),
            "{keep}"
        );
        assert!(keep.contains("payload = jobs.payload"), "{keep}");
        assert!(enqueue_sql(1, true).contains("payload = excluded.payload"));
    }

    #[test]
    fn same_key_jobs_merge_and_rows_come_in_key_order_per_kind() {
        let t = |m| Utc.with_ymd_and_hms(2026, 5, 4, 9, m, 0).unwrap();
        let mut manual = NewJob::scan_repo(2, "manual").at(t(30));
        manual.supersedes = true;
        let jobs = [
            NewJob::scan_repo(3, "a"),
            NewJob::scan_repo(2, "b").at(t(40)),
            NewJob::scan_repo(1, "c"),
            manual,
            NewJob::scan_repo(3, "d").max_attempts(9),
        ];
        let arrived = jobs.iter().zip([t(1), t(2), t(3), t(4), t(5)]);
        let [(false, keep), (true, replace)] = merge_jobs(arrived) else {
            panic!("keeping rows first, then replacing rows");
        };
        let keys = |rows: &[super::MergedJob]| -> Vec<String> {
            rows.iter()
                .filter_map(|m| m.job.unique_key.clone())
                .collect()
        };
        assert_eq!(keys(&keep), ["scan_repo:1", "scan_repo:3"]);
        assert_eq!(keys(&replace), ["scan_repo:2"]);
        let r3 = &keep[1];
        assert_eq!(
            (r3.payload["reason"].as_str(), r3.job.max_attempts),
            (Some("a"), crate::store::DEFAULT_MAX_ATTEMPTS)
        );
        assert_eq!(
            (r3.run_at, r3.created_at, r3.updated_at),
            (t(1), t(1), t(5))
        );
        let r2 = &replace[0];
        assert_eq!(r2.payload["reason"], "manual");
        assert_eq!(
            (r2.run_at, r2.created_at, r2.updated_at),
            (t(30), t(2), t(4))
        );
    }

    #[test]
    fn insert_numbers_four_parameters_per_row() {
        let sql = insert_sql(2);
        assert!(
            sql.contains("VALUES ($1, $2, $3, $4), ($5, $6, $7, $8) ON CONFLICT"),
            "{sql}"
        );
    }
}
