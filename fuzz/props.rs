//! The properties the fuzz targets check, shared with `tests/fuzz_corpus.rs`, which runs
//! every input kept under `fuzz/corpus/` through them on each `cargo test`.
//!
//! None of these may panic on any input; where an input is accepted, what is reported about
//! it must be true of its bytes, and a digest edit must change nothing but the digest.

// Each fuzz target uses one of these.
#![allow(dead_code)]

use digestif::edit::{Change, apply, set_digest};
use digestif::extract::{Extraction, extract_file};
use digestif::reference::{Digest, Reference, parse_with_parts};
use digestif::repo_config::RepoConfig;

/// YAML paths that select each YAML extractor (`extract_file` decides by path).
pub const YAML_PATHS: [&str; 6] = [
    "compose.yaml",
    "docker-compose.override.yml",
    "k8s/deployment.yaml",
    ".github/workflows/ci.yml",
    "overlays/prod/kustomization.yaml",
    "chart/values.yaml",
];

/// A reference that parses names the same image when printed and parsed again, and its
/// parts lie on character boundaries inside the text.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((r, parts)) = parse_with_parts(text) else {
        return;
    };
    for range in [Some(parts.name), parts.tag, parts.digest]
        .into_iter()
        .flatten()
    {
        assert!(range.end <= text.len(), "{range:?} outside {text:?}");
        assert!(
            text.get(range.clone()).is_some(),
            "{range:?} splits a character in {text:?}"
        );
    }
    let again = Reference::parse(&r.to_string())
        .unwrap_or_else(|e| panic!("{text:?} printed as {r} does not parse: {e}"));
    assert_eq!(again, r, "{text:?} printed as {r}");
}

/// The Dockerfile extractor: every reported span holds the text it claims, on its line.
pub fn dockerfile(data: &[u8]) {
    if let Some(found) = extract_file("Dockerfile", data) {
        spans_are_true("Dockerfile", data, &found);
    }
}

/// The YAML extractors, `data[0]` picking which: as for `dockerfile`.
pub fn yaml(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let path = YAML_PATHS[pick as usize % YAML_PATHS.len()];
    if let Some(found) = extract_file(path, bytes) {
        spans_are_true(path, bytes, &found);
    }
}

/// Editing, on a Dockerfile (`data[0]` even) or a YAML file: see `edit_only_changes_digests`.
pub fn edit(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let path = match pick % 2 {
        0 => "Dockerfile",
        _ => YAML_PATHS[(pick as usize / 2) % YAML_PATHS.len()],
    };
    if let Some(found) = extract_file(path, bytes) {
        edit_only_changes_digests(path, bytes, &found);
    }
}

fn spans_are_true(path: &str, bytes: &[u8], e: &Extraction) {
    for f in &e.references {
        let at = bytes
            .get(f.span.clone())
            .unwrap_or_else(|| panic!("{path}: span {:?} outside the file", f.span));
        assert_eq!(at, f.text.as_bytes(), "{path}: span {:?}", f.span);
        let line = 1 + bytes[..f.span.start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        assert_eq!(f.line, line, "{path}: {:?} at {:?}", f.text, f.span);
        let parts = [
            Some(&f.name_span),
            f.tag_span.as_ref(),
            f.digest_span.as_ref(),
        ];
        let inside =
            |part: &std::ops::Range<usize>| f.span.start <= part.start && part.end <= f.span.end;
        if f.text.contains(['"', '\'', '\\', '`', '$']) && Reference::parse(&f.text).is_err() {
            // Variables, quotes or escapes inside the image text (`python:${PY}`,
            // `py"thon":3`, ``bec`3e9b`` with a backtick escape; found by fuzzing): the
            // reference is what BuildKit reads, the text what the file holds.
            continue;
        }
        if parts.into_iter().flatten().all(inside) {
            let reparsed = Reference::parse(&f.text).unwrap_or_else(|e| {
                panic!("{path}: reported {:?}, which does not parse: {e}", f.text)
            });
            assert_eq!(reparsed, f.reference, "{path}: {:?}", f.text);
            continue;
        }
        // A reference written over several keys (Kustomize, Helm values): each part holds
        // the reference's own tag and digest.
        let at = |r: &std::ops::Range<usize>| {
            bytes
                .get(r.clone())
                .unwrap_or_else(|| panic!("{path}: part {r:?} outside the file"))
        };
        at(&f.name_span);
        if let Some(r) = &f.tag_span {
            assert_eq!(
                Some(at(r)),
                f.reference.tag.as_deref().map(str::as_bytes),
                "{path}"
            );
        }
        match (&f.digest_span, &f.reference.digest) {
            (Some(r), Some(d)) => assert_eq!(at(r), d.to_string().as_bytes(), "{path}"),
            (Some(r), None) => assert!(r.is_empty(), "{path}: {r:?} holds no digest"),
            (None, _) => {}
        }
    }
}

/// Pinning every reference to one new digest changes only the digest bytes (or appends
/// `@digest` after the tag), and reading the result again finds the same references, each
/// now with that digest.
fn edit_only_changes_digests(path: &str, bytes: &[u8], e: &Extraction) {
    let new = Digest::sha256_of(b"fuzz");
    let mut changes: Vec<Change> = e
        .references
        .iter()
        .filter_map(|f| set_digest(f, &new))
        .collect();
    // One ARG default used by two FROMs is reported twice at the same span.
    changes.sort_by_key(|c| (c.range.start, c.range.end));
    changes.dedup();
    let out = apply(bytes, &changes).unwrap_or_else(|err| panic!("{path}: {err}"));

    let (mut i, mut j) = (0usize, 0usize);
    for c in &changes {
        let keep = c.range.start - i;
        assert_eq!(&bytes[i..c.range.start], &out[j..j + keep], "{path}");
        j += keep;
        assert_eq!(&out[j..j + c.text.len()], c.text.as_bytes(), "{path}");
        j += c.text.len();
        i = c.range.end;
    }
    assert_eq!(&bytes[i..], &out[j..], "{path}");

    let after = extract_file(path, &out).unwrap_or_default();
    let before_names: Vec<_> = e.references.iter().map(|f| f.reference.name()).collect();
    let after_names: Vec<_> = after
        .references
        .iter()
        .map(|f| f.reference.name())
        .collect();
    assert_eq!(
        before_names, after_names,
        "{path}: edited file reads differently"
    );
    for (f, was) in after.references.iter().zip(&e.references) {
        if was.not_editable.is_some() {
            // Left as it was (found by fuzzing: a tag with a quote inside, `uv:0.4.'8`).
            assert_eq!(f.reference, was.reference, "{path}: {:?}", f.text);
            continue;
        }
        assert_eq!(
            f.reference.digest.as_ref(),
            Some(&new),
            "{path}: {:?}",
            f.text
        );
    }
}

/// The repository configuration parser never panics, and every error it reports points
/// inside the text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = RepoConfig::parse(text) {
        // The positions come from the YAML parser, which (as YAML 1.2 says) breaks lines
        // at CR, LF and CRLF alike; a lone CR is a line break there (found by fuzzing).
        let lines = text.replace("\r\n", "\n").split(['\r', '\n']).count() as u64;
        for e in &errors.0 {
            if let Some(line) = e.line {
                assert!(
                    line >= 1 && line <= lines + 1,
                    "line {line} of {lines}: {e}"
                );
            }
        }
    }
}
