//! `digestif scan --offline` end to end: the built binary over a realistic fixture tree,
//! compared with the expected JSON (set `UPDATE_GOLDEN=1` to rewrite it, then review the diff).

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn digestif(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_digestif"))
        .args(args)
        .output()
        .expect("run digestif")
}

#[test]
fn json_output_matches_the_golden_file() {
    golden("repo");
    // Errors also reach stderr with file and line.
    let out = digestif(&[
        "scan",
        "--offline",
        fixtures().join("repo").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken/Dockerfile:1:"), "{stderr}");
}

/// Dockerfiles copied from docker/buildx, docker/cli, moby/buildkit, containerd and
/// others (see tests/fixtures/dockerfiles/README.md): syntax directives, images built from
/// ARGs, and file names that only suggest a Dockerfile.
#[test]
fn real_dockerfiles_match_their_golden_file() {
    golden("dockerfiles");
}

/// Scans `tests/fixtures/NAME` and compares the JSON with `NAME.expected.json`.
fn golden(name: &str) {
    let root = fixtures().join(name);
    let out = digestif(&[
        "scan",
        "--offline",
        "--format",
        "json",
        root.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let actual: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let golden = fixtures().join(format!("{name}.expected.json"));
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

#[test]
fn gitignored_and_unrelated_files_are_not_read() {
    let root = fixtures().join("repo");
    let out = digestif(&[
        "scan",
        "--offline",
        "--format",
        "json",
        root.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("should-not-appear"));
    assert!(!text.contains("README.md"));
    assert!(!text.contains("evil"), "heredoc body leaked: {text}");
    let out = digestif(&[
        "scan",
        "--offline",
        "--no-ignore",
        "--format",
        "json",
        root.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("should-not-appear"));
}

#[test]
fn text_output_is_an_aligned_table() {
    let root = fixtures().join("repo");
    let out = digestif(&["scan", "--offline", root.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("LOCATION"), "{text}");
    let kind_col = lines[0].find("KIND").unwrap();
    for l in lines
        .iter()
        .skip(1)
        .take_while(|l| !l.starts_with("skipped") && l.contains(':'))
    {
        if l.contains(" references, ") {
            break;
        }
        let kind = &l[kind_col..];
        assert!(
            ["dockerfile", "compose", "kubernetes", "actions"]
                .iter()
                .any(|k| kind.starts_with(k)),
            "misaligned row: {l:?}"
        );
    }
    assert!(text.contains("go/Dockerfile:2"), "{text}");
}

#[test]
fn check_fails_on_unpinned_references_and_passes_when_all_are_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let pinned = "FROM python:3.12-slim@sha256:a866731a6b71c4a194a845d86e06568725e430ed21271324873d91eb9e2a0c81\n";
    std::fs::write(dir.path().join("Dockerfile"), pinned).unwrap();
    let path = dir.path().to_str().unwrap();
    assert_eq!(
        digestif(&["scan", "--offline", "--check", path])
            .status
            .code(),
        Some(0)
    );
    std::fs::write(dir.path().join("Dockerfile.dev"), "FROM python:3.12-slim\n").unwrap();
    assert_eq!(
        digestif(&["scan", "--offline", "--check", path])
            .status
            .code(),
        Some(1)
    );
    // Without --check, findings are not failures.
    assert_eq!(
        digestif(&["scan", "--offline", path]).status.code(),
        Some(0)
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    let out = digestif(&["scan", "--offline", "/nonexistent/digestif-test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/digestif-test"));
    assert_eq!(digestif(&["scan", "--bogus"]).status.code(), Some(2));
}
