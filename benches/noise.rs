//! A simulated month of upstream churn: what digestif's server does with it (default
//! configuration), beside what Renovate reports for the same sequence.
//!
//! `cargo bench --bench noise` pushes 20 multi-platform images (linux/amd64 + linux/arm64,
//! with BuildKit-style attestation manifests) to a CNCF distribution registry on loopback,
//! installs the App on a repository of the fake GitHub whose Dockerfiles pin each image's
//! index (and four of them also as `FROM --platform=linux/amd64` pins of the amd64 image),
//! and then lives through 30 days. Each day some tags change upstream:
//!
//! | images | what happens upstream |
//! |---|---|
//! | 0–3   | rolling tag: rebuilt every day (new images for both platforms) |
//! | 4–7   | the index re-pushed every third day with only a new attestation manifest |
//! | 8–11  | only the linux/arm64 image rebuilt, weekly |
//! | 12–15 | rebuilt on day 5, the tag put back to the pinned index on day 9 |
//! | 16–19 | a real base-image update on day 15 |
//!
//! and the day's scheduled scan runs through the whole server (scan job → plan → PRs on the
//! fake GitHub). Nobody merges or closes anything, so the pins on `main` stay as they were:
//! the worst case for noise. Per day it records digestif's open PRs, PRs opened, updated
//! (a new commit on the branch) and closed, and — from `digestif scan --format json` on the
//! same files — which references are stale and which moved tags were held back as no-ops,
//! and why. Beside it, Renovate 39.264.1 (`--dry-run=lookup`, default configuration) looks
//! at the same files: digest updates per run and the branches (one PR each) they would go
//! to, counted the same way (a branch that appears is a PR opened, a branch whose new digest
//! changed is a PR updated, a branch that disappears is a PR closed).
//!
//! Prints a table per day and the month's totals, and writes `benches/results/noise.svg`
//! ("PRs per simulated month") and `benches/results/noise.json`. `-- --no-renovate` leaves
//! Renovate out; `DIGESTIF_BENCH_DAYS` shortens the month. `cargo test --all-targets` runs
//! this binary without `--bench`: ten days, digestif only, with the expected PR counts
//! checked, then exits.

// Shared with the tests; its unit tests (`#[cfg(test)]`, compiled when `--all-targets`
// builds benches in test mode) run elsewhere.
#[allow(unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/renovate.rs"]
mod renovate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::app::*;
use support::fake_github::FakeGitHub;
use support::registry::{Image, TestRegistry};

const REPO: &str = "acme/widgets";

const IMAGES: [(&str, &str); 20] = [
    ("library/nginx", "mainline"),
    ("library/node", "22-alpine"),
    ("acme/base", "nightly"),
    ("library/python", "3.13-slim"),
    ("library/alpine", "3.22"),
    ("library/golang", "1.24-alpine"),
    ("library/redis", "7.4-alpine"),
    ("library/postgres", "17-alpine"),
    ("library/debian", "bookworm-slim"),
    ("library/ubuntu", "24.04"),
    ("library/busybox", "1.37"),
    ("library/traefik", "v3.3"),
    ("library/rabbitmq", "4.1-alpine"),
    ("library/mariadb", "11.8"),
    ("grafana/grafana", "12.0.0"),
    ("prom/prometheus", "v3.2.1"),
    ("library/eclipse-temurin", "21-jre"),
    ("library/memcached", "1.6-alpine"),
    ("library/haproxy", "3.2"),
    ("library/caddy", "2.10"),
];

/// Images 8–11 are also pinned by their amd64 image.
const PLATFORM_PINNED: std::ops::Range<usize> = 8..12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Rebuilt,
    AttestationOnly,
    Arm64Rebuilt,
    Reverted,
}

