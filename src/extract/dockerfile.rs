//! Image references in Dockerfiles and Containerfiles.
//!
//! The file is split into instructions the way BuildKit's parser does it, so that what we
//! report is what a build would pull:
//!
//! - parser directives (`# syntax=`, `# escape=`, `# check=`) are read only in the leading
//!   block of directive lines; ``# escape=` `` switches the escape character to a backtick;
//! - comment lines and blank lines inside a line continuation are dropped;
//! - heredoc bodies (`RUN <<EOF`, `<<-EOF`, `<<"EOF"`, `COPY <<A <<B …`) are passed over
//!   without being read, in `RUN`, `COPY`, `ADD` and `ONBUILD` of those, unless the
//!   instruction uses the JSON form. As in BuildKit, `<<EOF` must be a word of its own
//!   (`cat<<EOF` is not a heredoc).
//!
//! Every byte of an instruction keeps its offset in the file, so spans stay exact across
//! continuations, CRLF line endings and either escape character.
//!
//! References come from `FROM` (location `FROM`), `COPY --from=` (`COPY --from`) and
//! `RUN --mount=…,from=…` (`RUN --mount`). Decisions:
//!
//! - `scratch`, stage names (case-insensitive) and numeric stage indexes are not images and
//!   are left out silently: no reference and no skipped entry. `FROM` only sees stages
//!   defined before it; `COPY --from` and `from=` see every stage of the file, because
//!   BuildKit resolves those after reading all stages.
//! - An image written as exactly one variable (`$BASE` or `${BASE}`) is resolved through
//!   the `ARG` that declares it: global ARGs (before the first `FROM`) for `FROM`, ARGs of
//!   the current stage for `COPY --from`/`from=` (a bare `ARG X` in a stage inherits the
//!   global default). The reference then points at the ARG default (`context.arg`).
//! - Each ARG definition is reported once, at its first use, however many instructions use
//!   it: two references to the same bytes would make two colliding edits. The context
//!   (stage, platform, location) is that of the first use.
//! - Anything else with a variable in it (`python:${PY}-slim`, `${X:-python}`, an ARG with
//!   no default…) is skipped with a reason that names the variables.
//! - `COPY --from` and `RUN --mount` images get the stage's `FROM --platform`, since that
//!   is the platform BuildKit pulls them for.
//!
//! Not supported: images named inside `ONBUILD` triggers (they run in another build),
//! variables set by `ENV`, chains of ARGs (`ARG A=$B`), and images whose text is written
//! with quotes or escapes inside it (`py"thon"`); the last two are skipped with a reason.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use thiserror::Error;

use super::{Context, Extraction, Found, LineIndex, Skipped, Source};
use crate::reference::{self, ReferenceError};

/// Why (part of) a Dockerfile cannot be read. The scan goes on after each.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
enum SyntaxError {
    #[error("FROM requires either one or three arguments (FROM image [AS name]), found {0}")]
    FromArguments(usize),
    #[error("FROM expects AS before the stage name, found {0:?}")]
    FromAs(String),
    #[error("flag --{0} needs a value")]
    MissingFlagValue(String),
    #[error("ARG requires at least one argument")]
    EmptyArg,
    #[error("invalid escape character {0:?}: must be ` or \\")]
    InvalidEscape(String),
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("unterminated heredoc: no line matches the delimiter {0:?}")]
    UnterminatedHeredoc(String),
}

/// Why an image text is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Skip {
    /// `python:${PY}-slim`, `${REGISTRY}/app:1`: no single place holds the reference.
    Composed(Vec<String>),
    /// `${BASE:-python:3}`: the value depends on the build's arguments.
    Modifier(String),
    /// `$X` with no ARG in scope; `global` for `FROM`.
    Undeclared {
        name: String,
        global: bool,
    },
    NoDefault(String),
    EmptyDefault(String),
    Quoted,
    Split,
    /// The ARG default the image resolves to cannot be pinned itself.
    ArgDefault {
        arg: String,
        reason: Box<Skip>,
    },
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Composed(names) => write!(
                f,
                "image is built from variables ({}); cannot be updated in place",
                names.join(", ")
            ),
            Skip::Modifier(name) => write!(
                f,
                "image uses variable {name} with an expansion modifier; cannot be updated in place"
            ),
            Skip::Undeclared { name, global: true } => write!(
                f,
                "variable {name} is not declared by an ARG before the first FROM"
            ),
            Skip::Undeclared {
                name,
                global: false,
            } => write!(f, "variable {name} is not declared by an ARG in this stage"),
            Skip::NoDefault(name) => write!(
                f,
                "ARG {name} has no default value; the image is chosen at build time"
            ),
            Skip::EmptyDefault(name) => write!(f, "ARG {name} has an empty default value"),
            Skip::Quoted => write!(
                f,
                "image text contains quotes or escape characters; cannot be updated in place"
            ),
            Skip::Split => write!(
                f,
                "image text is split by a line continuation or quotes; cannot be updated in place"
            ),
            Skip::ArgDefault { arg, reason } => write!(f, "default of ARG {arg}: {reason}"),
        }
    }
}

pub fn extract(source: &Source<'_>) -> Extraction {
    let scan = scan(source.text);
    let lines = &source.lines;
    let mut resolver = Resolver::new(source, lines, &scan);
    for instruction in &scan.instructions {
        resolver.apply(instruction);
    }
    let mut out = resolver.out;
    for (offset, e) in &scan.errors {
        out.errors
            .push(source.error(Some(lines.line_of(*offset)), e.to_string()));
    }
    // ARG-backed references are found at their use, after later lines: restore file order.
    out.references.sort_by_key(|f| f.span.start);
    out.skipped.sort_by_key(|s| s.line);
    out.errors.sort_by_key(|e| e.line);
    out
}

/// Text cut out of the file, with the file offset of each of its bytes: an instruction is
/// glued from several physical lines, and quotes may be removed from a flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Word {
    text: String,
    /// `at[i]` is the file offset of `text.as_bytes()[i]`; always as long as `text`.
    at: Vec<usize>,
}

impl Word {
    fn push_str(&mut self, s: &str, offset: usize) {
        self.text.push_str(s);
        self.at.extend(offset..offset + s.len());
    }

    fn len(&self) -> usize {
        self.text.len()
    }

    fn offset(&self) -> Option<usize> {
        self.at.first().copied()
    }

    /// The bytes `range` of the word, or an empty word when `range` is not on char
    /// boundaries (callers only cut at ASCII bytes, so that does not happen).
    fn slice(&self, range: Range<usize>) -> Word {
        match (self.text.get(range.clone()), self.at.get(range)) {
            (Some(text), Some(at)) => Word {
                text: text.to_string(),
                at: at.to_vec(),
            },
            _ => Word::default(),
        }
    }

    fn trim(&self) -> Word {
        let start = self.len() - self.text.trim_start().len();
        let end = self.text.trim_end().len();
        if start >= end {
            return Word::default();
        }
        self.slice(start..end)
    }

    /// The file span of the word when its bytes sit side by side in the file.
    fn span(&self) -> Option<Range<usize>> {
        let first = *self.at.first()?;
        let contiguous = self.at.len() == self.text.len()
            && self
                .at
                .windows(2)
                .all(|w| w[0].checked_add(1) == Some(w[1]));
        let end = self.at.last()?.checked_add(1)?;
        contiguous.then_some(first..end)
    }
}

