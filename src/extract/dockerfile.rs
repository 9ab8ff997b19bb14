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
//! - Anything else with a variable in it (`python:${PY}-slim`, `${X:-python}:3`) is
//!   expanded and reported with its text as written; a pin goes after that text. What has
//!   no value to expand (an ARG with no default, a name no ARG declares without a default,
//!   platform ARGs, ENV) is skipped with a reason that names the variables.
//! - `COPY --from` and `RUN --mount` images get the stage's `FROM --platform`, since that
//!   is the platform BuildKit pulls them for.
//!
//! Quotes and escapes inside an image's text (`py"thon":3`) are removed as BuildKit does:
//! the reference is what BuildKit reads, its text what the file holds, and a pin goes after
//! that text.
//!
//! Not supported: images named inside `ONBUILD` triggers (they run in another build),
//! variables set by `ENV`, and chains of ARGs (`ARG A=$B`, skipped with a reason).

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
    /// `$X` with no ARG in scope; `global` for `FROM`.
    Undeclared {
        name: String,
        global: bool,
    },
    NoDefault(String),
    EmptyDefault(String),
    EmptyValue(Vec<String>),
    /// `$TARGETARCH` and friends: a value per platform being built.
    Platform(String),
    /// Set by `ENV` in the stage.
    Env(String),
    /// `${X#pattern}` and other expansions we do not evaluate.
    Unsupported(String),
    /// `${X:?message}` with X unset: the build requires the argument.
    Required(String),
    Syntax(&'static str),
    Split,
    /// The ARG default the image resolves to cannot be expanded itself.
    ArgDefault {
        arg: String,
        reason: Box<Skip>,
    },
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
            Skip::EmptyValue(names) => write!(
                f,
                "the image is empty once ARGs {} are expanded",
                names.join(", ")
            ),
            Skip::Platform(name) => write!(
                f,
                "variable {name} is set by the build for each target platform; no single image \
                 can be pinned"
            ),
            Skip::Env(name) => write!(
                f,
                "variable {name} is set by ENV in this stage; digestif reads only ARG defaults"
            ),
            Skip::Unsupported(form) => write!(
                f,
                "the image uses the expansion {form}, which digestif does not evaluate"
            ),
            Skip::Required(name) => {
                write!(f, "ARG {name} must be given at build time (${{{name}:?…}})")
            }
            Skip::Syntax(what) => write!(f, "the image text cannot be expanded: {what}"),
            Skip::Split => write!(
                f,
                "image text is split by a line continuation; cannot be updated in place"
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
    keep_shared_arg_defaults(&mut out);
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
}

enum Instruction {
    /// The value of the `# syntax=` directive: the frontend image BuildKit pulls.
    Syntax(Word),
    From {
        platform: Option<String>,
        /// `None` when the line is malformed; the stage still starts.
        image: Option<Word>,
        stage: Option<Word>,
    },
    Arg(Vec<ArgWord>),
    /// Names an `ENV` sets.
    Env(Vec<String>),
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
                    } else if key == "syntax" {
                        // `value` is a slice of `trimmed`, so its offset follows.
                        let at = first + (value.as_ptr() as usize - trimmed.as_ptr() as usize);
                        let mut word = Word::default();
                        word.push_str(value, at);
                        out.instructions.push(Instruction::Syntax(word));
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
                .map(|w| match w.text.find('=') {
                    Some(eq) => ArgWord {
                        name: w.slice(0..eq).text,
                        value: Some(w.slice(eq + 1..w.len())),
                    },
                    None => ArgWord {
                        name: w.text.clone(),
                        value: None,
                    },
                })
                .collect();
            Some(Instruction::Arg(defs))
        }
        "env" => {
            // `ENV A=1 B=2` or the old `ENV A 1`.
            let words = raw_words(&command.args, escape);
            let names = match words.first() {
                Some(w) if !w.text.contains('=') => vec![w.text.clone()],
                _ => words
                    .iter()
                    .filter_map(|w| w.text.split_once('=').map(|(n, _)| n.to_string()))
                    .collect(),
            };
            Some(Instruction::Env(names))
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

/// A digest written into an `ARG` default changes every image that `ARG` is part of. When
/// the `ARG` that holds a whole reference (`FROM ${BASE}`) is also part of another image
/// (`FROM ${BASE}:20`, or one skipped for another variable), the reference is listed but
/// not edited: its pin would break the other image (found by fuzzing).
fn keep_shared_arg_defaults(out: &mut Extraction) {
    let mut partly: HashMap<String, usize> = HashMap::new();
    for f in &out.references {
        for v in &f.context.variables {
            if f.context.arg.as_deref() != Some(v.as_str()) {
                partly.entry(v.clone()).or_insert(f.line);
            }
        }
    }
    for s in &out.skipped {
        for name in variable_names(&s.text) {
            partly.entry(name).or_insert(s.line);
        }
    }
    for f in &mut out.references {
        let Some(arg) = &f.context.arg else { continue };
        if f.not_editable.is_some() {
            continue;
        }
        if let Some(line) = partly.get(arg) {
            f.not_editable = Some(format!(
                "ARG {arg} is also part of the image on line {line}; a digest in its default \
                 would change that image too"
            ));
        }
    }
}

/// The names after `$` in `text` (`${A}`, `$A`, `${A:-x}`).
fn variable_names(text: &str) -> Vec<String> {
    text.split('$')
        .skip(1)
        .map(|rest| {
            rest.trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Where an image is used, which decides the ARGs and stage names it can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    Syntax,
    From,
    CopyFrom,
    MountFrom,
}

impl Site {
    fn location(self) -> &'static str {
        match self {
            Site::Syntax => "# syntax",
            Site::From => "FROM",
            Site::CopyFrom => "COPY --from",
            Site::MountFrom => "RUN --mount",
        }
    }
}

/// ARGs BuildKit sets for each platform it builds: their value is not in the file.
const PLATFORM_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// The one place in the file that holds a whole reference, where its digest goes.
#[derive(Debug, Clone)]
struct Holder {
    /// The text, without surrounding quotes.
    word: Word,
    /// The `ARG` whose default it is.
    arg: Option<String>,
}

/// Text after BuildKit's word expansion. Every byte keeps the file offset it came from
/// (a literal in the instruction or in an `ARG` default), so spans survive expansion.
#[derive(Debug, Clone, Default)]
struct Expanded {
    word: Word,
    /// ARGs the value was built from, in order of first use.
    vars: Vec<String>,
    /// Literal characters and expansions appended so far.
    pieces: usize,
    /// Set when the whole text is one expansion whose value one place holds.
    whole: Option<Holder>,
}

impl Expanded {
    fn literal(&mut self, w: Word) {
        self.word.text.push_str(&w.text);
        self.word.at.extend(w.at);
        self.pieces += 1;
        self.whole = None;
    }

    fn append(&mut self, v: &Expanded, holder: Option<Holder>) {
        self.word.text.push_str(&v.word.text);
        self.word.at.extend(&v.word.at);
        for name in &v.vars {
            self.var(name);
        }
        self.pieces += 1;
        self.whole = holder;
    }

    fn var(&mut self, name: &str) {
        if !self.vars.iter().any(|v| v == name) {
            self.vars.push(name.to_string());
        }
    }

    fn finish(mut self) -> Expanded {
        if self.pieces != 1 {
            self.whole = None;
        }
        self
    }
}

/// An `ARG`'s value as a build that passes no `--build-arg` sees it.
#[derive(Debug, Clone)]
enum Var {
    /// The expanded default, and where the reference goes when the default is one.
    Set(std::rc::Rc<(Expanded, Holder)>),
    /// Not set (no default, or not declared): `${X:-d}` gives `d`, `$X` is unknown.
    Unset(Skip),
    /// Only the build knows it.
    Unknown(Skip),
}

/// BuildKit's shell-word lexer (`shell.Lex`), on one word, with the file offsets kept.
struct Lexer<'a> {
    word: &'a Word,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Var,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.word.text.get(self.pos..)?.chars().next()
    }

    fn bump(&mut self) -> Option<(Range<usize>, char)> {
        let c = self.peek()?;
        let r = self.pos..self.pos + c.len_utf8();
        self.pos = r.end;
        Some((r, c))
    }

    fn take(&mut self, out: &mut Expanded) {
        if let Some((r, _)) = self.bump() {
            out.literal(self.word.slice(r));
        }
    }

    /// Reads until `stop` (consumed) or the end of the word.
    fn process(&mut self, stop: Option<char>) -> Result<Expanded, Skip> {
        let mut out = Expanded::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.bump();
                return Ok(out.finish());
            }
            match c {
                '\'' => {
                    self.bump();
                    loop {
                        match self.peek() {
                            None => return Err(Skip::Syntax("a single quote is not closed")),
                            Some('\'') => {
                                self.bump();
                                break;
                            }
                            Some(_) => self.take(&mut out),
                        }
                    }
                }
                '"' => {
                    self.bump();
                    loop {
                        match self.peek() {
                            None => return Err(Skip::Syntax("a double quote is not closed")),
                            Some('"') => {
                                self.bump();
                                break;
                            }
                            Some('$') => {
                                let (v, holder) = self.dollar()?;
                                out.append(&v, holder);
                            }
                            Some(e) if e == self.escape => {
                                let Some((r, _)) = self.bump() else { break };
                                match self.peek() {
                                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                                        self.take(&mut out)
                                    }
                                    // Other escapes stay as they are inside double quotes.
                                    Some(_) => out.literal(self.word.slice(r)),
                                    None => {}
                                }
                            }
                            Some(_) => self.take(&mut out),
                        }
                    }
                }
                '$' => {
                    let (v, holder) = self.dollar()?;
                    out.append(&v, holder);
                }
                e if e == self.escape => {
                    self.bump();
                    // An escape at the very end is dropped.
                    self.take(&mut out);
                }
                _ => self.take(&mut out),
            }
        }
        if stop.is_some() {
            return Err(Skip::Syntax("a ${ is not closed with }"));
        }
        Ok(out.finish())
    }

    /// A name after `$` as BuildKit's `processName` reads it.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                    self.bump();
                    name.push(c);
                }
                return name;
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.bump();
                return c.to_string();
            }
            _ => {}
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            self.bump();
            name.push(c);
        }
        name
    }

    /// `$NAME`, `${NAME}` and `${NAME<modifier>word}`, with where the value is held.
    fn dollar(&mut self) -> Result<(Expanded, Option<Holder>), Skip> {
        let Some((dollar, _)) = self.bump() else {
            return Ok((Expanded::default(), None));
        };
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                let mut lit = Expanded::default();
                lit.literal(self.word.slice(dollar));
                return Ok((lit, None));
            }
            return self.value(&name);
        }
        self.bump();
        if matches!(self.peek(), Some('{' | '}' | ':')) {
            return Err(Skip::Syntax("bad substitution"));
        }
        let name = self.name();
        let (colon, modifier) = match self.bump() {
            Some((_, '}')) => return self.value(&name),
            Some((_, ':')) => match self.bump() {
                Some((_, m @ ('-' | '+' | '?'))) => (true, m),
                Some((_, m)) => return Err(Skip::Unsupported(format!("${{{name}:{m}…}}"))),
                None => return Err(Skip::Syntax("a ${ is not closed with }")),
            },
            Some((_, m @ ('-' | '+' | '?'))) => (false, m),
            Some((_, m @ ('#' | '%' | '/' | '^' | ','))) => {
                return Err(Skip::Unsupported(format!("${{{name}{m}…}}")));
            }
            _ => return Err(Skip::Syntax("a ${ is not closed with }")),
        };
        let start = self.pos;
        let word = self.process(Some('}'))?;
        let raw = self.word.slice(start..self.pos.saturating_sub(1));
        let value = match (self.lookup)(&name) {
            Var::Unknown(reason) => return Err(reason),
            Var::Set(v) => Some(v),
            Var::Unset(_) => None,
        };
        let set = value.is_some();
        let empty = value.as_ref().is_none_or(|v| v.0.word.text.is_empty());
        let unset = !set || (colon && empty);
        let mut out = Expanded::default();
        out.var(&name);
        let holder = match modifier {
            '-' if unset => {
                let holder = word.whole.clone().unwrap_or_else(|| Holder {
                    word: strip_quotes(&raw),
                    arg: None,
                });
                out.append(&word, None);
                Some(holder)
            }
            '+' if !unset => {
                out.append(&word, None);
                None
            }
            '+' => None,
            '?' if unset => return Err(Skip::Required(name)),
            _ => match &value {
                Some(v) => {
                    out.append(&v.0, None);
                    Some(v.1.clone())
                }
                None => None,
            },
        };
        Ok((out, holder))
    }

    fn value(&mut self, name: &str) -> Result<(Expanded, Option<Holder>), Skip> {
        match (self.lookup)(name) {
            Var::Set(v) => {
                let mut out = Expanded::default();
                out.var(name);
                out.append(&v.0, None);
                Ok((out, Some(v.1.clone())))
            }
            Var::Unset(reason) | Var::Unknown(reason) => Err(reason),
        }
    }
}

