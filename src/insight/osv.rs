//! Which advisories an update fixes, as OSV (<https://osv.dev>) knows them: the pure part.
//! Purls become OSV package names, a package diff becomes the versions to ask about, and
//! OSV's answers become the advisories that affect an old version and not the new one. The
//! HTTP client that asks is `crate::osv`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::sbom::{self, Change, Package};

/// A package as OSV names it: `{"ecosystem": "Debian:12", "name": "openssl"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OsvPackage {
    pub ecosystem: String,
    pub name: String,
}

/// One question for OSV's batch query: is this version of this package affected by what?
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Query {
    pub package: OsvPackage,
    pub version: String,
}

/// The OSV package and version a purl stands for; `None` when OSV has no ecosystem this
/// code can name for it (an rpm, a Debian purl without a release, an unknown type).
///
/// Ecosystems and name rules follow osv.dev's `osv/purl_helpers.py`; distribution packages
/// need the release OSV files them under, which SBOM generators (Syft, in BuildKit's
/// scanner) put in the `distro` qualifier (`debian-12`, `alpine-3.20.3`). OSV's Debian and
/// Alpine advisories name source packages, which Syft puts in `upstream` (`openssl`, or
/// `gcc-12@12.2.0-14` when the source version differs).
pub fn query_for(purl: &str, version: &str) -> Option<Query> {
    let p = Purl::parse(purl)?;
    let joined = |sep: &str| match &p.namespace {
        Some(ns) => format!("{ns}{sep}{}", p.name),
        None => p.name.clone(),
    };
    let (ecosystem, name) = match p.kind.as_str() {
        "deb" | "apk" => return distro_query(&p, version),
        "npm" | "composer" | "hex" => (
            match p.kind.as_str() {
                "npm" => "npm",
                "composer" => "Packagist",
                _ => "Hex",
            },
            joined("/"),
        ),
        "golang" => {
            let mut name = joined("/");
            if let Some(sub) = &p.subpath {
                name = format!("{name}/{sub}");
            }
            // Go advisories give versions without the `v` of module versions.
            let v = version.strip_prefix('v').unwrap_or(version);
            if v.is_empty() || v.starts_with('(') {
                return None;
            }
            return Some(Query {
                package: OsvPackage {
                    ecosystem: "Go".into(),
                    name,
                },
                version: v.to_string(),
            });
        }
        "maven" | "gradle" => ("Maven", joined(":")),
        "pypi" if p.namespace.is_none() => ("PyPI", p.name.clone()),
        "cargo" if p.namespace.is_none() => ("crates.io", p.name.clone()),
        "gem" if p.namespace.is_none() => ("RubyGems", p.name.clone()),
        "nuget" if p.namespace.is_none() => ("NuGet", p.name.clone()),
        "pub" if p.namespace.is_none() => ("Pub", p.name.clone()),
        _ => return None,
    };
    (!version.is_empty() && !name.is_empty()).then(|| Query {
        package: OsvPackage {
            ecosystem: ecosystem.into(),
            name,
        },
        version: version.to_string(),
    })
}

/// `Debian:12` / `Alpine:v3.20` with the source package's name and version.
fn distro_query(p: &Purl, version: &str) -> Option<Query> {
    let distro = p.qualifier("distro")?;
    let ecosystem = match (p.kind.as_str(), p.namespace.as_deref()?) {
        ("deb", "debian") => format!("Debian:{}", debian_release(distro)?),
        ("apk", "alpine") => format!("Alpine:v{}", alpine_release(distro)?),
        _ => return None,
    };
    let (name, version) = match p.qualifier("upstream") {
        // `name@version` or `name (version)` when the source version differs.
        Some(u) => match u.split_once('@').or_else(|| u.split_once(" (")) {
            Some((n, v)) => (n.trim(), v.trim().trim_end_matches(')')),
            None => (u.trim(), version),
        },
        None => (p.name.as_str(), version),
    };
    (!name.is_empty() && !version.is_empty()).then(|| Query {
        package: OsvPackage {
            ecosystem,
            name: name.to_string(),
        },
        version: version.to_string(),
    })
}

/// `debian-12`, `debian-12.8`, `12`, `bookworm` → `12`.
fn debian_release(distro: &str) -> Option<String> {
    let d = distro.strip_prefix("debian-").unwrap_or(distro);
    let named = match d {
        "buster" => Some("10"),
        "bullseye" => Some("11"),
        "bookworm" => Some("12"),
        "trixie" => Some("13"),
        _ => None,
    };
    if let Some(n) = named {
        return Some(n.to_string());
    }
    let major = d.split('.').next()?;
    (!major.is_empty() && major.chars().all(|c| c.is_ascii_digit())).then(|| major.to_string())
}

