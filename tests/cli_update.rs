//! `digestif scan` (resolving) and `digestif update` end to end: the built binary against a
//! real distribution registry.

// Only the registry half of tests/support (also `support::registry`): this binary needs
// no fake GitHub.
#[path = "support/registry.rs"]
mod registry_support;

use std::path::Path;
use std::process::{Command, Output};

use registry_support::TestRegistry;

fn digestif(args: &[&str], docker_config: &Path, env_insecure: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_digestif"));
    cmd.args(args)
        // Nothing from the machine's Docker login may leak into the test.
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("DIGESTIF_INSECURE_REGISTRIES")
        .env_remove("DIGESTIF_REGISTRY_MIRRORS");
    if let Some(v) = env_insecure {
        cmd.env("DIGESTIF_INSECURE_REGISTRIES", v);
    }
    cmd.output().expect("run digestif")
}

#[tokio::test]
async fn update_rewrites_only_digests_and_check_reports_staleness() {
    let reg = TestRegistry::start().await;
    let amd = reg.push_image("app", None, "linux/amd64", "1", false).await;
    let arm = reg.push_image("app", None, "linux/arm64", "1", false).await;
    let old_index = reg
        .push_index("app", "1", &[&amd, &arm], false, "a", false)
        .await;
    reg.push_image("solo", Some("v1"), "linux/amd64", "1", true)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let docker_config = tempfile::tempdir().unwrap();
    let a = &reg.addr;
    let original = format!(
        "# comment mentions {a}/app:1\r\nFROM {a}/app:1@{old_index} AS build\r\n\
         FROM --platform=linux/arm64 \"{a}/app:1@{arm}\"\n\
         COPY --from={a}/solo:v1 /x /y\n",
        arm = arm.digest
    );
    let file = dir.path().join("Dockerfile");
    std::fs::write(&file, &original).unwrap();
    let root = dir.path().to_str().unwrap();

    // Nothing moved yet: all pinned ones are up to date; the unpinned one fails --check.
    let out = digestif(
        &[
            "scan",
            "--check",
            "--format",
            "json",
            "--insecure-registry",
            a,
            root,
        ],
        docker_config.path(),
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = json["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["up-to-date", "up-to-date", "unpinned"]);
    // README "Registry requests": `app:1` once for both pins, the platform pin's digest and
    // the tag's index for its platform, `solo:v1` once.
    assert_eq!(
        json["requests"],
        serde_json::json!([{"host": a, "head": 3, "manifest_get": 1, "blob_get": 0,
                            "token": 0, "bytes": json["requests"][0]["bytes"]}])
    );
    assert!(json["requests"][0]["bytes"].as_u64().unwrap() > 0);

    // Both platform images get rebuilt: the index moves.
    let amd2 = reg.push_image("app", None, "linux/amd64", "2", false).await;
    let arm2 = reg.push_image("app", None, "linux/arm64", "2", false).await;
    let new_index = reg
        .push_index("app", "1", &[&amd2, &arm2], false, "b", false)
        .await;

    // The environment variable works like the flag.
    let out = digestif(
        &["scan", "--format", "json", root],
        docker_config.path(),
        Some(a),
    );
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refs = json["references"].as_array().unwrap();
    // The index pin: tag, pinned digest, old and new index; the platform pin: its digest
    // (the new index is shared); `solo:v1`.
    assert_eq!(json["requests"][0]["head"], 4, "{}", json["requests"]);
    assert_eq!(
        json["requests"][0]["manifest_get"], 2,
        "{}",
        json["requests"]
    );
    assert_eq!(refs[0]["status"], "stale");
    assert_eq!(refs[0]["current_digest"], new_index.as_str());
    assert_eq!(refs[1]["status"], "stale");
    assert_eq!(
        refs[1]["current_digest"],
        arm2.digest.as_str(),
        "platform pin"
    );

    // Text output has the status column.
    let out = digestif(
        &["scan", "--insecure-registry", a, root],
        docker_config.path(),
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CURRENT") && text.contains("stale"), "{text}");

    // Dry run: prints, writes nothing.
    let out = digestif(
        &["update", "--dry-run", "--insecure-registry", a, root],
        docker_config.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would update 2 references in 1 files"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // --check: exit 1, nothing written.
    let out = digestif(
        &["update", "--check", "--insecure-registry", a, root],
        docker_config.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // For real: exactly the digest bytes change.
    let out = digestif(
        &["update", "--insecure-registry", a, root],
        docker_config.path(),
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("updated 2 references in 1 files"), "{text}");
    assert!(text.contains("Dockerfile:2"), "{text}");
    let expected = original
        .replace(&old_index, &new_index)
        .replace(&arm.digest, &arm2.digest);
    assert_eq!(std::fs::read(&file).unwrap(), expected.as_bytes());

    // Only the unpinned one is left; --pin pins it and then everything is current.
    let out = digestif(
        &["update", "--check", "--pin", "--insecure-registry", a, root],
        docker_config.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(1), "unpinned counts with --pin");
    let out = digestif(
        &["update", "--check", "--insecure-registry", a, root],
        docker_config.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(0), "nothing stale without --pin");
    let out = digestif(
        &["update", "--pin", "--insecure-registry", a, root],
        docker_config.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let pinned = std::fs::read_to_string(&file).unwrap();
    assert!(
        pinned.contains(&format!("COPY --from={a}/solo:v1@sha256:")),
        "{pinned}"
    );
    let out = digestif(
        &["scan", "--check", "--insecure-registry", a, root],
        docker_config.path(),
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A registry problem is a status with a message, and fails --check.
    reg.delete_tag("app", "1");
    let out = digestif(
        &["scan", "--check", "--insecure-registry", a, root],
        docker_config.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("error (") && text.contains("not found"),
        "{text}"
    );
}

/// The Dockerfile forms of issue 12 through `scan` and `update --pin`: the `# syntax=`
/// directive, a `FROM` built from several ARGs (pinned after its text), an ARG default
/// built from ARGs that holds the whole reference (pinned in the default), and a digest put
/// together from an ARG (listed, never edited).
#[tokio::test]
async fn update_pins_the_syntax_directive_and_images_built_from_args() {
    let reg = TestRegistry::start().await;
    let amd = reg.push_image("app", None, "linux/amd64", "1", false).await;
    let arm = reg.push_image("app", None, "linux/arm64", "1", false).await;
    let app1 = reg
        .push_index("app", "1-alpine", &[&amd, &arm], false, "a", false)
        .await;
    let front = reg
        .push_image("docker/dockerfile", Some("1"), "linux/amd64", "f", false)
        .await;
    let tools = reg
        .push_image("tools", Some("3.1"), "linux/amd64", "t", false)
        .await;
    let hex = app1.trim_start_matches("sha256:");

    let dir = tempfile::tempdir().unwrap();
    let docker_config = tempfile::tempdir().unwrap();
    let a = &reg.addr;
    let original = format!(
        "# syntax={a}/docker/dockerfile:1\r\n\
         \r\n\
         ARG REGISTRY={a}\r\n\
         ARG APP_VERSION=1\r\n\
         ARG MINOR=3.1\r\n\
         ARG TOOLS_IMAGE=\"${{REGISTRY}}/tools:${{MINOR}}\"\r\n\
         ARG HEX={hex}\r\n\
         FROM --platform=$BUILDPLATFORM ${{REGISTRY}}/app:${{APP_VERSION}}-alpine AS build\r\n\
         FROM ${{TOOLS_IMAGE}} AS tools\r\n\
         FROM ${{REGISTRY}}/app:\"${{APP_VERSION}}\"-alpine@sha256:${{HEX}}\r\n"
    );
    let file = dir.path().join("Dockerfile.release");
    std::fs::write(&file, &original).unwrap();
    let root = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--insecure-registry", a, root]);
        digestif(&all, docker_config.path(), None)
    };

    // Offline: each reference with its resolved image and tag.
    let out = run(&["scan", "--offline", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refs = json["references"].as_array().unwrap();
    let got: Vec<(u64, &str, &str, &str)> = refs
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["image"].as_str().unwrap(),
                r["tag"].as_str().unwrap(),
                r["text"].as_str().unwrap(),
            )
        })
        .collect();
    let app = format!("{a}/app");
    assert_eq!(
        got,
        [
            (
                1,
                format!("{a}/docker/dockerfile").as_str(),
                "1",
                format!("{a}/docker/dockerfile:1").as_str()
            ),
            (
                6,
                format!("{a}/tools").as_str(),
                "3.1",
                "${REGISTRY}/tools:${MINOR}"
            ),
            (
                8,
                app.as_str(),
                "1-alpine",
                "${REGISTRY}/app:${APP_VERSION}-alpine"
            ),
            (
                10,
                app.as_str(),
                "1-alpine",
                "${REGISTRY}/app:\"${APP_VERSION}\"-alpine@sha256:${HEX}"
            ),
        ]
    );
    assert_eq!(refs[0]["context"]["location"], "# syntax");
    assert_eq!(refs[1]["context"]["arg"], "TOOLS_IMAGE");
    assert_eq!(
        refs[2]["context"]["variables"],
        serde_json::json!(["REGISTRY", "APP_VERSION"])
    );
    assert!(refs[2].get("not_editable").is_none());
    assert!(
        refs[3]["not_editable"]
            .as_str()
            .unwrap()
            .contains("put together from several places")
    );

    // Resolved: the split digest is current, so it is up to date.
    let out = run(&["scan", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = json["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["unpinned", "unpinned", "unpinned", "up-to-date"],
        "{json:#}"
    );

    // --pin: the directive in place, the ARG default that holds the whole reference, and
    // the FROM built from ARGs after its text. Nothing else changes, CRLF included.
    let out = run(&["update", "--pin"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pinned = original
        .replace(
            "dockerfile:1\r\n",
            &format!("dockerfile:1@{}\r\n", front.digest),
        )
        .replace(
            "tools:${MINOR}\"",
            &format!("tools:${{MINOR}}@{}\"", tools.digest),
        )
        .replace(
            "${APP_VERSION}-alpine AS build",
            &format!("${{APP_VERSION}}-alpine@{app1} AS build"),
        );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), pinned);
    let out = run(&["scan", "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Someone bumps APP_VERSION: the digest pinned after the FROM text no longer matches
    // the new tag, so it is stale and updated; the split digest cannot be edited and is
    // reported, and the file keeps it.
    let amd2 = reg.push_image("app", None, "linux/amd64", "2", false).await;
    let arm2 = reg.push_image("app", None, "linux/arm64", "2", false).await;
    let app2 = reg
        .push_index("app", "2-alpine", &[&amd2, &arm2], false, "b", false)
        .await;
    let bumped = pinned.replace("APP_VERSION=1", "APP_VERSION=2");
    std::fs::write(&file, &bumped).unwrap();
    let out = run(&["scan", "--check", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refs = json["references"].as_array().unwrap();
    assert_eq!(refs[2]["tag"], "2-alpine");
    assert_eq!(refs[2]["status"], "stale");
    assert_eq!(refs[2]["current_digest"], app2.as_str());
    assert_eq!(refs[3]["status"], "not-editable");
    assert!(
        refs[3]["message"]
            .as_str()
            .unwrap()
            .starts_with("stale: the digest is put together from several places"),
        "{:#}",
        refs[3]
    );
    let out = run(&["update"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not-editable: Dockerfile.release:10:"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        bumped.replace(
            &format!("alpine@{app1} AS build"),
            &format!("alpine@{app2} AS build")
        )
    );
}
