//! Shared test support. Each integration test binary includes this with `mod support;`
//! and uses only part of it, so unused items are expected here, not a sign of dead code.
#![allow(dead_code)]

pub mod app;
pub mod backends;
pub mod fake_github;
pub mod osv;
pub mod registry;
