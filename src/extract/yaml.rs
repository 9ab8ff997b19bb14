//! YAML with source positions, shared by the compose, Kubernetes and Actions extractors.
//!
//! We build a small tree from saphyr-parser's events rather than use a loader, because we
//! need to know, for every scalar, where its text sits in the file and how it was written
//! (plain, quoted, block). YAML is never written back: edits change only the bytes of the
//! image text, so everything here is about finding those bytes exactly, or saying why not.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

use super::{Context, Extraction, Source, line_of};

/// Index of a node in [`Yaml`].
pub(crate) type NodeId = usize;

/// How deep `<<` merge keys are followed: real files use one or two levels, and the limit
/// bounds the recursion on hostile input.
const MERGE_DEPTH: usize = 8;

pub(crate) enum Value<'a> {
    Scalar(Cow<'a, str>, ScalarStyle),
    Mapping(Vec<(NodeId, NodeId)>),
    Sequence(Vec<NodeId>),
    /// `*name`: the anchored node, `None` if the parser let an unknown anchor through.
    /// Kept as a pointer, never copied, so "billion laughs" files stay small.
    Alias(Option<NodeId>),
}

struct Node<'a> {
    value: Value<'a>,
    /// Byte offset where the node starts, including any `!tag` or `&anchor` before it.
    start: usize,
    /// Byte offset where the parser says the node ends (may include trailing blanks).
    end: usize,
}

struct ParseError {
    line: Option<usize>,
    message: String,
    /// The broken text contains `{{`: an unrendered Helm/Go template, not a mistake to fix.
    template: bool,
    /// `image:` lines still visible in the broken text: (offset of the value, its text).
    images: Vec<(usize, String)>,
}

/// The documents of one YAML file, as a tree of nodes with byte positions.
pub(crate) struct Yaml<'a> {
    text: &'a str,
    nodes: Vec<Node<'a>>,
    documents: Vec<NodeId>,
    errors: Vec<ParseError>,
}

impl<'a> Yaml<'a> {
    /// Parses every document of `text`.
    ///
    /// The whole stream is parsed first. If that fails, the text is cut at `---` lines and
    /// each piece is parsed alone, so one broken document (a Helm template, a bad merge)
    /// does not hide the references in the others; each broken piece yields one error.
    pub(crate) fn parse(text: &'a str) -> Yaml<'a> {
        let mut yaml = Yaml {
            text,
            nodes: Vec::new(),
            documents: Vec::new(),
            errors: Vec::new(),
        };
        let Err(whole) = yaml.parse_piece(0, text.len()) else {
            return yaml;
        };
        yaml.nodes.clear();
        yaml.documents.clear();
        let pieces = pieces(text);
        if pieces.len() == 1 {
            yaml.errors.push(yaml.error(whole, 0, text.len()));
            return yaml;
        }
        for (start, end) in pieces {
            let (nodes, documents) = (yaml.nodes.len(), yaml.documents.len());
            if let Err(e) = yaml.parse_piece(start, end) {
                yaml.nodes.truncate(nodes);
                yaml.documents.truncate(documents);
                yaml.errors.push(yaml.error(e, start, end));
            }
        }
        if yaml.errors.is_empty() {
            // Each piece parses alone but the stream does not (e.g. directives between
            // documents): keep what the pieces gave and still report the stream's error.
            yaml.errors.push(yaml.error(whole, 0, text.len()));
        }
        yaml
    }

    /// `e` happened at byte `at` of the file, while parsing `text[start..end]`.
    fn error(&self, (e, at): (ScanError, usize), start: usize, end: usize) -> ParseError {
        let piece = self.text.get(start..end).unwrap_or_default();
        ParseError {
            // From the offset, not the parser's line count: it also counts lone `\r` as breaks.
            line: Some(line_of(self.text, at)),
            message: format!(
                "invalid YAML: {} (column {})",
                e.info(),
                e.marker().col() + 1
            ),
            template: piece.contains("{{"),
            images: image_lines(self.text, start, end),
        }
    }

    /// Parses `text[start..end]`, adding its documents. On error the caller drops what was
    /// added, since a half-built document could put references in the wrong place.
    ///
    /// The parser is stricter than Docker Compose's (Go yaml.v3), kubectl's and PyYAML's
    /// (all libyaml-like) about one thing real files do: lines inside a flow collection
    /// (`[ … ]`, `{ … }`) indented no deeper than the key that holds it, such as a closing
    /// `]` at the key's own column. Those loaders ignore indentation inside flow
    /// collections, so when the strict parse fails, such lines are indented in a copy, the
    /// copy is parsed, and its positions are mapped back to the file's bytes.
    fn parse_piece(&mut self, start: usize, end: usize) -> Result<(), (ScanError, usize)> {
        let piece = self.text.get(start..end).unwrap_or_default();
        let strict = self.parse_events(piece, &Remap::none(start), |v| v);
        let Err(e) = strict else {
            return Ok(());
        };
        let Some((relaxed, remap)) = relax_flow_indentation(piece, start) else {
            return Err(e);
        };
        self.parse_events(&relaxed, &remap, |v| Cow::Owned(v.into_owned()))
            .map_err(|_| e)
    }

    /// Builds nodes from the events of `src`, whose byte `b` is byte `remap.map(b)` of the
    /// file. `own` turns the parser's strings into ones that live as long as the file.
    fn parse_events<'b>(
        &mut self,
        src: &'b str,
        remap: &Remap,
        own: impl Fn(Cow<'b, str>) -> Cow<'a, str>,
    ) -> Result<(), (ScanError, usize)> {
        let (nodes, documents) = (self.nodes.len(), self.documents.len());
        let mut offsets = Offsets::new(src);
        let mut parser = Parser::new_from_str(src);
        // Open collections, each with the key waiting for its value when it is a mapping.
        let mut open: Vec<(NodeId, Option<NodeId>)> = Vec::new();
        let mut anchors: HashMap<usize, NodeId> = HashMap::new();
        while let Some(event) = parser.next_event() {
            let (event, span) = match event {
                Ok(ok) => ok,
                Err(e) => {
                    self.nodes.truncate(nodes);
                    self.documents.truncate(documents);
                    let at = remap.map(offsets.byte(e.marker().index()));
                    return Err((e, at));
                }
            };
            let from = remap.map(offsets.byte(span.start.index()));
            let to = remap.map(offsets.byte(span.end.index()));
            let done = match event {
                Event::Scalar(value, style, anchor, _) => Some(self.add(
                    Value::Scalar(own(value), style),
                    from,
                    to,
                    anchor,
                    &mut anchors,
                )),
                Event::Alias(anchor) => {
                    let target = anchors.get(&anchor).copied();
                    Some(self.add(Value::Alias(target), from, to, 0, &mut anchors))
                }
                Event::SequenceStart(anchor, _) => {
                    let id = self.add(Value::Sequence(Vec::new()), from, to, anchor, &mut anchors);
                    open.push((id, None));
                    None
                }
                Event::MappingStart(anchor, _) => {
                    let id = self.add(Value::Mapping(Vec::new()), from, to, anchor, &mut anchors);
                    open.push((id, None));
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => open.pop().map(|(id, _)| {
                    if let Some(node) = self.nodes.get_mut(id) {
                        node.end = to.max(node.start);
                    }
                    id
                }),
                Event::StreamStart
                | Event::StreamEnd
                | Event::DocumentStart(_)
                | Event::DocumentEnd
                | Event::Nothing => None,
            };
            let Some(id) = done else { continue };
            match open.last_mut() {
                None => self.documents.push(id),
                Some((parent, key)) => match self.nodes.get_mut(*parent).map(|n| &mut n.value) {
                    Some(Value::Sequence(items)) => items.push(id),
                    Some(Value::Mapping(entries)) => match key.take() {
                        Some(k) => entries.push((k, id)),
                        None => *key = Some(id),
                    },
                    _ => {}
                },
            }
        }
        Ok(())
    }

    fn add(
        &mut self,
        value: Value<'a>,
        start: usize,
        end: usize,
        anchor: usize,
        anchors: &mut HashMap<usize, NodeId>,
    ) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node { value, start, end });
        if anchor != 0 {
            anchors.insert(anchor, id);
        }
        id
    }

