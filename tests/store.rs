//! The store on both backends: every test runs on a temporary SQLite file and on a fresh
//! PostgreSQL schema (127.0.0.1:5432, database `test`, or DIGESTIF_TEST_POSTGRES_URL).

#[path = "support/backends.rs"]
mod backends;

use std::collections::BTreeMap;

use backends::TestDb;
use chrono::{DateTime, TimeZone as _, Utc};
use digestif::plan::{PrState, UpdateKey};
use digestif::schedule::next_scan_at;
use digestif::store::{
    Backend, IgnoreSource, JobState, NewIgnore, NewJob, NewRepository, PrStatus, PrUpsert,
    RepoConfigUpdate, Store, StoreError, TagAnswer, TagClaim, TagFreshness, TagKey,
};
use sqlx::Connection as _;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, h, m, 0).unwrap()
}

on_both!(
    upgrades_data_from_every_previous_version,
    installations_and_repositories,
    deleting_an_installation_forgets_its_repositories,
    repo_config_sets_the_schedule,
    a_repository_keeps_its_slot_until_its_schedule_changes,
    references_are_replaced,
    first_seen_time_of_a_digest_is_kept,
    pull_requests,
    ignores,
    redelivered_webhooks_enqueue_nothing,
    status_page_listings,
    shared_tag_answers_are_claimed_by_one_replica,
);

async fn repo(store: &Store, id: i64, name: &str) {
    store
        .upsert_installation(7, "octo", "Organization", t(8, 0))
        .await
        .unwrap();
    store
        .upsert_repository(
            &NewRepository {
                id,
                installation_id: 7,
                full_name: name,
                default_branch: Some("main"),
                archived: None,
            },
            t(8, 0),
        )
        .await
        .unwrap();
}

