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
    let root = fixtures().join("repo");
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
    let golden = fixtures().join("repo.expected.json");
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
    // Errors also reach stderr with file and line.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken/Dockerfile:1:"), "{stderr}");
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

/// `digestif` with its address space capped at 1 GiB (`prlimit`, util-linux): a read of a
/// multi-GiB file could not even get its buffer.
fn digestif_in_1gib(args: &[&str]) -> std::process::Output {
    Command::new("prlimit")
        .arg(format!("--as={}", 1u64 << 30))
        .arg(env!("CARGO_BIN_EXE_digestif"))
        .args(args)
        .output()
        .expect("run prlimit digestif")
}

#[test]
fn a_huge_sparse_file_is_skipped_by_its_size_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    // 4 GiB of holes: no disk used, but reading it whole would need 4 GiB of memory.
    let huge = std::fs::File::create(dir.path().join("Dockerfile")).unwrap();
    huge.set_len(4 << 30).unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/Dockerfile"), "FROM alpine:3.20\n").unwrap();
    let out = digestif_in_1gib(&[
        "scan",
        "--offline",
        "--format",
        "json",
        dir.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    assert_eq!(
        report["skipped"],
        serde_json::json!([{"file": "Dockerfile", "line": 0, "text": "",
            "reason": "file is 4294967296 bytes, over the 1048576 byte limit"}]),
        "{report:#}"
    );
    assert_eq!(report["references"][0]["file"], "app/Dockerfile");

    // check-config applies the server's 128 KiB cap the same way.
    let config = std::fs::File::create(dir.path().join("digestif.yml")).unwrap();
    config.set_len(4 << 30).unwrap();
    let out = digestif_in_1gib(&[
        "check-config",
        dir.path().join("digestif.yml").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("digestif.yml: the file is larger than 128 KiB"),
        "{stderr}"
    );
}
