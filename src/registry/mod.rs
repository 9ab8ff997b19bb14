//! Registry resolver: "what digest does this tag point at now, in the form this pin needs?"
//!
//! # Rules
//! - A tag is resolved with one `HEAD /v2/<repo>/manifests/<tag>` listing all four manifest
//!   media types in `Accept` (distribution answers 404 for an index otherwise), reading
//!   `Docker-Content-Digest`. A GET happens only when that header is missing (then the digest
//!   is the sha256 of the body) or a rule needs a manifest body.
//! - An index pin stays an index pin: the pinned digest's `Content-Type` (HEAD by digest)
//!   says which kind it is.
//! - A platform pin stays a platform pin: the `FROM --platform` says its os/arch/variant, or
//!   else the old manifest's config (a manifest and a blob GET, once per digest), and the
//!   entry of the new index with that platform is proposed. None → [`Status::PlatformGone`].
//! - No churn: when an index pin's index moved but every platform manifest it covers is the
//!   same (a re-push, added attestations), the answer is [`Status::UnchangedContent`] and
//!   nothing is proposed. A platform pin whose platform's manifest is still the tag's is
//!   [`Status::UpToDate`]: whether the index around it moved cannot be told from the pin.
//! - Digest-only references are [`Status::NotUpdatable`]; tag-only ones [`Status::Unpinned`]
//!   with the tag's digest (an index digest for a multi-platform tag).
//!
//! # Why reqwest and not oci-client's `Client`
//! oci-client provides the manifest types and media-type constants used here and pushes the
//! test fixtures, but its client cannot send a HEAD with exactly our `Accept` list and
//! nothing else, does not expose the address it connected to, takes no DNS resolver or
//! redirect policy (the SSRF guard needs both), has no per-host concurrency limit and would
//! not let every request be counted. So requests go through the same `reqwest` version it
//! links (rustls), configured here: one HTTP stack in the binary.
//!
//! # Caching: TTL, not cycles
//! A tag's answer is kept for [`RegistryConfig::cache_ttl`] after it arrived, process-wide,
//! and concurrent lookups of one tag share one request. A "cycle" is therefore a TTL window:
//! the scheduler sets the TTL below its scan interval, and 1,000 references to one tag in
//! that window cost one HEAD. Errors are kept for the TTL too (a missing repository is not
//! asked about 1,000 times); rate limits block their host for the `Retry-After` window.
//! Answers keyed by digest (manifest kinds, bodies, configs, metadata) never go stale.
//! A scan a person asked for ([`Resolver::resolve_since`]) reuses no tag answer or failure
//! from before it started, but still joins lookups started since. Every cache is bounded by
//! entries and estimated bytes, least recently used out first.
//! Replicas on one PostgreSQL also share tag answers (successes only), with the same TTL,
//! behind this cache: see [`SharedTags`].

mod budget;
mod cache;
mod details;
mod guard;
mod http;
mod settings;
mod shared;
mod special;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciImageIndex, OciImageManifest,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use thiserror::Error;
use tracing::debug;

use crate::image::ImageSummary;
use crate::reference::{Digest, Reference};

pub use budget::{Budget, Usage as BudgetUsage, parse as parse_pull_budgets};
pub use cache::{Coalescing, Limits as CacheLimits, Usage as CacheUsage};
pub use details::DetailsRequest;
pub use guard::refused as refused_address;
pub use http::{RequestCount, RequestKind};
pub use settings::{
    ConfigError, Credential, DOCKER_HUB_API, ENV_ALLOW_PRIVATE, ENV_CA_FILE, ENV_CACHE_ENTRIES,
    ENV_CACHE_MB, ENV_INSECURE, ENV_MIRRORS, ENV_PULL_BUDGET, ENV_TOKEN_HOSTS, Lookup,
    RegistryConfig, Secret, SystemLookup, load_docker_config, normalize_host, parse_docker_config,
};
pub use shared::{
    MAX_WAIT as SHARED_TAGS_MAX_WAIT, SharedFuture, SharedTag, SharedTagKey, SharedTags,
    SharedTagsError,
};

use budget::Spender;
use http::{Endpoint, Http, MAX_BODY};

