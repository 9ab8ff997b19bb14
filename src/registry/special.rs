//! Which IP addresses the SSRF guard refuses: IANA's special-purpose address registries as
//! one table, judged by the most specific block that holds an address.
//!
//! Source: the IANA IPv4 Special-Purpose Address Registry
//! (<https://www.iana.org/assignments/iana-ipv4-special-registry/>) and the IANA IPv6
//! Special-Purpose Address Registry
//! (<https://www.iana.org/assignments/iana-ipv6-special-registry/>), 25 records each, the
//! newest entry being `100:0:0:1::/64` (RFC 9780, 2025-04); transcribed 2026-12-03. Every
//! record is here, with its "Globally Reachable" column as the verdict: a block that is not
//! globally reachable (False, or a terminated record) is refused; True is allowed. The
//! records IANA marks N/A (6to4, Teredo) and the IPv4-mapped and NAT64 prefixes carry an
//! IPv4 address, which is judged instead. Beyond those registries, from the IPv4 Multicast
//! and IPv6 Address Space registries: multicast (`224.0.0.0/4`, `ff00::/8`), the deprecated
//! site-local `fec0::/10`, the rest of the reserved `::/8` (IPv4-compatible `::a.b.c.d`,
//! IPv4-translated `::ffff:0:a.b.c.d`) and anything outside global unicast `2000::/3`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a block means for the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Globally reachable: allowed.
    Global,
    /// Not globally reachable (or reserved, deprecated): refused.
    Local,
    /// Carries an IPv4 address, which is judged instead.
    Embeds(Embedding),
}

/// Where an IPv6 block keeps its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// The last 32 bits (`::ffff:a.b.c.d`, `64:ff9b::a.b.c.d`).
    Low32,
    /// 6to4 `2002:AABB:CCDD::/48`: bits 16–48.
    SixToFour,
    /// Teredo `2001:0:SSSS:SSSS:flags:port:CCCC:CCCC`: the server in bits 32–64, the client
    /// in the last 32 bits, inverted. Both are judged.
    Teredo,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Block<A> {
    pub addr: A,
    pub prefix: u8,
    pub name: &'static str,
    pub source: &'static str,
    pub reach: Reach,
}

const fn v4(
    a: [u8; 4],
    prefix: u8,
    name: &'static str,
    source: &'static str,
    reach: Reach,
) -> Block<Ipv4Addr> {
    Block {
        addr: Ipv4Addr::new(a[0], a[1], a[2], a[3]),
        prefix,
        name,
        source,
        reach,
    }
}

const fn v6(
    s: [u16; 8],
    prefix: u8,
    name: &'static str,
    source: &'static str,
    reach: Reach,
) -> Block<Ipv6Addr> {
    Block {
        addr: Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
        name,
        source,
        reach,
    }
}

use Reach::{Embeds, Global, Local};

