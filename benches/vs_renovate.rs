//! digestif beside Renovate on the same work: one repository, one registry, moved tags.
//!
//! `cargo bench --bench vs_renovate` starts a CNCF distribution registry (`docker-registry`)
//! on loopback with its access log on, pushes 100 tags (multi-platform indexes with BuildKit-
//! style attestation manifests, and single-platform images), writes a git repository of 200
//! files (Dockerfiles, Compose files, Kubernetes manifests, GitHub Actions workflows) holding
//! 500 references pinned by digest, moves 40 of the tags, and then runs, alternately and
//! several times (`DIGESTIF_BENCH_RUNS`, 5), with fresh state each run:
//! - `digestif scan --format json` (the release binary under `cargo bench`), and
//! - Renovate 39.264.1 (`--platform=local --dry-run=lookup --report-type=file`), installed
//!   with `npm install --ignore-scripts` into `DIGESTIF_BENCH_RENOVATE_DIR`
//!   (`/var/tmp/renovate`) when it is not there yet.
//!
//! It prints the median wall time of each, the registry requests each sent (from the
//! registry's access log, by method and by kind of request), and how the two agree on which
//! references are stale, per kind of tag move and pin, against what the benchmark knows it
//! changed. It writes `benches/results/vs-renovate.svg` (time and requests, side by side) and
//! `benches/results/vs-renovate.json` (every figure); BENCHMARKS.md explains them.
//!
//! Docker Hub images are written `docker.io/library/python:3.12-slim@sha256:…` and served
//! by the local registry: digestif through `DIGESTIF_REGISTRY_MIRRORS=docker.io=…`, Renovate
//! through `registryAliases` (which match a prefix, so the corpus spells out `docker.io/`).
//! The other images are named `127.0.0.1:PORT/acme/…`. Neither tool may reach anything but
//! loopback: both run with `HTTP_PROXY`/`HTTPS_PROXY` pointing at a proxy in this process
//! that refuses every request and records what was asked (`NO_PROXY=127.0.0.1`).
//!
//! `-- --small` runs the same with 20 files, 50 references and 10 tags (for development).
//! `cargo test --all-targets` runs this binary without `--bench`: it then checks the harness
//! on that small corpus with digestif alone (Renovate is not installed or run) and exits.

#[path = "support/access_log.rs"]
#[allow(dead_code)] // the request times are for the cycle bench
mod access_log;
#[path = "../tests/support/registry.rs"]
mod registry_support;
#[path = "support/renovate.rs"]
mod renovate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_support::{Image, Options, TestRegistry};
use renovate::{RefusingProxy, median};
use serde_json::{Value, json};

