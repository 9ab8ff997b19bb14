//! A full scheduled cycle at scale: `digestif serve` over 10,000 repositories.
//!
//! `cargo bench --bench cycle` pushes `DIGESTIF_BENCH_TAGS` (1,000) tags — 100 images with
//! 10 tags each, one small linux/amd64 image per tag — to a CNCF distribution registry on
//! loopback, and creates `DIGESTIF_BENCH_REPOS` (10,000) repositories on the fake GitHub
//! (`tests/support/fake_github`, which checks every request against GitHub's OpenAPI
//! description) over `DIGESTIF_BENCH_INSTALLATIONS` (50) installations of the App. Each
//! repository holds one multi-stage `Dockerfile` whose three `FROM` lines pin three tags
//! (chosen by a fixed hash) by digest, all current. Then, per setup:
//!
//! 1. **onboarding**: the release `digestif serve` starts on an empty database, finds the
//!    installations and scans every repository (nothing is stale: no PR);
//!    `DIGESTIF_BENCH_MOVED_PERCENT` (5) % of the tags are then re-pushed with new images;
//! 2. **moved**: every repository is made due (its `next_scan_at` set to the past, as the
//!    scheduler finds it when its cron time comes) and the server is started again: each
//!    repository that pins a moved tag must get exactly one PR;
//! 3. **unchanged**: the same once more, with nothing changed anywhere.
//!
//! The server is restarted for each cycle, as a daily cycle finds it: the registry answers
//! it cached (for 5 minutes) are gone, and so are its GitHub installation tokens (valid for an
//! hour). A restart also lists the installations and their repositories once (the start-up
//! sync); those requests are counted apart from the per-repository ones.
//!
//! Setups (arguments; all three by default): `sqlite`, `postgres` (the machine's server,
//! `DIGESTIF_TEST_POSTGRES_URL`, its own schema), and `replicas` (`DIGESTIF_BENCH_REPLICAS`,
//! 2, servers on one PostgreSQL schema; `replicas=4` for four). Replicas share tag answers
//! through the database, so they too ask each tag once per cycle; between cycles the
//! shared answers are forgotten, as a day later they would be stale. Printed per cycle: wall time from the start of the
//! server process(es) until every repository was scanned and no job is queued or running;
//! GitHub requests per unchanged and per changed repository (and how many of them were a
//! `304 Not Modified`), with a breakdown by operation; registry requests by kind beside the
//! number of distinct tags the repositories pin; PRs opened; each server's peak RSS and CPU
//! time. The figures go to `benches/results/cycle.json` too (`cycle-sqlite.json` and so on
//! for a run of some setups).
//!
//! `cargo bench --bench cycle -- sweep` runs the SQLite setup (or those named after `sweep`)
//! at each size in `DIGESTIF_BENCH_SWEEP` (1000,2500,5000,10000 repositories; the other
//! settings as above) and draws the chart "cycle time vs number of repositories"
//! (`benches/results/cycle-sweep.svg`, figures in `cycle-sweep.json`); `-- sweep-chart`
//! only redraws the chart from `cycle-sweep.json`.
//!
//! `cargo test --all-targets` runs this binary without `--bench`: 24 repositories over 3
//! installations and 12 tags on SQLite (`cargo test --bench cycle -- replicas=2`: another
//! setup at that size), with the PRs checked (one per repository that pins a
//! moved tag, none elsewhere, none twice) and the registry requests checked: one manifest
//! `HEAD` per distinct tag in each cycle; in the moved cycle, per stale tag, the old and the
//! new manifest and config (`GET`s) for the PR's description (with replicas, up to that
//! once per replica: they share tag answers, not manifests); no `GET` in the unchanged one.

// Shared with the tests; its unit tests (`#[cfg(test)]`) run elsewhere.
#[allow(unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "support/access_log.rs"]
mod access_log;
#[allow(dead_code)]
#[path = "support/fleet.rs"]
mod fleet;
#[allow(dead_code)]
#[path = "support/serve.rs"]
mod serve;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use digestif::store::{Backend, Store};
use fleet::{REFS, Scale, World, env_or};
use serde_json::{Value, json};
use support::backends::TestDb;
use support::fake_github::FakeGitHub;

