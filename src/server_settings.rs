//! Operator settings for `digestif serve`: clap flags with environment fallbacks, checked
//! up front so a missing or invalid one is a single clear message naming it.
//!
//! Secrets (private key, webhook secret) are never printed: clap hides their env values in
//! `--help`, and [`Settings`] has a hand-written `Debug`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use thiserror::Error;

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub use crate::store::DEFAULT_DATABASE_URL;
pub const DEFAULT_BIND: &str = "0.0.0.0:3000";

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The GitHub App's numeric id.
    #[arg(long, env = "DIGESTIF_GITHUB_APP_ID")]
    pub app_id: Option<String>,
    /// The App's private key, PEM text.
    #[arg(long, env = "DIGESTIF_GITHUB_PRIVATE_KEY", hide_env_values = true)]
    pub private_key: Option<String>,
    /// A file holding the App's private key (PEM).
    #[arg(long, env = "DIGESTIF_GITHUB_PRIVATE_KEY_PATH")]
    pub private_key_path: Option<PathBuf>,
    /// The secret GitHub signs webhook deliveries with.
    #[arg(long, env = "DIGESTIF_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// GitHub's REST API root; set it for GitHub Enterprise Server (`https://HOST/api/v3`).
    #[arg(long, env = "DIGESTIF_GITHUB_API_URL", default_value = DEFAULT_API_URL)]
    pub github_api_url: String,
    /// `sqlite://PATH` (default, one process) or `postgres://…` (several replicas).
    #[arg(long, env = "DIGESTIF_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Address the HTTP server listens on.
    #[arg(long, env = "DIGESTIF_BIND", default_value = DEFAULT_BIND)]
    pub bind: String,
    /// Jobs run at once by this process.
    #[arg(long, env = "DIGESTIF_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// The secret of the operator pages: the status page (`/`) and `/setup`. Unset, the
    /// status page is off.
    #[arg(long, env = "DIGESTIF_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// When set, `/metrics` wants it as `Authorization: Bearer …`.
    #[arg(long, env = "DIGESTIF_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// The webhook secret being rotated out, still accepted until removed.
    #[arg(long, env = "DIGESTIF_WEBHOOK_SECRET_PREVIOUS", hide_env_values = true)]
    pub webhook_secret_previous: Option<String>,
    /// Where GitHub and browsers reach this server (`https://digestif.example.com`): the
    /// App's webhook and redirect URLs in `/setup`.
    #[arg(long, env = "DIGESTIF_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// GitHub's web address; default derived from the API URL (`https://github.com`, or
    /// `https://HOST` for `https://HOST/api/v3`).
    #[arg(long, env = "DIGESTIF_GITHUB_WEB_URL")]
    pub github_web_url: Option<String>,
    /// The file `/setup` writes the new App's credentials to, and `serve` reads them from
    /// when DIGESTIF_GITHUB_APP_ID is unset. Default: `digestif-app.env` next to the SQLite
    /// database (the working directory for PostgreSQL).
    #[arg(long, env = "DIGESTIF_APP_CREDENTIALS_FILE")]
    pub app_credentials_file: Option<PathBuf>,
    /// The least time between two scheduled scans of a repository (`30m`, `1h`, `6h`, at
    /// most `1d`): a repository's `schedule` that runs more often, or never, is a
    /// configuration error.
    #[arg(long, env = "DIGESTIF_MIN_SCHEDULE_INTERVAL", default_value = "1h")]
    pub min_schedule_interval: String,
    /// How long a running job stays leased to this process without a heartbeat (`10s` to
    /// `1h`; heartbeats come every third of it): when the process dies, its running jobs are
    /// taken up by another process, or by this one restarted, after this long.
    #[arg(long, env = "DIGESTIF_JOB_LEASE", default_value = "5m")]
    pub job_lease: String,
    /// Most webhook deliveries recorded in one database transaction (1 to 1000): deliveries
    /// that arrive together are committed together, and each is answered once its
    /// transaction committed. 1 records each delivery in a transaction of its own.
    #[arg(long, env = "DIGESTIF_WEBHOOK_BATCH", default_value = "256")]
    pub webhook_batch: String,
    /// An OSV API to ask which advisories an update fixes (`https://api.osv.dev`, or a
    /// mirror's root): the OSV names of the packages an update removes or upgrades, with
    /// their old and new versions, are sent there. Unset (the default), nothing is sent and
    /// PRs have no vulnerability notes.
    #[arg(long, env = "DIGESTIF_OSV_URL")]
    pub osv_url: Option<String>,
}