#[derive(Clone, Copy)]
struct Sizes {
    files: usize,
    refs: usize,
    tags: usize,
    runs: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let small = args.iter().any(|a| a == "--small") || !bench;
    let sizes = if small {
        Sizes {
            files: 20,
            refs: 50,
            tags: 10,
            runs: 1,
        }
    } else {
        Sizes {
            files: 200,
            refs: 500,
            tags: 100,
            runs: 5,
        }
    };
    let sizes = Sizes {
        runs: std::env::var("DIGESTIF_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if bench { sizes.runs } else { 1 }),
        ..sizes
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(sizes, bench, small));
}

// ---------------------------------------------------------------------------------------
// The images: realistic names and tags. Docker Hub ones are written with `docker.io/`.

/// (repository in the registry, on Docker Hub?, platforms, tags)
const AMD_ARM: &[&str] = &["linux/amd64", "linux/arm64"];
/// The order Docker Official Images list them in: arm/v6 before arm/v7.
const FOUR: &[&str] = &["linux/amd64", "linux/arm/v6", "linux/arm/v7", "linux/arm64"];
const AMD: &[&str] = &["linux/amd64"];

const CATALOGUE: &[(&str, bool, &[&str], &[&str])] = &[
    (
        "library/alpine",
        true,
        FOUR,
        &["3.19", "3.20", "3.21", "3.22", "latest"],
    ),
    (
        "library/python",
        true,
        AMD_ARM,
        &[
            "3.11-slim",
            "3.12-slim",
            "3.13-slim",
            "3.12-alpine",
            "3.13-alpine",
            "3.13-bookworm",
        ],
    ),
    ("acme/api", false, AMD, &["1.4.2", "1.5.0", "1.5.1", "main"]),
    (
        "library/node",
        true,
        AMD_ARM,
        &[
            "18-alpine",
            "20-alpine",
            "22-alpine",
            "20-bookworm-slim",
            "22-bookworm-slim",
            "lts",
        ],
    ),
    (
        "library/nginx",
        true,
        FOUR,
        &[
            "1.26-alpine",
            "1.27-alpine",
            "1.27",
            "1.28-alpine",
            "mainline",
            "stable",
        ],
    ),
    ("acme/gateway", false, AMD_ARM, &["1.8", "1.9", "edge"]),
    (
        "library/golang",
        true,
        AMD_ARM,
        &["1.22-alpine", "1.23-alpine", "1.24-alpine", "1.24-bookworm"],
    ),
    ("acme/web", false, AMD, &["2.0.3", "2.1.0", "main"]),
    (
        "library/postgres",
        true,
        AMD_ARM,
        &["15-alpine", "16-alpine", "17-alpine", "16", "17"],
    ),
    (
        "library/busybox",
        true,
        FOUR,
        &["1.36", "1.37", "stable", "musl"],
    ),
    (
        "library/redis",
        true,
        AMD_ARM,
        &["7.2-alpine", "7.4-alpine", "7.4", "8.0-alpine"],
    ),
    ("acme/worker", false, AMD, &["0.9.8", "1.0.0", "main"]),
    (
        "library/debian",
        true,
        AMD_ARM,
        &["bookworm-slim", "bullseye-slim", "trixie-slim", "12"],
    ),
    (
        "library/ubuntu",
        true,
        AMD_ARM,
        &["22.04", "24.04", "noble", "jammy"],
    ),
    ("acme/auth", false, AMD_ARM, &["3.0.1", "3.1.0"]),
    (
        "library/rabbitmq",
        true,
        AMD_ARM,
        &["3.13-management", "4.0-management", "4.1-alpine"],
    ),
    (
        "acme/base-python",
        false,
        AMD,
        &["3.12-2025.05", "3.12-2025.06", "3.13-2025.06"],
    ),
    ("library/mariadb", true, AMD_ARM, &["10.11", "11.4", "11.8"]),
    (
        "library/eclipse-temurin",
        true,
        AMD_ARM,
        &["17-jre", "21-jre", "21-jdk-alpine"],
    ),
    ("acme/cron", false, AMD_ARM, &["2025.06", "latest"]),
    ("bitnami/kafka", true, AMD_ARM, &["3.7", "3.8", "3.9"]),
    ("acme/base-node", false, AMD, &["20-2025.06", "22-2025.06"]),
    (
        "grafana/grafana",
        true,
        AMD_ARM,
        &["11.4.0", "11.5.2", "12.0.0"],
    ),
    ("tools/migrate", false, AMD, &["v14", "v15"]),
    (
        "prom/prometheus",
        true,
        AMD_ARM,
        &["v2.55.1", "v3.1.0", "v3.2.1"],
    ),
    ("acme/proxy", false, AMD_ARM, &["0.4", "0.5"]),
    ("tools/backup", false, AMD, &["1.2", "1.3"]),
    ("library/traefik", true, AMD_ARM, &["v3.2", "v3.3"]),
    (
        "acme/ci-runner",
        false,
        AMD,
        &["2.321.0", "2.322.0", "latest"],
    ),
    ("acme/docs", false, AMD, &["latest"]),
];

/// What happened to a tag after the corpus was pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Move {
    Unmoved,
    /// Every platform image rebuilt: a new index (or manifest).
    Rebuilt,
    /// The index re-pushed with the same platform images and a new attestation manifest.
    AttestationOnly,
    /// Only the linux/arm64 image rebuilt; the other platforms' images are unchanged.
    Arm64Rebuilt,
}

impl Move {
    fn label(self) -> &'static str {
        match self {
            Move::Unmoved => "tag not moved",
            Move::Rebuilt => "all platforms rebuilt",
            Move::AttestationOnly => "index re-pushed, only the attestation changed",
            Move::Arm64Rebuilt => "only linux/arm64 rebuilt",
        }
    }
}

struct Tag {
    repo: &'static str,
    name: &'static str,
    hub: bool,
    platforms: &'static [&'static str],
    /// Images per platform (one for single-platform tags), as first pushed.
    images: Vec<Image>,
    /// What the tag pointed at when the corpus was pinned (index or single manifest).
    digest: String,
    moved: Move,
    /// After the move.
    new_images: Vec<Image>,
    new_digest: String,
}

impl Tag {
    fn multi(&self) -> bool {
        self.platforms.len() > 1
    }

    fn written(&self, addr: &str) -> String {
        if self.hub {
            format!("docker.io/{}:{}", self.repo, self.name)
        } else {
            format!("{addr}/{}:{}", self.repo, self.name)
        }
    }
}

