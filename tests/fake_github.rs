//! Self-tests of the fake GitHub (`tests/support/fake_github`), driven by the real octocrab
//! client authenticated as a GitHub App, the way the app will use it.

mod support;

use std::process::Command;

use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use octocrab::params::repos::Reference;
use serde_json::{Value, json};
use support::fake_github::git::{self, Object};
use support::fake_github::{Author, FakeGitHub, Fault, auth, openapi, webhooks};

const FULL: &[(&str, &str)] = &[
    ("contents", "write"),
    ("pull_requests", "write"),
    ("issues", "write"),
    ("checks", "write"),
    ("metadata", "read"),
];

fn app_client(fake: &FakeGitHub, pem: &str) -> Octocrab {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA key");
    Octocrab::builder()
        .base_uri(fake.url())
        .expect("base uri")
        .app(AppId(fake.app_id()), key)
        .build()
        .expect("octocrab client")
}

/// A fake with one installation on `acme` holding `acme/widgets`, and the App client.
async fn setup(files: &[(&str, &str)]) -> (FakeGitHub, Octocrab, Octocrab, u64) {
    let fake = FakeGitHub::start().await;
    let inst = fake.create_installation("acme", FULL);
    fake.create_repo(inst, "acme", "widgets", files);
    let app = app_client(&fake, fake.private_key_pem());
    let client = app
        .installation(InstallationId(inst))
        .expect("installation client");
    (fake, app, client, inst)
}

#[tokio::test]
async fn app_lists_installations_and_gets_a_verified_token() {
    let (fake, app, client, inst) = setup(&[("README.md", "hi\n")]).await;
    let page = app
        .apps()
        .installations()
        .send()
        .await
        .expect("list installations");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, InstallationId(inst));
    let installation = app
        .apps()
        .installation(InstallationId(inst))
        .await
        .expect("get installation");
    assert_eq!(installation.account.login, "acme");

    let repo = client
        .repos("acme", "widgets")
        .get()
        .await
        .expect("read repo via installation token");
    assert_eq!(repo.full_name.as_deref(), Some("acme/widgets"));
    // The token is cached: a second call does not mint a new one.
    client
        .repos("acme", "widgets")
        .get()
        .await
        .expect("second read");
    let minted = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/access_tokens"))
        .count();
    assert_eq!(minted, 1, "octocrab should reuse its installation token");

    let raw: Value = app
        .get("/repos/acme/widgets/installation", None::<&()>)
        .await
        .expect("repo installation");
    assert_eq!(raw["id"], inst);
    fake.assert_no_violations();
}

#[tokio::test]
async fn jwt_signed_by_another_key_is_refused() {
    let (fake, _, _, inst) = setup(&[("README.md", "hi\n")]).await;
    let wrong = app_client(&fake, &auth::other_key().private_pem);
    let err = wrong
        .apps()
        .installations()
        .send()
        .await
        .expect_err("bad key must be refused");
    assert!(
        matches!(&err, octocrab::Error::GitHub { source, .. } if source.status_code == 401),
        "{err:?}"
    );
    let client = wrong.installation(InstallationId(inst)).expect("client");
    client
        .repos("acme", "widgets")
        .get()
        .await
        .expect_err("no token for a bad JWT");
    // A plain installation token is not accepted on /app endpoints either.
    let (_, token) = app_client(&fake, fake.private_key_pem())
        .installation_and_token(InstallationId(inst))
        .await
        .expect("token");
    let http = reqwest_like_get(
        fake.url(),
        "/app/installations",
        &format!("token {}", secret(&token)),
    )
    .await;
    assert_eq!(http, 401);
    fake.assert_no_violations();
}

fn secret(s: &octocrab::secrecy::SecretString) -> String {
    use octocrab::secrecy::ExposeSecret;
    s.expose_secret().to_string()
}

