//! Operator settings for talking to registries: plain-HTTP hosts, mirrors, the SSRF guard,
//! credentials (Docker `config.json`), extra CA roots, limits and timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use thiserror::Error;

use crate::reference::DOCKER_HUB;

/// Where Docker Hub's registry API actually lives (`docker.io` is only the name in files).
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Docker Hub's token service: a credential for `docker.io` may go there.
pub const DOCKER_HUB_AUTH: &str = "auth.docker.io";

/// Name resolution, replaceable so tests can make a name resolve to any address.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system resolver (getaddrinfo through tokio).
#[derive(Debug, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A password or token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Credentials for one registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: Secret,
    /// Token-realm hosts other than the registry itself that may receive these credentials.
    pub token_hosts: BTreeSet<String>,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    DockerConfig { path: PathBuf, message: String },
    #[error("{var}: {message}")]
    Env { var: &'static str, message: String },
    #[error("{0}")]
    Client(String),
}

/// How the resolver behaves. `Default` is the local CLI: no SSRF guard, no credentials.
#[derive(Clone)]
pub struct RegistryConfig {
    /// Hosts (`host` or `host:port`) spoken to over plain HTTP. Everything else is HTTPS.
    pub insecure: BTreeSet<String>,
    /// Registry name in files → host the lookups go to (`docker.io` → `mirror.corp:5000`).
    pub mirrors: BTreeMap<String, String>,
    /// Refuse private, loopback, link-local and unspecified addresses (server mode).
    pub ssrf_guard: bool,
    /// Hosts exempt from the SSRF guard: `host:port` exempts that port only, a bare `host`
    /// every port (see [`RegistryConfig::private_allowed_at`]).
    pub allow_private: BTreeSet<String>,
    /// Credentials by registry host (`docker.io` for Docker Hub).
    pub credentials: BTreeMap<String, Credential>,
    /// Extra trusted roots (PEM), on top of the system's.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Requests in flight to one host at most.
    pub per_host_limit: usize,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// The longest `Retry-After` honoured; a longer one gives up for this cycle at once.
    pub retry_after_cap: Duration,
    /// Retries after a 429/503 before giving up for this cycle.
    pub max_retries: u32,
    /// First backoff when the server names no `Retry-After`; doubles per retry, with jitter.
    pub backoff_base: Duration,
    /// How long a tag's answer is reused (the "cycle"): see the module docs.
    pub cache_ttl: Duration,
    /// Entries each registry cache (tags, digests, manifests, configs, metadata, tokens)
    /// holds at most; past it, the least recently used go.
    pub cache_entries: usize,
    /// Estimated bytes each registry cache holds at most.
    pub cache_bytes: usize,
    /// Name resolution; `None` is the system resolver.
    pub lookup: Option<Arc<dyn Lookup>>,
    pub user_agent: String,
    /// Manifest GETs (pulls) allowed per registry host in a sliding window, never exceeded.
    pub pull_budgets: BTreeMap<String, super::budget::Budget>,
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("insecure", &self.insecure)
            .field("mirrors", &self.mirrors)
            .field("ssrf_guard", &self.ssrf_guard)
            .field("allow_private", &self.allow_private)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .field("per_host_limit", &self.per_host_limit)
            .field("cache_ttl", &self.cache_ttl)
            .field("pull_budgets", &self.pull_budgets)
            .field("cache_entries", &self.cache_entries)
            .field("cache_bytes", &self.cache_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: BTreeSet::new(),
            mirrors: BTreeMap::new(),
            ssrf_guard: false,
            allow_private: BTreeSet::new(),
            credentials: BTreeMap::new(),
            extra_roots_pem: Vec::new(),
            per_host_limit: 8,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            retry_after_cap: Duration::from_secs(30),
            max_retries: 2,
            backoff_base: Duration::from_millis(500),
            cache_ttl: Duration::from_secs(300),
            cache_entries: 20_000,
            cache_bytes: 16 * 1024 * 1024,
            lookup: None,
            user_agent: concat!("digestif/", env!("CARGO_PKG_VERSION")).to_string(),
            pull_budgets: BTreeMap::new(),
        }
    }
}

/// Environment variables the operator sets.
pub const ENV_INSECURE: &str = "DIGESTIF_INSECURE_REGISTRIES";
pub const ENV_MIRRORS: &str = "DIGESTIF_REGISTRY_MIRRORS";
pub const ENV_ALLOW_PRIVATE: &str = "DIGESTIF_ALLOW_PRIVATE_REGISTRIES";
pub const ENV_CA_FILE: &str = "DIGESTIF_REGISTRY_CA_FILE";
pub const ENV_TOKEN_HOSTS: &str = "DIGESTIF_REGISTRY_TOKEN_HOSTS";
pub use super::budget::ENV_PULL_BUDGET;
pub const ENV_CACHE_ENTRIES: &str = "DIGESTIF_REGISTRY_CACHE_ENTRIES";
pub const ENV_CACHE_MB: &str = "DIGESTIF_REGISTRY_CACHE_MB";

