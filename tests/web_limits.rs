//! What a stranger can make the server spend: connections, time, memory and log lines.
//! Every test talks to the whole server (`Server::run`) over loopback, most with raw TCP
//! clients that behave as slowloris and oversized-body attacks do. The limits are the
//! production ones shortened (`Tuning::http`) so the tests take seconds.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use digestif::clock::SystemClock;
use digestif::registry::RegistryConfig;
use digestif::server::{Server, Tuning};
use digestif::server_settings::{OpsSettings, Settings};
use digestif::web::Limits;
use serde_json::json;
use support::fake_github::{FakeGitHub, webhooks};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "webhook-secret";
const ADMIN: &str = "admin-token-0123456789abcdef";

struct Running {
    addr: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server stops within 30 s")
            .expect("server task")
            .expect("server ran cleanly");
    }
}

/// Test limits: everything generous except what the test shortens.
fn limits() -> Limits {
    Limits {
        max_connections: 64,
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(30),
        body_budget: 32 * 1024 * 1024,
    }
}

async fn start(fake: &FakeGitHub, http: Limits, admin_session: Duration) -> Running {
    let tuning = Tuning {
        worker_poll: Duration::from_millis(50),
        http,
        admin_session,
        ..Tuning::default()
    };
    start_tuned(fake, tuning).await
}

async fn start_tuned(fake: &FakeGitHub, tuning: Tuning) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        app_id: fake.app_id(),
        private_key_pem: fake.private_key_pem().as_bytes().to_vec(),
        webhook_secret: SECRET.as_bytes().to_vec(),
        github_api_url: fake.url().to_string(),
        database_url: format!("sqlite://{}", dir.path().join("digestif.db").display()),
        bind: "127.0.0.1:0".parse().expect("addr"),
        workers: 1,
    };
    let ops = OpsSettings {
        admin_token: Some(ADMIN.into()),
        github_web_url: digestif::server_settings::github_web_url(fake.url()),
        ..OpsSettings::default()
    };
    let server = Server::build(
        settings,
        RegistryConfig::default(),
        Arc::new(SystemClock),
        tuning,
    )
    .await
    .expect("server builds")
    .with_ops(ops);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(listener, shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
        _dir: dir,
    }
}

async fn connect(addr: &str) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection; `Some(what was read)` when that happens
/// within `within`, `None` while it is still open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok().map(|()| got)
}

