//! Carries out jobs: dispatch by kind, and the handlers that keep the store in line with
//! GitHub (installations, repositories, pull-request events).

use std::sync::Arc;

use super::{Work, repo_scan};
use crate::clock::Clock;
use crate::github::api::{ApiError, GitHubApp};
use crate::github::apps;
use crate::jobs::JobError;
use crate::registry::Resolver;
use crate::store::{Job, NewRepository, Store, StoreError};

/// Everything a job may use.
#[derive(Clone)]
pub struct Handler {
    pub store: Store,
    pub github: Arc<GitHubApp>,
    pub resolver: Arc<Resolver>,
    pub clock: Arc<dyn Clock>,
    /// What the operator allows in repositories' configuration.
    pub limits: crate::repo_config::Limits,
    /// Vulnerability notes for PR bodies: `None` unless `DIGESTIF_OSV_URL` is set.
    pub osv: Option<Arc<crate::osv::Osv>>,
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Transient(format!("database: {e}"))
    }
}

impl From<ApiError> for JobError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::RateLimited { retry_in } => JobError::RetryAt {
                message: e.to_string(),
                at: chrono::Utc::now()
                    + chrono::Duration::from_std(retry_in).unwrap_or(chrono::Duration::minutes(1)),
            },
            // GitHub said no for good: retrying the same request cannot help.
            ApiError::Status {
                status: 400 | 401 | 403 | 404 | 410 | 422,
                ..
            } => JobError::Permanent(e.to_string()),
            ApiError::Settings(_) | ApiError::Decode { .. } => JobError::Permanent(e.to_string()),
            _ => JobError::Transient(e.to_string()),
        }
    }
}

impl Handler {
    /// The job's repository row, its name recorded in the job's span (`None`: not one
    /// digestif knows, e.g. uninstalled since the job was queued).
    pub async fn repository(
        &self,
        repository_id: i64,
    ) -> Result<Option<crate::store::Repository>, JobError> {
        let repo = self.store.repository(repository_id).await?;
        if let Some(r) = &repo {
            super::runtime::record_repo(&r.full_name);
        }
        Ok(repo)
    }

    pub async fn handle(&self, job: Job) -> Result<(), JobError> {
        let work = Work::from_job(job.kind.as_str(), &job.payload).map_err(|e| {
            JobError::Permanent(format!("job {} ({}): {e}", job.id, job.kind.as_str()))
        })?;
        // The worker runs this inside the job's span (id, kind, installation, repo).
        match work {
            Work::SyncInstallation {
                installation_id,
                action,
            } => self.sync_installation(installation_id, &action).await,
            Work::ScanRepo {
                repository_id,
                fresh,
                ..
            } => repo_scan::scan_repository(self, repository_id, fresh).await,
            Work::RepositoryEvent {
                installation_id,
                repository_id,
                full_name,
                action,
                archived,
            } => {
                self.repository_event(
                    installation_id,
                    repository_id,
                    &full_name,
                    &action,
                    archived,
                )
                .await
            }
            Work::CheckConfig {
                installation_id,
                repository_id,
                number,
                head_sha,
            } => {
                repo_scan::check_config(self, installation_id, repository_id, number, &head_sha)
                    .await
            }
            Work::PullRequestEvent {
                repository_id,
                number,
                action,
                merged,
                sender,
                ..
            } => {
                super::pulls::pull_request_event(
                    self,
                    repository_id,
                    number,
                    &action,
                    merged,
                    &sender,
                )
                .await
            }
            Work::IssueEdited {
                repository_id,
                issue_number,
                sender,
                ..
            } => {
                self.dashboard_edited(repository_id, issue_number, &sender)
                    .await
            }
            Work::BotBranchPush {
                repository_id,
                branch,
                sender,
                ..
            } => self.bot_branch_push(repository_id, &branch, &sender).await,
            Work::Comment {
                repository_id,
                issue_number,
                comment_id,
                body,
                sender,
                ..
            } => {
                super::commands::comment(
                    self,
                    repository_id,
                    issue_number,
                    comment_id,
                    &body,
                    &sender,
                )
                .await
            }
        }
    }

