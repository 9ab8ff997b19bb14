//! The job queue on both backends: uniqueness, leases and their expiry, backoff, dead
//! jobs, and the worker runtime (exactly-once with two workers, a killed worker, shutdown).

#[path = "support/backends.rs"]
mod backends;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backends::TestDb;
use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use digestif::clock::{Clock, SystemClock};
use digestif::jobs::{JobError, Worker, WorkerOptions};
use digestif::store::{Backend, FailOutcome, Job, JobKind, JobState, NewJob, RetryPolicy, Store};
use tokio_util::sync::CancellationToken;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap()
}

fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

on_both!(
    a_key_is_queued_once_and_never_runs_twice_at_once,
    failures_back_off_then_die,
    expired_leases_are_leased_again,
    a_job_that_kills_its_workers_dies,
    released_jobs_do_not_count_an_attempt,
    a_failed_job_with_a_queued_twin_is_superseded,
    two_workers_run_each_job_exactly_once,
    a_killed_workers_job_runs_again_after_its_lease,
    shutdown_finishes_or_releases_running_jobs,
    workers_retry_and_survive_panics,
    a_handler_whose_lease_is_taken_is_stopped,
    queued_jobs_and_expired_leases_come_oldest_first,
);

const LEASE: Duration = Duration::from_secs(300);

fn job(n: i64) -> NewJob {
    NewJob::new(JobKind::HANDLE_PUSH, serde_json::json!({ "n": n })).unwrap()
}

async fn a_key_is_queued_once_and_never_runs_twice_at_once(db: TestDb) {
    let s = &db.store;
    let a = s
        .enqueue(&NewJob::scan_repo(42, "push").at(t0() + secs(60)), t0())
        .await
        .unwrap();
    // Same key, sooner: the queued job is reused and moved earlier.
    let b = s
        .enqueue(&NewJob::scan_repo(42, "trigger"), t0())
        .await
        .unwrap();
    assert_eq!(a, b);
    let j = s.job(a).await.unwrap().unwrap();
    assert_eq!(j.run_at, t0());
    assert_eq!(j.payload.0["reason"], "push", "the first payload stays");
    // Another key is another job.
    let other = s
        .enqueue(&NewJob::scan_repo(43, "push"), t0())
        .await
        .unwrap();
    assert_ne!(other, a);

    let leased = s.lease_jobs("w1", 10, LEASE, t0()).await.unwrap();
    assert_eq!(leased.len(), 2);
    // While 42 runs, a new request for it queues behind it...
    let c = s
        .enqueue(&NewJob::scan_repo(42, "push"), t0())
        .await
        .unwrap();
    assert_ne!(c, a);
    // ...and is not leased until the running one ends.
    assert!(
        s.lease_jobs("w2", 10, LEASE, t0())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.complete_job(a, "w1", t0() + secs(1)).await.unwrap());
    let next = s.lease_jobs("w2", 10, LEASE, t0() + secs(1)).await.unwrap();
    assert_eq!(next.iter().map(|j| j.id).collect::<Vec<_>>(), vec![c]);
    // Jobs without a key never collapse.
    let x = s.enqueue(&job(1), t0()).await.unwrap();
    let y = s.enqueue(&job(1), t0()).await.unwrap();
    assert_ne!(x, y);
}