/// SQLite plans with a bare `LIMIT $n` or `OFFSET $n` parameter's value and so re-prepares
/// the statement every time it is bound (found profiling the job lease under webhook
/// load); the store writes `CAST($n AS BIGINT)` instead (see the store's conventions).
#[test]
fn no_statement_limits_by_a_bare_parameter() {
    let mut found = Vec::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for w in words.windows(2) {
                if matches!(w[0], "LIMIT" | "OFFSET") && w[1].starts_with('$') {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "bare LIMIT/OFFSET parameters:\n{}",
        found.join("\n")
    );
}

#[test]
fn migration_sets_stay_in_step() {
    let [(_, sqlite), (_, postgres)] = Store::migrators();
    let versions = |m: &sqlx::migrate::Migrator| {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(sqlite), versions(postgres));
    assert!(versions(sqlite).len() >= 2, "{:?}", versions(sqlite));
    // Versions are consecutive from 1, so "the previous version" is always v - 1.
    for (i, (v, _)) in versions(sqlite).iter().enumerate() {
        assert_eq!(*v, i as i64 + 1);
    }
}

/// Seed data written with the schema of each version, in SQL both backends accept.
fn seed_for_version(v: i64) -> &'static str {
    match v {
        1 => {
            "INSERT INTO installations (id, account_login, account_type, created_at, updated_at)
               VALUES (7, 'octo', 'Organization', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00');
             INSERT INTO repositories (id, installation_id, full_name, default_branch, schedule,
               timezone, next_scan_at, created_at, updated_at)
               VALUES (42, 7, 'octo/app', 'main', 'weekly', 'Europe/Berlin',
                 '2026-01-02T00:00:00+00:00', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00');
             INSERT INTO pull_requests (repository_id, number, branch, state, head_sha, updates,
               created_at, updated_at)
               VALUES (42, 5, 'digestif/all', 'open', 'abc',
                 '[{\"file\":\"Dockerfile\",\"image\":\"docker.io/library/nginx\",\"tag\":\"1\",\"old\":\"sha256:aa\",\"new\":\"sha256:bb\"}]',
                 '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00');
             INSERT INTO ignores (repository_id, image, tag, reason, source, created_at)
               VALUES (42, 'docker.io/library/redis', NULL, 'pinned on purpose', 'command',
                 '2026-01-01T00:00:00+00:00');
             INSERT INTO jobs (kind, payload, unique_key, state, run_at, attempts, max_attempts,
               created_at, updated_at)
               VALUES ('scan_repo', '{\"repository_id\":42}', 'scan_repo:42', 'queued',
                 '2026-01-01T00:00:00+00:00', 0, 8, '2026-01-01T00:00:00+00:00',
                 '2026-01-01T00:00:00+00:00');
             INSERT INTO webhook_deliveries (delivery_id, event, action, received_at)
               VALUES ('d-1', 'push', NULL, '2026-01-01T00:00:00+00:00');"
        }
        _ => "",
    }
}

async fn upgrades_data_from_every_previous_version(fresh: TestDb) {
    // A database at version 0 (nothing), brought up one version at a time with data
    // seeded at each step, then read through the current API.
    let backend = fresh.store.backend();
    drop(fresh);
    let db = TestDb::new(backend, false).await.unwrap();
    let store = &db.store;
    let versions: Vec<i64> = store.migrator().iter().map(|m| m.version).collect();
    for v in &versions {
        store.migrate_to(*v).await.unwrap();
        let seed = seed_for_version(*v);
        if !seed.is_empty() {
            store.execute_raw(seed).await.unwrap();
        }
    }
    assert_eq!(store.applied_migrations().await.unwrap(), versions);
    // Migrating again is a no-op.
    store.migrate().await.unwrap();

    let inst = store.installation(7).await.unwrap().unwrap();
    assert_eq!(inst.account_login, "octo");
    let r = store.repository(42).await.unwrap().unwrap();
    assert_eq!(r.schedule, "weekly");
    assert_eq!(r.timezone, "Europe/Berlin");
    assert_eq!(r.dashboard_issue, None);
    assert!(!r.archived);
    let pr = store.pr_by_number(42, 5).await.unwrap().unwrap();
    assert!(!pr.human_edited && !pr.handoff_notified);
    assert!(pr.base_blobs.0.is_empty());
    assert_eq!(pr.updates.0.len(), 1);
    assert_eq!(pr.updates.0[0].new, "sha256:bb");
    assert_eq!(pr.to_existing().state, PrState::Open);
    // The version-2 columns work on version-1 rows.
    assert!(store.claim_pr_handoff_notice(42, 5, t(9, 0)).await.unwrap());
    let ignores = store.ignores_for_repo(42).await.unwrap();
    assert_eq!(ignores[0].source, IgnoreSource::Command);
    let jobs = store.list_jobs(Some(JobState::Queued), 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload.0["repository_id"], 42);
    assert!(store.delivery_seen("d-1").await.unwrap());
}

async fn installations_and_repositories(db: TestDb) {
    let s = &db.store;
    let i = s
        .upsert_installation(7, "octo", "Organization", t(8, 0))
        .await
        .unwrap();
    assert_eq!((i.id, i.suspended_at, i.deleted_at), (7, None, None));
    assert!(
        s.set_installation_suspended(7, true, t(8, 1))
            .await
            .unwrap()
    );
    assert_eq!(
        s.installation(7).await.unwrap().unwrap().suspended_at,
        Some(t(8, 1))
    );
    assert!(
        s.set_installation_suspended(7, false, t(8, 2))
            .await
            .unwrap()
    );
    assert!(
        !s.set_installation_suspended(99, true, t(8, 2))
            .await
            .unwrap()
    );

    let new = NewRepository {
        id: 42,
        installation_id: 7,
        full_name: "octo/App",
        default_branch: Some("main"),
        archived: None,
    };
    let r = s.upsert_repository(&new, t(9, 0)).await.unwrap();
    assert_eq!(
        r.next_scan_at,
        Some(t(9, 0)),
        "a new repository is due at once"
    );
    assert_eq!((r.schedule.as_str(), r.timezone.as_str()), ("daily", "UTC"));
    assert!(!r.archived);
    // An event without the default branch keeps it; a later sighting does not reschedule.
    let r = s
        .upsert_repository(
            &NewRepository {
                default_branch: None,
                archived: Some(true),
                ..new
            },
            t(10, 0),
        )
        .await
        .unwrap();
    assert_eq!(r.default_branch.as_deref(), Some("main"));
    assert!(r.archived);
    assert_eq!(r.next_scan_at, Some(t(9, 0)));
    assert_eq!(r.updated_at, t(10, 0));

    let found = s
        .repository_by_full_name("OCTO/app")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, 42);
    assert!(
        s.rename_repository(42, "octo/renamed", t(11, 0))
            .await
            .unwrap()
    );
    assert!(
        s.repository_by_full_name("octo/app")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.repository_by_full_name("octo/renamed")
            .await
            .unwrap()
            .unwrap()
            .id,
        42
    );
    assert!(
        s.set_repository_archived(42, false, t(11, 0))
            .await
            .unwrap()
    );
    assert_eq!(s.repositories_of_installation(7).await.unwrap().len(), 1);
    assert!(s.remove_repository(42).await.unwrap());
    assert!(!s.remove_repository(42).await.unwrap());
    assert!(s.repository(42).await.unwrap().is_none());
}

async fn deleting_an_installation_forgets_its_repositories(db: TestDb) {
    let s = &db.store;
    repo(s, 42, "octo/app").await;
    s.upsert_pr(
        &PrUpsert {
            repository_id: 42,
            number: 1,
            branch: "digestif/all",
            state: PrStatus::Open,
            head_sha: None,
            base_sha: None,
            updates: &[],
            base_blobs: &BTreeMap::new(),
            details_pending: false,
        },
        t(9, 0),
    )
    .await
    .unwrap();
    assert!(s.mark_installation_deleted(7, t(10, 0)).await.unwrap());
    let i = s.installation(7).await.unwrap().unwrap();
    assert_eq!(i.deleted_at, Some(t(10, 0)));
    assert!(s.repository(42).await.unwrap().is_none());
    assert!(s.prs_for_repo(42).await.unwrap().is_empty());
    // Installing again revives it.
    let i = s
        .upsert_installation(7, "octo", "Organization", t(11, 0))
        .await
        .unwrap();
    assert_eq!(i.deleted_at, None);
    assert_eq!(s.list_installations().await.unwrap().len(), 1);
}

async fn repo_config_sets_the_schedule(db: TestDb) {
    let s = &db.store;
    repo(s, 42, "octo/app").await;
    let text = "schedule: \"0 6 * * *\"\ntimezone: Europe/Berlin\n";
    let r = s
        .set_repo_config(
            42,
            &RepoConfigUpdate {
                text: Some(text),
                error: None,
                schedule: "0 6 * * *",
                timezone: "Europe/Berlin",
                next_scan_at: next_scan_at(42, "0 6 * * *", "Europe/Berlin", t(9, 0)),
            },
            t(9, 0),
        )
        .await
        .unwrap();
    // 06:00 in Berlin in May is 04:00 UTC: next is tomorrow.
    let tomorrow = Utc.with_ymd_and_hms(2026, 5, 5, 4, 0, 0).unwrap();
    assert_eq!(r.next_scan_at, Some(tomorrow));
    assert_eq!(
        r.config_hash.as_deref(),
        Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text)).as_str())
    );
    // The same schedule again keeps the slot; an error is recorded with it.
    let r = s
        .set_repo_config(
            42,
            &RepoConfigUpdate {
                text: Some("bad: ["),
                error: Some("line 1: bad"),
                schedule: "0 6 * * *",
                timezone: "Europe/Berlin",
                next_scan_at: next_scan_at(42, "0 6 * * *", "Europe/Berlin", t(12, 0)),
            },
            t(12, 0),
        )
        .await
        .unwrap();
    assert_eq!(r.next_scan_at, Some(tomorrow));
    assert_eq!(r.config_error.as_deref(), Some("line 1: bad"));
    // A new schedule is computed from now.
    let r = s
        .set_repo_config(
            42,
            &RepoConfigUpdate {
                text: None,
                error: None,
                schedule: "*/15 * * * *",
                timezone: "UTC",
                next_scan_at: next_scan_at(42, "*/15 * * * *", "UTC", t(12, 1)),
            },
            t(12, 1),
        )
        .await
        .unwrap();
    assert_eq!(r.next_scan_at, Some(t(12, 15)));
    assert_eq!(r.config_text, None);
    assert_eq!(r.config_hash, None);
    assert!(matches!(
        s.set_repo_config(
            99,
            &RepoConfigUpdate {
                text: None,
                error: None,
                schedule: "daily",
                timezone: "UTC",
                next_scan_at: next_scan_at(99, "daily", "UTC", t(12, 0)),
            },
            t(12, 0)
        )
        .await,
        Err(StoreError::NoSuchRepository(99))
    ));
    assert!(
        s.record_scan_result(42, "error", Some("registry timeout"), t(13, 0))
            .await
            .unwrap()
    );
    let r = s.repository(42).await.unwrap().unwrap();
    assert_eq!(r.last_scan_at, Some(t(13, 0)));
    assert_eq!(r.last_scan_status.as_deref(), Some("error"));
    assert_eq!(r.last_error.as_deref(), Some("registry timeout"));
}

