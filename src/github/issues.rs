//! Issues and comments: where digestif tells a repository's people what is wrong (an
//! invalid config), what it is doing (the dashboard), and answers their commands.

use serde::Deserialize;
use serde_json::json;

use super::api::{Api, ApiError};

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Issue {
    pub number: i64,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    pub state: String,
}

/// The open issue titled `title` that `creator` (the App's bot login) opened, if any.
pub async fn find_open_issue(
    api: &Api,
    full_name: &str,
    title: &str,
    creator: &str,
) -> Result<Option<Issue>, ApiError> {
    let issues: Vec<Issue> = api
        .get_all(
            &format!(
                "/repos/{full_name}/issues?state=open&creator={}",
                super::repo::encode_path(creator)
            ),
            None,
        )
        .await?;
    Ok(issues.into_iter().find(|i| i.title == title))
}

pub async fn create_issue(
    api: &Api,
    full_name: &str,
    title: &str,
    body: &str,
) -> Result<Issue, ApiError> {
    api.post(
        &format!("/repos/{full_name}/issues"),
        &json!({"title": title, "body": body}),
    )
    .await
}

pub async fn set_issue_body(
    api: &Api,
    full_name: &str,
    number: i64,
    body: &str,
) -> Result<Issue, ApiError> {
    api.patch(
        &format!("/repos/{full_name}/issues/{number}"),
        &json!({"body": body}),
    )
    .await
}

pub async fn close_issue(api: &Api, full_name: &str, number: i64) -> Result<Issue, ApiError> {
    api.patch(
        &format!("/repos/{full_name}/issues/{number}"),
        &json!({"state": "closed", "state_reason": "completed"}),
    )
    .await
}

pub async fn comment(api: &Api, full_name: &str, number: i64, body: &str) -> Result<(), ApiError> {
    let _: serde_json::Value = api
        .post(
            &format!("/repos/{full_name}/issues/{number}/comments"),
            &json!({"body": body}),
        )
        .await?;
    Ok(())
}

/// Issue (or pull request) `number`, or `None` if it does not exist.
pub async fn issue(api: &Api, full_name: &str, number: i64) -> Result<Option<Issue>, ApiError> {
    api.get_opt(&format!("/repos/{full_name}/issues/{number}"))
        .await
}

/// Adds `labels` to issue or pull request `number`.
pub async fn add_labels(
    api: &Api,
    full_name: &str,
    number: u64,
    labels: &[String],
) -> Result<(), ApiError> {
    let _: serde_json::Value = api
        .post(
            &format!("/repos/{full_name}/issues/{number}/labels"),
            &json!({"labels": labels}),
        )
        .await?;
    Ok(())
}

/// Assigns `assignees` to issue or pull request `number`.
pub async fn add_assignees(
    api: &Api,
    full_name: &str,
    number: u64,
    assignees: &[String],
) -> Result<(), ApiError> {
    let _: serde_json::Value = api
        .post(
            &format!("/repos/{full_name}/issues/{number}/assignees"),
            &json!({"assignees": assignees}),
        )
        .await?;
    Ok(())
}

/// Reacts to comment `comment_id` with `content` (`+1`, `eyes`, …).
pub async fn react_to_comment(
    api: &Api,
    full_name: &str,
    comment_id: i64,
    content: &str,
) -> Result<(), ApiError> {
    let _: serde_json::Value = api
        .post(
            &format!("/repos/{full_name}/issues/comments/{comment_id}/reactions"),
            &json!({"content": content}),
        )
        .await?;
    Ok(())
}
