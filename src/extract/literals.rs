//! The string literals and punctuation of a JSON-with-comments or HCL file, with byte
//! positions, shared by the devcontainer and Bake extractors. Neither needs a full parser:
//! they look for string values at known places, and every byte outside a literal that
//! matters is one of `{ } [ ] : , =`.

/// One token; anything that is not a string or punctuation (numbers, identifiers,
/// `true`, a heredoc) is a `Word` with its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    Open,
    Close,
    Colon,
    Comma,
    Equals,
    Word(&'a str),
    /// A quoted string: `start` is the offset of its first character (after the quote),
    /// `text` its source text without the quotes. `plain` when that text is its value
    /// (no escapes, no `${…}` interpolation).
    Str {
        start: usize,
        text: &'a str,
        plain: bool,
    },
}

/// Which comment and string forms the file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// JSON with `//` and `/* */` comments (devcontainer.json).
    Jsonc,
    /// HashiCorp HCL: also `#` comments, `${…}` interpolation and `<<EOT` heredocs.
    Hcl,
}

/// The tokens of `text`, or the offset and reason where it stops making sense.
pub(crate) fn tokens(text: &str, dialect: Dialect) -> Result<Vec<Token<'_>>, (usize, String)> {
    let bytes = text.as_bytes();
    let hcl = dialect == Dialect::Hcl;
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => at += 1,
            b'/' if bytes.get(at + 1) == Some(&b'/') => at = line_end(bytes, at),
            b'#' if hcl => at = line_end(bytes, at),
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                let Some(end) = text.get(at + 2..).and_then(|r| r.find("*/")) else {
                    return Err((at, "unclosed /* comment".into()));
                };
                at += 2 + end + 2;
            }
            b'{' | b'[' | b'(' => {
                out.push(Token::Open);
                at += 1;
            }
            b'}' | b']' | b')' => {
                out.push(Token::Close);
                at += 1;
            }
            b':' => {
                out.push(Token::Colon);
                at += 1;
            }
            b',' => {
                out.push(Token::Comma);
                at += 1;
            }
            b'=' if bytes.get(at + 1) != Some(&b'=') => {
                out.push(Token::Equals);
                at += 1;
            }
            b'"' => {
                let (end, plain) = string_end(bytes, at + 1, hcl)
                    .ok_or_else(|| (at, "unclosed string".to_string()))?;
                out.push(Token::Str {
                    start: at + 1,
                    text: text.get(at + 1..end).unwrap_or_default(),
                    plain,
                });
                at = end + 1;
            }
            b'<' if hcl && bytes.get(at + 1) == Some(&b'<') => {
                // A heredoc: its body is text (an inline Dockerfile), not literals.
                let start = at;
                at = heredoc_end(text, at).ok_or_else(|| (at, "unclosed heredoc".to_string()))?;
                out.push(Token::Word(text.get(start..at).unwrap_or_default()));
            }
            _ => {
                // A word (number, identifier, `true`): up to the next blank, punctuation or
                // quote; a character no rule takes (`/`, the `=` of `==`) is a word alone.
                let start = at;
                while let Some(c) = text.get(at..).and_then(|r| r.chars().next()) {
                    if c.is_ascii_whitespace() || "{}[]():,\"=#/".contains(c) {
                        break;
                    }
                    at += c.len_utf8();
                }
                if at == start {
                    at += text
                        .get(at..)
                        .and_then(|r| r.chars().next())
                        .map_or(1, char::len_utf8);
                }
                out.push(Token::Word(text.get(start..at).unwrap_or_default()));
            }
        }
    }
    Ok(out)
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| from + p)
}

/// Offset of the closing quote of a string whose text starts at `from`, and whether its
/// text is its value.
fn string_end(bytes: &[u8], from: usize, hcl: bool) -> Option<(usize, bool)> {
    let mut plain = true;
    let mut at = from;
    loop {
        match *bytes.get(at)? {
            b'"' => return Some((at, plain)),
            b'\\' => {
                plain = false;
                at += 2;
            }
            b'\n' => return None,
            // `${…}` (HCL) or `%{…}`: skip to the matching brace; quotes inside belong to it.
            b'$' | b'%' if hcl && bytes.get(at + 1) == Some(&b'{') => {
                plain = false;
                let mut depth = 0usize;
                at += 1;
                loop {
                    match *bytes.get(at)? {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        b'\n' => return None,
                        _ => {}
                    }
                    at += 1;
                }
                at += 1;
            }
            _ => at += 1,
        }
    }
}

/// The offset after a heredoc starting at `at` (`<<EOT` or `<<-EOT`, ending at a line that
/// is only `EOT`).
fn heredoc_end(text: &str, at: usize) -> Option<usize> {
    let rest = text.get(at + 2..)?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let marker: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if marker.is_empty() {
        return None;
    }
    let body = at + text.get(at..)?.find('\n')? + 1;
    let mut line_start = body;
    for line in text.get(body..)?.split_inclusive('\n') {
        line_start += line.len();
        if line.trim() == marker {
            return Some(line_start);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(text: &str, dialect: Dialect) -> Vec<(&str, bool)> {
        tokens(text, dialect)
            .unwrap()
            .into_iter()
            .filter_map(|t| match t {
                Token::Str {
                    start,
                    text: s,
                    plain,
                } => {
                    assert_eq!(&text[start..start + s.len()], s);
                    Some((s, plain))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn jsonc_comments_and_escapes() {
        let text = "{\n  // \"not\": \"this\"\n  \"image\": \"a:1\", /* \"x\" */\n  \"e\": \"q\\\"\",\n  \"n\": 1,\n}\n";
        assert_eq!(
            strings(text, Dialect::Jsonc),
            [
                ("image", true),
                ("a:1", true),
                ("e", true),
                ("q\\\"", false),
                ("n", true)
            ]
        );
    }

    #[test]
    fn hcl_interpolation_heredocs_and_hash_comments() {
        let text = "# \"c\"\ntarget \"a\" {\n  contexts = { x = \"docker-image://${B}\" }\n  \
                    dockerfile-inline = <<EOT\nFROM \"busybox\"\nEOT\n  tags = [\"t:${fn(\"y\")}\"]\n}\n";
        assert_eq!(
            strings(text, Dialect::Hcl),
            [
                ("a", true),
                ("docker-image://${B}", false),
                ("t:${fn(\"y\")}", false)
            ]
        );
    }

    #[test]
    fn broken_text_is_an_error_not_a_panic() {
        for text in [
            "\"open",
            "/* open",
            "x = <<EOT\nno end\n",
            "\"a\nb\"",
            "é=€",
            "a == b",
        ] {
            let _ = tokens(text, Dialect::Hcl);
            let _ = tokens(text, Dialect::Jsonc);
        }
        assert!(tokens("\"open", Dialect::Jsonc).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "[ a-z:,=#/*{}\\[\\]\"\\\\$<\n-é]{0,80}") {
            for d in [Dialect::Jsonc, Dialect::Hcl] {
                if let Ok(tokens) = tokens(&text, d) {
                    for t in tokens {
                        if let Token::Str { start, text: s, .. } = t {
                            proptest::prop_assert_eq!(text.get(start..start + s.len()), Some(s));
                        }
                    }
                }
            }
        }
    }
}