/// The caller passes the next time of the schedule it records; the store takes it only
/// when the schedule or time zone changed, or no next scan is set.
async fn a_repository_keeps_its_slot_until_its_schedule_changes(db: TestDb) {
    let s = &db.store;
    repo(s, 42, "octo/app").await;
    let set = |schedule: &'static str, timezone: &'static str, next: DateTime<Utc>| async move {
        let update = RepoConfigUpdate {
            text: None,
            error: None,
            schedule,
            timezone,
            next_scan_at: next,
        };
        s.set_repo_config(42, &update, t(9, 0))
            .await
            .unwrap()
            .next_scan_at
    };
    // A new repository is due at once, on the default schedule (daily in UTC).
    assert_eq!(set("daily", "UTC", t(20, 0)).await, Some(t(8, 0)));
    assert_eq!(set("0 6 * * *", "UTC", t(21, 0)).await, Some(t(21, 0)));
    assert_eq!(
        set("0 6 * * *", "Europe/Berlin", t(22, 0)).await,
        Some(t(22, 0))
    );
    assert_eq!(
        set("0 6 * * *", "Europe/Berlin", t(23, 0)).await,
        Some(t(22, 0))
    );
    s.set_next_scan_at(42, None).await.unwrap();
    assert_eq!(
        set("0 6 * * *", "Europe/Berlin", t(23, 0)).await,
        Some(t(23, 0))
    );
}

