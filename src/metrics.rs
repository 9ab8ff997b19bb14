//! Prometheus metrics: one process-wide recorder, and one small function per thing the
//! code counts, so call sites stay one line and metric names and labels live in one place.
//!
//! Label values that come from outside (webhook event names, registry hosts) are bounded
//! here, so a stranger cannot grow the scrape without limit by sending made-up headers or
//! naming thousands of hosts in a Dockerfile.
//!
//! Gauges that describe the database (queue depth, references by status) are set from
//! figures the caller read from the database ([`jobs_by_state`], [`references_by_status`],
//! [`repositories_by_status`]) when `/metrics` is scraped, so every replica reports the
//! same, current figures. This module imports nothing else of digestif's.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Job durations: from a no-op webhook job (milliseconds) to a scan of a large repository
/// against slow registries (minutes).
const JOB_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Installs the recorder (once per process; later calls return the same handle, which is
/// what lets several servers run in one test process).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // `set_buckets_for_metric` fails only on an empty list, which JOB_BUCKETS is not.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), JOB_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                // Someone else (an embedding program) installed a recorder: our handle then
                // renders nothing, which is better than refusing to start.
                tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "digestif_webhooks_total",
        "Webhook deliveries received, by event and outcome (accepted, redelivery, bad-signature, too-large, timeout, overloaded, invalid, error)"
    );
    describe_counter!(
        "digestif_jobs_total",
        "Jobs finished, by kind and outcome (ok, retry, dead, released)"
    );
    describe_histogram!(
        "digestif_job_duration_seconds",
        metrics::Unit::Seconds,
        "How long jobs ran, by kind"
    );
    describe_gauge!("digestif_jobs", "Jobs in the queue, by state");
    describe_counter!(
        "digestif_registry_requests_total",
        "Requests sent to registries, by host, method, kind and status (0: no response)"
    );
    describe_counter!(
        "digestif_registry_response_bytes_total",
        metrics::Unit::Bytes,
        "Response body bytes read from registries, by host and kind"
    );
    describe_gauge!(
        "digestif_registry_pull_budget_used",
        "Manifest GETs (pulls) in the budget's current window, by registry"
    );
    describe_gauge!(
        "digestif_registry_pull_budget_limit",
        "Manifest GETs (pulls) a registry's budget allows per window"
    );
    describe_counter!(
        "digestif_github_requests_total",
        "GitHub API requests, by method and status (0: no response)"
    );
    describe_gauge!(
        "digestif_github_rate_limit_remaining",
        "Requests left in GitHub's rate-limit window, as GitHub last reported"
    );
    describe_gauge!(
        "digestif_github_rate_limit_reset_timestamp_seconds",
        "When GitHub's rate-limit window resets (Unix time)"
    );
    describe_counter!(
        "digestif_pull_requests_opened_total",
        "Pull requests opened"
    );
    describe_counter!(
        "digestif_pull_requests_updated_total",
        "Pull requests updated in place (new digests pushed to an open PR)"
    );
    describe_counter!(
        "digestif_pull_requests_closed_total",
        "Pull requests digestif closed, by reason"
    );
    describe_gauge!(
        "digestif_references",
        "Image references known across all repositories, by status of their last scan"
    );
    describe_counter!(
        "digestif_references_checked_total",
        "References checked by scans, by status"
    );
    describe_gauge!("digestif_repositories", "Repositories, by scan status");
    describe_gauge!(
        "digestif_registry_cache_entries",
        "Entries in the registry caches, by cache"
    );
    describe_gauge!(
        "digestif_registry_cache_bytes",
        "Estimated bytes held by the registry caches, by cache"
    );
    describe_counter!(
        "digestif_registry_cache_evictions_total",
        "Entries the registry caches dropped to stay within their limits, by cache"
    );
    describe_counter!(
        "digestif_registry_shared_tags_total",
        "Tag lookups that went to the tag answers shared by replicas, by outcome"
    );
    describe_counter!(
        "digestif_metrics_refresh_errors_total",
        "Scrapes whose database figures could not be read"
    );
}

/// The Prometheus text of every metric.
pub fn render() -> String {
    install().render()
}