async fn failures_back_off_then_die(db: TestDb) {
    let s = &db.store;
    let policy = RetryPolicy {
        base: Duration::from_secs(10),
        max: Duration::from_secs(25),
    };
    let id = s.enqueue(&job(1).max_attempts(3), t0()).await.unwrap();
    let mut now = t0();
    // Attempt n waits between half and all of min(25s, 10s * 2^(n-1)).
    for (attempt, (lo, hi)) in [(1, (5, 10)), (2, (10, 20))] {
        let j = s.lease_jobs("w", 1, LEASE, now).await.unwrap().remove(0);
        assert_eq!((j.id, j.attempts), (id, attempt));
        let err = JobError::Transient(format!("boom {attempt}"));
        let FailOutcome::Retry { at } = s.fail_job(&j, "w", &err, &policy, now).await.unwrap()
        else {
            panic!("should retry");
        };
        assert!(
            at >= now + secs(lo) && at <= now + secs(hi),
            "{at} vs {now}"
        );
        assert!(
            s.lease_jobs("w", 1, LEASE, at - secs(1))
                .await
                .unwrap()
                .is_empty()
        );
        let queued = s.job(id).await.unwrap().unwrap();
        assert_eq!(queued.state, JobState::Queued);
        assert_eq!(queued.last_error, Some(format!("boom {attempt}")));
        now = at;
    }
    let j = s.lease_jobs("w", 1, LEASE, now).await.unwrap().remove(0);
    assert_eq!(j.attempts, 3);
    let err = JobError::Transient("boom 3".into());
    assert_eq!(
        s.fail_job(&j, "w", &err, &policy, now).await.unwrap(),
        FailOutcome::Dead
    );
    let dead = s.list_jobs(Some(JobState::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("boom 3"));
    assert!(
        s.lease_jobs("w", 1, LEASE, now + secs(3600))
            .await
            .unwrap()
            .is_empty()
    );

    // A permanent error is dead at once; an operator can queue it again.
    let id2 = s.enqueue(&job(2), now).await.unwrap();
    let j = s.lease_jobs("w", 1, LEASE, now).await.unwrap().remove(0);
    assert_eq!(j.id, id2);
    let err = JobError::Permanent("unknown kind".into());
    assert_eq!(
        s.fail_job(&j, "w", &err, &policy, now).await.unwrap(),
        FailOutcome::Dead
    );
    assert_eq!(s.job_counts().await.unwrap().dead, 2);
    assert!(s.retry_dead_job(id2, now).await.unwrap());
    let j = s.lease_jobs("w", 1, LEASE, now).await.unwrap().remove(0);
    assert_eq!((j.id, j.attempts), (id2, 1));
    // RetryAt is honoured exactly.
    let at = now + secs(777);
    let err = JobError::RetryAt {
        message: "rate limited".into(),
        at,
    };
    assert_eq!(
        s.fail_job(&j, "w", &err, &policy, now).await.unwrap(),
        FailOutcome::Retry { at }
    );
}

#[test]
fn backoff_grows_with_jitter_up_to_the_cap() {
    let p = RetryPolicy {
        base: Duration::from_secs(10),
        max: Duration::from_secs(300),
    };
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let d = p.delay(1);
        assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(10));
        seen.insert(d);
        let d = p.delay(4);
        assert!(d >= Duration::from_secs(40) && d <= Duration::from_secs(80));
        let d = p.delay(30);
        assert!(d >= Duration::from_secs(150) && d <= Duration::from_secs(300));
    }
    assert!(seen.len() > 50, "jittered");
}

async fn expired_leases_are_leased_again(db: TestDb) {
    let s = &db.store;
    let id = s.enqueue(&job(1), t0()).await.unwrap();
    let lease = Duration::from_secs(60);
    let j = s.lease_jobs("w1", 5, lease, t0()).await.unwrap().remove(0);
    assert_eq!(j.lease_expires_at, Some(t0() + secs(60)));
    assert!(
        s.lease_jobs("w2", 5, lease, t0() + secs(59))
            .await
            .unwrap()
            .is_empty()
    );
    // The heartbeat keeps it.
    assert!(
        s.extend_lease(id, "w1", lease, t0() + secs(50))
            .await
            .unwrap()
    );
    assert!(
        s.lease_jobs("w2", 5, lease, t0() + secs(100))
            .await
            .unwrap()
            .is_empty()
    );
    // Without one, it expires and another worker takes it.
    let j2 = s
        .lease_jobs("w2", 5, lease, t0() + secs(111))
        .await
        .unwrap();
    assert_eq!(j2.len(), 1);
    assert_eq!((j2[0].id, j2[0].attempts), (id, 2));
    assert_eq!(j2[0].lease_owner.as_deref(), Some("w2"));
    // The first worker's late outcome is refused.
    assert!(!s.complete_job(id, "w1", t0() + secs(112)).await.unwrap());
    assert!(
        !s.extend_lease(id, "w1", lease, t0() + secs(112))
            .await
            .unwrap()
    );
    assert!(s.complete_job(id, "w2", t0() + secs(113)).await.unwrap());
    let done = s.job(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.finished_at, Some(t0() + secs(113)));
}