async fn references_are_replaced(db: TestDb) {
    let s = &db.store;
    repo(s, 42, "octo/app").await;
    let one = digestif::store::ImageRefRecord {
        file: "Dockerfile".into(),
        line: 1,
        image: "docker.io/library/nginx".into(),
        tag: Some("1.27".into()),
        digest: Some("sha256:aa".into()),
        status: "stale".into(),
        current_digest: Some("sha256:bb".into()),
        message: None,
    };
    let two = digestif::store::ImageRefRecord {
        file: "compose.yaml".into(),
        line: 4,
        tag: None,
        digest: None,
        status: "skipped".into(),
        current_digest: None,
        message: Some("${IMAGE}".into()),
        ..one.clone()
    };
    s.replace_references(42, &[one.clone(), two.clone()], t(9, 0))
        .await
        .unwrap();
    assert_eq!(
        s.references_for_repo(42).await.unwrap(),
        vec![one.clone(), two.clone()],
        "ordered by file (bytes) and line"
    );
    s.replace_references(42, std::slice::from_ref(&one), t(10, 0))
        .await
        .unwrap();
    assert_eq!(s.references_for_repo(42).await.unwrap(), vec![one]);
    s.replace_references(42, &[], t(11, 0)).await.unwrap();
    assert!(s.references_for_repo(42).await.unwrap().is_empty());
}

async fn first_seen_time_of_a_digest_is_kept(db: TestDb) {
    let s = &db.store;
    let seen = |d: &'static str, at| {
        let s = s.clone();
        async move {
            s.record_digest_seen("docker.io", "library/nginx", "1.27", d, at)
                .await
                .unwrap()
        }
    };
    assert_eq!(seen("sha256:aa", t(9, 0)).await, t(9, 0));
    assert_eq!(seen("sha256:aa", t(10, 0)).await, t(9, 0));
    assert_eq!(seen("sha256:bb", t(11, 0)).await, t(11, 0));
    // Concurrent first sightings agree on one time.
    let (a, b) = tokio::join!(seen("sha256:cc", t(12, 0)), seen("sha256:cc", t(12, 1)));
    assert_eq!(a, b);
}

fn key(new: &str) -> UpdateKey {
    UpdateKey {
        file: "Dockerfile".into(),
        image: "docker.io/library/nginx".into(),
        tag: Some("1.27".into()),
        old: Some("sha256:aa".into()),
        new: new.into(),
    }
}

