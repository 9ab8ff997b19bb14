//! What a PR says changed inside the image, end to end through the server against a real
//! registry: BuildKit-style SBOM and provenance attestations, the honest sentence when an
//! image publishes nothing, the registry requests each costs (as README documents them, read
//! from `/metrics`), and the pull budget's "details will follow".

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::app::*;
use support::fake_github::FakeGitHub;
use support::osv::{FakeOsv, fixture_records};
use support::registry::{Attestation, Image, TestRegistry};

const REPO: &str = "acme/widgets";
const OLD_REV: &str = "0c1f5e2b7a9d3c4e5f60718293a4b5c6d7e8f901";
const NEW_REV: &str = "9fceb02d0ae598e95dc970b74767f19372d61af8";
const SPDX: &str = "https://spdx.dev/Document";
const SLSA: &str = "https://slsa.dev/provenance/v0.2";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/attestations/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
}

/// Docker's example SBOM statement (tests/fixtures/attestations/spdx-statement.json) for
/// the image `subject`; `upgrade` moves go-chi/chi to v5.0.8 and adds golang.org/x/net, the
/// way a rebuild with new dependencies would.
fn sbom(subject: &str, upgrade: bool) -> Vec<u8> {
    let mut s = fixture("spdx-statement.json");
    s["subject"][0]["digest"]["sha256"] = json!(subject.trim_start_matches("sha256:"));
    if upgrade {
        let packages = s["predicate"]["packages"].as_array_mut().expect("packages");
        let chi = &mut packages[1];
        chi["versionInfo"] = json!("v5.0.8");
        chi["externalRefs"][3]["referenceLocator"] =
            json!("pkg:golang/github.com/go-chi/chi/v5@v5.0.8");
        let mut net = chi.clone();
        net["SPDXID"] = json!("SPDXRef-2c3d4e5f60718293");
        net["name"] = json!("golang.org/x/net");
        net["versionInfo"] = json!("v0.17.0");
        net["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE_MANAGER",
            "referenceLocator": "pkg:golang/golang.org/x/net@v0.17.0",
            "referenceType": "purl"
        }]);
        packages.push(net);
    }
    serde_json::to_vec(&s).expect("json")
}

/// Docker's example `mode=min` provenance (tests/fixtures/attestations/provenance-statement.json)
/// with a builder id, as CI builders set it.
fn provenance(subject: &str) -> Vec<u8> {
    let mut p = fixture("provenance-statement.json");
    p["subject"][0]["digest"]["sha256"] = json!(subject.trim_start_matches("sha256:"));
    p["predicate"]["builder"]["id"] =
        json!("https://github.com/docker-library/meta/actions/runs/42");
    serde_json::to_vec(&p).expect("json")
}

/// `library/python:3.12-slim` as Docker Official Images are published: amd64 and arm64
/// entries with OCI annotations, each with an attestation manifest holding an SBOM and a
/// provenance. Returns the index digest.
async fn push_attested(reg: &TestRegistry, rev: &str, base: char, upgrade: bool) -> String {
    push_attested_with(reg, rev, base, |subject| sbom(subject, upgrade)).await
}

/// [`push_attested`] with the SBOM `sbom` makes for each image digest.
async fn push_attested_with(
    reg: &TestRegistry,
    rev: &str,
    base: char,
    sbom: impl Fn(&str) -> Vec<u8>,
) -> String {
    let mut images = Vec::new();
    let pushed: Vec<Image> = {
        let mut v = Vec::new();
        for platform in ["linux/amd64", "linux/arm64"] {
            v.push(
                reg.push_image_labelled("library/python", None, platform, rev, false, json!({}))
                    .await,
            );
        }
        v
    };
    for image in &pushed {
        let annotations = json!({
            "org.opencontainers.image.created": "2026-11-20T08:15:00Z",
            "org.opencontainers.image.revision": rev,
            "org.opencontainers.image.source": "https://github.com/docker-library/python.git#master:3.12/slim-bookworm",
            "org.opencontainers.image.base.name": "debian:bookworm-slim",
            "org.opencontainers.image.base.digest": format!("sha256:{}", base.to_string().repeat(64)),
        });
        let docs = vec![
            Attestation {
                predicate_type: SPDX.into(),
                body: sbom(&image.digest),
            },
            Attestation {
                predicate_type: SLSA.into(),
                body: provenance(&image.digest),
            },
        ];
        images.push((image, annotations, docs));
    }
    reg.push_attested_index("library/python", "3.12-slim", &images)
        .await
}

