//! The HTTP server: webhook intake, health endpoints, `/metrics`, the status page (`/`) and
//! App registration (`/setup`).
//!
//! The webhook handler does no GitHub or registry call: it checks the signature, parses,
//! records the delivery and its jobs (in one transaction with the other deliveries that
//! arrived together, see `store::deliveries`) and answers 202 once that committed. Everything else
//! happens in the job workers, so a slow GitHub never makes GitHub's webhook time out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use tracing::Instrument as _;

use crate::clock::Clock;
use crate::github::webhook::{self, WebhookError};
use crate::jobs;
use crate::metrics::WebhookOutcome;
use crate::store::{DeliveryQueue, NewDelivery, Store};

mod admin;
pub mod connections;
pub mod intake;
mod prometheus;
pub mod setup;
mod status;

pub use admin::{ADMIN_SESSION, OpsState, SessionLifetime};
pub use connections::{Limits, serve};

/// The largest webhook body accepted for any event (GitHub's cap); most events get less
/// (see [`webhook::body_limit`]).
pub const MAX_BODY: usize = webhook::MAX_PAYLOAD;

#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub webhook_secret: Arc<[u8]>,
    pub clock: Arc<dyn Clock>,
    /// The App's credentials loaded and checked (for `/readyz`).
    pub app_ready: Arc<AtomicBool>,
    /// Operator settings: admin token, previous webhook secret, GitHub's web address.
    pub ops: Arc<OpsState>,
    /// Webhook body limits, budget and refusal log.
    pub intake: Arc<intake::Intake>,
    /// Records deliveries, batched (group commit).
    pub deliveries: DeliveryQueue,
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/webhooks/github", post(github_webhook))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(status::page))
        .route("/metrics", get(prometheus::scrape))
        .route("/setup", get(setup::disabled))
        .route("/setup/callback", get(setup::disabled))
        .with_state(state)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn github_webhook(State(state): State<WebState>, headers: HeaderMap, body: Body) -> Response {
    // Attacker-controlled until the signature is checked: shortened for the logs.
    let delivery = header(&headers, "x-github-delivery").unwrap_or("");
    let event = header(&headers, "x-github-event").unwrap_or("");
    let span = tracing::info_span!(
        "webhook",
        delivery = %intake::shorten(delivery, intake::MAX_LOGGED_VALUE),
        event = %intake::shorten(event, intake::MAX_LOGGED_VALUE),
        installation = tracing::field::Empty,
        repo = tracing::field::Empty,
    );
    let (outcome, response) = async {
        let delivered = match state.intake.read_body(event, &headers, body).await {
            Ok(d) => d,
            Err(refused) => {
                state.intake.log_refusal(
                    refused.response.status(),
                    &refused.reason,
                    delivery,
                    event,
                );
                return (refused.outcome, refused.response);
            }
        };
        intake(&state, &headers, delivery, event, &delivered.body).await
    }
    .instrument(span)
    .await;
    crate::metrics::webhook(event, outcome);
    response
}

async fn intake(
    state: &WebState,
    headers: &HeaderMap,
    delivery: &str,
    event: &str,
    body: &Bytes,
) -> (WebhookOutcome, Response) {
    if let Err(refused) = check_signature(state, headers, delivery, event, body) {
        return refused.answer();
    }
    if delivery.is_empty() || event.is_empty() {
        return (
            WebhookOutcome::Invalid,
            (
                StatusCode::BAD_REQUEST,
                "missing X-GitHub-Delivery or X-GitHub-Event header",
            )
                .into_response(),
        );
    }
    let envelope = webhook::envelope(body);
    name_in_span(&envelope);
    let parsed = match parse_event(event, body) {
        Ok(p) => p,
        Err(refused) => return refused.answer(),
    };
    let action = envelope.action;
    let work = jobs::for_event(&parsed);
    let new_jobs: Vec<_> = work.iter().map(jobs::Work::to_job).collect();
    let count = new_jobs.len();
    // Answered once the batch holding this delivery committed: no ack before it is durable.
    let recorded = state
        .deliveries
        .record(NewDelivery {
            id: delivery.to_string(),
            event: event.to_string(),
            action,
            jobs: new_jobs,
            now: state.clock.now(),
        })
        .await;
    answer_recorded(recorded, count)
}

