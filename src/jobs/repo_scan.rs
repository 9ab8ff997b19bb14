//! The scan job: read a repository's default branch through the Git Data API, read its
//! config, extract references from candidate files, resolve them, store the result.
//!
//! GitHub traffic per scan is kept small: the branch head is a conditional request (a 304
//! costs nothing against the rate limit and means "same files as last time"), the tree is
//! one recursive call, and only blobs whose sha changed since the last scan are fetched —
//! the store keeps the text of each candidate file by blob sha.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use tracing::Instrument as _;

use super::handler::Handler;
use crate::extract::{self, Extraction};
use crate::github::api::Api;
use crate::github::checks::{self, Annotation, CheckRun};
use crate::github::issues;
use crate::github::repo::{self, Tree};
use crate::jobs::JobError;
use crate::render;
use crate::repo_config::{self, CONFIG_PATHS, ConfigErrors, MAX_CONFIG_SIZE, RepoConfig};
use crate::store::{CachedFile, RepoConfigUpdate, Repository, ScanState};

/// Bumped when extractors change what they find, so cached "nothing here" verdicts are
/// not trusted across an upgrade.
pub const EXTRACTOR_VERSION: i32 = 2;

/// What one scan read from GitHub.
pub struct Snapshot {
    pub head_sha: String,
    pub tree_sha: String,
    /// `(path, text)` of the config file, if the repository has one.
    pub config: Option<(String, String)>,
    /// The config file's path when it is over [`MAX_CONFIG_SIZE`] (and was not fetched).
    pub oversized_config: Option<String>,
    /// Candidate files with their text (`None`: the file yields nothing).
    pub files: Vec<CachedFile>,
    pub branch: String,
    /// False when GitHub's tree could not be read completely: files may be missing, so
    /// nothing may be concluded from a reference not being seen.
    pub complete: bool,
}

/// Scans one repository. `fresh`: a person asked, so registries are asked again rather
/// than answered from the tag cache.
pub async fn scan_repository(h: &Handler, repository_id: i64, fresh: bool) -> Result<(), JobError> {
    // Answers from lookups that started before this instant are not reused.
    let since = fresh.then(std::time::Instant::now);
    let now = h.clock.now();
    let Some(repo) = h.repository(repository_id).await? else {
        return Ok(());
    };
    if repo.archived {
        h.store
            .record_scan_result(repo.id, "archived", None, now)
            .await?;
        return Ok(());
    }
    match h.store.installation(repo.installation_id).await? {
        Some(i) if i.deleted_at.is_none() && i.suspended_at.is_none() => {}
        _ => return Ok(()),
    }
    let span =
        tracing::info_span!("scan", repo = %repo.full_name, installation = repo.installation_id);
    scan(h, repo, since).instrument(span).await
}

async fn scan(
    h: &Handler,
    repo: Repository,
    since: Option<std::time::Instant>,
) -> Result<(), JobError> {
    let now = h.clock.now();
    let api = h.github.installation(repo.installation_id as u64)?;
    let snapshot = match read_repository(h, &api, &repo, None).await {
        Ok(s) => s,
        Err(e) => {
            record_scan_error(h, &repo, &e, now).await?;
            return Err(e);
        }
    };
    // The config decides everything else: an invalid one stops here, said where people look.
    let Some(config) = valid_config(h, &api, &repo, &snapshot).await? else {
        return Ok(());
    };
    let Some(snapshot) = on_base_branch(h, &api, &repo, &config, snapshot, now).await? else {
        return Ok(());
    };
    record_config(h, &api, &repo, &config, &snapshot, now).await?;

    let extraction = extract_included(&config, &snapshot);
    let resolved = super::resolve::resolve_all(h, &extraction, since).await?;
    let records = super::resolve::records(&config, &resolved);
    let stale = records.iter().filter(|r| r.status == "stale").count();
    h.store.replace_references(repo.id, &records, now).await?;
    let mut problems = file_problems(&extraction);
    let summary =
        super::pulls::update_pull_requests(h, &api, &repo, &config, &snapshot, &resolved).await;
    match summary {
        Ok(summary) => {
            problems.extend(summary.outcome.problems.iter().cloned());
            if config.dashboard {
                super::dashboard::update(h, &api, &repo, &records, &summary, &problems).await?;
            }
        }
        Err(e) => {
            record_scan_error(h, &repo, &e, now).await?;
            return Err(e);
        }
    }
    let error_text = (!problems.is_empty()).then(|| render::errors_text(&problems));
    h.store
        .record_scan_result(repo.id, "ok", error_text.as_deref(), now)
        .await?;
    tracing::info!(
        repo = %repo.full_name,
        references = records.len(),
        stale,
        file_errors = problems.len(),
        "scan stored"
    );
    crate::metrics::references_checked(records.iter().map(|r| r.status.as_str()));
    Ok(())
}