/// The `n` tags used: spread over the catalogue so a small corpus still mixes kinds.
fn pick_tags(n: usize) -> Vec<(&'static str, bool, &'static [&'static str], &'static str)> {
    let all: Vec<_> = CATALOGUE
        .iter()
        .flat_map(|(repo, hub, platforms, tags)| tags.iter().map(|t| (*repo, *hub, *platforms, *t)))
        .collect();
    assert!(n <= all.len(), "the catalogue has {} tags", all.len());
    let step = all.len() / n;
    (0..n).map(|i| all[i * step]).collect()
}

/// Which tags move, and how: 40 % of them (indexes 0 and 3 of every 5); of the moved
/// multi-platform tags, one in ten is an attestation-only re-push and one in ten has only
/// its arm64 image rebuilt (at least one of each).
fn plan_moves(tags: &[Tag]) -> Vec<Move> {
    let mut moves = vec![Move::Unmoved; tags.len()];
    let mut multi_moved = 0;
    for (i, t) in tags.iter().enumerate() {
        if i % 5 != 0 && i % 5 != 3 {
            continue;
        }
        moves[i] = if t.multi() {
            multi_moved += 1;
            match multi_moved % 10 {
                1 => Move::AttestationOnly,
                2 => Move::Arm64Rebuilt,
                _ => Move::Rebuilt,
            }
        } else {
            Move::Rebuilt
        };
    }
    moves
}

async fn push_tag(
    reg: &TestRegistry,
    repo: &str,
    tag: &str,
    platforms: &[&str],
    generation: u32,
    keep: Option<&[Image]>,
    rebuild: &[&str],
) -> (Vec<Image>, String) {
    let mut images = Vec::new();
    for (i, p) in platforms.iter().enumerate() {
        let kept = keep.and_then(|k| k.get(i)).filter(|_| !rebuild.contains(p));
        let image = match kept {
            Some(img) => img.clone(),
            None => {
                let salt = format!("{repo}:{tag}:{p}:{generation}");
                // Single-platform tags are Docker v2 manifests, as `docker push` makes them.
                reg.push_image(repo, None, p, &salt, platforms.len() == 1)
                    .await
            }
        };
        images.push(image);
    }
    if platforms.len() == 1 {
        let body = fetch(reg, repo, &images[0].digest).await;
        let d = reg
            .push_manifest(repo, tag, &body, images[0].media_type)
            .await;
        return (images, d);
    }
    let refs: Vec<&Image> = images.iter().collect();
    let salt = format!("{repo}:{tag}:index:{generation}");
    let d = reg.push_index(repo, tag, &refs, false, &salt, true).await;
    (images, d)
}

/// A manifest body by digest, as the registry stores it.
async fn fetch(reg: &TestRegistry, repo: &str, digest: &str) -> Vec<u8> {
    let url = format!("http://{}/v2/{repo}/manifests/{digest}", reg.addr);
    let resp = reqwest::Client::new()
        .get(url)
        .header(
            "Accept",
            format!(
                "{}, {}",
                registry_support::OCI_MANIFEST,
                registry_support::DOCKER_MANIFEST
            ),
        )
        .send()
        .await
        .expect("GET manifest");
    assert!(
        resp.status().is_success(),
        "GET manifest: {}",
        resp.status()
    );
    resp.bytes().await.expect("body").to_vec()
}

async fn push_all(reg: &Arc<TestRegistry>, sizes: Sizes) -> Vec<Tag> {
    let picked = pick_tags(sizes.tags);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (repo, hub, platforms, name)) in picked.into_iter().enumerate() {
        let reg = reg.clone();
        tasks.spawn(async move {
            let (images, digest) = push_tag(&reg, repo, name, platforms, 0, None, &[]).await;
            (
                i,
                Tag {
                    repo,
                    name,
                    hub,
                    platforms,
                    images,
                    digest,
                    moved: Move::Unmoved,
                    new_images: Vec::new(),
                    new_digest: String::new(),
                },
            )
        });
    }
    let mut tags: Vec<Option<Tag>> = (0..sizes.tags).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, t) = done.expect("push task");
        tags[i] = Some(t);
    }
    tags.into_iter().map(|t| t.expect("pushed")).collect()
}

async fn move_tags(reg: &Arc<TestRegistry>, tags: &mut [Tag]) {
    let moves = plan_moves(tags);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (t, m)) in tags.iter().zip(&moves).enumerate() {
        if *m == Move::Unmoved {
            continue;
        }
        let (reg, m) = (reg.clone(), *m);
        let (repo, name, platforms, images) = (t.repo, t.name, t.platforms, t.images.clone());
        tasks.spawn(async move {
            let rebuild: &[&str] = match m {
                Move::Rebuilt => platforms,
                Move::Arm64Rebuilt => &["linux/arm64"],
                Move::AttestationOnly | Move::Unmoved => &[],
            };
            let out = push_tag(&reg, repo, name, platforms, 1, Some(&images), rebuild).await;
            (i, out)
        });
    }
    for (t, m) in tags.iter_mut().zip(&moves) {
        t.moved = *m;
        t.new_images = t.images.clone();
        t.new_digest = t.digest.clone();
    }
    while let Some(done) = tasks.join_next().await {
        let (i, (images, digest)) = done.expect("move task");
        tags[i].new_images = images;
        tags[i].new_digest = digest;
    }
}

