//! SSRF guard: registry hosts come from strangers' files, so in server mode no request may
//! reach an address that is not globally reachable (loopback, private, link-local cloud
//! metadata, shared, documentation, benchmarking, reserved …: the table in
//! [`super::special`]) unless the operator exempts that host and port.
//!
//! Three checks, because each alone has a hole:
//! - the DNS resolver handed to reqwest drops refused addresses, so the connection can only
//!   go to an address that was checked (no second lookup to rebind between check and use);
//! - IP literals never reach a resolver, so URLs (and every redirect hop) are checked too;
//! - the address the response came from is checked again, in case a proxy or a future
//!   connector change bypasses the first two.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::settings::{Lookup, RegistryConfig, SystemLookup};
pub use super::special::refused;

/// Which exemptions a client's requests may use. Two clients, because the DNS resolver
/// sees a name but not the port it is wanted for: requests to an exempt `host:port` go
/// through one whose resolver lets that host's private addresses through, every other
/// request through one whose resolver does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exemption {
    /// For requests to an exempt `host:port`: names with any exempt port may resolve to
    /// private addresses, so redirects must not leave the exempt ports of such a name.
    Port,
    /// For everything else: only names exempt on every port may resolve privately.
    None,
}

/// `(host, port)` a URL goes to, the port defaulted by scheme.
pub fn target(url: &reqwest::Url) -> Option<(String, u16)> {
    let host = url.host_str()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_ascii_lowercase(), url.port_or_known_default()?))
}

/// Whether requests to `url` may use the operator's exemption (go through the exempt
/// client).
pub fn exempt(config: &RegistryConfig, url: &reqwest::Url) -> bool {
    config.ssrf_guard && target(url).is_some_and(|(h, p)| config.private_allowed_at(&h, p))
}

/// Checks a URL before it is requested (or a redirect followed): an IP literal must be
/// public unless its port is exempt; through the exempt client, a name with exempt ports
/// may only be asked on those (its resolver would let a private address through).
pub fn check_url(
    config: &RegistryConfig,
    url: &reqwest::Url,
    via: Exemption,
) -> Result<(), String> {
    if !config.ssrf_guard {
        return Ok(());
    }
    let Some((host, port)) = target(url) else {
        return Err("URL has no host or port".into());
    };
    if config.private_allowed_at(&host, port) {
        return Ok(());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match refused(ip) {
            Some(why) => Err(format!("{ip} port {port}: {why}")),
            None => Ok(()),
        };
    }
    if via == Exemption::Port && config.private_allowed_somewhere(&host) {
        return Err(format!(
            "{host} port {port}: only other ports of {host} are allowed to be private"
        ));
    }
    Ok(())
}

/// Checks the address a response actually came from (`url` is the last one requested,
/// after redirects).
pub fn check_remote(
    config: &RegistryConfig,
    url: &reqwest::Url,
    addr: Option<SocketAddr>,
) -> Result<(), String> {
    if !config.ssrf_guard || exempt(config, url) {
        return Ok(());
    }
    match addr.map(|a| (a, refused(a.ip()))) {
        Some((a, Some(why))) => Err(format!("connected to {a}: {why}")),
        _ => Ok(()),
    }
}

/// The DNS resolver given to reqwest: looks the name up and, with the guard on, keeps only
/// addresses that may be contacted.
pub struct GuardResolver {
    pub config: Arc<RegistryConfig>,
    pub lookup: Arc<dyn Lookup>,
    pub via: Exemption,
}

impl GuardResolver {
    pub fn new(config: Arc<RegistryConfig>, via: Exemption) -> GuardResolver {
        let lookup = config
            .lookup
            .clone()
            .unwrap_or_else(|| Arc::new(SystemLookup) as Arc<dyn Lookup>);
        GuardResolver {
            config,
            lookup,
            via,
        }
    }
}

impl reqwest::dns::Resolve for GuardResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let config = self.config.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_string();
        let via = self.via;
        Box::pin(async move {
            let addrs = lookup.lookup(host.clone()).await?;
            if addrs.is_empty() {
                return Err(format!("{host} has no addresses").into());
            }
            let allowed = !config.ssrf_guard
                || match via {
                    Exemption::Port => config.private_allowed_somewhere(&host),
                    Exemption::None => config.private_allowed_everywhere(&host),
                };
            let mut refusal = None;
            let ok: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|ip| match refused(*ip) {
                    Some(why) if !allowed => {
                        refusal = Some(format!("{host} resolves to {ip}: {why}"));
                        false
                    }
                    _ => true,
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if ok.is_empty() {
                let why = refusal.unwrap_or_else(|| format!("{host}: no usable address"));
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: reqwest::dns::Addrs = Box::new(ok.into_iter());
            Ok(addrs)
        })
    }
}

