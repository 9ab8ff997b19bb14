//! Webhook intake under load, on SQLite and on PostgreSQL.
//!
//! `cargo bench --bench webhooks` (add `-- sqlite` or `-- postgres` for one backend, `-- idle`,
//! `-- cycle` or `-- replicas` for one setup) starts
//! the release `digestif serve` binary as its own process, so the memory figures are the
//! server's alone, against a fake GitHub on loopback (`tests/support/fake_github`, one
//! installation, no repositories: the start-up sync succeeds and `/readyz` is green). It then
//! loads `POST /webhooks/github` with `wrk` (`benches/webhooks.lua`) and prints requests/s,
//! p50/p90/p99 latency, errors, and the server's RSS idle (after start-up, before load) and
//! after each run.
//!
//! The payload is GitHub's example `push` (`@octokit/webhooks-examples`) turned into a push
//! to the default branch that modifies a `Dockerfile`, signed with the webhook secret: every
//! request is parsed, recorded as a delivery and enqueues a scan job in one transaction. Its
//! repository (Codertocat/Hello-World) is unknown to the store, so the job workers finish each
//! scan job at once without calling GitHub and do not skew the figures; they still claim and
//! finish jobs concurrently with the intake, as in production. Three runs per server:
//! - `fresh-1`: one repository, a new `X-GitHub-Delivery` per request (the signature covers
//!   only the body). All deliveries coalesce into that repository's one queued scan job, so
//!   every transaction updates the same job row: the worst case for row locks;
//! - `fresh-1k`: the same push for 1,000 different repositories in turn (each body signed);
//! - `redeliver`: one delivery id over and over (acknowledged, nothing enqueued).
//!
//! Each backend is measured twice in the same run, on a fresh database each time: "before",
//! `DIGESTIF_WEBHOOK_BATCH=1` (one transaction per delivery), and "after", the default batch
//! (group commit, `store::deliveries`). Then the same two servers are loaded while a
//! scheduled cycle runs (setup `cycle`; `idle` is the one above): `DIGESTIF_BENCH_CYCLE_REPOS`
//! (2,000) repositories over 10 installations, each with a Dockerfile pinning three of 100
//! tags of a real registry on loopback (`benches/support/fleet.rs`, as in the cycle bench).
//! The server starts on an empty database, so it finds the installations and scans every
//! repository; the `fresh-1` and `fresh-1k` runs start once the first repository was scanned,
//! and print how many repositories were scanned by the end of each run (the cycle must still
//! be running), then the bench waits for the cycle to finish and prints its wall time.
//!
//! Setup `replicas` (PostgreSQL only): 1, 2 and 4 servers (`DIGESTIF_BENCH_WEBHOOK_REPLICAS`)
//! on one schema with the default batch, each loaded at the same time by its own `wrk`
//! (1 thread, `DIGESTIF_BENCH_CONNECTIONS / N` connections, `fresh-1k`), as behind a load
//! balancer: requests/s summed, the worst replica's latency, and every answered request
//! checked against the delivery rows.
//!
//! The figures are printed and written to `benches/results/webhooks.json`
//! (`webhooks-sqlite.json` and so on when only some backends or setups ran).
//!
//! Why a Rust driver rather than a shell script: it reuses the fake GitHub and the signed
//! example payloads the end-to-end tests use, creates and drops the PostgreSQL schema with
//! the store's own test helper, and checks afterwards that every request really became a
//! delivery row. `wrk` does the load because a load generator in this process would share its
//! runtime and allocator with the fake GitHub and be harder to compare with other servers.
//!
//! Settings (environment): `DIGESTIF_BENCH_SECS` (10), `DIGESTIF_BENCH_CONNECTIONS` (32),
//! `DIGESTIF_BENCH_THREADS` (2), `DIGESTIF_BENCH_BIN` (the `digestif` binary; default: the
//! one cargo built for this bench, `target/release/digestif` under `cargo bench`),
//! `DIGESTIF_TEST_POSTGRES_URL` (`postgres://postgres@127.0.0.1:5432/test`). The server logs at
//! its default level (`DIGESTIF_LOG` is passed through) into a file in the temp directory.
//!
//! `cargo bench --bench webhooks -- strangers` measures what strangers cost instead (no `wrk`
//! needed): see [`strangers`].
//!
//! `cargo test --all-targets` runs this binary without `--bench`: it then only says how to run
//! it and exits, so the test suite never generates load.

// Shared with the tests; this bench uses part of it, and its unit tests (`#[cfg(test)]`,
// compiled when `--all-targets` checks benches in test mode) run elsewhere.
#[allow(unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "support/fleet.rs"]
mod fleet;