// ---------------------------------------------------------------------------------------
// The corpus.

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Pin {
    Index,
    Platform(&'static str),
    Single,
}

impl Pin {
    fn label(&self) -> String {
        match self {
            Pin::Index => "index pin".into(),
            Pin::Platform(p) => format!("{p} pin (FROM --platform)"),
            Pin::Single => "single-platform image".into(),
        }
    }
}

/// One reference the corpus holds, and what is true of it.
struct Truth {
    file: String,
    tag: usize,
    pin: Pin,
    pinned: String,
    /// The digest the reference should now be pinned to, when what it pins changed.
    expected: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Dockerfile,
    Compose,
    Kubernetes,
    Workflow,
}

fn file_kind(f: usize) -> FileKind {
    match f % 20 {
        0..8 => FileKind::Dockerfile,
        8..12 => FileKind::Compose,
        12..17 => FileKind::Kubernetes,
        _ => FileKind::Workflow,
    }
}

fn file_path(f: usize) -> String {
    match file_kind(f) {
        FileKind::Dockerfile => format!("services/svc{f:03}/Dockerfile"),
        FileKind::Compose => format!("stacks/stack{f:03}/compose.yaml"),
        FileKind::Kubernetes => format!("k8s/app{f:03}.yaml"),
        FileKind::Workflow => format!(".github/workflows/ci{f:03}.yml"),
    }
}

/// Writes the corpus into `dir` and returns what it holds. Reference `r` goes to file
/// `r % files` and names tag `(file + 37 * (r / files)) % tags`, so every tag is used and no
/// file names one tag twice.
fn write_corpus(dir: &Path, addr: &str, tags: &[Tag], sizes: Sizes) -> Vec<Truth> {
    assert!(sizes.files >= sizes.tags && sizes.refs <= 3 * sizes.files);
    let mut per_file: Vec<Vec<usize>> = vec![Vec::new(); sizes.files];
    for r in 0..sizes.refs {
        per_file[r % sizes.files].push(r);
    }
    let mut truths = Vec::new();
    for (f, refs) in per_file.iter().enumerate() {
        let kind = file_kind(f);
        let path = file_path(f);
        let mut texts = Vec::new();
        let mut platforms = Vec::new();
        for &r in refs {
            let ti = (f + 37 * (r / sizes.files)) % sizes.tags;
            let t = &tags[ti];
            let pin = if !t.multi() {
                Pin::Single
            } else if kind == FileKind::Dockerfile && r % 16 == 3 {
                Pin::Platform(if t.platforms.contains(&"linux/arm/v7") {
                    "linux/arm/v7"
                } else {
                    "linux/arm64"
                })
            } else if kind == FileKind::Dockerfile && r % 16 == 11 {
                Pin::Platform("linux/amd64")
            } else {
                Pin::Index
            };
            let (pinned, now) = match &pin {
                Pin::Index | Pin::Single => (t.digest.clone(), t.new_digest.clone()),
                Pin::Platform(p) => {
                    let i = t.platforms.iter().position(|x| x == p).expect("platform");
                    (t.images[i].digest.clone(), t.new_images[i].digest.clone())
                }
            };
            // An index re-push that changed no platform image changes nothing a build gets.
            let content_changed = match &pin {
                Pin::Index => t
                    .new_images
                    .iter()
                    .zip(&t.images)
                    .any(|(a, b)| a.digest != b.digest),
                _ => now != pinned,
            };
            let expected = content_changed.then_some(now);
            texts.push(format!("{}@{pinned}", t.written(addr)));
            platforms.push(match &pin {
                Pin::Platform(p) => Some(*p),
                _ => None,
            });
            truths.push(Truth {
                file: path.clone(),
                tag: ti,
                pin,
                pinned,
                expected,
            });
        }
        let body = match kind {
            FileKind::Dockerfile => dockerfile(&texts, &platforms),
            FileKind::Compose => compose(&texts),
            FileKind::Kubernetes => kubernetes(f, &texts),
            FileKind::Workflow => workflow(f, &texts),
        };
        let full = dir.join(&path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, body).expect("write corpus file");
    }
    renovate::commit_all(dir);
    truths
}

fn dockerfile(images: &[String], platforms: &[Option<&str>]) -> String {
    let mut s = String::new();
    for (i, (img, p)) in images.iter().zip(platforms).enumerate() {
        let flag = p.map(|p| format!("--platform={p} ")).unwrap_or_default();
        if i + 1 < images.len() {
            s.push_str(&format!("FROM {flag}{img} AS stage{i}\n"));
            s.push_str(&format!("RUN make -C /src build-{i}\n\n"));
        } else {
            s.push_str(&format!("FROM {flag}{img}\n"));
            for j in 0..i {
                s.push_str(&format!("COPY --from=stage{j} /out /opt/part{j}\n"));
            }
            s.push_str("USER 65532\nENTRYPOINT [\"/opt/run\"]\n");
        }
    }
    s
}

fn compose(images: &[String]) -> String {
    let mut s = String::from("services:\n");
    for (i, img) in images.iter().enumerate() {
        s.push_str(&format!(
            "  svc{i}:\n    image: {img}\n    restart: unless-stopped\n"
        ));
    }
    s
}

fn kubernetes(f: usize, images: &[String]) -> String {
    let mut s = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{f}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: app{f}\n  template:\n    metadata:\n      labels:\n        app: app{f}\n    spec:\n"
    );
    let (init, main) = if images.len() > 2 {
        images.split_at(1)
    } else {
        images.split_at(0)
    };
    if !init.is_empty() {
        s.push_str("      initContainers:\n");
        for (i, img) in init.iter().enumerate() {
            s.push_str(&format!(
                "        - name: init{i}\n          image: {img}\n"
            ));
        }
    }
    s.push_str("      containers:\n");
    for (i, img) in main.iter().enumerate() {
        s.push_str(&format!(
            "        - name: c{i}\n          image: {img}\n          ports:\n            - containerPort: {}\n",
            8080 + i
        ));
    }
    s
}

