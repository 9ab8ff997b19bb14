//! `digestif check-config FILE` and `digestif config-schema`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::EXIT_FINDINGS;
use crate::local_scan::{Capped, read_capped};
use crate::repo_config::{Limits, MAX_CONFIG_SIZE, RepoConfig, json_schema, too_large};

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The configuration file, e.g. .github/digestif.yml.
    pub file: PathBuf,
    /// The server's least time between two scans of a repository: a `schedule` that runs
    /// more often, or never, is an error (the same check the server makes).
    #[arg(long, env = "DIGESTIF_MIN_SCHEDULE_INTERVAL", default_value = "1h")]
    pub min_schedule_interval: String,
}

/// Prints every problem as `FILE:LINE:COLUMN: message`; exit 1 when there is one.
pub fn check(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let name = args.file.display();
    let limits = Limits {
        min_schedule_interval: crate::server_settings::min_schedule_interval(
            &args.min_schedule_interval,
        )?,
    };
    // The server's cap, checked the same way: a file it would refuse is refused here.
    let parsed = match read_capped(&args.file, MAX_CONFIG_SIZE as usize)
        .with_context(|| format!("cannot read {name}"))?
    {
        Capped::Bytes(bytes) => {
            let text = String::from_utf8(bytes)
                .with_context(|| format!("cannot read {name}: not UTF-8"))?;
            RepoConfig::parse_with(&text, &limits)
        }
        Capped::TooLarge(_) => Err(too_large()),
    };
    match parsed {
        Ok(_) => {
            println!("{name}: ok");
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            let stderr = std::io::stderr();
            let mut err = stderr.lock();
            for e in &errors.0 {
                match (e.line, e.column) {
                    (Some(l), Some(c)) => writeln!(err, "{name}:{l}:{c}: {}", e.message)?,
                    (Some(l), None) => writeln!(err, "{name}:{l}: {}", e.message)?,
                    _ => writeln!(err, "{name}: {}", e.message)?,
                }
            }
            Ok(ExitCode::from(EXIT_FINDINGS))
        }
    }
}

pub fn schema() -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&json_schema())?);
    Ok(ExitCode::SUCCESS)
}
