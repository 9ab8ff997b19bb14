//! Helm values files (`values.yaml`, `values-*.yaml`, `values.*.yaml`): images written as a
//! mapping under a key whose name ends in `image` (any case), the way the common charts
//! write them:
//!
//! - `helm create`: `image: {repository: nginx, pullPolicy: IfNotPresent, tag: ""}`;
//! - Bitnami: `image: {registry: docker.io, repository: bitnami/nginx, tag: 1.25.3, digest: ""}`;
//! - a plain string, `image: nginx:1.25`, when it names a registry, path, tag or digest.
//!
//! The reference is `registry/repository:tag` (`registry` only when set). Which keys a
//! chart's templates read cannot be known from the values, so pinning follows Renovate's
//! helm-values manager: the digest is appended to the tag (`tag: 1.25.3@sha256:…`), which
//! any template that prints `repository:tag` turns into a pinned reference. A non-empty
//! `digest:` is the chart's own digest and is the one replaced when it moves.

use std::ops::Range;

use saphyr_parser::ScalarStyle;

use super::yaml::{Collector, NodeId, Value, Yaml};
use super::{Context, Extraction, Piece, Source};

/// Values files sit less than 15 levels deep; the limit keeps the recursion off the
/// stack's edge on hostile, deeply nested input.
const MAX_DEPTH: usize = 64;

/// `values.yaml`, `values-prod.yaml`, `values.dev.yml`: the names charts and their users
/// give values files.
pub fn is_values_file(name: &str) -> bool {
    let Some(stem) = name
        .strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
    else {
        return false;
    };
    stem == "values" || stem.starts_with("values-") || stem.starts_with("values.")
}

/// Whether `text` may hold an image the way values files write one: cheap, run before
/// parsing every values-named file.
pub fn looks_like_values(text: &str) -> bool {
    text.contains("repository") || text.contains("mage")
}

pub fn extract(source: &Source<'_>) -> Extraction {
    let yaml = Yaml::parse(source.text);
    let mut out = Collector::new(source, &yaml);
    for &doc in yaml.documents() {
        walk(&yaml, &mut out, doc, &mut Vec::new(), 0);
    }
    out.finish()
}

fn is_image_key(key: &str) -> bool {
    key.len() >= 5
        && key
            .get(key.len() - 5..)
            .is_some_and(|end| end.eq_ignore_ascii_case("image"))
}