async fn pull_requests(db: TestDb) {
    let s = &db.store;
    repo(s, 42, "octo/app").await;
    let blobs = BTreeMap::from([("Dockerfile".to_string(), "b1".to_string())]);
    let updates = vec![key("sha256:bb")];
    let pr = s
        .upsert_pr(
            &PrUpsert {
                repository_id: 42,
                number: 3,
                branch: "digestif/all",
                state: PrStatus::Open,
                head_sha: Some("h1"),
                base_sha: Some("b1"),
                updates: &updates,
                base_blobs: &blobs,
                details_pending: false,
            },
            t(9, 0),
        )
        .await
        .unwrap();
    assert_eq!(pr.closed_at, None);
    let e = pr.to_existing();
    assert_eq!((e.number, e.branch.as_str()), (3, "digestif/all"));
    assert_eq!(e.updates, updates);
    assert_eq!(e.base_blobs, blobs);
    assert!(!e.human_edited && !e.handoff_notified);

    // Update in place: new digest, new head; created_at stays.
    let updates2 = vec![key("sha256:cc")];
    let pr = s
        .upsert_pr(
            &PrUpsert {
                repository_id: 42,
                number: 3,
                branch: "digestif/all",
                state: PrStatus::Open,
                head_sha: Some("h2"),
                base_sha: Some("b1"),
                updates: &updates2,
                base_blobs: &blobs,
                details_pending: false,
            },
            t(10, 0),
        )
        .await
        .unwrap();
    assert_eq!(pr.created_at, t(9, 0));
    assert_eq!(pr.updated_at, t(10, 0));
    assert_eq!(pr.head_sha.as_deref(), Some("h2"));
    assert_eq!(pr.updates.0, updates2);

    assert!(s.mark_pr_human_edited(42, 3, t(10, 5)).await.unwrap());
    assert!(!s.mark_pr_human_edited(42, 99, t(10, 5)).await.unwrap());
    assert!(s.claim_pr_handoff_notice(42, 3, t(10, 6)).await.unwrap());
    assert!(!s.claim_pr_handoff_notice(42, 3, t(10, 7)).await.unwrap());
    // The writer's next upsert does not undo the hand-off.
    let pr = s
        .upsert_pr(
            &PrUpsert {
                repository_id: 42,
                number: 3,
                branch: "digestif/all",
                state: PrStatus::Open,
                head_sha: Some("h3"),
                base_sha: None,
                updates: &updates2,
                base_blobs: &blobs,
                details_pending: false,
            },
            t(10, 8),
        )
        .await
        .unwrap();
    assert!(pr.human_edited && pr.handoff_notified);

    assert_eq!(s.open_prs(10).await.unwrap()[0].full_name, "octo/app");
    assert!(
        s.set_pr_state(42, 3, PrStatus::Closed, t(11, 0))
            .await
            .unwrap()
    );
    let pr = s.pr_by_number(42, 3).await.unwrap().unwrap();
    assert_eq!(pr.state, PrStatus::Closed);
    assert_eq!(pr.closed_at, Some(t(11, 0)));
    assert!(s.open_prs(10).await.unwrap().is_empty());

    // A new PR on the same branch: by_branch prefers the open one.
    s.upsert_pr(
        &PrUpsert {
            repository_id: 42,
            number: 9,
            branch: "digestif/all",
            state: PrStatus::Open,
            head_sha: None,
            base_sha: None,
            updates: &[],
            base_blobs: &BTreeMap::new(),
            details_pending: false,
        },
        t(12, 0),
    )
    .await
    .unwrap();
    s.upsert_pr(
        &PrUpsert {
            repository_id: 42,
            number: 2,
            branch: "digestif/all",
            state: PrStatus::Merged,
            head_sha: None,
            base_sha: None,
            updates: &[],
            base_blobs: &BTreeMap::new(),
            details_pending: false,
        },
        t(12, 0),
    )
    .await
    .unwrap();
    assert_eq!(
        s.pr_by_branch(42, "digestif/all")
            .await
            .unwrap()
            .unwrap()
            .number,
        9
    );
    assert!(s.pr_by_branch(42, "digestif/pin").await.unwrap().is_none());
    let all: Vec<i64> = s
        .prs_for_repo(42)
        .await
        .unwrap()
        .iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(all, vec![9, 3, 2]);
    assert_eq!(s.prs_created_since(42, t(11, 30)).await.unwrap(), 2);
    assert_eq!(s.prs_created_since(42, t(8, 0)).await.unwrap(), 3);
}