/// Reads `DIGESTIF_JOB_LEASE`.
pub fn job_lease(text: &str) -> Result<std::time::Duration, SettingsError> {
    let t = text.trim();
    let d = match t.strip_suffix('s').map(str::parse::<u64>) {
        Some(Ok(secs)) => std::time::Duration::from_secs(secs),
        _ => crate::repo_config::parse_duration(t).map_err(|e| err("DIGESTIF_JOB_LEASE", e))?,
    };
    // Shorter would be database chatter (a heartbeat every third of the lease), and a stall
    // of a few seconds (a pause, a slow disk) would cost a job its lease.
    if d < std::time::Duration::from_secs(10) || d > std::time::Duration::from_secs(3600) {
        return Err(err(
            "DIGESTIF_JOB_LEASE",
            format!("{text:?} is not between 10s and 1h"),
        ));
    }
    Ok(d)
}

/// `DIGESTIF_WEBHOOK_BATCH` when unset.
pub const DEFAULT_WEBHOOK_BATCH: usize = 256;

/// Reads `DIGESTIF_WEBHOOK_BATCH`.
pub fn webhook_batch(text: &str) -> Result<usize, SettingsError> {
    match text.trim().parse::<usize>() {
        // Larger batches hold SQLite's write lock longer without committing faster.
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(err(
            "DIGESTIF_WEBHOOK_BATCH",
            format!("{text:?} is not a number from 1 to 1000"),
        )),
    }
}

/// Reads `DIGESTIF_MIN_SCHEDULE_INTERVAL` (`serve` and `check-config` share it).
pub fn min_schedule_interval(text: &str) -> Result<std::time::Duration, SettingsError> {
    let d = crate::repo_config::parse_duration(text)
        .map_err(|e| err("DIGESTIF_MIN_SCHEDULE_INTERVAL", e))?;
    // `daily`, the schedule of a repository without a config file, must stay allowed.
    if d > std::time::Duration::from_secs(86_400) {
        return Err(err(
            "DIGESTIF_MIN_SCHEDULE_INTERVAL",
            format!("{text:?} is more than 1d (the default schedule is daily)"),
        ));
    }
    Ok(d)
}

/// The name of the credentials file `/setup` writes.
pub const CREDENTIALS_FILE_NAME: &str = "digestif-app.env";

/// `https://api.github.com` → `https://github.com`; `https://HOST/api/v3` → `https://HOST`;
/// `https://api.TENANT.ghe.com` → `https://TENANT.ghe.com`; anything else as it is.
pub fn github_web_url(api_url: &str) -> String {
    let api = api_url.trim_end_matches('/');
    if let Some(base) = api.strip_suffix("/api/v3") {
        return base.to_string();
    }
    for scheme in ["https://", "http://"] {
        if let Some(rest) = api.strip_prefix(scheme)
            && let Some(host) = rest.strip_prefix("api.")
            && !host.contains('/')
        {
            return format!("{scheme}{host}");
        }
    }
    api.to_string()
}

