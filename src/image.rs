//! What an image says about itself on its face, for the update table of a PR body: its
//! platforms, when it was built, and the source and revision it names. Pure data: the
//! registry module reads it from the image's index, manifest or config and the plan carries
//! it to the renderer. (What changed *inside* the image — packages, base, builder — is
//! [`crate::insight`]'s.)

use serde::Serialize;

/// One image's table facts (the new side of an update).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// `os/arch[/variant]` of each platform (one for a single-platform image).
    pub platforms: Vec<String>,
    /// The config's `created` time, as written.
    pub created: Option<String>,
    /// Label `org.opencontainers.image.revision`.
    pub revision: Option<String>,
    /// Label `org.opencontainers.image.source`.
    pub source: Option<String>,
}
