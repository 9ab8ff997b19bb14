//! Finding image references in a repository's files, with exact byte spans.
//!
//! Every extractor is a pure function from a file's text to the references in it, the
//! references it had to skip (with the reason) and errors. Spans are byte offsets into the
//! file as stored, so `edit` can change exactly those bytes.

pub mod actions;
pub mod bake;
pub mod compose;
pub mod devcontainer;
pub mod dockerfile;
pub mod helm;
pub mod kubernetes;
pub mod kustomize;
mod literals;
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
    Devcontainer,
    Bake,
    Kustomize,
    Helm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dockerfile => "dockerfile",
            Kind::Compose => "compose",
            Kind::Kubernetes => "kubernetes",
            Kind::Actions => "actions",
            Kind::Devcontainer => "devcontainer",
            Kind::Bake => "bake",
            Kind::Kustomize => "kustomize",
            Kind::Helm => "helm",
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
    /// Where in the file: `FROM`, `COPY --from`, `RUN --mount`, `# syntax`,
    /// `services.web.image`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The `ARG`s the image text was expanded with (`golang:${GO_VERSION}-alpine`), in
    /// order of use; the reference is their resolved value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<String>,
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
    /// Byte span of the whole image text in the file: where a pin is appended. For an
    /// image built from variables, the text that holds the whole reference (the `FROM`
    /// argument, or the `ARG` default a `FROM $ARG` uses).
    pub span: Range<usize>,
    /// Byte span of the name (registry/repository) in the file; `span` when variables
    /// put the name together from several places.
    pub name_span: Range<usize>,
    /// Byte span of the tag, without the `:`; `None` when there is none or it is put
    /// together from several places.
    pub tag_span: Option<Range<usize>>,
    /// Byte span of the digest, without the `@`.
    pub digest_span: Option<Range<usize>>,
    /// Where a digest the reference does not have yet is written, when it is not appended
    /// to the image text: formats that keep it in a key of its own (Kustomize `digest:`)
    /// get a key inserted. `None`: pinning appends `@digest` at the end of `span`.
    pub pin_insert: Option<Insertion>,
    pub context: Context,
    /// Why digestif must not write a digest here (the digest is put together from several
    /// places, say); such a reference is still listed and checked, never edited.
    pub not_editable: Option<String>,
}

/// Text to insert at a byte offset to pin a reference: `before`, the digest, `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insertion {
    pub at: usize,
    pub before: String,
    pub after: String,
    /// The bytes right before `at` when the file was scanned (the rest of the line the key
    /// goes after), checked before editing so the key never lands in text that moved.
    pub follows: String,
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
            if let Some(i) = f.pin_insert.as_mut() {
                i.at += by;
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
            pin_insert: None,
            context,
            not_editable: None,
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

/// A piece of a reference written in a key of its own: its text and where it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece<'t> {
    pub at: usize,
    pub text: &'t str,
}

impl Piece<'_> {
    fn span(&self) -> Range<usize> {
        self.at..self.at + self.text.len()
    }
}

impl Source<'_> {
    /// A reference put together from a name (after an optional registry written
    /// elsewhere), an optional tag (which may carry `@digest`) and an optional digest, each
    /// written in a key of its own (Kustomize `images:`, Helm values). `holder` is the piece
    /// whose bytes are the reference's `text` and `span`. An error says why the pieces do
    /// not make one reference.
    pub(crate) fn composed(
        &self,
        registry: Option<&str>,
        name: Piece<'_>,
        tag: Option<Piece<'_>>,
        digest: Option<Piece<'_>>,
        holder: Piece<'_>,
        context: Context,
    ) -> Result<Found, String> {
        let mut image = String::new();
        if let Some(r) = registry {
            image.push_str(r);
            image.push('/');
        }
        image.push_str(name.text);
        let name_end = image.len();
        let tag_at = tag.map(|t| {
            image.push(':');
            let at = image.len();
            image.push_str(t.text);
            (t, at)
        });
        let digest_at = digest.map(|d| {
            image.push('@');
            let at = image.len();
            image.push_str(d.text);
            (d, at)
        });
        let (reference, parts) =
            reference::parse_with_parts(&image).map_err(|e| format!("{image}: {e}"))?;
        if parts.name != (0..name_end) {
            return Err(format!("{image}: {:?} is not an image name", name.text));
        }
        // A part of `image` that lies in the tag piece, as bytes of the file.
        let in_tag = |r: Range<usize>| {
            tag_at.and_then(|(t, at)| {
                (r.start >= at && r.end <= at + t.text.len())
                    .then(|| t.at + r.start - at..t.at + r.end - at)
            })
        };
        let tag_span = match (tag_at, parts.tag) {
            (Some((_, at)), Some(r)) if r.start == at => in_tag(r),
            (None, None) => None,
            _ => return Err(format!("{image}: the tag is not an image tag")),
        };
        let digest_span = match (digest_at, parts.digest) {
            (Some((d, at)), Some(r)) if r == (at..at + d.text.len()) => Some(d.span()),
            (Some(_), _) => return Err(format!("{image}: the digest is not a digest")),
            (None, Some(r)) => match in_tag(r) {
                Some(span) => Some(span),
                None => return Err(format!("{image}: the digest is not a digest")),
            },
            (None, None) => None,
        };
        Ok(Found {
            file: self.file.to_string(),
            line: self.line_of(holder.at),
            kind: self.kind,
            reference,
            text: holder.text.to_string(),
            span: holder.span(),
            name_span: name.span(),
            tag_span,
            digest_span,
            pin_insert: None,
            context,
            not_editable: None,
        })
    }
}

