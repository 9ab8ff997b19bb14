//! End to end: the real server (router, job workers, scheduler, SQLite store, octocrab
//! client) against the fake GitHub and a real registry, fed GitHub's example webhooks.

#[path = "support/registry.rs"]
mod registry_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use digestif::schedule::SystemClock;
use digestif::server::{Server, Tuning};
use digestif::settings::Settings;
use digestif::store::Store;
use registry_support::TestRegistry;
use serde_json::{Value, json};
use support::fake_github::{FakeGitHub, webhooks};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "webhook-secret";
const PERMS: &[(&str, &str)] = &[
    ("contents", "write"),
    ("pull_requests", "write"),
    ("issues", "write"),
    ("checks", "write"),
];

struct Running {
    url: String,
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

async fn start_server(fake: &FakeGitHub, registry: &TestRegistry) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("digestif.db").display());
    let settings = Settings {
        app_id: fake.app_id(),
        private_key_pem: fake.private_key_pem().as_bytes().to_vec(),
        webhook_secret: SECRET.as_bytes().to_vec(),
        github_api_url: fake.url().to_string(),
        database_url: db,
        bind: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
    };
    let mut reg = registry.resolver_config();
    // Server mode: the guard is on, and the test registry is allowed by name.
    reg.ssrf_guard = true;
    reg.allow_private.insert("127.0.0.1".into());
    let tuning = Tuning {
        github_retry: digestif::github::RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(20),
            max_wait: Duration::from_secs(2),
        },
        scheduler_interval: Duration::from_millis(200),
        worker_poll: Duration::from_millis(50),
    };
    let server = Server::build(settings, reg, Arc::new(SystemClock), tuning)
        .await
        .expect("server builds");
    let store = server.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(listener, shutdown.clone()));
    Running {
        url,
        store,
        shutdown,
        task,
        _dir: dir,
    }
}

async fn deliver(url: &str, hook: &webhooks::SignedWebhook) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client.post(format!("{url}/webhooks/github"));
    for (k, v) in &hook.headers {
        req = req.header(k, v);
    }
    let resp = req.body(hook.body.clone()).send().await.expect("delivered");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Polls `check` until it returns `Some`, failing after 20 s with `what`.
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

fn repo_json(fake: &FakeGitHub, full: &str) -> Value {
    fake.with_state(|s| s.repo_json(full))
}

fn installation_event(
    fake: &FakeGitHub,
    inst: u64,
    action: &str,
    repos: &[&str],
) -> webhooks::SignedWebhook {
    let mut p = webhooks::adapt(
        webhooks::example("installation", Some(action)),
        inst,
        &Value::Null,
        "octocat",
    );
    p["installation"]["account"]["login"] = json!("acme");
    let list: Vec<Value> = repos
        .iter()
        .map(|r| {
            let j = repo_json(fake, r);
            json!({"id": j["id"], "node_id": j["node_id"], "name": j["name"], "full_name": j["full_name"], "private": false})
        })
        .collect();
    p["repositories"] = json!(list);
    webhooks::sign("installation", &p, SECRET)
}

