//! Pull requests: opening, rewriting, closing, finding the one on a branch, and asking
//! for reviews.

use serde::Deserialize;
use serde_json::json;

use super::api::{Api, ApiError};
use super::repo::encode_path;

/// A pull request as digestif needs it: its number, and the node id GraphQL calls take.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PullRef {
    pub number: u64,
    pub node_id: String,
}

/// Opens a pull request from `head` (a branch of this repository) into `base`.
pub async fn create(
    api: &Api,
    full_name: &str,
    title: &str,
    head: &str,
    base: &str,
    body: &str,
) -> Result<PullRef, ApiError> {
    api.post(
        &format!("/repos/{full_name}/pulls"),
        &json!({"title": title, "head": head, "base": base, "body": body}),
    )
    .await
}

/// Sets the title and description of pull request `number`.
pub async fn set_text(
    api: &Api,
    full_name: &str,
    number: u64,
    title: &str,
    body: &str,
) -> Result<(), ApiError> {
    let _: serde_json::Value = api
        .patch(
            &pull_path(full_name, number),
            &json!({"title": title, "body": body}),
        )
        .await?;
    Ok(())
}

/// The state of pull request `number` (`open` or `closed`), or `None` if it does not exist.
pub async fn state(api: &Api, full_name: &str, number: u64) -> Result<Option<String>, ApiError> {
    #[derive(Deserialize)]
    struct Pull {
        state: String,
    }
    let pull: Option<Pull> = api.get_opt(&pull_path(full_name, number)).await?;
    Ok(pull.map(|p| p.state))
}

pub async fn close(api: &Api, full_name: &str, number: u64) -> Result<(), ApiError> {
    let _: serde_json::Value = api
        .patch(&pull_path(full_name, number), &json!({"state": "closed"}))
        .await?;
    Ok(())
}

/// The open pull request whose head is `branch` of this repository, if any.
pub async fn open_for_branch(
    api: &Api,
    full_name: &str,
    branch: &str,
) -> Result<Option<PullRef>, ApiError> {
    let owner = full_name.split('/').next().unwrap_or_default();
    let list: Vec<PullRef> = api
        .get(&format!(
            "/repos/{full_name}/pulls?state=open&head={}",
            encode_path(&format!("{owner}:{branch}"))
        ))
        .await?;
    Ok(list.into_iter().next())
}

/// A pull request as a list of them shows it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Listed {
    pub number: u64,
    /// `open` or `closed`.
    pub state: String,
    #[serde(default)]
    pub merged_at: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    pub head: ListedHead,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ListedHead {
    #[serde(rename = "ref")]
    pub branch: String,
    pub sha: String,
}

/// Every pull request, open or closed, whose head is `branch` of this repository, newest
/// first.
pub async fn all_for_branch(
    api: &Api,
    full_name: &str,
    branch: &str,
) -> Result<Vec<Listed>, ApiError> {
    let owner = full_name.split('/').next().unwrap_or_default();
    api.get_all(
        &format!(
            "/repos/{full_name}/pulls?state=all&head={}",
            encode_path(&format!("{owner}:{branch}"))
        ),
        None,
    )
    .await
}

/// Asks `users` and `teams` (team slugs, without the organization) for a review.
pub async fn request_reviewers(
    api: &Api,
    full_name: &str,
    number: u64,
    users: &[&str],
    teams: &[&str],
) -> Result<(), ApiError> {
    let _: serde_json::Value = api
        .post(
            &format!("{}/requested_reviewers", pull_path(full_name, number)),
            &json!({"reviewers": users, "team_reviewers": teams}),
        )
        .await?;
    Ok(())
}

fn pull_path(full_name: &str, number: u64) -> String {
    format!("/repos/{full_name}/pulls/{number}")
}