impl RegistryConfig {
    /// Settings from the process environment and the Docker config file.
    pub fn from_env() -> Result<RegistryConfig, ConfigError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let docker = std::env::var_os("DOCKER_CONFIG").map(PathBuf::from);
        Self::from_vars(|k| std::env::var(k).ok(), docker, home)
    }

    /// Settings from `var` (an environment), `DOCKER_CONFIG` and `HOME`.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        docker_config_dir: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> Result<RegistryConfig, ConfigError> {
        let mut c = RegistryConfig::default();
        let list = |name: &str| -> Vec<String> {
            var(name)
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        c.insecure.extend(list(ENV_INSECURE));
        c.allow_private.extend(list(ENV_ALLOW_PRIVATE));
        let number = |name: &'static str| -> Result<Option<usize>, ConfigError> {
            match var(name).map(|v| v.trim().to_string()) {
                Some(v) if !v.is_empty() => match v.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(ConfigError::Env {
                        var: name,
                        message: format!("{v:?} is not a positive whole number"),
                    }),
                },
                _ => Ok(None),
            }
        };
        if let Some(n) = number(ENV_CACHE_ENTRIES)? {
            c.cache_entries = n;
        }
        if let Some(mb) = number(ENV_CACHE_MB)? {
            c.cache_bytes = mb.saturating_mul(1024 * 1024);
        }
        for pair in list(ENV_MIRRORS) {
            let (from, to) = pair.split_once('=').ok_or_else(|| ConfigError::Env {
                var: ENV_MIRRORS,
                message: format!("{pair:?} is not REGISTRY=MIRROR"),
            })?;
            c.mirrors
                .insert(normalize_host(from.trim()), to.trim().to_string());
        }
        if let Some(path) = var(ENV_CA_FILE).filter(|p| !p.is_empty()) {
            let pem = std::fs::read(&path).map_err(|source| ConfigError::Read {
                path: path.clone().into(),
                source,
            })?;
            c.extra_roots_pem.push(pem);
        }
        let path = docker_config_dir
            .map(|d| d.join("config.json"))
            .or_else(|| home.map(|h| h.join(".docker/config.json")));
        if let Some(path) = path
            && path.exists()
        {
            c.credentials = load_docker_config(&path)?;
        }
        for pair in list(ENV_TOKEN_HOSTS) {
            let (registry, token_host) = pair.split_once('=').ok_or_else(|| ConfigError::Env {
                var: ENV_TOKEN_HOSTS,
                message: format!("{pair:?} is not REGISTRY=TOKEN_HOST"),
            })?;
            if let Some(cred) = c.credentials.get_mut(&normalize_host(registry.trim())) {
                cred.token_hosts.insert(token_host.trim().to_string());
            }
        }
        c.pull_budgets =
            super::budget::parse(&var(ENV_PULL_BUDGET).unwrap_or_default()).map_err(|message| {
                ConfigError::Env {
                    var: ENV_PULL_BUDGET,
                    message,
                }
            })?;
        if !c.pull_budgets.contains_key(DOCKER_HUB) && !c.mirrors.contains_key(DOCKER_HUB) {
            let authenticated = c.credentials.contains_key(DOCKER_HUB);
            c.pull_budgets.insert(
                DOCKER_HUB.to_string(),
                super::budget::docker_hub_default(authenticated),
            );
        }
        Ok(c)
    }

    /// The limits of each registry cache.
    pub(crate) fn cache_limits(&self) -> super::cache::Limits {
        super::cache::Limits {
            entries: self.cache_entries,
            bytes: self.cache_bytes,
        }
    }

    /// The host lookups for `registry` (as named in files) go to.
    pub fn api_host(&self, registry: &str) -> String {
        if let Some(m) = self.mirrors.get(registry) {
            return m.clone();
        }
        if registry == DOCKER_HUB {
            DOCKER_HUB_API.to_string()
        } else {
            registry.to_string()
        }
    }

    /// Whether `host` (`host:port`) is spoken to over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.insecure.contains(host)
    }

    /// The credential that belongs to `api_host`, if any.
    pub fn credential_for(&self, api_host: &str) -> Option<&Credential> {
        self.credentials.get(&normalize_host(api_host))
    }

    /// The operator's exemptions from the SSRF guard: `DIGESTIF_ALLOW_PRIVATE_REGISTRIES`
    /// and the mirrors, as (host, port); `None` is every port.
    fn exemptions(&self) -> impl Iterator<Item = (String, Option<u16>)> + '_ {
        self.allow_private
            .iter()
            .chain(self.mirrors.values())
            .map(|entry| split_host_port(entry))
    }

    /// Whether the SSRF guard lets `host` on `port` reach private addresses: an entry with
    /// a port allows that port only, a bare host every port.
    pub fn private_allowed_at(&self, host: &str, port: u16) -> bool {
        let host = bare_host(host);
        self.exemptions()
            .any(|(h, p)| h == host && p.is_none_or(|p| p == port))
    }

    /// Whether some port of `host` is exempt (the name may then resolve to a private
    /// address, so only requests to an exempt port may use that answer).
    pub fn private_allowed_somewhere(&self, host: &str) -> bool {
        let host = bare_host(host);
        self.exemptions().any(|(h, _)| h == host)
    }

    /// Whether every port of `host` is exempt (a bare entry).
    pub fn private_allowed_everywhere(&self, host: &str) -> bool {
        let host = bare_host(host);
        self.exemptions().any(|(h, p)| h == host && p.is_none())
    }
}

