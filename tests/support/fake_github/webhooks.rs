//! Webhook deliveries built from GitHub's real example payloads (`@octokit/webhooks-examples`,
//! `api.github.com/index.json`), adapted to the test's installation/repository and signed
//! the way GitHub signs them.

use std::sync::OnceLock;

use hmac::Mac;
use serde_json::Value;

use super::npm;

pub const EXAMPLES_PACKAGE: &str = "@octokit/webhooks-examples";
pub const EXAMPLES_VERSION: &str = "7.6.1";
pub const EXAMPLES_ENV: &str = "DIGESTIF_WEBHOOK_EXAMPLES";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A delivery as it arrives at the app's webhook endpoint.
#[derive(Clone, Debug)]
pub struct SignedWebhook {
    /// `content-type`, `x-github-event`, `x-github-delivery`, `x-hub-signature-256`, ...
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SignedWebhook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn examples() -> &'static Value {
    static EXAMPLES: OnceLock<Value> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let path = npm::package_file(
            EXAMPLES_PACKAGE,
            EXAMPLES_VERSION,
            "api.github.com/index.json",
            EXAMPLES_ENV,
        );
        serde_json::from_slice(&std::fs::read(path).expect("read webhook examples"))
            .expect("parse webhook examples")
    })
}

/// The first real example payload for `event` with `action` (`None` for action-less events
/// such as `push`). Panics with the available actions when there is none.
pub fn example(event: &str, action: Option<&str>) -> Value {
    let events = examples()
        .as_array()
        .expect("examples are a list of events");
    let entry = events
        .iter()
        .find(|e| e["name"] == event)
        .unwrap_or_else(|| panic!("no webhook examples for event {event}"));
    let list = entry["examples"].as_array().cloned().unwrap_or_default();
    list.iter()
        .find(|x| x.get("action").and_then(Value::as_str) == action)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no {event} example with action {action:?}; have {}",
                entry["actions"]
            )
        })
}

/// Every real example payload, with its event's name.
pub fn every_example() -> Vec<(String, Value)> {
    let events = examples()
        .as_array()
        .expect("examples are a list of events");
    events
        .iter()
        .flat_map(|e| {
            let name = e["name"].as_str().unwrap_or_default().to_string();
            let list = e["examples"].as_array().cloned().unwrap_or_default();
            list.into_iter().map(move |x| (name.clone(), x))
        })
        .collect()
}

/// Rewrites the ids and names that tie an example to GitHub's sample data so it talks about
/// the fake's installation and repository. `repo` is the `repo_json` of the fake's repository
/// (or `Value::Null` to leave repository data alone).
pub fn adapt(mut payload: Value, installation: u64, repo: &Value, sender: &str) -> Value {
    if let Some(obj) = payload.as_object_mut() {
        if obj.contains_key("installation") || installation != 0 {
            let inst = obj
                .entry("installation")
                .or_insert_with(|| serde_json::json!({}));
            inst["id"] = Value::from(installation);
            if inst.get("node_id").is_none() {
                inst["node_id"] = Value::from(format!(
                    "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u{installation}"
                ));
            }
        }
        if !repo.is_null() && obj.contains_key("repository") {
            obj.insert("repository".into(), repo.clone());
        }
        if let Some(s) = obj.get_mut("sender") {
            s["login"] = Value::from(sender);
        }
    }
    payload
}

/// Signs `payload` as GitHub does: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret,
/// body)>`, with `X-GitHub-Event` and a fresh `X-GitHub-Delivery` UUID.
pub fn sign(event: &str, payload: &Value, secret: &str) -> SignedWebhook {
    let body = serde_json::to_vec(payload).expect("serialize payload");
    let signature = signature(secret, &body);
    SignedWebhook {
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "GitHub-Hookshot/fake".into()),
            ("x-github-event".into(), event.into()),
            ("x-github-delivery".into(), uuid_v4()),
            ("x-github-hook-id".into(), "1".into()),
            ("x-hub-signature-256".into(), format!("sha256={signature}")),
        ],
        body,
    }
}

/// Hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