/// Drains histogram samples into their buckets; the server calls this periodically so an
/// unscraped process does not buffer samples without bound.
pub fn upkeep() {
    install().run_upkeep();
}

// ---- webhooks ---------------------------------------------------------------------------

/// What happened to a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Accepted,
    Redelivery,
    BadSignature,
    TooLarge,
    /// The body did not arrive in time.
    Timeout,
    /// The body budget stayed full until the request's deadline.
    Overloaded,
    Invalid,
    Error,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::Redelivery => "redelivery",
            WebhookOutcome::BadSignature => "bad-signature",
            WebhookOutcome::TooLarge => "too-large",
            WebhookOutcome::Timeout => "timeout",
            WebhookOutcome::Overloaded => "overloaded",
            WebhookOutcome::Invalid => "invalid",
            WebhookOutcome::Error => "error",
        }
    }
}

/// GitHub event names worth a label of their own; anything else (including whatever an
/// unsigned request claims) is `other`.
const KNOWN_EVENTS: &[&str] = &[
    "check_run",
    "check_suite",
    "installation",
    "installation_repositories",
    "installation_target",
    "issue_comment",
    "issues",
    "ping",
    "pull_request",
    "pull_request_review",
    "push",
    "repository",
    "github_app_authorization",
    "meta",
];

pub fn event_label(event: &str) -> &'static str {
    KNOWN_EVENTS
        .iter()
        .find(|e| **e == event)
        .copied()
        .unwrap_or("other")
}

pub fn webhook(event: &str, outcome: WebhookOutcome) {
    counter!("digestif_webhooks_total", "event" => event_label(event), "outcome" => outcome.as_str())
        .increment(1);
}

// ---- jobs -------------------------------------------------------------------------------

/// Job kinds are digestif's own, but a row written by a newer version may carry one this
/// version does not know; it is still one label per kind in the table.
pub fn job_finished(kind: &str, outcome: &'static str, took: Duration) {
    let kind = bounded_kind(kind);
    counter!("digestif_jobs_total", "kind" => kind.clone(), "outcome" => outcome).increment(1);
    histogram!("digestif_job_duration_seconds", "kind" => kind).record(took.as_secs_f64());
}

fn bounded_kind(kind: &str) -> String {
    if kind.len() <= 40
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
    {
        kind.to_string()
    } else {
        "other".to_string()
    }
}

// ---- registries -------------------------------------------------------------------------

/// Distinct registry hosts that get a label of their own; past this, `other`.
const MAX_REGISTRY_HOSTS: usize = 200;

fn host_label(host: &str) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if seen.contains(host) {
        return host.to_string();
    }
    if seen.len() < MAX_REGISTRY_HOSTS {
        seen.insert(host.to_string());
        return host.to_string();
    }
    "other".to_string()
}

pub fn registry_bytes(host: &str, kind: &'static str, bytes: u64) {
    counter!(
        "digestif_registry_response_bytes_total",
        "host" => host_label(host),
        "kind" => kind
    )
    .increment(bytes);
}

/// Pulls left in a registry's budget (sampled when the status page or `/metrics` reads it).
pub fn registry_pull_budget(registry: &str, used: u32, limit: u32) {
    gauge!("digestif_registry_pull_budget_used", "registry" => host_label(registry))
        .set(f64::from(used));
    gauge!("digestif_registry_pull_budget_limit", "registry" => host_label(registry))
        .set(f64::from(limit));
}

pub fn registry_request(host: &str, method: &'static str, kind: &'static str, status: u16) {
    counter!(
        "digestif_registry_requests_total",
        "host" => host_label(host),
        "method" => method,
        "kind" => kind,
        "status" => status.to_string()
    )
    .increment(1);
}

/// A registry cache grew or shrank (entries, estimated bytes), summed over the process.
pub fn registry_cache_changed(cache: &'static str, entries: f64, bytes: f64) {
    if entries != 0.0 {
        gauge!("digestif_registry_cache_entries", "cache" => cache).increment(entries);
    }
    if bytes != 0.0 {
        gauge!("digestif_registry_cache_bytes", "cache" => cache).increment(bytes);
    }
}

pub fn registry_cache_evicted(cache: &'static str, n: u64) {
    counter!("digestif_registry_cache_evictions_total", "cache" => cache).increment(n);
}

