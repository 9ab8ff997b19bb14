//! Registering the GitHub App in one click (GitHub's manifest flow, as Probot does it).
//!
//! `GET /setup` shows a form that posts `deploy/app.yml` — with this server's URLs filled
//! in — to GitHub's "new App" page. GitHub creates the App and sends the browser back to
//! `GET /setup/callback?code=…&state=…`; the code is exchanged for the App's id, private
//! key and webhook secret (`POST /app-manifests/{code}/conversions`, no authentication),
//! which are written to a file only the service user can read. `digestif serve` reads that
//! file when DIGESTIF_GITHUB_APP_ID is unset, and switches from setup mode to serving.
//!
//! Who may register: the page needs the admin token (DIGESTIF_ADMIN_TOKEN, or a one-time
//! token `serve` prints when none is set), and the callback must carry a `state` this
//! process issued to the same browser (a cookie), so nobody can make the server adopt an
//! App they registered by sending the operator a callback link. The first registration
//! wins; after that the flow is closed.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::WebState;
use super::admin::{self, Access};
use crate::github::api::{Api, ApiError, RetryPolicy};
use crate::github::apps;
use crate::server_settings::AppCredentials;

/// The manifest as shipped, with `example.com` URLs.
pub const APP_MANIFEST: &str = include_str!("../../deploy/app.yml");

const STATE_COOKIE: &str = "digestif_setup_state";
/// GitHub's manifest codes live an hour; so do our states.
const STATE_TTL: Duration = Duration::from_secs(3600);
const MAX_STATES: usize = 64;

#[derive(Debug, Error)]
pub enum SetupError {
    #[error("deploy/app.yml: {0}")]
    Manifest(String),
    #[error("GitHub: {0}")]
    GitHub(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// GitHub created the App but its credentials could not be kept: GitHub shows the
    /// private key only once, so the operator has to make a new one.
    #[error(
        "GitHub created the App (id {app_id}), but its credentials could not be written: \
         {source}. On {html_url} generate a new private key and set a new webhook secret, \
         then start digestif with DIGESTIF_GITHUB_APP_ID={app_id}, \
         DIGESTIF_GITHUB_PRIVATE_KEY_PATH and DIGESTIF_WEBHOOK_SECRET."
    )]
    Orphaned {
        app_id: u64,
        html_url: String,
        source: Box<SetupError>,
    },
}

/// The manifest with `url` and `hook_attributes.url` set for a server GitHub reaches at
/// `public_url`, and `redirect_url` for the address the operator's browser used
/// (`browser_url`: often the same; `http://localhost:3000` when registering from a
/// workstation or through `kubectl port-forward`).
pub fn manifest(public_url: &str, browser_url: &str) -> Result<serde_json::Value, SetupError> {
    let mut m: serde_json::Value =
        serde_saphyr::from_str(APP_MANIFEST).map_err(|e| SetupError::Manifest(e.to_string()))?;
    let base = public_url.trim_end_matches('/');
    let browser = browser_url.trim_end_matches('/');
    let obj = m
        .as_object_mut()
        .ok_or_else(|| SetupError::Manifest("not a mapping".into()))?;
    obj.insert("url".into(), format!("{base}/").into());
    obj.insert(
        "redirect_url".into(),
        format!("{browser}/setup/callback").into(),
    );
    let hook = obj
        .entry("hook_attributes")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(h) = hook.as_object_mut() {
        h.insert("url".into(), format!("{base}/webhooks/github").into());
        h.entry("active").or_insert(true.into());
    }
    Ok(m)
}

/// The App GitHub created.
#[derive(Debug, Clone)]
pub struct Registered {
    pub app_id: u64,
    pub slug: String,
    pub html_url: String,
    pub file: PathBuf,
}

/// Setup mode's state.
pub struct SetupState {
    pub api_url: String,
    pub web_url: String,
    /// `None`: taken from the request's `Host` (and `X-Forwarded-Proto`).
    pub public_url: Option<String>,
    pub credentials_file: PathBuf,
    /// The admin token, or the one-time token `serve` printed.
    pub token: String,
    pub secure_cookies: bool,
    /// Cancelled once credentials are written: `serve` then starts for real.
    pub finished: CancellationToken,
    states: Mutex<HashMap<String, Instant>>,
    busy: AtomicBool,
    registered: Mutex<Option<Registered>>,
}

impl SetupState {
    pub fn new(
        api_url: &str,
        web_url: &str,
        public_url: Option<String>,
        credentials_file: PathBuf,
        token: String,
    ) -> SetupState {
        let secure_cookies = public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        SetupState {
            api_url: api_url.trim_end_matches('/').to_string(),
            web_url: web_url.trim_end_matches('/').to_string(),
            public_url,
            credentials_file,
            token,
            secure_cookies,
            finished: CancellationToken::new(),
            states: Mutex::default(),
            busy: AtomicBool::new(false),
            registered: Mutex::default(),
        }
    }

