//! Kubernetes manifests: the `image` of every container, init container and ephemeral
//! container, wherever a pod spec sits (Deployments, CronJobs, Lists, CRDs that embed pod
//! specs). Rather than knowing every kind, we search each object for `containers`,
//! `initContainers` and `ephemeralContainers` sequences of mappings.

use std::ops::Range;

use super::yaml::{Collector, NodeId, Value, Yaml};
use super::{Context, Extraction, Source};

const CONTAINER_KEYS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Pod specs sit less than 15 levels deep; the limit keeps the recursion off the stack's
/// edge on hostile, deeply nested input.
const MAX_DEPTH: usize = 64;

pub fn extract(source: &Source<'_>) -> Extraction {
    let yaml = Yaml::parse(source.text);
    let mut out = Collector::new(source, &yaml);
    for &doc in yaml.documents() {
        // Only objects count: a values file or a fragment in the same stream is not a manifest.
        if let Some(object) = object_label(&yaml, doc) {
            walk(&yaml, &mut out, doc, &object, &mut Vec::new(), 0);
        }
    }
    out.finish()
}

/// Whether some document of `text` has top-level `apiVersion` and `kind` keys.
///
/// This runs on every YAML file of a repository, so it looks at lines rather than parsing:
/// a key at column 0 is a top-level key of a block mapping. Flow-style (JSON) documents are
/// not recognised.
pub fn looks_like_manifest(text: &str) -> bool {
    let (mut api_version, mut kind) = (false, false);
    for line in text.split('\n') {
        let b = line.as_bytes();
        if b.starts_with(b"---") && b.get(3).is_none_or(|c| matches!(c, b' ' | b'\t' | b'\r')) {
            (api_version, kind) = (false, false);
            continue;
        }
        api_version |= top_level_key(line, "apiVersion");
        kind |= top_level_key(line, "kind");
        if api_version && kind {
            return true;
        }
    }
    false
}