impl Event {
    fn label(self) -> &'static str {
        match self {
            Event::Rebuilt => "rebuilt",
            Event::AttestationOnly => "attestation-only re-push",
            Event::Arm64Rebuilt => "arm64 rebuilt",
            Event::Reverted => "reverted",
        }
    }
}

/// What happens to image `i` upstream on `day` (1-based).
fn event(i: usize, day: usize) -> Option<Event> {
    match i {
        0..4 => Some(Event::Rebuilt),
        4..8 => day.is_multiple_of(3).then_some(Event::AttestationOnly),
        8..12 => day.is_multiple_of(7).then_some(Event::Arm64Rebuilt),
        12..16 => match day {
            5 => Some(Event::Rebuilt),
            9 => Some(Event::Reverted),
            _ => None,
        },
        _ => (day == 15).then_some(Event::Rebuilt),
    }
}

struct Upstream {
    repo: &'static str,
    tag: &'static str,
    /// As pinned on `main`.
    pinned: (Image, Image, String),
    pinned_salt: String,
    /// What the tag is now.
    now: (Image, Image, String),
    generation: usize,
}

async fn push_index(
    reg: &TestRegistry,
    up: &Upstream,
    amd: &Image,
    arm: &Image,
    salt: &str,
) -> String {
    reg.push_index(up.repo, up.tag, &[amd, arm], false, salt, true)
        .await
}

async fn initial(reg: &TestRegistry, repo: &'static str, tag: &'static str) -> Upstream {
    let salt = format!("{repo}:{tag}:0");
    let amd = reg
        .push_image(repo, None, "linux/amd64", &salt, false)
        .await;
    let arm = reg
        .push_image(repo, None, "linux/arm64", &salt, false)
        .await;
    let index = reg
        .push_index(repo, tag, &[&amd, &arm], false, &salt, true)
        .await;
    let pinned = (amd, arm, index);
    Upstream {
        repo,
        tag,
        now: pinned.clone(),
        pinned,
        pinned_salt: salt,
        generation: 0,
    }
}

async fn apply(reg: &TestRegistry, up: &mut Upstream, e: Event) {
    up.generation += 1;
    let salt = format!("{}:{}:{}", up.repo, up.tag, up.generation);
    let (amd, arm) = match e {
        Event::Rebuilt => (
            reg.push_image(up.repo, None, "linux/amd64", &salt, false)
                .await,
            reg.push_image(up.repo, None, "linux/arm64", &salt, false)
                .await,
        ),
        Event::Arm64Rebuilt => (
            up.now.0.clone(),
            reg.push_image(up.repo, None, "linux/arm64", &salt, false)
                .await,
        ),
        Event::AttestationOnly => (up.now.0.clone(), up.now.1.clone()),
        Event::Reverted => (up.pinned.0.clone(), up.pinned.1.clone()),
    };
    let salt = if e == Event::Reverted {
        up.pinned_salt.clone()
    } else {
        salt
    };
    let index = push_index(reg, up, &amd, &arm, &salt).await;
    if e == Event::Reverted {
        assert_eq!(
            index, up.pinned.2,
            "the same index bytes give the same digest"
        );
    }
    up.now = (amd, arm, index);
}

fn files(reg: &TestRegistry, ups: &[Upstream]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ups
        .iter()
        .map(|u| {
            let name = u.repo.rsplit('/').next().unwrap_or(u.repo);
            (
                format!("services/{name}/Dockerfile"),
                format!(
                    "FROM {}\nRUN make -C /src install\nUSER 65532\n",
                    reg.reference(u.repo, u.tag, Some(&u.pinned.2))
                ),
            )
        })
        .collect();
    let mut platform = String::new();
    for (n, i) in PLATFORM_PINNED.enumerate() {
        let u = &ups[i];
        platform.push_str(&format!(
            "FROM --platform=linux/amd64 {} AS part{n}\nRUN make -C /src part{n}\n\n",
            reg.reference(u.repo, u.tag, Some(&u.pinned.0.digest))
        ));
    }
    platform.push_str("FROM scratch\nCOPY --from=part0 /out /out\n");
    out.push(("platform/Dockerfile".into(), platform));
    out
}

