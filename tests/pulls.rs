//! Pull requests end to end: the server's scan → plan → write path against the fake
//! GitHub and a real registry, and what people do on the PRs.

mod support;

use digestif::store::PrStatus;
use support::app::*;
use support::fake_github::FakeGitHub;
use support::registry::{Image, TestRegistry};

const REPO: &str = "acme/widgets";

/// `library/python:3.12-slim` as an OCI index of amd64 + arm64; returns (index, amd64, arm64).
async fn push_python(reg: &TestRegistry, salt: &str) -> (String, Image, Image) {
    let amd = reg
        .push_image("library/python", None, "linux/amd64", salt, false)
        .await;
    let arm = reg
        .push_image("library/python", None, "linux/arm64", salt, false)
        .await;
    let index = reg
        .push_index(
            "library/python",
            "3.12-slim",
            &[&amd, &arm],
            false,
            salt,
            false,
        )
        .await;
    (index, amd, arm)
}

fn open_pulls(fake: &FakeGitHub) -> Vec<support::fake_github::state::Issue> {
    fake.pulls(REPO)
        .into_iter()
        .filter(|p| p.state == "open")
        .collect()
}

fn pull_branch(p: &support::fake_github::state::Issue) -> String {
    p.pull
        .as_ref()
        .map(|x| x.head_ref.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_is_opened_kept_current_and_closed_when_upstream_reverts() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let python = reg.reference("library/python", "3.12-slim", Some(&old));
    // CRLF, a comment, odd spacing and a stage name: only the digest bytes may change.
    let dockerfile =
        format!("# syntax=docker/dockerfile:1\r\nFROM   {python}  AS base\r\nRUN echo hi\r\n");
    let config = "labels: [dependencies]\nreviewers: [alice, acme/platform]\nassignees: [bob]\n";
    let fake = FakeGitHub::start().await;
    let (server, _inst) = installed_with(
        &fake,
        &reg,
        &[
            ("Dockerfile", &dockerfile),
            (".github/digestif.yml", config),
        ],
        &[("alice", "write"), ("bob", "write")],
    )
    .await;

    // 1. One PR with exactly the digest changed, labels, reviewers and assignees.
    let pulls = open_pulls(&fake);
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let pr = &pulls[0];
    assert_eq!(pull_branch(pr), "digestif/all");
    assert_eq!(
        pr.title,
        format!(
            "Update {}/library/python:3.12-slim digest to {}",
            reg.addr,
            &new[7..14]
        )
    );
    assert_eq!(pr.labels, ["dependencies"]);
    let log: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    assert_eq!(pr.assignees, ["bob"], "{log:#?}");
    let info = pr.pull.as_ref().expect("pull");
    assert_eq!(info.requested_reviewers, ["alice"]);
    assert_eq!(info.requested_teams, ["platform"]);
    let edited = fake
        .file_at(REPO, "digestif/all", "Dockerfile")
        .expect("file on branch");
    assert_eq!(edited, dockerfile.replace(&old, &new));
    let body = pr.body.clone().unwrap_or_default();
    assert!(body.contains(&new) && body.contains(&old), "{body}");
    assert!(body.contains("linux/amd64, linux/arm64"), "{body}");
    assert!(body.contains("digestif-state"), "{body}");
    // The commit is the App's own: no author or committer of ours.
    let head = fake.branches(REPO)["digestif/all"].clone();
    let commit = fake.commit(REPO, &head).expect("commit");
    assert_eq!(commit.parents, [fake.branches(REPO)["main"].clone()]);

    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("digestif_pull_requests_opened_total"),
        "{metrics}"
    );

    // A second scan with nothing new changes nothing.
    server.scan(REPO).await;
    assert_eq!(fake.branches(REPO)["digestif/all"], head);

    // 2. The tag moves again: the same PR is rebuilt — its branch force-moved to one new
    // commit on the base (not a commit added on top), and its body rewritten.
    let (newer, _, _) = push_python(&reg, "three").await;
    server.scan(REPO).await;
    let pulls = open_pulls(&fake);
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].number, pr.number);
    let rebuilt = fake.branches(REPO)["digestif/all"].clone();
    assert_ne!(rebuilt, head);
    assert_eq!(
        fake.commit(REPO, &rebuilt).expect("commit").parents,
        [fake.branches(REPO)["main"].clone()]
    );
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        dockerfile.replace(&old, &newer)
    );
    assert!(pulls[0].body.as_deref().unwrap_or("").contains(&newer));

    // 3. Upstream goes back to the pinned digest: the PR is closed and its branch deleted.
    let (_, amd, arm) = push_python(&reg, "one").await;
    let back = reg
        .push_index(
            "library/python",
            "3.12-slim",
            &[&amd, &arm],
            false,
            "one",
            false,
        )
        .await;
    assert_eq!(back, old, "the same index bytes give the same digest");
    server.scan(REPO).await;
    assert!(open_pulls(&fake).is_empty());
    assert!(!fake.branches(REPO).contains_key("digestif/all"));
    let comments = fake.comments(REPO, pr.number);
    assert!(
        comments
            .iter()
            .any(|c| c.body.contains("upstream went back")),
        "{comments:?}"
    );
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_unmerged_is_respected_and_merged_is_clean() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&old))
    );
    let fake = FakeGitHub::start().await;
    let (server, inst) = installed(&fake, &reg, &[("Dockerfile", &dockerfile)]).await;
    let pr = open_pulls(&fake).pop().expect("a PR");

    // 4. A person closes it: that digest is not proposed again, and it is said once.
    fake.close_pr(REPO, pr.number, "carol");
    let (status, _) = deliver(
        &server.url,
        &pull_request_event(&fake, inst, REPO, pr.number, "closed", "carol"),
    )
    .await;
    assert_eq!(status, 202);
    server.settle().await;
    server.scan(REPO).await;
    assert!(
        open_pulls(&fake).is_empty(),
        "no new PR for the declined digest"
    );
    let said: Vec<_> = fake
        .comments(REPO, pr.number)
        .into_iter()
        .filter(|c| c.body.contains("will not propose these digests again"))
        .collect();
    assert_eq!(said.len(), 1);
    // A different digest later gets a new PR.
    let (newer, _, _) = push_python(&reg, "three").await;
    server.scan(REPO).await;
    let second = open_pulls(&fake)
        .pop()
        .expect("a new PR for the new digest");
    assert_ne!(second.number, pr.number);
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        dockerfile.replace(&old, &newer)
    );
    let _ = new;

    // 5. Merged: recorded, and the next scan finds the pin current.
    fake.merge_pr(REPO, second.number, "carol");
    deliver(
        &server.url,
        &pull_request_event(&fake, inst, REPO, second.number, "closed", "carol"),
    )
    .await;
    server.settle().await;
    server.scan(REPO).await;
    assert!(open_pulls(&fake).is_empty());
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
        .expect("refs");
    assert_eq!(refs[0].status, "up-to-date", "{refs:?}");
    assert_eq!(refs[0].digest.as_deref(), Some(newer.as_str()));
    let prs = server.store.prs_for_repo(repo.id).await.expect("prs");
    assert!(
        prs.iter()
            .any(|p| p.number as u64 == second.number
                && p.state == digestif::store::PrStatus::Merged)
    );
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_pushing_takes_over_until_rebase_and_commands_need_write_access() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    push_python(&reg, "two").await;
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&old))
    );
    let fake = FakeGitHub::start().await;
    let (server, inst) = installed(&fake, &reg, &[("Dockerfile", &dockerfile)]).await;
    let pr = open_pulls(&fake).pop().expect("a PR");

    // 6. A person pushes to the branch: digestif hands off and says so once.
    fake.push(
        REPO,
        "digestif/all",
        &[("NOTES.md", Some("mine\n"))],
        Default::default(),
        "my change",
    );
    deliver(
        &server.url,
        &branch_push_event(&fake, inst, REPO, "digestif/all", "dave"),
    )
    .await;
    server.settle().await;
    let (newer, _, _) = push_python(&reg, "three").await;
    server.scan(REPO).await;
    server.scan(REPO).await;
    let human_head = fake.branches(REPO)["digestif/all"].clone();
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "NOTES.md").as_deref(),
        Some("mine\n")
    );
    let handoffs = fake
        .comments(REPO, pr.number)
        .into_iter()
        .filter(|c| c.body.contains("will not touch this PR"))
        .count();
    assert_eq!(handoffs, 1);

    // 10. Commands: refused without write access, obeyed with it.
    fake.set_permission(REPO, "eve", "read");
    server
        .comment(&fake, inst, pr.number, "eve", "@digestif rebase")
        .await;
    assert_eq!(
        fake.branches(REPO)["digestif/all"],
        human_head,
        "a reader cannot take it back"
    );
    assert!(
        fake.comments(REPO, pr.number)
            .iter()
            .any(|c| c.body.contains("only people with write access"))
    );
    fake.set_permission(REPO, "dave", "write");
    server
        .comment(&fake, inst, pr.number, "dave", "@digestif rebase")
        .await;
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        dockerfile.replace(&old, &newer),
        "rebuilt on the base with the newest digest"
    );
    assert_eq!(fake.file_at(REPO, "digestif/all", "NOTES.md"), None);

    // `ignore this digest` closes the PR for good.
    server
        .comment(
            &fake,
            inst,
            pr.number,
            "dave",
            "@digestif ignore this digest",
        )
        .await;
    assert!(open_pulls(&fake).is_empty());
    // Unknown commands get help, not silence.
    server
        .comment(&fake, inst, pr.number, "dave", "@digestif dance")
        .await;
    assert!(
        fake.comments(REPO, pr.number)
            .iter()
            .any(|c| c.body.contains("does not know `dance`"))
    );
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_pins_arg_edits_grouping_and_min_age() {
    let reg = TestRegistry::start().await;
    let (_, amd1, arm1) = push_python(&reg, "one").await;
    let (_, _, arm2) = push_python(&reg, "two").await;
    let node_old = reg
        .push_image("library/node", Some("20"), "linux/amd64", "one", true)
        .await;
    let node_new = reg
        .push_image("library/node", Some("20"), "linux/amd64", "two", true)
        .await;
    // 7. A platform pin (arm64 manifest) and 8. an ARG default used by FROM.
    let dockerfile = format!(
        "ARG NODE={}\nFROM --platform=linux/arm64 {} AS py\nFROM $NODE\n",
        reg.reference("library/node", "20", Some(&node_old.digest)),
        reg.reference("library/python", "3.12-slim", Some(&arm1.digest)),
    );
    let _ = amd1;
    // 12. group: image — one PR per image and tag.
    let fake = FakeGitHub::start().await;
    let (server, _) = installed(
        &fake,
        &reg,
        &[
            ("Dockerfile", &dockerfile),
            (".github/digestif.yml", "group: image\n"),
        ],
    )
    .await;
    let pulls = open_pulls(&fake);
    let mut branches: Vec<String> = pulls.iter().map(pull_branch).collect();
    branches.sort();
    assert_eq!(branches.len(), 2, "{branches:?}");
    let py_branch = branches
        .iter()
        .find(|b| b.contains("python"))
        .expect("python PR")
        .clone();
    let node_branch = branches
        .iter()
        .find(|b| b.contains("node"))
        .expect("node PR")
        .clone();
    let py = fake.file_at(REPO, &py_branch, "Dockerfile").expect("file");
    assert_eq!(
        py,
        dockerfile.replace(&arm1.digest, &arm2.digest),
        "the arm64 manifest, not the index"
    );
    let node = fake
        .file_at(REPO, &node_branch, "Dockerfile")
        .expect("file");
    assert_eq!(
        node,
        dockerfile.replace(&node_old.digest, &node_new.digest),
        "edited at the ARG line"
    );
    let py_pr = pulls
        .iter()
        .find(|p| pull_branch(p) == py_branch)
        .expect("pr");
    assert!(
        py_pr.body.as_deref().unwrap_or("").contains("linux/arm64"),
        "the why-line names the platform"
    );

    // 9. min-age: a digest seen for the first time waits; nothing new opens.
    fake.push(
        REPO,
        "main",
        &[(".github/digestif.yml", Some("group: image\nmin-age: 3d\n"))],
        Default::default(),
        "cool down",
    );
    push_python(&reg, "three").await;
    server.scan(REPO).await;
    let py_now = fake.file_at(REPO, &py_branch, "Dockerfile").expect("file");
    assert_eq!(
        py_now, py,
        "the moved digest waits for min-age; the open PR stays as it was"
    );
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_with_2000_updates_has_a_body_github_accepts() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let python = reg.reference("library/python", "3.12-slim", Some(&old));
    let dockerfile: String = (0..2000)
        .map(|i| format!("FROM {python} AS s{i}\n"))
        .collect();
    let fake = FakeGitHub::start().await;
    // The fake refuses bodies over GitHub's 65,536 characters, as GitHub does.
    let (server, _) = installed(&fake, &reg, &[("Dockerfile", &dockerfile)]).await;
    let pulls = open_pulls(&fake);
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        dockerfile.replace(&old, &new),
        "every one of the 2,000 references is updated"
    );
    let body = pulls[0].body.clone().unwrap_or_default();
    assert!(body.chars().count() <= 65_536, "{}", body.len());
    assert!(body.contains("more of the 2000 updates; the commit message lists every one"));
    let head = fake.branches(REPO)["digestif/all"].clone();
    let message = fake.commit(REPO, &head).expect("commit").message;
    assert_eq!(message.matches(" -> ").count(), 2000);
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_pr_leaves_exactly_one_pr() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&old))
    );
    let fake = FakeGitHub::start().await;
    // The branch exists already, as if a crash hit after the ref was created, and a PR
    // for it exists too, as if the crash hit after GitHub created it but before the store
    // recorded it.
    let inst = fake.create_installation("acme", PERMS);
    fake.create_repo(inst, "acme", "widgets", &[("Dockerfile", &dockerfile)]);
    fake.push(
        REPO,
        "digestif/all",
        &[("Dockerfile", Some("FROM half-done\n"))],
        Default::default(),
        "half",
    );
    open_pull_as_app(&fake, inst, "digestif/all", "half").await;
    let server = start_server(&fake, &reg).await;
    deliver(
        &server.url,
        &installation_event(&fake, inst, "created", &[REPO]),
    )
    .await;
    eventually("repository synced", || {
        let store = server.store.clone();
        async move { store.repository_by_full_name(REPO).await.ok()?.map(|_| ()) }
    })
    .await;
    server.settle().await;
    server.scan(REPO).await;
    let pulls = open_pulls(&fake);
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        dockerfile.replace(&old, &new)
    );
    assert!(
        pulls[0].title.contains("digest to"),
        "adopted and rewritten: {}",
        pulls[0].title
    );
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_min_age_show_on_the_dashboard_and_its_box_rescans() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    push_python(&reg, "two").await;
    let python = reg.reference("library/python", "3.12-slim", Some(&old));
    let dockerfile = format!("FROM {python}\n");
    let compose = format!("services:\n  a:\n    image: {python}\n");
    let config = "group: none\ndashboard: true\npull-requests: {limit: 1}\n";
    let fake = FakeGitHub::start().await;
    let (server, inst) = installed(
        &fake,
        &reg,
        &[
            ("Dockerfile", &dockerfile),
            ("compose.yaml", &compose),
            (".github/digestif.yml", config),
        ],
    )
    .await;
    // One PR per reference, but the limit is one open PR: the other waits.
    assert_eq!(open_pulls(&fake).len(), 1);
    let dash = fake
        .issues(REPO)
        .into_iter()
        .find(|i| i.title == "digestif dashboard")
        .expect("dashboard issue");
    let body = dash.body.clone().unwrap_or_default();
    assert!(
        body.contains("the limit of 1 open pull requests is reached"),
        "{body}"
    );
    assert!(
        body.contains("| `Dockerfile:1` |") && body.contains("| `compose.yaml:3` |"),
        "{body}"
    );
    assert!(body.contains("stale"), "{body}");

    // min-age: a newly seen digest waits, and the dashboard says until when.
    fake.push(
        REPO,
        "main",
        &[(
            ".github/digestif.yml",
            Some("group: none\ndashboard: true\nmin-age: 3d\n"),
        )],
        Default::default(),
        "cool down",
    );
    push_python(&reg, "three").await;
    server.scan(REPO).await;
    let body = fake
        .issues(REPO)
        .into_iter()
        .find(|i| i.number == dash.number)
        .and_then(|i| i.body)
        .unwrap_or_default();
    assert!(body.contains("min-age: waits until"), "{body}");

    // Ticking the box asks for a scan; the rewritten body unticks it.
    server
        .tick_rescan_box(&fake, inst, REPO, dash.number, &body)
        .await;
    let after = fake
        .issues(REPO)
        .into_iter()
        .find(|i| i.number == dash.number)
        .and_then(|i| i.body)
        .unwrap_or_default();
    assert!(after.contains("- [ ] <!-- digestif-rescan -->"), "{after}");
    let repo = server
        .store
        .repository_by_full_name(REPO)
        .await
        .expect("db")
        .expect("repo");
    assert_eq!(repo.dashboard_issue, Some(dash.number as i64));
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_files_without_the_permission_are_explained_not_fatal() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let python = reg.reference("library/python", "3.12-slim", Some(&old));
    let dockerfile = format!("FROM {python}\n");
    let workflow = format!(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    container: {python}\n    steps: []\n"
    );
    let fake = FakeGitHub::start().await;
    // PERMS has no `workflows`: GitHub refuses the App's changes to workflow files.
    let (server, _) = installed(
        &fake,
        &reg,
        &[
            ("Dockerfile", &dockerfile),
            (".github/workflows/ci.yml", &workflow),
        ],
    )
    .await;
    let pr = open_pulls(&fake).pop().expect("a PR for the rest");
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        dockerfile.replace(&old, &new)
    );
    assert_eq!(
        fake.file_at(REPO, "digestif/all", ".github/workflows/ci.yml")
            .expect("file"),
        workflow
    );
    let body = pr.body.unwrap_or_default();
    assert!(body.contains("`workflows` permission"), "{body}");
    let repo = server
        .store
        .repository_by_full_name(REPO)
        .await
        .expect("db")
        .expect("repo");
    assert!(repo.last_error.unwrap_or_default().contains("workflows"));
    // GitHub's refusal is an answer (422 to creating the branch with the workflow change),
    // not a broken contract: the exact set of contract violations is empty.
    let writes: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/git/refs"))
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    assert_eq!(
        writes[..4],
        [
            // The branch does not exist yet, so it is created: refused for the workflow,
            "PATCH /repos/acme/widgets/git/refs/heads/digestif/all 422",
            "POST /repos/acme/widgets/git/refs 422",
            // then created with the commit that leaves the workflow alone.
            "PATCH /repos/acme/widgets/git/refs/heads/digestif/all 422",
            "POST /repos/acme/widgets/git/refs 201",
        ],
        "{writes:#?}"
    );
    let violations: Vec<String> = fake
        .take_violations()
        .iter()
        .map(|v| format!("{} {}: {}", v.method, v.path, v.message))
        .collect();
    assert_eq!(violations, Vec::<String>::new());
    server.stop().await;
}

