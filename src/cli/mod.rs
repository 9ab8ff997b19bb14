//! Command-line interface: one submodule per subcommand.

pub mod check_config;
pub mod db;
pub mod healthcheck;
pub mod resolve;
pub mod scan;
pub mod serve;
pub mod update;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

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
    CheckConfig(check_config::CheckConfigArgs),
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
    Serve(Box<crate::server_settings::ServeArgs>),
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

/// The setting whose value may hold a password (`postgres://user:password@host/db`).
const DATABASE_URL_ENV: &str = "DIGESTIF_DATABASE_URL";

impl Cli {
    /// Parses the command line (exiting on errors and for `--help`, like `Cli::parse`).
    pub fn from_command_line() -> Cli {
        let matches =
            Cli::command_with_redacted_help(std::env::var(DATABASE_URL_ENV).ok()).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// The command, with `--help` showing `DIGESTIF_DATABASE_URL`'s value (`env_value`) with
    /// its password hidden, as errors show it. clap would print the value as it is, and
    /// `--help` output ends up in terminals, CI logs and bug reports.
    pub fn command_with_redacted_help(env_value: Option<String>) -> clap::Command {
        let shown = match env_value {
            Some(v) => format!(
                "[env: {DATABASE_URL_ENV}={}]",
                crate::server_settings::redact_url(&v)
            ),
            None => format!("[env: {DATABASE_URL_ENV}=]"),
        };
        let mut cmd = Cli::command();
        let names: Vec<String> = cmd
            .get_subcommands()
            .filter(|sc| {
                sc.get_arguments()
                    .any(|a| a.get_env().is_some_and(|e| e == DATABASE_URL_ENV))
            })
            .map(|sc| sc.get_name().to_string())
            .collect();
        for name in names {
            cmd = cmd.mut_subcommand(&name, |sc| {
                let ids: Vec<clap::Id> = sc
                    .get_arguments()
                    .filter(|a| a.get_env().is_some_and(|e| e == DATABASE_URL_ENV))
                    .map(|a| a.get_id().clone())
                    .collect();
                ids.into_iter().fold(sc, |sc, id| {
                    sc.mut_arg(id, |a| {
                        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                        a.hide_env(true).help(format!("{help} {shown}"))
                    })
                })
            });
        }
        cmd
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Scan(args) => scan::run(args),
            Command::Update(args) => update::run(args),
            Command::CheckConfig(args) => check_config::check(args),
            Command::ConfigSchema => check_config::schema(),
            Command::Migrate(args) => db::migrate(args),
            Command::Jobs(args) => db::jobs(args),
            Command::Repos(args) => db::repos(args),
            Command::Trigger(args) => db::trigger(args),
            Command::Healthcheck(args) => healthcheck::run(args),
            Command::Serve(args) => serve::run(*args),
        }
    }
}
