//! Group commit of webhook deliveries (`store::deliveries`) on both backends: exactly one
//! "new" per delivery id, jobs coalesced as one transaction each would, a failing delivery
//! not failing the others, batch size 1 as before, and nothing lost when stopping.

#[path = "support/backends.rs"]
mod backends;

use std::collections::HashMap;

use backends::TestDb;
use chrono::{DateTime, TimeZone as _, Utc};
use digestif::store::{Backend, JobKind, JobState, NewDelivery, NewJob, Store, StoreError};

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, h, m, 0).unwrap()
}

fn delivery(id: &str, jobs: Vec<NewJob>) -> NewDelivery {
    NewDelivery {
        id: id.to_string(),
        event: "push".to_string(),
        action: None,
        jobs,
        now: t(9, 0),
    }
}

on_both!(
    a_batch_records_each_id_once,
    a_batch_enqueues_what_one_transaction_each_would,
    concurrent_deliveries_with_duplicates_are_new_once,
    a_failing_delivery_does_not_fail_the_others,
    batch_size_one_records_each_on_its_own,
    stopping_commits_or_refuses_what_was_handed_in,
);

async fn a_batch_records_each_id_once(db: TestDb) {
    let s = &db.store;
    assert!(
        s.record_delivery_and_enqueue("old", "push", None, &[], t(8, 0))
            .await
            .unwrap()
    );
    let batch = [
        delivery("a", vec![NewJob::scan_repo(42, "push")]),
        delivery(
            "b",
            vec![NewJob::scan_repo(42, "push"), NewJob::sync_installation(7)],
        ),
        delivery("a", vec![NewJob::scan_repo(43, "push")]),
        delivery("old", vec![NewJob::scan_repo(44, "push")]),
        delivery("c", vec![]),
    ];
    let refs: Vec<&NewDelivery> = batch.iter().collect();
    let fresh = s.record_deliveries(&refs).await.unwrap();
    assert_eq!(fresh, [true, true, false, false, true]);
    for id in ["a", "b", "c", "old"] {
        assert!(s.delivery_seen(id).await.unwrap(), "{id}");
    }
    // The scans of 42 coalesced; the redeliveries (a again, old) enqueued nothing.
    let keys = queued_keys(s).await;
    assert_eq!(keys, ["scan_repo:42", "sync_installation:7"]);
    // The same batch again: all known.
    assert_eq!(s.record_deliveries(&refs).await.unwrap(), [false; 5]);
}

async fn queued_keys(s: &Store) -> Vec<String> {
    let mut keys: Vec<String> = s
        .list_jobs(Some(JobState::Queued), 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|j| j.unique_key)
        .collect();
    keys.sort();
    keys
}

