//! The whole server in-process (router, job workers, scheduler, SQLite store, octocrab
//! client) against the fake GitHub and a real registry, and GitHub-shaped deliveries.

use std::sync::Arc;
use std::time::Duration;

use digestif::clock::SystemClock;
use digestif::jobs::Work;
use digestif::server::{Server, Tuning};
use digestif::server_settings::Settings;
use digestif::store::Store;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::fake_github::{FakeGitHub, webhooks};
use super::registry::TestRegistry;

pub const SECRET: &str = "webhook-secret";
pub const PERMS: &[(&str, &str)] = &[
    ("contents", "write"),
    ("pull_requests", "write"),
    ("issues", "write"),
    ("checks", "write"),
];

pub struct Running {
    pub url: String,
    pub store: Store,
    /// The server's database, for the operator commands (`digestif trigger`).
    pub database_url: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let done = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server stops within 30 s")
            .expect("server task");
        done.expect("server ran cleanly");
    }
}

pub async fn start_server(fake: &FakeGitHub, registry: &TestRegistry) -> Running {
    start_server_with(fake, registry, Setup::default()).await
}

/// What a test may change about the server [`start_server`] runs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Default: a fresh SQLite file.
    pub database_url: Option<String>,
    pub job_lease: Duration,
    /// `DIGESTIF_OSV_URL` (default: unset).
    pub osv_url: Option<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            database_url: None,
            job_lease: Tuning::default().job_lease,
            osv_url: None,
        }
    }
}

pub async fn start_server_with(
    fake: &FakeGitHub,
    registry: &TestRegistry,
    setup: Setup,
) -> Running {
    start(fake, registry, setup, |_| {}).await
}

/// [`start_server`] with registry settings changed by `tweak` (pull budgets, say).
pub async fn start_server_tweaked(
    fake: &FakeGitHub,
    registry: &TestRegistry,
    tweak: impl FnOnce(&mut digestif::registry::RegistryConfig),
) -> Running {
    start(fake, registry, Setup::default(), tweak).await
}

async fn start(
    fake: &FakeGitHub,
    registry: &TestRegistry,
    setup: Setup,
    tweak: impl FnOnce(&mut digestif::registry::RegistryConfig),
) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = setup
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("digestif.db").display()));
    let settings = Settings {
        app_id: fake.app_id(),
        private_key_pem: fake.private_key_pem().as_bytes().to_vec(),
        webhook_secret: SECRET.as_bytes().to_vec(),
        github_api_url: fake.url().to_string(),
        database_url: db.clone(),
        bind: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
    };
    let mut reg = registry.resolver_config();
    // Every scan in a test asks the registry again (production reuses answers for minutes).
    reg.cache_ttl = Duration::ZERO;
    // Server mode: the guard is on, and the test registry is allowed by name.
    reg.ssrf_guard = true;
    reg.allow_private.insert("127.0.0.1".into());
    tweak(&mut reg);
    let tuning = Tuning {
        github_retry: digestif::github::RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(20),
            max_wait: Duration::from_secs(2),
        },
        scheduler_interval: Duration::from_millis(200),
        worker_poll: Duration::from_millis(50),
        job_retry: digestif::store::RetryPolicy {
            base: Duration::from_millis(200),
            max: Duration::from_millis(400),
        },
        job_lease: setup.job_lease,
        ..Tuning::default()
    };
    let server = Server::build(settings, reg, Arc::new(SystemClock), tuning)
        .await
        .expect("server builds");
    let server = match &setup.osv_url {
        Some(u) => server.with_ops(digestif::server_settings::OpsSettings {
            osv_url: Some(u.clone()),
            ..Default::default()
        }),
        None => server,
    };
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
        database_url: db,
        shutdown,
        task,
        _dir: dir,
    }
}

