//! Docker Bake files (`docker-bake*.hcl`, `docker-bake*.json`): named build contexts that
//! are images, `contexts = { base = "docker-image://alpine:3.20" }`. BuildKit pulls those.
//!
//! `tags` are what a target pushes (outputs, not inputs) and `cache-from`/`cache-to` are
//! caches, so neither is a reference; `dockerfile-inline` heredocs are Dockerfile text
//! this extractor does not read. A `docker-image://` string built with HCL interpolation
//! (`"docker-image://${BASE}"`) is listed as skipped.

use super::literals::{Dialect, Token, tokens};
use super::{Context, Extraction, Source};

const PREFIX: &str = "docker-image://";

pub fn extract(source: &Source<'_>) -> Extraction {
    let mut out = Extraction::default();
    let dialect = if source.file.to_ascii_lowercase().ends_with(".json") {
        Dialect::Jsonc
    } else {
        Dialect::Hcl
    };
    let toks = match tokens(source.text, dialect) {
        Ok(t) => t,
        Err((at, why)) => {
            let line = source.line_of(at);
            out.errors
                .push(source.error(Some(line), format!("invalid Bake file: {why}")));
            return out;
        }
    };
    // Each open block: its key (`contexts = {` → "contexts") and the target it is in
    // (`target "app" {` in HCL, `"target": {"app": {` in JSON).
    let mut blocks: Vec<(Option<&str>, Option<&str>)> = Vec::new();
    let token = |i: Option<usize>| i.and_then(|i| toks.get(i));
    let key_before = |i: usize| match (token(i.checked_sub(2)), token(i.checked_sub(1))) {
        (Some(Token::Word(k) | Token::Str { text: k, .. }), Some(Token::Equals | Token::Colon)) => {
            Some(*k)
        }
        _ => None,
    };
    for (i, t) in toks.iter().enumerate() {
        match *t {
            Token::Open => {
                let (parent_key, parent_target) = blocks.last().copied().unwrap_or_default();
                let block = match (token(i.checked_sub(2)), token(i.checked_sub(1))) {
                    (Some(Token::Word("target")), Some(Token::Str { text, .. })) => {
                        (Some("target"), Some(*text))
                    }
                    _ => {
                        let key = key_before(i);
                        // JSON's `"target": {"app": {`: the target block has no name yet.
                        let target = if parent_key == Some("target") && parent_target.is_none() {
                            key
                        } else {
                            parent_target
                        };
                        (key, target)
                    }
                };
                blocks.push(block);
            }
            Token::Close => {
                blocks.pop();
            }
            Token::Str { start, text, plain }
                if blocks.last().is_some_and(|b| b.0 == Some("contexts")) =>
            {
                let Some(image) = text.strip_prefix(PREFIX) else {
                    continue;
                };
                let Some(name) = key_before(i) else {
                    continue;
                };
                let context = Context {
                    stage: blocks.last().and_then(|b| b.1).map(str::to_string),
                    location: Some(format!("contexts.{name}")),
                    ..Context::default()
                };
                if !plain {
                    out.skipped.push(source.skipped(
                        start,
                        text,
                        "uses HCL interpolation (${…}) or escape sequences",
                    ));
                } else if image.is_empty() {
                    out.skipped
                        .push(source.skipped(start, text, "the image is empty"));
                } else {
                    source.push(&mut out, start + PREFIX.len(), image, context);
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

    fn run(file: &str, text: &str) -> Extraction {
        extract(&Source::new(file, text, Kind::Bake))
    }

    const D: &str = "sha256:3bc801a33ea83df414e1aeb962a52412835be99db28668ec25de73fdd4733804";

    #[test]
    fn image_contexts_in_hcl() {
        let text = format!(
            "variable \"TAG\" {{ default = \"latest\" }}\n\n# \"docker-image://commented:1\"\n\
             target \"app\" {{\n  contexts = {{\n    base = \"docker-image://alpine:3.20@{D}\"\n    \
             src = \"../src\"\n    tools = \"docker-image://ghcr.io/acme/tools:1\" // why\n  }}\n  \
             tags = [\"ghcr.io/acme/app:${{TAG}}\", \"ghcr.io/acme/app:1\"]\n  \
             cache-from = [\"type=registry,ref=ghcr.io/acme/cache\"]\n  \
             dockerfile-inline = <<EOT\nFROM \"docker-image://no:1\"\nEOT\n}}\n\
             target \"b\" {{\n  contexts = {{ base = \"docker-image://alpine:${{TAG}}\" }}\n}}\n"
        );
        let out = run("docker-bake.hcl", &text);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let got: Vec<_> = out
            .references
            .iter()
            .map(|f| {
                assert_eq!(&text[f.span.clone()], f.text);
                (
                    f.text.as_str(),
                    f.line,
                    f.context.stage.as_deref().unwrap_or_default(),
                    f.context.location.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    format!("alpine:3.20@{D}").as_str(),
                    6,
                    "app",
                    "contexts.base"
                ),
                ("ghcr.io/acme/tools:1", 8, "app", "contexts.tools"),
            ]
        );
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.skipped[0].line, 17);
    }

    #[test]
    fn image_contexts_in_json() {
        let text = "{\n  \"target\": {\n    \"app\": {\n      \"contexts\": {\n        \
                    \"base\": \"docker-image://alpine:3.20\"\n      },\n      \
                    \"tags\": [\"docker-image://not-an-input:1\"]\n    }\n  }\n}\n";
        let out = run("docker-bake.json", text);
        let texts: Vec<_> = out
            .references
            .iter()
            .map(|f| {
                (
                    f.text.as_str(),
                    f.line,
                    f.context.stage.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        // Only `contexts` are inputs: the `tags` string is not read.
        assert_eq!(texts, [("alpine:3.20", 5, "app")]);
    }

    #[test]
    fn broken_files_are_one_error() {
        let out = run(
            "docker-bake.hcl",
            "target \"a\" {\n  contexts = { b = \"docker-image://x\n}\n",
        );
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].line, Some(2));
    }
}
