//! The "What changed" section of a PR body, within a character budget.

use std::fmt::Write as _;

use super::osv::VulnNotes;
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
            vulns,
            ..
        } = e.details
            && let (Some(a), Some(b)) = (&old.packages, &new.packages)
        {
            let d = sbom::diff(a, b);
            if !d.is_empty() {
                let t =
                    packages_table(&d, new, platform_note.as_deref(), vulns.as_ref(), &mut left);
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
            vulns,
        } => {
            let old = old.as_deref();
            if new.is_empty() && old.is_none_or(ImageFacts::is_empty) {
                let _ = writeln!(b, "- {NOTHING_PUBLISHED}\n");
                return b;
            }
            for line in fact_lines(old, old_note.as_deref(), new, platform_note.as_deref()) {
                let _ = writeln!(b, "- {line}");
            }
            if let Some(v) = vulns {
                let _ = writeln!(b, "- {}", vulns_line(v));
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

/// The one line on what OSV says the update fixes (the list is in the package changes).
fn vulns_line(v: &VulnNotes) -> String {
    match v {
        VulnNotes::Unavailable { reason } => {
            format!("Vulnerability notes unavailable: {}.", plain(reason))
        }
        VulnNotes::Known {
            asked, unmapped, ..
        } => {
            let not_asked = match unmapped {
                0 => String::new(),
                n => format!(
                    "; {n} not asked about (no OSV ecosystem is known for {})",
                    if *n == 1 { "it" } else { "them" }
                ),
            };
            let of = format!(
                "{asked} removed or upgraded package{} asked about{not_asked}",
                if *asked == 1 { "" } else { "s" }
            );
            if *asked == 0 {
                return format!(
                    "Vulnerability notes (OSV): none of the {unmapped} removed or upgraded \
                     packages could be asked about (no OSV ecosystem is known for {}).",
                    if *unmapped == 1 { "it" } else { "them" }
                );
            }
            match v.fixed_count() {
                0 => format!("Vulnerability notes (OSV): no known advisory fixed among the {of}."),
                n => format!(
                    "Vulnerability notes (OSV): this update fixes {n} known advisor{} of the {of}; \
                     listed with the package changes.",
                    if n == 1 { "y" } else { "ies" }
                ),
            }
        }
    }
}

/// The advisories fixed, one line each under its package, as long as `fits` allows;
/// returns how many lines were left out.
fn advisory_lines(v: &VulnNotes, b: &mut String, fits: impl Fn(&str, usize) -> bool) -> usize {
    let VulnNotes::Known {
        fixed,
        summaries,
        link_prefix,
        ..
    } = v
    else {
        return 0;
    };
    let total: usize = fixed.iter().map(|f| f.ids.len()).sum();
    if total == 0 {
        return 0;
    }
    let mut shown = 0usize;
    let header = "**Advisories fixed** (OSV)\n\n";
    if !fits(header, b.len()) {
        return total;
    }
    b.push_str(header);
    'packages: for f in fixed {
        let old: Vec<String> = f.old.iter().map(|v| code(v)).collect();
        let new = match f.new.as_slice() {
            [] => "removed".to_string(),
            vs => vs.iter().map(|v| code(v)).collect::<Vec<_>>().join(", "),
        };
        let head = format!(
            "- {} ({}) {} → {new}:\n",
            code(&f.package.name),
            plain(&f.package.ecosystem),
            old.join(", ")
        );
        if !fits(&head, b.len()) {
            break;
        }
        b.push_str(&head);
        for id in &f.ids {
            let title = if is_advisory_id(id) {
                format!("[{id}]({link_prefix}{id})")
            } else {
                code(id)
            };
            let summary = summaries
                .get(id)
                .map(|s| {
                    let s: String = s.chars().take(160).collect();
                    format!(": {}", plain(&s))
                })
                .unwrap_or_default();
            let row = format!("  - {title}{summary}\n");
            if !fits(&row, b.len()) {
                break 'packages;
            }
            b.push_str(&row);
            shown += 1;
        }
    }
    b.push('\n');
    total - shown
}

/// OSV ids are letters, digits and `-` (`DSA-5764-1`, `GHSA-xxxx-…`, `ALPINE-CVE-…`): safe in
/// a URL and a link text.
fn is_advisory_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
}

/// A collapsed table of the package changes, grouped by ecosystem, cut to `left` chars,
/// after the advisories the update fixes.
fn packages_table(
    d: &sbom::PackageDiff,
    new: &ImageFacts,
    platform_note: Option<&str>,
    vulns: Option<&VulnNotes>,
    left: &mut usize,
) -> String {
    let mut b = String::new();
    let on = match (new.platform.as_deref(), platform_note) {
        (Some(p), Some(n)) => format!(" on {} ({})", plain(p), plain(n)),
        (Some(p), None) => format!(" on {}", plain(p)),
        _ => String::new(),
    };
    let fixes = match vulns.map(VulnNotes::fixed_count) {
        Some(n @ 1..) => format!(
            "; fixes {n} known advisor{}",
            if n == 1 { "y" } else { "ies" }
        ),
        _ => String::new(),
    };
    let _ = write!(
        b,
        "<details><summary>Package changes{on}: {} updated, {} added, {} removed{fixes}</summary>\n\n",
        d.updated, d.added, d.removed
    );
    let close = "</details>\n\n";
    let mut shown = 0usize;
    let reserve = 200 + close.len();
    let budget = *left;
    let hidden_advisories = vulns.map_or(0, |v| {
        // Room is kept for this list's count line and the tables' own.
        advisory_lines(v, &mut b, |line, len| {
            len + line.len() + 2 * reserve <= budget
        })
    });
    if hidden_advisories > 0 {
        let _ = write!(
            b,
            "…and {hidden_advisories} more advisory entries, left out to keep within GitHub's limit \
             for a pull request description.\n\n"
        );
    }
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
    use crate::insight::osv::{Fixed, OsvPackage};
    use crate::insight::{Package, Provenance};

    fn p(eco: &str, name: &str, version: &str) -> Package {
        Package {
            ecosystem: eco.into(),
            name: name.into(),
            version: version.into(),
            purl: None,
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

    fn osv(eco: &str, name: &str) -> OsvPackage {
        OsvPackage {
            ecosystem: eco.into(),
            name: name.into(),
        }
    }

    /// OpenSSL's DSA (summary from its OSV record) and a pip advisory without a summary;
    /// one pypi package could not be asked about.
    fn fixed_two() -> VulnNotes {
        VulnNotes::Known {
            fixed: vec![
                Fixed {
                    package: osv("Debian:12", "openssl"),
                    old: vec!["3.0.15-1~deb12u1".into()],
                    new: vec!["3.0.16-1~deb12u1".into()],
                    ids: vec!["DSA-5764-1".into()],
                },
                Fixed {
                    package: osv("PyPI", "pip"),
                    old: vec!["24.2".into()],
                    new: vec![],
                    ids: vec!["GHSA-mq26-g339-26xf".into(), "bad id](x)".into()],
                },
            ],
            asked: 3,
            unmapped: 1,
            summaries: [(
                "DSA-5764-1".to_string(),
                "openssl - security update <script>".to_string(),
            )]
            .into_iter()
            .collect(),
            link_prefix: "https://osv.dev/vulnerability/".into(),
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
                old: Some(Arc::new(old.clone())),
                old_note: None,
                new: Arc::new(new.clone()),
                platform_note: Some("the platform read for a multi-platform pin".into()),
                vulns: Some(fixed_two()),
            },
            Details::Known {
                old: Some(Arc::new(rebuild.clone())),
                old_note: None,
                new: Arc::new(rebuild),
                platform_note: None,
                vulns: None,
            },
            Details::Known {
                old: None,
                old_note: Some("the pinned image is no longer in the registry".into()),
                new: Arc::new(from_provenance),
                platform_note: None,
                vulns: None,
            },
            Details::Known {
                old: Some(Arc::new(ImageFacts::default())),
                old_note: None,
                new: Arc::new(ImageFacts::default()),
                platform_note: None,
                vulns: None,
            },
            Details::Known {
                old: Some(Arc::new(old.clone())),
                old_note: None,
                new: Arc::new(new.clone()),
                platform_note: None,
                vulns: Some(VulnNotes::Unavailable {
                    reason: "OSV answered HTTP 503".into(),
                }),
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
            "python:3.13-slim",
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
            vulns: None,
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
    fn many_advisories_are_cut_with_a_count_and_the_summary_keeps_the_total() {
        let old: Vec<Package> = (0..50)
            .map(|i| p("deb", &format!("lib{i}"), "1.0-1"))
            .collect();
        let new: Vec<Package> = (0..50)
            .map(|i| p("deb", &format!("lib{i}"), "1.0-2"))
            .collect();
        let fixed: Vec<Fixed> = (0..50)
            .map(|i| Fixed {
                package: osv("Debian:12", &format!("lib{i}")),
                old: vec!["1.0-1".into()],
                new: vec!["1.0-2".into()],
                ids: (0..40)
                    .map(|j| format!("DEBIAN-CVE-2026-{i:02}{j:03}"))
                    .collect(),
            })
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
            vulns: Some(VulnNotes::Known {
                fixed,
                asked: 50,
                unmapped: 0,
                summaries: Default::default(),
                link_prefix: "https://osv.dev/vulnerability/".into(),
            }),
        };
        let next = Details::Failed {
            message: "boom".into(),
        };
        let entries = [entry("big:1", &d), entry("next:1", &next)];
        let out = render(&entries, 20_000);
        assert!(out.len() <= 20_000, "{}", out.len());
        assert!(
            out.contains("50 updated, 0 added, 0 removed; fixes 2000 known advisories</summary>"),
            "{out}"
        );
        assert!(
            out.contains("this update fixes 2000 known advisories of the 50 removed or upgraded packages asked about"),
            "{out}"
        );
        let shown = out
            .matches("](https://osv.dev/vulnerability/DEBIAN-CVE-2026-")
            .count();
        assert!(shown > 50, "{shown}");
        assert!(
            out.contains(&format!("…and {} more advisory entries", 2000 - shown)),
            "{out}"
        );
        assert!(out.contains("</details>"));
        assert!(
            out.contains("could not be read: boom"),
            "the next image still shows"
        );
    }

    #[test]
    fn vulnerability_lines_say_what_was_and_was_not_asked() {
        let none_asked = VulnNotes::Known {
            fixed: vec![],
            asked: 0,
            unmapped: 2,
            summaries: Default::default(),
            link_prefix: String::new(),
        };
        assert_eq!(
            vulns_line(&none_asked),
            "Vulnerability notes (OSV): none of the 2 removed or upgraded packages could be \
             asked about (no OSV ecosystem is known for them)."
        );
        let nothing_fixed = VulnNotes::Known {
            fixed: vec![],
            asked: 1,
            unmapped: 0,
            summaries: Default::default(),
            link_prefix: String::new(),
        };
        assert_eq!(
            vulns_line(&nothing_fixed),
            "Vulnerability notes (OSV): no known advisory fixed among the 1 removed or upgraded \
             package asked about."
        );
        assert_eq!(
            vulns_line(&VulnNotes::Unavailable {
                reason: "OSV did not answer in time".into()
            }),
            "Vulnerability notes unavailable: OSV did not answer in time."
        );
    }

    #[test]
    fn outside_text_cannot_break_the_markdown() {
        assert_eq!(code("a|b`c\nd"), "`a\\|b'c d`");
        assert_eq!(plain("<img src=x>[x](y)"), "\\<img src=x\\>\\[x\\](y)");
        assert!(!is_revision("abc/../../x"));
        assert!(is_revision("9fceb02"));
    }
}
