//! The registry's [`SharedTags`] on the store: replicas on one database ask a registry once
//! per tag and TTL between them (table `registry_tags`). Wired by `server` on PostgreSQL
//! only: on SQLite one process serves, and its own tag cache already shares every answer.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::clock::Clock;
use crate::registry::{SharedFuture, SharedTag, SharedTagKey, SharedTags, SharedTagsError};
use crate::store::{Store, StoreError, TagAnswer, TagClaim, TagFreshness, TagKey};

/// How long a claim on asking lasts: longer than a `HEAD` with its retries normally takes;
/// a replica that dies holding one delays the others' answer by at most this.
pub const CLAIM_FOR: Duration = Duration::from_secs(30);

/// Tag answers in the store, claimed as this replica (`owner`, random per process).
#[derive(Debug, Clone)]
pub struct StoreSharedTags {
    store: Store,
    clock: Arc<dyn Clock>,
    owner: String,
    /// How long a claim lasts ([`CLAIM_FOR`]; tests shorten it).
    pub claim_for: Duration,
}

impl StoreSharedTags {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> StoreSharedTags {
        StoreSharedTags {
            store,
            clock,
            owner: format!("{:016x}", rand::random::<u64>()),
            claim_for: CLAIM_FOR,
        }
    }

    /// Who this replica is in `registry_tags.claimed_by`.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

fn key<'a>(k: SharedTagKey<'a>) -> TagKey<'a> {
    TagKey {
        registry: k.registry,
        repository: k.repository,
        tag: k.tag,
    }
}

fn ago(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn shared_error(e: StoreError) -> SharedTagsError {
    SharedTagsError(e.to_string())
}

impl SharedTags for StoreSharedTags {
    fn claim<'a>(
        &'a self,
        k: SharedTagKey<'a>,
        ttl: Duration,
        asked_within: Option<Duration>,
    ) -> SharedFuture<'a, SharedTag> {
        Box::pin(async move {
            let now = self.clock.now();
            let fresh = TagFreshness {
                arrived_after: ago(now, ttl),
                asked_since: asked_within.map(|d| ago(now, d)),
            };
            let until = later(now, self.claim_for);
            let claim = self
                .store
                .claim_registry_tag(key(k), &self.owner, fresh, now, until)
                .await
                .map_err(shared_error)?;
            Ok(match claim {
                TagClaim::Answer(a) => SharedTag::Answer {
                    digest: a.digest,
                    media_type: a.media_type,
                },
                TagClaim::Claimed => SharedTag::Claimed,
                TagClaim::Waiting => SharedTag::Waiting,
            })
        })
    }

    fn answer<'a>(
        &'a self,
        k: SharedTagKey<'a>,
        digest: &'a str,
        media_type: &'a str,
        asked_ago: Duration,
    ) -> SharedFuture<'a, ()> {
        Box::pin(async move {
            let now = self.clock.now();
            let answer = TagAnswer {
                digest: digest.to_string(),
                media_type: media_type.to_string(),
            };
            self.store
                .answer_registry_tag(key(k), &self.owner, &answer, ago(now, asked_ago), now)
                .await
                .map_err(shared_error)
        })
    }

    fn release<'a>(&'a self, k: SharedTagKey<'a>) -> SharedFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .release_registry_tag(key(k), &self.owner)
                .await
                .map_err(shared_error)
        })
    }
}