/// Reported: a PR that leaves its workflow files out (no `workflows` permission) was
/// rebuilt — new commit, branch force-moved, description rewritten — on every scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_without_its_workflow_files_is_left_alone_while_nothing_changes() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let python = reg.reference("library/python", "3.12-slim", Some(&old));
    let dockerfile = format!("FROM {python}\n");
    let workflow = format!(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    container: {python}\n    steps: []\n"
    );
    let fake = FakeGitHub::start().await;
    // PERMS has no `workflows`: GitHub refuses the App's changes to workflow files.
    let (server, _) = installed(
        &fake,
        &reg,
        &[
            ("Dockerfile", &dockerfile),
            (".github/workflows/ci.yml", &workflow),
        ],
    )
    .await;
    let pr = open_pulls(&fake).pop().expect("a PR for the rest");
    assert!(
        pr.body
            .unwrap_or_default()
            .contains("`workflows` permission"),
        "the first scan dropped the workflow file"
    );
    let head = fake.branches(REPO)["digestif/all"].clone();
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        dockerfile.replace(&old, &new)
    );

    let before = fake.requests().len();
    server.scan(REPO).await;
    let writes: Vec<String> = fake.requests()[before..]
        .iter()
        .filter(|r| r.method != "GET" && r.method != "HEAD")
        .filter(|r| r.path.contains("/git/") || r.path.contains("/pulls"))
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "nothing changed, nothing written"
    );
    assert_eq!(fake.branches(REPO)["digestif/all"], head);
    // The PR still leaves the workflow file out, and the repository's status still says so.
    let repo = server
        .store
        .repository_by_full_name(REPO)
        .await
        .expect("db")
        .expect("repo");
    let error = repo.last_error.unwrap_or_default();
    assert!(error.contains(".github/workflows/ci.yml"), "{error}");
    fake.assert_no_violations();
    server.stop().await;
}

