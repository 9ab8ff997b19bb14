use std::process::ExitCode;

use clap::Parser;
use digestif::cli::{Cli, EXIT_ERROR};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DIGESTIF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("digestif: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
