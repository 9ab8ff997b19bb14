//! `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::WebState;
use super::admin::{bearer, same_secret};
use crate::store::{Store, StoreError};

pub async fn scrape(State(state): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.ops.metrics_token
        && !bearer(&headers).is_some_and(|t| same_secret(t, expected))
    {
        let mut r = (StatusCode::UNAUTHORIZED, "metrics need a Bearer token\n").into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    if let Err(e) = refresh_database_gauges(&state.store).await {
        // The process's own counters are still worth scraping.
        tracing::warn!(error = %e, "metrics: cannot read the database figures");
        crate::metrics::refresh_failed();
    }
    if let Some(resolver) = &state.ops.resolver {
        for u in resolver.budget_usage() {
            crate::metrics::registry_pull_budget(&u.registry, u.used, u.budget.limit);
        }
    }
    let mut r = crate::metrics::render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Reads the figures that describe the database (the queue by state, references by
/// status, repositories by scan status) and hands them to the gauges; run on each scrape.
async fn refresh_database_gauges(store: &Store) -> Result<(), StoreError> {
    let counts = store.job_counts().await?;
    crate::metrics::jobs_by_state([
        ("queued", counts.queued),
        ("running", counts.running),
        ("done", counts.done),
        ("dead", counts.dead),
    ]);
    crate::metrics::references_by_status(store.reference_counts().await?);
    crate::metrics::repositories_by_status(store.repository_status_counts().await?);
    Ok(())
}
