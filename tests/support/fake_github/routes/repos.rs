//! Branches, contents and collaborator permissions.

use base64::Engine;
use serde_json::{Value, json};

use super::super::git::{MODE_TREE, TreeEntry};
use super::super::state::{Repo, State, node_id};
use super::git::commit_json;
use super::{Ctx, HandlerResult, Resp};

fn repo(state: &State, ctx: &Ctx) -> Repo {
    state
        .repo(&ctx.repo)
        .cloned()
        .expect("authorized repository exists")
}

fn branch_names(r: &Repo) -> Vec<(String, String)> {
    r.refs
        .iter()
        .filter_map(|(name, sha)| {
            name.strip_prefix("refs/heads/")
                .map(|b| (b.to_string(), sha.clone()))
        })
        .collect()
}

pub fn list_branches(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let r = repo(state, ctx);
    let items = branch_names(&r)
        .into_iter()
        .map(|(name, sha)| {
            json!({"name": name, "protected": false,
                   "commit": {"sha": sha, "url": format!("{}/repos/{}/commits/{sha}", state.base_url, ctx.repo)}})
        })
        .collect();
    Ok(super::paged(state, ctx, items))
}

/// The REST `commit` object (`/repos/{o}/{r}/commits/{sha}` shape) for a branch head.
fn rest_commit(state: &mut State, ctx: &Ctx, sha: &str) -> Value {
    let r = repo(state, ctx);
    let Some(c) = r.store.commit(sha) else {
        return Value::Null;
    };
    let git = commit_json(state, &ctx.repo, sha, c);
    let base = format!("{}/repos/{}", state.base_url, ctx.repo);
    json!({
        "url": format!("{base}/commits/{sha}"), "sha": sha, "node_id": git["node_id"],
        "html_url": git["html_url"], "comments_url": format!("{base}/commits/{sha}/comments"),
        "commit": {
            "url": git["url"], "author": git["author"], "committer": git["committer"], "message": git["message"],
            "comment_count": 0, "tree": git["tree"], "verification": git["verification"],
        },
        "author": null, "committer": null,
        "parents": c.parents.iter().map(|p| json!({"sha": p, "url": format!("{base}/commits/{p}"), "html_url": format!("https://github.com/{}/commit/{p}", ctx.repo)})).collect::<Vec<_>>(),
    })
}

