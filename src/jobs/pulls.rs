//! After a scan: plan which pull requests should exist and have the writer make it so.
//! Also the reactions to what people do on those PRs (close, merge, reopen); their comment
//! commands are in [`super::commands`].

use std::collections::{BTreeMap, HashMap};

use super::handler::Handler;
use super::repo_scan::Snapshot;
use super::resolve::Resolved;
use crate::github::api::Api;
use crate::github::issues;
use crate::insight::Details;
use crate::jobs::JobError;
use crate::plan::{self, Action, Candidate};
use crate::registry::{DetailsRequest, RegistryError, Status};
use crate::repo_config::RepoConfig;
use crate::store::{IgnoreSource, NewIgnore, PrStatus, PullRequest, Repository};
use crate::writer::{Base, Outcome, WriteError, Writer};
use chrono::{DateTime, TimeDelta, Utc};

impl From<WriteError> for JobError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::GitHub(a) => a.into(),
            WriteError::Store(s) => s.into(),
            // The branch moved between read and write: the next attempt rescans.
            WriteError::Stale { .. } => JobError::Transient(e.to_string()),
        }
    }
}

/// What planning and writing came to, for the dashboard.
#[derive(Debug, Default)]
pub struct Summary {
    pub outcome: Outcome,
    pub pending: Vec<plan::Pending>,
}

pub async fn update_pull_requests(
    h: &Handler,
    api: &Api,
    repo: &Repository,
    config: &RepoConfig,
    snapshot: &Snapshot,
    resolved: &[Resolved],
) -> Result<Summary, JobError> {
    let now = h.clock.now();
    let candidates = candidates(resolved);
    let mut records = h.store.prs_for_repo(repo.id).await?;
    // No record of any PR here, and something to propose: if the database was lost, the
    // PRs' own bodies say what digestif already proposed. (Asked only then, so a repository
    // that never had a PR costs no call per scan while nothing is out of date.)
    if records.is_empty()
        && candidates.iter().any(|c| c.proposed.is_some())
        && super::recover::adopt_prs(h, api, repo).await? > 0
    {
        records = h.store.prs_for_repo(repo.id).await?;
    }
    let prs: Vec<_> = records.iter().map(|p| p.to_existing()).collect();
    let ignores: Vec<_> = h
        .store
        .ignores_for_repo(repo.id)
        .await?
        .iter()
        .map(|i| i.to_plan())
        .collect();
    let blobs = blobs_of(snapshot);
    let created_last_hour = h
        .store
        .prs_created_since(repo.id, now - TimeDelta::hours(1))
        .await?;
    let mut plan = plan::plan(&plan::Input {
        config,
        candidates: &candidates,
        prs: &prs,
        ignores: &ignores,
        blobs: &blobs,
        now,
        created_last_hour,
    });
    let partial_problem = if snapshot.complete {
        None
    } else {
        partial_view(&mut plan)
    };
    for p in &plan.pending {
        tracing::info!(repo = %repo.full_name, branch = %p.branch, reason = ?p.reason, "update pending");
    }
    if plan.actions.is_empty() {
        let mut outcome = Outcome {
            problems: partial_problem.into_iter().collect(),
            ..Outcome::default()
        };
        outcome.problems.extend(left_out_problems(&prs, &outcome));
        return Ok(Summary {
            outcome,
            pending: plan.pending,
        });
    }
    describe(h, &mut plan).await;
    let mut outcome = write(h, api, repo, config, snapshot, &plan, now).await?;
    outcome.problems.extend(partial_problem);
    outcome.problems.extend(left_out_problems(&prs, &outcome));
    tracing::info!(
        repo = %repo.full_name,
        created = outcome.created.len(),
        updated = outcome.updated.len(),
        closed = outcome.closed.len(),
        pending = plan.pending.len(),
        "pull requests in line with the plan"
    );
    Ok(Summary {
        outcome,
        pending: plan.pending,
    })
}

/// The blob sha of each file the scan read, by path.
fn blobs_of(snapshot: &Snapshot) -> BTreeMap<String, String> {
    snapshot
        .files
        .iter()
        .map(|f| (f.path.clone(), f.blob_sha.clone()))
        .collect()
}

/// What the plan weighs for each reference the scan resolved.
fn candidates(resolved: &[Resolved]) -> Vec<Candidate> {
    resolved
        .iter()
        .map(|r| Candidate {
            found: r.found.clone(),
            proposed: r.resolution.proposed().cloned(),
            unknown: matches!(r.resolution.status, Status::RateLimited | Status::Error),
            first_seen: r.first_seen,
            platform_pin: r.resolution.platform.clone(),
            tag_digest: r.resolution.tag_digest.clone(),
        })
        .collect()
}

/// The scan saw part of the tree only: open PRs are left as they are (only new ones may be
/// opened); says so when that holds any back.
fn partial_view(plan: &mut plan::Plan) -> Option<String> {
    let kept = plan.restrict_to_partial_view();
    if kept.is_empty() {
        return None;
    }
    let list: Vec<String> = kept.iter().map(|n| format!("#{n}")).collect();
    Some(format!(
        "The repository's file tree is too large to read completely; open pull requests ({}) are left as they are until it can be.",
        list.join(", ")
    ))
}