/// Every manifest type a tag may point at, in order of preference.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// What became of one reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The pin is what the tag points at now.
    UpToDate,
    /// The tag moved: `current` is the new pin.
    Stale,
    /// No digest in the file; `current` is what the pin would be.
    Unpinned,
    /// No tag to follow (digest-only).
    NotUpdatable,
    /// The index moved but the pinned content did not: nothing to propose.
    UnchangedContent,
    /// The pinned platform is no longer in the tag's index.
    PlatformGone,
    /// The registry rate-limited us; try again next cycle.
    RateLimited,
    Error,
    /// The tag moved or is not pinned, but digestif cannot write a digest at this
    /// reference (see `extract::Found::not_editable`); `message` says why.
    NotEditable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::UpToDate => "up-to-date",
            Status::Stale => "stale",
            Status::Unpinned => "unpinned",
            Status::NotUpdatable => "not-updatable",
            Status::UnchangedContent => "unchanged-content",
            Status::PlatformGone => "platform-gone",
            Status::RateLimited => "rate-limited",
            Status::Error => "error",
            Status::NotEditable => "not-editable",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer for one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub status: Status,
    /// The digest this reference should carry now, in the form its pin needs: the tag's
    /// digest for index pins and tag-only references, the platform manifest for platform
    /// pins. `None` when unknown.
    pub current: Option<Digest>,
    /// The digest the tag itself points at (index or manifest).
    pub tag_digest: Option<Digest>,
    /// For platform pins: the platform (`linux/arm/v7`).
    pub platform: Option<String>,
    /// Why, for people: errors, rate limits, platform gone, not updatable. Safe to show to
    /// the repository: it never names an address the guard refused or a network error's
    /// detail (see [`RegistryError::public_message`]).
    pub message: Option<String>,
    /// The whole story of a failure, for the operator only (logs, the local CLI).
    pub detail: Option<String>,
}

impl Resolution {
    fn new(status: Status) -> Resolution {
        Resolution {
            status,
            current: None,
            tag_digest: None,
            platform: None,
            message: None,
            detail: None,
        }
    }

    fn with_message(mut self, m: impl Into<String>) -> Resolution {
        self.message = Some(m.into());
        self
    }

    fn failed(e: &RegistryError) -> Resolution {
        let status = match e {
            RegistryError::RateLimited { .. } | RegistryError::BudgetExhausted { .. } => {
                Status::RateLimited
            }
            _ => Status::Error,
        };
        let mut out = Resolution::new(status).with_message(e.public_message());
        out.detail = Some(e.to_string());
        out
    }

    /// A failure that has no registry error behind it (a task that panicked).
    pub fn internal_error(message: &str) -> Resolution {
        Resolution::new(Status::Error).with_message(message)
    }

    /// The answer for a reference digestif cannot edit (`reason`): what would be
    /// proposed becomes `not-editable`, with the reason; the current digest stays known.
    pub fn not_editable(mut self, reason: Option<&str>) -> Resolution {
        if let Some(reason) = reason
            && self.proposed().is_some()
        {
            self.message = Some(format!("{}: {reason}", self.status));
            self.status = Status::NotEditable;
        }
        self
    }

    /// The digest to write into the file, if any (stale, or unpinned when pinning).
    pub fn proposed(&self) -> Option<&Digest> {
        match self.status {
            Status::Stale | Status::Unpinned => self.current.as_ref(),
            _ => None,
        }
    }
}

/// Why a lookup failed. The `Display` text is the operator's (`registry.example.com: …`,
/// with addresses and network detail); [`RegistryError::public_message`] is what a
/// repository may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    #[error("{host}: rate limited ({detail})")]
    RateLimited { host: String, detail: String },
    #[error("{host}: {what} not found")]
    NotFound { host: String, what: String },
    #[error("{host}: authentication required ({detail})")]
    Unauthorized { host: String, detail: String },
    #[error("{host}: access denied")]
    Forbidden { host: String },
    #[error("{host}: server error ({status})")]
    Server { host: String, status: u16 },
    #[error("{host}: unexpected response ({status})")]
    Status { host: String, status: u16 },
    #[error("{host}: request timed out")]
    Timeout { host: String },
    /// No answer: `what` is the kind of failure, `detail` the network's own words.
    #[error("{host}: {what}: {detail}")]
    Transport {
        host: String,
        what: &'static str,
        detail: String,
    },
    #[error("{host}: refused by the SSRF guard: {reason}")]
    Refused { host: String, reason: String },
    #[error("{host}: invalid response: {message}")]
    Invalid { host: String, message: String },
    /// digestif's own pull budget for the host is spent (`DIGESTIF_REGISTRY_PULL_BUDGET`).
    #[error("{host}: pull budget used up for now (DIGESTIF_REGISTRY_PULL_BUDGET)")]
    BudgetExhausted { host: String },
}

/// What a repository is told when the SSRF guard refused its registry.
pub const NOT_ALLOWED: &str = "registry address not allowed";

impl RegistryError {
    /// The text a repository may see (dashboard, status rows, check runs, PRs): without
    /// the addresses a name resolved to, which address or port was refused, or the
    /// network's error text ("Connection refused"), all of which would let anyone who
    /// can name a registry in a watched repository map the operator's network. Those stay
    /// in [`fmt::Display`], for the operator's log.
    pub fn public_message(&self) -> String {
        match self {
            RegistryError::Refused { host, .. } => format!("{host}: {NOT_ALLOWED}"),
            RegistryError::Transport { host, what, .. } => format!("{host}: {what}"),
            other => other.to_string(),
        }
    }
}