/// One order over both kinds of due work: by `run_at`, then id, whether a job is queued or
/// its lease expired; not yet due and running keys wait (SQLite asks the two kinds apart).
async fn queued_jobs_and_expired_leases_come_oldest_first(db: TestDb) {
    let s = &db.store;
    let lease = Duration::from_secs(60);
    let expired = s.enqueue(&job(1).at(t0() + secs(20)), t0()).await.unwrap();
    assert_eq!(
        s.lease_jobs("w1", 1, lease, t0() + secs(20)).await.unwrap()[0].id,
        expired
    );
    let late = s.enqueue(&job(2).at(t0() + secs(30)), t0()).await.unwrap();
    let early = s.enqueue(&job(3).at(t0() + secs(10)), t0()).await.unwrap();
    let future = s.enqueue(&job(4).at(t0() + secs(500)), t0()).await.unwrap();
    let keyed = s
        .enqueue(&job(5).unique("k").at(t0() + secs(5)), t0())
        .await
        .unwrap();
    let running = s.lease_jobs("w1", 1, lease, t0() + secs(90)).await.unwrap();
    assert_eq!(running[0].id, keyed);
    // Its twin, queued while it runs, waits for it.
    let twin = s.enqueue(&job(6).unique("k"), t0()).await.unwrap();
    // At 100 s the first lease (until 80 s) has expired; `keyed`'s (until 150 s) has not.
    let mut order = Vec::new();
    for worker in ["w2", "w3", "w4", "w5"] {
        let got = s
            .lease_jobs(worker, 1, lease, t0() + secs(100))
            .await
            .unwrap();
        order.extend(got.into_iter().map(|j| j.id));
    }
    assert_eq!(
        order,
        [early, expired, late],
        "future {future}, twin {twin}"
    );
}

async fn a_job_that_kills_its_workers_dies(db: TestDb) {
    let s = &db.store;
    let id = s.enqueue(&job(1).max_attempts(2), t0()).await.unwrap();
    let lease = Duration::from_secs(10);
    s.lease_jobs("w1", 1, lease, t0()).await.unwrap();
    s.lease_jobs("w2", 1, lease, t0() + secs(20)).await.unwrap();
    // Second lease expired on the last attempt: dead, not leased a third time.
    assert!(
        s.lease_jobs("w3", 1, lease, t0() + secs(40))
            .await
            .unwrap()
            .is_empty()
    );
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Dead);
    assert!(j.last_error.unwrap().contains("lease expired"));
}

async fn released_jobs_do_not_count_an_attempt(db: TestDb) {
    let s = &db.store;
    let id = s.enqueue(&job(1), t0()).await.unwrap();
    let j = s.lease_jobs("w1", 1, LEASE, t0()).await.unwrap().remove(0);
    assert!(matches!(
        s.release_job(&j, "w1", t0() + secs(5)).await.unwrap(),
        FailOutcome::Retry { .. }
    ));
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempts, j.lease_owner),
        (JobState::Queued, 0, None)
    );
    let j = s.lease_jobs("w2", 1, LEASE, t0() + secs(5)).await.unwrap();
    assert_eq!(j[0].attempts, 1);
}

