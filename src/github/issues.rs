//! Issues, comments and check runs: where digestif tells a repository's people what is
//! wrong (an invalid config) and whether a proposed config is valid.

use serde::{Deserialize, Serialize};
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

/// One line-level note on a check run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Annotation {
    pub path: String,
    pub start_line: u64,
    pub end_line: u64,
    pub annotation_level: &'static str,
    pub message: String,
}

/// A check run to report as completed.
#[derive(Debug, Clone)]
pub struct CheckRun<'a> {
    pub name: &'a str,
    pub head_sha: &'a str,
    pub success: bool,
    pub title: &'a str,
    pub summary: &'a str,
    pub annotations: &'a [Annotation],
}

pub async fn completed_check_run(
    api: &Api,
    full_name: &str,
    run: &CheckRun<'_>,
) -> Result<(), ApiError> {
    // GitHub takes at most 50 annotations per request.
    let annotations: Vec<&Annotation> = run.annotations.iter().take(50).collect();
    let _: serde_json::Value = api
        .post(
            &format!("/repos/{full_name}/check-runs"),
            &json!({
                "name": run.name,
                "head_sha": run.head_sha,
                "status": "completed",
                "conclusion": if run.success { "success" } else { "failure" },
                "output": {"title": run.title, "summary": run.summary, "annotations": annotations},
            }),
        )
        .await?;
    Ok(())
}