/// What a HEAD (or GET) of a manifest said.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    digest: Digest,
    media_type: String,
}

impl Head {
    fn is_index(&self) -> bool {
        is_index_type(&self.media_type)
    }
}

fn is_index_type(t: &str) -> bool {
    t == OCI_IMAGE_INDEX_MEDIA_TYPE || t == IMAGE_MANIFEST_LIST_MEDIA_TYPE
}

fn is_manifest_type(t: &str) -> bool {
    t == OCI_IMAGE_MEDIA_TYPE || t == IMAGE_MANIFEST_MEDIA_TYPE
}

/// An image platform, compared the way container runtimes do (`arm` means `arm/v7`,
/// `arm64/v8` means `arm64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`; `None` for anything else (including `$BUILDPLATFORM`).
    pub fn parse(text: &str) -> Option<Platform> {
        if text.contains('$') {
            return None;
        }
        let mut it = text.trim().split('/');
        let os = it.next().filter(|s| !s.is_empty())?;
        let arch = it.next().filter(|s| !s.is_empty())?;
        let variant = it.next().filter(|s| !s.is_empty()).map(str::to_string);
        if it.next().is_some() {
            return None;
        }
        Some(Platform::new(os, arch, variant))
    }

    pub fn new(os: &str, arch: &str, variant: Option<String>) -> Platform {
        Platform {
            os: os.to_ascii_lowercase(),
            arch: arch.to_ascii_lowercase(),
            variant: variant.filter(|v| !v.is_empty()),
        }
    }

    fn normalized(&self) -> (String, String, Option<String>) {
        let variant = match (self.arch.as_str(), self.variant.as_deref()) {
            ("arm64", Some("v8")) | ("amd64", Some("v1")) => None,
            ("arm", None) => Some("v7".to_string()),
            (_, v) => v.map(str::to_string),
        };
        (self.os.clone(), self.arch.clone(), variant)
    }

    pub fn matches(&self, other: &Platform) -> bool {
        self.normalized() == other.normalized()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The parts of an image config we read.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct ImageConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
    created: Option<String>,
    config: Option<ConfigSection>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
struct ConfigSection {
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

/// A manifest body, parsed.
#[derive(Debug, Clone)]
enum Manifest {
    Index(Arc<OciImageIndex>),
    Image(Arc<OciImageManifest>),
}

/// What the registry caches are keyed by: (registry host, repository, tag or digest).
type CacheKey = (String, String, String);

/// Resolves references against registries. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    http: Http,
    tags: Coalescing<CacheKey, Result<Head, RegistryError>>,
    heads: Coalescing<CacheKey, Result<Head, RegistryError>>,
    manifests: Coalescing<CacheKey, Result<Manifest, RegistryError>>,
    configs: Coalescing<CacheKey, Result<Arc<ImageConfig>, RegistryError>>,
    metadata: Coalescing<CacheKey, Result<ImageSummary, RegistryError>>,
    /// PR-body facts per image: SBOM package lists are the largest thing cached here.
    facts: Coalescing<details::FactsKey, Result<Arc<crate::insight::ImageFacts>, RegistryError>>,
    /// Tag answers shared with other replicas, behind `tags` (see [`SharedTags`]).
    shared: Option<Arc<dyn SharedTags>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("config", &self.inner.http.config)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    pub fn new(config: RegistryConfig) -> Result<Resolver, ConfigError> {
        Resolver::build(config, None)
    }

    /// A resolver that shares tag answers with other replicas through `shared`, behind its
    /// own cache: a tag it has not answered within the TTL is looked up there before a
    /// `HEAD` is sent, and the answer is put there after.
    pub fn with_shared_tags(
        config: RegistryConfig,
        shared: Arc<dyn SharedTags>,
    ) -> Result<Resolver, ConfigError> {
        Resolver::build(config, Some(shared))
    }

    fn build(
        config: RegistryConfig,
        shared: Option<Arc<dyn SharedTags>>,
    ) -> Result<Resolver, ConfigError> {
        let limits = config.cache_limits();
        let http = Http::new(Arc::new(config))?;
        Ok(Resolver {
            inner: Arc::new(Inner {
                http,
                tags: Coalescing::new("tags", limits, weigh_head),
                heads: Coalescing::new("digest-heads", limits, weigh_head),
                manifests: Coalescing::new("manifests", limits, weigh_manifest),
                configs: Coalescing::new("configs", limits, weigh_config),
                metadata: Coalescing::new("metadata", limits, weigh_metadata),
                facts: Coalescing::new("image-facts", limits, weigh_facts),
                shared,
            }),
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.inner.http.config
    }

    /// Every request sent so far, by host, method, kind and status.
    pub fn counts(&self) -> Vec<RequestCount> {
        self.inner.http.counts()
    }

    /// Response body bytes read so far, by host and kind.
    pub fn bytes_read(&self) -> Vec<(String, RequestKind, u64)> {
        self.inner.http.bytes()
    }

    /// Each pull budget with what is spent of it now.
    pub fn budget_usage(&self) -> Vec<BudgetUsage> {
        self.inner.http.budget_usage()
    }

    /// What each cache holds now, by name (also on `/metrics`).
    pub fn cache_usage(&self) -> Vec<(&'static str, CacheUsage)> {
        let i = &self.inner;
        vec![
            (i.tags.name(), i.tags.usage()),
            (i.heads.name(), i.heads.usage()),
            (i.manifests.name(), i.manifests.usage()),
            (i.configs.name(), i.configs.usage()),
            (i.metadata.name(), i.metadata.usage()),
            (i.facts.name(), i.facts.usage()),
            i.http.token_cache(),
        ]
    }

    /// Total requests sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.counts().iter().map(|c| c.count).sum()
    }

    /// Resolves one reference. `platform_hint` is the `FROM --platform` value, if any.
    /// Never fails: problems are a status with a message.
    pub async fn resolve(&self, r: &Reference, platform_hint: Option<&str>) -> Resolution {
        self.resolve_since(r, platform_hint, None).await
    }

    /// [`Resolver::resolve`] for a scan a person asked for: no answer from a request that
    /// started before `since` is reused (the tag's digest, and any failure), so a tag that
    /// moved a minute ago is seen; lookups of one tag started since are still shared.
    /// `None` is the scheduled case: cached answers within the TTL.
    pub async fn resolve_since(
        &self,
        r: &Reference,
        platform_hint: Option<&str>,
        since: Option<Instant>,
    ) -> Resolution {
        let Some(tag) = r.tag.as_deref() else {
            return Resolution::new(Status::NotUpdatable)
                .with_message("pinned by digest only: no tag says what is newer");
        };
        let head = match self.tag_head(r, tag, since).await {
            Ok(h) => h,
            Err(e) => return Resolution::failed(&e),
        };
        let mut out = Resolution::new(Status::Unpinned);
        out.tag_digest = Some(head.digest.clone());
        out.current = Some(head.digest.clone());
        let Some(pinned) = &r.digest else {
            return out;
        };
        if *pinned == head.digest {
            out.status = Status::UpToDate;
            return out;
        }
        let hint = platform_hint.and_then(Platform::parse);
        let pinned_head = match self.digest_head(r, pinned, since).await {
            Ok(h) => Some(h),
            Err(RegistryError::NotFound { .. }) => None,
            Err(e) => return Resolution::failed(&e),
        };
        let result = match pinned_head {
            Some(p) if p.is_index() => self.index_pin(r, pinned, &head, since).await,
            Some(_) => self.platform_pin(r, pinned, &head, hint, since).await,
            // The pinned manifest is gone from the registry, so its kind is unknown: a
            // `--platform` says it was one platform's; otherwise follow the tag.
            None => match hint {
                Some(h) if head.is_index() => {
                    self.platform_pin_to(r, pinned, &head, h, since).await
                }
                _ => {
                    let mut o = Resolution::new(Status::Stale);
                    o.current = Some(head.digest.clone());
                    Ok(o.with_message("the pinned digest is no longer in the registry"))
                }
            },
        };
        match result {
            Ok(mut o) => {
                o.tag_digest = Some(head.digest.clone());
                o
            }
            Err(e) => {
                let mut o = Resolution::failed(&e);
                o.tag_digest = Some(head.digest.clone());
                o
            }
        }
    }

    async fn index_pin(
        &self,
        r: &Reference,
        pinned: &Digest,
        head: &Head,
        since: Option<Instant>,
    ) -> Result<Resolution, RegistryError> {
        let mut out = Resolution::new(Status::Stale);
        out.current = Some(head.digest.clone());
        if !head.is_index() {
            return Ok(out.with_message("the tag is no longer a multi-platform index"));
        }
        let (old, new) = tokio::join!(
            self.manifest(r, pinned, since),
            self.manifest(r, &head.digest, since)
        );
        let (Manifest::Index(old), Manifest::Index(new)) = (old?, new?) else {
            return Ok(out);
        };
        let new_entries = platform_entries(&new);
        let covered = platform_entries(&old);
        if !covered.is_empty()
            && covered
                .iter()
                .all(|(p, d)| new_entries.iter().any(|(np, nd)| np == p && nd == d))
        {
            out.status = Status::UnchangedContent;
            out.message = Some("the index changed but none of its platform images did".into());
        }
        Ok(out)
    }

    async fn platform_pin(
        &self,
        r: &Reference,
        pinned: &Digest,
        head: &Head,
        hint: Option<Platform>,
        since: Option<Instant>,
    ) -> Result<Resolution, RegistryError> {
        if !head.is_index() {
            let mut out = Resolution::new(Status::Stale);
            out.current = Some(head.digest.clone());
            return Ok(out);
        }
        // The `FROM --platform` is the platform the build selects, and using it saves a
        // manifest GET (a pull on Docker Hub); without it, the old manifest's config says.
        let platform = match hint {
            Some(h) => h,
            None => {
                let c = self.config_of(r, pinned, Spender::Resolve, since).await?;
                if c.os.is_empty() || c.architecture.is_empty() {
                    return Err(RegistryError::Invalid {
                        host: self.inner.http.endpoint(&r.registry).host,
                        message: format!("the config of {pinned} names no platform"),
                    });
                }
                Platform::new(&c.os, &c.architecture, c.variant.clone())
            }
        };
        self.platform_pin_to(r, pinned, head, platform, since).await
    }

    async fn platform_pin_to(
        &self,
        r: &Reference,
        pinned: &Digest,
        head: &Head,
        platform: Platform,
        since: Option<Instant>,
    ) -> Result<Resolution, RegistryError> {
        let Manifest::Index(index) = self.manifest(r, &head.digest, since).await? else {
            let mut out = Resolution::new(Status::Stale);
            out.current = Some(head.digest.clone());
            return Ok(out);
        };
        let entry = platform_entries(&index)
            .into_iter()
            .find(|(p, _)| p.matches(&platform));
        let mut out = Resolution::new(Status::Stale);
        out.platform = Some(platform.to_string());
        match entry {
            None => {
                out.status = Status::PlatformGone;
                out.message = Some(format!(
                    "{platform} is no longer in {}:{}",
                    r.familiar_name(),
                    r.tag.as_deref().unwrap_or_default()
                ));
            }
            // The pin is still the tag's image for its platform. Whether the index around
            // it moved since cannot be told from a platform pin, and needs no PR either way.
            Some((_, d)) if d == *pinned => {
                out.status = Status::UpToDate;
                out.current = Some(d);
            }
            Some((_, d)) => out.current = Some(d),
        }
        Ok(out)
    }

    /// Image facts for a PR body, fetched once per digest.
    pub async fn metadata(
        &self,
        r: &Reference,
        digest: &Digest,
    ) -> Result<ImageSummary, RegistryError> {
        let key = (r.registry.clone(), r.repository.clone(), digest.to_string());
        self.inner
            .metadata
            .get_or_fetch(key, ttl_ok_forever(self), None, || {
                self.fetch_metadata(r, digest)
            })
            .await
    }

    async fn fetch_metadata(
        &self,
        r: &Reference,
        digest: &Digest,
    ) -> Result<ImageSummary, RegistryError> {
        let mut meta = ImageSummary::default();
        let (image_digest, annotations) =
            match self.manifest_as(r, digest, Spender::Details, None).await? {
                Manifest::Index(index) => {
                    let entries = platform_entries(&index);
                    meta.platforms = entries.iter().map(|(p, _)| p.to_string()).collect();
                    let Some((_, d)) = pick_platform(&entries, None) else {
                        return Ok(meta);
                    };
                    // The platform's entry may say it all (Docker Official Images' do): then
                    // the image's manifest and config (a pull and a blob) are not needed.
                    let a = index
                        .manifests
                        .iter()
                        .find(|e| e.digest == d.to_string())
                        .map(|e| annotations_of(e.annotations.as_ref()))
                        .unwrap_or_default();
                    (d.clone(), a)
                }
                Manifest::Image(m) => (digest.clone(), annotations_of(m.annotations.as_ref())),
            };
        meta.created = annotations.get(ANN_CREATED).cloned();
        meta.revision = annotations.get(ANN_REVISION).cloned();
        meta.source = annotations.get(ANN_SOURCE).cloned();
        let complete = meta.created.is_some()
            && meta.revision.is_some()
            && meta.source.is_some()
            && !meta.platforms.is_empty();
        if complete {
            return Ok(meta);
        }
        let config = self
            .config_of(r, &image_digest, Spender::Details, None)
            .await?;
        if meta.platforms.is_empty() && !config.os.is_empty() {
            meta.platforms = vec![
                Platform::new(&config.os, &config.architecture, config.variant.clone()).to_string(),
            ];
        }
        let labels = config.config.as_ref().and_then(|c| c.labels.as_ref());
        let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
        meta.created = meta.created.or(config.created.clone());
        meta.revision = meta.revision.or(label(ANN_REVISION));
        meta.source = meta.source.or(label(ANN_SOURCE));
        Ok(meta)
    }

    /// The tag's digest and media type: HEAD, cached and coalesced by (registry, repo, tag),
    /// and shared with other replicas when the resolver has [`SharedTags`].
    async fn tag_head(
        &self,
        r: &Reference,
        tag: &str,
        since: Option<Instant>,
    ) -> Result<Head, RegistryError> {
        let key = (r.registry.clone(), r.repository.clone(), tag.to_string());
        let ttl = self.config().cache_ttl;
        self.inner
            .tags
            .get_or_fetch(key, |_| ttl, since, || self.shared_tag_head(r, tag, since))
            .await
    }

    /// HEAD by digest: content-addressed, so a success is kept for good.
    async fn digest_head(
        &self,
        r: &Reference,
        d: &Digest,
        since: Option<Instant>,
    ) -> Result<Head, RegistryError> {
        let key = (r.registry.clone(), r.repository.clone(), d.to_string());
        self.inner
            .heads
            .get_or_fetch(key, ttl_ok_forever(self), since, || async {
                self.head(r, &d.to_string()).await
            })
            .await
    }

    async fn head(&self, r: &Reference, reference: &str) -> Result<Head, RegistryError> {
        let ep = self.inner.http.endpoint(&r.registry);
        let path = format!("/v2/{}/manifests/{reference}", r.repository);
        let resp = self
            .inner
            .http
            .send(
                &ep,
                &r.repository,
                Method::HEAD,
                &path,
                Some(MANIFEST_ACCEPT),
                RequestKind::ManifestHead,
            )
            .await?;
        check_status(&ep, resp.status(), || {
            format!("{}:{reference}", r.repository).replace(":sha256:", "@sha256:")
        })?;
        let digest = header(&resp, "docker-content-digest").and_then(|d| Digest::parse(&d).ok());
        let media_type = header(&resp, "content-type")
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_string())
            .unwrap_or_default();
        match digest {
            Some(digest) if is_index_type(&media_type) || is_manifest_type(&media_type) => {
                Ok(Head { digest, media_type })
            }
            // No digest header (or no usable type): the body says it all.
            _ => {
                debug!(host = %ep.host, %path, "HEAD gave no digest; falling back to GET");
                let (body, media_type) = self
                    .get_manifest(r, &ep, reference, Spender::Resolve)
                    .await?;
                let digest = Digest::sha256_of(&body);
                if let Ok(pinned) = Digest::parse(reference)
                    && pinned != digest
                {
                    return Err(RegistryError::Invalid {
                        host: ep.host.clone(),
                        message: format!("manifest body does not match {pinned}"),
                    });
                }
                let manifest = parse_manifest(&ep, &body, &media_type)?;
                let media_type = match manifest {
                    Manifest::Index(_) if !is_index_type(&media_type) => {
                        OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()
                    }
                    Manifest::Image(_) if !is_manifest_type(&media_type) => {
                        OCI_IMAGE_MEDIA_TYPE.to_string()
                    }
                    _ => media_type,
                };
                Ok(Head { digest, media_type })
            }
        }
    }

    async fn get_manifest(
        &self,
        r: &Reference,
        ep: &Endpoint,
        reference: &str,
        who: Spender,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        let path = format!("/v2/{}/manifests/{reference}", r.repository);
        let resp = self
            .inner
            .http
            .send_as(
                ep,
                &r.repository,
                Method::GET,
                &path,
                Some(MANIFEST_ACCEPT),
                RequestKind::ManifestGet,
                who,
            )
            .await?;
        check_status(ep, resp.status(), || {
            format!("{}@{reference}", r.repository)
        })?;
        let media_type = header(&resp, "content-type")
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_string())
            .unwrap_or_default();
        let body = self
            .inner
            .http
            .read(&ep.host, RequestKind::ManifestGet, resp, MAX_BODY)
            .await?;
        Ok((body, media_type))
    }

    /// A manifest by digest (GET), verified against its digest and kept for good.
    async fn manifest(
        &self,
        r: &Reference,
        d: &Digest,
        since: Option<Instant>,
    ) -> Result<Manifest, RegistryError> {
        self.manifest_as(r, d, Spender::Resolve, since).await
    }

    async fn manifest_as(
        &self,
        r: &Reference,
        d: &Digest,
        who: Spender,
        since: Option<Instant>,
    ) -> Result<Manifest, RegistryError> {
        let key = (r.registry.clone(), r.repository.clone(), d.to_string());
        self.inner
            .manifests
            .get_or_fetch(key, ttl_ok_forever(self), since, || async {
                let ep = self.inner.http.endpoint(&r.registry);
                let (body, media_type) = self.get_manifest(r, &ep, &d.to_string(), who).await?;
                verify_digest(&ep, d, &body)?;
                parse_manifest(&ep, &body, &media_type)
            })
            .await
    }

    /// A blob by digest, verified; blobs are not pulls, so no budget is spent. `what`
    /// names it in errors (`config blob`).
    async fn blob(
        &self,
        r: &Reference,
        d: &Digest,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let ep = self.inner.http.endpoint(&r.registry);
        let path = format!("/v2/{}/blobs/{d}", r.repository);
        let resp = self
            .inner
            .http
            .send(
                &ep,
                &r.repository,
                Method::GET,
                &path,
                None,
                RequestKind::Blob,
            )
            .await?;
        check_status(&ep, resp.status(), || {
            format!("{what} {}@{d}", r.repository)
        })?;
        let body = self
            .inner
            .http
            .read(&ep.host, RequestKind::Blob, resp, limit)
            .await?;
        verify_digest(&ep, d, &body)?;
        Ok(body)
    }

    /// The image config of the single-platform manifest `d`.
    async fn config_of(
        &self,
        r: &Reference,
        d: &Digest,
        who: Spender,
        since: Option<Instant>,
    ) -> Result<Arc<ImageConfig>, RegistryError> {
        let key = (r.registry.clone(), r.repository.clone(), d.to_string());
        self.inner
            .configs
            .get_or_fetch(key, ttl_ok_forever(self), since, || async {
                let ep = self.inner.http.endpoint(&r.registry);
                let Manifest::Image(m) = self.manifest_as(r, d, who, since).await? else {
                    return Err(RegistryError::Invalid {
                        host: ep.host.clone(),
                        message: format!("{d} is an index, not an image"),
                    });
                };
                let config_digest =
                    Digest::parse(&m.config.digest).map_err(|message| RegistryError::Invalid {
                        host: ep.host.clone(),
                        message,
                    })?;
                let body = self
                    .blob(r, &config_digest, MAX_BODY, "config blob")
                    .await?;
                serde_json::from_slice::<ImageConfig>(&body)
                    .map(Arc::new)
                    .map_err(|e| RegistryError::Invalid {
                        host: ep.host.clone(),
                        message: format!("image config: {e}"),
                    })
            })
            .await
    }
}