/// Searches `node` for image mappings and strings. Aliases are not followed: a cyclic or
/// exponential alias graph must not make the search explode.
fn walk(
    yaml: &Yaml<'_>,
    out: &mut Collector<'_, '_>,
    node: NodeId,
    path: &mut Vec<String>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match yaml.raw(node) {
        Some(Value::Mapping(entries)) => {
            for &(k, v) in entries {
                let Some(Value::Scalar(key, _)) = yaml.raw(k) else {
                    continue;
                };
                path.push(key.to_string());
                match yaml.raw(v) {
                    Some(Value::Mapping(_))
                        if is_image_key(key) && yaml.get(v, "repository").is_some() =>
                    {
                        image_mapping(yaml, out, v, &path.join("."));
                    }
                    Some(Value::Scalar(text, _)) if is_image_key(key) => {
                        if text.contains(['/', ':', '@']) && out.is_image_text(v) {
                            let context = Context {
                                location: Some(path.join(".")),
                                ..Context::default()
                            };
                            out.image(v, context, check);
                        } else if text.contains("{{") || text.contains('$') {
                            let at = yaml.start_of(v);
                            if let Err(reason) = check(text) {
                                out.skipped(at, text, reason);
                            }
                        }
                    }
                    _ => walk(yaml, out, v, path, depth + 1),
                }
                path.pop();
            }
        }
        Some(Value::Sequence(items)) => {
            for (i, &item) in items.iter().enumerate() {
                if let Some(last) = path.last_mut() {
                    last.push_str(&format!("[{i}]"));
                    walk(yaml, out, item, path, depth + 1);
                    if let Some(last) = path.last_mut() {
                        let cut = last.rfind('[').unwrap_or(last.len());
                        last.truncate(cut);
                    }
                } else {
                    path.push(format!("[{i}]"));
                    walk(yaml, out, item, path, depth + 1);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// Values are filled into templates as they are; one with template syntax or a variable
/// is not the image that runs.
fn check(value: &str) -> Result<Range<usize>, &'static str> {
    if value.contains("{{") {
        Err("uses template syntax ({{ … }})")
    } else if value.contains('$') {
        Err("uses variable substitution")
    } else {
        Ok(0..value.len())
    }
}

/// A key of an image mapping as a piece of the reference: `Ok(None)` when it is absent,
/// `Err(())` when it cannot be read (then skipped with the reason).
fn piece<'y>(
    yaml: &'y Yaml<'_>,
    out: &mut Collector<'_, '_>,
    map: NodeId,
    key: &str,
) -> Result<Option<(Piece<'y>, ScalarStyle)>, ()> {
    let Some(v) = yaml.get(map, key) else {
        return Ok(None);
    };
    match yaml.scalar_text(v) {
        Ok((at, text, style)) => match check(text) {
            Ok(_) => Ok(Some((Piece { at, text }, style))),
            Err(reason) => {
                out.skipped(at, text, reason);
                Err(())
            }
        },
        Err(reason) => {
            out.skipped(yaml.start_of(v), yaml.str(v).unwrap_or_default(), reason);
            Err(())
        }
    }
}

fn image_mapping(yaml: &Yaml<'_>, out: &mut Collector<'_, '_>, map: NodeId, location: &str) {
    let (Ok(registry), Ok(Some((repository, _))), Ok(tag), Ok(digest)) = (
        piece(yaml, out, map, "registry"),
        piece(yaml, out, map, "repository"),
        piece(yaml, out, map, "tag"),
        piece(yaml, out, map, "digest"),
    ) else {
        return;
    };
    if repository.text.is_empty() {
        return;
    }
    let context = Context {
        location: Some(location.to_string()),
        ..Context::default()
    };
    let null = |s: &(Piece<'_>, ScalarStyle)| {
        s.0.text.is_empty()
            || (s.1 == ScalarStyle::Plain && matches!(s.0.text, "~" | "null" | "Null" | "NULL"))
    };
    let digest = digest.filter(|d| !null(d)).map(|d| d.0);
    let tag = match tag {
        Some(t) if null(&t) => {
            if digest.is_none() {
                out.skipped(
                    t.0.at,
                    t.0.text,
                    "the tag is empty: the chart's templates use the chart's appVersion",
                );
                return;
            }
            None
        }
        Some((t, ScalarStyle::Plain))
            if t.text.parse::<f64>().is_ok() && !prints_as_written(t.text) =>
        {
            out.skipped(
                t.at,
                t.text,
                "the tag is written as a YAML number, which Helm may print differently \
                 (1.10 as 1.1); quote it to have it read",
            );
            return;
        }
        Some((t, _)) => Some(t),
        None if digest.is_none() => {
            out.skipped(
                repository.at,
                repository.text,
                "sets no tag: the chart's templates choose it (often the chart's appVersion)",
            );
            return;
        }
        None => None,
    };
    let registry = registry.filter(|r| !null(r)).map(|r| r.0.text);
    let holder = tag.unwrap_or(repository);
    match out
        .source()
        .composed(registry, repository, tag, digest, holder, context)
    {
        Ok(mut found) => {
            // Only the digest key's value is edited, never the tag, once there is one.
            if digest.is_none() && tag.is_none() {
                found.not_editable = Some("sets no tag to append a digest to".to_string());
            }
            out.found(found);
        }
        Err(e) => out.error(holder.at, e),
    }
}

/// Whether Helm prints the YAML number `text` as `text`. Helm reads a plain `16` or `1.5`
/// as a float64 and prints it in Go's shortest form: the same text only for numbers
/// written that way, below a million (`1.10` prints as 1.1, `1234567` as 1.234567e+06).
fn prints_as_written(text: &str) -> bool {
    let Ok(x) = text.parse::<f64>() else {
        return false;
    };
    x.is_finite() && (x == 0.0 || (1e-4..1e6).contains(&x.abs())) && format!("{x}") == text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::{apply, set_digest, verify};
    use crate::extract::{Kind, extract_file, kind_for_path};
    use crate::reference::Digest;

    const D: &str = "sha256:3bc801a33ea83df414e1aeb962a52412835be99db28668ec25de73fdd4733804";
    const N: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn run(text: &str) -> Extraction {
        extract(&Source::new("chart/values.yaml", text, Kind::Helm))
    }

    fn pinned(text: &str) -> String {
        let e = run(text);
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        verify(text.as_bytes(), &e.references.iter().collect::<Vec<_>>()).unwrap();
        let new: Digest = N.parse().unwrap();
        let changes: Vec<_> = e
            .references
            .iter()
            .filter_map(|f| set_digest(f, &new))
            .collect();
        String::from_utf8(apply(text.as_bytes(), &changes).unwrap()).unwrap()
    }

    #[test]
    fn the_forms_common_charts_write() {
        let text = format!(
            "image:\n  registry: docker.io\n  repository: bitnami/nginx\n  tag: 1.25.3-debian-12-r0\n  \
             digest: \"\"\n  pullPolicy: IfNotPresent\nmetrics:\n  image:\n    registry: docker.io\n    \
             repository: bitnami/nginx-exporter\n    tag: 1.1.0\n    digest: {D}\n\
             server:\n  sidecars:\n  - configReloaderImage:\n      repository: quay.io/prometheus-operator/prometheus-config-reloader\n      \
             tag: \"v0.79.2\"\nhelper:\n  image: busybox:1.36\n  other: {{image: nope}}\n"
        );
        let e = run(&text);
        assert!(e.errors.is_empty() && e.skipped.is_empty(), "{e:?}");
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
                    "docker.io/bitnami/nginx:1.25.3-debian-12-r0".to_string(),
                    4,
                    "1.25.3-debian-12-r0",
                    "image".to_string()
                ),
                (
                    format!("docker.io/bitnami/nginx-exporter:1.1.0@{D}"),
                    11,
                    "1.1.0",
                    "metrics.image".into()
                ),
                (
                    "quay.io/prometheus-operator/prometheus-config-reloader:v0.79.2".into(),
                    17,
                    "v0.79.2",
                    "server.sidecars[0].configReloaderImage".into()
                ),
                (
                    "docker.io/library/busybox:1.36".into(),
                    19,
                    "busybox:1.36",
                    "helper.image".into()
                ),
            ]
        );
        let exporter = &e.references[1];
        assert_eq!(&text[exporter.digest_span.clone().unwrap()], D);
        assert_eq!(&text[exporter.tag_span.clone().unwrap()], "1.1.0");
        assert_eq!(&text[exporter.name_span.clone()], "bitnami/nginx-exporter");
    }

    #[test]
    fn pinning_appends_to_the_tag_and_updating_replaces_the_digest() {
        let text = format!(
            "image:\r\n  registry: docker.io\r\n  repository: bitnami/nginx\r\n  tag: 1.25.3 # app\r\n  \
             digest: \"\"\r\nexporter:\r\n  image:\r\n    repository: x/y\r\n    tag: '1'\r\n    \
             digest: {D}\r\nold:\r\n  image: {{repository: a/b, tag: \"2@{D}\"}}\r\n"
        );
        assert_eq!(
            pinned(&text),
            format!(
                "image:\r\n  registry: docker.io\r\n  repository: bitnami/nginx\r\n  tag: 1.25.3@{N} # app\r\n  \
                 digest: \"\"\r\nexporter:\r\n  image:\r\n    repository: x/y\r\n    tag: '1'\r\n    \
                 digest: {N}\r\nold:\r\n  image: {{repository: a/b, tag: \"2@{N}\"}}\r\n"
            )
        );
    }

    #[test]
    fn tags_helm_fills_in_or_would_print_differently_are_skipped() {
        // `helm create`'s values: the empty tag means the chart's appVersion.
        let text = "image:\n  repository: nginx\n  pullPolicy: IfNotPresent\n  tag: \"\"\n\
                    a:\n  image:\n    repository: x\n    tag: 1.10\nb:\n  image:\n    repository: y\n\
                    c:\n  image:\n    repository: \"{{ .Values.r }}\"\n    tag: \"1\"\n\
                    d:\n  image: \"{{ .Values.image }}\"\n";
        let e = run(text);
        assert!(e.references.is_empty(), "{:?}", e.references);
        let got: Vec<_> = e.skipped.iter().map(|s| s.line).collect();
        assert_eq!(got, [4, 8, 11, 14, 17], "{:?}", e.skipped);
        assert!(e.skipped[0].reason.contains("appVersion"));
        assert!(e.skipped[1].reason.contains("YAML number"));
        // Numbers Helm prints as written are tags like any other.
        let e = run(
            "image:\n  repository: gesellix/couchdb-prometheus-exporter\n  tag: 16\n\
                     b:\n  image: {repository: x, tag: 1.5}\nc:\n  image: {repository: y, tag: 1234567}\n",
        );
        let tags: Vec<_> = e
            .references
            .iter()
            .map(|f| f.reference.tag.clone().unwrap())
            .collect();
        assert_eq!(tags, ["16", "1.5"]);
        assert_eq!(e.skipped.len(), 1);
        assert_eq!(e.skipped[0].line, 7);
    }

    #[test]
    fn values_files_by_name() {
        for p in [
            "values.yaml",
            "chart/values.yml",
            "c/values-prod.yaml",
            "values.dev.yaml",
        ] {
            assert_eq!(kind_for_path(p), Some(Kind::Helm), "{p}");
        }
        for p in ["myvalues.yaml", "values.json", "values_x.yaml"] {
            assert_ne!(kind_for_path(p), Some(Kind::Helm), "{p}");
        }
        // A values-named manifest is still read as a manifest.
        let m = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: a:1\n";
        let e = extract_file("values.yaml", m.as_bytes()).unwrap();
        assert_eq!(e.references[0].kind, Kind::Kubernetes);
        assert_eq!(extract_file("values.yaml", b"replicas: 1\n"), None);
        let e = extract_file("c/values.yaml", b"image:\n  repository: a\n  tag: \"1\"\n").unwrap();
        assert_eq!(e.references[0].kind, Kind::Helm);
    }
}
