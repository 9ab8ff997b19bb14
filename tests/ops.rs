//! Operating digestif: `/metrics`, `/readyz`, the status page (checked in a real headless
//! Chromium), webhook secret rotation, and App registration through `/setup` driving the
//! built binary against the fake GitHub.
//!
//! Metrics are process-wide, so only one test here scrapes `/metrics`.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use digestif::clock::SystemClock;
use digestif::jobs::JobError;
use digestif::registry::RegistryConfig;
use digestif::server::{Server, Tuning};
use digestif::server_settings::{OpsSettings, Settings};
use digestif::store::{ImageRefRecord, NewJob, NewRepository, PrStatus, PrUpsert, Store};
use serde_json::{Value, json};
use support::fake_github::{FakeGitHub, webhooks};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "webhook-secret-new";
const OLD_SECRET: &str = "webhook-secret-old";
const ADMIN: &str = "admin-token-0123456789abcdef";
const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef";

struct Running {
    url: String,
    db_url: String,
    store: Store,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        let done = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server stops within 30 s")
            .expect("server task");
        done.expect("server ran cleanly");
    }
}

async fn start(fake: &FakeGitHub, ops: OpsSettings) -> Running {
    start_with(fake, ops, Duration::from_millis(200), false).await
}

/// `scheduler`: how often due repositories are scanned (seeded data that must not change
/// under the test wants a long one).
async fn start_with(
    fake: &FakeGitHub,
    ops: OpsSettings,
    scheduler: Duration,
    seeded: bool,
) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("digestif.db").display());
    let settings = Settings {
        app_id: fake.app_id(),
        private_key_pem: fake.private_key_pem().as_bytes().to_vec(),
        webhook_secret: SECRET.as_bytes().to_vec(),
        github_api_url: fake.url().to_string(),
        database_url: db.clone(),
        bind: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
    };
    let tuning = Tuning {
        github_retry: digestif::github::RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(20),
            max_wait: Duration::from_secs(1),
        },
        scheduler_interval: scheduler,
        worker_poll: Duration::from_millis(50),
        ..Tuning::default()
    };
    let ops = OpsSettings {
        github_web_url: digestif::server_settings::github_web_url(fake.url()),
        ..ops
    };
    let server = Server::build(
        settings,
        RegistryConfig::default(),
        Arc::new(SystemClock),
        tuning,
    )
    .await
    .expect("server builds")
    .with_ops(ops);
    let store = server.store.clone();
    if seeded {
        // Before anything runs: the scheduler and workers see the seeded state as settled.
        seed(&store).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(listener, shutdown.clone()));
    Running {
        url,
        db_url: db,
        store,
        shutdown,
        task,
        _dir: dir,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.text().await.unwrap_or_default())
}