/// Has the writer carry `plan` out on the base branch the scan read.
async fn write(
    h: &Handler,
    api: &Api,
    repo: &Repository,
    config: &RepoConfig,
    snapshot: &Snapshot,
    plan: &plan::Plan,
    now: DateTime<Utc>,
) -> Result<Outcome, JobError> {
    let blobs = blobs_of(snapshot);
    let files: HashMap<String, String> = snapshot
        .files
        .iter()
        .filter_map(|f| f.content.clone().map(|c| (f.path.clone(), c)))
        .collect();
    let modes: HashMap<String, String> = snapshot
        .files
        .iter()
        .map(|f| (f.path.clone(), f.mode.clone()))
        .collect();
    let writer = Writer {
        api,
        store: &h.store,
        repository_id: repo.id,
        full_name: &repo.full_name,
        html_url: format!(
            "{}/{}",
            crate::server_settings::github_web_url(h.github.api_url()),
            repo.full_name
        ),
        config,
        base: Base {
            branch: &snapshot.branch,
            commit_sha: &snapshot.head_sha,
            tree_sha: &snapshot.tree_sha,
            files: &files,
            modes: &modes,
            blobs: &blobs,
        },
        now,
    };
    Ok(writer.apply(plan).await?)
}

/// The workflow files open PRs this scan did not write still leave out: the writer said
/// so for the PRs it wrote; the others still need a person to act.
fn left_out_problems(prs: &[plan::ExistingPr], outcome: &Outcome) -> Vec<String> {
    prs.iter()
        .filter(|p| p.state == plan::PrState::Open)
        .filter(|p| {
            ![&outcome.created, &outcome.updated, &outcome.closed]
                .iter()
                .any(|written| written.contains(&p.number))
        })
        .map(crate::writer::left_out_workflows)
        .filter(|files| !files.is_empty())
        .map(|files| crate::writer::workflows_problem(&files))
        .collect()
}

/// Fills in what the PR bodies say about each update, only now that the plan says which
/// PRs are written (never for updates that wait on `min-age` or limits): the new image's
/// facts for the table and what changed inside it. The resolver caches both by digest.
async fn describe(h: &Handler, plan: &mut plan::Plan) {
    for action in &mut plan.actions {
        let updates = match action {
            Action::Create { updates, .. }
            | Action::Update { updates, .. }
            | Action::Describe { updates, .. } => updates,
            Action::Close { .. } | Action::NotifyHandoff { .. } => continue,
        };
        for u in updates.iter_mut() {
            let r = &u.found.reference;
            let info = h.resolver.metadata(r, &u.new_digest).await;
            let request = DetailsRequest {
                old: r.digest.as_ref(),
                new: &u.new_digest,
                tag_digest: u.tag_digest.as_ref(),
                platform_pin: u.platform_pin.as_deref(),
            };
            let mut details = match &info {
                // The table's facts could not be had within the budget: neither can the rest.
                Err(RegistryError::BudgetExhausted { host }) => {
                    Details::Deferred { host: host.clone() }
                }
                _ => h.resolver.details(r, request).await,
            };
            if let Some(osv) = &h.osv {
                osv.annotate(&mut details).await;
            }
            u.info = info.ok();
            u.details = Some(details);
        }
    }
}

/// A PR of digestif's was closed, merged or reopened.
pub async fn pull_request_event(
    h: &Handler,
    repository_id: i64,
    number: i64,
    action: &str,
    merged: bool,
    sender: &str,
) -> Result<(), JobError> {
    let now = h.clock.now();
    let Some(pr) = h.store.pr_by_number(repository_id, number).await? else {
        return Ok(());
    };
    match (action, merged) {
        ("closed", true) => {
            h.store
                .set_pr_state(repository_id, number, PrStatus::Merged, now)
                .await?;
            // The next scan sees the new pins as current.
            h.store
                .enqueue(
                    &super::Work::ScanRepo {
                        repository_id,
                        reason: "merged".into(),
                        fresh: false,
                    }
                    .to_job(),
                    now,
                )
                .await?;
        }
        ("closed", false) => {
            // Already closed in the store: digestif closed it itself.
            if pr.state != PrStatus::Open {
                return Ok(());
            }
            h.store
                .set_pr_state(repository_id, number, PrStatus::Closed, now)
                .await?;
            let Some(repo) = h.repository(repository_id).await? else {
                return Ok(());
            };
            let reason = format!("pull request #{number} closed without merging");
            ignore_digests(h, &pr, &reason, IgnoreSource::ClosedPr, sender).await?;
            let api = h.github.installation(repo.installation_id as u64)?;
            issues::comment(
                &api,
                &repo.full_name,
                number,
                "Understood: digestif will not propose these digests again. It will open a new \
                 pull request when a tag moves to a different digest. Comment `@digestif recreate` \
                 to have these digests proposed again, in a new pull request.",
            )
            .await?;
        }
        ("reopened", _) => {
            h.store
                .set_pr_state(repository_id, number, PrStatus::Open, now)
                .await?;
            unignore_digests(h, &pr).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Ignores, for this repository, the digests `pr` proposes.
pub(super) async fn ignore_digests(
    h: &Handler,
    pr: &PullRequest,
    reason: &str,
    source: IgnoreSource,
    by: &str,
) -> Result<(), JobError> {
    let now = h.clock.now();
    for k in &pr.updates.0 {
        let ignore = NewIgnore {
            image: &k.image,
            tag: k.tag.as_deref(),
            digest: Some(&k.new),
            reason,
            source,
            created_by: Some(by),
        };
        h.store.add_ignore(pr.repository_id, &ignore, now).await?;
    }
    Ok(())
}

/// Takes back the ignores of the digests `pr` proposes (reopened, or `recreate`).
pub(super) async fn unignore_digests(h: &Handler, pr: &PullRequest) -> Result<(), JobError> {
    for k in &pr.updates.0 {
        h.store
            .remove_ignore_digest(pr.repository_id, &k.image, k.tag.as_deref(), &k.new)
            .await?;
    }
    Ok(())
}