/// Settings of the operator pages and limits, checked; see [`ServeArgs`] for each.
#[derive(Clone)]
pub struct OpsSettings {
    pub admin_token: Option<String>,
    pub metrics_token: Option<String>,
    pub webhook_secret_previous: Option<Vec<u8>>,
    pub public_url: Option<String>,
    pub github_web_url: String,
    pub credentials_file: PathBuf,
    pub min_schedule_interval: std::time::Duration,
    pub job_lease: std::time::Duration,
    pub webhook_batch: usize,
    /// `DIGESTIF_OSV_URL` without its trailing `/`.
    pub osv_url: Option<String>,
}

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings {
            admin_token: None,
            metrics_token: None,
            webhook_secret_previous: None,
            public_url: None,
            github_web_url: String::new(),
            credentials_file: PathBuf::new(),
            min_schedule_interval: crate::schedule::DEFAULT_MIN_INTERVAL,
            job_lease: std::time::Duration::from_secs(300),
            webhook_batch: DEFAULT_WEBHOOK_BATCH,
            osv_url: None,
        }
    }
}

impl fmt::Debug for OpsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |o: bool| if o { "<redacted>" } else { "<unset>" };
        f.debug_struct("OpsSettings")
            .field("admin_token", &redacted(self.admin_token.is_some()))
            .field("metrics_token", &redacted(self.metrics_token.is_some()))
            .field(
                "webhook_secret_previous",
                &redacted(self.webhook_secret_previous.is_some()),
            )
            .field("public_url", &self.public_url)
            .field("github_web_url", &self.github_web_url)
            .field("credentials_file", &self.credentials_file)
            .field("min_schedule_interval", &self.min_schedule_interval)
            .field("job_lease", &self.job_lease)
            .field("webhook_batch", &self.webhook_batch)
            .field("osv_url", &self.osv_url)
            .finish()
    }
}

/// A token short enough to guess is refused rather than trusted.
const MIN_TOKEN_LEN: usize = 16;

impl OpsSettings {
    pub fn from_args(args: &ServeArgs) -> Result<OpsSettings, SettingsError> {
        let token = |v: &Option<String>, setting: &'static str| match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) if t.len() < MIN_TOKEN_LEN => Err(err(
                setting,
                format!(
                    "is too short: use at least {MIN_TOKEN_LEN} random characters (openssl rand -hex 32)"
                ),
            )),
            Some(t) => Ok(Some(t.to_string())),
        };
        let admin_token = token(&args.admin_token, "DIGESTIF_ADMIN_TOKEN")?;
        let metrics_token = token(&args.metrics_token, "DIGESTIF_METRICS_TOKEN")?;
        let public_url = match args.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                Some(u.trim_end_matches('/').to_string())
            }
            Some(u) => {
                return Err(err(
                    "DIGESTIF_PUBLIC_URL",
                    format!("{u:?} is not an http(s) URL"),
                ));
            }
        };
        let github_web_url = match args.github_web_url.as_deref().map(str::trim) {
            None | Some("") => github_web_url(&args.github_api_url),
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                u.trim_end_matches('/').to_string()
            }
            Some(u) => {
                return Err(err(
                    "DIGESTIF_GITHUB_WEB_URL",
                    format!("{u:?} is not an http(s) URL"),
                ));
            }
        };
        let osv_url = match args.osv_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                Some(u.trim_end_matches('/').to_string())
            }
            Some(u) => {
                return Err(err(
                    "DIGESTIF_OSV_URL",
                    format!("{u:?} is not an http(s) URL"),
                ));
            }
        };
        Ok(OpsSettings {
            osv_url,
            admin_token,
            metrics_token,
            webhook_secret_previous: args
                .webhook_secret_previous
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec()),
            public_url,
            github_web_url,
            credentials_file: credentials_path(args),
            min_schedule_interval: min_schedule_interval(&args.min_schedule_interval)?,
            job_lease: job_lease(&args.job_lease)?,
            webhook_batch: webhook_batch(&args.webhook_batch)?,
        })
    }
}

/// Where the App's credentials file is (see [`ServeArgs::app_credentials_file`]).
pub fn credentials_path(args: &ServeArgs) -> PathBuf {
    if let Some(p) = &args.app_credentials_file {
        return p.clone();
    }
    let db = args.database_url.as_str();
    let path = db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p));
    match path {
        Some(p) if !p.is_empty() && !p.starts_with(":memory:") => {
            let parent = std::path::Path::new(p)
                .parent()
                .filter(|d| !d.as_os_str().is_empty());
            match parent {
                Some(d) => d.join(CREDENTIALS_FILE_NAME),
                None => PathBuf::from(CREDENTIALS_FILE_NAME),
            }
        }
        _ => PathBuf::from(CREDENTIALS_FILE_NAME),
    }
}