/// Status of a raw GET with this Authorization header, through an unauthenticated client.
/// (octocrab only attaches its credentials to path-only URIs or api.github.com.)
async fn reqwest_like_get(base: &str, path: &str, authorization: &str) -> u16 {
    let client = Octocrab::builder()
        .base_uri(base)
        .expect("uri")
        .build()
        .expect("client");
    let req = http::Request::builder()
        .method("GET")
        .uri(path)
        .header("authorization", authorization)
        .body(octocrab::OctoBody::empty())
        .expect("request");
    client
        .execute(req)
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn reads_tree_blob_and_contents() {
    let (fake, _, client, _) = setup(&[
        ("Dockerfile", "FROM alpine:3.20\n"),
        ("deploy/k8s/app.yaml", "image: nginx:1\n"),
    ])
    .await;
    let main = fake.branches("acme/widgets")["main"].clone();
    let git = client.git("acme", "widgets");
    let r = git
        .get_ref(&Reference::Branch("main".into()))
        .await
        .expect("get ref");
    let sha = match r.object {
        octocrab::models::repos::Object::Commit { sha, .. } => sha,
        other => panic!("{other:?}"),
    };
    assert_eq!(sha, main);
    let commit = git.get_commit(&sha).await.expect("commit");
    let tree = git
        .get_tree(commit.tree.sha.clone())
        .recursive(true)
        .send()
        .await
        .expect("tree");
    let paths: Vec<&str> = tree.tree.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["Dockerfile", "deploy", "deploy/k8s", "deploy/k8s/app.yaml"]
    );
    let blob_sha = tree
        .tree
        .iter()
        .find(|e| e.path == "Dockerfile")
        .map(|e| e.sha.clone())
        .expect("entry");
    let blob = git.get_blob(blob_sha).await.expect("blob");
    let b64: String = blob
        .content
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    assert_eq!(decoded, b"FROM alpine:3.20\n");

    let content = client
        .repos("acme", "widgets")
        .get_content()
        .path("deploy/k8s/app.yaml")
        .r#ref("main")
        .send()
        .await
        .expect("contents");
    assert_eq!(
        content.items[0].decoded_content().as_deref(),
        Some("image: nginx:1\n")
    );
    let missing = client
        .repos("acme", "widgets")
        .get_content()
        .path("nope")
        .send()
        .await;
    assert!(missing.is_err());
    let branches = client
        .repos("acme", "widgets")
        .list_branches()
        .send()
        .await
        .expect("branches");
    assert_eq!(branches.items[0].name, "main");
    fake.assert_no_violations();
}