const SECRET: &str = "bench-webhook-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Sqlite,
    Postgres,
    Replicas(usize),
}

impl Setup {
    fn name(&self) -> String {
        match self {
            Setup::Sqlite => "sqlite".into(),
            Setup::Postgres => "postgres".into(),
            Setup::Replicas(n) => format!("postgres, {n} replicas"),
        }
    }
    fn file_name(&self) -> String {
        match self {
            Setup::Sqlite => "sqlite".into(),
            Setup::Postgres => "postgres".into(),
            Setup::Replicas(2) => "replicas".into(),
            Setup::Replicas(n) => format!("replicas{n}"),
        }
    }
    fn backend(&self) -> Backend {
        match self {
            Setup::Sqlite => Backend::Sqlite,
            _ => Backend::Postgres,
        }
    }
    fn servers(&self) -> usize {
        match self {
            Setup::Replicas(n) => *n,
            _ => 1,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let bin = std::env::var_os("DIGESTIF_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_digestif")));
    let wanted = wanted_setups(&args, bench);
    let (scale, setups) = if bench {
        let setups = if wanted.is_empty() {
            let replicas = env_or("DIGESTIF_BENCH_REPLICAS", 2);
            vec![Setup::Sqlite, Setup::Postgres, Setup::Replicas(replicas)]
        } else {
            wanted
        };
        let scale = Scale {
            repos: env_or("DIGESTIF_BENCH_REPOS", 10_000),
            installations: env_or("DIGESTIF_BENCH_INSTALLATIONS", 50),
            tags: env_or("DIGESTIF_BENCH_TAGS", 1_000),
            moved_percent: env_or("DIGESTIF_BENCH_MOVED_PERCENT", 5),
        };
        (scale, setups)
    } else {
        let scale = Scale {
            repos: 24,
            installations: 3,
            tags: 12,
            moved_percent: 25,
        };
        // `cargo test --bench cycle -- replicas` checks another setup at this size.
        let setups = if wanted.is_empty() {
            vec![Setup::Sqlite]
        } else {
            wanted
        };
        (scale, setups)
    };
    assert!(bin.is_file(), "no digestif binary at {}", bin.display());
    assert!(scale.installations >= 1 && scale.tags >= REFS && scale.repos >= 1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if bench && args.iter().any(|a| a == "sweep-chart") {
        // Redraws the chart from the committed figures, without running anything.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
        let text = std::fs::read_to_string(dir.join("cycle-sweep.json")).expect("cycle-sweep.json");
        let json: Value = serde_json::from_str(&text).expect("cycle-sweep.json is JSON");
        sweep_chart(&json, &dir.join("cycle-sweep.svg"));
        println!("wrote {}", dir.join("cycle-sweep.svg").display());
        return;
    }
    if bench && args.iter().any(|a| a == "sweep") {
        let named = !wanted_setups(&args, bench).is_empty();
        let setups = if named { setups } else { vec![Setup::Sqlite] };
        runtime.block_on(sweep(&bin, scale, &setups));
        return;
    }
    let results = runtime.block_on(run(&bin, scale, &setups, bench));
    if bench {
        // `cycle.json` for the default three setups, `cycle-sqlite.json`,
        // `cycle-postgres-replicas4.json` etc. for a run of others.
        let names: Vec<String> = setups.iter().map(Setup::file_name).collect();
        let file = if names == ["sqlite", "postgres", "replicas"] {
            "cycle.json".to_string()
        } else {
            format!("cycle-{}.json", names.join("-"))
        };
        let out = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("benches/results")
            .join(file);
        let json = json!({
            "scale": {
                "repos": scale.repos,
                "installations": scale.installations,
                "tags": scale.tags,
                "moved_tags": scale.moved(),
            },
            "setups": results,
        });
        std::fs::write(&out, serde_json::to_string_pretty(&json).expect("json"))
            .expect("write results");
        println!("\nwrote {}", out.display());
    }
}

/// The setups named by the arguments: `sqlite`, `postgres`, `replicas` (as many as
/// `DIGESTIF_BENCH_REPLICAS`, default 2) or `replicas=N` (`sweep` and `sweep-chart` are
/// modes, not setups). Other words are an error with
/// `--bench`, and ignored without (`cargo test NAME` passes its filter to every target).
fn wanted_setups(args: &[String], bench: bool) -> Vec<Setup> {
    let mut setups = Vec::new();
    for a in args.iter().filter(|a| !a.starts_with('-')) {
        let setup = match a.split_once('=') {
            None if a == "sqlite" => Setup::Sqlite,
            None if a == "postgres" => Setup::Postgres,
            None if a == "replicas" => Setup::Replicas(env_or("DIGESTIF_BENCH_REPLICAS", 2)),
            None if a == "sweep" || a == "sweep-chart" => continue,
            Some(("replicas", n)) => match n.parse() {
                Ok(n) if n >= 1 => Setup::Replicas(n),
                _ => panic!("replicas={n}: a count of at least 1, please"),
            },
            _ if !bench => continue,
            _ => panic!("unknown setup {a:?} (sqlite, postgres, replicas, replicas=N)"),
        };
        setups.push(setup);
    }
    setups
}

async fn run(bin: &Path, scale: Scale, setups: &[Setup], bench: bool) -> Vec<Value> {
    let started = Instant::now();
    let mut world = World::start(scale.tags).await;
    println!(
        "pushed {} tags ({} images) in {:.1} s",
        scale.tags,
        scale.tags.div_ceil(10),
        started.elapsed().as_secs_f64()
    );
    let mut results = Vec::new();
    for &setup in setups {
        results.push(run_setup(bin, scale, setup, &mut world, bench).await);
    }
    results
}

/// `-- sweep`: the whole run (onboarding, moved, unchanged) at each size of
/// `DIGESTIF_BENCH_SWEEP` (repositories, comma-separated), one registry for all; writes
/// `benches/results/cycle-sweep.json` and the chart `cycle-sweep.svg`.
async fn sweep(bin: &Path, scale: Scale, setups: &[Setup]) {
    let sizes: Vec<usize> = std::env::var("DIGESTIF_BENCH_SWEEP")
        .unwrap_or_else(|_| "1000,2500,5000,10000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("DIGESTIF_BENCH_SWEEP: {s:?} is not a number"))
        })
        .collect();
    let mut world = World::start(scale.tags).await;
    let mut points = Vec::new();
    for &setup in setups {
        for &repos in &sizes {
            let scale = Scale { repos, ..scale };
            let result = run_setup(bin, scale, setup, &mut world, true).await;
            let walls: Vec<f64> = result["cycles"]
                .as_array()
                .expect("cycles")
                .iter()
                .map(|c| c["wall_s"].as_f64().expect("wall_s"))
                .collect();
            points.push(
                json!({"setup": setup.name(), "repos": repos, "wall_s": walls,
                               "result": result}),
            );
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
    let json = json!({
        "scale": {"installations": scale.installations, "tags": scale.tags,
                  "moved_percent": scale.moved_percent},
        "cycles": ["onboarding", "moved", "unchanged"],
        "points": points,
    });
    std::fs::write(
        dir.join("cycle-sweep.json"),
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("write results");
    sweep_chart(&json, &dir.join("cycle-sweep.svg"));
    println!("\nwrote {}", dir.join("cycle-sweep.{json,svg}").display());
}

/// "Cycle time vs number of repositories": one line per setup and cycle.
fn sweep_chart(data: &Value, path: &Path) {
    use plotters::prelude::*;
    let points = data["points"].as_array().expect("points");
    let mut lines: BTreeMap<(String, usize), Vec<(f64, f64)>> = BTreeMap::new();
    for p in points {
        let setup = p["setup"].as_str().expect("setup").to_string();
        let repos = p["repos"].as_f64().expect("repos");
        for (i, w) in p["wall_s"].as_array().expect("wall_s").iter().enumerate() {
            let w = w.as_f64().expect("wall");
            lines
                .entry((setup.clone(), i))
                .or_default()
                .push((repos, w));
        }
    }
    let xmax = points
        .iter()
        .filter_map(|p| p["repos"].as_f64())
        .fold(1.0, f64::max);
    let ymax = lines.values().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).expect("chart");
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Scheduled cycle: wall time vs number of repositories",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..xmax * 1.05, 0.0..ymax)
        .expect("chart");
    chart
        .configure_mesh()
        .x_desc("repositories")
        .y_desc("seconds")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .expect("mesh");
    let colours = [
        RGBColor(25, 118, 210),
        RGBColor(46, 125, 50),
        RGBColor(230, 81, 0),
    ];
    let moved = format!(
        "moved ({}% of tags)",
        data["scale"]["moved_percent"].as_u64().unwrap_or_default()
    );
    let cycles = ["onboarding", moved.as_str(), "unchanged"];
    let setups: BTreeSet<String> = lines.keys().map(|k| k.0.clone()).collect();
    for ((setup, cycle), pts) in &lines {
        let colour = colours[*cycle % colours.len()];
        // The first setup thick, the second thin, in the legend too.
        let width = if setups.len() > 1 && setups.iter().position(|s| s == setup) == Some(1) {
            1
        } else {
            3
        };
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(width)))
            .expect("line")
            .label(format!("{setup}: {}", cycles[*cycle % cycles.len()]))
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 15, y)], colour.stroke_width(width))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .expect("points");
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .expect("legend");
    root.present().expect("write SVG");
}

