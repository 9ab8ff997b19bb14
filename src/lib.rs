//! digestif: keeps container image references pinned by digest.
pub mod edit;
pub mod extract;
pub mod reference;
pub mod cli;
pub mod scan;