async fn a_failed_job_with_a_queued_twin_is_superseded(db: TestDb) {
    let s = &db.store;
    let a = s.enqueue(&NewJob::scan_repo(1, "x"), t0()).await.unwrap();
    let j = s.lease_jobs("w", 1, LEASE, t0()).await.unwrap().remove(0);
    let b = s
        .enqueue(&NewJob::scan_repo(1, "y").at(t0() + secs(3600)), t0())
        .await
        .unwrap();
    let err = JobError::RetryAt {
        message: "later".into(),
        at: t0() + secs(60),
    };
    let out = s
        .fail_job(&j, "w", &err, &RetryPolicy::default(), t0())
        .await
        .unwrap();
    assert_eq!(out, FailOutcome::Superseded { by: b });
    assert_eq!(s.job(a).await.unwrap().unwrap().state, JobState::Done);
    // The twin now runs when the retry would have.
    assert_eq!(s.job(b).await.unwrap().unwrap().run_at, t0() + secs(60));
}

/// Counts runs per job id.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<i64, usize>>>);

impl Runs {
    fn record(&self, id: i64) {
        *self.0.lock().unwrap().entry(id).or_default() += 1;
    }
    fn get(&self, id: i64) -> usize {
        self.0.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
    fn all(&self) -> HashMap<i64, usize> {
        self.0.lock().unwrap().clone()
    }
}

fn opts(owner: &str, concurrency: usize, lease: Duration) -> WorkerOptions {
    WorkerOptions {
        concurrency,
        lease,
        poll_interval: Duration::from_millis(20),
        shutdown_grace: Duration::from_millis(200),
        owner: owner.to_string(),
        retry: RetryPolicy {
            base: Duration::from_millis(20),
            max: Duration::from_millis(40),
        },
    }
}

async fn wait_until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

async fn two_workers_run_each_job_exactly_once(db: TestDb) {
    let n = if db.store.backend() == Backend::Postgres {
        500
    } else {
        200
    };
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(db.store.enqueue(&job(i), SystemClock.now()).await.unwrap());
    }
    let runs = Runs::default();
    let by_worker: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for w in 0..2 {
        // Each worker is its own replica: its own pool, its own owner id.
        let store: Store = db.replica().await.unwrap();
        let (runs, by_worker) = (runs.clone(), by_worker.clone());
        let handler = move |j: Job| {
            let (runs, by_worker) = (runs.clone(), by_worker.clone());
            async move {
                runs.record(j.id);
                by_worker[w].fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
                Ok(())
            }
        };
        let worker = Worker::new(store, handler, clock(), opts(&format!("w{w}"), 4, LEASE));
        handles.push(tokio::spawn(worker.run(stop.clone())));
    }
    let s = db.store.clone();
    wait_until("all jobs done", 60, async || {
        s.job_counts().await.unwrap().done == n
    })
    .await;
    stop.cancel();
    for h in handles {
        h.await.unwrap();
    }
    let all = runs.all();
    assert_eq!(all.len(), ids.len());
    for id in &ids {
        assert_eq!(runs.get(*id), 1, "job {id}");
    }
    let c = s.job_counts().await.unwrap();
    assert_eq!((c.queued, c.running, c.dead), (0, 0, 0));
    let (a, b) = (
        by_worker[0].load(Ordering::Relaxed),
        by_worker[1].load(Ordering::Relaxed),
    );
    assert_eq!(a + b, n as usize);
    assert!(a > 0 && b > 0, "both workers took jobs: {a} + {b}");
}

