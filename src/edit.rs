//! Surgical edits: change only the bytes of a tag or digest, nothing else.

use std::ops::Range;

use thiserror::Error;

use crate::extract::Found;
use crate::reference::Digest;

/// Replace the bytes in `range` with `text`. An empty range inserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub range: Range<usize>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EditError {
    #[error("change {start}..{end} is outside the file ({len} bytes)")]
    OutOfBounds {
        start: usize,
        end: usize,
        len: usize,
    },
    #[error("changes {a:?} and {b:?} overlap")]
    Overlap { a: Range<usize>, b: Range<usize> },
    #[error(
        "the file changed since it was scanned: expected {expected:?} at {start}, found {found:?}"
    )]
    Stale {
        start: usize,
        expected: String,
        found: String,
    },
}

/// Applies `changes` to `bytes`. Every byte outside the changed ranges is kept as is.
pub fn apply(bytes: &[u8], changes: &[Change]) -> Result<Vec<u8>, EditError> {
    let mut sorted: Vec<&Change> = changes.iter().collect();
    sorted.sort_by_key(|c| (c.range.start, c.range.end));
    for c in &sorted {
        if c.range.start > c.range.end || c.range.end > bytes.len() {
            return Err(EditError::OutOfBounds {
                start: c.range.start,
                end: c.range.end,
                len: bytes.len(),
            });
        }
    }
    for pair in sorted.windows(2) {
        let (a, b) = (&pair[0].range, &pair[1].range);
        // Two inserts at one point have no defined order, so they count as overlapping.
        if b.start < a.end || (a == b && a.is_empty()) {
            return Err(EditError::Overlap {
                a: a.clone(),
                b: b.clone(),
            });
        }
    }
    let grow: usize = sorted.iter().map(|c| c.text.len()).sum();
    let mut out = Vec::with_capacity(bytes.len() + grow);
    let mut at = 0;
    for c in sorted {
        out.extend_from_slice(&bytes[at..c.range.start]);
        out.extend_from_slice(c.text.as_bytes());
        at = c.range.end;
    }
    out.extend_from_slice(&bytes[at..]);
    Ok(out)
}

/// The change that makes `found` point at `digest`: replace the digest it has, or pin it:
/// insert the digest where the format keeps it (`Found::pin_insert`, a `digest:` key), else
/// append `@digest` right after its tag. `None` when it already has that digest.
/// `None` too for a reference digestif must not edit (`Found::not_editable`).
pub fn set_digest(found: &Found, digest: &Digest) -> Option<Change> {
    if found.not_editable.is_some() || found.reference.digest.as_ref() == Some(digest) {
        return None;
    }
    Some(match (&found.digest_span, &found.pin_insert) {
        (Some(span), _) => Change {
            range: span.clone(),
            text: digest.to_string(),
        },
        (None, Some(insert)) => Change {
            range: insert.at..insert.at,
            text: format!("{}{digest}{}", insert.before, insert.after),
        },
        (None, None) => Change {
            range: found.span.end..found.span.end,
            text: format!("@{digest}"),
        },
    })
}