async fn ignores(db: TestDb) {
    let s = &db.store;
    repo(s, 42, "octo/app").await;
    let ig = NewIgnore {
        image: "docker.io/library/nginx",
        tag: Some("1.27"),
        digest: Some("sha256:bb"),
        reason: "PR #3 closed without merging",
        source: IgnoreSource::ClosedPr,
        created_by: Some("alice"),
    };
    assert!(s.add_ignore(42, &ig, t(9, 0)).await.unwrap());
    assert!(!s.add_ignore(42, &ig, t(9, 1)).await.unwrap(), "duplicate");
    let all_tags = NewIgnore {
        tag: None,
        digest: None,
        source: IgnoreSource::Command,
        ..ig
    };
    assert!(s.add_ignore(42, &all_tags, t(9, 2)).await.unwrap());
    assert!(
        !s.add_ignore(42, &all_tags, t(9, 3)).await.unwrap(),
        "NULLs dedupe"
    );
    let list = s.ignores_for_repo(42).await.unwrap();
    assert_eq!(list.len(), 2);
    let plan = list[0].to_plan();
    assert!(plan.matches("docker.io/library/nginx", Some("1.27"), "sha256:bb"));
    assert!(!plan.matches("docker.io/library/nginx", Some("1.27"), "sha256:cc"));
    assert_eq!(list[1].source, IgnoreSource::Command);
    assert_eq!(list[0].created_by.as_deref(), Some("alice"));
    assert_eq!(
        s.remove_ignores(42, "docker.io/library/nginx", Some("1.27"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.remove_ignores(42, "docker.io/library/nginx", None)
            .await
            .unwrap(),
        1
    );
    assert!(s.ignores_for_repo(42).await.unwrap().is_empty());
}

async fn redelivered_webhooks_enqueue_nothing(db: TestDb) {
    let s = &db.store;
    let jobs = [NewJob::sync_installation(7), NewJob::scan_repo(42, "push")];
    assert!(
        s.record_delivery_and_enqueue("d-1", "installation", Some("created"), &jobs, t(9, 0))
            .await
            .unwrap()
    );
    assert!(
        !s.record_delivery_and_enqueue("d-1", "installation", Some("created"), &jobs, t(9, 1))
            .await
            .unwrap()
    );
    assert_eq!(s.job_counts().await.unwrap().queued, 2);
    // A different delivery for the same repository does not queue a second scan.
    assert!(
        s.record_delivery_and_enqueue("d-2", "push", None, &jobs[1..], t(9, 2))
            .await
            .unwrap()
    );
    assert_eq!(s.job_counts().await.unwrap().queued, 2);
    // Concurrent redeliveries: exactly one wins.
    let (a, b) = tokio::join!(
        s.record_delivery_and_enqueue("d-3", "push", None, &[], t(9, 3)),
        s.record_delivery_and_enqueue("d-3", "push", None, &[], t(9, 3)),
    );
    assert!(a.unwrap() ^ b.unwrap());
    assert_eq!(s.prune(t(9, 3)).await.unwrap(), 2, "d-1 and d-2");
    assert!(!s.delivery_seen("d-1").await.unwrap());
    assert!(s.delivery_seen("d-3").await.unwrap());
}

async fn status_page_listings(db: TestDb) {
    let s = &db.store;
    repo(s, 42, "octo/b").await;
    repo(s, 43, "octo/a").await;
    let names: Vec<String> = s
        .list_repositories(10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.full_name)
        .collect();
    assert_eq!(names, ["octo/a", "octo/b"]);
    assert_eq!(s.list_repositories(10, 1).await.unwrap().len(), 1);
    assert!(s.recent_errors(10).await.unwrap().is_empty());
    s.record_scan_result(42, "error", Some("boom"), t(9, 0))
        .await
        .unwrap();
    s.set_repo_config(
        43,
        &RepoConfigUpdate {
            text: Some("x"),
            error: Some("bad config"),
            schedule: "daily",
            timezone: "UTC",
            next_scan_at: next_scan_at(43, "daily", "UTC", t(9, 0)),
        },
        t(9, 0),
    )
    .await
    .unwrap();
    let errors = s.recent_errors(10).await.unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].full_name, "octo/b", "scanned ones first");
    assert_eq!(errors[1].config_error.as_deref(), Some("bad config"));
    s.ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_default_file_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub-does-not-matter.db");
    let url = format!("sqlite://{}", path.display());
    let s = Store::connect(&url).await.unwrap();
    assert!(path.exists());
    assert_eq!(s.backend(), Backend::Sqlite);
    let versions: Vec<i64> = s.migrator().iter().map(|m| m.version).collect();
    assert_eq!(s.applied_migrations().await.unwrap(), versions);
    s.close().await;
    // Reopening a migrated file is fine and keeps the data.
    let s = Store::connect(&url).await.unwrap();
    s.upsert_installation(1, "a", "User", t(9, 0))
        .await
        .unwrap();
    s.close().await;
    let s = Store::connect(&url).await.unwrap();
    assert_eq!(s.list_installations().await.unwrap().len(), 1);
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let e = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert!(matches!(e, StoreError::UnsupportedUrl(_)), "{e}");
}