    /// The file's text.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// The root node of each document that parsed.
    pub(crate) fn documents(&self) -> &[NodeId] {
        &self.documents
    }

    /// The node itself, or the node an alias points to.
    pub(crate) fn resolve(&self, id: NodeId) -> NodeId {
        match self.nodes.get(id).map(|n| &n.value) {
            Some(Value::Alias(Some(target))) => *target,
            _ => id,
        }
    }

    /// The node's value without following aliases (walkers that recurse use this so that
    /// cyclic or exponential aliases cannot make them loop).
    pub(crate) fn raw(&self, id: NodeId) -> Option<&Value<'a>> {
        self.nodes.get(id).map(|n| &n.value)
    }

    fn value(&self, id: NodeId) -> Option<&Value<'a>> {
        self.raw(self.resolve(id))
    }

    /// The scalar's value, following an alias.
    pub(crate) fn str(&self, id: NodeId) -> Option<&str> {
        match self.value(id)? {
            Value::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn sequence(&self, id: NodeId) -> Option<&[NodeId]> {
        match self.value(id)? {
            Value::Sequence(items) => Some(items),
            _ => None,
        }
    }

    fn mapping(&self, id: NodeId) -> Option<&[(NodeId, NodeId)]> {
        match self.value(id)? {
            Value::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value of `key` in the mapping `map`, honouring `<<` merge keys (compose files use
    /// them for shared service settings). Like most loaders, a repeated key's last value wins.
    pub(crate) fn get(&self, map: NodeId, key: &str) -> Option<NodeId> {
        let own = |entries: &[(NodeId, NodeId)]| {
            entries
                .iter()
                .rev()
                .find(|(k, _)| self.str(*k) == Some(key))
                .map(|&(_, v)| v)
        };
        let entries = self.mapping(map)?;
        if let Some(v) = own(entries) {
            return Some(v);
        }
        if !entries.iter().any(|&(k, _)| self.is_merge_key(k)) {
            return None;
        }
        self.merge_chain(map)
            .into_iter()
            .skip(1)
            .find_map(|m| self.mapping(m).and_then(own))
    }

    /// `map` and the mappings it merges in (`<<: *a` or `<<: [*a, *b]`, recursively), highest
    /// precedence first. Each mapping appears once, so cyclic or fanned-out merges stay cheap.
    fn merge_chain(&self, map: NodeId) -> Vec<NodeId> {
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        self.visit_merges(self.resolve(map), 0, &mut chain, &mut seen);
        chain
    }

    fn visit_merges(
        &self,
        map: NodeId,
        depth: usize,
        chain: &mut Vec<NodeId>,
        seen: &mut HashSet<NodeId>,
    ) {
        let Some(entries) = self.mapping(map) else {
            return;
        };
        if !seen.insert(map) {
            return;
        }
        chain.push(map);
        if depth >= MERGE_DEPTH {
            return;
        }
        for &(k, v) in entries {
            if !self.is_merge_key(k) {
                continue;
            }
            match self.value(v) {
                Some(Value::Mapping(_)) => {
                    self.visit_merges(self.resolve(v), depth + 1, chain, seen)
                }
                Some(Value::Sequence(items)) => {
                    for &item in items {
                        self.visit_merges(self.resolve(item), depth + 1, chain, seen);
                    }
                }
                _ => {}
            }
        }
    }

    fn is_merge_key(&self, k: NodeId) -> bool {
        matches!(self.raw(k), Some(Value::Scalar(s, ScalarStyle::Plain)) if s == "<<")
    }

    /// The string-keyed entries of a mapping, in file order, merge keys applied.
    pub(crate) fn entries(&self, map: NodeId) -> Vec<(&str, NodeId)> {
        let mut out: Vec<(&str, NodeId)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, m) in self.merge_chain(map).into_iter().enumerate() {
            for &(k, v) in self.mapping(m).unwrap_or_default() {
                if self.is_merge_key(k) {
                    continue;
                }
                let Some(key) = self.str(k) else { continue };
                match index.get(key).copied() {
                    // A repeated own key overrides; merged keys never override.
                    Some(at) if i == 0 => {
                        if let Some(entry) = out.get_mut(at) {
                            entry.1 = v;
                        }
                    }
                    Some(_) => {}
                    None => {
                        index.insert(key, out.len());
                        out.push((key, v));
                    }
                }
            }
        }
        out
    }

    /// The key and value nodes of `key` written in the mapping `map` itself (merged-in
    /// entries are elsewhere in the file, so nothing can be written next to them).
    pub(crate) fn own_entry(&self, map: NodeId, key: &str) -> Option<(NodeId, NodeId)> {
        self.mapping(map)?
            .iter()
            .rev()
            .find(|&&(k, _)| matches!(self.raw(k), Some(Value::Scalar(s, _)) if s == key))
            .copied()
    }

    /// A scalar's value, style and where its text starts in the file (aliases followed), or
    /// why its bytes cannot be edited as its value.
    pub(crate) fn scalar_text(
        &self,
        id: NodeId,
    ) -> Result<(usize, &str, ScalarStyle), &'static str> {
        let id = self.resolve(id);
        let at = self.locate(id)?;
        match self.raw(id) {
            Some(Value::Scalar(value, style)) => Ok((at, value, *style)),
            _ => Err("the value is not a string"),
        }
    }

    /// Where the node's own text starts (after any `!tag` or `&anchor`).
    pub(crate) fn start_of(&self, id: NodeId) -> usize {
        self.nodes
            .get(self.resolve(id))
            .map_or(0, |n| skip_properties(self.text, n.start))
    }

    /// Whether the mapping or sequence `id` is written in flow style (`{ … }`, `[ … ]`).
    pub(crate) fn is_flow(&self, id: NodeId) -> bool {
        matches!(
            self.text.as_bytes().get(self.start_of(id)),
            Some(b'{' | b'[')
        )
    }

    /// The byte offset where the scalar's text starts in the file: the first character of a
    /// plain scalar, or the one after the opening quote. An error says why the bytes there
    /// cannot be edited as the scalar's value.
    fn locate(&self, id: NodeId) -> Result<usize, &'static str> {
        let Some(node) = self.nodes.get(id) else {
            return Err("could not locate the value in the file");
        };
        let Value::Scalar(value, style) = &node.value else {
            return Err("the value is not a string");
        };
        let at = skip_properties(self.text, node.start);
        let bytes = self.text.as_bytes();
        let quote = match style {
            ScalarStyle::Plain => {
                let end = at + value.len();
                return if self.text.get(at..end) == Some(value) && end == node.end {
                    Ok(at)
                } else {
                    Err("plain value continues over several lines")
                };
            }
            ScalarStyle::Literal | ScalarStyle::Folded => {
                return Err("written as a block scalar (| or >); write it on one line");
            }
            ScalarStyle::SingleQuoted => b'\'',
            ScalarStyle::DoubleQuoted => b'"',
        };
        let inner = at + 1;
        let end = inner + value.len();
        if bytes.get(at) == Some(&quote)
            && self.text.get(inner..end) == Some(value)
            && bytes.get(end) == Some(&quote)
        {
            Ok(inner)
        } else if quote == b'"' {
            Err("quoted value uses escape sequences or continues over several lines")
        } else {
            Err("quoted value uses '' escapes or continues over several lines")
        }
    }

    /// The first line of the node's source text, for messages about non-string values.
    fn snippet(&self, id: NodeId) -> &str {
        let Some(node) = self.nodes.get(id) else {
            return "";
        };
        let text = self.text.get(node.start..node.end).unwrap_or_default();
        let line = text.split(['\n', '\r']).next().unwrap_or_default().trim();
        match line.char_indices().nth(80) {
            Some((cut, _)) => &line[..cut],
            None => line,
        }
    }
}

/// Skips `!tag` and `&anchor` properties (and the blanks and comments after them), which the
/// parser includes in the scalar's span.
fn skip_properties(text: &str, mut at: usize) -> usize {
    let bytes = text.as_bytes();
    while matches!(bytes.get(at), Some(b'!' | b'&')) {
        while bytes.get(at).is_some_and(|b| !b" \t\r\n".contains(b)) {
            at += 1;
        }
        loop {
            match bytes.get(at) {
                Some(b' ' | b'\t' | b'\r' | b'\n') => at += 1,
                Some(b'#') => {
                    while bytes.get(at).is_some_and(|&b| b != b'\n') {
                        at += 1;
                    }
                }
                _ => break,
            }
        }
    }
    at
}

/// Byte ranges of the documents of `text`, cut before each `---` line (a line that starts
/// with `---` and a blank always starts a document, even inside a block scalar). Directive
/// and comment lines stay with the `---` that follows them.
fn pieces(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut content = false;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let b = line.as_bytes();
        let marker = b.starts_with(b"---")
            && b.get(3)
                .is_none_or(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'));
        if marker && content {
            out.push((start, at));
            start = at;
            content = false;
        }
        let blank = line.trim_start().is_empty();
        if marker || !(blank || b.starts_with(b"#") || b.starts_with(b"%")) {
            content = true;
        }
        at += line.len();
    }
    out.push((start, text.len()));
    out
}

/// Maps byte offsets of a copy of `text[base..]` with spaces inserted back to the file.
struct Remap {
    base: usize,
    /// (offset in the copy where inserted spaces start, how many, how many before them).
    inserts: Vec<(usize, usize, usize)>,
}

impl Remap {
    fn none(base: usize) -> Self {
        Remap {
            base,
            inserts: Vec::new(),
        }
    }

    fn map(&self, at: usize) -> usize {
        let i = self.inserts.partition_point(|&(start, _, _)| start <= at);
        match i.checked_sub(1).and_then(|i| self.inserts.get(i)) {
            None => self.base + at,
            // Inside inserted spaces: the line's original start.
            Some(&(start, n, before)) if at < start + n => self.base + start - before,
            Some(&(_, n, before)) => self.base + at - before - n,
        }
    }
}

/// A copy of `piece` (at byte `base` of the file) in which every line that starts inside
/// a flow collection is indented past the collection's opening bracket, or `None` when no
/// line needs it. Indentation inside flow collections means nothing to YAML's content
/// (quoted and plain scalars fold leading blanks away), so the copy parses to the same
/// values; lines that start inside a quoted scalar are left alone.
fn relax_flow_indentation(piece: &str, base: usize) -> Option<(String, Remap)> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut out = String::with_capacity(piece.len() + 64);
    let mut remap = Remap::none(base);
    let mut added = 0;
    // Column the lines of the outermost open flow collection must pass, and the depth.
    let mut need = 0;
    let mut depth = 0usize;
    let mut quote = Quote::None;
    // Lines more indented than this belong to a block scalar (`|`, `>`) and are skipped.
    let mut block_scalar: Option<usize> = None;
    for line in piece.split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let blank = line.trim().is_empty();
        if let Some(b) = block_scalar {
            if blank || indent > b {
                out.push_str(line);
                continue;
            }
            block_scalar = None;
        }
        if depth > 0 && quote == Quote::None && !blank && indent < need {
            let n = need - indent;
            remap.inserts.push((out.len(), n, added));
            added += n;
            out.extend(std::iter::repeat_n(' ', n));
        }
        out.push_str(line);
        let chars: Vec<char> = line.chars().collect();
        let mut node_start = true;
        let mut col = 0;
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            let next = chars.get(i + 1).copied();
            let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
            let blank_next = next.is_none_or(|n| n.is_whitespace());
            match quote {
                Quote::Single => {
                    if c == '\'' {
                        if next == Some('\'') {
                            i += 1;
                        } else {
                            quote = Quote::None;
                        }
                    }
                }
                Quote::Double => {
                    if c == '\\' {
                        i += 1;
                    } else if c == '"' {
                        quote = Quote::None;
                    }
                }
                Quote::None if c == '#' && prev.is_none_or(char::is_whitespace) => break,
                Quote::None if depth > 0 => match c {
                    '[' | '{' => depth += 1,
                    ']' | '}' => depth -= 1,
                    '\'' | '"' if prev.is_none_or(|p| p.is_whitespace() || "[{,:".contains(p)) => {
                        quote = if c == '"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        };
                    }
                    _ => {}
                },
                Quote::None => match c {
                    ' ' | '\t' => {}
                    '-' | '?' | ':' if blank_next => node_start = true,
                    '[' | '{' if node_start => {
                        depth = 1;
                        need = col + 1;
                    }
                    '\'' | '"' if node_start => {
                        quote = if c == '"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        };
                        node_start = false;
                    }
                    '|' | '>' if node_start => {
                        block_scalar = Some(indent);
                        break;
                    }
                    _ => node_start = false,
                },
            }
            i += 1;
            col = i;
        }
    }
    (added > 0).then_some((out, remap))
}