/// A tag lookup through the shared tag answers: `reused` (another replica's answer),
/// `asked` (this one held the claim and asked the registry), `unshared` (the shared
/// answers failed or took too long: asked the registry alone).
pub fn registry_shared_tag(outcome: &'static str) {
    counter!("digestif_registry_shared_tags_total", "outcome" => outcome).increment(1);
}

// ---- GitHub -----------------------------------------------------------------------------

pub fn github_request(method: &str, status: u16) {
    let method: &'static str = match method {
        "GET" => "GET",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        _ => "other",
    };
    counter!("digestif_github_requests_total", "method" => method, "status" => status.to_string())
        .increment(1);
}

pub fn github_rate_limit(remaining: Option<i64>, reset_epoch: Option<i64>) {
    if let Some(r) = remaining {
        gauge!("digestif_github_rate_limit_remaining").set(r as f64);
    }
    if let Some(r) = reset_epoch {
        gauge!("digestif_github_rate_limit_reset_timestamp_seconds").set(r as f64);
    }
}

// ---- pull requests (called by the writer) -----------------------------------------------

pub fn pr_opened() {
    counter!("digestif_pull_requests_opened_total").increment(1);
}

pub fn pr_updated() {
    counter!("digestif_pull_requests_updated_total").increment(1);
}

/// `reason`: a short fixed word such as `superseded`, `obsolete`, `config` — not text from
/// outside.
pub fn pr_closed(reason: &'static str) {
    counter!("digestif_pull_requests_closed_total", "reason" => reason).increment(1);
}

// ---- references -------------------------------------------------------------------------

/// Called at the end of a stored scan with the status of each reference it checked.
pub fn references_checked<'a>(statuses: impl IntoIterator<Item = &'a str>) {
    let mut by_status: std::collections::BTreeMap<&str, u64> = Default::default();
    for s in statuses {
        *by_status.entry(s).or_default() += 1;
    }
    for (status, n) in by_status {
        counter!("digestif_references_checked_total", "status" => status.to_string()).increment(n);
    }
}

/// The job queue by state (`queued`, `running`, `done`, `dead`), as the database counts it.
pub fn jobs_by_state(counts: [(&'static str, i64); 4]) {
    for (state, n) in counts {
        gauge!("digestif_jobs", "state" => state).set(n as f64);
    }
}

/// Image references known across all repositories, by the status of their last scan.
pub fn references_by_status(counts: Vec<(String, i64)>) {
    set_all("digestif_references", counts);
}

/// Repositories by scan status.
pub fn repositories_by_status(counts: Vec<(String, i64)>) {
    set_all("digestif_repositories", counts);
}

/// Sets one gauge per status, and zero for statuses seen before but gone now (otherwise the
/// last non-zero value would stay forever).
fn set_all(name: &'static str, counts: Vec<(String, i64)>) {
    static KNOWN: OnceLock<Mutex<HashSet<(&'static str, String)>>> = OnceLock::new();
    let mut known = KNOWN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for (_, status) in known.iter().filter(|(n, _)| *n == name) {
        if !counts.iter().any(|(s, _)| s == status) {
            gauge!(name, "status" => status.clone()).set(0.0);
        }
    }
    for (status, n) in counts {
        gauge!(name, "status" => status.clone()).set(n as f64);
        known.insert((name, status));
    }
}

pub fn refresh_failed() {
    counter!("digestif_metrics_refresh_errors_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_labels_are_bounded() {
        assert_eq!(event_label("push"), "push");
        assert_eq!(event_label("<script>"), "other");
        assert_eq!(bounded_kind("scan_repo"), "scan_repo");
        assert_eq!(bounded_kind("Scan Repo\n"), "other");
    }

    #[test]
    fn recorder_installs_once_and_renders_counters() {
        let a = install();
        let _b = install();
        pr_opened();
        pr_closed("superseded");
        webhook("push", WebhookOutcome::Accepted);
        let text = a.render();
        assert!(
            text.contains("digestif_pull_requests_opened_total"),
            "{text}"
        );
        assert!(
            text.contains(r#"digestif_pull_requests_closed_total{reason="superseded"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"digestif_webhooks_total{event="push",outcome="accepted"}"#),
            "{text}"
        );
    }
}
