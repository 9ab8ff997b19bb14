//! The dashboard issue (`dashboard: true`): one issue per repository, rewritten after each
//! scan, with every reference's status, what waits and why, ignores, and problems.

use super::handler::Handler;
use super::pulls::Summary;
use crate::github::api::Api;
use crate::github::issues;
use crate::jobs::JobError;
use crate::plan::PendingReason;
use crate::render::{self, Dashboard, DashboardRef};
use crate::store::{ImageRefRecord, PrStatus, Repository};

pub async fn update(
    h: &Handler,
    api: &Api,
    repo: &Repository,
    records: &[ImageRefRecord],
    summary: &Summary,
    problems: &[String],
) -> Result<(), JobError> {
    let ignores = h.store.ignores_for_repo(repo.id).await?;
    let open_prs = h
        .store
        .prs_for_repo(repo.id)
        .await?
        .into_iter()
        .filter(|p| p.state == PrStatus::Open)
        .map(|p| (p.number, p.branch))
        .collect();
    let d = Dashboard {
        references: records
            .iter()
            .map(|r| DashboardRef {
                file: r.file.clone(),
                line: i64::from(r.line),
                image: match &r.tag {
                    Some(t) => format!("{}:{t}", r.image),
                    None => r.image.clone(),
                },
                status: r.status.clone(),
                message: r.message.clone(),
            })
            .collect(),
        pending: summary
            .pending
            .iter()
            .map(|p| {
                let why = match &p.reason {
                    PendingReason::MinAge { until } => {
                        format!(
                            "min-age: waits until {}",
                            until.format("%Y-%m-%d %H:%M UTC")
                        )
                    }
                    PendingReason::OpenLimit { limit } => {
                        format!("the limit of {limit} open pull requests is reached")
                    }
                    PendingReason::HourlyLimit { limit } => {
                        format!("the limit of {limit} new pull requests per hour is reached")
                    }
                };
                (p.branch.clone(), p.updates.clone(), why)
            })
            .collect(),
        ignored: ignores
            .iter()
            .map(|i| {
                (
                    i.image.clone(),
                    i.tag.clone(),
                    i.digest.clone(),
                    i.reason.clone(),
                )
            })
            .collect(),
        problems: problems.to_vec(),
        open_prs,
    };
    let body = render::dashboard(&d);
    let full = repo.full_name.as_str();
    let existing = match repo.dashboard_issue {
        Some(n) => issues::issue(api, full, n)
            .await?
            .filter(|i| i.state == "open"),
        None => None,
    };
    let existing = match existing {
        Some(i) => Some(i),
        None => {
            let bot = h.github.bot_login().await?;
            issues::find_open_issue(api, full, render::DASHBOARD_TITLE, &bot).await?
        }
    };
    let number = match existing {
        Some(i) if i.body.as_deref() == Some(body.as_str()) => i.number,
        Some(i) => {
            issues::set_issue_body(api, full, i.number, &body)
                .await?
                .number
        }
        None => {
            issues::create_issue(api, full, render::DASHBOARD_TITLE, &body)
                .await?
                .number
        }
    };
    if repo.dashboard_issue != Some(number) {
        h.store.set_dashboard_issue(repo.id, Some(number)).await?;
    }
    Ok(())
}