/// What one cycle cost and did.
#[derive(Debug, Default)]
struct Cycle {
    name: &'static str,
    wall: Duration,
    scanned: usize,
    failed_scans: usize,
    /// Per repository: GitHub requests, and how many of them were 304s.
    per_repo: BTreeMap<String, (u64, u64)>,
    /// Requests not about one repository (installations, tokens), by operation.
    shared: BTreeMap<String, u64>,
    operations_changed: BTreeMap<String, u64>,
    operations_unchanged: BTreeMap<String, u64>,
    /// (method, kind) → count.
    registry: BTreeMap<(String, String), u64>,
    /// Distinct tags asked for by tag.
    registry_tags: usize,
    /// Manifest `HEAD`s by tag beyond the first per tag, and the shortest time between a
    /// tag's `HEAD` and its previous one (whole seconds, as the access log has them): a
    /// repeat at least the answer's TTL (300 s) after is a re-ask of an expired answer.
    repeat_heads: u64,
    repeat_min_gap_s: Option<i64>,
    peak_rss_kib: Vec<u64>,
    cpu_s: Vec<f64>,
}

async fn run_setup(
    bin: &Path,
    scale: Scale,
    setup: Setup,
    world: &mut World,
    bench: bool,
) -> Value {
    println!("\n== {} ({} repositories)", setup.name(), scale.repos);
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeGitHub::start().await;
    let t = Instant::now();
    let (_, pins) = fleet::populate(&fake, world, &scale);
    println!(
        "created {} repositories in {:.1} s",
        scale.repos,
        t.elapsed().as_secs_f64()
    );
    // Migrations are the server's job: the database starts empty.
    let db = TestDb::new(setup.backend(), false)
        .await
        .expect("test database");
    let url = fleet::database_url(&db);
    let app = serve::App {
        id: fake.app_id(),
        private_key_pem: fake.private_key_pem(),
        webhook_secret: SECRET,
        github_url: fake.url(),
    };
    let ctx = Ctx {
        bin,
        app: &app,
        fake: &fake,
        store: &db.store,
        url: &url,
        dir: dir.path(),
        log: world.registry.access_log_path(),
        setup,
        repos: scale.repos,
        env: world.server_env(),
    };

    let onboarding = ctx.cycle("onboarding", &BTreeSet::new()).await;

    // Move some tags upstream.
    let moved = world.move_tags(&scale).await;
    let changed: BTreeSet<String> = pins
        .iter()
        .filter(|(_, tags)| tags.iter().any(|t| moved.contains(t)))
        .map(|(r, _)| r.clone())
        .collect();
    println!(
        "moved {} tags: {} repositories pin at least one",
        moved.len(),
        changed.len()
    );

    fleet::make_all_due(&db.store).await;
    let moved_cycle = ctx.cycle("moved", &changed).await;
    fleet::make_all_due(&db.store).await;
    let unchanged = ctx.cycle("unchanged", &changed).await;

    // Every repository that pins a moved tag has exactly one open PR; no other has any.
    let (opened, wrong) = count_prs(&fake, &pins, &changed);
    let violations = fake.violations().len();
    println!(
        "PRs opened: {opened} (repositories with a moved tag: {}); wrong: {}; requests GitHub would reject: {violations}",
        changed.len(),
        wrong.len()
    );
    let distinct_pinned: BTreeSet<usize> = pins.values().flatten().copied().collect();
    let stale_tags = moved.intersection(&distinct_pinned).count();
    for c in [&onboarding, &moved_cycle, &unchanged] {
        c.print(&changed, distinct_pinned.len());
    }
    if !bench {
        let cycles = [&onboarding, &moved_cycle, &unchanged];
        check_smoke(
            setup,
            &scale,
            cycles,
            &wrong,
            &fake,
            distinct_pinned.len(),
            stale_tags,
        );
    }
    db.store.close().await;
    json!({
        "setup": setup.name(),
        "prs_opened": opened,
        "repos_with_moved_tags": changed.len(),
        "wrong": wrong.len(),
        "violations": violations,
        "distinct_tags_pinned": distinct_pinned.len(),
        "stale_tags": stale_tags,
        "cycles": [onboarding.json(&changed), moved_cycle.json(&changed), unchanged.json(&changed)],
    })
}