pub fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    1 + text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// How a file name says the file is a Dockerfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DockerfileName {
    /// `Dockerfile`, `Containerfile`, `*.Dockerfile`, `*.containerfile`.
    Certain,
    /// `Dockerfile.dev`, `Dockerfile-windows`, `dockerfile1.alpine`, … but also
    /// `dockerfile.rs`: read only when the content is a Dockerfile's.
    ByContent,
}

fn dockerfile_name(name: &str) -> Option<DockerfileName> {
    let lower = name.to_ascii_lowercase();
    if lower == "dockerfile"
        || lower == "containerfile"
        || lower.ends_with(".dockerfile")
        || lower.ends_with(".containerfile")
    {
        return Some(DockerfileName::Certain);
    }
    // BuildKit's per-Dockerfile ignore files (`Dockerfile.dockerignore`) are not Dockerfiles.
    if lower.ends_with(".dockerignore") || lower.ends_with(".containerignore") {
        return None;
    }
    // Any case of the first letter; the rest as Docker spells it.
    let prefixed = |word: &str| {
        let (first, rest) = word.split_at(1);
        name.get(..1).is_some_and(|f| f.eq_ignore_ascii_case(first))
            && name.get(1..).is_some_and(|n| n.starts_with(rest))
    };
    (prefixed("Dockerfile") || prefixed("Containerfile")).then_some(DockerfileName::ByContent)
}

/// Which extractor, if any, reads the file at `path` (relative, `/`-separated).
/// Kubernetes manifests and Dockerfiles whose name only suggests one are recognised by
/// content, so they are candidates here and confirmed by `extract_file`.
pub fn kind_for_path(path: &str) -> Option<Kind> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let lower = name.to_ascii_lowercase();
    if dockerfile_name(name).is_some() {
        return Some(Kind::Dockerfile);
    }
    let dir = path.len() - name.len();
    // `.devcontainer/devcontainer.json`, `.devcontainer/<name>/devcontainer.json` and
    // `.devcontainer.json`, where the Dev Containers tools look.
    let parent = path[..dir].trim_end_matches('/');
    let in_devcontainer = |p: &str| p == ".devcontainer" || p.ends_with("/.devcontainer");
    if name == ".devcontainer.json"
        || (name == "devcontainer.json"
            && (in_devcontainer(parent)
                || parent
                    .rsplit_once('/')
                    .is_some_and(|(up, _)| in_devcontainer(up))))
    {
        return Some(Kind::Devcontainer);
    }
    if lower.starts_with("docker-bake") && (lower.ends_with(".hcl") || lower.ends_with(".json")) {
        return Some(Kind::Bake);
    }
    // Kustomize reads these three names, in this order of preference.
    if matches!(
        name,
        "kustomization.yaml" | "kustomization.yml" | "Kustomization"
    ) {
        return Some(Kind::Kustomize);
    }
    let yaml = lower.ends_with(".yml") || lower.ends_with(".yaml");
    if !yaml {
        return None;
    }
    // Workflows of the root and of nested repositories (a monorepo checkout, vendored
    // projects): `.github/workflows/` directly holds the file.
    if path[..dir] == *".github/workflows/" || path[..dir].ends_with("/.github/workflows/") {
        return Some(Kind::Actions);
    }
    if lower.starts_with("compose.") || lower.starts_with("docker-compose") {
        return Some(Kind::Compose);
    }
    if helm::is_values_file(name) {
        return Some(Kind::Helm);
    }
    Some(Kind::Kubernetes)
}

