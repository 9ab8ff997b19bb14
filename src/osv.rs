//! Asking OSV (osv.dev's API, or a mirror serving the same API) which advisories affect the
//! package versions an update removes or replaces: the HTTP edge of [`crate::insight::osv`].
//! Built only when `DIGESTIF_OSV_URL` is set; without it nothing here runs.
//!
//! Requests: `POST {base}/v1/querybatch` with at most [`MAX_BATCH`] queries (ids only,
//! following `next_page_token`s), then `GET {base}/v1/vulns/{id}` for the summaries of at
//! most [`MAX_SUMMARIES`] listed advisories. Answers are cached per package version (and
//! per advisory) for the life of the process, within an LRU bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::insight::osv::{Plan, Query, VulnNotes};
use crate::insight::{Details, Package};
use crate::registry::{CacheLimits, Coalescing};

/// osv.dev's API.
pub const PUBLIC_API: &str = "https://api.osv.dev";
/// Queries per `querybatch` request: "a limit set in osv.dev's API", as osv.dev's own Go
/// client says (`MaxQueriesPerQueryBatchRequest`, bindings/go/osvdev/osvdev.go).
pub const MAX_BATCH: usize = 1000;
/// Advisory summaries fetched per update (one `GET` each, unless cached).
pub const MAX_SUMMARIES: usize = 20;
/// osv.dev's documented response limit over HTTP/1.1.
pub const MAX_BODY: usize = 32 * 1024 * 1024;
/// One advisory record (Debian's list every affected version and run to a few hundred kB).
const MAX_RECORD: usize = 4 * 1024 * 1024;
/// Each request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// All of one update's notes: past this the PR says they are unavailable.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// `next_page_token` rounds followed per batch before giving up.
const MAX_PAGES: usize = 20;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OsvError {
    #[error("OSV did not answer in time")]
    Timeout,
    #[error("OSV could not be reached")]
    Connect(String),
    #[error("OSV answered HTTP {0}")]
    Status(u16),
    #[error("OSV's answer was not what its API documents")]
    Malformed(String),
    #[error("OSV's answer was larger than {0} bytes")]
    TooLarge(usize),
    #[error("OSV kept paging past {MAX_PAGES} pages")]
    Paging,
    #[error("the OSV client could not start")]
    Client(String),
}

impl OsvError {
    /// The operator's detail (the PR gets only the short `Display`).
    fn detail(&self) -> &str {
        match self {
            OsvError::Connect(d) | OsvError::Malformed(d) | OsvError::Client(d) => d,
            _ => "",
        }
    }
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    queries: Vec<QueryJson<'a>>,
}

#[derive(Serialize)]
struct QueryJson<'a> {
    package: PackageJson<'a>,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_token: Option<&'a str>,
}

#[derive(Serialize)]
struct PackageJson<'a> {
    name: &'a str,
    ecosystem: &'a str,
}

#[derive(Deserialize)]
struct BatchResponse {
    #[serde(default)]
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    #[serde(default)]
    vulns: Vec<VulnId>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct VulnId {
    id: String,
}

#[derive(Deserialize)]
struct Record {
    summary: Option<String>,
}

/// Requests sent and time spent, for benchmarks and the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OsvUsage {
    pub batch_requests: u64,
    pub record_requests: u64,
    pub micros: u64,
}

pub struct Osv {
    base: String,
    http: Result<reqwest::Client, String>,
    /// Advisory ids per package version.
    ids: Coalescing<Query, Result<Arc<Vec<String>>, OsvError>>,
    /// Advisory summaries by id (`None`: none given, or not fetched).
    summaries: Coalescing<String, Option<String>>,
    batch_requests: AtomicU64,
    record_requests: AtomicU64,
    micros: AtomicU64,
    request_timeout: Duration,
    total_timeout: Duration,
}

impl std::fmt::Debug for Osv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Osv").field("base", &self.base).finish()
    }
}

const LIMITS: CacheLimits = CacheLimits {
    entries: 50_000,
    bytes: 32 * 1024 * 1024,
};