/// The whole PR-writer flow: blob → tree on the base tree → commit → ref; then the PR and
/// its decorations, force-update, close and branch deletion.
#[tokio::test]
async fn pr_writer_flow() {
    let (fake, _, client, _) =
        setup(&[("Dockerfile", "FROM alpine:3.20\n"), ("old.txt", "bye\n")]).await;
    fake.set_permission("acme/widgets", "alice", "write");
    let git = client.git("acme", "widgets");
    let base = fake.branches("acme/widgets")["main"].clone();
    let base_tree = fake.commit("acme/widgets", &base).expect("commit").tree;

    let blob = git
        .create_blob("FROM alpine:3.20@sha256:abc\n")
        .encoding("utf-8")
        .send()
        .await
        .expect("blob");
    // octocrab's typed tree entry cannot express `sha: null`, so deletion goes raw.
    let tree: Value = client
        .post(
            "/repos/acme/widgets/git/trees",
            Some(&json!({"base_tree": base_tree, "tree": [
                {"path": "Dockerfile", "mode": "100644", "type": "blob", "sha": blob.sha},
                {"path": "old.txt", "mode": "100644", "type": "blob", "sha": null},
            ]})),
        )
        .await
        .expect("tree");
    let commit = git
        .create_commit("Pin alpine", tree["sha"].as_str().expect("sha"))
        .parents(vec![base.clone()])
        .send()
        .await
        .expect("commit");
    let branch = Reference::Branch("digestif/alpine".into());
    git.create_ref(&branch, commit.sha.clone())
        .await
        .expect("create ref");
    assert_eq!(
        fake.file_at("acme/widgets", "digestif/alpine", "Dockerfile")
            .as_deref(),
        Some("FROM alpine:3.20@sha256:abc\n")
    );
    assert_eq!(
        fake.file_at("acme/widgets", "digestif/alpine", "old.txt"),
        None
    );

    let pulls = client.pulls("acme", "widgets");
    let pr = pulls
        .create("Pin alpine", "digestif/alpine", "main")
        .body("Pins it")
        .send()
        .await
        .expect("create PR");
    let found = pulls
        .list()
        .state(octocrab::params::State::All)
        .head("acme:digestif/alpine")
        .send()
        .await
        .expect("list by head");
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].number, pr.number);
    let none = pulls
        .list()
        .state(octocrab::params::State::All)
        .head("acme:other")
        .send()
        .await
        .expect("list");
    assert!(none.items.is_empty());
    // A second PR for the same head is refused like GitHub does.
    let dup = pulls
        .create("again", "digestif/alpine", "main")
        .send()
        .await;
    assert!(
        matches!(dup, Err(octocrab::Error::GitHub { source, .. }) if source.status_code == 422)
    );

    let issues = client.issues("acme", "widgets");
    let labels = issues
        .add_labels(pr.number, &["dependencies".to_string()])
        .await
        .expect("labels");
    assert_eq!(labels[0].name, "dependencies");
    let reviewers: Value = client
        .post(
            format!(
                "/repos/acme/widgets/pulls/{}/requested_reviewers",
                pr.number
            ),
            Some(&json!({"reviewers": ["alice"], "team_reviewers": ["platform"]})),
        )
        .await
        .expect("request reviewers");
    assert_eq!(reviewers["requested_reviewers"][0]["login"], "alice");
    assert_eq!(reviewers["requested_teams"][0]["slug"], "platform");
    issues
        .add_assignees(pr.number, &["alice"])
        .await
        .expect("assignees");

    let comment = issues
        .create_comment(pr.number, "Digest moved")
        .await
        .expect("comment");
    let human = fake.comment("acme/widgets", pr.number, "alice", "@digestif rebase");
    let reaction: Value = client
        .post(
            format!("/repos/acme/widgets/issues/comments/{human}/reactions"),
            Some(&json!({"content": "+1"})),
        )
        .await
        .expect("react");
    assert_eq!(reaction["content"], "+1");
    assert_eq!(fake.comments("acme/widgets", pr.number).len(), 2);
    assert_eq!(fake.comments("acme/widgets", pr.number)[0].id, comment.id.0);

    // Force-update the branch with a rewritten commit (not a fast-forward).
    let tree2 = git
        .create_tree(vec![
            octocrab::models::git::CreateTreeEntry::new("Dockerfile", "100644", "blob")
                .with_content("FROM alpine:3.21\n"),
        ])
        .base_tree(base_tree.clone())
        .send()
        .await
        .expect("tree2");
    let commit2 = git
        .create_commit("Pin alpine 3.21", tree2.sha.clone())
        .parents(vec![base.clone()])
        .send()
        .await
        .expect("c2");
    let not_ff = git.update_ref(&branch, commit2.sha.clone()).send().await;
    assert!(not_ff.is_err(), "a non-fast-forward update needs force");
    git.update_ref(&branch, commit2.sha.clone())
        .force(true)
        .send()
        .await
        .expect("force update");
    let pr_now = pulls.get(pr.number).await.expect("get PR");
    assert_eq!(pr_now.head.sha, commit2.sha);
    assert_eq!(pr_now.labels.as_ref().map(Vec::len), Some(1));

    pulls
        .update(pr.number)
        .state(octocrab::params::pulls::State::Closed)
        .send()
        .await
        .expect("close");
    git.delete_ref(&branch).await.expect("delete branch");
    assert!(
        !fake
            .branches("acme/widgets")
            .contains_key("digestif/alpine")
    );
    assert_eq!(fake.pulls("acme/widgets")[0].state, "closed");
    fake.assert_no_violations();
}