/// The `image:` keys on the lines of `text[start..end]`, for a file that cannot be parsed:
/// (offset of the value, the value without quotes). What is found here is only reported
/// as skipped, never edited, so a rough reading of the line is enough.
fn image_lines(text: &str, start: usize, end: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut at = start;
    for line in text
        .get(start..end)
        .unwrap_or_default()
        .split_inclusive('\n')
    {
        let here = at;
        at += line.len();
        let mut rest = line.trim_start();
        while let Some(r) = rest.strip_prefix("- ") {
            rest = r.trim_start();
        }
        let key = ["image:", "\"image\":", "'image':"]
            .iter()
            .find_map(|k| rest.strip_prefix(k));
        let Some(value) = key else { continue };
        if !value.is_empty() && !value.starts_with([' ', '\t', '\r', '\n']) {
            continue;
        }
        let value = value.trim_start();
        let value = match value.find(" #") {
            Some(cut) => &value[..cut],
            None => value,
        }
        .trim_end();
        // Where `value` starts in `line` (it is a suffix of it, less what was trimmed).
        let mut value_at =
            line.len() - line.trim_start().len() + (line.trim_start().len() - rest.len());
        value_at += rest.len() - rest.trim_start_matches(|c: char| c != ':').len() + 1;
        let after_key = &line[value_at..];
        value_at += after_key.len() - after_key.trim_start().len();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|&q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)));
        let value = match unquoted {
            Some(v) => {
                value_at += 1;
                v
            }
            None => value,
        };
        if !value.is_empty() {
            out.push((here + value_at, value.to_string()));
        }
    }
    out
}

