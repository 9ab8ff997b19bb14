//! One HTTP exchange with a registry: per-host limits, auth challenges, 429/503 backoff,
//! the SSRF guard's checks, and a count of every request sent.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde::Serialize;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::RegistryError;
use super::budget::{Budgets, Spender, Usage};
use super::cache::Coalescing;
use super::guard::{self, Exemption, GuardResolver, Refused};
use super::settings::{ConfigError, Credential, RegistryConfig, strip_port};

/// What a request was for, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    ManifestHead,
    ManifestGet,
    Blob,
    Token,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::ManifestHead => "manifest-head",
            RequestKind::ManifestGet => "manifest-get",
            RequestKind::Blob => "blob",
            RequestKind::Token => "token",
        }
    }
}

/// Requests sent, by host, method, kind and status (`0`: no response).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RequestCount {
    pub host: String,
    pub method: String,
    pub kind: RequestKind,
    pub status: u16,
    pub count: u64,
}

/// Where a registry's API is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as contacted (after the mirror mapping).
    pub host: String,
    pub scheme: &'static str,
}

impl Endpoint {
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.host, path)
    }
}

/// Per-host state (concurrency limits, rate-limit blocks) past this many hosts drops the
/// hosts nobody is using.
const MAX_HOSTS_KEPT: usize = 1000;

