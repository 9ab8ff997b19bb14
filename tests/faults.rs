//! The server under faults and on unusual GitHubs: a replica paused past its lease, trees
//! GitHub truncates, GitHub Enterprise Server's paths (auto-merge through GraphQL).

mod support;

use std::sync::Arc;
use std::time::Duration;

use digestif::store::Backend;
use support::app::*;
use support::backends::TestDb;
use support::fake_github::FakeGitHub;
use support::registry::TestRegistry;

const REPO: &str = "acme/widgets";

/// `library/python:3.12-slim` pinned to an old digest, the tag moved since: returns the
/// Dockerfile and (old, new) index digests.
async fn stale_python(reg: &TestRegistry) -> (String, String, String) {
    let mut digests = Vec::new();
    for salt in ["one", "two"] {
        let amd = reg
            .push_image("library/python", None, "linux/amd64", salt, false)
            .await;
        digests.push(
            reg.push_index("library/python", "3.12-slim", &[&amd], false, salt, false)
                .await,
        );
    }
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&digests[0]))
    );
    let new = digests.pop().expect("new");
    let old = digests.pop().expect("old");
    (dockerfile, old, new)
}

/// Installs the App on acme/widgets (already created on `fake`) through `server`.
async fn install(fake: &FakeGitHub, server: &Running, inst: u64) {
    let (status, body) = deliver(
        &server.url,
        &installation_event(fake, inst, "created", &[REPO]),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

fn successes(fake: &FakeGitHub, method: &str, path: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == method && r.path == path && (200..300).contains(&r.status))
        .count()
}

// ---- 16: auto-merge, on github.com's shape and GitHub Enterprise Server's ---------------

async fn automerge(ghes: bool, allowed: bool) {
    let reg = TestRegistry::start().await;
    let (dockerfile, _, _) = stale_python(&reg).await;
    let fake = if ghes {
        FakeGitHub::start_ghes().await
    } else {
        FakeGitHub::start().await
    };
    let inst = fake.create_installation("acme", PERMS);
    fake.create_repo(
        inst,
        "acme",
        "widgets",
        &[
            ("Dockerfile", &dockerfile),
            (".github/digestif.yml", "automerge: true\n"),
        ],
    );
    fake.set_allow_auto_merge(REPO, allowed);
    let server = start_server(&fake, &reg).await;
    install(&fake, &server, inst).await;
    eventually("a PR", || async {
        (!fake.pulls(REPO).is_empty()).then_some(())
    })
    .await;
    server.settle().await;
    let pulls = fake.pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let auto = pulls[0].pull.as_ref().expect("pull").auto_merge.clone();
    let comments = fake.comments(REPO, pulls[0].number);
    if allowed {
        let auto = auto.expect("auto-merge enabled");
        assert_eq!(auto.merge_method, "MERGE");
        assert_eq!(auto.enabled_by, "digestif[bot]");
        assert!(comments.is_empty(), "{comments:?}");
    } else {
        assert!(auto.is_none());
        assert_eq!(comments.len(), 1, "{comments:?}");
        assert!(
            comments[0].body.contains("could not enable auto-merge")
                && comments[0]
                    .body
                    .contains("Auto merge is not allowed for this repository"),
            "{}",
            comments[0].body
        );
    }
    // Exactly one GraphQL request, at the endpoint this shape of GitHub serves (the fake
    // records API-relative paths; on GHES a request anywhere else is a violation).
    let graphql: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/graphql")
        .collect();
    assert_eq!(graphql.len(), 1, "{graphql:?}");
    assert_eq!(
        (graphql[0].method.as_str(), graphql[0].status),
        ("POST", 200)
    );
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automerge_is_enabled_on_github_com() {
    automerge(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automerge_is_enabled_on_github_enterprise_server() {
    automerge(true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automerge_refused_by_the_repository_is_said_on_the_pr() {
    automerge(true, false).await;
}

// ---- 7: a replica paused past its lease --------------------------------------------------

/// Replica A takes the scan and is paused (the whole process: handler and heartbeat) in the
/// middle of writing the PR; its lease runs out, replica B takes the job and writes the PR;
/// then A wakes up. The PR must be written once: A stops instead of writing it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_does_not_write_the_pr_again() {
    let db = TestDb::new(Backend::Postgres, true)
        .await
        .expect("PostgreSQL test database");
    let database_url = format!(
        "{}?options[search_path]={}",
        db.url,
        db.schema.clone().expect("schema")
    );
    let setup = Setup {
        database_url: Some(database_url),
        job_lease: Duration::from_millis(900),
        ..Setup::default()
    };
    let reg = Arc::new(TestRegistry::start().await);
    let (dockerfile, old, new) = stale_python(&reg).await;
    let fake = Arc::new(FakeGitHub::start().await);
    let inst = fake.create_installation("acme", PERMS);
    fake.create_repo(inst, "acme", "widgets", &[("Dockerfile", &dockerfile)]);
    // A's first write (a blob of the PR's commit) is where it will be paused.
    let hold = fake.hold_next("POST", "/repos/acme/widgets/git/blobs");

    // Replica A on a runtime of its own, on one thread, so that blocking that thread
    // pauses all of A at once, as SIGSTOP or a long GC pause would.
    let rt_a = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime A");
    let handle_a = rt_a.handle().clone();
    let (url_tx, url_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread_a = {
        let (fake, reg, setup) = (fake.clone(), reg.clone(), setup.clone());
        std::thread::spawn(move || {
            rt_a.block_on(async move {
                let a = start_server_with(&fake, &reg, setup).await;
                let _ = url_tx.send(a.url.clone());
                let _ = stop_rx.await;
                a.stop().await;
            })
        })
    };
    let url_a = url_rx.await.expect("A started");
    let (status, body) =
        deliver(&url_a, &installation_event(&fake, inst, "created", &[REPO])).await;
    assert_eq!(status, 202, "{body}");
    tokio::time::timeout(Duration::from_secs(30), hold.reached.cancelled())
        .await
        .expect("A reaches its first write");

    // Pause A.
    let (paused_tx, paused_rx) = tokio::sync::oneshot::channel::<()>();
    let (wake_tx, wake_rx) = std::sync::mpsc::channel::<()>();
    handle_a.spawn(async move {
        let _ = paused_tx.send(());
        let _ = wake_rx.recv();
    });
    paused_rx.await.expect("A paused");

    // Replica B takes the job once A's lease has run out, and writes the PR.
    let b = start_server_with(&fake, &reg, setup).await;
    eventually("B opens the PR", || async {
        (!fake.pulls(REPO).is_empty()).then_some(())
    })
    .await;
    b.settle().await;
    let head = fake.branches(REPO)["digestif/all"].clone();
    let number = fake.pulls(REPO)[0].number;
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile").as_deref(),
        Some(dockerfile.replace(&old, &new).as_str())
    );

    // A wakes up; its blob request is answered; it must not go on writing.
    hold.release.cancel();
    // The answer is written while A is still paused: waking or stopping A first could
    // close its connection before the fake answered (and recorded) the request.
    eventually("the fake answers A's held blob request", || async {
        (successes(&fake, "POST", "/repos/acme/widgets/git/blobs") == 2).then_some(())
    })
    .await;
    wake_tx.send(()).expect("wake A");
    stop_tx.send(()).expect("stop A");
    tokio::task::spawn_blocking(move || thread_a.join())
        .await
        .expect("join")
        .expect("A stopped cleanly");
    b.settle().await;

    let base = "/repos/acme/widgets";
    assert_eq!(
        successes(&fake, "POST", &format!("{base}/git/blobs")),
        2,
        "A's paused blob request was answered too"
    );
    for (method, path, n) in [
        ("POST", format!("{base}/git/trees"), 1),
        ("POST", format!("{base}/git/commits"), 1),
        ("POST", format!("{base}/git/refs"), 1),
        ("PATCH", format!("{base}/git/refs/heads/digestif/all"), 0),
        ("POST", format!("{base}/pulls"), 1),
        ("PATCH", format!("{base}/pulls/{number}"), 0),
    ] {
        assert_eq!(
            successes(&fake, method, &path),
            n,
            "{method} {path}: {:#?}",
            fake.requests()
        );
    }
    assert_eq!(fake.pulls(REPO).len(), 1);
    assert_eq!(
        fake.branches(REPO)["digestif/all"],
        head,
        "B's commit stands"
    );
    let jobs = b.store.job_counts().await.expect("jobs");
    assert_eq!(
        (jobs.queued, jobs.running, jobs.dead),
        (0, 0, 0),
        "{jobs:?}"
    );
    fake.assert_no_violations();
    b.stop().await;
}

// ---- 8: trees GitHub truncates ------------------------------------------------------------

/// GitHub truncates a large tree's recursive listing. The scan reads the rest directory by
/// directory, so the open PR keeps the update of the file past the cut instead of being
/// shrunk to what the truncated listing showed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_tree_is_read_completely() {
    let reg = TestRegistry::start().await;
    let (dockerfile, old, new) = stale_python(&reg).await;
    let fake = FakeGitHub::start().await;
    let deep = "z/deep/x/Dockerfile";
    let (server, _inst) = installed(
        &fake,
        &reg,
        &[
            ("a/Dockerfile", &dockerfile),
            (deep, &dockerfile),
            ("z/f1.txt", "one\n"),
            ("z/f2.txt", "two\n"),
        ],
    )
    .await;
    let on_branch = |path: &str| fake.file_at(REPO, "digestif/all", path);
    let updated = dockerfile.replace(&old, &new);
    assert_eq!(on_branch("a/Dockerfile").as_deref(), Some(updated.as_str()));
    assert_eq!(on_branch(deep).as_deref(), Some(updated.as_str()));

    // From now on a recursive listing stops after 3 entries: the root's ends inside `a/`,
    // and `z/` is too big for one listing as well.
    fake.set_tree_limit(3);
    fake.push(
        REPO,
        "main",
        &[("README.md", Some("hello\n"))],
        Default::default(),
        "readme",
    );
    server.scan(REPO).await;
    let pulls = fake.pulls(REPO);
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].state, "open");
    assert_eq!(on_branch("a/Dockerfile").as_deref(), Some(updated.as_str()));
    assert_eq!(
        on_branch(deep).as_deref(),
        Some(updated.as_str()),
        "the update past the cut stays in the PR"
    );
    assert!(
        pulls[0].body.as_deref().unwrap_or("").contains(deep),
        "{:?}",
        pulls[0].body
    );
    let trees: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/repos/acme/widgets/git/trees/") && r.method == "GET")
        .collect();
    assert!(
        trees.iter().any(|r| !r.query.contains("recursive")),
        "directories were listed one by one: {trees:#?}"
    );
    // Both references are known, the one past the cut too.
    let repo = server
        .store
        .repository_by_full_name(REPO)
        .await
        .expect("db")
        .expect("repo");
    let refs = server
        .store
        .references_for_repo(repo.id)
        .await
        .expect("references");
    assert_eq!(refs.len(), 2, "{refs:?}");
    fake.assert_no_violations();
    server.stop().await;
}

// ---- 12: schedules the server would not run ---------------------------------------------

/// The scan and the check run refuse what `check-config` refuses: a schedule more frequent
/// than the operator's minimum (default 1 hour) or one that never runs is a configuration
/// error at its line, and the repository is not scanned every minute meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_that_never_run_or_run_too_often_are_configuration_errors() {
    let reg = TestRegistry::start().await;
    let fake = FakeGitHub::start().await;
    let (server, inst) = installed(
        &fake,
        &reg,
        &[
            ("README.md", "hi\n"),
            (
                ".github/digestif.yml",
                "pin: false\nschedule: \"* * * * *\"\n",
            ),
        ],
    )
    .await;
    let issues = fake.issues(REPO);
    let issue = issues
        .iter()
        .find(|i| i.title == "digestif: configuration error")
        .expect("configuration error issue");
    let body = issue.body.clone().unwrap_or_default();
    assert!(
        body.contains("line 2") && body.contains("at most once every 1 hour"),
        "{body}"
    );
    let repo = server
        .store
        .repository_by_full_name(REPO)
        .await
        .expect("db")
        .expect("repo");
    assert_eq!(repo.schedule, "daily", "not every minute");

    // A pull request proposing a schedule that never runs gets a failing check run.
    fake.push(
        REPO,
        "config",
        &[(".github/digestif.yml", Some("schedule: \"0 0 30 2 *\"\n"))],
        Default::default(),
        "try a schedule",
    );
    let number = open_pull_as_app(&fake, inst, "config", "config").await;
    let hook = pull_request_event(&fake, inst, REPO, number, "opened", "carol");
    assert_eq!(deliver(&server.url, &hook).await.0, 202);
    server.settle().await;
    let runs = fake.check_runs(REPO);
    let run = runs
        .iter()
        .find(|r| r.name == "digestif: configuration")
        .expect("check run");
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    let text = run.output.to_string();
    assert!(
        text.contains("line 1") && text.contains("never runs"),
        "{text}"
    );
    fake.assert_no_violations();
    server.stop().await;
}