/// Converts the parser's character indices to byte offsets. Positions mostly move forward,
/// so a cursor is cheaper than a table; ASCII text (the common case) maps one to one.
struct Offsets<'a> {
    text: &'a str,
    ascii: bool,
    chars: usize,
    byte: usize,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        Offsets {
            text,
            ascii: text.is_ascii(),
            chars: 0,
            byte: 0,
        }
    }

    fn byte(&mut self, chars: usize) -> usize {
        if self.ascii {
            return chars.min(self.text.len());
        }
        if chars < self.chars / 2 {
            self.chars = 0;
            self.byte = 0;
        }
        while self.chars < chars {
            match self
                .text
                .get(self.byte..)
                .and_then(|rest| rest.chars().next())
            {
                Some(c) => {
                    self.byte += c.len_utf8();
                    self.chars += 1;
                }
                None => break,
            }
        }
        while self.chars > chars {
            match self
                .text
                .get(..self.byte)
                .and_then(|before| before.chars().next_back())
            {
                Some(c) => {
                    self.byte -= c.len_utf8();
                    self.chars -= 1;
                }
                None => break,
            }
        }
        self.byte
    }
}

/// Collects one file's references, skips and errors while an extractor walks its [`Yaml`].
pub(crate) struct Collector<'s, 'a> {
    source: &'s Source<'a>,
    yaml: &'s Yaml<'a>,
    out: Extraction,
    /// Offsets already reported: an anchored image used by several services is one piece
    /// of text, reported once, since two edits of the same bytes would collide.
    seen: HashSet<usize>,
}

