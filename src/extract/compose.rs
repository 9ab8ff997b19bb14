//! Compose files (`compose.y*ml`, `docker-compose*.y*ml`): `services.<name>.image`, and in
//! the legacy version-1 format (no `services:` key) `<name>.image` at the top level.
//!
//! Merge keys (`<<: *defaults`) are followed, since compose files commonly share settings
//! that way. `image: ${IMAGE:-nginx:1.27}` (or `${IMAGE-nginx:1.27}`) runs the default
//! unless the variable is set, so the default is the reference, edited in place.
//!
//! A service with `build:` builds its image and tags it with `image:`. Compose pulls that
//! name first (unless `pull_policy: build`), so it is a reference only when it can be
//! pulled: a registry-qualified name (`ghcr.io/acme/app:1.2`) with an explicit tag or
//! digest. A bare name (`myapp`, `sentry-self-hosted-local`) is the local build's name.

use std::ops::Range;

use super::yaml::{Collector, NodeId, Yaml};
use super::{Context, Extraction, Source};

/// Top-level keys of the Compose specification that are never services.
const TOP_LEVEL: [&str; 9] = [
    "version", "name", "services", "networks", "volumes", "configs", "secrets", "include", "models",
];

pub fn extract(source: &Source<'_>) -> Extraction {
    let yaml = Yaml::parse(source.text);
    let mut out = Collector::new(source, &yaml);
    for &doc in yaml.documents() {
        match yaml.get(doc, "services") {
            Some(services) => {
                for (name, service) in yaml.entries(services) {
                    service_image(&yaml, &mut out, name, service, "services.");
                }
            }
            None => {
                // Version 1: every top-level mapping with `image` or `build` is a service.
                for (name, service) in yaml.entries(doc) {
                    if TOP_LEVEL.contains(&name) || name.starts_with("x-") {
                        continue;
                    }
                    if yaml.get(service, "image").is_some() || yaml.get(service, "build").is_some()
                    {
                        service_image(&yaml, &mut out, name, service, "");
                    }
                }
            }
        }
    }
    out.finish()
}

fn service_image(
    yaml: &Yaml<'_>,
    out: &mut Collector<'_, '_>,
    name: &str,
    service: NodeId,
    prefix: &str,
) {
    let Some(image) = yaml.get(service, "image") else {
        return;
    };
    let context = Context {
        stage: Some(name.to_string()),
        location: Some(format!("{prefix}{name}.image")),
        ..Context::default()
    };
    let builds = yaml.get(service, "build").is_some();
    let pull_policy = yaml.get(service, "pull_policy").and_then(|p| yaml.str(p));
    if builds && pull_policy == Some("build") {
        out.image(image, context, |_| {
            Err("names the image this service builds (`pull_policy: build`)")
        });
    } else if builds {
        out.image(image, context, built);
    } else {
        out.image(image, context, check);
    }
}

/// Compose substitutes `$VAR`, `${VAR}`, `${VAR:-default}` (and `$$` for a literal `$`,
/// which no image name contains), so such text is not the image that runs, except for
/// a whole value `${VAR:-default}` / `${VAR-default}`, whose default is.
fn check(value: &str) -> Result<Range<usize>, &'static str> {
    if value.contains("{{") {
        return Err("uses template syntax ({{ … }})");
    }
    if !value.contains('$') {
        return Ok(0..value.len());
    }
    default_of(value).ok_or("uses variable interpolation")
}

/// The span of `default` in a value that is exactly `${NAME:-default}` or `${NAME-default}`
/// (a default without further variables).
fn default_of(value: &str) -> Option<Range<usize>> {
    let inner = value.strip_prefix("${")?.strip_suffix('}')?;
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|&n| n > 0)?;
    let rest = &inner[name_len..];
    let operator = if rest.starts_with(":-") {
        2
    } else if rest.starts_with('-') {
        1
    } else {
        return None;
    };
    let default = &rest[operator..];
    if default.is_empty() || default.contains(['$', '{', '}']) {
        return None;
    }
    let start = 2 + name_len + operator;
    Some(start..start + default.len())
}