// Estimated sizes of cache entries (bytes of text they hold): the caches' byte limits.

fn weigh_key((a, b, c): &CacheKey) -> usize {
    a.len() + b.len() + c.len()
}

fn weigh_result<V>(v: &Result<V, RegistryError>, ok: impl Fn(&V) -> usize) -> usize {
    match v {
        Ok(v) => ok(v),
        Err(e) => e.to_string().len(),
    }
}

fn weigh_head(k: &CacheKey, v: &Result<Head, RegistryError>) -> usize {
    weigh_key(k) + weigh_result(v, |h| h.digest.to_string().len() + h.media_type.len())
}

fn weigh_manifest(k: &CacheKey, v: &Result<Manifest, RegistryError>) -> usize {
    // Parsed manifests are kept; their JSON is a fair measure of what they hold.
    weigh_key(k)
        + weigh_result(v, |m| match m {
            Manifest::Index(i) => serde_json::to_vec(&**i).map_or(0, |b| b.len()),
            Manifest::Image(i) => serde_json::to_vec(&**i).map_or(0, |b| b.len()),
        })
}

fn weigh_config(k: &CacheKey, v: &Result<Arc<ImageConfig>, RegistryError>) -> usize {
    weigh_key(k)
        + weigh_result(v, |c| {
            let labels = c.config.as_ref().and_then(|s| s.labels.as_ref());
            c.os.len()
                + c.architecture.len()
                + c.variant.as_ref().map_or(0, String::len)
                + c.created.as_ref().map_or(0, String::len)
                + labels.map_or(0, |l| l.iter().map(|(k, v)| k.len() + v.len()).sum())
        })
}

