//! The GraphQL calls digestif makes (what REST cannot do).

use serde_json::json;

use super::api::{Api, ApiError};

/// Whether GitHub agreed to merge a pull request by itself once its checks pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoMerge {
    Enabled,
    /// GitHub said no (auto-merge not allowed in the repository, …): its words.
    Refused(String),
}

/// Enables auto-merge on the pull request with GraphQL node id `pull_node_id`.
pub async fn enable_auto_merge(api: &Api, pull_node_id: &str) -> Result<AutoMerge, ApiError> {
    let q = json!({
        "query": "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { pullRequest { number } } }",
        "variables": {"id": pull_node_id},
    });
    let resp = api.graphql(&q).await?;
    // GraphQL reports most errors in a 200's `errors`.
    let errors = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("errors").cloned());
    if resp.status.is_success() && errors.is_none() {
        return Ok(AutoMerge::Enabled);
    }
    Ok(AutoMerge::Refused(
        errors
            .map(|e| e.to_string())
            .unwrap_or_else(|| resp.status.to_string()),
    ))
}