/// A host as compared by the guard: lower case, IPv6 literals without brackets.
fn bare_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// `host:port`, `[v6]:port`, `host`, `v6` → (host, port).
pub fn split_host_port(entry: &str) -> (String, Option<u16>) {
    let entry = entry.trim();
    if let Some(rest) = entry.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').unwrap_or((rest, ""));
        let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
        return (bare_host(h), port);
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (bare_host(h), Some(port)),
            Err(_) => (bare_host(entry), None),
        },
        _ => (bare_host(entry), None),
    }
}

/// `host:port` → `host` (IPv6 literals in brackets keep their brackets off).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

/// A `config.json` key (`https://index.docker.io/v1/`, `ghcr.io`, `http://h:5000`) as the
/// host name references use; Docker Hub's several names all become `docker.io`.
pub fn normalize_host(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | DOCKER_HUB_API | DOCKER_HUB => DOCKER_HUB.to_string(),
        _ => host,
    }
}

/// Reads `auths` of a Docker `config.json`: `auth` (base64 `user:password`) or
/// `username`/`password`. Credential helpers are not run.
pub fn load_docker_config(path: &Path) -> Result<BTreeMap<String, Credential>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_docker_config(&text).map_err(|message| ConfigError::DockerConfig {
        path: path.to_path_buf(),
        message,
    })
}

