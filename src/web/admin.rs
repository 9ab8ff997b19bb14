//! Operator access: the admin token (status page, `/setup`) and the metrics token.
//!
//! A browser cannot send an `Authorization` header by itself, so `?token=…` logs it in:
//! the answer sets an HttpOnly, SameSite=Strict cookie and redirects to the same page
//! without the token in the address. The cookie holds the time it was issued and an HMAC
//! of that time keyed with the token, not the token: a leaked cookie does not reveal it,
//! stops working [`ADMIN_SESSION`] after it was issued, and changing the token logs everyone
//! out.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::github::api::RateLimitGauge;

pub const SESSION_COOKIE: &str = "digestif_admin";

/// How long a login through `?token=` lasts (the README says 12 hours).
pub const ADMIN_SESSION: Duration = Duration::from_secs(12 * 3600);

/// A cookie issued this far in the future (another replica's clock) is still accepted.
const CLOCK_SKEW_SECS: i64 = 60;

/// The lifetime of login cookies: [`ADMIN_SESSION`] unless a test shortens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetime(pub Duration);

impl Default for SessionLifetime {
    fn default() -> Self {
        SessionLifetime(ADMIN_SESSION)
    }
}

/// What the operator pages need besides the store.
#[derive(Default)]
pub struct OpsState {
    /// `DIGESTIF_ADMIN_TOKEN`: `None` turns the status page off.
    pub admin_token: Option<String>,
    /// `DIGESTIF_METRICS_TOKEN`: when set, `/metrics` wants it as a Bearer token.
    pub metrics_token: Option<String>,
    /// `DIGESTIF_WEBHOOK_SECRET_PREVIOUS`: still accepted while a rotation is under way.
    pub previous_webhook_secret: Option<Arc<[u8]>>,
    /// `https://github.com`, or the GitHub Enterprise Server's own address.
    pub github_web_url: String,
    /// Mark cookies `Secure` (the public URL is https).
    pub secure_cookies: bool,
    pub app_id: Option<u64>,
    pub rate_limit: Option<Arc<RateLimitGauge>>,
    /// The registry resolver, for its pull budgets' use on the status page.
    pub resolver: Option<crate::registry::Resolver>,
    /// How long a login cookie is valid.
    pub session_lifetime: SessionLifetime,
}

impl fmt::Debug for OpsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsState")
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("github_web_url", &self.github_web_url)
            .finish_non_exhaustive()
    }
}

/// Constant-time equality of two secrets (lengths may leak, contents do not).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The cookie value that stands for `token`, issued at `issued` (Unix seconds):
/// `ISSUED.HMAC`, the HMAC keyed with the token over the issue time.
pub fn session_value(token: &str, issued: i64) -> String {
    format!("{issued}.{}", session_mac(token, issued))
}