/// `digestif_registry_requests_total` for `host` from `/metrics`, summed by kind.
async fn requests(url: &str, host: &str) -> BTreeMap<String, u64> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("digestif_registry_requests_total{") else {
            continue;
        };
        if !rest.contains(&format!("host=\"{host}\"")) {
            continue;
        }
        let kind = rest
            .split("kind=\"")
            .nth(1)
            .and_then(|k| k.split('"').next())
            .unwrap_or_default()
            .to_string();
        let n: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        *out.entry(kind).or_default() += n;
    }
    out
}

/// `after - before`, kinds that did not change left out.
fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or_default()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

fn open_body(fake: &FakeGitHub) -> String {
    let pulls: Vec<_> = fake
        .pulls(REPO)
        .into_iter()
        .filter(|p| p.state == "open")
        .collect();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    pulls[0].body.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_shows_package_changes_compare_link_base_and_builder_at_documented_cost() {
    let reg = TestRegistry::start().await;
    let old = push_attested(&reg, OLD_REV, 'a', false).await;
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&old))
    );
    let fake = FakeGitHub::start().await;
    let (server, _) = installed(&fake, &reg, &[("Dockerfile", &dockerfile)]).await;
    // The pin is current; what the installation's scans cost is not what is measured.
    let before = requests(&server.url, &reg.addr).await;
    let new = push_attested(&reg, NEW_REV, 'b', true).await;
    server.scan(REPO).await;

    let body = open_body(&fake);
    assert!(body.contains(&new), "{body}");
    assert!(
        body.contains(&format!(
            "https://github.com/docker-library/python/compare/{OLD_REV}...{NEW_REV}"
        )),
        "{body}"
    );
    assert!(
        body.contains("Base image `debian:bookworm-slim` moved (`aaaaaaa` → `bbbbbbb`)"),
        "{body}"
    );
    assert!(
        body.contains("Built by `https://github.com/docker-library/meta/actions/runs/42`"),
        "{body}"
    );
    assert!(
        body.contains(
            "<summary>Package changes on linux/amd64 (the platform read for a multi-platform \
             pin): 1 updated, 1 added, 0 removed</summary>"
        ),
        "{body}"
    );
    assert!(
        body.contains("| `github.com/go-chi/chi/v5` | `v5.0.0` | `v5.0.8` |"),
        "{body}"
    );
    assert!(
        body.contains("| `golang.org/x/net` | – | `v0.17.0` |"),
        "{body}"
    );
    assert!(body.contains("**golang** (2)"), "{body}");
    // The table's facts came from the index entry's annotations.
    assert!(
        body.contains("`linux/amd64, linux/arm64` | `2026-11-20`"),
        "{body}"
    );

    // README "Registry requests": a stale index pin costs 2 HEAD + 2 manifest GETs; its PR
    // details, per image, one attestation manifest GET and two blob GETs (SBOM and
    // provenance); annotations spare the config.
    let cost = counts(&[("manifest-head", 2), ("manifest-get", 4), ("blob", 4)]);
    let after = requests(&server.url, &reg.addr).await;
    assert_eq!(delta(&after, &before), cost);

    // The next scan asks the tag again (one HEAD) and nothing else: details are fetched
    // only for PRs written now, and once per digest.
    server.scan(REPO).await;
    let cost = counts(&[("manifest-head", 1)]);
    assert_eq!(delta(&requests(&server.url, &reg.addr).await, &after), cost);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_publishes_nothing_gets_the_honest_sentence() {
    let reg = TestRegistry::start().await;
    let push = |salt: &'static str| {
        let reg = &reg;
        async move {
            let amd = reg
                .push_image_labelled("library/redis", None, "linux/amd64", salt, false, json!({}))
                .await;
            reg.push_index("library/redis", "7", &[&amd], false, salt, false)
                .await
        }
    };
    let old = push("one").await;
    let dockerfile = format!("FROM {}\n", reg.reference("library/redis", "7", Some(&old)));
    let fake = FakeGitHub::start().await;
    let (server, _) = installed(&fake, &reg, &[("Dockerfile", &dockerfile)]).await;
    let before = requests(&server.url, &reg.addr).await;
    push("two").await;
    server.scan(REPO).await;
    let body = open_body(&fake);
    assert!(
        body.contains("- No source or SBOM information published for this image."),
        "{body}"
    );
    assert!(!body.contains("Package changes"), "{body}");
    // Resolution 2 HEAD + 2 GET; without annotations the labels are read from each
    // image's config: a manifest GET and a blob GET per image (new and old).
    let cost = counts(&[("manifest-head", 2), ("manifest-get", 4), ("blob", 2)]);
    assert_eq!(
        delta(&requests(&server.url, &reg.addr).await, &before),
        cost
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_pull_budget_defers_details_and_a_later_scan_adds_them_without_a_commit() {
    let reg = TestRegistry::start().await;
    let old = push_attested(&reg, OLD_REV, 'a', false).await;
    let new = push_attested(&reg, NEW_REV, 'b', true).await;
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&old))
    );
    let fake = FakeGitHub::start().await;
    let host = reg.addr.clone();
    // 4 pulls per 5 s: resolution takes 2, details may take 3 of 4 in all, and need 2 more.
    let (server, _) = installed_tuned(&fake, &reg, &[("Dockerfile", &dockerfile)], &[], |c| {
        c.pull_budgets =
            digestif::registry::parse_pull_budgets(&format!("{host}=4/5s")).expect("budget");
    })
    .await;
    let body = open_body(&fake);
    assert!(body.contains(&new), "{body}");
    assert!(
        body.contains(&format!(
            "Details will follow: the pull budget for `{host}` is used up for now"
        )),
        "{body}"
    );
    assert!(!body.contains("Package changes"), "{body}");
    // Never more manifest GETs than the budget allows.
    assert_eq!(requests(&server.url, &host).await["manifest-get"], 3);
    let head = fake.branches(REPO)["digestif/all"].clone();

    // Once the window has passed, the next scan rewrites the description, not the branch.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    server.scan(REPO).await;
    let body = open_body(&fake);
    assert!(!body.contains("Details will follow"), "{body}");
    assert!(
        body.contains("| `github.com/go-chi/chi/v5` | `v5.0.0` | `v5.0.8` |"),
        "{body}"
    );
    assert_eq!(fake.branches(REPO)["digestif/all"], head, "no new commit");
    assert_eq!(requests(&server.url, &host).await["manifest-get"], 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_waiting_on_min_age_fetches_no_details() {
    let reg = TestRegistry::start().await;
    let old = push_attested(&reg, OLD_REV, 'a', false).await;
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&old))
    );
    let fake = FakeGitHub::start().await;
    let files = [
        ("Dockerfile", dockerfile.as_str()),
        (".github/digestif.yml", "min-age: 3d\n"),
    ];
    let (server, _) = installed(&fake, &reg, &files).await;
    let before = requests(&server.url, &reg.addr).await;
    push_attested(&reg, NEW_REV, 'b', true).await;
    server.scan(REPO).await;
    assert!(fake.pulls(REPO).is_empty(), "min-age: no PR yet");
    // Resolution only: no table facts, no attestations.
    let cost = counts(&[("manifest-head", 2), ("manifest-get", 2)]);
    assert_eq!(
        delta(&requests(&server.url, &reg.addr).await, &before),
        cost
    );
    server.stop().await;
}

