//! What a pull request says: title, body and commit message. Pure text from plan data.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::image::ImageSummary;
use crate::insight::{self, section::Entry};
use crate::plan::{PIN_BRANCH, Update, UpdateKey};
use crate::repo_config::{ConfigErrors, RepoConfig};

const SHORT: usize = 7;
const MARKER_START: &str = "<!-- digestif-state: ";
const MARKER_END: &str = " -->";

/// GitHub refuses issue, pull request and comment bodies longer than this many characters
/// (422 "body is too long"); check-run summaries may have one less.
pub const GITHUB_BODY_LIMIT: usize = 65_536;

/// What digestif's own bodies stay under: GitHub's limit less room for a note put in front
/// (the workflows warning on a PR) and for the last "and N more" line.
const BODY_BUDGET: usize = 60_000;

/// User- or registry-controlled text shown inline is cut after this many characters.
const MAX_QUOTED: usize = 300;

/// Errors and problems listed one by one before "and N more".
pub const MAX_LISTED: usize = 50;

/// Text from outside (a repository's files and config, a registry, a comment) as a
/// Markdown code span: nothing in it can mention, link, embed an image, inject HTML or end
/// the span early, whatever backticks it holds. Line breaks become spaces (a line break
/// could start a new block under the span) and the text is cut at [`MAX_QUOTED`]
/// characters. In a table cell use [`code_cell`].
pub fn code(text: &str) -> String {
    let mut t: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTED + 1)
        .collect();
    if t.chars().count() > MAX_QUOTED {
        t = t.chars().take(MAX_QUOTED - 1).collect();
        t.push('…');
    }
    if t.is_empty() {
        return "` `".to_string();
    }
    // The fence is one backtick longer than the longest run inside, so no run closes it.
    let mut longest = 0;
    let mut run = 0;
    for c in t.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // CommonMark strips one space at each end when both ends have one; a backtick at an
    // end would merge with the fence. A space on each side handles both.
    let pad = t.starts_with('`')
        || t.ends_with('`')
        || (t.starts_with(' ') && t.ends_with(' ') && !t.chars().all(|c| c == ' '));
    if pad {
        format!("{fence} {t} {fence}")
    } else {
        format!("{fence}{t}{fence}")
    }
}

/// [`code`] for a table cell: GitHub splits cells at `|` even inside a code span unless
/// it is escaped, and shows `\|` there as `|`.
pub fn code_cell(text: &str) -> String {
    code(text).replace('|', "\\|")
}

/// `text` cut to `max` characters, with `…` when something was cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// An `https://` address from outside as a link target that cannot end the link early or
/// break a table: whitespace, brackets, quotes and the like are percent-encoded. Anything
/// else than `https://` gives `None`.
pub fn link_target(url: &str) -> Option<String> {
    if !url.starts_with("https://") || url.len() > 2048 {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        match b {
            b'(' | b')' | b'[' | b']' | b'<' | b'>' | b'"' | b'\'' | b'`' | b'|' | b'\\' | b'{'
            | b'}' | b'^' | b'*' | b'_' | b'~' => out.push_str(&format!("%{b:02X}")),
            b if b <= b' ' || b >= 0x7f => out.push_str(&format!("%{b:02X}")),
            b => out.push(b as char),
        }
    }
    Some(out)
}

/// A repository path in a URL: each segment percent-encoded, `/` kept.
fn url_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Lines while they fit in `allowance` characters; the rest is counted in a last line
/// made by `more` (which the allowance also covers).
fn fit_lines(lines: &[String], allowance: usize, more: impl Fn(usize) -> String) -> String {
    let total: usize = lines.iter().map(|l| l.chars().count() + 1).sum();
    let mut out = String::new();
    if total <= allowance {
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
        return out;
    }
    let reserve = more(lines.len()).chars().count() + 1;
    let mut used = 0;
    let mut shown = 0;
    for l in lines {
        let n = l.chars().count() + 1;
        if used + n + reserve > allowance {
            break;
        }
        out.push_str(l);
        out.push('\n');
        used += n;
        shown += 1;
    }
    out.push_str(&more(lines.len() - shown));
    out.push('\n');
    out
}

/// Shares `budget` characters among sections that need `needs`: a section that needs less
/// than an equal share gets what it needs, the others split the rest equally.
fn share(needs: &[usize], budget: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..needs.len()).collect();
    order.sort_by_key(|&i| needs[i]);
    let mut out = vec![0; needs.len()];
    let mut left = budget;
    for (k, &i) in order.iter().enumerate() {
        let equal = left / (needs.len() - k);
        out[i] = needs[i].min(equal);
        left -= out[i];
    }
    out
}

/// Where the PR lives, for links.
#[derive(Debug, Clone)]
pub struct RepoLinks {
    /// `https://github.com/owner/repo`
    pub html_url: String,
    /// The base commit the PR was built on; file links point at it.
    pub base_sha: String,
}

/// The machine state hidden in the PR body, so a PR explains itself even without the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineState {
    pub v: u32,
    pub branch: String,
    pub updates: Vec<UpdateKey>,
    /// Updates the PR makes beyond `updates` (left out to keep the body under GitHub's limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn image_tag(u: &Update) -> String {
    let r = &u.found.reference;
    match &r.tag {
        Some(t) => format!("{}:{t}", r.familiar_name()),
        None => r.familiar_name(),
    }
}

fn with_prefix(config: &RepoConfig, title: String) -> String {
    match &config.commit_message_prefix {
        Some(p) if p.ends_with(':') => format!("{p} {title}"),
        Some(p) => format!("{p}: {title}"),
        None => title,
    }
}

/// `Update python:3.12-slim digest to 4f1c2a9`, `Update 3 container image digests`, or
/// `Pin container image digests`.
pub fn title(config: &RepoConfig, branch: &str, updates: &[Update]) -> String {
    let t = if branch == PIN_BRANCH {
        "Pin container image digests".to_string()
    } else {
        let first = updates.first();
        let same = first.is_some_and(|f| {
            updates
                .iter()
                .all(|u| image_tag(u) == image_tag(f) && u.new_digest == f.new_digest)
        });
        match first {
            Some(f) if same => format!(
                "Update {} digest to {}",
                image_tag(f),
                f.new_digest.short(SHORT)
            ),
            _ => format!("Update {} container image digests", updates.len()),
        }
    };
    with_prefix(config, t)
}

