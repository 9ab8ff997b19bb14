//! A fake OSV server speaking the parts of OSV's API digestif uses
//! (<https://google.github.io/osv.dev/api/>): `POST /v1/querybatch` (ids and `modified`
//! only, at most 1000 queries, paged per query with `next_page_token` / `page_token`) and
//! `GET /v1/vulns/{id}` (the record). It holds real OSV records (tests/fixtures/osv) and
//! matches a query the way OSV does for the fields those records use: the affected
//! package's ecosystem and name, then its `versions` list or its `ECOSYSTEM` ranges
//! (`introduced`/`fixed`/`last_affected` events), compared with the ecosystem's version
//! order (dpkg's for Debian, apk's for Alpine). It counts every request it gets.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub struct FakeOsv {
    pub url: String,
    state: Arc<Inner>,
}

struct Inner {
    records: Vec<Value>,
    requests: AtomicUsize,
    /// Queries per batch request, in order.
    batches: Mutex<Vec<usize>>,
    /// Vulns per page of one query.
    page_size: usize,
}

/// The real records in tests/fixtures/osv.
pub fn fixture_records() -> Vec<Value> {
    ["DSA-3029-1.json", "CVE-2022-27449.json"]
        .iter()
        .map(|f| {
            let path = format!("{}/tests/fixtures/osv/{f}", env!("CARGO_MANIFEST_DIR"));
            serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
        })
        .collect()
}

impl FakeOsv {
    /// Serves `records`, `page_size` vulnerabilities per query per page.
    pub async fn start(records: Vec<Value>, page_size: usize) -> FakeOsv {
        let state = Arc::new(Inner {
            records,
            requests: AtomicUsize::new(0),
            batches: Mutex::new(Vec::new()),
            page_size: page_size.max(1),
        });
        let app = axum::Router::new()
            .route("/v1/querybatch", post(querybatch))
            .route("/v1/vulns/{id}", get(vuln))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeOsv { url, state }
    }

    /// Every request received, of any kind.
    pub fn requests(&self) -> usize {
        self.state.requests.load(AtomicOrdering::SeqCst)
    }

    /// The number of queries in each batch request received.
    pub fn batches(&self) -> Vec<usize> {
        self.state.batches.lock().expect("lock").clone()
    }
}

fn bad(message: &str) -> Response {
    // OSV's errors are a google.rpc.Status.
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"code": 3, "message": message})),
    )
        .into_response()
}

async fn querybatch(State(s): State<Arc<Inner>>, body: axum::body::Bytes) -> Response {
    s.requests.fetch_add(1, AtomicOrdering::SeqCst);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return bad("Invalid JSON");
    };
    let Some(queries) = req["queries"].as_array() else {
        return bad("queries must be a list");
    };
    s.batches.lock().expect("lock").push(queries.len());
    if queries.len() > 1000 {
        return bad("Too many queries.");
    }
    let mut results = Vec::new();
    for q in queries {
        let (Some(eco), Some(name), Some(version)) = (
            q["package"]["ecosystem"].as_str(),
            q["package"]["name"].as_str(),
            q["version"].as_str(),
        ) else {
            return bad("each query needs package.name, package.ecosystem and version");
        };
        let hits: Vec<&Value> = s
            .records
            .iter()
            .filter(|r| affects(r, eco, name, version))
            .collect();
        let start: usize = match q.get("page_token").and_then(Value::as_str) {
            None => 0,
            Some(t) => match t.parse() {
                Ok(n) => n,
                Err(_) => return bad("Invalid page token"),
            },
        };
        let end = (start + s.page_size).min(hits.len());
        let vulns: Vec<Value> = hits[start.min(end)..end]
            .iter()
            .map(|r| json!({"id": r["id"], "modified": r["modified"]}))
            .collect();
        let mut result = json!({});
        if !vulns.is_empty() {
            result["vulns"] = json!(vulns);
        }
        if end < hits.len() {
            result["next_page_token"] = json!(end.to_string());
        }
        results.push(result);
    }
    Json(json!({ "results": results })).into_response()
}

async fn vuln(State(s): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    s.requests.fetch_add(1, AtomicOrdering::SeqCst);
    match s.records.iter().find(|r| r["id"] == id.as_str()) {
        Some(r) => Json(r.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"code": 5, "message": "Bug not found."})),
        )
            .into_response(),
    }
}

