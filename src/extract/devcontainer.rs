//! Dev containers (`.devcontainer/devcontainer.json`, `.devcontainer/<name>/devcontainer.json`,
//! `.devcontainer.json`): the top-level `"image"` the container is created from.
//!
//! The file is JSON with comments and trailing commas, so it is read as tokens rather
//! than with a JSON parser. `features` are OCI artifacts, not container images, and a
//! `build` or `dockerComposeFile` set-up names its images in the Dockerfile or Compose
//! file, which are read on their own.

use super::literals::{Dialect, Token, tokens};
use super::{Context, Extraction, Source};

pub fn extract(source: &Source<'_>) -> Extraction {
    let mut out = Extraction::default();
    let toks = match tokens(source.text, Dialect::Jsonc) {
        Ok(t) => t,
        Err((at, why)) => {
            let line = source.line_of(at);
            out.errors
                .push(source.error(Some(line), format!("invalid JSON: {why}")));
            return out;
        }
    };
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Token::Open => depth += 1,
            Token::Close => depth = depth.saturating_sub(1),
            Token::Str { text: "image", .. } if depth == 1 => {
                if toks.get(i + 1) != Some(&Token::Colon) {
                    continue;
                }
                let Some(&Token::Str { start, text, plain }) = toks.get(i + 2) else {
                    continue;
                };
                let context = Context {
                    location: Some("image".to_string()),
                    ..Context::default()
                };
                if text.is_empty() {
                    out.skipped
                        .push(source.skipped(start, text, "the image is empty"));
                } else if text.contains("${") {
                    out.skipped.push(source.skipped(
                        start,
                        text,
                        "uses a variable (${localEnv:…})",
                    ));
                } else if !plain {
                    out.skipped
                        .push(source.skipped(start, text, "uses escape sequences"));
                } else {
                    source.push(&mut out, start, text, context);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Kind;

    fn run(text: &str) -> Extraction {
        extract(&Source::new(
            ".devcontainer/devcontainer.json",
            text,
            Kind::Devcontainer,
        ))
    }

    const D: &str = "sha256:3bc801a33ea83df414e1aeb962a52412835be99db28668ec25de73fdd4733804";

    #[test]
    fn the_top_level_image() {
        let text = format!(
            "// For format details, see https://aka.ms/devcontainer.json.\r\n{{\r\n\t\"name\": \"Rust\",\r\n\
             \t// \"image\": \"commented:1\",\r\n\t\"image\": \"mcr.microsoft.com/devcontainers/rust:1-bookworm@{D}\",\r\n\
             \t\"features\": {{\r\n\t\t\"ghcr.io/devcontainers/features/node:1\": {{ \"image\": \"nested:1\" }}\r\n\t}},\r\n}}\r\n"
        );
        let out = run(&text);
        assert!(out.errors.is_empty() && out.skipped.is_empty(), "{out:?}");
        assert_eq!(out.references.len(), 1);
        let f = &out.references[0];
        assert_eq!(
            &text[f.span.clone()],
            format!("mcr.microsoft.com/devcontainers/rust:1-bookworm@{D}")
        );
        assert_eq!(&text[f.digest_span.clone().unwrap()], D);
        assert_eq!(f.line, 5);
        assert_eq!(f.context.location.as_deref(), Some("image"));
    }

    #[test]
    fn variables_escapes_and_broken_files() {
        let out = run("{\"image\": \"${localEnv:IMG}\"}");
        assert!(out.references.is_empty());
        assert!(out.skipped[0].reason.contains("variable"));
        let out = run("{\"image\": \"alpine\\u003a3\"}");
        assert!(out.skipped[0].reason.contains("escape"));
        let out = run("{\"build\": {\"dockerfile\": \"Dockerfile\"}, \"image\": 3}");
        assert_eq!(out, Extraction::default());
        let out = run("{\n\"image\": \"alpine:3\n}");
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].line, Some(2));
        let out = run("{\"image\": \"Alpine:3\"}");
        assert_eq!(out.errors.len(), 1);
    }
}
