//! Crash campaign: `kill -9` the server at a random moment of a cycle, restart it, and check
//! that nothing was lost or done twice.
//!
//! `cargo bench --bench crash` runs `DIGESTIF_BENCH_TRIALS` (50) trials, alternating SQLite
//! and PostgreSQL (`-- sqlite` or `-- postgres` for one). Each trial, on a fresh database and
//! a fresh fake GitHub (`tests/support/fake_github`) holding `DIGESTIF_BENCH_REPOS` (200)
//! repositories over 4 installations, each pinning three of 60 tags of a CNCF distribution
//! registry on loopback:
//!
//! 1. the release `digestif serve` onboards every repository (no kill), and stops; its wall
//!    time is the window the kill falls in;
//! 2. 20% of the tags move upstream, every repository is made due, and 10 repositories get
//!    a push on GitHub that pins one more stage at an old digest of a moved tag;
//! 3. the server starts; the 10 `push` deliveries are sent at random moments of the window,
//!    and the server is killed with SIGKILL at a random moment of it;
//! 4. a new server starts (`DIGESTIF_JOB_LEASE=10s`, so the dead process's jobs come back
//!    after 10 s), every delivery is sent again (as an operator's redelivery would; an
//!    accepted one must be answered "already received" and not be done twice), and the bench
//!    waits until every repository was scanned after the kill and no job is queued or
//!    running.
//!
//! Then the invariants:
//! - no branch has two open PRs, and no repository has more than one digestif PR (one
//!   update group per repository, default configuration): no duplicate PR;
//! - every stale reference is covered by an open PR: the PR's `Dockerfile` is exactly the
//!   default branch's with each stale digest replaced by the tag's current one, and a
//!   repository with nothing stale has no PR;
//! - every delivery the first server accepted (202) is recorded once, and every delivery
//!   is processed: its push is in the PR (the check above), and none is dead in the queue;
//! - the fake GitHub saw no request GitHub would reject.
//!
//! `-- replicas` (`DIGESTIF_BENCH_REPLICAS`, 2) runs the trials on PostgreSQL with that many
//! replicas on one database instead: they onboard together, then in step 3 the deliveries
//! go to them in turn until ONE of them, chosen at random, is killed at a random moment; it
//! is not restarted, and the survivors take every (re)delivery and finish the cycle (the
//! dead replica's leased jobs come back after `DIGESTIF_JOB_LEASE`, 10 s). The same
//! invariants are checked.
//!
//! Printed: per trial the kill moment, the deliveries accepted before the kill, recovery
//! time, and any broken invariant; at the end trials and failures. `cargo test
//! --all-targets` runs 1 trial on SQLite with 24 repositories, and fails on a broken
//! invariant.

// Shared with the tests; its unit tests (`#[cfg(test)]`) run elsewhere.
#[allow(unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "support/fleet.rs"]
mod fleet;
#[allow(dead_code)]
#[path = "support/serve.rs"]
mod serve;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use digestif::store::Backend;
use fleet::{Scale, World, env_or};
use rand::Rng as _;
use sqlx::Connection as _;
use support::app::{SECRET, deliver, push_event};
use support::backends::TestDb;
use support::fake_github::webhooks::SignedWebhook;
use support::fake_github::{Author, FakeGitHub};

/// Repositories that get a push during the crashed cycle.
const PUSHED: usize = 10;

/// How a trial crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One server on this backend, killed and restarted.
    Restart(Backend),
    /// This many replicas on PostgreSQL; one is killed, the others finish.
    Replicas(usize),
}

impl Mode {
    fn backend(self) -> Backend {
        match self {
            Mode::Restart(b) => b,
            Mode::Replicas(_) => Backend::Postgres,
        }
    }

    fn servers(self) -> usize {
        match self {
            Mode::Restart(_) => 1,
            Mode::Replicas(n) => n,
        }
    }

