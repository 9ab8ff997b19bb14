//! Reading a webhook delivery's body within limits, and logging refusals so that strangers
//! can neither fill the memory nor the log.
//!
//! Before a byte of body is read: the event's size limit is checked against
//! `Content-Length` (required; GitHub always sends it), and a body larger than
//! [`SMALL_BODY`] reserves that many bytes from a budget shared by all connections. The whole body must then arrive before a
//! deadline. A request refused before its body was read is answered at once; what it still
//! sends is read and dropped (never kept) until the deadline, so the client sees the answer
//! instead of a reset.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::connections::Limits;
use crate::github::webhook;
use crate::metrics::WebhookOutcome;

/// Longest header value (delivery id, event name) shown in a log line; GitHub's are a GUID
/// and a short name.
pub const MAX_LOGGED_VALUE: usize = 64;

/// Bodies up to this size are read without reserving budget: with the connection cap
/// (256) they hold at most 16 MiB together.
pub const SMALL_BODY: usize = 64 * 1024;

/// Refusals logged per minute; the rest are counted and the count is shown on the next line.
pub const REFUSALS_LOGGED_PER_MINUTE: u32 = 10;

/// The webhook endpoint's limits and its shared body budget.
pub struct Intake {
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    body_timeout: Duration,
    refusals: RefusalLog,
}

/// A refused delivery: what to count and what to answer.
pub struct Refusal {
    pub outcome: WebhookOutcome,
    /// For the log line.
    pub reason: String,
    pub response: Response,
}

/// A body read within limits; its bytes stay reserved in the budget while this lives.
pub struct Delivered {
    pub body: Bytes,
    _reserved: Option<OwnedSemaphorePermit>,
}

impl Intake {
    pub fn new(limits: &Limits) -> Intake {
        let budget_bytes = limits.body_budget.min(Semaphore::MAX_PERMITS);
        Intake {
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            body_timeout: limits.body_timeout,
            refusals: RefusalLog::new(REFUSALS_LOGGED_PER_MINUTE, Duration::from_secs(60)),
        }
    }

    /// Reads the body of a delivery that claims to be `event`, or says why not.
    pub async fn read_body(
        &self,
        event: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Delivered, Refusal> {
        let deadline = Instant::now() + self.body_timeout;
        let limit = webhook::body_limit(event).min(self.budget_bytes);
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()));
        let len = match declared {
            None => {
                drain_until(body, deadline);
                return Err(refuse(
                    WebhookOutcome::Invalid,
                    StatusCode::LENGTH_REQUIRED,
                    "Content-Length required".into(),
                ));
            }
            Some(None) => {
                return Err(refuse(
                    WebhookOutcome::Invalid,
                    StatusCode::BAD_REQUEST,
                    "invalid Content-Length".into(),
                ));
            }
            Some(Some(n)) if n > limit as u64 => {
                drain_until(body, deadline);
                return Err(refuse(
                    WebhookOutcome::TooLarge,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a {event:?} delivery is at most {limit} bytes"),
                ));
            }
            Some(Some(n)) => n as usize,
        };
        // Small bodies (nearly every delivery) skip the budget: the connection cap bounds
        // them, and they must not queue behind a stranger's large reservation (the
        // semaphore is first come, first served).
        let reserved = if len <= SMALL_BODY {
            None
        } else {
            // `len` is at most the budget, which fits a u32 (see `body_limit`).
            let wanted = u32::try_from(len).unwrap_or(u32::MAX);
            match tokio::time::timeout_at(deadline, self.budget.clone().acquire_many_owned(wanted))
                .await
            {
                Ok(Ok(permit)) => Some(permit),
                Ok(Err(_)) | Err(_) => {
                    return Err(refuse(
                        WebhookOutcome::Overloaded,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many deliveries in flight; try again".into(),
                    ));
                }
            }
        };
        let read = async {
            let mut body = body;
            let mut buf = Vec::with_capacity(len);
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("reading the body: {e}"))?;
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > len {
                        return Err("body longer than its Content-Length".to_string());
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Ok(buf)
        };
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(buf)) => Ok(Delivered {
                body: Bytes::from(buf),
                _reserved: reserved,
            }),
            Ok(Err(message)) => Err(refuse(
                WebhookOutcome::Invalid,
                StatusCode::BAD_REQUEST,
                message,
            )),
            Err(_) => Err(refuse(
                WebhookOutcome::Timeout,
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    self.body_timeout.as_secs_f64()
                ),
            )),
        }
    }

    /// Logs a refused request at WARN, at most [`REFUSALS_LOGGED_PER_MINUTE`] lines a minute,
    /// with its (attacker-controlled) delivery id and event shortened.
    pub fn log_refusal(&self, status: StatusCode, reason: &str, delivery: &str, event: &str) {
        if let Some(suppressed) = self.refusals.admit() {
            tracing::warn!(
                status = status.as_u16(),
                reason = %shorten(reason, 200),
                delivery = %shorten(delivery, MAX_LOGGED_VALUE),
                event = %shorten(event, MAX_LOGGED_VALUE),
                suppressed,
                "webhook refused"
            );
        }
    }
}

fn refuse(outcome: WebhookOutcome, status: StatusCode, message: String) -> Refusal {
    let mut response = (status, message.clone()).into_response();
    // What is left of the request is not read: the connection cannot carry another one.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Refusal {
        outcome,
        reason: message,
        response,
    }
}

/// Reads and drops what the client still sends until `deadline`, so it receives the answer
/// (closing a socket with unread data resets it, and the client may lose the answer).
fn drain_until(body: Body, deadline: Instant) {
    tokio::spawn(async move {
        let mut body = body;
        let _ = tokio::time::timeout_at(deadline, async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
    });
}

/// `value` cut to `max` bytes (on a character boundary), saying how long it was.
pub fn shorten(value: &str, max: usize) -> String {
    if value.len() <= max {
        return value.to_string();
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &value[..end], value.len())
}

/// Admits at most `per_window` events per `window`; the first admitted after a full window
/// learns how many were turned away.
pub struct RefusalLog {
    per_window: u32,
    window: Duration,
    state: Mutex<Window>,
}

struct Window {
    started: Instant,
    admitted: u32,
    suppressed: u64,
}

impl RefusalLog {
    pub fn new(per_window: u32, window: Duration) -> RefusalLog {
        RefusalLog {
            per_window,
            window,
            state: Mutex::new(Window {
                started: Instant::now(),
                admitted: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(turned away since the last admitted)` when this one may be logged.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut w = match self.state.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now.duration_since(w.started) >= self.window {
            w.started = now;
            w.admitted = 0;
        }
        if w.admitted < self.per_window {
            w.admitted += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        assert_eq!(shorten("push", 64), "push");
        let long = "a".repeat(350_000);
        let s = shorten(&long, 64);
        assert!(s.starts_with(&"a".repeat(64)));
        assert!(s.ends_with("…(350000 bytes)"), "{s}");
        assert!(s.len() < 100);
        assert_eq!(shorten("ééé", 3), "é…(6 bytes)");
    }

    #[test]
    fn refusal_lines_are_rate_limited_and_the_rest_counted() {
        let log = RefusalLog::new(3, Duration::from_secs(60));
        let start = Instant::now();
        let admitted: Vec<_> = (0..10).map(|_| log.admit_at(start)).collect();
        assert_eq!(admitted[..3], [Some(0), Some(0), Some(0)]);
        assert!(admitted[3..].iter().all(Option::is_none));
        let later = start + Duration::from_secs(61);
        assert_eq!(log.admit_at(later), Some(7));
        assert_eq!(log.admit_at(later), Some(0));
    }
}
