//! Replicas sharing tag answers through PostgreSQL: resolvers on one database (each a
//! "replica" with its own pool and its own in-process cache) against a real CNCF
//! distribution registry, whose access log says how many manifest `HEAD`s arrived.

#[allow(dead_code)]
#[path = "../benches/support/access_log.rs"]
mod access_log;
#[path = "support/backends.rs"]
mod backends;
#[path = "support/registry.rs"]
mod registry_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::TestDb;
use chrono::{TimeDelta, TimeZone as _, Utc};
use digestif::clock::{Clock, ManualClock, SystemClock};
use digestif::reference::Reference;
use digestif::registry::{Resolver, Status};
use digestif::shared_tags::StoreSharedTags;
use digestif::store::{Backend, Store, TagFreshness, TagKey};
use registry_support::{Options, TestRegistry};

async fn registry() -> TestRegistry {
    TestRegistry::start_with(Options {
        access_log: true,
        ..Options::default()
    })
    .await
}

async fn postgres() -> TestDb {
    backends::db(Backend::Postgres).await
}

fn replica(reg: &TestRegistry, store: Store, clock: Arc<dyn Clock>) -> Resolver {
    let shared = StoreSharedTags::new(store, clock);
    Resolver::with_shared_tags(reg.resolver_config(), Arc::new(shared)).expect("resolver")
}

/// Manifest `HEAD`s by tag the registry logged after `from` (the log is written
/// asynchronously: wait until it stops growing).
async fn heads_by_tag(reg: &TestRegistry, from: u64) -> BTreeMap<String, usize> {
    let log = reg.access_log_path();
    let mut size = access_log::offset(&log);
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = access_log::offset(&log);
        if now == size {
            break;
        }
        size = now;
    }
    let mut heads = BTreeMap::new();
    for r in access_log::since(&log, from) {
        if r.method == "HEAD" && access_log::kind(&r.path) == "manifest by tag" {
            let tag = r.path.rsplit('/').next().unwrap_or_default().to_string();
            *heads.entry(tag).or_default() += 1;
        }
    }
    heads
}