/// Whitespace that separates BuildKit's command and `FROM` arguments (`[\t\v\f\r ]`).
fn is_token_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0b | 0x0c | b'\r')
}

/// `\s` of Go's regular expressions, used by the directive syntax.
fn is_regex_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

/// An instruction split into its name (lowercase), builder flags and arguments.
struct Command {
    name: String,
    flags: Vec<Flag>,
    args: Word,
}

struct Flag {
    /// Lowercase, without the `--`.
    name: String,
    value: Option<Word>,
}

impl Command {
    /// Values of the flag `name`; a flag given without a value is a syntax error.
    fn flag_values(
        &self,
        name: &str,
        offset: usize,
        errors: &mut Vec<(usize, SyntaxError)>,
    ) -> Vec<Word> {
        let mut values = Vec::new();
        for flag in self.flags.iter().filter(|f| f.name == name) {
            match &flag.value {
                Some(v) => values.push(v.clone()),
                None => errors.push((offset, SyntaxError::MissingFlagValue(name.to_string()))),
            }
        }
        values
    }
}

/// Flags that take a value; newer BuildKit also accepts it as the next word
/// (`--platform linux/amd64`), which must not be read as the image.
const VALUE_FLAGS: [&str; 3] = ["platform", "from", "mount"];

fn split_command(line: &Word) -> Command {
    let line = line.trim();
    let bytes = line.text.as_bytes();
    let name_end = bytes
        .iter()
        .position(|&b| is_token_space(b))
        .unwrap_or(bytes.len());
    let mut rest = name_end;
    while bytes.get(rest).is_some_and(|&b| is_token_space(b)) {
        rest += 1;
    }
    let (flags, args) = split_flags(&line.slice(rest..line.len()));
    Command {
        name: line.slice(0..name_end).text.to_ascii_lowercase(),
        flags,
        args: args.trim(),
    }
}

/// Splits the leading `--name=value` flags off `args`, like BuildKit's
/// `extractBuilderFlags`: quotes are removed and `\` escapes the next byte.
fn split_flags(args: &Word) -> (Vec<Flag>, Word) {
    let bytes = args.text.as_bytes();
    let mut flags: Vec<Flag> = Vec::new();
    let mut awaiting: Option<usize> = None;
    let mut pos = 0;
    loop {
        while bytes
            .get(pos)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == 0x0b)
        {
            pos += 1;
        }
        if pos >= bytes.len() {
            return (flags, Word::default());
        }
        let dashes = bytes.get(pos) == Some(&b'-') && bytes.get(pos + 1) == Some(&b'-');
        if awaiting.is_none() && !dashes {
            return (flags, args.slice(pos..bytes.len()));
        }
        let (word, next) = lex_flag_word(args, pos);
        pos = next;
        if let Some(i) = awaiting.take() {
            if let Some(flag) = flags.get_mut(i) {
                flag.value = Some(word);
            }
            continue;
        }
        if word.text == "--" {
            return (flags, args.slice(pos..bytes.len()));
        }
        let body = word.slice(2..word.len());
        match body.text.find('=') {
            Some(eq) => flags.push(Flag {
                name: body.slice(0..eq).text.to_ascii_lowercase(),
                value: Some(body.slice(eq + 1..body.len())),
            }),
            None => {
                let name = body.text.to_ascii_lowercase();
                if VALUE_FLAGS.contains(&name.as_str()) {
                    awaiting = Some(flags.len());
                }
                flags.push(Flag { name, value: None });
            }
        }
    }
}

/// One flag word starting at `pos`, with quotes and escapes removed.
fn lex_flag_word(args: &Word, mut pos: usize) -> (Word, usize) {
    let bytes = args.text.as_bytes();
    let mut out = Vec::new();
    let mut at = Vec::new();
    let mut quote: Option<u8> = None;
    while let Some(&c) = bytes.get(pos) {
        match quote {
            None if c.is_ascii_whitespace() || c == 0x0b => break,
            None if c == b'\'' || c == b'"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            // BuildKit's flag lexer escapes with a backslash whatever `# escape=` says.
            _ if c == b'\\' => {
                pos += 1;
                if let (Some(&n), Some(&o)) = (bytes.get(pos), args.at.get(pos)) {
                    out.push(n);
                    at.push(o);
                }
            }
            _ => {
                if let Some(&o) = args.at.get(pos) {
                    out.push(c);
                    at.push(o);
                }
            }
        }
        pos += 1;
    }
    // Only ASCII bytes were dropped, so the rest is still UTF-8.
    let word = match String::from_utf8(out) {
        Ok(text) if text.len() == at.len() => Word { text, at },
        _ => Word::default(),
    };
    (word, pos)
}

/// Words as BuildKit's `parseWords` cuts them: whitespace outside quotes separates them,
/// and quotes and escapes stay in the word.
fn raw_words(line: &Word, escape: char) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<Range<usize>> = None;
    let mut quote: Option<char> = None;
    let mut chars = line.text.char_indices();
    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                let mut end = end;
                if c == escape && q != '\'' {
                    // An escape at the very end is dropped, like BuildKit does.
                    end = chars.next().map_or(i, |(j, n)| j + n.len_utf8());
                }
                if let Some(r) = current.as_mut() {
                    r.end = end;
                }
            }
            None if c.is_whitespace() => {
                if let Some(r) = current.take() {
                    words.push(line.slice(r));
                }
            }
            None => {
                let start = current.as_ref().map_or(i, |r| r.start);
                let end = if c == escape {
                    chars.next().map_or(i, |(j, n)| j + n.len_utf8())
                } else {
                    if c == '\'' || c == '"' {
                        quote = Some(c);
                    }
                    end
                };
                current = Some(start..end);
            }
        }
    }
    if let Some(r) = current {
        words.push(line.slice(r));
    }
    words.retain(|w| !w.text.is_empty());
    words
}

