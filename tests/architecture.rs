//! The layering, checked: a core module (pure data and functions over it) names only other
//! core modules of this crate, and no crate that does I/O. The source under `src/` is read
//! as text: comments and string literals are blanked first, so a doc link or a test
//! fixture's text is not an import, and every `crate::x` path (also inside
//! `use crate::{…}` groups) and every `super::` path that climbs to the crate root is
//! checked. A failure lists each offending `file:line`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The core: pure, no I/O. Everything else under `src/` is an edge or the shell.
const CORE: &[&str] = &[
    "reference",
    "extract",
    "edit",
    "plan",
    "render",
    "repo_config",
    "insight",
    "image",
    "schedule",
    "commands",
];

/// Crates whose use means I/O (or a runtime for it).
const IO_CRATES: &[&str] = &[
    "tokio",
    "sqlx",
    "octocrab",
    "reqwest",
    "hyper",
    "hyper_util",
    "axum",
    "oci_client",
    "jsonwebtoken",
];

#[test]
fn core_modules_import_only_core_modules() {
    let modules = top_level_modules();
    let mut failures = Vec::new();
    for (module, file) in core_files() {
        let code = code_only(&read(&file));
        for (line, target) in crate_paths(&code, depth_of(&file)) {
            let allowed = CORE.contains(&target.as_str()) && modules.contains(&target);
            if !allowed {
                let what = if modules.contains(&target) {
                    format!("imports non-core module `{target}`")
                } else {
                    format!("names `crate::{target}`, not a module of lib.rs")
                };
                failures.push((module, format!("{}:{line}: {what}", shown(&file))));
            }
        }
    }
    report(failures);
}

#[test]
fn core_modules_use_no_io_crates() {
    let mut failures = Vec::new();
    for (module, file) in core_files() {
        let code = code_only(&read(&file));
        for (line, name) in identifiers(&code) {
            if IO_CRATES.contains(&name.as_str()) && next_is_path(&code, line, &name) {
                failures.push((module, format!("{}:{line}: uses `{name}`", shown(&file))));
            }
        }
    }
    report(failures);
}

