//! End to end: the real server (router, job workers, scheduler, SQLite store, octocrab
//! client) against the fake GitHub and a real registry, fed GitHub's example webhooks.

mod support;

use support::app::*;
use support::fake_github::{FakeGitHub, webhooks};
use support::registry::TestRegistry;

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
    server
        .push_to_main(
            &fake,
            inst,
            ".github/digestif.yml",
            "schedule: sometimes\ngroup: all\nlabels: [deps]\ntimezone: Mars/Olympus\n",
            "configure digestif",
        )
        .await;
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
    server
        .push_to_main(
            &fake,
            inst,
            ".github/digestif.yml",
            "schedule: sometimes\n",
            "still broken",
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
    server
        .push_to_main(
            &fake,
            inst,
            ".github/digestif.yml",
            "schedule: \"0 6 * * 1-5\"\ntimezone: Europe/Berlin\n",
            "fix config",
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

/// The narrow read of a delivery's action, installation and repository (for the log and
/// the delivery record) finds in each of GitHub's examples what the whole document holds.
#[test]
fn the_envelope_of_every_example_matches_the_whole_document() {
    let examples = webhooks::every_example();
    assert!(examples.len() > 300, "{} examples", examples.len());
    let mut with_action = 0;
    for (event, payload) in &examples {
        let body = serde_json::to_vec(payload).unwrap();
        let got = digestif::github::webhook::envelope(&body);
        let want = digestif::github::webhook::Envelope {
            action: payload["action"].as_str().map(str::to_string),
            installation: payload.pointer("/installation/id").and_then(|v| v.as_i64()),
            repository: payload
                .pointer("/repository/full_name")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        };
        assert_eq!(got, want, "{event}");
        with_action += usize::from(got.action.is_some());
    }
    assert!(with_action > 200, "{with_action} examples with an action");
}

/// A repository added by an installation is scanned at once, and that scan is its first
/// day's: the scheduler next takes it at the default schedule's slot, not a second time
/// right after (onboarding 1,000 repositories once scanned 598 of them twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_repository_is_scanned_once_when_installed() {
    let registry = TestRegistry::start().await;
    let fake = FakeGitHub::start().await;
    let (server, _) = installed(&fake, &registry, &[("README.md", "hi\n")]).await;
    // Several scheduler turns (every 200 ms here) after the first scan finished.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    server.settle().await;
    let scans: Vec<_> = server
        .store
        .list_jobs(None, 100)
        .await
        .expect("jobs")
        .into_iter()
        .filter(|j| j.kind == digestif::store::JobKind::SCAN_REPO.as_str())
        .map(|j| (j.payload.0["reason"].clone(), j.state))
        .collect();
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert_eq!(scans[0].0, "installed", "{scans:?}");
    let repo = server
        .store
        .repository_by_full_name("acme/widgets")
        .await
        .expect("db")
        .expect("repository");
    let scanned = repo.last_scan_at.expect("scanned");
    let next = repo.next_scan_at.expect("scheduled");
    assert!(
        next > scanned,
        "next scan {next} not after the first {scanned}"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescans_fetch_only_changed_blobs_and_a_config_pr_gets_a_check_run() {
    let registry = TestRegistry::start().await;
    let img = registry
        .push_image("library/alpine", Some("3"), "linux/amd64", "a", true)
        .await;
    let pinned = registry.reference("library/alpine", "3", Some(&img.digest));
    let fake = FakeGitHub::start().await;
    let files: Vec<(String, String)> = (0..5)
        .map(|i| {
            (
                format!("svc{i}/Dockerfile"),
                format!("FROM {pinned}\nRUN echo {i}\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let (server, inst) = installed(&fake, &registry, &refs).await;
    let blob_gets = || {
        fake.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/git/blobs/"))
            .count()
    };
    assert_eq!(blob_gets(), 5, "first scan reads each candidate once");
    // Nothing changed: the branch answers 304 and no tree or blob is read.
    let before = fake.requests().len();
    server.scan("acme/widgets").await;
    let new: Vec<_> = fake.requests()[before..].to_vec();
    assert!(new.iter().any(|r| r.not_modified), "{new:?}");
    assert!(
        !new.iter().any(|r| r.path.contains("/git/trees/")),
        "{new:?}"
    );
    assert_eq!(blob_gets(), 5);
    // One file changes: one blob is read.
    fake.push(
        "acme/widgets",
        "main",
        &[(
            "svc2/Dockerfile",
            Some(&format!("FROM {pinned}\nRUN echo changed\n")),
        )],
        Default::default(),
        "change one",
    );
    server.scan("acme/widgets").await;
    assert_eq!(blob_gets(), 6);
    let repo = server
        .store
        .repository_by_full_name("acme/widgets")
        .await
        .expect("db")
        .expect("repo");
    let stored = server
        .store
        .references_for_repo(repo.id)
        .await
        .expect("refs");
    assert_eq!(stored.len(), 5);
    assert!(
        stored.iter().all(|r| r.status == "up-to-date"),
        "{stored:?}"
    );

    // A pull request that changes the config gets a check run saying whether it is valid.
    fake.push(
        "acme/widgets",
        "config",
        &[(
            ".github/digestif.yml",
            Some("schedule: weekly\ngroup: everything\n"),
        )],
        Default::default(),
        "try a config",
    );
    let number = open_pull_as_app(&fake, inst, "config", "config").await;
    let hook = pull_request_event(&fake, inst, "acme/widgets", number, "opened", "carol");
    assert_eq!(deliver(&server.url, &hook).await.0, 202);
    server.settle().await;
    let runs = fake.check_runs("acme/widgets");
    let run = runs
        .iter()
        .find(|r| r.name == "digestif: configuration")
        .expect("check run");
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert_eq!(run.head_sha, fake.branches("acme/widgets")["config"]);
    let text = run.output.to_string();
    assert!(text.contains("line 2"), "{text}");
    // Fixed on the branch: the new head gets a passing check.
    fake.push(
        "acme/widgets",
        "config",
        &[(
            ".github/digestif.yml",
            Some("schedule: weekly\ngroup: image\n"),
        )],
        Default::default(),
        "fix",
    );
    let hook = pull_request_event(&fake, inst, "acme/widgets", number, "synchronize", "carol");
    deliver(&server.url, &hook).await;
    server.settle().await;
    let head = fake.branches("acme/widgets")["config"].clone();
    let runs = fake.check_runs("acme/widgets");
    let run = runs
        .iter()
        .find(|r| r.head_sha == head)
        .expect("check on the new head");
    assert_eq!(run.conclusion.as_deref(), Some("success"));
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_failing_is_recorded_and_the_scan_is_retried() {
    let registry = TestRegistry::start().await;
    let old = registry
        .push_image("library/alpine", Some("3"), "linux/amd64", "a", true)
        .await;
    registry
        .push_image("library/alpine", Some("3"), "linux/amd64", "b", true)
        .await;
    let dockerfile = format!(
        "FROM {}\n",
        registry.reference("library/alpine", "3", Some(&old.digest))
    );
    let fake = FakeGitHub::start().await;
    let (server, _) = installed(&fake, &registry, &[("README.md", "nothing yet\n")]).await;
    fake.push(
        "acme/widgets",
        "main",
        &[("Dockerfile", Some(&dockerfile))],
        Default::default(),
        "add",
    );
    // GitHub answers 502 to every try of the next read: the scan fails, says why, and
    // the job comes back.
    fake.inject_faults(3, support::fake_github::Fault::BadGateway);
    let repo = server
        .store
        .repository_by_full_name("acme/widgets")
        .await
        .expect("db")
        .expect("repo");
    let job = digestif::jobs::Work::ScanRepo {
        repository_id: repo.id,
        reason: "test".into(),
        fresh: false,
    }
    .to_job();
    server
        .store
        .enqueue(&job, chrono::Utc::now())
        .await
        .expect("enqueue");
    let error = eventually("the failure is recorded", || {
        let store = server.store.clone();
        async move {
            let r = store.repository(repo.id).await.ok()??;
            (r.last_scan_status.as_deref() == Some("error"))
                .then_some(r.last_error.unwrap_or_default())
        }
    })
    .await;
    assert!(error.contains("502"), "{error}");
    server.settle().await;
    let r = server
        .store
        .repository(repo.id)
        .await
        .expect("db")
        .expect("repo");
    assert_eq!(
        r.last_scan_status.as_deref(),
        Some("ok"),
        "{:?}",
        r.last_error
    );
    let pulls = fake.pulls("acme/widgets");
    assert_eq!(pulls.len(), 1, "the retry opened the PR");
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_reported_and_the_rest_is_scanned() {
    let registry = TestRegistry::start().await;
    let img = registry
        .push_image("library/alpine", Some("3"), "linux/amd64", "a", true)
        .await;
    let good = format!(
        "services:\n  a:\n    image: {}\n",
        registry.reference("library/alpine", "3", Some(&img.digest))
    );
    let fake = FakeGitHub::start().await;
    let (server, _) = installed(
        &fake,
        &registry,
        &[
            ("Dockerfile", "FROM Not/A:Valid:Image\n"),
            ("compose.yaml", &good),
            ("k8s/bad.yaml", "apiVersion: v1\nkind: Pod\nspec: [\n"),
        ],
    )
    .await;
    let repo = server
        .store
        .repository_by_full_name("acme/widgets")
        .await
        .expect("db")
        .expect("repo");
    assert_eq!(repo.last_scan_status.as_deref(), Some("ok"));
    let error = repo.last_error.unwrap_or_default();
    assert!(error.contains("Dockerfile:1"), "{error}");
    assert!(error.contains("k8s/bad.yaml"), "{error}");
    let refs = server
        .store
        .references_for_repo(repo.id)
        .await
        .expect("refs");
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(refs[0].file, "compose.yaml");
    assert_eq!(refs[0].status, "up-to-date");
    fake.assert_no_violations();
    server.stop().await;
}

/// A config that is too big is refused before it is fetched, on the default branch and in a
/// pull request; one with thousands of errors and hostile values gives an issue GitHub
/// accepts (the fake refuses bodies over 65,536 characters), with the values quoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_error_flooded_configs() {
    let registry = TestRegistry::start().await;
    let fake = FakeGitHub::start().await;
    let big = format!("# {}\n", "x".repeat(200 * 1024));
    let (server, inst) = installed(
        &fake,
        &registry,
        &[("README.md", "hi\n"), (".github/digestif.yml", &big)],
    )
    .await;
    let config_issue = || {
        fake.issues("acme/widgets")
            .into_iter()
            .find(|i| i.title == "digestif: configuration error" && i.state == "open")
    };
    let issue = config_issue().expect("config error issue");
    let body = issue.body.unwrap_or_default();
    assert!(
        body.contains("larger than 128 KiB, the most digestif reads of a configuration file"),
        "{body}"
    );
    let blob_gets = || {
        fake.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/git/blobs/"))
            .count()
    };
    assert_eq!(blob_gets(), 0, "the oversized file is never fetched");
    let repo = server
        .store
        .repository_by_full_name("acme/widgets")
        .await
        .expect("db")
        .expect("repo");
    assert_eq!(repo.config_text, None, "nothing of it is stored");
    assert_eq!(repo.last_scan_status.as_deref(), Some("config-error"));
    // A rescan of the unchanged branch (304) says the same, without fetching it either.
    server.scan("acme/widgets").await;
    assert_eq!(blob_gets(), 0);
    assert!(config_issue().is_some());

    // A pull request proposing an oversized file gets a failing check; the file is not read.
    fake.push(
        "acme/widgets",
        "bigger",
        &[(".github/digestif.yml", Some(&format!("{big}{big}")))],
        Default::default(),
        "even bigger",
    );
    let number = open_pull_as_app(&fake, inst, "bigger", "bigger").await;
    let hook = pull_request_event(&fake, inst, "acme/widgets", number, "opened", "carol");
    assert_eq!(deliver(&server.url, &hook).await.0, 202);
    server.settle().await;
    let run = fake
        .check_runs("acme/widgets")
        .into_iter()
        .find(|r| r.head_sha == fake.branches("acme/widgets")["bigger"])
        .expect("check run");
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert!(
        run.output.to_string().contains("larger than 128 KiB"),
        "{}",
        run.output
    );
    assert_eq!(blob_gets(), 0);

    // Thousands of errors (each ignore entry names no valid image), hostile text among them.
    let hostile = "x` @octocat [click](https://evil.example) ![i](https://evil.example/i.png)";
    let mut flood = format!("timezone: {hostile:?}\nignore:\n");
    while flood.len() < 120 * 1024 {
        flood.push_str("  - {image: \"Bad!\"}\n");
    }
    server
        .push_to_main(&fake, inst, ".github/digestif.yml", &flood, "many errors")
        .await;
    server.settle().await;
    let issue = config_issue().expect("config error issue");
    let body = issue.body.unwrap_or_default();
    let errors = digestif::repo_config::RepoConfig::parse(&flood)
        .expect_err("invalid")
        .0
        .len();
    assert!(errors > 5_000, "{errors}");
    assert!(body.chars().count() <= 65_536, "{}", body.len());
    assert!(
        body.contains(&format!("… and {} more errors", errors - 50)),
        "{body}"
    );
    // The hostile value is inside a code span: GitHub makes no mention, link or image of it.
    let mut quoted = 0;
    for ev in pulldown_cmark::Parser::new(&body) {
        match ev {
            pulldown_cmark::Event::Code(c) if c.contains("@octocat [click]") => quoted += 1,
            pulldown_cmark::Event::Start(
                t @ (pulldown_cmark::Tag::Link { .. } | pulldown_cmark::Tag::Image { .. }),
            ) => panic!("{t:?} in {body}"),
            pulldown_cmark::Event::Text(t) => assert!(!t.contains('@'), "{t} in {body}"),
            _ => {}
        }
    }
    assert_eq!(quoted, 1, "{body}");
    let repo = server
        .store
        .repository_by_full_name("acme/widgets")
        .await
        .expect("db")
        .expect("repo");
    let stored = repo.config_error.unwrap_or_default();
    assert!(stored.len() < 20_000, "{}", stored.len());
    assert!(
        stored.ends_with(&format!("… and {} more", errors - 50)),
        "{stored}"
    );
    fake.assert_no_violations();
    server.stop().await;
}