fn weigh_facts(
    (a, b, c, d): &details::FactsKey,
    v: &Result<Arc<crate::insight::ImageFacts>, RegistryError>,
) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    a.len()
        + b.len()
        + c.len()
        + d.len()
        + weigh_result(v, |f| {
            [
                &f.platform,
                &f.source,
                &f.revision,
                &f.base_name,
                &f.base_digest,
                &f.sbom_error,
            ]
            .into_iter()
            .map(text)
            .sum::<usize>()
                + f.packages.as_ref().map_or(0, |p| {
                    p.iter()
                        .map(|p| {
                            p.ecosystem.len()
                                + p.name.len()
                                + p.version.len()
                                + p.purl.as_ref().map_or(0, String::len)
                        })
                        .sum()
                })
                + f.provenance.as_ref().map_or(0, |p| {
                    text(&p.builder) + text(&p.source) + text(&p.revision)
                })
        })
}

fn weigh_metadata(k: &CacheKey, v: &Result<ImageSummary, RegistryError>) -> usize {
    weigh_key(k)
        + weigh_result(v, |m| {
            m.platforms.iter().map(String::len).sum::<usize>()
                + [&m.created, &m.revision, &m.source]
                    .iter()
                    .map(|s| s.as_ref().map_or(0, String::len))
                    .sum::<usize>()
        })
}