/// Where in a value the image text is (`docker://alpine` → `alpine`, `${IMAGE:-nginx}` →
/// `nginx`), or why the value must be left alone (variables, templates).
pub(crate) type Check = fn(&str) -> Result<Range<usize>, &'static str>;

impl<'s, 'a> Collector<'s, 'a> {
    /// Starts collecting, reporting the file's YAML errors: unrendered templates are skipped
    /// with a reason (there is nothing to fix), anything else is an error.
    pub(crate) fn new(source: &'s Source<'a>, yaml: &'s Yaml<'a>) -> Self {
        let mut out = Extraction::default();
        for e in &yaml.errors {
            if e.template {
                out.skipped.push(super::Skipped {
                    file: source.file.to_string(),
                    line: e.line.unwrap_or(0),
                    text: String::new(),
                    reason: format!(
                        "not valid YAML, looks like an unrendered template ({{{{ … }}}}): {}",
                        e.message
                    ),
                });
            } else {
                out.errors.push(source.error(e.line, e.message.clone()));
            }
            // Never drop an image silently: what can still be seen is listed with the error.
            for (at, value) in &e.images {
                out.skipped.push(source.skipped(
                    *at,
                    value,
                    format!("not read: the YAML around it is invalid ({})", e.message),
                ));
            }
        }
        Collector {
            source,
            yaml,
            out,
            seen: HashSet::new(),
        }
    }