    fn name(self) -> String {
        match self {
            Mode::Restart(Backend::Sqlite) => "sqlite".into(),
            Mode::Restart(Backend::Postgres) => "postgres".into(),
            Mode::Replicas(n) => format!("{n} replicas"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let bin = std::env::var_os("DIGESTIF_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_digestif")));
    assert!(bin.is_file(), "no digestif binary at {}", bin.display());
    let wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let replicas = Mode::Replicas(env_or("DIGESTIF_BENCH_REPLICAS", 2));
    let all = [
        ("sqlite", Mode::Restart(Backend::Sqlite)),
        ("postgres", Mode::Restart(Backend::Postgres)),
        ("replicas", replicas),
    ];
    let mut modes: Vec<Mode> = all
        .into_iter()
        .filter(|(n, _)| wanted.contains(n))
        .map(|(_, m)| m)
        .collect();
    if modes.is_empty() {
        // `cargo test --bench crash -- replicas` runs the one trial with replicas.
        modes = if bench {
            vec![all[0].1, all[1].1]
        } else {
            vec![all[0].1]
        };
    }
    let (trials, scale) = if bench {
        let scale = Scale {
            repos: env_or("DIGESTIF_BENCH_REPOS", 200),
            installations: 4,
            tags: 60,
            moved_percent: 20,
        };
        (env_or("DIGESTIF_BENCH_TRIALS", 50), scale)
    } else {
        let scale = Scale {
            repos: 24,
            installations: 2,
            tags: 12,
            moved_percent: 25,
        };
        (1, scale)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let failures = runtime.block_on(async {
        let mut world = World::start(scale.tags).await;
        let mut failures = Vec::new();
        for trial in 0..trials {
            let mode = modes[trial % modes.len()];
            let broken = run_trial(&bin, &mut world, scale, mode, trial).await;
            if !broken.is_empty() {
                failures.push((trial, broken));
            }
        }
        failures
    });
    println!(
        "\n{trials} trials ({} repositories each), {} failed",
        scale.repos,
        failures.len()
    );
    for (trial, broken) in &failures {
        println!("trial {trial}:");
        for b in broken {
            println!("  {b}");
        }
    }
    assert!(
        failures.is_empty(),
        "invariants broken in {} trials",
        failures.len()
    );
}

/// Runs one trial and returns the invariants it broke.
async fn run_trial(
    bin: &Path,
    world: &mut World,
    scale: Scale,
    mode: Mode,
    trial: usize,
) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeGitHub::start().await;
    let (installations, pins) = fleet::populate(&fake, world, &scale);
    let db = TestDb::new(mode.backend(), false)
        .await
        .expect("test database");
    let url = fleet::database_url(&db);
    let app = serve::App {
        id: fake.app_id(),
        private_key_pem: fake.private_key_pem(),
        webhook_secret: SECRET,
        github_url: fake.url(),
    };
    let mut env = world.server_env();
    env.push(("DIGESTIF_JOB_LEASE", "10s".to_string()));
    let start = |name: String| {
        let log = dir.path().join(format!("server-{name}.log"));
        let (app, url, env) = (&app, &url, &env);
        async move { serve::start(bin, app, url, &log, env).await }
    };
    let long = Duration::from_secs(3600);

    // 1. Onboarding, uninterrupted: its length is the window the kill falls in.
    let t = Instant::now();
    let mut first = Vec::new();
    for i in 0..mode.servers() {
        first.push(start(format!("onboarding-{i}")).await);
    }
    fleet::wait_for_cycle(
        &db.store,
        scale.repos,
        Utc::now() - chrono::TimeDelta::days(1),
        t,
        long,
    )
    .await;
    let window = t.elapsed();
    for s in first {
        s.stop().await;
    }

    // 2. Upstream moves, everything due, and pushes that add a stale pin.
    let old: Vec<String> = world.digests.clone();
    let moved: Vec<usize> = world.move_tags(&scale).await.into_iter().collect();
    fleet::make_all_due(&db.store).await;
    let hooks = add_stale_stages(&fake, world, &pins, &installations, &old, &moved, trial);

    // 3. The server(s), deliveries at random moments, SIGKILL at a random moment; 4. the
    // survivors (or a restarted server) take every delivery again and finish.
    let since = Utc::now();
    let crash = crash(start, mode, &hooks, window).await;
    let mut broken = crash.broken;
    fleet::wait_for_cycle(&db.store, scale.repos, since, crash.recovering, long).await;
    let recovery = crash.recovering.elapsed();
    for s in crash.survivors {
        s.stop().await;
    }

    broken.extend(check_prs(&fake, world, &pins));
    broken.extend(check_queue(&fake, &db, mode, &url, &crash.accepted).await);
    println!(
        "trial {trial:>2} {:<10} killed after {:>5.1} s of a {:.1} s window; deliveries {} sent, {} accepted before the kill; recovered in {:.1} s; {}",
        mode.name(),
        crash.killed_after.as_secs_f64(),
        window.as_secs_f64(),
        crash.sent,
        crash.accepted.len(),
        recovery.as_secs_f64(),
        if broken.is_empty() {
            "ok".to_string()
        } else {
            format!("{} broken", broken.len())
        }
    );
    db.store.close().await;
    broken
}

/// The invariants beside the PRs': every accepted delivery recorded, no job dead, queued or
/// running, no request GitHub would reject.
async fn check_queue(
    fake: &FakeGitHub,
    db: &TestDb,
    mode: Mode,
    url: &str,
    accepted: &BTreeSet<String>,
) -> Vec<String> {
    let mut broken = Vec::new();
    let recorded = recorded_deliveries(mode.backend(), url).await;
    for id in accepted {
        if !recorded.contains(id) {
            broken.push(format!("accepted delivery {id} not recorded"));
        }
    }
    let jobs = db.store.job_counts().await.expect("job counts");
    if jobs.dead > 0 || jobs.queued > 0 || jobs.running > 0 {
        broken.push(format!("jobs left: {jobs:?}"));
    }
    let violations = fake.violations();
    if !violations.is_empty() {
        broken.push(format!(
            "{} requests GitHub would reject: {:?}",
            violations.len(),
            violations.first()
        ));
    }
    broken
}

/// Pushes to [`PUSHED`] repositories that pin one more stage at the old digest of a moved
/// tag; returns the `push` deliveries for them.
fn add_stale_stages(
    fake: &FakeGitHub,
    world: &World,
    pins: &fleet::Pins,
    installations: &[u64],
    old: &[String],
    moved: &[usize],
    trial: usize,
) -> Vec<SignedWebhook> {
    let repos = pins.len();
    let mut hooks: Vec<SignedWebhook> = Vec::new();
    for k in 0..PUSHED.min(repos) {
        let r = (trial * 7 + k * (repos / PUSHED.min(repos)).max(1)) % repos;
        let (full, tags) = pins.iter().nth(r).expect("repository");
        let extra = moved[k % moved.len()];
        // The default branch pins every tag at its digest before the move.
        let mut stages: Vec<(usize, &str)> = tags.iter().map(|&t| (t, old[t].as_str())).collect();
        stages.insert(0, (extra, old[extra].as_str()));
        let text = world.dockerfile_with(&stages);
        fake.push(
            full,
            "main",
            &[("Dockerfile", Some(&text))],
            Author::default(),
            "Add a stage",
        );
        let inst = installations[r % installations.len()];
        hooks.push(push_event(fake, inst, full, &["Dockerfile"]));
    }
    hooks
}

/// What happened around the kill.
struct Crash {
    accepted: BTreeSet<String>,
    sent: usize,
    killed_after: Duration,
    /// When the survivors (or the restarted server) took over.
    recovering: Instant,
    survivors: Vec<serve::Serve>,
    broken: Vec<String>,
}

/// Starts the server(s), sends the deliveries before the kill moment (to the replicas in
/// turn), kills one, then has a restarted server (or the survivors) take every delivery
/// again: an accepted one must be answered "already received".
async fn crash<F, Fut>(start: F, mode: Mode, hooks: &[SignedWebhook], window: Duration) -> Crash
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = serve::Serve>,
{
    let mut rng = rand::rng();
    let t = Instant::now();
    let mut servers = Vec::new();
    for i in 0..mode.servers() {
        servers.push(start(format!("killed-{i}")).await);
    }
    let victim = rng.random_range(0..servers.len());
    let kill_at = window.mul_f64(rng.random_range(0.0..1.0));
    let mut times: Vec<Duration> = hooks
        .iter()
        .map(|_| window.mul_f64(rng.random_range(0.0..1.0)))
        .collect();
    times.sort();
    let mut accepted = BTreeSet::new();
    let mut sent = 0;
    for (hook, at) in hooks.iter().zip(&times) {
        if *at >= kill_at {
            break;
        }
        tokio::time::sleep(at.saturating_sub(t.elapsed())).await;
        let id = hook
            .header("x-github-delivery")
            .unwrap_or_default()
            .to_string();
        if let Ok((202, body)) = try_deliver(&servers[sent % servers.len()].base, hook).await
            && body.starts_with("accepted")
        {
            accepted.insert(id);
        }
        sent += 1;
    }
    tokio::time::sleep(kill_at.saturating_sub(t.elapsed())).await;
    let mut doomed = servers.remove(victim);
    let _ = doomed.child.start_kill();
    let _ = doomed.child.wait().await;
    let killed_after = t.elapsed();

    let recovering = Instant::now();
    if servers.is_empty() {
        servers.push(start("restarted".into()).await);
    }
    let mut broken = Vec::new();
    for (k, hook) in hooks.iter().enumerate() {
        let id = hook.header("x-github-delivery").unwrap_or_default();
        let (status, body) = deliver(&servers[k % servers.len()].base, hook).await;
        let again = accepted.contains(id);
        if status != 202 || (again && body != "already received") {
            broken.push(format!(
                "delivery {id} (accepted before the kill: {again}) redelivered: {status} {body:?}"
            ));
        }
    }
    Crash {
        accepted,
        sent,
        killed_after,
        recovering,
        survivors: servers,
        broken,
    }
}

/// Delivers without panicking when the server dies mid-request.
async fn try_deliver(base: &str, hook: &SignedWebhook) -> Result<(u16, String), reqwest::Error> {
    let client = reqwest::Client::new();
    let mut req = client.post(format!("{base}/webhooks/github"));
    for (k, v) in &hook.headers {
        req = req.header(k, v);
    }
    let resp = req.body(hook.body.clone()).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

/// One open PR per repository with something stale, whose Dockerfile is the default
/// branch's with every stale digest replaced; none elsewhere; no branch with two PRs.
fn check_prs(fake: &FakeGitHub, world: &World, pins: &fleet::Pins) -> Vec<String> {
    let mut broken = Vec::new();
    for repo in pins.keys() {
        let main = fake
            .file_at(repo, "main", "Dockerfile")
            .expect("Dockerfile");
        let want = current(world, &main);
        let prs = fake.pulls(repo);
        let open: Vec<_> = prs.iter().filter(|p| p.state == "open").collect();
        if prs.len() > 1 {
            broken.push(format!("{repo}: {} PRs (a duplicate)", prs.len()));
        }
        let head = |p: &&support::fake_github::state::Issue| {
            p.pull
                .as_ref()
                .map(|x| x.head_ref.clone())
                .unwrap_or_default()
        };
        let branches: BTreeSet<String> = open.iter().map(head).collect();
        if branches.len() < open.len() {
            broken.push(format!("{repo}: two open PRs on one branch"));
        }
        match (want == main, open.first()) {
            (true, None) => {}
            (true, Some(p)) => broken.push(format!("{repo}: PR #{} with nothing stale", p.number)),
            (false, None) => broken.push(format!("{repo}: stale and no open PR")),
            (false, Some(p)) => {
                let got = fake
                    .file_at(repo, &head(p), "Dockerfile")
                    .unwrap_or_default();
                if got != want {
                    broken.push(format!(
                        "{repo}: PR #{} does not pin the current digests:\n{got}\nwanted:\n{want}",
                        p.number
                    ));
                }
            }
        }
    }
    broken
}

/// `text` with every pin of a fleet tag set to the tag's current digest.
fn current(world: &World, text: &str) -> String {
    let mut out = text.to_string();
    for t in 0..world.digests.len() {
        let prefix = format!(
            "{}/{}:{}@",
            world.registry.addr,
            fleet::image_name(t),
            fleet::tag_name(t)
        );
        let mut from = 0;
        while let Some(i) = out[from..].find(&prefix) {
            let at = from + i + prefix.len();
            let end = at
                + out[at..]
                    .find(char::is_whitespace)
                    .unwrap_or(out.len() - at);
            out.replace_range(at..end, &world.digests[t]);
            from = at;
        }
    }
    out
}

async fn recorded_deliveries(backend: Backend, url: &str) -> BTreeSet<String> {
    let sql = "SELECT delivery_id FROM webhook_deliveries";
    let rows: Vec<String> = match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
            sqlx::query_scalar(sql)
                .fetch_all(&mut c)
                .await
                .expect("deliveries")
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
            sqlx::query_scalar(sql)
                .fetch_all(&mut c)
                .await
                .expect("deliveries")
        }
    };
    rows.into_iter().collect()
}
