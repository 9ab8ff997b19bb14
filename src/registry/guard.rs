//! SSRF guard: registry hosts come from strangers' files, so in server mode no request may
//! reach loopback, private, link-local (cloud metadata) or unspecified addresses unless the
//! operator allows that host.
//!
//! Three checks, because each alone has a hole:
//! - the DNS resolver handed to reqwest drops refused addresses, so the connection can only
//!   go to an address that was checked (no second lookup to rebind between check and use);
//! - IP literals never reach a resolver, so URLs (and every redirect hop) are checked too;
//! - the address the response came from is checked again, in case a proxy or a future
//!   connector change bypasses the first two.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use super::config::{Lookup, RegistryConfig, SystemLookup};

/// Why an address must not be contacted, or `None` when it is public.
pub fn refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified address")
    } else if ip.is_loopback() {
        Some("loopback address")
    } else if ip.is_private() {
        Some("private address")
    } else if ip.is_link_local() {
        Some("link-local address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        // 100.64.0.0/10, carrier-grade NAT; some clouds put metadata services there.
        Some("shared address space")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("reserved address")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // Addresses that embed an IPv4 address are judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    let s = ip.segments();
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        // NAT64 64:ff9b::/96
        return refused_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[0] == 0x2002 {
        // 6to4 2002::/16 carries the IPv4 address in the next 32 bits.
        return refused_v4(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    if ip.is_unspecified() {
        Some("unspecified address")
    } else if ip.is_loopback() {
        Some("loopback address")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique-local address")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local address")
    } else if ip.is_multicast() {
        Some("reserved address")
    } else if s[0..6] == [0, 0, 0, 0, 0, 0] {
        // Deprecated IPv4-compatible ::a.b.c.d
        refused_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32))
    } else {
        None
    }
}

/// Checks a URL's host when it is an IP literal (names are checked by the resolver).
pub fn check_url(config: &RegistryConfig, url: &reqwest::Url) -> Result<(), String> {
    if !config.ssrf_guard {
        return Ok(());
    }
    let Some(host) = url.host_str() else {
        return Err("URL has no host".into());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = host.parse::<IpAddr>() else {
        return Ok(());
    };
    match refused(ip) {
        Some(why) if !config.private_allowed(host) => Err(format!("{ip} is a {why}")),
        _ => Ok(()),
    }
}

/// Checks the address a response actually came from.
pub fn check_remote(
    config: &RegistryConfig,
    host: &str,
    addr: Option<SocketAddr>,
) -> Result<(), String> {
    if !config.ssrf_guard || config.private_allowed(host) {
        return Ok(());
    }
    match addr.map(|a| (a.ip(), refused(a.ip()))) {
        Some((ip, Some(why))) => Err(format!("connected to {ip}, a {why}")),
        _ => Ok(()),
    }
}

/// The DNS resolver given to reqwest: looks the name up and, with the guard on, keeps only
/// addresses that may be contacted.
pub struct GuardResolver {
    pub config: Arc<RegistryConfig>,
    pub lookup: Arc<dyn Lookup>,
}

impl GuardResolver {
    pub fn new(config: Arc<RegistryConfig>) -> GuardResolver {
        let lookup = config
            .lookup
            .clone()
            .unwrap_or_else(|| Arc::new(SystemLookup) as Arc<dyn Lookup>);
        GuardResolver { config, lookup }
    }
}

impl reqwest::dns::Resolve for GuardResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let config = self.config.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = lookup.lookup(host.clone()).await?;
            if addrs.is_empty() {
                return Err(format!("{host} has no addresses").into());
            }
            let allowed = !config.ssrf_guard || config.private_allowed(&host);
            let mut refusal = None;
            let ok: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|ip| match refused(*ip) {
                    Some(why) if !allowed => {
                        refusal = Some(format!("{host} resolves to {ip}, a {why}"));
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

/// Redirects: at most 5 hops, never to a refused IP literal (names are checked when the
/// resolver is asked for them).
pub fn redirect_policy(config: Arc<RegistryConfig>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("too many redirects");
        }
        match check_url(&config, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(Refused(format!("redirect to {why}"))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_ranges_and_their_ipv6_forms() {
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.100.100.200",
            "::1",
            "::",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(refused(ip).is_some(), "{bad} should be refused");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = good.parse().unwrap();
            assert_eq!(refused(ip), None, "{good} should be allowed");
        }
    }

    #[test]
    fn url_literals_are_checked_only_with_the_guard() {
        let mut c = RegistryConfig {
            ssrf_guard: true,
            ..RegistryConfig::default()
        };
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_url(&c, &u("http://127.0.0.1:5000/v2/")).is_err());
        assert!(check_url(&c, &u("http://[::1]/v2/")).is_err());
        assert!(check_url(&c, &u("https://registry.example.com/v2/")).is_ok());
        c.allow_private.insert("127.0.0.1".into());
        assert!(check_url(&c, &u("http://127.0.0.1:5000/v2/")).is_ok());
        c.ssrf_guard = false;
        assert!(check_url(&c, &u("http://10.0.0.1/")).is_ok());
    }
}
