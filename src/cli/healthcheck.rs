//! `digestif healthcheck`: GET the server's health endpoint and exit 0 only on `200`.
//!
//! Made for container health checks in images without curl or a shell (the Dockerfile's
//! `HEALTHCHECK`): a plain HTTP/1.1 request over a `TcpStream`, no TLS, no redirects.
//! Every failure exits 1, never 2, because Docker reserves exit code 2 in health checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Exit code of every failed check (Docker: 1 = unhealthy; 2 is reserved).
const EXIT_UNHEALTHY: u8 = 1;
/// The server's default listen address (`DIGESTIF_BIND`).
const DEFAULT_BIND: &str = "0.0.0.0:3000";
/// Enough for a status line and headers; the body is never read.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// URL to GET (http only). Default: /healthz on the port of DIGESTIF_BIND
    /// (0.0.0.0:3000 when unset), asked on loopback.
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds to wait for the whole exchange.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

pub fn run(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let url = match args.url {
        Some(url) => url,
        None => match default_url(std::env::var("DIGESTIF_BIND").ok().as_deref()) {
            Ok(url) => url,
            Err(e) => return Ok(unhealthy(&e)),
        },
    };
    let target = match Target::parse(&url) {
        Ok(t) => t,
        Err(e) => return Ok(unhealthy(&format!("bad --url {url:?}: {e}"))),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(args.timeout);
    let outcome = rt.block_on(async {
        match tokio::time::timeout(timeout, get_status(&target)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {}s", args.timeout)),
        }
    });
    match outcome {
        Ok((200, line)) => {
            println!("healthy: GET {url}: {line}");
            Ok(ExitCode::SUCCESS)
        }
        Ok((_, line)) => Ok(unhealthy(&format!("GET {url}: {line}"))),
        Err(e) => Ok(unhealthy(&format!("GET {url}: {e}"))),
    }
}

fn unhealthy(message: &str) -> ExitCode {
    eprintln!("unhealthy: {message}");
    ExitCode::from(EXIT_UNHEALTHY)
}

/// `http://HOST:PORT/healthz` for the address the server listens on: a wildcard address
/// (`0.0.0.0`, `::`) is asked on the matching loopback address.
pub fn default_url(bind: Option<&str>) -> Result<String, String> {
    let bind = bind.unwrap_or(DEFAULT_BIND);
    let addr: SocketAddr = bind
        .parse()
        .map_err(|_| format!("DIGESTIF_BIND={bind:?} is not an IP:PORT address"))?;
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!(
        "http://{}/healthz",
        SocketAddr::new(ip, addr.port())
    ))
}

/// The parts of an `http://` URL a GET needs.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// As written, for the `Host` header (brackets kept for IPv6).
    authority: String,
    /// Without brackets, for connecting.
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http:// URLs are supported")?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let path = path.split('#').next().unwrap_or("/").to_string();
        if authority.is_empty() || authority.contains('@') {
            return Err("expected http://HOST[:PORT]/PATH".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed '[' in host")?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err("unexpected text after ']'".into()),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err("empty host".into());
        }
        Ok(Target {
            authority: authority.to_string(),
            host: host.to_string(),
            port,
            path,
        })
    }
}

/// Sends the GET and returns the status code with the status line.
async fn get_status(t: &Target) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", t.host, t.port))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: digestif-healthcheck/{}\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n",
        t.path,
        t.authority,
        env!("CARGO_PKG_VERSION")
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        if head.len() > MAX_HEAD {
            return Err("status line too long".into());
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if n == 0 {
            return Err("connection closed before a status line".into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let end = head.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    let line = String::from_utf8_lossy(&head[..end]).into_owned();
    parse_status_line(&line).map(|code| (code, line.clone()))
}

/// `HTTP/1.1 200 OK` -> 200.
fn parse_status_line(line: &str) -> Result<u16, String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(format!("not an HTTP/1.x status line: {line:?}"));
    }
    code.parse()
        .map_err(|_| format!("not an HTTP/1.x status line: {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_host_port_and_path() {
        let t = Target::parse("http://127.0.0.1:3000/healthz").unwrap();
        assert_eq!(
            t,
            Target {
                authority: "127.0.0.1:3000".into(),
                host: "127.0.0.1".into(),
                port: 3000,
                path: "/healthz".into(),
            }
        );
        let t = Target::parse("http://[::1]:8080/readyz?x=1#frag").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8080));
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("[::1]:8080", "/readyz?x=1")
        );
        let t = Target::parse("http://localhost").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("localhost", 80, "/")
        );
        let t = Target::parse("http://localhost?probe").unwrap();
        assert_eq!(t.path, "/?probe");

        for bad in [
            "https://127.0.0.1/healthz",
            "127.0.0.1:3000",
            "http://",
            "http://:3000/",
            "http://host:port/",
            "http://user@host/",
            "http://[::1/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_url_follows_the_bind_address() {
        assert_eq!(default_url(None).unwrap(), "http://127.0.0.1:3000/healthz");
        assert_eq!(
            default_url(Some("0.0.0.0:8080")).unwrap(),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(
            default_url(Some("[::]:3000")).unwrap(),
            "http://[::1]:3000/healthz"
        );
        assert_eq!(
            default_url(Some("10.1.2.3:9000")).unwrap(),
            "http://10.1.2.3:9000/healthz"
        );
        assert!(default_url(Some("localhost:3000")).is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Ok(200));
        assert_eq!(
            parse_status_line("HTTP/1.0 503 Service Unavailable"),
            Ok(503)
        );
        assert_eq!(parse_status_line("HTTP/1.1 204"), Ok(204));
        assert!(parse_status_line("SSH-2.0-OpenSSH_9.2").is_err());
        assert!(parse_status_line("HTTP/1.1 20x OK").is_err());
    }
}
