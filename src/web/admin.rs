//! Operator access: the admin token (status page, `/setup`) and the metrics token.
//!
//! A browser cannot send an `Authorization` header by itself, so `?token=…` logs it in:
//! the answer sets an HttpOnly, SameSite=Strict cookie and redirects to the same page
//! without the token in the address. The cookie holds an HMAC of the token, not the
//! token, so a leaked cookie does not reveal it and changing the token logs everyone out.

use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::github::api::RateLimitGauge;

pub const SESSION_COOKIE: &str = "digestif_admin";

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

/// The cookie value that stands for `token`.
pub fn session_value(token: &str) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(token.as_bytes()) {
        Ok(mut mac) => {
            mac.update(b"digestif status page session v1");
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
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

/// Checks the Bearer header, the session cookie and `query_token`, in that order.
pub fn check(expected: Option<&str>, headers: &HeaderMap, query_token: Option<&str>) -> Access {
    let Some(expected) = expected else {
        return Access::Off;
    };
    if bearer(headers).is_some_and(|t| same_secret(t, expected)) {
        return Access::Granted;
    }
    if cookie(headers, SESSION_COOKIE).is_some_and(|c| same_secret(c, &session_value(expected))) {
        return Access::Granted;
    }
    match query_token {
        Some(t) if same_secret(t, expected) => Access::Login,
        _ => Access::Denied,
    }
}

/// `303 See Other` to `location`, setting the session cookie.
pub fn login_redirect(token: &str, location: &str, secure: bool) -> Response {
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200{}",
        session_value(token),
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

    #[test]
    fn access_by_header_cookie_and_query() {
        let none = HeaderMap::new();
        assert_eq!(check(None, &none, Some("x")), Access::Off);
        assert_eq!(check(Some("s3"), &none, None), Access::Denied);
        assert_eq!(check(Some("s3"), &none, Some("no")), Access::Denied);
        assert_eq!(check(Some("s3"), &none, Some("s3")), Access::Login);
        let h = headers(&[("authorization", "Bearer s3")]);
        assert_eq!(check(Some("s3"), &h, None), Access::Granted);
        let h = headers(&[("authorization", "Bearer s4")]);
        assert_eq!(check(Some("s3"), &h, None), Access::Denied);
        let c = format!("a=b; {SESSION_COOKIE}={}", session_value("s3"));
        let h = headers(&[("cookie", &c)]);
        assert_eq!(check(Some("s3"), &h, None), Access::Granted);
        // The raw token is not a valid cookie; the cookie is not the token.
        let h = headers(&[("cookie", "digestif_admin=s3")]);
        assert_eq!(check(Some("s3"), &h, None), Access::Denied);
        assert_ne!(session_value("s3"), session_value("s4"));
    }
}
