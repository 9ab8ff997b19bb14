//! The GitHub REST client digestif uses: octocrab for App authentication and installation
//! tokens (cached and refreshed by octocrab), raw requests for everything else so that this
//! module sees every status and header.
//!
//! Why raw requests: the retry policy needs `Retry-After` and the `x-ratelimit-*` headers,
//! conditional requests need `ETag`/`If-None-Match`, and octocrab's typed errors keep neither.
//! octocrab's own retries are switched off: a blind retry of a `POST` that GitHub answered
//! 502 after all may create a second PR, so only idempotent methods are retried on 5xx here;
//! rate-limit answers (the request was not processed) are retried for every method.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use octocrab::service::middleware::retry::RetryConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// GitHub's REST API version header value the app is written against.
const API_VERSION: &str = "2022-11-28";

#[derive(Debug, Error)]
pub enum ApiError {
    /// GitHub answered with an error status; `message` is GitHub's own `message` field.
    #[error("GitHub answered {status} to {method} {path}: {message}")]
    Status {
        status: u16,
        method: String,
        path: String,
        message: String,
    },
    /// Rate limited for longer than the policy waits inside one call.
    #[error("GitHub rate limit: retry in {}s", .retry_in.as_secs())]
    RateLimited { retry_in: Duration },
    #[error("GitHub request {method} {path} failed: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    #[error("unexpected GitHub response to {path}: {message}")]
    Decode { path: String, message: String },
    #[error("GitHub App settings: {0}")]
    Settings(String),
    /// The job this request is for is no longer this worker's: the write was not sent.
    #[error("{0}")]
    LeaseLost(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// When and how often to retry.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// First backoff after a 5xx or transport error; doubles each time, with jitter.
    pub base_delay: Duration,
    /// A rate-limit wait longer than this is not slept inside the call: the error goes up
    /// so the job queue can reschedule the job instead of holding a worker.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// What to do with an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Disposition {
    Done,
    /// Rate limited: wait this long, then the same request may be sent again.
    RateLimited(Duration),
    /// Server error: worth retrying if the method is idempotent.
    ServerError,
}

/// Classifies a response by GitHub's rate-limit rules
/// (docs: "Rate limits for the REST API"): a 403/429 with `retry-after` waits that long;
/// one with `x-ratelimit-remaining: 0` waits until `x-ratelimit-reset`; a 429 (or a 403
/// saying "secondary rate limit") without either waits a minute.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now_epoch: i64,
) -> Disposition {
    let code = status.as_u16();
    if code == 403 || code == 429 {
        if let Some(secs) =
            header_str(headers, "retry-after").and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Disposition::RateLimited(Duration::from_secs(secs));
        }
        if header_str(headers, "x-ratelimit-remaining") == Some("0") {
            let reset = header_str(headers, "x-ratelimit-reset")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(now_epoch + 60);
            // One extra second: the reset instant itself may still be limited.
            return Disposition::RateLimited(Duration::from_secs(
                (reset - now_epoch).max(0) as u64 + 1,
            ));
        }
        let secondary = String::from_utf8_lossy(body)
            .to_ascii_lowercase()
            .contains("secondary rate limit");
        if code == 429 || secondary {
            return Disposition::RateLimited(Duration::from_secs(60));
        }
        return Disposition::Done;
    }
    if matches!(code, 500 | 502 | 503 | 504) {
        return Disposition::ServerError;
    }
    Disposition::Done
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn idempotent(method: &Method) -> bool {
    // PATCH is idempotent for every call digestif makes (set a ref, set a body or state).
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::PATCH
    )
}

