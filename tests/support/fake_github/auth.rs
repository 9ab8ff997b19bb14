//! GitHub App authentication as GitHub does it: an RS256 JWT signed with the App's private
//! key for `/app/*`, and installation access tokens for everything else.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::routes::Resp;
use super::state::{State, now};

/// A PKCS#1 RSA private key (the format GitHub hands out for Apps) and its public half.
#[derive(Clone)]
pub struct KeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

/// Generates an RSA key with the `openssl` CLI. Key generation is slow in debug builds of
/// pure-Rust RSA, so each test binary generates at most two keys and shares them.
pub fn generate_key() -> KeyPair {
    let dir = tempfile::tempdir().expect("temp dir for key");
    let key = dir.path().join("key.pem");
    let out = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("run openssl genrsa (is openssl installed?)");
    assert!(
        out.status.success(),
        "openssl genrsa: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .output()
        .expect("run openssl rsa -pubout");
    assert!(
        public.status.success(),
        "openssl rsa: {}",
        String::from_utf8_lossy(&public.stderr)
    );
    KeyPair {
        private_pem: std::fs::read_to_string(&key).expect("read generated key"),
        public_pem: String::from_utf8(public.stdout).expect("PEM is ASCII"),
    }
}

/// The App key shared by every fake in this test binary.
pub fn app_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(generate_key)
}

/// A second key, for tests that need a key GitHub does not know.
pub fn other_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(generate_key)
}

pub enum Auth {
    Anonymous,
    App,
    Installation {
        installation: u64,
        permissions: BTreeMap<String, String>,
    },
}

fn bad_jwt(message: &str) -> Resp {
    Resp::error(401, message)
}

/// Who the request is from, or GitHub's 401 for bad credentials.
pub fn authenticate(state: &State, headers: &HeaderMap) -> Result<Auth, Resp> {
    let Some(value) = headers.get("authorization") else {
        return Ok(Auth::Anonymous);
    };
    let value = value
        .to_str()
        .map_err(|_| Resp::error(401, "Bad credentials"))?;
    let Some((scheme, credential)) = value.split_once(' ') else {
        return Err(Resp::error(401, "Bad credentials"));
    };
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
        return Err(Resp::error(401, "Bad credentials"));
    }
    // A JWT has three dot-separated parts; installation tokens (`ghs_...`) have none.
    if credential.split('.').count() == 3 {
        verify_jwt(state, credential)?;
        return Ok(Auth::App);
    }
    match state.tokens.get(credential) {
        Some(t) if t.expires_at > now() => Ok(Auth::Installation {
            installation: t.installation,
            permissions: t.permissions.clone(),
        }),
        _ => Err(Resp::error(401, "Bad credentials")),
    }
}

/// GitHub's rules: RS256, signed by the App's key, `iss` = App id, `iat` not in the future
/// (60 s of drift allowed), `exp` in the future and at most 10 minutes after `iat`.
pub fn verify_jwt(state: &State, jwt: &str) -> Result<(), Resp> {
    let key = DecodingKey::from_rsa_pem(&state.app.public_pem)
        .map_err(|_| bad_jwt("A JSON web token could not be decoded"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    // `iss` is checked below: GitHub accepts it as a number (octocrab sends one) or a string,
    // and jsonwebtoken only understands string issuers.
    validation.set_required_spec_claims(&["exp", "iat"]);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => bad_jwt("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"),
            _ => bad_jwt("A JSON web token could not be decoded"),
        }
    })?;
    let claims = data.claims;
    let iss = match &claims["iss"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    if iss != state.app.id.to_string() {
        return Err(bad_jwt("A JSON web token could not be decoded"));
    }
    let iat = claims["iat"].as_i64().unwrap_or(i64::MAX);
    let exp = claims["exp"].as_i64().unwrap_or(0);
    if iat > now() + 60 {
        return Err(bad_jwt(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        ));
    }
    if exp - iat > 600 {
        return Err(bad_jwt(
            "'Expiration time' claim ('exp') is too far in the future",
        ));
    }
    Ok(())
}
