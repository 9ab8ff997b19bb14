//! The SSRF guard through the resolver against the real registry on 127.0.0.1: names that
//! resolve to special-purpose addresses, exemptions that hold for one port only, redirects
//! and token realms that leave an exempt port, and what a repository is told. wiremock
//! only plays a registry that redirects elsewhere (a fault the real one will not produce).

#[path = "support/registry.rs"]
mod registry_support;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use digestif::reference::Reference;
use digestif::registry::{Lookup, RegistryConfig, Resolution, Resolver, Status};
use registry_support::{Options, TestRegistry};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

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
            .push(ip.parse().expect("address"));
    }
    Arc::new(FakeDns(m))
}

/// Server mode: the guard on, short timeouts (an address the guard lets through by
/// mistake must fail fast, not hang the test).
fn guarded(reg: &TestRegistry) -> RegistryConfig {
    let mut c = reg.resolver_config();
    c.ssrf_guard = true;
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(5);
    c.cache_ttl = Duration::ZERO;
    c
}

async fn resolve(config: &RegistryConfig, text: &str) -> Resolution {
    Resolver::new(config.clone())
        .expect("resolver")
        .resolve(&Reference::parse(text).expect("reference"), None)
        .await
}

/// The guard said no, the repository is told only that, and the operator's detail says
/// why.
fn assert_not_allowed(r: &Resolution, host: &str, detail_has: &str) {
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert_eq!(
        r.message.as_deref(),
        Some(format!("{host}: registry address not allowed").as_str()),
        "{r:?}"
    );
    let detail = r.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("SSRF guard") && detail.contains(detail_has),
        "{detail}"
    );
}

#[tokio::test]
async fn names_resolving_to_special_purpose_addresses_are_refused_before_connecting() {
    let reg = TestRegistry::start().await;
    reg.push_image("app", Some("1"), "linux/amd64", "x", false)
        .await;
    let port = reg.addr.rsplit(':').next().unwrap().to_string();
    let names = [
        ("bench.test", "198.18.0.1"),
        ("doc.test", "192.0.2.10"),
        ("ietf.test", "192.0.0.1"),
        ("shared.test", "100.64.0.1"),
        ("reserved.test", "240.0.0.1"),
        // IPv4-translated ::ffff:0:127.0.0.1
        ("xlat.test", "::ffff:0:7f00:1"),
        // NAT64 with loopback inside, and the local-use NAT64 prefix.
        ("nat64.test", "64:ff9b::7f00:1"),
        ("nat64local.test", "64:ff9b:1::a00:1"),
        // 6to4 of 127.0.0.1; Teredo whose client (inverted) is 127.0.0.1.
        ("sixtofour.test", "2002:7f00:1::1"),
        ("teredo.test", "2001:0:4136:e378:8000:63bf:80ff:fffe"),
    ];
    let mut entries = names.to_vec();
    entries.push(("real.test", "127.0.0.1"));
    let mut c = guarded(&reg);
    c.lookup = Some(dns(&entries));
    for (name, ip) in names {
        let host = format!("{name}:{port}");
        c.insecure.insert(host.clone());
        let r = resolve(&c, &format!("{host}/app:1")).await;
        assert_not_allowed(&r, &host, &format!("resolves to {ip}"));
        assert!(!r.message.unwrap().contains(ip));
    }
    // The same registry under a name the operator exempts on its port answers.
    let real = format!("real.test:{port}");
    c.insecure.insert(real.clone());
    c.allow_private.insert(real.clone());
    let r = resolve(&c, &format!("{real}/app:1")).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
}

