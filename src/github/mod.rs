//! GitHub: webhook deliveries in, REST calls out (as the App and as its installations).

pub mod api;
pub mod issues;
pub mod repo;
pub mod webhook;

pub use api::{Api, ApiError, GitHubApp, RetryPolicy};