/// `FROM` arguments: split on whitespace only, quotes are not special here.
fn token_words(args: &Word) -> Vec<Word> {
    let bytes = args.text.as_bytes();
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (is_token_space(b), start) {
            (true, Some(s)) => {
                words.push(args.slice(s..i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push(args.slice(s..bytes.len()));
    }
    words
}

/// The `from=` of a `--mount` value (`type=bind,from=img,target=/x`), comma separated
/// `key=value` fields in any order. The last `from=` wins, as in BuildKit.
fn mount_from(value: &Word) -> Option<Word> {
    let mut found = None;
    let mut start = 0;
    let ends = value
        .text
        .match_indices(',')
        .map(|(i, _)| i)
        .chain([value.len()]);
    for end in ends {
        let mut field = value.slice(start..end).trim();
        start = end + 1;
        // A CSV-quoted field: `"from=img"`.
        if field.len() >= 2 && field.text.starts_with('"') && field.text.ends_with('"') {
            field = field.slice(1..field.len() - 1);
        }
        if let Some(eq) = field.text.find('=')
            && field.slice(0..eq).text.trim().eq_ignore_ascii_case("from")
        {
            found = Some(field.slice(eq + 1..field.len()).trim());
        }
    }
    found.filter(|w| !w.text.is_empty())
}

struct Heredoc {
    name: String,
    /// `<<-`: the terminator may be indented with tabs.
    chomp: bool,
}

/// The heredocs an instruction opens; their bodies follow the instruction.
fn heredocs(line: &Word, command: &Command) -> Vec<Heredoc> {
    let child;
    let (name, args) = if command.name == "onbuild" {
        child = split_command(&command.args);
        (&child.name, &child.args)
    } else {
        (&command.name, &command.args)
    };
    if !matches!(name.as_str(), "run" | "copy" | "add") || is_json_array(&args.text) {
        return Vec::new();
    }
    // BuildKit looks for heredoc words with a backslash lexer, whatever the escape is.
    raw_words(line, '\\')
        .iter()
        .filter_map(|w| heredoc_marker(&w.text))
        .collect()
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF` (BuildKit's `^(\d*)<<(-?)([^<]*)$`).
fn heredoc_marker(word: &str) -> Option<Heredoc> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = shell_unquote(rest)?;
    (!name.is_empty()).then_some(Heredoc { name, chomp })
}

/// Removes shell quoting from one word; `None` when a quote is left open.
fn shell_unquote(word: &str) -> Option<String> {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\\') => out.extend(chars.next()),
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (Some('"'), '\\') => match chars.next() {
                Some(n @ ('"' | '\\' | '$' | '`')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    quote.is_none().then_some(out)
}

/// Whether `args` is an instruction's JSON form (`RUN ["a", "b"]`). Like Go's decoder,
/// text after the array does not matter.
fn is_json_array(args: &str) -> bool {
    let args = args.trim_start();
    if !args.starts_with('[') {
        return false;
    }
    let mut values = serde_json::Deserializer::from_str(args).into_iter::<Vec<serde_json::Value>>();
    matches!(values.next(), Some(Ok(v)) if v.iter().all(|x| x.is_string()))
}

/// `# name=value` in the leading directive block.
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_regex_space);
    let key_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = rest.get(..key_len)?;
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest
        .get(key_len..)?
        .trim_start_matches(is_regex_space)
        .strip_prefix('=')?
        .trim_matches(is_regex_space);
    (!value.is_empty()).then(|| (key.to_ascii_lowercase(), value))
}

/// Strips a trailing line continuation (`escape` then optional blanks); BuildKit does not
/// count an escaped escape (`\\`) as one.
fn continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before, true);
    }
    (line, false)
}

struct ArgWord {
    name: String,
    /// The default as written (quotes included); `None` for `ARG NAME`.
    value: Option<Word>,
    /// Offset of the definition, which identifies it for deduplication.
    key: usize,
}

enum Instruction {
    From {
        platform: Option<String>,
        /// `None` when the line is malformed; the stage still starts.
        image: Option<Word>,
        stage: Option<Word>,
    },
    Arg(Vec<ArgWord>),
    CopyFrom(Vec<Word>),
    MountFrom(Vec<Word>),
}

struct Scan {
    instructions: Vec<Instruction>,
    errors: Vec<(usize, SyntaxError)>,
    escape: char,
}

/// Reads the file into the instructions that can name images.
fn scan(text: &str) -> Scan {
    let mut lines = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        // A `\r` before the newline is not part of the line (CRLF files).
        lines.push((offset, raw.trim_end_matches(['\r', '\n'])));
        offset += raw.len();
    }

    let mut out = Scan {
        instructions: Vec::new(),
        errors: Vec::new(),
        escape: '\\',
    };
    let mut directives_done = false;
    let mut seen_directives = HashSet::new();
    let mut i = 0;
    while let Some(&(start, content)) = lines.get(i) {
        i += 1;
        let trimmed = content.trim_start();
        let first = start + (content.len() - trimmed.len());
        if !directives_done {
            match directive(trimmed) {
                Some((key, value)) if matches!(key.as_str(), "escape" | "syntax" | "check") => {
                    if !seen_directives.insert(key.clone()) {
                        out.errors
                            .push((first, SyntaxError::DuplicateDirective(key)));
                    } else if key == "escape" {
                        match value {
                            "`" => out.escape = '`',
                            "\\" => out.escape = '\\',
                            other => out
                                .errors
                                .push((first, SyntaxError::InvalidEscape(other.to_string()))),
                        }
                    }
                }
                _ => directives_done = true,
            }
        }
        if trimmed.starts_with('#') {
            continue;
        }
        let (kept, mut continues) = continuation(trimmed, out.escape);
        if !continues && kept.is_empty() {
            continue;
        }
        let mut line = Word::default();
        line.push_str(kept, first);
        while continues {
            let Some(&(start, content)) = lines.get(i) else {
                break;
            };
            i += 1;
            let trimmed = content.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (kept, more) = continuation(content, out.escape);
            line.push_str(kept, start);
            continues = more;
        }

        let command = split_command(&line);
        if let Some(instruction) = instruction(&command, first, out.escape, &mut out.errors) {
            out.instructions.push(instruction);
        }
        for heredoc in heredocs(&line, &command) {
            let mut terminated = false;
            while let Some(&(_, body)) = lines.get(i) {
                i += 1;
                let candidate = if heredoc.chomp {
                    body.trim_start_matches('\t')
                } else {
                    body
                };
                if candidate == heredoc.name {
                    terminated = true;
                    break;
                }
            }
            if !terminated {
                out.errors
                    .push((first, SyntaxError::UnterminatedHeredoc(heredoc.name)));
                break;
            }
        }
    }
    out
}

fn instruction(
    command: &Command,
    offset: usize,
    escape: char,
    errors: &mut Vec<(usize, SyntaxError)>,
) -> Option<Instruction> {
    match command.name.as_str() {
        "from" => {
            let platform = command
                .flag_values("platform", offset, errors)
                .pop()
                .map(|w| w.text);
            let args = token_words(&command.args);
            let (image, stage) = match args.as_slice() {
                [image] => (Some(image.clone()), None),
                [image, as_, name] if as_.text.eq_ignore_ascii_case("as") => {
                    (Some(image.clone()), Some(name.clone()))
                }
                [_, other, _] => {
                    errors.push((offset, SyntaxError::FromAs(other.text.clone())));
                    (None, None)
                }
                _ => {
                    errors.push((offset, SyntaxError::FromArguments(args.len())));
                    (None, None)
                }
            };
            Some(Instruction::From {
                platform,
                image,
                stage,
            })
        }
        "arg" => {
            let words = raw_words(&command.args, escape);
            if words.is_empty() {
                errors.push((offset, SyntaxError::EmptyArg));
                return None;
            }
            let defs = words
                .iter()
                .map(|w| {
                    let key = w.offset().unwrap_or(offset);
                    match w.text.find('=') {
                        Some(eq) => ArgWord {
                            name: w.slice(0..eq).text,
                            value: Some(w.slice(eq + 1..w.len())),
                            key,
                        },
                        None => ArgWord {
                            name: w.text.clone(),
                            value: None,
                            key,
                        },
                    }
                })
                .collect();
            Some(Instruction::Arg(defs))
        }
        "copy" => {
            let froms: Vec<Word> = command
                .flag_values("from", offset, errors)
                .into_iter()
                .filter(|w| !w.text.is_empty())
                .collect();
            (!froms.is_empty()).then_some(Instruction::CopyFrom(froms))
        }
        "run" => {
            let froms: Vec<Word> = command
                .flag_values("mount", offset, errors)
                .iter()
                .filter_map(mount_from)
                .collect();
            (!froms.is_empty()).then_some(Instruction::MountFrom(froms))
        }
        _ => None,
    }
}