fn reference(reg: &TestRegistry, tag: &str) -> Reference {
    Reference::parse(&reg.reference("app", tag, None)).expect("reference")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_asking_the_same_tags_at_once_send_one_head_per_tag() {
    let reg = registry().await;
    let tags: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    let mut digests = BTreeMap::new();
    for t in &tags {
        let image = reg
            .push_image("app", Some(t), "linux/amd64", t, false)
            .await;
        digests.insert(t.clone(), image.digest);
    }
    let db = postgres().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let replicas = [
        replica(&reg, db.store.clone(), clock.clone()),
        replica(&reg, db.replica().await.unwrap(), clock.clone()),
    ];
    let from = access_log::offset(&reg.access_log_path());
    // Every tag, three times from each replica, all at once.
    let mut tasks = Vec::new();
    for round in 0..3 {
        for (i, res) in replicas.iter().enumerate() {
            for t in &tags {
                let (res, r) = (res.clone(), reference(&reg, t));
                tasks.push(tokio::spawn(async move {
                    (round, i, res.resolve(&r, None).await)
                }));
            }
        }
    }
    for task in tasks {
        let (_, _, got) = task.await.unwrap();
        assert_eq!(got.status, Status::Unpinned, "{got:?}");
        let tag = got.current.as_ref().map(|d| d.to_string());
        assert!(digests.values().any(|d| Some(d) == tag.as_ref()), "{got:?}");
    }
    let heads = heads_by_tag(&reg, from).await;
    let want: BTreeMap<String, usize> = tags.iter().map(|t| (t.clone(), 1)).collect();
    assert_eq!(
        heads, want,
        "one manifest HEAD per tag between both replicas"
    );
    let sent: u64 = replicas.iter().map(Resolver::requests_sent).sum();
    assert_eq!(sent, tags.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_whose_replica_vanished_lapses_and_is_taken_over() {
    let reg = registry().await;
    let image = reg
        .push_image("app", Some("1"), "linux/amd64", "a", false)
        .await;
    let db = postgres().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap(),
    ));
    // A replica claimed the tag and died before it answered.
    let key = TagKey {
        registry: &reg.addr,
        repository: "app",
        tag: "1",
    };
    let now = clock.now();
    let fresh = TagFreshness {
        arrived_after: now - TimeDelta::minutes(5),
        asked_since: None,
    };
    let until = now + TimeDelta::seconds(30);
    db.store
        .claim_registry_tag(key, "dead", fresh, now, until)
        .await
        .unwrap();

    let from = access_log::offset(&reg.access_log_path());
    let res = replica(&reg, db.replica().await.unwrap(), clock.clone());
    let r = reference(&reg, "1");
    let task = tokio::spawn({
        let res = res.clone();
        async move { res.resolve(&r, None).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!task.is_finished(), "waits for the claimer's answer");
    assert_eq!(res.requests_sent(), 0);
    clock.advance(TimeDelta::seconds(30));
    let got = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the lapsed claim is taken over")
        .unwrap();
    assert_eq!(got.current.map(|d| d.to_string()), Some(image.digest));
    assert_eq!(heads_by_tag(&reg, from).await.get("1"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_are_reused_for_the_ttl_and_asked_again_after() {
    let reg = registry().await;
    let old = reg
        .push_image("app", Some("1"), "linux/amd64", "a", false)
        .await;
    let db = postgres().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap(),
    ));
    let ttl = reg.resolver_config().cache_ttl;
    let r = reference(&reg, "1");
    let from = access_log::offset(&reg.access_log_path());
    let current = |res: Resolver| {
        let r = r.clone();
        async move { res.resolve(&r, None).await.current.map(|d| d.to_string()) }
    };
    let first = replica(&reg, db.store.clone(), clock.clone());
    assert_eq!(current(first).await, Some(old.digest.clone()));
    // The tag moves; another replica (an empty cache of its own) within the TTL reuses the
    // shared answer without asking.
    let new = reg
        .push_image("app", Some("1"), "linux/amd64", "b", false)
        .await;
    clock.advance(TimeDelta::from_std(ttl).unwrap() - TimeDelta::seconds(1));
    let second = replica(&reg, db.replica().await.unwrap(), clock.clone());
    assert_eq!(current(second.clone()).await, Some(old.digest.clone()));
    assert_eq!(second.requests_sent(), 0);
    // A scan a person asked for wants an answer from after it started.
    let asked = second.resolve_since(&r, None, Some(Instant::now())).await;
    assert_eq!(
        asked.current.map(|d| d.to_string()),
        Some(new.digest.clone())
    );
    assert_eq!(second.requests_sent(), 1);
    // Past the TTL of the first answer, a third replica asks again... but the person's scan
    // refreshed the shared answer, so move past its TTL too.
    clock.advance(TimeDelta::from_std(ttl).unwrap() + TimeDelta::seconds(1));
    let third = replica(&reg, db.replica().await.unwrap(), clock.clone());
    assert_eq!(current(third.clone()).await, Some(new.digest.clone()));
    assert_eq!(
        third.requests_sent(),
        1,
        "a stale shared answer is asked again"
    );
    assert_eq!(heads_by_tag(&reg, from).await.get("1"), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_database_never_fails_a_resolution() {
    let reg = registry().await;
    let image = reg
        .push_image("app", Some("1"), "linux/amd64", "a", false)
        .await;
    let db = postgres().await;
    let broken = db.replica().await.unwrap();
    broken.close().await;
    let res = replica(&reg, broken, Arc::new(SystemClock));
    let got = res.resolve(&reference(&reg, "1"), None).await;
    assert_eq!(got.status, Status::Unpinned, "{got:?}");
    assert_eq!(got.current.map(|d| d.to_string()), Some(image.digest));
    assert_eq!(res.requests_sent(), 1);
}