/// Docker's example SBOM statement for `subject` with its packages replaced by `packages`
/// (name, version, purl as Syft writes them).
fn sbom_of(subject: &str, packages: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut s = fixture("spdx-statement.json");
    s["subject"][0]["digest"]["sha256"] = json!(subject.trim_start_matches("sha256:"));
    let list: Vec<Value> = packages
        .iter()
        .enumerate()
        .map(|(i, (name, version, purl))| {
            json!({
                "SPDXID": format!("SPDXRef-Package-{i}"),
                "name": name,
                "versionInfo": version,
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceLocator": purl,
                    "referenceType": "purl"
                }]
            })
        })
        .collect();
    s["predicate"]["packages"] = json!(list);
    serde_json::to_vec(&s).expect("json")
}

/// An image whose SBOM lists nginx (Debian 7, two binaries of one source), mariadb
/// (Alpine 3.16) and an rpm; `fixed` moves all three to the versions with the fixes of
/// the real advisories in tests/fixtures/osv.
fn os_sbom(subject: &str, fixed: bool) -> Vec<u8> {
    let (deb, apk, rpm) = if fixed {
        ("1.2.1-2.2+wheezy3", "10.6.8-r0", "5.1.8-6.el9")
    } else {
        ("1.2.1-2.2+wheezy2", "10.6.7-r0", "5.1.8-4.el9")
    };
    let nginx = format!("pkg:deb/debian/nginx@{deb}?arch=amd64&distro=debian-7");
    let common =
        format!("pkg:deb/debian/nginx-common@{deb}?arch=all&upstream=nginx&distro=debian-7");
    let mariadb =
        format!("pkg:apk/alpine/mariadb@{apk}?arch=x86_64&upstream=mariadb&distro=alpine-3.16.0");
    let bash = format!("pkg:rpm/redhat/bash@{rpm}?arch=x86_64&distro=rhel-9.4");
    sbom_of(
        subject,
        &[
            ("nginx", deb, &nginx),
            ("nginx-common", deb, &common),
            ("mariadb", apk, &mariadb),
            ("bash", rpm, &bash),
        ],
    )
}

