//! The work digestif does in the background, as durable jobs: what each webhook delivery
//! asks for ([`for_event`]) and the handlers that carry it out.
//!
//! A job's payload is a [`Work`] value serialised as JSON; its kind column is
//! [`Work::kind`]. Work that must not run twice at once (a repository scan) carries a
//! uniqueness key, so a burst of pushes queues one scan.

pub mod commands;
pub mod dashboard;
pub mod handler;
pub mod pulls;
pub mod recover;
pub mod repo_scan;
pub mod resolve;
pub mod runtime;
pub mod scheduler;

use serde::{Deserialize, Serialize};

use crate::github::webhook::Event;
use crate::store::{JobKind, NewJob};

pub use handler::Handler;
pub use runtime::{JobError, JobHandler, Worker, WorkerOptions, default_owner};
pub use scheduler::Scheduler;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Work {
    /// Reconcile an installation and its repositories with GitHub (created, unsuspended,
    /// repositories added or removed), or forget it (deleted) / pause it (suspended).
    SyncInstallation {
        installation_id: i64,
        #[serde(default)]
        action: String,
    },
    /// Read a repository's config and files, resolve its references, store the result.
    /// (The scheduler enqueues these too, with the same payload.)
    ScanRepo {
        repository_id: i64,
        #[serde(default)]
        reason: String,
        /// A person asked for this scan (`digestif trigger`, the dashboard's rescan box, a
        /// command): registries are asked afresh instead of answering from the tag cache.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fresh: bool,
    },
    /// `repository` renamed, archived, unarchived, deleted, transferred …
    RepositoryEvent {
        installation_id: i64,
        repository_id: i64,
        full_name: String,
        action: String,
        archived: bool,
    },
    /// A pull request was closed, merged, reopened or edited.
    #[serde(rename = "handle_pr_event")]
    PullRequestEvent {
        installation_id: i64,
        repository_id: i64,
        number: i64,
        branch: String,
        action: String,
        merged: bool,
        sender: String,
    },
    /// Validate the config file a pull request proposes and report it as a check run.
    CheckConfig {
        installation_id: i64,
        repository_id: i64,
        number: i64,
        head_sha: String,
    },
    /// Someone pushed to one of digestif's branches.
    #[serde(rename = "handle_push")]
    BotBranchPush {
        installation_id: i64,
        repository_id: i64,
        branch: String,
        head_sha: String,
        sender: String,
        sender_type: String,
    },
    /// An issue was edited: on the dashboard, a ticked "rescan" box asks for a scan.
    #[serde(rename = "handle_issue_edit")]
    IssueEdited {
        installation_id: i64,
        repository_id: i64,
        issue_number: i64,
        body: String,
        sender: String,
    },
    /// A comment that mentions digestif on one of its pull requests.
    #[serde(rename = "handle_comment")]
    Comment {
        installation_id: i64,
        repository_id: i64,
        issue_number: i64,
        comment_id: i64,
        body: String,
        sender: String,
    },
}

impl Work {
    pub fn kind(&self) -> &'static str {
        match self {
            Work::SyncInstallation { .. } => "sync_installation",
            Work::ScanRepo { .. } => "scan_repo",
            Work::RepositoryEvent { .. } => "repository_event",
            Work::PullRequestEvent { .. } => "handle_pr_event",
            Work::BotBranchPush { .. } => "handle_push",
            Work::CheckConfig { .. } => "check_config",
            Work::IssueEdited { .. } => "handle_issue_edit",
            Work::Comment { .. } => "handle_comment",
        }
    }

    /// The durable job: kind column, payload without the kind, uniqueness key.
    pub fn to_job(&self) -> NewJob {
        let mut payload = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = payload.as_object_mut() {
            obj.remove("type");
        }
        NewJob {
            kind: JobKind(std::borrow::Cow::Borrowed(self.kind())),
            payload,
            unique_key: self.unique_key(),
            run_at: None,
            max_attempts: crate::store::DEFAULT_MAX_ATTEMPTS,
            // A person's scan merged into a queued routine one must keep its freshness.
            supersedes: matches!(self, Work::ScanRepo { fresh: true, .. }),
        }
    }

    /// Reads a job back from its kind and payload.
    pub fn from_job(kind: &str, payload: &serde_json::Value) -> Result<Work, serde_json::Error> {
        let mut value = payload.clone();
        match value.as_object_mut() {
            Some(obj) => {
                obj.insert("type".into(), serde_json::Value::String(kind.to_string()));
            }
            None => value = serde_json::json!({ "type": kind }),
        }
        serde_json::from_value(value)
    }

    /// Jobs with the same key are never queued twice at once.
    pub fn unique_key(&self) -> Option<String> {
        match self {
            Work::SyncInstallation {
                installation_id, ..
            } => Some(format!("sync_installation:{installation_id}")),
            Work::ScanRepo { repository_id, .. } => Some(format!("scan_repo:{repository_id}")),
            Work::CheckConfig {
                repository_id,
                head_sha,
                ..
            } => Some(format!("check_config:{repository_id}:{head_sha}")),
            // Each of these events is a fact to record in order; none may be merged away.
            _ => None,
        }
    }
}