    pub fn registered(&self) -> Option<Registered> {
        lock(&self.registered).clone()
    }

    fn issue_state(&self) -> String {
        let state = hex::encode(rand::random::<[u8; 24]>());
        let mut states = lock(&self.states);
        states.retain(|_, t| t.elapsed() < STATE_TTL);
        if states.len() >= MAX_STATES {
            // Oldest first out: a flood of page views cannot grow this without bound.
            if let Some(oldest) = states
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            {
                states.remove(&oldest);
            }
        }
        states.insert(state.clone(), Instant::now());
        state
    }

    /// Whether `state` was issued here and is still fresh (not consumed).
    fn knows_state(&self, state: &str) -> bool {
        lock(&self.states)
            .iter()
            .any(|(k, t)| admin::same_secret(k, state) && t.elapsed() < STATE_TTL)
    }

    fn take_state(&self, state: &str) -> bool {
        let mut states = lock(&self.states);
        let found = states
            .keys()
            .find(|k| admin::same_secret(k, state))
            .cloned();
        match found.and_then(|k| states.remove(&k)) {
            Some(t) => t.elapsed() < STATE_TTL,
            None => false,
        }
    }

    /// Exchanges the code and writes the credentials file.
    async fn convert(&self, code: &str) -> Result<Registered, SetupError> {
        let api = Api::anonymous(&self.api_url, RetryPolicy::default())
            .map_err(|e| SetupError::GitHub(e.to_string()))?;
        let c = apps::convert_manifest(&api, code)
            .await
            .map_err(|e| match e {
                ApiError::Status {
                    status, message, ..
                } => SetupError::GitHub(format!(
                    "the code was not accepted ({}): {message}",
                    StatusCode::from_u16(status)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|_| status.to_string())
                )),
                e => SetupError::GitHub(e.to_string()),
            })?;
        let webhook_secret = c.webhook_secret.filter(|s| !s.is_empty()).ok_or_else(|| {
            SetupError::GitHub("GitHub returned no webhook secret for the App".into())
        })?;
        let creds = AppCredentials {
            app_id: c.id,
            private_key_pem: c.pem,
            webhook_secret,
            slug: c.slug.clone().unwrap_or_default(),
        };
        let slug = c.slug.unwrap_or_default();
        let html_url = c
            .html_url
            .unwrap_or_else(|| format!("{}/apps/{slug}", self.web_url));
        if let Err(e) = write_private(&self.credentials_file, creds.to_env_file().as_bytes()) {
            return Err(SetupError::Orphaned {
                app_id: c.id,
                html_url,
                source: Box::new(e),
            });
        }
        Ok(Registered {
            app_id: c.id,
            html_url,
            slug,
            file: self.credentials_file.clone(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `bytes` to `path` readable by this user only (0600), atomically: a temporary
/// file in the same directory, created with that mode, renamed over. Refuses to replace
/// an existing file.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SetupError> {
    let werr = |source| SetupError::Write {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        return Err(werr(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "it exists already; move it away to register another App",
        )));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        // Not `rename`: it would replace a file created meanwhile.
        std::fs::hard_link(&tmp, path)?;
        std::fs::remove_file(&tmp)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(werr)
}

/// Setup mode: registration, and health endpoints that say "not ready".
pub fn router(state: Arc<SetupState>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/setup", get(setup_page))
        .route("/setup/callback", get(callback))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(not_ready))
        .with_state(state)
}

async fn not_ready() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "GitHub App credentials not loaded: no App is configured; register one at /setup",
    )
        .into_response()
}

async fn home() -> Response {
    admin::harden(
        page(
            "digestif: setup",
            html! {
                h1 { "digestif" }
                p { "No GitHub App is configured yet. " a href="/setup" { "Register one" } "." }
            },
        )
        .into_response(),
    )
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="robots" content="noindex";
                title { (title) }
                style { "body{font:15px/1.5 system-ui,sans-serif;margin:2rem;max-width:46rem}code,pre{font:13px ui-monospace,monospace}pre{background:#f6f8fa;padding:.6rem;white-space:pre-wrap}.error{color:#cf222e}" }
            }
            body { (body) }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SetupQuery {
    token: Option<String>,
    org: Option<String>,
}

/// GitHub account names: letters, digits and single hyphens, at most 39.
fn valid_org(org: &str) -> bool {
    !org.is_empty()
        && org.len() <= 39
        && org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !org.starts_with('-')
}

