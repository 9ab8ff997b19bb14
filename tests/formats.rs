//! The YAML formats of issue 12 end to end, one scenario per format: `digestif scan`, then
//! `digestif update --pin` (the built binary against a real distribution registry), then
//! the server's pull requests (fake GitHub, same registry). Each file holds one stale
//! pinned reference and one tag-only reference; only their digest bytes may change.
//!
//! Also: `scan --offline` over files copied from public repositories
//! (tests/fixtures/public, sources in its SOURCES.md) against the expected JSON.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::app::*;
use support::fake_github::FakeGitHub;
use support::registry::TestRegistry;

const REPO: &str = "acme/widgets";

/// The references a scenario's file is written around.
struct Images {
    /// `<registry>/library/alpine:3.20@<old digest>`: the tag has since moved.
    stale: String,
    old: String,
    new: String,
    /// `<registry>/acme/tool:1`: tag only.
    unpinned: String,
    tool_digest: String,
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
    let tool_digest = reg
        .push_image("acme/tool", Some("1"), "linux/amd64", "t", true)
        .await
        .digest;
    Images {
        stale: reg.reference("library/alpine", "3.20", Some(&old)),
        old,
        new,
        unpinned: reg.reference("acme/tool", "1", None),
        tool_digest,
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

/// Runs the whole scenario for `text` at `path`: `scan` sees exactly `locations` (the
/// stale reference first, then the tag-only one), `update --pin` and the server's two PRs
/// (update, pin) change only the digest bytes.
async fn scenario(
    reg: &TestRegistry,
    im: &Images,
    path: &str,
    text: &str,
    kind: &str,
    locations: [&str; 2],
) {
    scenario_files(
        reg,
        im,
        &[(path, text.to_string())],
        [(kind, locations[0], path), (kind, locations[1], path)],
    )
    .await;
}

/// [`scenario`] over several files: `expected` is (kind, location, file) of the stale
/// reference and of the tag-only one.
async fn scenario_files(
    reg: &TestRegistry,
    im: &Images,
    files: &[(&str, String)],
    expected: [(&str, &str, &str); 2],
) {
    let pinned_tool = format!("{}@{}", im.unpinned, im.tool_digest);
    let updated = |t: &str| t.replace(&im.old, &im.new);
    let pinned = |t: &str| t.replace(&im.unpinned, &pinned_tool);
    assert!(files.iter().any(|(_, t)| updated(t) != *t));
    assert!(files.iter().any(|(_, t)| pinned(t) != *t));

    // 1. The command line.
    let dir = tempfile::tempdir().unwrap();
    let docker_config = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
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
    let (s, u) = (expected[0], expected[1]);
    assert_eq!(
        got,
        [(s.0, s.1, s.2, "stale"), (u.0, u.1, u.2, "unpinned")],
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
    for (path, text) in files {
        let now = std::fs::read_to_string(dir.path().join(path)).unwrap();
        assert_eq!(now, pinned(&updated(text)), "{path}");
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
    let mut perms = PERMS.to_vec();
    perms.push(("workflows", "write"));
    let inst = fake.create_installation("acme", &perms);
    let mut repo_files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
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
    for (path, text) in files {
        assert_eq!(
            fake.file_at(REPO, "digestif/all", path),
            Some(updated(text)),
            "{path}"
        );
        assert_eq!(
            fake.file_at(REPO, "digestif/pin", path),
            Some(pinned(text)),
            "{path}"
        );
    }
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_variable_defaults() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    let text = format!(
        "services:\r\n  web:\r\n    image: ${{WEB_IMAGE:-{}}}\r\n  tool:\r\n    \
         image: \"${{TOOL-{}}}\" # overridable\r\n",
        im.stale, im.unpinned
    );
    scenario(
        &reg,
        &im,
        "compose.yaml",
        &text,
        "compose",
        ["services.web.image", "services.tool.image"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_version_one() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    let text = format!(
        "web:\n  image: {}\n  links:\n    - tool\ntool:\n  image: '{}'\n  ports: [\"80\"]\n",
        im.stale, im.unpinned
    );
    scenario(
        &reg,
        &im,
        "docker-compose.yml",
        &text,
        "compose",
        ["web.image", "tool.image"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_build_with_a_pullable_image_and_a_flow_list_at_the_key_column() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    // As getsentry/self-hosted writes it; the bare built name is not a reference.
    let text = format!(
        "services:\n  web:\n    image: \"{}\"\n    healthcheck:\n      test: [\n          \
         \"CMD-SHELL\",\n          \"wget -q -O- http://web/healthz || exit 1\",\n      ]\n  \
         local:\n    build: ./local\n    image: local-built\n  tool:\n    build: ./tool\n    \
         image: {}\n",
        im.stale, im.unpinned
    );
    scenario(
        &reg,
        &im,
        "docker-compose.yml",
        &text,
        "compose",
        ["services.web.image", "services.tool.image"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_image_keys() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    let text = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: s-\n\
         spec:\n  entrypoint: main\n  templates:\n  - name: gen\n    script:\n      \
         image: {}\n      command: [sh]\n      source: |\n        echo hi\n  - name: print\n    \
         container:\n      image: {}\n      command: [echo]\n",
        im.stale, im.unpinned
    );
    scenario(
        &reg,
        &im,
        "workflows/argo.yaml",
        &text,
        "kubernetes",
        [
            "Workflow spec.templates[0].script.image",
            "Workflow spec.templates[1].container.image",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_matrix_images() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    let text = format!(
        "on: push\njobs:\n  test:\n    runs-on: ${{{{ matrix.runner }}}}\n    \
         container: ${{{{ matrix.image }}}}\n    strategy:\n      matrix:\n        \
         runner: [ubuntu-latest]\n        image:\n          - {} # old\n        include:\n          \
         - image: \"{}\"\n    steps:\n      - run: true\n",
        im.stale, im.unpinned
    );
    scenario(
        &reg,
        &im,
        ".github/workflows/ci.yml",
        &text,
        "actions",
        [
            "jobs.test.strategy.matrix.image[0]",
            "jobs.test.strategy.matrix.include[0].image",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_of_a_nested_repository() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    let text = format!(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    container: {}\n    \
         services:\n      db:\n        image: {}\n    steps:\n      - run: true\n",
        im.stale, im.unpinned
    );
    scenario(
        &reg,
        &im,
        "services/api/.github/workflows/ci.yml",
        &text,
        "actions",
        ["jobs.t.container", "jobs.t.services.db.image"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devcontainer_images() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    // JSON with comments and a trailing comma, as the Dev Containers templates write it.
    let main = format!(
        "// See https://aka.ms/devcontainer.json\r\n{{\r\n\t\"name\": \"Rust\",\r\n\
         \t// \"image\": \"not:this\",\r\n\t\"image\": \"{}\",\r\n\
         \t\"customizations\": {{ \"x\": [{{ \"image\": \"nested:1\" }}] }},\r\n}}\r\n",
        im.stale
    );
    let tools = format!(
        "{{ \"name\": \"tools\", \"image\": \"{}\" }}\n",
        im.unpinned
    );
    scenario_files(
        &reg,
        &im,
        &[
            (".devcontainer/devcontainer.json", main),
            (".devcontainer/tools/devcontainer.json", tools),
        ],
        [
            ("devcontainer", "image", ".devcontainer/devcontainer.json"),
            (
                "devcontainer",
                "image",
                ".devcontainer/tools/devcontainer.json",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bake_image_contexts() {
    let reg = TestRegistry::start().await;
    let im = images(&reg).await;
    let text = format!(
        "variable \"TAG\" {{\n  default = \"latest\"\n}}\n\n# Inputs are contexts; tags are outputs.\n\
         target \"app\" {{\n  contexts = {{\n    base  = \"docker-image://{}\"\n    \
         tools = \"docker-image://{}\" // pinned by digestif\n    src   = \"../src\"\n  }}\n  \
         tags = [\"{}/acme/app:${{TAG}}\"]\n}}\n",
        im.stale, im.unpinned, im.addr
    );
    scenario(
        &reg,
        &im,
        "docker-bake.hcl",
        &text,
        "bake",
        ["contexts.base", "contexts.tools"],
    )
    .await;
}

#[test]
fn public_fixtures_match_the_expected_json() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = Command::new(env!("CARGO_BIN_EXE_digestif"))
        .args(["scan", "--offline", "--format", "json"])
        .arg(fixtures.join("public"))
        .output()
        .expect("run digestif");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let actual: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let golden = fixtures.join("public.expected.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        std::fs::write(&golden, text).unwrap();
    }
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&golden).expect("golden file")).unwrap();
    assert_eq!(
        actual,
        expected,
        "scan output differs from {}; actual:\n{}",
        golden.display(),
        serde_json::to_string_pretty(&actual).unwrap()
    );
}
