//! Packages from SBOM attestations, and how two package lists differ.
//!
//! # Why small serde structs and not a model crate
//! `spdx-rs` 0.5.5 parses every license field as an SPDX expression and the creation time as
//! a timestamp, so one odd license string among thousands of packages (Debian's copyright
//! files give plenty) would lose the whole document, and it has no CycloneDX. `cyclonedx-bom`
//! 0.8.1 reads CycloneDX 1.3–1.5 only (current Syft and Trivy write 1.6) and no SPDX. A diff
//! needs three fields per package — name, version and the purl's type — so the structs below
//! read exactly those and ignore everything else, which is what lets real documents through.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// One package an SBOM lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Package {
    /// The purl type (`deb`, `apk`, `rpm`, `npm`, `pypi`, `golang`, …), or `other`.
    pub ecosystem: String,
    pub name: String,
    pub version: String,
    /// The package URL, when the SBOM gives one (vulnerability lookups need its namespace
    /// and qualifiers).
    pub purl: Option<String>,
}

/// The in-toto predicate types of the SBOM formats read here.
pub fn is_sbom_predicate(t: &str) -> bool {
    t.starts_with("https://spdx.dev/Document") || t.starts_with("https://cyclonedx.org/bom")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SbomError {
    #[error("not an in-toto statement: {0}")]
    Statement(String),
    #[error("predicate type {0} is not an SBOM")]
    NotSbom(String),
    #[error("SBOM: {0}")]
    Document(String),
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "predicateType")]
    predicate_type: String,
}

#[derive(Deserialize)]
struct Statement<P> {
    predicate: P,
}

#[derive(Deserialize)]
struct SpdxDocument {
    #[serde(default)]
    packages: Vec<SpdxPackage>,
}

#[derive(Deserialize)]
struct SpdxPackage {
    name: String,
    #[serde(rename = "versionInfo")]
    version: Option<String>,
    #[serde(rename = "externalRefs", default)]
    external_refs: Vec<SpdxRef>,
    #[serde(rename = "primaryPackagePurpose")]
    purpose: Option<String>,
}

#[derive(Deserialize)]
struct SpdxRef {
    #[serde(rename = "referenceType")]
    kind: String,
    #[serde(rename = "referenceLocator")]
    locator: String,
}

#[derive(Deserialize)]
struct CycloneDx {
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct Component {
    #[serde(rename = "type", default)]
    kind: String,
    name: String,
    group: Option<String>,
    version: Option<String>,
    purl: Option<String>,
    #[serde(default)]
    components: Vec<Component>,
}

/// The packages of an in-toto statement with an SPDX or CycloneDX predicate, sorted.
/// The image itself (a `container` purpose or a `pkg:oci`/`pkg:docker` purl) and the
/// operating system entry are not packages.
pub fn parse_statement(bytes: &[u8]) -> Result<Vec<Package>, SbomError> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| SbomError::Statement(e.to_string()))?;
    let t = probe.predicate_type;
    let mut out = if t.starts_with("https://spdx.dev/Document") {
        let s: Statement<SpdxDocument> =
            serde_json::from_slice(bytes).map_err(|e| SbomError::Document(e.to_string()))?;
        spdx_packages(s.predicate)
    } else if t.starts_with("https://cyclonedx.org/bom") {
        let s: Statement<CycloneDx> =
            serde_json::from_slice(bytes).map_err(|e| SbomError::Document(e.to_string()))?;
        let mut out = Vec::new();
        cyclonedx_packages(&s.predicate.components, &mut out);
        out
    } else {
        return Err(SbomError::NotSbom(t));
    };
    out.sort();
    out.dedup();
    Ok(out)
}

/// The packages of a bare CycloneDX JSON document (not wrapped in a statement).
pub fn parse_cyclonedx(bytes: &[u8]) -> Result<Vec<Package>, SbomError> {
    let doc: CycloneDx =
        serde_json::from_slice(bytes).map_err(|e| SbomError::Document(e.to_string()))?;
    let mut out = Vec::new();
    cyclonedx_packages(&doc.components, &mut out);
    out.sort();
    out.dedup();
    Ok(out)
}