async fn a_killed_workers_job_runs_again_after_its_lease(db: TestDb) {
    let id = db.store.enqueue(&job(1), SystemClock.now()).await.unwrap();
    let runs = Runs::default();
    let lease = Duration::from_millis(600);
    // Worker A takes the job and hangs; then the process "dies" (its task is aborted, so
    // no heartbeat, no release).
    let r = runs.clone();
    let hang = move |j: Job| {
        let r = r.clone();
        async move {
            r.record(j.id);
            std::future::pending::<()>().await;
            Ok(())
        }
    };
    let a = tokio::spawn(
        Worker::new(
            db.replica().await.unwrap(),
            hang,
            clock(),
            opts("a", 1, lease),
        )
        .run(CancellationToken::new()),
    );
    wait_until("A runs the job", 10, async || runs.get(id) == 1).await;
    a.abort();
    let _ = a.await;
    let held = db.store.job(id).await.unwrap().unwrap();
    assert_eq!(held.state, JobState::Running);
    assert_eq!(held.lease_owner.as_deref(), Some("a"));

    let r = runs.clone();
    let ok = move |j: Job| {
        let r = r.clone();
        async move {
            r.record(j.id);
            Ok(())
        }
    };
    let stop = CancellationToken::new();
    let started = tokio::time::Instant::now();
    let b = tokio::spawn(
        Worker::new(
            db.replica().await.unwrap(),
            ok,
            clock(),
            opts("b", 1, lease),
        )
        .run(stop.clone()),
    );
    let s = db.store.clone();
    wait_until("B finishes the job", 10, async || {
        s.job(id).await.unwrap().unwrap().state == JobState::Done
    })
    .await;
    stop.cancel();
    b.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for expiry"
    );
    assert_eq!(runs.get(id), 2);
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.attempts, 2);
}

async fn shutdown_finishes_or_releases_running_jobs(db: TestDb) {
    let quick = db.store.enqueue(&job(1), SystemClock.now()).await.unwrap();
    let slow = db.store.enqueue(&job(2), SystemClock.now()).await.unwrap();
    let started = Runs::default();
    let r = started.clone();
    let handler = move |j: Job| {
        let r = r.clone();
        async move {
            r.record(j.id);
            let n = j.payload.0["n"].as_i64().unwrap_or(0);
            // The quick job outlives the shutdown signal but not the grace period.
            let wait = if n == 1 { 100 } else { 60_000 };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            Ok(())
        }
    };
    let stop = CancellationToken::new();
    let w = tokio::spawn(
        Worker::new(db.store.clone(), handler, clock(), opts("w", 2, LEASE)).run(stop.clone()),
    );
    wait_until("both started", 10, async || {
        started.get(quick) == 1 && started.get(slow) == 1
    })
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), w)
        .await
        .expect("shutdown within the grace period")
        .unwrap();
    let s = &db.store;
    assert_eq!(s.job(quick).await.unwrap().unwrap().state, JobState::Done);
    let j = s.job(slow).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Queued, 0), "released");
    // And nothing new was leased after the signal.
    assert_eq!(started.all().len(), 2);
}

async fn workers_retry_and_survive_panics(db: TestDb) {
    let flaky = db.store.enqueue(&job(1), SystemClock.now()).await.unwrap();
    let panicky = db.store.enqueue(&job(2), SystemClock.now()).await.unwrap();
    let bad = db
        .store
        .enqueue(&job(3).max_attempts(2), SystemClock.now())
        .await
        .unwrap();
    let runs = Runs::default();
    let r = runs.clone();
    let handler = move |j: Job| {
        let r = r.clone();
        async move {
            r.record(j.id);
            match j.payload.0["n"].as_i64() {
                Some(1) if j.attempts < 3 => Err(JobError::Transient("flaky".into())),
                Some(2) if j.attempts < 2 => panic!("handler bug"),
                Some(3) => Err(JobError::Transient("always".into())),
                _ => Ok(()),
            }
        }
    };
    let stop = CancellationToken::new();
    let w = tokio::spawn(
        Worker::new(db.store.clone(), handler, clock(), opts("w", 2, LEASE)).run(stop.clone()),
    );
    let s = db.store.clone();
    wait_until("settled", 20, async || {
        let c = s.job_counts().await.unwrap();
        c.done == 2 && c.dead == 1
    })
    .await;
    stop.cancel();
    w.await.unwrap();
    assert_eq!(runs.get(flaky), 3);
    assert_eq!(runs.get(panicky), 2);
    assert_eq!(runs.get(bad), 2);
    let dead = s.job(bad).await.unwrap().unwrap();
    assert_eq!(dead.last_error.as_deref(), Some("always"));
    let p = s.job(panicky).await.unwrap().unwrap();
    assert!(p.last_error.unwrap().contains("panicked"));
}

