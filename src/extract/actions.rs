//! GitHub Actions workflows (`.github/workflows/*.y*ml`, at the root or in a nested
//! repository's directory): job containers (`jobs.<id>.container`, as a string or a mapping
//! with `image`), service containers (`jobs.<id>.services.<name>.image`) and `docker://`
//! steps (`uses: docker://alpine:3.20`).
//!
//! A container or service image that is exactly `${{ matrix.KEY }}` comes from the job's
//! matrix: each value of `strategy.matrix.KEY` and each `strategy.matrix.include[*].KEY`
//! is a reference, edited where it is written.

use std::ops::Range;

use super::yaml::{Collector, NodeId, Yaml};
use super::{Context, Extraction, Source};

const DOCKER: &str = "docker://";

pub fn extract(source: &Source<'_>) -> Extraction {
    let yaml = Yaml::parse(source.text);
    let mut out = Collector::new(source, &yaml);
    for &doc in yaml.documents() {
        let Some(jobs) = yaml.get(doc, "jobs") else {
            continue;
        };
        for (id, job) in yaml.entries(jobs) {
            job_images(&yaml, &mut out, id, job);
        }
    }
    out.finish()
}

fn context(stage: &str, location: String) -> Context {
    Context {
        stage: Some(stage.to_string()),
        location: Some(location),
        ..Context::default()
    }
}

fn job_images(yaml: &Yaml<'_>, out: &mut Collector<'_, '_>, id: &str, job: NodeId) {
    if let Some(container) = yaml.get(job, "container") {
        // `container: node:20` is short for `container: {image: node:20}`.
        match yaml.get(container, "image") {
            Some(image) => {
                let at = format!("jobs.{id}.container.image");
                image_or_matrix(yaml, out, id, job, image, context(id, at));
            }
            None if yaml.str(container).is_some() => {
                let at = format!("jobs.{id}.container");
                image_or_matrix(yaml, out, id, job, container, context(id, at));
            }
            None => {}
        }
    }
    if let Some(services) = yaml.get(job, "services") {
        for (name, service) in yaml.entries(services) {
            if let Some(image) = yaml.get(service, "image") {
                let at = format!("jobs.{id}.services.{name}.image");
                image_or_matrix(yaml, out, id, job, image, context(name, at));
            }
        }
    }
    let steps = yaml.get(job, "steps").and_then(|s| yaml.sequence(s));
    for (i, &step) in steps.unwrap_or_default().iter().enumerate() {
        let Some(uses) = yaml.get(step, "uses") else {
            continue;
        };
        if yaml.str(uses).is_some_and(|u| u.starts_with(DOCKER)) {
            let at = format!("jobs.{id}.steps[{i}].uses");
            out.image(uses, context(id, at), |v| {
                check(v).map(|_| DOCKER.len().min(v.len())..v.len())
            });
        }
    }
}

/// Reports the image at `node`, or, when it is `${{ matrix.KEY }}` (or
/// `${{ matrix.KEY.FIELD }}`), the values the job's matrix gives it. A matrix that is
/// itself an expression (`fromJSON(…)`) cannot be read, so the image is skipped with the
/// expression as the reason.
fn image_or_matrix(
    yaml: &Yaml<'_>,
    out: &mut Collector<'_, '_>,
    id: &str,
    job: NodeId,
    node: NodeId,
    context: Context,
) {
    let path = yaml.str(node).and_then(matrix_path);
    let matrix = yaml
        .get(job, "strategy")
        .and_then(|s| yaml.get(s, "matrix"));
    let (Some((key, fields)), Some(matrix)) = (path, matrix) else {
        out.image(node, context, check);
        return;
    };
    // `FIELD`s below a matrix value: `matrix.build.container` is `container` of each `build`.
    let descend = |mut at: NodeId, location: &mut String| {
        for field in &fields {
            at = yaml.get(at, field)?;
            location.push('.');
            location.push_str(field);
        }
        Some(at)
    };
    let mut values = Vec::new();
    if let Some(items) = yaml.get(matrix, key).and_then(|v| yaml.sequence(v)) {
        for (i, &item) in items.iter().enumerate() {
            let mut location = format!("jobs.{id}.strategy.matrix.{key}[{i}]");
            if let Some(value) = descend(item, &mut location) {
                values.push((value, location));
            }
        }
    }
    if let Some(include) = yaml.get(matrix, "include").and_then(|v| yaml.sequence(v)) {
        for (i, &entry) in include.iter().enumerate() {
            let mut location = format!("jobs.{id}.strategy.matrix.include[{i}].{key}");
            if let Some(value) = yaml.get(entry, key).and_then(|v| descend(v, &mut location)) {
                values.push((value, location));
            }
        }
    }
    if values.is_empty() {
        out.image(node, context, check);
        return;
    }
    for (item, location) in values {
        let context = Context {
            location: Some(location),
            ..context.clone()
        };
        out.image(item, context, check);
    }
}

