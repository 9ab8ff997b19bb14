//! What PR details cost: registry requests and bytes per proposed update, with and without
//! them, against a local CNCF distribution registry.
//!
//! `cargo bench --bench details` pushes 20 images laid out as Docker Official Images are
//! (two platforms, OCI annotations, an attestation manifest per platform with an SPDX SBOM
//! of 150 packages and a SLSA provenance, derived from the fixtures in
//! tests/fixtures/attestations), each in an old and a new build, pins the old index, and
//! measures for each update: resolution alone; resolution and the table's facts; and
//! resolution, table and the "What changed" details. Then the same for images that publish
//! no annotations or attestations. Under `cargo test --all-targets` it runs 2 images.
//!
//! Then the vulnerability notes (`DIGESTIF_OSV_URL`) for the annotated images' details,
//! against the fake OSV server of tests/support/osv.rs on loopback: OSV requests and their
//! time per update (12 upgraded Debian packages each; the images share package versions,
//! so the cache per package version answers all but the first update).

#[path = "../tests/support/osv.rs"]
#[allow(dead_code)]
mod osv_support;
#[path = "../tests/support/registry.rs"]
mod registry_support;

use std::collections::BTreeMap;

use digestif::reference::Reference;
use digestif::registry::{DetailsRequest, RequestKind, Resolver};
use registry_support::{Attestation, TestRegistry};
use serde_json::{Value, json};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let images = if full { 20 } else { 2 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(images));
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/attestations/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
}

/// The fixture SBOM grown to `n` deb packages, `bump` of them one version up.
fn sbom(n: usize, bump: usize) -> Vec<u8> {
    let mut s = fixture("spdx-statement.json");
    let template = s["predicate"]["packages"][1].clone();
    let packages: Vec<Value> = (0..n)
        .map(|i| {
            let v = if i < bump { "1.1-1" } else { "1.0-1" };
            let mut p = template.clone();
            p["SPDXID"] = json!(format!("SPDXRef-{i:016x}"));
            p["name"] = json!(format!("libexample{i}"));
            p["versionInfo"] = json!(v);
            p["externalRefs"] = json!([{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceLocator": format!("pkg:deb/debian/libexample{i}@{v}?arch=amd64&distro=debian-12"),
                "referenceType": "purl"
            }]);
            p
        })
        .collect();
    s["predicate"]["packages"] = json!(packages);
    serde_json::to_vec(&s).expect("json")
}

async fn push(reg: &TestRegistry, repo: &str, rev: &str, attested: bool, bump: usize) -> String {
    let mut images = Vec::new();
    for platform in ["linux/amd64", "linux/arm64"] {
        let labels = if attested {
            json!({})
        } else {
            json!({"org.opencontainers.image.revision": rev,
                   "org.opencontainers.image.source": "https://github.com/example/image"})
        };
        images.push(
            reg.push_image_labelled(repo, None, platform, rev, false, labels)
                .await,
        );
    }
    let entries: Vec<_> = images
        .iter()
        .map(|i| {
            if !attested {
                return (i, json!({}), Vec::new());
            }
            let ann = json!({
                "org.opencontainers.image.created": "2026-11-20T08:15:00Z",
                "org.opencontainers.image.revision": rev,
                "org.opencontainers.image.source": "https://github.com/docker-library/python",
                "org.opencontainers.image.base.name": "debian:bookworm-slim",
                "org.opencontainers.image.base.digest": format!("sha256:{}", "a".repeat(64)),
            });
            let docs = vec![
                Attestation {
                    predicate_type: "https://spdx.dev/Document".into(),
                    body: sbom(150, bump),
                },
                Attestation {
                    predicate_type: "https://slsa.dev/provenance/v0.2".into(),
                    body: serde_json::to_vec(&fixture("provenance-statement.json")).unwrap(),
                },
            ];
            (i, ann, docs)
        })
        .collect();
    reg.push_attested_index(repo, "1", &entries).await
}