/// The address the browser reached this server at, from `Host` (and `X-Forwarded-Proto`).
fn browser_base(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        return None;
    }
    let proto = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    Some(format!("{proto}://{host}"))
}

async fn setup_page(
    State(state): State<Arc<SetupState>>,
    headers: HeaderMap,
    query: Result<Query<SetupQuery>, QueryRejection>,
) -> Response {
    let q = query.ok().map(|Query(q)| q);
    let token = q.as_ref().and_then(|q| q.token.clone());
    let org = q
        .as_ref()
        .and_then(|q| q.org.clone())
        .filter(|o| !o.is_empty());
    let now = chrono::Utc::now().timestamp();
    let lifetime = admin::SessionLifetime::default();
    let response = match admin::check(
        Some(&state.token),
        &headers,
        token.as_deref(),
        now,
        lifetime,
    ) {
        Access::Denied | Access::Off => (
            StatusCode::UNAUTHORIZED,
            page(
                "digestif: setup",
                html! {
                    h1 { "Register digestif's GitHub App" }
                    @if token.is_some() { p.error { "That token is not right." } }
                    p { "Open this page with the token digestif printed when it started (or your "
                        code { "DIGESTIF_ADMIN_TOKEN" } "):" }
                    form method="get" action="/setup" {
                        input type="password" name="token" aria-label="Token";
                        " " button type="submit" { "Continue" }
                    }
                },
            ),
        )
            .into_response(),
        Access::Login => {
            let location = match &org {
                Some(o) if valid_org(o) => format!("/setup?org={o}"),
                _ => "/setup".to_string(),
            };
            admin::login_redirect(&state.token, &location, state.secure_cookies, now, lifetime)
        }
        Access::Granted => form(&state, &headers, org.as_deref()),
    };
    admin::harden(response)
}