/// `alpine-3.20.3`, `3.20.3`, `v3.20` → `3.20`.
fn alpine_release(distro: &str) -> Option<String> {
    let d = distro.strip_prefix("alpine-").unwrap_or(distro);
    let d = d.strip_prefix('v').unwrap_or(d);
    let mut parts = d.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| format!("{major}.{minor}"))
}

/// The parts of a purl (`pkg:type/namespace/name@version?qualifiers#subpath`) read here,
/// percent-decoded.
#[derive(Debug, PartialEq, Eq)]
struct Purl {
    kind: String,
    namespace: Option<String>,
    name: String,
    qualifiers: Vec<(String, String)>,
    subpath: Option<String>,
}

impl Purl {
    fn parse(s: &str) -> Option<Purl> {
        let rest = s.strip_prefix("pkg:")?.trim_start_matches('/');
        let (rest, subpath) = match rest.split_once('#') {
            Some((r, sp)) => (r, Some(sp.trim_matches('/')).filter(|x| !x.is_empty())),
            None => (rest, None),
        };
        let (rest, qualifiers) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        // The version follows the last `@` of the last segment (an npm scope's `@` is %40).
        let path = match rest.rsplit_once('@') {
            Some((p, _)) if !p.contains('?') => p,
            _ => rest,
        };
        let mut segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        if segs.len() < 2 {
            return None;
        }
        let kind = segs.remove(0).to_ascii_lowercase();
        let name = decode(segs.pop()?);
        let namespace = (!segs.is_empty())
            .then(|| segs.iter().map(|s| decode(s)).collect::<Vec<_>>().join("/"));
        let qualifiers = qualifiers
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), decode(v)))
            .collect();
        Some(Purl {
            kind,
            namespace,
            name,
            qualifiers,
            subpath: subpath.map(decode),
        })
    }

    fn qualifier(&self, key: &str) -> Option<&str> {
        self.qualifiers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Percent-decoding; a malformed escape stays as it is.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One OSV package whose versions an update changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Touched {
    /// Versions in the old image that the update removes or replaces.
    old: BTreeSet<String>,
    /// Versions of the same OSV package in the new image (none when it is gone).
    new: BTreeSet<String>,
}

/// What to ask OSV about an update: the versions of every removed or upgraded package in
/// the old image, and of the same OSV packages in the new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    touched: BTreeMap<OsvPackage, Touched>,
    /// Removed or upgraded packages OSV cannot be asked about (no ecosystem to name).
    pub unmapped: usize,
    /// Removed or upgraded packages that are asked about.
    pub mapped: usize,
}

impl Plan {
    /// From the two images' package lists (their SBOMs).
    pub fn new(old: &[Package], new: &[Package]) -> Plan {
        let mut plan = Plan::default();
        let d = sbom::diff(old, new);
        let purl_of = |ps: &[Package], eco: &str, name: &str, version: &str| {
            ps.iter()
                .find(|p| p.ecosystem == eco && p.name == name && p.version == version)
                .and_then(|p| p.purl.clone())
        };
        for e in &d.ecosystems {
            for c in &e.changes {
                let old_version = match c {
                    Change::Removed { version, .. } => version,
                    Change::Updated { old, .. } => old,
                    Change::Added { .. } => continue,
                };
                let q = purl_of(old, &e.ecosystem, c.name(), old_version)
                    .and_then(|purl| query_for(&purl, old_version));
                match q {
                    Some(q) => {
                        plan.mapped += 1;
                        plan.touched
                            .entry(q.package)
                            .or_default()
                            .old
                            .insert(q.version);
                    }
                    None => plan.unmapped += 1,
                }
            }
        }
        for p in new {
            let Some(q) = p.purl.as_deref().and_then(|u| query_for(u, &p.version)) else {
                continue;
            };
            if let Some(t) = plan.touched.get_mut(&q.package) {
                t.new.insert(q.version);
            }
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.touched.is_empty()
    }

    /// Every (package, version) to ask about, once, sorted.
    pub fn queries(&self) -> Vec<Query> {
        let mut out = BTreeSet::new();
        for (p, t) in &self.touched {
            for v in t.old.iter().chain(&t.new) {
                out.insert(Query {
                    package: p.clone(),
                    version: v.clone(),
                });
            }
        }
        out.into_iter().collect()
    }

    /// The advisories each package's old versions have and its new versions do not, given
    /// OSV's advisory ids per query (a query without an answer counts as none).
    pub fn fixed(&self, answers: &HashMap<Query, Vec<String>>) -> Vec<Fixed> {
        let ids = |p: &OsvPackage, versions: &BTreeSet<String>| -> BTreeSet<String> {
            versions
                .iter()
                .filter_map(|v| {
                    answers.get(&Query {
                        package: p.clone(),
                        version: v.clone(),
                    })
                })
                .flatten()
                .cloned()
                .collect()
        };
        self.touched
            .iter()
            .filter_map(|(p, t)| {
                let still = ids(p, &t.new);
                let fixed: Vec<String> = ids(p, &t.old).difference(&still).cloned().collect();
                (!fixed.is_empty()).then(|| Fixed {
                    package: p.clone(),
                    old: t.old.iter().cloned().collect(),
                    new: t.new.iter().cloned().collect(),
                    ids: fixed,
                })
            })
            .collect()
    }
}

/// Advisories that affect a package's old version(s) and not its new one(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    pub package: OsvPackage,
    pub old: Vec<String>,
    /// Empty when the update removes the package.
    pub new: Vec<String>,
    /// Sorted.
    pub ids: Vec<String>,
}