/// What GitHub hands over when an App is registered from the manifest.
#[derive(Clone)]
pub struct AppCredentials {
    pub app_id: u64,
    pub private_key_pem: String,
    pub webhook_secret: String,
    /// For the comment line only.
    pub slug: String,
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("slug", &self.slug)
            .finish_non_exhaustive()
    }
}

impl AppCredentials {
    /// Shell syntax (`set -a; . FILE` works): single-quoted values, the key's newlines as
    /// `\n` (which `DIGESTIF_GITHUB_PRIVATE_KEY` accepts).
    pub fn to_env_file(&self) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\'', r"'\''"));
        format!(
            "# The GitHub App {slug}, registered through digestif's /setup on {when}.\n\
             # Keep this file readable by the service user only (mode 0600).\n\
             DIGESTIF_GITHUB_APP_ID={id}\n\
             DIGESTIF_WEBHOOK_SECRET={secret}\n\
             DIGESTIF_GITHUB_PRIVATE_KEY={pem}\n",
            slug = self.slug.replace(['\n', '\r'], " "),
            when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            id = self.app_id,
            secret = quote(&self.webhook_secret),
            pem = quote(&self.private_key_pem.trim_end().replace('\n', "\\n")),
        )
    }

    /// Reads what [`AppCredentials::to_env_file`] wrote (or a hand-written file of
    /// `KEY=value` lines, values optionally quoted).
    pub fn parse_env_file(text: &str) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            let v = if v.len() >= 2
                && ((v.starts_with('\'') && v.ends_with('\''))
                    || (v.starts_with('"') && v.ends_with('"')))
            {
                v[1..v.len() - 1].replace(r"'\''", "'")
            } else {
                v.to_string()
            };
            out.insert(k.trim().to_string(), v);
        }
        out
    }
}

impl ServeArgs {
    /// Fills the App id, private key and webhook secret from the credentials file when the
    /// App id is not set otherwise (flags and environment win, field by field). Returns the
    /// file read, if any.
    pub fn fill_from_credentials_file(&mut self) -> Result<Option<PathBuf>, SettingsError> {
        if self.app_id.as_deref().is_some_and(|v| !v.trim().is_empty()) {
            return Ok(None);
        }
        let path = credentials_path(self);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(err(
                    "DIGESTIF_APP_CREDENTIALS_FILE",
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        };
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(&path) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "the App credentials file is readable by other users; chmod 600 it");
            }
        }
        let values = AppCredentials::parse_env_file(&text);
        let get = |k: &str| values.get(k).filter(|v| !v.is_empty()).cloned();
        self.app_id = get("DIGESTIF_GITHUB_APP_ID");
        if self.private_key.is_none() && self.private_key_path.is_none() {
            self.private_key = get("DIGESTIF_GITHUB_PRIVATE_KEY");
        }
        if self.webhook_secret.as_deref().is_none_or(str::is_empty) {
            self.webhook_secret = get("DIGESTIF_WEBHOOK_SECRET");
        }
        Ok(Some(path))
    }

    /// Whether an App is configured at all (else `serve` starts in setup mode).
    pub fn has_app(&self) -> bool {
        self.app_id.as_deref().is_some_and(|v| !v.trim().is_empty())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{setting}: {message}")]
pub struct SettingsError {
    /// The environment variable (and flag) at fault.
    pub setting: &'static str,
    pub message: String,
}

fn err(setting: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        setting,
        message: message.into(),
    }
}

