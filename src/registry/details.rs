//! Fetching what a PR body says about an update: annotations, labels, and the SBOM and
//! provenance attestations BuildKit stores in the index (one attestation manifest per
//! platform, `vnd.docker.reference.type: attestation-manifest`, whose layers are in-toto
//! statements). Only for updates proposed now, once per digest (cached), on the `Details`
//! share of the pull budget; attestation blobs (not pulls) are read only when the layer's
//! `in-toto.io/predicate-type` says they are an SBOM or a provenance.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oci_client::manifest::{OciImageIndex, OciImageManifest};

use super::budget::Spender;
use super::{
    ANN_REVISION, ANN_SOURCE, Manifest, Platform, RegistryError, Resolver, annotations_of,
    pick_platform, platform_entries,
};
use crate::insight::{Details, ImageFacts, provenance, sbom};
use crate::reference::{Digest, Reference};

/// SBOMs of large images run to megabytes; past this one is not read.
pub const MAX_ATTESTATION: usize = 32 * 1024 * 1024;

const ANN_BASE_NAME: &str = "org.opencontainers.image.base.name";
const ANN_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
const REF_TYPE: &str = "vnd.docker.reference.type";
const REF_DIGEST: &str = "vnd.docker.reference.digest";
const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

pub type FactsKey = (String, String, String, String);

/// What an update needs read: the old pin (`None` when pinning), the new digest, the tag's
/// current digest (the index a new platform manifest came from) and the pinned platform.
#[derive(Debug, Clone, Copy)]
pub struct DetailsRequest<'a> {
    pub old: Option<&'a Digest>,
    pub new: &'a Digest,
    pub tag_digest: Option<&'a Digest>,
    pub platform_pin: Option<&'a str>,
}

impl Resolver {
    /// Source, base image, provenance and package facts of both images of an update.
    /// Never fails: a spent pull budget is [`Details::Deferred`], other problems
    /// [`Details::Failed`] (and a missing old image a note).
    pub async fn details(&self, r: &Reference, req: DetailsRequest<'_>) -> Details {
        let platform = req.platform_pin.and_then(Platform::parse);
        let platform_note = match (&platform, req.platform_pin) {
            (None, None) => Some("the platform read for a multi-platform pin".to_string()),
            _ => None,
        };
        // A new platform manifest's attestations are in the tag's index.
        let new_index = if platform.is_some() {
            req.tag_digest.filter(|t| *t != req.new)
        } else {
            None
        };
        let new = match self.facts(r, req.new, new_index, platform.as_ref()).await {
            Ok(f) => f,
            Err(e) => return failed(e),
        };
        let (old, old_note) = match req.old {
            None => (None, None),
            Some(d) => match self.facts(r, d, None, platform.as_ref()).await {
                Ok(f) => {
                    let note = (platform.is_some() && f.packages.is_none()).then(|| {
                        "a pin of one platform's image does not say which index (and so which \
                         attestations) it came from"
                            .to_string()
                    });
                    (Some(f), note)
                }
                Err(RegistryError::NotFound { .. }) => (
                    None,
                    Some("the pinned image is no longer in the registry".to_string()),
                ),
                Err(e) => return failed(e),
            },
        };
        Details::Known {
            old,
            old_note,
            new,
            platform_note,
            vulns: None,
        }
    }

    /// One image's facts, cached by digest (and platform and index hint).
    async fn facts(
        &self,
        r: &Reference,
        d: &Digest,
        index_hint: Option<&Digest>,
        platform: Option<&Platform>,
    ) -> Result<Arc<ImageFacts>, RegistryError> {
        let key = (
            format!("{}/{}", r.registry, r.repository),
            d.to_string(),
            platform.map(|p| p.to_string()).unwrap_or_default(),
            index_hint.map(|i| i.to_string()).unwrap_or_default(),
        );
        let ttl = self.config().cache_ttl;
        self.inner
            .facts
            .get_or_fetch(
                key,
                move |v: &Result<Arc<ImageFacts>, RegistryError>| match v {
                    Ok(_) => Duration::MAX,
                    Err(RegistryError::BudgetExhausted { .. }) => Duration::ZERO,
                    Err(_) => ttl,
                },
                None,
                || async {
                    self.fetch_facts(r, d, index_hint, platform)
                        .await
                        .map(Arc::new)
                },
            )
            .await
    }