/// A GitHub answer with its body read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn etag(&self) -> Option<String> {
        header_str(&self.headers, "etag").map(str::to_string)
    }

    pub fn json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Decode {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// The `rel="next"` target of the `Link` header, if any.
    pub fn next_link(&self) -> Option<String> {
        let link = header_str(&self.headers, "link")?;
        link.split(',').find_map(|part| {
            let (url, rest) = part.split_once(';')?;
            rest.contains("rel=\"next\"").then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
    }
}

/// An answer to a conditional GET.
#[derive(Debug)]
pub enum Conditional<T> {
    NotModified,
    Fresh { value: T, etag: Option<String> },
}

/// Last rate-limit figures GitHub reported, for metrics and the status page.
#[derive(Debug, Default)]
pub struct RateLimitGauge {
    remaining: AtomicI64,
    reset: AtomicI64,
}

impl RateLimitGauge {
    pub fn remaining(&self) -> Option<i64> {
        let v = self.remaining.load(Ordering::Relaxed);
        (v >= 0).then_some(v)
    }

    pub fn reset_epoch(&self) -> Option<i64> {
        let v = self.reset.load(Ordering::Relaxed);
        (v > 0).then_some(v)
    }

    fn observe(&self, headers: &HeaderMap) {
        let remaining = header_str(headers, "x-ratelimit-remaining").and_then(|v| v.parse().ok());
        if let Some(v) = remaining {
            self.remaining.store(v, Ordering::Relaxed);
        }
        let reset = header_str(headers, "x-ratelimit-reset").and_then(|v| v.parse().ok());
        if let Some(v) = reset {
            self.reset.store(v, Ordering::Relaxed);
        }
        crate::metrics::github_rate_limit(remaining, reset);
    }
}

/// The App: its JWT-authenticated client and one long-lived client per installation.
pub struct GitHubApp {
    app: Arc<Octocrab>,
    app_id: u64,
    base_url: String,
    /// A client for GraphQL when it lives outside the REST root (GitHub Enterprise
    /// Server: `https://HOST/api/graphql` next to `https://HOST/api/v3`).
    graphql: Option<Octocrab>,
    /// Shared, not cloned: cloning an `Octocrab` copies its cached installation token, so
    /// a clone's token would be fetched again and lost with the clone.
    installations: Mutex<HashMap<u64, Arc<Octocrab>>>,
    policy: RetryPolicy,
    gauge: Arc<RateLimitGauge>,
    bot_login: tokio::sync::OnceCell<String>,
}

impl GitHubApp {
    /// `private_key_pem` is the PEM GitHub hands out (PKCS#1 or PKCS#8 RSA).
    pub fn new(
        api_url: &str,
        app_id: u64,
        private_key_pem: &[u8],
        policy: RetryPolicy,
    ) -> Result<GitHubApp, ApiError> {
        let key = octocrab::jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem)
            .map_err(|e| ApiError::Settings(format!("private key is not an RSA PEM key: {e}")))?;
        let base_url = api_url.trim_end_matches('/').to_string();
        let app = Octocrab::builder()
            .base_uri(base_url.as_str())
            .map_err(|e| ApiError::Settings(format!("API URL {api_url:?}: {e}")))?
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .app(AppId(app_id), key)
            .build()
            .map_err(|e| ApiError::Settings(format!("GitHub client: {e}")))?;
        let graphql = match graphql_url(&base_url).strip_suffix("/graphql") {
            Some(root) if root != base_url => Some(
                Octocrab::builder()
                    .base_uri(root)
                    .map_err(|e| ApiError::Settings(format!("GraphQL URL {root:?}: {e}")))?
                    .add_retry_config(RetryConfig::None)
                    .set_connect_timeout(Some(Duration::from_secs(10)))
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .build()
                    .map_err(|e| ApiError::Settings(format!("GitHub GraphQL client: {e}")))?,
            ),
            _ => None,
        };
        Ok(GitHubApp {
            app: Arc::new(app),
            app_id,
            base_url,
            graphql,
            installations: Mutex::new(HashMap::new()),
            policy,
            gauge: Arc::new(RateLimitGauge::default()),
            bot_login: tokio::sync::OnceCell::new(),
        })
    }

    /// The login GitHub shows for the App's own actions: `<slug>[bot]`.
    pub async fn bot_login(&self) -> Result<String, ApiError> {
        #[derive(serde::Deserialize)]
        struct App {
            slug: String,
        }
        self.bot_login
            .get_or_try_init(|| async {
                let app: App = self.as_app().get("/app").await?;
                Ok(format!("{}[bot]", app.slug))
            })
            .await
            .cloned()
    }

    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    /// The REST API root, without a trailing slash.
    pub fn api_url(&self) -> &str {
        &self.base_url
    }

    pub fn rate_limit(&self) -> Arc<RateLimitGauge> {
        self.gauge.clone()
    }

    /// Requests as the App itself (JWT): installations, the App's own details.
    pub fn as_app(&self) -> Api {
        Api {
            client: self.app.clone(),
            graphql: self.graphql.clone(),
            base_url: self.base_url.clone(),
            policy: self.policy.clone(),
            gauge: self.gauge.clone(),
        }
    }

    /// Requests as installation `id`. The client, and so its cached token, lives as long
    /// as the process.
    pub fn installation(&self, id: u64) -> Result<Api, ApiError> {
        let mut map = self.installations.lock().unwrap_or_else(|e| e.into_inner());
        let client = match map.get(&id) {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(
                    self.app
                        .installation(InstallationId(id))
                        .map_err(|e| ApiError::Settings(format!("installation client: {e}")))?,
                );
                map.insert(id, c.clone());
                c
            }
        };
        Ok(Api {
            client,
            graphql: self.graphql.clone(),
            base_url: self.base_url.clone(),
            policy: self.policy.clone(),
            gauge: self.gauge.clone(),
        })
    }

    /// Drops the cached client (the installation was deleted or suspended).
    pub fn forget_installation(&self, id: u64) {
        self.installations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// GitHub's GraphQL endpoint for a REST API root: `https://api.github.com/graphql`
/// (and likewise on GHE.com), but `https://HOST/api/graphql` on GitHub Enterprise Server,
/// whose REST root is `https://HOST/api/v3`.
pub fn graphql_url(api_url: &str) -> String {
    let api = api_url.trim_end_matches('/');
    match api.strip_suffix("/api/v3") {
        Some(host) => format!("{host}/api/graphql"),
        None => format!("{api}/graphql"),
    }
}

/// One identity's view of the REST API, with digestif's retry policy.
#[derive(Clone)]
pub struct Api {
    client: Arc<Octocrab>,
    graphql: Option<Octocrab>,
    base_url: String,
    policy: RetryPolicy,
    gauge: Arc<RateLimitGauge>,
}

impl Api {
    /// Requests with no identity at all, for the one call that takes none: converting an
    /// App manifest before the App exists ([`super::apps::convert_manifest`]).
    pub fn anonymous(api_url: &str, policy: RetryPolicy) -> Result<Api, ApiError> {
        let base_url = api_url.trim_end_matches('/').to_string();
        let client = Octocrab::builder()
            .base_uri(base_url.as_str())
            .map_err(|e| ApiError::Settings(format!("API URL {api_url:?}: {e}")))?
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| ApiError::Settings(format!("GitHub client: {e}")))?;
        Ok(Api {
            client: Arc::new(client),
            graphql: None,
            base_url,
            policy,
            gauge: Arc::new(RateLimitGauge::default()),
        })
    }

    /// Sends one request, retrying per [`RetryPolicy`]. Any status comes back as `Ok`;
    /// callers turn statuses into meaning (see [`Api::expect_ok`]).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        if_none_match: Option<&str>,
    ) -> Result<Response, ApiError> {
        let path = self.relative(path)?;
        self.send_to(&self.client, None, method, path, body, if_none_match)
            .await
    }

    /// Sends a GraphQL request (`{"query", "variables"}`) as this identity, to GitHub's
    /// GraphQL endpoint ([`graphql_url`]); the answer comes back as from [`Api::send`]
    /// (GraphQL reports most errors in a 200's `errors`).
    pub async fn graphql(&self, request: &serde_json::Value) -> Result<Response, ApiError> {
        let Some(client) = &self.graphql else {
            return self
                .send(Method::POST, "/graphql", Some(request), None)
                .await;
        };
        // The REST client keeps the installation token fresh; the GraphQL client, rooted
        // elsewhere on the same host, borrows it.
        let token = self
            .client
            .installation_token()
            .await
            .map_err(|e| self.transport(&Method::POST, "/graphql", error_text(&e)))?;
        let auth = format!(
            "Bearer {}",
            octocrab::secrecy::ExposeSecret::expose_secret(&token)
        );
        self.send_to(
            client,
            Some(&auth),
            Method::POST,
            "/graphql".to_string(),
            Some(request),
            None,
        )
        .await
    }

    async fn send_to(
        &self,
        client: &Octocrab,
        authorization: Option<&str>,
        method: Method,
        path: String,
        body: Option<&serde_json::Value>,
        if_none_match: Option<&str>,
    ) -> Result<Response, ApiError> {
        // A write from a worker that lost its job would race the worker that has it.
        if method != Method::GET && method != Method::HEAD {
            crate::lease::ensure_held()
                .await
                .map_err(|e| ApiError::LeaseLost(e.to_string()))?;
        }
        let body_bytes = match body {
            Some(v) => Some(serde_json::to_vec(v).map_err(|e| ApiError::Decode {
                path: path.clone(),
                message: e.to_string(),
            })?),
            None => None,
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let request = build_request(
                &method,
                &path,
                body_bytes.as_deref(),
                authorization,
                if_none_match,
            )
            .map_err(|e| self.transport(&method, &path, e.to_string()))?;
            let outcome = execute(client, request).await;
            let last = attempt >= self.policy.attempts;
            crate::metrics::github_request(
                method.as_str(),
                outcome.as_ref().map(|r| r.status.as_u16()).unwrap_or(0),
            );
            match outcome {
                Ok(resp) => {
                    self.gauge.observe(&resp.headers);
                    let now = chrono::Utc::now().timestamp();
                    match classify(resp.status, &resp.headers, &resp.body, now) {
                        Disposition::Done => return Ok(resp),
                        Disposition::RateLimited(wait) => {
                            if wait > self.policy.max_wait || last {
                                return Err(ApiError::RateLimited { retry_in: wait });
                            }
                            tracing::warn!(%method, %path, wait_s = wait.as_secs(), "GitHub rate limit; waiting");
                            tokio::time::sleep(wait).await;
                        }
                        Disposition::ServerError => {
                            if last || !idempotent(&method) {
                                return Ok(resp);
                            }
                            tracing::warn!(%method, %path, status = resp.status.as_u16(), "GitHub server error; retrying");
                            tokio::time::sleep(self.backoff(attempt)).await;
                        }
                    }
                }
                Err(message) => {
                    if last || !idempotent(&method) {
                        return Err(self.transport(&method, &path, message));
                    }
                    tracing::warn!(%method, %path, %message, "GitHub request failed; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .policy
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(10));
        // Full jitter in [base/2, base): replicas hitting the same outage spread out.
        let half = base / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    fn transport(&self, method: &Method, path: &str, message: String) -> ApiError {
        ApiError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            message,
        }
    }

    /// `Link` URLs are absolute on GitHub; requests here are relative to the API root, and
    /// a link to another host is refused rather than sent our token.
    fn relative(&self, path: &str) -> Result<String, ApiError> {
        if path.starts_with('/') {
            return Ok(path.to_string());
        }
        match path.strip_prefix(self.base_url.as_str()) {
            Some(rest) if rest.starts_with('/') => Ok(rest.to_string()),
            _ => Err(ApiError::Decode {
                path: path.to_string(),
                message: "link points outside the GitHub API".into(),
            }),
        }
    }

    /// `send`, then turn any non-2xx status into [`ApiError::Status`].
    pub async fn expect_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ApiError> {
        let resp = self.send(method.clone(), path, body, None).await?;
        ok_or_status(method, path, resp)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.expect_ok(Method::GET, path, None).await?.json(path)
    }

    /// GET that returns `None` on 404.
    pub async fn get_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ApiError> {
        let resp = self.send(Method::GET, path, None, None).await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        ok_or_status(Method::GET, path, resp)?.json(path).map(Some)
    }

    /// GET with `If-None-Match`: a 304 is free against the rate limit.
    pub async fn get_conditional<T: DeserializeOwned>(
        &self,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Conditional<T>, ApiError> {
        let resp = self.send(Method::GET, path, None, etag).await?;
        if resp.status == StatusCode::NOT_MODIFIED {
            return Ok(Conditional::NotModified);
        }
        let resp = ok_or_status(Method::GET, path, resp)?;
        Ok(Conditional::Fresh {
            etag: resp.etag(),
            value: resp.json(path)?,
        })
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.write(Method::POST, path, body).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.write(Method::PATCH, path, body).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.write(Method::PUT, path, body).await
    }

    async fn write<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let value = serde_json::to_value(body).map_err(|e| ApiError::Decode {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        self.expect_ok(method, path, Some(&value)).await?.json(path)
    }

    /// DELETE; a 404 counts as done (deleting is idempotent).
    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        let resp = self.send(Method::DELETE, path, None, None).await?;
        if resp.status == StatusCode::NOT_FOUND
            || resp.status == StatusCode::UNPROCESSABLE_ENTITY && path.contains("/git/refs/")
        {
            return Ok(());
        }
        ok_or_status(Method::DELETE, path, resp).map(|_| ())
    }

    /// Every page of a list endpoint. `key` names the array inside an object answer
    /// (`repositories` for `/installation/repositories`); `None` for array answers.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        key: Option<&str>,
    ) -> Result<Vec<T>, ApiError> {
        let mut out = Vec::new();
        let mut next = Some(with_per_page(path));
        let mut pages = 0;
        while let Some(url) = next {
            pages += 1;
            if pages > 1000 {
                return Err(ApiError::Decode {
                    path: path.to_string(),
                    message: "more than 1000 pages".into(),
                });
            }
            let resp = self.expect_ok(Method::GET, &url, None).await?;
            let mut value: serde_json::Value = resp.json(&url)?;
            let items = match key {
                Some(k) => value.get_mut(k).map(serde_json::Value::take),
                None => Some(value),
            };
            let items: Vec<T> = serde_json::from_value(items.unwrap_or(serde_json::Value::Null))
                .map_err(|e| ApiError::Decode {
                    path: url.clone(),
                    message: e.to_string(),
                })?;
            out.extend(items);
            next = resp.next_link();
        }
        Ok(out)
    }
}

/// One try of a request, with GitHub's headers.
fn build_request(
    method: &Method,
    path: &str,
    body: Option<&[u8]>,
    authorization: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<http::Request<octocrab::OctoBody>, http::Error> {
    let mut builder = http::Request::builder()
        .method(method.clone())
        .uri(path)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION);
    if let Some(etag) = if_none_match {
        builder = builder.header("if-none-match", etag);
    }
    if let Some(auth) = authorization {
        builder = builder.header(http::header::AUTHORIZATION, auth);
    }
    match body {
        Some(b) => builder
            .header("content-type", "application/json")
            .body(octocrab::OctoBody::from(b.to_vec())),
        None => builder.body(octocrab::OctoBody::empty()),
    }
}

/// Sends `request` once and reads the whole answer; `Err` (the transport's words) when
/// there is no answer.
async fn execute(
    client: &Octocrab,
    request: http::Request<octocrab::OctoBody>,
) -> Result<Response, String> {
    match client.execute(request).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            match body.collect().await {
                Ok(collected) => Ok(Response {
                    status: parts.status,
                    headers: parts.headers,
                    body: collected.to_bytes(),
                }),
                Err(e) => Err(e.to_string()),
            }
        }
        // octocrab turns some error statuses (5xx among them) into errors; they are
        // answers all the same, and the retry policy needs their status.
        Err(octocrab::Error::GitHub { source, .. }) => Ok(Response {
            status: source.status_code,
            headers: source.headers.clone().unwrap_or_default(),
            body: Bytes::from(
                serde_json::to_vec(&serde_json::json!({
                    "message": source.message,
                    "errors": source.errors,
                }))
                .unwrap_or_default(),
            ),
        }),
        Err(e) => Err(error_text(&e)),
    }
}

fn with_per_page(path: &str) -> String {
    if path.contains("per_page=") {
        path.to_string()
    } else if path.contains('?') {
        format!("{path}&per_page=100")
    } else {
        format!("{path}?per_page=100")
    }
}

/// A non-2xx answer as [`ApiError::Status`], with GitHub's own `message`.
pub fn ok_or_status(method: Method, path: &str, resp: Response) -> Result<Response, ApiError> {
    if resp.status.is_success() {
        return Ok(resp);
    }
    let message = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&resp.body)
                .chars()
                .take(200)
                .collect()
        });
    Err(ApiError::Status {
        status: resp.status.as_u16(),
        method: method.to_string(),
        path: path.to_string(),
        message,
    })
}