/// One replica claims a tag, the others wait; an answer is reused while fresh; a claim
/// lapses at its expiry and is taken over; a released claim is free again.
async fn shared_tag_answers_are_claimed_by_one_replica(db: TestDb) {
    let (a, b) = (&db.store, &db.replica().await.unwrap());
    let key = TagKey {
        registry: "r.example",
        repository: "lib/app",
        tag: "1",
    };
    let fresh = |now: DateTime<Utc>| TagFreshness {
        arrived_after: now - chrono::TimeDelta::minutes(5),
        asked_since: None,
    };
    let until = |now: DateTime<Utc>| now + chrono::TimeDelta::seconds(30);
    let claim = |s: &Store, owner: &'static str, now: DateTime<Utc>| {
        let s = s.clone();
        async move {
            s.claim_registry_tag(key, owner, fresh(now), now, until(now))
                .await
                .unwrap()
        }
    };
    let now = t(9, 0);
    let (x, y) = tokio::join!(claim(a, "a", now), claim(b, "b", now));
    let mut got = [x, y];
    got.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(got, [TagClaim::Claimed, TagClaim::Waiting]);
    // Whoever holds it, "a" claims again only when it is its own; "b" waits or holds.
    let holder = if claim(a, "a", now).await == TagClaim::Claimed {
        "a"
    } else {
        "b"
    };
    let (other, other_store) = if holder == "a" { ("b", b) } else { ("a", a) };
    assert_eq!(claim(other_store, other, now).await, TagClaim::Waiting);
    // The claim lapses: the other takes it over, then answers.
    let later = now + chrono::TimeDelta::seconds(31);
    assert_eq!(claim(other_store, other, later).await, TagClaim::Claimed);
    let answer = TagAnswer {
        digest: "sha256:aa".into(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    };
    other_store
        .answer_registry_tag(key, other, &answer, later, later)
        .await
        .unwrap();
    assert_eq!(
        claim(a, "a", later).await,
        TagClaim::Answer(answer.clone()),
        "a fresh answer is reused"
    );
    // A person's scan wants an answer to a request sent since it started.
    let since = TagFreshness {
        asked_since: Some(later + chrono::TimeDelta::seconds(1)),
        ..fresh(later)
    };
    assert_eq!(a.registry_tag(key, &since).await.unwrap(), None);
    // Past the TTL it is stale: claimed again, released on failure, free for the next.
    let stale = later + chrono::TimeDelta::minutes(5);
    assert_eq!(claim(b, "b", stale).await, TagClaim::Claimed);
    assert_eq!(claim(a, "a", stale).await, TagClaim::Waiting);
    b.release_registry_tag(key, "b").await.unwrap();
    assert_eq!(claim(a, "a", stale).await, TagClaim::Claimed);
    // An answer to an older request does not replace a newer one.
    let newer = TagAnswer {
        digest: "sha256:bb".into(),
        ..answer.clone()
    };
    a.answer_registry_tag(key, "a", &newer, stale, stale)
        .await
        .unwrap();
    b.answer_registry_tag(key, "b", &answer, later, stale)
        .await
        .unwrap();
    assert_eq!(
        a.registry_tag(key, &fresh(stale)).await.unwrap(),
        Some(newer)
    );
    // Pruning forgets answers that arrived before its cut-off.
    a.prune(stale + chrono::TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(a.forget_registry_tags().await.unwrap(), 0);
}
