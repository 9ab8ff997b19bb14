//! Carrying a [`Plan`] out on GitHub: commits through the Git Data API, pull requests,
//! labels, reviewers, comments — and recording every step in the store.
//!
//! Every action is idempotent, so a job that dies half-way is simply run again:
//! - a branch's commit is rebuilt from the base each time and the ref force-moved to it;
//! - before a PR is created, GitHub is asked for an open PR on the branch (the store may
//!   have missed it in a crash), so one branch never gets two PRs;
//! - closing tolerates a PR or branch that is already gone.
//!
//! Commits carry no author or committer, so GitHub attributes them to the App and marks
//! them verified.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::edit;
use crate::github::api::{Api, ApiError};
use crate::github::graphql::{self, AutoMerge};
use crate::github::{git, issues, pulls};
use crate::plan::{Action, CloseReason, ExistingPr, Plan, Update, UpdateKey};
use crate::render::{self, RepoLinks};
use crate::repo_config::RepoConfig;
use crate::store::{PrStatus, PrUpsert, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    GitHub(#[from] ApiError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The base file no longer has the text the scan saw: scan again.
    #[error("{file} changed since it was scanned: {message}")]
    Stale { file: String, message: String },
}

/// The base branch as the scan read it.
pub struct Base<'a> {
    pub branch: &'a str,
    /// Head commit of the base branch.
    pub commit_sha: &'a str,
    pub tree_sha: &'a str,
    /// Text of each file digestif may edit.
    pub files: &'a HashMap<String, String>,
    /// Git mode of each file.
    pub modes: &'a HashMap<String, String>,
    /// Blob sha of each file, to record what a PR was built on.
    pub blobs: &'a BTreeMap<String, String>,
}

pub struct Writer<'a> {
    pub api: &'a Api,
    pub store: &'a Store,
    pub repository_id: i64,
    pub full_name: &'a str,
    /// `https://github.com/owner/repo`
    pub html_url: String,
    pub config: &'a RepoConfig,
    pub base: Base<'a>,
    pub now: DateTime<Utc>,
}

/// What the writer did, for logs, metrics and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub created: Vec<u64>,
    pub updated: Vec<u64>,
    pub closed: Vec<u64>,
    /// Problems a person must fix (e.g. the workflows permission), already said on the PR.
    pub problems: Vec<String>,
}

/// The files a set of updates produces: only the digest (or pin) bytes change.
pub fn edited_files(
    files: &HashMap<String, String>,
    updates: &[Update],
) -> Result<BTreeMap<String, String>, WriteError> {
    let mut by_file: BTreeMap<&str, Vec<&Update>> = BTreeMap::new();
    for u in updates {
        by_file.entry(u.found.file.as_str()).or_default().push(u);
    }
    let mut out = BTreeMap::new();
    for (file, us) in by_file {
        let stale = |message: String| WriteError::Stale {
            file: file.to_string(),
            message,
        };
        let text = files
            .get(file)
            .ok_or_else(|| stale("file not in the scan".into()))?;
        let founds: Vec<_> = us.iter().map(|u| &u.found).collect();
        edit::verify(text.as_bytes(), &founds).map_err(|e| stale(e.to_string()))?;
        let changes: Vec<edit::Change> = us
            .iter()
            .filter_map(|u| edit::set_digest(&u.found, &u.new_digest))
            .collect();
        let bytes = edit::apply(text.as_bytes(), &changes).map_err(|e| stale(e.to_string()))?;
        let new = String::from_utf8(bytes).map_err(|e| stale(e.to_string()))?;
        out.insert(file.to_string(), new);
    }
    Ok(out)
}

/// True when a PR's description says "details will follow".
fn details_pending(updates: &[Update]) -> bool {
    updates
        .iter()
        .any(|u| u.details.as_ref().is_some_and(|d| d.is_deferred()))
}

fn is_workflow(path: &str) -> bool {
    path.starts_with(".github/workflows/")
}

/// The files of an open PR's planned updates that it leaves out: workflow files GitHub
/// refused for want of the `workflows` permission. They are the files of its updates
/// without a recorded base blob (the writer records those of the files it wrote only).
pub fn left_out_workflows(pr: &ExistingPr) -> Vec<String> {
    let mut files: Vec<String> = pr
        .updates
        .iter()
        .filter(|k| is_workflow(&k.file) && !pr.base_blobs.contains_key(&k.file))
        .map(|k| k.file.clone())
        .collect();
    files.sort();
    files.dedup();
    files
}