/// The repository's config (the default one without a file), or `None` once a config
/// that is too large or invalid was reported.
async fn valid_config(
    h: &Handler,
    api: &Api,
    repo: &Repository,
    snapshot: &Snapshot,
) -> Result<Option<RepoConfig>, JobError> {
    if let Some(path) = &snapshot.oversized_config {
        let errors = repo_config::too_large();
        report_config_error(h, api, repo, path, None, &snapshot.head_sha, &errors).await?;
        return Ok(None);
    }
    let Some((path, text)) = &snapshot.config else {
        return Ok(Some(RepoConfig::default()));
    };
    match RepoConfig::parse_with(text, &h.limits) {
        Ok(c) => Ok(Some(c)),
        Err(errors) => {
            report_config_error(h, api, repo, path, Some(text), &snapshot.head_sha, &errors)
                .await?;
            Ok(None)
        }
    }
}

/// `base-branch`: the config comes from the default branch, the files and the PRs' base
/// from the branch it names. `None` when that branch cannot be read (recorded on the repo).
async fn on_base_branch(
    h: &Handler,
    api: &Api,
    repo: &Repository,
    config: &RepoConfig,
    snapshot: Snapshot,
    now: DateTime<Utc>,
) -> Result<Option<Snapshot>, JobError> {
    let Some(base) = config.base_branch.as_deref() else {
        return Ok(Some(snapshot));
    };
    if base == snapshot.branch {
        return Ok(Some(snapshot));
    }
    match read_repository(h, api, repo, Some(base)).await {
        Ok(mut s) => {
            s.config = snapshot.config.clone();
            s.oversized_config = None;
            Ok(Some(s))
        }
        Err(JobError::Permanent(e)) => {
            let message = format!("base-branch {base:?} cannot be read: {e}");
            h.store
                .record_scan_result(repo.id, "error", Some(&message), now)
                .await?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Stores the valid config (schedule, timezone, text) and closes the issue an earlier
/// invalid one opened.
async fn record_config(
    h: &Handler,
    api: &Api,
    repo: &Repository,
    config: &RepoConfig,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let tz = config.timezone.name().to_string();
    h.store
        .set_repo_config(
            repo.id,
            &RepoConfigUpdate {
                text: snapshot.config.as_ref().map(|(_, t)| t.as_str()),
                error: None,
                schedule: &config.schedule,
                timezone: &tz,
                next_scan_at: crate::schedule::next_scan_at(repo.id, &config.schedule, &tz, now),
            },
            now,
        )
        .await?;
    if repo.config_error.is_some() {
        close_config_issue(h, api, repo, &snapshot.head_sha).await?;
    }
    Ok(())
}

/// The references in the files the config includes.
fn extract_included(config: &RepoConfig, snapshot: &Snapshot) -> Extraction {
    let mut extraction = Extraction::default();
    for f in &snapshot.files {
        if !config.includes_path(&f.path) {
            continue;
        }
        if let Some(text) = &f.content
            && let Some(e) = extract::extract_file(&f.path, text.as_bytes())
        {
            extraction.merge(e);
        }
    }
    extraction
}

/// The files that could not be read, as `file:line: message` lines.
fn file_problems(extraction: &Extraction) -> Vec<String> {
    extraction
        .errors
        .iter()
        .map(|e| match e.line {
            Some(l) => format!("{}:{l}: {}", e.file, e.message),
            None => format!("{}: {}", e.file, e.message),
        })
        .collect()
}

/// Records a failed scan, unless this worker lost the job: the worker that has it now
/// records its own result, which this one must not overwrite.
async fn record_scan_error(
    h: &Handler,
    repo: &Repository,
    e: &JobError,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), JobError> {
    if crate::lease::is_lost() {
        return Ok(());
    }
    h.store
        .record_scan_result(repo.id, "error", Some(&e.to_string()), now)
        .await?;
    Ok(())
}

/// Reads a branch (`None`: the default branch): head, tree, config, candidate files by blob
/// sha. The default branch's head is a conditional request against the last scan's ETag.
async fn read_repository(
    h: &Handler,
    api: &Api,
    repo: &Repository,
    branch: Option<&str>,
) -> Result<Snapshot, JobError> {
    let (branch, conditional) = match (branch, &repo.default_branch) {
        (Some(b), _) => (b.to_string(), false),
        (None, Some(b)) => (b.clone(), true),
        (None, None) => (
            repo::repository(api, &repo.full_name).await?.default_branch,
            true,
        ),
    };
    let cached = h.store.cached_files(repo.id).await?;
    let state = h.store.scan_state(repo.id).await?;
    let etag = state
        .as_ref()
        .filter(|s| conditional && s.extractor_version == EXTRACTOR_VERSION)
        .and_then(|s| s.head_etag.clone());
    let head = repo::branch_head(api, &repo.full_name, &branch, etag.as_deref()).await?;
    let Some(head) = head else {
        // 304: the branch has not moved, so the cached files are exactly its candidates.
        let (head_sha, tree_sha) = state.map(|s| (s.head_sha, s.tree_sha)).unwrap_or_default();
        return Ok(split_config(branch, head_sha, tree_sha, cached));
    };
    let tree = repo::tree(api, &repo.full_name, &head.tree_sha).await?;
    if tree.truncated {
        tracing::warn!(repo = %repo.full_name, "tree too large to read completely; scanning the part read, open PRs left as they are");
    }
    let by_path: HashMap<&str, &CachedFile> = cached.iter().map(|c| (c.path.as_str(), c)).collect();
    let mut files = Vec::new();
    for entry in wanted(&tree) {
        if let Some(c) = by_path.get(entry.path.as_str())
            && c.blob_sha == entry.sha
        {
            files.push((*c).clone());
            continue;
        }
        let is_config = CONFIG_PATHS.contains(&entry.path.as_str());
        if is_config && entry.size.is_some_and(|s| s > MAX_CONFIG_SIZE) {
            // Not fetched: the scan reports it as a configuration error (no content).
            files.push(CachedFile {
                path: entry.path.clone(),
                blob_sha: entry.sha.clone(),
                mode: entry.mode.clone(),
                content: None,
            });
            continue;
        }
        let bytes = repo::blob(api, &repo.full_name, &entry.sha).await?;
        // Keep text only where it matters: the config, and files that yield something.
        let content = match String::from_utf8(bytes) {
            // A tree without sizes: the cap still holds once the bytes are here.
            Ok(text) if is_config && text.len() as u64 > MAX_CONFIG_SIZE => None,
            Ok(text) if is_config => Some(text),
            Ok(text) => extract::extract_file(&entry.path, text.as_bytes())
                .filter(|e| {
                    !(e.references.is_empty() && e.skipped.is_empty() && e.errors.is_empty())
                })
                .map(|_| text),
            Err(e) => {
                // Not UTF-8: keep the extractor's verdict (an error it reports) reproducible.
                let bytes = e.into_bytes();
                extract::extract_file(&entry.path, &bytes)
                    .map(|_| String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        files.push(CachedFile {
            path: entry.path.clone(),
            blob_sha: entry.sha.clone(),
            mode: entry.mode.clone(),
            content,
        });
    }
    h.store
        .replace_cached_files(
            repo.id,
            &ScanState {
                head_sha: head.commit_sha.clone(),
                tree_sha: head.tree_sha.clone(),
                // A partial read must not stand for the branch: no ETag, so the next scan
                // reads it again instead of trusting these files on a 304.
                head_etag: head.etag.clone().filter(|_| !tree.truncated),
                extractor_version: EXTRACTOR_VERSION,
            },
            &files,
            h.clock.now(),
        )
        .await?;
    let mut snapshot = split_config(branch, head.commit_sha, head.tree_sha, files);
    snapshot.complete = !tree.truncated;
    Ok(snapshot)
}

/// Tree entries worth reading: the config files and every file an extractor may read.
fn wanted(tree: &Tree) -> impl Iterator<Item = &repo::TreeEntry> {
    tree.files().filter(|e| {
        CONFIG_PATHS.contains(&e.path.as_str())
            || (extract::kind_for_path(&e.path).is_some()
                && e.size.is_none_or(|s| s <= extract::MAX_FILE_SIZE as u64))
    })
}

fn split_config(
    branch: String,
    head_sha: String,
    tree_sha: String,
    files: Vec<CachedFile>,
) -> Snapshot {
    // The first of the config paths that exists is the config; without text it was too big.
    let found = CONFIG_PATHS
        .iter()
        .find_map(|p| files.iter().find(|f| f.path == *p));
    let (config, oversized_config) = match found {
        Some(f) => match &f.content {
            Some(t) => (Some((f.path.clone(), t.clone())), None),
            None => (None, Some(f.path.clone())),
        },
        None => (None, None),
    };
    // The config file stays in the list: no extractor reads it, so it yields nothing.
    Snapshot {
        head_sha,
        tree_sha,
        config,
        oversized_config,
        files,
        branch,
        complete: true,
    }
}

async fn report_config_error(
    h: &Handler,
    api: &Api,
    repo: &Repository,
    path: &str,
    text: Option<&str>,
    head_sha: &str,
    errors: &ConfigErrors,
) -> Result<(), JobError> {
    let now = h.clock.now();
    let message = render::errors_text(&errors.0);
    // Keep the last valid schedule: a broken file must not change when we look again. Unless
    // that schedule is no longer allowed either (the operator raised the minimum interval):
    // then the default, which always is.
    let schedule_allowed =
        crate::schedule::check_frequency(&repo.schedule, h.limits.min_schedule_interval).is_ok();
    let schedule = if schedule_allowed {
        repo.schedule.as_str()
    } else {
        crate::repo_config::DEFAULT_SCHEDULE
    };
    h.store
        .set_repo_config(
            repo.id,
            &RepoConfigUpdate {
                text,
                error: Some(&message),
                schedule,
                timezone: &repo.timezone,
                next_scan_at: crate::schedule::next_scan_at(repo.id, schedule, &repo.timezone, now),
            },
            now,
        )
        .await?;
    let short = &head_sha[..head_sha.len().min(7)];
    let body = render::config_error_issue(path, short, errors);
    let bot = h.github.bot_login().await?;
    match issues::find_open_issue(api, &repo.full_name, render::CONFIG_ISSUE_TITLE, &bot).await? {
        Some(issue) if issue.body.as_deref() == Some(body.as_str()) => {}
        Some(issue) => {
            issues::set_issue_body(api, &repo.full_name, issue.number, &body).await?;
        }
        None => {
            issues::create_issue(api, &repo.full_name, render::CONFIG_ISSUE_TITLE, &body).await?;
        }
    }
    h.store
        .record_scan_result(repo.id, "config-error", Some(&message), now)
        .await?;
    tracing::warn!(repo = %repo.full_name, errors = errors.0.len(), "invalid config; repository not updated");
    Ok(())
}

async fn close_config_issue(
    h: &Handler,
    api: &Api,
    repo: &Repository,
    head_sha: &str,
) -> Result<(), JobError> {
    let bot = h.github.bot_login().await?;
    if let Some(issue) =
        issues::find_open_issue(api, &repo.full_name, render::CONFIG_ISSUE_TITLE, &bot).await?
    {
        let short = &head_sha[..head_sha.len().min(7)];
        issues::comment(
            api,
            &repo.full_name,
            issue.number,
            &render::config_fixed_comment(short),
        )
        .await?;
        issues::close_issue(api, &repo.full_name, issue.number).await?;
    }
    Ok(())
}

/// Validates the config a pull request proposes and reports it as a check run, when the
/// pull request changes it.
pub async fn check_config(
    h: &Handler,
    installation_id: i64,
    repository_id: i64,
    number: i64,
    head_sha: &str,
) -> Result<(), JobError> {
    let Some(repo) = h.repository(repository_id).await? else {
        return Ok(());
    };
    let api = h.github.installation(installation_id as u64)?;
    let (path, sha, size) = match config_change(&api, &repo, head_sha).await? {
        ConfigChange::Unchanged => return Ok(()),
        ConfigChange::Removed => {
            let run = CheckRun {
                name: CONFIG_CHECK,
                head_sha,
                success: true,
                title: "No configuration file: defaults apply",
                summary: "This change removes digestif's configuration file; digestif will use its defaults.",
                annotations: &[],
            };
            checks::completed_check_run(&api, &repo.full_name, &run).await?;
            return Ok(());
        }
        ConfigChange::Proposed(blob) => blob,
    };
    // Over the cap, the file is not fetched: the check fails with that one error.
    let parsed = if size.is_some_and(|s| s > MAX_CONFIG_SIZE) {
        Err(repo_config::too_large())
    } else {
        let bytes = repo::blob(&api, &repo.full_name, &sha).await?;
        if bytes.len() as u64 > MAX_CONFIG_SIZE {
            Err(repo_config::too_large())
        } else {
            RepoConfig::parse_with(&String::from_utf8_lossy(&bytes), &h.limits)
        }
    };
    let result = match parsed {
        Ok(_) => valid_config_run(&path),
        Err(errors) => invalid_config_run(&path, &errors),
    };
    let run = CheckRun {
        name: CONFIG_CHECK,
        head_sha,
        success: result.success,
        title: &result.title,
        summary: &result.summary,
        annotations: &result.annotations,
    };
    checks::completed_check_run(&api, &repo.full_name, &run).await?;
    tracing::info!(repo = %repo.full_name, number, "config check reported");
    Ok(())
}

/// The check run a pull request that changes the config gets.
const CONFIG_CHECK: &str = "digestif: configuration";

/// A config file in a tree: path, blob sha and size.
type ConfigBlob = (String, String, Option<u64>);

/// What a pull request does to the config file, head against the base branch.
enum ConfigChange {
    Unchanged,
    Removed,
    Proposed(ConfigBlob),
}

async fn config_change(
    api: &Api,
    repo: &Repository,
    head_sha: &str,
) -> Result<ConfigChange, JobError> {
    let head_tree = repo::commit_tree(api, &repo.full_name, head_sha).await?;
    let head = repo::tree(api, &repo.full_name, &head_tree).await?;
    let branch = match &repo.default_branch {
        Some(b) => b.clone(),
        None => repo::repository(api, &repo.full_name).await?.default_branch,
    };
    let base = match repo::branch_head(api, &repo.full_name, &branch, None).await? {
        Some(b) => repo::tree(api, &repo.full_name, &b.tree_sha).await?,
        None => return Ok(ConfigChange::Unchanged),
    };
    let config_blob = |t: &Tree| -> Option<ConfigBlob> {
        CONFIG_PATHS
            .iter()
            .find_map(|p| t.file(p).map(|e| (e.path.clone(), e.sha.clone(), e.size)))
    };
    let proposed = config_blob(&head);
    if proposed == config_blob(&base) {
        return Ok(ConfigChange::Unchanged);
    }
    Ok(match proposed {
        None => ConfigChange::Removed,
        Some(blob) => ConfigChange::Proposed(blob),
    })
}

/// The outcome of the config check, before it borrows into a [`CheckRun`].
struct ConfigCheck {
    success: bool,
    title: String,
    summary: String,
    annotations: Vec<Annotation>,
}

fn valid_config_run(path: &str) -> ConfigCheck {
    ConfigCheck {
        success: true,
        title: "Configuration is valid".to_string(),
        summary: format!("{} is a valid digestif configuration.", render::code(path)),
        annotations: Vec::new(),
    }
}

/// A failed check: an annotation on each error's line, and the list in the summary.
fn invalid_config_run(path: &str, errors: &ConfigErrors) -> ConfigCheck {
    let annotations: Vec<Annotation> = errors
        .0
        .iter()
        .map(|e| Annotation {
            path: path.to_string(),
            start_line: e.line.unwrap_or(1),
            end_line: e.line.unwrap_or(1),
            annotation_level: "failure",
            message: render::clip(&e.message, 1_000),
        })
        .collect();
    ConfigCheck {
        success: false,
        title: format!("{} error(s) in {path}", errors.0.len()),
        summary: format!(
            "digestif cannot use this configuration; merged as is, it would stop updating the repository.\n\n{}",
            render::error_list(path, errors)
        ),
        annotations,
    }
}