#[tokio::test]
async fn an_exemption_with_a_port_holds_for_that_port_only() {
    let one = TestRegistry::start().await;
    let two = TestRegistry::start().await;
    one.push_image("app", Some("1"), "linux/amd64", "one", false)
        .await;
    two.push_image("app", Some("1"), "linux/amd64", "two", false)
        .await;
    let mut c = guarded(&one);
    c.insecure.insert(two.addr.clone());
    c.allow_private.insert(one.addr.clone());

    let r = resolve(&c, &one.reference("app", "1", None)).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    // Another port of the same address: refused, nothing sent.
    let resolver = Resolver::new(c.clone()).unwrap();
    let r = resolver
        .resolve(
            &Reference::parse(&two.reference("app", "1", None)).unwrap(),
            None,
        )
        .await;
    assert_not_allowed(&r, &two.addr, "Loopback");
    assert_eq!(resolver.requests_sent(), 0);

    // A name exempt on one port: its other ports are refused too.
    let (p1, p2) = (port_of(&one.addr), port_of(&two.addr));
    let mut named = c.clone();
    named.lookup = Some(dns(&[("registry.internal", "127.0.0.1")]));
    named.allow_private = [format!("registry.internal:{p1}")].into();
    named.insecure = [
        format!("registry.internal:{p1}"),
        format!("registry.internal:{p2}"),
    ]
    .into();
    let r = resolve(&named, &format!("registry.internal:{p1}/app:1")).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    let r = resolve(&named, &format!("registry.internal:{p2}/app:1")).await;
    assert_not_allowed(
        &r,
        &format!("registry.internal:{p2}"),
        "resolves to 127.0.0.1",
    );

    // A bare host is every port.
    c.allow_private = ["127.0.0.1".to_string()].into();
    let r = resolve(&c, &two.reference("app", "1", None)).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_token_realm_on_another_port_of_an_exempt_host_is_refused() {
    let reg = TestRegistry::start_with(Options {
        token: Some(("pusher".into(), "secret".into())),
        ..Options::default()
    })
    .await;
    reg.push_image("app", Some("1"), "linux/amd64", "x", false)
        .await;
    let realm = reg.token_addr.clone().expect("token server");
    let mut c = guarded(&reg);
    c.allow_private.insert(reg.addr.clone());
    let r = resolve(&c, &reg.reference("app", "1", None)).await;
    // Named by the registry the repository asked for; the realm is in the detail only.
    assert_not_allowed(
        &r,
        &reg.addr,
        &format!("token realm: 127.0.0.1 port {}", port_of(&realm)),
    );
    assert!(!r.message.unwrap().contains(&realm));

    // Exempt the token service's port too, and the lookup works.
    c.allow_private.insert(realm);
    let r = resolve(&c, &reg.reference("app", "1", None)).await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
}

#[tokio::test]
async fn a_redirect_from_an_exempt_port_to_another_port_is_not_followed() {
    let reg = TestRegistry::start().await;
    reg.push_image("app", Some("1"), "linux/amd64", "x", false)
        .await;
    let port = port_of(&reg.addr);
    // A registry the operator exempts, redirecting to another port of its host: by
    // address, and by a name exempt on the front's port only.
    let front = MockServer::start().await;
    let front_port = front.address().port();
    let by_address = format!("http://{}/v2/app/manifests/1", reg.addr);
    let by_name = format!("http://front.test:{port}/v2/app/manifests/1");
    for target in [by_address, by_name] {
        front.reset().await;
        Mock::given(method("HEAD"))
            .respond_with(ResponseTemplate::new(307).insert_header("Location", target.as_str()))
            .mount(&front)
            .await;
        for front_host in [
            format!("127.0.0.1:{front_port}"),
            format!("front.test:{front_port}"),
        ] {
            let mut c = guarded(&reg);
            c.lookup = Some(dns(&[("front.test", "127.0.0.1")]));
            c.insecure.insert(front_host.clone());
            c.allow_private.insert(front_host.clone());
            let r = resolve(&c, &format!("{front_host}/app:1")).await;
            // A name the front is not exempt under is left to the resolver, which refuses
            // its loopback address; everything else is stopped at the redirect.
            let why = if target.contains("front.test") && front_host.starts_with("127.") {
                "resolves to 127.0.0.1"
            } else {
                "redirect"
            };
            assert_not_allowed(&r, &front_host, why);
            // Without the guard (the CLI) the same redirect is followed to the registry.
            c.ssrf_guard = false;
            let r = resolve(&c, &format!("{front_host}/app:1")).await;
            assert_eq!(
                r.status,
                Status::Unpinned,
                "{target} via {front_host}: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn network_errors_reach_the_repository_without_their_detail() {
    let reg = TestRegistry::start().await;
    // A port nobody listens on, on a host the operator exempts on every port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let host = closed.to_string();
    let mut c = guarded(&reg);
    c.allow_private.insert("127.0.0.1".into());
    c.insecure.insert(host.clone());
    let r = resolve(&c, &format!("{host}/app:1")).await;
    assert_eq!(r.status, Status::Error);
    assert_eq!(
        r.message.as_deref(),
        Some(format!("{host}: cannot connect").as_str())
    );
    let detail = r.detail.unwrap();
    assert!(detail.to_lowercase().contains("refused"), "{detail}");
}