/// Jobs that share a key, one superseding, one later, a key already queued, jobs without a
/// key, deliveries handed in at different times: the batch leaves the same queue as one
/// transaction per delivery in arrival order.
async fn a_batch_enqueues_what_one_transaction_each_would(db: TestDb) {
    let other = backends::db(db.store.backend()).await;
    for s in [&db.store, &other.store] {
        // Queued before the batch: the batch's jobs of key 45 merge into it.
        let earlier = NewJob::scan_repo(45, "earlier")
            .at(t(12, 0))
            .max_attempts(2);
        s.enqueue(&earlier, t(8, 0)).await.unwrap();
    }
    let mut manual = NewJob::scan_repo(42, "manual");
    manual.supersedes = true;
    let mut late = NewJob::scan_repo(42, "late").at(t(11, 0));
    late.supersedes = true;
    let mut replaces_earlier = NewJob::scan_repo(45, "replaces").at(t(13, 0));
    replaces_earlier.supersedes = true;
    let unkeyed = || NewJob::new(JobKind::SCAN_REPO, serde_json::json!({"n": 1})).unwrap();
    let at = |mut d: NewDelivery, m: u32| {
        d.now = t(9, m);
        d
    };
    let batch = [
        // Ids in reverse order of arrival: the jobs still follow the arrival.
        at(
            delivery("z1", vec![NewJob::scan_repo(42, "push").at(t(10, 0))]),
            1,
        ),
        at(
            delivery(
                "y2",
                vec![NewJob::scan_repo(42, "push").at(t(9, 30)), unkeyed()],
            ),
            2,
        ),
        at(
            delivery(
                "x3",
                vec![
                    manual,
                    NewJob::scan_repo(43, "push").max_attempts(3),
                    NewJob::scan_repo(45, "keeps"),
                ],
            ),
            3,
        ),
        at(delivery("w4", vec![late, unkeyed()]), 4),
        at(
            delivery(
                "v5",
                vec![
                    replaces_earlier,
                    NewJob::scan_repo(43, "again").max_attempts(9),
                ],
            ),
            5,
        ),
        at(delivery("y2", vec![NewJob::scan_repo(44, "dup")]), 6),
    ];
    let refs: Vec<&NewDelivery> = batch.iter().collect();
    db.store.record_deliveries(&refs).await.unwrap();
    for d in &batch {
        other
            .store
            .record_delivery_and_enqueue(&d.id, &d.event, None, &d.jobs, d.now)
            .await
            .unwrap();
    }
    assert_eq!(queue(&db.store).await, queue(&other.store).await);
    let jobs = queue(&db.store).await;
    assert_eq!(jobs.len(), 5, "{jobs:#?}");
    // The last superseding scan's payload, the earliest time (the manual one's, x3's now),
    // created by the first, updated by the last.
    let j42 = &jobs[2];
    assert_eq!(j42.1.as_deref(), Some("scan_repo:42"));
    assert_eq!(j42.2["reason"], "late");
    assert_eq!((j42.3, j42.5, j42.6), (t(9, 3), t(9, 1), t(9, 4)));
    // The first's attempts; no superseding job, the first's payload.
    let j43 = &jobs[3];
    assert_eq!((j43.2["reason"].as_str(), j43.4), (Some("push"), 3));
    // The one queued before: created then, its attempts, the superseding payload.
    let j45 = &jobs[4];
    assert_eq!(j45.2["reason"], "replaces");
    assert_eq!((j45.3, j45.4, j45.5, j45.6), (t(9, 3), 2, t(8, 0), t(9, 5)));
    // Jobs without a key are each a job of their own.
    assert_eq!((jobs[0].1.as_deref(), jobs[1].1.as_deref()), (None, None));
}

type QueuedJob = (
    String,
    Option<String>,
    serde_json::Value,
    DateTime<Utc>,
    i32,
    DateTime<Utc>,
    DateTime<Utc>,
);

async fn queue(s: &Store) -> Vec<QueuedJob> {
    let mut jobs: Vec<_> = s
        .list_jobs(Some(JobState::Queued), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|j| {
            let j2 = (j.kind, j.unique_key, j.payload.0, j.run_at);
            (
                j2.0,
                j2.1,
                j2.2,
                j2.3,
                j.max_attempts,
                j.created_at,
                j.updated_at,
            )
        })
        .collect();
    jobs.sort_by(|a, b| (&a.1, a.5).cmp(&(&b.1, b.5)));
    jobs
}

/// 40 ids, each handed in three times at once, with scans of 8 repositories.
async fn concurrent_deliveries_with_duplicates_are_new_once(db: TestDb) {
    let (queue, committer) = db.store.delivery_queue(16);
    let mut tasks = Vec::new();
    for copy in 0..3 {
        for i in 0..40 {
            let queue = queue.clone();
            let d = delivery(&format!("d-{i}"), vec![NewJob::scan_repo(i % 8, "push")]);
            tasks.push(tokio::spawn(
                async move { (copy, i, queue.record(d).await) },
            ));
        }
    }
    let mut new_per_id: HashMap<i64, u32> = HashMap::new();
    for task in tasks {
        let (_, i, recorded) = task.await.unwrap();
        *new_per_id.entry(i).or_default() += u32::from(recorded.unwrap());
    }
    assert_eq!(new_per_id.len(), 40);
    assert!(new_per_id.values().all(|n| *n == 1), "{new_per_id:?}");
    for i in 0..40 {
        assert!(db.store.delivery_seen(&format!("d-{i}")).await.unwrap());
    }
    assert_eq!(queued_keys(&db.store).await.len(), 8);
    committer.finish().await;
}