/// Does `record` affect `version` of `name` in `eco`?
pub fn affects(record: &Value, eco: &str, name: &str, version: &str) -> bool {
    let Some(affected) = record["affected"].as_array() else {
        return false;
    };
    affected.iter().any(|a| {
        a["package"]["ecosystem"] == eco
            && a["package"]["name"] == name
            && (a["versions"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v == version))
                || a["ranges"].as_array().is_some_and(|rs| {
                    rs.iter()
                        .filter(|r| r["type"] == "ECOSYSTEM")
                        .any(|r| in_range(r, eco, version))
                }))
    })
}

/// OSV's range evaluation: events in order; affected from an `introduced` until a `fixed`
/// (exclusive) or through a `last_affected` (inclusive).
fn in_range(range: &Value, eco: &str, version: &str) -> bool {
    let cmp = |a: &str, b: &str| compare(eco, a, b);
    let mut introduced: Option<&str> = None;
    for e in range["events"].as_array().into_iter().flatten() {
        if let Some(i) = e["introduced"].as_str() {
            introduced = Some(i);
        } else if let Some(f) = e["fixed"].as_str() {
            if let Some(i) = introduced.take()
                && (i == "0" || cmp(version, i) != Ordering::Less)
                && cmp(version, f) == Ordering::Less
            {
                return true;
            }
        } else if let Some(l) = e["last_affected"].as_str()
            && let Some(i) = introduced.take()
            && (i == "0" || cmp(version, i) != Ordering::Less)
            && cmp(version, l) != Ordering::Greater
        {
            return true;
        }
    }
    introduced.is_some_and(|i| i == "0" || cmp(version, i) != Ordering::Less)
}

fn compare(eco: &str, a: &str, b: &str) -> Ordering {
    if eco.starts_with("Debian") {
        dpkg(a, b)
    } else if eco.starts_with("Alpine") {
        apk(a, b)
    } else {
        panic!("the fake OSV server does not order {eco} versions")
    }
}

/// Debian's version order (deb-version(7)): epoch, upstream version, revision; within
/// each, non-digit runs compare with `~` before everything and letters before other
/// characters, digit runs compare as numbers.
pub fn dpkg(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (u64, String, String) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) => (e.parse().unwrap_or(0), r),
            None => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u.to_string(), r.to_string()),
            None => (epoch, rest.to_string(), String::new()),
        }
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| dpkg_part(&ua, &ub))
        .then_with(|| dpkg_part(&ra, &rb))
}

fn dpkg_part(a: &str, b: &str) -> Ordering {
    let order = |c: Option<char>| -> i32 {
        match c {
            Some('~') => -1,
            None => 0,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    };
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        // Non-digit prefix.
        let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
        let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
        let (pa, pb) = (&a[..na], &b[..nb]);
        let (mut ca, mut cb) = (pa.chars(), pb.chars());
        loop {
            let (x, y) = (ca.next(), cb.next());
            if x.is_none() && y.is_none() {
                break;
            }
            match order(x).cmp(&order(y)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        a = &a[na..];
        b = &b[nb..];
        // Digit run.
        let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
        let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
        let num = |s: &str| s.trim_start_matches('0').to_string();
        let (xa, xb) = (num(&a[..da]), num(&b[..db]));
        match xa.len().cmp(&xb.len()).then_with(|| xa.cmp(&xb)) {
            Ordering::Equal => {}
            o => return o,
        }
        a = &a[da..];
        b = &b[db..];
    }
    Ordering::Equal
}

/// Alpine's version order for the forms the fixtures use: dot-separated numbers with an
/// optional letter, then `-rN`. Suffixes (`_rc1`, `_p2`, …) are not modelled: the fake
/// refuses them rather than guess.
pub fn apk(a: &str, b: &str) -> Ordering {
    let parse = |v: &str| -> (Vec<(u64, Option<char>)>, u64) {
        assert!(
            !v.contains('_'),
            "the fake OSV server does not order apk suffixes: {v}"
        );
        let (main, rel) = match v.rsplit_once("-r") {
            Some((m, r)) => (m, r.parse().expect("apk release number")),
            None => (v, 0),
        };
        let parts = main
            .split('.')
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                let letter = p[digits.len()..].chars().next();
                (digits.parse().expect("apk version number"), letter)
            })
            .collect();
        (parts, rel)
    };
    let (pa, ra) = parse(a);
    let (pb, rb) = parse(b);
    pa.cmp(&pb).then(ra.cmp(&rb))
}