/// What a person must do about workflow files digestif may not change.
pub fn workflows_problem(files: &[String]) -> String {
    format!(
        "digestif cannot update workflow files ({}) because the App lacks the workflows \
         permission. An organization owner can grant it in the App's installation settings.",
        files.join(", ")
    )
}

impl Writer<'_> {
    pub async fn apply(&self, plan: &Plan) -> Result<Outcome, WriteError> {
        let mut out = Outcome::default();
        for action in &plan.actions {
            match action {
                Action::Create { branch, updates } => {
                    let n = self.write_pr(None, branch, updates, &mut out).await?;
                    if let Some(n) = n {
                        crate::metrics::pr_opened();
                        out.created.push(n);
                    }
                }
                Action::Update {
                    number,
                    branch,
                    updates,
                } => {
                    if self
                        .write_pr(Some(*number), branch, updates, &mut out)
                        .await?
                        .is_some()
                    {
                        crate::metrics::pr_updated();
                        out.updated.push(*number);
                    }
                }
                Action::Close {
                    number,
                    branch,
                    reason,
                } => {
                    self.close(*number, branch, reason).await?;
                    crate::metrics::pr_closed(match reason {
                        CloseReason::AlreadyApplied => "already-applied",
                        CloseReason::UpstreamReverted => "upstream-reverted",
                        CloseReason::NoLongerNeeded => "no-longer-needed",
                    });
                    out.closed.push(*number);
                }
                Action::NotifyHandoff { number } => self.notify_handoff(*number).await?,
                Action::Describe {
                    number,
                    branch,
                    updates,
                } => {
                    if updates.iter().any(|u| is_workflow(&u.found.file)) {
                        // Whether the workflow files could be written decides the
                        // description (they may be left out, with a note): find out again.
                        self.write_pr(Some(*number), branch, updates, &mut out)
                            .await?;
                    } else {
                        self.describe(*number, branch, updates).await?;
                    }
                    out.updated.push(*number);
                }
            }
        }
        Ok(out)
    }

    /// Builds the branch's commit on the current base and points the branch at it, then
    /// creates the PR (or updates `number`). Returns the PR number, or `None` when nothing
    /// could be written (every file was a workflow file without permission).
    async fn write_pr(
        &self,
        number: Option<u64>,
        branch: &str,
        planned: &[Update],
        out: &mut Outcome,
    ) -> Result<Option<u64>, WriteError> {
        let mut updates: Vec<Update> = planned.to_vec();
        let mut note: Option<String> = None;
        let commit = loop {
            let files = edited_files(self.base.files, &updates)?;
            let sha = self.commit(branch, &updates, &files).await?;
            match git::force_branch(self.api, self.full_name, branch, &sha).await {
                Ok(()) => break sha,
                Err(ApiError::Status {
                    status: 422 | 403 | 404,
                    ref message,
                    ..
                }) if message.contains("workflow")
                    && updates.iter().any(|u| is_workflow(&u.found.file)) =>
                {
                    // GitHub will not let the App touch workflow files without the
                    // `workflows` permission: propose the rest and say why on the PR.
                    let skipped: Vec<String> = updates
                        .iter()
                        .filter(|u| is_workflow(&u.found.file))
                        .map(|u| u.found.file.clone())
                        .collect();
                    out.problems.push(workflows_problem(&skipped));
                    note = Some(render::workflows_note(&skipped));
                    updates.retain(|u| !is_workflow(&u.found.file));
                    if updates.is_empty() {
                        tracing::warn!(
                            repo = self.full_name,
                            branch,
                            "only workflow files to update, and no permission"
                        );
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        let links = RepoLinks {
            html_url: self.html_url.clone(),
            base_sha: self.base.commit_sha.to_string(),
        };
        let title = render::title(self.config, branch, &updates);
        let mut body = render::body(self.config, &links, branch, &updates);
        if let Some(n) = &note {
            body = format!("{n}{body}");
        }
        let number = match number {
            Some(n) => {
                pulls::set_text(self.api, self.full_name, n, &title, &body).await?;
                n
            }
            None => self.create_pr(branch, &title, &body).await?,
        };
        // The store keeps the updates as planned, so that the next scan, planning the same
        // set, leaves the PR alone until something changes; and the base blobs of the files
        // written only, so that the updates left out stay known ([`left_out_workflows`]).
        let keys: Vec<UpdateKey> = planned.iter().map(Update::key).collect();
        let base_blobs: BTreeMap<String, String> = updates
            .iter()
            .filter_map(|u| {
                self.base
                    .blobs
                    .get(&u.found.file)
                    .map(|b| (u.found.file.clone(), b.clone()))
            })
            .collect();
        self.store
            .upsert_pr(
                &PrUpsert {
                    repository_id: self.repository_id,
                    number: number as i64,
                    branch,
                    state: PrStatus::Open,
                    head_sha: Some(&commit),
                    base_sha: Some(self.base.commit_sha),
                    updates: &keys,
                    base_blobs: &base_blobs,
                    details_pending: details_pending(&updates),
                },
                self.now,
            )
            .await?;
        tracing::info!(
            repo = self.full_name,
            branch,
            number,
            updates = keys.len(),
            "pull request written"
        );
        Ok(Some(number))
    }

    /// Rewrites only the title and description of PR `number` (its commit is current).
    async fn describe(
        &self,
        number: u64,
        branch: &str,
        updates: &[Update],
    ) -> Result<(), WriteError> {
        let links = RepoLinks {
            html_url: self.html_url.clone(),
            base_sha: self.base.commit_sha.to_string(),
        };
        let title = render::title(self.config, branch, updates);
        let body = render::body(self.config, &links, branch, updates);
        pulls::set_text(self.api, self.full_name, number, &title, &body).await?;
        self.store
            .set_pr_details_pending(
                self.repository_id,
                number as i64,
                details_pending(updates),
                self.now,
            )
            .await?;
        tracing::info!(
            repo = self.full_name,
            number,
            "pull request description rewritten"
        );
        Ok(())
    }

    /// Blobs → tree on the base tree → commit on the base head. Returns the commit sha.
    async fn commit(
        &self,
        branch: &str,
        updates: &[Update],
        files: &BTreeMap<String, String>,
    ) -> Result<String, ApiError> {
        let mut entries = Vec::new();
        for (path, text) in files {
            let blob_sha = git::create_blob(self.api, self.full_name, text).await?;
            let mode = self
                .base
                .modes
                .get(path)
                .cloned()
                .unwrap_or_else(|| "100644".to_string());
            entries.push(git::TreeFile {
                path: path.clone(),
                mode,
                blob_sha,
            });
        }
        let tree = git::create_tree(self.api, self.full_name, self.base.tree_sha, &entries).await?;
        let message = render::commit_message(self.config, branch, updates);
        git::create_commit(
            self.api,
            self.full_name,
            &message,
            &tree,
            self.base.commit_sha,
        )
        .await
    }

    /// The open PR for `branch` (as GitHub knows it), or a new one, with labels,
    /// reviewers, assignees and auto-merge as configured.
    async fn create_pr(&self, branch: &str, title: &str, body: &str) -> Result<u64, ApiError> {
        if let Some(existing) = pulls::open_for_branch(self.api, self.full_name, branch).await? {
            // A crash after the PR was created but before the store heard of it.
            pulls::set_text(self.api, self.full_name, existing.number, title, body).await?;
            return Ok(existing.number);
        }
        let pr = pulls::create(
            self.api,
            self.full_name,
            title,
            branch,
            self.base.branch,
            body,
        )
        .await?;
        let number = pr.number;
        if !self.config.labels.is_empty() {
            issues::add_labels(self.api, self.full_name, number, &self.config.labels).await?;
        }
        if !self.config.assignees.is_empty() {
            issues::add_assignees(self.api, self.full_name, number, &self.config.assignees).await?;
        }
        let (teams, users): (Vec<&String>, Vec<&String>) =
            self.config.reviewers.iter().partition(|r| r.contains('/'));
        if !teams.is_empty() || !users.is_empty() {
            let team_slugs: Vec<&str> = teams
                .iter()
                .filter_map(|t| t.split_once('/').map(|(_, slug)| slug))
                .collect();
            let users: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
            let result =
                pulls::request_reviewers(self.api, self.full_name, number, &users, &team_slugs)
                    .await;
            // An unknown reviewer must not cost the PR: say it on the PR instead.
            if let Err(e) = result {
                issues::comment(
                    self.api,
                    self.full_name,
                    number as i64,
                    &format!(
                        "digestif could not request the configured reviewers: {}",
                        render::code(&e.to_string())
                    ),
                )
                .await?;
            }
        }
        if self.config.automerge
            && let AutoMerge::Refused(why) =
                graphql::enable_auto_merge(self.api, &pr.node_id).await?
        {
            issues::comment(
                self.api,
                self.full_name,
                number as i64,
                &format!(
                    "digestif could not enable auto-merge (is it allowed in the repository settings?): {}",
                    render::code(&why)
                ),
            )
            .await?;
        }
        Ok(number)
    }

    async fn close(
        &self,
        number: u64,
        branch: &str,
        reason: &CloseReason,
    ) -> Result<(), WriteError> {
        let why = match reason {
            CloseReason::AlreadyApplied => {
                "The base branch already has these digests, so this PR is no longer needed."
            }
            CloseReason::UpstreamReverted => {
                "The tag points at the pinned digest again (upstream went back), so there is nothing to update."
            }
            CloseReason::NoLongerNeeded => {
                "The references this PR updates changed, were removed, or are now ignored."
            }
        };
        // Mark it closed in the store first: the `closed` webhook that follows must read
        // as digestif's own doing, not as a person declining the update.
        self.store
            .set_pr_state(
                self.repository_id,
                number as i64,
                PrStatus::Closed,
                self.now,
            )
            .await?;
        let state = pulls::state(self.api, self.full_name, number).await?;
        if state.as_deref() == Some("open") {
            issues::comment(self.api, self.full_name, number as i64, why).await?;
            pulls::close(self.api, self.full_name, number).await?;
        }
        git::delete_branch(self.api, self.full_name, branch).await?;
        tracing::info!(
            repo = self.full_name,
            number,
            ?reason,
            "pull request closed"
        );
        Ok(())
    }

    async fn notify_handoff(&self, number: u64) -> Result<(), WriteError> {
        if self
            .store
            .claim_pr_handoff_notice(self.repository_id, number as i64, self.now)
            .await?
        {
            issues::comment(
                self.api,
                self.full_name,
                number as i64,
                "Someone else pushed to this branch, so digestif will not touch this PR any more. \
                 Comment `@digestif rebase` to hand it back (your commits will be replaced).",
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract;
    use crate::reference::Digest;

    fn update(text: &str, file: &str, which: usize, new: &str) -> Update {
        let e = extract::extract_file(file, text.as_bytes()).expect("extracted");
        Update {
            found: e.references[which].clone(),
            new_digest: Digest::parse(new).expect("digest"),
            platform_pin: None,
            tag_digest: None,
            info: None,
            details: None,
        }
    }

    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn only_digest_bytes_change_across_files() {
        let df = format!("# base\r\nFROM  python:3.12-slim@{OLD}  AS build\r\nFROM nginx:1.27\r\n");
        let compose = "services:\n  web:\n    image: \"redis:7\" # cache\n".to_string();
        let files: HashMap<String, String> = [
            ("Dockerfile".to_string(), df.clone()),
            ("compose.yaml".to_string(), compose.clone()),
        ]
        .into();
        let ups = vec![
            update(&df, "Dockerfile", 0, NEW),
            update(&df, "Dockerfile", 1, NEW),
            update(&compose, "compose.yaml", 0, NEW),
        ];
        let out = edited_files(&files, &ups).expect("edited");
        assert_eq!(
            out["Dockerfile"],
            format!(
                "# base\r\nFROM  python:3.12-slim@{NEW}  AS build\r\nFROM nginx:1.27@{NEW}\r\n"
            )
        );
        assert_eq!(
            out["compose.yaml"],
            format!("services:\n  web:\n    image: \"redis:7@{NEW}\" # cache\n")
        );
    }

    #[test]
    fn the_workflow_files_a_pr_left_out_are_those_without_a_base_blob() {
        let key = |file: &str| UpdateKey {
            file: file.into(),
            image: "docker.io/library/python".into(),
            tag: Some("3.12".into()),
            old: Some(OLD.into()),
            new: NEW.into(),
        };
        let pr = ExistingPr {
            number: 1,
            branch: "digestif/all".into(),
            state: crate::plan::PrState::Open,
            human_edited: false,
            handoff_notified: false,
            updates: vec![
                key("Dockerfile"),
                key(".github/workflows/ci.yml"),
                key(".github/workflows/ci.yml"),
                key(".github/workflows/release.yml"),
            ],
            base_blobs: [
                ("Dockerfile".to_string(), "a".to_string()),
                (".github/workflows/release.yml".to_string(), "b".to_string()),
            ]
            .into(),
            details_pending: false,
        };
        assert_eq!(left_out_workflows(&pr), [".github/workflows/ci.yml"]);
    }

    #[test]
    fn a_file_that_moved_under_the_scan_is_stale() {
        let df = format!("FROM python:3.12-slim@{OLD}\n");
        let ups = vec![update(&df, "Dockerfile", 0, NEW)];
        let files: HashMap<String, String> =
            [("Dockerfile".to_string(), "FROM alpine:3\n".to_string())].into();
        assert!(matches!(
            edited_files(&files, &ups),
            Err(WriteError::Stale { .. })
        ));
    }
}