#[tokio::test]
async fn bad_body_is_refused_and_recorded() {
    let (fake, _, client, _) = setup(&[("README.md", "hi\n")]).await;
    let res: Result<Value, _> = client
        .post(
            "/repos/acme/widgets/git/refs",
            Some(&json!({"ref": "refs/heads/x", "sha": 42})),
        )
        .await;
    assert!(
        matches!(res, Err(octocrab::Error::GitHub { source, .. }) if source.status_code == 422)
    );
    let v = fake.take_violations();
    assert_eq!(v.len(), 1);
    assert!(v[0].message.contains("/sha"), "{}", v[0].message);
    let res: Result<Value, _> = client
        .get("/repos/acme/widgets/no-such-endpoint", None::<&()>)
        .await;
    assert!(res.is_err());
    assert_eq!(fake.take_violations().len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn bodies_over_githubs_limit_are_refused_like_github() {
    let (fake, _, client, _) = setup(&[("README.md", "hi\n")]).await;
    // 65,536 characters pass (multi-byte ones count once, as on GitHub); one more does not.
    let at_limit = "é".repeat(65_536);
    let over = "x".repeat(65_537);
    let issue: Value = client
        .post(
            "/repos/acme/widgets/issues",
            Some(&json!({"title": "t", "body": at_limit})),
        )
        .await
        .expect("a body at the limit is accepted");
    let n = issue["number"].as_u64().expect("number");
    let refused = |res: Result<Value, octocrab::Error>| match res {
        Err(octocrab::Error::GitHub { source, .. }) => {
            assert_eq!(source.status_code, 422);
            assert_eq!(source.message, "Validation Failed");
            let e = &source.errors.expect("errors")[0];
            assert_eq!(e["field"], "body");
            assert_eq!(
                e["message"],
                "body is too long (maximum is 65536 characters)"
            );
            e["resource"].as_str().unwrap_or_default().to_string()
        }
        other => panic!("expected 422, got {other:?}"),
    };
    let attempts = [
        (
            "POST",
            "/repos/acme/widgets/issues".to_string(),
            json!({"title": "t", "body": over}),
            "Issue",
        ),
        (
            "PATCH",
            format!("/repos/acme/widgets/issues/{n}"),
            json!({"body": over}),
            "Issue",
        ),
        (
            "POST",
            format!("/repos/acme/widgets/issues/{n}/comments"),
            json!({"body": over}),
            "IssueComment",
        ),
        (
            "POST",
            "/repos/acme/widgets/pulls".to_string(),
            json!({"title": "t", "head": "main", "base": "main", "body": over}),
            "PullRequest",
        ),
    ];
    for (method, path, body, resource) in attempts {
        let res = if method == "POST" {
            client.post(&path, Some(&body)).await
        } else {
            client.patch(&path, Some(&body)).await
        };
        assert_eq!(refused(res), resource, "{method} {path}");
        let v = fake.take_violations();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("body is too long"),
            "{}",
            v[0].message
        );
    }
    let stored = fake.issues("acme/widgets");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].body.as_deref().map(|b| b.chars().count()),
        Some(65_536)
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn etag_round_trip_does_not_count_against_rate_limit() {
    let (fake, _, client, _) = setup(&[("README.md", "hi\n")]).await;
    client
        .repos("acme", "widgets")
        .get()
        .await
        .expect("warm token");
    let get = |etag: Option<String>| {
        let mut b = http::Request::builder()
            .method("GET")
            .uri("/repos/acme/widgets");
        if let Some(e) = etag {
            b = b.header("if-none-match", e);
        }
        b.body(octocrab::OctoBody::empty()).expect("request")
    };
    let first = client.execute(get(None)).await.expect("first");
    let etag = first.headers()["etag"].to_str().expect("etag").to_string();
    let remaining = first.headers()["x-ratelimit-remaining"]
        .to_str()
        .expect("rl")
        .to_string();
    let second = client.execute(get(Some(etag))).await.expect("second");
    assert_eq!(second.status(), 304);
    assert_eq!(
        second.headers()["x-ratelimit-remaining"]
            .to_str()
            .expect("rl"),
        remaining
    );
    assert!(fake.requests().last().expect("logged").not_modified);
    fake.assert_no_violations();
}

#[tokio::test]
async fn installation_repositories_paginate_with_link_headers() {
    let (fake, _, client, inst) = setup(&[("README.md", "hi\n")]).await;
    for i in 0..4 {
        fake.create_repo(inst, "acme", &format!("repo{i}"), &[("a", "b")]);
    }
    let page: Value = client
        .get("/installation/repositories?per_page=2", None::<&()>)
        .await
        .expect("page 1");
    assert_eq!(page["repositories"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["total_count"], 5);
    let req = http::Request::builder()
        .method("GET")
        .uri("/installation/repositories?per_page=2")
        .body(octocrab::OctoBody::empty())
        .expect("request");
    let resp = client.execute(req).await.expect("raw page");
    let link = resp.headers()["link"].to_str().expect("link").to_string();
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    assert!(link.contains("page=3>; rel=\"last\""), "{link}");

    // octocrab follows `next` links of typed pages.
    let issues = client.issues("acme", "widgets");
    for t in ["one", "two", "three"] {
        issues.create(t).send().await.expect("issue");
    }
    let first = issues.list().per_page(2).send().await.expect("page 1");
    assert_eq!(first.items.len(), 2);
    let second = client
        .get_page::<octocrab::models::issues::Issue>(&first.next)
        .await
        .expect("page 2")
        .expect("has page 2");
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].title, "one");
    let all = client.all_pages(first).await.expect("all pages");
    assert_eq!(all.len(), 3);
    fake.assert_no_violations();
}