/// The work a delivery asks for. Pure: no I/O, so the webhook handler can record the
/// delivery and its jobs in one transaction and answer at once.
pub fn for_event(event: &Event) -> Vec<Work> {
    let work = match event {
        Event::Ping | Event::Ignored { .. } => None,
        Event::Installation { .. }
        | Event::InstallationRepositories { .. }
        | Event::Repository { .. } => installation_work(event),
        Event::PushRelevant { .. } | Event::PushToBotBranch { .. } => push_work(event),
        Event::PullRequest { .. } | Event::PullRequestHead { .. } => pull_request_work(event),
        Event::IssueComment { .. } | Event::IssueEdited { .. } => conversation_work(event),
    };
    work.into_iter().collect()
}

/// The work for an event about the App's reach: an installation's (created, deleted,
/// suspended, repositories added or removed) or a repository's (renamed, archived,
/// deleted …). `None` for any other event.
fn installation_work(event: &Event) -> Option<Work> {
    match event {
        Event::Installation {
            action,
            installation_id,
            ..
        } => Some(Work::SyncInstallation {
            installation_id: *installation_id,
            action: action.clone(),
        }),
        Event::InstallationRepositories {
            installation_id, ..
        } => Some(Work::SyncInstallation {
            installation_id: *installation_id,
            action: "repositories_changed".into(),
        }),
        Event::Repository {
            action,
            installation_id,
            repository,
        } => Some(Work::RepositoryEvent {
            installation_id: *installation_id,
            repository_id: repository.id,
            full_name: repository.full_name.clone(),
            action: action.clone(),
            archived: repository.archived,
        }),
        _ => None,
    }
}

/// A push that touched files digestif reads is a scan; a push to one of digestif's own
/// branches is a [`Work::BotBranchPush`]. `None` for any other event.
fn push_work(event: &Event) -> Option<Work> {
    match event {
        Event::PushRelevant { repository, .. } => Some(Work::ScanRepo {
            repository_id: repository.id,
            reason: "push".into(),
            fresh: false,
        }),
        Event::PushToBotBranch {
            installation_id,
            repository,
            branch,
            head_sha,
            sender,
        } => Some(Work::BotBranchPush {
            installation_id: *installation_id,
            repository_id: repository.id,
            branch: branch.clone(),
            head_sha: head_sha.clone(),
            sender: sender.login.clone(),
            sender_type: sender.kind.clone(),
        }),
        _ => None,
    }
}

/// A pull request's state changed ([`Work::PullRequestEvent`]), or one not opened by
/// digestif was opened or got new commits (the config file it proposes is checked).
/// `None` for any other event.
fn pull_request_work(event: &Event) -> Option<Work> {
    match event {
        Event::PullRequest {
            action,
            installation_id,
            repository,
            number,
            branch,
            merged,
            sender,
        } => Some(Work::PullRequestEvent {
            installation_id: *installation_id,
            repository_id: repository.id,
            number: *number,
            branch: branch.clone(),
            action: action.clone(),
            merged: *merged,
            sender: sender.login.clone(),
        }),
        Event::PullRequestHead {
            installation_id,
            repository,
            number,
            head_sha,
        } => Some(Work::CheckConfig {
            installation_id: *installation_id,
            repository_id: repository.id,
            number: *number,
            head_sha: head_sha.clone(),
        }),
        _ => None,
    }
}

