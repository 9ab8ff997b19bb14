//! The OSV client against the fake OSV server (OSV's API over real HTTP, real OSV records)
//! and, for faults, wiremock: batching at OSV's limit, paging, caching per package
//! version, and every fault turned into a short reason. Also the fake's own version order
//! and range matching, which the scenario tests rely on.

mod support;

use std::cmp::Ordering;
use std::time::Duration;

use digestif::insight::Package;
use digestif::insight::osv::{OsvPackage, Query, VulnNotes};
use digestif::osv::Osv;
use support::osv::{FakeOsv, affects, apk, dpkg, fixture_records};

fn query(eco: &str, name: &str, version: &str) -> Query {
    Query {
        package: OsvPackage {
            ecosystem: eco.into(),
            name: name.into(),
        },
        version: version.into(),
    }
}

fn deb(name: &str, version: &str) -> Package {
    Package {
        ecosystem: "deb".into(),
        name: name.into(),
        version: version.into(),
        purl: Some(format!(
            "pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-7"
        )),
    }
}

#[test]
fn the_fakes_version_order_and_ranges_are_debians_and_alpines() {
    assert_eq!(
        dpkg("1.2.1-2.2+wheezy2", "1.2.1-2.2+wheezy3"),
        Ordering::Less
    );
    assert_eq!(dpkg("1.0~rc1-1", "1.0-1"), Ordering::Less);
    assert_eq!(dpkg("1:0.9-1", "2.0-1"), Ordering::Greater);
    assert_eq!(dpkg("1.10-1", "1.9-1"), Ordering::Greater);
    assert_eq!(dpkg("1.0a-1", "1.0+-1"), Ordering::Less);
    assert_eq!(dpkg("1.0-1", "1.0-1"), Ordering::Equal);
    assert_eq!(apk("10.6.7-r0", "10.6.8-r0"), Ordering::Less);
    assert_eq!(apk("10.6.8-r1", "10.6.8-r0"), Ordering::Greater);
    assert_eq!(apk("1.2a-r0", "1.2-r0"), Ordering::Greater);
    let records = fixture_records();
    let dsa = &records[0];
    assert!(affects(dsa, "Debian:7", "nginx", "1.2.1-2.2+wheezy2"));
    assert!(!affects(dsa, "Debian:7", "nginx", "1.2.1-2.2+wheezy3"));
    assert!(!affects(dsa, "Debian:8", "nginx", "1.2.1-2.2+wheezy2"));
    let mariadb = &records[1];
    assert!(affects(mariadb, "Alpine:v3.16", "mariadb", "10.6.7-r0"));
    assert!(!affects(mariadb, "Alpine:v3.16", "mariadb", "10.6.8-r0"));
    assert!(affects(mariadb, "Alpine:v3.12", "mariadb", "10.4.24-r0"));
}

#[tokio::test]
async fn more_than_a_batch_goes_in_batches_of_1000_and_is_asked_once() {
    let osv = FakeOsv::start(fixture_records(), 1000).await;
    let client = Osv::new(&osv.url);
    let mut queries: Vec<Query> = (0..1000)
        .map(|i| query("Debian:7", "nginx", &format!("1.2.1-2.2+wheezy{}", i + 3)))
        .collect();
    queries.push(query("Debian:7", "nginx", "1.2.1-2.2+wheezy2"));
    let answers = client.ask(&queries).await.expect("answers");
    assert_eq!(osv.batches(), [1000, 1]);
    assert_eq!(answers.len(), 1001);
    assert_eq!(answers[&queries[1000]], ["DSA-3029-1"]);
    assert!(answers[&queries[0]].is_empty());
    // Cached per package version: nothing is sent again.
    client.ask(&queries).await.expect("answers");
    assert_eq!(osv.requests(), 2);
    assert_eq!(client.usage().batch_requests, 2);
}

#[tokio::test]
async fn paged_answers_are_followed_to_the_last_page() {
    // A second record for the same package (DSA-3029-1 under another id) makes two vulns
    // for one query; one per page makes OSV's server page them.
    let mut records = fixture_records();
    let mut second = records[0].clone();
    second["id"] = "DSA-3029-2".into();
    records.push(second);
    let osv = FakeOsv::start(records, 1).await;
    let client = Osv::new(&osv.url);
    let old = [deb("nginx", "1.2.1-2.2+wheezy2")];
    let new = [deb("nginx", "1.2.1-2.2+wheezy3")];
    let notes = client.notes(&old, &new).await.expect("notes");
    let VulnNotes::Known { fixed, .. } = &notes else {
        panic!("{notes:?}")
    };
    assert_eq!(fixed.len(), 1);
    assert_eq!(fixed[0].ids, ["DSA-3029-1", "DSA-3029-2"]);
    // Both versions in one batch; the old one's second page alone in the next.
    assert_eq!(osv.batches(), [2, 1]);
}

async fn unavailable(osv_url: &str, client: Option<Osv>) -> String {
    let client = client.unwrap_or_else(|| Osv::new(osv_url));
    let old = [deb("nginx", "1.2.1-2.2+wheezy2")];
    let new = [deb("nginx", "1.2.1-2.2+wheezy3")];
    match client.notes(&old, &new).await {
        Some(VulnNotes::Unavailable { reason }) => reason,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn faults_become_short_reasons() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/querybatch"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>not json</html>"))
        .mount(&mock)
        .await;
    assert_eq!(
        unavailable(&mock.uri(), None).await,
        "OSV's answer was not what its API documents"
    );

    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/querybatch"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"results": []}"#))
        .mount(&mock)
        .await;
    assert_eq!(
        unavailable(&mock.uri(), None).await,
        "OSV's answer was not what its API documents",
        "fewer results than queries"
    );

    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/querybatch"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&mock)
        .await;
    assert_eq!(
        unavailable(&mock.uri(), None).await,
        "OSV answered HTTP 502"
    );

    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/querybatch"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"results": [{}, {}]}"#)
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&mock)
        .await;
    let client =
        Osv::new(&mock.uri()).with_timeouts(Duration::from_millis(200), Duration::from_secs(5));
    assert_eq!(
        unavailable(&mock.uri(), Some(client)).await,
        "OSV did not answer in time"
    );

    // Nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    assert_eq!(unavailable(&closed, None).await, "OSV could not be reached");
}

#[test]
fn serve_help_lists_the_setting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_digestif"))
        .args(["serve", "--help"])
        .output()
        .expect("digestif runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("--osv-url <OSV_URL>"), "{help}");
    assert!(help.contains("[env: DIGESTIF_OSV_URL"), "{help}");
    assert!(
        help.contains("Unset (the default), nothing is sent"),
        "{help}"
    );
}