fn spdx_packages(doc: SpdxDocument) -> Vec<Package> {
    doc.packages
        .into_iter()
        .filter(|p| {
            !p.purpose
                .as_deref()
                .is_some_and(|x| matches!(x, "CONTAINER" | "OPERATING-SYSTEM"))
        })
        .filter_map(|p| {
            let purl = p
                .external_refs
                .iter()
                .find(|r| r.kind == "purl")
                .map(|r| r.locator.as_str());
            let ecosystem = ecosystem_of(purl)?;
            Some(Package {
                ecosystem,
                name: p.name,
                version: p.version.unwrap_or_default(),
                purl: purl.map(str::to_string),
            })
        })
        .collect()
}

fn cyclonedx_packages(components: &[Component], out: &mut Vec<Package>) {
    for c in components {
        if !matches!(c.kind.as_str(), "container" | "operating-system") {
            let name = match &c.group {
                Some(g) if !g.is_empty() => format!("{g}/{}", c.name),
                _ => c.name.clone(),
            };
            if let Some(ecosystem) = ecosystem_of(c.purl.as_deref()) {
                out.push(Package {
                    ecosystem,
                    name,
                    version: c.version.clone().unwrap_or_default(),
                    purl: c.purl.clone(),
                });
            }
        }
        cyclonedx_packages(&c.components, out);
    }
}

/// The purl's type; `None` for the image itself. Without a purl: `other`.
fn ecosystem_of(purl: Option<&str>) -> Option<String> {
    let Some(p) = purl else {
        return Some("other".into());
    };
    let t = p
        .strip_prefix("pkg:")
        .and_then(|rest| rest.split('/').next())
        .map(|t| t.to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "other".into());
    (!matches!(t.as_str(), "oci" | "docker")).then_some(t)
}

/// How one package changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Added {
        name: String,
        version: String,
    },
    Removed {
        name: String,
        version: String,
    },
    Updated {
        name: String,
        old: String,
        new: String,
    },
}

impl Change {
    pub fn name(&self) -> &str {
        match self {
            Change::Added { name, .. }
            | Change::Removed { name, .. }
            | Change::Updated { name, .. } => name,
        }
    }
}

/// Changes of one ecosystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcosystemDiff {
    pub ecosystem: String,
    pub changes: Vec<Change>,
}

/// The difference between two package lists, by ecosystem (sorted), with counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageDiff {
    pub ecosystems: Vec<EcosystemDiff>,
    pub added: usize,
    pub removed: usize,
    pub updated: usize,
}

impl PackageDiff {
    pub fn is_empty(&self) -> bool {
        self.added + self.removed + self.updated == 0
    }

    pub fn total(&self) -> usize {
        self.added + self.removed + self.updated
    }
}