/// Expands `word` as BuildKit would, with `lookup` giving each variable's value.
fn expand(word: &Word, escape: char, lookup: &dyn Fn(&str) -> Var) -> Result<Expanded, Skip> {
    Lexer {
        word,
        pos: 0,
        escape,
        lookup,
    }
    .process(None)
}

/// `"img"` or `'img'` → `img`, when one pair of quotes wraps the whole word.
fn strip_quotes(word: &Word) -> Word {
    let t = word.text.as_bytes();
    match (t.first(), t.last()) {
        (Some(&q @ (b'"' | b'\'')), Some(&l))
            if t.len() >= 2 && q == l && !t[1..t.len() - 1].contains(&q) =>
        {
            word.slice(1..word.len() - 1)
        }
        _ => word.clone(),
    }
}

/// What an image text turned out to be.
enum Class {
    Image(Expanded),
    /// `scratch`, a stage name or index.
    NotImage,
    Skip(Skip),
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
    global_args: HashMap<String, Var>,
    stage_args: HashMap<String, Var>,
    /// Names the current stage sets with `ENV` (they win over ARGs of the same name).
    stage_env: HashSet<String>,
    in_stage: bool,
    stage: Option<String>,
    platform: Option<String>,
    /// Places already reported (holder start), with the line of the reference.
    reported: HashSet<usize>,
    /// Digest spans already reported, with the line that has them.
    digests: HashMap<usize, usize>,
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
            stage_env: HashSet::new(),
            in_stage: false,
            stage: None,
            platform: None,
            reported: HashSet::new(),
            digests: HashMap::new(),
            out: Extraction::default(),
        }
    }

    fn apply(&mut self, instruction: &Instruction) {
        match instruction {
            Instruction::Syntax(word) => {
                let image = Expanded {
                    word: word.clone(),
                    pieces: 1,
                    ..Expanded::default()
                };
                self.use_expanded(word, image, Site::Syntax);
            }
            Instruction::From {
                platform,
                image,
                stage,
            } => {
                self.in_stage = true;
                self.stage_args.clear();
                self.stage_env.clear();
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
                    let var = self.define(d);
                    if self.in_stage {
                        self.stage_args.insert(d.name.clone(), var);
                    } else {
                        self.global_args.insert(d.name.clone(), var);
                    }
                }
            }
            Instruction::Env(names) => {
                if self.in_stage {
                    self.stage_env.extend(names.iter().cloned());
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

    /// The value an `ARG` gives its name from here on.
    fn define(&self, d: &ArgWord) -> Var {
        let Some(value) = &d.value else {
            // `ARG X` in a stage brings the global value of X into the stage.
            if self.in_stage
                && let Some(global) = self.global_args.get(&d.name)
            {
                return global.clone();
            }
            return Var::Unset(Skip::NoDefault(d.name.clone()));
        };
        let site = if self.in_stage {
            Site::CopyFrom
        } else {
            Site::From
        };
        match expand(value, self.escape, &|n| self.lookup(n, site)) {
            Ok(e) => {
                let holder = e.whole.clone().unwrap_or_else(|| Holder {
                    word: strip_quotes(value),
                    arg: Some(d.name.clone()),
                });
                Var::Set(std::rc::Rc::new((e, holder)))
            }
            Err(reason) => Var::Unknown(Skip::ArgDefault {
                arg: d.name.clone(),
                reason: Box::new(reason),
            }),
        }
    }

    fn lookup(&self, name: &str, site: Site) -> Var {
        if PLATFORM_ARGS.contains(&name) {
            return Var::Unknown(Skip::Platform(name.to_string()));
        }
        let scope = match site {
            Site::Syntax | Site::From => &self.global_args,
            Site::CopyFrom | Site::MountFrom => {
                if self.stage_env.contains(name) {
                    return Var::Unknown(Skip::Env(name.to_string()));
                }
                &self.stage_args
            }
        };
        match scope.get(name) {
            Some(v) => v.clone(),
            None => Var::Unset(Skip::Undeclared {
                name: name.to_string(),
                global: site == Site::From,
            }),
        }
    }

    fn context(&self, site: Site) -> Context {
        match site {
            Site::Syntax => Context {
                location: Some(site.location().to_string()),
                ..Context::default()
            },
            _ => Context {
                stage: self.stage.clone(),
                platform: self.platform.clone(),
                location: Some(site.location().to_string()),
                ..Context::default()
            },
        }
    }

    fn use_image(&mut self, word: &Word, site: Site) {
        match expand(word, self.escape, &|n| self.lookup(n, site)) {
            Ok(e) => self.use_expanded(word, e, site),
            Err(reason) => self.skip(word, &reason),
        }
    }

    fn use_expanded(&mut self, word: &Word, image: Expanded, site: Site) {
        match self.classify(image, site) {
            Class::Image(image) => self.record(word, image, site),
            Class::NotImage => {}
            Class::Skip(reason) => self.skip(word, &reason),
        }
    }

    fn classify(&self, image: Expanded, site: Site) -> Class {
        if image.word.text.is_empty() {
            return match image.vars.as_slice() {
                [] => Class::Image(image),
                [one] => Class::Skip(Skip::EmptyDefault(one.clone())),
                more => Class::Skip(Skip::EmptyValue(more.to_vec())),
            };
        }
        let lower = image.word.text.to_ascii_lowercase();
        let not_image = match site {
            Site::Syntax => false,
            Site::From => lower == "scratch" || self.earlier_stages.contains(&lower),
            Site::CopyFrom | Site::MountFrom => {
                lower == "scratch"
                    || self.all_stages.contains(&lower)
                    || lower.bytes().all(|b| b.is_ascii_digit())
            }
        };
        if not_image {
            Class::NotImage
        } else {
            Class::Image(image)
        }
    }

    /// Reports `image` (what `word` expands to) once per place that holds it.
    fn record(&mut self, word: &Word, image: Expanded, site: Site) {
        if image.word.text.is_empty() {
            let line = word.offset().map(|o| self.lines.line_of(o));
            let message = ReferenceError::Empty.to_string();
            self.out.errors.push(self.source.error(line, message));
            return;
        }
        let holder = image.whole.clone().unwrap_or_else(|| Holder {
            word: strip_quotes(word),
            arg: None,
        });
        let Some(start) = holder.word.offset() else {
            return;
        };
        if !self.reported.insert(start) {
            return;
        }
        let line = self.lines.line_of(start);
        let (reference, parts) = match reference::parse_with_parts(&image.word.text) {
            Ok(p) => p,
            Err(e) => {
                self.out
                    .errors
                    .push(self.source.error(Some(line), e.to_string()));
                return;
            }
        };
        let mut not_editable = None;
        let span = match holder.word.span() {
            Some(span) => span,
            None => {
                not_editable = Some(Skip::Split.to_string());
                let end = holder.word.at.last().map_or(start, |e| e + 1);
                start..end
            }
        };
        let place = |r: Range<usize>| image.word.slice(r).span();
        let digest_span = match parts.digest.clone() {
            Some(r) => match place(r) {
                Some(d) => match self.digests.get(&d.start) {
                    Some(&other) => {
                        not_editable = Some(format!(
                            "its digest is written once for this and the reference on line {other}"
                        ));
                        Some(d)
                    }
                    None => {
                        self.digests.insert(d.start, line);
                        Some(d)
                    }
                },
                None => {
                    not_editable = Some(
                        "the digest is put together from several places (variables, quotes or a \
                         line continuation); digestif cannot write it in one place"
                            .to_string(),
                    );
                    None
                }
            },
            None => None,
        };
        let mut context = self.context(site);
        context.arg = holder.arg.clone();
        context.variables = image.vars.clone();
        self.out.references.push(Found {
            file: self.source.file.to_string(),
            line,
            kind: self.source.kind,
            reference,
            text: self
                .source
                .text
                .get(span.clone())
                .unwrap_or_default()
                .to_string(),
            name_span: place(parts.name).unwrap_or_else(|| span.clone()),
            tag_span: parts.tag.and_then(place),
            digest_span,
            pin_insert: None,
            span,
            context,
            not_editable,
        });
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

/// Whether `text` reads as a Dockerfile: its first instruction is `FROM` or `ARG`, or it
/// starts with a parser directive. Used to confirm files whose name only suggests one.
pub fn looks_like_dockerfile(text: &str) -> bool {
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if i == 0
                && directive(line)
                    .is_some_and(|(key, _)| matches!(key.as_str(), "escape" | "syntax" | "check"))
            {
                return true;
            }
            continue;
        }
        let word = line
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or_default();
        return word.eq_ignore_ascii_case("from") || word.eq_ignore_ascii_case("arg");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Kind;
    use crate::reference::Digest;

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
            ..Context::default()
        }
    }

    fn with_vars(mut c: Context, vars: &[&str]) -> Context {
        c.variables = vars.iter().map(|v| v.to_string()).collect();
        c
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
            with_vars(
                ctx(Some("one"), Some("linux/amd64"), Some("BASE"), "FROM"),
                &["BASE"]
            )
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
            with_vars(
                ctx(Some("a"), None, Some("TOOLS"), "COPY --from"),
                &["TOOLS"]
            )
        );
        let cache = &e.references[2];
        assert_eq!(&text[cache.span.clone()], "ghcr.io/o/cache:2");
        assert_eq!(cache.line, 4);
        assert_eq!(
            cache.context,
            with_vars(
                ctx(Some("a"), None, Some("CACHE"), "RUN --mount"),
                &["CACHE"]
            )
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
    fn variables_without_a_value_in_the_file_are_skipped_with_their_names() {
        let text = "ARG PY=3.12\n\
                    ARG REGISTRY\n\
                    ARG NODEFAULT\n\
                    ARG EMPTY=\n\
                    ARG CHAIN=${NODEFAULT}\n\
                    FROM ${REGISTRY}/app:$PY\n\
                    FROM $NODEFAULT\n\
                    FROM $UNDECLARED\n\
                    FROM $EMPTY\n\
                    FROM $CHAIN\n\
                    FROM --platform=$BUILDPLATFORM app-${TARGETARCH}:1\n\
                    FROM app:${PY#3.}\n\
                    FROM app:${PY:?}${X:?setX}\n\
                    FROM ${EMPTY}${EMPTY}\n";
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
                    6,
                    "${REGISTRY}/app:$PY",
                    "ARG REGISTRY has no default value; the image is chosen at build time"
                ),
                (
                    7,
                    "$NODEFAULT",
                    "ARG NODEFAULT has no default value; the image is chosen at build time"
                ),
                (
                    8,
                    "$UNDECLARED",
                    "variable UNDECLARED is not declared by an ARG before the first FROM"
                ),
                (9, "$EMPTY", "ARG EMPTY has an empty default value"),
                (
                    10,
                    "$CHAIN",
                    "default of ARG CHAIN: ARG NODEFAULT has no default value; the image is \
                     chosen at build time"
                ),
                (
                    11,
                    "app-${TARGETARCH}:1",
                    "variable TARGETARCH is set by the build for each target platform; no \
                     single image can be pinned"
                ),
                (
                    12,
                    "app:${PY#3.}",
                    "the image uses the expansion ${PY#…}, which digestif does not evaluate"
                ),
                (
                    13,
                    "app:${PY:?}${X:?setX}",
                    "ARG X must be given at build time (${X:?…})"
                ),
                (
                    14,
                    "${EMPTY}${EMPTY}",
                    "ARG EMPTY has an empty default value"
                ),
            ]
        );
    }

    #[test]
    fn from_built_from_several_args_is_resolved_and_pinned_after_the_image_text() {
        // docker/buildx's Dockerfile, shortened.
        let text = "# syntax=docker/dockerfile:1\n\
                    \n\
                    ARG GO_VERSION=1.26\n\
                    ARG ALPINE_VERSION=3.23\n\
                    ARG XX_VERSION=1.9.0\n\
                    ARG ALPINE_TAG=\"${ALPINE_VERSION}.1\"\n\
                    \n\
                    FROM --platform=$BUILDPLATFORM tonistiigi/xx:${XX_VERSION} AS xx\n\
                    FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS golatest\n\
                    FROM alpine:\"${ALPINE_TAG}\" AS runtime\n\
                    COPY --from=xx / /\n";
        let e = run(text);
        assert_clean(&e);
        let got: Vec<_> = e
            .references
            .iter()
            .map(|f| {
                (
                    f.line,
                    f.reference.to_string(),
                    f.text.as_str(),
                    f.context.variables.join(","),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    1,
                    "docker.io/docker/dockerfile:1".to_string(),
                    "docker/dockerfile:1",
                    String::new()
                ),
                (
                    8,
                    "docker.io/tonistiigi/xx:1.9.0".to_string(),
                    "tonistiigi/xx:${XX_VERSION}",
                    "XX_VERSION".to_string()
                ),
                (
                    9,
                    "docker.io/library/golang:1.26-alpine3.23".to_string(),
                    "golang:${GO_VERSION}-alpine${ALPINE_VERSION}",
                    "GO_VERSION,ALPINE_VERSION".to_string()
                ),
                (
                    10,
                    "docker.io/library/alpine:3.23.1".to_string(),
                    "alpine:\"${ALPINE_TAG}\"",
                    "ALPINE_TAG,ALPINE_VERSION".to_string()
                ),
            ]
        );
        for f in &e.references {
            assert_eq!(&text[f.span.clone()], f.text);
            assert_eq!(f.not_editable, None);
            assert_eq!(f.context.arg, None);
        }
        assert_eq!(
            e.references[2].context,
            with_vars(
                ctx(Some("golatest"), Some("$BUILDPLATFORM"), None, "FROM"),
                &["GO_VERSION", "ALPINE_VERSION"]
            )
        );
        // The tag is not written in one place, the name is.
        assert_eq!(e.references[2].tag_span, None);
        assert_eq!(&text[e.references[2].name_span.clone()], "golang");
        assert_eq!(
            e.references[0].context,
            Context {
                location: Some("# syntax".into()),
                ..Context::default()
            }
        );
    }

    #[test]
    fn a_digest_in_the_from_text_or_in_an_arg_is_edited_where_it_is() {
        let text = format!(
            "ARG V=1.26\nARG DIGEST={D}\n\
             FROM golang:${{V}}@{D} AS a\n\
             FROM golang:${{V}}-alpine@${{DIGEST}} AS b\n\
             FROM golang:${{V}}-bookworm@sha256:${{DIGEST#sha256:}} AS c\n"
        );
        let e = run(&text);
        assert_eq!(e.references.len(), 2, "{:#?}", e);
        let a = &e.references[0];
        assert_eq!(a.line, 3);
        assert_eq!(a.text, format!("golang:${{V}}@{D}"));
        assert_eq!(&text[a.digest_span.clone().unwrap()], D);
        assert_eq!(
            a.digest_span.clone().unwrap().start,
            text.find("@sha").unwrap() + 1
        );
        let b = &e.references[1];
        assert_eq!(b.line, 4);
        assert_eq!(b.reference.tag.as_deref(), Some("1.26-alpine"));
        // The digest comes from `ARG DIGEST`, on line 2: that is where it is edited.
        assert_eq!(
            b.digest_span.clone().unwrap().start,
            "ARG V=1.26\nARG DIGEST=".len()
        );
        assert!(e.references.iter().all(|f| f.not_editable.is_none()));
        assert_eq!(e.skipped.len(), 1);
        assert!(e.skipped[0].reason.contains("${DIGEST#…}"));
    }

    #[test]
    fn a_digest_put_together_from_several_places_is_listed_not_editable() {
        let hex = &D["sha256:".len()..];
        let text = format!(
            "ARG HEX={hex}\nARG V=3\n\
             FROM alpine:$V@sha256:$HEX\n\
             FROM busybox@${{ALGO:-sha256}}:{hex}\n"
        );
        let e = run(&text);
        assert!(e.skipped.is_empty() && e.errors.is_empty(), "{e:#?}");
        let got: Vec<_> = e
            .references
            .iter()
            .map(|f| (f.line, f.reference.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (3, format!("docker.io/library/alpine:3@{D}")),
                (4, format!("docker.io/library/busybox@{D}")),
            ]
        );
        for f in &e.references {
            assert_eq!(f.digest_span, None);
            let why = f.not_editable.as_deref().unwrap();
            assert!(why.contains("put together from several places"), "{why}");
            let digest: Digest = D.parse().unwrap();
            assert_eq!(crate::edit::set_digest(f, &digest), None);
        }
    }

    #[test]
    fn one_arg_digest_used_by_two_froms_is_edited_once() {
        let text = format!("ARG D={D}\nFROM alpine:3@$D\nFROM busybox:1@$D\n");
        let e = run(&text);
        assert_eq!(e.references.len(), 2);
        assert_eq!(e.references[0].not_editable, None);
        assert!(
            e.references[1]
                .not_editable
                .as_deref()
                .unwrap()
                .contains("reference on line 2")
        );
    }

    #[test]
    fn defaults_hold_the_whole_reference_through_chains_and_default_forms() {
        let text = "ARG PY=3.12\n\
                    ARG BASE=python:${PY}-slim\n\
                    ARG ALIAS=$BASE\n\
                    ARG OPT\n\
                    FROM ${ALIAS} AS a\n\
                    FROM ${OPT:-\"node:22\"} AS b\n\
                    FROM ${OPT:-redis}:${PY} AS c\n";
        let e = run(text);
        assert_clean(&e);
        let got: Vec<_> = e
            .references
            .iter()
            .map(|f| {
                (
                    f.line,
                    f.reference.to_string(),
                    f.text.as_str(),
                    f.context.arg.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                // The chain ends at ARG BASE, whose default holds the reference.
                (
                    2,
                    "docker.io/library/python:3.12-slim".to_string(),
                    "python:${PY}-slim",
                    Some("BASE")
                ),
                // `${OPT:-…}`: the default is the reference, edited inside the braces.
                (6, "docker.io/library/node:22".to_string(), "node:22", None),
                (
                    7,
                    "docker.io/library/redis:3.12".to_string(),
                    "${OPT:-redis}:${PY}",
                    None
                ),
            ]
        );
        for f in &e.references {
            assert_eq!(&text[f.span.clone()], f.text);
        }
    }

    #[test]
    fn syntax_directive_only_in_the_leading_block() {
        let d = format!("# syntax = docker.io/docker/dockerfile:1.7@{D}  \nFROM alpine\n");
        let e = run(&d);
        assert_clean(&e);
        let f = &e.references[0];
        assert_eq!(f.text, format!("docker.io/docker/dockerfile:1.7@{D}"));
        assert_eq!(&d[f.digest_span.clone().unwrap()], D);
        assert_eq!(f.context.location.as_deref(), Some("# syntax"));
        // After a comment or an instruction it is a comment.
        for text in [
            "# hello\n# syntax=docker/dockerfile:1\nFROM alpine\n",
            "FROM alpine\n# syntax=docker/dockerfile:1\n",
        ] {
            assert_eq!(texts(&run(text)), ["alpine"], "{text}");
        }
        // Case of the key does not matter; an invalid value is an error on its line.
        assert_eq!(
            texts(&run("#SYNTAX=docker/dockerfile:1\n")),
            ["docker/dockerfile:1"]
        );
        let e = run("# syntax=Docker/Dockerfile\nFROM alpine\n");
        assert_eq!(texts(&e), ["alpine"]);
        assert_eq!(e.errors[0].line, Some(1));
    }

    #[test]
    fn stage_variables_set_by_env_are_not_guessed() {
        let text = "FROM alpine AS a\nARG T=ghcr.io/o/t:1\nENV T=other:2\nCOPY --from=$T /a /b\n";
        let e = run(text);
        assert_eq!(texts(&e), ["alpine"]);
        assert!(
            e.skipped[0].reason.contains("set by ENV"),
            "{:?}",
            e.skipped
        );
    }

    #[test]
    fn content_says_whether_a_file_is_a_dockerfile() {
        for yes in [
            "FROM alpine\n",
            "\n# comment\n\narg V=1\nFROM alpine:$V\n",
            "# syntax=docker/dockerfile:1\nRUN x\n",
            "# escape=`\n",
        ] {
            assert!(looks_like_dockerfile(yes), "{yes:?}");
        }
        for no in [
            "",
            "//! Rust\nfn main() {}\n",
            "# Title\n\nThis image…\n",
            "RUN echo\n",
            "# hello\n# syntax=docker/dockerfile:1\nRUN x\n",
        ] {
            assert!(!looks_like_dockerfile(no), "{no:?}");
        }
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
    fn an_image_cut_by_a_continuation_is_listed_but_not_editable() {
        let text = "ARG B=alp\\\nine\nFROM pyth\\\non:3.12\nFROM $B\n";
        let e = run(text);
        assert_clean(&e);
        let got: Vec<_> = e
            .references
            .iter()
            .map(|f| (f.line, f.reference.to_string(), f.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "docker.io/library/alpine:latest".into(), "alp\\\nine"),
                (3, "docker.io/library/python:3.12".into(), "pyth\\\non:3.12")
            ]
        );
        for f in &e.references {
            assert!(
                f.not_editable
                    .as_ref()
                    .unwrap()
                    .contains("line continuation")
            );
            assert_eq!(&text[f.span.clone()], f.text);
        }
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
                "docker/dockerfile:1",
                "mcr.microsoft.com/windows/nanoserver:ltsc2022",
                "mcr.microsoft.com/windows/servercore:ltsc2022",
                "mcr.microsoft.com/powershell:lts"
            ]
        );
        let lines: Vec<_> = e.references.iter().map(|f| f.line).collect();
        assert_eq!(lines, [1, 4, 6, 11]);
        assert_eq!(e.references[1].context.arg.as_deref(), Some("WIN"));
        assert_eq!(e.references[2].context.stage.as_deref(), Some("base"));
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
        // The first syntax directive counts; the repeated one is an error.
        assert_eq!(texts(&e), ["a", "alpine"]);
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
                "docker/dockerfile:1",
                format!("alpine:3.19@{D}").as_str(),
                "python:3.12",
                "nginx:1.25"
            ]
        );
        let lines: Vec<_> = e.references.iter().map(|f| f.line).collect();
        assert_eq!(lines, [1, 2, 5, 6]);
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
    fn an_arg_default_that_is_also_part_of_another_image_is_not_edited() {
        // Found by fuzzing: a pin at the end of `node` would make the second image
        // `node@sha256:…56:20`.
        let text = "ARG NODE_IMAGE=node\nFROM ${NODE_IMAGE} AS a\nFROM ${NODE_IMAGE}56:20\n";
        let e = run(text);
        assert_eq!(e.references.len(), 2);
        let whole = &e.references[0];
        assert_eq!(whole.context.arg.as_deref(), Some("NODE_IMAGE"));
        let reason = whole.not_editable.as_deref().unwrap_or_default();
        assert!(
            reason.contains("also part of the image on line 3"),
            "{reason}"
        );
        assert_eq!(e.references[1].not_editable, None);
        // Alone, the ARG default is where the pin goes.
        let e = run("ARG NODE_IMAGE=node\nFROM ${NODE_IMAGE} AS a\n");
        assert_eq!(e.references[0].not_editable, None);
        // Also when the other image is skipped (TAG has no value here).
        let e = run("ARG B=node\nARG TAG\nFROM ${B} AS a\nFROM ${B}:${TAG}\n");
        assert!(e.references[0].not_editable.is_some(), "{e:#?}");
    }

    #[test]
    fn quoted_from_image_span_is_inside_the_quotes() {
        let text = "FROM \"alpine:3\" AS a\nFROM 'busybox'\nFROM py\"thon\":3\n";
        let e = run(text);
        assert_clean(&e);
        assert_eq!(texts(&e), ["alpine:3", "busybox", "py\"thon\":3"]);
        assert_eq!(&text[e.references[0].span.clone()], "alpine:3");
        // Quotes inside the text are removed as BuildKit does; the pin goes after them.
        assert_eq!(
            e.references[2].reference.to_string(),
            "docker.io/library/python:3"
        );
        assert_eq!(e.references[2].not_editable, None);
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
        for text in ["", "\n\n", "# not=a directive\n", "\\", "RUN <<", "`"] {
            assert_eq!(run(text), Extraction::default(), "{text:?}");
        }
    }

    #[test]
    fn results_come_in_file_order() {
        let text = "ARG A=alpine:1\nFROM busybox:1\nFROM $A\n";
        let e = run(text);
        assert_eq!(texts(&e), ["alpine:1", "busybox:1"]);
    }

    /// Expands `word` with `vars` as global ARG defaults (each written `ARG K=V` first).
    fn expanded(vars: &[(&str, &str)], word: &str) -> Result<String, String> {
        let mut text: String = vars.iter().map(|(k, v)| format!("ARG {k}={v}\n")).collect();
        text.push_str(&format!("FROM {word}\n"));
        let e = run(&text);
        match (e.references.first(), e.skipped.first(), e.errors.first()) {
            (Some(f), _, _) => Ok(f.reference.to_string()),
            (_, Some(s), _) => Err(s.reason.clone()),
            (_, _, Some(x)) => Err(x.message.clone()),
            _ => Err("nothing".into()),
        }
    }

    #[test]
    fn expansion_follows_buildkit() {
        let v = [("A", "1.26"), ("E", "\"\""), ("Q", "\"3.24.1\"")];
        let ok = |word: &str, want: &str| {
            assert_eq!(expanded(&v, word).as_deref(), Ok(want), "{word}");
        };
        ok("golang:${A}-alpine", "docker.io/library/golang:1.26-alpine");
        ok("golang:$A", "docker.io/library/golang:1.26");
        ok("alpine:\"${Q}\"", "docker.io/library/alpine:3.24.1");
        ok("alpine:${Q}", "docker.io/library/alpine:3.24.1");
        ok("golang:${X:-1.25}", "docker.io/library/golang:1.25");
        ok("golang:${X-1.25}", "docker.io/library/golang:1.25");
        ok("golang:${A:-1.25}", "docker.io/library/golang:1.26");
        // `:-` takes the default for an empty value too; `-` only for an unset one.
        ok("golang:${E:-1.25}", "docker.io/library/golang:1.25");
        ok("golang:1${E-.25}", "docker.io/library/golang:1");
        ok("golang${A:+:$A}", "docker.io/library/golang:1.26");
        ok("golang${X:+:$A}", "docker.io/library/golang:latest");
        ok("golang${E+:1}", "docker.io/library/golang:1");
        ok("golang:${A:?needA}", "docker.io/library/golang:1.26");
        ok("'golang:1'", "docker.io/library/golang:1");
        ok("\"golang:$A\"", "docker.io/library/golang:1.26");
        ok("gol\\ang:1", "docker.io/library/golang:1");

        let err = |word: &str, want: &str| {
            let got = expanded(&v, word).unwrap_err();
            assert!(got.contains(want), "{word}: {got}");
        };
        err("golang:${X:?needX}", "must be given at build time");
        // An escaped `$` is a dollar sign, which no tag may hold.
        err("golang:\\$A", "invalid tag \"$A\"");
        err("golang:${A#1.}", "does not evaluate");
        err("golang:${A", "not closed");
        err("golang:${}", "bad substitution");
        err("golang:\"$A", "not closed");
        err("alpine-${TARGETARCH}:3", "for each target platform");
        err("golang:${TARGETARCH:-amd64}", "for each target platform");
        err("golang:$X", "not declared by an ARG before the first FROM");
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
