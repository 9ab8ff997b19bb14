//! Schedules: cron semantics, DST in Europe/Berlin, preset jitter, and the scheduler's
//! claim on both backends (once after downtime, once across concurrent replicas).

#[path = "support/backends.rs"]
mod backends;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use backends::TestDb;
use chrono::{DateTime, Datelike as _, TimeDelta, TimeZone as _, Timelike as _, Utc};
use chrono_tz::Europe::Berlin;
use digestif::clock::{Clock, ManualClock};
use digestif::jobs::Scheduler;
use digestif::schedule::{Schedule, ScheduleError, effective_expr, jitter, next_scan_at};
use digestif::store::{JobKind, JobState, NewRepository, RepoConfigUpdate, Store};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn runs(s: &Schedule, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from;
    for _ in 0..n {
        t = s.next_after(t).unwrap();
        out.push(t);
    }
    out
}

#[test]
fn berlin_spring_forward_runs_a_skipped_time_once_after_the_gap() {
    // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    let s = Schedule::parse("30 2 * * *", Berlin, 1).unwrap();
    assert_eq!(
        runs(&s, utc(2026, 3, 27, 12, 0), 3),
        vec![
            utc(2026, 3, 28, 1, 30), // 02:30 CET
            utc(2026, 3, 29, 1, 0),  // 03:00 CEST, the first instant after the gap
            utc(2026, 3, 30, 0, 30), // 02:30 CEST
        ]
    );
    // A time outside the gap is unaffected: 06:00 local on both sides.
    let s = Schedule::parse("0 6 * * *", Berlin, 1).unwrap();
    assert_eq!(
        runs(&s, utc(2026, 3, 28, 12, 0), 2),
        vec![utc(2026, 3, 29, 4, 0), utc(2026, 3, 30, 4, 0)]
    );
}

#[test]
fn berlin_fall_back_runs_a_repeated_time_once() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice (00:30 and 01:30 UTC).
    let s = Schedule::parse("30 2 * * *", Berlin, 1).unwrap();
    assert_eq!(
        runs(&s, utc(2026, 10, 24, 12, 0), 2),
        vec![
            utc(2026, 10, 25, 0, 30), // the first 02:30 (CEST) only
            utc(2026, 10, 26, 1, 30), // 02:30 CET the next day
        ]
    );
    // Starting between the two 02:30s does not run the second one.
    assert_eq!(
        s.next_after(utc(2026, 10, 25, 1, 0)).unwrap(),
        utc(2026, 10, 26, 1, 30)
    );
    // An hourly job runs every real hour, including both 02:00s.
    let s = Schedule::parse("0 * * * *", Berlin, 1).unwrap();
    assert_eq!(
        runs(&s, utc(2026, 10, 24, 23, 30), 4),
        vec![
            utc(2026, 10, 25, 0, 0), // 02:00 CEST
            utc(2026, 10, 25, 1, 0), // 02:00 CET
            utc(2026, 10, 25, 2, 0), // 03:00 CET
            utc(2026, 10, 25, 3, 0),
        ]
    );
}

#[test]
fn day_of_month_and_day_of_week_are_ored_like_vixie_cron() {
    // The 1st of the month or any Monday. 2026-06-01 is a Monday; June 8 the next one.
    let s = Schedule::parse("0 6 1 * 1", chrono_tz::UTC, 1).unwrap();
    let r = runs(&s, utc(2026, 6, 1, 7, 0), 5);
    let days: Vec<u32> = r.iter().map(|t| t.day()).collect();
    assert_eq!(days, vec![8, 15, 22, 29, 1]);
    assert_eq!(r[4].month(), 7);
    // Only one field restricted: that one decides.
    let s = Schedule::parse("0 6 * * 1-5", chrono_tz::UTC, 1).unwrap();
    let r = runs(&s, utc(2026, 6, 5, 7, 0), 2); // Friday after 06:00
    assert_eq!(r, vec![utc(2026, 6, 8, 6, 0), utc(2026, 6, 9, 6, 0)]);
}

