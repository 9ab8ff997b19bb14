//! `digestif serve` as its own process, for benchmarks that measure the server alone
//! (its memory and CPU are not mixed with the fake GitHub's or the load generator's).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A running `digestif serve`.
pub struct Serve {
    pub child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

/// The GitHub App the server is, on the fake GitHub at `github_url`.
pub struct App<'a> {
    pub id: u64,
    pub private_key_pem: &'a str,
    pub webhook_secret: &'a str,
    pub github_url: &'a str,
}

/// Starts `bin serve` as `app` with `database_url`, logging
/// into `log_path`, with `env` added, and waits until `/readyz` is green. Other `DIGESTIF_`
/// variables of this process (`DIGESTIF_LOG`, `DIGESTIF_WORKERS`, …) pass through, but not
/// a private key file or App credentials file that would take the fake App's place.
pub async fn start(
    bin: &Path,
    app: &App<'_>,
    database_url: &str,
    log_path: &Path,
    env: &[(&str, String)],
) -> Serve {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(log_path).expect("log file");
    let mut cmd = Command::new(bin);
    cmd.env_remove("DIGESTIF_GITHUB_PRIVATE_KEY_PATH")
        .env_remove("DIGESTIF_APP_CREDENTIALS_FILE");
    let mut child = cmd
        .arg("serve")
        .env("DIGESTIF_GITHUB_APP_ID", app.id.to_string())
        .env("DIGESTIF_GITHUB_PRIVATE_KEY", app.private_key_pem)
        .env("DIGESTIF_WEBHOOK_SECRET", app.webhook_secret)
        .env("DIGESTIF_GITHUB_API_URL", app.github_url)
        .env("DIGESTIF_DATABASE_URL", database_url)
        .env("DIGESTIF_BIND", format!("127.0.0.1:{port}"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start digestif serve");
    let pid = child.id().expect("server pid");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "server exited ({status}) before it was ready; log {}:\n{}",
                log_path.display(),
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server not ready within 120 s; log {}",
            log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Serve { child, pid, base }
}

impl Serve {
    /// See [`stop`].
    pub async fn stop(mut self) {
        stop(&mut self.child, self.pid).await
    }
}

/// SIGTERM (graceful shutdown), then SIGKILL if it takes more than 30 s.
pub async fn stop(child: &mut Child, pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
        Ok(Ok(status)) => assert!(status.success(), "server exited with {status}"),
        _ => {
            let _ = child.kill().await;
            panic!("server did not stop within 30 s of SIGTERM");
        }
    }
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`).
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// User + system CPU time the process has used so far.
pub fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    // USER_HZ is 100 on every Linux architecture Rust targets.
    ticks / 100.0
}
