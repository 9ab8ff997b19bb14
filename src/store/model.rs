//! Rows the store gives back and the records it takes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::StoreError;
use crate::plan::{ExistingPr, Ignore, PrState, UpdateKey};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Installation {
    pub id: i64,
    pub account_login: String,
    /// `User` or `Organization`.
    pub account_type: String,
    pub suspended_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Repository {
    pub id: i64,
    pub installation_id: i64,
    pub full_name: String,
    pub default_branch: Option<String>,
    pub archived: bool,
    /// The config file's text as last read; `None` when the repository has none.
    pub config_text: Option<String>,
    /// SHA-256 of `config_text`, hex.
    pub config_hash: Option<String>,
    pub config_error: Option<String>,
    pub schedule: String,
    /// IANA name, e.g. `Europe/Berlin`.
    pub timezone: String,
    pub next_scan_at: Option<DateTime<Utc>>,
    pub last_scan_at: Option<DateTime<Utc>>,
    pub last_scan_status: Option<String>,
    pub last_error: Option<String>,
    pub dashboard_issue: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What GitHub tells about a repository.
#[derive(Debug, Clone, Copy)]
pub struct NewRepository<'a> {
    pub id: i64,
    pub installation_id: i64,
    pub full_name: &'a str,
    /// `None`: keep what is known.
    pub default_branch: Option<&'a str>,
    /// `None`: keep what is known (false for a new repository).
    pub archived: Option<bool>,
}

/// The repository's config as read; see [`super::Store::set_repo_config`].
#[derive(Debug, Clone, Copy)]
pub struct RepoConfigUpdate<'a> {
    pub text: Option<&'a str>,
    pub error: Option<&'a str>,
    /// Validated schedule (`daily`, or a cron expression).
    pub schedule: &'a str,
    /// Validated IANA time zone name.
    pub timezone: &'a str,
    /// The first slot of this schedule after the update's `now` (the caller computes it
    /// with `schedule::next_scan_at`); stored only when the schedule or time zone changed
    /// or no next scan is set, otherwise the repository keeps its slot.
    pub next_scan_at: DateTime<Utc>,
}

/// One image reference a scan saw.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ImageRefRecord {
    pub file: String,
    pub line: i32,
    pub image: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// e.g. `current`, `stale`, `unpinned`, `skipped`, `error`.
    pub status: String,
    /// What the registry says the tag points at now.
    pub current_digest: Option<String>,
    pub message: Option<String>,
}

/// The state of a PR as stored (`open`, `closed`, `merged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrStatus {
    Open,
    Closed,
    Merged,
}

impl PrStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PrStatus::Open => "open",
            PrStatus::Closed => "closed",
            PrStatus::Merged => "merged",
        }
    }

    pub fn to_plan(self) -> PrState {
        match self {
            PrStatus::Open => PrState::Open,
            PrStatus::Closed => PrState::Closed,
            PrStatus::Merged => PrState::Merged,
        }
    }
}

impl From<PrState> for PrStatus {
    fn from(s: PrState) -> Self {
        match s {
            PrState::Open => PrStatus::Open,
            PrState::Closed => PrStatus::Closed,
            PrState::Merged => PrStatus::Merged,
        }
    }
}

impl TryFrom<String> for PrStatus {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        match s.as_str() {
            "open" => Ok(PrStatus::Open),
            "closed" => Ok(PrStatus::Closed),
            "merged" => Ok(PrStatus::Merged),
            _ => Err(StoreError::Unknown {
                what: "pull request state",
                value: s,
            }),
        }
    }
}

/// A pull request digestif owns.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PullRequest {
    pub id: i64,
    pub repository_id: i64,
    pub number: i64,
    pub branch: String,
    #[sqlx(try_from = "String")]
    pub state: PrStatus,
    pub head_sha: Option<String>,
    pub base_sha: Option<String>,
    /// The updates the PR makes, as planned.
    pub updates: Json<Vec<UpdateKey>>,
    /// Blob sha of each file the PR changes, on the base it was built on.
    pub base_blobs: Json<BTreeMap<String, String>>,
    pub human_edited: bool,
    pub handoff_notified: bool,
    /// The description says "details will follow" (a pull budget was spent).
    pub details_pending: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl PullRequest {
    /// What the planner needs to know about this PR.
    pub fn to_existing(&self) -> ExistingPr {
        ExistingPr {
            number: u64::try_from(self.number).unwrap_or_default(),
            branch: self.branch.clone(),
            state: self.state.to_plan(),
            human_edited: self.human_edited,
            handoff_notified: self.handoff_notified,
            updates: self.updates.0.clone(),
            base_blobs: self.base_blobs.0.clone(),
            details_pending: self.details_pending,
        }
    }
}

/// What the writer records after creating or updating a PR.
#[derive(Debug, Clone, Copy)]
pub struct PrUpsert<'a> {
    pub repository_id: i64,
    pub number: i64,
    pub branch: &'a str,
    pub state: PrStatus,
    pub head_sha: Option<&'a str>,
    pub base_sha: Option<&'a str>,
    pub updates: &'a [UpdateKey],
    pub base_blobs: &'a BTreeMap<String, String>,
    pub details_pending: bool,
}

/// An open PR with its repository's name (status page).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpenPr {
    pub full_name: String,
    #[sqlx(flatten)]
    pub pr: PullRequest,
}

/// Who told digestif to leave an image alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreSource {
    Config,
    /// A digest PR was closed without merging.
    ClosedPr,
    /// An `@digestif ignore` comment.
    Command,
}

impl IgnoreSource {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreSource::Config => "config",
            IgnoreSource::ClosedPr => "closed-pr",
            IgnoreSource::Command => "command",
        }
    }
}

impl TryFrom<String> for IgnoreSource {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        match s.as_str() {
            "config" => Ok(IgnoreSource::Config),
            "closed-pr" => Ok(IgnoreSource::ClosedPr),
            "command" => Ok(IgnoreSource::Command),
            _ => Err(StoreError::Unknown {
                what: "ignore source",
                value: s,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct NewIgnore<'a> {
    pub image: &'a str,
    /// `None`: every tag.
    pub tag: Option<&'a str>,
    /// `None`: every digest.
    pub digest: Option<&'a str>,
    pub reason: &'a str,
    pub source: IgnoreSource,
    /// GitHub login of the person, when a person said it.
    pub created_by: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IgnoreRecord {
    pub id: i64,
    pub repository_id: i64,
    pub image: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub reason: String,
    #[sqlx(try_from = "String")]
    pub source: IgnoreSource,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl IgnoreRecord {
    pub fn to_plan(&self) -> Ignore {
        Ignore {
            image: self.image.clone(),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }
}

/// A repository with a problem, for the status page.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RepoError {
    pub repository_id: i64,
    pub full_name: String,
    pub last_scan_at: Option<DateTime<Utc>>,
    pub config_error: Option<String>,
    pub last_error: Option<String>,
}

/// A repository the scheduler claimed, with the scan job it enqueued.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueRepository {
    pub id: i64,
    pub full_name: String,
    pub schedule: String,
    pub timezone: String,
    /// The slot that was due.
    pub next_scan_at: Option<DateTime<Utc>>,
    #[sqlx(default)]
    pub job_id: i64,
}
