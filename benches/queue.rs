//! Job queue and scheduler figures on SQLite and PostgreSQL.
//!
//! `cargo bench --bench queue` (PostgreSQL from DIGESTIF_TEST_POSTGRES_URL or the machine's
//! test server; skipped when it is down). BENCH_JOBS sets the job count (default 5000).
//! Figures on the 2-core development machine are in README.md (Operating: database and jobs).

#[path = "../tests/support/backends.rs"]
mod backends;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backends::TestDb;
use chrono::{TimeDelta, Utc};
use digestif::clock::{Clock, ManualClock, SystemClock};
use digestif::jobs::{Scheduler, Worker, WorkerOptions};
use digestif::schedule::next_scan_at;
use digestif::store::{Backend, Job, JobKind, NewJob};
use tokio_util::sync::CancellationToken;

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{:>8.0}/s ({n} in {:.2}s)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64()
    )
}

async fn queue(backend: Backend, n: usize, settings: &[(&str, &str)]) -> anyhow::Result<()> {
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let label = if settings.is_empty() {
        String::new()
    } else {
        format!(" with {settings:?}")
    };
    let db = TestDb::with_settings(backend, true, settings).await?;
    let s = &db.store;
    let clock = SystemClock;

    // 1. Enqueue, one transaction per job (what a webhook does).
    let t = Instant::now();
    for i in 0..n {
        s.enqueue(
            &NewJob::new(JobKind::HANDLE_PUSH, serde_json::json!({ "n": i }))?,
            clock.now(),
        )
        .await?;
    }
    let enq = t.elapsed();

    // 2. Lease + complete through the worker runtime, 4 slots, no-op handler.
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let handler = move |_j: Job| {
        let d = d.clone();
        async move {
            d.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    };
    let stop = CancellationToken::new();
    let opts = WorkerOptions {
        concurrency: 4,
        poll_interval: Duration::from_millis(5),
        ..WorkerOptions::default()
    };
    let t = Instant::now();
    let w = tokio::spawn(
        Worker::new(s.clone(), handler, Arc::new(SystemClock), opts).run(stop.clone()),
    );
    while done.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let work = t.elapsed();
    stop.cancel();
    w.await?;

    // 3. Enqueue + lease + complete, sequentially, one job at a time.
    let m = n / 5;
    let t = Instant::now();
    for i in 0..m {
        let now = clock.now();
        s.enqueue(
            &NewJob::new(JobKind::HANDLE_PUSH, serde_json::json!({ "n": i }))?,
            now,
        )
        .await?;
        let j = s
            .lease_jobs("bench", 1, Duration::from_secs(300), now)
            .await?;
        for j in j {
            s.complete_job(j.id, "bench", now).await?;
        }
    }
    let seq = t.elapsed();

    println!("{backend:?} queue{label}");
    println!("  enqueue                          {}", rate(n, enq));
    println!("  lease+complete (worker, 4 slots) {}", rate(n, work));
    println!("  enqueue+lease+complete, serial   {}", rate(m, seq));
    println!("  end to end (enqueue, then work)  {}", rate(n, enq + work));
    Ok(())
}

async fn scheduler(backend: Backend, repos: i64) -> anyhow::Result<()> {
    let db = TestDb::new(backend, true).await?;
    let s = &db.store;
    let due = "2026-05-04T11:00:00+00:00";
    let mut sql = String::from(
        "INSERT INTO installations (id, account_login, account_type, created_at, updated_at)
         VALUES (1, 'octo', 'Organization', '2026-05-01T00:00:00+00:00', '2026-05-01T00:00:00+00:00');",
    );
    for chunk in (1..=repos).collect::<Vec<_>>().chunks(1000) {
        sql.push_str(
            "INSERT INTO repositories (id, installation_id, full_name, schedule, timezone,
               next_scan_at, created_at, updated_at) VALUES ",
        );
        let rows: Vec<String> = chunk
            .iter()
            .map(|id| {
                let (schedule, tz) = match id % 4 {
                    0 => ("daily", "UTC"),
                    1 => ("hourly", "Europe/Berlin"),
                    2 => ("0 6 * * 1-5", "America/New_York"),
                    _ => ("weekly", "Asia/Tokyo"),
                };
                format!("({id}, 1, 'octo/r{id}', '{schedule}', '{tz}', '{due}', '{due}', '{due}')")
            })
            .collect();
        sql.push_str(&rows.join(","));
        sql.push(';');
    }
    s.execute_raw(&sql).await?;
    let now =
        chrono::DateTime::parse_from_rfc3339("2026-05-04T12:00:00+00:00")?.with_timezone(&Utc);

    let t = Instant::now();
    for id in 1..=repos {
        std::hint::black_box(next_scan_at(id, "weekly", "Asia/Tokyo", now));
    }
    let compute = t.elapsed();

    let clock = Arc::new(ManualClock::new(now));
    let mut sched = Scheduler::new(s.clone(), clock.clone());
    sched.batch = 500;
    let t = Instant::now();
    let claimed = sched.tick().await?;
    let claim = t.elapsed();
    assert_eq!(claimed.len() as i64, repos);
    let t = Instant::now();
    let again = sched.tick().await?;
    let idle = t.elapsed();
    assert!(again.is_empty());
    clock.set(now + TimeDelta::days(8));
    // Second round: every repository has a queued scan already, so enqueue is the
    // "moved earlier / no-op" path; batch of 10,000 in one transaction.
    sched.batch = 10_000;
    let t = Instant::now();
    let claimed2 = sched.tick().await?;
    let claim2 = t.elapsed();

    println!("{backend:?} scheduler, {repos} due repositories");
    println!(
        "  next_scan_at alone               {:.1} ms ({:.1} µs each)",
        compute.as_secs_f64() * 1e3,
        compute.as_secs_f64() * 1e6 / repos as f64
    );
    println!(
        "  claim + enqueue, batches of 500  {:.0} ms",
        claim.as_secs_f64() * 1e3
    );
    println!(
        "  idle tick (nothing due)          {:.2} ms",
        idle.as_secs_f64() * 1e3
    );
    println!(
        "  claim, one batch, jobs queued    {:.0} ms ({} claimed)",
        claim2.as_secs_f64() * 1e3,
        claimed2.len()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs this too (without `--bench`): a quick smoke run then.
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 5000 } else { 50 });
    let repos = if full { 10_000 } else { 200 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        queue(Backend::Sqlite, n, &[]).await?;
        scheduler(Backend::Sqlite, repos).await?;
        match queue(Backend::Postgres, n, &[]).await {
            Ok(()) => {
                // The same without waiting for the WAL flush per commit: what the queue
                // costs when the disk's fsync latency is taken out.
                queue(Backend::Postgres, n, &[("synchronous_commit", "off")]).await?;
                scheduler(Backend::Postgres, repos).await?
            }
            Err(e) => println!("PostgreSQL skipped: {e}"),
        }
        Ok(())
    })
}