/// Diffs two package lists. A package is its ecosystem and name; when one version went and
/// one came it is `Updated`. A name with several versions (two Go binaries vendoring one
/// module) pairs its gone and new versions in order when their numbers match, else lists
/// them as removed and added.
pub fn diff(old: &[Package], new: &[Package]) -> PackageDiff {
    type Versions = BTreeMap<(String, String), BTreeSet<String>>;
    let index = |ps: &[Package]| {
        let mut m: Versions = BTreeMap::new();
        for p in ps {
            m.entry((p.ecosystem.clone(), p.name.clone()))
                .or_default()
                .insert(p.version.clone());
        }
        m
    };
    let (o, n) = (index(old), index(new));
    let keys: BTreeSet<&(String, String)> = o.keys().chain(n.keys()).collect();
    let empty = BTreeSet::new();
    let mut by_eco: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    let mut out = PackageDiff::default();
    for key in keys {
        let ov = o.get(key).unwrap_or(&empty);
        let nv = n.get(key).unwrap_or(&empty);
        let gone: Vec<&String> = ov.difference(nv).collect();
        let came: Vec<&String> = nv.difference(ov).collect();
        let (eco, name) = key;
        let changes = by_eco.entry(eco.clone()).or_default();
        if !gone.is_empty() && gone.len() == came.len() {
            for (a, b) in gone.iter().zip(&came) {
                out.updated += 1;
                changes.push(Change::Updated {
                    name: name.clone(),
                    old: (*a).clone(),
                    new: (*b).clone(),
                });
            }
            continue;
        }
        for v in gone {
            out.removed += 1;
            changes.push(Change::Removed {
                name: name.clone(),
                version: v.clone(),
            });
        }
        for v in came {
            out.added += 1;
            changes.push(Change::Added {
                name: name.clone(),
                version: v.clone(),
            });
        }
    }
    out.ecosystems = by_eco
        .into_iter()
        .filter(|(_, c)| !c.is_empty())
        .map(|(ecosystem, changes)| EcosystemDiff { ecosystem, changes })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/attestations/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn p(eco: &str, name: &str, version: &str) -> Package {
        Package {
            ecosystem: eco.into(),
            name: name.into(),
            version: version.into(),
            purl: None,
        }
    }

    fn with_purl(mut p: Package, purl: &str) -> Package {
        p.purl = Some(purl.into());
        p
    }

    #[test]
    fn buildkit_spdx_statement_from_dockers_docs_parses() {
        let ps = parse_statement(&fixture("spdx-statement.json")).unwrap();
        assert_eq!(
            ps,
            vec![
                with_purl(
                    p("golang", "github.com/go-chi/chi/v5", "v5.0.0"),
                    "pkg:golang/github.com/go-chi/chi/v5@v5.0.0"
                ),
                with_purl(
                    p("golang", "github.com/org/repo", "(devel)"),
                    "pkg:golang/github.com/org/repo@(devel)"
                ),
            ]
        );
    }

    #[test]
    fn trivy_cyclonedx_document_parses_without_the_image_and_os() {
        let ps = parse_cyclonedx(&fixture("cyclonedx-bom.json")).unwrap();
        assert_eq!(
            ps,
            vec![
                with_purl(
                    p("apk", "alpine-baselayout", "3.2.0-r18"),
                    "pkg:apk/alpine/alpine-baselayout@3.2.0-r18?distro=3.15.0"
                ),
                with_purl(
                    p("apk", "zlib", "1.2.11-r3"),
                    "pkg:apk/alpine/zlib@1.2.11-r3?distro=3.15.0"
                ),
            ]
        );
        // The same document as an in-toto predicate.
        let bom: serde_json::Value =
            serde_json::from_slice(&fixture("cyclonedx-bom.json")).unwrap();
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://cyclonedx.org/bom",
            "subject": [],
            "predicate": bom,
        });
        assert_eq!(
            parse_statement(&serde_json::to_vec(&statement).unwrap()).unwrap(),
            ps
        );
    }

    #[test]
    fn other_predicates_and_broken_documents_are_errors() {
        assert!(matches!(
            parse_statement(&fixture("provenance-statement.json")),
            Err(SbomError::NotSbom(_))
        ));
        assert!(matches!(
            parse_statement(b"{\"predicateType\": \"https://spdx.dev/Document\", \"predicate\": {\"packages\": 3}}"),
            Err(SbomError::Document(_))
        ));
        assert!(matches!(
            parse_statement(b"[]"),
            Err(SbomError::Statement(_))
        ));
    }

    #[test]
    fn diff_groups_by_ecosystem_and_pairs_versions() {
        let old = vec![
            p("deb", "openssl", "3.0.15-1~deb12u1"),
            p("deb", "libc6", "2.36-9"),
            p("deb", "gone", "1"),
            p("golang", "example.com/m", "v1.0.0"),
            p("golang", "example.com/m", "v1.1.0"),
            p("npm", "left-pad", "1.3.0"),
        ];
        let new = vec![
            p("deb", "openssl", "3.0.16-1~deb12u1"),
            p("deb", "libc6", "2.36-9"),
            p("deb", "curl", "7.88.1-10"),
            p("golang", "example.com/m", "v1.2.0"),
            p("npm", "left-pad", "1.3.0"),
        ];
        let d = diff(&old, &new);
        assert_eq!((d.added, d.removed, d.updated), (2, 3, 1), "{d:#?}");
        let ecos: Vec<&str> = d.ecosystems.iter().map(|e| e.ecosystem.as_str()).collect();
        assert_eq!(ecos, ["deb", "golang"]);
        assert_eq!(
            d.ecosystems[0].changes,
            vec![
                Change::Added {
                    name: "curl".into(),
                    version: "7.88.1-10".into()
                },
                Change::Removed {
                    name: "gone".into(),
                    version: "1".into()
                },
                Change::Updated {
                    name: "openssl".into(),
                    old: "3.0.15-1~deb12u1".into(),
                    new: "3.0.16-1~deb12u1".into()
                },
            ]
        );
        // Two versions went and one came: not a pairing anyone can vouch for.
        assert_eq!(d.ecosystems[1].changes.len(), 3);
        assert!(diff(&new, &new).is_empty());
    }
}
