//! Writing through the Git Data API: blobs, trees and commits, and moving branch refs.
//! (Reading a repository is in [`super::repo`].)

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::api::{Api, ApiError, ok_or_status};
use super::repo::encode_path;

#[derive(Debug, Deserialize)]
struct ShaRef {
    sha: String,
}

/// One file of a new tree: its path, git mode and blob sha.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub path: String,
    pub mode: String,
    pub blob_sha: String,
}

/// Stores `text` as a blob; returns its sha.
pub async fn create_blob(api: &Api, full_name: &str, text: &str) -> Result<String, ApiError> {
    let blob: ShaRef = api
        .post(
            &format!("/repos/{full_name}/git/blobs"),
            &json!({"content": text, "encoding": "utf-8"}),
        )
        .await?;
    Ok(blob.sha)
}

/// A tree that is `base_tree` with `files` set; returns its sha.
pub async fn create_tree(
    api: &Api,
    full_name: &str,
    base_tree: &str,
    files: &[TreeFile],
) -> Result<String, ApiError> {
    let entries: Vec<serde_json::Value> = files
        .iter()
        .map(|f| json!({"path": f.path, "mode": f.mode, "type": "blob", "sha": f.blob_sha}))
        .collect();
    let tree: ShaRef = api
        .post(
            &format!("/repos/{full_name}/git/trees"),
            &json!({"base_tree": base_tree, "tree": entries}),
        )
        .await?;
    Ok(tree.sha)
}

/// A commit of `tree` on `parent`, with no author or committer (GitHub then attributes it
/// to the App and marks it verified); returns its sha.
pub async fn create_commit(
    api: &Api,
    full_name: &str,
    message: &str,
    tree: &str,
    parent: &str,
) -> Result<String, ApiError> {
    let commit: ShaRef = api
        .post(
            &format!("/repos/{full_name}/git/commits"),
            &json!({"message": message, "tree": tree, "parents": [parent]}),
        )
        .await?;
    Ok(commit.sha)
}

/// Points `branch` at `sha`, creating the branch if needed (force: the branch is digestif's).
pub async fn force_branch(
    api: &Api,
    full_name: &str,
    branch: &str,
    sha: &str,
) -> Result<(), ApiError> {
    let path = branch_ref_path(full_name, branch);
    let updated = api
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"sha": sha, "force": true})),
            None,
        )
        .await?;
    if updated.status.is_success() {
        return Ok(());
    }
    // GitHub answers 422 "Reference does not exist" for a missing branch.
    let missing = updated.status.as_u16() == 422
        && String::from_utf8_lossy(&updated.body).contains("does not exist");
    if !missing {
        return ok_or_status(Method::PATCH, &path, updated).map(|_| ());
    }
    let _: serde_json::Value = api
        .post(
            &format!("/repos/{full_name}/git/refs"),
            &json!({"ref": format!("refs/heads/{branch}"), "sha": sha}),
        )
        .await?;
    Ok(())
}

/// A branch and the commit it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub name: String,
    pub sha: String,
}

/// Every branch whose name starts with `prefix`.
pub async fn branches_starting_with(
    api: &Api,
    full_name: &str,
    prefix: &str,
) -> Result<Vec<Branch>, ApiError> {
    #[derive(Deserialize)]
    struct Ref {
        #[serde(rename = "ref")]
        name: String,
        object: ShaRef,
    }
    let refs: Vec<Ref> = api
        .get(&format!(
            "/repos/{full_name}/git/matching-refs/heads/{}",
            encode_path(prefix)
        ))
        .await?;
    Ok(refs
        .into_iter()
        .filter_map(|r| {
            let name = r.name.strip_prefix("refs/heads/")?;
            name.starts_with(prefix).then(|| Branch {
                name: name.to_string(),
                sha: r.object.sha,
            })
        })
        .collect())
}

/// Deletes `branch`; a branch already gone counts as deleted.
pub async fn delete_branch(api: &Api, full_name: &str, branch: &str) -> Result<(), ApiError> {
    api.delete(&branch_ref_path(full_name, branch)).await
}

fn branch_ref_path(full_name: &str, branch: &str) -> String {
    format!("/repos/{full_name}/git/refs/heads/{}", encode_path(branch))
}
