//! Resolution throughput against a local CNCF distribution registry.
//!
//! `cargo bench --bench resolve` resolves 1,000 references spread over 100 unique tags with a
//! fresh resolver (cold cache), then again with the same one (warm cache), and prints
//! resolutions/s and the requests sent, which must equal the number of unique tags.
//! Under `cargo test --all-targets` it runs a small smoke version of the same.

#[path = "../tests/support/registry.rs"]
mod registry_support;

use std::time::Instant;

use digestif::reference::Reference;
use digestif::registry::{Resolver, Status};
use registry_support::TestRegistry;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (refs, tags) = if full { (1000, 100) } else { (100, 10) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(refs, tags, if full { 5 } else { 1 }));
}

async fn run(refs: usize, tags: usize, runs: usize) {
    let reg = TestRegistry::start().await;
    let img = reg
        .push_image("bench", Some("tag-0"), "linux/amd64", "1", false)
        .await;
    // Re-tag the same manifest: pushing is not what is measured.
    let body = fetch_manifest(&reg, &img.digest).await;
    for t in 1..tags {
        reg.push_manifest("bench", &format!("tag-{t}"), &body, img.media_type)
            .await;
    }
    let references: Vec<Reference> = (0..refs)
        .map(|i| {
            Reference::parse(&reg.reference(
                "bench",
                &format!("tag-{}", i % tags),
                Some(&img.digest),
            ))
            .expect("reference")
        })
        .collect();
    println!("{refs} references over {tags} unique tags, {runs} runs");

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..runs {
        let resolver = Resolver::new(reg.resolver_config()).expect("resolver");
        let start = Instant::now();
        resolve_all(&resolver, &references).await;
        cold.push(start.elapsed().as_secs_f64());
        let sent = resolver.requests_sent();
        assert_eq!(
            sent as usize,
            tags,
            "one HEAD per unique tag: {:?}",
            resolver.counts()
        );

        let start = Instant::now();
        resolve_all(&resolver, &references).await;
        warm.push(start.elapsed().as_secs_f64());
        assert_eq!(
            resolver.requests_sent() as usize,
            tags,
            "warm cache sends nothing"
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (c, w) = (median(&mut cold), median(&mut warm));
    println!("requests sent per run: {tags} (unique tags: {tags})");
    println!(
        "cold cache: {:.1} ms per {refs} resolutions, {:.0} resolutions/s",
        c * 1e3,
        refs as f64 / c
    );
    println!(
        "warm cache: {:.2} ms per {refs} resolutions, {:.0} resolutions/s",
        w * 1e3,
        refs as f64 / w
    );
}

async fn resolve_all(resolver: &Resolver, references: &[Reference]) {
    let mut tasks = tokio::task::JoinSet::new();
    for r in references {
        let (resolver, r) = (resolver.clone(), r.clone());
        tasks.spawn(async move { resolver.resolve(&r, None).await.status });
    }
    while let Some(s) = tasks.join_next().await {
        assert_eq!(s.expect("task"), Status::UpToDate);
    }
}

/// The manifest body as pushed (GET by digest from the registry).
async fn fetch_manifest(reg: &TestRegistry, digest: &str) -> Vec<u8> {
    let url = format!("http://{}/v2/bench/manifests/{digest}", reg.addr);
    let resp = reqwest::Client::new()
        .get(url)
        .header("Accept", registry_support::OCI_MANIFEST)
        .send()
        .await
        .expect("GET manifest");
    resp.bytes().await.expect("body").to_vec()
}
