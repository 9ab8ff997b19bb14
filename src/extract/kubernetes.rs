//! Placeholder until the extractor lands.
use super::{Extraction, Source};

pub fn extract(_source: &Source<'_>) -> Extraction {
    Extraction::default()
}

pub fn looks_like_manifest(text: &str) -> bool {
    text.contains("apiVersion") && text.contains("kind")
}
