//! The "What changed" section of a PR body, within a character budget.

use std::fmt::Write as _;

use super::provenance::github_repo;
use super::sbom::{self, Change};
use super::{Details, ImageFacts};

/// One image update as the section shows it (updates of the same image and digests in
/// several files share one entry).
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// `python:3.12-slim`
    pub image: String,
    /// `Dockerfile:3`, …
    pub locations: Vec<String>,
    pub details: &'a Details,
}

/// The sentence for an image that publishes nothing usable.
pub const NOTHING_PUBLISHED: &str = "No source or SBOM information published for this image.";

const SHORT: usize = 7;

/// Markdown for `entries`, at most `budget` characters (package rows are cut first, with a
/// count of what was left out). Empty when there are no entries.
pub fn render(entries: &[Entry<'_>], budget: usize) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let mut out = String::from("### What changed\n\n");
    // Every entry's short lines first, so a long package table cannot crowd out the next
    // image's source link: tables get what is left, in order.
    let heads: Vec<String> = entries.iter().map(head).collect();
    let fixed: usize = out.len() + heads.iter().map(String::len).sum::<usize>();
    let mut left = budget.saturating_sub(fixed);
    for (e, h) in entries.iter().zip(heads) {
        out.push_str(&h);
        if let Details::Known {
            old: Some(old),
            new,
            platform_note,
            ..
        } = e.details
            && let (Some(a), Some(b)) = (&old.packages, &new.packages)
        {
            let d = sbom::diff(a, b);
            if !d.is_empty() {
                let t = packages_table(&d, new, platform_note.as_deref(), &mut left);
                out.push_str(&t);
            }
        }
    }
    if out.len() > budget {
        // Even the short lines did not fit: cut at a line boundary and say so.
        let note = "\n…the rest of this section is cut to keep within GitHub's limit for a pull request description.\n";
        let keep = budget.saturating_sub(note.len());
        let cut = out[..floor_char(&out, keep)]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        out.truncate(cut);
        out.push_str(note);
    }
    out
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Title and the one-line facts of an entry.
fn head(e: &Entry<'_>) -> String {
    let mut b = String::new();
    let at: Vec<String> = e.locations.iter().map(|l| code(l)).collect();
    let _ = writeln!(b, "**{}** in {}\n", code(&e.image), at.join(", "));
    match e.details {
        Details::Deferred { host } => {
            let _ = writeln!(
                b,
                "- Details will follow: the pull budget for {} is used up for now, so the \
                 source and package changes are added at a later run.\n",
                code(host)
            );
        }
        Details::Failed { message } => {
            let _ = writeln!(
                b,
                "- The image's source and SBOM information could not be read: {}\n",
                plain(message)
            );
        }
        Details::Known {
            old,
            old_note,
            new,
            platform_note,
        } => {
            let old = old.as_deref();
            if new.is_empty() && old.is_none_or(ImageFacts::is_empty) {
                let _ = writeln!(b, "- {NOTHING_PUBLISHED}\n");
                return b;
            }
            for line in fact_lines(old, old_note.as_deref(), new, platform_note.as_deref()) {
                let _ = writeln!(b, "- {line}");
            }
            b.push('\n');
        }
    }
    b
}

fn fact_lines(
    old: Option<&ImageFacts>,
    old_note: Option<&str>,
    new: &ImageFacts,
    platform_note: Option<&str>,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(l) = source_line(old, new) {
        lines.push(l);
    }
    if let Some(l) = base_line(old, new) {
        lines.push(l);
    }
    if let Some(builder) = new.provenance.as_ref().and_then(|p| p.builder.as_deref()) {
        lines.push(format!(
            "Built by {} (provenance attestation).",
            code(builder)
        ));
    }
    let on = new
        .platform
        .as_deref()
        .map(|p| match platform_note {
            Some(n) => format!(" on {} ({})", code(p), plain(n)),
            None => format!(" on {}", code(p)),
        })
        .unwrap_or_default();
    match (old.and_then(|o| o.packages.as_ref()), &new.packages) {
        (Some(a), Some(b)) if sbom::diff(a, b).is_empty() => lines.push(format!(
            "Packages: no changes{on} ({} packages in the SBOM).",
            b.len()
        )),
        // The table follows the lines.
        (Some(_), Some(_)) => {}
        (None, Some(b)) => lines.push(format!(
            "Packages: the new image's SBOM lists {} packages{on}; {}",
            b.len(),
            match old_note {
                Some(n) => format!("the old image's cannot be compared: {}.", plain(n)),
                None => "the old image published no SBOM to compare with.".to_string(),
            }
        )),
        (Some(_), None) => lines.push(format!(
            "Packages: the old image published an SBOM{on} but the new one does not."
        )),
        (None, None) => {}
    }
    if let Some(e) = &new.sbom_error {
        lines.push(format!(
            "The SBOM attestation could not be read: {}.",
            plain(e)
        ));
    }
    if lines.is_empty() {
        lines.push(NOTHING_PUBLISHED.to_string());
    }
    lines
}

fn source_line(old: Option<&ImageFacts>, new: &ImageFacts) -> Option<String> {
    let new_rev = new.revision()?;
    let from = if new.source_from_provenance() {
        " (from the provenance attestation)"
    } else {
        ""
    };
    let old_rev = old.and_then(ImageFacts::revision);
    let repo = new.source().and_then(github_repo);
    let short = |r: &str| r.get(..SHORT).unwrap_or(r).to_string();
    if old_rev == Some(new_rev) {
        return Some(format!(
            "Same source revision {}: a rebuild of the same code{from}.",
            code(&short(new_rev))
        ));
    }
    match (old_rev, repo) {
        (Some(o), Some(repo)) if is_revision(o) && is_revision(new_rev) => Some(format!(
            "Source: [{}…{}]({repo}/compare/{o}...{new_rev}){from}.",
            short(o),
            short(new_rev)
        )),
        (_, Some(repo)) if is_revision(new_rev) => Some(format!(
            "Built from [{}]({repo}/commit/{new_rev}){from}.",
            short(new_rev)
        )),
        _ => {
            let src = new
                .source()
                .map(|s| format!(" of {}", code(s)))
                .unwrap_or_default();
            Some(format!("Built from {}{src}{from}.", code(&short(new_rev))))
        }
    }
}

fn base_line(old: Option<&ImageFacts>, new: &ImageFacts) -> Option<String> {
    let name = new
        .base_name
        .as_deref()
        .map(code)
        .unwrap_or_else(|| "the base image".to_string());
    let new_d = new.base_digest.as_deref();
    let old_d = old.and_then(|o| o.base_digest.as_deref());
    let short = |d: &str| {
        let hex = d.split_once(':').map_or(d, |(_, h)| h);
        code(hex.get(..SHORT).unwrap_or(hex))
    };
    match (old_d, new_d) {
        (Some(a), Some(b)) if a != b => Some(format!(
            "Base image {name} moved ({} → {}): this rebuild picks up a base image update.",
            short(a),
            short(b)
        )),
        (Some(_), Some(b)) => Some(format!("Base image {name} unchanged ({}).", short(b))),
        (None, Some(b)) => Some(format!("Base image {name} at {}.", short(b))),
        _ if new.base_name.is_some() => Some(format!("Base image {name}.")),
        _ => None,
    }
}

/// A collapsed table of the package changes, grouped by ecosystem, cut to `left` chars.
fn packages_table(
    d: &sbom::PackageDiff,
    new: &ImageFacts,
    platform_note: Option<&str>,
    left: &mut usize,
) -> String {
    let mut b = String::new();
    let on = match (new.platform.as_deref(), platform_note) {
        (Some(p), Some(n)) => format!(" on {} ({})", plain(p), plain(n)),
        (Some(p), None) => format!(" on {}", plain(p)),
        _ => String::new(),
    };
    let _ = write!(
        b,
        "<details><summary>Package changes{on}: {} updated, {} added, {} removed</summary>\n\n",
        d.updated, d.added, d.removed
    );
    let close = "</details>\n\n";
    let mut shown = 0usize;
    let reserve = 200 + close.len();
    'eco: for eco in &d.ecosystems {
        let header = format!(
            "**{}** ({})\n\n| Package | Old | New |\n|---|---|---|\n",
            plain(&eco.ecosystem),
            eco.changes.len()
        );
        if b.len() + header.len() + reserve > *left {
            break;
        }
        b.push_str(&header);
        for c in &eco.changes {
            let row = match c {
                Change::Updated { name, old, new } => {
                    format!("| {} | {} | {} |\n", code(name), code(old), code(new))
                }
                Change::Added { name, version } => {
                    format!("| {} | – | {} |\n", code(name), code(version))
                }
                Change::Removed { name, version } => {
                    format!("| {} | {} | – |\n", code(name), code(version))
                }
            };
            if b.len() + row.len() + reserve > *left {
                b.push('\n');
                break 'eco;
            }
            b.push_str(&row);
            shown += 1;
        }
        b.push('\n');
    }
    let hidden = d.total() - shown;
    if hidden > 0 {
        let _ = write!(
            b,
            "…and {hidden} more package changes, left out to keep within GitHub's limit for a \
             pull request description.\n\n"
        );
    }
    b.push_str(close);
    *left = left.saturating_sub(b.len());
    b
}

/// `text` as inline code safe in a table cell: no backticks, pipes escaped, one line.
pub fn code(text: &str) -> String {
    let t: String = text
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect();
    format!("`{}`", t.replace('|', "\\|"))
}

/// Text from outside as plain Markdown: characters that would start markup are escaped.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '!' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A git commit id: hex, 7 to 64 characters (so it is safe inside a URL).
fn is_revision(r: &str) -> bool {
    (7..=64).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::insight::{Package, Provenance};

    fn p(eco: &str, name: &str, version: &str) -> Package {
        Package {
            ecosystem: eco.into(),
            name: name.into(),
            version: version.into(),
        }
    }

    fn python(rev: &str, base: &str, packages: Vec<Package>) -> ImageFacts {
        ImageFacts {
            platform: Some("linux/amd64".into()),
            source: Some("https://github.com/docker-library/python".into()),
            revision: Some(rev.into()),
            base_name: Some("debian:bookworm-slim".into()),
            base_digest: Some(format!("sha256:{}", base.repeat(64))),
            packages: Some(packages),
            sbom_error: None,
            provenance: Some(Provenance {
                builder: Some("https://github.com/docker-library/meta/actions".into()),
                source: None,
                revision: None,
            }),
        }
    }

    fn entry<'a>(image: &str, d: &'a Details) -> Entry<'a> {
        Entry {
            image: image.into(),
            locations: vec!["Dockerfile:1".into()],
            details: d,
        }
    }

    fn every_case() -> Vec<Details> {
        let old = python(
            "9fceb02d0ae598e95dc970b74767f19372d61af8",
            "a",
            vec![
                p("deb", "openssl", "3.0.15-1~deb12u1"),
                p("deb", "libc6", "2.36-9+deb12u8"),
                p("deb", "libgnutls30", "3.7.9-2+deb12u3"),
                p("pypi", "pip", "24.2"),
            ],
        );
        let new = python(
            "1a2b3c4d5e6f708192a3b4c5d6e7f80912a3b4c5",
            "b",
            vec![
                p("deb", "openssl", "3.0.16-1~deb12u1"),
                p("deb", "libc6", "2.36-9+deb12u9"),
                p("deb", "curl", "7.88.1-10+deb12u8"),
                p("pypi", "pip", "24.3.1"),
            ],
        );
        let rebuild = python("9fceb02d0ae598e95dc970b74767f19372d61af8", "a", vec![]);
        // Labels lacking: source and commit from the provenance, a host that is not GitHub.
        let from_provenance = ImageFacts {
            provenance: Some(Provenance {
                builder: None,
                source: Some("https://gitlab.com/acme/app.git".into()),
                revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            }),
            ..ImageFacts::default()
        };
        vec![
            Details::Known {
                old: Some(Arc::new(old)),
                old_note: None,
                new: Arc::new(new.clone()),
                platform_note: Some("the platform read for a multi-platform pin".into()),
            },
            Details::Known {
                old: Some(Arc::new(rebuild.clone())),
                old_note: None,
                new: Arc::new(rebuild),
                platform_note: None,
            },
            Details::Known {
                old: None,
                old_note: Some("the pinned image is no longer in the registry".into()),
                new: Arc::new(from_provenance),
                platform_note: None,
            },
            Details::Known {
                old: Some(Arc::new(ImageFacts::default())),
                old_note: None,
                new: Arc::new(ImageFacts::default()),
                platform_note: None,
            },
            Details::Deferred {
                host: "registry-1.docker.io".into(),
            },
            Details::Failed {
                message: "registry-1.docker.io: server error (502)".into(),
            },
        ]
    }

    #[test]
    fn section_snapshot_covers_every_case() {
        let cases = every_case();
        let names = [
            "python:3.12-slim",
            "python:3.12-alpine",
            "registry.gitlab.com/acme/app:1",
            "scratchy:1",
            "node:22",
            "redis:7",
        ];
        let entries: Vec<Entry> = names.iter().zip(&cases).map(|(n, d)| entry(n, d)).collect();
        insta::assert_snapshot!(render(&entries, 60_000));
    }

    #[test]
    fn a_huge_diff_is_cut_with_a_count_and_stays_in_budget() {
        let old: Vec<Package> = (0..5000)
            .map(|i| p("npm", &format!("pkg-{i:05}"), "1.0.0"))
            .collect();
        let new: Vec<Package> = (0..5000)
            .map(|i| p("npm", &format!("pkg-{i:05}"), "1.0.1"))
            .collect();
        let d = Details::Known {
            old: Some(Arc::new(ImageFacts {
                packages: Some(old),
                ..ImageFacts::default()
            })),
            old_note: None,
            new: Arc::new(ImageFacts {
                packages: Some(new),
                ..ImageFacts::default()
            }),
            platform_note: None,
        };
        let second = Details::Deferred {
            host: "ghcr.io".into(),
        };
        let entries = [entry("big:1", &d), entry("next:1", &second)];
        let out = render(&entries, 20_000);
        assert!(out.len() <= 20_000, "{}", out.len());
        assert!(out.contains("5000 updated, 0 added, 0 removed"), "{out}");
        let shown = out.matches("| `1.0.0` | `1.0.1` |").count();
        assert!(shown > 100, "{shown}");
        assert!(
            out.contains(&format!("…and {} more package changes", 5000 - shown)),
            "{out}"
        );
        assert!(out.contains("</details>"));
        assert!(
            out.contains("Details will follow"),
            "the next image still shows"
        );
        // A budget too small for even the short lines cuts at a line.
        let tiny = render(&entries, 150);
        assert!(tiny.len() <= 150, "{tiny}");
        assert!(tiny.contains("cut to keep within"), "{tiny}");
    }

    #[test]
    fn outside_text_cannot_break_the_markdown() {
        assert_eq!(code("a|b`c\nd"), "`a\\|b'c d`");
        assert_eq!(plain("<img src=x>[x](y)"), "\\<img src=x\\>\\[x\\](y)");
        assert!(!is_revision("abc/../../x"));
        assert!(is_revision("9fceb02"));
    }
}