/// What the PR says about vulnerabilities, when `DIGESTIF_OSV_URL` is set and the update
/// removes or upgrades packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VulnNotes {
    Known {
        fixed: Vec<Fixed>,
        /// Removed or upgraded packages asked about, and not asked about.
        asked: usize,
        unmapped: usize,
        /// Summaries of listed advisories, where fetched.
        summaries: BTreeMap<String, String>,
        /// Where an advisory's page is: this followed by its id.
        link_prefix: String,
    },
    /// OSV could not be asked or answered wrongly: a short reason.
    Unavailable { reason: String },
}

impl VulnNotes {
    /// Distinct advisories fixed (one fixed in two packages counts once).
    pub fn fixed_count(&self) -> usize {
        match self {
            VulnNotes::Known { fixed, .. } => fixed
                .iter()
                .flat_map(|f| &f.ids)
                .collect::<BTreeSet<_>>()
                .len(),
            VulnNotes::Unavailable { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(eco: &str, name: &str, version: &str) -> Option<Query> {
        Some(Query {
            package: OsvPackage {
                ecosystem: eco.into(),
                name: name.into(),
            },
            version: version.into(),
        })
    }

    fn pkg(eco: &str, name: &str, version: &str, purl: &str) -> Package {
        Package {
            ecosystem: eco.into(),
            name: name.into(),
            version: version.into(),
            purl: Some(purl.into()),
        }
    }

    #[test]
    fn purls_map_to_osv_ecosystems_and_names() {
        // Syft's purls, as in BuildKit's SBOMs.
        assert_eq!(
            query_for(
                "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&upstream=openssl&distro=debian-12",
                "3.0.15-1~deb12u1"
            ),
            q("Debian:12", "openssl", "3.0.15-1~deb12u1")
        );
        assert_eq!(
            query_for(
                "pkg:deb/debian/libgcc-s1@12.2.0-14?arch=amd64&upstream=gcc-12%4012.2.0-14&distro=debian-12",
                "12.2.0-14"
            ),
            q("Debian:12", "gcc-12", "12.2.0-14")
        );
        assert_eq!(
            query_for(
                "pkg:deb/debian/openssl@3.0.11-1~deb12u2?distro=bookworm",
                "3.0.11-1~deb12u2"
            ),
            q("Debian:12", "openssl", "3.0.11-1~deb12u2")
        );
        assert_eq!(
            query_for(
                "pkg:apk/alpine/libcrypto3@3.3.2-r0?arch=x86_64&upstream=openssl&distro=alpine-3.20.3",
                "3.3.2-r0"
            ),
            q("Alpine:v3.20", "openssl", "3.3.2-r0")
        );
        assert_eq!(
            query_for("pkg:npm/%40angular/core@17.0.0", "17.0.0"),
            q("npm", "@angular/core", "17.0.0")
        );
        assert_eq!(
            query_for("pkg:golang/github.com/go-chi/chi/v5@v5.0.8", "v5.0.8"),
            q("Go", "github.com/go-chi/chi/v5", "5.0.8")
        );
        assert_eq!(
            query_for(
                "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
                "2.14.1"
            ),
            q("Maven", "org.apache.logging.log4j:log4j-core", "2.14.1")
        );
        assert_eq!(
            query_for("pkg:pypi/jinja2@3.1.4", "3.1.4"),
            q("PyPI", "jinja2", "3.1.4")
        );
        assert_eq!(
            query_for("pkg:cargo/rand@0.8.5", "0.8.5"),
            q("crates.io", "rand", "0.8.5")
        );
        // What OSV cannot be asked about.
        for (unmapped, version) in [
            ("pkg:deb/debian/openssl@3.0.15-1", "3.0.15-1"), // no release
            ("pkg:deb/ubuntu/openssl@3.0.2?distro=ubuntu-22.04", "3.0.2"), // not mapped here
            ("pkg:rpm/redhat/openssl@3.0.7?distro=rhel-9.4", "3.0.7"),
            ("pkg:golang/github.com/org/repo@(devel)", "(devel)"),
            ("pkg:generic/thing@1", "1"),
            ("not a purl", "1"),
        ] {
            assert_eq!(query_for(unmapped, version), None, "{unmapped}");
        }
        // Trivy's Alpine purls give the release without a name.
        assert_eq!(
            query_for("pkg:apk/alpine/zlib@1.2.11-r3?distro=3.15.0", "1.2.11-r3"),
            q("Alpine:v3.15", "zlib", "1.2.11-r3")
        );
    }

    #[test]
    fn fixed_means_affects_an_old_version_and_not_the_new_one() {
        let deb = |name: &str, v: &str, src: &str| {
            pkg(
                "deb",
                name,
                v,
                &format!("pkg:deb/debian/{name}@{v}?arch=amd64&upstream={src}&distro=debian-12"),
            )
        };
        let old = vec![
            deb("libssl3", "3.0.15-1~deb12u1", "openssl"),
            deb("openssl", "3.0.15-1~deb12u1", "openssl"),
            deb("libcurl4", "7.88.1-10+deb12u7", "curl"),
            deb("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
            pkg("rpm", "bash", "5.1", "pkg:rpm/redhat/bash@5.1"),
        ];
        let new = vec![
            deb("libssl3", "3.0.16-1~deb12u1", "openssl"),
            deb("openssl", "3.0.16-1~deb12u1", "openssl"),
            deb("libcurl4", "7.88.1-10+deb12u8", "curl"),
            deb("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
        ];
        let plan = Plan::new(&old, &new);
        // openssl twice (two binaries), curl; bash is an rpm.
        assert_eq!((plan.mapped, plan.unmapped), (3, 1));
        let queries = plan.queries();
        assert_eq!(
            queries,
            [
                q("Debian:12", "curl", "7.88.1-10+deb12u7"),
                q("Debian:12", "curl", "7.88.1-10+deb12u8"),
                q("Debian:12", "openssl", "3.0.15-1~deb12u1"),
                q("Debian:12", "openssl", "3.0.16-1~deb12u1"),
            ]
            .map(Option::unwrap)
        );
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let answers: HashMap<Query, Vec<String>> = [
            (queries[0].clone(), ids(&["DEBIAN-CVE-1", "DEBIAN-CVE-2"])),
            // Still open in the new curl: not fixed.
            (queries[1].clone(), ids(&["DEBIAN-CVE-2"])),
            (queries[2].clone(), ids(&["DSA-5764-1", "DEBIAN-CVE-3"])),
            (queries[3].clone(), vec![]),
        ]
        .into_iter()
        .collect();
        let fixed = plan.fixed(&answers);
        assert_eq!(fixed.len(), 2, "{fixed:#?}");
        assert_eq!(fixed[0].package.name, "curl");
        assert_eq!(fixed[0].ids, ids(&["DEBIAN-CVE-1"]));
        assert_eq!(fixed[1].package.name, "openssl");
        assert_eq!(fixed[1].ids, ids(&["DEBIAN-CVE-3", "DSA-5764-1"]));
        assert_eq!(fixed[1].new, ids(&["3.0.16-1~deb12u1"]));

        // A removed package: everything its old version had is gone with it.
        let plan = Plan::new(&old[..3], &new[..1]);
        let answers: HashMap<Query, Vec<String>> = [(
            q("Debian:12", "curl", "7.88.1-10+deb12u7").unwrap(),
            ids(&["DEBIAN-CVE-1"]),
        )]
        .into_iter()
        .collect();
        let fixed = plan.fixed(&answers);
        assert_eq!(fixed.len(), 1);
        assert_eq!(
            (fixed[0].ids.clone(), fixed[0].new.len()),
            (ids(&["DEBIAN-CVE-1"]), 0)
        );

        // Nothing removed or upgraded: nothing to ask.
        assert!(Plan::new(&new, &new).is_empty());
    }

    #[test]
    fn a_binary_removed_while_its_source_stays_fixes_nothing() {
        let deb = |name: &str| {
            pkg(
                "deb",
                name,
                "3.0.15-1",
                &format!("pkg:deb/debian/{name}@3.0.15-1?upstream=openssl&distro=debian-12"),
            )
        };
        let plan = Plan::new(&[deb("openssl"), deb("libssl3")], &[deb("libssl3")]);
        let answers: HashMap<Query, Vec<String>> = [(
            q("Debian:12", "openssl", "3.0.15-1").unwrap(),
            vec!["DSA-1".to_string()],
        )]
        .into_iter()
        .collect();
        assert_eq!(plan.queries().len(), 1);
        assert!(plan.fixed(&answers).is_empty());
    }
}
