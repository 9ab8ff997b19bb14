//! GitHub: webhook deliveries in, REST calls out (as the App and as its installations).

pub mod api;
pub mod apps;
pub mod checks;
pub mod git;
pub mod graphql;
pub mod issues;
pub mod pulls;
pub mod repo;
pub mod webhook;

pub use api::{Api, ApiError, GitHubApp, RetryPolicy};
