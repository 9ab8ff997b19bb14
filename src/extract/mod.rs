//! Finding image references in a repository's files, with exact byte spans.
//!
//! Every extractor is a pure function from a file's text to the references in it, the
//! references it had to skip (with the reason) and errors. Spans are byte offsets into the
//! file as stored, so `edit` can change exactly those bytes.

pub mod actions;
pub mod compose;
pub mod dockerfile;
pub mod kubernetes;
mod yaml;

use std::ops::Range;

use serde::Serialize;

use crate::reference::{self, Reference, ReferenceError};

/// Files larger than this are skipped: no real Dockerfile or manifest is this big, and
/// reading one would let a single file stall a scan.
pub const MAX_FILE_SIZE: usize = 1024 * 1024;

/// Which kind of file a reference came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Dockerfile,
    Compose,
    Kubernetes,
    Actions,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dockerfile => "dockerfile",
            Kind::Compose => "compose",
            Kind::Kubernetes => "kubernetes",
            Kind::Actions => "actions",
        }
    }
}

/// Where a reference was used, for people reading PRs and for resolution rules
/// (a `--platform` tells which manifest of an index a platform pin means).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Context {
    /// Dockerfile stage name (`FROM … AS build`), compose service, k8s/Actions container name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The `--platform=` value of the `FROM`, verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The `ARG` whose default holds the reference (`ARG BASE=…` + `FROM $BASE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
    /// Where in the file: `FROM`, `COPY --from`, `RUN --mount`, `services.web.image`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// One image reference found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Path relative to the scanned root, `/`-separated.
    pub file: String,
    /// 1-based line of the image text.
    pub line: usize,
    pub kind: Kind,
    pub reference: Reference,
    /// The image text exactly as written.
    pub text: String,
    /// Byte span of the whole image text in the file.
    pub span: Range<usize>,
    /// Byte span of the name (registry/repository) in the file.
    pub name_span: Range<usize>,
    /// Byte span of the tag, without the `:`.
    pub tag_span: Option<Range<usize>>,
    /// Byte span of the digest, without the `@`.
    pub digest_span: Option<Range<usize>>,
    pub context: Context,
}

/// A place that looks like an image reference but that we deliberately leave alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub reason: String,
}

/// A file (or a place in it) that could not be read; the scan goes on without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileError {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

/// What one file yielded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    pub references: Vec<Found>,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<FileError>,
}

impl Extraction {
    pub fn merge(&mut self, other: Extraction) {
        self.references.extend(other.references);
        self.skipped.extend(other.skipped);
        self.errors.extend(other.errors);
    }

    fn shift(&mut self, by: usize) {
        for f in &mut self.references {
            let mv = |r: &mut Range<usize>| *r = r.start + by..r.end + by;
            mv(&mut f.span);
            mv(&mut f.name_span);
            if let Some(r) = f.tag_span.as_mut() {
                mv(r);
            }
            if let Some(r) = f.digest_span.as_mut() {
                mv(r);
            }
        }
    }
}

/// A file being extracted: its path and its text (BOM removed; spans are fixed up after).
pub struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub kind: Kind,
    pub(crate) lines: LineIndex,
}

/// 1-based line numbers by binary search, built once per file: counting newlines on every
/// lookup made a 1 MiB file with thousands of references take seconds.
pub(crate) struct LineIndex {
    /// Offset where each line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let newlines = text.match_indices('\n').map(|(i, _)| i + 1);
        LineIndex {
            starts: std::iter::once(0).chain(newlines).collect(),
        }
    }

    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}

impl<'a> Source<'a> {
    pub fn new(file: &'a str, text: &'a str, kind: Kind) -> Source<'a> {
        Source {
            file,
            text,
            kind,
            lines: LineIndex::new(text),
        }
    }

    /// 1-based line number of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.lines.line_of(offset)
    }

    /// Parses the image text at `start..start+image.len()` of the file into a `Found`.
    pub fn found(
        &self,
        start: usize,
        image: &str,
        context: Context,
    ) -> Result<Found, ReferenceError> {
        let (reference, parts) = reference::parse_with_parts(image)?;
        let at = |r: Range<usize>| r.start + start..r.end + start;
        Ok(Found {
            file: self.file.to_string(),
            line: self.line_of(start),
            kind: self.kind,
            reference,
            text: image.to_string(),
            span: start..start + image.len(),
            name_span: at(parts.name),
            tag_span: parts.tag.map(at),
            digest_span: parts.digest.map(at),
            context,
        })
    }

    pub fn skipped(&self, offset: usize, text: &str, reason: impl Into<String>) -> Skipped {
        Skipped {
            file: self.file.to_string(),
            line: self.line_of(offset),
            text: text.to_string(),
            reason: reason.into(),
        }
    }

    pub fn error(&self, line: Option<usize>, message: impl Into<String>) -> FileError {
        FileError {
            file: self.file.to_string(),
            line,
            message: message.into(),
        }
    }

    /// Records `image` at `start` as a reference, or as an error when it does not parse.
    pub fn push(&self, out: &mut Extraction, start: usize, image: &str, context: Context) {
        match self.found(start, image, context) {
            Ok(f) => out.references.push(f),
            Err(e) => out
                .errors
                .push(self.error(Some(self.line_of(start)), e.to_string())),
        }
    }
}

