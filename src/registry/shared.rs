//! Tag answers shared with other replicas: before a replica sends a tag's manifest `HEAD`
//! it asks [`SharedTags`] (the shell backs it with the database), and after, it tells.
//!
//! # Rules
//! - Freshness is the in-process tag cache's: an answer is reused for
//!   [`super::RegistryConfig::cache_ttl`] after it arrived; a scan a person asked for reuses
//!   only answers to requests sent since it started.
//! - Single flight across replicas: the first asker claims the tag and sends the `HEAD`; the
//!   others poll until its answer is there. A claim whose holder died lapses (the shell
//!   sets how long a claim lasts), and the next asker takes it over.
//! - Only successes are shared. After a failure the claim is released and each replica
//!   asks for itself (its own cache then keeps the failure for the TTL, as before).
//! - The shared answers never fail a lookup: an error of theirs is logged and the registry
//!   is asked directly; so is a wait longer than [`MAX_WAIT`].

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{Head, RegistryError, Resolver};
use crate::reference::{Digest, Reference};

/// A tag: registry host, repository, tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedTagKey<'a> {
    pub registry: &'a str,
    pub repository: &'a str,
    pub tag: &'a str,
}

/// What [`SharedTags::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedTag {
    /// A fresh answer of some replica's: the tag's digest and manifest media type.
    Answer { digest: String, media_type: String },
    /// This replica holds the claim: it asks the registry, then answers or releases.
    Claimed,
    /// Another replica is asking: wait for its answer.
    Waiting,
}

/// Why the shared answers could not be read or written (the store's words).
#[derive(Debug, thiserror::Error)]
#[error("shared tag answers: {0}")]
pub struct SharedTagsError(pub String);

pub type SharedFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, SharedTagsError>> + Send + 'a>>;

/// Tag answers shared by replicas.
pub trait SharedTags: Send + Sync {
    /// A fresh answer for `key` (one that arrived less than `ttl` ago, and, when
    /// `asked_within` is set, from a request sent at most that long ago), or else the claim
    /// on asking, or else [`SharedTag::Waiting`].
    fn claim<'a>(
        &'a self,
        key: SharedTagKey<'a>,
        ttl: Duration,
        asked_within: Option<Duration>,
    ) -> SharedFuture<'a, SharedTag>;

    /// The registry's answer to the request this replica sent `asked_ago` ago; drops the
    /// claim.
    fn answer<'a>(
        &'a self,
        key: SharedTagKey<'a>,
        digest: &'a str,
        media_type: &'a str,
        asked_ago: Duration,
    ) -> SharedFuture<'a, ()>;

    /// Drops this replica's claim without an answer.
    fn release<'a>(&'a self, key: SharedTagKey<'a>) -> SharedFuture<'a, ()>;
}

/// The longest a lookup waits for another replica's answer before asking itself.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The first pause between polls; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(250);

impl Resolver {
    /// The tag's `HEAD`, through the shared answers when there are any.
    pub(super) async fn shared_tag_head(
        &self,
        r: &Reference,
        tag: &str,
        since: Option<Instant>,
    ) -> Result<Head, RegistryError> {
        let Some(shared) = self.inner.shared.as_deref() else {
            return self.head(r, tag).await;
        };
        let key = SharedTagKey {
            registry: &r.registry,
            repository: &r.repository,
            tag,
        };
        let ttl = self.config().cache_ttl;
        let started = Instant::now();
        let mut pause = POLL_FIRST;
        loop {
            let asked_within = since.map(|s| s.elapsed());
            match shared.claim(key, ttl, asked_within).await {
                Ok(SharedTag::Answer { digest, media_type }) => match Digest::parse(&digest) {
                    Ok(digest) => {
                        crate::metrics::registry_shared_tag("reused");
                        return Ok(Head { digest, media_type });
                    }
                    Err(e) => {
                        warn!(%digest, error = %e, "shared tag answer unreadable; asking the registry");
                        break;
                    }
                },
                Ok(SharedTag::Claimed) => return self.ask_and_share(shared, key, r, tag).await,
                Ok(SharedTag::Waiting) if started.elapsed() < MAX_WAIT => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(POLL_MAX);
                }
                Ok(SharedTag::Waiting) => {
                    warn!(registry = %r.registry, repository = %r.repository, tag, "waited too long for another replica's answer; asking the registry");
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "asking the registry without the shared tag answers");
                    break;
                }
            }
        }
        crate::metrics::registry_shared_tag("unshared");
        self.head(r, tag).await
    }

    async fn ask_and_share(
        &self,
        shared: &dyn SharedTags,
        key: SharedTagKey<'_>,
        r: &Reference,
        tag: &str,
    ) -> Result<Head, RegistryError> {
        let asked = Instant::now();
        let result = self.head(r, tag).await;
        let told = match &result {
            Ok(h) => {
                let digest = h.digest.to_string();
                shared
                    .answer(key, &digest, &h.media_type, asked.elapsed())
                    .await
            }
            Err(_) => shared.release(key).await,
        };
        match told {
            Ok(()) => crate::metrics::registry_shared_tag("asked"),
            Err(e) => {
                warn!(error = %e, "could not share a tag's answer");
                crate::metrics::registry_shared_tag("unshared");
            }
        }
        result
    }
}
