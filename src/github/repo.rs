//! Reading a repository through the Git Data API: the branch head, the whole tree (in one
//! call unless GitHub truncates it), and blobs by sha (so unchanged files are never downloaded twice).
//! Also who may write to it. (Writing is in [`super::git`].)

use base64::Engine;
use serde::Deserialize;

use super::api::{Api, ApiError, Conditional};

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RepoInfo {
    pub id: i64,
    pub full_name: String,
    pub default_branch: String,
    #[serde(default)]
    pub archived: bool,
}

/// A branch head: the commit and its root tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub commit_sha: String,
    pub tree_sha: String,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub mode: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub sha: String,
    #[serde(default)]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tree {
    pub sha: String,
    pub tree: Vec<TreeEntry>,
    /// GitHub stops a recursive listing at 100,000 entries / 7 MB; [`tree`] then reads
    /// the rest, and a tree it returns is truncated only if that failed too.
    #[serde(default)]
    pub truncated: bool,
}

impl Tree {
    /// Regular files (blobs that are not symlinks or submodules).
    pub fn files(&self) -> impl Iterator<Item = &TreeEntry> {
        self.tree
            .iter()
            .filter(|e| e.kind == "blob" && e.mode != "120000")
    }

    pub fn file(&self, path: &str) -> Option<&TreeEntry> {
        self.files().find(|e| e.path == path)
    }
}

pub async fn repository(api: &Api, full_name: &str) -> Result<RepoInfo, ApiError> {
    api.get(&format!("/repos/{full_name}")).await
}

/// The head of `branch`. With the ETag of an earlier answer, `Ok(None)` means unchanged
/// (GitHub's 304, which does not count against the rate limit).
pub async fn branch_head(
    api: &Api,
    full_name: &str,
    branch: &str,
    etag: Option<&str>,
) -> Result<Option<Head>, ApiError> {
    #[derive(Deserialize)]
    struct Branch {
        commit: BranchCommit,
    }
    #[derive(Deserialize)]
    struct BranchCommit {
        sha: String,
        commit: CommitBody,
    }
    #[derive(Deserialize)]
    struct CommitBody {
        tree: Sha,
    }
    #[derive(Deserialize)]
    struct Sha {
        sha: String,
    }
    let path = format!("/repos/{full_name}/branches/{}", encode_path(branch));
    match api.get_conditional::<Branch>(&path, etag).await? {
        Conditional::NotModified => Ok(None),
        Conditional::Fresh { value, etag } => Ok(Some(Head {
            commit_sha: value.commit.sha,
            tree_sha: value.commit.commit.tree.sha,
            etag,
        })),
    }
}

/// The root tree of commit `sha`.
pub async fn commit_tree(api: &Api, full_name: &str, sha: &str) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct Commit {
        tree: TreeRef,
    }
    #[derive(Deserialize)]
    struct TreeRef {
        sha: String,
    }
    let c: Commit = api
        .get(&format!("/repos/{full_name}/git/commits/{sha}"))
        .await?;
    Ok(c.tree.sha)
}