/// (PRs opened, repositories whose PRs are not one if it pins a moved tag, none if not).
fn count_prs(
    fake: &FakeGitHub,
    pins: &fleet::Pins,
    changed: &BTreeSet<String>,
) -> (usize, Vec<String>) {
    let mut wrong = Vec::new();
    let mut opened = 0;
    for repo in pins.keys() {
        let prs = fake.pulls(repo);
        opened += prs.len();
        let want = usize::from(changed.contains(repo));
        if prs.len() != want {
            wrong.push(format!("{repo}: {} PRs, expected {want}", prs.len()));
        }
    }
    (opened, wrong)
}

/// The smoke run's checks: PRs as expected, every repository scanned once per cycle, one
/// manifest `HEAD` per distinct tag, the PR descriptions' `GET`s only where due.
fn check_smoke(
    setup: Setup,
    scale: &Scale,
    cycles: [&Cycle; 3],
    wrong: &[String],
    fake: &FakeGitHub,
    distinct: usize,
    stale_tags: usize,
) {
    assert!(wrong.is_empty(), "PRs not as expected: {wrong:#?}");
    assert!(fake.violations().is_empty(), "{:#?}", fake.violations());
    for c in cycles {
        assert_eq!(c.scanned, scale.repos, "{}: repositories scanned", c.name);
        assert_eq!(c.failed_scans, 0, "{}: failed scans", c.name);
        assert_eq!(
            c.registry_tags, distinct,
            "{}: distinct tags asked for",
            c.name
        );
        assert_eq!(
            c.registry_count("HEAD", "manifest by tag"),
            distinct as u64,
            "{}: one manifest HEAD per distinct tag: {:?}",
            c.name,
            c.registry
        );
    }
    // Per stale tag, for the PR's description: the old and the new manifest and their
    // configs (README, "Registry requests"); the next cycle remembers them. Replicas
    // share only tag answers: each one that writes a PR body for a tag fetches these.
    let servers = setup.servers() as u64;
    for (kind, n) in [("manifest by digest", 2), ("blob", 2)] {
        let got = cycles[1].registry_count("GET", kind);
        let once = n * stale_tags as u64;
        assert!(
            (once..=once * servers).contains(&got),
            "GET {kind} in the moved cycle: {got}, expected {once} per server: {:?}",
            cycles[1].registry
        );
    }
    let gets: u64 = cycles[2]
        .registry
        .iter()
        .filter(|((m, _), _)| m == "GET")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        gets, 0,
        "GETs in the unchanged cycle: {:?}",
        cycles[2].registry
    );
}