/// Title, then one line per change.
pub fn commit_message(config: &RepoConfig, branch: &str, updates: &[Update]) -> String {
    let mut m = title(config, branch, updates);
    m.push_str("\n\n");
    for u in updates {
        let _ = writeln!(
            m,
            "- {}:{} {} {} -> {}",
            u.found.file,
            u.found.line,
            image_tag(u),
            old_short(u),
            u.new_digest.short(SHORT)
        );
    }
    m
}

fn old_short(u: &Update) -> String {
    match &u.found.reference.digest {
        Some(d) => d.short(SHORT).to_string(),
        None => "(tag only)".to_string(),
    }
}

/// The PR body: a table per reference, full digests, why-lines, footer and hidden state.
/// A PR with more updates than fit under GitHub's body limit lists the first ones and
/// says how many more there are (the commit message lists them all).
pub fn body(config: &RepoConfig, links: &RepoLinks, branch: &str, updates: &[Update]) -> String {
    let head = body_head(branch);
    let foot = body_foot(config);

    // Per update: its table row, its why-line, its full digests and its key in the marker.
    let rows: Vec<String> = updates.iter().map(|u| table_row(links, u)).collect();
    let whys: Vec<Option<String>> = updates.iter().map(why_line).collect();
    let fulls: Vec<String> = updates.iter().map(full_digests).collect();
    let keys: Vec<UpdateKey> = updates.iter().map(Update::key).collect();
    let fixed = head.chars().count() + foot.chars().count() + 400;
    let shown = updates_that_fit(fixed, &rows, &whys, &fulls, &keys);
    let more = updates.len() - shown;

    let mut b = head;
    for r in &rows[..shown] {
        b.push_str(r);
    }
    if more > 0 {
        let _ = writeln!(
            b,
            "\n… and {more} more of the {} updates; the commit message lists every one.",
            updates.len()
        );
    }
    let why: Vec<&String> = whys[..shown].iter().flatten().collect();
    if !why.is_empty() {
        b.push('\n');
        for w in why {
            let _ = writeln!(b, "- {w}");
        }
    }
    let state = MachineState {
        v: 1,
        branch: branch.to_string(),
        updates: keys[..shown].to_vec(),
        more,
    };
    let tail = body_tail(&fulls[..shown], &foot, &state);
    // The "What changed" section gets what the rest leaves of the budget (it counts bytes,
    // which are never fewer than characters).
    let budget = BODY_BUDGET.saturating_sub(b.chars().count() + tail.chars().count());
    let section = insight::section::render(&entries(&updates[..shown]), budget);
    if !section.is_empty() {
        b.push('\n');
        b.push_str(section.trim_end());
        b.push('\n');
    }
    b.push_str(&tail);
    b
}

/// What the PR is for (pinning, or moving pins) and the table's header.
fn body_head(branch: &str) -> String {
    let mut head = String::new();
    if branch == PIN_BRANCH {
        head.push_str(
            "This PR pins container images to the digest their tag points at today, so builds \
             are reproducible. digestif will propose a new digest when the tag moves.\n\n",
        );
    } else {
        head.push_str(
            "This PR updates container image digests to what their tags point at now.\n\n",
        );
    }
    head.push_str("| File | Image | Digest | Platforms | Created | Source |\n");
    head.push_str("|---|---|---|---|---|---|\n");
    head
}

/// The schedule the repository's config sets, and the comment commands.
fn body_foot(config: &RepoConfig) -> String {
    let mut foot = String::from("\n---\n\n");
    let _ = write!(foot, "Schedule: {}", code(&config.schedule));
    if config.timezone != chrono_tz::UTC {
        let _ = write!(foot, " ({})", code(config.timezone.name()));
    }
    if !config.min_age.is_zero() {
        let _ = write!(foot, " · min-age: {}", human_duration(config.min_age));
    }
    foot.push_str(
        "\n\nComment to act on this PR: `@digestif rebase` (rebuild it on the current base \
         branch, taking it back from anyone who pushed to it), \
         `@digestif recreate` (on a closed PR: propose its digests again, in a new PR), \
         `@digestif ignore this digest`, `@digestif ignore this image`, \
         `@digestif unignore IMAGE`. Closing it without merging means \"not these digests\": \
         digestif proposes again only when the digest moves.\n",
    );
    foot
}

/// How many of the updates (in order) fit under [`BODY_BUDGET`] beside `fixed` characters:
/// each costs its row, why-line, full digests and its key in the hidden marker.
fn updates_that_fit(
    fixed: usize,
    rows: &[String],
    whys: &[Option<String>],
    fulls: &[String],
    keys: &[UpdateKey],
) -> usize {
    let mut used = fixed;
    let mut shown = 0;
    for i in 0..rows.len() {
        let key_len = serde_json::to_string(&keys[i])
            .map(|k| k.len())
            .unwrap_or(0)
            + 1;
        let n = rows[i].chars().count()
            + whys[i].as_ref().map_or(0, |w| w.chars().count() + 3)
            + fulls[i].chars().count()
            + key_len;
        if used + n > BODY_BUDGET {
            break;
        }
        used += n;
        shown += 1;
    }
    shown
}

/// The full digests of the shown updates, the footer and the hidden state marker.
fn body_tail(fulls: &[String], foot: &str, state: &MachineState) -> String {
    let mut tail = String::from("\n<details><summary>Full digests</summary>\n\n");
    for f in fulls {
        tail.push_str(f);
    }
    tail.push_str("\n</details>\n");
    tail.push_str(foot);
    tail.push('\n');
    tail.push_str(&marker(state));
    tail.push('\n');
    tail
}

