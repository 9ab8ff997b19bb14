//! Asking registries about every reference of a scan, for `scan` and `update`.

use std::io::IsTerminal;

use anyhow::Context as _;
use clap::Args;

use crate::extract::Found;
use crate::registry::{RegistryConfig, RequestKind, Resolution, Resolver};

/// Registry options shared by `scan` and `update`.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (HOST:PORT); repeatable. Also read from
    /// DIGESTIF_INSECURE_REGISTRIES (comma-separated).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,
}

impl RegistryArgs {
    /// The environment's settings plus these flags. The CLI trusts its user: no SSRF guard.
    pub fn config(&self) -> anyhow::Result<RegistryConfig> {
        let mut c = RegistryConfig::from_env().context("registry settings")?;
        c.insecure.extend(self.insecure_registry.iter().cloned());
        Ok(c)
    }
}

/// Registry requests a run sent to one host, by kind, and the body bytes read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestSummary {
    pub host: String,
    pub head: u64,
    pub manifest_get: u64,
    pub blob_get: u64,
    pub token: u64,
    pub bytes: u64,
}

/// Sums a resolver's request counts per host.
pub fn summarize(resolver: &Resolver) -> Vec<RequestSummary> {
    let mut by_host: std::collections::BTreeMap<String, RequestSummary> = Default::default();
    for c in resolver.counts() {
        let s = by_host
            .entry(c.host.clone())
            .or_insert_with(|| RequestSummary {
                host: c.host.clone(),
                ..RequestSummary::default()
            });
        match c.kind {
            RequestKind::ManifestHead => s.head += c.count,
            RequestKind::ManifestGet => s.manifest_get += c.count,
            RequestKind::Blob => s.blob_get += c.count,
            RequestKind::Token => s.token += c.count,
        }
    }
    for (host, _, bytes) in resolver.bytes_read() {
        by_host
            .entry(host.clone())
            .or_insert_with(|| RequestSummary {
                host,
                ..RequestSummary::default()
            })
            .bytes += bytes;
    }
    by_host.into_values().collect()
}

/// Resolves every reference (one request per unique tag), with a progress bar when stderr
/// is a terminal. The answers are in the order of `founds`; with them, the requests sent.
pub fn resolve_all(
    founds: &[Found],
    config: RegistryConfig,
) -> anyhow::Result<(Vec<Resolution>, Vec<RequestSummary>)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let resolver = Resolver::new(config).context("registry client")?;
    let bar = if std::io::stderr().is_terminal() && !founds.is_empty() {
        let bar = indicatif::ProgressBar::new(founds.len() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} resolving {pos}/{len} {wide_msg}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let out = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, f) in founds.iter().enumerate() {
            let (resolver, reference) = (resolver.clone(), f.reference.clone());
            let hint = f.context.platform.clone();
            tasks.spawn(async move {
                let r = resolver.resolve(&reference, hint.as_deref()).await;
                (i, reference, r)
            });
        }
        let mut out: Vec<Option<Resolution>> = vec![None; founds.len()];
        while let Some(done) = tasks.join_next().await {
            if let Ok((i, reference, r)) = done {
                bar.set_message(reference.to_string());
                bar.inc(1);
                out[i] = Some(r);
            }
        }
        out
    });
    bar.finish_and_clear();
    // A task can only be missing if it panicked; say so instead of inventing an answer.
    let resolutions = out
        .into_iter()
        .zip(founds)
        .map(|(r, f)| {
            r.map(|r| r.not_editable(f.not_editable.as_deref()))
                .unwrap_or_else(|| Resolution::internal_error("internal error while resolving"))
        })
        .collect();
    Ok((resolutions, summarize(&resolver)))
}