/// `KEY` and the `FIELD`s after it of a value that is exactly `${{ matrix.KEY.FIELD… }}`.
fn matrix_path(value: &str) -> Option<(&str, Vec<&str>)> {
    let inner = value.strip_prefix("${{")?.strip_suffix("}}")?.trim();
    let mut parts = inner.strip_prefix("matrix.")?.split('.');
    let word = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let key = parts.next().filter(|k| word(k))?;
    let fields: Vec<&str> = parts.collect();
    fields.iter().all(|f| word(f)).then_some((key, fields))
}

/// `${{ matrix.image }}` is evaluated by the runner; the text is not the image that runs.
fn check(value: &str) -> Result<Range<usize>, &'static str> {
    if value.contains("${{") {
        Err("uses a GitHub Actions expression (${{ … }})")
    } else {
        Ok(0..value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Kind;

    fn run(text: &str) -> Extraction {
        extract(&Source::new(
            ".github/workflows/ci.yml",
            text,
            Kind::Actions,
        ))
    }

    /// (span text, line, stage, location) of each reference.
    fn refs(text: &str) -> Vec<(String, usize, String, String)> {
        let out = run(text);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
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

    fn r(text: &str, line: usize, stage: &str, location: &str) -> (String, usize, String, String) {
        (text.into(), line, stage.into(), location.into())
    }

    const D: &str = "sha256:410f11685175c31403c3f94bb33bd9e64707c16bb8a740fe62a4348cdecf2828";

    #[test]
    fn containers_services_and_docker_steps() {
        let text = format!(
            "name: ci\non: [push, pull_request]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    \
             container: rust:1.82-bookworm\n    services:\n      postgres:\n        \
             image: postgres:16@{D}\n        env:\n          POSTGRES_PASSWORD: postgres\n      \
             redis:\n        image: redis\n    steps:\n      - uses: actions/checkout@v4\n      \
             - run: cargo test\n  lint:\n    runs-on: ubuntu-latest\n    container:\n      \
             image: ghcr.io/hadolint/hadolint:v2.12.0-debian\n      options: --user root\n    \
             steps:\n      - uses: actions/checkout@v4\n      \
             - uses: docker://ghcr.io/rhysd/actionlint:1.7.3\n      - run: hadolint Dockerfile\n"
        );
        assert_eq!(
            refs(&text),
            [
                r("rust:1.82-bookworm", 6, "test", "jobs.test.container"),
                r(
                    &format!("postgres:16@{D}"),
                    9,
                    "postgres",
                    "jobs.test.services.postgres.image"
                ),
                r("redis", 13, "redis", "jobs.test.services.redis.image"),
                r(
                    "ghcr.io/hadolint/hadolint:v2.12.0-debian",
                    20,
                    "lint",
                    "jobs.lint.container.image"
                ),
                r(
                    "ghcr.io/rhysd/actionlint:1.7.3",
                    24,
                    "lint",
                    "jobs.lint.steps[1].uses"
                ),
            ]
        );
    }

    #[test]
    fn docker_step_span_starts_after_the_prefix() {
        let text = "jobs:\n  a:\n    steps:\n      - name: lint\n        uses: 'docker://alpine:3.20' # é\n";
        let out = run(text);
        let f = &out.references[0];
        assert_eq!(&text[f.span.clone()], "alpine:3.20");
        assert_eq!(&text[f.name_span.clone()], "alpine");
        assert_eq!(&text[f.tag_span.clone().unwrap()], "3.20");
        assert_eq!(f.line, 5);
        assert_eq!(f.context.location.as_deref(), Some("jobs.a.steps[0].uses"));
    }

    #[test]
    fn expressions_are_skipped_with_a_reason() {
        let text = "jobs:\n  a:\n    container: ${{ matrix.image }}\n    services:\n      db:\n        \
                    image: \"postgres:${{ matrix.pg }}\"\n    steps:\n      \
                    - uses: docker://${{ inputs.image }}\n";
        let out = run(text);
        assert!(out.references.is_empty());
        assert!(out.errors.is_empty());
        let got: Vec<_> = out
            .skipped
            .iter()
            .map(|s| (s.line, s.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (3, "${{ matrix.image }}"),
                (6, "postgres:${{ matrix.pg }}"),
                (8, "docker://${{ inputs.image }}"),
            ]
        );
        assert!(out.skipped.iter().all(|s| s.reason.contains("expression")));
    }

    #[test]
    fn crlf_quoted_and_non_ascii() {
        let text = "# Überprüfung ✅\r\njobs:\r\n  t:\r\n    container: \"node:20\"   # Knoten\r\n    \
                    steps:\r\n      - run: echo ü\r\n      - uses: docker://alpine:3.20\r\n";
        assert_eq!(
            refs(text),
            [
                r("node:20", 4, "t", "jobs.t.container"),
                r("alpine:3.20", 7, "t", "jobs.t.steps[1].uses"),
            ]
        );
    }

    #[test]
    fn actions_reusable_workflows_and_other_keys_are_not_images() {
        let text = "on: push\nenv:\n  image: x:1\njobs:\n  a:\n    uses: ./.github/workflows/x.yml\n  \
                    b:\n    steps:\n      - uses: actions/setup-node@v4\n        with:\n          \
                    image: y:1\n      - uses: docker/build-push-action@v6\n";
        assert_eq!(run(text), Extraction::default());
    }

    #[test]
    fn flow_style_steps_and_mapping_container_in_one_line() {
        let text = "jobs:\n  a:\n    container: {image: 'node:20', options: --cpus 1}\n    \
                    steps: [{uses: docker://alpine:3.20}]\n";
        assert_eq!(
            refs(text),
            [
                r("node:20", 3, "a", "jobs.a.container.image"),
                r("alpine:3.20", 4, "a", "jobs.a.steps[0].uses"),
            ]
        );
    }

    #[test]
    fn images_from_the_job_matrix_are_edited_at_the_matrix_value() {
        let text = format!(
            "jobs:\n  test:\n    strategy:\n      matrix:\n        \
             image: [alpine:3.20@{D}, \"debian:12\"]\n        db: [postgres:16]\n        \
             include:\n          - image: fedora:41\n            db: postgres:17\n          \
             - other: x\n        exclude:\n          - image: debian:12\n    \
             container: ${{{{ matrix.image }}}}\n    services:\n      db:\n        \
             image: \"${{{{matrix.db}}}}\"\n"
        );
        assert_eq!(
            refs(&text),
            [
                r(
                    &format!("alpine:3.20@{D}"),
                    5,
                    "test",
                    "jobs.test.strategy.matrix.image[0]"
                ),
                r("debian:12", 5, "test", "jobs.test.strategy.matrix.image[1]"),
                r("postgres:16", 6, "db", "jobs.test.strategy.matrix.db[0]"),
                r(
                    "fedora:41",
                    8,
                    "test",
                    "jobs.test.strategy.matrix.include[0].image"
                ),
                r(
                    "postgres:17",
                    9,
                    "db",
                    "jobs.test.strategy.matrix.include[0].db"
                ),
            ]
        );
    }

    #[test]
    fn fields_of_matrix_values() {
        // As curl's linux.yml writes it: `image` there is the runner, not a container.
        let text = format!(
            "jobs:\n  linux:\n    runs-on: ${{{{ matrix.build.image || 'ubuntu-latest' }}}}\n    \
             container: ${{{{ matrix.build.container }}}}\n    strategy:\n      matrix:\n        \
             build:\n          - name: 'a'\n            image: ubuntu-24.04-arm\n          \
             - name: 'b'\n            container: alpine:3.23@{D} # 3.23.4\n        \
             include:\n          - build: {{name: c, container: 'debian:12'}}\n"
        );
        assert_eq!(
            refs(&text),
            [
                r(
                    &format!("alpine:3.23@{D}"),
                    11,
                    "linux",
                    "jobs.linux.strategy.matrix.build[1].container"
                ),
                r(
                    "debian:12",
                    13,
                    "linux",
                    "jobs.linux.strategy.matrix.include[0].build.container"
                ),
            ]
        );
    }

    #[test]
    fn matrices_that_cannot_be_read_are_skipped() {
        let text = "jobs:\n  a:\n    strategy:\n      matrix: ${{ fromJSON(inputs.m) }}\n    \
                    container: ${{ matrix.image }}\n  b:\n    strategy:\n      matrix:\n        \
                    os: [ubuntu-latest]\n    container: ${{ matrix.image }}\n  c:\n    \
                    strategy:\n      matrix:\n        v: ['1']\n    container: node:${{ matrix.v }}\n";
        let out = run(text);
        assert!(out.references.is_empty());
        let lines: Vec<_> = out.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [5, 10, 15]);
    }

    #[test]
    fn invalid_and_malformed() {
        let out = run("jobs:\n  a:\n    container: Node:20\n");
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].line, Some(3));
        let out = run("jobs:\n  a:\n    container: node:20\n  b: [\n");
        assert!(out.references.is_empty());
        assert_eq!(out.errors.len(), 1);
        assert!(out.errors[0].message.starts_with("invalid YAML"));
    }
}