/// One "What changed" entry per image and digest change, with every place it is made.
fn entries(updates: &[Update]) -> Vec<Entry<'_>> {
    let mut out: Vec<(String, Entry<'_>)> = Vec::new();
    for u in updates {
        let Some(details) = &u.details else { continue };
        let key = format!("{} {} {}", image_tag(u), old_short(u), u.new_digest);
        let at = format!("{}:{}", u.found.file, u.found.line);
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, e)) => e.locations.push(at),
            None => out.push((
                key,
                Entry {
                    image: image_tag(u),
                    locations: vec![at],
                    details,
                },
            )),
        }
    }
    out.into_iter().map(|(_, e)| e).collect()
}

fn table_row(links: &RepoLinks, u: &Update) -> String {
    let place = format!("{}:{}", u.found.file, u.found.line);
    let file = match link_target(&format!(
        "{}/blob/{}/{}",
        links.html_url,
        links.base_sha,
        url_path(&u.found.file)
    )) {
        Some(url) => format!("[{}]({url}#L{})", code_cell(&place), u.found.line),
        None => code_cell(&place),
    };
    let info = u.info.as_ref();
    let platforms = info
        .filter(|i| !i.platforms.is_empty())
        .map(|i| code_cell(&i.platforms.join(", ")))
        .unwrap_or_else(|| "–".into());
    let created = info
        .and_then(|i| i.created.as_deref())
        .map(|c| code_cell(c.get(..10).unwrap_or(c)))
        .unwrap_or_else(|| "–".into());
    let source = info.map(source_cell).unwrap_or_else(|| "–".into());
    format!(
        "| {file} | {} | {} → {} | {platforms} | {created} | {source} |\n",
        code_cell(&image_tag(u)),
        code_cell(&old_short(u)),
        code_cell(u.new_digest.short(SHORT))
    )
}

fn full_digests(u: &Update) -> String {
    let mut b = format!(
        "- {} {}\n",
        code(&format!("{}:{}", u.found.file, u.found.line)),
        code(&image_tag(u))
    );
    if let Some(old) = &u.found.reference.digest {
        let _ = writeln!(b, "  - old: {}", code(&old.to_string()));
    }
    let _ = writeln!(b, "  - new: {}", code(&u.new_digest.to_string()));
    b
}

/// The image's source: a link to the commit on GitHub, or to the source with the revision.
/// Both labels come from the image's registry, so they are quoted and encoded.
fn source_cell(i: &ImageSummary) -> String {
    let short = |rev: &str| code_cell(rev.get(..SHORT).unwrap_or(rev));
    let source = i
        .source
        .as_deref()
        .and_then(|s| link_target(s.trim_end_matches('/').trim_end_matches(".git")));
    match (source, &i.revision) {
        (Some(base), Some(rev)) if base.starts_with("https://github.com/") => {
            let commit = url_path(rev);
            format!("[{}]({base}/commit/{commit})", short(rev))
        }
        (Some(base), Some(rev)) => format!("[source]({base}) {}", short(rev)),
        (Some(base), None) => format!("[source]({base})"),
        (None, Some(rev)) => short(rev),
        (None, None) => "–".to_string(),
    }
}

fn why_line(u: &Update) -> Option<String> {
    let at = code(&format!("{}:{}", u.found.file, u.found.line));
    let context = &u.found.context;
    if context.location.as_deref() == Some("# syntax") {
        return Some(format!(
            "{at} is the `# syntax=` parser directive: BuildKit pulls that frontend image \
             before it reads the rest of the file, so its digest is written in place on the \
             directive line."
        ));
    }
    if context.arg.is_none() && !context.variables.is_empty() {
        let vars = context
            .variables
            .iter()
            .map(|v| code(v))
            .collect::<Vec<_>>()
            .join(", ");
        let platform = match &u.platform_pin {
            Some(p) => format!(
                " It is pinned to the {} manifest of the tag's index.",
                code(p)
            ),
            None => String::new(),
        };
        return Some(format!(
            "{at} names {text}, which the ARGs {vars} make {image}: the digest is written \
             after the image text in that line, not in the ARGs, which may be used elsewhere. \
             When one of those ARGs changes, the pinned digest no longer matches the new tag \
             and digestif proposes the new tag's digest.{platform}",
            text = code(&u.found.text),
            image = code(&image_tag(u)),
        ));
    }
    match (&u.platform_pin, &context.arg) {
        (Some(p), Some(arg)) => Some(format!(
            "{at} is pinned to the {p} manifest through {a}: the new digest is {p}'s \
             manifest in the tag's current index, written at the `ARG` default.",
            p = code(p),
            a = code(&format!("ARG {arg}"))
        )),
        (Some(p), None) => Some(format!(
            "{at} is pinned to the {p} manifest, so the new digest is {p}'s manifest in the \
             tag's current index (not the multi-platform index).",
            p = code(p)
        )),
        (None, Some(arg)) => Some(format!(
            "{at} is the default of {a}, which a {f} uses: the digest is updated at the `ARG`.",
            a = code(&format!("ARG {arg}")),
            f = code(&format!("FROM ${arg}"))
        )),
        (None, None) => None,
    }
}

fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 604_800 == 0 => format!("{}w", s / 604_800),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{}m", s / 60),
    }
}

/// The hidden marker. `--` would end an HTML comment early, so `-` is escaped in the JSON.
pub fn marker(state: &MachineState) -> String {
    let json = serde_json::to_string(state)
        .unwrap_or_default()
        .replace('-', "\\u002d");
    format!("{MARKER_START}{json}{MARKER_END}")
}

/// Reads the hidden state back from a PR body.
pub fn parse_marker(body: &str) -> Option<MachineState> {
    let start = body.find(MARKER_START)? + MARKER_START.len();
    let end = start + body[start..].find(MARKER_END)?;
    serde_json::from_str(&body[start..end]).ok()
}

/// The warning put at the top of a PR whose workflow files digestif may not change.
pub fn workflows_note(files: &[String]) -> String {
    let mut list: Vec<String> = files.iter().take(10).map(|f| code(f)).collect();
    if files.len() > 10 {
        list.push(format!("and {} more", files.len() - 10));
    }
    let files = list;
    format!(
        "> [!WARNING]\n> digestif cannot update workflow files ({}) because the App lacks the \
         `workflows` permission. An organization owner can grant it in the App's installation \
         settings.\n\n",
        files.join(", ")
    )
}