pub async fn deliver(url: &str, hook: &webhooks::SignedWebhook) -> (u16, String) {
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
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
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

pub fn repo_json(fake: &FakeGitHub, full: &str) -> Value {
    fake.with_state(|s| s.repo_json(full))
}

pub fn installation_event(
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

pub fn push_event(
    fake: &FakeGitHub,
    inst: u64,
    full: &str,
    files: &[&str],
) -> webhooks::SignedWebhook {
    let repo = repo_json(fake, full);
    let mut p = webhooks::adapt(webhooks::example("push", None), inst, &repo, "octocat");
    let head = fake.branches(full)["main"].clone();
    p["ref"] = json!("refs/heads/main");
    p["after"] = json!(head);
    p["commits"] = json!([{"id": head, "added": [], "removed": [], "modified": files}]);
    p["head_commit"] = json!({"id": head, "added": [], "removed": [], "modified": files});
    webhooks::sign("push", &p, SECRET)
}

impl Running {
    /// Waits until no job is queued or running (twice in a row, so a job that enqueues
    /// another is seen through).
    pub async fn settle(&self) {
        let mut quiet = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while quiet < 3 {
            let c = self.store.job_counts().await.expect("job counts");
            if c.queued == 0 && c.running == 0 {
                quiet += 1;
            } else {
                quiet = 0;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "jobs did not settle: {c:?}"
            );
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }

    /// What `digestif trigger` does: a scan job, then waits for everything to finish.
    pub async fn scan(&self, full_name: &str) {
        let repo = self
            .store
            .repository_by_full_name(full_name)
            .await
            .expect("db")
            .expect("repository known");
        let job = Work::ScanRepo {
            repository_id: repo.id,
            reason: "test".into(),
            fresh: true,
        }
        .to_job();
        self.store
            .enqueue(&job, chrono::Utc::now())
            .await
            .expect("enqueue");
        self.settle().await;
    }
}

/// Installs the App on `acme` with `acme/widgets` holding `files`, and delivers the
/// `installation.created` webhook; returns when the first scan is done.
pub async fn installed(
    fake: &FakeGitHub,
    registry: &TestRegistry,
    files: &[(&str, &str)],
) -> (Running, u64) {
    installed_with(fake, registry, files, &[]).await
}

/// [`installed`], with `(user, role)` collaborators on the repository.
pub async fn installed_with(
    fake: &FakeGitHub,
    registry: &TestRegistry,
    files: &[(&str, &str)],
    collaborators: &[(&str, &str)],
) -> (Running, u64) {
    installed_tuned(fake, registry, files, collaborators, |_| {}).await
}

/// [`installed_with`] on a server whose registry settings `tweak` changed.
pub async fn installed_tuned(
    fake: &FakeGitHub,
    registry: &TestRegistry,
    files: &[(&str, &str)],
    collaborators: &[(&str, &str)],
    tweak: impl FnOnce(&mut digestif::registry::RegistryConfig),
) -> (Running, u64) {
    installed_setup(
        fake,
        registry,
        files,
        collaborators,
        Setup::default(),
        tweak,
    )
    .await
}

/// [`installed_tuned`] on a server started with `setup`.
pub async fn installed_setup(
    fake: &FakeGitHub,
    registry: &TestRegistry,
    files: &[(&str, &str)],
    collaborators: &[(&str, &str)],
    setup: Setup,
    tweak: impl FnOnce(&mut digestif::registry::RegistryConfig),
) -> (Running, u64) {
    let inst = fake.create_installation("acme", PERMS);
    fake.create_repo(inst, "acme", "widgets", files);
    for (user, role) in collaborators {
        fake.set_permission("acme/widgets", user, role);
    }
    let server = start(fake, registry, setup, tweak).await;
    let (status, body) = deliver(
        &server.url,
        &installation_event(fake, inst, "created", &["acme/widgets"]),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually("repository synced", || {
        let store = server.store.clone();
        async move {
            store
                .repository_by_full_name("acme/widgets")
                .await
                .ok()?
                .map(|_| ())
        }
    })
    .await;
    server.settle().await;
    (server, inst)
}

/// `pull_request` webhook for PR `number` (adapted from GitHub's example).
pub fn pull_request_event(
    fake: &FakeGitHub,
    inst: u64,
    full: &str,
    number: u64,
    action: &str,
    sender: &str,
) -> webhooks::SignedWebhook {
    let repo = repo_json(fake, full);
    let mut p = webhooks::adapt(
        webhooks::example("pull_request", Some(action)),
        inst,
        &repo,
        sender,
    );
    let pr = fake.with_state(|s| s.pull_json(full, number));
    p["number"] = json!(number);
    p["pull_request"] = pr;
    webhooks::sign("pull_request", &p, SECRET)
}

/// `issue_comment.created` on PR `number` by `user` (the comment is also made on the fake).
pub fn comment_event(
    fake: &FakeGitHub,
    inst: u64,
    full: &str,
    number: u64,
    user: &str,
    body: &str,
) -> webhooks::SignedWebhook {
    let id = fake.comment(full, number, user, body);
    let repo = repo_json(fake, full);
    let mut p = webhooks::adapt(
        webhooks::example("issue_comment", Some("created")),
        inst,
        &repo,
        user,
    );
    p["issue"] = fake.with_state(|s| s.issue_json(full, number));
    p["comment"]["id"] = json!(id);
    p["comment"]["body"] = json!(body);
    p["comment"]["user"]["login"] = json!(user);
    webhooks::sign("issue_comment", &p, SECRET)
}

/// A push by `user` to `branch` (not the default branch).
pub fn branch_push_event(
    fake: &FakeGitHub,
    inst: u64,
    full: &str,
    branch: &str,
    user: &str,
) -> webhooks::SignedWebhook {
    let repo = repo_json(fake, full);
    let mut p = webhooks::adapt(webhooks::example("push", None), inst, &repo, user);
    let head = fake.branches(full)[branch].clone();
    p["ref"] = json!(format!("refs/heads/{branch}"));
    p["after"] = json!(head);
    p["sender"]["type"] = json!("User");
    webhooks::sign("push", &p, SECRET)
}

impl Running {
    /// `user` comments `body` on PR `number`; waits until the work it caused is done.
    pub async fn comment(&self, fake: &FakeGitHub, inst: u64, number: u64, user: &str, body: &str) {
        let hook = comment_event(fake, inst, "acme/widgets", number, user, body);
        let (status, text) = deliver(&self.url, &hook).await;
        assert_eq!(status, 202, "{text}");
        self.settle().await;
    }

    /// "carol" ticks the rescan box of the dashboard issue `number` of `full` (whose body is
    /// `body`), as GitHub reports it; waits until the work it caused is done.
    pub async fn tick_rescan_box(
        &self,
        fake: &FakeGitHub,
        inst: u64,
        full: &str,
        number: u64,
        body: &str,
    ) {
        let ticked = body.replacen("- [ ]", "- [x]", 1);
        fake.with_state(|s| {
            if let Some(i) = s.repo_mut(full).and_then(|r| r.issues.get_mut(&number)) {
                i.body = Some(ticked.clone());
            }
        });
        let repo = repo_json(fake, full);
        let mut p = webhooks::adapt(
            webhooks::example("issues", Some("edited")),
            inst,
            &repo,
            "carol",
        );
        p["issue"] = fake.with_state(|s| s.issue_json(full, number));
        let hook = webhooks::sign("issues", &p, SECRET);
        assert_eq!(deliver(&self.url, &hook).await.0, 202);
        self.settle().await;
    }
}

/// Opens a pull request from `head` into `main` with the installation's token, as if
/// someone (or an earlier, interrupted digestif) had. Returns its number.
pub async fn open_pull_as_app(fake: &FakeGitHub, inst: u64, head: &str, title: &str) -> u64 {
    let app = digestif::github::GitHubApp::new(
        fake.url(),
        fake.app_id(),
        fake.private_key_pem().as_bytes(),
        Default::default(),
    )
    .expect("app");
    let api = app.installation(inst).expect("client");
    let pr: Value = api
        .post(
            "/repos/acme/widgets/pulls",
            &json!({"title": title, "head": head, "base": "main"}),
        )
        .await
        .expect("PR");
    pr["number"].as_u64().expect("number")
}

impl Running {
    /// Someone pushes `path` = `text` to `main` of acme/widgets, and GitHub delivers the
    /// push webhook (answered 202).
    pub async fn push_to_main(
        &self,
        fake: &FakeGitHub,
        inst: u64,
        path: &str,
        text: &str,
        message: &str,
    ) {
        fake.push(
            "acme/widgets",
            "main",
            &[(path, Some(text))],
            Default::default(),
            message,
        );
        let (status, body) =
            deliver(&self.url, &push_event(fake, inst, "acme/widgets", &[path])).await;
        assert_eq!(status, 202, "{body}");
    }
}