/// Checks that `bytes` still hold what was scanned at each of `founds` before editing them,
/// so an edit never lands on text that moved underneath it.
pub fn verify(bytes: &[u8], founds: &[&Found]) -> Result<(), EditError> {
    for f in founds {
        let expect = |span: &Range<usize>, text: String| {
            let found = bytes.get(span.clone()).unwrap_or_default();
            if found == text.as_bytes() {
                return Ok(());
            }
            Err(EditError::Stale {
                start: span.start,
                expected: text,
                found: String::from_utf8_lossy(found).into_owned(),
            })
        };
        expect(&f.span, f.text.clone())?;
        // A digest from an `ARG` default sits outside the image text.
        if let (Some(span), Some(d)) = (&f.digest_span, &f.reference.digest) {
            expect(span, d.to_string())?;
        }
        // A key inserted to pin goes after text that must still be there.
        if let Some(i) = &f.pin_insert {
            let start = i.at.saturating_sub(i.follows.len());
            expect(&(start..i.at), i.follows.clone())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::extract_file;
    use proptest::prelude::*;

    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn change(r: Range<usize>, t: &str) -> Change {
        Change {
            range: r,
            text: t.into(),
        }
    }

    #[test]
    fn replaces_and_inserts_only_the_given_ranges() {
        let out = apply(b"abcdef", &[change(4..4, "X"), change(1..3, "YY")]).unwrap();
        assert_eq!(out, b"aYYdXef");
        assert_eq!(apply(b"abc", &[]).unwrap(), b"abc");
    }

    #[test]
    fn rejects_overlaps_and_out_of_bounds() {
        assert!(matches!(
            apply(b"abc", &[change(0..2, ""), change(1..3, "")]),
            Err(EditError::Overlap { .. })
        ));
        assert!(matches!(
            apply(b"abc", &[change(1..1, "a"), change(1..1, "b")]),
            Err(EditError::Overlap { .. })
        ));
        assert!(matches!(
            apply(b"abc", &[change(2..9, "")]),
            Err(EditError::OutOfBounds { .. })
        ));
    }

    #[test]
    fn pinning_appends_after_the_tag_and_updating_replaces_the_digest() {
        let new: Digest = NEW.parse().unwrap();
        let text = "FROM python:3.12-slim AS base\r\n# keep\r\n";
        let e = extract_file("Dockerfile", text.as_bytes()).unwrap();
        let c = set_digest(&e.references[0], &new).unwrap();
        let out = apply(text.as_bytes(), &[c]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("FROM python:3.12-slim@{NEW} AS base\r\n# keep\r\n")
        );

        let text = format!("FROM python:3.12-slim@{OLD}\n");
        let e = extract_file("Dockerfile", text.as_bytes()).unwrap();
        let f = &e.references[0];
        verify(text.as_bytes(), &[f]).unwrap();
        let out = apply(text.as_bytes(), &[set_digest(f, &new).unwrap()]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("FROM python:3.12-slim@{NEW}\n")
        );
        assert_eq!(set_digest(f, &OLD.parse().unwrap()), None);
    }

    #[test]
    fn verify_catches_a_file_that_moved() {
        let text = "FROM python:3.12\n";
        let e = extract_file("Dockerfile", text.as_bytes()).unwrap();
        assert!(matches!(
            verify(b"FROM node:20\n", &[&e.references[0]]),
            Err(EditError::Stale { .. })
        ));
    }

    /// Generated files: random filler around references; after edits, the bytes outside
    /// the changed spans are identical and each span holds the new digest.
    fn filler() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("\n".to_string()),
                Just("\r\n".to_string()),
                Just("# comment FROM x:1\n".to_string()),
                Just("RUN echo hi \\\n  && true\n".to_string()),
                Just("ENV A=b\n".to_string()),
                Just("   \t".to_string()),
                "x[a-zA-Z ]{0,12}\n",
            ],
            0..4,
        )
        .prop_map(|v| v.concat())
    }

    /// One reference in one of the forms a Dockerfile writes it: `(global ARG lines,
    /// FROM line)`. `i` keeps ARG names apart.
    fn form(form: u8, i: usize, name: &str, tag: &str, pinned: bool) -> (String, String) {
        let at = if pinned {
            format!("@{OLD}")
        } else {
            String::new()
        };
        match form {
            // Plain text.
            0 => (String::new(), format!("FROM {name}:{tag}{at}")),
            // A version ARG: the pin goes after the FROM text.
            1 => (
                format!("ARG V{i}={tag}\n"),
                format!("FROM {name}:${{V{i}}}{at}"),
            ),
            // Quoted, as `ARG ALPINE_TAG="3.24.1"` + `FROM alpine:"${ALPINE_TAG}"`.
            2 => (
                format!("ARG V{i}=\"{tag}\"\n"),
                format!("FROM {name}:\"${{V{i}}}\"{at}"),
            ),
            // An ARG holds the whole reference, through a chain.
            3 => (
                format!("ARG R{i}={name}:{tag}{at}\nARG B{i}=$R{i}\n"),
                format!("FROM ${{B{i}}}"),
            ),
            // `${X:-default}` falls back to its default, which holds the reference.
            4 => (
                format!("ARG O{i}\n"),
                format!("FROM ${{O{i}:-{name}:{tag}{at}}}"),
            ),
            // A digest ARG: edited at the ARG; unpinned, the pin goes after the FROM text.
            _ if pinned => (
                format!("ARG T{i}={tag}\nARG D{i}={OLD}\n"),
                format!("FROM {name}:$T{i}@${{D{i}}}"),
            ),
            _ => (format!("ARG T{i}={tag}\n"), format!("FROM {name}:$T{i}")),
        }
    }

    proptest! {
        #[test]
        fn only_the_digest_spans_change(
            parts in prop::collection::vec((filler(), "[a-z]{1,8}", "[a-z0-9][a-z0-9.]{0,5}", any::<bool>(), any::<bool>(), 0u8..6), 1..6),
            syntax in prop::option::of(any::<bool>()),
            tail in filler(),
        ) {
            let new: Digest = NEW.parse().unwrap();
            // The `# syntax=` directive, pinned or not, must be the first line.
            let mut text = match syntax {
                Some(true) => format!("# syntax=docker/dockerfile:1@{OLD}\n"),
                Some(false) => "# syntax=docker/dockerfile:1\n".to_string(),
                None => String::new(),
            };
            let mut froms = String::new();
            for (i, (pre, name, tag, pinned, crlf, kind)) in parts.iter().enumerate() {
                let (args, from) = form(*kind, i, name, tag, *pinned);
                // Global ARGs come before the first FROM.
                text.push_str(&args);
                froms.push_str(pre);
                if !froms.is_empty() && !froms.ends_with('\n') { froms.push('\n'); }
                froms.push_str(&from);
                froms.push_str(if *crlf { " AS s\r\n" } else { "\n" });
            }
            text.push_str(&froms);
            text.push_str(&tail);
            let bytes = text.as_bytes();
            let e = extract_file("Dockerfile", bytes).unwrap();
            let expected = parts.len() + usize::from(syntax.is_some());
            prop_assert_eq!(e.references.len(), expected, "{:#?}\n{}", e, text);
            prop_assert!(e.references.iter().all(|f| f.not_editable.is_none()));
            verify(bytes, &e.references.iter().collect::<Vec<_>>()).unwrap();
            let changes: Vec<Change> = e.references.iter().filter_map(|f| set_digest(f, &new)).collect();
            let out = apply(bytes, &changes).unwrap();

            // Walk both buffers: outside the changes they must match byte for byte.
            let mut sorted = changes.clone();
            sorted.sort_by_key(|c| c.range.start);
            let (mut i, mut j) = (0usize, 0usize);
            for c in &sorted {
                let keep = c.range.start - i;
                prop_assert_eq!(&bytes[i..c.range.start], &out[j..j + keep]);
                j += keep;
                prop_assert_eq!(&out[j..j + c.text.len()], c.text.as_bytes());
                j += c.text.len();
                i = c.range.end;
            }
            prop_assert_eq!(&bytes[i..], &out[j..]);

            // A rescan of the result finds every reference, naming the same image and tag
            // as before, pinned to the new digest.
            let again = extract_file("Dockerfile", &out).unwrap();
            prop_assert_eq!(again.references.len(), expected);
            for (f, before) in again.references.iter().zip(&e.references) {
                prop_assert_eq!(f.reference.digest.as_ref(), Some(&new));
                prop_assert_eq!(f.reference.name(), before.reference.name());
                prop_assert_eq!(&f.reference.tag, &before.reference.tag);
            }
        }
    }

    /// A file of `kind` (0 compose, 1 Actions matrix, 2 custom resource, 3 Bake,
    /// 4 Kustomize, 5 Helm values) holding one reference per part, in the forms issue 12
    /// added, with quotes, comments, CRLF and a flow list closed at its key's column in
    /// between. Kustomize entries without a digest are pinned by inserting a `digest:` key.
    fn yaml_file(
        kind: u8,
        parts: &[(String, String, bool, u8, bool, u8)],
        crlf: bool,
    ) -> (String, String) {
        let mut text = String::new();
        let path = match kind {
            0 => {
                text.push_str("services:\n");
                "docker-compose.yml"
            }
            1 => {
                text.push_str("on: push\njobs:\n  j:\n    container: ${{ matrix.image }}\n    strategy:\n      matrix:\n        image:\n");
                ".github/workflows/ci.yml"
            }
            2 => {
                text.push_str("apiVersion: tekton.dev/v1\nkind: Task\nspec:\n  steps:\n");
                "k8s/task.yaml"
            }
            4 => {
                text.push_str("resources:\n- deploy.yaml\nimages:\n");
                "overlays/prod/kustomization.yaml"
            }
            5 => {
                text.push_str("# Default values.\nreplicaCount: 1\n");
                "charts/app/values.yaml"
            }
            _ => {
                text.push_str("// c\ntarget \"a\" {\n  contexts = {\n");
                "docker-bake.hcl"
            }
        };
        for (i, (name, tag, pinned, quote, comment, form)) in parts.iter().enumerate() {
            let mut image = format!("{name}:{tag}");
            if *pinned {
                image.push('@');
                image.push_str(OLD);
            }
            if kind == 0 {
                image = match form % 3 {
                    0 => image,
                    1 => format!("${{V{i}:-{image}}}"),
                    _ => format!("${{V{i}-{image}}}"),
                };
            }
            let q = ["", "'", "\""][usize::from(*quote % 3)];
            let c = if *comment { "  # é c" } else { "" };
            // Helm reads an unquoted `1.5` as a number: such tags are skipped, not tested here.
            let tag = if kind == 5 && q.is_empty() {
                format!("v{tag}")
            } else {
                tag.clone()
            };
            let at = if *pinned {
                format!("{q}{OLD}{q}")
            } else {
                String::new()
            };
            match kind {
                4 => text.push_str(&match form % 3 {
                    0 => format!(
                        "- name: n{i}\n  newName: ghcr.io/{name}\n  newTag: {q}{tag}{q}{c}\n{}",
                        if *pinned {
                            format!("  digest: {at}\n")
                        } else {
                            String::new()
                        }
                    ),
                    1 => format!(
                        "- {{name: {name}, newTag: {q}{tag}{q}{}}}{c}\n",
                        if *pinned {
                            format!(", digest: {at}")
                        } else {
                            String::new()
                        }
                    ),
                    _ => format!(
                        "- newTag: {q}{tag}{q}{c}\n{}  name: {name}\n",
                        if *pinned {
                            format!("  digest: {at}\n")
                        } else {
                            String::new()
                        }
                    ),
                }),
                5 => text.push_str(&match form % 3 {
                    0 => format!(
                        "s{i}:\n  image:\n    registry: ghcr.io\n    repository: acme/{name}\n    \
                         tag: {q}{tag}{q}{c}\n    digest: {}\n    pullPolicy: IfNotPresent\n",
                        if *pinned { at } else { format!("{q}{q}") }
                    ),
                    1 => format!(
                        "s{i}:\n  image:\n    repository: {name}\n    tag: {q}{tag}{}{q}{c}\n",
                        if *pinned {
                            format!("@{OLD}")
                        } else {
                            String::new()
                        }
                    ),
                    _ => format!(
                        "s{i}:\n  sidecarImage: {{repository: {name}, tag: {q}{tag}{q}{}}}{c}\n",
                        if *pinned {
                            format!(", digest: {at}")
                        } else {
                            String::new()
                        }
                    ),
                }),
                0 => text.push_str(&format!(
                    "  s{i}:\n    image: {q}{image}{q}{c}\n    command: [\n      \"a\",\n    ]\n"
                )),
                1 => text.push_str(&format!("          - {q}{image}{q}{c}\n")),
                2 => text.push_str(&format!("  - name: s{i}\n    image: {q}{image}{q}{c}\n")),
                _ => text.push_str(&format!(
                    "    c{i} = \"docker-image://{image}\"{}\n",
                    if *comment { " # é" } else { "" }
                )),
            }
        }
        if kind == 3 {
            text.push_str("  }\n  tags = [\"x:1\"]\n}\n");
        }
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        // A last line without its line break: the key inserted after it brings one.
        if kind == 4 && parts.len().is_multiple_of(2) {
            let cut = text.trim_end_matches(['\r', '\n']).len();
            text.truncate(cut);
        }
        (path.to_string(), text)
    }

    proptest! {
        #[test]
        fn only_the_digest_spans_change_in_the_new_formats(
            kind in 0u8..6,
            parts in prop::collection::vec(
                ("[a-z]{1,8}", "[a-z0-9][a-z0-9.]{0,5}", any::<bool>(), any::<u8>(), any::<bool>(), any::<u8>()),
                1..6,
            ),
            crlf in any::<bool>(),
        ) {
            let new: Digest = NEW.parse().unwrap();
            let (path, text) = yaml_file(kind, &parts, crlf);
            let bytes = text.as_bytes();
            let e = extract_file(&path, bytes).unwrap();
            prop_assert!(e.errors.is_empty(), "{:?}", e.errors);
            prop_assert_eq!(e.references.len(), parts.len(), "{}", text);
            let founds: Vec<&Found> = e.references.iter().collect();
            verify(bytes, &founds).unwrap();
            let changes: Vec<Change> = e.references.iter().filter_map(|f| set_digest(f, &new)).collect();
            let out = apply(bytes, &changes).unwrap();

            let mut sorted = changes.clone();
            sorted.sort_by_key(|c| c.range.start);
            let (mut i, mut j) = (0usize, 0usize);
            for c in &sorted {
                let keep = c.range.start - i;
                prop_assert_eq!(&bytes[i..c.range.start], &out[j..j + keep]);
                j += keep;
                prop_assert_eq!(&out[j..j + c.text.len()], c.text.as_bytes());
                j += c.text.len();
                i = c.range.end;
            }
            prop_assert_eq!(&bytes[i..], &out[j..]);

            let again = extract_file(&path, &out).unwrap();
            prop_assert_eq!(again.references.len(), parts.len());
            for f in &again.references {
                prop_assert_eq!(f.reference.digest.as_ref(), Some(&new));
            }
        }
    }
}