fn workflow(f: usize, images: &[String]) -> String {
    let mut s = format!(
        "name: ci{f}\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-24.04\n    container:\n      image: {}\n",
        images[0]
    );
    if let Some(db) = images.get(1) {
        s.push_str(&format!("    services:\n      db:\n        image: {db}\n"));
    }
    s.push_str("    steps:\n      - run: make test\n");
    for img in images.iter().skip(2) {
        s.push_str(&format!("      - uses: docker://{img}\n"));
    }
    s
}

// ---------------------------------------------------------------------------------------
// The access log.

/// Requests in the registry's access log after byte `from`: (method, kind) → count, and
/// the clients that sent them.
fn count_requests(log: &Path, from: u64) -> (BTreeMap<(String, String), u64>, Vec<String>) {
    let mut counts = BTreeMap::new();
    let mut agents = Vec::new();
    for r in access_log::since(log, from) {
        let kind = access_log::kind(&r.path);
        let kind = if r.status.starts_with('2') {
            kind.to_string()
        } else {
            format!("{kind} ({})", r.status)
        };
        *counts.entry((r.method, kind)).or_insert(0) += 1;
        if !r.agent.is_empty() && !agents.contains(&r.agent) {
            agents.push(r.agent);
        }
    }
    (counts, agents)
}

fn total(counts: &BTreeMap<(String, String), u64>) -> u64 {
    counts.values().sum()
}

fn by_method(counts: &BTreeMap<(String, String), u64>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for ((method, _), n) in counts {
        *m.entry(method.clone()).or_insert(0) += n;
    }
    m
}

// ---------------------------------------------------------------------------------------
// Running the tools.

struct Outcome {
    secs: f64,
    requests: BTreeMap<(String, String), u64>,
    agents: Vec<String>,
    proxied: Vec<String>,
    /// (file, pinned digest) → proposed digest.
    stale: BTreeMap<(String, String), String>,
    /// References the tool reported at all.
    seen: usize,
    /// Anything the tool reported as a problem.
    problems: Vec<String>,
}

struct Env {
    corpus: PathBuf,
    addr: String,
    log: PathBuf,
    proxy: RefusingProxy,
    scratch: PathBuf,
}

impl Env {
    fn log_len(&self) -> u64 {
        access_log::offset(&self.log)
    }

    /// Runs `cmd`, times it, and reads the requests it caused from the access log.
    fn timed(&self, mut cmd: Command) -> (f64, std::process::Output, Outcome) {
        let from = self.log_len();
        let _ = self.proxy.take();
        let start = Instant::now();
        let out = cmd.output().expect("start the tool");
        let secs = start.elapsed().as_secs_f64();
        // distribution writes a line once the response is sent: let the last ones land.
        std::thread::sleep(Duration::from_millis(300));
        let (requests, agents) = count_requests(&self.log, from);
        let outcome = Outcome {
            secs,
            requests,
            agents,
            proxied: self.proxy.take(),
            stale: BTreeMap::new(),
            seen: 0,
            problems: Vec::new(),
        };
        (secs, out, outcome)
    }