/// IANA IPv4 Special-Purpose Address Registry (all 25 records; `192.0.0.170/32,
/// 192.0.0.171/32` is one record), then multicast.
pub static IPV4: &[Block<Ipv4Addr>] = &[
    v4([0, 0, 0, 0], 8, "\"This network\"", "RFC 791", Local),
    v4(
        [0, 0, 0, 0],
        32,
        "\"This host on this network\"",
        "RFC 1122",
        Local,
    ),
    v4([10, 0, 0, 0], 8, "Private-Use", "RFC 1918", Local),
    v4(
        [100, 64, 0, 0],
        10,
        "Shared Address Space",
        "RFC 6598",
        Local,
    ),
    v4([127, 0, 0, 0], 8, "Loopback", "RFC 1122", Local),
    v4([169, 254, 0, 0], 16, "Link Local", "RFC 3927", Local),
    v4([172, 16, 0, 0], 12, "Private-Use", "RFC 1918", Local),
    v4(
        [192, 0, 0, 0],
        24,
        "IETF Protocol Assignments",
        "RFC 6890",
        Local,
    ),
    v4(
        [192, 0, 0, 0],
        29,
        "IPv4 Service Continuity Prefix",
        "RFC 7335",
        Local,
    ),
    v4([192, 0, 0, 8], 32, "IPv4 dummy address", "RFC 7600", Local),
    v4(
        [192, 0, 0, 9],
        32,
        "Port Control Protocol Anycast",
        "RFC 7723",
        Global,
    ),
    v4(
        [192, 0, 0, 10],
        32,
        "Traversal Using Relays around NAT Anycast",
        "RFC 8155",
        Global,
    ),
    v4(
        [192, 0, 0, 170],
        32,
        "NAT64/DNS64 Discovery",
        "RFC 8880",
        Local,
    ),
    v4(
        [192, 0, 0, 171],
        32,
        "NAT64/DNS64 Discovery",
        "RFC 8880",
        Local,
    ),
    v4(
        [192, 0, 2, 0],
        24,
        "Documentation (TEST-NET-1)",
        "RFC 5737",
        Local,
    ),
    v4([192, 31, 196, 0], 24, "AS112-v4", "RFC 7535", Global),
    v4([192, 52, 193, 0], 24, "AMT", "RFC 7450", Global),
    v4(
        [192, 88, 99, 0],
        24,
        "Deprecated (6to4 Relay Anycast)",
        "RFC 7526",
        Local,
    ),
    v4(
        [192, 88, 99, 2],
        32,
        "6a44-relay anycast address",
        "RFC 6751",
        Local,
    ),
    v4([192, 168, 0, 0], 16, "Private-Use", "RFC 1918", Local),
    v4(
        [192, 175, 48, 0],
        24,
        "Direct Delegation AS112 Service",
        "RFC 7534",
        Global,
    ),
    v4([198, 18, 0, 0], 15, "Benchmarking", "RFC 2544", Local),
    v4(
        [198, 51, 100, 0],
        24,
        "Documentation (TEST-NET-2)",
        "RFC 5737",
        Local,
    ),
    v4(
        [203, 0, 113, 0],
        24,
        "Documentation (TEST-NET-3)",
        "RFC 5737",
        Local,
    ),
    v4([240, 0, 0, 0], 4, "Reserved", "RFC 1112", Local),
    v4(
        [255, 255, 255, 255],
        32,
        "Limited Broadcast",
        "RFC 8190",
        Local,
    ),
    // IANA IPv4 Multicast Address Space Registry: not a unicast host.
    v4([224, 0, 0, 0], 4, "Multicast", "RFC 5771", Local),
];

