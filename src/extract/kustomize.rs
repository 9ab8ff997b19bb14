//! Kustomize (`kustomization.yaml`, `kustomization.yml`, `Kustomization`): the entries of
//! `images:`, each of which sets the image that resources naming `name` run.
//!
//! An entry's reference is `newName` (or `name`) with `newTag` and `digest`. Kustomize
//! (api/filters/imagetag/updater.go) writes `name:newTag@digest` when both are set, and
//! `name@digest` when only `digest` is; so a digest written here is what runs, and digestif
//! pins an entry by setting `digest`: the value is replaced when the key exists, and a
//! `digest:` key is inserted next to the others when it does not.

use saphyr_parser::ScalarStyle;

use super::yaml::{Collector, NodeId, Yaml};
use super::{Context, Extraction, Insertion, Piece, Source};

pub fn extract(source: &Source<'_>) -> Extraction {
    let yaml = Yaml::parse(source.text);
    let mut out = Collector::new(source, &yaml);
    for &doc in yaml.documents() {
        let Some(items) = yaml.get(doc, "images").and_then(|i| yaml.sequence(i)) else {
            continue;
        };
        for (i, &item) in items.iter().enumerate() {
            entry(&yaml, &mut out, item, i);
        }
    }
    let mut found = out.finish();
    // Kustomizations were read as manifests before they had an extractor of their own.
    if super::kubernetes::looks_like_manifest(source.text) {
        let as_manifest = Source::new(source.file, source.text, super::Kind::Kubernetes);
        found.merge(super::kubernetes::extract(&as_manifest));
    }
    found
}

/// A key of an entry, written so its bytes can be edited: key node, value, where the value
/// starts, its style.
struct Key<'y> {
    key: NodeId,
    value: &'y str,
    at: usize,
    style: ScalarStyle,
}

impl<'y> Key<'y> {
    fn piece(&self) -> Piece<'y> {
        Piece {
            at: self.at,
            text: self.value,
        }
    }
}

/// `Ok(None)`: absent; `Err(())`: present but unreadable (already skipped).
fn read(r: Read<'_>) -> Result<Option<Key<'_>>, ()> {
    match r {
        Read::Unreadable => Err(()),
        Read::Absent => Ok(None),
        Read::Key(k) => Ok(Some(k)),
    }
}

enum Read<'y> {
    Absent,
    Key(Key<'y>),
    /// Present, but not a value digestif can read (skipped with the reason).
    Unreadable,
}

fn key<'y>(yaml: &'y Yaml<'_>, out: &mut Collector<'_, '_>, map: NodeId, name: &str) -> Read<'y> {
    let Some((k, v)) = yaml.own_entry(map, name) else {
        return Read::Absent;
    };
    match yaml.scalar_text(v) {
        Ok((at, value, style)) => {
            let reason = if value.contains("{{") {
                Some("uses template syntax ({{ … }})")
            } else if value.contains('$') {
                Some("uses variable substitution")
            } else {
                None
            };
            if let Some(reason) = reason {
                out.skipped(at, value, reason);
                return Read::Unreadable;
            }
            Read::Key(Key {
                key: k,
                value,
                at,
                style,
            })
        }
        Err(reason) => {
            let at = yaml.start_of(v);
            out.skipped(at, yaml.str(v).unwrap_or_default(), reason);
            Read::Unreadable
        }
    }
}

fn entry(yaml: &Yaml<'_>, out: &mut Collector<'_, '_>, item: NodeId, i: usize) {
    if yaml.sequence(item).is_some() || yaml.str(item).is_some() {
        return;
    }
    let (name, new_name, tag, digest) = (
        key(yaml, out, item, "name"),
        key(yaml, out, item, "newName"),
        key(yaml, out, item, "newTag"),
        key(yaml, out, item, "digest"),
    );
    let (Ok(name), Ok(new_name), Ok(tag), Ok(digest)) =
        (read(name), read(new_name), read(tag), read(digest))
    else {
        return;
    };
    let Some(image) = new_name.as_ref().or(name.as_ref()) else {
        return;
    };
    let context = Context {
        stage: name.as_ref().map(|n| n.value.to_string()),
        location: Some(format!("images[{i}]")),
        ..Context::default()
    };
    // A `digest: ""` is a place for the digest; a `digest:` with no value is not written
    // as a string digestif can fill in.
    let null = |k: &Key<'_>| {
        k.style == ScalarStyle::Plain && matches!(k.value, "" | "~" | "null" | "Null" | "NULL")
    };
    // An empty `newTag` leaves the resources' tag as it is, like no `newTag`.
    let tag = tag.filter(|t| !t.value.is_empty() && !null(t));
    let (digest, empty_digest) = match digest {
        Some(d) if null(&d) => {
            out.skipped(d.at, "", "`digest:` has no value");
            return;
        }
        Some(d) if d.value.is_empty() => (None, Some(d.at)),
        d => (d, None),
    };
    // Without either, the tag is whatever the resources say, which this file does not.
    if tag.is_none() && digest.is_none() {
        out.skipped(
            image.at,
            image.value,
            "sets no newTag or digest: the tag comes from the resources that use the image",
        );
        return;
    }
    let holder = tag.as_ref().unwrap_or(image);
    let mut found = match out.source().composed(
        None,
        image.piece(),
        tag.as_ref().map(Key::piece),
        digest.as_ref().map(Key::piece),
        holder.piece(),
        context,
    ) {
        Ok(f) => f,
        Err(e) => {
            out.error(holder.at, e);
            return;
        }
    };
    if let Some(at) = empty_digest {
        found.digest_span = Some(at..at);
    } else if digest.is_none() {
        // After the tag's line (or the name's), so the entry reads name, tag, digest.
        match insertion(yaml, item, holder) {
            Ok(i) => found.pin_insert = Some(i),
            Err(why) => found.not_editable = Some(why.to_string()),
        }
    }
    out.found(found);
}