/// Bodies larger than this are refused: no manifest or image config is near it.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// (host, method, kind, status)
type CountKey = (String, &'static str, RequestKind, u16);

pub struct Http {
    pub config: Arc<RegistryConfig>,
    /// For requests to a `host:port` the operator exempts from the SSRF guard.
    exempt_client: reqwest::Client,
    /// For every other request (the only one without the guard).
    client: reqwest::Client,
    counts: Mutex<BTreeMap<CountKey, u64>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Hosts that rate-limited us: skipped until the instant.
    blocked: Mutex<HashMap<String, Instant>>,
    /// Bearer tokens by (host, scope), with their lifetime; concurrent 401s on one scope
    /// share one token request.
    tokens: Coalescing<(String, String), Result<(String, Duration), RegistryError>>,
    /// Hosts that asked for Basic auth: later requests send it up front.
    basic: Mutex<std::collections::HashSet<String>>,
    budgets: Budgets,
    /// Response body bytes read, by host and kind.
    bytes: Mutex<BTreeMap<(String, RequestKind), u64>>,
}

/// Locks a mutex, recovering from a poisoned one: every value kept under these locks is
/// valid on its own, so a panic elsewhere must not stop resolution.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Http {
    pub fn new(config: Arc<RegistryConfig>) -> Result<Http, ConfigError> {
        let limits = config.cache_limits();
        let mut roots = Vec::new();
        for pem in &config.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ConfigError::Client(format!("extra CA certificates: {e}")))?;
            roots.extend(certs);
        }
        let build = |via: Exemption| {
            let mut b = reqwest::Client::builder()
                .connect_timeout(config.connect_timeout)
                .timeout(config.request_timeout)
                .user_agent(config.user_agent.clone())
                .redirect(guard::redirect_policy(config.clone(), via));
            if config.ssrf_guard {
                // Through a proxy the proxy resolves and connects: nothing here could check it.
                b = b.no_proxy();
            }
            if config.ssrf_guard || config.lookup.is_some() {
                b = b.dns_resolver(Arc::new(GuardResolver::new(config.clone(), via)));
            }
            if !roots.is_empty() {
                b = b.tls_certs_merge(roots.clone());
            }
            b.build()
                .map_err(|e| ConfigError::Client(format!("HTTP client: {e}")))
        };
        let client = build(Exemption::None)?;
        let exempt_client = if config.ssrf_guard {
            build(Exemption::Port)?
        } else {
            client.clone()
        };
        Ok(Http {
            budgets: Budgets::new(config.pull_budgets.clone()),
            bytes: Mutex::default(),
            config,
            exempt_client,
            client,
            counts: Mutex::default(),
            limits: Mutex::default(),
            blocked: Mutex::default(),
            tokens: Coalescing::new("tokens", limits, |(host, scope), v| {
                host.len() + scope.len() + v.as_ref().map_or(0, |(t, _)| t.len())
            }),
            basic: Mutex::default(),
        })
    }

    pub fn endpoint(&self, registry: &str) -> Endpoint {
        let host = self.config.api_host(registry);
        let scheme = if self.config.is_insecure(&host) {
            "http"
        } else {
            "https"
        };
        Endpoint { host, scheme }
    }

    /// The token cache's name and usage.
    pub fn token_cache(&self) -> (&'static str, super::cache::Usage) {
        (self.tokens.name(), self.tokens.usage())
    }

    /// The client a request to `url` goes through (see [`Exemption`]).
    fn client_for(&self, url: &reqwest::Url) -> (&reqwest::Client, Exemption) {
        if guard::exempt(&self.config, url) {
            (&self.exempt_client, Exemption::Port)
        } else {
            (&self.client, Exemption::None)
        }
    }

    pub fn counts(&self) -> Vec<RequestCount> {
        lock(&self.counts)
            .iter()
            .map(|((host, method, kind, status), n)| RequestCount {
                host: host.clone(),
                method: method.to_string(),
                kind: *kind,
                status: *status,
                count: *n,
            })
            .collect()
    }

    /// Body bytes read so far, by host and kind.
    pub fn bytes(&self) -> Vec<(String, RequestKind, u64)> {
        lock(&self.bytes)
            .iter()
            .map(|((h, k), n)| (h.clone(), *k, *n))
            .collect()
    }

    pub fn budget_usage(&self) -> Vec<Usage> {
        self.budgets.usage()
    }

    /// Reads a response body of at most `limit` bytes, counting them.
    pub async fn read(
        &self,
        host: &str,
        kind: RequestKind,
        resp: Response,
        limit: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let body = read_body_limited(host, resp, limit).await?;
        *lock(&self.bytes)
            .entry((host.to_string(), kind))
            .or_default() += body.len() as u64;
        crate::metrics::registry_bytes(host, kind.as_str(), body.len() as u64);
        Ok(body)
    }

    fn count(&self, host: &str, method: &Method, kind: RequestKind, status: u16) {
        let method: &'static str = if method == Method::HEAD {
            "HEAD"
        } else {
            "GET"
        };
        let mut counts = lock(&self.counts);
        // Past MAX_HOSTS_KEPT hosts, new ones are counted together as `other`, so the
        // table does not grow with every host a stranger's file names.
        let known = counts
            .range((host.to_string(), "", RequestKind::ManifestHead, 0)..)
            .next()
            .is_some_and(|((h, ..), _)| h == host);
        let label = if known || self.counted_hosts(&counts) < MAX_HOSTS_KEPT {
            host
        } else {
            "other"
        };
        *counts
            .entry((label.to_string(), method, kind, status))
            .or_default() += 1;
        crate::metrics::registry_request(host, method, kind.as_str(), status);
    }

    fn counted_hosts(&self, counts: &BTreeMap<CountKey, u64>) -> usize {
        let mut n = 0;
        let mut last: Option<&str> = None;
        for (h, ..) in counts.keys() {
            if last != Some(h.as_str()) {
                n += 1;
                last = Some(h);
            }
        }
        n
    }

    fn permit_pool(&self, host: &str) -> Arc<Semaphore> {
        let mut limits = lock(&self.limits);
        // Hosts come from strangers' files: forget idle ones rather than grow for good.
        if limits.len() >= MAX_HOSTS_KEPT {
            limits.retain(|_, s| Arc::strong_count(s) > 1);
        }
        limits
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_host_limit.max(1))))
            .clone()
    }

    /// Sends `method path` to the registry at `ep` for `repo`, authenticating as the
    /// registry asks. Returns the response whatever its status, except for rate limits
    /// (retried, then `RateLimited`) and transport failures.
    pub async fn send(
        &self,
        ep: &Endpoint,
        repo: &str,
        method: Method,
        path: &str,
        accept: Option<&str>,
        kind: RequestKind,
    ) -> Result<Response, RegistryError> {
        self.send_as(ep, repo, method, path, accept, kind, Spender::Resolve)
            .await
    }

    /// [`Http::send`] on behalf of `who`: a manifest GET beyond `who`'s share of the host's
    /// pull budget is not sent ([`RegistryError::BudgetExhausted`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_as(
        &self,
        ep: &Endpoint,
        repo: &str,
        method: Method,
        path: &str,
        accept: Option<&str>,
        kind: RequestKind,
        who: Spender,
    ) -> Result<Response, RegistryError> {
        self.send_once(ep, repo, method, path, accept, kind, who)
            .await
            .map_err(logged)
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_once(
        &self,
        ep: &Endpoint,
        repo: &str,
        method: Method,
        path: &str,
        accept: Option<&str>,
        kind: RequestKind,
        who: Spender,
    ) -> Result<Response, RegistryError> {
        let host = ep.host.clone();
        self.check_not_blocked(&host)?;
        let url = reqwest::Url::parse(&ep.url(path)).map_err(|e| RegistryError::Invalid {
            host: host.clone(),
            message: format!("bad URL: {e}"),
        })?;
        let (client, via) = self.client_for(&url);
        guard::check_url(&self.config, &url, via).map_err(|reason| RegistryError::Refused {
            host: host.clone(),
            reason,
        })?;
        let pool = self.permit_pool(&host);
        let _permit = pool.acquire().await.map_err(|_| RegistryError::Transport {
            host: host.clone(),
            what: "shutting down",
            detail: "the request was not sent".into(),
        })?;
        let scope = format!("repository:{repo}:pull");
        let mut authed = false;
        let mut retries = 0u32;
        loop {
            if kind == RequestKind::ManifestGet && !self.budgets.take(&host, who) {
                return Err(RegistryError::BudgetExhausted { host });
            }
            let mut req = client.request(method.clone(), url.clone());
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            let sent_auth = self.cached_auth(&host, &scope);
            if let Some(auth) = &sent_auth {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.count(&host, &method, kind, 0);
                    return Err(transport_error(&host, &e));
                }
            };
            let status = resp.status();
            self.count(&host, &method, kind, status.as_u16());
            guard::check_remote(&self.config, resp.url(), resp.remote_addr()).map_err(
                |reason| RegistryError::Refused {
                    host: host.clone(),
                    reason,
                },
            )?;
            if status == StatusCode::UNAUTHORIZED && !authed {
                authed = true;
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(parse_challenge);
                if self
                    .answer_challenge(ep, &scope, challenge, sent_auth.as_deref())
                    .await?
                {
                    continue;
                }
                return Ok(resp);
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                let wait = self.slow_down(&host, status, resp.headers(), retries)?;
                retries += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(resp);
        }
    }

    /// A host that rate limited us earlier this cycle is not asked again until its window
    /// has passed.
    fn check_not_blocked(&self, host: &str) -> Result<(), RegistryError> {
        match lock(&self.blocked).get(host).copied() {
            Some(until) if until > Instant::now() => Err(RegistryError::RateLimited {
                host: host.to_string(),
                detail: "gave up on this host for this cycle".into(),
            }),
            _ => Ok(()),
        }
    }

    /// The registry said 429 or 503: how long to wait before retry number `retries + 1`
    /// (its `Retry-After`, else exponential backoff, plus jitter), or `RateLimited` once the
    /// retries are used up or the wait is over the cap — then the host is blocked.
    fn slow_down(
        &self,
        host: &str,
        status: StatusCode,
        headers: &HeaderMap,
        retries: u32,
    ) -> Result<Duration, RegistryError> {
        let asked = retry_after(headers);
        let cap = self.config.retry_after_cap;
        let backoff = self
            .config
            .backoff_base
            .checked_mul(2u32.saturating_pow(retries))
            .unwrap_or(cap);
        let wait = asked.unwrap_or(backoff);
        if retries < self.config.max_retries && wait <= cap {
            let wait = wait + jitter(self.config.backoff_base);
            debug!(%host, %status, ?wait, "registry asks us to slow down");
            return Ok(wait);
        }
        self.block(
            host,
            wait.clamp(Duration::from_secs(1), cap.max(Duration::from_secs(1))),
        );
        warn!(%host, %status, "registry rate limit: giving up for this cycle");
        Err(RegistryError::RateLimited {
            host: host.to_string(),
            detail: match asked {
                Some(a) => format!("{status}, Retry-After {}s", a.as_secs()),
                None => status.to_string(),
            },
        })
    }

    /// Gives up on this host until the server's window (or a cap) has passed, so the rest
    /// of this cycle's lookups to it do not pile on.
    fn block(&self, host: &str, block: Duration) {
        if let Some(until) = Instant::now().checked_add(block) {
            let mut blocked = lock(&self.blocked);
            if blocked.len() >= MAX_HOSTS_KEPT {
                let now = Instant::now();
                blocked.retain(|_, t| *t > now);
            }
            blocked.insert(host.to_string(), until);
        }
    }

    fn cached_auth(&self, host: &str, scope: &str) -> Option<String> {
        let key = (host.to_string(), scope.to_string());
        if let Some(Ok((token, _))) = self.tokens.peek(&key, token_ttl) {
            return Some(format!("Bearer {token}"));
        }
        if lock(&self.basic).contains(host) {
            return self.config.credential_for(host).map(basic_header);
        }
        None
    }

    /// Acts on a 401's challenge. `Ok(true)` when the request should be sent again.
    async fn answer_challenge(
        &self,
        ep: &Endpoint,
        scope: &str,
        challenge: Option<Challenge>,
        sent_auth: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let cred = self.config.credential_for(&ep.host);
        match challenge {
            Some(c) if c.scheme.eq_ignore_ascii_case("basic") => {
                if cred.is_none() {
                    return Ok(false);
                }
                lock(&self.basic).insert(ep.host.clone());
                Ok(true)
            }
            Some(c) if c.scheme.eq_ignore_ascii_case("bearer") => {
                let Some(realm) = c.params.get("realm") else {
                    return Ok(false);
                };
                let key = (ep.host.clone(), scope.to_string());
                // A token we sent was refused: it must not be handed out again. (Only that
                // one: forgetting an in-flight fetch would undo the coalescing.)
                if let Some(Ok((token, _))) = self.tokens.peek(&key, token_ttl)
                    && sent_auth == Some(format!("Bearer {token}").as_str())
                {
                    self.tokens.forget(&key);
                }
                self.tokens
                    .get_or_fetch(key, token_ttl, None, || {
                        self.fetch_token(ep, realm, &c.params, scope, cred)
                    })
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn fetch_token(
        &self,
        ep: &Endpoint,
        realm: &str,
        params: &BTreeMap<String, String>,
        scope: &str,
        cred: Option<&Credential>,
    ) -> Result<(String, Duration), RegistryError> {
        let host = ep.host.clone();
        let (url, realm_host, client) = self.token_url(ep, realm, params, scope)?;
        // Credentials go to the realm only when it is the registry host itself or a host
        // the operator listed for this credential; anywhere else the request is anonymous.
        // Hosts compare as `host[:port]`, like web origins.
        let send_cred = cred.filter(|c| {
            realm_host == ep.host
                || c.token_hosts.contains(&realm_host)
                || c.token_hosts.contains(strip_port(&realm_host))
        });
        if cred.is_some() && send_cred.is_none() {
            debug!(%host, realm = %realm_host, "token realm on another host: asking anonymously");
        }
        let mut req = client.get(url);
        if let Some(c) = send_cred {
            req = req.header(AUTHORIZATION, basic_header(c));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.count(&realm_host, &Method::GET, RequestKind::Token, 0);
                return Err(match transport_error(&host, &e) {
                    RegistryError::Transport { host, what, detail } => RegistryError::Transport {
                        host,
                        what,
                        detail: format!("token realm {realm_host}: {detail}"),
                    },
                    refused => refused,
                });
            }
        };
        self.count(
            &realm_host,
            &Method::GET,
            RequestKind::Token,
            resp.status().as_u16(),
        );
        guard::check_remote(&self.config, resp.url(), resp.remote_addr()).map_err(|reason| {
            RegistryError::Refused {
                host: host.clone(),
                reason: format!("token realm: {reason}"),
            }
        })?;
        token_service_status(&host, &realm_host, &resp, cred.is_some())?;
        let body = self
            .read(&realm_host, RequestKind::Token, resp, MAX_BODY)
            .await?;
        token_of(&host, &body)
    }

    /// The token service's URL with the `service` and `scope` the challenge asked for, its
    /// `host[:port]` and the client to ask it with; refused unless HTTPS (or HTTP where the registry is plain HTTP
    /// or configured insecure) and allowed by the SSRF guard. Failures name the registry,
    /// not the realm: where its token service lives is the operator's business (the
    /// detail, for the log, says).
    fn token_url(
        &self,
        ep: &Endpoint,
        realm: &str,
        params: &BTreeMap<String, String>,
        scope: &str,
    ) -> Result<(reqwest::Url, String, &reqwest::Client), RegistryError> {
        let bad = |message: String| RegistryError::Invalid {
            host: ep.host.clone(),
            message,
        };
        let mut url = reqwest::Url::parse(realm).map_err(|e| bad(format!("token realm: {e}")))?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(bad("token realm has no host".into())),
        };
        match url.scheme() {
            "https" => {}
            "http" if self.config.is_insecure(&realm_host) || ep.scheme == "http" => {}
            other => return Err(bad(format!("token realm uses {other}, refused"))),
        }
        let (client, via) = self.client_for(&url);
        guard::check_url(&self.config, &url, via).map_err(|reason| RegistryError::Refused {
            host: ep.host.clone(),
            reason: format!("token realm: {reason}"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                q.append_pair("service", service);
            }
            q.append_pair("scope", params.get("scope").map_or(scope, |s| s.as_str()));
        }
        Ok((url, realm_host, client))
    }
}

/// The token service's refusals: credentials wanted or rejected, load shed (the cycle gives
/// up on the host, as for the registry's own rate limit), anything else unexpected.
fn token_service_status(
    host: &str,
    realm_host: &str,
    resp: &Response,
    had_credentials: bool,
) -> Result<(), RegistryError> {
    match resp.status() {
        s if s.is_success() => Ok(()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Unauthorized {
            host: host.to_string(),
            detail: if had_credentials {
                "credentials rejected by the token service".into()
            } else {
                "the token service wants credentials".into()
            },
        }),
        // A token service that sheds load limits lookups like the registry itself
        // would: this cycle gives up on the host with a "rate limited" status.
        s @ (StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) => {
            let after = retry_after(resp.headers())
                .map(|d| format!(", retry after {} s", d.as_secs()))
                .unwrap_or_default();
            Err(RegistryError::RateLimited {
                host: realm_host.to_string(),
                detail: format!("token service answered {s}{after}"),
            })
        }
        s => Err(RegistryError::Invalid {
            host: host.to_string(),
            message: format!("token service answered {s}"),
        }),
    }
}

/// The token and how long to use it, from the token service's JSON answer.
fn token_of(host: &str, body: &[u8]) -> Result<(String, Duration), RegistryError> {
    #[derive(serde::Deserialize)]
    struct TokenBody {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let bad = |message: String| RegistryError::Invalid {
        host: host.to_string(),
        message,
    };
    let t: TokenBody =
        serde_json::from_slice(body).map_err(|e| bad(format!("token response: {e}")))?;
    let token = t
        .token
        .or(t.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("token response has no token".into()))?;
    // Tokens default to 60 s (distribution spec); renew a little early.
    let life = Duration::from_secs(t.expires_in.unwrap_or(60).clamp(10, 3600) - 5);
    Ok((token, life))
}

/// Tokens live as long as the token service said; failures are not kept.
fn token_ttl(v: &Result<(String, Duration), RegistryError>) -> Duration {
    match v {
        Ok((_, life)) => *life,
        Err(_) => Duration::ZERO,
    }
}

fn basic_header(c: &Credential) -> String {
    let raw = format!("{}:{}", c.username, c.password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn read_body_limited(
    host: &str,
    mut resp: Response,
    limit: usize,
) -> Result<Vec<u8>, RegistryError> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > limit {
                    return Err(RegistryError::Invalid {
                        host: host.to_string(),
                        message: format!("response larger than {limit} bytes"),
                    });
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(logged(transport_error(host, &e))),
        }
    }
}

/// Writes the operator's side of a refusal or a network failure to the log: repositories
/// are only told [`RegistryError::public_message`]. Once per request, not per reference.
fn logged(e: RegistryError) -> RegistryError {
    match &e {
        RegistryError::Refused { .. } => warn!(error = %e, "registry request refused"),
        RegistryError::Transport { .. } => warn!(error = %e, "registry request failed"),
        _ => {}
    }
    e
}

/// A readable error for a request that got no response.
pub fn transport_error(host: &str, e: &reqwest::Error) -> RegistryError {
    let host = host.to_string();
    // The guard's refusal may sit anywhere in the source chain.
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut chain = Vec::new();
    while let Some(s) = src {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return RegistryError::Refused {
                host,
                reason: r.0.clone(),
            };
        }
        let text = s.to_string();
        if !chain.iter().any(|c: &String| c.contains(&text)) {
            chain.push(text);
        }
        src = s.source();
    }
    if e.is_timeout() {
        return RegistryError::Timeout { host };
    }
    let detail = chain.last().cloned().unwrap_or_default();
    let lower = chain.join(": ").to_ascii_lowercase();
    let what = if lower.contains("certificate") || lower.contains("tls") {
        "TLS error"
    } else if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
        "cannot resolve host"
    } else if e.is_redirect() {
        "redirect failed"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "connection failed"
    };
    RegistryError::Transport { host, what, detail }
}

/// `Retry-After`: delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

fn jitter(base: Duration) -> Duration {
    let ms = base.as_millis().min(1000) as u64;
    Duration::from_millis(rand::random_range(0..=ms / 2 + 1))
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="repository:a:pull,push"` (quoted values may
/// hold commas).
pub fn parse_challenge(text: &str) -> Challenge {
    let text = text.trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Challenge {
        scheme: scheme.to_string(),
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull,push""#,
        );
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/python:pull,push");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(b.scheme, "Basic");
        assert_eq!(b.params["realm"], "Registry Realm");
        assert!(parse_challenge("Bearer").params.is_empty());
    }

    #[test]
    fn request_counts_stop_growing_with_new_hosts() {
        let http = Http::new(Arc::new(RegistryConfig::default())).unwrap();
        for i in 0..MAX_HOSTS_KEPT + 50 {
            let host = format!("h{i}.example");
            http.count(&host, &Method::HEAD, RequestKind::ManifestHead, 200);
            http.count(&host, &Method::GET, RequestKind::Blob, 200);
        }
        // A host counted before the cap keeps its own row.
        http.count("h0.example", &Method::HEAD, RequestKind::ManifestHead, 200);
        let counts = http.counts();
        let hosts: std::collections::BTreeSet<_> = counts.iter().map(|c| &c.host).collect();
        assert_eq!(hosts.len(), MAX_HOSTS_KEPT + 1);
        let other: u64 = counts
            .iter()
            .filter(|c| c.host == "other")
            .map(|c| c.count)
            .sum();
        assert_eq!(other, 100);
        let h0 = counts
            .iter()
            .find(|c| c.host == "h0.example" && c.kind == RequestKind::ManifestHead)
            .unwrap();
        assert_eq!(h0.count, 2);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