/// IANA IPv6 Special-Purpose Address Registry (all 25 records), then the IPv6 Address Space
/// registry's reserved, deprecated and multicast blocks.
pub static IPV6: &[Block<Ipv6Addr>] = &[
    v6(
        [0, 0, 0, 0, 0, 0, 0, 1],
        128,
        "Loopback Address",
        "RFC 4291",
        Local,
    ),
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        128,
        "Unspecified Address",
        "RFC 4291",
        Local,
    ),
    v6(
        [0, 0, 0, 0, 0, 0xffff, 0, 0],
        96,
        "IPv4-mapped Address",
        "RFC 4291",
        Embeds(Embedding::Low32),
    ),
    v6(
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-IPv6 Translat.",
        "RFC 6052",
        Embeds(Embedding::Low32),
    ),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "IPv4-IPv6 Translat. (local use)",
        "RFC 8215",
        Local,
    ),
    v6(
        [0x100, 0, 0, 0, 0, 0, 0, 0],
        64,
        "Discard-Only Address Block",
        "RFC 6666",
        Local,
    ),
    v6(
        [0x100, 0, 0, 1, 0, 0, 0, 0],
        64,
        "Dummy IPv6 Prefix",
        "RFC 9780",
        Local,
    ),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF Protocol Assignments",
        "RFC 2928",
        Local,
    ),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        32,
        "TEREDO",
        "RFC 4380",
        Embeds(Embedding::Teredo),
    ),
    v6(
        [0x2001, 1, 0, 0, 0, 0, 0, 1],
        128,
        "Port Control Protocol Anycast",
        "RFC 7723",
        Global,
    ),
    v6(
        [0x2001, 1, 0, 0, 0, 0, 0, 2],
        128,
        "Traversal Using Relays around NAT Anycast",
        "RFC 8155",
        Global,
    ),
    v6(
        [0x2001, 1, 0, 0, 0, 0, 0, 3],
        128,
        "DNS-SD Service Registration Protocol Anycast",
        "RFC 9665",
        Global,
    ),
    v6(
        [0x2001, 2, 0, 0, 0, 0, 0, 0],
        48,
        "Benchmarking",
        "RFC 5180",
        Local,
    ),
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, "AMT", "RFC 7450", Global),
    v6(
        [0x2001, 4, 0x112, 0, 0, 0, 0, 0],
        48,
        "AS112-v6",
        "RFC 7535",
        Global,
    ),
    v6(
        [0x2001, 0x10, 0, 0, 0, 0, 0, 0],
        28,
        "Deprecated (previously ORCHID)",
        "RFC 4843",
        Local,
    ),
    v6(
        [0x2001, 0x20, 0, 0, 0, 0, 0, 0],
        28,
        "ORCHIDv2",
        "RFC 7343",
        Global,
    ),
    v6(
        [0x2001, 0x30, 0, 0, 0, 0, 0, 0],
        28,
        "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
        "RFC 9374",
        Global,
    ),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "Documentation",
        "RFC 3849",
        Local,
    ),
    v6(
        [0x2002, 0, 0, 0, 0, 0, 0, 0],
        16,
        "6to4",
        "RFC 3056",
        Embeds(Embedding::SixToFour),
    ),
    v6(
        [0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0],
        48,
        "Direct Delegation AS112 Service",
        "RFC 7534",
        Global,
    ),
    v6(
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "Documentation",
        "RFC 9637",
        Local,
    ),
    v6(
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "Segment Routing (SRv6) SIDs",
        "RFC 9602",
        Local,
    ),
    v6(
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        7,
        "Unique-Local",
        "RFC 4193",
        Local,
    ),
    v6(
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        "Link-Local Unicast",
        "RFC 4291",
        Local,
    ),
    // IANA IPv6 Address Space registry.
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        8,
        "Reserved by IETF (IPv4-compatible, IPv4-translated)",
        "RFC 4291",
        Local,
    ),
    v6(
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "Deprecated site-local",
        "RFC 3879",
        Local,
    ),
    v6(
        [0xff00, 0, 0, 0, 0, 0, 0, 0],
        8,
        "Multicast",
        "RFC 4291",
        Local,
    ),
    v6(
        [0x2000, 0, 0, 0, 0, 0, 0, 0],
        3,
        "Global Unicast",
        "RFC 4291",
        Global,
    ),
];

/// Why an address is refused: the block it is in, and for an address that carries an
/// IPv4 address, the block that one is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub block: String,
    pub name: &'static str,
    pub source: &'static str,
    /// For embeddings: the IPv4 address carried and why it is refused.
    pub inner: Option<(Ipv4Addr, Box<Refusal>)>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.block, self.source)?;
        if let Some((ip, why)) = &self.inner {
            write!(f, " carrying {ip}: {why}")?;
        }
        Ok(())
    }
}

fn contains4(b: &Block<Ipv4Addr>, ip: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(b.prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(b.addr) & mask
}

fn contains6(b: &Block<Ipv6Addr>, ip: Ipv6Addr) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(b.prefix))
        .unwrap_or(0);
    u128::from(ip) & mask == u128::from(b.addr) & mask
}

/// The most specific block holding `ip`.
pub fn block_of_v4(ip: Ipv4Addr) -> Option<&'static Block<Ipv4Addr>> {
    IPV4.iter()
        .filter(|b| contains4(b, ip))
        .max_by_key(|b| b.prefix)
}

/// The most specific block holding `ip`.
pub fn block_of_v6(ip: Ipv6Addr) -> Option<&'static Block<Ipv6Addr>> {
    IPV6.iter()
        .filter(|b| contains6(b, ip))
        .max_by_key(|b| b.prefix)
}

/// Why `ip` must not be contacted, or `None` when it is globally reachable.
pub fn refused(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

pub fn refused_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let b = block_of_v4(ip)?;
    match b.reach {
        Global | Embeds(_) => None,
        Local => Some(Refusal {
            block: format!("{}/{}", b.addr, b.prefix),
            name: b.name,
            source: b.source,
            inner: None,
        }),
    }
}

