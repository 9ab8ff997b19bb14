//! Check runs: whether a proposed repository config is valid, on the PR that proposes it.

use serde::Serialize;
use serde_json::json;

use super::api::{Api, ApiError};

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
