//! digestif: keeps container image references pinned by digest.
pub mod cli;
pub mod edit;
pub mod extract;
pub mod github;
pub mod jobs;
pub mod metrics;
pub mod plan;
pub mod reference;
pub mod registry;
pub mod render;
pub mod repo_config;
pub mod scan;
pub mod schedule;
pub mod server;
pub mod settings;
pub mod store;
pub mod web;