pub fn get_branch(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let r = repo(state, ctx);
    let branch = ctx.param("branch");
    let sha = r
        .branch_sha(branch)
        .cloned()
        .ok_or_else(|| Resp::error(404, "Branch not found"))?;
    let commit = rest_commit(state, ctx, &sha);
    let base = format!("{}/repos/{}", state.base_url, ctx.repo);
    Ok(Resp::ok(json!({
        "name": branch, "commit": commit, "protected": false,
        "_links": {"self": format!("{base}/branches/{branch}"), "html": format!("https://github.com/{}/tree/{branch}", ctx.repo)},
        "protection": {"enabled": false, "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []}},
        "protection_url": format!("{base}/branches/{branch}/protection"),
    })))
}

/// Resolves `?ref=` (branch, tag or commit sha; default branch when absent) to a commit.
fn resolve_commit(r: &Repo, reference: Option<&str>) -> Option<String> {
    let reference = reference.unwrap_or(&r.default_branch);
    if r.store.commit(reference).is_some() {
        return Some(reference.to_string());
    }
    let name = reference.strip_prefix("refs/").map(String::from);
    name.map(|n| format!("refs/{n}"))
        .and_then(|n| r.refs.get(&n).cloned())
        .or_else(|| r.branch_sha(reference).cloned())
        .or_else(|| r.refs.get(&format!("refs/tags/{reference}")).cloned())
}

fn content_entry(
    state: &State,
    ctx: &Ctx,
    r: &Repo,
    path: &str,
    e: &TreeEntry,
    reference: &str,
) -> Value {
    let base = format!("{}/repos/{}", state.base_url, ctx.repo);
    let (kind, git_url, size) = match e.mode.as_str() {
        MODE_TREE => ("dir", format!("{base}/git/trees/{}", e.sha), 0),
        "160000" => ("submodule", format!("{base}/git/trees/{}", e.sha), 0),
        "120000" => (
            "symlink",
            format!("{base}/git/blobs/{}", e.sha),
            r.store.blob(&e.sha).map_or(0, <[u8]>::len),
        ),
        _ => (
            "file",
            format!("{base}/git/blobs/{}", e.sha),
            r.store.blob(&e.sha).map_or(0, <[u8]>::len),
        ),
    };
    let url = format!("{base}/contents/{path}?ref={reference}");
    let html = format!(
        "https://github.com/{}/{}/{reference}/{path}",
        ctx.repo,
        if kind == "dir" { "tree" } else { "blob" }
    );
    let download = (kind == "file").then(|| {
        format!(
            "https://raw.githubusercontent.com/{}/{reference}/{path}",
            ctx.repo
        )
    });
    json!({
        "type": kind, "size": size, "name": e.name, "path": path, "sha": e.sha, "url": url,
        "git_url": git_url, "html_url": html, "download_url": download,
        "_links": {"self": url, "git": git_url, "html": html},
    })
}

pub fn get_content(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let r = repo(state, ctx);
    let reference = ctx
        .query("ref")
        .map(String::from)
        .unwrap_or(r.default_branch.clone());
    let commit = resolve_commit(&r, Some(&reference))
        .ok_or_else(|| Resp::error(404, &format!("No commit found for the ref {reference}")))?;
    let tree = r
        .store
        .commit(&commit)
        .map(|c| c.tree.clone())
        .unwrap_or_default();
    let path = ctx.param("path").trim_matches('/').to_string();
    let entry = r.store.lookup(&tree, &path).ok_or_else(Resp::not_found)?;
    if entry.mode == MODE_TREE {
        let mut entries = r.store.tree(&entry.sha).unwrap_or_default().to_vec();
        super::super::git::sort_entries(&mut entries);
        let items = entries
            .iter()
            .map(|e| {
                let p = if path.is_empty() {
                    e.name.clone()
                } else {
                    format!("{path}/{}", e.name)
                };
                content_entry(state, ctx, &r, &p, e, &reference)
            })
            .collect();
        return Ok(Resp::ok(Value::Array(items)));
    }
    let mut v = content_entry(state, ctx, &r, &path, &entry, &reference);
    let data = r.store.blob(&entry.sha).unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let lines: Vec<String> = encoded
        .as_bytes()
        .chunks(60)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    v["content"] = Value::from(format!("{}\n", lines.join("\n")));
    v["encoding"] = Value::from("base64");
    Ok(Resp::ok(v))
}

pub fn collaborator_permission(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let r = repo(state, ctx);
    let login = ctx.param("username").to_string();
    let role = if login.eq_ignore_ascii_case(&r.owner) {
        "admin".to_string()
    } else {
        r.permissions
            .get(&login)
            .cloned()
            .unwrap_or_else(|| "none".into())
    };
    // `permission` is the legacy coarse level, `role_name` the precise role.
    let permission = match role.as_str() {
        "admin" => "admin",
        "maintain" | "write" => "write",
        "triage" | "read" => "read",
        _ => "none",
    };
    let mut user = state.user_json(&login);
    user["permissions"] = json!({
        "admin": permission == "admin", "maintain": role == "maintain" || permission == "admin",
        "push": permission == "write" || permission == "admin", "triage": permission != "none",
        "pull": permission != "none",
    });
    user["role_name"] = Value::from(role.clone());
    let _ = node_id;
    Ok(Resp::ok(
        json!({"permission": permission, "role_name": role, "user": user}),
    ))
}