fn session_mac(token: &str, issued: i64) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(token.as_bytes()) {
        Ok(mut mac) => {
            mac.update(b"digestif status page session v2\n");
            mac.update(issued.to_string().as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Whether `cookie` is a session for `token` issued less than `lifetime` before `now`.
fn session_valid(token: &str, cookie: &str, now: i64, lifetime: Duration) -> bool {
    let Some((issued, mac)) = cookie.split_once('.') else {
        return false;
    };
    let Ok(issued) = issued.parse::<i64>() else {
        return false;
    };
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let age = now.saturating_sub(issued);
    same_secret(mac, &session_mac(token, issued)) && age < lifetime && age >= -CLOCK_SKEW_SECS
}

/// How a request stands with respect to a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    /// No token is configured: the page is off.
    Off,
    Granted,
    /// `?token=` was right: set the cookie and redirect to the address without it.
    Login,
    Denied,
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Checks the Bearer header, the session cookie (at `now`, Unix seconds) and
/// `query_token`, in that order.
pub fn check(
    expected: Option<&str>,
    headers: &HeaderMap,
    query_token: Option<&str>,
    now: i64,
    lifetime: SessionLifetime,
) -> Access {
    let Some(expected) = expected else {
        return Access::Off;
    };
    if bearer(headers).is_some_and(|t| same_secret(t, expected)) {
        return Access::Granted;
    }
    if cookie(headers, SESSION_COOKIE).is_some_and(|c| session_valid(expected, c, now, lifetime.0))
    {
        return Access::Granted;
    }
    match query_token {
        Some(t) if same_secret(t, expected) => Access::Login,
        _ => Access::Denied,
    }
}

/// `303 See Other` to `location`, setting a session cookie issued at `now` (Unix seconds).
pub fn login_redirect(
    token: &str,
    location: &str,
    secure: bool,
    now: i64,
    lifetime: SessionLifetime,
) -> Response {
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session_value(token, now),
        lifetime.0.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Headers every operator page carries: no scripts, no framing, no caching, no referrer
/// (the pages link to GitHub; the address may hold a state parameter).
pub fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const NOW: i64 = 1_800_000_000;

    fn check_now(expected: Option<&str>, h: &HeaderMap, q: Option<&str>) -> Access {
        check(expected, h, q, NOW, SessionLifetime::default())
    }

    #[test]
    fn access_by_header_cookie_and_query() {
        let none = HeaderMap::new();
        assert_eq!(check_now(None, &none, Some("x")), Access::Off);
        assert_eq!(check_now(Some("s3"), &none, None), Access::Denied);
        assert_eq!(check_now(Some("s3"), &none, Some("no")), Access::Denied);
        assert_eq!(check_now(Some("s3"), &none, Some("s3")), Access::Login);
        let h = headers(&[("authorization", "Bearer s3")]);
        assert_eq!(check_now(Some("s3"), &h, None), Access::Granted);
        let h = headers(&[("authorization", "Bearer s4")]);
        assert_eq!(check_now(Some("s3"), &h, None), Access::Denied);
        let c = format!("a=b; {SESSION_COOKIE}={}", session_value("s3", NOW));
        let h = headers(&[("cookie", &c)]);
        assert_eq!(check_now(Some("s3"), &h, None), Access::Granted);
        // The raw token is not a valid cookie; the cookie is not the token.
        let h = headers(&[("cookie", "digestif_admin=s3")]);
        assert_eq!(check_now(Some("s3"), &h, None), Access::Denied);
        assert_ne!(session_value("s3", NOW), session_value("s4", NOW));
    }

    #[test]
    fn a_session_cookie_expires_twelve_hours_after_it_was_issued() {
        let with = |issued: i64| {
            let c = format!("{SESSION_COOKIE}={}", session_value("s3", issued));
            headers(&[("cookie", &c)])
        };
        let twelve_hours = 12 * 3600;
        assert_eq!(check_now(Some("s3"), &with(NOW), None), Access::Granted);
        assert_eq!(
            check_now(Some("s3"), &with(NOW - twelve_hours + 1), None),
            Access::Granted
        );
        assert_eq!(
            check_now(Some("s3"), &with(NOW - twelve_hours), None),
            Access::Denied
        );
        assert_eq!(
            check_now(Some("s3"), &with(NOW - 30 * 86_400), None),
            Access::Denied
        );
        // Issued "in the future" beyond clock skew: forged or from a broken clock.
        assert_eq!(
            check_now(Some("s3"), &with(NOW + 3600), None),
            Access::Denied
        );
        // Moving the issue time without the token breaks the HMAC.
        let real = session_value("s3", NOW - 13 * 3600);
        let mac = real.split_once('.').unwrap().1;
        let forged = format!("{SESSION_COOKIE}={NOW}.{mac}");
        assert_eq!(
            check_now(Some("s3"), &headers(&[("cookie", &forged)]), None),
            Access::Denied
        );
    }

    #[test]
    fn the_login_cookie_says_its_lifetime() {
        let r = login_redirect("s3", "/", true, NOW, SessionLifetime::default());
        let c = r.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(c.contains("Max-Age=43200"), "{c}");
        assert!(c.starts_with(&format!("{SESSION_COOKIE}={NOW}.")), "{c}");
    }
}