#[tokio::test]
async fn workflow_files_need_the_workflows_permission() {
    let (fake, _, client, _) = setup(&[(".github/workflows/ci.yml", "on: push\n")]).await;
    let git = client.git("acme", "widgets");
    let base = fake.branches("acme/widgets")["main"].clone();
    let base_tree = fake.commit("acme/widgets", &base).expect("commit").tree;
    let tree: Value = client
        .post(
            "/repos/acme/widgets/git/trees",
            Some(&json!({"base_tree": base_tree, "tree": [{"path": ".github/workflows/ci.yml", "mode": "100644", "type": "blob", "content": "on: pull_request\n"}]})),
        )
        .await
        .expect("tree");
    let commit = git
        .create_commit("bump", tree["sha"].as_str().expect("sha"))
        .parents(vec![base])
        .send()
        .await
        .expect("commit");
    let err = git
        .create_ref(&Reference::Branch("wf".into()), commit.sha.clone())
        .await
        .expect_err("refused");
    let msg = format!("{err:?}");
    assert!(msg.contains("without `workflows` permission"), "{msg}");
    // With the permission (fresh token), the same change is accepted.
    let mut perms = FULL.to_vec();
    perms.push(("workflows", "write"));
    let inst = fake.with_state(|s| *s.installations.keys().next().expect("one"));
    fake.set_installation_permissions(inst, &perms);
    let app = app_client(&fake, fake.private_key_pem());
    let fresh = app.installation(InstallationId(inst)).expect("client");
    fresh
        .git("acme", "widgets")
        .create_ref(&Reference::Branch("wf".into()), commit.sha)
        .await
        .expect("allowed");
    fake.assert_no_violations();
}