/// What a cycle needs to run.
struct Ctx<'a> {
    bin: &'a Path,
    app: &'a serve::App<'a>,
    fake: &'a FakeGitHub,
    store: &'a Store,
    url: &'a str,
    dir: &'a Path,
    log: PathBuf,
    setup: Setup,
    repos: usize,
    /// The registry settings.
    env: Vec<(&'static str, String)>,
}

impl Ctx<'_> {
    /// Starts the server(s), waits until every repository was scanned since and no job is
    /// queued or running, stops them, and counts.
    async fn cycle(&self, name: &'static str, changed: &BTreeSet<String>) -> Cycle {
        let gh_from = self.fake.requests().len();
        let reg_from = access_log::offset(&self.log);
        let since = Utc::now();
        let started = Instant::now();
        let mut servers = Vec::new();
        for i in 0..self.setup.servers() {
            let log = self.dir.join(format!("server-{name}-{i}.log"));
            servers.push(serve::start(self.bin, self.app, self.url, &log, &self.env).await);
        }
        let (scanned, failed_scans, wall) = fleet::wait_for_cycle(
            self.store,
            self.repos,
            since,
            started,
            Duration::from_secs(3 * 3600),
        )
        .await;
        let peak_rss_kib = servers
            .iter()
            .map(|s| serve::proc_status(s.pid, "VmHWM"))
            .collect();
        let cpu_s = servers
            .iter()
            .map(|s| serve::proc_cpu_seconds(s.pid))
            .collect();
        for s in servers {
            s.stop().await;
        }

        let mut c = Cycle {
            name,
            wall,
            scanned,
            failed_scans,
            peak_rss_kib,
            cpu_s,
            ..Default::default()
        };
        for r in &self.fake.requests()[gh_from..] {
            let op = r.operation.clone().unwrap_or_else(|| r.path.clone());
            match repo_of(&r.path) {
                Some(repo) => {
                    let e = c.per_repo.entry(repo.clone()).or_default();
                    e.0 += 1;
                    e.1 += u64::from(r.not_modified);
                    let ops = if changed.contains(&repo) {
                        &mut c.operations_changed
                    } else {
                        &mut c.operations_unchanged
                    };
                    let op = if r.not_modified {
                        format!("{op} (304)")
                    } else {
                        op
                    };
                    *ops.entry(op).or_default() += 1;
                }
                None => *c.shared.entry(op).or_default() += 1,
            }
        }
        let mut tags: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for r in access_log::since(&self.log, reg_from) {
            let kind = access_log::kind(&r.path);
            if kind == "manifest by tag" {
                let heads = tags.entry(r.path.clone()).or_default();
                if r.method == "HEAD" {
                    heads.push(r.time.map(|t| t.timestamp()).unwrap_or_default());
                }
            }
            let kind = if r.status.starts_with('2') {
                kind.to_string()
            } else {
                format!("{kind} ({})", r.status)
            };
            *c.registry.entry((r.method, kind)).or_default() += 1;
        }
        c.registry_tags = tags.len();
        for times in tags.values() {
            c.repeat_heads += times.len().saturating_sub(1) as u64;
            let gaps = times.windows(2).map(|w| w[1] - w[0]);
            c.repeat_min_gap_s = gaps.chain(c.repeat_min_gap_s).min();
        }
        c
    }
}

