//! `digestif update`: rewrite stale digests in place, changing only the digest bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::EXIT_FINDINGS;
use super::resolve::{RegistryArgs, resolve_all};
use super::scan::short_digest;
use crate::edit::{self, Change};
use crate::extract::Found;
use crate::local_scan::{WalkOptions, scan_dir};
use crate::reference::Digest;
use crate::registry::{Resolution, Status};

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Directory to update.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Also pin references that name only a tag (append @sha256:…).
    #[arg(long)]
    pub pin: bool,
    /// Print what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write nothing; exit with 1 when something is stale (or unpinned with --pin), or a
    /// file or registry could not be read.
    #[arg(long)]
    pub check: bool,
    /// Also read files that .gitignore excludes.
    #[arg(long)]
    pub no_ignore: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// One planned change.
struct Planned<'a> {
    found: &'a Found,
    new: Digest,
    change: Change,
}

pub fn run(args: UpdateArgs) -> anyhow::Result<ExitCode> {
    let meta = std::fs::metadata(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    anyhow::ensure!(meta.is_dir(), "{} is not a directory", args.path.display());
    let extraction = scan_dir(
        &args.path,
        &WalkOptions {
            no_ignore: args.no_ignore,
        },
    );
    let (resolutions, _) = resolve_all(&extraction.references, args.registry.config()?)?;
    let write = !(args.dry_run || args.check);

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let mut problems = !extraction.errors.is_empty();
    for e in &extraction.errors {
        writeln!(err, "error: {}: {}", e.file, e.message)?;
    }

    let mut by_file: BTreeMap<&str, Vec<Planned>> = BTreeMap::new();
    for (f, res) in extraction.references.iter().zip(&resolutions) {
        match wanted(f, res, args.pin) {
            Some(new) => {
                if let Some(change) = edit::set_digest(f, &new) {
                    by_file.entry(&f.file).or_default().push(Planned {
                        found: f,
                        new,
                        change,
                    });
                }
            }
            None => problems |= report_not_updated(&mut err, f, res)?,
        }
    }

    let mut changed = 0usize;
    let mut files = 0usize;
    for (file, planned) in &by_file {
        let path = args.path.join(file);
        match apply_file(&path, planned, write) {
            Ok(n) => {
                changed += n;
                files += 1;
                for p in planned {
                    writeln!(out, "{}", change_line(p))?;
                }
            }
            Err(e) => {
                problems = true;
                writeln!(err, "error: {file}: {e:#}")?;
            }
        }
    }
    let verb = if write { "updated" } else { "would update" };
    writeln!(out, "{verb} {changed} references in {files} files")?;
    Ok(if args.check && (changed > 0 || problems) {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

/// Says on stderr why a reference that gets no new digest was not looked up or cannot be
/// changed (an error, a rate limit, a platform gone, not editable); silent when it is
/// current. Returns whether it is a problem for `--check` (the lookup failed).
fn report_not_updated(err: &mut impl Write, f: &Found, res: &Resolution) -> std::io::Result<bool> {
    if matches!(
        res.status,
        Status::Error | Status::RateLimited | Status::PlatformGone | Status::NotEditable
    ) {
        writeln!(
            err,
            "{}: {}:{}: {} {}",
            res.status,
            f.file,
            f.line,
            f.text,
            res.detail
                .as_deref()
                .or(res.message.as_deref())
                .unwrap_or_default()
        )?;
    }
    Ok(matches!(res.status, Status::Error | Status::RateLimited))
}

/// `file:line  image:tag  old -> new`, digests shortened.
fn change_line(p: &Planned) -> String {
    let r = &p.found.reference;
    let old = r
        .digest
        .as_ref()
        .map(|d| short_digest(&d.to_string()))
        .unwrap_or_else(|| "(unpinned)".into());
    format!(
        "{}:{}  {}  {} -> {}",
        p.found.file,
        p.found.line,
        r.familiar_name()
            + &r.tag
                .as_deref()
                .map(|t| format!(":{t}"))
                .unwrap_or_default(),
        old,
        short_digest(&p.new.to_string())
    )
}

/// The digest `f` should get: stale ones always, tag-only ones when pinning.
fn wanted(f: &Found, res: &Resolution, pin: bool) -> Option<Digest> {
    match res.status {
        Status::Stale => res.current.clone(),
        Status::Unpinned if pin && f.reference.digest.is_none() => res.current.clone(),
        _ => None,
    }
}

/// Applies the changes of one file (checking that it still holds what was scanned);
/// writes it unless `write` is false. Returns how many references change.
fn apply_file(path: &Path, planned: &[Planned], write: bool) -> anyhow::Result<usize> {
    let bytes = match crate::local_scan::read_capped(path, crate::extract::MAX_FILE_SIZE)
        .with_context(|| format!("cannot read {}", path.display()))?
    {
        crate::local_scan::Capped::Bytes(b) => b,
        crate::local_scan::Capped::TooLarge(_) => anyhow::bail!(
            "{} grew over the {} byte limit since it was scanned",
            path.display(),
            crate::extract::MAX_FILE_SIZE
        ),
    };
    let founds: Vec<&Found> = planned.iter().map(|p| p.found).collect();
    edit::verify(&bytes, &founds)?;
    // One span may be reached twice (an ARG used by several FROMs): change it once, and
    // refuse when the two answers disagree.
    let mut changes: Vec<Change> = Vec::new();
    for p in planned {
        match changes.iter().find(|c| c.range == p.change.range) {
            Some(c) if c.text != p.change.text => anyhow::bail!(
                "line {}: one image text would need two different digests",
                p.found.line
            ),
            Some(_) => {}
            None => changes.push(p.change.clone()),
        }
    }
    let new = edit::apply(&bytes, &changes)?;
    if write {
        std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(planned.len())
}