/// Where an image is used, which decides the ARGs and stage names it can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    From,
    CopyFrom,
    MountFrom,
}

impl Site {
    fn location(self) -> &'static str {
        match self {
            Site::From => "FROM",
            Site::CopyFrom => "COPY --from",
            Site::MountFrom => "RUN --mount",
        }
    }
}

/// What an image text turned out to be.
enum Class {
    Image(Word),
    /// `scratch`, a stage name or index.
    NotImage,
    Empty,
    Variable(String),
    Skip(Skip),
}

/// A `$NAME` / `${NAME…}` inside an image text.
struct VariableUse {
    name: String,
    range: Range<usize>,
    /// `$NAME` or `${NAME}`, with no `:-`-style modifier.
    plain: bool,
}

fn variables(text: &str, escape: char) -> Vec<VariableUse> {
    let bytes = text.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut uses = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i) != Some(&b'$')
            || (i > 0 && text.get(..i).is_some_and(|t| t.ends_with(escape)))
        {
            i += 1;
            continue;
        }
        let start = i;
        let braced = bytes.get(i + 1) == Some(&b'{');
        let name_start = if braced { i + 2 } else { i + 1 };
        let mut j = name_start;
        while bytes.get(j).is_some_and(|&b| is_name(b)) {
            j += 1;
        }
        let name = text.get(name_start..j).unwrap_or_default().to_string();
        let (end, plain) = if braced {
            match bytes.get(j) {
                Some(b'}') => (j + 1, true),
                _ => {
                    let close = text.get(j..).and_then(|t| t.find('}'));
                    (close.map_or(bytes.len(), |c| j + c + 1), false)
                }
            }
        } else {
            (j, true)
        };
        if name.is_empty() && !braced {
            // A lone `$` is literal text.
            i += 1;
            continue;
        }
        uses.push(VariableUse {
            name,
            range: start..end,
            plain,
        });
        i = end.max(i + 1);
    }
    uses
}

/// `"img"` or `'img'` → `img`; also says whether the quotes were single (no expansion).
fn unquote(word: &Word) -> (Word, bool) {
    let t = word.text.as_bytes();
    match (t.first(), t.last()) {
        (Some(&q @ (b'"' | b'\'')), Some(&l)) if t.len() >= 2 && q == l => {
            (word.slice(1..word.len() - 1), q == b'\'')
        }
        _ => (word.clone(), false),
    }
}

#[derive(Clone)]
struct ArgDef {
    value: Option<Word>,
    key: usize,
}

/// Walks the instructions in order, tracking stages and ARG scopes.
struct Resolver<'a, 's> {
    source: &'a Source<'s>,
    lines: &'a LineIndex,
    escape: char,
    /// Every stage name of the file, lowercase.
    all_stages: HashSet<String>,
    /// Stage names defined so far, lowercase.
    earlier_stages: HashSet<String>,
    global_args: HashMap<String, ArgDef>,
    stage_args: HashMap<String, ArgDef>,
    in_stage: bool,
    stage: Option<String>,
    platform: Option<String>,
    /// ARG definitions already reported.
    reported: HashSet<usize>,
    out: Extraction,
}

