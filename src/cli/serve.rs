//! `digestif serve`: run the GitHub App server.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::EXIT_ERROR;
use crate::registry::RegistryConfig;
use crate::schedule::SystemClock;
use crate::server::{Server, Tuning};
use crate::settings::{ServeArgs, Settings};

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = match Settings::from_args(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("digestif: {e}");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
    };
    let mut registry = match RegistryConfig::from_env() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("digestif: {e}");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
    };
    // Strangers' files name the registries: the server never talks to private addresses
    // unless the operator allows a host (DIGESTIF_ALLOW_PRIVATE_REGISTRIES).
    registry.ssrf_guard = true;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("DIGESTIF_BIND: cannot listen on {}", settings.bind))?;
        let server =
            Server::build(settings, registry, Arc::new(SystemClock), Tuning::default()).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        server.run(listener, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (what container runtimes send) or Ctrl-C starts a graceful shutdown.
async fn stop_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