    fn digestif(&self, bin: &Path, run: usize) -> Outcome {
        let home = self.scratch.join(format!("digestif-home-{run}"));
        std::fs::create_dir_all(&home).expect("home");
        let mut cmd = self.proxy.command(bin, &self.corpus, &home);
        cmd.args(["scan", "--format", "json", "."])
            .env("DOCKER_CONFIG", &home)
            .env("DIGESTIF_INSECURE_REGISTRIES", &self.addr)
            .env(
                "DIGESTIF_REGISTRY_MIRRORS",
                format!("docker.io={}", self.addr),
            );
        let (_, out, mut o) = self.timed(cmd);
        assert!(
            out.status.success(),
            "digestif scan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("digestif JSON");
        let refs = report["references"].as_array().cloned().unwrap_or_default();
        o.seen = refs.len();
        for r in refs {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            match s("status").as_str() {
                "stale" => {
                    o.stale
                        .insert((s("file"), s("digest")), s("current_digest"));
                }
                "up-to-date" | "unchanged-content" => {}
                other => o.problems.push(format!(
                    "{}:{} {other} {}",
                    s("file"),
                    r["line"],
                    s("message")
                )),
            }
        }
        for e in report["errors"].as_array().into_iter().flatten() {
            o.problems.push(format!("error: {e}"));
        }
        o
    }

    fn renovate(&self, entry: &Path, run: usize) -> Outcome {
        let base = self.scratch.join(format!("renovate-{run}"));
        let cmd = renovate::command(&self.proxy, entry, &self.corpus, &base, &self.addr, true);
        let (_, out, mut o) = self.timed(cmd);
        let lookup = renovate::read(&base, &out);
        o.problems = lookup.problems;
        o.seen = lookup.deps.len();
        for dep in lookup.deps {
            if let Some(new) = dep.digest_update {
                o.stale.insert((dep.file, dep.current_digest), new);
            }
        }
        o
    }
}

// ---------------------------------------------------------------------------------------

async fn run(sizes: Sizes, bench: bool, small: bool) {
    let with_renovate = bench;
    let renovate = with_renovate.then(renovate::ensure);
    let bin = std::env::var_os("DIGESTIF_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_digestif")));
    let machine = renovate::machine();
    println!("machine: {machine}");
    let startup = renovate.as_deref().map(renovate::startup);
    let reg = Arc::new(
        TestRegistry::start_with(Options {
            access_log: true,
            ..Options::default()
        })
        .await,
    );
    let pushed = Instant::now();
    let mut tags = push_all(&reg, sizes).await;
    // The corpus pins what the tags pointed at before the moves (those manifests stay in
    // the registry, as they do upstream).
    move_tags(&reg, &mut tags).await;
    let mut scratch = tempfile::tempdir().expect("temp dir");
    if std::env::var_os("DIGESTIF_BENCH_KEEP").is_some() {
        scratch.disable_cleanup(true);
        println!(
            "keeping the corpus and the tools' logs in {}",
            scratch.path().display()
        );
    }
    let corpus = scratch.path().join("corpus");
    std::fs::create_dir_all(&corpus).expect("corpus dir");
    let truths = write_corpus(&corpus, &reg.addr, &tags, sizes);
    let moved = tags.iter().filter(|t| t.moved != Move::Unmoved).count();
    println!(
        "corpus: {} files, {} references over {} unique tags, {moved} tags moved (pushed in {:.1} s)",
        sizes.files,
        truths.len(),
        tags.len(),
        pushed.elapsed().as_secs_f64()
    );

    let mut pins: BTreeMap<String, usize> = BTreeMap::new();
    for t in &truths {
        *pins.entry(t.pin.label()).or_default() += 1;
    }
    let hub = truths.iter().filter(|t| tags[t.tag].hub).count();
    let multi = tags.iter().filter(|t| t.multi()).count();
    let moves: Vec<String> = [Move::Rebuilt, Move::AttestationOnly, Move::Arm64Rebuilt]
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                tags.iter().filter(|t| t.moved == *m).count(),
                m.label()
            )
        })
        .collect();
    println!(
        "  {multi} multi-platform tags; references: {pins:?}; {hub} name Docker Hub images; moves: {}",
        moves.join(", ")
    );
    let env = Env {
        corpus,
        addr: reg.addr.clone(),
        log: reg.access_log_path(),
        proxy: RefusingProxy::start(),
        scratch: scratch.path().to_path_buf(),
    };
    let mut d_runs = Vec::new();
    let mut r_runs = Vec::new();
    for run in 0..sizes.runs {
        // Alternate who goes first, so neither always runs on a warmer machine.
        let d_first = run % 2 == 0;
        if d_first {
            d_runs.push(env.digestif(&bin, run));
        }
        if let Some(r) = &renovate {
            r_runs.push(env.renovate(r, run));
        }
        if !d_first {
            d_runs.push(env.digestif(&bin, run));
        }
        let last_r = r_runs.last().map(|o| format!(", Renovate {:.2} s", o.secs));
        println!(
            "run {}: digestif {:.3} s{}",
            run + 1,
            d_runs.last().expect("run").secs,
            last_r.unwrap_or_default()
        );
    }

    let mut report = Report::new(&tags, &truths, &d_runs, &r_runs);
    report.renovate_startup = startup;
    report.print();
    if !bench {
        report.check_digestif();
        println!(
            "vs_renovate: harness checked on a small corpus; run `cargo bench --bench vs_renovate`"
        );
        let out = scratch.path().join("vs-renovate.svg");
        report.chart(&out);
        return;
    }
    let out_dir = if small {
        scratch.path().to_path_buf()
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/results"))
    };
    std::fs::create_dir_all(&out_dir).expect("results dir");
    report.chart(&out_dir.join("vs-renovate.svg"));
    let mut figures = report.json(sizes);
    figures["machine"] = machine;
    std::fs::write(
        out_dir.join("vs-renovate.json"),
        serde_json::to_string_pretty(&figures).expect("json"),
    )
    .expect("write figures");
    println!("wrote {}/vs-renovate.{{svg,json}}", out_dir.display());
}

// ---------------------------------------------------------------------------------------
// Figures.

struct Report<'a> {
    tags: &'a [Tag],
    truths: &'a [Truth],
    d: &'a [Outcome],
    r: &'a [Outcome],
    /// `renovate --version` wall time.
    renovate_startup: Option<f64>,
}

/// One row of the agreement table.
#[derive(Default, Clone)]
struct Row {
    refs: usize,
    changed: usize,
    d_stale: usize,
    d_right: usize,
    r_stale: usize,
    r_right: usize,
}

impl<'a> Report<'a> {
    fn new(tags: &'a [Tag], truths: &'a [Truth], d: &'a [Outcome], r: &'a [Outcome]) -> Self {
        Report {
            tags,
            truths,
            d,
            r,
            renovate_startup: None,
        }
    }

    fn rows(&self) -> BTreeMap<(Move, Pin), Row> {
        let mut rows: BTreeMap<(Move, Pin), Row> = BTreeMap::new();
        let (d, r) = (self.d.first(), self.r.first());
        for t in self.truths {
            let row = rows
                .entry((self.tags[t.tag].moved, t.pin.clone()))
                .or_default();
            let key = (t.file.clone(), t.pinned.clone());
            row.refs += 1;
            row.changed += usize::from(t.expected.is_some());
            if let Some(new) = d.and_then(|o| o.stale.get(&key)) {
                row.d_stale += 1;
                row.d_right += usize::from(t.expected.as_ref() == Some(new));
            }
            if let Some(new) = r.and_then(|o| o.stale.get(&key)) {
                row.r_stale += 1;
                row.r_right += usize::from(t.expected.as_ref() == Some(new));
            }
        }
        rows
    }