/// Keeps successes for good (content-addressed) and failures for the tag TTL.
fn ttl_ok_forever<V>(res: &Resolver) -> impl Fn(&Result<V, RegistryError>) -> Duration + use<V> {
    let ttl = res.config().cache_ttl;
    move |v: &Result<V, RegistryError>| match v {
        Ok(_) => Duration::MAX,
        // The budget frees up as time passes: ask again next time.
        Err(RegistryError::BudgetExhausted { .. }) => Duration::ZERO,
        Err(_) => ttl,
    }
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn check_status(
    ep: &Endpoint,
    status: StatusCode,
    what: impl Fn() -> String,
) -> Result<(), RegistryError> {
    let host = ep.host.clone();
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
            host,
            what: format!("repository or tag {}", what()),
        }),
        StatusCode::UNAUTHORIZED => Err(RegistryError::Unauthorized {
            host,
            detail: "no valid credentials for this registry".into(),
        }),
        StatusCode::FORBIDDEN => Err(RegistryError::Forbidden { host }),
        s if s.is_server_error() => Err(RegistryError::Server {
            host,
            status: s.as_u16(),
        }),
        s => Err(RegistryError::Status {
            host,
            status: s.as_u16(),
        }),
    }
}

fn verify_digest(ep: &Endpoint, d: &Digest, body: &[u8]) -> Result<(), RegistryError> {
    // Only sha256 is checked; others are rare and trusted as the registry labels them.
    if d.algorithm() == "sha256" && Digest::sha256_of(body) != *d {
        return Err(RegistryError::Invalid {
            host: ep.host.clone(),
            message: format!("content does not match {d}"),
        });
    }
    Ok(())
}