impl<'a, 's> Resolver<'a, 's> {
    fn new(source: &'a Source<'s>, lines: &'a LineIndex, scan: &Scan) -> Self {
        let all_stages = scan
            .instructions
            .iter()
            .filter_map(|i| match i {
                Instruction::From {
                    stage: Some(name), ..
                } => Some(name.text.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        Resolver {
            source,
            lines,
            escape: scan.escape,
            all_stages,
            earlier_stages: HashSet::new(),
            global_args: HashMap::new(),
            stage_args: HashMap::new(),
            in_stage: false,
            stage: None,
            platform: None,
            reported: HashSet::new(),
            out: Extraction::default(),
        }
    }

    fn apply(&mut self, instruction: &Instruction) {
        match instruction {
            Instruction::From {
                platform,
                image,
                stage,
            } => {
                self.in_stage = true;
                self.stage_args.clear();
                self.stage = stage.as_ref().map(|w| w.text.clone());
                self.platform = platform.clone();
                if let Some(image) = image {
                    self.use_image(image, Site::From);
                }
                // After the image: `FROM x AS x` pulls the image x.
                if let Some(name) = stage {
                    self.earlier_stages.insert(name.text.to_ascii_lowercase());
                }
            }
            Instruction::Arg(defs) => {
                for d in defs {
                    let mut def = ArgDef {
                        value: d.value.clone(),
                        key: d.key,
                    };
                    if !self.in_stage {
                        self.global_args.insert(d.name.clone(), def);
                        continue;
                    }
                    // `ARG X` in a stage brings the global default of X into the stage.
                    if def.value.is_none()
                        && let Some(global) = self.global_args.get(&d.name)
                    {
                        def = global.clone();
                    }
                    self.stage_args.insert(d.name.clone(), def);
                }
            }
            Instruction::CopyFrom(words) => {
                for w in words {
                    self.use_image(w, Site::CopyFrom);
                }
            }
            Instruction::MountFrom(words) => {
                for w in words {
                    self.use_image(w, Site::MountFrom);
                }
            }
        }
    }

    fn context(&self, site: Site) -> Context {
        Context {
            stage: self.stage.clone(),
            platform: self.platform.clone(),
            arg: None,
            location: Some(site.location().to_string()),
        }
    }

    fn use_image(&mut self, word: &Word, site: Site) {
        match self.classify(word, site) {
            Class::Image(image) => self.record(&image, self.context(site)),
            Class::NotImage => {}
            Class::Empty => {
                let line = word.offset().map(|o| self.lines.line_of(o));
                let message = ReferenceError::Empty.to_string();
                self.out.errors.push(self.source.error(line, message));
            }
            Class::Variable(name) => self.use_arg(word, name, site),
            Class::Skip(reason) => self.skip(word, &reason),
        }
    }

    fn use_arg(&mut self, word: &Word, name: String, site: Site) {
        let scope = match site {
            Site::From => &self.global_args,
            Site::CopyFrom | Site::MountFrom => &self.stage_args,
        };
        let Some(def) = scope.get(&name).cloned() else {
            let global = site == Site::From;
            return self.skip(word, &Skip::Undeclared { name, global });
        };
        if !self.reported.insert(def.key) {
            return;
        }
        let Some(value) = def.value else {
            return self.skip(word, &Skip::NoDefault(name));
        };
        let reason = match self.classify(&value, site) {
            Class::Image(image) => {
                let mut context = self.context(site);
                context.arg = Some(name);
                return self.record(&image, context);
            }
            Class::NotImage => return,
            Class::Empty => return self.skip(word, &Skip::EmptyDefault(name)),
            Class::Variable(inner) => Skip::Composed(vec![inner]),
            Class::Skip(reason) => reason,
        };
        let reason = Skip::ArgDefault {
            arg: name,
            reason: Box::new(reason),
        };
        self.skip(&value, &reason);
    }

    fn classify(&self, word: &Word, site: Site) -> Class {
        let (inner, single_quoted) = unquote(word);
        if inner.text.contains(['"', '\'']) || inner.text.contains(self.escape) {
            return Class::Skip(Skip::Quoted);
        }
        if !single_quoted {
            let uses = variables(&inner.text, self.escape);
            let whole = 0..inner.len();
            match uses.as_slice() {
                [] => {}
                [v] if v.range == whole && v.plain && !v.name.is_empty() => {
                    return Class::Variable(v.name.clone());
                }
                [v] if v.range == whole && !v.name.is_empty() => {
                    return Class::Skip(Skip::Modifier(v.name.clone()));
                }
                _ => {
                    let mut names: Vec<String> = Vec::new();
                    for v in uses {
                        if !names.contains(&v.name) {
                            names.push(v.name);
                        }
                    }
                    return Class::Skip(Skip::Composed(names));
                }
            }
        }
        if inner.text.is_empty() {
            return Class::Empty;
        }
        let lower = inner.text.to_ascii_lowercase();
        let not_image = lower == "scratch"
            || match site {
                Site::From => self.earlier_stages.contains(&lower),
                Site::CopyFrom | Site::MountFrom => {
                    self.all_stages.contains(&lower) || lower.bytes().all(|b| b.is_ascii_digit())
                }
            };
        if not_image {
            Class::NotImage
        } else {
            Class::Image(inner)
        }
    }

    fn record(&mut self, image: &Word, context: Context) {
        match image.span() {
            // The check against the file guarantees `&text[span] == found.text`.
            Some(span) if self.source.text.get(span.clone()) == Some(image.text.as_str()) => {
                let line = self.lines.line_of(span.start);
                match self.found(span, line, &image.text, context) {
                    Ok(f) => self.out.references.push(f),
                    Err(e) => self
                        .out
                        .errors
                        .push(self.source.error(Some(line), e.to_string())),
                }
            }
            _ => self.skip(image, &Skip::Split),
        }
    }

    /// `Source::found` with the line given (see `LineIndex`).
    fn found(
        &self,
        span: Range<usize>,
        line: usize,
        image: &str,
        context: Context,
    ) -> Result<Found, ReferenceError> {
        let (reference, parts) = reference::parse_with_parts(image)?;
        let at = |r: Range<usize>| r.start + span.start..r.end + span.start;
        Ok(Found {
            file: self.source.file.to_string(),
            line,
            kind: self.source.kind,
            reference,
            text: image.to_string(),
            name_span: at(parts.name),
            tag_span: parts.tag.map(at),
            digest_span: parts.digest.map(at),
            span,
            context,
        })
    }

    fn skip(&mut self, word: &Word, reason: &Skip) {
        let offset = word.offset().unwrap_or(0);
        self.out.skipped.push(Skipped {
            file: self.source.file.to_string(),
            line: self.lines.line_of(offset),
            text: word.text.clone(),
            reason: reason.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Kind;

    const D: &str = "sha256:a866731a6b71c4a194a845d86e06568725e430ed21271324873d91eb9e2a0c81";

    fn run(text: &str) -> Extraction {
        extract(&Source::new("Dockerfile", text, Kind::Dockerfile))
    }

    fn texts(e: &Extraction) -> Vec<&str> {
        e.references.iter().map(|f| f.text.as_str()).collect()
    }

    fn only(e: &Extraction) -> &Found {
        assert_eq!(e.references.len(), 1, "{e:#?}");
        &e.references[0]
    }

    fn ctx(
        stage: Option<&str>,
        platform: Option<&str>,
        arg: Option<&str>,
        location: &str,
    ) -> Context {
        Context {
            stage: stage.map(str::to_string),
            platform: platform.map(str::to_string),
            arg: arg.map(str::to_string),
            location: Some(location.to_string()),
        }
    }

    fn assert_clean(e: &Extraction) {
        assert!(e.skipped.is_empty(), "skipped: {:#?}", e.skipped);
        assert!(e.errors.is_empty(), "errors: {:#?}", e.errors);
    }

    #[test]
    fn plain_from_with_tag_and_digest() {
        let text = format!("FROM python:3.12-slim@{D}\nRUN true\n");
        let e = run(&text);
        assert_clean(&e);
        let f = only(&e);
        assert_eq!(&text[f.span.clone()], format!("python:3.12-slim@{D}"));
        assert_eq!(f.text, format!("python:3.12-slim@{D}"));
        assert_eq!(&text[f.name_span.clone()], "python");
        assert_eq!(&text[f.tag_span.clone().unwrap()], "3.12-slim");
        assert_eq!(&text[f.digest_span.clone().unwrap()], D);
        assert_eq!(f.line, 1);
        assert_eq!(f.kind, Kind::Dockerfile);
        assert_eq!(f.file, "Dockerfile");
        assert_eq!(f.context, ctx(None, None, None, "FROM"));
        assert_eq!(f.reference.repository, "library/python");
    }

    #[test]
    fn from_platform_stage_any_case_and_whitespace() {
        let text =
            "# comment\n\n  from \t --platform=linux/amd64\t ghcr.io/o/app:1.0   As\tBuild  \n";
        let e = run(text);
        assert_clean(&e);
        let f = only(&e);
        assert_eq!(&text[f.span.clone()], "ghcr.io/o/app:1.0");
        assert_eq!(f.line, 3);
        assert_eq!(
            f.context,
            ctx(Some("Build"), Some("linux/amd64"), None, "FROM")
        );
    }

    #[test]
    fn platform_is_kept_verbatim_and_may_be_a_separate_word() {
        let text = "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n\
                    FROM --platform linux/arm64 alpine:3.19\n\
                    FROM --platform=\"linux/s390x\" busybox\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(texts(&e), ["golang:1.22", "alpine:3.19", "busybox"]);
        let platforms: Vec<_> = e
            .references
            .iter()
            .map(|f| f.context.platform.as_deref())
            .collect();
        assert_eq!(
            platforms,
            [
                Some("$BUILDPLATFORM"),
                Some("linux/arm64"),
                Some("linux/s390x")
            ]
        );
        let e = run("FROM --platform\n");
        assert!(e.references.is_empty());
        assert!(
            e.errors
                .iter()
                .any(|x| x.message.contains("--platform needs a value"))
        );
    }

    #[test]
    fn scratch_and_earlier_stages_are_not_images() {
        let text = "FROM golang:1.22 AS Build\n\
                    FROM build AS test\n\
                    FROM BUILD\n\
                    FROM scratch\n\
                    FROM Scratch\n\
                    FROM test AS final\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(texts(&e), ["golang:1.22"]);
    }

    #[test]
    fn from_a_later_stage_name_is_an_image() {
        // BuildKit only looks up stages defined before a FROM.
        let e = run("FROM later\nFROM alpine AS later\n");
        assert_eq!(texts(&e), ["later", "alpine"]);
        // A stage's own name is not yet defined in its FROM.
        let e = run("FROM alpine AS alpine\nFROM alpine\n");
        assert_eq!(texts(&e), ["alpine"]);
    }

    #[test]
    fn copy_from_image_with_stage_context() {
        let text = format!(
            "FROM --platform=linux/arm64 alpine:3.19 AS runtime\n\
             COPY --chown=1:1 --from=ghcr.io/o/tools:2@{D} /bin/t /bin/t\n\
             copy --from=build /a /b\n\
             COPY --from=0 /a /b\n\
             COPY --from=BUILDER /a /b\n\
             COPY --from=\"nginx:1.25\" /a /b\n\
             COPY --link /a /b\n\
             FROM golang AS builder\n\
             FROM alpine AS build\n"
        );
        let e = run(&text);
        assert_clean(&e);
        assert_eq!(
            texts(&e),
            [
                "alpine:3.19",
                &format!("ghcr.io/o/tools:2@{D}"),
                "nginx:1.25",
                "golang",
                "alpine"
            ]
        );
        let copy = &e.references[1];
        assert_eq!(&text[copy.span.clone()], format!("ghcr.io/o/tools:2@{D}"));
        assert_eq!(copy.line, 2);
        assert_eq!(
            copy.context,
            ctx(Some("runtime"), Some("linux/arm64"), None, "COPY --from")
        );
        let quoted = &e.references[2];
        assert_eq!(&text[quoted.span.clone()], "nginx:1.25");
        assert_eq!(quoted.line, 6);
    }

    #[test]
    fn run_mount_from_anywhere_in_the_options() {
        let text = "FROM alpine AS base\n\
                    RUN --mount=type=bind,from=busybox:1.36,source=/bin,target=/b \\\n\
                    \x20   --mount=type=cache,target=/c,from=ghcr.io/o/cache:1 \\\n\
                    \x20   --mount=from=node:20,target=/n --mount=type=bind,FROM=base,target=/x \\\n\
                    \x20   --mount=type=tmpfs,target=/t --mount=type=bind,from=0 make\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(
            texts(&e),
            ["alpine", "busybox:1.36", "ghcr.io/o/cache:1", "node:20"]
        );
        for f in &e.references {
            assert_eq!(&text[f.span.clone()], f.text);
        }
        let lines: Vec<_> = e.references.iter().map(|f| f.line).collect();
        assert_eq!(lines, [1, 2, 3, 4]);
        assert_eq!(
            e.references[1].context,
            ctx(Some("base"), None, None, "RUN --mount")
        );
    }

    #[test]
    fn global_arg_is_reported_once_at_its_definition() {
        let text = format!(
            "ARG BASE=python:3.12-slim@{D}\n\
             ARG OTHER=unused:1\n\
             FROM --platform=linux/amd64 $BASE AS one\n\
             FROM ${{BASE}} AS two\n"
        );
        let e = run(&text);
        assert_clean(&e);
        let f = only(&e);
        assert_eq!(&text[f.span.clone()], format!("python:3.12-slim@{D}"));
        assert_eq!(f.line, 1);
        assert_eq!(f.span.start, "ARG BASE=".len());
        assert_eq!(&text[f.tag_span.clone().unwrap()], "3.12-slim");
        assert_eq!(
            f.context,
            ctx(Some("one"), Some("linux/amd64"), Some("BASE"), "FROM")
        );
    }

    #[test]
    fn quoted_and_multiple_arg_defaults() {
        let text = "ARG A=alpine:3.19 B=\"busybox:1.36\" C='nginx:1.25'\n\
                    FROM $A\nFROM ${B}\nFROM \"$C\"\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(texts(&e), ["alpine:3.19", "busybox:1.36", "nginx:1.25"]);
        for f in &e.references {
            assert_eq!(&text[f.span.clone()], f.text);
            assert_eq!(f.line, 1);
        }
        let args: Vec<_> = e
            .references
            .iter()
            .map(|f| f.context.arg.as_deref())
            .collect();
        assert_eq!(args, [Some("A"), Some("B"), Some("C")]);
    }

    #[test]
    fn the_latest_arg_definition_before_a_use_wins() {
        let text = "ARG BASE=alpine:1\nARG BASE=alpine:2\nFROM $BASE\n";
        let f = run(text).references.remove(0);
        assert_eq!(f.text, "alpine:2");
        assert_eq!(f.line, 2);
    }

    #[test]
    fn stage_args_serve_copy_from_and_mount_from() {
        let text = "ARG TOOLS=ghcr.io/o/tools:1\n\
                    FROM alpine AS a\n\
                    ARG TOOLS\n\
                    ARG CACHE=\"ghcr.io/o/cache:2\"\n\
                    COPY --from=$TOOLS /t /t\n\
                    RUN --mount=type=cache,from=${CACHE},target=/c true\n\
                    COPY --from=${TOOLS} /u /u\n\
                    FROM alpine AS b\n\
                    COPY --from=$CACHE /x /x\n";
        let e = run(text);
        assert_eq!(
            texts(&e),
            ["ghcr.io/o/tools:1", "alpine", "ghcr.io/o/cache:2", "alpine"]
        );
        let tools = &e.references[0];
        assert_eq!(&text[tools.span.clone()], "ghcr.io/o/tools:1");
        assert_eq!(tools.line, 1);
        assert_eq!(
            tools.context,
            ctx(Some("a"), None, Some("TOOLS"), "COPY --from")
        );
        let cache = &e.references[2];
        assert_eq!(&text[cache.span.clone()], "ghcr.io/o/cache:2");
        assert_eq!(cache.line, 4);
        assert_eq!(
            cache.context,
            ctx(Some("a"), None, Some("CACHE"), "RUN --mount")
        );
        // Stage b never declared CACHE.
        assert_eq!(e.skipped.len(), 1, "{:#?}", e.skipped);
        assert_eq!(e.skipped[0].line, 9);
        assert_eq!(e.skipped[0].text, "$CACHE");
        assert_eq!(
            e.skipped[0].reason,
            "variable CACHE is not declared by an ARG in this stage"
        );
    }

    #[test]
    fn arg_naming_a_stage_or_scratch_is_not_an_image() {
        let text = "ARG BASE=scratch\nFROM $BASE AS s\nFROM alpine AS build\nARG SRC=build\nCOPY --from=$SRC /a /b\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(texts(&e), ["alpine"]);
    }

    #[test]
    fn variables_that_cannot_be_resolved_are_skipped_with_their_names() {
        let text = "ARG PY=3.12\n\
                    ARG REGISTRY\n\
                    ARG NODEFAULT\n\
                    ARG EMPTY=\n\
                    ARG CHAIN=$PY\n\
                    FROM python:${PY}-slim\n\
                    FROM ${REGISTRY}/app:$PY\n\
                    FROM ${BASE:-python:3}\n\
                    FROM $NODEFAULT\n\
                    FROM $UNDECLARED\n\
                    FROM $EMPTY\n\
                    FROM $CHAIN\n";
        let e = run(text);
        assert!(e.references.is_empty(), "{:#?}", e.references);
        assert!(e.errors.is_empty(), "{:#?}", e.errors);
        let got: Vec<_> = e
            .skipped
            .iter()
            .map(|s| (s.line, s.text.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    5,
                    "$PY",
                    "default of ARG CHAIN: image is built from variables (PY); cannot be updated in place"
                ),
                (
                    6,
                    "python:${PY}-slim",
                    "image is built from variables (PY); cannot be updated in place"
                ),
                (
                    7,
                    "${REGISTRY}/app:$PY",
                    "image is built from variables (REGISTRY, PY); cannot be updated in place"
                ),
                (
                    8,
                    "${BASE:-python:3}",
                    "image uses variable BASE with an expansion modifier; cannot be updated in place"
                ),
                (
                    9,
                    "$NODEFAULT",
                    "ARG NODEFAULT has no default value; the image is chosen at build time"
                ),
                (
                    10,
                    "$UNDECLARED",
                    "variable UNDECLARED is not declared by an ARG before the first FROM"
                ),
                (11, "$EMPTY", "ARG EMPTY has an empty default value"),
            ]
        );
    }

    #[test]
    fn stage_args_are_not_seen_by_from_and_globals_need_redeclaring() {
        let text =
            "ARG G=ghcr.io/o/g:1\nFROM alpine\nARG S=busybox\nCOPY --from=$G /a /b\nFROM $S\n";
        let e = run(text);
        assert_eq!(texts(&e), ["alpine"]);
        let reasons: Vec<_> = e.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "variable G is not declared by an ARG in this stage",
                "variable S is not declared by an ARG before the first FROM"
            ]
        );
    }

    #[test]
    fn line_continuations_with_comments_and_blank_lines() {
        let text = "FROM \\\n  # the base image\n\n    python:3.12 \\\n  AS \\\n  build\nCOPY \\\n --from=nginx:1 /a /b\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(texts(&e), ["python:3.12", "nginx:1"]);
        assert_eq!(&text[e.references[0].span.clone()], "python:3.12");
        assert_eq!(e.references[0].line, 4);
        assert_eq!(e.references[0].context.stage.as_deref(), Some("build"));
        assert_eq!(&text[e.references[1].span.clone()], "nginx:1");
        assert_eq!(e.references[1].line, 8);
    }

    #[test]
    fn an_image_cut_by_a_continuation_is_skipped() {
        let text = "ARG B=alp\\\nine\nFROM pyth\\\non:3.12\nFROM $B\n";
        let e = run(text);
        assert!(e.references.is_empty(), "{:#?}", e.references);
        assert_eq!(e.skipped.len(), 2);
        assert_eq!(e.skipped[0].text, "alpine");
        assert_eq!(e.skipped[0].line, 1);
        assert!(e.skipped[0].reason.contains("line continuation"));
        assert_eq!(e.skipped[1].text, "python:3.12");
        assert_eq!(e.skipped[1].line, 3);
    }

    #[test]
    fn an_escaped_escape_is_not_a_continuation() {
        // `\\` at the end is not a continuation, so the next line is an instruction.
        let e = run("RUN echo \\\\\nFROM alpine:3\n");
        assert_eq!(texts(&e), ["alpine:3"]);
    }

    #[test]
    fn backtick_escape_directive_after_syntax() {
        let text = "# syntax=docker/dockerfile:1\n# escape=`\n\nARG WIN=\"mcr.microsoft.com/windows/nanoserver:ltsc2022\" X=C:\\x\nFROM $WIN AS w\nFROM mcr.microsoft.com/windows/servercore:ltsc2022 `\n    AS base\nRUN dir C:\\ `\n    && echo done\nCOPY `\n  --from=mcr.microsoft.com/powershell:lts C:\\a C:\\b\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(
            texts(&e),
            [
                "mcr.microsoft.com/windows/nanoserver:ltsc2022",
                "mcr.microsoft.com/windows/servercore:ltsc2022",
                "mcr.microsoft.com/powershell:lts"
            ]
        );
        let lines: Vec<_> = e.references.iter().map(|f| f.line).collect();
        assert_eq!(lines, [4, 6, 11]);
        assert_eq!(e.references[0].context.arg.as_deref(), Some("WIN"));
        assert_eq!(e.references[1].context.stage.as_deref(), Some("base"));
        for f in &e.references {
            assert_eq!(&text[f.span.clone()], f.text);
        }
    }

    #[test]
    fn escape_directive_only_counts_in_the_leading_block() {
        // After a plain comment the directive is a comment: the backtick is text.
        let e = run("# hello\n# escape=`\nFROM alpine `\n  AS x\n");
        assert!(e.references.is_empty());
        assert_eq!(e.errors.len(), 1, "{:#?}", e.errors);
        assert_eq!(e.errors[0].line, Some(3));
        // With a backslash escape still in force, `\` continues the line.
        let e = run("\n# escape=`\nFROM alpine \\\n  AS x\n");
        assert_clean(&e);
        assert_eq!(texts(&e), ["alpine"]);
    }

    #[test]
    fn bad_and_repeated_directives_are_errors() {
        let e = run("# escape=x\n# syntax=a\n# syntax=b\nFROM alpine\n");
        assert_eq!(texts(&e), ["alpine"]);
        let got: Vec<_> = e
            .errors
            .iter()
            .map(|x| (x.line, x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(1), "invalid escape character \"x\": must be ` or \\"),
                (Some(3), "only one syntax parser directive can be used")
            ]
        );
    }