/// `key:` (or `"key":`, `'key':`) at the start of `line`, followed by a blank or the end.
fn top_level_key(line: &str, key: &str) -> bool {
    let unquoted = |q: char| {
        line.strip_prefix(q)
            .and_then(|r| r.strip_prefix(key))
            .and_then(|r| r.strip_prefix(q))
    };
    let Some(rest) = line
        .strip_prefix(key)
        .or_else(|| unquoted('"'))
        .or_else(|| unquoted('\''))
    else {
        return false;
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    rest.strip_prefix(':')
        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t', '\r']))
}

/// `Kind/name` for a mapping that is a Kubernetes object (has `apiVersion` and `kind`).
fn object_label(yaml: &Yaml<'_>, node: NodeId) -> Option<String> {
    yaml.get(node, "apiVersion")?;
    let kind = yaml.str(yaml.get(node, "kind")?)?;
    let name = yaml
        .get(node, "metadata")
        .and_then(|m| yaml.get(m, "name"))
        .and_then(|n| yaml.str(n));
    Some(match name {
        Some(name) => format!("{kind}/{name}"),
        None => kind.to_string(),
    })
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.template.spec.containers[0].image`
fn render(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Searches `node` (inside `object`, at `path` from it) for container lists. Aliases are not
/// followed here: a cyclic or exponential alias graph must not make the search explode.
fn walk<'y>(
    yaml: &'y Yaml<'_>,
    out: &mut Collector<'_, '_>,
    node: NodeId,
    object: &str,
    path: &mut Vec<Step<'y>>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match yaml.raw(node) {
        Some(Value::Mapping(entries)) => {
            // An object inside an object (the items of a `kind: List`) names its own images.
            if depth > 0
                && let Some(inner) = object_label(yaml, node)
            {
                walk_entries(yaml, out, entries, &inner, &mut Vec::new(), depth);
                return;
            }
            walk_entries(yaml, out, entries, object, path, depth);
        }
        Some(Value::Sequence(items)) => {
            for (i, &item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                walk(yaml, out, item, object, path, depth + 1);
                path.pop();
            }
        }
        _ => {}
    }
}

fn walk_entries<'y>(
    yaml: &'y Yaml<'_>,
    out: &mut Collector<'_, '_>,
    entries: &'y [(NodeId, NodeId)],
    object: &str,
    path: &mut Vec<Step<'y>>,
    depth: usize,
) {
    for &(k, v) in entries {
        let Some(Value::Scalar(key, _)) = yaml.raw(k) else {
            continue;
        };
        path.push(Step::Key(key));
        match yaml.sequence(v) {
            Some(items) if CONTAINER_KEYS.contains(&key.as_ref()) => {
                containers(yaml, out, items, object, path);
            }
            _ if key == "image" && yaml.str(v).is_some() => {
                other_image(yaml, out, entries, v, object, path);
            }
            _ => walk(yaml, out, v, object, path, depth + 1),
        }
        path.pop();
    }
}

fn containers<'y>(
    yaml: &'y Yaml<'_>,
    out: &mut Collector<'_, '_>,
    items: &[NodeId],
    object: &str,
    path: &mut Vec<Step<'y>>,
) {
    for (i, &item) in items.iter().enumerate() {
        let Some(image) = yaml.get(item, "image") else {
            continue;
        };
        path.push(Step::Index(i));
        path.push(Step::Key("image"));
        let context = Context {
            stage: yaml
                .get(item, "name")
                .and_then(|n| yaml.str(n))
                .map(str::to_string),
            location: Some(format!("{object} {}", render(path))),
            ..Context::default()
        };
        path.truncate(path.len() - 2);
        out.image(image, context, check);
    }
}

/// Keys next to an `image` that say the mapping describes a container (a Tekton step, an
/// Argo template's `container` or `script`, a Knative or operator-specific container).
const CONTAINER_LIKE: [&str; 12] = [
    "name",
    "command",
    "args",
    "script",
    "source",
    "env",
    "workingDir",
    "imagePullPolicy",
    "resources",
    "securityContext",
    "volumeMounts",
    "ports",
];

/// An `image` key outside a container list (custom resources: Argo Workflows, Prometheus
/// Operator's `spec.image`, Tekton steps, …). Only a string that parses as an image
/// reference counts, and only when it names a registry, a repository path, a tag or a
/// digest, or sits beside keys that describe a container: `image: default` alone is not
/// evidence of an image.
fn other_image<'y>(
    yaml: &'y Yaml<'_>,
    out: &mut Collector<'_, '_>,
    siblings: &[(NodeId, NodeId)],
    value: NodeId,
    object: &str,
    path: &[Step<'y>],
) {
    let Some(text) = yaml.str(value) else {
        return;
    };
    let context = || Context {
        stage: siblings
            .iter()
            .find(|&&(k, _)| yaml.str(k) == Some("name"))
            .and_then(|&(_, n)| yaml.str(n))
            .map(str::to_string),
        location: Some(format!("{object} {}", render(path))),
        ..Context::default()
    };
    if check(text).is_err() {
        out.image(value, context(), check);
        return;
    }
    let container_like = siblings
        .iter()
        .any(|&(k, _)| yaml.str(k).is_some_and(|k| CONTAINER_LIKE.contains(&k)));
    if (text.contains(['/', ':', '@']) || container_like) && out.is_image_text(value) {
        out.image(value, context(), check);
    }
}

/// Helm/Go templates (`{{ .Values.image }}`) and Flux/envsubst variables (`${TAG}`) are
/// filled in at deploy time; the text in the file is not the image that runs.
fn check(value: &str) -> Result<Range<usize>, &'static str> {
    if value.contains("{{") {
        Err("uses template syntax ({{ … }})")
    } else if value.contains('$') {
        Err("uses variable substitution")
    } else {
        Ok(0..value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Kind;

    fn run(text: &str) -> Extraction {
        extract(&Source::new("deploy.yaml", text, Kind::Kubernetes))
    }

    /// (span text, line, container name, location) of each reference.
    fn refs(text: &str) -> Vec<(String, usize, String, String)> {
        let out = run(text);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        out.references
            .iter()
            .map(|f| {
                assert_eq!(&text[f.span.clone()], f.text);
                (
                    text[f.span.clone()].to_string(),
                    f.line,
                    f.context.stage.clone().unwrap_or_default(),
                    f.context.location.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    fn r(text: &str, line: usize, name: &str, location: &str) -> (String, usize, String, String) {
        (text.into(), line, name.into(), location.into())
    }

    const D: &str = "sha256:3bc801a33ea83df414e1aeb962a52412835be99db28668ec25de73fdd4733804";

    #[test]
    fn helm_rendered_multi_document_stream() {
        let text = format!(
            "---\n# Source: shop/templates/service.yaml\napiVersion: v1\nkind: Service\n\
             metadata:\n  name: shop\nspec:\n  ports:\n    - port: 80\n\
             ---\n# Source: shop/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n\
             metadata:\n  name: shop\nspec:\n  template:\n    spec:\n      initContainers:\n        \
             - name: migrate\n          image: \"ghcr.io/acme/shop-migrate:1.4.2@{D}\"\n      \
             containers:\n        - name: shop\n          image: \"ghcr.io/acme/shop:1.4.2\"\n          \
             imagePullPolicy: IfNotPresent\n        - name: sidecar\n          \
             image: envoyproxy/envoy:v1.31.2 # proxy\n\
             ---\n# Source: shop/templates/empty.yaml\n---\napiVersion: apps/v1\nkind: StatefulSet\n\
             metadata:\n  name: cache\nspec:\n  template:\n    spec:\n      containers:\n        \
             - image: memcached:1.6.31\n          name: memcached\n"
        );
        let spec = "spec.template.spec";
        assert_eq!(
            refs(&text),
            [
                r(
                    &format!("ghcr.io/acme/shop-migrate:1.4.2@{D}"),
                    21,
                    "migrate",
                    &format!("Deployment/shop {spec}.initContainers[0].image")
                ),
                r(
                    "ghcr.io/acme/shop:1.4.2",
                    24,
                    "shop",
                    &format!("Deployment/shop {spec}.containers[0].image")
                ),
                r(
                    "envoyproxy/envoy:v1.31.2",
                    27,
                    "sidecar",
                    &format!("Deployment/shop {spec}.containers[1].image")
                ),
                r(
                    "memcached:1.6.31",
                    39,
                    "memcached",
                    &format!("StatefulSet/cache {spec}.containers[0].image")
                ),
            ]
        );
    }

    #[test]
    fn cronjob_pod_spec_is_found_at_depth() {
        let text = "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: report\nspec:\n  \
                    schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        \
                    spec:\n          containers:\n            - name: report\n              \
                    image: quay.io/acme/report:2\n          restartPolicy: OnFailure\n";
        assert_eq!(
            refs(text),
            [r(
                "quay.io/acme/report:2",
                13,
                "report",
                "CronJob/report spec.jobTemplate.spec.template.spec.containers[0].image"
            )]
        );
    }

    #[test]
    fn pods_ephemeral_containers_and_crds() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    \
                    image: a:1\n  ephemeralContainers:\n  - name: debug\n    image: 'busybox:1.36'\n\
                    ---\napiVersion: example.com/v1\nkind: Workflow\nmetadata:\n  name: wf\nspec:\n  \
                    steps:\n  - pod:\n      spec:\n        containers:\n        - image: c:3\n";
        assert_eq!(
            refs(text),
            [
                r("a:1", 8, "a", "Pod/p spec.containers[0].image"),
                r(
                    "busybox:1.36",
                    11,
                    "debug",
                    "Pod/p spec.ephemeralContainers[0].image"
                ),
                r(
                    "c:3",
                    22,
                    "",
                    "Workflow/wf spec.steps[0].pod.spec.containers[0].image"
                ),
            ]
        );
    }

    #[test]
    fn list_items_are_their_own_objects() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  \
                    metadata: {name: web}\n  spec:\n    template:\n      spec:\n        containers:\n        \
                    - {name: web, image: \"nginx:1.25\"}\n";
        assert_eq!(
            refs(text),
            [r(
                "nginx:1.25",
                11,
                "web",
                "Deployment/web spec.template.spec.containers[0].image"
            )]
        );
    }

    #[test]
    fn crlf_and_non_ascii_comment_before_the_image() {
        let text = "apiVersion: v1\r\nkind: Pod\r\nmetadata:\r\n  name: p # pöd ünïcode ☸\r\nspec:\r\n  \
                    containers:\r\n    # Läuft überall 🚀\r\n    - name: a\r\n      image: nginx:1.25 # é\r\n";
        assert_eq!(
            refs(text),
            [r("nginx:1.25", 9, "a", "Pod/p spec.containers[0].image")]
        );
    }

    #[test]
    fn templates_are_skipped_and_do_not_hide_other_documents() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  \
                    - name: a\n    image: {{ .Values.image }}\n  - name: b\n    \
                    image: \"{{ .Values.repo }}:{{ .Values.tag }}\"\n  - name: c\n    image: app:${TAG}\n\
                    ---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\nspec:\n  containers:\n  \
                    {{- range .Values.containers }}\n  - image: {{ .image }}\n  {{- end }}\n\
                    ---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: c\nspec:\n  containers:\n  \
                    - image: ok:1\n";
        let out = run(text);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.references.len(), 1);
        assert_eq!(&text[out.references[0].span.clone()], "ok:1");
        let got: Vec<_> = out
            .skipped
            .iter()
            .map(|s| (s.line, s.reason.as_str()))
            .collect();
        assert_eq!(got[0], (8, "uses template syntax ({{ … }})"));
        assert_eq!(got[1], (10, "uses template syntax ({{ … }})"));
        assert_eq!(got[2], (12, "uses variable substitution"));
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got[3].1.contains("unrendered template"), "{got:?}");
        assert!((13..=21).contains(&got[3].0));
        // The broken document's `image:` line is still listed, with the parse error.
        assert_eq!(got[4].0, 21);
        assert!(
            got[4]
                .1
                .starts_with("not read: the YAML around it is invalid")
        );
        assert_eq!(out.skipped[4].text, "{{ .image }}");
        assert_eq!(out.skipped[0].text, "{{ .Values.image }}");
    }

    #[test]
    fn a_malformed_document_is_one_error_and_the_others_still_count() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: a:1\n---\n\
                    apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: [b:2\n---\n\
                    apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: c:3\n";
        let out = run(text);
        let texts: Vec<_> = out.references.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(texts, ["a:1", "c:3"]);
        assert_eq!(out.errors.len(), 1);
        let line = out.errors[0].line.unwrap();
        assert!((7..=12).contains(&line), "{:?}", out.errors);
    }

    #[test]
    fn documents_that_are_not_objects_are_ignored() {
        let text = "image: x:1\ncontainers:\n- image: y:1\n---\napiVersion: v1\nkind: ConfigMap\n\
                    data:\n  containers: |\n    - image: w:1\n---\n# just a comment\n---\n";
        assert_eq!(run(text), Extraction::default());
    }

    #[test]
    fn image_keys_of_custom_resources() {
        // Argo Workflows (container, script), Prometheus Operator, Tekton.
        let text = format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: hello-\n\
             spec:\n  templates:\n  - name: whalesay\n    container:\n      image: docker/whalesay:latest\n      \
             command: [cowsay]\n  - name: gen\n    script:\n      image: python:alpine3.6\n      \
             command: [python]\n      source: |\n        image: not-this:1\n\
             ---\napiVersion: monitoring.coreos.com/v1\nkind: Prometheus\nmetadata:\n  name: k8s\n\
             spec:\n  image: \"quay.io/prometheus/prometheus:v2.54.1@{D}\"\n  version: 2.54.1\n\
             ---\napiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: t\nspec:\n  steps:\n    \
             - name: build\n      image: golang\n      script: go build\n"
        );
        assert_eq!(
            refs(&text),
            [
                r(
                    "docker/whalesay:latest",
                    9,
                    "",
                    "Workflow spec.templates[0].container.image"
                ),
                r(
                    "python:alpine3.6",
                    13,
                    "",
                    "Workflow spec.templates[1].script.image"
                ),
                r(
                    &format!("quay.io/prometheus/prometheus:v2.54.1@{D}"),
                    23,
                    "",
                    "Prometheus/k8s spec.image"
                ),
                r("golang", 33, "build", "Task/t spec.steps[0].image"),
            ]
        );
    }

    #[test]
    fn image_keys_that_are_not_image_references_are_ignored() {
        // Schemas (mappings), booleans, numbers, bare words without container keys, text
        // that does not parse, values written with escapes: none is a reference.
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
                    metadata:\n  name: x\nspec:\n  versions:\n  - schema:\n      openAPIV3Schema:\n        \
                    properties:\n          image:\n            type: string\n\
                    ---\napiVersion: example.com/v1\nkind: Thing\nmetadata:\n  name: y\nspec:\n  \
                    a:\n    image: true\n  b:\n    image: 12\n  c:\n    image: default\n  \
                    d:\n    image: Not An Image\n  e:\n    image: \"x\\u0041:1\"\n  f:\n    image: ~\n";
        assert_eq!(run(text), Extraction::default());
    }

    #[test]
    fn image_keys_with_templates_are_skipped() {
        let text =
            "apiVersion: example.com/v1\nkind: Thing\nspec:\n  image: \"{{ .Values.img }}\"\n";
        let out = run(text);
        assert!(out.references.is_empty());
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.skipped[0].line, 4);
    }

    #[test]
    fn invalid_image_text_is_an_error_with_its_line() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: Nginx:1\n";
        let out = run(text);
        assert!(out.references.is_empty());
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].line, Some(5));
    }

    #[test]
    fn anchors_in_containers_are_reported_once() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  initContainers:\n  - &c\n    name: c\n    \
                    image: x:1\n  containers:\n  - *c\n  - name: d\n    image: &i y:2\n  \
                    - name: e\n    image: *i\n";
        let texts: Vec<_> = refs(text).into_iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(texts, [("x:1".into(), 7), ("y:2".into(), 11)]);
    }

    #[test]
    fn files_are_read_as_manifests_by_content() {
        let bytes = "\u{feff}apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: a:1\n";
        let out = crate::extract::extract_file("k8s/pod.yaml", bytes.as_bytes()).unwrap();
        let f = &out.references[0];
        assert_eq!(&bytes.as_bytes()[f.span.clone()], b"a:1");
        assert_eq!(f.kind, Kind::Kubernetes);
        assert_eq!(
            f.context.location.as_deref(),
            Some("Pod spec.containers[0].image")
        );
        // Values files have an extractor of their own (helm.rs).
        let values = "image:\n  repository: nginx\ncontainers:\n- image: a:1\n";
        assert_eq!(
            crate::extract::extract_file("chart/settings.yaml", values.as_bytes()),
            None
        );
    }

    #[test]
    fn manifest_detection_is_per_document_and_top_level() {
        assert!(looks_like_manifest("apiVersion: v1\nkind: Pod\n"));
        assert!(looks_like_manifest(
            "# c\nkind: Pod\r\nmetadata: {}\r\napiVersion: v1\r\n"
        ));
        assert!(looks_like_manifest(
            "a: 1\n---\n\"apiVersion\": v1\n'kind' : Pod\n"
        ));
        assert!(looks_like_manifest("apiVersion: v1\nkind:\n  x"));
        assert!(!looks_like_manifest("apiVersion: v1\n---\nkind: Pod\n"));
        assert!(!looks_like_manifest(
            "spec:\n  apiVersion: v1\n  kind: Pod\n"
        ));
        assert!(!looks_like_manifest("apiVersions: v1\nkinds: Pod\n"));
        assert!(!looks_like_manifest("apiVersion: v1\nkind:Pod\n"));
        assert!(!looks_like_manifest(""));
    }
}
