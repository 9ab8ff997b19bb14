//! Operator settings for `digestif serve`: clap flags with environment fallbacks, checked
//! up front so a missing or invalid one is a single clear message naming it.
//!
//! Secrets (private key, webhook secret) are never printed: clap hides their env values in
//! `--help`, and [`Settings`] has a hand-written `Debug`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use thiserror::Error;

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://digestif.db";
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

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
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
        }
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
        let cases: Vec<(Box<dyn Fn(&mut ServeArgs)>, &str)> = vec![
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
    }
}
