//! The HTTP/1.1 server under the router, with the limits a port open to the internet needs.
//!
//! The webhook port faces everyone, so a stranger must cost almost nothing: connections are
//! capped (a semaphore taken *before* `accept`, so extra connections wait in the kernel's
//! backlog rather than in our memory), a connection must send a request's complete headers
//! within `header_timeout` of opening or of its previous response (hyper arms one timer for
//! both, so this is also the keep-alive idle timeout), and headers and hyper's read buffer
//! are capped. Only HTTP/1.1 is spoken: GitHub delivers with it, and HTTP/2's many streams
//! per connection would need limits of their own. Body reading has its own deadline and byte budget
//! ([`super::intake`]). `axum::serve` offers none of these knobs, hence this loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits of the HTTP server; the defaults are the production values.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Time a connection has to send a request's headers, from the moment it opens or its
    /// previous response was sent (the keep-alive idle timeout too).
    pub header_timeout: Duration,
    /// Time a webhook request has, from its headers, to wait for budget and send its body.
    pub body_timeout: Duration,
    /// Webhook body bytes held in memory at once, across all connections.
    pub body_budget: usize,
}

/// Request headers longer than this are answered 431, and hyper's read buffer is capped at
/// it; GitHub's headers are under 2 KiB. hyper's default (about 400 KiB) would let each of
/// `max_connections` hold that much with headers alone.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            // GitHub gives up on a delivery after 10 s, so a body still arriving by then is
            // not GitHub's.
            body_timeout: Duration::from_secs(10),
            // One payload as large as GitHub sends (25 MB) plus room for ordinary ones.
            body_budget: 32 * 1024 * 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets the
/// open connections finish their requests and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES);
    let service = TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection =
            graceful.watch(builder.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            // Timeouts and resets end connections all the time; nothing to report.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