/// The guard said no; found in an error's source chain to report it as a refusal.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by the SSRF guard: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// Redirects: at most 5 hops, each checked like a first request through the same client
/// (names are checked again when the resolver is asked for them).
pub fn redirect_policy(config: Arc<RegistryConfig>, via: Exemption) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("too many redirects");
        }
        match check_url(&config, attempt.url(), via) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(Refused(format!("redirect to {why}"))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_literals_are_checked_only_with_the_guard_and_by_port() {
        let mut c = RegistryConfig {
            ssrf_guard: true,
            ..RegistryConfig::default()
        };
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let check = |c: &RegistryConfig, url: &str| check_url(c, &u(url), Exemption::None);
        assert!(check(&c, "http://127.0.0.1:5000/v2/").is_err());
        assert!(check(&c, "http://[::1]/v2/").is_err());
        assert!(check(&c, "http://192.0.2.7/v2/").is_err());
        assert!(check(&c, "http://[64:ff9b::a00:1]/v2/").is_err());
        assert!(check(&c, "https://registry.example.com/v2/").is_ok());
        c.allow_private.insert("127.0.0.1:5000".into());
        assert!(check(&c, "http://127.0.0.1:5000/v2/").is_ok());
        // Another port of the allowed host is still refused: digestif's own, PostgreSQL's.
        let e = check(&c, "http://127.0.0.1:5432/v2/").unwrap_err();
        assert!(
            e.contains("127.0.0.1 port 5432") && e.contains("Loopback"),
            "{e}"
        );
        assert!(check(&c, "http://127.0.0.1/").is_err());
        // A bare host is every port.
        c.allow_private.insert("10.0.0.1".into());
        assert!(check(&c, "http://10.0.0.1:5432/").is_ok());
        assert!(check(&c, "https://10.0.0.1/").is_ok());
        c.ssrf_guard = false;
        assert!(check(&c, "http://10.0.0.2/").is_ok());
    }

    #[test]
    fn through_the_exempt_client_a_name_keeps_to_its_exempt_ports() {
        let mut c = RegistryConfig {
            ssrf_guard: true,
            ..RegistryConfig::default()
        };
        c.allow_private.insert("registry.internal:5000".into());
        c.mirrors
            .insert("docker.io".into(), "mirror.internal".into());
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let via = Exemption::Port;
        assert!(exempt(&c, &u("http://registry.internal:5000/v2/")));
        assert!(!exempt(&c, &u("http://registry.internal:5432/v2/")));
        assert!(check_url(&c, &u("http://registry.internal:5000/v2/"), via).is_ok());
        let e = check_url(&c, &u("http://registry.internal:5432/"), via).unwrap_err();
        assert!(e.contains("only other ports"), "{e}");
        // Through the other client its resolver refuses private answers: no need to refuse.
        assert!(check_url(&c, &u("http://registry.internal:5432/"), Exemption::None).is_ok());
        // A name without exemptions is left to the resolver; a bare mirror is every port.
        assert!(check_url(&c, &u("https://elsewhere.example/"), via).is_ok());
        assert!(check_url(&c, &u("http://mirror.internal:8080/"), via).is_ok());
        assert!(exempt(&c, &u("https://mirror.internal/")));
    }

    #[test]
    fn the_address_connected_to_is_judged_by_the_last_url() {
        let mut c = RegistryConfig {
            ssrf_guard: true,
            ..RegistryConfig::default()
        };
        c.allow_private.insert("registry.internal:5000".into());
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert!(check_remote(&c, &u("http://registry.internal:5000/v2/"), Some(lo)).is_ok());
        let e = check_remote(&c, &u("http://registry.internal:5001/v2/"), Some(lo)).unwrap_err();
        assert!(e.contains("connected to 127.0.0.1:5000"), "{e}");
        let public: SocketAddr = "8.8.8.8:443".parse().unwrap();
        assert!(check_remote(&c, &u("https://x.example/"), Some(public)).is_ok());
    }
}