#[derive(Default, Clone, Copy)]
struct Cost {
    head: u64,
    get: u64,
    blob: u64,
    bytes: u64,
}

fn cost(r: &Resolver) -> Cost {
    let mut c = Cost::default();
    for n in r.counts() {
        match n.kind {
            RequestKind::ManifestHead => c.head += n.count,
            RequestKind::ManifestGet => c.get += n.count,
            RequestKind::Blob => c.blob += n.count,
            RequestKind::Token => {}
        }
    }
    c.bytes = r.bytes_read().iter().map(|(_, _, b)| b).sum();
    c
}

async fn measure(
    reg: &TestRegistry,
    images: usize,
    attested: bool,
    osv: &digestif::osv::Osv,
) -> BTreeMap<&'static str, Cost> {
    let mut refs = Vec::new();
    for i in 0..images {
        let repo = format!("{}-{i}", if attested { "doi" } else { "plain" });
        let old = push(
            reg,
            &repo,
            "0c1f5e2b7a9d3c4e5f60718293a4b5c6d7e8f901",
            attested,
            0,
        )
        .await;
        push(
            reg,
            &repo,
            "9fceb02d0ae598e95dc970b74767f19372d61af8",
            attested,
            12,
        )
        .await;
        refs.push(Reference::parse(&reg.reference(&repo, "1", Some(&old))).expect("reference"));
    }
    let mut out = BTreeMap::new();
    for stage in ["1 resolution", "2 + table", "3 + details"] {
        let resolver = Resolver::new(reg.resolver_config()).expect("resolver");
        for r in &refs {
            let res = resolver.resolve(r, None).await;
            let new = res.proposed().expect("stale").clone();
            if stage != "1 resolution" {
                resolver.metadata(r, &new).await.expect("metadata");
            }
            if stage == "3 + details" {
                let mut d = resolver
                    .details(
                        r,
                        DetailsRequest {
                            old: r.digest.as_ref(),
                            new: &new,
                            tag_digest: res.tag_digest.as_ref(),
                            platform_pin: None,
                        },
                    )
                    .await;
                assert!(
                    matches!(d, digestif::insight::Details::Known { .. }),
                    "{d:?}"
                );
                if attested {
                    osv.annotate(&mut d).await;
                    let digestif::insight::Details::Known { vulns, .. } = &d else {
                        unreachable!()
                    };
                    assert!(
                        matches!(vulns, Some(digestif::insight::osv::VulnNotes::Known { .. })),
                        "{vulns:?}"
                    );
                }
            }
        }
        out.insert(stage, cost(&resolver));
    }
    out
}

async fn run(images: usize) {
    let reg = TestRegistry::start().await;
    let fake_osv = osv_support::FakeOsv::start(osv_support::fixture_records(), 1000).await;
    let osv = digestif::osv::Osv::new(&fake_osv.url);
    println!("{images} proposed updates (index pins), per update:");
    println!(
        "{:<44} {:>5} {:>8} {:>6} {:>9}",
        "", "HEAD", "man.GET", "blob", "bytes"
    );
    for attested in [true, false] {
        let what = if attested {
            "annotated + SBOM/provenance"
        } else {
            "labels only, no attestations"
        };
        for (stage, c) in measure(&reg, images, attested, &osv).await {
            let n = images as f64;
            println!(
                "{:<44} {:>5.1} {:>8.1} {:>6.1} {:>9.0}",
                format!("{what}: {stage}"),
                c.head as f64 / n,
                c.get as f64 / n,
                c.blob as f64 / n,
                c.bytes as f64 / n
            );
        }
    }
    let u = osv.usage();
    let n = images as f64;
    println!(
        "vulnerability notes (fake OSV on loopback), per update: {:.2} querybatch + {:.2} \
         vulns/ID requests, {:.2} ms in OSV requests ({} querybatch requests in all)",
        u.batch_requests as f64 / n,
        u.record_requests as f64 / n,
        u.micros as f64 / 1000.0 / n,
        u.batch_requests
    );
}
