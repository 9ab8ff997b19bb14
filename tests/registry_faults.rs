//! Faults a real registry will not produce on demand, injected with wiremock: rate limits,
//! server errors, slow responses, a missing digest header, token realms on other hosts,
//! and SSRF attempts (a redirect to loopback, a name resolving to a private address).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use digestif::reference::{Digest, Reference};
use digestif::registry::{
    Credential, Lookup, RegistryConfig, RequestKind, Resolver, Secret, Status,
};
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn host(server: &MockServer) -> String {
    server.address().to_string()
}

fn config_for(servers: &[&MockServer]) -> RegistryConfig {
    let mut c = RegistryConfig {
        retry_after_cap: Duration::from_secs(5),
        max_retries: 1,
        backoff_base: Duration::from_millis(50),
        ..RegistryConfig::default()
    };
    for s in servers {
        c.insecure.insert(host(s));
    }
    c
}

fn head_ok(p: &str, digest: &str) -> Mock {
    Mock::given(method("HEAD")).and(path(p)).respond_with(
        ResponseTemplate::new(200)
            .insert_header("Docker-Content-Digest", digest)
            .insert_header("Content-Type", OCI_MANIFEST),
    )
}

async fn resolve(res: &Resolver, text: &str) -> digestif::registry::Resolution {
    res.resolve(&Reference::parse(text).expect("reference"), None)
        .await
}

