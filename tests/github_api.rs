//! digestif's GitHub client against the fake GitHub: App auth, pagination, conditional
//! requests, retries that honour Retry-After, and reading a repository by blob sha.

mod support;

use std::time::Duration;

use digestif::github::api::{ApiError, Conditional, GitHubApp, RetryPolicy};
use digestif::github::repo;
use serde_json::Value;
use support::fake_github::{FakeGitHub, Fault};

const PERMS: &[(&str, &str)] = &[
    ("contents", "write"),
    ("pull_requests", "write"),
    ("issues", "write"),
    ("checks", "write"),
];

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(20),
        max_wait: Duration::from_secs(2),
    }
}

async fn setup(files: &[(&str, &str)]) -> (FakeGitHub, GitHubApp, u64) {
    let fake = FakeGitHub::start().await;
    let inst = fake.create_installation("acme", PERMS);
    fake.create_repo(inst, "acme", "widgets", files);
    let app = GitHubApp::new(
        fake.url(),
        fake.app_id(),
        fake.private_key_pem().as_bytes(),
        policy(),
    )
    .expect("app client");
    (fake, app, inst)
}

#[tokio::test]
async fn app_lists_installations_and_their_repositories_across_pages() {
    let (fake, app, inst) = setup(&[("README.md", "hi\n")]).await;
    for i in 0..130 {
        fake.create_repo(inst, "acme", &format!("r{i:03}"), &[("a", "b")]);
    }
    let installs: Vec<Value> = app
        .as_app()
        .get_all("/app/installations", None)
        .await
        .expect("installations");
    assert_eq!(installs.len(), 1);
    assert_eq!(installs[0]["account"]["login"], "acme");
    let api = app.installation(inst).expect("installation client");
    let repos: Vec<Value> = api
        .get_all("/installation/repositories", Some("repositories"))
        .await
        .expect("repositories");
    assert_eq!(repos.len(), 131, "every page is read");
    fake.assert_no_violations();
}

#[tokio::test]
async fn absolute_link_headers_are_followed_on_the_same_host() {
    let (fake, app, inst) = setup(&[("README.md", "hi\n")]).await;
    for i in 0..120 {
        fake.create_repo(inst, "acme", &format!("r{i:03}"), &[("a", "b")]);
    }
    fake.set_absolute_links(true);
    let api = app.installation(inst).expect("client");
    let repos: Vec<Value> = api
        .get_all("/installation/repositories", Some("repositories"))
        .await
        .expect("repositories");
    assert_eq!(repos.len(), 121);
    fake.assert_no_violations();
}

#[tokio::test]
async fn reads_head_tree_and_blobs_and_a_304_is_free() {
    let dockerfile = "FROM python:3.12-slim\n";
    let (fake, app, inst) =
        setup(&[("Dockerfile", dockerfile), ("deploy/app.yaml", "a: 1\n")]).await;
    let api = app.installation(inst).expect("client");
    let info = repo::repository(&api, "acme/widgets").await.expect("repo");
    assert_eq!(info.default_branch, "main");
    let head = repo::branch_head(&api, "acme/widgets", "main", None)
        .await
        .expect("head")
        .expect("fresh");
    assert_eq!(head.commit_sha, fake.branches("acme/widgets")["main"]);
    let tree = repo::tree(&api, "acme/widgets", &head.tree_sha)
        .await
        .expect("tree");
    let paths: Vec<_> = tree.files().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["Dockerfile", "deploy/app.yaml"]);
    let entry = tree.file("Dockerfile").expect("Dockerfile entry");
    let bytes = repo::blob(&api, "acme/widgets", &entry.sha)
        .await
        .expect("blob");
    assert_eq!(bytes, dockerfile.as_bytes());

    // Unchanged branch: GitHub answers 304 to the ETag, which the rate limit does not count.
    let etag = head.etag.clone().expect("etag");
    let again = repo::branch_head(&api, "acme/widgets", "main", Some(&etag))
        .await
        .expect("conditional");
    assert_eq!(again, None);
    assert!(fake.requests().last().expect("logged").not_modified);
    // A push changes the answer.
    fake.push(
        "acme/widgets",
        "main",
        &[("Dockerfile", Some("FROM python:3.13-slim\n"))],
        Default::default(),
        "bump",
    );
    let moved = repo::branch_head(&api, "acme/widgets", "main", Some(&etag))
        .await
        .expect("conditional")
        .expect("changed");
    assert_ne!(moved.commit_sha, head.commit_sha);
    fake.assert_no_violations();
}

