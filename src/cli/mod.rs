//! Command-line interface: one submodule per subcommand.

pub mod config;
pub mod db;
pub mod healthcheck;
pub mod resolve;
pub mod scan;
pub mod serve;
pub mod update;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "digestif",
    version,
    about = "Keeps container image references pinned by digest"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the image references in a directory tree, and what their registries say.
    Scan(scan::ScanArgs),
    /// Rewrite stale digests (and with --pin, pin tag-only references) in place.
    Update(update::UpdateArgs),
    /// Validate a repository configuration file (.github/digestif.yml).
    CheckConfig(config::CheckConfigArgs),
    /// Print the JSON Schema of the repository configuration file.
    ConfigSchema,
    /// Create or upgrade the database schema.
    Migrate(db::MigrateArgs),
    /// List the repositories digestif watches: installation, last and next scan, status.
    Repos(db::ReposArgs),
    /// List the job queue (or only dead jobs) for operators.
    Jobs(db::JobsArgs),
    /// Enqueue a scan of OWNER/REPO now (works beside a running server); it asks the
    /// registries afresh instead of reusing answers from the last 5 minutes.
    Trigger(db::TriggerArgs),
    /// Run the GitHub App server (webhooks, scheduled scans, job workers); with no App
    /// configured, serve /setup to register one.
    Serve(Box<crate::settings::ServeArgs>),
    /// Exit 0 when the server's health endpoint answers 200 (for container health checks).
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// Output format for commands a script may read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Exit codes: 0 ok, 1 findings with `--check`, 2 usage or I/O error.
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Scan(args) => scan::run(args),
            Command::Update(args) => update::run(args),
            Command::CheckConfig(args) => config::check(args),
            Command::ConfigSchema => config::schema(),
            Command::Migrate(args) => db::migrate(args),
            Command::Jobs(args) => db::jobs(args),
            Command::Repos(args) => db::repos(args),
            Command::Trigger(args) => db::trigger(args),
            Command::Healthcheck(args) => healthcheck::run(args),
            Command::Serve(args) => serve::run(*args),
        }
    }
}