    /// One image's facts, read in the order of its decisions: where the image and its
    /// annotations are, whether labels are needed, whether an attestation manifest exists,
    /// and which of its layers to read.
    async fn fetch_facts(
        &self,
        r: &Reference,
        d: &Digest,
        index_hint: Option<&Digest>,
        platform: Option<&Platform>,
    ) -> Result<ImageFacts, RegistryError> {
        let at = match self.locate_in_hint(r, d, index_hint, platform).await? {
            Some(at) => at,
            None => self.locate(r, d, platform).await?,
        };
        let mut facts = ImageFacts {
            platform: at.platform,
            ..ImageFacts::default()
        };
        fill(&mut facts, &at.annotations);
        let Some(image) = at.image else {
            return Ok(facts);
        };
        self.fill_labels(r, &image, &mut facts).await?;
        let Some(index) = at.index else {
            return Ok(facts);
        };
        let Some(att) = self.attestation_manifest(r, &index, &image).await? else {
            return Ok(facts);
        };
        self.read_attestations(r, &att, &mut facts).await?;
        Ok(facts)
    }

    /// A platform image with its index known: the index's entry has the annotations, so
    /// the image's own manifest (a pull) is not needed for them. `None` when the index does
    /// not list the image.
    async fn locate_in_hint(
        &self,
        r: &Reference,
        d: &Digest,
        index_hint: Option<&Digest>,
        platform: Option<&Platform>,
    ) -> Result<Option<Located>, RegistryError> {
        let Some(i) = index_hint else {
            return Ok(None);
        };
        let Manifest::Index(idx) = self.manifest_as(r, i, Spender::Details, None).await? else {
            return Ok(None);
        };
        let Some(entry) = idx.manifests.iter().find(|e| e.digest == d.to_string()) else {
            return Ok(None);
        };
        let mut annotations = annotations_of(entry.annotations.as_ref());
        for (k, v) in annotations_of(idx.annotations.as_ref()) {
            annotations.entry(k).or_insert(v);
        }
        Ok(Some(Located {
            image: Some(d.clone()),
            index: Some(idx.clone()),
            annotations,
            platform: platform.map(|p| p.to_string()),
        }))
    }

    /// The image from its own manifest: an index's platform entry (the pinned platform, or
    /// linux/amd64 or the first), or the image manifest itself.
    async fn locate(
        &self,
        r: &Reference,
        d: &Digest,
        platform: Option<&Platform>,
    ) -> Result<Located, RegistryError> {
        match self.manifest_as(r, d, Spender::Details, None).await? {
            Manifest::Index(index) => {
                let entries = platform_entries(&index);
                let Some((p, pd)) = pick_platform(&entries, platform).cloned() else {
                    // No platform image: the index's own annotations are all there is.
                    return Ok(Located {
                        image: None,
                        index: None,
                        annotations: annotations_of(index.annotations.as_ref()),
                        platform: None,
                    });
                };
                // The entry's annotations are about this platform's image; the index's
                // about all of them.
                let mut annotations = index
                    .manifests
                    .iter()
                    .find(|e| e.digest == pd.to_string())
                    .map(|e| annotations_of(e.annotations.as_ref()))
                    .unwrap_or_default();
                for (k, v) in annotations_of(index.annotations.as_ref()) {
                    annotations.entry(k).or_insert(v);
                }
                Ok(Located {
                    image: Some(pd),
                    index: Some(index),
                    annotations,
                    platform: Some(p.to_string()),
                })
            }
            Manifest::Image(m) => Ok(Located {
                image: Some(d.clone()),
                index: None,
                annotations: annotations_of(m.annotations.as_ref()),
                platform: None,
            }),
        }
    }