#[tokio::test]
async fn secondary_rate_limit_is_waited_out_and_502_retried_for_reads() {
    let (fake, app, inst) = setup(&[("README.md", "hi\n")]).await;
    let api = app.installation(inst).expect("client");
    repo::repository(&api, "acme/widgets")
        .await
        .expect("warm token");
    fake.inject_faults(1, Fault::SecondaryRateLimit { retry_after: 1 });
    let started = std::time::Instant::now();
    repo::repository(&api, "acme/widgets")
        .await
        .expect("retried after the wait");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    fake.inject_faults(2, Fault::BadGateway);
    repo::repository(&api, "acme/widgets")
        .await
        .expect("retried after two 502s");
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .rev()
        .take(3)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 502, 502]);
    fake.assert_no_violations();
}

#[tokio::test]
async fn long_rate_limits_and_writes_after_502_come_back_as_errors() {
    let (fake, app, inst) = setup(&[("README.md", "hi\n")]).await;
    let api = app.installation(inst).expect("client");
    repo::repository(&api, "acme/widgets")
        .await
        .expect("warm token");
    // Longer than the policy will sleep inside a call: the job gets rescheduled instead.
    fake.inject_faults(1, Fault::SecondaryRateLimit { retry_after: 600 });
    match repo::repository(&api, "acme/widgets").await {
        Err(ApiError::RateLimited { retry_in }) => assert_eq!(retry_in, Duration::from_secs(600)),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // A POST that failed with 502 may have happened: it is not blindly sent again.
    fake.inject_faults(1, Fault::BadGateway);
    let before = fake.requests().len();
    let created: Result<Value, _> = api
        .post(
            "/repos/acme/widgets/issues",
            &serde_json::json!({"title": "t", "body": "b"}),
        )
        .await;
    assert_eq!(created.err().and_then(|e| e.status()), Some(502));
    assert_eq!(fake.requests().len(), before + 1, "sent once");
    assert!(fake.issues("acme/widgets").is_empty());
    fake.assert_no_violations();
}

#[tokio::test]
async fn conditional_get_returns_fresh_value_with_etag() {
    let (fake, app, inst) = setup(&[("README.md", "hi\n")]).await;
    let api = app.installation(inst).expect("client");
    let first: Conditional<Value> = api
        .get_conditional("/repos/acme/widgets", None)
        .await
        .expect("first");
    let Conditional::Fresh { value, etag } = first else {
        panic!("first answer is fresh")
    };
    assert_eq!(value["full_name"], "acme/widgets");
    let second: Conditional<Value> = api
        .get_conditional("/repos/acme/widgets", etag.as_deref())
        .await
        .expect("second");
    assert!(matches!(second, Conditional::NotModified));
    assert!(
        api.get_opt::<Value>("/repos/acme/nope")
            .await
            .expect("404 is None")
            .is_none()
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_key_github_does_not_know_is_refused() {
    let fake = FakeGitHub::start().await;
    let inst = fake.create_installation("acme", PERMS);
    fake.create_repo(inst, "acme", "widgets", &[("a", "b")]);
    // Another RSA key: the JWT it signs does not verify with the App's public key.
    let other = &support::fake_github::auth::other_key().private_pem;
    let app =
        GitHubApp::new(fake.url(), fake.app_id(), other.as_bytes(), policy()).expect("client");
    let api = app.installation(inst).expect("client");
    let err = repo::repository(&api, "acme/widgets")
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("401") || err.to_string().contains("JSON web token"),
        "{err}"
    );
    assert!(GitHubApp::new(fake.url(), 1, b"not a key", policy()).is_err());
}

/// An installation token lasts an hour: every job for the installation shares one, instead
/// of each asking GitHub for its own (10,000 scans once cost 10,000 token requests).
#[tokio::test]
async fn jobs_of_one_installation_share_its_token() {
    let (fake, app, inst) = setup(&[("README.md", "hi\n")]).await;
    for _ in 0..3 {
        // Each job asks for the installation's client afresh, as the job handlers do.
        let api = app.installation(inst).expect("installation client");
        let _: Value = api.get("/repos/acme/widgets").await.expect("repository");
    }
    let tokens = fake
        .requests()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("apps/create-installation-access-token"))
        .count();
    assert_eq!(tokens, 1, "one token for three jobs");
}