/// Title of the one issue that tells a repository its config file is invalid.
pub const CONFIG_ISSUE_TITLE: &str = "digestif: configuration error";

/// Body of the config-error issue: where the file is, its errors with line and column (the
/// first [`MAX_LISTED`], then how many more), and that nothing is updated until it is fixed.
pub fn config_error_issue(path: &str, commit: &str, errors: &ConfigErrors) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "digestif could not read its configuration file {} (at {}), so it is not \
         updating this repository until the file is fixed.\n\n",
        code(path),
        code(commit)
    ));
    out.push_str(&error_list(path, errors));
    out.push_str(
        "\nRun `digestif check-config FILE` locally to validate a change, or open a pull \
         request: digestif checks the new file and reports on it. This issue closes itself \
         when the file on the default branch is valid again.\n",
    );
    out
}

/// The errors as a Markdown list, each with its position and its message quoted; the
/// first [`MAX_LISTED`], then how many more (`digestif check-config` lists them all).
pub fn error_list(path: &str, errors: &ConfigErrors) -> String {
    let mut out = String::new();
    let file = code(path);
    for e in errors.0.iter().take(MAX_LISTED) {
        let at = match (e.line, e.column) {
            (Some(l), Some(c)) => format!("{file} line {l}, column {c}"),
            (Some(l), None) => format!("{file} line {l}"),
            _ => file.clone(),
        };
        out.push_str(&format!("- {at}: {}\n", code(&e.message)));
    }
    let more = errors.0.len().saturating_sub(MAX_LISTED);
    if more > 0 {
        out.push_str(&format!(
            "- … and {more} more errors (`digestif check-config FILE` lists every one)\n"
        ));
    }
    out
}

/// The errors as plain text for the operator (status page, `digestif repos`, logs): one a
/// line, the first [`MAX_LISTED`] (each cut at a few hundred characters), then how many more.
pub fn errors_text<T: std::fmt::Display>(errors: &[T]) -> String {
    let mut lines: Vec<String> = errors
        .iter()
        .take(MAX_LISTED)
        .map(|e| clip(&e.to_string(), MAX_QUOTED))
        .collect();
    if errors.len() > MAX_LISTED {
        lines.push(format!("… and {} more", errors.len() - MAX_LISTED));
    }
    lines.join("\n")
}

/// The comment that closes the config-error issue.
pub fn config_fixed_comment(commit: &str) -> String {
    format!("The configuration file is valid again as of {commit}; digestif is back at work.")
}

/// Title of the per-repository dashboard issue (`dashboard: true`).
pub const DASHBOARD_TITLE: &str = "digestif dashboard";

/// The checkbox that asks for a rescan; digestif unticks it by rewriting the body.
pub const RESCAN_BOX: &str = "<!-- digestif-rescan -->";

/// One reference as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardRef {
    pub file: String,
    pub line: i64,
    /// `image:tag` as people write it.
    pub image: String,
    pub status: String,
    pub message: Option<String>,
}

/// Everything the dashboard shows.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    pub references: Vec<DashboardRef>,
    /// `(branch, what waits, why)`
    pub pending: Vec<(String, Vec<UpdateKey>, String)>,
    /// `(image, tag, digest, reason)` of ignores people made.
    pub ignored: Vec<(String, Option<String>, Option<String>, String)>,
    /// Things a person must fix (registry unauthorized, workflows permission, …).
    pub problems: Vec<String>,
    /// Open pull requests: `(number, branch)`.
    pub open_prs: Vec<(i64, String)>,
}

/// The dashboard issue body: a rescan box, then open PRs, pending updates, problems,
/// references by file with status, and ignores. Lists too long for GitHub's body limit
/// share it and say how many entries they leave out.
pub fn dashboard(d: &Dashboard) -> String {
    let mut b = String::new();
    b.push_str("This issue lists what digestif sees in this repository. It is rewritten after every scan.\n\n");
    let _ = writeln!(b, "- [ ] {RESCAN_BOX} Tick this box to rescan now\n");

    let problems: Vec<String> = d
        .problems
        .iter()
        .map(|p| format!("- {}", code(p)))
        .collect();
    let prs: Vec<String> = d
        .open_prs
        .iter()
        .map(|(n, branch)| format!("- #{n} ({})", code(branch)))
        .collect();
    let mut pending = Vec::new();
    for (branch, updates, why) in &d.pending {
        pending.push(format!("- {}: {why}", code(branch)));
        for u in updates {
            let tag = u
                .tag
                .as_deref()
                .map(|t| format!(":{t}"))
                .unwrap_or_default();
            let new = u.new.get(..19).unwrap_or(&u.new);
            pending.push(format!(
                "  - {} in {} → {}",
                code(&format!("{}{tag}", u.image)),
                code(&u.file),
                code(new)
            ));
        }
    }
    let references: Vec<String> = d
        .references
        .iter()
        .map(|r| {
            let status = match &r.message {
                Some(m) => format!("{} {}", r.status, code_cell(m)),
                None => r.status.clone(),
            };
            format!(
                "| {} | {} | {status} |",
                code_cell(&format!("{}:{}", r.file, r.line)),
                code_cell(&r.image)
            )
        })
        .collect();
    let ignored: Vec<String> = d
        .ignored
        .iter()
        .map(|(image, tag, digest, reason)| {
            let what = match (tag, digest) {
                (Some(t), Some(dg)) => format!("{} at {}", code(&format!("{image}:{t}")), code(dg)),
                (Some(t), None) => code(&format!("{image}:{t}")),
                (None, Some(dg)) => format!("{} at {}", code(image), code(dg)),
                (None, None) => format!("{} (every tag)", code(image)),
            };
            format!("- {what}: {reason}")
        })
        .collect();
    let need = |lines: &[String]| lines.iter().map(|l| l.chars().count() + 1).sum::<usize>();
    let sections = [&problems, &prs, &pending, &references, &ignored];
    let needs: Vec<usize> = sections.iter().map(|l| need(l)).collect();
    let fixed = b.chars().count() + 1_000;
    let allow = share(&needs, BODY_BUDGET.saturating_sub(fixed));
    let more = |n: usize| format!("- … and {n} more");

    if !problems.is_empty() {
        b.push_str("## Needs a person\n\n");
        b.push_str(&fit_lines(&problems, allow[0], more));
        b.push('\n');
    }
    b.push_str("## Open pull requests\n\n");
    if prs.is_empty() {
        b.push_str("None.\n\n");
    } else {
        b.push_str(&fit_lines(&prs, allow[1], more));
        b.push('\n');
    }
    b.push_str("## Pending\n\n");
    if pending.is_empty() {
        b.push_str("Nothing waits.\n\n");
    } else {
        b.push_str(&fit_lines(&pending, allow[2], more));
        b.push('\n');
    }
    b.push_str("## References\n\n| File | Image | Status |\n|---|---|---|\n");
    b.push_str(&fit_lines(&references, allow[3], |n| {
        format!("\n… and {n} more references.")
    }));
    b.push('\n');
    if !ignored.is_empty() {
        b.push_str("## Ignored\n\n");
        b.push_str(&fit_lines(&ignored, allow[4], more));
        b.push('\n');
    }
    b.push_str("Comment `@digestif unignore IMAGE` on one of digestif's pull requests to take an ignore back.\n");
    b
}