/// Another worker took the job (this one stalled past its lease): the handler is stopped
/// at the next heartbeat, its writes are refused, and it records nothing.
async fn a_handler_whose_lease_is_taken_is_stopped(db: TestDb) {
    let id = db.store.enqueue(&job(1), SystemClock.now()).await.unwrap();
    let lease = Duration::from_millis(300);
    /// Set when the handler's future is dropped (aborted) rather than finished.
    struct Dropped(Arc<AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(Mutex::new(None));
    let (d, r) = (dropped.clone(), refused.clone());
    let handler = move |_j: Job| {
        let (d, r) = (d.clone(), r.clone());
        async move {
            let _guard = Dropped(d);
            // Waits until a write would be refused, then keeps running as if it had not
            // noticed: only the worker can stop it now.
            loop {
                if let Err(e) = digestif::lease::ensure_held().await {
                    *r.lock().unwrap() = Some(e.to_string());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            std::future::pending::<()>().await;
            Ok(())
        }
    };
    let stop = CancellationToken::new();
    let a = tokio::spawn(
        Worker::new(
            db.replica().await.unwrap(),
            handler,
            clock(),
            opts("a", 1, lease),
        )
        .run(stop.clone()),
    );
    let s = db.store.clone();
    wait_until("A runs the job", 10, async || {
        s.job(id).await.unwrap().unwrap().lease_owner.as_deref() == Some("a")
    })
    .await;
    // B's clock is past A's lease: B takes the job, as after a pause of A.
    // (A renews often here, and PostgreSQL's SKIP LOCKED passes over a row being renewed:
    // B polls, as a worker does.)
    wait_until("B takes the job", 10, async || {
        let later = SystemClock.now() + secs(60);
        s.lease_jobs("b", 1, LEASE, later).await.unwrap().len() == 1
    })
    .await;
    wait_until("A's handler is stopped", 10, async || {
        dropped.load(Ordering::Relaxed) == 1
    })
    .await;
    assert!(
        refused
            .lock()
            .unwrap()
            .as_deref()
            .is_some_and(|e| e.contains("lease lost")),
        "{:?}",
        refused.lock().unwrap()
    );
    stop.cancel();
    a.await.unwrap();
    // The job is B's: running, its attempt, nothing recorded by A.
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.lease_owner.as_deref(), Some("b"));
    assert_eq!(j.last_error, None);
}

/// Whether a plan (PostgreSQL's `EXPLAIN (FORMAT JSON)`) has a node of `node_type`.
fn plan_has(plan: &serde_json::Value, node_type: &str) -> bool {
    match plan {
        serde_json::Value::Object(o) => {
            o.get("Node Type").and_then(|t| t.as_str()) == Some(node_type)
                || o.values().any(|v| plan_has(v, node_type))
        }
        serde_json::Value::Array(a) => a.iter().any(|v| plan_has(v, node_type)),
        _ => false,
    }
}

/// A queue that filled up after its table was last analyzed (here: never, as on a new
/// database) is leased through the queued jobs' `(run_at, id)` index, not by reading and
/// sorting every queued job: the store has the table analyzed once enough jobs were
/// enqueued, instead of waiting for autovacuum. Before, the webhook bench's leases took
/// 4.4 ms each during a cycle, with this plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases_a_queue_that_filled_up_through_its_index() {
    let db = backends::db(Backend::Postgres).await;
    let s = &db.store;
    for n in 0..2_000 {
        s.enqueue(&job(n), t0() + secs(n % 600)).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let plan = s
            .lease_plan(t0() + secs(3600))
            .await
            .unwrap()
            .expect("a plan");
        let walks_index = !plan_has(&plan, "Bitmap Heap Scan") && !plan_has(&plan, "Seq Scan");
        if walks_index {
            assert!(plan_has(&plan, "Index Scan"), "{plan:#}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lease still reads every queued job: {plan:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And it leases the oldest job.
    let leased = s
        .lease_jobs("w", 1, LEASE, t0() + secs(3600))
        .await
        .unwrap();
    assert_eq!(leased[0].payload.0["n"], 0);
}