/// Runs the OS-package update scenario with `setup`; returns the PR body.
async fn os_update(setup: Setup) -> (String, Running) {
    let reg = TestRegistry::start().await;
    let old = push_attested_with(&reg, OLD_REV, 'a', |d| os_sbom(d, false)).await;
    let dockerfile = format!(
        "FROM {}\n",
        reg.reference("library/python", "3.12-slim", Some(&old))
    );
    let fake = FakeGitHub::start().await;
    let (server, _) = installed_setup(
        &fake,
        &reg,
        &[("Dockerfile", &dockerfile)],
        &[],
        setup,
        |_| {},
    )
    .await;
    let new = push_attested_with(&reg, NEW_REV, 'b', |d| os_sbom(d, true)).await;
    server.scan(REPO).await;
    let body = open_body(&fake);
    assert!(body.contains(&new), "{body}");
    assert!(
        body.contains("| `nginx` | `1.2.1-2.2+wheezy2` | `1.2.1-2.2+wheezy3` |"),
        "{body}"
    );
    // The same answer on the next scan (details and vulnerability notes are cached).
    server.scan(REPO).await;
    assert_eq!(open_body(&fake), body);
    (body, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_osv_the_pr_lists_the_advisories_the_update_fixes_asking_once() {
    let osv = FakeOsv::start(fixture_records(), 1000).await;
    let setup = Setup {
        osv_url: Some(osv.url.clone()),
        ..Setup::default()
    };
    let (body, server) = os_update(setup).await;
    let link = |id: &str| format!("[{id}]({}/v1/vulns/{id})", osv.url);
    assert!(
        body.contains(&format!(
            "- `nginx` (Debian:7) `1.2.1-2.2+wheezy2` → `1.2.1-2.2+wheezy3`:\n  - {}: nginx - security update\n",
            link("DSA-3029-1")
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "- `mariadb` (Alpine:v3.16) `10.6.7-r0` → `10.6.8-r0`:\n  - {}\n",
            link("CVE-2022-27449")
        )),
        "{body}"
    );
    assert!(
        body.contains("4 updated, 0 added, 0 removed; fixes 2 known advisories</summary>"),
        "{body}"
    );
    // nginx twice (two binaries of one source) and mariadb asked; the rpm not.
    assert!(
        body.contains(
            "- Vulnerability notes (OSV): this update fixes 2 known advisories of the 3 removed \
             or upgraded packages asked about; 1 not asked about (no OSV ecosystem is known for \
             it); listed with the package changes."
        ),
        "{body}"
    );
    // One batch of four queries (nginx and mariadb, old and new), one record GET per
    // advisory; the second scan asked nothing again.
    assert_eq!(osv.batches(), [4]);
    assert_eq!(osv.requests(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_setting_nothing_is_sent_to_osv() {
    let osv = FakeOsv::start(fixture_records(), 1000).await;
    let (body, server) = os_update(Setup::default()).await;
    assert!(!body.contains("Vulnerability"), "{body}");
    assert!(!body.contains("advisor"), "{body}");
    assert_eq!(osv.requests(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_osv_fault_leaves_a_short_reason_and_the_rest_of_the_pr() {
    let mock = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v1/querybatch"))
        .respond_with(wiremock::ResponseTemplate::new(503).set_body_string("overloaded"))
        .mount(&mock)
        .await;
    let setup = Setup {
        osv_url: Some(mock.uri()),
        ..Setup::default()
    };
    let (body, server) = os_update(setup).await;
    assert!(
        body.contains("- Vulnerability notes unavailable: OSV answered HTTP 503.\n"),
        "{body}"
    );
    assert!(
        body.contains("4 updated, 0 added, 0 removed</summary>"),
        "{body}"
    );
    server.stop().await;
}