/// A server on a new, empty database (the old one lost) against the same installation:
/// it waits for the startup sync's scan of `acme/widgets`.
async fn restarted_on_a_new_database(fake: &FakeGitHub, reg: &TestRegistry) -> Running {
    let server = start_server(fake, reg).await;
    eventually("repository synced", || {
        let store = server.store.clone();
        async move { store.repository_by_full_name(REPO).await.ok()?.map(|_| ()) }
    })
    .await;
    server.settle().await;
    server
}

/// The database is lost: the PR records come back from the state markers in the PR
/// bodies, so an open PR is taken up again (not opened twice) and a PR a person closed is
/// not proposed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_recovered_from_the_pr_bodies() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&old))
    );
    let fake = FakeGitHub::start().await;
    let (server, inst) = installed_with(
        &fake,
        &reg,
        &[("Dockerfile", &dockerfile)],
        &[("carol", "maintain")],
    )
    .await;
    let pr = open_pulls(&fake).pop().expect("a PR");
    server.stop().await;

    // 1. Open PR, new database: the same PR is recorded again and kept current.
    let server = restarted_on_a_new_database(&fake, &reg).await;
    assert_eq!(fake.pulls(REPO).len(), 1, "no second PR");
    let repo = server
        .store
        .repository_by_full_name(REPO)
        .await
        .expect("db")
        .expect("repo");
    let record = server
        .store
        .pr_by_number(repo.id, pr.number as i64)
        .await
        .expect("db")
        .expect("the open PR is recorded again");
    assert_eq!(record.state, PrStatus::Open);
    assert_eq!(record.branch, "digestif/all");
    assert_eq!(record.updates.0.len(), 1);
    assert_eq!(record.updates.0[0].new, new);
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        dockerfile.replace(&old, &new)
    );

    // 2. A person declines it; new database again: it stays declined.
    fake.close_pr(REPO, pr.number, "carol");
    deliver(
        &server.url,
        &pull_request_event(&fake, inst, REPO, pr.number, "closed", "carol"),
    )
    .await;
    server.settle().await;
    server.stop().await;
    let server = restarted_on_a_new_database(&fake, &reg).await;
    let pulls: Vec<(u64, String)> = fake
        .pulls(REPO)
        .iter()
        .map(|p| (p.number, p.state.clone()))
        .collect();
    assert_eq!(
        pulls,
        [(pr.number, "closed".to_string())],
        "not proposed again"
    );
    let repo = server
        .store
        .repository_by_full_name(REPO)
        .await
        .expect("db")
        .expect("repo");
    let record = server
        .store
        .pr_by_number(repo.id, pr.number as i64)
        .await
        .expect("db")
        .expect("the closed PR is recorded again");
    assert_eq!(record.state, PrStatus::Closed);
    let ignores = server.store.ignores_for_repo(repo.id).await.expect("db");
    assert_eq!(
        ignores
            .iter()
            .map(|i| i.digest.as_deref().unwrap_or_default())
            .collect::<Vec<_>>(),
        [new.as_str()]
    );
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_brings_a_declined_update_back_and_unignore_lifts_an_image_ignore() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&old))
    );
    let fake = FakeGitHub::start().await;
    let (server, inst) = installed_with(
        &fake,
        &reg,
        &[("Dockerfile", &dockerfile)],
        &[("carol", "maintain")],
    )
    .await;
    let pr = open_pulls(&fake).pop().expect("a PR");
    fake.close_pr(REPO, pr.number, "carol");
    deliver(
        &server.url,
        &pull_request_event(&fake, inst, REPO, pr.number, "closed", "carol"),
    )
    .await;
    server.settle().await;
    server.scan(REPO).await;
    assert!(open_pulls(&fake).is_empty());

    server
        .comment(&fake, inst, pr.number, "carol", "@digestif recreate")
        .await;
    let again = open_pulls(&fake).pop().expect("recreated");
    // What the PR body and the closing comment promised: a new PR, not the old one reopened.
    assert_ne!(again.number, pr.number);
    assert!(
        pr.body.as_deref().unwrap_or("").contains(
            "`@digestif recreate` (on a closed PR: propose its digests again, in a new PR)"
        )
    );
    assert!(
        fake.comments(REPO, pr.number)
            .iter()
            .any(|c| c.body.contains(
                "`@digestif recreate` to have these digests proposed again, in a new pull request"
            ))
    );
    assert_eq!(
        fake.pulls(REPO)
            .iter()
            .find(|p| p.number == pr.number)
            .map(|p| p.state.as_str()),
        Some("closed")
    );
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        dockerfile.replace(&old, &new)
    );
    // The command was acknowledged with a reaction.
    let acked = fake
        .comments(REPO, pr.number)
        .iter()
        .any(|c| c.body == "@digestif recreate" && !c.reactions.is_empty());
    assert!(acked);

    // Ignore the whole image: the PR closes; unignore it: the PR comes back.
    server
        .comment(
            &fake,
            inst,
            again.number,
            "carol",
            "@digestif ignore this image",
        )
        .await;
    assert!(open_pulls(&fake).is_empty());
    let image = format!("{}/library/python", reg.addr);
    server
        .comment(
            &fake,
            inst,
            again.number,
            "carol",
            &format!("@digestif unignore {image}"),
        )
        .await;
    assert_eq!(open_pulls(&fake).len(), 1);
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_branch_from_the_config_is_read_and_targeted() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let python = reg.reference("library/python", "3.12-slim", Some(&old));
    let fake = FakeGitHub::start().await;
    let inst = fake.create_installation("acme", PERMS);
    fake.create_repo(
        inst,
        "acme",
        "widgets",
        &[
            ("README.md", "main has no Dockerfile\n"),
            (".github/digestif.yml", "base-branch: develop\n"),
        ],
    );
    let on_develop = format!("FROM {python}\n");
    fake.push(
        REPO,
        "develop",
        &[("Dockerfile", Some(&on_develop))],
        Default::default(),
        "develop",
    );
    let server = start_server(&fake, &reg).await;
    deliver(
        &server.url,
        &installation_event(&fake, inst, "created", &[REPO]),
    )
    .await;
    eventually("repository synced", || {
        let store = server.store.clone();
        async move { store.repository_by_full_name(REPO).await.ok()?.map(|_| ()) }
    })
    .await;
    server.settle().await;
    let pr = open_pulls(&fake).pop().expect("a PR against develop");
    assert_eq!(
        pr.pull.as_ref().map(|p| p.base_ref.as_str()),
        Some("develop")
    );
    assert_eq!(
        fake.file_at(REPO, "digestif/all", "Dockerfile")
            .expect("file"),
        on_develop.replace(&old, &new)
    );
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_directives_and_images_built_from_args_get_prs() {
    let reg = TestRegistry::start().await;
    let (old, _, _) = push_python(&reg, "one").await;
    let (new, _, _) = push_python(&reg, "two").await;
    let front = reg
        .push_image("docker/dockerfile", Some("1"), "linux/amd64", "f", false)
        .await;
    let a = &reg.addr;
    let hex = old.trim_start_matches("sha256:");
    let dockerfile = format!(
        "# syntax={a}/docker/dockerfile:1\n\
         \n\
         ARG PY=3.12\n\
         ARG VARIANT=slim\n\
         ARG HEX={hex}\n\
         FROM {a}/library/python:${{PY}}-${{VARIANT}}@{old} AS build\n\
         FROM {a}/library/python:${{PY}}-slim@sha256:${{HEX}} AS split\n"
    );
    let fake = FakeGitHub::start().await;
    let (server, _inst) = installed(
        &fake,
        &reg,
        &[
            ("docker/Dockerfile.release", &dockerfile),
            (".github/digestif.yml", "pin: true\ndashboard: true\n"),
        ],
    )
    .await;
    let path = "docker/Dockerfile.release";
    let pulls = open_pulls(&fake);
    assert_eq!(pulls.len(), 2, "{pulls:#?}");

    // The FROM built from ARGs: its digest is updated in its own text.
    let update = pulls
        .iter()
        .find(|p| pull_branch(p) == "digestif/all")
        .expect("update PR");
    assert_eq!(
        fake.file_at(REPO, "digestif/all", path).expect("file"),
        dockerfile.replace(
            &format!("${{VARIANT}}@{old}"),
            &format!("${{VARIANT}}@{new}")
        )
    );
    let body = update.body.clone().unwrap_or_default();
    assert!(
        body.contains(&format!(
            "`{path}:6` names `{a}/library/python:${{PY}}-${{VARIANT}}@{old}`, which the ARGs \
             `PY`, `VARIANT` make `{a}/library/python:3.12-slim`: the digest is written after \
             the image text in that line"
        )),
        "{body}"
    );

    // The syntax directive: pinned in place by the pin PR, which says why.
    let pin = pulls
        .iter()
        .find(|p| pull_branch(p) == "digestif/pin")
        .expect("pin PR");
    assert_eq!(
        fake.file_at(REPO, "digestif/pin", path).expect("file"),
        dockerfile.replace(
            "docker/dockerfile:1\n",
            &format!("docker/dockerfile:1@{}\n", front.digest)
        )
    );
    let body = pin.body.clone().unwrap_or_default();
    assert!(
        body.contains(&format!("`{path}:1` is the `# syntax=` parser directive")),
        "{body}"
    );

    // The digest put together from an ARG is in no PR, and the dashboard says why.
    let dash = fake
        .issues(REPO)
        .into_iter()
        .find(|i| i.title == "digestif dashboard")
        .expect("dashboard issue");
    let body = dash.body.clone().unwrap_or_default();
    assert!(
        body.contains(&format!(
            "| `{path}:7` | `{a}/library/python:3.12-slim` | not-editable `stale: the digest is \
             put together from several places"
        )),
        "{body}"
    );
    fake.assert_no_violations();
    server.stop().await;
}
