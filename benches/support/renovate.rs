//! Running Renovate beside digestif in the benchmarks: installing the pinned version,
//! keeping it on loopback, and reading its report. Shared by `vs_renovate` and `noise`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The version the issue names; it runs on Node 20.
pub const VERSION: &str = "39.264.1";

/// Installs Renovate into `DIGESTIF_BENCH_RENOVATE_DIR` (`/var/tmp/renovate`) unless that
/// exact version is there; returns its entry point (`dist/renovate.js`).
pub fn ensure() -> PathBuf {
    let dir = std::env::var_os("DIGESTIF_BENCH_RENOVATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/renovate"));
    let pkg = dir.join("node_modules/renovate/package.json");
    let installed = std::fs::read(&pkg)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    if installed.as_deref() != Some(VERSION) {
        println!(
            "installing renovate@{VERSION} into {} (npm, about a minute)",
            dir.display()
        );
        std::fs::create_dir_all(&dir).expect("renovate dir");
        // --ignore-scripts: no native builds (Renovate then uses JavaScript RegExp instead
        // of RE2 and says so in its log).
        let status = Command::new("npm")
            .args(["install", "--ignore-scripts", "--no-audit", "--no-fund"])
            .arg("--prefix")
            .arg(&dir)
            .arg(format!("renovate@{VERSION}"))
            .status()
            .expect("npm (Node 20 or newer) must be installed");
        assert!(status.success(), "npm install renovate failed");
    }
    dir.join("node_modules/renovate/dist/renovate.js")
}

/// Wall time of `renovate --version`: starting Node and loading Renovate, no work.
pub fn startup(entry: &Path) -> f64 {
    let start = Instant::now();
    let out = Command::new("node")
        .arg(entry)
        .arg("--version")
        .output()
        .expect("node");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "Renovate {} start-up (`renovate --version`): {secs:.2} s",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    secs
}

/// An HTTP proxy that refuses everything and records the request line of each attempt.
/// Both tools run with `HTTP_PROXY`/`HTTPS_PROXY` pointing here and `NO_PROXY=127.0.0.1`,
/// so anything but loopback fails closed and is seen.
pub struct RefusingProxy {
    pub addr: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RefusingProxy {
    pub fn start() -> RefusingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let addr = listener.local_addr().expect("addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let _ = BufReader::new(&mut stream).read_line(&mut line);
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.trim().to_string());
                let _ = stream.write_all(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        RefusingProxy { addr, seen }
    }

    /// The attempts recorded since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A command with an empty environment but `PATH`, `HOME` = `home`, and the proxy.
    pub fn command(&self, program: &Path, cwd: &Path, home: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .current_dir(cwd)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("HTTP_PROXY", format!("http://{}", self.addr))
            .env("HTTPS_PROXY", format!("http://{}", self.addr))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null());
        c
    }
}

/// `git` in `dir`, which must succeed.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `dir` a git repository with one commit of everything in it: `--platform=local`
/// lists files with `git ls-files` (without git it globs every file, `.git` included).
pub fn commit_all(dir: &Path) {
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q", "-b", "main"]);
    }
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-qm",
            "corpus",
            "--allow-empty",
        ],
    );
}