fn push_event(fake: &FakeGitHub, inst: u64, full: &str, files: &[&str]) -> webhooks::SignedWebhook {
    let repo = repo_json(fake, full);
    let mut p = webhooks::adapt(webhooks::example("push", None), inst, &repo, "octocat");
    let head = fake.branches(full)["main"].clone();
    p["ref"] = json!("refs/heads/main");
    p["after"] = json!(head);
    p["commits"] = json!([{"id": head, "added": [], "removed": [], "modified": files}]);
    p["head_commit"] = json!({"id": head, "added": [], "removed": [], "modified": files});
    webhooks::sign("push", &p, SECRET)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_scan_config_errors_and_uninstall() {
    let registry = TestRegistry::start().await;
    let amd = registry
        .push_image("library/python", None, "linux/amd64", "a", false)
        .await;
    let arm = registry
        .push_image("library/python", None, "linux/arm64", "a", false)
        .await;
    let old = registry
        .push_index(
            "library/python",
            "3.12-slim",
            &[&amd, &arm],
            false,
            "2024-01-01",
            false,
        )
        .await;
    let amd2 = registry
        .push_image("library/python", None, "linux/amd64", "b", false)
        .await;
    let new = registry
        .push_index(
            "library/python",
            "3.12-slim",
            &[&amd2, &arm],
            false,
            "2024-02-01",
            false,
        )
        .await;
    let dockerfile = format!(
        "FROM {}\nRUN echo hi\n",
        registry.reference("library/python", "3.12-slim", Some(&old))
    );
    let compose = format!(
        "services:\n  web:\n    image: {}\n",
        registry.reference("library/python", "3.12-slim", None)
    );

    let fake = FakeGitHub::start().await;
    let inst = fake.create_installation("acme", PERMS);
    fake.create_repo(
        inst,
        "acme",
        "widgets",
        &[
            ("Dockerfile", &dockerfile),
            ("compose.yaml", &compose),
            ("README.md", "hi\n"),
        ],
    );
    let server = start_server(&fake, &registry).await;

    // Bad signature: refused before anything is parsed or stored.
    let mut forged = installation_event(&fake, inst, "created", &["acme/widgets"]);
    forged.body.extend_from_slice(b" ");
    assert_eq!(deliver(&server.url, &forged).await.0, 401);

    let created = installation_event(&fake, inst, "created", &["acme/widgets"]);
    let (status, _) = deliver(&server.url, &created).await;
    assert_eq!(status, 202);
    // The same delivery again (GitHub's redelivery): acknowledged, not processed twice.
    let (status, body) = deliver(&server.url, &created).await;
    assert_eq!((status, body.as_str()), (202, "already received"));

    let store = server.store.clone();
    let repo_id = eventually("repository synced and scanned", || {
        let store = store.clone();
        async move {
            let r = store.repository_by_full_name("acme/widgets").await.ok()??;
            r.last_scan_at.map(|_| r.id)
        }
    })
    .await;
    let refs = store.references_for_repo(repo_id).await.expect("refs");
    assert_eq!(refs.len(), 2, "{refs:?}");
    let df = refs
        .iter()
        .find(|r| r.file == "Dockerfile")
        .expect("Dockerfile ref");
    assert_eq!(df.status, "stale");
    assert_eq!(df.digest.as_deref(), Some(old.as_str()));
    assert_eq!(df.current_digest.as_deref(), Some(new.as_str()));
    let cp = refs
        .iter()
        .find(|r| r.file == "compose.yaml")
        .expect("compose ref");
    assert_eq!(cp.status, "unpinned");
    assert_eq!(cp.current_digest.as_deref(), Some(new.as_str()));

    // An invalid config: the repository gets one issue with line numbers, and no updates.
    fake.push(
        "acme/widgets",
        "main",
        &[(
            ".github/digestif.yml",
            Some("schedule: sometimes\ngroup: all\nlabels: [deps]\ntimezone: Mars/Olympus\n"),
        )],
        Default::default(),
        "configure digestif",
    );
    let (status, _) = deliver(
        &server.url,
        &push_event(&fake, inst, "acme/widgets", &[".github/digestif.yml"]),
    )
    .await;
    assert_eq!(status, 202);
    let issue = eventually("config error issue", || {
        let issues = fake.issues("acme/widgets");
        async move {
            issues
                .into_iter()
                .find(|i| i.title == "digestif: configuration error")
        }
    })
    .await;
    let body = issue.body.clone().unwrap_or_default();
    assert!(body.contains("line 1, column 11"), "{body}");
    assert!(body.contains("line 4, column 11"), "{body}");
    let repo = store.repository(repo_id).await.expect("db").expect("repo");
    assert!(
        repo.config_error
            .as_deref()
            .unwrap_or("")
            .contains("Mars/Olympus")
    );
    // Scanning again with the same broken file updates the same issue, never a second one.
    fake.push(
        "acme/widgets",
        "main",
        &[(".github/digestif.yml", Some("schedule: sometimes\n"))],
        Default::default(),
        "still broken",
    );
    deliver(
        &server.url,
        &push_event(&fake, inst, "acme/widgets", &[".github/digestif.yml"]),
    )
    .await;
    eventually("issue updated", || {
        let issues = fake.issues("acme/widgets");
        async move {
            let open: Vec<_> = issues
                .iter()
                .filter(|i| i.title == "digestif: configuration error")
                .collect();
            (open.len() == 1 && !open[0].body.as_deref().unwrap_or("").contains("Mars"))
                .then_some(())
        }
    })
    .await;

    // Fixed: the issue is closed with a comment, the schedule is the one the file asks for.
    fake.push(
        "acme/widgets",
        "main",
        &[(
            ".github/digestif.yml",
            Some("schedule: \"0 6 * * 1-5\"\ntimezone: Europe/Berlin\n"),
        )],
        Default::default(),
        "fix config",
    );
    deliver(
        &server.url,
        &push_event(&fake, inst, "acme/widgets", &[".github/digestif.yml"]),
    )
    .await;
    eventually("config issue closed", || {
        let issues = fake.issues("acme/widgets");
        async move {
            issues
                .iter()
                .find(|i| i.title == "digestif: configuration error" && i.state == "closed")
                .map(|_| ())
        }
    })
    .await;
    let repo = eventually("config stored", || {
        let store = store.clone();
        async move {
            let r = store.repository(repo_id).await.ok()??;
            (r.config_error.is_none() && r.timezone == "Europe/Berlin").then_some(r)
        }
    })
    .await;
    assert_eq!(repo.schedule, "0 6 * * 1-5");

    // Uninstall: everything about the installation goes.
    let deleted = installation_event(&fake, inst, "deleted", &["acme/widgets"]);
    assert_eq!(deliver(&server.url, &deleted).await.0, 202);
    eventually("repository data removed", || {
        let store = store.clone();
        async move {
            store
                .repository(repo_id)
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test]
async fn oversized_and_unknown_deliveries() {
    let registry = TestRegistry::start().await;
    let fake = FakeGitHub::start().await;
    let server = start_server(&fake, &registry).await;
    let client = reqwest::Client::new();
    // Over GitHub's 25 MB cap: refused without reading it all.
    let big = vec![b' '; 26 * 1024 * 1024];
    let sig = format!("sha256={}", webhooks::signature(SECRET, &big));
    let resp = client
        .post(format!("{}/webhooks/github", server.url))
        .header("x-github-event", "push")
        .header("x-github-delivery", "big-1")
        .header("x-hub-signature-256", sig)
        .body(big)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 413);
    // An event digestif does not handle: accepted and ignored.
    let p = webhooks::example("star", Some("created"));
    let hook = webhooks::sign("star", &p, SECRET);
    let (status, body) = deliver(&server.url, &hook).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(server.store.job_counts().await.expect("counts").queued, 0);
    // Missing signature.
    let resp = client
        .post(format!("{}/webhooks/github", server.url))
        .header("x-github-event", "ping")
        .header("x-github-delivery", "nosig")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 401);
    // Health and readiness (the App's credentials are checked against GitHub at start).
    let health = client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let url = server.url.clone();
    eventually("ready", || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client.get(format!("{url}/readyz")).send().await.ok()?;
            (r.status().as_u16() == 200).then_some(())
        }
    })
    .await;
    server.stop().await;
}