/// The status code of the first response in `bytes`.
fn status(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Reads one response's head (up to the blank line), failing after `within`.
async fn response_head(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    tokio::time::timeout(within, read)
        .await
        .ok()
        .filter(|h| !h.is_empty())
}

fn webhook_head(event: &str, content_length: usize) -> String {
    format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: digestif\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: {event}\r\nX-GitHub-Delivery: 00000000-0000-0000-0000-000000000001\r\n\
         X-Hub-Signature-256: sha256=00\r\nContent-Length: {content_length}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_connections_are_closed_within_seconds() {
    let fake = FakeGitHub::start().await;
    let server = start(
        &fake,
        Limits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            ..limits()
        },
        digestif::web::ADMIN_SESSION,
    )
    .await;
    let within = Duration::from_secs(6);

    // Sends nothing at all.
    let mut silent = connect(&server.addr).await;
    // Slowloris: a request line, then one header byte every 200 ms, never finishing.
    let slow = connect(&server.addr).await;
    let (mut slow_read, mut slow_write) = slow.into_split();
    let dripping = tokio::spawn(async move {
        if slow_write
            .write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: digestif\r\n")
            .await
            .is_err()
        {
            return;
        }
        for b in b"X-GitHub-Event: ".iter().cycle() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow_write.write_all(&[*b]).await.is_err() {
                return;
            }
        }
    });
    // A finished request, then the connection kept alive and idle.
    let mut idle = connect(&server.addr).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: digestif\r\n\r\n")
        .await
        .unwrap();
    let head = response_head(&mut idle, Duration::from_secs(5))
        .await
        .expect("healthz answered");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Headers complete, then a body that stops after 10 of its 1,000 bytes.
    let mut stalled = connect(&server.addr).await;
    stalled
        .write_all(webhook_head("push", 1000).as_bytes())
        .await
        .unwrap();
    stalled.write_all(&[b' '; 10]).await.unwrap();

    let started = Instant::now();
    assert!(
        closed_within(&mut silent, within).await.is_some(),
        "a connection that sends nothing is still open after {within:?}"
    );
    let mut slow_got = Vec::new();
    let slow_closed = tokio::time::timeout(within, slow_read.read_to_end(&mut slow_got)).await;
    assert!(
        slow_closed.is_ok(),
        "a connection sending its headers byte by byte is still open after {within:?}"
    );
    dripping.abort();
    assert!(
        closed_within(&mut idle, within).await.is_some(),
        "an idle keep-alive connection is still open after {within:?}"
    );
    let answer = closed_within(&mut stalled, within)
        .await
        .unwrap_or_else(|| panic!("a stalled body is still being waited for after {within:?}"));
    assert_eq!(
        status(&answer),
        Some(408),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < within);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let fake = FakeGitHub::start().await;
    let server = start(
        &fake,
        Limits {
            max_connections: 3,
            ..limits()
        },
        digestif::web::ADMIN_SESSION,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&server.addr).await);
    }
    // Give the server time to take all three.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fourth = connect(&server.addr).await;
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: digestif\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        response_head(&mut fourth, Duration::from_millis(700)).await,
        None,
        "a fourth connection is served while three are open"
    );
    drop(held.pop());
    let head = response_head(&mut fourth, Duration::from_secs(5))
        .await
        .expect("served once a slot is free");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(held);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_refused_on_their_declared_size_before_they_are_read() {
    let fake = FakeGitHub::start().await;
    let server = start(&fake, limits(), digestif::web::ADMIN_SESSION).await;
    let quick = Duration::from_secs(3);
    // (event, declared length, expected status): nothing but the headers is sent.
    for (event, len, expected) in [
        // An event digestif ignores: only small ones are read.
        ("star", 100_000, 413),
        // Events with a comment or a body: at most two 65,536-character texts.
        ("issue_comment", 3 * 1024 * 1024, 413),
        ("pull_request", 3 * 1024 * 1024, 413),
        // GitHub's own cap.
        ("push", 25 * 1024 * 1024 + 1, 413),
    ] {
        let mut c = connect(&server.addr).await;
        c.write_all(webhook_head(event, len).as_bytes())
            .await
            .unwrap();
        let head = response_head(&mut c, quick)
            .await
            .unwrap_or_else(|| panic!("{event} of {len} bytes: no answer before the body"));
        assert_eq!(status(head.as_bytes()), Some(expected), "{event}: {head}");
    }
    // Headers larger than any GitHub sends.
    let mut c = connect(&server.addr).await;
    let huge = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: digestif\r\nX-GitHub-Delivery: {}\r\n\r\n",
        "d".repeat(70_000)
    );
    let _ = c.write_all(huge.as_bytes()).await;
    let head = response_head(&mut c, quick).await.expect("answered");
    assert_eq!(status(head.as_bytes()), Some(431), "{head}");
    // No Content-Length (chunked): refused, GitHub always says how long its body is.
    let mut c = connect(&server.addr).await;
    c.write_all(
        b"POST /webhooks/github HTTP/1.1\r\nHost: digestif\r\nX-GitHub-Event: push\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let head = response_head(&mut c, quick).await.expect("answered");
    assert_eq!(status(head.as_bytes()), Some(411), "{head}");

    // A client that sends its oversized body anyway still gets the answer (what it sends is
    // read and dropped), as GitHub's own delivery would.
    let mut big = webhooks::sign("star", &json!({"action": "created"}), SECRET);
    big.body = vec![b' '; 200_000];
    let client = reqwest::Client::new();
    let mut req = client.post(format!("http://{}/webhooks/github", server.addr));
    for (k, v) in &big.headers {
        req = req.header(k, v);
    }
    let resp = req.body(big.body.clone()).send().await.expect("answered");
    assert_eq!(resp.status().as_u16(), 413);

    // Events digestif handles, at ordinary sizes, still go through.
    let ping = webhooks::sign(
        "ping",
        &json!({"zen": "Design for failure.", "hook_id": 1}),
        SECRET,
    );
    let mut req = client.post(format!("http://{}/webhooks/github", server.addr));
    for (k, v) in &ping.headers {
        req = req.header(k, v);
    }
    let resp = req.body(ping.body.clone()).send().await.expect("answered");
    assert_eq!(resp.status().as_u16(), 202);
    server.stop().await;
}