/// One day's observations.
#[derive(Debug, Default, Clone)]
struct Day {
    events: Vec<String>,
    open_prs: usize,
    opened: usize,
    updated: usize,
    closed: usize,
    stale: usize,
    /// reason → references whose tag moved from the pin but were not proposed
    held_back: BTreeMap<&'static str, usize>,
    renovate: Option<RenovateDay>,
}

#[derive(Debug, Default, Clone)]
struct RenovateDay {
    digest_updates: usize,
    branches: usize,
    opened: usize,
    updated: usize,
    closed: usize,
    secs: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let with_renovate = bench && !args.iter().any(|a| a == "--no-renovate");
    let days = std::env::var("DIGESTIF_BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 30 } else { 10 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(days, bench, with_renovate));
}

async fn run(days: usize, bench: bool, with_renovate: bool) {
    let renovate = with_renovate.then(renovate::ensure);
    let machine = renovate::machine();
    println!("machine: {machine}");
    let reg = TestRegistry::start().await;
    let mut ups = Vec::new();
    for (repo, tag) in IMAGES {
        ups.push(initial(&reg, repo, tag).await);
    }
    let files = files(&reg, &ups);
    let scratch = tempfile::tempdir().expect("temp dir");
    let corpus = scratch.path().join("corpus");
    for (path, text) in &files {
        let full = corpus.join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    }
    renovate::commit_all(&corpus);
    let proxy = renovate::RefusingProxy::start();
    let bin = std::env::var_os("DIGESTIF_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_digestif")));

    let fake = FakeGitHub::start().await;
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let (server, _inst) = installed(&fake, &reg, &refs).await;
    assert!(
        fake.pulls(REPO).is_empty(),
        "nothing moved yet, so no PR on day 0"
    );

    let mut log: Vec<Day> = Vec::new();
    let mut left_loopback: Vec<String> = Vec::new();
    // PR number → branch head when last seen open.
    let mut heads: BTreeMap<u64, String> = BTreeMap::new();
    let mut seen_prs: BTreeSet<u64> = BTreeSet::new();
    // Renovate branch → the digests it would hold.
    let mut branches: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for day in 1..=days {
        let mut today = Day::default();
        for (i, up) in ups.iter_mut().enumerate() {
            if let Some(e) = event(i, day) {
                apply(&reg, up, e).await;
                today
                    .events
                    .push(format!("{}:{} {}", up.repo, up.tag, e.label()));
            }
        }
        server.scan(REPO).await;

        // digestif's PRs.
        let pulls = fake.pulls(REPO);
        let branch_heads = fake.branches(REPO);
        let mut open_now = BTreeMap::new();
        for p in &pulls {
            if p.state == "open" {
                let head_ref = p
                    .pull
                    .as_ref()
                    .map(|x| x.head_ref.clone())
                    .unwrap_or_default();
                open_now.insert(
                    p.number,
                    branch_heads.get(&head_ref).cloned().unwrap_or_default(),
                );
            }
        }
        for (n, head) in &open_now {
            if !seen_prs.contains(n) {
                today.opened += 1;
            } else if heads.get(n).is_some_and(|h| h != head) {
                today.updated += 1;
            }
        }
        today.closed = heads.keys().filter(|n| !open_now.contains_key(n)).count();
        today.open_prs = open_now.len();
        seen_prs.extend(open_now.keys().copied());
        heads = open_now;

        // Why moved tags were not proposed: the CLI's verdict on the same files.
        let scan = scan_json(&bin, &proxy, &corpus, &reg.addr, scratch.path());
        for r in scan["references"].as_array().into_iter().flatten() {
            let status = r["status"].as_str().unwrap_or_default();
            let pinned = r["digest"].as_str().unwrap_or_default();
            let up = ups
                .iter()
                .find(|u| u.pinned.2 == pinned || u.pinned.0.digest == pinned)
                .expect("a pinned digest of ours");
            let moved = up.now.2 != up.pinned.2;
            let ever_moved = up.generation > 0;
            match status {
                "stale" => today.stale += 1,
                "unchanged-content" => {
                    *today
                        .held_back
                        .entry("index re-pushed, no platform image changed")
                        .or_default() += 1
                }
                "up-to-date" if moved => {
                    *today
                        .held_back
                        .entry("the pinned platform's image did not change")
                        .or_default() += 1
                }
                "up-to-date" if ever_moved => {
                    *today
                        .held_back
                        .entry("the tag is back at the pinned digest")
                        .or_default() += 1
                }
                "up-to-date" => {}
                other => panic!("unexpected status {other}: {r}"),
            }
        }

        // Renovate on the same files.
        if let Some(entry) = &renovate {
            let base = scratch.path().join(format!("renovate-{day}"));
            let mut cmd = renovate::command(&proxy, entry, &corpus, &base, &reg.addr, false);
            let start = std::time::Instant::now();
            let out = cmd.output().expect("renovate");
            let secs = start.elapsed().as_secs_f64();
            let lookup = renovate::read(&base, &out);
            let mut now: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            let mut rd = RenovateDay {
                secs,
                ..RenovateDay::default()
            };
            for d in &lookup.deps {
                if let (Some(new), Some(branch)) = (&d.digest_update, &d.branch) {
                    rd.digest_updates += 1;
                    now.entry(branch.clone()).or_default().insert(new.clone());
                }
            }
            for (b, digests) in &now {
                match branches.get(b) {
                    None => rd.opened += 1,
                    Some(old) if old != digests => rd.updated += 1,
                    Some(_) => {}
                }
            }
            rd.closed = branches.keys().filter(|b| !now.contains_key(*b)).count();
            rd.branches = now.len();
            branches = now;
            today.renovate = Some(rd);
        }
        left_loopback.extend(proxy.take());
        print_day(day, &today);
        log.push(today);
    }
    server.stop().await;
    fake.assert_no_violations();

    let totals = Totals::of(&log);
    totals.print();
    println!(
        "attempts to leave loopback (refused): {} {left_loopback:?}",
        left_loopback.len()
    );
    if !bench {
        totals.check_smoke(days);
        assert!(left_loopback.is_empty(), "left loopback: {left_loopback:?}");
        println!("noise: harness checked over {days} days; run `cargo bench --bench noise`");
        chart(&totals, &log, &scratch.path().join("noise.svg"));
        return;
    }
    let out_dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/results"));
    std::fs::create_dir_all(&out_dir).expect("results dir");
    chart(&totals, &log, &out_dir.join("noise.svg"));
    let figures = json!({
        "machine": machine,
        "days": days,
        "totals": totals.json(),
        "left_loopback": left_loopback,
        "per_day": log.iter().enumerate().map(|(i, d)| json!({
            "day": i + 1,
            "events": d.events,
            "digestif": {"open_prs": d.open_prs, "opened": d.opened, "updated": d.updated,
                         "closed": d.closed, "stale_refs": d.stale, "held_back": d.held_back},
            "renovate": d.renovate.as_ref().map(|r| json!({
                "digest_updates": r.digest_updates, "branches": r.branches, "opened": r.opened,
                "updated": r.updated, "closed": r.closed, "secs": r.secs})),
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        out_dir.join("noise.json"),
        serde_json::to_string_pretty(&figures).expect("json"),
    )
    .expect("write figures");
    println!("wrote {}/noise.{{svg,json}}", out_dir.display());
}

fn scan_json(
    bin: &Path,
    proxy: &renovate::RefusingProxy,
    corpus: &Path,
    registry: &str,
    scratch: &Path,
) -> Value {
    let home = scratch.join("digestif-home");
    std::fs::create_dir_all(&home).expect("home");
    let out = proxy
        .command(bin, corpus, &home)
        .args(["scan", "--format", "json", "."])
        .env("DOCKER_CONFIG", &home)
        .env("DIGESTIF_INSECURE_REGISTRIES", registry)
        .output()
        .expect("digestif scan");
    assert!(
        out.status.success(),
        "digestif scan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("scan JSON")
}

fn print_day(day: usize, d: &Day) {
    let held: Vec<String> = d
        .held_back
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let r = d
        .renovate
        .as_ref()
        .map(|r| {
            format!(
                " | Renovate: {} digest updates on {} branches, +{} ~{} -{} ({:.1} s)",
                r.digest_updates, r.branches, r.opened, r.updated, r.closed, r.secs
            )
        })
        .unwrap_or_default();
    println!(
        "day {day:>2}: {} events | digestif: {} open PR, +{} ~{} -{}, {} refs stale, held back: {}{r}",
        d.events.len(),
        d.open_prs,
        d.opened,
        d.updated,
        d.closed,
        d.stale,
        if held.is_empty() {
            "-".into()
        } else {
            held.join(", ")
        },
    );
}

#[derive(Debug, Default)]
struct Totals {
    events: usize,
    opened: usize,
    updated: usize,
    closed: usize,
    held_back: BTreeMap<&'static str, usize>,
    renovate: Option<RenovateDay>,
}

impl Totals {
    fn of(log: &[Day]) -> Totals {
        let mut t = Totals::default();
        for d in log {
            t.events += d.events.len();
            t.opened += d.opened;
            t.updated += d.updated;
            t.closed += d.closed;
            for (k, v) in &d.held_back {
                *t.held_back.entry(*k).or_default() += v;
            }
            if let Some(r) = &d.renovate {
                let tr = t.renovate.get_or_insert_with(RenovateDay::default);
                tr.digest_updates += r.digest_updates;
                tr.opened += r.opened;
                tr.updated += r.updated;
                tr.closed += r.closed;
                tr.secs += r.secs;
                tr.branches = tr.branches.max(r.branches);
            }
        }
        t
    }

    fn print(&self) {
        println!(
            "\nover {} upstream events: digestif opened {} PR(s), updated them {} time(s), closed {}; references held back (reference-days): {:?}",
            self.events, self.opened, self.updated, self.closed, self.held_back
        );
        if let Some(r) = &self.renovate {
            println!(
                "Renovate: {} digest updates reported over the runs; as PRs: {} opened, {} updated, {} closed; at most {} branches at once",
                r.digest_updates, r.opened, r.updated, r.closed, r.branches
            );
        }
    }

    /// Under `cargo test`: one PR (default grouping), kept current in place, never closed
    /// while the rolling images keep it needed; the no-ops held back for their reasons.
    fn check_smoke(&self, days: usize) {
        assert_eq!(self.opened, 1, "one grouped PR");
        assert_eq!(self.closed, 0);
        // The rolling images move daily, so the PR gets a new commit every day after the first.
        assert_eq!(self.updated, days - 1);
        assert!(
            self.held_back
                .contains_key("index re-pushed, no platform image changed")
        );
        assert!(
            self.held_back
                .contains_key("the pinned platform's image did not change")
        );
        assert!(
            self.held_back
                .contains_key("the tag is back at the pinned digest")
        );
    }

    fn json(&self) -> Value {
        json!({
            "upstream_events": self.events,
            "digestif": {"opened": self.opened, "updated": self.updated, "closed": self.closed,
                         "held_back_reference_days": self.held_back},
            "renovate": self.renovate.as_ref().map(|r| json!({
                "digest_updates": r.digest_updates, "opened": r.opened, "updated": r.updated,
                "closed": r.closed, "max_branches": r.branches, "total_secs": r.secs})),
        })
    }
}

/// "PRs per simulated month": opened, updated, closed for each tool.
fn chart(t: &Totals, log: &[Day], path: &Path) {
    use plotters::prelude::*;
    let r = t.renovate.clone().unwrap_or_default();
    let groups = [
        ("PRs opened", t.opened as f64, r.opened as f64),
        ("PR updates", t.updated as f64, r.updated as f64),
        ("PRs closed", t.closed as f64, r.closed as f64),
    ];
    let root = SVGBackend::new(path, (900, 380)).into_drawing_area();
    root.fill(&WHITE).expect("chart");
    let (left, right) = root.split_horizontally(450);
    let max = groups.iter().flat_map(|g| [g.1, g.2]).fold(1.0, f64::max) * 1.25;
    let mut chart = ChartBuilder::on(&left)
        .caption(
            format!("PRs per simulated month ({} days)", log.len()),
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(10)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..3.0, 0.0..max)
        .expect("chart");
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .draw()
        .expect("mesh");
    let green = RGBColor(46, 125, 50);
    let blue = RGBColor(25, 118, 210);
    for (i, (name, d, rv)) in groups.iter().enumerate() {
        let x = i as f64;
        chart
            .draw_series([
                Rectangle::new([(x + 0.1, 0.0), (x + 0.45, *d)], green.filled()),
                Rectangle::new([(x + 0.5, 0.0), (x + 0.85, *rv)], blue.filled()),
            ])
            .expect("bars");
        chart
            .draw_series([
                Text::new(
                    format!("{d}"),
                    (x + 0.18, d + max * 0.02),
                    ("sans-serif", 14),
                ),
                Text::new(
                    format!("{rv}"),
                    (x + 0.58, rv + max * 0.02),
                    ("sans-serif", 14),
                ),
                Text::new(name.to_string(), (x + 0.1, max * 0.95), ("sans-serif", 14)),
            ])
            .expect("labels");
    }
    chart
        .draw_series([
            Rectangle::new([(2.0, max * 0.80), (2.08, max * 0.84)], green.filled()),
            Rectangle::new([(2.0, max * 0.73), (2.08, max * 0.77)], blue.filled()),
        ])
        .expect("legend");
    chart
        .draw_series([
            Text::new("digestif", (2.12, max * 0.845), ("sans-serif", 13)),
            Text::new("Renovate 39.264.1", (2.12, max * 0.775), ("sans-serif", 13)),
        ])
        .expect("legend text");

    // Right: per day, references digestif's PR holds vs Renovate's digest updates.
    let days = log.len().max(1) as f64;
    let ymax = log
        .iter()
        .flat_map(|d| [d.stale, d.renovate.as_ref().map_or(0, |r| r.digest_updates)])
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.2;
    let mut per_day = ChartBuilder::on(&right)
        .caption("Per day: proposed digest changes", ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(1.0..days, 0.0..ymax)
        .expect("chart");
    per_day.configure_mesh().x_desc("day").draw().expect("mesh");
    per_day
        .draw_series(LineSeries::new(
            log.iter()
                .enumerate()
                .map(|(i, d)| (i as f64 + 1.0, d.stale as f64)),
            green.stroke_width(2),
        ))
        .expect("line")
        .label("digestif: references in its one PR")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], green.stroke_width(2)));
    if log.iter().any(|d| d.renovate.is_some()) {
        per_day
            .draw_series(LineSeries::new(
                log.iter().enumerate().map(|(i, d)| {
                    (
                        i as f64 + 1.0,
                        d.renovate.as_ref().map_or(0, |r| r.digest_updates) as f64,
                    )
                }),
                blue.stroke_width(2),
            ))
            .expect("line")
            .label("Renovate: digest updates in its report")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], blue.stroke_width(2)));
    }
    per_day
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .expect("legend");
    root.present().expect("write SVG");
}