/// The registry edge shares tag answers through a trait of its own (`SharedTags`): it names
/// neither the store nor the shell that wires one to the other.
#[test]
fn the_registry_names_no_store_and_no_shell() {
    const NOT: &[&str] = &["store", "shared_tags", "jobs", "server", "web", "cli"];
    let mut files = Vec::new();
    rust_files(&src_dir().join("registry"), &mut files);
    assert!(!files.is_empty(), "src/registry has no source");
    let mut failures = Vec::new();
    for file in files {
        let code = code_only(&read(&file));
        for (line, target) in crate_paths(&code, depth_of(&file)) {
            if NOT.contains(&target.as_str()) {
                failures.push(format!("{}:{line}: names `{target}`", shown(&file)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The check itself, on made-up sources: each way of naming a module is seen.
#[test]
fn the_check_sees_every_form_of_path() {
    let src = r#"
use crate::plan::Plan;
use crate::{edit, registry::Resolver};
use crate::{
    insight::{self, Details},
    store,
};
// use crate::github; (a comment)
/// [`crate::web`] (a doc link)
const S: &str = "crate::jobs";
fn f() { let _ = crate::writer::write(); }
fn g() { super::metrics::x(); }
mod tests {
    use super::super::server;
    use super::*;
}
"#;
    let found: Vec<(usize, String)> = crate_paths(&code_only(src), 1);
    let names: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        names,
        [
            "plan", "edit", "registry", "insight", "store", "writer", "metrics", "server"
        ]
    );
    assert_eq!(found[2].0, 3, "line numbers survive the blanking");
    // From `src/extract/yaml.rs` one `super::` is `extract`, not the crate root.
    assert!(crate_paths("use super::Found;", 2).is_empty());
    assert_eq!(crate_paths("use super::super::github;", 2)[0].1, "github");
    // Lifetimes are not character literals: the path after one is still seen.
    assert_eq!(
        crate_paths("fn f<'a>(x: &'a str) -> crate::store::S { todo!() }", 1)[0].1,
        "store"
    );
}

fn report(failures: Vec<(&'static str, String)>) {
    let hard: Vec<String> = failures.into_iter().map(|(_, f)| f).collect();
    assert!(
        hard.is_empty(),
        "core modules may use only core modules and no I/O crates (CORE, IO_CRATES above):\n{}",
        hard.join("\n")
    );
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read(file: &Path) -> String {
    fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn shown(file: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// The modules `src/lib.rs` declares.
fn top_level_modules() -> BTreeSet<String> {
    let lib = code_only(&read(&src_dir().join("lib.rs")));
    let tokens: Vec<String> = identifiers(&lib).into_iter().map(|(_, t)| t).collect();
    tokens
        .windows(2)
        .filter(|w| w[0] == "mod")
        .map(|w| w[1].clone())
        .collect()
}

/// Every `.rs` file of every core module, with its module; a core module that is missing is
/// a failure (the list would be checking nothing).
fn core_files() -> Vec<(&'static str, PathBuf)> {
    let src = src_dir();
    let mut out = Vec::new();
    for &module in CORE {
        let file = src.join(format!("{module}.rs"));
        let dir = src.join(module);
        let before = out.len();
        if file.is_file() {
            out.push((module, file));
        }
        if dir.is_dir() {
            let mut files = Vec::new();
            rust_files(&dir, &mut files);
            out.extend(files.into_iter().map(|f| (module, f)));
        }
        assert!(
            out.len() > before,
            "core module `{module}` has no source under src/"
        );
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// How many `super::` reach the crate root from the file's module: 1 for `src/x.rs` and
/// `src/x/mod.rs`, 2 for `src/x/y.rs`, and so on.
fn depth_of(file: &Path) -> usize {
    let rel = file.strip_prefix(src_dir()).expect("a file under src/");
    let parts = rel.components().count();
    if rel.file_name().is_some_and(|n| n == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

/// The source with comments and the contents of string and character literals replaced by
/// spaces; newlines are kept, so line numbers stay right.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| char_at(&c, i + k);
        if at(0) == '/' && at(1) == '/' {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if at(0) == '/' && at(1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && char_at(&c, i + 1) == '*' {
                    depth += 1;
                    blank(&mut out, c[i]);
                    blank(&mut out, c[i + 1]);
                    i += 2;
                } else if c[i] == '*' && char_at(&c, i + 1) == '/' {
                    depth -= 1;
                    blank(&mut out, c[i]);
                    blank(&mut out, c[i + 1]);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if (at(0) == 'r' || (at(0) == 'b' && at(1) == 'r'))
            && !prev_is_ident(&c, i)
            && raw_string_hashes(&c, i + usize::from(at(0) == 'b') + 1).is_some()
        {
            let start = i + usize::from(at(0) == 'b') + 1;
            let hashes = raw_string_hashes(&c, start).unwrap_or(0);
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body = start + hashes + 1;
            let end = (body..c.len())
                .find(|&k| c[k..].starts_with(&close))
                .map_or(c.len(), |k| k + close.len());
            for &ch in &c[i..end] {
                blank(&mut out, ch);
            }
            i = end;
        } else if at(0) == '"' {
            blank(&mut out, c[i]);
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if at(0) == '\'' && (at(1) == '\\' || at(2) == '\'') {
            // A character literal ('x', '\n', '\u{..}'); a lifetime ('a) has no closing quote.
            let end = (i + 2..c.len())
                .find(|&k| c[k] == '\'' && (c[k - 1] != '\\' || c[k - 2] == '\\'))
                .map_or(c.len(), |k| k + 1);
            for &ch in &c[i..end] {
                blank(&mut out, ch);
            }
            i = end;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn char_at(c: &[char], i: usize) -> char {
    c.get(i).copied().unwrap_or('\0')
}

fn prev_is_ident(c: &[char], i: usize) -> bool {
    i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_')
}

/// `Some(n)` when `c[at..]` opens a raw string with `n` hashes (`"`, `#"`, `##"`, …).
fn raw_string_hashes(c: &[char], at: usize) -> Option<usize> {
    let hashes = c[at.min(c.len())..]
        .iter()
        .take_while(|&&ch| ch == '#')
        .count();
    (c.get(at + hashes) == Some(&'"')).then_some(hashes)
}

/// Identifiers and `::`, `{`, `}`, `,`, `;` with their line numbers; other punctuation is
/// kept as a single-character token so that paths do not run together.
fn tokens(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, text) in code.lines().enumerate() {
        let c: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < c.len() {
            if c[i].is_alphanumeric() || c[i] == '_' {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push((n + 1, c[start..i].iter().collect()));
            } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
                out.push((n + 1, "::".to_string()));
                i += 2;
            } else if c[i].is_whitespace() {
                i += 1;
            } else {
                out.push((n + 1, c[i].to_string()));
                i += 1;
            }
        }
    }
    out
}

fn identifiers(code: &str) -> Vec<(usize, String)> {
    tokens(code)
        .into_iter()
        .filter(|(_, t)| t.starts_with(|ch: char| ch.is_alphabetic() || ch == '_'))
        .collect()
}

/// True when the identifier on that line is followed by `::` (a path, not a local name).
fn next_is_path(code: &str, line: usize, name: &str) -> bool {
    let t = tokens(code);
    t.windows(2)
        .any(|w| w[0].0 == line && w[0].1 == name && w[1].1 == "::")
}

/// Each top-level module a path in `code` names, with its line: `crate::x`, each item of
/// `crate::{x, y::z}`, and `super::…::x` once the `super`s reach the crate root from a file
/// `depth` modules deep (inline `mod name { … }` blocks add to the depth).
fn crate_paths(code: &str, depth: usize) -> Vec<(usize, String)> {
    let t = tokens(code);
    let is = |k: usize, s: &str| t.get(k).is_some_and(|(_, x)| x == s);
    let mut out = Vec::new();
    // Brace depths at which inline modules were opened.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let mut k = 0;
    while k < t.len() {
        match t[k].1.as_str() {
            "{" => braces += 1,
            "}" => {
                braces = braces.saturating_sub(1);
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
            }
            "mod" if is(k + 2, "{") => {
                inline_mods.push(braces);
            }
            "crate" if is(k + 1, "::") && !is(k.wrapping_sub(1), "::") => {
                if is(k + 2, "{") {
                    out.extend(group_heads(&t, k + 2));
                } else if let Some((line, name)) = t.get(k + 2) {
                    out.push((*line, name.clone()));
                }
            }
            "super" if !is(k.wrapping_sub(1), "::") => {
                let mut j = k;
                let mut ups = 0;
                while is(j, "super") && is(j + 1, "::") {
                    ups += 1;
                    j += 2;
                }
                if ups >= depth + inline_mods.len() {
                    if is(j, "{") {
                        out.extend(group_heads(&t, j));
                    } else if let Some((line, name)) = t.get(j) {
                        out.push((*line, name.clone()));
                    }
                }
            }
            _ => {}
        }
        k += 1;
    }
    out
}

/// The first segment of each item in the `{ … }` group opening at `open`.
fn group_heads(t: &[(usize, String)], open: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    for (line, tok) in &t[open..] {
        match tok.as_str() {
            "{" => {
                depth += 1;
                if depth > 1 {
                    expect_head = false;
                }
            }
            "}" => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            "," if depth == 1 => expect_head = true,
            name if expect_head && depth == 1 => {
                if name != "self" {
                    out.push((*line, name.to_string()));
                }
                expect_head = false;
            }
            _ => {}
        }
    }
    out
}