    /// Reports the image written in the scalar `node` (the part of it `check` picks) as a
    /// reference, a skip or an error.
    pub(crate) fn image(&mut self, node: NodeId, context: Context, check: Check) {
        let yaml = self.yaml;
        let id = yaml.resolve(node);
        let Some(Value::Scalar(value, style)) = yaml.raw(id) else {
            if let Some(Value::Mapping(_) | Value::Sequence(_)) = yaml.raw(id) {
                let text = yaml.snippet(id);
                let reason = if text.contains("{{") {
                    "uses template syntax ({{ … }})"
                } else {
                    "the image is not a string"
                };
                let at = yaml.nodes.get(id).map_or(0, |n| n.start);
                self.skip(at, text, reason);
            }
            return;
        };
        let located = yaml.locate(id);
        let at = match located {
            Ok(start) => start,
            Err(_) => yaml
                .nodes
                .get(id)
                .map_or(0, |n| skip_properties(yaml.text, n.start)),
        };
        let null = *style == ScalarStyle::Plain
            && matches!(value.as_ref(), "~" | "null" | "Null" | "NULL");
        if value.is_empty() || null {
            self.skip(at, value, "the image is empty");
            return;
        }
        let part = match check(value) {
            Ok(part) => part,
            Err(reason) => {
                self.skip(at, value, reason);
                return;
            }
        };
        let start = match located {
            Ok(start) => start + part.start,
            Err(reason) => {
                self.skip(at, value, reason);
                return;
            }
        };
        let Some(image) = value.get(part) else {
            return;
        };
        if self.seen.insert(start) {
            self.source.push(&mut self.out, start, image, context);
        }
    }

    /// Whether the scalar `node` holds text that parses as an image reference, written so
    /// that it can be edited in place. For keys that are images only by convention.
    pub(crate) fn is_image_text(&self, node: NodeId) -> bool {
        let id = self.yaml.resolve(node);
        let Some(Value::Scalar(value, style)) = self.yaml.raw(id) else {
            return false;
        };
        // A plain `true`, `12` or `1.5` is a YAML boolean or number, not a name.
        let typed = *style == ScalarStyle::Plain
            && (matches!(
                value.as_ref(),
                "true"
                    | "false"
                    | "True"
                    | "False"
                    | "TRUE"
                    | "FALSE"
                    | "yes"
                    | "no"
                    | "on"
                    | "off"
            ) || value.parse::<f64>().is_ok());
        !typed && crate::reference::Reference::parse(value).is_ok() && self.yaml.locate(id).is_ok()
    }