/// A comment is work only when it is a command to digestif on a pull request; an edited
/// issue only when it ticks a rescan box (whether the issue is the dashboard is the job's
/// question: the store knows the dashboard's number). `None` for any other event.
fn conversation_work(event: &Event) -> Option<Work> {
    match event {
        Event::IssueComment {
            installation_id,
            repository,
            issue_number,
            comment_id,
            body,
            sender,
            is_pull_request,
        } if *is_pull_request && crate::commands::parse(body).is_some() => Some(Work::Comment {
            installation_id: *installation_id,
            repository_id: repository.id,
            issue_number: *issue_number,
            comment_id: *comment_id,
            body: body.clone(),
            sender: sender.login.clone(),
        }),
        Event::IssueEdited {
            installation_id,
            repository,
            issue_number,
            body,
            sender,
        } if crate::render::rescan_requested(body) => Some(Work::IssueEdited {
            installation_id: *installation_id,
            repository_id: repository.id,
            issue_number: *issue_number,
            body: body.clone(),
            sender: sender.login.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::webhook::{Account, Repository, Sender};

    fn repo() -> Repository {
        Repository {
            id: 7,
            full_name: "acme/widgets".into(),
            default_branch: Some("main".into()),
            archived: false,
        }
    }

    #[test]
    fn installation_events_sync_the_installation_once() {
        let e = Event::Installation {
            action: "created".into(),
            installation_id: 3,
            account: Account {
                login: "acme".into(),
                kind: "Organization".into(),
            },
            repositories: vec![],
        };
        let w = for_event(&e);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind(), "sync_installation");
        assert_eq!(w[0].unique_key().as_deref(), Some("sync_installation:3"));
    }

    #[test]
    fn push_scans_with_a_per_repo_key() {
        let e = Event::PushRelevant {
            installation_id: 3,
            repository: repo(),
            head_sha: "abc".into(),
        };
        let w = for_event(&e);
        assert_eq!(w[0].kind(), "scan_repo");
        assert_eq!(w[0].unique_key().as_deref(), Some("scan_repo:7"));
    }

    #[test]
    fn only_comments_addressed_to_digestif_on_prs_become_jobs() {
        let c = |body: &str, pr: bool| Event::IssueComment {
            installation_id: 3,
            repository: repo(),
            issue_number: 5,
            comment_id: 9,
            body: body.into(),
            sender: Sender {
                login: "alice".into(),
                kind: "User".into(),
            },
            is_pull_request: pr,
        };
        assert_eq!(for_event(&c("@digestif rebase", true)).len(), 1);
        assert_eq!(for_event(&c("thanks!\n@Digestif recreate", true)).len(), 1);
        assert!(for_event(&c("looks good", true)).is_empty());
        assert!(for_event(&c("@digestif rebase", false)).is_empty());
    }

    #[test]
    fn payload_round_trips_as_json() {
        let w = Work::ScanRepo {
            repository_id: 2,
            reason: "schedule".into(),
            fresh: false,
        };
        let job = w.to_job();
        assert_eq!(job.kind.as_str(), "scan_repo");
        assert_eq!(job.unique_key.as_deref(), Some("scan_repo:2"));
        assert!(!job.supersedes);
        // A routine scan's payload is what it always was (older rows read the same).
        assert_eq!(
            job.payload,
            serde_json::json!({"repository_id": 2, "reason": "schedule"})
        );
        let asked = Work::ScanRepo {
            repository_id: 2,
            reason: "trigger".into(),
            fresh: true,
        };
        assert!(asked.to_job().supersedes);
        assert_eq!(
            Work::from_job("scan_repo", &asked.to_job().payload).expect("back"),
            asked
        );
        assert_eq!(
            Work::from_job(job.kind.as_str(), &job.payload).expect("back"),
            w
        );
        // The scheduler's own scan jobs read back the same way.
        let scheduled = NewJob::scan_repo(2, "schedule");
        assert_eq!(
            Work::from_job(scheduled.kind.as_str(), &scheduled.payload).expect("scheduled"),
            w
        );
        assert_eq!(scheduled.unique_key, job.unique_key);
        for w in [
            Work::SyncInstallation {
                installation_id: 1,
                action: "created".into(),
            },
            Work::CheckConfig {
                installation_id: 1,
                repository_id: 2,
                number: 3,
                head_sha: "abc".into(),
            },
            Work::BotBranchPush {
                installation_id: 1,
                repository_id: 2,
                branch: "digestif/all".into(),
                head_sha: "abc".into(),
                sender: "alice".into(),
                sender_type: "User".into(),
            },
        ] {
            let job = w.to_job();
            assert_eq!(
                Work::from_job(job.kind.as_str(), &job.payload).expect("round trip"),
                w
            );
        }
    }
}