    #[test]
    fn crlf_line_endings_keep_exact_spans() {
        let text = format!(
            "# syntax=docker/dockerfile:1\r\nARG BASE=\"alpine:3.19@{D}\"\r\nFROM $BASE AS base\r\nFROM \\\r\n  python:3.12\r\nCOPY --from=nginx:1.25\r\n"
        );
        let e = run(&text);
        assert_clean(&e);
        assert_eq!(
            texts(&e),
            [
                format!("alpine:3.19@{D}").as_str(),
                "python:3.12",
                "nginx:1.25"
            ]
        );
        let lines: Vec<_> = e.references.iter().map(|f| f.line).collect();
        assert_eq!(lines, [2, 5, 6]);
        for f in &e.references {
            assert_eq!(&text[f.span.clone()], f.text);
            assert!(!f.text.contains('\r'));
        }
    }

    #[test]
    fn crlf_with_backtick_escape() {
        let text = "# escape=`\r\nFROM `\r\n\r\n  alpine:3 AS a\r\n\r\nRUN --mount=from=busybox:1,target=/b `\r\n  true\r\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(texts(&e), ["alpine:3", "busybox:1"]);
        assert_eq!(e.references[0].line, 4);
        assert_eq!(e.references[1].line, 6);
        for f in &e.references {
            assert_eq!(&text[f.span.clone()], f.text);
        }
    }