/// Whether `path` is read as a Dockerfile only when its content says it is one.
fn confirmed_by_content(path: &str) -> bool {
    dockerfile_name(path.rsplit('/').next().unwrap_or(path)) == Some(DockerfileName::ByContent)
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
    if kind_for_path(path).is_none() || confirmed_by_content(path) {
        return None;
    }
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
    // A file only its name calls a Dockerfile is not reported unread: it may be none.
    let skip = |reason: String| (!confirmed_by_content(path)).then(|| skip_file(path, reason));
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
    // A values file that is a manifest is read as one, as it was before values were read.
    let kind = match kind {
        Kind::Helm if kubernetes::looks_like_manifest(text) => Kind::Kubernetes,
        Kind::Helm if !helm::looks_like_values(text) => return None,
        k => k,
    };
    if confirmed_by_content(path) && !dockerfile::looks_like_dockerfile(text) {
        return None;
    }
    let source = Source::new(path, text, kind);
    let mut out = match kind {
        Kind::Dockerfile => dockerfile::extract(&source),
        Kind::Compose => compose::extract(&source),
        Kind::Kubernetes => kubernetes::extract(&source),
        Kind::Actions => actions::extract(&source),
        Kind::Devcontainer => devcontainer::extract(&source),
        Kind::Bake => bake::extract(&source),
        Kind::Kustomize => kustomize::extract(&source),
        Kind::Helm => helm::extract(&source),
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
            "Dockerfile-windows",
            "dockerfile1.alpine",
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
        for p in [
            "services/api/.github/workflows/ci.yaml",
            "vendor/x/.github/workflows/release.yml",
        ] {
            assert_eq!(kind_for_path(p), Some(Kind::Actions), "{p}");
        }
        assert_eq!(
            kind_for_path("x.github/workflows/ci.yml"),
            Some(Kind::Kubernetes)
        );
        assert_eq!(kind_for_path("k8s/deploy.yaml"), Some(Kind::Kubernetes));
        for p in [
            ".devcontainer/devcontainer.json",
            ".devcontainer/rust/devcontainer.json",
            "api/.devcontainer/devcontainer.json",
            ".devcontainer.json",
        ] {
            assert_eq!(kind_for_path(p), Some(Kind::Devcontainer), "{p}");
        }
        for p in [
            "devcontainer.json",
            "x/devcontainer.json",
            "a/b/c/devcontainer.json",
        ] {
            assert_eq!(kind_for_path(p), None, "{p}");
        }
        for p in [
            "docker-bake.hcl",
            "x/docker-bake.override.json",
            "docker-bake.json",
        ] {
            assert_eq!(kind_for_path(p), Some(Kind::Bake), "{p}");
        }
        assert_eq!(kind_for_path("docker-bake.md"), None);
        assert_eq!(kind_for_path("README.md"), None);
        for p in [
            "deploy/Dockerfile.dockerignore",
            "Dockerfile-dev.dockerignore",
            "Containerfile.containerignore",
            "xDockerfile",
            "DockerFile.dev",
            "Docker",
        ] {
            assert_eq!(kind_for_path(p), None, "{p}");
        }
    }

    #[test]
    fn names_that_only_suggest_a_dockerfile_are_confirmed_by_content() {
        let from = b"# a comment\nFROM alpine:3\n";
        for p in [
            "Dockerfile-windows",
            "Dockerfile_windows",
            "Dockerfile1.alpine",
            "x/Dockerfile.dev",
            "dockerfile.prod",
            "containerfile-x",
            "Containerfile.fedora",
            "a/b.Dockerfile",
        ] {
            assert_eq!(kind_for_path(p), Some(Kind::Dockerfile), "{p}");
            let e = extract_file(p, from).unwrap();
            assert_eq!(e.references.len(), 1, "{p}");
        }
        // Source code, notes, templates and binaries that share the prefix are not read.
        for (p, text) in [
            (
                "src/extract/dockerfile.rs",
                &b"//! Dockerfiles\nuse x;\nFROM y\n"[..],
            ),
            (
                "Dockerfile.md",
                b"# Dockerfile\n\nThis image is built FROM alpine.\n",
            ),
            ("Dockerfile.tar", b"FROM\0\0\0"),
            ("Dockerfile.bin", b"\xff\xfe"),
        ] {
            assert_eq!(extract_file(p, text), None, "{p}");
        }
        // The canonical names are read whatever they hold (and say what is wrong).
        assert!(extract_file("Dockerfile", b"\xff").is_some());
        assert!(extract_file("app.Dockerfile", b"RUN x\n").is_some());
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