impl Osv {
    /// A client of the OSV API at `base` (`https://api.osv.dev`, or a mirror's root).
    pub fn new(base: &str) -> Osv {
        let http = reqwest::Client::builder()
            .user_agent(concat!("digestif/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string());
        Osv {
            base: base.trim_end_matches('/').to_string(),
            http,
            ids: Coalescing::new("osv-versions", LIMITS, |k, v| {
                k.package.ecosystem.len()
                    + k.package.name.len()
                    + k.version.len()
                    + v.as_ref()
                        .map_or(0, |ids| ids.iter().map(String::len).sum())
            }),
            summaries: Coalescing::new("osv-summaries", LIMITS, |k, v| {
                k.len() + v.as_ref().map_or(0, String::len)
            }),
            batch_requests: AtomicU64::new(0),
            record_requests: AtomicU64::new(0),
            micros: AtomicU64::new(0),
            request_timeout: REQUEST_TIMEOUT,
            total_timeout: TOTAL_TIMEOUT,
        }
    }

    /// Other time limits than the defaults (10 s a request, 30 s an update's notes).
    pub fn with_timeouts(mut self, request: Duration, total: Duration) -> Osv {
        self.request_timeout = request;
        self.total_timeout = total;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn usage(&self) -> OsvUsage {
        OsvUsage {
            batch_requests: self.batch_requests.load(Ordering::Relaxed),
            record_requests: self.record_requests.load(Ordering::Relaxed),
            micros: self.micros.load(Ordering::Relaxed),
        }
    }

    /// Where an advisory's page is: osv.dev's for osv.dev's API; a mirror's own record
    /// (`/v1/vulns/ID`, JSON) otherwise, since its web pages cannot be told from its URL.
    pub fn link_prefix(&self) -> String {
        if self.base == PUBLIC_API {
            "https://osv.dev/vulnerability/".to_string()
        } else {
            format!("{}/v1/vulns/", self.base)
        }
    }

    /// Adds the vulnerability notes to details that have both images' package lists.
    pub async fn annotate(&self, details: &mut Details) {
        let Details::Known {
            old: Some(old),
            new,
            vulns,
            ..
        } = details
        else {
            return;
        };
        let (Some(a), Some(b)) = (&old.packages, &new.packages) else {
            return;
        };
        *vulns = self.notes(a, b).await;
    }

    /// The notes for an update from `old`'s packages to `new`'s; `None` when no package is
    /// removed or upgraded. Never fails: OSV's faults are [`VulnNotes::Unavailable`] (and
    /// a warning in the log).
    pub async fn notes(&self, old: &[Package], new: &[Package]) -> Option<VulnNotes> {
        let plan = Plan::new(old, new);
        if plan.mapped + plan.unmapped == 0 {
            return None;
        }
        let notes = match tokio::time::timeout(self.total_timeout, self.known(&plan)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(osv = %self.base, error = %e, detail = e.detail(), "vulnerability notes unavailable");
                VulnNotes::Unavailable {
                    reason: e.to_string(),
                }
            }
            Err(_) => {
                tracing::warn!(osv = %self.base, "vulnerability notes unavailable: timed out");
                VulnNotes::Unavailable {
                    reason: OsvError::Timeout.to_string(),
                }
            }
        };
        Some(notes)
    }

    async fn known(&self, plan: &Plan) -> Result<VulnNotes, OsvError> {
        let answers = self.ask(&plan.queries()).await?;
        let fixed = plan.fixed(&answers);
        let mut summaries = std::collections::BTreeMap::new();
        let mut ids: Vec<&String> = fixed.iter().flat_map(|f| &f.ids).collect();
        ids.sort();
        ids.dedup();
        for id in ids.into_iter().take(MAX_SUMMARIES) {
            if let Some(s) = self.summary(id).await {
                summaries.insert(id.clone(), s);
            }
        }
        Ok(VulnNotes::Known {
            fixed,
            asked: plan.mapped,
            unmapped: plan.unmapped,
            summaries,
            link_prefix: self.link_prefix(),
        })
    }

    /// Advisory ids for every query: cached ones from the cache, the rest in batches.
    pub async fn ask(&self, queries: &[Query]) -> Result<HashMap<Query, Vec<String>>, OsvError> {
        let forever = |_: &Result<Arc<Vec<String>>, OsvError>| Duration::MAX;
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        for q in queries {
            match self.ids.peek(q, forever) {
                Some(Ok(ids)) => {
                    out.insert(q.clone(), ids.to_vec());
                }
                _ => missing.push(q.clone()),
            }
        }
        for chunk in missing.chunks(MAX_BATCH) {
            let answers = self.batch(chunk).await?;
            for (q, ids) in chunk.iter().zip(answers) {
                let ids = Arc::new(ids);
                let cached = ids.clone();
                // Fills the cache with the answer just had (nothing is fetched here).
                self.ids
                    .get_or_fetch(q.clone(), forever, None, || async move { Ok(cached) })
                    .await?;
                out.insert(q.clone(), ids.to_vec());
            }
        }
        Ok(out)
    }

    /// One batch, with its pages: the ids per query, in order.
    async fn batch(&self, queries: &[Query]) -> Result<Vec<Vec<String>>, OsvError> {
        let mut ids: Vec<Vec<String>> = vec![Vec::new(); queries.len()];
        // (query index, page token) still to follow.
        let mut pending: Vec<(usize, Option<String>)> =
            (0..queries.len()).map(|i| (i, None)).collect();
        for _ in 0..MAX_PAGES {
            if pending.is_empty() {
                return Ok(ids);
            }
            let body = BatchRequest {
                queries: pending
                    .iter()
                    .map(|(i, token)| QueryJson {
                        package: PackageJson {
                            name: &queries[*i].package.name,
                            ecosystem: &queries[*i].package.ecosystem,
                        },
                        version: &queries[*i].version,
                        page_token: token.as_deref(),
                    })
                    .collect(),
            };
            let body = serde_json::to_vec(&body).map_err(|e| OsvError::Malformed(e.to_string()))?;
            self.batch_requests.fetch_add(1, Ordering::Relaxed);
            let url = format!("{}/v1/querybatch", self.base);
            let bytes = self
                .send(self.client()?.post(&url).body(body), MAX_BODY)
                .await?;
            let answer: BatchResponse = serde_json::from_slice(&bytes)
                .map_err(|e| OsvError::Malformed(format!("{url}: {e}")))?;
            if answer.results.len() != pending.len() {
                return Err(OsvError::Malformed(format!(
                    "{url}: {} results for {} queries",
                    answer.results.len(),
                    pending.len()
                )));
            }
            let mut next = Vec::new();
            for ((i, _), r) in pending.iter().zip(answer.results) {
                ids[*i].extend(r.vulns.into_iter().map(|v| v.id));
                if let Some(t) = r.next_page_token.filter(|t| !t.is_empty()) {
                    next.push((*i, Some(t)));
                }
            }
            pending = next;
        }
        if pending.is_empty() {
            Ok(ids)
        } else {
            Err(OsvError::Paging)
        }
    }

    /// An advisory's summary, cached; `None` when it has none or cannot be had.
    async fn summary(&self, id: &str) -> Option<String> {
        let safe = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
        if !safe {
            return None;
        }
        self.summaries
            .get_or_fetch(id.to_string(), |_| Duration::MAX, None, || async {
                self.record_requests.fetch_add(1, Ordering::Relaxed);
                let url = format!("{}/v1/vulns/{id}", self.base);
                let got = match self.client() {
                    Ok(c) => self.send(c.get(&url), MAX_RECORD).await,
                    Err(e) => Err(e),
                };
                match got.and_then(|b| {
                    serde_json::from_slice::<Record>(&b)
                        .map_err(|e| OsvError::Malformed(e.to_string()))
                }) {
                    Ok(r) => r.summary.filter(|s| !s.trim().is_empty()),
                    Err(e) => {
                        tracing::debug!(%url, error = %e, detail = e.detail(), "advisory summary unavailable");
                        None
                    }
                }
            })
            .await
    }

    fn client(&self) -> Result<&reqwest::Client, OsvError> {
        self.http.as_ref().map_err(|e| OsvError::Client(e.clone()))
    }

    /// Sends, checks the status and reads at most `max` bytes of the body.
    async fn send(&self, req: reqwest::RequestBuilder, max: usize) -> Result<Vec<u8>, OsvError> {
        let started = Instant::now();
        let result = async {
            let mut resp = req
                .timeout(self.request_timeout)
                .header("content-type", "application/json")
                .send()
                .await
                .map_err(transport)?;
            let status = resp.status();
            if !status.is_success() {
                return Err(OsvError::Status(status.as_u16()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(transport)? {
                if body.len() + chunk.len() > max {
                    return Err(OsvError::TooLarge(max));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }
        .await;
        self.micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        result
    }
}

fn transport(e: reqwest::Error) -> OsvError {
    if e.is_timeout() {
        OsvError::Timeout
    } else if e.is_decode() || e.is_body() {
        OsvError::Malformed(e.to_string())
    } else {
        OsvError::Connect(format!("{e:#}"))
    }
}
