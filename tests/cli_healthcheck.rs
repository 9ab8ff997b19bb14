//! `digestif healthcheck` through the built binary, against tiny servers on loopback: the
//! command the Dockerfile's HEALTHCHECK runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

/// Serves `/healthz` with `status` on a free loopback port.
async fn serve(status: StatusCode) -> SocketAddr {
    let app = Router::new().route("/healthz", get(move || async move { (status, "health\n") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_digestif"));
    cmd.arg("healthcheck")
        .args(args)
        .env_remove("DIGESTIF_BIND");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run digestif");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[tokio::test]
async fn a_200_is_healthy() {
    let addr = serve(StatusCode::OK).await;
    let url = format!("http://{addr}/healthz");
    let run = healthcheck(&["--url", &url], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, format!("healthy: GET {url}: HTTP/1.1 200 OK\n"));
}

#[tokio::test]
async fn a_503_is_unhealthy_with_the_status_line() {
    let addr = serve(StatusCode::SERVICE_UNAVAILABLE).await;
    let url = format!("http://{addr}/healthz");
    let run = healthcheck(&["--url", &url], &[]).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        format!("unhealthy: GET {url}: HTTP/1.1 503 Service Unavailable\n")
    );
    assert_eq!(run.stdout, "");
}

#[tokio::test]
async fn another_path_is_asked_for_what_it_is() {
    let addr = serve(StatusCode::OK).await;
    let run = healthcheck(&["--url", &format!("http://{addr}/readyz")], &[]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("HTTP/1.1 404 Not Found"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn connection_refused_is_unhealthy() {
    let port = closed_port().await;
    let url = format!("http://127.0.0.1:{port}/healthz");
    let run = healthcheck(&["--url", &url], &[]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with(&format!(
            "unhealthy: GET {url}: cannot connect to 127.0.0.1:{port}:"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
}

#[tokio::test]
async fn without_url_it_asks_loopback_on_the_port_of_digestif_bind() {
    let addr = serve(StatusCode::OK).await;
    let bind = format!("0.0.0.0:{}", addr.port());
    let run = healthcheck(&[], &[("DIGESTIF_BIND", &bind)]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "healthy: GET http://127.0.0.1:{}/healthz: HTTP/1.1 200 OK\n",
            addr.port()
        )
    );

    // A bad value is unhealthy (exit 1), not a usage error (exit 2).
    let run = healthcheck(&["--timeout", "1"], &[("DIGESTIF_BIND", "nonsense")]).await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("DIGESTIF_BIND"), "{}", run.stderr);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts the connection, reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let run = healthcheck(
        &["--url", &format!("http://{addr}/healthz"), "--timeout", "1"],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no answer within 1s"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_bad_url_is_unhealthy_never_exit_2() {
    // Docker reserves exit code 2 in health checks.
    for url in [
        "https://127.0.0.1/healthz",
        "127.0.0.1:3000",
        "http://host:port/",
    ] {
        let run = healthcheck(&["--url", url], &[]).await;
        assert_eq!(run.code, Some(1), "{url}");
        assert!(
            run.stderr.starts_with("unhealthy: bad --url"),
            "{}",
            run.stderr
        );
    }
}