/// Checked settings.
#[derive(Clone)]
pub struct Settings {
    pub app_id: u64,
    pub private_key_pem: Vec<u8>,
    pub webhook_secret: Vec<u8>,
    pub github_api_url: String,
    pub database_url: String,
    pub bind: SocketAddr,
    pub workers: usize,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("app_id", &self.app_id)
            .field("private_key_pem", &"<redacted>")
            .field("webhook_secret", &"<redacted>")
            .field("github_api_url", &self.github_api_url)
            .field("database_url", &redact_url(&self.database_url))
            .field("bind", &self.bind)
            .field("workers", &self.workers)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`. The last `@` ends the
/// user part, so a password holding an unencoded `@` is hidden whole.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> Result<Settings, SettingsError> {
        let app_id = match args.app_id.as_deref().map(str::trim) {
            None | Some("") => return Err(err("DIGESTIF_GITHUB_APP_ID", "is not set")),
            Some(v) => v.parse::<u64>().map_err(|_| {
                err(
                    "DIGESTIF_GITHUB_APP_ID",
                    format!("{v:?} is not a number (the App's id from its settings page)"),
                )
            })?,
        };
        let private_key_pem = match (&args.private_key, &args.private_key_path) {
            (Some(pem), _) if !pem.trim().is_empty() => pem.replace("\\n", "\n").into_bytes(),
            (_, Some(path)) => std::fs::read(path).map_err(|e| {
                err(
                    "DIGESTIF_GITHUB_PRIVATE_KEY_PATH",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?,
            _ => {
                return Err(err(
                    "DIGESTIF_GITHUB_PRIVATE_KEY",
                    "is not set (nor DIGESTIF_GITHUB_PRIVATE_KEY_PATH)",
                ));
            }
        };
        if !String::from_utf8_lossy(&private_key_pem).contains("-----BEGIN") {
            return Err(err(
                if args.private_key.is_some() {
                    "DIGESTIF_GITHUB_PRIVATE_KEY"
                } else {
                    "DIGESTIF_GITHUB_PRIVATE_KEY_PATH"
                },
                "is not a PEM private key (expected -----BEGIN RSA PRIVATE KEY-----)",
            ));
        }
        let webhook_secret = match args.webhook_secret.as_deref() {
            None | Some("") => return Err(err("DIGESTIF_WEBHOOK_SECRET", "is not set")),
            Some(s) => s.as_bytes().to_vec(),
        };
        let api = args.github_api_url.trim_end_matches('/');
        if !(api.starts_with("https://") || api.starts_with("http://")) {
            return Err(err(
                "DIGESTIF_GITHUB_API_URL",
                format!("{api:?} is not an http(s) URL"),
            ));
        }
        let db = args.database_url.as_str();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(err(
                "DIGESTIF_DATABASE_URL",
                format!(
                    "{:?} is neither sqlite://PATH nor postgres://…",
                    redact_url(db)
                ),
            ));
        }
        let bind = args.bind.parse::<SocketAddr>().map_err(|_| {
            err(
                "DIGESTIF_BIND",
                format!("{:?} is not an address like 0.0.0.0:3000", args.bind),
            )
        })?;
        if args.workers == 0 {
            return Err(err("DIGESTIF_WORKERS", "must be at least 1"));
        }
        Ok(Settings {
            app_id,
            private_key_pem,
            webhook_secret,
            github_api_url: api.to_string(),
            database_url: args.database_url.clone(),
            bind,
            workers: args.workers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            app_id: Some("42".into()),
            private_key: Some("-----BEGIN RSA PRIVATE KEY-----\nx\n".into()),
            private_key_path: None,
            webhook_secret: Some("s3cret".into()),
            github_api_url: DEFAULT_API_URL.into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            bind: DEFAULT_BIND.into(),
            workers: 4,
            admin_token: None,
            metrics_token: None,
            webhook_secret_previous: None,
            public_url: None,
            github_web_url: None,
            app_credentials_file: None,
            min_schedule_interval: "1h".into(),
            job_lease: "5m".into(),
            webhook_batch: "256".into(),
            osv_url: None,
        }
    }

    #[test]
    fn the_webhook_batch_is_a_number_from_1_to_1000() {
        let mut a = args();
        let batch = |a: &ServeArgs| OpsSettings::from_args(a).map(|o| o.webhook_batch);
        assert_eq!(batch(&a).unwrap(), 256);
        for (text, n) in [("1", 1), (" 64 ", 64), ("1000", 1000)] {
            a.webhook_batch = text.into();
            assert_eq!(batch(&a).unwrap(), n, "{text}");
        }
        for bad in ["0", "1001", "-1", "many", ""] {
            a.webhook_batch = bad.into();
            let e = batch(&a).expect_err(bad);
            assert_eq!(e.setting, "DIGESTIF_WEBHOOK_BATCH", "{bad}");
        }
    }

    #[test]
    fn the_osv_url_is_off_by_default_and_must_be_http() {
        assert_eq!(OpsSettings::from_args(&args()).unwrap().osv_url, None);
        let mut a = args();
        a.osv_url = Some(" https://api.osv.dev/ ".into());
        assert_eq!(
            OpsSettings::from_args(&a).unwrap().osv_url.as_deref(),
            Some("https://api.osv.dev")
        );
        a.osv_url = Some("api.osv.dev".into());
        let e = OpsSettings::from_args(&a).expect_err("refused");
        assert_eq!(e.setting, "DIGESTIF_OSV_URL");
    }

    #[test]
    fn the_minimum_schedule_interval_is_a_duration_of_at_most_a_day() {
        let mut a = args();
        assert_eq!(
            OpsSettings::from_args(&a).unwrap().min_schedule_interval,
            std::time::Duration::from_secs(3600)
        );
        a.min_schedule_interval = "30m".into();
        assert_eq!(
            OpsSettings::from_args(&a).unwrap().min_schedule_interval,
            std::time::Duration::from_secs(1800)
        );
        for bad in ["often", "2d"] {
            a.min_schedule_interval = bad.into();
            let e = OpsSettings::from_args(&a).expect_err(bad);
            assert_eq!(e.setting, "DIGESTIF_MIN_SCHEDULE_INTERVAL");
        }
    }

    #[test]
    fn the_job_lease_is_read_in_seconds_or_minutes_within_bounds() {
        let mut a = args();
        let lease = |a: &ServeArgs| OpsSettings::from_args(a).map(|o| o.job_lease);
        assert_eq!(lease(&a).unwrap(), std::time::Duration::from_secs(300));
        for (text, secs) in [("20s", 20), ("10s", 10), ("2m", 120), ("1h", 3600)] {
            a.job_lease = text.into();
            assert_eq!(lease(&a).unwrap().as_secs(), secs, "{text}");
        }
        for bad in ["9s", "2h", "soon", "s", "0"] {
            a.job_lease = bad.into();
            let e = lease(&a).expect_err(bad);
            assert_eq!(e.setting, "DIGESTIF_JOB_LEASE", "{bad}");
        }
    }

    #[test]
    fn github_web_address_from_the_api_address() {
        assert_eq!(
            github_web_url("https://api.github.com"),
            "https://github.com"
        );
        assert_eq!(
            github_web_url("https://api.github.com/"),
            "https://github.com"
        );
        assert_eq!(
            github_web_url("https://ghe.corp.example/api/v3"),
            "https://ghe.corp.example"
        );
        assert_eq!(
            github_web_url("https://api.octo.ghe.com"),
            "https://octo.ghe.com"
        );
        assert_eq!(
            github_web_url("https://ghe.corp/api/v3/"),
            "https://ghe.corp"
        );
        assert_eq!(github_web_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }

    #[test]
    fn credentials_file_sits_next_to_the_database() {
        let mut a = args();
        a.database_url = "sqlite:///var/lib/digestif/digestif.db".into();
        assert_eq!(
            credentials_path(&a),
            PathBuf::from("/var/lib/digestif/digestif-app.env")
        );
        a.database_url = "sqlite://digestif.db?mode=rwc".into();
        assert_eq!(credentials_path(&a), PathBuf::from("digestif-app.env"));
        a.database_url = "postgres://db/x".into();
        assert_eq!(credentials_path(&a), PathBuf::from("digestif-app.env"));
        a.app_credentials_file = Some("/run/x.env".into());
        assert_eq!(credentials_path(&a), PathBuf::from("/run/x.env"));
    }

    #[test]
    fn credentials_round_trip_through_the_file_and_env_wins() {
        let creds = AppCredentials {
            app_id: 99,
            private_key_pem:
                "-----BEGIN RSA PRIVATE KEY-----\nAAA\n-----END RSA PRIVATE KEY-----\n".into(),
            webhook_secret: "it's secret".into(),
            slug: "digestif-x".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.env");
        std::fs::write(&file, creds.to_env_file()).unwrap();
        let mut a = args();
        a.app_id = None;
        a.private_key = None;
        a.webhook_secret = Some("from-env".into());
        a.app_credentials_file = Some(file.clone());
        assert_eq!(a.fill_from_credentials_file().unwrap(), Some(file));
        assert_eq!(a.app_id.as_deref(), Some("99"));
        assert_eq!(a.webhook_secret.as_deref(), Some("from-env"));
        let s = Settings::from_args(&a).unwrap();
        assert_eq!(
            String::from_utf8(s.private_key_pem).unwrap(),
            "-----BEGIN RSA PRIVATE KEY-----\nAAA\n-----END RSA PRIVATE KEY-----"
        );
        a.webhook_secret = None;
        a.app_id = None;
        a.fill_from_credentials_file().unwrap();
        assert_eq!(a.webhook_secret.as_deref(), Some("it's secret"));
    }

    #[test]
    fn short_tokens_are_refused() {
        let mut a = args();
        a.admin_token = Some("short".into());
        assert_eq!(
            OpsSettings::from_args(&a).unwrap_err().setting,
            "DIGESTIF_ADMIN_TOKEN"
        );
        a.admin_token = Some("0123456789abcdef0123".into());
        let o = OpsSettings::from_args(&a).unwrap();
        assert!(!format!("{o:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn complete_settings_pass_and_debug_hides_secrets() {
        let s = Settings::from_args(&args()).expect("valid");
        assert_eq!(s.app_id, 42);
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("BEGIN"),
            "{shown}"
        );
    }

    #[test]
    fn each_missing_or_bad_setting_is_named() {
        type Change = Box<dyn Fn(&mut ServeArgs)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|a| a.app_id = None), "DIGESTIF_GITHUB_APP_ID"),
            (
                Box::new(|a| a.app_id = Some("abc".into())),
                "DIGESTIF_GITHUB_APP_ID",
            ),
            (
                Box::new(|a| a.private_key = None),
                "DIGESTIF_GITHUB_PRIVATE_KEY",
            ),
            (
                Box::new(|a| a.private_key = Some("nope".into())),
                "DIGESTIF_GITHUB_PRIVATE_KEY",
            ),
            (
                Box::new(|a| {
                    a.private_key = None;
                    a.private_key_path = Some("/nonexistent/key.pem".into());
                }),
                "DIGESTIF_GITHUB_PRIVATE_KEY_PATH",
            ),
            (
                Box::new(|a| a.webhook_secret = None),
                "DIGESTIF_WEBHOOK_SECRET",
            ),
            (
                Box::new(|a| a.github_api_url = "api.github.com".into()),
                "DIGESTIF_GITHUB_API_URL",
            ),
            (
                Box::new(|a| a.database_url = "mysql://x".into()),
                "DIGESTIF_DATABASE_URL",
            ),
            (Box::new(|a| a.bind = "localhost".into()), "DIGESTIF_BIND"),
            (Box::new(|a| a.workers = 0), "DIGESTIF_WORKERS"),
        ];
        for (change, setting) in cases {
            let mut a = args();
            change(&mut a);
            let e = Settings::from_args(&a).expect_err(setting);
            assert_eq!(e.setting, setting, "{e}");
        }
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:pw@db:5432/digestif"),
            "postgres://app:***@db:5432/digestif"
        );
        assert_eq!(redact_url("sqlite://digestif.db"), "sqlite://digestif.db");
        assert_eq!(
            redact_url("postgres://u:p@ss@db/x"),
            "postgres://u:***@db/x"
        );
    }
}
