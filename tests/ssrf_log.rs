//! The operator's log gets a refused registry's detail while the repository is told only
//! that the address is not allowed. Its own test binary: a thread-scoped log subscriber is
//! only reliable when no other test in the process hits the same log lines at once.

#[path = "support/registry.rs"]
mod registry_support;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use digestif::reference::Reference;
use digestif::registry::{Lookup, Resolver};
use registry_support::TestRegistry;

struct FakeDns(HashMap<String, Vec<IpAddr>>);

impl Lookup for FakeDns {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let found = self.0.get(&host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))
        })
    }
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_operator_log_gets_the_detail_the_repository_does_not() {
    let reg = TestRegistry::start().await;
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    // The resolver runs on this thread (a current-thread runtime), so this catches it.
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut c = reg.resolver_config();
    c.ssrf_guard = true;
    c.lookup = Some(Arc::new(FakeDns(
        [(
            "vm.internal".to_string(),
            vec!["10.20.30.40".parse().unwrap()],
        )]
        .into(),
    )));
    c.insecure.insert("vm.internal:5000".into());
    let r = Resolver::new(c)
        .unwrap()
        .resolve(&Reference::parse("vm.internal:5000/app:1").unwrap(), None)
        .await;
    assert_eq!(
        r.message.as_deref(),
        Some("vm.internal:5000: registry address not allowed")
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("registry request refused")
            && text.contains("vm.internal resolves to 10.20.30.40"),
        "{text}"
    );
}
