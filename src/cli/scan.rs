//! `digestif scan`: list the image references in a tree.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use super::resolve::{RegistryArgs, resolve_all};
use super::{EXIT_FINDINGS, Format};
use crate::extract::{Context, Extraction, FileError, Found, Skipped};
use crate::local_scan::{WalkOptions, scan_dir};
use crate::registry::{Resolution, Status};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Directory to scan.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Do not ask registries for current digests; only list what the files say.
    #[arg(long)]
    pub offline: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit with 1 when a reference is unpinned or stale, or a file or registry could not
    /// be read.
    #[arg(long)]
    pub check: bool,
    /// Also scan files that .gitignore excludes.
    #[arg(long)]
    pub no_ignore: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// One reference as `--format json` prints it. Field names are a stable interface.
#[derive(Debug, Serialize)]
pub struct ReferenceReport {
    pub file: String,
    pub line: usize,
    pub kind: &'static str,
    /// Registry and repository, without tag: `docker.io/library/python`.
    pub image: String,
    /// Null only for digest-only references.
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// The image text exactly as written in the file.
    pub text: String,
    pub context: Context,
    /// Why digestif will not write a digest here; absent when it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_editable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<&Found> for ReferenceReport {
    fn from(f: &Found) -> Self {
        ReferenceReport {
            file: f.file.clone(),
            line: f.line,
            kind: f.kind.as_str(),
            image: f.reference.name(),
            tag: f.reference.tag.clone(),
            digest: f.reference.digest.as_ref().map(|d| d.to_string()),
            text: f.text.clone(),
            context: f.context.clone(),
            not_editable: f.not_editable.clone(),
            current_digest: None,
            status: None,
            message: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ScanReport {
    pub references: Vec<ReferenceReport>,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<FileError>,
    /// Registry requests sent, per host and kind (absent with `--offline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<Vec<super::resolve::RequestSummary>>,
}

impl ScanReport {
    pub fn offline(e: &Extraction) -> ScanReport {
        ScanReport {
            references: e.references.iter().map(ReferenceReport::from).collect(),
            skipped: e.skipped.clone(),
            errors: e.errors.clone(),
            requests: None,
        }
    }

    /// The report with what the registries said about each reference (same order).
    pub fn resolved(e: &Extraction, resolutions: &[Resolution]) -> ScanReport {
        let mut report = ScanReport::offline(e);
        for (r, res) in report.references.iter_mut().zip(resolutions) {
            r.current_digest = res.current.as_ref().map(|d| d.to_string());
            r.status = Some(res.status.as_str().to_string());
            // The local CLI is the operator's: the whole story, not the repository's share.
            r.message = res.detail.clone().or_else(|| res.message.clone());
        }
        report
    }

    /// Whether `--check` should fail: unpinned or stale references, and anything that could
    /// not be checked (unreadable files, registry errors, rate limits).
    pub fn has_findings(&self) -> bool {
        let failing = [
            Status::Stale,
            Status::Error,
            Status::RateLimited,
            Status::NotEditable,
        ]
        .map(Status::as_str);
        !self.errors.is_empty()
            || self.references.iter().any(|r| {
                r.digest.is_none() || r.status.as_deref().is_some_and(|s| failing.contains(&s))
            })
    }
}

pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let meta = std::fs::metadata(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    anyhow::ensure!(meta.is_dir(), "{} is not a directory", args.path.display());
    let options = WalkOptions {
        no_ignore: args.no_ignore,
    };
    let extraction = scan_dir(&args.path, &options);
    let report = if args.offline {
        ScanReport::offline(&extraction)
    } else {
        let (resolutions, requests) = resolve_all(&extraction.references, args.registry.config()?)?;
        let mut report = ScanReport::resolved(&extraction, &resolutions);
        report.requests = Some(requests);
        report
    };
    print_report(&report, args.format)?;
    Ok(if args.check && report.has_findings() {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn print_report(report: &ScanReport, format: Format) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        Format::Text => write!(out, "{}", render_table(report))?,
    }
    // Errors always reach stderr, with file and line, whatever the format.
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    for e in &report.errors {
        match e.line {
            Some(line) => writeln!(err, "error: {}:{}: {}", e.file, line, e.message)?,
            None if e.file.is_empty() => writeln!(err, "error: {}", e.message)?,
            None => writeln!(err, "error: {}: {}", e.file, e.message)?,
        }
    }
    Ok(())
}

/// An aligned table a person can read.
pub fn render_table(report: &ScanReport) -> String {
    let with_status = report.references.iter().any(|r| r.status.is_some());
    let mut rows: Vec<Vec<String>> = vec![
        ["LOCATION", "KIND", "IMAGE", "TAG", "DIGEST"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ];
    if with_status {
        rows[0].push("CURRENT".into());
        rows[0].push("STATUS".into());
    }
    for r in &report.references {
        let mut row = vec![
            format!("{}:{}", r.file, r.line),
            r.kind.to_string(),
            r.image.clone(),
            r.tag.clone().unwrap_or_else(|| "-".into()),
            r.digest
                .as_deref()
                .map(short_digest)
                .unwrap_or_else(|| "-".into()),
        ];
        if with_status {
            row.push(
                r.current_digest
                    .as_deref()
                    .map(short_digest)
                    .unwrap_or_else(|| "-".into()),
            );
            let mut s = r.status.clone().unwrap_or_default();
            if let Some(m) = &r.message {
                s.push_str(&format!(" ({m})"));
            }
            row.push(s);
        }
        rows.push(row);
    }
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if !with_status {
        for r in &report.references {
            if let Some(why) = &r.not_editable {
                out.push_str(&format!("not editable {}:{}: {why}\n", r.file, r.line));
            }
        }
    }
    for s in &report.skipped {
        out.push_str(&format!("skipped {}:{}: {}\n", s.file, s.line, s.reason));
    }
    out.push_str(&format!(
        "{} references, {} skipped, {} errors\n",
        report.references.len(),
        report.skipped.len(),
        report.errors.len()
    ));
    out
}

pub(crate) fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((algo, hex)) => format!("{algo}:{}", &hex[..hex.len().min(12)]),
        None => d.to_string(),
    }
}