/// A trigger refuses one delivery id: the deliveries batched with it are still recorded.
async fn a_failing_delivery_does_not_fail_the_others(db: TestDb) {
    let s = &db.store;
    match s.backend() {
        Backend::Sqlite => s
            .execute_raw(
                "CREATE TRIGGER poison BEFORE INSERT ON webhook_deliveries
                 WHEN NEW.delivery_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            )
            .await
            .unwrap(),
        Backend::Postgres => s
            .execute_raw(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN
                     IF NEW.delivery_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF;
                     RETURN NEW; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER poison BEFORE INSERT ON webhook_deliveries
                     FOR EACH ROW EXECUTE FUNCTION poison();",
            )
            .await
            .unwrap(),
    }
    // On its own, the batch fails as a whole and records nothing.
    let pair = [delivery("x", vec![]), delivery("poison", vec![])];
    assert!(s.record_deliveries(&[&pair[0], &pair[1]]).await.is_err());
    assert!(!s.delivery_seen("x").await.unwrap());

    let (queue, committer) = s.delivery_queue(64);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let id = if i == 30 {
            "poison".to_string()
        } else {
            format!("ok-{i}")
        };
        let d = delivery(&id, vec![NewJob::scan_repo(i, "push")]);
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move { (id, queue.record(d).await) }));
    }
    for task in tasks {
        let (id, recorded) = task.await.unwrap();
        if id == "poison" {
            assert!(recorded.is_err());
        } else {
            assert!(recorded.unwrap(), "{id}");
        }
    }
    assert!(!s.delivery_seen("poison").await.unwrap());
    assert_eq!(queued_keys(s).await.len(), 59);
    committer.finish().await;
}

async fn batch_size_one_records_each_on_its_own(db: TestDb) {
    let s = &db.store;
    let (queue, committer) = s.delivery_queue(1);
    let jobs = vec![NewJob::sync_installation(7), NewJob::scan_repo(42, "push")];
    assert!(queue.record(delivery("d-1", jobs.clone())).await.unwrap());
    assert!(!queue.record(delivery("d-1", jobs)).await.unwrap());
    assert_eq!(s.job_counts().await.unwrap().queued, 2);
    let (a, b) = tokio::join!(
        queue.record(delivery("d-3", vec![])),
        queue.record(delivery("d-3", vec![])),
    );
    assert!(a.unwrap() ^ b.unwrap());
    // A database that cannot be reached: an error for the caller (a 503), batched or not.
    let (batched, batched_committer) = s.delivery_queue(64);
    s.close().await;
    assert!(queue.record(delivery("d-4", vec![])).await.is_err());
    assert!(batched.record(delivery("d-5", vec![])).await.is_err());
    committer.finish().await;
    batched_committer.finish().await;
}

/// Deliveries handed in while the committer stops are committed, or refused: none is
/// answered "recorded" without being in the database, and later ones are refused.
async fn stopping_commits_or_refuses_what_was_handed_in(db: TestDb) {
    let (queue, committer) = db.store.delivery_queue(8);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let queue = queue.clone();
        let id = format!("s-{i}");
        let d = delivery(&id, vec![]);
        tasks.push(tokio::spawn(async move { (id, queue.record(d).await) }));
    }
    tokio::task::yield_now().await;
    committer.finish().await;
    for task in tasks {
        let (id, recorded) = task.await.unwrap();
        match recorded {
            Ok(fresh) => {
                assert!(fresh, "{id}");
                assert!(db.store.delivery_seen(&id).await.unwrap(), "{id}");
            }
            Err(e) => assert!(matches!(e, StoreError::Stopped), "{id}: {e}"),
        }
    }
    let late = queue.record(delivery("late", vec![])).await;
    assert!(matches!(late, Err(StoreError::Stopped)), "{late:?}");
    assert!(!db.store.delivery_seen("late").await.unwrap());
}
