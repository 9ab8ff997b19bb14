//! Resolving a scan's references against their registries, concurrently (the resolver
//! limits per host and coalesces equal lookups across repositories), and recording when
//! each proposed digest was first seen (the `min-age` cooldown counts from then).

use tokio::task::JoinSet;

use super::handler::Handler;
use crate::extract::{Extraction, Found};
use crate::jobs::JobError;
use crate::registry::Resolution;
use crate::repo_config::RepoConfig;
use crate::store::ImageRefRecord;

/// One reference with its resolution and, for a proposed digest, when it was first seen.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub found: Found,
    pub resolution: Resolution,
    pub first_seen: Option<chrono::DateTime<chrono::Utc>>,
}

/// `since`: for a scan a person asked for, the instant before which no registry answer is
/// reused (see [`crate::registry::Resolver::resolve_since`]).
pub async fn resolve_all(
    h: &Handler,
    extraction: &Extraction,
    since: Option<std::time::Instant>,
) -> Result<Vec<Resolved>, JobError> {
    let mut set = JoinSet::new();
    for (i, found) in extraction.references.iter().enumerate() {
        let resolver = h.resolver.clone();
        let reference = found.reference.clone();
        let platform = found.context.platform.clone();
        set.spawn(async move {
            let r = resolver
                .resolve_since(&reference, platform.as_deref(), since)
                .await;
            (i, r)
        });
    }
    let mut resolutions: Vec<Option<Resolution>> = vec![None; extraction.references.len()];
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| JobError::Transient(format!("resolver task: {e}")))?;
        let not_editable = extraction.references[i].not_editable.as_deref();
        resolutions[i] = Some(r.not_editable(not_editable));
    }
    let now = h.clock.now();
    let mut out = Vec::with_capacity(resolutions.len());
    for (found, resolution) in extraction.references.iter().zip(resolutions) {
        let resolution = resolution.unwrap_or_else(|| Resolution::internal_error("not resolved"));
        let first_seen = match (&found.reference.tag, &resolution.current) {
            (Some(tag), Some(current)) => Some(
                h.store
                    .record_digest_seen(
                        &found.reference.registry,
                        &found.reference.repository,
                        tag,
                        &current.to_string(),
                        now,
                    )
                    .await?,
            ),
            _ => None,
        };
        out.push(Resolved {
            found: found.clone(),
            resolution,
            first_seen,
        });
    }
    Ok(out)
}

/// What the store keeps per reference (and the status page shows).
pub fn records(config: &RepoConfig, resolved: &[Resolved]) -> Vec<ImageRefRecord> {
    resolved
        .iter()
        .map(|r| {
            let f = &r.found;
            let digest = f.reference.digest.as_ref().map(|d| d.to_string());
            let ignored = config.is_ignored(
                &f.reference.name(),
                f.reference.tag.as_deref(),
                r.resolution
                    .current
                    .as_ref()
                    .map(|d| d.to_string())
                    .as_deref(),
            );
            ImageRefRecord {
                file: f.file.clone(),
                line: i32::try_from(f.line).unwrap_or(i32::MAX),
                image: f.reference.name(),
                tag: f.reference.tag.clone(),
                digest,
                status: if ignored {
                    "ignored".to_string()
                } else {
                    r.resolution.status.as_str().to_string()
                },
                current_digest: r.resolution.current.as_ref().map(|d| d.to_string()),
                message: r.resolution.message.clone(),
            }
        })
        .collect()
}