#[tokio::test]
async fn rate_limits_are_honoured_then_given_up_without_failing_other_hosts() {
    let limited = MockServer::start().await;
    let fine = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .mount(&limited)
        .await;
    head_ok("/v2/app/manifests/1", D1).mount(&fine).await;
    let res = Resolver::new(config_for(&[&limited, &fine])).unwrap();

    let start = Instant::now();
    let (ta, tb) = (
        format!("{}/app:1", host(&limited)),
        format!("{}/app:1", host(&fine)),
    );
    let (a, b) = tokio::join!(resolve(&res, &ta), resolve(&res, &tb));
    assert_eq!(a.status, Status::RateLimited, "{a:?}");
    let msg = a.message.unwrap();
    assert!(
        msg.contains("rate limited") && msg.contains("Retry-After 1s"),
        "{msg}"
    );
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(b.status, Status::Unpinned, "the other host is unaffected");
    assert_eq!(
        limited.received_requests().await.unwrap().len(),
        2,
        "one retry"
    );

    // The rest of this cycle skips the limited host without asking it again.
    let c = resolve(&res, &format!("{}/other:2", host(&limited))).await;
    assert_eq!(c.status, Status::RateLimited);
    assert_eq!(limited.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_short_rate_limit_is_waited_out_and_a_long_one_gives_up_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path("/v2/app/manifests/1"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    head_ok("/v2/app/manifests/1", D1).mount(&server).await;
    Mock::given(method("HEAD"))
        .and(path("/v2/slow/manifests/1"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .mount(&server)
        .await;
    let res = Resolver::new(config_for(&[&server])).unwrap();
    let r = resolve(&res, &format!("{}/app:1", host(&server))).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    assert_eq!(r.current, Some(Digest::parse(D1).unwrap()));

    let start = Instant::now();
    let r = resolve(&res, &format!("{}/slow:1", host(&server))).await;
    assert_eq!(r.status, Status::RateLimited);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "an hour is past the cap"
    );
}

#[tokio::test]
async fn server_errors_and_access_problems_are_readable_statuses() {
    let server = MockServer::start().await;
    for (p, code) in [
        ("/v2/e500/manifests/1", 500),
        ("/v2/e403/manifests/1", 403),
        ("/v2/e404/manifests/1", 404),
    ] {
        Mock::given(method("HEAD"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(code))
            .mount(&server)
            .await;
    }
    let res = Resolver::new(config_for(&[&server])).unwrap();
    let h = host(&server);
    for (repo, expect) in [
        ("e500", format!("{h}: server error (500)")),
        ("e403", format!("{h}: access denied")),
        ("e404", format!("{h}: repository or tag e404:1 not found")),
    ] {
        let r = resolve(&res, &format!("{h}/{repo}:1")).await;
        assert_eq!(r.status, Status::Error);
        assert_eq!(r.message.as_deref(), Some(expect.as_str()));
    }
}

#[tokio::test]
async fn slow_responses_time_out() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Docker-Content-Digest", D1)
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let mut c = config_for(&[&server]);
    c.request_timeout = Duration::from_millis(300);
    let res = Resolver::new(c).unwrap();
    let start = Instant::now();
    let r = resolve(&res, &format!("{}/app:1", host(&server))).await;
    assert_eq!(r.status, Status::Error);
    assert!(r.message.unwrap().ends_with("request timed out"));
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn per_host_concurrency_is_limited() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Docker-Content-Digest", D1)
                .insert_header("Content-Type", OCI_MANIFEST)
                .set_delay(Duration::from_millis(200)),
        )
        .mount(&server)
        .await;
    let mut c = config_for(&[&server]);
    c.per_host_limit = 2;
    let res = Resolver::new(c).unwrap();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let (res, text) = (res.clone(), format!("{}/app:{i}", host(&server)));
        tasks.spawn(async move { resolve(&res, &text).await.status });
    }
    while let Some(s) = tasks.join_next().await {
        assert_eq!(s.unwrap(), Status::Unpinned);
    }
    // 6 requests, 2 at a time, 200 ms each: at least 3 rounds.
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_missing_digest_header_falls_back_to_get_and_hashes_the_body() {
    let server = MockServer::start().await;
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":2},"layers":[]}"#;
    Mock::given(method("HEAD"))
        .and(path("/v2/app/manifests/1"))
        .respond_with(ResponseTemplate::new(200).insert_header("Content-Type", OCI_MANIFEST))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/app/manifests/1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Type", OCI_MANIFEST)
                .set_body_bytes(body.to_vec()),
        )
        .mount(&server)
        .await;
    let res = Resolver::new(config_for(&[&server])).unwrap();
    let r = resolve(&res, &format!("{}/app:1", host(&server))).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    assert_eq!(r.current, Some(Digest::sha256_of(body)));
    let kinds: HashMap<RequestKind, u64> = res.counts().iter().map(|c| (c.kind, c.count)).collect();
    assert_eq!(kinds[&RequestKind::ManifestHead], 1);
    assert_eq!(kinds[&RequestKind::ManifestGet], 1);
}

/// Registry answering 401 with a Bearer challenge naming `realm`, and 200 once a token comes.
async fn bearer_registry(realm: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(header_exists("authorization"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Docker-Content-Digest", D1)
                .insert_header("Content-Type", OCI_MANIFEST),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "WWW-Authenticate",
            format!(r#"Bearer realm="{realm}",service="reg",scope="repository:app:pull""#),
        ))
        .mount(&server)
        .await;
    server
}

fn credential(token_hosts: &[String]) -> Credential {
    Credential {
        username: "operator".into(),
        password: Secret::new("top-secret"),
        token_hosts: token_hosts.iter().cloned().collect(),
    }
}

#[tokio::test]
async fn credentials_never_go_to_a_token_realm_on_another_host() {
    let realm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "t0k"})))
        .mount(&realm)
        .await;
    let registry = bearer_registry(&format!("http://{}/token", host(&realm))).await;
    let mut c = config_for(&[&registry, &realm]);
    c.credentials.insert(host(&registry), credential(&[]));
    let res = Resolver::new(c).unwrap();
    let r = resolve(&res, &format!("{}/app:1", host(&registry))).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    let asked = realm.received_requests().await.unwrap();
    assert_eq!(asked.len(), 1);
    assert!(
        !asked[0].headers.contains_key("authorization"),
        "credentials leaked to another host"
    );
    let q = asked[0].url.query().unwrap_or_default().to_string();
    assert!(
        q.contains("service=reg") && q.contains("scope=repository%3Aapp%3Apull"),
        "{q}"
    );
    // The token went to the registry.
    let reg_asked = registry.received_requests().await.unwrap();
    assert_eq!(
        reg_asked.last().unwrap().headers["authorization"],
        "Bearer t0k"
    );

    // Listed for the credential, the realm gets them.
    realm.reset().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "t1"})),
        )
        .mount(&realm)
        .await;
    let mut c = config_for(&[&registry, &realm]);
    c.credentials
        .insert(host(&registry), credential(&[host(&realm)]));
    let res = Resolver::new(c).unwrap();
    let r = resolve(&res, &format!("{}/app:1", host(&registry))).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    let asked = realm.received_requests().await.unwrap();
    assert!(
        asked[0].headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
}

/// Names resolved from a table, standing in for DNS.
struct FakeDns(HashMap<String, Vec<IpAddr>>);

impl Lookup for FakeDns {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let found = self.0.get(&host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))
        })
    }
}

fn dns(entries: &[(&str, &str)]) -> Arc<dyn Lookup> {
    let mut m: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for (name, ip) in entries {
        m.entry(name.to_string())
            .or_default()
            .push(ip.parse().unwrap());
    }
    Arc::new(FakeDns(m))
}

