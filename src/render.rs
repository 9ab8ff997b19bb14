//! What a pull request says: title, body and commit message. Pure text from plan data.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::insight::{self, section::Entry};
use crate::plan::{PIN_BRANCH, Update, UpdateKey};
use crate::repo_config::{ConfigErrors, RepoConfig};

const SHORT: usize = 7;
/// GitHub's limit for a pull request description, in characters (bytes here: stricter).
pub const BODY_LIMIT: usize = 65_536;
/// Room kept for the warning the writer may put above a body.
const WARNING_ROOM: usize = 1_000;
const MARKER_START: &str = "<!-- digestif-state: ";
const MARKER_END: &str = " -->";

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
pub fn body(config: &RepoConfig, links: &RepoLinks, branch: &str, updates: &[Update]) -> String {
    let mut b = String::new();
    if branch == PIN_BRANCH {
        b.push_str(
            "This PR pins container images to the digest their tag points at today, so builds \
             are reproducible. digestif will propose a new digest when the tag moves.\n\n",
        );
    } else {
        b.push_str("This PR updates container image digests to what their tags point at now.\n\n");
    }
    b.push_str("| File | Image | Digest | Platforms | Created | Source |\n");
    b.push_str("|---|---|---|---|---|---|\n");
    for u in updates {
        let file = format!(
            "[{f}:{l}]({url}/blob/{sha}/{f}#L{l})",
            f = u.found.file,
            l = u.found.line,
            url = links.html_url,
            sha = links.base_sha
        );
        let info = u.info.as_ref();
        let platforms = info
            .filter(|i| !i.platforms.is_empty())
            .map(|i| i.platforms.join(", "))
            .unwrap_or_else(|| "–".into());
        let created = info
            .and_then(|i| i.created.as_deref())
            .map(|c| c.get(..10).unwrap_or(c).to_string())
            .unwrap_or_else(|| "–".into());
        let source = info.map(source_cell).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            b,
            "| {file} | `{}` | `{}` → `{}` | {platforms} | {created} | {source} |",
            image_tag(u),
            old_short(u),
            u.new_digest.short(SHORT)
        );
    }

    let why: Vec<String> = updates.iter().filter_map(why_line).collect();
    if !why.is_empty() {
        b.push('\n');
        for w in why {
            let _ = writeln!(b, "- {w}");
        }
    }

    let mut tail = String::new();
    tail.push_str("\n<details><summary>Full digests</summary>\n\n");
    for u in updates {
        let _ = writeln!(
            tail,
            "- `{}:{}` `{}`",
            u.found.file,
            u.found.line,
            image_tag(u)
        );
        if let Some(old) = &u.found.reference.digest {
            let _ = writeln!(tail, "  - old: `{old}`");
        }
        let _ = writeln!(tail, "  - new: `{}`", u.new_digest);
    }
    tail.push_str("\n</details>\n\n---\n\n");

    let _ = write!(tail, "Schedule: {}", config.schedule);
    if config.timezone != chrono_tz::UTC {
        let _ = write!(tail, " ({})", config.timezone.name());
    }
    if !config.min_age.is_zero() {
        let _ = write!(tail, " · min-age: {}", human_duration(config.min_age));
    }
    tail.push_str(
        "\n\nComment to act on this PR: `@digestif rebase` (regenerate it and hand it back to \
         digestif), `@digestif recreate` (reopen a closed PR), `@digestif ignore this digest`, \
         `@digestif ignore this image`, `@digestif unignore IMAGE`. Closing it without merging \
         means \"not these digests\": digestif proposes again only when the digest moves.\n",
    );
    let state = MachineState {
        v: 1,
        branch: branch.to_string(),
        updates: updates.iter().map(Update::key).collect(),
    };
    tail.push('\n');
    tail.push_str(&marker(&state));
    tail.push('\n');
    // GitHub refuses descriptions over 65,536 characters; the "What changed" section gets
    // what the rest leaves (less room for a warning the writer may put on top).
    let budget = BODY_LIMIT.saturating_sub(b.len() + tail.len() + WARNING_ROOM);
    let section = insight::section::render(&entries(updates), budget);
    if !section.is_empty() {
        b.push('\n');
        b.push_str(section.trim_end());
        b.push('\n');
    }
    b.push_str(&tail);
    b
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

fn source_cell(i: &crate::plan::ImageInfo) -> String {
    match (&i.source, &i.revision) {
        (Some(src), Some(rev)) if src.starts_with("https://") => {
            let short = rev.get(..SHORT).unwrap_or(rev);
            let base = src.trim_end_matches('/').trim_end_matches(".git");
            if base.starts_with("https://github.com/") {
                format!("[{short}]({base}/commit/{rev})")
            } else {
                format!("[source]({base}) `{short}`")
            }
        }
        (Some(src), None) if src.starts_with("https://") => format!("[source]({src})"),
        (_, Some(rev)) => format!("`{}`", rev.get(..SHORT).unwrap_or(rev)),
        _ => "–".to_string(),
    }
}