/// GitHub signed the body with the webhook secret, or with the previous one while it is
/// rotated out; otherwise the delivery is refused (401) and logged.
fn check_signature(
    state: &WebState,
    headers: &HeaderMap,
    delivery: &str,
    event: &str,
    body: &Bytes,
) -> Result<(), Refusal> {
    let signature = header(headers, "x-hub-signature-256");
    let mut verified = webhook::verify_signature(&state.webhook_secret, signature, body);
    if verified.is_err()
        && let Some(previous) = &state.ops.previous_webhook_secret
        && webhook::verify_signature(previous, signature, body).is_ok()
    {
        // Signed with the secret being rotated out: still GitHub (see README, rotation).
        tracing::info!("webhook signed with DIGESTIF_WEBHOOK_SECRET_PREVIOUS");
        verified = Ok(());
    }
    verified.map_err(|e| {
        state
            .intake
            .log_refusal(StatusCode::UNAUTHORIZED, &e.to_string(), delivery, event);
        Refusal {
            outcome: WebhookOutcome::BadSignature,
            status: StatusCode::UNAUTHORIZED,
            message: e.to_string(),
        }
    })
}

/// A delivery answered before it is recorded: what the metrics count, and the answer.
struct Refusal {
    outcome: WebhookOutcome,
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn answer(self) -> (WebhookOutcome, Response) {
        (self.outcome, (self.status, self.message).into_response())
    }
}

/// Names the installation and repository in the request's log span.
fn name_in_span(e: &webhook::Envelope) {
    let span = tracing::Span::current();
    if let Some(id) = e.installation {
        span.record("installation", id);
    }
    if let Some(name) = &e.repository {
        span.record("repo", name.as_str());
    }
}

/// The event, or the answer for a payload that is not one: 422 when GitHub signed
/// something we do not understand, 400 for the rest.
fn parse_event(event: &str, body: &Bytes) -> Result<webhook::Event, Refusal> {
    match webhook::parse(event, body) {
        Ok(p) => Ok(p),
        Err(e @ WebhookError::Payload { .. }) => {
            // Signed by GitHub but not what we expect: say so, keep nothing half-done.
            tracing::warn!(error = %e, "webhook payload not understood");
            Err(Refusal {
                outcome: WebhookOutcome::Invalid,
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: e.to_string(),
            })
        }
        Err(e) => Err(Refusal {
            outcome: WebhookOutcome::Invalid,
            status: StatusCode::BAD_REQUEST,
            message: e.to_string(),
        }),
    }
}

/// The answer once the store recorded the delivery with its jobs (202), knew it already
/// (a redelivery, 202), or could not record it (503: GitHub shows the failure and the
/// operator can redeliver; nothing was recorded).
fn answer_recorded<E: std::fmt::Display>(
    recorded: Result<bool, E>,
    jobs: usize,
) -> (WebhookOutcome, Response) {
    match recorded {
        Ok(true) => {
            tracing::info!(jobs, "webhook accepted");
            (
                WebhookOutcome::Accepted,
                (StatusCode::ACCEPTED, format!("accepted, {jobs} job(s)")).into_response(),
            )
        }
        Ok(false) => {
            tracing::info!("redelivery ignored");
            (
                WebhookOutcome::Redelivery,
                (StatusCode::ACCEPTED, "already received").into_response(),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook could not be recorded");
            (
                WebhookOutcome::Error,
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "could not record the delivery",
                )
                    .into_response(),
            )
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<WebState>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = state.store.ping().await {
        problems.push(format!("database: {e}"));
    } else {
        match state.store.applied_migrations().await {
            Ok(applied) => {
                let missing: Vec<i64> = state
                    .store
                    .migrator()
                    .iter()
                    .map(|m| m.version)
                    .filter(|v| !applied.contains(v))
                    .collect();
                if !missing.is_empty() {
                    problems.push(format!("migrations not applied: {missing:?}"));
                }
            }
            Err(e) => problems.push(format!("migrations: {e}")),
        }
    }
    if !state.app_ready.load(Ordering::Relaxed) {
        problems.push("GitHub App credentials not loaded".to_string());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n")).into_response()
    }
}
