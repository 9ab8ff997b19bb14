//! Compose files (`compose.y*ml`, `docker-compose*.y*ml`): `services.<name>.image`.
//!
//! Services that only `build:` have no image to pin and yield nothing. Merge keys
//! (`<<: *defaults`) are followed, since compose files commonly share settings that way.

use super::yaml::{Collector, Yaml};
use super::{Context, Extraction, Source};

pub fn extract(source: &Source<'_>) -> Extraction {
    let yaml = Yaml::parse(source.text);
    let mut out = Collector::new(source, &yaml);
    for &doc in yaml.documents() {
        let Some(services) = yaml.get(doc, "services") else {
            continue;
        };
        for (name, service) in yaml.entries(services) {
            let Some(image) = yaml.get(service, "image") else {
                continue;
            };
            let context = Context {
                stage: Some(name.to_string()),
                location: Some(format!("services.{name}.image")),
                ..Context::default()
            };
            out.image(image, 0, context, check);
        }
    }
    out.finish()
}

/// Compose substitutes `$VAR`, `${VAR}`, `${VAR:-default}` (and `$$` for a literal `$`,
/// which no image name contains), so the text is not the image that runs.
fn check(value: &str) -> Option<&'static str> {
    if value.contains('$') {
        Some("uses variable interpolation")
    } else if value.contains("{{") {
        Some("uses template syntax ({{ … }})")
    } else {
        None
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
        let text = "services:\n  a:\n    image: ${IMAGE}\n  b:\n    image: \"${MAIL:-axllent/mailpit:v1.20}\"\n  \
                    c:\n    image: $REPO/app:1\n  d:\n    image: app:${TAG:-1}\n";
        let out = run(text);
        assert!(out.references.is_empty());
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
                (5, "${MAIL:-axllent/mailpit:v1.20}", why),
                (7, "$REPO/app:1", why),
                (9, "app:${TAG:-1}", why),
            ]
        );
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