#[tokio::test]
async fn checks_issues_permissions_and_auto_merge() {
    let (fake, _, client, _) = setup(&[("README.md", "hi\n")]).await;
    fake.set_permission("acme/widgets", "bob", "read");
    let perm: Value = client
        .get(
            "/repos/acme/widgets/collaborators/bob/permission",
            None::<&()>,
        )
        .await
        .expect("perm");
    assert_eq!(perm["permission"], "read");
    let head = fake.branches("acme/widgets")["main"].clone();
    let run: Value = client
        .post(
            "/repos/acme/widgets/check-runs",
            Some(&json!({"name": "digestif", "head_sha": head, "status": "in_progress"})),
        )
        .await
        .expect("check run");
    let id = run["id"].as_u64().expect("id");
    let done: Value = client
        .patch(format!("/repos/acme/widgets/check-runs/{id}"), Some(&json!({"conclusion": "success", "output": {"title": "ok", "summary": "all pinned"}})))
        .await
        .expect("update run");
    assert_eq!(done["status"], "completed");

    let issue = client
        .issues("acme", "widgets")
        .create("Digestif configuration error")
        .body("bad yaml")
        .send()
        .await
        .expect("issue");
    client
        .issues("acme", "widgets")
        .update(issue.number)
        .state(octocrab::models::IssueState::Closed)
        .send()
        .await
        .expect("close issue");
    assert_eq!(fake.issues("acme/widgets")[0].state, "closed");

    fake.push(
        "acme/widgets",
        "feature",
        &[("x", Some("y"))],
        Author::default(),
        "feature",
    );
    let pr = client
        .pulls("acme", "widgets")
        .create("f", "feature", "main")
        .send()
        .await
        .expect("pr");
    let node = pr.node_id.clone().expect("node id");
    let gql: Value = client
        .graphql(&json!({
            "query": "mutation($pullRequestId: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId, mergeMethod: SQUASH}) { pullRequest { id } } }",
            "variables": {"pullRequestId": node},
        }))
        .await
        .expect("graphql");
    assert!(gql.get("errors").is_none(), "{gql}");
    assert!(
        fake.pulls("acme/widgets")[0]
            .pull
            .as_ref()
            .expect("pull")
            .auto_merge
            .is_some()
    );
    let other = client
        .graphql::<Value>(&json!({"query": "{ viewer { login } }"}))
        .await;
    assert!(
        matches!(other, Err(octocrab::Error::Graphql { .. })),
        "{other:?}"
    );
    fake.merge_pr("acme/widgets", pr.number, "alice");
    assert_eq!(
        fake.file_at("acme/widgets", "main", "x").as_deref(),
        Some("y")
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn injected_faults_answer_like_github() {
    let (fake, _, client, _) = setup(&[("README.md", "hi\n")]).await;
    client
        .repos("acme", "widgets")
        .get()
        .await
        .expect("warm token");
    fake.inject_faults(1, Fault::SecondaryRateLimit { retry_after: 7 });
    let req = http::Request::builder()
        .method("GET")
        .uri("/repos/acme/widgets")
        .body(octocrab::OctoBody::empty())
        .expect("req");
    // octocrab's default retry policy does not retry a 403, so the app sees it.
    let limited = client.execute(req).await.expect("answered");
    assert_eq!(limited.status(), 403);
    assert_eq!(limited.headers()["retry-after"], "7");
    // A 502 is retried by octocrab's default policy; the second try succeeds.
    fake.inject_faults(1, Fault::BadGateway);
    client
        .repos("acme", "widgets")
        .get()
        .await
        .expect("retried after 502");
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .rev()
        .take(2)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 502]);
    fake.assert_no_violations();
}