pub fn parse_docker_config(text: &str) -> Result<BTreeMap<String, Credential>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    let file: File = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut out = BTreeMap::new();
    for (key, e) in file.auths {
        let (username, password) = match (e.auth.filter(|a| !a.is_empty()), e.username) {
            (Some(auth), _) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| format!("auths.{key}.auth is not base64"))?;
                let raw =
                    String::from_utf8(raw).map_err(|_| format!("auths.{key}.auth is not UTF-8"))?;
                let (u, p) = raw
                    .split_once(':')
                    .ok_or_else(|| format!("auths.{key}.auth is not user:password"))?;
                (u.to_string(), p.to_string())
            }
            (None, Some(u)) => (u, e.password.unwrap_or_default()),
            // An entry with neither is how Docker records a credential helper's hosts.
            (None, None) => continue,
        };
        let host = normalize_host(&key);
        let mut token_hosts = BTreeSet::new();
        if host == DOCKER_HUB {
            token_hosts.insert(DOCKER_HUB_AUTH.to_string());
        }
        out.insert(
            host,
            Credential {
                username,
                password: Secret::new(password),
                token_hosts,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_auth_and_username_forms() {
        let text = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "registry.example.com:5000": {"username": "bob", "password": "pw"},
            "helper.example.com": {}
        }, "credsStore": "desktop"}"#;
        let c = parse_docker_config(text).unwrap();
        assert_eq!(c.len(), 2);
        let hub = &c["docker.io"];
        assert_eq!(
            (hub.username.as_str(), hub.password.expose()),
            ("user", "pass")
        );
        assert!(hub.token_hosts.contains(DOCKER_HUB_AUTH));
        assert_eq!(c["registry.example.com:5000"].password.expose(), "pw");
        assert!(format!("{:?}", c).contains("***"));
        assert!(!format!("{:?}", c).contains("pass\""));
        assert!(parse_docker_config(r#"{"auths":{"x":{"auth":"!!"}}}"#).is_err());
    }

    #[test]
    fn env_settings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"reg.example.com":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let vars = |k: &str| match k {
            ENV_INSECURE => Some("a:5000, b".to_string()),
            ENV_MIRRORS => Some("docker.io=mirror.corp:5000".to_string()),
            ENV_ALLOW_PRIVATE => Some("internal.corp".to_string()),
            ENV_TOKEN_HOSTS => Some("reg.example.com=auth.example.com".to_string()),
            ENV_CACHE_ENTRIES => Some("500".to_string()),
            ENV_CACHE_MB => Some(" 2 ".to_string()),
            _ => None,
        };
        let c = RegistryConfig::from_vars(vars, Some(dir.path().into()), None).unwrap();
        assert!(c.is_insecure("a:5000") && c.is_insecure("b") && !c.is_insecure("a"));
        assert_eq!((c.cache_entries, c.cache_bytes), (500, 2 * 1024 * 1024));
        for bad in ["0", "-1", "lots"] {
            let e = RegistryConfig::from_vars(
                |k| (k == ENV_CACHE_MB).then(|| bad.to_string()),
                None,
                None,
            )
            .unwrap_err();
            assert!(e.to_string().starts_with(ENV_CACHE_MB), "{e}");
        }
        assert_eq!(c.api_host("docker.io"), "mirror.corp:5000");
        assert_eq!(c.api_host("ghcr.io"), "ghcr.io");
        assert!(c.private_allowed_at("internal.corp", 443));
        assert!(c.private_allowed_at("internal.corp", 5432));
        assert!(c.private_allowed_at("mirror.corp", 5000));
        assert!(!c.private_allowed_at("mirror.corp", 443));
        assert!(!c.private_allowed_at("evil.example", 443));
        let cred = c.credential_for("reg.example.com").unwrap();
        assert!(cred.token_hosts.contains("auth.example.com"));
        assert!(c.extra_roots_pem.is_empty());
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let with_ca = RegistryConfig::from_vars(
            |k| (k == ENV_CA_FILE).then(|| ca.display().to_string()),
            None,
            None,
        )
        .unwrap();
        assert_eq!(with_ca.extra_roots_pem.len(), 1);
        // Docker Hub gets a budget unless the operator set one or mirrors it.
        assert_eq!(with_ca.pull_budgets["docker.io"].limit, 5);
        assert!(c.pull_budgets.is_empty(), "docker.io is mirrored");
        let budgets = RegistryConfig::from_vars(
            |k| (k == ENV_PULL_BUDGET).then(|| "docker.io=80/6h,ghcr.io=500/1h".to_string()),
            None,
            None,
        )
        .unwrap();
        assert_eq!(budgets.pull_budgets["docker.io"].limit, 80);
        assert_eq!(budgets.pull_budgets["ghcr.io"].limit, 500);
        let bad_budget = RegistryConfig::from_vars(
            |k| (k == ENV_PULL_BUDGET).then(|| "docker.io=lots".to_string()),
            None,
            None,
        );
        assert!(
            bad_budget
                .unwrap_err()
                .to_string()
                .contains(ENV_PULL_BUDGET)
        );
        let missing = RegistryConfig::from_vars(
            |k| (k == ENV_CA_FILE).then(|| "/nonexistent/ca.pem".to_string()),
            None,
            None,
        );
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/ca.pem")
        );
        let bad = RegistryConfig::from_vars(
            |k| (k == ENV_MIRRORS).then(|| "nope".to_string()),
            None,
            None,
        );
        assert!(bad.is_err());
        assert_eq!(
            RegistryConfig::default().api_host("docker.io"),
            DOCKER_HUB_API
        );
    }

    #[test]
    fn an_allowed_port_is_that_port_only_and_a_bare_host_every_port() {
        let mut c = RegistryConfig::default();
        c.allow_private.extend(
            [
                "127.0.0.1:5000",
                "Registry.Internal",
                "[::1]:8443",
                "fd00::5",
            ]
            .map(String::from),
        );
        assert!(c.private_allowed_at("127.0.0.1", 5000));
        assert!(!c.private_allowed_at("127.0.0.1", 5432));
        assert!(!c.private_allowed_at("127.0.0.1", 3000));
        assert!(c.private_allowed_somewhere("127.0.0.1"));
        assert!(!c.private_allowed_everywhere("127.0.0.1"));
        assert!(c.private_allowed_at("registry.internal", 5432));
        assert!(c.private_allowed_everywhere("REGISTRY.internal"));
        assert!(c.private_allowed_at("[::1]", 8443));
        assert!(!c.private_allowed_at("::1", 443));
        assert!(c.private_allowed_at("fd00::5", 1));
        assert!(!c.private_allowed_somewhere("10.0.0.1"));
        assert_eq!(split_host_port("h:x"), ("h:x".to_string(), None));
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.b:5000"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:5000"), "::1");
    }
}
