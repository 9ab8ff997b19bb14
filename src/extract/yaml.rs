//! YAML with source positions, shared by the compose, Kubernetes and Actions extractors.
//!
//! We build a small tree from saphyr-parser's events rather than use a loader, because we
//! need to know, for every scalar, where its text sits in the file and how it was written
//! (plain, quoted, block). YAML is never written back: edits change only the bytes of the
//! image text, so everything here is about finding those bytes exactly, or saying why not.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

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
            yaml.errors.push(yaml.error(&whole, 0, text.len()));
            return yaml;
        }
        for (start, end) in pieces {
            let (nodes, documents) = (yaml.nodes.len(), yaml.documents.len());
            if let Err(e) = yaml.parse_piece(start, end) {
                yaml.nodes.truncate(nodes);
                yaml.documents.truncate(documents);
                yaml.errors.push(yaml.error(&e, start, end));
            }
        }
        if yaml.errors.is_empty() {
            // Each piece parses alone but the stream does not (e.g. directives between
            // documents): keep what the pieces gave and still report the stream's error.
            yaml.errors.push(yaml.error(&whole, 0, text.len()));
        }
        yaml
    }

    fn error(&self, e: &ScanError, start: usize, end: usize) -> ParseError {
        let piece = self.text.get(start..end).unwrap_or_default();
        // From the offset, not the parser's line count: it also counts lone `\r` as breaks.
        let at = start + Offsets::new(piece).byte(e.marker().index());
        ParseError {
            line: Some(line_of(self.text, at)),
            message: format!(
                "invalid YAML: {} (column {})",
                e.info(),
                e.marker().col() + 1
            ),
            template: piece.contains("{{"),
        }
    }

    /// Parses `text[start..end]`, adding its documents. On error the caller drops what was
    /// added, since a half-built document could put references in the wrong place.
    fn parse_piece(&mut self, start: usize, end: usize) -> Result<(), ScanError> {
        let piece = self.text.get(start..end).unwrap_or_default();
        let mut offsets = Offsets::new(piece);
        let mut parser = Parser::new_from_str(piece);
        // Open collections, each with the key waiting for its value when it is a mapping.
        let mut open: Vec<(NodeId, Option<NodeId>)> = Vec::new();
        let mut anchors: HashMap<usize, NodeId> = HashMap::new();
        while let Some(event) = parser.next_event() {
            let (event, span) = event?;
            let from = start + offsets.byte(span.start.index());
            let to = start + offsets.byte(span.end.index());
            let done = match event {
                Event::Scalar(value, style, anchor, _) => {
                    Some(self.add(Value::Scalar(value, style), from, to, anchor, &mut anchors))
                }
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

/// Tells why an image value must be left alone (variables, templates), if it must.
pub(crate) type Check = fn(&str) -> Option<&'static str>;

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
        }
        Collector {
            source,
            yaml,
            out,
            seen: HashSet::new(),
        }
    }

    /// Reports the image written in the scalar `node`, after its first `prefix` bytes
    /// (`docker://`), as a reference, a skip or an error.
    pub(crate) fn image(&mut self, node: NodeId, prefix: usize, context: Context, check: Check) {
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
        if let Some(reason) = check(value) {
            self.skip(at, value, reason);
            return;
        }
        let start = match located {
            Ok(start) => start + prefix,
            Err(reason) => {
                self.skip(at, value, reason);
                return;
            }
        };
        let Some(image) = value.get(prefix..) else {
            return;
        };
        if self.seen.insert(start) {
            self.source.push(&mut self.out, start, image, context);
        }
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
        let no_check: Check = |_| None;
        let template: Check = |s| s.contains("{{").then_some("template");
        for key in ["a", "b", "c", "d"] {
            c.image(
                yaml.get(root, key).unwrap(),
                0,
                Context::default(),
                no_check,
            );
        }
        c.image(
            yaml.get(root, "e").unwrap(),
            0,
            Context::default(),
            template,
        );
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