    /// (both, both with the same new digest, only digestif, only Renovate, neither)
    fn agreement(&self) -> (usize, usize, usize, usize, usize) {
        let (Some(d), Some(r)) = (self.d.first(), self.r.first()) else {
            return (0, 0, 0, 0, 0);
        };
        let mut a = (0, 0, 0, 0, 0);
        for t in self.truths {
            let key = (t.file.clone(), t.pinned.clone());
            match (d.stale.get(&key), r.stale.get(&key)) {
                (Some(x), Some(y)) => {
                    a.0 += 1;
                    a.1 += usize::from(x == y);
                }
                (Some(_), None) => a.2 += 1,
                (None, Some(_)) => a.3 += 1,
                (None, None) => a.4 += 1,
            }
        }
        a
    }

    fn print(&self) {
        let secs = |o: &[Outcome]| o.iter().map(|x| x.secs).collect::<Vec<_>>();
        let show = |name: &str, o: &[Outcome]| {
            let Some(first) = o.first() else {
                println!("{name}: not run");
                return;
            };
            println!(
                "{name}: median {:.3} s over {} runs (runs: {}); references reported: {}",
                median(&secs(o)),
                o.len(),
                secs(o)
                    .iter()
                    .map(|s| format!("{s:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                first.seen
            );
            let totals: Vec<u64> = o.iter().map(|x| total(&x.requests)).collect();
            println!(
                "  registry requests per run: {totals:?}; by method (run 1): {:?}; user agents: {:?}",
                by_method(&first.requests),
                first.agents
            );
            for ((method, kind), n) in &first.requests {
                println!("    {n:>6}  {method} {kind}");
            }
            let proxied: Vec<&String> = o.iter().flat_map(|x| &x.proxied).collect();
            println!(
                "  attempts to leave loopback (refused): {}{}",
                proxied.len(),
                if proxied.is_empty() {
                    String::new()
                } else {
                    format!(" {proxied:?}")
                }
            );
            let mut problems = first.problems.clone();
            problems.sort();
            problems.dedup();
            println!("  problems reported (run 1): {}", problems.len());
            for p in problems.iter().take(20) {
                println!("    {p}");
            }
        };
        show("digestif", self.d);
        show("Renovate", self.r);
        if let (Some(_), Some(_)) = (self.d.first(), self.r.first()) {
            println!(
                "wall time ratio (Renovate / digestif, medians): {:.1}",
                median(&secs(self.r)) / median(&secs(self.d))
            );
        }
        println!(
            "\n{:<48} {:<34} {:>5} {:>8} {:>14} {:>14}",
            "tag", "pin", "refs", "changed", "digestif", "Renovate"
        );
        for ((m, pin), row) in self.rows() {
            println!(
                "{:<48} {:<34} {:>5} {:>8} {:>14} {:>14}",
                m.label(),
                pin.label(),
                row.refs,
                row.changed,
                format!("{} ({} right)", row.d_stale, row.d_right),
                if self.r.is_empty() {
                    "-".to_string()
                } else {
                    format!("{} ({} right)", row.r_stale, row.r_right)
                }
            );
        }
        if !self.r.is_empty() {
            let (both, same, only_d, only_r, neither) = self.agreement();
            println!(
                "\nagreement: stale for both {both} (same new digest {same}), only digestif {only_d}, only Renovate {only_r}, neither {neither}"
            );
            self.print_disagreements();
            let stable = |o: &[Outcome]| o.windows(2).all(|w| w[0].stale == w[1].stale);
            println!(
                "verdicts identical in every run: digestif {}, Renovate {}",
                stable(self.d),
                stable(self.r)
            );
        }
    }

    /// Each reference where the two differ (or either differs from what changed), first few
    /// per kind of tag move and pin.
    fn print_disagreements(&self) {
        let (Some(d), Some(r)) = (self.d.first(), self.r.first()) else {
            return;
        };
        let short = |s: Option<&String>| {
            s.map(|s| s.chars().take(19).collect::<String>())
                .unwrap_or_else(|| "-".into())
        };
        let mut shown: BTreeMap<(Move, Pin), usize> = BTreeMap::new();
        println!("\nreferences where the tools differ from each other or from what changed:");
        for t in self.truths {
            let key = (t.file.clone(), t.pinned.clone());
            let (x, y) = (d.stale.get(&key), r.stale.get(&key));
            if x == y && x == t.expected.as_ref() {
                continue;
            }
            let tag = &self.tags[t.tag];
            let n = shown.entry((tag.moved, t.pin.clone())).or_default();
            *n += 1;
            if *n > 3 {
                continue;
            }
            println!(
                "  {} {}:{} [{}; {}] pinned {} expected {} digestif {} Renovate {}",
                t.file,
                tag.repo,
                tag.name,
                tag.moved.label(),
                t.pin.label(),
                short(Some(&t.pinned)),
                short(t.expected.as_ref()),
                short(x),
                short(y)
            );
            if let Some(y) = y {
                let what = tag
                    .new_images
                    .iter()
                    .chain(&tag.images)
                    .find(|i| &i.digest == y)
                    .map(|i| format!("the {} image", i.platform))
                    .or_else(|| (y == &tag.new_digest).then(|| "the new index".to_string()))
                    .unwrap_or_else(|| "not a digest of this tag".into());
                println!("    Renovate's digest is {what}");
            }
        }
    }

    /// The smoke check under `cargo test`: digestif sees every reference and proposes
    /// exactly the digests that changed what a build gets.
    fn check_digestif(&self) {
        let d = self.d.first().expect("digestif ran");
        assert_eq!(d.seen, self.truths.len(), "references found");
        assert!(d.problems.is_empty(), "problems: {:?}", d.problems);
        assert!(d.proxied.is_empty(), "left loopback: {:?}", d.proxied);
        for t in self.truths {
            let key = (t.file.clone(), t.pinned.clone());
            assert_eq!(
                d.stale.get(&key),
                t.expected.as_ref(),
                "{} {:?} ({})",
                t.file,
                t.pin,
                self.tags[t.tag].moved.label()
            );
        }
        assert!(total(&d.requests) > 0, "the access log counted nothing");
    }

    fn json(&self, sizes: Sizes) -> Value {
        let tool = |o: &[Outcome]| {
            json!({
                "runs_s": o.iter().map(|x| x.secs).collect::<Vec<_>>(),
                "median_s": if o.is_empty() { Value::Null } else { json!(median(&o.iter().map(|x| x.secs).collect::<Vec<_>>())) },
                "requests_per_run": o.iter().map(|x| total(&x.requests)).collect::<Vec<_>>(),
                "requests_by_method": o.first().map(|x| by_method(&x.requests)),
                "requests_by_kind": o.first().map(|x| x.requests.iter().map(|((m, k), n)| (format!("{m} {k}"), *n)).collect::<BTreeMap<_, _>>()),
                "stale": o.first().map(|x| x.stale.len()),
                "references_reported": o.first().map(|x| x.seen),
                "left_loopback": o.iter().flat_map(|x| x.proxied.clone()).collect::<Vec<_>>(),
            })
        };
        let (both, same, only_d, only_r, neither) = self.agreement();
        json!({
            "corpus": {"files": sizes.files, "references": self.truths.len(), "tags": self.tags.len(),
                       "moved": self.tags.iter().filter(|t| t.moved != Move::Unmoved).count()},
            "digestif": tool(self.d),
            "renovate": tool(self.r),
            "renovate_version_s": self.renovate_startup,
            "agreement": {"both": both, "both_same_digest": same, "only_digestif": only_d,
                          "only_renovate": only_r, "neither": neither},
            "rows": self.rows().iter().map(|((m, p), r)| json!({
                "tag": m.label(), "pin": p.label(), "refs": r.refs, "changed": r.changed,
                "digestif_stale": r.d_stale, "digestif_right": r.d_right,
                "renovate_stale": r.r_stale, "renovate_right": r.r_right,
            })).collect::<Vec<_>>(),
        })
    }

    /// Two bar charts side by side: median wall time and registry requests per run.
    fn chart(&self, path: &Path) {
        use plotters::prelude::*;
        let secs = |o: &[Outcome]| {
            if o.is_empty() {
                0.0
            } else {
                median(&o.iter().map(|x| x.secs).collect::<Vec<_>>())
            }
        };
        let reqs = |o: &[Outcome]| o.first().map(|x| total(&x.requests) as f64).unwrap_or(0.0);
        let bars = [
            ("digestif", secs(self.d), reqs(self.d)),
            ("Renovate 39.264.1", secs(self.r), reqs(self.r)),
        ];
        let root = SVGBackend::new(path, (900, 360)).into_drawing_area();
        root.fill(&WHITE).expect("chart");
        let (left, right) = root.split_horizontally(450);
        let panels = [
            (left, "Median wall time (s)", 0usize),
            (right, "Registry requests per run", 1),
        ];
        for (area, title, which) in panels {
            let value = |b: &(&str, f64, f64)| if which == 0 { b.1 } else { b.2 };
            let max = bars.iter().map(value).fold(0.0, f64::max).max(1e-3) * 1.2;
            let mut chart = ChartBuilder::on(&area)
                .caption(title, ("sans-serif", 20))
                .margin(15)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..2.0, 0.0..max)
                .expect("chart");
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .draw()
                .expect("mesh");
            for (i, b) in bars.iter().enumerate() {
                let x = i as f64;
                let color = if i == 0 {
                    RGBColor(46, 125, 50)
                } else {
                    RGBColor(25, 118, 210)
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x + 0.2, 0.0), (x + 0.8, value(b))],
                        color.filled(),
                    )))
                    .expect("bar");
                let label = if which == 0 {
                    format!("{}: {:.2} s", b.0, value(b))
                } else {
                    format!("{}: {}", b.0, value(b) as u64)
                };
                chart
                    .draw_series(std::iter::once(Text::new(
                        label,
                        (x + 0.1, value(b) + max * 0.06),
                        ("sans-serif", 15),
                    )))
                    .expect("label");
            }
        }
        root.present().expect("write SVG");
    }
}