/// Where and how a `digest:` key is written into the entry `map`, after the entry of
/// `after`: on a line of its own with the indentation and line ending of that line's key
/// in a block mapping, after the value in a flow mapping (`{name: x, newTag: y}`); quoted
/// as the value of `after` is.
fn insertion(yaml: &Yaml<'_>, map: NodeId, after: &Key<'_>) -> Result<Insertion, &'static str> {
    let text = yaml.text();
    let quote = match after.style {
        ScalarStyle::SingleQuoted => "'",
        ScalarStyle::DoubleQuoted => "\"",
        _ => "",
    };
    let key_at = yaml.start_of(after.key);
    let key_quote = match text.as_bytes().get(key_at) {
        Some(b'"') => "\"",
        Some(b'\'') => "'",
        _ => "",
    };
    let key = format!("{key_quote}digest{key_quote}: {quote}");
    let value_end = after.at + after.value.len() + quote.len();
    if yaml.is_flow(map) {
        return Ok(Insertion {
            at: value_end,
            before: format!(", {key}"),
            after: quote.to_string(),
            follows: String::new(),
        });
    }
    // YAML breaks lines at CR, LF and CRLF alike (found by fuzzing: a lone CR in a comment).
    let line_start = text[..key_at].rfind(['\n', '\r']).map_or(0, |i| i + 1);
    let lead = &text[line_start..key_at];
    if !lead.bytes().all(|b| b == b' ' || b == b'-') {
        return Err("its keys are not each on a line of their own");
    }
    let indent = " ".repeat(lead.len());
    let rest = &text[value_end..];
    match rest.find(['\n', '\r']) {
        Some(at) => {
            let eol = if rest[at..].starts_with("\r\n") {
                "\r\n"
            } else {
                &rest[at..=at]
            };
            let end = at + eol.len();
            Ok(Insertion {
                at: value_end + end,
                before: format!("{indent}{key}"),
                after: format!("{quote}{eol}"),
                follows: rest[..end].to_string(),
            })
        }
        // The last line of a file without a final line break.
        None => {
            let eol = if text.contains("\r\n") {
                "\r\n"
            } else if text.contains('\r') && !text.contains('\n') {
                "\r"
            } else {
                "\n"
            };
            Ok(Insertion {
                at: text.len(),
                before: format!("{eol}{indent}{key}"),
                after: quote.to_string(),
                follows: rest.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::{apply, set_digest, verify};
    use crate::extract::{Kind, extract_file};
    use crate::reference::Digest;

    const D: &str = "sha256:3bc801a33ea83df414e1aeb962a52412835be99db28668ec25de73fdd4733804";
    const N: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn run(text: &str) -> Extraction {
        extract(&Source::new("kustomization.yaml", text, Kind::Kustomize))
    }

    /// The file after pinning every reference to `N`.
    fn pinned(text: &str) -> String {
        let e = run(text);
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        let founds: Vec<_> = e.references.iter().collect();
        verify(text.as_bytes(), &founds).unwrap();
        let new: Digest = N.parse().unwrap();
        let changes: Vec<_> = e
            .references
            .iter()
            .filter_map(|f| set_digest(f, &new))
            .collect();
        String::from_utf8(apply(text.as_bytes(), &changes).unwrap()).unwrap()
    }

    #[test]
    fn entries_are_name_or_new_name_with_tag_and_digest() {
        // As kustomize's own documentation writes them, plus a pinned one.
        let text = format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\nimages:\n\
             - name: postgres\n  newName: my-registry/my-postgres\n  newTag: v1\n\
             - name: nginx\n  newTag: 1.8.0\n- name: my-demo-app\n  newName: my-app\n\
             - name: alpine\n  digest: {D}\n- name: redis\n  newTag: \"7.2\"\n  digest: '{D}'\n"
        );
        let e = run(&text);
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        let got: Vec<_> = e
            .references
            .iter()
            .map(|f| {
                (
                    f.reference.to_string(),
                    f.line,
                    f.text.as_str(),
                    f.context.location.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "docker.io/my-registry/my-postgres:v1".to_string(),
                    7,
                    "v1",
                    "images[0]".to_string()
                ),
                (
                    "docker.io/library/nginx:1.8.0".into(),
                    9,
                    "1.8.0",
                    "images[1]".into()
                ),
                (
                    format!("docker.io/library/alpine@{D}"),
                    12,
                    "alpine",
                    "images[3]".into()
                ),
                (
                    format!("docker.io/library/redis:7.2@{D}"),
                    15,
                    "7.2",
                    "images[4]".into()
                ),
            ]
        );
        assert_eq!(e.skipped.len(), 1);
        assert_eq!(e.skipped[0].line, 11);
        assert!(e.skipped[0].reason.contains("no newTag or digest"));
        let f = &e.references[3];
        assert_eq!(&text[f.digest_span.clone().unwrap()], D);
        assert_eq!(&text[f.tag_span.clone().unwrap()], "7.2");
        assert_eq!(&text[f.name_span.clone()], "redis");
    }

    /// Found by fuzzing: YAML reads a lone CR as a line break, so the `digest:` line goes
    /// after it, not after the next LF (which put it below another key).
    #[test]
    fn a_lone_carriage_return_ends_the_line_the_digest_follows() {
        let text = "images:\r\n  - name: nginx\r\n    newTag: \"1.25\" # c\rnext: 1\r\n";
        assert_eq!(
            pinned(text),
            format!(
                "images:\r\n  - name: nginx\r\n    newTag: \"1.25\" # c\r    digest: \"{N}\"\r\
                 next: 1\r\n"
            )
        );
        let text = "images:\r  - name: nginx\r    newTag: v1";
        assert_eq!(
            pinned(text),
            format!("images:\r  - name: nginx\r    newTag: v1\r    digest: {N}")
        );
    }

    #[test]
    fn pinning_inserts_a_digest_key_like_its_siblings() {
        let text = "images:\r\n  - name: nginx\r\n    newTag: \"1.8.0\" # pinned below\r\n  \
                    - name: app\r\n    newName: ghcr.io/acme/app\r\n    newTag: '2'\r\n  \
                    - {name: x, newTag: \"3\"}\r\n  - name: y\r\n    newTag: 4";
        assert_eq!(
            pinned(text),
            format!(
                "images:\r\n  - name: nginx\r\n    newTag: \"1.8.0\" # pinned below\r\n    \
                 digest: \"{N}\"\r\n  - name: app\r\n    newName: ghcr.io/acme/app\r\n    \
                 newTag: '2'\r\n    digest: '{N}'\r\n  - {{name: x, newTag: \"3\", digest: \"{N}\"}}\r\n  \
                 - name: y\r\n    newTag: 4\r\n    digest: {N}"
            )
        );
        // The first key of an entry sets the column; quoted keys stay quoted.
        let text = "images:\n- \"newTag\": v1\n  \"name\": a\nresources: [x.yaml]\n";
        assert_eq!(
            pinned(text),
            format!(
                "images:\n- \"newTag\": v1\n  \"digest\": {N}\n  \"name\": a\nresources: [x.yaml]\n"
            )
        );
    }

    #[test]
    fn an_existing_digest_is_replaced_in_place() {
        let text = format!(
            "images:\n- name: a\n  digest: {D}\n  newTag: \"1\"\n- name: b\n  digest: \"\"\n  newTag: x\n"
        );
        assert_eq!(
            pinned(&text),
            format!(
                "images:\n- name: a\n  digest: {N}\n  newTag: \"1\"\n- name: b\n  digest: \"{N}\"\n  newTag: x\n"
            )
        );
    }

    #[test]
    fn what_cannot_be_read_is_skipped_with_a_reason() {
        let text = "images:\n- name: a\n  newTag: ${TAG}\n- name: b\n  newTag: |\n    1\n\
                    - name: c\n  digest:\n  newTag: 1\n- name: Bad\n  newTag: 1\n- just-a-string\n\
                    - name: d\n  newTag: \"\"\n  digest: \"\"\n";
        let e = run(text);
        assert!(e.references.is_empty(), "{:?}", e.references);
        let reasons: Vec<_> = e
            .skipped
            .iter()
            .map(|s| (s.line, s.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert_eq!(reasons[0], (3, "uses variable substitution"));
        assert!(reasons[1].1.contains("block scalar"));
        assert_eq!(reasons[2], (8, "`digest:` has no value"));
        // An empty newTag and digest: the tag comes from the resources.
        assert_eq!(reasons[3].0, 13);
        assert!(reasons[3].1.contains("no newTag or digest"));
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].line, Some(11));
    }

    #[test]
    fn file_names_and_manifests() {
        for p in [
            "kustomization.yaml",
            "a/kustomization.yml",
            "b/Kustomization",
        ] {
            assert_eq!(
                crate::extract::kind_for_path(p),
                Some(Kind::Kustomize),
                "{p}"
            );
        }
        assert_eq!(crate::extract::kind_for_path("kustomization.json"), None);
        assert_eq!(
            crate::extract::kind_for_path("x/Kustomization.yaml"),
            Some(Kind::Kubernetes)
        );
        let text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                    images:\n- name: a\n  newTag: \"1\"\n";
        let e = extract_file("overlays/prod/kustomization.yaml", text.as_bytes()).unwrap();
        assert_eq!(e.references.len(), 1);
        assert_eq!(e.references[0].kind, Kind::Kustomize);
    }
}