/// The status of `GET url`, `None` when the connection failed (a server switching from
/// setup mode may close a connection it accepted just before the switch).
async fn status_of(url: &str) -> Option<u16> {
    client()
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn deliver(url: &str, hook: &webhooks::SignedWebhook) -> u16 {
    let mut req = client().post(format!("{url}/webhooks/github"));
    for (k, v) in &hook.headers {
        req = req.header(k, v);
    }
    req.body(hook.body.clone())
        .send()
        .await
        .expect("delivered")
        .status()
        .as_u16()
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ping(secret: &str) -> webhooks::SignedWebhook {
    webhooks::sign(
        "ping",
        &json!({"zen": "Keep it logically awesome.", "hook_id": 1}),
        secret,
    )
}

/// The value of the sample `name{labels}` (labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happens_and_readyz_checks_each_dependency() {
    let fake = FakeGitHub::start().await;
    let inst = fake.create_installation("acme", &[("contents", "read")]);
    fake.create_repo(inst, "acme", "api", &[("README.md", "hi\n")]);
    let server = start(
        &fake,
        OpsSettings {
            metrics_token: Some(METRICS_TOKEN.into()),
            ..Default::default()
        },
    )
    .await;
    let url = server.url.clone();

    // Ready once the database answers, migrations are applied and GitHub took the App's
    // credentials (the start-up sync).
    eventually("ready", || {
        let url = url.clone();
        async move { (status_of(&format!("{url}/readyz")).await == Some(200)).then_some(()) }
    })
    .await;

    // Webhooks: accepted, redelivered, forged, oversized.
    let hook = ping(SECRET);
    assert_eq!(deliver(&url, &hook).await, 202);
    assert_eq!(deliver(&url, &hook).await, 202);
    let mut forged = ping(SECRET);
    forged.body.push(b' ');
    assert_eq!(deliver(&url, &forged).await, 401);
    let mut big = ping(SECRET);
    big.body = vec![b' '; digestif::web::MAX_BODY + 1];
    assert_eq!(deliver(&url, &big).await, 413);

    // The start-up sync finds the repository and scans it (it has no images).
    let s = server.store.clone();
    let repo = eventually("repository scanned", || {
        let s = s.clone();
        async move {
            let r = s.repository_by_full_name("acme/api").await.ok()??;
            r.last_scan_at.map(|_| r)
        }
    })
    .await;
    // The database's figures: references by status, the queue.
    let now = Utc::now();
    let rec = |status: &str, line: i32| ImageRefRecord {
        file: "Dockerfile".into(),
        line,
        image: "docker.io/library/python".into(),
        tag: Some("3.12".into()),
        digest: None,
        status: status.into(),
        current_digest: None,
        message: None,
    };
    s.replace_references(
        repo.id,
        &[rec("stale", 1), rec("stale", 2), rec("up-to-date", 3)],
        now,
    )
    .await
    .unwrap();

    let (status, _, _) = get(&format!("{url}/metrics"), &[]).await;
    assert_eq!(status, 401, "the metrics token is asked for");
    let auth = format!("Bearer {METRICS_TOKEN}");
    let (status, headers, text) = get(&format!("{url}/metrics"), &[("authorization", &auth)]).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    for (series, at_least) in [
        (
            r#"digestif_webhooks_total{event="ping",outcome="accepted"}"#,
            1.0,
        ),
        (
            r#"digestif_webhooks_total{event="ping",outcome="redelivery"}"#,
            1.0,
        ),
        (
            r#"digestif_webhooks_total{event="ping",outcome="bad-signature"}"#,
            1.0,
        ),
        (
            r#"digestif_webhooks_total{event="ping",outcome="too-large"}"#,
            1.0,
        ),
        (
            r#"digestif_github_requests_total{method="GET",status="200"}"#,
            1.0,
        ),
        ("digestif_github_rate_limit_remaining", 1.0),
    ] {
        let v = sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(v >= at_least, "{series} = {v}\n{text}");
    }
    assert_eq!(
        sample(&text, r#"digestif_references{status="stale"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"digestif_references{status="up-to-date"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"digestif_repositories{status="ok"}"#),
        Some(1.0)
    );
    assert!(
        sample(&text, r#"digestif_jobs{state="dead"}"#).is_some(),
        "{text}"
    );
    assert!(text.contains("# HELP digestif_webhooks_total"), "{text}");

    // Jobs ran through the worker: counted by kind and outcome, with their duration.
    assert!(
        sample(
            &text,
            r#"digestif_jobs_total{kind="scan_repo",outcome="ok"}"#
        )
        .is_some(),
        "{text}"
    );
    assert!(
        text.contains(r#"digestif_job_duration_seconds_bucket{kind="scan_repo",le="0.005"}"#)
            || text.contains(r#"digestif_job_duration_seconds_bucket{kind="scan_repo",le="+Inf"}"#),
        "{text}"
    );
    // The PR writer's counters exist from the first call.
    digestif::metrics::pr_opened();
    digestif::metrics::pr_updated();
    digestif::metrics::pr_closed("superseded");
    let (_, _, text) = get(&format!("{url}/metrics"), &[("authorization", &auth)]).await;
    assert!(sample(&text, "digestif_pull_requests_opened_total").is_some());
    assert!(sample(&text, "digestif_pull_requests_updated_total").is_some());
    assert!(
        sample(
            &text,
            r#"digestif_pull_requests_closed_total{reason="superseded"}"#
        )
        .is_some()
    );

    // A migration missing: not ready, and says which.
    let latest: i64 = Store::migrators()[0]
        .1
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    s.execute_raw(&format!(
        "DELETE FROM _sqlx_migrations WHERE version = {latest}"
    ))
    .await
    .unwrap();
    let (status, _, body) = get(&format!("{url}/readyz"), &[]).await;
    assert_eq!(status, 503);
    assert!(body.contains("migrations not applied"), "{body}");
    // The database gone: not ready.
    s.close().await;
    let (status, _, body) = get(&format!("{url}/readyz"), &[]).await;
    assert_eq!(status, 503);
    assert!(body.contains("database"), "{body}");
    assert_eq!(get(&format!("{url}/healthz"), &[]).await.0, 200);
    server.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), server.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_not_ready_while_github_refuses_the_app_s_credentials() {
    let fake = FakeGitHub::start().await;
    // Another key than the App's: GitHub answers 401 to every JWT.
    fake.with_state(|s| s.app.public_pem = b"not the key".to_vec());
    let server = start(&fake, OpsSettings::default()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = get(&format!("{}/readyz", server.url), &[]).await;
    assert_eq!(status, 503);
    assert!(body.contains("GitHub App credentials not loaded"), "{body}");
    fake.with_state(|s| {
        s.violations.clear();
    });
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_webhook_secret_is_accepted_until_removed() {
    let fake = FakeGitHub::start().await;
    let server = start(
        &fake,
        OpsSettings {
            webhook_secret_previous: Some(OLD_SECRET.as_bytes().to_vec()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(deliver(&server.url, &ping(SECRET)).await, 202);
    assert_eq!(deliver(&server.url, &ping(OLD_SECRET)).await, 202);
    assert_eq!(deliver(&server.url, &ping("someone-else")).await, 401);
    server.stop().await;

    // Without the previous secret configured, the old one is refused.
    let server = start(&fake, OpsSettings::default()).await;
    assert_eq!(deliver(&server.url, &ping(OLD_SECRET)).await, 401);
    assert_eq!(deliver(&server.url, &ping(SECRET)).await, 202);
    server.stop().await;
}

// ---- status page ------------------------------------------------------------------------

const EVIL: &str = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";

async fn seed(s: &Store) {
    let now = Utc::now();
    s.upsert_installation(5, "acme", "Organization", now)
        .await
        .unwrap();
    for (id, name) in [(50, "acme/api"), (51, "acme/web"), (52, "acme/broken")] {
        s.upsert_repository(
            &NewRepository {
                id,
                installation_id: 5,
                full_name: name,
                default_branch: Some("main"),
                archived: None,
            },
            now,
        )
        .await
        .unwrap();
        // Not due: the scheduler must leave the seeded state alone.
        s.set_next_scan_at(id, Some(now + chrono::Duration::minutes(190)))
            .await
            .unwrap();
    }
    s.record_scan_result(50, "ok", None, now).await.unwrap();
    s.record_scan_result(52, "error", Some(&format!("registry says {EVIL}")), now)
        .await
        .unwrap();
    s.upsert_pr(
        &PrUpsert {
            repository_id: 50,
            number: 7,
            branch: "digestif/python",
            state: PrStatus::Open,
            head_sha: None,
            base_sha: None,
            updates: &[],
            base_blobs: &Default::default(),
            details_pending: false,
        },
        now,
    )
    .await
    .unwrap();
    // Due only far ahead, and leased "then", so the server's own workers never take it.
    let later = now + chrono::Duration::days(365);
    let id = s
        .enqueue(&NewJob::scan_repo(51, "test").at(later), now)
        .await
        .unwrap();
    let job = s
        .lease_jobs("w", 10, Duration::from_secs(60), later)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.id == id)
        .expect("leased");
    s.fail_job(
        &job,
        "w",
        &JobError::Permanent("registry.example.com: authentication required".into()),
        &Default::default(),
        later,
    )
    .await
    .unwrap();
}

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!("no chromium: scripts/test installs Debian's `chromium`");
}

/// What a person would see: the DOM after Chromium loaded `url` (following redirects,
/// keeping cookies within the one run).
fn browse(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_operator_everything_and_strangers_nothing() {
    let fake = FakeGitHub::start().await;
    // GitHub refuses the App here, so the start-up sync (which forgets installations
    // GitHub does not list) leaves the seeded ones alone; the page needs only the database.
    fake.with_state(|s| s.app.public_pem = b"not the key".to_vec());
    let server = start_with(
        &fake,
        OpsSettings {
            admin_token: Some(ADMIN.into()),
            ..Default::default()
        },
        Duration::from_secs(3600),
        true,
    )
    .await;
    let url = server.url.clone();

    // A browser that logs in with ?token= once: the cookie carries it to the page.
    let u = format!("{url}/?token={ADMIN}");
    let dom = tokio::task::spawn_blocking(move || browse(&u, &[]))
        .await
        .unwrap();
    for seen in [
        "digestif status",
        "acme/api",
        "acme/web",
        "acme/broken",
        "Installations (1)",
        "Repositories (3)",
        "Open pull requests (1)",
        "Dead jobs (1)",
        "registry.example.com: authentication required",
        "in 3h",
    ] {
        assert!(dom.contains(seen), "the page lacks {seen:?}:\n{dom}");
    }
    let web = fake.url();
    assert!(
        dom.contains(&format!(r#"href="{web}/acme/api/pull/7""#)),
        "PR link:\n{dom}"
    );
    assert!(dom.contains(r#"<span class="ok">ok</span>"#), "{dom}");
    assert!(dom.contains(r#"<span class="error">error</span>"#), "{dom}");
    assert!(
        dom.contains(r#"<span class="pending">pending</span>"#),
        "{dom}"
    );
    // The error text from outside is shown as text, never run.
    assert!(dom.contains("&lt;script&gt;document.title"), "{dom}");
    assert!(!dom.contains("<script>document.title"), "{dom}");
    assert!(!dom.contains("<img src=\"x\""), "{dom}");
    assert!(!dom.contains("<title>pwned"), "{dom}");

    // A stranger's browser sees a sign-in form and none of the data.
    let u = format!("{url}/");
    let dom = tokio::task::spawn_blocking(move || browse(&u, &[]))
        .await
        .unwrap();
    assert!(dom.contains("admin token"), "{dom}");
    for hidden in ["acme/api", "authentication required", "pull/7"] {
        assert!(!dom.contains(hidden), "leaked {hidden:?}:\n{dom}");
    }
    let u = format!("{url}/?token=wrong-token-0000000000");
    let dom = tokio::task::spawn_blocking(move || browse(&u, &[]))
        .await
        .unwrap();
    assert!(
        dom.contains("not right") && !dom.contains("acme/api"),
        "{dom}"
    );

    // Without a browser: Bearer works; the login cookie is HttpOnly and SameSite=Strict;
    // the page carries a no-script CSP.
    let (status, h, body) = get(
        &format!("{url}/"),
        &[("authorization", &format!("Bearer {ADMIN}"))],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("acme/api"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let (status, h, _) = get(&format!("{url}/?token={ADMIN}"), &[]).await;
    assert_eq!(status, 303);
    assert_eq!(h["location"], "/");
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(ADMIN),
        "the cookie is not the token: {cookie}"
    );
    let (status, _, body) = get(&format!("{url}/"), &[("authorization", "Bearer nope")]).await;
    assert_eq!(status, 401);
    assert!(!body.contains("acme/api"));

    // A screenshot, for people reviewing the page by eye (kept under target/).
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let u = format!("{url}/?token={ADMIN}");
    let arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking(move || browse(&u, &[&arg, "--window-size=1280,900"]))
        .await
        .unwrap();
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 5_000)
            .unwrap_or(false)
    );
    server.stop().await;

    // No token configured: the page says how to turn it on, and shows nothing.
    let server = start_with(
        &fake,
        OpsSettings::default(),
        Duration::from_secs(3600),
        true,
    )
    .await;
    let u = format!("{}/?token={ADMIN}", server.url);
    let dom = tokio::task::spawn_blocking(move || browse(&u, &[]))
        .await
        .unwrap();
    assert!(dom.contains("DIGESTIF_ADMIN_TOKEN"), "{dom}");
    assert!(dom.contains("status page is off"), "{dom}");
    for hidden in ["acme/api", "authentication required"] {
        assert!(!dom.contains(hidden), "leaked {hidden:?}:\n{dom}");
    }
    // And /setup is closed while an App is configured.
    let (status, _, body) = get(&format!("{}/setup", server.url), &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("Registration is closed"), "{body}");
    server.stop().await;
    fake.with_state(|s| s.violations.clear());
}

// ---- registration (/setup), through the binary -------------------------------------------

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `digestif serve` with a clean environment (no App configured but by the credentials
/// file next to the database in `dir`).
fn serve(dir: &Path, fake: &FakeGitHub, port: u16, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_digestif"));
    cmd.envs(env.iter().copied());
    for (k, _) in std::env::vars() {
        if k.starts_with("DIGESTIF_") && !env.iter().any(|(e, _)| *e == k) {
            cmd.env_remove(k);
        }
    }
    cmd.arg("serve")
        .env(
            "DIGESTIF_DATABASE_URL",
            format!("sqlite://{}", dir.join("digestif.db").display()),
        )
        .env("DIGESTIF_GITHUB_API_URL", fake.url())
        .env("DIGESTIF_BIND", format!("127.0.0.1:{port}"))
        .env("DIGESTIF_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start digestif serve")
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn attr(html: &str, before: &str) -> String {
    let start = html
        .find(before)
        .unwrap_or_else(|| panic!("no {before} in {html}"))
        + before.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    unescape(&html[start..end])
}

fn cookie_pair(h: &reqwest::header::HeaderMap) -> String {
    h["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_registers_the_app_writes_a_private_file_and_serve_starts_with_it() {
    let fake = FakeGitHub::start().await;
    let inst = fake.create_installation("acme", &[("contents", "read")]);
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = serve(dir.path(), &fake, port, &[]);
    let stderr = child.stderr.take().unwrap();
    let mut proc = Proc {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // The one-time token is on stderr; keep draining stderr afterwards.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("serve prints how to register");
        if l.contains("register one: open ") {
            break l;
        }
    };
    let setup_url = line.split("open ").nth(1).unwrap().trim().to_string();
    assert!(
        setup_url.starts_with(&format!("{}/setup?token=", proc.url)),
        "{line}"
    );
    let url = proc.url.clone();

    // Setup mode: not ready, no webhooks, /setup wants the token.
    assert_eq!(get(&format!("{url}/healthz"), &[]).await.0, 200);
    let (status, _, body) = get(&format!("{url}/readyz"), &[]).await;
    assert_eq!(status, 503);
    assert!(body.contains("/setup"), "{body}");
    assert_eq!(get(&format!("{url}/setup"), &[]).await.0, 401);
    let (status, h, _) = get(&setup_url, &[]).await;
    assert_eq!(status, 303);
    let admin = cookie_pair(&h);
    let (status, h, html) = get(&format!("{url}/setup"), &[("cookie", &admin)]).await;
    assert_eq!(status, 200, "{html}");
    let state_cookie = cookie_pair(&h);
    let action = attr(&html, r#"<form method="post" action=""#);
    let web = fake.url();
    assert!(
        action.starts_with(&format!("{web}/settings/apps/new?state=")),
        "{action}"
    );
    let state = action.split("state=").nth(1).unwrap().to_string();
    let manifest: Value =
        serde_json::from_str(&attr(&html, r#"name="manifest" value=""#)).expect("manifest JSON");
    assert_eq!(
        manifest["hook_attributes"]["url"],
        format!("{url}/webhooks/github")
    );
    assert_eq!(manifest["redirect_url"], format!("{url}/setup/callback"));
    assert_eq!(manifest["default_permissions"]["workflows"], "write");
    // The organization variant posts to the organization's page.
    let (_, _, html) = get(&format!("{url}/setup?org=acme"), &[("cookie", &admin)]).await;
    assert!(
        attr(&html, r#"<form method="post" action=""#).starts_with(&format!(
            "{web}/organizations/acme/settings/apps/new?state="
        )),
        "{html}"
    );

    // The person confirms on GitHub; GitHub redirects the browser with a code.
    let code = fake.manifest_code(manifest);
    let callback = format!("{url}/setup/callback?code={code}&state={state}");
    // Someone else's browser (no state cookie) cannot complete it.
    let (status, _, _) = get(&callback, &[]).await;
    assert_eq!(status, 400);
    let (status, _, body) = get(&callback, &[("cookie", &state_cookie)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&fake.app_id().to_string()), "{body}");
    assert!(body.contains("installations/new"), "{body}");

    let file = dir.path().join("digestif-app.env");
    let text = std::fs::read_to_string(&file).expect("credentials file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let secret = fake.with_state(|s| s.app_webhook_secret.clone()).unwrap();
    assert!(text.contains(&format!("DIGESTIF_GITHUB_APP_ID={}", fake.app_id())));
    assert!(text.contains(&format!("DIGESTIF_WEBHOOK_SECRET='{secret}'")));
    assert!(text.contains("DIGESTIF_GITHUB_PRIVATE_KEY='-----BEGIN RSA PRIVATE KEY-----\\n"));

    // The same process switches to serving with the new App: ready once GitHub took the
    // credentials, webhooks signed with the new secret are accepted, /setup is closed.
    eventually("serving with the registered App", || {
        let url = url.clone();
        async move { (status_of(&format!("{url}/readyz")).await == Some(200)).then_some(()) }
    })
    .await;
    let hook = webhooks::sign(
        "installation",
        &{
            let mut p = webhooks::adapt(
                webhooks::example("installation", Some("created")),
                inst,
                &Value::Null,
                "octocat",
            );
            p["installation"]["account"]["login"] = json!("acme");
            p["repositories"] = json!([]);
            p
        },
        &secret,
    );
    assert_eq!(deliver(&url, &hook).await, 202);
    assert_eq!(get(&format!("{url}/setup"), &[]).await.0, 404);
    let (status, _, _) = get(&callback, &[("cookie", &state_cookie)]).await;
    assert_eq!(status, 404);
    drop(proc);
    // Scanned at the restart: its job's log lines name it, though the job's payload holds
    // only its id.
    fake.create_repo(inst, "acme", "api", &[("README.md", "hi\n")]);

    // A restart reads the file: no setup mode, straight to ready. (With JSON logs, whose
    // lines carry the webhook's and the job's span fields.)
    let mut child = serve(dir.path(), &fake, port, &[("DIGESTIF_LOG_FORMAT", "json")]);
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    proc = Proc {
        child,
        url: url.clone(),
    };
    eventually("a restart serves with the file's App", || {
        let url = url.clone();
        async move { (status_of(&format!("{url}/readyz")).await == Some(200)).then_some(()) }
    })
    .await;
    let again = webhooks::sign(
        "installation",
        &serde_json::from_slice::<Value>(&hook.body).unwrap(),
        &secret,
    );
    let delivery = again
        .headers
        .iter()
        .find(|(k, _)| k == "x-github-delivery")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(deliver(&url, &again).await, 202);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(proc);
    let lines = lines.join().unwrap();
    let json: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    // The first line logging `message`, and the job span it was logged in.
    let line = |message: &str| {
        json.iter()
            .find(|v| v["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no '{message}' in {lines:#?}"))
    };
    let job_span = |line: &Value| -> Value {
        line["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == "job"))
            .cloned()
            .unwrap_or_else(|| panic!("no job span: {line}"))
    };
    let accepted = line("webhook accepted");
    assert_eq!(
        accepted["span"]["delivery"],
        delivery.as_str(),
        "{accepted}"
    );
    assert_eq!(accepted["span"]["installation"], inst, "{accepted}");
    let synced = line("installation synced");
    let synced_span = job_span(synced);
    assert!(synced_span["id"].is_number(), "{synced}");
    assert_eq!(synced_span["installation"], inst, "{synced}");
    let scanned = line("scan stored");
    let scan_span = job_span(scanned);
    assert_eq!(scan_span["kind"], "scan_repo", "{scanned}");
    assert_eq!(scan_span["repo"], "acme/api", "{scanned}");
    assert!(scan_span["repository_id"].is_number(), "{scanned}");
    let violations = fake.with_state(|s| std::mem::take(&mut s.violations));
    assert!(violations.is_empty(), "{violations:?}");
}

// ---- README ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_s_operator_commands_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let block = readme
        .split("### Operator commands")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|b| b.split("```").next())
        .expect("README: an sh block under Operator commands")
        .to_string();
    assert!(block.contains("digestif repos --format json"), "{block}");

    let fake = FakeGitHub::start().await;
    let inst = fake.create_installation("acme", &[("contents", "read")]);
    fake.create_repo(inst, "acme", "api", &[("README.md", "hi\n")]);
    let server = start(
        &fake,
        OpsSettings {
            admin_token: Some(ADMIN.into()),
            ..Default::default()
        },
    )
    .await;
    let s = server.store.clone();
    eventually("repository scanned", || {
        let s = s.clone();
        async move {
            let r = s.repository_by_full_name("acme/api").await.ok()??;
            r.last_scan_at.map(|_| ())
        }
    })
    .await;
    eventually("ready", || {
        let url = server.url.clone();
        async move { (status_of(&format!("{url}/readyz")).await == Some(200)).then_some(()) }
    })
    .await;

    // Run literally, except that the server is this test's and `digestif` the binary under
    // test.
    let script = block.replace("http://localhost:3000", &server.url);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_digestif")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let work = tempfile::tempdir().unwrap();
    let (db_url, dir) = (server.db_url.clone(), work.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(dir)
            .env("PATH", path)
            .env("DIGESTIF_DATABASE_URL", db_url)
            .env("DIGESTIF_ADMIN_TOKEN", ADMIN)
            .output()
            .expect("bash")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{block}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for seen in [
        "database is up to date",
        "acme/api",
        "\"repositories\"",
        "queued scan of acme/api as job",
        "queued ",
        "\"counts\"",
        "digestif_webhooks_total",
        "digestif_references",
        "ready",
    ] {
        assert!(stdout.contains(seen), "no {seen:?} in\n{stdout}");
    }
    let page = std::fs::read_to_string(work.path().join("status.html")).unwrap();
    assert!(
        page.contains("acme/api") && page.contains("digestif status"),
        "{page}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_refuses_forged_callbacks_and_never_overwrites_credentials() {
    use digestif::web::setup::{SetupState, router};
    let fake = FakeGitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.env");
    std::fs::write(&file, "DIGESTIF_GITHUB_APP_ID=1\n").unwrap();
    let token = "setup-token-0123456789abcdef";
    let state = Arc::new(SetupState::new(
        fake.url(),
        fake.url(),
        None,
        file.clone(),
        token.into(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let (status, h, _) = get(&format!("{url}/setup?token={token}"), &[]).await;
    assert_eq!(status, 303);
    let admin = cookie_pair(&h);
    let (_, h, html) = get(&format!("{url}/setup"), &[("cookie", &admin)]).await;
    let state_cookie = cookie_pair(&h);
    let action = attr(&html, r#"<form method="post" action=""#);
    let issued = action.split("state=").nth(1).unwrap().to_string();
    let manifest: Value = serde_json::from_str(&attr(&html, r#"name="manifest" value=""#)).unwrap();
    let code = fake.manifest_code(manifest);

    // A state this server never issued, with a matching cookie the forger set himself.
    let fake_state = "0".repeat(48);
    let (status, _, _) = get(
        &format!("{url}/setup/callback?code={code}&state={fake_state}"),
        &[("cookie", &format!("digestif_setup_state={fake_state}"))],
    )
    .await;
    assert_eq!(status, 400);
    // The right state, but the credentials file exists: refused before the code is spent.
    let callback = format!("{url}/setup/callback?code={code}&state={issued}");
    let (status, _, body) = get(&callback, &[("cookie", &state_cookie)]).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("exists already"), "{body}");
    assert!(fake.with_state(|s| s.manifest_codes.contains_key(&code)));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "DIGESTIF_GITHUB_APP_ID=1\n"
    );
    // Moved away: the same callback completes.
    std::fs::remove_file(&file).unwrap();
    let (status, _, body) = get(&callback, &[("cookie", &state_cookie)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("DIGESTIF_GITHUB_APP_ID=4242")
    );
    // A state works once.
    let (status, _, _) = get(&callback, &[("cookie", &state_cookie)]).await;
    assert_eq!(status, 200, "registered: the page says so again");
    server.abort();
}
