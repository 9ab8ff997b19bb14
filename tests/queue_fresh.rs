//! A scan a person asks for stays "fresh" when the queue merges it with a routine scan of
//! the same repository that is already waiting, on both backends.

#[path = "support/backends.rs"]
mod backends;

use backends::TestDb;
use chrono::{TimeZone as _, Utc};
use digestif::jobs::Work;
use digestif::store::NewJob;

on_both!(a_persons_scan_keeps_its_freshness_when_merged_with_a_queued_one);

fn scan(reason: &str, fresh: bool) -> NewJob {
    Work::ScanRepo {
        repository_id: 42,
        reason: reason.into(),
        fresh,
    }
    .to_job()
}

async fn a_persons_scan_keeps_its_freshness_when_merged_with_a_queued_one(db: TestDb) {
    let s = &db.store;
    let t0 = Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap();
    let work = |id: i64| async move {
        let j = s.job(id).await.unwrap().unwrap();
        Work::from_job(&j.kind, &j.payload.0).unwrap()
    };
    // The scheduler queued a routine scan; then someone runs `digestif trigger`.
    let a = s.enqueue(&scan("schedule", false), t0).await.unwrap();
    let b = s.enqueue(&scan("trigger", true), t0).await.unwrap();
    assert_eq!(a, b, "still one queued scan per repository");
    assert_eq!(
        work(a).await,
        Work::ScanRepo {
            repository_id: 42,
            reason: "trigger".into(),
            fresh: true,
        }
    );
    // A push arrives before it runs: the person's request is not undone.
    let c = s.enqueue(&scan("push", false), t0).await.unwrap();
    assert_eq!(c, a);
    assert!(matches!(work(a).await, Work::ScanRepo { fresh: true, .. }));
    // Routine scans merge as before: the first payload stays.
    let d = s
        .enqueue(&NewJob::scan_repo(43, "schedule"), t0)
        .await
        .unwrap();
    let e = s.enqueue(&NewJob::scan_repo(43, "push"), t0).await.unwrap();
    assert_eq!(d, e);
    assert_eq!(
        s.job(d).await.unwrap().unwrap().payload.0["reason"],
        "schedule"
    );
}
