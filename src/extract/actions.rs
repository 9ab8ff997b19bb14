//! Placeholder until the extractor lands.
use super::{Extraction, Source};

pub fn extract(_source: &Source<'_>) -> Extraction {
    Extraction::default()
}
