//! The CNCF distribution registry's access log (Apache combined format, on its stdout):
//! what each client asked for, for benchmarks that count registry requests.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use chrono::{DateTime, FixedOffset};

/// One line of the access log.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without its query.
    pub path: String,
    /// `200`, `404`, … (`?` when the line has none).
    pub status: String,
    /// The User-Agent's product name (`digestif`, `Renovate`, …).
    pub agent: String,
    /// When the registry logged it (whole seconds), if the line says.
    pub time: Option<DateTime<FixedOffset>>,
}

/// The log's size now: pass it to [`since`] later to read only what came after.
pub fn offset(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// The requests logged after byte `from`.
pub fn since(log: &Path, from: u64) -> Vec<Request> {
    let mut file = std::fs::File::open(log).expect("access log");
    let mut text = String::new();
    file.seek(SeekFrom::Start(from)).expect("seek");
    file.read_to_string(&mut text).expect("read access log");
    text.lines().filter_map(parse).collect()
}

fn parse(line: &str) -> Option<Request> {
    // host - - [03/Dec/2026:16:01:02 +0000] "METHOD PATH HTTP/1.1" status size "referer" "agent"
    let time = line
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(t, _)| DateTime::parse_from_str(t, "%d/%b/%Y:%H:%M:%S %z").ok());
    let quoted: Vec<&str> = line.split('"').collect();
    let mut parts = quoted.get(1)?.split(' ');
    let (method, path) = (parts.next()?, parts.next()?);
    let status = quoted
        .get(2)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("?");
    let agent = quoted.get(5).copied().unwrap_or_default();
    Some(Request {
        method: method.to_string(),
        path: path.split('?').next().unwrap_or(path).to_string(),
        status: status.to_string(),
        agent: agent.split('/').next().unwrap_or(agent).to_string(),
        time,
    })
}

/// What a request asked for, in the registry API's terms.
pub fn kind(path: &str) -> &'static str {
    if path == "/v2/" || path == "/v2" {
        "API version check"
    } else if path.ends_with("/tags/list") {
        "tag list"
    } else if path.contains("/manifests/sha256:") {
        "manifest by digest"
    } else if path.contains("/manifests/") {
        "manifest by tag"
    } else if path.contains("/blobs/") {
        "blob"
    } else {
        "other"
    }
}