/// GitHub redelivering one delivery many times at once, among other deliveries, with
/// deliveries batched (group commit) and one transaction each: exactly one copy is
/// accepted, the others are 202 "already received", every other delivery is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redeliveries_are_accepted_once_batched_or_not() {
    let fake = FakeGitHub::start().await;
    for batch in [1, 256] {
        let tuning = Tuning {
            webhook_batch: batch,
            http: limits(),
            ..Tuning::default()
        };
        let server = start_tuned(&fake, tuning).await;
        let ping = |zen: &str| webhooks::sign("ping", &json!({"zen": zen, "hook_id": 1}), SECRET);
        let same = ping("Design for failure.");
        let mut hooks = vec![same.clone(); 20];
        hooks.extend((0..20).map(|i| ping(&format!("zen {i}"))));
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for hook in &hooks {
            let mut req = client.post(format!("http://{}/webhooks/github", server.addr));
            for (k, v) in &hook.headers {
                req = req.header(k, v);
            }
            let req = req.body(hook.body.clone());
            tasks.push(tokio::spawn(async move {
                let resp = req.send().await.expect("answered");
                (
                    resp.status().as_u16(),
                    resp.text().await.unwrap_or_default(),
                )
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("client task"));
        }
        let (copies, others) = answers.split_at(20);
        assert!(
            copies.iter().all(|(s, _)| *s == 202),
            "batch {batch}: {copies:?}"
        );
        let accepted = copies
            .iter()
            .filter(|(_, b)| b.starts_with("accepted"))
            .count();
        let known = copies
            .iter()
            .filter(|(_, b)| b == "already received")
            .count();
        assert_eq!((accepted, known), (1, 19), "batch {batch}: {copies:?}");
        assert!(
            others
                .iter()
                .all(|(s, b)| *s == 202 && b.starts_with("accepted")),
            "batch {batch}: {others:?}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_flight_share_one_byte_budget() {
    let fake = FakeGitHub::start().await;
    let server = start(
        &fake,
        Limits {
            body_budget: 300_000,
            body_timeout: Duration::from_secs(3),
            ..limits()
        },
        digestif::web::ADMIN_SESSION,
    )
    .await;
    // A reserves 200,000 of the 300,000 bytes and stalls.
    let mut a = connect(&server.addr).await;
    a.write_all(webhook_head("push", 200_000).as_bytes())
        .await
        .unwrap();
    a.write_all(b"{").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A small delivery (GitHub's usual) does not wait for the budget at all.
    let mut small = connect(&server.addr).await;
    let small_started = Instant::now();
    small
        .write_all(webhook_head("push", 1_000).as_bytes())
        .await
        .unwrap();
    small.write_all(&[b' '; 1_000]).await.unwrap();
    let small_head = response_head(&mut small, Duration::from_secs(10))
        .await
        .expect("small answered");
    assert_eq!(status(small_head.as_bytes()), Some(401), "{small_head}");
    assert!(
        small_started.elapsed() < Duration::from_millis(1500),
        "a small delivery waited {:?}",
        small_started.elapsed()
    );
    // B's 150,000 bytes do not fit beside A's: B is read only once A's deadline frees them.
    let mut b = connect(&server.addr).await;
    let b_started = Instant::now();
    b.write_all(webhook_head("push", 150_000).as_bytes())
        .await
        .unwrap();
    b.write_all(&[b' '; 150_000]).await.unwrap();
    let b_head = response_head(&mut b, Duration::from_secs(10))
        .await
        .expect("B answered");
    let b_waited = b_started.elapsed();
    let a_answer = closed_within(&mut a, Duration::from_secs(1))
        .await
        .expect("A answered and closed by then");
    assert_eq!(status(&a_answer), Some(408));
    // Read, checked, refused for its signature: it got the budget.
    assert_eq!(status(b_head.as_bytes()), Some(401), "{b_head}");
    assert!(
        b_waited >= Duration::from_millis(1000),
        "B was read after {b_waited:?}, while A held the budget"
    );
    server.stop().await;
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

// One thread: the server's tasks run where the test's log subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn refusals_are_logged_shortened_and_rate_limited() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let fake = FakeGitHub::start().await;
    let server = start(&fake, limits(), digestif::web::ADMIN_SESSION).await;
    let client = reqwest::Client::new();
    let long_delivery = "d".repeat(30_000);
    let long_event = "e".repeat(10_000);
    let requests = 40;
    for i in 0..requests {
        let event = if i % 2 == 0 {
            "push"
        } else {
            long_event.as_str()
        };
        let resp = client
            .post(format!("http://{}/webhooks/github", server.addr))
            .header("x-github-delivery", &long_delivery)
            .header("x-github-event", event)
            .header("x-hub-signature-256", "sha256=00")
            .body("{}")
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status().as_u16(), 401);
    }
    server.stop().await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("webhook refused"))
        .collect();
    assert!(!refused.is_empty(), "refusals are logged:\n{log}");
    assert!(
        refused.len() <= digestif::web::intake::REFUSALS_LOGGED_PER_MINUTE as usize,
        "{} of {requests} refusals logged within a minute",
        refused.len()
    );
    for line in log.lines() {
        assert!(
            line.len() < 1000,
            "a log line of {} bytes: {}…",
            line.len(),
            &line[..200]
        );
    }
    assert!(
        refused[0].contains(&format!("{}…(30000 bytes)", "d".repeat(64))),
        "{}",
        refused[0]
    );
    assert!(log.len() < 20_000, "{} bytes of log", log.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cookie_expires_after_its_lifetime() {
    let fake = FakeGitHub::start().await;
    let lifetime = Duration::from_secs(2);
    let server = start(&fake, limits(), lifetime).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", server.addr);
    let login = client
        .get(format!("{base}/?token={ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("Max-Age=2"), "{set_cookie}");
    let pair = set_cookie.split(';').next().unwrap().to_string();
    let page = |pair: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}/"))
                .header("cookie", pair)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(page(pair.clone()).await, 200, "the fresh cookie logs in");
    tokio::time::sleep(lifetime + Duration::from_millis(1100)).await;
    assert_eq!(page(pair).await, 401, "the cookie outlived its lifetime");
    // The token itself still works.
    let again = client
        .get(format!("{base}/"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    server.stop().await;
}
