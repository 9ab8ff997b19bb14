//! Container image references: parse, normalise and display them the way Docker does.
//!
//! We keep our own tokenizer (instead of only `oci_client::Reference`) because the
//! extractors need the byte ranges of the name, tag and digest inside the text they found.

use std::fmt;
use std::ops::Range;

use serde::Serialize;
use thiserror::Error;

/// The registry Docker uses when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;

/// Why a piece of text is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid reference {text:?}: repository name must be lowercase")]
    Uppercase { text: String },
    #[error("invalid reference {text:?}: empty path component")]
    EmptyComponent { text: String },
    #[error("invalid reference {text:?}: invalid character {ch:?} in repository name")]
    InvalidName { text: String, ch: char },
    #[error("invalid reference {text:?}: invalid registry host {host:?}")]
    InvalidHost { text: String, host: String },
    #[error("invalid reference {text:?}: invalid tag {tag:?}")]
    InvalidTag { text: String, tag: String },
    #[error("invalid reference {text:?}: {reason}")]
    InvalidDigest { text: String, reason: String },
    #[error("invalid reference {text:?}: repository name longer than 255 characters")]
    NameTooLong { text: String },
}

/// A content digest such as `sha256:4f1c…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: String,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:hex`, checking the hex length of the known algorithms.
    pub fn parse(text: &str) -> Result<Digest, String> {
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| format!("digest {text:?} has no algorithm (expected sha256:<hex>)"))?;
        let expected = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            "" => return Err(format!("digest {text:?} has an empty algorithm")),
            other => return Err(format!("unsupported digest algorithm {other:?}")),
        };
        if let Some(bad) = hex
            .chars()
            .find(|c| !(c.is_ascii_digit() || ('a'..='f').contains(c)))
        {
            return Err(format!(
                "digest {text:?} contains {bad:?}; expected lowercase hexadecimal"
            ));
        }
        if hex.len() != expected {
            return Err(format!(
                "{algorithm} digest must have {expected} hex characters, found {}",
                hex.len()
            ));
        }
        Ok(Digest {
            algorithm: algorithm.to_string(),
            hex: hex.to_string(),
        })
    }

    /// The digest of `bytes` with SHA-256.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest {
            algorithm: "sha256".into(),
            hex: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }

    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first `n` hex characters, as shown in PR titles (`4f1c2a9`).
    pub fn short(&self, n: usize) -> &str {
        &self.hex[..n.min(self.hex.len())]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Digest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port), normalised: `docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path, with `library/` added for official Docker Hub images.
    pub repository: String,
    /// The tag as written, or `latest` when neither tag nor digest was written.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Where each part of a reference sits inside the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The name as written (registry and repository).
    pub name: Range<usize>,
    /// The tag as written, without the `:`.
    pub tag: Option<Range<usize>>,
    /// The digest as written, without the `@`.
    pub digest: Option<Range<usize>>,
}

impl Reference {
    /// Parses and normalises an image reference.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        parse_with_parts(text).map(|(r, _)| r)
    }

    /// `registry/repository`, e.g. `docker.io/library/python`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short name a person would write: `python`, `grafana/grafana`, `ghcr.io/o/i`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Parses `text` and reports where its name, tag and digest are.
pub fn parse_with_parts(text: &str) -> Result<(Reference, Parts), ReferenceError> {
    if text.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let err_text = || text.to_string();

    let (before_digest, digest) = match text.find('@') {
        Some(at) => {
            let raw = &text[at + 1..];
            let digest = Digest::parse(raw).map_err(|reason| ReferenceError::InvalidDigest {
                text: err_text(),
                reason,
            })?;
            (&text[..at], Some((digest, at + 1..text.len())))
        }
        None => (text, None),
    };

    // A tag is whatever follows the last ':' when that ':' comes after the last '/';
    // otherwise the ':' belongs to a registry port.
    let last_slash = before_digest.rfind('/');
    let tag = match before_digest.rfind(':') {
        Some(colon) if last_slash.is_none_or(|s| colon > s) => {
            let raw = &before_digest[colon + 1..];
            if !valid_tag(raw) {
                return Err(ReferenceError::InvalidTag {
                    text: err_text(),
                    tag: raw.to_string(),
                });
            }
            Some((raw.to_string(), colon + 1..before_digest.len()))
        }
        _ => None,
    };
    let name_end = match &tag {
        Some((_, range)) => range.start - 1,
        None => before_digest.len(),
    };
    let name = &text[..name_end];
    if name.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong { text: err_text() });
    }

    let (registry, path) = split_registry(name);
    if let Some(host) = registry
        && !valid_host(host)
    {
        return Err(ReferenceError::InvalidHost {
            text: err_text(),
            host: host.to_string(),
        });
    }
    validate_path(path, text)?;

    let registry = match registry {
        None | Some("index.docker.io") | Some("registry-1.docker.io") => DOCKER_HUB.to_string(),
        Some(host) => host.to_string(),
    };
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    // Docker checks the length of the normalized name (`docker.io/library/…`), so a short
    // name can be too long once its registry is spelled out.
    if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong { text: err_text() });
    }

    let parts = Parts {
        name: 0..name_end,
        tag: tag.as_ref().map(|(_, r)| r.clone()),
        digest: digest.as_ref().map(|(_, r)| r.clone()),
    };
    let tag = match (tag, &digest) {
        (Some((t, _)), _) => Some(t),
        (None, None) => Some("latest".to_string()),
        (None, Some(_)) => None,
    };
    Ok((
        Reference {
            registry,
            repository,
            tag,
            digest: digest.map(|(d, _)| d),
        },
        parts,
    ))
}

/// Splits off the registry the way Docker does: the first component is a host when it
/// contains `.` or `:`, is `localhost`, or has uppercase letters (which a path may not).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn valid_host(host: &str) -> bool {
    let (hostname, port) = if let Some(rest) = host.strip_prefix('[') {
        // [IPv6]:port
        match rest.split_once(']') {
            Some((ip, tail)) => {
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match tail {
                    "" => return true,
                    t => match t.strip_prefix(':') {
                        Some(p) => return !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err())
    {
        return false;
    }
    !hostname.is_empty()
        && hostname.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn validate_path(path: &str, text: &str) -> Result<(), ReferenceError> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err(ReferenceError::EmptyComponent {
                text: text.to_string(),
            });
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                text: text.to_string(),
            });
        }
        if let Some(ch) = component.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        }) {
            return Err(ReferenceError::InvalidName {
                text: text.to_string(),
                ch,
            });
        }
        if !valid_path_component(component) {
            return Err(ReferenceError::InvalidName {
                text: text.to_string(),
                ch: component
                    .chars()
                    .find(|c| !c.is_ascii_alphanumeric())
                    .unwrap_or('?'),
            });
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_LENGTH_MAX
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:a866731a6b71c4a194a845d86e06568725e430ed21271324873d91eb9e2a0c81";

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn bare_name_is_docker_hub_library_latest() {
        let r = p("nginx");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/nginx");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.digest, None);
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.familiar_name(), "nginx");
    }

    #[test]
    fn docker_hub_aliases_are_the_same_image() {
        let a = p("docker.io/library/x:1");
        assert_eq!(p("index.docker.io/x:1"), a);
        assert_eq!(p("registry-1.docker.io/library/x:1"), a);
        assert_eq!(p("x:1"), a);
        assert_eq!(p("docker.io/x:1"), a);
    }

    #[test]
    fn user_repositories_on_docker_hub_keep_their_namespace() {
        let r = p("grafana/grafana:10.0");
        assert_eq!(r.repository, "grafana/grafana");
        assert_eq!(r.familiar_name(), "grafana/grafana");
    }

    #[test]
    fn hosts_with_ports_and_other_registries() {
        let r = p("localhost:5000/x");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "x")
        );
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = p("host:5000/a/b:v1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("host:5000", "a/b")
        );
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let r = p("ghcr.io/o/i:1.0");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("ghcr.io", "o/i")
        );
        let r = p("localhost/x");
        assert_eq!(r.registry, "localhost");
        let r = p("[::1]:5000/x:1");
        assert_eq!(r.registry, "[::1]:5000");
    }

    #[test]
    fn tag_and_digest_are_both_optional_but_digest_only_has_no_tag() {
        let r = p(&format!("python:3.12-slim@{D}"));
        assert_eq!(r.tag.as_deref(), Some("3.12-slim"));
        assert_eq!(r.digest.as_ref().map(|d| d.to_string()).as_deref(), Some(D));
        let r = p(&format!("python@{D}"));
        assert_eq!(r.tag, None);
        assert!(r.digest.is_some());
    }

    #[test]
    fn parts_point_at_the_written_text() {
        let text = format!("localhost:5000/a/b:1.2@{D}");
        let (_, parts) = parse_with_parts(&text).unwrap();
        assert_eq!(&text[parts.name.clone()], "localhost:5000/a/b");
        assert_eq!(&text[parts.tag.clone().unwrap()], "1.2");
        assert_eq!(&text[parts.digest.clone().unwrap()], D);
        let (_, parts) = parse_with_parts("localhost:5000/a").unwrap();
        assert_eq!(parts.tag, None);
        assert_eq!(parts.name, 0..16);
    }

    #[test]
    fn invalid_names_get_precise_errors() {
        assert!(matches!(
            Reference::parse("Nginx"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            Reference::parse("docker.io/Library/x"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            Reference::parse("a//b"),
            Err(ReferenceError::EmptyComponent { .. })
        ));
        assert!(matches!(
            Reference::parse("a/"),
            Err(ReferenceError::EmptyComponent { .. })
        ));
        assert!(matches!(Reference::parse(""), Err(ReferenceError::Empty)));
        assert!(matches!(
            Reference::parse(":tag"),
            Err(ReferenceError::Empty)
        ));
        assert!(matches!(
            Reference::parse("x@sha256:abc"),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        let upper = format!("x@{}", D.to_uppercase().replace("SHA256", "sha256"));
        assert!(matches!(
            Reference::parse(&upper),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        assert!(matches!(
            Reference::parse("x@md5:abc"),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        assert!(matches!(
            Reference::parse("x:-bad"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(matches!(
            Reference::parse("x:"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(matches!(
            Reference::parse("a..b/c"),
            Err(ReferenceError::InvalidHost { .. })
        ));
        assert!(matches!(
            Reference::parse("host:99999/c"),
            Err(ReferenceError::InvalidHost { .. })
        ));
        assert!(matches!(
            Reference::parse("a b"),
            Err(ReferenceError::InvalidName { .. })
        ));
        assert!(matches!(
            Reference::parse("-a"),
            Err(ReferenceError::InvalidName { .. })
        ));
        assert!(matches!(
            Reference::parse("a___b"),
            Err(ReferenceError::InvalidName { .. })
        ));
        let long = "a".repeat(256);
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::NameTooLong { .. })
        ));
        // Found by fuzzing: the limit is on the normalized name, as in Docker, so a
        // Docker Hub name of 240 characters is too long once `docker.io/library/` is added.
        let short = "a".repeat(240);
        assert!(matches!(
            Reference::parse(&short),
            Err(ReferenceError::NameTooLong { .. })
        ));
        p(&format!("example.com/{}", "a".repeat(243)));
        let e = Reference::parse("x@sha256:abc").unwrap_err().to_string();
        assert!(e.contains("64 hex characters"), "{e}");
    }

    #[test]
    fn separators_in_paths() {
        p("a_b/c__d/e-f/g--h/i.j");
        assert!(Reference::parse("a/b_").is_err());
        assert!(Reference::parse("a/.b").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse_with_parts(&s);
        }

        #[test]
        fn display_round_trips(
            host in proptest::option::of("[a-z][a-z0-9]{0,8}\\.(io|com)(:[1-9][0-9]{0,3})?"),
            path in "[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,2}",
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        ) {
            let mut text = String::new();
            if let Some(h) = &host { text.push_str(h); text.push('/'); }
            text.push_str(&path);
            if let Some(t) = &tag { text.push(':'); text.push_str(t); }
            let r = Reference::parse(&text).unwrap();
            let again = Reference::parse(&r.to_string()).unwrap();
            proptest::prop_assert_eq!(r, again);
        }
    }
}