/// The `image:` of a service that also builds: a reference only when it can be pulled.
fn built(value: &str) -> Result<Range<usize>, &'static str> {
    let part = check(value)?;
    let text = value.get(part.clone()).unwrap_or_default();
    let first = text.split('/').next().unwrap_or_default();
    let qualified = text.contains('/') && (first.contains(['.', ':']) || first == "localhost");
    let last = text.rsplit('/').next().unwrap_or_default();
    if qualified && (last.contains(':') || last.contains('@')) {
        Ok(part)
    } else {
        Err(
            "names the image this service builds (`build:`); only a registry-qualified name with a tag (`ghcr.io/acme/app:1.2`) can be pulled",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Kind;

    fn run(text: &str) -> Extraction {
        extract(&Source::new("compose.yaml", text, Kind::Compose))
    }

    /// (span text, line, stage, location) of each reference.
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

    fn r(text: &str, line: usize, stage: &str) -> (String, usize, String, String) {
        (
            text.to_string(),
            line,
            stage.to_string(),
            format!("services.{stage}.image"),
        )
    }

    const D: &str = "sha256:c7253132b85afd1c61dc4748fcd9c36d774f2b47c6d2a8721f61bfdfd6df9278";

    #[test]
    fn plain_quoted_and_commented_images() {
        let text = format!(
            "name: shop\n\nservices:\n  web:\n    build: .\n    ports: [\"8080:8080\"]\n  \
             db:\n    image: postgres:16.4@{D} # pinned by digest\n  \
             cache:\n    image: \"redis:7.4-alpine\"\n  \
             queue:\n    image: 'rabbitmq:3.13-management'\n  \
             proxy:\n    image: traefik:v3.1   # edge router\n"
        );
        assert_eq!(
            refs(&text),
            [
                r(&format!("postgres:16.4@{D}"), 8, "db"),
                r("redis:7.4-alpine", 10, "cache"),
                r("rabbitmq:3.13-management", 12, "queue"),
                r("traefik:v3.1", 14, "proxy"),
            ]
        );
    }

    #[test]
    fn name_tag_and_digest_spans() {
        let text = format!("services:\n  db:\n    image: \"postgres:16@{D}\"\n");
        let out = run(&text);
        let f = &out.references[0];
        assert_eq!(&text[f.name_span.clone()], "postgres");
        assert_eq!(&text[f.tag_span.clone().unwrap()], "16");
        assert_eq!(&text[f.digest_span.clone().unwrap()], D);
        assert_eq!(f.reference.repository, "library/postgres");
    }

    #[test]
    fn interpolation_is_skipped_with_a_reason() {
        let text = "services:\n  a:\n    image: ${IMAGE}\n  b:\n    image: \"${MAIL:-${M}}\"\n  \
                    c:\n    image: $REPO/app:1\n  d:\n    image: app:${TAG:-1}\n  \
                    e:\n    image: ${X:+nginx:1}\n  f:\n    image: ${X:?nginx:1}\n  \
                    g:\n    image: ${X:-}\n";
        let out = run(text);
        assert!(out.references.is_empty(), "{:?}", out.references);
        assert!(out.errors.is_empty());
        let got: Vec<_> = out
            .skipped
            .iter()
            .map(|s| (s.line, s.text.as_str(), s.reason.as_str()))
            .collect();
        let why = "uses variable interpolation";
        assert_eq!(
            got,
            [
                (3, "${IMAGE}", why),
                (5, "${MAIL:-${M}}", why),
                (7, "$REPO/app:1", why),
                (9, "app:${TAG:-1}", why),
                (11, "${X:+nginx:1}", why),
                (13, "${X:?nginx:1}", why),
                (15, "${X:-}", why),
            ]
        );
    }

    #[test]
    fn variable_defaults_are_the_reference() {
        let text = format!(
            "services:\n  mail:\n    image: \"${{MAIL_IMAGE:-axllent/mailpit:v1.20}}\"\n  \
             web:\n    image: ${{WEB-nginx:1.27@{D}}} # default\n"
        );
        assert_eq!(
            refs(&text),
            [
                r("axllent/mailpit:v1.20", 3, "mail"),
                r(&format!("nginx:1.27@{D}"), 5, "web"),
            ]
        );
    }

    #[test]
    fn version_one_files_have_services_at_the_top_level() {
        let text = "web:\n  image: nginx:1.25\n  links: [db]\ndb:\n  image: 'postgres:9.6'\n\
                    worker:\n  build: .\nx-common: {image: no:1}\nversion: '1'\n";
        assert_eq!(
            refs(text),
            [
                ("nginx:1.25".into(), 2, "web".into(), "web.image".into()),
                ("postgres:9.6".into(), 5, "db".into(), "db.image".into()),
            ]
        );
        // A file with `services:` is never read the version-1 way.
        let text = "services: {}\nweb:\n  image: nginx:1.25\n";
        assert_eq!(run(text), Extraction::default());
    }

    #[test]
    fn images_of_services_that_build() {
        let text = "services:\n  a:\n    build: .\n    image: sentry-self-hosted-local\n  \
                    b:\n    build: ./b\n    image: acme/b:1.0\n  \
                    c:\n    build: ./c\n    image: ghcr.io/acme/c:1.2\n  \
                    d:\n    build: ./d\n    image: ghcr.io/acme/d\n  \
                    e:\n    build: ./e\n    image: localhost:5000/e:2\n    \
                    pull_policy: build\n  f:\n    build: ./f\n    image: localhost/f:3\n";
        let out = run(text);
        let texts: Vec<_> = out.references.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(texts, ["ghcr.io/acme/c:1.2", "localhost/f:3"]);
        let skipped: Vec<_> = out.skipped.iter().map(|s| s.line).collect();
        assert_eq!(skipped, [4, 7, 13, 16]);
        assert!(out.skipped[0].reason.contains("builds"));
        assert!(out.skipped[3].reason.contains("pull_policy: build"));
    }

    #[test]
    fn build_only_services_and_other_keys_yield_nothing() {
        let text = "services:\n  web:\n    build:\n      context: .\n      \
                    args:\n        image: not-this:1\n  empty:\nx-image: nope:1\nimage: nope:2\n";
        let out = run(text);
        assert_eq!(out, Extraction::default());
    }

    #[test]
    fn crlf_and_non_ascii_before_the_image() {
        let text = "# Dienste für die Küche 🍳\r\nservices:\r\n  wéb:\r\n    image: nginx:1.25 # «edge»\r\n";
        assert_eq!(refs(text), [r("nginx:1.25", 4, "wéb")]);
        let text = "services:\r\n  a:\r\n    image: \"nginx:1.25\"\r\n";
        assert_eq!(refs(text), [r("nginx:1.25", 3, "a")]);
    }

    #[test]
    fn escapes_folding_and_block_scalars_are_skipped() {
        let text = "services:\n  a:\n    image: \"ng\\x69nx:1\"\n  b:\n    image: |\n      nginx:1\n  \
                    c:\n    image: nginx\n      :1\n";
        let out = run(text);
        assert!(out.references.is_empty());
        assert!(out.errors.is_empty());
        let lines: Vec<_> = out.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [3, 6, 8]);
        assert!(
            out.skipped[0].reason.contains("escape"),
            "{:?}",
            out.skipped
        );
        assert!(out.skipped[1].reason.contains("block scalar"));
        assert!(out.skipped[2].reason.contains("several lines"));
    }

    #[test]
    fn merge_keys_share_one_image_text() {
        let text = "x-app: &app\n  image: ghcr.io/acme/app:1.0\n  restart: always\n\
                    services:\n  web:\n    <<: *app\n  worker:\n    <<: *app\n    command: work\n  \
                    other:\n    <<: *app\n    image: ghcr.io/acme/other:2\n";
        // Two services use the anchored text: it is one place to edit, reported once.
        assert_eq!(
            refs(text),
            [
                r("ghcr.io/acme/app:1.0", 2, "web"),
                r("ghcr.io/acme/other:2", 12, "other"),
            ]
        );
    }

    #[test]
    fn a_shared_interpolated_image_is_skipped_once() {
        let text = "x: &img ${IMAGE}\nservices:\n  a:\n    image: *img\n  b:\n    image: *img\n";
        let out = run(text);
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.skipped[0].line, 1);
    }

    #[test]
    fn invalid_images_are_errors_with_a_line() {
        let text = "services:\n  a:\n    image: Nginx:1\n  b:\n    image: nginx:1\n";
        let out = run(text);
        assert_eq!(out.references.len(), 1);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].line, Some(3));
        assert!(out.errors[0].message.contains("lowercase"));
    }

    #[test]
    fn malformed_yaml_is_one_error() {
        let text = "services:\n  a:\n    image: nginx:1\n   bad: [\n";
        let out = run(text);
        assert!(out.references.is_empty());
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(out.errors[0].line.is_some());
        assert!(out.errors[0].message.starts_with("invalid YAML"));
        // The image it can still see is listed, with the error, not silently dropped.
        assert_eq!(out.skipped.len(), 1, "{:?}", out.skipped);
        assert_eq!(
            (out.skipped[0].line, out.skipped[0].text.as_str()),
            (3, "nginx:1")
        );
        assert!(out.skipped[0].reason.contains("invalid YAML"));
    }

    #[test]
    fn flow_lists_closed_at_the_key_column_are_read() {
        // As getsentry/self-hosted writes healthchecks: Compose (yaml.v3) and PyYAML accept
        // a flow list whose closing `]` sits at the key's own indentation.
        let text = "services:\n  seaweedfs:\n    image: \"chrislusf/seaweedfs:4.40\"\n    \
                    healthcheck:\n      test: [\n          \"CMD-SHELL\",\n          # why\n          \
                    \"wget -q -O- http://x/healthz || exit 1\",\n      ]\n      interval: 30s\n  \
                    web:\n    command: {a: 1,\n    b: 2\n    }\n    image: 'nginx:1.25'\n";
        assert_eq!(
            refs(text),
            [
                r("chrislusf/seaweedfs:4.40", 3, "seaweedfs"),
                r("nginx:1.25", 15, "web"),
            ]
        );
    }

    #[test]
    fn flow_style_services() {
        let text = "services: {a: {image: 'x:1'}, b: {image: y}, c: {image: nginx:1.25}}\n";
        assert_eq!(
            refs(text),
            [r("x:1", 1, "a"), r("y", 1, "b"), r("nginx:1.25", 1, "c")]
        );
    }

    #[test]
    fn empty_images_are_skipped() {
        let text = "services:\n  a:\n    image:\n  b:\n    image: \"\"\n  c:\n    image: ~\n";
        let out = run(text);
        assert!(out.references.is_empty() && out.errors.is_empty());
        let got: Vec<_> = out
            .skipped
            .iter()
            .map(|s| (s.line, s.reason.as_str()))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got.iter()
                .all(|(_, reason)| *reason == "the image is empty")
        );
        assert_eq!((got[1].0, got[2].0), (5, 7));
    }

    #[test]
    fn a_bom_is_outside_the_spans() {
        let bytes = "\u{feff}services:\n  a:\n    image: nginx:1.25\n".as_bytes();
        let out = crate::extract::extract_file("docker-compose.yml", bytes).unwrap();
        let f = &out.references[0];
        assert_eq!(&bytes[f.span.clone()], b"nginx:1.25");
        assert_eq!(&bytes[f.tag_span.clone().unwrap()], b"1.25");
        assert_eq!(f.line, 3);
    }
}
