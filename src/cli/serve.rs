//! `digestif serve`: run the GitHub App server — or, while no App is configured, the
//! registration page (setup mode), switching to serving once the App is registered.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::EXIT_ERROR;
use crate::clock::SystemClock;
use crate::registry::RegistryConfig;
use crate::server::{Server, Tuning};
use crate::server_settings::{OpsSettings, ServeArgs, Settings, SettingsError};
use crate::web::setup::{self, SetupState};

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(serve(args))
}

fn usage(e: SettingsError) -> anyhow::Result<ExitCode> {
    eprintln!("digestif: {e}");
    Ok(ExitCode::from(EXIT_ERROR))
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let Checked {
        bind,
        mut args,
        ops,
        settings,
    } = match check_settings(args) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    // One socket for both phases: setup mode and the server after it take turns on it,
    // so connections made during the switch wait in its backlog instead of being refused.
    let socket = std::net::TcpListener::bind(bind)
        .with_context(|| format!("DIGESTIF_BIND: cannot listen on {bind}"))?;
    socket.set_nonblocking(true)?;
    let listener = || -> anyhow::Result<tokio::net::TcpListener> {
        Ok(tokio::net::TcpListener::from_std(socket.try_clone()?)?)
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    if !args.has_app() {
        let local = socket.local_addr().unwrap_or(bind);
        if !register_app(&args, &ops, local, listener()?, shutdown.clone()).await? {
            // Stopped by a signal before anything was registered.
            return Ok(ExitCode::SUCCESS);
        }
        if let Err(e) = args.fill_from_credentials_file() {
            return usage(e);
        }
    }
    run_server(&args, settings, ops, listener()?, shutdown).await
}

/// The settings `serve` checked before listening.
struct Checked {
    bind: std::net::SocketAddr,
    args: ServeArgs,
    ops: OpsSettings,
    /// With an App configured, every setting, checked before anything listens; without
    /// one, checked once setup mode has registered it.
    settings: Option<Settings>,
}

fn check_settings(args: ServeArgs) -> Result<Checked, SettingsError> {
    let Ok(bind) = args.bind.parse::<std::net::SocketAddr>() else {
        return Err(SettingsError {
            setting: "DIGESTIF_BIND",
            message: format!("{:?} is not an address like 0.0.0.0:3000", args.bind),
        });
    };
    let mut args = args;
    args.fill_from_credentials_file()?;
    let ops = OpsSettings::from_args(&args)?;
    let settings = match args.has_app() {
        true => Some(Settings::from_args(&args)?),
        false => None,
    };
    Ok(Checked {
        bind,
        args,
        ops,
        settings,
    })
}

/// Setup mode: serves the registration page until an App is registered (true) or a
/// signal stops it first (false).
async fn register_app(
    args: &ServeArgs,
    ops: &OpsSettings,
    local: std::net::SocketAddr,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<bool> {
    let (token, printed) = match &ops.admin_token {
        Some(t) => (t.clone(), false),
        None => (hex::encode(rand::random::<[u8; 16]>()), true),
    };
    let base = ops.public_url.clone().unwrap_or_else(|| {
        let shown = if local.ip().is_unspecified() {
            std::net::SocketAddr::new([127, 0, 0, 1].into(), local.port())
        } else {
            local
        };
        format!("http://{shown}")
    });
    let shown_token = if printed {
        token.as_str()
    } else {
        "<DIGESTIF_ADMIN_TOKEN>"
    };
    eprintln!(
        "digestif: no GitHub App is configured (DIGESTIF_GITHUB_APP_ID, or {}).\n\
         digestif: register one: open {base}/setup?token={shown_token}",
        ops.credentials_file.display()
    );
    let state = Arc::new(SetupState::new(
        &args.github_api_url,
        &ops.github_web_url,
        ops.public_url.clone(),
        ops.credentials_file.clone(),
        token,
    ));
    setup::serve(listener, state.clone(), shutdown)
        .await
        .context("setup server")?;
    let Some(registered) = state.registered() else {
        return Ok(false);
    };
    eprintln!(
        "digestif: GitHub App {} (id {}) registered; its credentials are in {}. Starting.",
        registered.slug,
        registered.app_id,
        registered.file.display()
    );
    Ok(true)
}

/// The App server proper, until `shutdown`.
async fn run_server(
    args: &ServeArgs,
    checked: Option<Settings>,
    ops: OpsSettings,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let settings = match checked.map_or_else(|| Settings::from_args(args), Ok) {
        Ok(s) => s,
        Err(e) => return usage(e),
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
    let tuning = Tuning {
        job_lease: ops.job_lease,
        webhook_batch: ops.webhook_batch,
        ..Tuning::default()
    };
    let server = Server::build(settings, registry, Arc::new(SystemClock), tuning)
        .await?
        .with_ops(ops);
    server.run(listener, shutdown).await?;
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