    #[test]
    fn heredoc_bodies_are_never_read() {
        let text = "FROM alpine AS a\n\
                    RUN <<EOF\n\
                    FROM evil:1\n\
                    COPY --from=evil:2 / /\n\
                    EOF\n\
                    RUN <<-EOT bash\n\
                    \tFROM evil:3\n\
                    \t\tEOT\n\
                    COPY <<\"ONE\" <<'TWO' /dest/\n\
                    FROM evil:4\n\
                    ONE\n\
                    FROM evil:5\n\
                    TWO\n\
                    RUN --mount=from=busybox:1 cat <<EOF > /x && \\\n\
                    \x20 echo done\n\
                    FROM evil:6\n\
                    EOF\n\
                    ONBUILD RUN <<EOF\n\
                    FROM evil:7\n\
                    EOF\n\
                    ADD <<EOF /f\n\
                    FROM evil:8\n\
                    EOF\n\
                    FROM nginx:1.25\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(texts(&e), ["alpine", "busybox:1", "nginx:1.25"]);
        assert_eq!(e.references[2].line, 24);
    }

    #[test]
    fn heredoc_terminators_must_match_exactly() {
        // `<<EOF` (no dash) does not accept an indented terminator; CRLF does not matter.
        let text = "RUN <<EOF\r\nFROM evil:1\r\n\tEOF\r\n EOF\r\nEOF\r\nFROM ok:1\r\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(texts(&e), ["ok:1"]);
        assert_eq!(e.references[0].line, 6);
    }