fn why_line(u: &Update) -> Option<String> {
    let at = format!("`{}:{}`", u.found.file, u.found.line);
    match (&u.platform_pin, &u.found.context.arg) {
        (Some(p), Some(arg)) => Some(format!(
            "{at} is pinned to the {p} manifest through `ARG {arg}`: the new digest is {p}'s \
             manifest in the tag's current index, written at the `ARG` default."
        )),
        (Some(p), None) => Some(format!(
            "{at} is pinned to the {p} manifest, so the new digest is {p}'s manifest in the \
             tag's current index (not the multi-platform index)."
        )),
        (None, Some(arg)) => Some(format!(
            "{at} is the default of `ARG {arg}`, which a `FROM ${arg}` uses: the digest is \
             updated at the `ARG`."
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

/// Title of the one issue that tells a repository its config file is invalid.
pub const CONFIG_ISSUE_TITLE: &str = "digestif: configuration error";

/// Body of the config-error issue: where the file is, every error with its line and
/// column, and that nothing is updated until it is fixed.
pub fn config_error_issue(path: &str, commit: &str, errors: &ConfigErrors) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "digestif could not read its configuration file `{path}` (at {commit}), so it is not \
         updating this repository until the file is fixed.\n\n"
    ));
    out.push_str(&error_list(path, errors));
    out.push_str(
        "\nRun `digestif check-config FILE` locally to validate a change, or open a pull \
         request: digestif checks the new file and reports on it. This issue closes itself \
         when the file on the default branch is valid again.\n",
    );
    out
}

/// The errors as a Markdown list, each with its position.
pub fn error_list(path: &str, errors: &ConfigErrors) -> String {
    let mut out = String::new();
    for e in &errors.0 {
        let at = match (e.line, e.column) {
            (Some(l), Some(c)) => format!("`{path}` line {l}, column {c}"),
            (Some(l), None) => format!("`{path}` line {l}"),
            _ => format!("`{path}`"),
        };
        out.push_str(&format!("- {at}: {}\n", e.message));
    }
    out
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
/// references by file with status, and ignores.
pub fn dashboard(d: &Dashboard) -> String {
    let mut b = String::new();
    b.push_str("This issue lists what digestif sees in this repository. It is rewritten after every scan.\n\n");
    let _ = writeln!(b, "- [ ] {RESCAN_BOX} Tick this box to rescan now\n");
    if !d.problems.is_empty() {
        b.push_str("## Needs a person\n\n");
        for p in &d.problems {
            let _ = writeln!(b, "- {p}");
        }
        b.push('\n');
    }
    b.push_str("## Open pull requests\n\n");
    if d.open_prs.is_empty() {
        b.push_str("None.\n\n");
    } else {
        for (n, branch) in &d.open_prs {
            let _ = writeln!(b, "- #{n} (`{branch}`)");
        }
        b.push('\n');
    }
    b.push_str("## Pending\n\n");
    if d.pending.is_empty() {
        b.push_str("Nothing waits.\n\n");
    } else {
        for (branch, updates, why) in &d.pending {
            let _ = writeln!(b, "- `{branch}`: {why}");
            for u in updates {
                let tag = u
                    .tag
                    .as_deref()
                    .map(|t| format!(":{t}"))
                    .unwrap_or_default();
                let new = u.new.get(..19).unwrap_or(&u.new);
                let _ = writeln!(b, "  - `{}{tag}` in `{}` → `{new}`", u.image, u.file);
            }
        }
        b.push('\n');
    }
    b.push_str("## References\n\n| File | Image | Status |\n|---|---|---|\n");
    for r in &d.references {
        let status = match &r.message {
            Some(m) => format!(
                "{} ({})",
                r.status,
                m.replace('|', "\\|").replace('\n', " ")
            ),
            None => r.status.clone(),
        };
        let _ = writeln!(b, "| `{}:{}` | `{}` | {status} |", r.file, r.line, r.image);
    }
    b.push('\n');
    if !d.ignored.is_empty() {
        b.push_str("## Ignored\n\n");
        for (image, tag, digest, reason) in &d.ignored {
            let what = match (tag, digest) {
                (Some(t), Some(dg)) => format!("`{image}:{t}` at `{dg}`"),
                (Some(t), None) => format!("`{image}:{t}`"),
                (None, Some(dg)) => format!("`{image}` at `{dg}`"),
                (None, None) => format!("`{image}` (every tag)"),
            };
            let _ = writeln!(b, "- {what}: {reason}");
        }
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
    use crate::plan::ImageInfo;
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
        u[0].info = Some(ImageInfo {
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
        });
        u[1].platform_pin = Some("linux/arm64".into());
        u[1].details = Some(crate::insight::Details::Known {
            old: None,
            old_note: None,
            new: std::sync::Arc::new(crate::insight::ImageFacts::default()),
            platform_note: None,
        });
        let b = body(&cfg, &links(), "digestif/all", &u);
        assert!(b.len() <= BODY_LIMIT);
        insta::assert_snapshot!(b);
        let state = parse_marker(&b).unwrap();
        assert_eq!(state.branch, "digestif/all");
        assert_eq!(state.updates, u.iter().map(Update::key).collect::<Vec<_>>());
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
            });
        }
        let b = body(&cfg, &links(), "digestif/all", &u);
        assert!(b.len() <= BODY_LIMIT - 1_000, "{}", b.len());
        assert!(
            b.contains("more package changes, left out"),
            "cut with a count"
        );
        // The parts after the section survive the cut.
        assert_eq!(parse_marker(&b).map(|m| m.updates.len()), Some(40));
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
}