fn parse_manifest(
    ep: &Endpoint,
    body: &[u8],
    _media_type: &str,
) -> Result<Manifest, RegistryError> {
    let invalid = |e: serde_json::Error| RegistryError::Invalid {
        host: ep.host.clone(),
        message: format!("manifest: {e}"),
    };
    // Trust the body over the header: some registries label everything the same.
    #[derive(serde::Deserialize)]
    struct Probe {
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(body).map_err(invalid)?;
    if probe.manifests.is_some() {
        serde_json::from_slice::<OciImageIndex>(body)
            .map(|i| Manifest::Index(Arc::new(i)))
            .map_err(invalid)
    } else {
        serde_json::from_slice::<OciImageManifest>(body)
            .map(|m| Manifest::Image(Arc::new(m)))
            .map_err(invalid)
    }
}

const ANN_CREATED: &str = "org.opencontainers.image.created";
const ANN_REVISION: &str = "org.opencontainers.image.revision";
const ANN_SOURCE: &str = "org.opencontainers.image.source";

fn annotations_of(a: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    a.cloned().unwrap_or_default()
}

/// The entry for `want`, else linux/amd64, else the first: the image a PR body describes.
fn pick_platform<'a>(
    entries: &'a [(Platform, Digest)],
    want: Option<&Platform>,
) -> Option<&'a (Platform, Digest)> {
    let amd64 = Platform::new("linux", "amd64", None);
    match want {
        Some(w) => entries.iter().find(|(p, _)| p.matches(w)),
        None => entries
            .iter()
            .find(|(p, _)| p.matches(&amd64))
            .or(entries.first()),
    }
}