    /// Labels only when annotations lack the source: a manifest GET and a blob GET.
    async fn fill_labels(
        &self,
        r: &Reference,
        image: &Digest,
        facts: &mut ImageFacts,
    ) -> Result<(), RegistryError> {
        if facts.revision.is_some() && facts.source.is_some() {
            return Ok(());
        }
        let config = self.config_of(r, image, Spender::Details, None).await?;
        let labels = config.config.as_ref().and_then(|c| c.labels.as_ref());
        let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
        facts.revision = facts.revision.take().or(label(ANN_REVISION));
        facts.source = facts.source.take().or(label(ANN_SOURCE));
        Ok(())
    }

    /// The attestation manifest BuildKit put in the index for `image`, if any.
    async fn attestation_manifest(
        &self,
        r: &Reference,
        index: &OciImageIndex,
        image: &Digest,
    ) -> Result<Option<Arc<OciImageManifest>>, RegistryError> {
        let attestation = index.manifests.iter().find(|e| {
            e.annotations.as_ref().is_some_and(|a| {
                a.get(REF_TYPE).map(String::as_str) == Some("attestation-manifest")
                    && a.get(REF_DIGEST) == Some(&image.to_string())
            })
        });
        let Some(att) = attestation else {
            return Ok(None);
        };
        let att_digest = Digest::parse(&att.digest).map_err(|message| RegistryError::Invalid {
            host: self.inner.http.endpoint(&r.registry).host,
            message,
        })?;
        match self
            .manifest_as(r, &att_digest, Spender::Details, None)
            .await?
        {
            Manifest::Image(m) => Ok(Some(m)),
            Manifest::Index(_) => Ok(None),
        }
    }

    /// The SBOM and provenance layers of an attestation manifest (blobs, not pulls), the
    /// first of each; an unreadable SBOM is noted, an unreadable provenance skipped.
    async fn read_attestations(
        &self,
        r: &Reference,
        att: &OciImageManifest,
        facts: &mut ImageFacts,
    ) -> Result<(), RegistryError> {
        for layer in &att.layers {
            let t = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(PREDICATE_TYPE))
                .map(String::as_str)
                .unwrap_or_default();
            let want_sbom = sbom::is_sbom_predicate(t) && facts.packages.is_none();
            let want_prov = provenance::is_provenance_predicate(t) && facts.provenance.is_none();
            if !want_sbom && !want_prov {
                continue;
            }
            let Ok(ld) = Digest::parse(&layer.digest) else {
                continue;
            };
            let body = match self.blob(r, &ld, MAX_ATTESTATION, "blob").await {
                Ok(b) => b,
                Err(e @ RegistryError::BudgetExhausted { .. }) => return Err(e),
                Err(e) if want_sbom => {
                    facts.sbom_error = Some(e.to_string());
                    continue;
                }
                Err(_) => continue,
            };
            if want_sbom {
                match sbom::parse_statement(&body) {
                    Ok(p) => facts.packages = Some(p),
                    Err(e) => facts.sbom_error = Some(e.to_string()),
                }
            } else {
                facts.provenance = provenance::parse_statement(&body);
            }
        }
        Ok(())
    }
}

/// Where an image's facts are found.
struct Located {
    /// The image (a platform's, for an index); `None` for an index without one.
    image: Option<Digest>,
    /// The index that lists it (and its attestations).
    index: Option<Arc<OciImageIndex>>,
    annotations: BTreeMap<String, String>,
    platform: Option<String>,
}

fn fill(facts: &mut ImageFacts, ann: &BTreeMap<String, String>) {
    let get = |k: &str| ann.get(k).filter(|v| !v.trim().is_empty()).cloned();
    facts.source = get(ANN_SOURCE);
    facts.revision = get(ANN_REVISION);
    facts.base_name = get(ANN_BASE_NAME);
    facts.base_digest = get(ANN_BASE_DIGEST);
}

fn failed(e: RegistryError) -> Details {
    match e {
        RegistryError::BudgetExhausted { host } => Details::Deferred { host },
        e => Details::Failed {
            message: e.to_string(),
        },
    }
}