#[allow(dead_code)]
#[path = "support/serve.rs"]
mod serve;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use digestif::store::Backend;
use serde_json::{Value, json};
use serve::{proc_cpu_seconds, proc_status, stop};
use sqlx::Connection as _;
use support::backends::TestDb;
use support::fake_github::{FakeGitHub, webhooks};
use tokio::process::{Child, Command};

const SECRET: &str = "bench-webhook-secret";
const LUA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/webhooks.lua");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

#[derive(Clone)]
struct Options {
    secs: u64,
    connections: u32,
    threads: u32,
    bin: PathBuf,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "webhooks: load benchmark, not run by `cargo test`; run `cargo bench --bench webhooks`"
        );
        return;
    }
    let wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let pick = |names: &[&'static str]| -> Vec<&'static str> {
        let chosen: Vec<&'static str> = names
            .iter()
            .copied()
            .filter(|n| wanted.contains(n))
            .collect();
        if chosen.is_empty() {
            names.to_vec()
        } else {
            chosen
        }
    };
    let backends: Vec<Backend> = [Backend::Sqlite, Backend::Postgres]
        .into_iter()
        .filter(|b| pick(&["sqlite", "postgres"]).contains(&backend_name(*b)))
        .collect();
    let setups = pick(&["idle", "cycle", "replicas"]);
    let opts = Options {
        secs: env_or("DIGESTIF_BENCH_SECS", 10),
        connections: env_or("DIGESTIF_BENCH_CONNECTIONS", 32),
        threads: env_or("DIGESTIF_BENCH_THREADS", 2),
        bin: std::env::var_os("DIGESTIF_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_digestif"))),
    };
    assert!(
        opts.bin.is_file(),
        "no digestif binary at {}",
        opts.bin.display()
    );
    if wanted.contains(&"strangers") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(strangers::run(&opts));
        return;
    }
    match std::process::Command::new("wrk").arg("--version").output() {
        Ok(_) => {}
        Err(e) => panic!("wrk not found ({e}); install it, e.g. `apt-get install wrk`"),
    }
    // One worker thread: the fake GitHub is idle during the load and must not compete for
    // the CPU with the server and wrk.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let figures = runtime.block_on(run(opts, &backends, &setups));
    let mut name = String::from("webhooks");
    if backends.len() < 2 {
        backends
            .iter()
            .for_each(|b| name.push_str(&format!("-{}", backend_name(*b))));
    }
    if setups.len() < 2 {
        setups.iter().for_each(|s| name.push_str(&format!("-{s}")));
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/results")
        .join(format!("{name}.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&figures).expect("json"))
        .expect("write results");
    println!("\nwrote {}", out.display());
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

const REPOS: u64 = 1000;

/// GitHub's example push, made a push to the default branch that modifies a Dockerfile.
/// `repo` > 0 renames the repository and gives it its own id.
fn push_payload(installation: u64, repo: u64) -> Value {
    let mut p = webhooks::adapt(
        webhooks::example("push", None),
        installation,
        &Value::Null,
        "octocat",
    );
    let branch = p["repository"]["default_branch"]
        .as_str()
        .expect("example repository has a default branch")
        .to_string();
    p["ref"] = json!(format!("refs/heads/{branch}"));
    p["created"] = json!(false);
    p["base_ref"] = Value::Null;
    let mut commit = p["head_commit"].clone();
    assert!(commit.is_object(), "example push has a head commit");
    commit["added"] = json!([]);
    commit["removed"] = json!([]);
    commit["modified"] = json!(["Dockerfile"]);
    p["commits"] = json!([commit.clone()]);
    p["head_commit"] = commit;
    if repo > 0 {
        let r = &mut p["repository"];
        r["id"] = json!(1_000_000 + repo);
        r["name"] = json!(format!("bench-{repo}"));
        r["full_name"] = json!(format!("acme/bench-{repo}"));
    }
    p
}

/// One line per delivery: `<hex signature> <compact JSON body>` (see `webhooks.lua`).
fn bodies_file(path: &Path, bodies: &[Vec<u8>]) {
    let mut text = Vec::new();
    for b in bodies {
        assert!(!b.contains(&b'\n'), "compact JSON has no newline");
        text.extend_from_slice(webhooks::signature(SECRET, b).as_bytes());
        text.push(b' ');
        text.extend_from_slice(b);
        text.push(b'\n');
    }
    std::fs::write(path, text).expect("write bodies");
}

struct RunFigures {
    mode: &'static str,
    wrk: Value,
    rss_after_kib: u64,
    server_cpu_s: f64,
    /// `cycle` setup: repositories scanned by the end of the run.
    scanned: Option<usize>,
}

struct BackendFigures {
    backend: Backend,
    setup: &'static str,
    batch: usize,
    idle_rss_kib: u64,
    runs: Vec<RunFigures>,
    deliveries: i64,
    fresh_requests: u64,
    jobs: digestif::store::JobCounts,
    peak_rss_kib: u64,
    /// `cycle` setup: the cycle's repositories, scanned ones, failed scans, wall time.
    cycle: Option<(usize, usize, usize, Duration)>,
}

impl RunFigures {
    fn req_s(&self) -> f64 {
        let n = |k: &str| self.wrk[k].as_f64().unwrap_or(0.0);
        n("requests") / (n("duration_us") / 1e6)
    }

    fn errors(&self) -> f64 {
        let n = |k: &str| self.wrk[k].as_f64().unwrap_or(0.0);
        n("connect") + n("read") + n("write") + n("status") + n("timeout")
    }

    fn ms(&self, key: &str) -> f64 {
        self.wrk[key].as_f64().unwrap_or(0.0) / 1e3
    }
}

impl BackendFigures {
    fn json(&self) -> Value {
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                json!({
                    "run": r.mode,
                    "req_s": r.req_s(),
                    "p50_ms": r.ms("p50_us"),
                    "p90_ms": r.ms("p90_us"),
                    "p99_ms": r.ms("p99_us"),
                    "max_ms": r.ms("max_us"),
                    "errors": r.errors(),
                    "rss_after_kib": r.rss_after_kib,
                    "server_cpu_s": r.server_cpu_s,
                    "repositories_scanned_by_end": r.scanned,
                    "wrk": r.wrk,
                })
            })
            .collect();
        json!({
            "backend": backend_name(self.backend),
            "setup": self.setup,
            "webhook_batch": self.batch,
            "idle_rss_kib": self.idle_rss_kib,
            "peak_rss_kib": self.peak_rss_kib,
            "fresh_requests": self.fresh_requests,
            "delivery_rows": self.deliveries,
            "jobs": {"done": self.jobs.done, "queued": self.jobs.queued,
                     "running": self.jobs.running, "dead": self.jobs.dead},
            "cycle": self.cycle.map(|(repos, scanned, failed, wall)| json!({
                "repositories": repos, "scanned": scanned, "failed": failed,
                "wall_s": wall.as_secs_f64(),
            })),
            "runs": runs,
        })
    }
}

/// The batch sizes compared: before group commit (1) and the default.
const BATCHES: [usize; 2] = [1, digestif::server_settings::DEFAULT_WEBHOOK_BATCH];

/// The payload files: one repository, and `REPOS` repositories.
struct Bodies {
    one: PathBuf,
    many: PathBuf,
    signature: String,
    body: Vec<u8>,
}

async fn run(opts: Options, backends: &[Backend], setups: &[&str]) -> Value {
    let fake = FakeGitHub::start().await;
    let installation = fake.create_installation("acme", &[("contents", "read")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = webhooks::sign("push", &push_payload(installation, 0), SECRET);
    let one = dir.path().join("push-1.txt");
    bodies_file(&one, std::slice::from_ref(&hook.body));
    let many = dir.path().join("push-1k.txt");
    let bodies: Vec<Vec<u8>> = (1..=REPOS)
        .map(|r| serde_json::to_vec(&push_payload(installation, r)).expect("body"))
        .collect();
    bodies_file(&many, &bodies);
    let bodies = Bodies {
        one,
        many,
        signature: webhooks::signature(SECRET, &hook.body),
        body: hook.body.clone(),
    };
    println!(
        "digestif webhook intake: {} (binary {}), wrk {} threads, {} connections, {} s per run",
        std::env::consts::ARCH,
        opts.bin.display(),
        opts.threads,
        opts.connections,
        opts.secs
    );
    println!(
        "payload: example push to the default branch modifying a Dockerfile, {} bytes; \
         each fresh delivery enqueues one scan job for a repository the store does not know",
        hook.body.len()
    );
    let mut all = Vec::new();
    if setups.contains(&"idle") {
        for &backend in backends {
            for batch in BATCHES {
                let ctx = (&fake, dir.path(), &bodies);
                all.push(bench_backend(&opts, backend, ctx, batch).await);
            }
        }
    }
    let mut cycle_repos = None;
    if setups.contains(&"cycle") {
        let fleet = Fleet::start().await;
        cycle_repos = Some(fleet.scale.repos);
        for &backend in backends {
            for batch in BATCHES {
                all.push(bench_cycle(&opts, backend, &fleet, dir.path(), &bodies, batch).await);
            }
        }
    }
    print_table(&all);
    let mut replicas = Vec::new();
    if setups.contains(&"replicas") && backends.contains(&Backend::Postgres) {
        let counts: Vec<usize> = std::env::var("DIGESTIF_BENCH_WEBHOOK_REPLICAS")
            .unwrap_or_else(|_| "1,2,4".into())
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("DIGESTIF_BENCH_WEBHOOK_REPLICAS: numbers")
            })
            .collect();
        for n in counts {
            replicas.push(bench_replicas(&opts, (&fake, dir.path(), &bodies), n).await);
        }
    }
    drop(fake);
    json!({
        "machine": {"arch": std::env::consts::ARCH, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "wrk": {"threads": opts.threads, "connections": opts.connections, "secs": opts.secs},
        "payload_bytes": hook.body.len(),
        "cycle_repositories": cycle_repos,
        "servers": all.iter().map(BackendFigures::json).collect::<Vec<_>>(),
        "replicas": replicas,
    })
}

/// Setup `replicas`: `n` servers on one PostgreSQL schema (default batch), each loaded by its
/// own `wrk` (1 thread, `DIGESTIF_BENCH_CONNECTIONS / n` connections) with `fresh-1k` at the
/// same time, as a load balancer would spread GitHub's deliveries. Throughput is the sum;
/// latency the worst replica's. Every answered request must be a delivery row.
async fn bench_replicas(
    opts: &Options,
    (fake, dir, bodies): (&FakeGitHub, &Path, &Bodies),
    n: usize,
) -> Value {
    println!("\n== postgres, {n} replica(s), fresh-1k on each at once");
    let db = TestDb::new(Backend::Postgres, false)
        .await
        .expect("test database");
    let url = fleet::database_url(&db);
    let mut servers = Vec::new();
    for i in 0..n {
        let name = format!("replicas-{n}-{i}");
        servers.push(start_server(opts, fake, &url, dir, &name, &[]).await);
    }
    let per = Options {
        secs: opts.secs,
        connections: (opts.connections / n as u32).max(1),
        threads: 1,
        bin: opts.bin.clone(),
    };
    let tag = format!("bench-{:08x}", rand::random::<u32>());
    let cpu_before: Vec<f64> = servers.iter().map(|s| proc_cpu_seconds(s.1)).collect();
    let mut set = tokio::task::JoinSet::new();
    for (i, s) in servers.iter().enumerate() {
        let (per, base, file) = (per.clone(), s.2.clone(), bodies.many.clone());
        let tag = format!("{tag}-{i}");
        set.spawn(async move { (i, run_wrk(&per, &base, &file, "fresh", &tag).await) });
    }
    let mut runs: Vec<(usize, Value)> = set.join_all().await;
    runs.sort_by_key(|r| r.0);
    let runs = runs.into_iter().map(|r| r.1);
    let cpu: Vec<f64> = servers
        .iter()
        .zip(&cpu_before)
        .map(|(s, before)| proc_cpu_seconds(s.1) - before)
        .collect();
    let rss: Vec<u64> = servers.iter().map(|s| proc_status(s.1, "VmHWM")).collect();
    for (mut child, pid, _) in servers {
        stop(&mut child, pid).await;
    }
    let figures: Vec<RunFigures> = runs
        .into_iter()
        .map(|wrk| RunFigures {
            mode: "fresh-1k",
            wrk,
            rss_after_kib: 0,
            server_cpu_s: 0.0,
            scanned: None,
        })
        .collect();
    let requests: u64 = figures
        .iter()
        .map(|r| r.wrk["requests"].as_u64().unwrap_or(0))
        .sum();
    let deliveries = count_deliveries(Backend::Postgres, &url).await;
    let total: f64 = figures.iter().map(RunFigures::req_s).sum();
    let worst = |k: &str| figures.iter().map(|r| r.ms(k)).fold(0.0, f64::max);
    let errors: f64 = figures.iter().map(RunFigures::errors).sum();
    println!(
        "{n} replica(s): {total:.0} req/s in all, worst p50 {:.2} ms, worst p99 {:.2} ms, \
         errors {errors}; requests {requests}, delivery rows {deliveries}; server CPU {cpu:.1?} s; \
         peak RSS {:?} MiB",
        worst("p50_us"),
        worst("p99_us"),
        rss.iter().map(|k| k / 1024).collect::<Vec<_>>(),
    );
    db.store.close().await;
    json!({
        "replicas": n,
        "req_s": total,
        "worst_p50_ms": worst("p50_us"),
        "worst_p99_ms": worst("p99_us"),
        "errors": errors,
        "requests": requests,
        "delivery_rows": deliveries,
        "server_cpu_s": cpu,
        "peak_rss_kib": rss,
        "per_replica": figures.iter().map(|r| r.wrk.clone()).collect::<Vec<_>>(),
    })
}

fn print_table(all: &[BackendFigures]) {
    println!();
    println!(
        "{:<9} {:<6} {:>5} {:<9} {:>9} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8}",
        "backend",
        "setup",
        "batch",
        "run",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "idle RSS",
        "RSS after",
        "CPU s",
        "scanned"
    );
    for f in all {
        for r in &f.runs {
            println!(
                "{:<9} {:<6} {:>5} {:<9} {:>9.0} {:>8.2} {:>8.2} {:>8.1} {:>7} {:>6} MiB {:>5} MiB {:>8.1} {:>8}",
                backend_name(f.backend),
                f.setup,
                f.batch,
                r.mode,
                r.req_s(),
                r.ms("p50_us"),
                r.ms("p99_us"),
                r.ms("max_us"),
                r.errors(),
                f.idle_rss_kib / 1024,
                r.rss_after_kib / 1024,
                r.server_cpu_s,
                r.scanned.map(|n| n.to_string()).unwrap_or_default(),
            );
        }
        println!(
            "{:<9} {:<6} {:>5} fresh requests answered {}, delivery rows {}; jobs done {}, \
             queued {}, running {}, dead {}; peak RSS {} MiB{}",
            backend_name(f.backend),
            f.setup,
            f.batch,
            f.fresh_requests,
            f.deliveries,
            f.jobs.done,
            f.jobs.queued,
            f.jobs.running,
            f.jobs.dead,
            f.peak_rss_kib / 1024,
            f.cycle
                .map(|(repos, scanned, failed, wall)| format!(
                    "; cycle: {scanned} of {repos} repositories scanned ({failed} failed) in {:.1} s",
                    wall.as_secs_f64()
                ))
                .unwrap_or_default(),
        );
    }
}

async fn bench_backend(
    opts: &Options,
    backend: Backend,
    (fake, dir, bodies): (&FakeGitHub, &Path, &Bodies),
    batch: usize,
) -> BackendFigures {
    let name = backend_name(backend);
    println!("\n== {name}, idle, DIGESTIF_WEBHOOK_BATCH={batch}");
    // Migrations are the server's job: the database starts empty.
    let db = TestDb::new(backend, false).await.expect("test database");
    let url = fleet::database_url(&db);
    let env = [("DIGESTIF_WEBHOOK_BATCH", batch.to_string())];
    let log = format!("{name}-idle-{batch}");
    let (mut server, pid, base) = start_server(opts, fake, &url, dir, &log, &env).await;
    // Let the start-up sync job finish and the allocator settle before measuring idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss_kib = proc_status(pid, "VmRSS");
    println!("idle RSS {} KiB", idle_rss_kib);
    let tag = format!("bench-{:08x}", rand::random::<u32>());
    let redelivered = format!("{tag}-redelivered");
    check_payload(&base, bodies, &tag, &redelivered).await;

    let mut runs = Vec::new();
    let mut fresh_requests = 0;
    for (run, file, mode, run_tag) in [
        ("fresh-1", &bodies.one, "fresh", format!("{tag}-a")),
        ("fresh-1k", &bodies.many, "fresh", format!("{tag}-b")),
        ("redeliver", &bodies.one, "redeliver", redelivered.clone()),
    ] {
        let r = measure_run(opts, &base, pid, (run, file, mode, &run_tag)).await;
        if mode == "fresh" {
            fresh_requests += r.wrk["requests"].as_u64().unwrap_or(0);
        }
        runs.push(r);
        // Let the workers drain what the run queued before the next one.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (peak_rss_kib, deliveries, jobs) = finish(&mut server, pid, db, backend, &url).await;
    BackendFigures {
        backend,
        setup: "idle",
        batch,
        idle_rss_kib,
        runs,
        deliveries,
        fresh_requests,
        jobs,
        peak_rss_kib,
        cycle: None,
    }
}

/// Stops the server and reads what it left: its peak RSS, the delivery rows, the job counts.
async fn finish(
    server: &mut Child,
    pid: u32,
    db: TestDb,
    backend: Backend,
    url: &str,
) -> (u64, i64, digestif::store::JobCounts) {
    let peak_rss_kib = proc_status(pid, "VmHWM");
    stop(server, pid).await;
    let deliveries = count_deliveries(backend, url).await;
    let jobs = db.store.job_counts().await.expect("job counts");
    db.store.close().await;
    (peak_rss_kib, deliveries, jobs)
}

/// One wrk run with the server's CPU time and RSS after it.
async fn measure_run(
    opts: &Options,
    base: &str,
    pid: u32,
    (run, file, mode, tag): (&'static str, &Path, &str, &str),
) -> RunFigures {
    let cpu_before = proc_cpu_seconds(pid);
    let wrk = run_wrk(opts, base, file, mode, tag).await;
    let server_cpu_s = proc_cpu_seconds(pid) - cpu_before;
    let rss_after_kib = proc_status(pid, "VmRSS");
    println!("{run}: {wrk}, server CPU {server_cpu_s:.1} s, RSS after {rss_after_kib} KiB");
    RunFigures {
        mode: run,
        wrk,
        rss_after_kib,
        server_cpu_s,
        scanned: None,
    }
}

/// Checks the payload does what the figures claim before loading with it: a new delivery
/// is accepted with its job, a redelivery is "already received".
async fn check_payload(base: &str, bodies: &Bodies, tag: &str, redelivered: &str) {
    let client = reqwest::Client::new();
    for (delivery, expect) in [
        (format!("{tag}-check"), "accepted, 1 job(s)"),
        (redelivered.to_string(), "accepted, 1 job(s)"),
        (redelivered.to_string(), "already received"),
    ] {
        let resp = client
            .post(format!("{base}/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", &delivery)
            .header(
                "x-hub-signature-256",
                format!("sha256={}", bodies.signature),
            )
            .body(bodies.body.clone())
            .send()
            .await
            .expect("check delivery");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            status == 202 && text == expect,
            "check delivery {delivery}: {status} {text:?}, expected 202 {expect:?}"
        );
    }
}

/// Repositories on a fake GitHub pinning tags of a real registry: what the server's cycle
/// scans while the intake is loaded.
struct Fleet {
    fake: FakeGitHub,
    world: fleet::World,
    scale: fleet::Scale,
}

impl Fleet {
    async fn start() -> Fleet {
        let scale = fleet::Scale {
            repos: env_or("DIGESTIF_BENCH_CYCLE_REPOS", 2_000),
            installations: 10,
            tags: 100,
            moved_percent: 0,
        };
        let started = Instant::now();
        let world = fleet::World::start(scale.tags).await;
        let fake = FakeGitHub::start().await;
        fleet::populate(&fake, &world, &scale);
        println!(
            "\ncycle fleet: {} repositories over {} installations pinning {} tags, ready in {:.1} s",
            scale.repos,
            scale.installations,
            scale.tags,
            started.elapsed().as_secs_f64()
        );
        Fleet { fake, world, scale }
    }
}

/// The `fresh-1` and `fresh-1k` runs while the server's first cycle over `fleet` runs.
async fn bench_cycle(
    opts: &Options,
    backend: Backend,
    fleet: &Fleet,
    dir: &Path,
    bodies: &Bodies,
    batch: usize,
) -> BackendFigures {
    let name = backend_name(backend);
    let repos = fleet.scale.repos;
    println!(
        "\n== {name}, during a cycle over {repos} repositories, DIGESTIF_WEBHOOK_BATCH={batch}"
    );
    let db = TestDb::new(backend, false).await.expect("test database");
    let url = fleet::database_url(&db);
    let mut env = fleet.world.server_env();
    env.push(("DIGESTIF_WEBHOOK_BATCH", batch.to_string()));
    let since = chrono::Utc::now();
    let started = Instant::now();
    let log = format!("{name}-cycle-{batch}");
    let (mut server, pid, base) = start_server(opts, &fleet.fake, &url, dir, &log, &env).await;
    let idle_rss_kib = proc_status(pid, "VmRSS");
    // The cycle is under way once a repository was scanned.
    while fleet::scanned_since(&db.store, since).await.0 == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no scan within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tag = format!("bench-{:08x}", rand::random::<u32>());
    let mut runs = Vec::new();
    let mut fresh_requests = 0;
    for (run, file, run_tag) in [
        ("fresh-1", &bodies.one, format!("{tag}-a")),
        ("fresh-1k", &bodies.many, format!("{tag}-b")),
    ] {
        let mut r = measure_run(opts, &base, pid, (run, file, "fresh", &run_tag)).await;
        fresh_requests += r.wrk["requests"].as_u64().unwrap_or(0);
        let scanned = fleet::scanned_since(&db.store, since).await.0;
        println!("{run}: {scanned} of {repos} repositories scanned by its end");
        r.scanned = Some(scanned);
        runs.push(r);
    }
    let (scanned, failed, wall) =
        fleet::wait_for_cycle(&db.store, repos, since, started, Duration::from_secs(1800)).await;
    println!(
        "cycle: {scanned} repositories scanned ({failed} failed) in {:.1} s",
        wall.as_secs_f64()
    );
    let (peak_rss_kib, deliveries, jobs) = finish(&mut server, pid, db, backend, &url).await;
    BackendFigures {
        backend,
        setup: "cycle",
        batch,
        idle_rss_kib,
        runs,
        deliveries,
        fresh_requests,
        jobs,
        peak_rss_kib,
        cycle: Some((repos, scanned, failed, wall)),
    }
}

/// Starts the release `digestif serve` on `url` and waits until `/readyz` is green.
async fn start_server(
    opts: &Options,
    fake: &FakeGitHub,
    url: &str,
    dir: &Path,
    name: &str,
    env: &[(&str, String)],
) -> (Child, u32, String) {
    let started = Instant::now();
    let app = serve::App {
        id: fake.app_id(),
        private_key_pem: fake.private_key_pem(),
        webhook_secret: SECRET,
        github_url: fake.url(),
    };
    let s = serve::start(
        &opts.bin,
        &app,
        url,
        &dir.join(format!("server-{name}.log")),
        env,
    )
    .await;
    println!(
        "ready after {:.2} s (migrations, App credentials, start-up sync)",
        started.elapsed().as_secs_f64()
    );
    (s.child, s.pid, s.base)
}

async fn run_wrk(opts: &Options, base: &str, bodies: &Path, mode: &str, tag: &str) -> Value {
    let out = Command::new("wrk")
        .arg(format!("-t{}", opts.threads))
        .arg(format!("-c{}", opts.connections))
        .arg(format!("-d{}s", opts.secs))
        .arg("--latency")
        .arg("-s")
        .arg(LUA)
        .arg(format!("{base}/webhooks/github"))
        .arg("--")
        .arg(bodies)
        .arg("push")
        .arg(mode)
        .arg(tag)
        .output()
        .await
        .expect("run wrk");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK-JSON "))
        .unwrap_or_else(|| panic!("no WRK-JSON line in wrk's output:\n{stdout}"));
    serde_json::from_str(line).expect("wrk summary is JSON")
}

async fn count_deliveries(backend: Backend, url: &str) -> i64 {
    let sql = "SELECT count(*) FROM webhook_deliveries";
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
    }
}

/// `cargo bench --bench webhooks -- strangers`: unsigned clients that hold connections and
/// send large bodies slowly, as the attack in issue 10 did, against the release server on
/// SQLite with its production limits. Each of `DIGESTIF_BENCH_STRANGERS` (200) connections
/// does one thing over and over for `DIGESTIF_BENCH_STRANGER_SECS` (30), reconnecting
/// whenever the server closes it:
/// - 2 in 5 announce a 24 MiB `push` body, send 1 MiB of it at once and stall;
/// - 1 in 5 send a whole unsigned 24 MiB body as fast as they can;
/// - 1 in 5 send their headers one byte a second (slowloris);
/// - 1 in 5 connect and send nothing.
///
/// Meanwhile GitHub's part is played by a signed `ping` delivery every 500 ms. Printed: the
/// server's RSS idle, its peak (sampled every 100 ms, and the kernel's high-water mark), RSS
/// 5 s and 15 s after the strangers stop, the strangers' answers by status, and how the signed
/// deliveries fared.
mod strangers {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;

    const BIG: usize = 24 * 1024 * 1024;
    const CHUNK: usize = 1024 * 1024;

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        BigStall,
        BigFast,
        SlowHeaders,
        Silent,
    }

    fn kind(i: usize) -> Kind {
        match i % 5 {
            0 | 1 => Kind::BigStall,
            2 => Kind::BigFast,
            3 => Kind::SlowHeaders,
            _ => Kind::Silent,
        }
    }

    type Tally = Arc<Mutex<BTreeMap<String, u64>>>;

    fn count(tally: &Tally, what: String) {
        *tally.lock().expect("tally").entry(what).or_default() += 1;
    }

    fn head(len: usize, n: u64) -> String {
        format!(
            "POST /webhooks/github HTTP/1.1\r\nHost: digestif\r\nContent-Type: application/json\r\n\
             X-GitHub-Event: push\r\nX-GitHub-Delivery: stranger-{n}\r\n\
             X-Hub-Signature-256: sha256=00\r\nContent-Length: {len}\r\n\r\n"
        )
    }

    /// Reads until the server closes; the status of its answer, if any.
    async fn answer(stream: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if got.len() < 4096 => got.extend_from_slice(&buf[..n]),
                Ok(_) => {}
            }
        }
        let text = String::from_utf8_lossy(&got);
        match text.strip_prefix("HTTP/1.1 ").and_then(|t| t.get(..3)) {
            Some(code) => code.to_string(),
            None => "closed".to_string(),
        }
    }

    async fn stranger(addr: String, kind: Kind, tally: Tally, zeros: Arc<Vec<u8>>) {
        let mut n = 0u64;
        loop {
            n += 1;
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                count(&tally, format!("{kind:?}: connect failed"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let outcome = match kind {
                Kind::BigStall => {
                    let _ = s.write_all(head(BIG, n).as_bytes()).await;
                    let _ = s.write_all(&zeros[..CHUNK]).await;
                    answer(&mut s).await
                }
                Kind::BigFast => {
                    let (mut r, mut w) = s.into_split();
                    let zeros = zeros.clone();
                    let writer = tokio::spawn(async move {
                        let _ = w.write_all(head(BIG, n).as_bytes()).await;
                        for _ in 0..BIG / CHUNK {
                            if w.write_all(&zeros[..CHUNK]).await.is_err() {
                                break;
                            }
                        }
                        w
                    });
                    let mut got = Vec::new();
                    let _ = r.read_to_end(&mut got).await;
                    writer.abort();
                    let text = String::from_utf8_lossy(&got);
                    match text.strip_prefix("HTTP/1.1 ").and_then(|t| t.get(..3)) {
                        Some(code) => code.to_string(),
                        None => "closed".to_string(),
                    }
                }
                Kind::SlowHeaders => {
                    let (mut r, mut w) = s.into_split();
                    let writer = tokio::spawn(async move {
                        for b in head(0, n).bytes() {
                            if w.write_all(&[b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    });
                    let mut got = Vec::new();
                    let _ = r.read_to_end(&mut got).await;
                    writer.abort();
                    let text = String::from_utf8_lossy(&got);
                    match text.strip_prefix("HTTP/1.1 ").and_then(|t| t.get(..3)) {
                        Some(code) => code.to_string(),
                        None => "closed".to_string(),
                    }
                }
                Kind::Silent => answer(&mut s).await,
            };
            count(&tally, format!("{kind:?}: {outcome}"));
        }
    }

    pub async fn run(opts: &Options) {
        let strangers: usize = env_or("DIGESTIF_BENCH_STRANGERS", 200);
        let secs: u64 = env_or("DIGESTIF_BENCH_STRANGER_SECS", 30);
        let fake = FakeGitHub::start().await;
        fake.create_installation("acme", &[("contents", "read")]);
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDb::new(Backend::Sqlite, false)
            .await
            .expect("test database");
        let (mut server, pid, base) =
            start_server(opts, &fake, &db.url, dir.path(), "strangers", &[]).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle = proc_status(pid, "VmRSS");
        println!(
            "strangers: {strangers} unsigned connections for {secs} s against {} (idle RSS {} KiB)",
            opts.bin.display(),
            idle
        );

        let addr = base.trim_start_matches("http://").to_string();
        let tally: Tally = Arc::default();
        let zeros = Arc::new(vec![0u8; CHUNK]);
        let tasks: Vec<_> = (0..strangers)
            .map(|i| {
                tokio::spawn(stranger(
                    addr.clone(),
                    kind(i),
                    tally.clone(),
                    zeros.clone(),
                ))
            })
            .collect();

        // GitHub's deliveries during the attack.
        let signed = tokio::spawn({
            let base = base.clone();
            async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .build()
                    .expect("client");
                let mut results = Vec::new();
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                loop {
                    tick.tick().await;
                    let hook = webhooks::sign(
                        "ping",
                        &json!({"zen": "Anything added dilutes everything else.", "hook_id": 1}),
                        SECRET,
                    );
                    let client = client.clone();
                    let base = base.clone();
                    results.push(tokio::spawn(async move {
                        let started = Instant::now();
                        let mut req = client.post(format!("{base}/webhooks/github"));
                        for (k, v) in &hook.headers {
                            req = req.header(k, v);
                        }
                        let status = match req.body(hook.body.clone()).send().await {
                            Ok(r) => r.status().as_u16(),
                            Err(_) => 0,
                        };
                        (status, started.elapsed())
                    }));
                    if results.len() as u64 >= secs * 2 {
                        return results;
                    }
                }
            }
        });

        let started = Instant::now();
        let mut peak = 0;
        while started.elapsed() < Duration::from_secs(secs) {
            peak = peak.max(proc_status(pid, "VmRSS"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let during = proc_status(pid, "VmRSS");
        for t in &tasks {
            t.abort();
        }
        let mut signed_results = Vec::new();
        for r in signed.await.expect("signed deliveries") {
            signed_results.push(r.await.expect("signed delivery"));
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after_5 = proc_status(pid, "VmRSS");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after_15 = proc_status(pid, "VmRSS");
        let hwm = proc_status(pid, "VmHWM");
        stop(&mut server, pid).await;
        drop(db);

        println!("stranger answers (kind: status or `closed` without an answer, count):");
        for (what, n) in tally.lock().expect("tally").iter() {
            println!("  {what}: {n}");
        }
        let accepted = signed_results.iter().filter(|(s, _)| *s == 202).count();
        let mut latencies: Vec<Duration> = signed_results
            .iter()
            .filter(|(s, _)| *s == 202)
            .map(|(_, d)| *d)
            .collect();
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "signed deliveries during the load: {} sent, {accepted} answered 202 (p50 {:.0} ms, max {:.0} ms)",
            signed_results.len(),
            pct(0.5),
            pct(1.0)
        );
        println!(
            "RSS: idle {} MiB, peak sampled {} MiB (kernel high-water mark {} MiB), at the end of the load {} MiB, \
             5 s after {} MiB, 15 s after {} MiB",
            idle / 1024,
            peak / 1024,
            hwm / 1024,
            during / 1024,
            after_5 / 1024,
            after_15 / 1024
        );
    }
}