/// True when the rescan box in an edited dashboard body is ticked.
pub fn rescan_requested(body: &str) -> bool {
    body.lines().any(|l| {
        let l = l.trim_start();
        (l.starts_with("- [x]") || l.starts_with("- [X]")) && l.contains(RESCAN_BOX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::extract_file;
    use crate::reference::Digest;

    fn d(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:x}").repeat(64))
            .parse()
            .unwrap()
    }

    fn updates(file: &str, text: &str, new: &[Digest]) -> Vec<Update> {
        let e = extract_file(file, text.as_bytes()).unwrap();
        e.references
            .into_iter()
            .zip(new)
            .map(|(found, n)| Update {
                found,
                new_digest: n.clone(),
                platform_pin: None,
                tag_digest: None,
                info: None,
                details: None,
            })
            .collect()
    }

    fn links() -> RepoLinks {
        RepoLinks {
            html_url: "https://github.com/octo/app".into(),
            base_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        }
    }

    #[test]
    fn titles() {
        let cfg = RepoConfig::default();
        let one = updates(
            "Dockerfile",
            &format!("FROM python:3.12-slim@{}\n", d(1)),
            &[d(4)],
        );
        assert_eq!(
            title(&cfg, "digestif/all", &one),
            "Update python:3.12-slim digest to 4444444"
        );
        let three = updates(
            "Dockerfile",
            &format!("FROM a:1@{0}\nFROM b:1@{0}\nFROM ghcr.io/o/c:2@{0}\n", d(1)),
            &[d(2), d(3), d(4)],
        );
        assert_eq!(
            title(&cfg, "digestif/all", &three),
            "Update 3 container image digests"
        );
        let cfg = RepoConfig::parse("commit-message: {prefix: \"chore(deps)\"}\n").unwrap();
        assert_eq!(
            title(&cfg, "digestif/all", &three),
            "chore(deps): Update 3 container image digests"
        );
        let pin = updates("Dockerfile", "FROM node:20\n", &[d(5)]);
        assert_eq!(
            title(&cfg, PIN_BRANCH, &pin),
            "chore(deps): Pin container image digests"
        );
    }

    #[test]
    fn body_snapshot() {
        let cfg =
            RepoConfig::parse("schedule: weekly\ntimezone: Europe/Berlin\nmin-age: 3d\n").unwrap();
        let text = format!(
            "ARG BASE=python:3.12-slim@{}\nFROM ${{BASE}}\nFROM --platform=linux/arm64 ghcr.io/acme/app:1.4@{}\n",
            d(1),
            d(2)
        );
        let mut u = updates("build/Dockerfile", &text, &[d(3), d(4)]);
        u[0].info = Some(ImageSummary {
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            created: Some("2026-11-20T08:15:00Z".into()),
            revision: Some("9fceb02d0ae598e95dc970b74767f19372d61af8".into()),
            source: Some("https://github.com/docker-library/python".into()),
        });
        let facts = |rev: &str, openssl: &str| crate::insight::ImageFacts {
            platform: Some("linux/amd64".into()),
            source: Some("https://github.com/docker-library/python".into()),
            revision: Some(rev.into()),
            packages: Some(vec![crate::insight::Package {
                ecosystem: "deb".into(),
                name: "openssl".into(),
                version: openssl.into(),
                purl: None,
            }]),
            ..Default::default()
        };
        u[0].details = Some(crate::insight::Details::Known {
            old: Some(std::sync::Arc::new(facts(
                "0c1f5e2b7a9d3c4e5f60718293a4b5c6d7e8f901",
                "3.0.15-1~deb12u1",
            ))),
            old_note: None,
            new: std::sync::Arc::new(facts(
                "9fceb02d0ae598e95dc970b74767f19372d61af8",
                "3.0.16-1~deb12u1",
            )),
            platform_note: Some("the platform read for a multi-platform pin".into()),
            vulns: Some(crate::insight::osv::VulnNotes::Known {
                fixed: vec![crate::insight::osv::Fixed {
                    package: crate::insight::osv::OsvPackage {
                        ecosystem: "Debian:12".into(),
                        name: "openssl".into(),
                    },
                    old: vec!["3.0.15-1~deb12u1".into()],
                    new: vec!["3.0.16-1~deb12u1".into()],
                    ids: vec!["DSA-5764-1".into()],
                }],
                asked: 1,
                unmapped: 0,
                summaries: [("DSA-5764-1".into(), "openssl - security update".into())]
                    .into_iter()
                    .collect(),
                link_prefix: "https://osv.dev/vulnerability/".into(),
            }),
        });
        u[1].platform_pin = Some("linux/arm64".into());
        u[1].details = Some(crate::insight::Details::Known {
            old: None,
            old_note: None,
            new: std::sync::Arc::new(crate::insight::ImageFacts::default()),
            platform_note: None,
            vulns: None,
        });
        let b = body(&cfg, &links(), "digestif/all", &u);
        assert!(b.chars().count() <= BODY_BUDGET);
        insta::assert_snapshot!(b);
        let state = parse_marker(&b).unwrap();
        assert_eq!(state.branch, "digestif/all");
        assert_eq!(state.updates, u.iter().map(Update::key).collect::<Vec<_>>());
    }

    #[test]
    fn the_body_says_where_each_digest_goes_and_why() {
        let text = "# syntax=docker/dockerfile:1\nARG GO=1.26\nARG BASE=alpine:3\n\
                    FROM golang:${GO}-alpine AS build\nFROM $BASE\n";
        let u = updates("Dockerfile", text, &[d(1), d(2), d(3)]);
        let b = body(&RepoConfig::default(), &links(), PIN_BRANCH, &u);
        assert!(
            b.contains(
                "- `Dockerfile:1` is the `# syntax=` parser directive: BuildKit pulls that \
                 frontend image before it reads the rest of the file, so its digest is written \
                 in place on the directive line."
            ),
            "{b}"
        );
        assert!(
            b.contains(
                "- `Dockerfile:4` names `golang:${GO}-alpine`, which the ARGs `GO` make \
                 `golang:1.26-alpine`: the digest is written after the image text in that \
                 line, not in the ARGs, which may be used elsewhere. When one of those ARGs \
                 changes, the pinned digest no longer matches the new tag and digestif \
                 proposes the new tag's digest."
            ),
            "{b}"
        );
        assert!(
            b.contains("- `Dockerfile:3` is the default of `ARG BASE`, which a `FROM $BASE` uses"),
            "{b}"
        );
    }

    #[test]
    fn a_body_with_huge_package_diffs_stays_within_githubs_limit() {
        let cfg = RepoConfig::default();
        let text: String = (0..40)
            .map(|i| format!("FROM img{i}:1@{}\n", d(1)))
            .collect();
        let new: Vec<Digest> = (0..40).map(|_| d(2)).collect();
        let mut u = updates("Dockerfile", &text, &new);
        let facts = |v: &str| {
            std::sync::Arc::new(crate::insight::ImageFacts {
                packages: Some(
                    (0..3000)
                        .map(|i| crate::insight::Package {
                            ecosystem: "npm".into(),
                            name: format!("package-with-a-long-name-{i}"),
                            version: v.into(),
                            purl: None,
                        })
                        .collect(),
                ),
                ..Default::default()
            })
        };
        for x in &mut u {
            x.details = Some(crate::insight::Details::Known {
                old: Some(facts("1.0.0")),
                old_note: None,
                new: facts("1.0.1"),
                platform_note: None,
                vulns: None,
            });
        }
        let b = body(&cfg, &links(), "digestif/all", &u);
        assert!(b.chars().count() <= BODY_BUDGET, "{}", b.len());
        assert!(
            b.contains("more package changes, left out"),
            "cut with a count"
        );
        // The parts after the section survive the cut.
        assert_eq!(parse_marker(&b).map(|m| m.updates.len()), Some(40));
        assert!(b.contains("<summary>Full digests</summary>"));
    }

    #[test]
    fn a_body_with_huge_advisory_lists_stays_within_githubs_limit() {
        use crate::insight::osv::{Fixed, OsvPackage, VulnNotes};
        let cfg = RepoConfig::default();
        let text: String = (0..10)
            .map(|i| format!("FROM img{i}:1@{}\n", d(1)))
            .collect();
        let new: Vec<Digest> = (0..10).map(|_| d(2)).collect();
        let mut u = updates("Dockerfile", &text, &new);
        let facts = |v: &str| {
            std::sync::Arc::new(crate::insight::ImageFacts {
                packages: Some(
                    (0..300)
                        .map(|i| crate::insight::Package {
                            ecosystem: "deb".into(),
                            name: format!("lib{i}"),
                            version: v.into(),
                            purl: None,
                        })
                        .collect(),
                ),
                ..Default::default()
            })
        };
        let fixed: Vec<Fixed> = (0..300)
            .map(|i| Fixed {
                package: OsvPackage {
                    ecosystem: "Debian:12".into(),
                    name: format!("lib{i}"),
                },
                old: vec!["1.0-1".into()],
                new: vec!["1.0-2".into()],
                ids: (0..20)
                    .map(|j| format!("DEBIAN-CVE-2026-{i:03}{j:02}"))
                    .collect(),
            })
            .collect();
        for x in &mut u {
            x.details = Some(crate::insight::Details::Known {
                old: Some(facts("1.0-1")),
                old_note: None,
                new: facts("1.0-2"),
                platform_note: None,
                vulns: Some(VulnNotes::Known {
                    fixed: fixed.clone(),
                    asked: 300,
                    unmapped: 0,
                    summaries: Default::default(),
                    link_prefix: "https://osv.dev/vulnerability/".into(),
                }),
            });
        }
        let b = body(&cfg, &links(), "digestif/all", &u);
        assert!(b.chars().count() <= BODY_BUDGET, "{}", b.len());
        assert!(b.contains("; fixes 6000 known advisories</summary>"), "{b}");
        assert!(
            b.contains("more advisory entries, left out"),
            "cut with a count"
        );
        assert_eq!(parse_marker(&b).map(|m| m.updates.len()), Some(10));
        assert!(b.contains("<summary>Full digests</summary>"));
    }

    #[test]
    fn the_marker_survives_html_comment_breakers() {
        let state = MachineState {
            v: 1,
            branch: "digestif/file-a--b".into(),
            updates: vec![UpdateKey {
                file: "a--b/-->Dockerfile".into(),
                image: "docker.io/library/x".into(),
                tag: None,
                old: None,
                new: d(1).to_string(),
            }],
            more: 0,
        };
        let m = marker(&state);
        assert_eq!(m.matches("-->").count(), 1);
        assert!(m.ends_with("-->"));
        assert_eq!(parse_marker(&format!("text\n{m}\n")), Some(state));
        assert_eq!(parse_marker("no marker"), None);
    }

    #[test]
    fn commit_message_lists_each_change() {
        let cfg = RepoConfig::default();
        let u = updates(
            "Dockerfile",
            &format!("FROM a:1@{}\nFROM b:1\n", d(1)),
            &[d(2), d(3)],
        );
        let m = commit_message(&cfg, "digestif/all", &u);
        assert_eq!(
            m,
            "Update 2 container image digests\n\n- Dockerfile:1 a:1 1111111 -> 2222222\n- Dockerfile:2 b:1 (tag only) -> 3333333\n"
        );
    }

    #[test]
    fn config_issue_lists_every_error_with_its_position() {
        let errors =
            crate::repo_config::RepoConfig::parse("schedule: sometimes\ntimezone: Mars/Base\n")
                .expect_err("invalid config");
        let body = config_error_issue(".github/digestif.yml", "abc1234", &errors);
        assert!(
            body.contains("`.github/digestif.yml` line 1, column 11"),
            "{body}"
        );
        assert!(
            body.contains("`.github/digestif.yml` line 2, column 11"),
            "{body}"
        );
        assert!(body.contains("abc1234"), "{body}");
    }

    #[test]
    fn dashboard_lists_everything_and_its_box_can_be_ticked() {
        let d = Dashboard {
            references: vec![DashboardRef {
                file: "Dockerfile".into(),
                line: 3,
                image: "python:3.12".into(),
                status: "error".into(),
                message: Some("registry.example.com: unauthorized | denied".into()),
            }],
            pending: vec![(
                "digestif/all".into(),
                vec![UpdateKey {
                    file: "Dockerfile".into(),
                    image: "docker.io/library/python".into(),
                    tag: Some("3.12".into()),
                    old: None,
                    new: "sha256:2222222222222222222222222222222222222222222222222222222222222222"
                        .into(),
                }],
                "min-age: waits until 2026-12-01 06:00 UTC".into(),
            )],
            ignored: vec![(
                "docker.io/library/node".into(),
                None,
                None,
                "`@digestif ignore this image` on #4".into(),
            )],
            problems: vec!["workflows permission".into()],
            open_prs: vec![(4, "digestif/all".into())],
        };
        let body = dashboard(&d);
        assert!(body.contains("unauthorized \\| denied"), "{body}");
        assert!(body.contains("min-age: waits until"), "{body}");
        assert!(
            body.contains("`docker.io/library/node` (every tag)"),
            "{body}"
        );
        assert!(!rescan_requested(&body));
        assert!(rescan_requested(&body.replacen("- [ ]", "- [x]", 1)));
    }

    // ---- text from outside, and GitHub's body limit -----------------------------------------

    use pulldown_cmark::{Event, Options, Parser, Tag};

    /// Everything that would write something outside a code span: a URL, an image, a
    /// mention, raw HTML.
    const HOSTILE: &str = "x` @octocat [click](https://evil.example/a) ![i](https://evil.example/i.png) <img src=x> https://evil.example www.evil.example ``y | z\n- item";

    /// What GitHub would make live in `md`: links and images (with their targets), HTML,
    /// and words in plain text that mention someone or look like an address.
    fn live(md: &str) -> Vec<String> {
        let mut out = Vec::new();
        for ev in Parser::new_ext(md, Options::ENABLE_TABLES) {
            match ev {
                Event::Start(Tag::Link { dest_url, .. }) => out.push(format!("link {dest_url}")),
                Event::Start(Tag::Image { dest_url, .. }) => out.push(format!("image {dest_url}")),
                // digestif's own: the digests' <details> and its hidden comments.
                Event::Html(h) | Event::InlineHtml(h)
                    if h.starts_with("<!-- digestif-")
                        || h.starts_with("<details><summary>Full digests</summary>")
                        || h.starts_with("</details>") => {}
                Event::Html(h) | Event::InlineHtml(h) => out.push(format!("html {h}")),
                Event::Text(t) => {
                    for w in t.split_whitespace() {
                        if w.contains('@') || w.contains("://") || w.starts_with("www.") {
                            out.push(format!("text {w}"));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn code_spans(md: &str) -> Vec<String> {
        Parser::new_ext(md, Options::ENABLE_TABLES)
            .filter_map(|ev| match ev {
                Event::Code(c) => Some(c.to_string()),
                _ => None,
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_one_code_span_that_reads_back(t in "[ -~éß\u{1F600}]{0,120}") {
            let expected = if t.is_empty() { " ".to_string() } else { t.clone() };
            proptest::prop_assert_eq!(code_spans(&code(&t)), vec![expected.clone()]);
            // In a table cell too, pipes and all.
            let table = format!("| a |\n|---|\n| {} |\n", code_cell(&t));
            proptest::prop_assert_eq!(code_spans(&table), vec![expected]);
        }
    }

    #[test]
    fn code_spans_survive_backticks_mentions_and_line_breaks() {
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x`"), "`` `x` ``");
        assert_eq!(code(" x "), "`  x  `");
        assert_eq!(code_spans(&code(HOSTILE)), [HOSTILE.replace('\n', " ")]);
        assert!(
            live(&code(HOSTILE)).is_empty(),
            "{:?}",
            live(&code(HOSTILE))
        );
        let long = "a".repeat(1000);
        assert_eq!(code(&long).chars().count(), MAX_QUOTED + 2);
    }

    #[test]
    fn link_targets_cannot_end_the_link() {
        assert_eq!(link_target("http://x"), None);
        assert_eq!(
            link_target("https://e.example/a) @x ![i](y)").as_deref(),
            Some("https://e.example/a%29%20@x%20!%5Bi%5D%28y%29")
        );
    }

    #[test]
    fn config_values_are_quoted_in_the_config_issue() {
        let yaml = format!(
            "timezone: {:?}\nreviewers: [{:?}]\nschedule: {:?}\n",
            HOSTILE, HOSTILE, HOSTILE
        );
        let errors = RepoConfig::parse(&yaml).expect_err("invalid");
        let body = config_error_issue(".github/digestif.yml", "abc1234", &errors);
        assert_eq!(live(&body), Vec::<String>::new(), "{body}");
        assert!(
            code_spans(&body)
                .iter()
                .filter(|c| c.contains("@octocat"))
                .count()
                >= 3,
            "{body}"
        );
    }

    fn hostile_update() -> Vec<Update> {
        let mut u = updates(
            "a` @octocat [x](https://evil.example)/Dockerfile",
            &format!("FROM python:3.12@{}\n", d(1)),
            &[d(2)],
        );
        u[0].info = Some(ImageSummary {
            platforms: vec![HOSTILE.into()],
            created: Some("@octocat ![i](https://evil.example/i.png)".into()),
            revision: Some(HOSTILE.into()),
            source: Some("https://github.com/o/r) @octocat ![i](https://evil.example/i.png".into()),
        });
        u[0].platform_pin = Some(HOSTILE.into());
        u
    }

    #[test]
    fn registry_and_file_text_is_quoted_in_pr_bodies() {
        let cfg = RepoConfig::default();
        let b = body(&cfg, &links(), "digestif/all", &hostile_update());
        let live = live(&b);
        // Only the two links digestif makes: the file on GitHub and the source commit,
        // with the outside text percent-encoded in their targets.
        assert_eq!(live.len(), 2, "{live:?}\n{b}");
        assert!(
            live[0].starts_with(
                "link https://github.com/octo/app/blob/0123456789abcdef0123456789abcdef01234567/a%60%20%40octocat"
            ),
            "{live:?}"
        );
        assert!(
            live[1].starts_with("link https://github.com/o/r%29%20@octocat%20!%5Bi%5D"),
            "{live:?}"
        );
        assert!(parse_marker(&b).is_some());
    }

    #[test]
    fn dashboard_and_comments_quote_outside_text() {
        let d = Dashboard {
            references: vec![DashboardRef {
                file: HOSTILE.into(),
                line: 1,
                image: HOSTILE.into(),
                status: "error".into(),
                message: Some(HOSTILE.into()),
            }],
            pending: vec![(
                HOSTILE.into(),
                vec![UpdateKey {
                    file: HOSTILE.into(),
                    image: HOSTILE.into(),
                    tag: Some(HOSTILE.into()),
                    old: None,
                    new: HOSTILE.into(),
                }],
                "min-age".into(),
            )],
            ignored: vec![(HOSTILE.into(), Some(HOSTILE.into()), None, "x".into())],
            problems: vec![HOSTILE.into()],
            open_prs: vec![(4, HOSTILE.into())],
        };
        let body = dashboard(&d);
        assert_eq!(live(&body), Vec::<String>::new(), "{body}");
        let note = workflows_note(&[HOSTILE.to_string()]);
        assert_eq!(live(&note), Vec::<String>::new(), "{note}");
    }

    #[test]
    fn a_pr_with_2000_updates_fits_githubs_limit_and_says_how_many_more() {
        let cfg = RepoConfig::default();
        let text: String = (0..2000)
            .map(|i| format!("FROM ghcr.io/acme/service-{i}:1.0@{}\n", d(1)))
            .collect();
        let new = vec![d(2); 2000];
        let mut u = updates("services/Dockerfile", &text, &new);
        for x in &mut u {
            x.info = Some(ImageSummary {
                platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
                created: Some("2026-11-20T08:15:00Z".into()),
                revision: Some("9fceb02d0ae598e95dc970b74767f19372d61af8".into()),
                source: Some("https://github.com/acme/service".into()),
            });
        }
        let b = body(&cfg, &links(), "digestif/all", &u);
        // The workflows warning may still be put in front.
        let note = workflows_note(&vec!["x".repeat(400); 100]);
        assert!(
            note.chars().count() + b.chars().count() <= GITHUB_BODY_LIMIT,
            "{} + {}",
            note.chars().count(),
            b.chars().count()
        );
        let state = parse_marker(&b).expect("marker");
        assert!(state.updates.len() > 50, "{}", state.updates.len());
        assert_eq!(state.updates.len() + state.more, 2000);
        assert!(
            b.contains(&format!(
                "… and {} more of the 2000 updates; the commit message lists every one.",
                state.more
            )),
            "{b}"
        );
        assert_eq!(
            commit_message(&cfg, "digestif/all", &u).lines().count(),
            2002
        );
    }

    #[test]
    fn a_hundred_thousand_errors_or_references_stay_under_the_limit() {
        let yaml: String = (0..100_000)
            .map(|i| format!("k{i}: {HOSTILE:?}\n"))
            .collect();
        let errors = RepoConfig::parse(&yaml).expect_err("invalid");
        let many = ConfigErrors(
            (0..100_000)
                .map(|i| crate::repo_config::ConfigError {
                    line: Some(i),
                    column: Some(1),
                    message: HOSTILE.repeat(50),
                })
                .collect(),
        );
        for errors in [errors, many] {
            let n = errors.0.len();
            let issue = config_error_issue(".github/digestif.yml", "abc1234", &errors);
            assert!(issue.chars().count() < GITHUB_BODY_LIMIT, "{}", issue.len());
            if n > MAX_LISTED {
                assert!(
                    issue.contains(&format!("… and {} more errors", n - MAX_LISTED)),
                    "{issue}"
                );
            }
            let text = errors_text(&errors.0);
            assert!(text.chars().count() < 20_000, "{}", text.len());
        }
        let r = DashboardRef {
            file: "a/Dockerfile".into(),
            line: 1,
            image: "python:3.12".into(),
            status: "error".into(),
            message: Some(HOSTILE.repeat(10)),
        };
        let d = Dashboard {
            references: vec![r; 100_000],
            problems: vec![HOSTILE.repeat(10); 100_000],
            open_prs: vec![(1, "digestif/all".into())],
            ..Dashboard::default()
        };
        let body = dashboard(&d);
        assert!(body.chars().count() < GITHUB_BODY_LIMIT, "{}", body.len());
        assert!(body.contains("more references."), "{body}");
        assert!(body.contains("## Open pull requests\n\n- #1"), "{body}");
    }
}