fn git_cli(dir: &std::path::Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "A U Thor")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_NAME", "A U Thor")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run git");
    if let Some(input) = stdin {
        child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("git output");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

#[test]
fn git_object_ids_match_the_git_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    git_cli(dir.path(), &["init", "-q"], None);
    let mut store = git::ObjectStore::default();
    let blob = store.insert_blob(b"hello\n");
    assert_eq!(
        blob,
        git_cli(
            dir.path(),
            &["hash-object", "-w", "--stdin"],
            Some(b"hello\n")
        )
    );
    // Names chosen to exercise git's ordering: "a.b" < "a/" (tree) < "a0" and "a-"
    let files: git::FileMap = ["a.b", "a/x", "a0", "a-", "b/c/d", "exec"]
        .iter()
        .map(|p| {
            (
                p.to_string(),
                (
                    if *p == "exec" {
                        git::MODE_EXEC
                    } else {
                        git::MODE_FILE
                    }
                    .to_string(),
                    blob.clone(),
                ),
            )
        })
        .collect();
    let tree = store.write_files(&files);
    // Build the same tree with git: index from `update-index --index-info`, then write-tree.
    let info: String = files
        .iter()
        .map(|(p, (m, s))| format!("{m} {s}\t{p}\n"))
        .collect();
    git_cli(
        dir.path(),
        &["update-index", "--add", "--index-info"],
        Some(info.as_bytes()),
    );
    assert_eq!(tree, git_cli(dir.path(), &["write-tree"], None));
    // mktree on the root listing (git sorts its input) agrees too.
    let listing: String = store
        .tree(&tree)
        .expect("tree")
        .iter()
        .map(|e| format!("{} {} {}\t{}\n", e.mode, e.kind(), e.sha, e.name))
        .collect();
    assert_eq!(
        tree,
        git_cli(dir.path(), &["mktree"], Some(listing.as_bytes()))
    );
    let sig = git::Signature {
        name: "A U Thor".into(),
        email: "author@example.com".into(),
        time: 1_700_000_000,
        tz: "+0000".into(),
    };
    let root = store.insert(Object::Commit(Box::new(git::Commit {
        tree: tree.clone(),
        parents: vec![],
        author: sig.clone(),
        committer: sig.clone(),
        message: "root\n".into(),
    })));
    assert_eq!(
        root,
        git_cli(dir.path(), &["commit-tree", &tree, "-m", "root"], None)
    );
    let child = store.insert(Object::Commit(Box::new(git::Commit {
        tree: git::EMPTY_TREE.into(),
        parents: vec![root.clone()],
        author: sig.clone(),
        committer: sig,
        message: "child\n".into(),
    })));
    assert_eq!(
        child,
        git_cli(
            dir.path(),
            &["commit-tree", git::EMPTY_TREE, "-p", &root, "-m", "child"],
            None
        )
    );
}

#[test]
fn webhook_example_is_adapted_and_signed() {
    let example = webhooks::example("pull_request", Some("closed"));
    assert_eq!(example["action"], "closed");
    let payload = webhooks::adapt(
        example,
        77,
        &json!({"id": 1, "name": "widgets", "full_name": "acme/widgets"}),
        "alice",
    );
    assert_eq!(payload["installation"]["id"], 77);
    assert_eq!(payload["repository"]["full_name"], "acme/widgets");
    assert_eq!(payload["sender"]["login"], "alice");
    let signed = webhooks::sign("pull_request", &payload, "s3cret");
    let header = signed
        .header("x-hub-signature-256")
        .expect("signature header");
    assert_eq!(
        header,
        format!("sha256={}", webhooks::signature("s3cret", &signed.body))
    );
    assert_ne!(
        header,
        format!("sha256={}", webhooks::signature("other", &signed.body))
    );
    assert_eq!(signed.header("x-github-event"), Some("pull_request"));
    assert_eq!(signed.header("x-github-delivery").map(str::len), Some(36));
    for (event, action) in [
        ("installation", Some("created")),
        ("push", None),
        ("issue_comment", Some("created")),
    ] {
        assert!(webhooks::example(event, action).is_object());
    }
}

#[test]
fn openapi_matching_prefers_literal_segments_and_spans_slashes() {
    let spec = openapi::spec();
    let op = spec
        .find("GET", "/repos/o/r/git/ref/heads/feature/x")
        .expect("get-ref");
    assert_eq!(op.id, "git/get-ref");
    assert_eq!(op.params["ref"], "heads/feature/x");
    let op = spec
        .find("GET", "/repos/o/r/pulls/comments")
        .expect("list review comments");
    assert_eq!(op.id, "pulls/list-review-comments-for-repo");
    assert!(spec.find("PUT", "/repos/o/r/git/refs/heads/x").is_none());
    let op = spec
        .find("POST", "/repos/o/r/git/trees")
        .expect("create tree");
    let bad = spec.check_body(
        &op,
        Some(&json!({"tree": [{"path": "a", "mode": "100777", "type": "blob", "sha": null}]})),
    );
    assert!(bad.iter().any(|e| e.starts_with("/tree/0/mode")), "{bad:?}");
    let ok = spec.check_body(
        &op,
        Some(&json!({"tree": [{"path": "a", "mode": "100644", "type": "blob", "sha": null}]})),
    );
    assert!(ok.is_empty(), "{ok:?}");
}