fn error_text(e: &octocrab::Error) -> String {
    // octocrab's Display for some variants is only the variant name; the source says more.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn graphql_lives_beside_the_rest_root_on_ghes() {
        assert_eq!(
            graphql_url("https://api.github.com"),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            graphql_url("https://api.acme.ghe.com/"),
            "https://api.acme.ghe.com/graphql"
        );
        assert_eq!(
            graphql_url("https://ghe.example.com/api/v3"),
            "https://ghe.example.com/api/graphql"
        );
        assert_eq!(
            graphql_url("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api/graphql"
        );
    }

    #[test]
    fn retry_after_wins() {
        let h = headers(&[("retry-after", "7"), ("x-ratelimit-remaining", "0")]);
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &h, b"", 1000),
            Disposition::RateLimited(Duration::from_secs(7))
        );
    }

    #[test]
    fn primary_limit_waits_until_reset() {
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1100"),
        ]);
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &h, b"", 1000),
            Disposition::RateLimited(Duration::from_secs(101))
        );
    }

    #[test]
    fn secondary_limit_without_headers_waits_a_minute() {
        let body = br#"{"message":"You have exceeded a secondary rate limit."}"#;
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &HeaderMap::new(), body, 0),
            Disposition::RateLimited(Duration::from_secs(60))
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b"", 0),
            Disposition::RateLimited(Duration::from_secs(60))
        );
    }

    #[test]
    fn plain_forbidden_is_final() {
        let body = br#"{"message":"Resource not accessible by integration"}"#;
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &HeaderMap::new(), body, 0),
            Disposition::Done
        );
    }

    #[test]
    fn server_errors_are_retryable() {
        for s in [500, 502, 503, 504] {
            let status = StatusCode::from_u16(s).expect("status");
            assert_eq!(
                classify(status, &HeaderMap::new(), b"", 0),
                Disposition::ServerError
            );
        }
        assert_eq!(
            classify(StatusCode::NOT_FOUND, &HeaderMap::new(), b"", 0),
            Disposition::Done
        );
    }

    #[test]
    fn next_link_is_found_among_others() {
        let resp = Response {
            status: StatusCode::OK,
            headers: headers(&[(
                "link",
                "<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=3>; rel=\"next\"",
            )]),
            body: Bytes::new(),
        };
        assert_eq!(
            resp.next_link().as_deref(),
            Some("https://api.github.com/x?page=3")
        );
    }

    #[test]
    fn per_page_is_added_once() {
        assert_eq!(with_per_page("/a"), "/a?per_page=100");
        assert_eq!(with_per_page("/a?x=1"), "/a?x=1&per_page=100");
        assert_eq!(with_per_page("/a?per_page=2"), "/a?per_page=2");
    }
}
