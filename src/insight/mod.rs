//! What changed inside an image between the pinned digest and the proposed one: the source
//! revision (labels, annotations or provenance), the base image, the builder, and the
//! packages its SBOM attestations list. Pure data and functions: the registry module fetches
//! the documents, [`section`] turns these facts into the PR body's Markdown.

pub mod osv;
pub mod provenance;
pub mod sbom;
pub mod section;

use std::sync::Arc;

pub use provenance::Provenance;
pub use sbom::{Package, PackageDiff};

/// What one image says about itself (one side of an update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// The platform whose attestations were read (`linux/amd64`); `None` when the image
    /// has no index to find them in.
    pub platform: Option<String>,
    /// `org.opencontainers.image.source` (index or manifest annotation, else config label).
    pub source: Option<String>,
    /// `org.opencontainers.image.revision`, from the same places.
    pub revision: Option<String>,
    /// `org.opencontainers.image.base.name` / `.base.digest` annotations.
    pub base_name: Option<String>,
    pub base_digest: Option<String>,
    /// The SBOM's packages; `None` when no SBOM attestation was published.
    pub packages: Option<Vec<Package>>,
    /// An SBOM attestation exists but could not be read.
    pub sbom_error: Option<String>,
    pub provenance: Option<Provenance>,
}

impl ImageFacts {
    /// True when the image publishes nothing this module can use.
    pub fn is_empty(&self) -> bool {
        self.source.is_none()
            && self.revision.is_none()
            && self.base_name.is_none()
            && self.base_digest.is_none()
            && self.packages.is_none()
            && self.sbom_error.is_none()
            && self
                .provenance
                .as_ref()
                .is_none_or(|p| p.builder.is_none() && p.source.is_none() && p.revision.is_none())
    }

    /// The source repository: label or annotation, else the provenance's.
    pub fn source(&self) -> Option<&str> {
        self.source
            .as_deref()
            .or(self.provenance.as_ref().and_then(|p| p.source.as_deref()))
    }

    /// The source revision: label or annotation, else the provenance's.
    pub fn revision(&self) -> Option<&str> {
        self.revision
            .as_deref()
            .or(self.provenance.as_ref().and_then(|p| p.revision.as_deref()))
    }

    /// True when source and revision came from the provenance, not labels.
    pub fn source_from_provenance(&self) -> bool {
        self.source.is_none() && self.revision.is_none() && self.revision().is_some()
    }
}

/// What digestif could learn about an update beyond the digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Details {
    Known {
        /// `None` when the old image cannot be read (deleted from the registry, or a
        /// platform pin whose index is unknown); `old_note` says why.
        old: Option<Arc<ImageFacts>>,
        old_note: Option<String>,
        new: Arc<ImageFacts>,
        /// Why this platform was read: an index pin reads linux/amd64 (or the first).
        platform_note: Option<String>,
        /// Advisories the update fixes; `None` when OSV is not asked (`DIGESTIF_OSV_URL`
        /// unset, or no package removed or upgraded).
        vulns: Option<osv::VulnNotes>,
    },
    /// The registry's pull budget is used up: the PR says details will follow, and the
    /// next run adds them.
    Deferred { host: String },
    /// Reading failed (the registry erred); the PR carries on without.
    Failed { message: String },
}

impl Details {
    pub fn is_deferred(&self) -> bool {
        matches!(self, Details::Deferred { .. })
    }
}