    /// The file being read.
    pub(crate) fn source(&self) -> &Source<'a> {
        self.source
    }

    /// Reports a reference an extractor put together itself (from several keys). One
    /// piece of text shared by two of them (a YAML alias) is written once: the second is
    /// listed, never edited, as two edits of the same bytes would collide.
    pub(crate) fn found(&mut self, mut f: super::Found) {
        if !self.seen.insert(f.span.start) {
            f.not_editable = Some(
                "its text is shared (a YAML alias) with another image; digestif cannot write \
                 a digest for both"
                    .to_string(),
            );
        }
        self.out.references.push(f);
    }

    /// Reports `text` at byte `at` as skipped for `reason`.
    pub(crate) fn skipped(&mut self, at: usize, text: &str, reason: &str) {
        self.skip(at, text, reason);
    }

    /// Reports an error at byte `at`.
    pub(crate) fn error(&mut self, at: usize, message: String) {
        let line = self.source.line_of(at);
        self.out.errors.push(self.source.error(Some(line), message));
    }

    fn skip(&mut self, at: usize, text: &str, reason: &str) {
        if self.seen.insert(at) {
            self.out.skipped.push(self.source.skipped(at, text, reason));
        }
    }

    /// The extraction, in file order.
    pub(crate) fn finish(mut self) -> Extraction {
        self.out.references.sort_by_key(|f| f.span.start);
        self.out.skipped.sort_by_key(|s| s.line);
        self.out.errors.sort_by_key(|e| e.line);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Kind;

    fn scalar_at<'a>(yaml: &'a Yaml<'_>, path: &[&str]) -> (NodeId, &'a str) {
        let mut node = yaml.documents()[0];
        for key in path {
            node = yaml.get(node, key).unwrap();
        }
        (node, yaml.str(node).unwrap())
    }

    /// The file text at the located scalar.
    fn located(text: &str, path: &[&str]) -> Result<String, &'static str> {
        let yaml = Yaml::parse(text);
        let (node, value) = scalar_at(&yaml, path);
        let at = yaml.locate(yaml.resolve(node))?;
        Ok(text[at..at + value.len()].to_string())
    }

    #[test]
    fn plain_and_quoted_scalars_are_located_exactly() {
        assert_eq!(
            located("a: nginx:1.25 # c\n", &["a"]).as_deref(),
            Ok("nginx:1.25")
        );
        assert_eq!(located("a:   'x:1'   # c\n", &["a"]).as_deref(), Ok("x:1"));
        assert_eq!(located("a: \"x:1\"  \n", &["a"]).as_deref(), Ok("x:1"));
        assert_eq!(located("a: x\r\nb: y\r\n", &["b"]).as_deref(), Ok("y"));
        assert_eq!(located("a: x", &["a"]).as_deref(), Ok("x"));
        assert_eq!(located("a: !!str x\n", &["a"]).as_deref(), Ok("x"));
        assert_eq!(
            located("a: &anchor !!str 'x'\n", &["a"]).as_deref(),
            Ok("x")
        );
        assert_eq!(located("a: !!str # why\n  x\n", &["a"]).as_deref(), Ok("x"));
        assert_eq!(located("a: &i x\nb: *i\n", &["b"]).as_deref(), Ok("x"));
        assert_eq!(
            located("# ünïcødé\na: x # é\nb: é\nc: y\n", &["c"]).as_deref(),
            Ok("y")
        );
        assert_eq!(located("{a: x, b: \"y\"}", &["b"]).as_deref(), Ok("y"));
    }

    #[test]
    fn values_that_are_not_their_text_are_not_located() {
        assert!(located("a: \"x\\ty\"\n", &["a"]).is_err());
        assert!(located("a: 'it''s'\n", &["a"]).is_err());
        assert!(located("a: multi\n  line\n", &["a"]).is_err());
        assert!(located("a: \"multi\n  line\"\n", &["a"]).is_err());
        assert!(located("a: |\n  x\n", &["a"]).is_err());
        assert!(located("a: >-\n  x\n", &["a"]).is_err());
    }

    #[test]
    fn character_indices_become_byte_offsets() {
        let text = "é€😀ab";
        let mut o = Offsets::new(text);
        assert_eq!(o.byte(3), 9);
        assert_eq!(o.byte(1), 2);
        assert_eq!(o.byte(4), 10);
        assert_eq!(o.byte(0), 0);
        assert_eq!(o.byte(99), text.len());
    }

    #[test]
    fn merge_keys_and_aliases() {
        let text = "base: &b\n  image: x\n  p: 1\nsvc:\n  <<: *b\n  p: 2\nmore:\n  <<: [*b]\n";
        let yaml = Yaml::parse(text);
        let root = yaml.documents()[0];
        let svc = yaml.get(root, "svc").unwrap();
        assert_eq!(yaml.str(yaml.get(svc, "image").unwrap()), Some("x"));
        assert_eq!(yaml.str(yaml.get(svc, "p").unwrap()), Some("2"));
        let keys: Vec<_> = yaml.entries(svc).iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["p", "image"]);
        let more = yaml.get(root, "more").unwrap();
        assert_eq!(yaml.str(yaml.get(more, "image").unwrap()), Some("x"));
        // A mapping that merges itself must not loop.
        let yaml = Yaml::parse("a: &a\n  <<: *a\n  b: 1\n");
        let a = yaml.get(yaml.documents()[0], "a").unwrap();
        assert_eq!(yaml.get(a, "zzz"), None);
    }

    #[test]
    fn a_broken_document_does_not_hide_the_others() {
        let text = "a: 1\n---\nb: [\n---\nc: 3\n";
        let yaml = Yaml::parse(text);
        assert_eq!(yaml.documents().len(), 2);
        assert_eq!(yaml.errors.len(), 1);
        // The parser notices the unclosed `[` where its document ends.
        assert_eq!(yaml.errors[0].line, Some(4));
        let c = yaml.get(yaml.documents()[1], "c").unwrap();
        assert_eq!(yaml.str(c), Some("3"));
    }

    #[test]
    fn flow_collections_may_close_at_the_key_column() {
        // Accepted by yaml.v3 and PyYAML; positions stay those of the file's own bytes.
        let text = "a:\r\n  t: [\r\n    \"é\",\r\n  'x',\r\n  ]\r\n  m: {k: v,\r\n  w: 1}\r\n  i: \"nginx:1\"\r\n";
        let yaml = Yaml::parse(text);
        assert!(yaml.errors.is_empty(), "{:?}", yaml.errors.len());
        let a = yaml.get(yaml.documents()[0], "a").unwrap();
        let t = yaml.sequence(yaml.get(a, "t").unwrap()).unwrap().to_vec();
        let items: Vec<_> = t.iter().map(|&i| yaml.str(i).unwrap()).collect();
        assert_eq!(items, ["é", "x"]);
        let x = t[1];
        let at = yaml.locate(x).unwrap();
        assert_eq!(&text[at..at + 1], "x");
        let m = yaml.get(a, "m").unwrap();
        assert_eq!(yaml.str(yaml.get(m, "w").unwrap()), Some("1"));
        assert_eq!(located(text, &["a", "i"]).as_deref(), Ok("nginx:1"));
        // A block scalar's brackets are text, and a flow opened inside quotes is not one.
        let text = "a: |\n  [\nb: 'it''s [ok'\nc: [1,\n  2]\n";
        assert!(Yaml::parse(text).errors.is_empty());
    }

    #[test]
    fn remap_points_into_the_file() {
        let r = Remap {
            base: 10,
            inserts: vec![(5, 3, 0), (20, 2, 3)],
        };
        assert_eq!(r.map(0), 10);
        assert_eq!(r.map(4), 14);
        assert_eq!(r.map(6), 15);
        assert_eq!(r.map(8), 15);
        assert_eq!(r.map(19), 26);
        assert_eq!(r.map(21), 27);
        assert_eq!(r.map(22), 27);
    }

    #[test]
    fn image_lines_of_broken_text() {
        let text = "x: [\n  image: nginx:1 # c\n- image: \"a:1\"\n  - \"image\": 'b:2'\nimages: no\nimage:\n";
        let got = image_lines(text, 0, text.len());
        let got: Vec<_> = got
            .iter()
            .map(|(at, v)| (&text[*at..*at + v.len()], v.as_str()))
            .collect();
        assert_eq!(
            got,
            [("nginx:1", "nginx:1"), ("a:1", "a:1"), ("b:2", "b:2")]
        );
    }

    #[test]
    fn pieces_start_at_document_markers() {
        let text = "%YAML 1.2\n---\na: 1\n--- # x\nb: 2\n----\n---";
        let p = pieces(text);
        let parts: Vec<&str> = p.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(
            parts,
            ["%YAML 1.2\n---\na: 1\n", "--- # x\nb: 2\n----\n", "---"]
        );
    }

    #[test]
    fn empty_and_comment_only_documents_are_fine() {
        for text in ["", "# only\n", "---\n---\n# c\n...\n", "\n\n"] {
            let yaml = Yaml::parse(text);
            assert!(yaml.errors.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn collector_skips_non_strings_and_dedupes_shared_text() {
        let text = "a: &x nginx:1\nb: *x\nc: [1]\nd:\ne: '{{ .Values.x }}'\n";
        let source = Source::new("f.yaml", text, Kind::Compose);
        let yaml = Yaml::parse(text);
        let mut c = Collector::new(&source, &yaml);
        let root = yaml.documents()[0];
        let no_check: Check = |s| Ok(0..s.len());
        let template: Check = |s| {
            if s.contains("{{") {
                Err("template")
            } else {
                Ok(0..s.len())
            }
        };
        for key in ["a", "b", "c", "d"] {
            c.image(yaml.get(root, key).unwrap(), Context::default(), no_check);
        }
        c.image(yaml.get(root, "e").unwrap(), Context::default(), template);
        let out = c.finish();
        assert_eq!(out.references.len(), 1);
        assert_eq!(&text[out.references[0].span.clone()], "nginx:1");
        let reasons: Vec<_> = out
            .skipped
            .iter()
            .map(|s| (s.line, s.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (3, "the image is not a string"),
                (4, "the image is empty"),
                (5, "template")
            ]
        );
    }

    /// Runs every YAML extractor over `text` and checks what any output must satisfy.
    fn check_all(text: &str) {
        let lines = text.split('\n').count();
        for (kind, extract) in [
            (
                Kind::Compose,
                crate::extract::compose::extract as fn(&Source<'_>) -> Extraction,
            ),
            (Kind::Kubernetes, crate::extract::kubernetes::extract),
            (Kind::Actions, crate::extract::actions::extract),
        ] {
            let source = Source::new("f.yaml", text, kind);
            let out = extract(&source);
            for f in &out.references {
                assert_eq!(text.get(f.span.clone()), Some(f.text.as_str()));
                assert!(f.span.start <= f.name_span.start && f.name_span.end <= f.span.end);
                assert!(f.line >= 1 && f.line <= lines);
            }
            for s in &out.skipped {
                assert!(s.line <= lines);
            }
            for e in &out.errors {
                assert!(
                    e.line.is_none_or(|l| l >= 1 && l <= lines + 1),
                    "{e:?} in {text:?}"
                );
            }
        }
        let _ = crate::extract::kubernetes::looks_like_manifest(text);
    }

    const SEED: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  \
                        - name: a # ü\n    image: \"nginx:1.25\"\n  - &c {name: b, image: 'x:1'}\n  \
                        initContainers: [*c]\n---\nservices:\n  web:\n    image: redis:7 # é\n  \
                        db: {image: \"pg:16\"}\njobs:\n  t:\n    container: node:20\n    services:\n      \
                        r: {image: redis}\n    steps:\n      - uses: docker://alpine:3.20\n";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        #[test]
        fn garbled_yaml_never_panics(text in "[ a-z:\\-\n\r\t\"'#{}\\[\\],&*!|>$@/.0-9éü😀]{0,200}") {
            check_all(&text);
        }

        #[test]
        fn edited_manifests_never_panic(
            edits in proptest::collection::vec(
                (0usize..400, 0usize..4, "[ :\\-\n\r\"'#{}\\[\\]&*!|>é😀a-z]{0,3}"),
                1..6,
            ),
        ) {
            let mut text = SEED.to_string();
            for (at, remove, insert) in edits {
                let mut at = at.min(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + remove).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(at..end, &insert);
            }
            check_all(&text);
        }
    }

    #[test]
    fn the_seed_yields_every_kind() {
        check_all(SEED);
        let source = Source::new("f.yaml", SEED, Kind::Kubernetes);
        let out = crate::extract::kubernetes::extract(&source);
        let texts: Vec<_> = out.references.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(texts, ["nginx:1.25", "x:1"]);
    }

    #[test]
    fn hostile_nesting_and_alias_bombs_are_cheap() {
        let deep = format!(
            "apiVersion: v1\nkind: Pod\nspec: {}{}\n",
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        check_all(&deep);
        let deep = format!(
            "apiVersion: v1\nkind: Pod\nspec:\n{}",
            (0..300)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect::<String>()
        );
        check_all(&deep);
        let mut bomb = String::from("apiVersion: v1\nkind: Pod\na0: &a0 [x, x]\n");
        for i in 1..40 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        bomb.push_str("spec:\n  containers: *a39\n  <<: *a39\n");
        check_all(&bomb);
        // Merges that fan out: each level merges the previous one 50 times.
        let mut fan = String::from("m0: &m0 {image: x:1}\n");
        for i in 1..12 {
            let refs = vec![format!("*m{}", i - 1); 50].join(", ");
            fan.push_str(&format!("m{i}: &m{i} {{<<: [{refs}]}}\n"));
        }
        fan.push_str("services:\n  web:\n    <<: *m11\njobs:\n  j:\n    <<: *m11\n    services:\n      <<: *m11\n");
        let started = std::time::Instant::now();
        check_all(&fan);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