pub fn refused_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let refusal = |b: &Block<Ipv6Addr>, inner| Refusal {
        block: format!("{}/{}", b.addr, b.prefix),
        name: b.name,
        source: b.source,
        inner,
    };
    let Some(b) = block_of_v6(ip) else {
        // Outside 2000::/3 and every listed block: reserved by the IETF.
        return Some(Refusal {
            block: "outside 2000::/3".into(),
            name: "Reserved by IETF",
            source: "RFC 4291",
            inner: None,
        });
    };
    let bits = u128::from(ip);
    let carried: Vec<Ipv4Addr> = match b.reach {
        Global => return None,
        Local => return Some(refusal(b, None)),
        Embeds(Embedding::Low32) => vec![Ipv4Addr::from(bits as u32)],
        Embeds(Embedding::SixToFour) => vec![Ipv4Addr::from((bits >> 80) as u32)],
        Embeds(Embedding::Teredo) => vec![
            Ipv4Addr::from((bits >> 64) as u32),
            Ipv4Addr::from(!(bits as u32)),
        ],
    };
    carried
        .into_iter()
        .find_map(|v4| refused_v4(v4).map(|why| refusal(b, Some((v4, Box::new(why))))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last4(b: &Block<Ipv4Addr>) -> Ipv4Addr {
        let host = u32::MAX.checked_shr(u32::from(b.prefix)).unwrap_or(0);
        Ipv4Addr::from(u32::from(b.addr) | host)
    }

    fn last6(b: &Block<Ipv6Addr>) -> Ipv6Addr {
        let host = u128::MAX.checked_shr(u32::from(b.prefix)).unwrap_or(0);
        Ipv6Addr::from(u128::from(b.addr) | host)
    }

    /// An address inside `b` that no more specific block claims (its first or last one, or
    /// a few steps in from either end).
    fn own_address<A: Copy>(
        candidates: impl IntoIterator<Item = A>,
        owner: impl Fn(A) -> bool,
    ) -> Option<A> {
        candidates.into_iter().find(|a| owner(*a))
    }

    #[test]
    fn the_table_holds_every_iana_record() {
        // 25 records each (one IPv4 record names two /32s), plus what the guard adds.
        assert_eq!(IPV4.len(), 25 + 1 + 1);
        assert_eq!(IPV6.len(), 25 + 4);
        for b in IPV4 {
            assert!(b.prefix <= 32, "{b:?}");
            assert_eq!(
                u32::from(b.addr) & !u32::MAX.checked_shl(32 - u32::from(b.prefix)).unwrap_or(0),
                0,
                "{b:?} has host bits"
            );
        }
        for b in IPV6 {
            assert!(b.prefix <= 128, "{b:?}");
            assert_eq!(
                u128::from(b.addr)
                    & !u128::MAX
                        .checked_shl(128 - u32::from(b.prefix))
                        .unwrap_or(0),
                0,
                "{b:?} has host bits"
            );
        }
    }

    #[test]
    fn every_ipv4_entry_is_judged_by_its_reach_at_both_ends() {
        for b in IPV4 {
            let first = b.addr;
            let last = last4(b);
            let near = |ip: Ipv4Addr, d: i64| Ipv4Addr::from((i64::from(u32::from(ip)) + d) as u32);
            let addr = own_address(
                [
                    first,
                    last,
                    near(first, 1),
                    near(last, -1),
                    near(first, 11),
                    near(last, -11),
                ],
                |a| contains4(b, a) && std::ptr::eq(block_of_v4(a).unwrap(), b),
            )
            .unwrap_or_else(|| panic!("no address of its own in {b:?}"));
            let verdict = refused_v4(addr);
            match b.reach {
                Local => {
                    let why =
                        verdict.unwrap_or_else(|| panic!("{addr} ({}) should be refused", b.name));
                    assert_eq!(why.name, b.name);
                }
                Global => assert_eq!(verdict, None, "{addr} ({}) is globally reachable", b.name),
                Embeds(_) => unreachable!("IPv4 blocks embed nothing"),
            }
            // Both ends of a refused block are refused (whatever sub-block claims them).
            if b.reach == Local
                && !IPV4
                    .iter()
                    .any(|o| o.prefix > b.prefix && o.reach == Global && contains4(b, o.addr))
            {
                assert!(
                    refused_v4(first).is_some() && refused_v4(last).is_some(),
                    "{b:?}"
                );
            }
        }
    }

    #[test]
    fn every_ipv6_entry_is_judged_by_its_reach_or_the_ipv4_it_carries() {
        let private = Ipv4Addr::new(10, 1, 2, 3);
        let public = Ipv4Addr::new(8, 8, 4, 4);
        for b in IPV6 {
            let first = b.addr;
            let last = last6(b);
            let near = |ip: Ipv6Addr, d: i128| Ipv6Addr::from((u128::from(ip) as i128 + d) as u128);
            let addr = own_address(
                [
                    first,
                    last,
                    near(first, 1),
                    near(last, -1),
                    near(first, 1 << 40),
                    near(last, -(1 << 40)),
                ],
                |a| contains6(b, a) && std::ptr::eq(block_of_v6(a).unwrap(), b),
            )
            .unwrap_or_else(|| panic!("no address of its own in {b:?}"));
            match b.reach {
                Local => {
                    let why = refused_v6(addr)
                        .unwrap_or_else(|| panic!("{addr} ({}) should be refused", b.name));
                    assert_eq!(why.name, b.name, "{addr}");
                }
                Global => assert_eq!(
                    refused_v6(addr),
                    None,
                    "{addr} ({}) is globally reachable",
                    b.name
                ),
                Embeds(e) => {
                    let with = |v4: Ipv4Addr| {
                        let base = u128::from(b.addr);
                        let v = u128::from(u32::from(v4));
                        Ipv6Addr::from(match e {
                            Embedding::Low32 => base | v,
                            Embedding::SixToFour => base | (v << 80),
                            // A public Teredo server; the client inverted in the low bits.
                            Embedding::Teredo => {
                                base | (u128::from(u32::from(public)) << 64)
                                    | u128::from(!u32::from(v4))
                            }
                        })
                    };
                    let bad = with(private);
                    let why = refused_v6(bad).unwrap_or_else(|| panic!("{bad} carries {private}"));
                    assert_eq!(why.name, b.name);
                    assert_eq!(
                        why.inner.as_ref().map(|(ip, _)| *ip),
                        Some(private),
                        "{bad}"
                    );
                    assert_eq!(
                        refused_v6(with(public)),
                        None,
                        "{} carries {public}",
                        with(public)
                    );
                }
            }
        }
    }

    #[test]
    fn the_ranges_the_issue_reached_are_refused() {
        for bad in [
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.254",
            "192.0.0.1",
            "192.0.0.171",
            "100.64.0.1",
            "100.127.255.254",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.251",
            "0.1.2.3",
            // IPv4-translated ::ffff:0:a.b.c.d, whatever it carries.
            "::ffff:0:7f00:1",
            "::ffff:0:808:808",
            // IPv4-compatible (deprecated).
            "::7f00:1",
            "::ffff:10.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::8.8.8.8",
            "64:ff9b:1:ffff::a00:1",
            // 6to4 of 10.0.0.1 and of 127.0.0.1.
            "2002:a00:1::",
            "2002:7f00:1:1::1",
            // Teredo: server 65.54.227.120, client 10.0.0.1 (inverted f5ff:fffe).
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
            // Teredo with a private server.
            "2001:0:a00:1:8000:63bf:f7f7:f7f7",
            "2001:db8::1",
            "3fff::1",
            "5f00::1",
            "fec0::1",
            "ff02::1",
            "4000::1",
            "100::1",
            "100:0:0:1::1",
            "2001:2::1",
            "2001:10::1",
            "2001:4::1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(refused(ip).is_some(), "{bad} should be refused");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "192.0.0.9",
            "192.31.196.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            "2001:3::1",
            "2001:20::1",
            "2620:4f:8000::1",
        ] {
            let ip: IpAddr = good.parse().unwrap();
            assert_eq!(refused(ip), None, "{good} should be allowed");
        }
        let why = refused("64:ff9b::a00:1".parse().unwrap()).unwrap();
        assert_eq!(
            why.to_string(),
            "IPv4-IPv6 Translat. (64:ff9b::/96, RFC 6052) carrying 10.0.0.1: Private-Use (10.0.0.0/8, RFC 1918)"
        );
    }
}
