//! Extraction throughput over a generated tree of 10,000 files.
//!
//! `cargo bench --bench extract` prints MB/s and files/s for the whole local scan
//! (walk + read + extract) and for extraction alone over the same bytes in memory.

use std::path::Path;
use std::time::Instant;

use digestif::extract::extract_file;
use digestif::local_scan::{WalkOptions, candidates, scan_dir};

const FILES: usize = 10_000;

fn digest(i: usize) -> String {
    format!("sha256:{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15)
}

/// A realistic mix: half Dockerfiles, then compose files, k8s manifests, workflows.
fn file(i: usize) -> (String, String) {
    let dir = format!("svc{:03}/m{:02}", i / 100, i % 100);
    match i % 10 {
        0..=4 => (
            format!("{dir}/Dockerfile"),
            format!(
                "# syntax=docker/dockerfile:1\nARG BASE=python:3.{}-slim@{}\n\
                 FROM golang:1.22-alpine AS build\nWORKDIR /src\nCOPY . .\n\
                 RUN --mount=type=cache,target=/root/.cache \\\n    go build -o /out/app ./...\n\
                 RUN <<EOF\nset -e\necho building {i}\nEOF\n\
                 FROM ${{BASE}}\nCOPY --from=build /out/app /app\n\
                 COPY --from=busybox:1.36 /bin/busybox /bin/busybox\nCMD [\"/app\"]\n",
                i % 13,
                digest(i)
            ),
        ),
        5 | 6 => (
            format!("{dir}/compose.yaml"),
            format!(
                "services:\n  web:\n    build: .\n  db:\n    image: postgres:16@{} # pinned\n  \
                 cache:\n    image: \"redis:7.{}-alpine\"\n  mail:\n    image: ${{MAIL:-mailpit:1}}\n",
                digest(i),
                i % 5
            ),
        ),
        7 | 8 => (
            format!("{dir}/deploy.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{i}\nspec:\n  \
                 template:\n    spec:\n      initContainers:\n        - name: init\n          \
                 image: busybox:1.36\n      containers:\n        - name: app\n          \
                 image: \"ghcr.io/acme/app{i}:1.0@{}\"\n---\napiVersion: v1\nkind: Service\n\
                 metadata:\n  name: app{i}\n",
                digest(i)
            ),
        ),
        _ => (
            format!(".github/workflows/ci{i}.yml"),
            "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    container: rust:1.82\n    \
             services:\n      redis:\n        image: redis:7\n    steps:\n      - uses: actions/checkout@v4\n      \
             - uses: docker://alpine:3.20\n"
                .to_string(),
        ),
    }
}

fn write_tree(root: &Path) -> (usize, usize) {
    let mut bytes = 0;
    for i in 0..FILES {
        let (rel, text) = file(i);
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &text).expect("write");
        bytes += text.len();
    }
    (FILES, bytes)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, bytes) = write_tree(dir.path());
    let mb = bytes as f64 / 1e6;
    println!("tree: {files} files, {mb:.2} MB");

    let opts = WalkOptions::default();
    // Warm the page cache once so the figures measure us, not the disk.
    let warm = scan_dir(dir.path(), &opts);
    let refs = warm.references.len();
    println!(
        "found: {refs} references, {} skipped, {} errors",
        warm.skipped.len(),
        warm.errors.len()
    );

    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(scan_dir(dir.path(), &opts));
    }
    let per = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "scan (walk + read + extract): {:.1} ms/run, {:.1} MB/s, {:.0} files/s",
        per * 1e3,
        mb / per,
        files as f64 / per
    );

    let (cands, _) = candidates(dir.path(), &opts);
    let loaded: Vec<(String, Vec<u8>)> = cands
        .iter()
        .map(|c| (c.relative.clone(), std::fs::read(&c.path).expect("read")))
        .collect();
    let start = Instant::now();
    let mut n = 0;
    for _ in 0..runs {
        for (rel, b) in &loaded {
            if let Some(e) = extract_file(rel, b) {
                n += e.references.len();
            }
        }
    }
    let per = start.elapsed().as_secs_f64() / runs as f64;
    assert_eq!(n, refs * runs);
    println!(
        "extract only (in memory): {:.1} ms/run, {:.1} MB/s, {:.0} files/s",
        per * 1e3,
        mb / per,
        files as f64 / per
    );
}