/// The real platform images of an index: attestation manifests (`unknown/unknown`,
/// `vnd.docker.reference.type`) are not images anyone runs.
fn platform_entries(index: &OciImageIndex) -> Vec<(Platform, Digest)> {
    index
        .manifests
        .iter()
        .filter(|e| {
            !e.annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("vnd.docker.reference.type"))
        })
        .filter_map(|e| {
            let p = e.platform.as_ref()?;
            let (os, arch) = (p.os.to_string(), p.architecture.to_string());
            if os == "unknown" || arch == "unknown" {
                return None;
            }
            let d = Digest::parse(&e.digest).ok()?;
            Some((Platform::new(&os, &arch, p.variant.clone()), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match_like_runtimes() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!(p.matches(&Platform::new("linux", "arm", None)));
        assert!(!p.matches(&Platform::new("linux", "arm", Some("v6".into()))));
        assert!(
            Platform::new("linux", "arm64", Some("v8".into()))
                .matches(&Platform::parse("linux/arm64").unwrap())
        );
        assert_eq!(Platform::parse("$BUILDPLATFORM"), None);
        assert_eq!(Platform::parse("linux"), None);
        assert_eq!(Platform::parse("a/b/c/d"), None);
    }

    #[test]
    fn statuses_have_stable_names() {
        assert_eq!(Status::UnchangedContent.as_str(), "unchanged-content");
        assert_eq!(
            serde_json::to_string(&Status::PlatformGone).unwrap(),
            "\"platform-gone\""
        );
    }

    #[tokio::test]
    async fn digest_only_references_are_not_updatable_without_a_request() {
        let r = Resolver::new(RegistryConfig::default()).unwrap();
        let d = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let res = r
            .resolve(&Reference::parse(&format!("python@{d}")).unwrap(), None)
            .await;
        assert_eq!(res.status, Status::NotUpdatable);
        assert!(res.message.unwrap().contains("no tag"));
        assert_eq!(r.requests_sent(), 0);
    }
}