#[tokio::test]
async fn server_mode_refuses_loopback_private_names_and_redirects_to_them() {
    let target = MockServer::start().await;
    head_ok("/v2/app/manifests/1", D1).mount(&target).await;
    let port = target.address().port();

    // A loopback literal, straight away: nothing is sent.
    let mut c = config_for(&[&target]);
    c.ssrf_guard = true;
    let res = Resolver::new(c.clone()).unwrap();
    let r = resolve(&res, &format!("{}/app:1", host(&target))).await;
    assert_eq!(r.status, Status::Error);
    // The repository is told only that the address is not allowed; the operator's detail
    // says which and why.
    assert_eq!(
        r.message.as_deref(),
        Some(format!("{}: registry address not allowed", host(&target)).as_str())
    );
    assert!(r.detail.unwrap().contains("SSRF guard"));
    assert!(target.received_requests().await.unwrap().is_empty());

    // A name that does not resolve: a readable DNS error.
    let mut nodns = config_for(&[]);
    nodns.lookup = Some(dns(&[]));
    nodns.insecure.insert("nowhere.test:5000".into());
    let r = resolve(&Resolver::new(nodns).unwrap(), "nowhere.test:5000/app:1").await;
    assert_eq!(r.status, Status::Error);
    let msg = r.message.unwrap();
    assert!(
        msg.starts_with("nowhere.test:5000: cannot resolve host"),
        "{msg}"
    );

    // A name that resolves to 10.0.0.1 (and one to loopback): refused before connecting.
    c.lookup = Some(dns(&[
        ("internal.test", "10.0.0.1"),
        ("sneaky.test", "127.0.0.1"),
        ("front.test", "127.0.0.1"),
    ]));
    c.insecure.insert(format!("internal.test:{port}"));
    c.insecure.insert(format!("sneaky.test:{port}"));
    let res = Resolver::new(c.clone()).unwrap();
    for name in ["internal.test", "sneaky.test"] {
        let r = resolve(&res, &format!("{name}:{port}/app:1")).await;
        assert_eq!(r.status, Status::Error, "{name}");
        assert_eq!(
            r.message.unwrap(),
            format!("{name}:{port}: registry address not allowed")
        );
        let msg = r.detail.unwrap();
        assert!(
            msg.contains("SSRF guard") && msg.contains("resolves to"),
            "{msg}"
        );
    }
    assert!(target.received_requests().await.unwrap().is_empty());

    // An allowed front host that redirects to 127.0.0.1: the redirect is not followed.
    let front = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "Location",
            format!("http://{}/v2/app/manifests/1", host(&target)),
        ))
        .mount(&front)
        .await;
    let front_host = format!("front.test:{}", front.address().port());
    c.insecure.insert(front_host.clone());
    c.allow_private.insert("front.test".into());
    let res = Resolver::new(c.clone()).unwrap();
    let r = resolve(&res, &format!("{front_host}/app:1")).await;
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert!(
        r.message
            .unwrap()
            .ends_with(": registry address not allowed")
    );
    let msg = r.detail.unwrap();
    assert!(
        msg.contains("SSRF guard") && msg.contains("redirect"),
        "{msg}"
    );
    assert_eq!(front.received_requests().await.unwrap().len(), 1);
    assert!(target.received_requests().await.unwrap().is_empty());

    // The same allowed host, answering itself, works: the guard is not a blanket ban.
    let direct = MockServer::start().await;
    head_ok("/v2/app/manifests/1", D1).mount(&direct).await;
    let direct_host = format!("front.test:{}", direct.address().port());
    c.insecure.insert(direct_host.clone());
    let res = Resolver::new(c).unwrap();
    let r = resolve(&res, &format!("{direct_host}/app:1")).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");

    // Without the guard (the CLI) the redirect is followed.
    let mut cli = config_for(&[&front, &target]);
    cli.lookup = Some(dns(&[("front.test", "127.0.0.1")]));
    cli.insecure.insert(front_host.clone());
    let res = Resolver::new(cli).unwrap();
    let r = resolve(&res, &format!("{front_host}/app:1")).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
}

#[tokio::test]
async fn mirrors_take_lookups_while_names_stay() {
    let mirror = MockServer::start().await;
    head_ok("/v2/library/python/manifests/3.12", D1)
        .mount(&mirror)
        .await;
    let mut c = config_for(&[&mirror]);
    c.mirrors.insert("docker.io".into(), host(&mirror));
    let res = Resolver::new(c).unwrap();
    let r = resolve(&res, "python:3.12").await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    assert_eq!(res.counts()[0].host, host(&mirror));
}

#[tokio::test]
async fn a_token_service_that_sheds_load_reads_as_rate_limited() {
    let realm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120"))
        .mount(&realm)
        .await;
    let registry = bearer_registry(&format!("http://{}/token", host(&realm))).await;
    let res = Resolver::new(config_for(&[&registry, &realm])).unwrap();
    let r = resolve(&res, &format!("{}/app:1", host(&registry))).await;
    assert_eq!(r.status, Status::RateLimited, "{r:?}");
    let message = r.message.unwrap_or_default();
    assert!(message.contains("token service answered 429"), "{message}");
    assert!(message.contains("retry after 120 s"), "{message}");
}