    /// Brings an installation and its repository list in line with GitHub.
    pub async fn sync_installation(
        &self,
        installation_id: i64,
        action: &str,
    ) -> Result<(), JobError> {
        let now = self.clock.now();
        match action {
            "deleted" => {
                self.store
                    .mark_installation_deleted(installation_id, now)
                    .await?;
                self.github.forget_installation(installation_id as u64);
                tracing::info!(installation_id, "installation deleted; its data is removed");
                return Ok(());
            }
            "suspend" => {
                self.store
                    .set_installation_suspended(installation_id, true, now)
                    .await?;
                self.github.forget_installation(installation_id as u64);
                return Ok(());
            }
            _ => {}
        }
        let Some(inst) = apps::installation(&self.github.as_app(), installation_id).await? else {
            // Gone on GitHub: the uninstall event may have been lost.
            self.store
                .mark_installation_deleted(installation_id, now)
                .await?;
            return Ok(());
        };
        self.store
            .upsert_installation(
                installation_id,
                &inst.account.login,
                &inst.account.kind,
                now,
            )
            .await?;
        self.store
            .set_installation_suspended(installation_id, inst.suspended_at.is_some(), now)
            .await?;
        if inst.suspended_at.is_some() {
            return Ok(());
        }
        let api = self.github.installation(installation_id as u64)?;
        let repos = apps::installation_repositories(&api).await?;
        let known = self
            .store
            .repositories_of_installation(installation_id)
            .await?;
        for r in &repos {
            let existed = known.iter().any(|k| k.id == r.id);
            let repo = NewRepository {
                id: r.id,
                installation_id,
                full_name: &r.full_name,
                default_branch: r.default_branch.as_deref(),
                archived: Some(r.archived),
            };
            if existed || r.archived {
                self.store.upsert_repository(&repo, now).await?;
                continue;
            }
            // A newly added repository is scanned at once, not at its next slot; the
            // scheduler's first turn is the default schedule's next slot after this scan (the
            // scan moves it when the config asks for another schedule), so it is not scanned
            // twice on its first day.
            let first_slot = crate::schedule::next_scan_at(
                r.id,
                crate::repo_config::DEFAULT_SCHEDULE,
                chrono_tz::UTC.name(),
                now,
            );
            let scan = Work::ScanRepo {
                repository_id: r.id,
                reason: "installed".into(),
                fresh: false,
            }
            .to_job();
            self.store
                .add_repository(&repo, first_slot, &scan, now)
                .await?;
        }
        for k in known {
            if !repos.iter().any(|r| r.id == k.id) {
                self.store.remove_repository(k.id).await?;
                tracing::info!(repository = %k.full_name, "repository no longer in the installation; removed");
            }
        }
        tracing::info!(
            installation_id,
            repositories = repos.len(),
            "installation synced"
        );
        Ok(())
    }

    async fn repository_event(
        &self,
        installation_id: i64,
        repository_id: i64,
        full_name: &str,
        action: &str,
        archived: bool,
    ) -> Result<(), JobError> {
        let now = self.clock.now();
        match action {
            "deleted" | "transferred" => {
                self.store.remove_repository(repository_id).await?;
            }
            "renamed" => {
                self.store
                    .rename_repository(repository_id, full_name, now)
                    .await?;
            }
            "archived" | "unarchived" => {
                self.store
                    .set_repository_archived(repository_id, archived, now)
                    .await?;
            }
            _ => {
                // Anything else may change what we know (default branch, privacy): re-sync.
                self.store
                    .enqueue(
                        &Work::SyncInstallation {
                            installation_id,
                            action: "repository_changed".into(),
                        }
                        .to_job(),
                        now,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The dashboard's rescan box was ticked: scan now (the scan rewrites the body, which
    /// unticks the box).
    async fn dashboard_edited(
        &self,
        repository_id: i64,
        issue_number: i64,
        sender: &str,
    ) -> Result<(), JobError> {
        let Some(repo) = self.repository(repository_id).await? else {
            return Ok(());
        };
        if repo.dashboard_issue != Some(issue_number)
            || sender.eq_ignore_ascii_case(&self.github.bot_login().await?)
        {
            return Ok(());
        }
        self.store
            .enqueue(
                &Work::ScanRepo {
                    repository_id,
                    reason: format!("rescan asked by {sender}"),
                    fresh: true,
                }
                .to_job(),
                self.clock.now(),
            )
            .await?;
        Ok(())
    }

    async fn bot_branch_push(
        &self,
        repository_id: i64,
        branch: &str,
        sender: &str,
    ) -> Result<(), JobError> {
        let bot = self.github.bot_login().await?;
        if sender.eq_ignore_ascii_case(&bot) {
            return Ok(());
        }
        let now = self.clock.now();
        if let Some(pr) = self.store.pr_by_branch(repository_id, branch).await? {
            self.store
                .mark_pr_human_edited(repository_id, pr.number, now)
                .await?;
            tracing::info!(
                repository_id,
                branch,
                sender,
                "a person pushed to digestif's branch; hands off"
            );
        }
        Ok(())
    }
}