fn form(state: &SetupState, headers: &HeaderMap, org: Option<&str>) -> Response {
    if let Some(r) = state.registered() {
        return done_page(&r).into_response();
    }
    if let Some(o) = org
        && !valid_org(o)
    {
        return (
            StatusCode::BAD_REQUEST,
            page(
                "digestif: setup",
                html! { p.error { "Not an organization name: " code { (o) } } },
            ),
        )
            .into_response();
    }
    let browser = browser_base(headers);
    let Some(base) = state.public_url.clone().or_else(|| browser.clone()) else {
        return (
            StatusCode::BAD_REQUEST,
            page(
                "digestif: setup",
                html! { p.error { "Set DIGESTIF_PUBLIC_URL to the address GitHub reaches this server at." } },
            ),
        )
            .into_response();
    };
    let manifest = match manifest(&base, browser.as_deref().unwrap_or(&base)) {
        Ok(m) => m.to_string(),
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                page("digestif: setup", html! { p.error { (e) } }),
            )
                .into_response();
        }
    };
    let s = state.issue_state();
    let action = match org {
        Some(o) => format!(
            "{}/organizations/{o}/settings/apps/new?state={s}",
            state.web_url
        ),
        None => format!("{}/settings/apps/new?state={s}", state.web_url),
    };
    let body = page(
        "digestif: register the GitHub App",
        html! {
            h1 { "Register digestif's GitHub App" }
            p { "GitHub will create an App with the permissions and events in "
                code { "deploy/app.yml" } ", sending webhooks to "
                code { (base) "/webhooks/github" } ". "
                @if let Some(o) = org { "It will belong to the organization " b { (o) } "." }
                @else { "It will belong to your user account; to register it for an organization, open "
                        code { "/setup?org=NAME" } " instead." }
            }
            form method="post" action=(action) {
                input type="hidden" name="manifest" value=(manifest);
                button type="submit" { "Register on GitHub" }
            }
            details {
                summary { "The manifest" }
                pre { (manifest) }
            }
        },
    );
    let mut r = body.into_response();
    let cookie = format!(
        "{STATE_COOKIE}={s}; Path=/setup; HttpOnly; SameSite=Lax; Max-Age={}{}",
        STATE_TTL.as_secs(),
        if state.secure_cookies { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn done_page(r: &Registered) -> Markup {
    page(
        "digestif: App registered",
        html! {
            h1 { "The App " code { (r.slug) } " is registered" }
            p { "Its id is " b { (r.app_id) } ". Its private key and webhook secret are in "
                code { (r.file.display()) } ", readable only by the user digestif runs as." }
            p { "digestif is starting with it now. If it runs under a supervisor that keeps its "
                "settings elsewhere (Kubernetes, Compose), copy the three values from that file "
                "into your secret store and restart it." }
            p { a href=(format!("{}/installations/new", r.html_url)) { "Install the App" }
                " on the accounts and repositories digestif should look after." }
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

async fn callback(
    State(state): State<Arc<SetupState>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let q = query.ok().map(|Query(q)| q);
    let code = q.as_ref().and_then(|q| q.code.clone()).unwrap_or_default();
    let given = q.as_ref().and_then(|q| q.state.clone()).unwrap_or_default();
    let bad = |status: StatusCode, msg: &str| {
        admin::harden(
            (
                status,
                page(
                    "digestif: setup",
                    html! {
                        p.error { (msg) }
                        p { a href="/setup" { "Start again" } }
                    },
                ),
            )
                .into_response(),
        )
    };
    if let Some(r) = state.registered() {
        return admin::harden(done_page(&r).into_response());
    }
    let cookie_ok = admin::cookie(&headers, STATE_COOKIE)
        .is_some_and(|c| !given.is_empty() && admin::same_secret(c, &given));
    let forged = || {
        bad(
            StatusCode::BAD_REQUEST,
            "This registration was not started from this browser's /setup page, or it expired.",
        )
    };
    if !cookie_ok || !state.knows_state(&given) {
        return forged();
    }
    // Checked before the state and the code are spent: GitHub's codes work once.
    if state.credentials_file.exists() {
        return bad(
            StatusCode::CONFLICT,
            &format!(
                "{} exists already: move it away (or start digestif, which reads it) and try again.",
                state.credentials_file.display()
            ),
        );
    }
    if !state.take_state(&given) {
        return forged();
    }
    if code.is_empty()
        || code.len() > 200
        || !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return bad(StatusCode::BAD_REQUEST, "GitHub sent no usable code.");
    }
    if state.busy.swap(true, Ordering::SeqCst) {
        return bad(
            StatusCode::CONFLICT,
            "A registration is being completed already.",
        );
    }
    let result = state.convert(&code).await;
    state.busy.store(false, Ordering::SeqCst);
    match result {
        Ok(r) => {
            tracing::info!(app_id = r.app_id, slug = %r.slug, file = %r.file.display(), "GitHub App registered");
            *lock(&state.registered) = Some(r.clone());
            state.finished.cancel();
            let mut resp = admin::harden(done_page(&r).into_response());
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{STATE_COOKIE}=; Path=/setup; HttpOnly; SameSite=Lax; Max-Age=0"
            )) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "GitHub App registration failed");
            bad(StatusCode::BAD_GATEWAY, &e.to_string())
        }
    }
}

/// `/setup` once an App is configured: registration is closed.
pub async fn disabled(State(state): State<WebState>) -> Response {
    admin::harden(
        (
            StatusCode::NOT_FOUND,
            page(
                "digestif: setup",
                html! {
                    h1 { "Registration is closed" }
                    p { "A GitHub App is configured"
                        @if let Some(id) = state.ops.app_id { " (App id " (id) ")" }
                        ". To register another, stop digestif, remove its App settings "
                        "(DIGESTIF_GITHUB_APP_ID, or the credentials file), and start it again." }
                },
            ),
        )
            .into_response(),
    )
}

/// Serves setup mode on `listener` until credentials are written or `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<SetupState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let finished = state.finished.clone();
    // Setup mode is as public as the server after it: the same connection limits.
    super::serve(
        listener,
        router(state),
        &super::Limits::default(),
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                // Let the browser receive the "registered" page before the switch.
                _ = async { finished.cancelled().await; tokio::time::sleep(Duration::from_millis(200)).await } => {}
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_gets_this_server_s_urls() {
        let m = manifest(
            "https://digestif.corp.example/",
            "https://digestif.corp.example",
        )
        .unwrap();
        assert_eq!(m["url"], "https://digestif.corp.example/");
        assert_eq!(
            m["hook_attributes"]["url"],
            "https://digestif.corp.example/webhooks/github"
        );
        assert_eq!(
            m["redirect_url"],
            "https://digestif.corp.example/setup/callback"
        );
        assert_eq!(m["default_permissions"]["contents"], "write");
        assert!(!m.to_string().contains("example.com"));
        // Registering from a workstation: GitHub sends the browser back there.
        let m = manifest("https://digestif.corp.example", "http://localhost:3000").unwrap();
        assert_eq!(m["redirect_url"], "http://localhost:3000/setup/callback");
        assert_eq!(
            m["hook_attributes"]["url"],
            "https://digestif.corp.example/webhooks/github"
        );
    }

    #[test]
    fn private_files_are_0600_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.env");
        write_private(&p, b"A=1\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write_private(&p, b"B=2\n").is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "A=1\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn organization_names() {
        assert!(valid_org("my-org"));
        assert!(!valid_org("a/b"));
        assert!(!valid_org("-x"));
        assert!(!valid_org(""));
    }
}