pub fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    1 + text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Which extractor, if any, reads the file at `path` (relative, `/`-separated).
/// Kubernetes manifests are recognised by content, so plain YAML is a candidate here and
/// confirmed by `extract_file`.
pub fn kind_for_path(path: &str) -> Option<Kind> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let lower = name.to_ascii_lowercase();
    // `Dockerfile.dev` is a Dockerfile, but `dockerfile.rs` (source code) and
    // `Dockerfile.dockerignore` (BuildKit's per-Dockerfile ignore file) are not: the prefix
    // form needs Docker's own spelling and no ignore-file suffix.
    let ignore_file = lower.ends_with(".dockerignore") || lower.ends_with(".containerignore");
    if lower == "dockerfile"
        || lower == "containerfile"
        || lower.ends_with(".dockerfile")
        || lower.ends_with(".containerfile")
        || ((name.starts_with("Dockerfile.") || name.starts_with("Containerfile.")) && !ignore_file)
    {
        return Some(Kind::Dockerfile);
    }
    let yaml = lower.ends_with(".yml") || lower.ends_with(".yaml");
    if !yaml {
        return None;
    }
    if path
        .strip_prefix(".github/workflows/")
        .is_some_and(|rest| !rest.contains('/'))
    {
        return Some(Kind::Actions);
    }
    if lower.starts_with("compose.") || lower.starts_with("docker-compose") {
        return Some(Kind::Compose);
    }
    Some(Kind::Kubernetes)
}

fn skip_file(path: &str, reason: String) -> Extraction {
    Extraction {
        skipped: vec![Skipped {
            file: path.to_string(),
            line: 0,
            text: String::new(),
            reason,
        }],
        ..Extraction::default()
    }
}

/// What [`extract_file`] says of a file over [`MAX_FILE_SIZE`], for callers that learnt
/// its size without reading it (`None`: it is bigger than the limit, by how much is unknown).
pub fn oversized_file(path: &str, size: Option<u64>) -> Option<Extraction> {
    kind_for_path(path)?;
    let reason = match size {
        Some(n) => format!("file is {n} bytes, over the {MAX_FILE_SIZE} byte limit"),
        None => format!("file is over the {MAX_FILE_SIZE} byte limit"),
    };
    Some(skip_file(path, reason))
}

/// Extracts the references of one file. `path` is relative to the scanned root.
/// Returns `None` for files no extractor reads.
pub fn extract_file(path: &str, bytes: &[u8]) -> Option<Extraction> {
    let kind = kind_for_path(path)?;
    let skip = |reason: String| Some(skip_file(path, reason));
    if bytes.len() > MAX_FILE_SIZE {
        return oversized_file(path, Some(bytes.len() as u64));
    }
    if bytes.contains(&0) {
        return skip("binary file".to_string());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return skip("file is not UTF-8".to_string());
    };
    let (text, bom) = match text.strip_prefix('\u{feff}') {
        Some(rest) => (rest, '\u{feff}'.len_utf8()),
        None => (text, 0),
    };
    if kind == Kind::Kubernetes && !kubernetes::looks_like_manifest(text) {
        return None;
    }
    let source = Source::new(path, text, kind);
    let mut out = match kind {
        Kind::Dockerfile => dockerfile::extract(&source),
        Kind::Compose => compose::extract(&source),
        Kind::Kubernetes => kubernetes::extract(&source),
        Kind::Actions => actions::extract(&source),
    };
    if bom > 0 {
        out.shift(bom);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_pick_the_extractor() {
        for p in [
            "Dockerfile",
            "a/Containerfile",
            "build/app.Dockerfile",
            "Dockerfile.prod",
            "x/base.containerfile",
            "dockerfile",
        ] {
            assert_eq!(kind_for_path(p), Some(Kind::Dockerfile), "{p}");
        }
        for p in [
            "compose.yaml",
            "compose.yml",
            "docker-compose.yml",
            "x/docker-compose.override.yaml",
        ] {
            assert_eq!(kind_for_path(p), Some(Kind::Compose), "{p}");
        }
        assert_eq!(
            kind_for_path(".github/workflows/ci.yml"),
            Some(Kind::Actions)
        );
        assert_eq!(
            kind_for_path(".github/workflows/sub/ci.yml"),
            Some(Kind::Kubernetes)
        );
        assert_eq!(kind_for_path("k8s/deploy.yaml"), Some(Kind::Kubernetes));
        assert_eq!(kind_for_path("README.md"), None);
        for p in [
            "src/extract/dockerfile.rs",
            "deploy/Dockerfile.dockerignore",
            "Containerfile.containerignore",
        ] {
            assert_eq!(kind_for_path(p), None, "{p}");
        }
    }

    #[test]
    fn oversized_binary_and_non_utf8_files_are_skipped_with_a_reason() {
        let big = vec![b'a'; MAX_FILE_SIZE + 1];
        let e = extract_file("Dockerfile", &big).unwrap();
        assert!(e.skipped[0].reason.contains("limit"));
        let e = extract_file("Dockerfile", b"FROM a\0b").unwrap();
        assert_eq!(e.skipped[0].reason, "binary file");
        let e = extract_file("Dockerfile", b"FROM \xff\xfe").unwrap();
        assert_eq!(e.skipped[0].reason, "file is not UTF-8");
    }

    #[test]
    fn a_bom_shifts_spans_to_the_stored_bytes() {
        let bytes = "\u{feff}FROM nginx:1.25\n".as_bytes();
        let e = extract_file("Dockerfile", bytes).unwrap();
        let f = &e.references[0];
        assert_eq!(&bytes[f.span.clone()], b"nginx:1.25");
        assert_eq!(&bytes[f.tag_span.clone().unwrap()], b"1.25");
    }
}