/// The Renovate command for one lookup run over `corpus` with a fresh `base` directory
/// (`RENOVATE_BASE_DIR`, also `HOME`); `registry` is `127.0.0.1:PORT`, spoken to over plain
/// HTTP; with `hub_alias`, names starting `docker.io/` are looked up there. The report is
/// written to `base/report.json`.
pub fn command(
    proxy: &RefusingProxy,
    entry: &Path,
    corpus: &Path,
    base: &Path,
    registry: &str,
    hub_alias: bool,
) -> Command {
    std::fs::create_dir_all(base).expect("renovate base dir");
    let mut config = json!({
        // Renovate's kubernetes manager matches no file until told which.
        "kubernetes": {"fileMatch": ["(^|/)k8s/[^/]+\\.ya?ml$"]},
    });
    if hub_alias {
        config["registryAliases"] = json!({"docker.io": registry});
    }
    let mut cmd = proxy.command(Path::new("node"), corpus, base);
    cmd.arg(entry)
        .args(["--platform=local", "--dry-run=lookup", "--report-type=file"])
        .arg(format!(
            "--report-path={}",
            base.join("report.json").display()
        ))
        .env("RENOVATE_BASE_DIR", base)
        .env(
            "RENOVATE_HOST_RULES",
            json!([{"matchHost": registry, "insecureRegistry": true}]).to_string(),
        )
        .env("RENOVATE_ONBOARDING", "false")
        .env("RENOVATE_REQUIRE_CONFIG", "optional")
        .env("RENOVATE_CONFIG", config.to_string())
        .env(
            "LOG_LEVEL",
            std::env::var("DIGESTIF_BENCH_RENOVATE_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
        )
        .env("LOG_FORMAT", "json");
    cmd
}

/// One image reference as Renovate's report gives it.
#[derive(Debug, Clone)]
pub struct Dep {
    pub file: String,
    pub current_digest: String,
    /// `newDigest` of its `digest` update, if it has one.
    pub digest_update: Option<String>,
    /// The branch that update would go to.
    pub branch: Option<String>,
    /// Updates of other kinds (major, minor, patch) it also proposed.
    pub other_updates: usize,
}

/// What one Renovate run reported.
#[derive(Debug, Default)]
pub struct Lookup {
    pub deps: Vec<Dep>,
    /// Warnings and errors from its log and report.
    pub problems: Vec<String>,
}

/// Reads `base/report.json` and the JSON log Renovate wrote to stdout (saved to
/// `base/renovate.log`). Panics if Renovate failed.
pub fn read(base: &Path, out: &std::process::Output) -> Lookup {
    std::fs::write(base.join("renovate.log"), &out.stdout).expect("save log");
    let path = base.join("report.json");
    assert!(
        out.status.success() && path.is_file(),
        "renovate failed ({}); log: {}",
        out.status,
        base.join("renovate.log").display()
    );
    let mut lookup = Lookup::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Ok(v) = serde_json::from_str::<Value>(line)
            && v["level"].as_u64().is_some_and(|l| l >= 40)
        {
            lookup.problems.push(format!("log: {}", v["msg"]));
        }
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("report")).expect("report JSON");
    for problem in report["problems"].as_array().into_iter().flatten() {
        lookup.problems.push(format!("report: {}", problem["msg"]));
    }
    for (_, repo) in report["repositories"].as_object().into_iter().flatten() {
        for p in repo["problems"].as_array().into_iter().flatten() {
            lookup.problems.push(format!("report: {}", p["msg"]));
        }
        for (_, files) in repo["packageFiles"].as_object().into_iter().flatten() {
            for pf in files.as_array().into_iter().flatten() {
                let file = pf["packageFile"].as_str().unwrap_or_default();
                for dep in pf["deps"].as_array().into_iter().flatten() {
                    let Some(current) = dep["currentDigest"].as_str() else {
                        continue; // not an image pinned by digest, e.g. `runs-on: ubuntu-24.04`
                    };
                    if let Some(reason) = dep["skipReason"].as_str() {
                        lookup.problems.push(format!("{file}: skipped: {reason}"));
                    }
                    for w in dep["warnings"].as_array().into_iter().flatten() {
                        lookup.problems.push(format!("{file}: {}", w["message"]));
                    }
                    let updates: Vec<&Value> =
                        dep["updates"].as_array().into_iter().flatten().collect();
                    let digest = updates.iter().find(|u| u["updateType"] == "digest");
                    lookup.deps.push(Dep {
                        file: file.to_string(),
                        current_digest: current.to_string(),
                        digest_update: digest
                            .and_then(|u| u["newDigest"].as_str())
                            .map(str::to_string),
                        branch: digest
                            .and_then(|u| u["branchName"].as_str())
                            .map(str::to_string),
                        other_updates: updates.len() - usize::from(digest.is_some()),
                    });
                }
            }
        }
    }
    lookup
}

/// The machine and software the figures come from.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string());
    let cmd = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    json!({
        "cpu": model,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_string()),
        "node": cmd("node", &["--version"]),
        "docker_registry": cmd("docker-registry", &["--version"]),
        "commit": cmd("git", &["rev-parse", "--short", "HEAD"]),
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
