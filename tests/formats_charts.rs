//! Kustomize `images:` and Helm values files end to end, one scenario per format, shaped
//! like tests/formats.rs: `digestif scan`, then `digestif update --pin` (the built binary
//! against a real distribution registry), then the server's pull requests (fake GitHub,
//! same registry). Each file holds one stale pinned reference and one tag-only reference.
//! These formats write a reference over several keys, so each scenario gives the exact
//! text expected after the update and after pinning.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::app::*;
use support::fake_github::FakeGitHub;
use support::registry::TestRegistry;

const REPO: &str = "acme/widgets";

/// `<addr>/library/alpine:3.20` was pushed twice (`old`, then `new`); `<addr>/acme/tool:1`
/// once (`tool`).
struct Images {
    old: String,
    new: String,
    tool: String,
    addr: String,
}

async fn images(reg: &TestRegistry) -> Images {
    let old = reg
        .push_image("library/alpine", Some("3.20"), "linux/amd64", "one", true)
        .await
        .digest;
    let new = reg
        .push_image("library/alpine", Some("3.20"), "linux/amd64", "two", true)
        .await
        .digest;
    let tool = reg
        .push_image("acme/tool", Some("1"), "linux/amd64", "t", true)
        .await
        .digest;
    Images {
        old,
        new,
        tool,
        addr: reg.addr.clone(),
    }
}

fn digestif(args: &[&str], docker_config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_digestif"))
        .args(args)
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("DIGESTIF_INSECURE_REGISTRIES")
        .env_remove("DIGESTIF_REGISTRY_MIRRORS")
        .output()
        .expect("run digestif")
}

/// The file at `path` as written (`text`), after the stale digest is updated (`updated`)
/// and after the tag-only reference is pinned (`pinned`).
struct Case<'a> {
    path: &'a str,
    text: String,
    updated: String,
    pinned: String,
    kind: &'a str,
    /// Location of the stale reference, then of the tag-only one.
    locations: [&'a str; 2],
}

async fn scenario(reg: &TestRegistry, im: &Images, case: Case<'_>, others: &[(&str, &str)]) {
    assert_ne!(case.updated, case.text);
    assert_ne!(case.pinned, case.text);
    // `update --pin` does both; the update changes the old digest's bytes only.
    let both = case.pinned.replace(&im.old, &im.new);

    // 1. The command line.
    let dir = tempfile::tempdir().unwrap();
    let docker_config = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
    };
    write(case.path, &case.text);
    for (p, t) in others {
        write(p, t);
    }
    let root = dir.path().to_str().unwrap();
    let a = im.addr.as_str();
    let out = digestif(
        &["scan", "--format", "json", "--insecure-registry", a, root],
        docker_config.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refs = json["references"].as_array().unwrap();
    let mut got: Vec<(&str, &str, &str, &str)> = refs
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["context"]["location"].as_str().unwrap_or_default(),
                r["file"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    got.sort_by_key(|g| g.3);
    let [stale, unpinned] = case.locations;
    assert_eq!(
        got,
        [
            (case.kind, stale, case.path, "stale"),
            (case.kind, unpinned, case.path, "unpinned")
        ],
        "{json:#}"
    );
    assert!(
        refs.iter().any(|r| r["current_digest"] == im.new.as_str()),
        "{json:#}"
    );
    let out = digestif(
        &["update", "--pin", "--insecure-registry", a, root],
        docker_config.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = std::fs::read_to_string(dir.path().join(case.path)).unwrap();
    assert_eq!(now, both);
    for (p, t) in others {
        assert_eq!(std::fs::read_to_string(dir.path().join(p)).unwrap(), *t);
    }
    let out = digestif(
        &["scan", "--check", "--insecure-registry", a, root],
        docker_config.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // 2. The server: one PR moves the stale digest, one pins the tag-only reference.
    let fake = FakeGitHub::start().await;
    let inst = fake.create_installation("acme", PERMS);
    let mut repo_files: Vec<(&str, &str)> = vec![(case.path, case.text.as_str())];
    repo_files.extend_from_slice(others);
    repo_files.push((".github/digestif.yml", "pin: true\n"));
    fake.create_repo(inst, "acme", "widgets", &repo_files);
    let server = start_server(&fake, reg).await;
    let (status, body) = deliver(
        &server.url,
        &installation_event(&fake, inst, "created", &[REPO]),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually("the update and pin PRs", || {
        let fake = &fake;
        async move {
            let open = fake
                .pulls(REPO)
                .into_iter()
                .filter(|p| p.state == "open")
                .count();
            (open == 2).then_some(())
        }
    })
    .await;
    server.settle().await;
    assert_eq!(
        fake.file_at(REPO, "digestif/all", case.path),
        Some(case.updated.clone())
    );
    assert_eq!(
        fake.file_at(REPO, "digestif/pin", case.path),
        Some(case.pinned.clone())
    );
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_images() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    let (a, old, tool) = (&im.addr, &im.old, &im.tool);
    // Pinning inserts `digest:` under the entry's last line, quoted as the tag is, with
    // the file's CRLF line endings.
    let text = |alpine: &str, tool_digest: &str| {
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\r\nkind: Kustomization\r\n\
             resources:\r\n- deployment.yaml\r\nimages:\r\n  - name: alpine\r\n    \
             newName: {a}/library/alpine\r\n    newTag: \"3.20\"\r\n    digest: {alpine}\r\n  \
             - name: tool\r\n    newName: {a}/acme/tool\r\n    newTag: \"1\" # pinned by digestif\r\n\
             {tool_digest}"
        )
    };
    let case = Case {
        path: "deploy/overlays/prod/kustomization.yaml",
        text: text(old, ""),
        updated: text(&im.new, ""),
        pinned: text(old, &format!("    digest: \"{tool}\"\r\n")),
        kind: "kustomize",
        locations: ["images[0]", "images[1]"],
    };
    scenario(&reg, &im, case, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_values() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    let (a, old, tool) = (&im.addr, &im.old, &im.tool);
    // Bitnami's split form with its own digest key, then `helm create`'s form: pinning
    // appends the digest to the tag, as Renovate's helm-values manager does.
    let text = |alpine: &str, tool_tag: &str| {
        format!(
            "## @param image.registry Image registry\nimage:\n  registry: {a}\n  \
             repository: library/alpine\n  tag: \"3.20\"\n  digest: {alpine}\n  \
             pullPolicy: IfNotPresent\ntool:\n  image:\n    repository: {a}/acme/tool\n    \
             pullPolicy: IfNotPresent\n    # Overrides the image tag.\n    tag: \"{tool_tag}\"\n"
        )
    };
    let chart = "apiVersion: v2\nname: widgets\nversion: 0.1.0\nappVersion: \"1.0\"\n";
    let case = Case {
        path: "charts/widgets/values.yaml",
        text: text(old, "1"),
        updated: text(&im.new, "1"),
        pinned: text(old, &format!("1@{tool}")),
        kind: "helm",
        locations: ["image", "tool.image"],
    };
    scenario(&reg, &im, case, &[("charts/widgets/Chart.yaml", chart)]).await;
}