#[test]
fn seconds_and_bad_expressions_are_refused() {
    for bad in [
        "0 0 6 * * 1",
        "* * * *",
        "61 * * * *",
        "fortnightly",
        "",
        "@daily",
    ] {
        assert!(
            matches!(
                Schedule::parse(bad, chrono_tz::UTC, 1),
                Err(ScheduleError::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        Schedule::parse_in("daily", "Mars/Olympus", 1).unwrap_err(),
        ScheduleError::UnknownTimezone("Mars/Olympus".into())
    );
    // A stored schedule that no longer parses falls back to daily in UTC.
    let now = utc(2026, 6, 1, 0, 0);
    let next = next_scan_at(7, "bogus", "Europe/Berlin", now);
    let daily = Schedule::parse("daily", chrono_tz::UTC, 7).unwrap();
    assert_eq!(next, daily.next_after(now).unwrap());
}

#[test]
fn preset_jitter_is_stable_per_repository() {
    // Pinned values: changing the hash would move every repository's slot on upgrade.
    assert_eq!(effective_expr("hourly", 42), "13 * * * *");
    assert_eq!(effective_expr("daily", 42), "13 3 * * *");
    assert_eq!(effective_expr("weekly", 42), "13 3 * * 3");
    assert_eq!(effective_expr("monthly", 42), "13 3 20 * *");
    assert_eq!(effective_expr("0 6 * * *", 42), "0 6 * * *");
    assert_eq!(jitter(42), jitter(42));
    assert_ne!(jitter(42), jitter(43));
}

#[test]
fn preset_jitter_spreads_ten_thousand_repositories() {
    let mut per_minute_of_day: HashMap<u32, usize> = HashMap::new();
    let mut per_hour: HashMap<u32, usize> = HashMap::new();
    let mut weekdays = HashSet::new();
    let mut days = HashSet::new();
    for id in 1..=10_000i64 {
        let j = jitter(id);
        assert!(j.minute < 60 && j.hour < 24 && j.weekday < 7);
        assert!((1..=28).contains(&j.day_of_month));
        *per_minute_of_day.entry(j.hour * 60 + j.minute).or_default() += 1;
        *per_hour.entry(j.hour).or_default() += 1;
        weekdays.insert(j.weekday);
        days.insert(j.day_of_month);
    }
    // 10,000 over 1,440 minutes is ~7 per minute; no minute gets a crowd.
    assert!(
        per_minute_of_day.len() > 1_300,
        "{}",
        per_minute_of_day.len()
    );
    assert!(per_minute_of_day.values().all(|&n| n <= 25));
    // ~417 per hour.
    assert_eq!(per_hour.len(), 24);
    assert!(
        per_hour.values().all(|&n| (300..=540).contains(&n)),
        "{per_hour:?}"
    );
    assert_eq!(weekdays.len(), 7);
    assert_eq!(days.len(), 28);
}

#[test]
fn presets_keep_their_cadence_in_the_repository_time_zone() {
    let now = utc(2026, 3, 1, 0, 0);
    let j = jitter(42);
    let hourly = Schedule::parse("hourly", Berlin, 42).unwrap();
    let r = runs(&hourly, now, 3);
    assert_eq!(r[1] - r[0], TimeDelta::hours(1));
    assert!(r.iter().all(|t| t.minute() == j.minute));
    let daily = Schedule::parse("daily", Berlin, 42).unwrap();
    for t in runs(&daily, now, 3) {
        let local = t.with_timezone(&Berlin);
        assert_eq!((local.hour(), local.minute()), (j.hour, j.minute));
    }
    let weekly = Schedule::parse("weekly", Berlin, 42).unwrap();
    let r = runs(&weekly, now, 3);
    assert_eq!(r[2] - r[1], TimeDelta::weeks(1));
    assert!(
        r.iter()
            .all(|t| t.with_timezone(&Berlin).weekday().num_days_from_sunday() == j.weekday)
    );
    let monthly = Schedule::parse("monthly", Berlin, 42).unwrap();
    let r = runs(&monthly, now, 3);
    assert!(
        r.iter()
            .all(|t| t.with_timezone(&Berlin).day() == j.day_of_month)
    );
    assert_eq!(r[0].with_timezone(&Berlin).month(), 3);
    assert_eq!(r[2].with_timezone(&Berlin).month(), 5);
}

// ---- the scheduler on both backends --------------------------------------------------------

on_both!(
    a_missed_run_happens_once_after_downtime,
    concurrent_schedulers_claim_each_repository_once,
    inactive_repositories_are_not_scheduled,
);

async fn add_repo(s: &Store, id: i64, schedule: &str, tz: &str, now: DateTime<Utc>) {
    s.upsert_installation(7, "octo", "Organization", now)
        .await
        .unwrap();
    s.upsert_repository(
        &NewRepository {
            id,
            installation_id: 7,
            full_name: &format!("octo/r{id}"),
            default_branch: Some("main"),
            archived: None,
        },
        now,
    )
    .await
    .unwrap();
    s.set_repo_config(
        id,
        &RepoConfigUpdate {
            text: None,
            error: None,
            schedule,
            timezone: tz,
            next_scan_at: next_scan_at(id, schedule, tz, now),
        },
        now,
    )
    .await
    .unwrap();
}

async fn a_missed_run_happens_once_after_downtime(db: TestDb) {
    let s = &db.store;
    let start = utc(2026, 5, 1, 0, 0);
    add_repo(s, 42, "0 6 * * *", "Europe/Berlin", start).await;
    // New repositories are due at once; the config then gave it a real slot.
    assert_eq!(
        s.repository(42).await.unwrap().unwrap().next_scan_at,
        Some(utc(2026, 5, 1, 4, 0))
    );
    // The service was down for three days and comes back at 12:00 UTC on May 4.
    let clock = Arc::new(ManualClock::new(utc(2026, 5, 4, 12, 0)));
    let sched = Scheduler::new(s.clone(), clock.clone());
    let claimed = sched.tick().await.unwrap();
    assert_eq!(claimed.len(), 1, "once, not once per missed slot");
    assert_eq!(claimed[0].next_scan_at, Some(utc(2026, 5, 1, 4, 0)));
    let r = s.repository(42).await.unwrap().unwrap();
    assert_eq!(
        r.next_scan_at,
        Some(utc(2026, 5, 5, 4, 0)),
        "the next slot after now"
    );
    let jobs = s.list_jobs(Some(JobState::Queued), 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, JobKind::SCAN_REPO.as_str());
    assert_eq!(jobs[0].payload.0["repository_id"], 42);
    assert_eq!(jobs[0].id, claimed[0].job_id);
    assert!(sched.tick().await.unwrap().is_empty());
    clock.set(utc(2026, 5, 5, 3, 59));
    assert!(sched.tick().await.unwrap().is_empty());
    clock.set(utc(2026, 5, 5, 4, 0));
    assert_eq!(sched.tick().await.unwrap().len(), 1);
    // The earlier scan never ran: still one queued job for the repository.
    assert_eq!(s.job_counts().await.unwrap().queued, 1);
}

async fn concurrent_schedulers_claim_each_repository_once(db: TestDb) {
    let s = &db.store;
    let now = utc(2026, 5, 4, 12, 0);
    let n = 300;
    for id in 1..=n {
        add_repo(s, id, "hourly", "UTC", now - TimeDelta::days(1)).await;
        s.set_next_scan_at(id, Some(now - TimeDelta::minutes(id)))
            .await
            .unwrap();
    }
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now));
    let mut tickers = Vec::new();
    for _ in 0..3 {
        let mut sched = Scheduler::new(db.replica().await.unwrap(), clock.clone());
        sched.batch = 25;
        tickers.push(tokio::spawn(async move { sched.tick().await.unwrap() }));
    }
    let mut all = Vec::new();
    let mut per_ticker = Vec::new();
    for t in tickers {
        let c = t.await.unwrap();
        per_ticker.push(c.len());
        all.extend(c.into_iter().map(|r| r.id));
    }
    all.sort();
    assert_eq!(
        all,
        (1..=n).collect::<Vec<_>>(),
        "each once: {per_ticker:?}"
    );
    assert_eq!(s.job_counts().await.unwrap().queued, n);
    for id in [1, n] {
        let r = s.repository(id).await.unwrap().unwrap();
        assert!(r.next_scan_at.unwrap() > now);
        assert!(r.next_scan_at.unwrap() <= now + TimeDelta::hours(1));
    }
}

async fn inactive_repositories_are_not_scheduled(db: TestDb) {
    let s = &db.store;
    let now = utc(2026, 5, 4, 12, 0);
    add_repo(s, 1, "daily", "UTC", now).await;
    add_repo(s, 2, "daily", "UTC", now).await;
    s.set_next_scan_at(1, Some(now)).await.unwrap();
    s.set_next_scan_at(2, Some(now)).await.unwrap();
    s.set_repository_archived(2, true, now).await.unwrap();
    s.set_installation_suspended(7, true, now).await.unwrap();
    let sched = Scheduler::new(s.clone(), Arc::new(ManualClock::new(now)));
    assert!(sched.tick().await.unwrap().is_empty());
    // Unsuspended: the active one is scanned once, at once.
    s.set_installation_suspended(7, false, now).await.unwrap();
    let c = sched.tick().await.unwrap();
    assert_eq!(c.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1]);
}