    #[test]
    fn json_form_and_glued_markers_open_no_heredoc() {
        let e = run("RUN [\"sh\", \"-c\", \"cat <<EOF\"]\nFROM alpine:3\nEOF\n");
        assert_eq!(texts(&e), ["alpine:3"]);
        // BuildKit only treats a word starting with `<<` as a heredoc.
        let e = run("RUN cat<<EOF\nFROM alpine:3\n");
        assert_eq!(texts(&e), ["alpine:3"]);
        // Heredocs only exist in RUN, COPY and ADD.
        let e = run("LABEL x=<<EOF\nFROM alpine:3\n");
        assert_eq!(texts(&e), ["alpine:3"]);
    }

    #[test]
    fn unterminated_heredoc_is_an_error() {
        let e = run("FROM alpine\nRUN <<EOF\nFROM evil:1\n");
        assert_eq!(texts(&e), ["alpine"]);
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].line, Some(2));
        assert!(e.errors[0].message.contains("unterminated heredoc"));
    }

    #[test]
    fn invalid_images_are_errors_and_the_scan_goes_on() {
        let text = "FROM Python:3\nCOPY --from=a//b /x /y\nFROM alpine:3\n";
        let e = run(text);
        assert_eq!(texts(&e), ["alpine:3"]);
        let got: Vec<_> = e.errors.iter().map(|x| x.line).collect();
        assert_eq!(got, [Some(1), Some(2)]);
        assert!(
            e.errors[0].message.contains("lowercase"),
            "{}",
            e.errors[0].message
        );
        assert_eq!(e.errors[0].file, "Dockerfile");
    }

    #[test]
    fn malformed_lines_are_errors_and_the_scan_goes_on() {
        let text = "FROM\nFROM a b\nFROM a to b\nARG\nCOPY --from /a\nFROM \"\"\nFROM alpine:3\n";
        let e = run(text);
        assert_eq!(texts(&e), ["alpine:3"]);
        let got: Vec<_> = e
            .errors
            .iter()
            .map(|x| (x.line, x.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some(1),
                    "FROM requires either one or three arguments (FROM image [AS name]), found 0"
                ),
                (
                    Some(2),
                    "FROM requires either one or three arguments (FROM image [AS name]), found 2"
                ),
                (
                    Some(3),
                    "FROM expects AS before the stage name, found \"to\""
                ),
                (Some(4), "ARG requires at least one argument"),
                // Newer BuildKit reads `--from /a` as `--from=/a`.
                (Some(5), "invalid reference \"/a\": empty path component"),
                (Some(6), "empty image reference"),
            ]
        );
        assert!(e.skipped.is_empty());
    }

    #[test]
    fn quoted_from_image_span_is_inside_the_quotes() {
        let text = "FROM \"alpine:3\" AS a\nFROM 'busybox'\nFROM py\"thon\":3\n";
        let e = run(text);
        assert_eq!(texts(&e), ["alpine:3", "busybox"]);
        assert_eq!(&text[e.references[0].span.clone()], "alpine:3");
        assert_eq!(e.skipped.len(), 1);
        assert!(e.skipped[0].reason.contains("quotes"));
    }

    #[test]
    fn multibyte_text_before_images_keeps_byte_spans() {
        let text =
            "# café ☕\nLABEL desc=\"naïve\"\nFROM alpine:3 AS ünï\nCOPY --from=bü:1 /a /b\n";
        let e = run(text);
        assert_eq!(texts(&e), ["alpine:3"]);
        assert_eq!(&text[e.references[0].span.clone()], "alpine:3");
        assert_eq!(e.errors.len(), 1, "{:#?}", e.errors);
        assert_eq!(e.errors[0].line, Some(4));
    }

    #[test]
    fn onbuild_images_are_not_extracted() {
        let e = run("FROM alpine\nONBUILD COPY --from=evil:1 /a /b\n");
        assert_eq!(texts(&e), ["alpine"]);
    }

    #[test]
    fn empty_and_comment_only_files_yield_nothing() {
        for text in [
            "",
            "\n\n",
            "# syntax=docker/dockerfile:1\n",
            "\\",
            "RUN <<",
            "`",
        ] {
            assert_eq!(run(text), Extraction::default(), "{text:?}");
        }
    }

    #[test]
    fn results_come_in_file_order() {
        let text = "ARG A=alpine:1\nFROM busybox:1\nFROM $A\n";
        let e = run(text);
        assert_eq!(texts(&e), ["alpine:1", "busybox:1"]);
    }

    #[test]
    fn variables_are_found_with_their_extent() {
        let names = |t: &str| -> Vec<(String, Range<usize>, bool)> {
            variables(t, '\\')
                .into_iter()
                .map(|v| (v.name, v.range, v.plain))
                .collect()
        };
        assert_eq!(names("$A"), [("A".to_string(), 0..2, true)]);
        assert_eq!(names("${A}x"), [("A".to_string(), 0..4, true)]);
        assert_eq!(names("${A:-b}"), [("A".to_string(), 0..7, false)]);
        assert_eq!(names("a$"), []);
        assert_eq!(names("\\$A"), []);
        assert_eq!(names("${"), [(String::new(), 0..2, false)]);
    }

    fn check_invariants(text: &str) {
        let e = run(text);
        for f in &e.references {
            assert_eq!(text.get(f.span.clone()), Some(f.text.as_str()));
            assert_eq!(f.line, crate::extract::line_of(text, f.span.start));
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(text in "(?s).{0,200}") {
            check_invariants(&text);
        }

        #[test]
        fn line_index_matches_line_of(text in "(?s).{0,80}", offset in 0usize..100) {
            let lines = LineIndex::new(&text);
            proptest::prop_assert_eq!(lines.line_of(offset), crate::extract::line_of(&text, offset));
        }

        #[test]
        fn never_panics_on_dockerfile_like_text(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "FROM ", "from ", "ARG ", "COPY ", "RUN ", "ONBUILD ", "ADD ", " AS ", " as ",
                "--platform=", "--from=", "--mount=", "type=cache,", "from=", ",", "=",
                "<<", "<<-", "EOF", "\"EOF\"", "'", "\"", "\\", "`", "# escape=`", "# syntax=x",
                "#", "\n", "\r\n", "\r", " ", "\t", "$", "${", "}", ":-", "A", "B",
                "alpine", "python:3.12", ":", "@", "/", "sha256:", "0", "é", "[", "]",
                "scratch", "build",
            ]),
            0..60,
        )) {
            check_invariants(&parts.concat());
        }
    }
}