/// `owner/name` of a `/repos/{owner}/{name}/…` path, lower-cased.
fn repo_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/repos/")?;
    let mut parts = rest.splitn(3, '/');
    let (owner, name) = (parts.next()?, parts.next()?);
    Some(format!("{owner}/{name}").to_ascii_lowercase())
}

impl Cycle {
    fn registry_count(&self, method: &str, kind: &str) -> u64 {
        self.registry
            .get(&(method.to_string(), kind.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// (repositories, requests, 304s) over the changed or the unchanged repositories.
    fn github(&self, changed: &BTreeSet<String>, want_changed: bool) -> (usize, u64, u64) {
        let mut n = 0;
        let (mut req, mut nm) = (0, 0);
        for (repo, (r, m)) in &self.per_repo {
            if changed.contains(repo) == want_changed {
                n += 1;
                req += r;
                nm += m;
            }
        }
        (n, req, nm)
    }

    fn print(&self, changed: &BTreeSet<String>, distinct_tags: usize) {
        let per = |(n, r, m): (usize, u64, u64)| {
            if n == 0 {
                "-".to_string()
            } else {
                format!(
                    "{:.2} ({:.2} of them 304) over {n}",
                    r as f64 / n as f64,
                    m as f64 / n as f64
                )
            }
        };
        println!(
            "-- {}: {:.1} s; scanned {} (failed {}); peak RSS {} KiB; CPU {} s",
            self.name,
            self.wall.as_secs_f64(),
            self.scanned,
            self.failed_scans,
            self.peak_rss_kib
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" + "),
            self.cpu_s
                .iter()
                .map(|c| format!("{c:.1}"))
                .collect::<Vec<_>>()
                .join(" + "),
        );
        println!(
            "   GitHub per unchanged repository: {}",
            per(self.github(changed, false))
        );
        println!(
            "   GitHub per changed repository:   {}",
            per(self.github(changed, true))
        );
        for (label, ops) in [
            ("not about one repository", &self.shared),
            ("unchanged", &self.operations_unchanged),
            ("changed", &self.operations_changed),
        ] {
            if !ops.is_empty() {
                let list: Vec<String> = ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("   {label}: {}", list.join(", "));
            }
        }
        let reg: Vec<String> = self
            .registry
            .iter()
            .map(|((m, k), n)| format!("{m} {k} {n}"))
            .collect();
        println!(
            "   registry: {} (distinct tags asked {}, pinned {distinct_tags})",
            reg.join(", "),
            self.registry_tags
        );
        if let Some(gap) = self.repeat_min_gap_s {
            println!(
                "   a tag asked again: {} times, the soonest {gap} s after that tag's previous HEAD",
                self.repeat_heads
            );
        }
    }

    fn json(&self, changed: &BTreeSet<String>) -> Value {
        let (un, ur, um) = self.github(changed, false);
        let (cn, cr, cm) = self.github(changed, true);
        json!({
            "cycle": self.name,
            "wall_s": self.wall.as_secs_f64(),
            "scanned": self.scanned,
            "failed_scans": self.failed_scans,
            "github": {
                "unchanged_repos": un, "unchanged_requests": ur, "unchanged_304": um,
                "changed_repos": cn, "changed_requests": cr, "changed_304": cm,
                "shared": self.shared,
                "operations_unchanged": self.operations_unchanged,
                "operations_changed": self.operations_changed,
            },
            "registry": self.registry.iter().map(|((m, k), n)| json!({"method": m, "kind": k, "count": n})).collect::<Vec<_>>(),
            "registry_distinct_tags": self.registry_tags,
            "registry_repeat_heads": self.repeat_heads,
            "registry_repeat_min_gap_s": self.repeat_min_gap_s,
            "peak_rss_kib": self.peak_rss_kib,
            "cpu_s": self.cpu_s,
        })
    }
}