/// The whole tree below `tree_sha`, every path from its root. One recursive call,
/// usually; GitHub truncates a recursive listing past 100,000 entries or 7 MB, and then the
/// directories are read one by one (each subdirectory recursively first, so only the parts
/// too big for one call are walked further). The result is `truncated` only when even that
/// walk gave up: after [`MAX_TREE_CALLS`] calls.
pub async fn tree(api: &Api, full_name: &str, tree_sha: &str) -> Result<Tree, ApiError> {
    let whole = tree_listing(api, full_name, tree_sha, true).await?;
    if !whole.truncated {
        return Ok(whole);
    }
    tracing::info!(
        repo = full_name,
        "tree truncated by GitHub; reading it directory by directory"
    );
    let mut entries = Vec::new();
    let mut calls = 1;
    // (path prefix, tree sha, whether a recursive listing may still be tried)
    let mut pending = vec![(String::new(), tree_sha.to_string(), false)];
    while let Some((prefix, sha, try_recursive)) = pending.pop() {
        if calls >= MAX_TREE_CALLS {
            return Ok(Tree {
                sha: tree_sha.to_string(),
                tree: entries,
                truncated: true,
            });
        }
        calls += 1;
        if try_recursive {
            let sub = tree_listing(api, full_name, &sha, true).await?;
            if !sub.truncated {
                entries.extend(sub.tree.into_iter().map(|mut e| {
                    e.path = format!("{prefix}{}", e.path);
                    e
                }));
                continue;
            }
            // Too big for one call: list this directory and go down.
            pending.push((prefix, sha, false));
            continue;
        }
        let level = tree_listing(api, full_name, &sha, false).await?;
        for mut e in level.tree {
            e.path = format!("{prefix}{}", e.path);
            if e.kind == "tree" {
                pending.push((format!("{}/", e.path), e.sha.clone(), true));
            }
            entries.push(e);
        }
    }
    Ok(Tree {
        sha: tree_sha.to_string(),
        tree: entries,
        truncated: false,
    })
}

/// Tree calls one read of a truncated tree may make before settling for a partial view.
pub const MAX_TREE_CALLS: usize = 2_000;

async fn tree_listing(
    api: &Api,
    full_name: &str,
    tree_sha: &str,
    recursive: bool,
) -> Result<Tree, ApiError> {
    let query = if recursive { "?recursive=1" } else { "" };
    api.get(&format!("/repos/{full_name}/git/trees/{tree_sha}{query}"))
        .await
}

pub async fn blob(api: &Api, full_name: &str, sha: &str) -> Result<Vec<u8>, ApiError> {
    #[derive(Deserialize)]
    struct Blob {
        content: String,
        encoding: String,
    }
    let path = format!("/repos/{full_name}/git/blobs/{sha}");
    let blob: Blob = api.get(&path).await?;
    if blob.encoding != "base64" {
        return Ok(blob.content.into_bytes());
    }
    // GitHub wraps base64 at 60 columns.
    let clean: String = blob
        .content
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|e| ApiError::Decode {
            path,
            message: format!("blob is not base64: {e}"),
        })
}

/// Whether `user` may write to the repository (`admin`, `maintain` or `write`
/// permission); someone GitHub does not know there may not.
pub async fn can_write(api: &Api, full_name: &str, user: &str) -> Result<bool, ApiError> {
    #[derive(Deserialize)]
    struct Permission {
        permission: String,
    }
    let p: Option<Permission> = api
        .get_opt(&format!(
            "/repos/{full_name}/collaborators/{}/permission",
            encode_path(user)
        ))
        .await?;
    Ok(p.is_some_and(|p| matches!(p.permission.as_str(), "admin" | "write" | "maintain")))
}

/// Percent-encodes a branch or file path for a URL path, keeping `/`.
pub fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_only_what_needs_it() {
        assert_eq!(encode_path("digestif/all"), "digestif/all");
        assert_eq!(encode_path("a b#c"), "a%20b%23c");
    }

    #[test]
    fn symlinks_and_submodules_are_not_files() {
        let tree: Tree = serde_json::from_value(serde_json::json!({
            "sha": "t", "truncated": false,
            "tree": [
                {"path": "Dockerfile", "mode": "100644", "type": "blob", "sha": "a", "size": 3},
                {"path": "link", "mode": "120000", "type": "blob", "sha": "b"},
                {"path": "sub", "mode": "160000", "type": "commit", "sha": "c"},
                {"path": "dir", "mode": "040000", "type": "tree", "sha": "d"}
            ]
        }))
        .expect("tree json");
        let files: Vec<_> = tree.files().map(|e| e.path.as_str()).collect();
        assert_eq!(files, ["Dockerfile"]);
    }
}
