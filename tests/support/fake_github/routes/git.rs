//! The Git Data API: refs, trees, blobs, commits, with real git object semantics.

use base64::Engine;
use serde_json::{Value, json};

use super::super::git::{self, Commit, FileMap, MODE_TREE, Object, Signature};
use super::super::state::{Repo, State, node_id, now};
use super::{Ctx, HandlerResult, Resp};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn repo<'a>(state: &'a State, ctx: &Ctx) -> &'a Repo {
    // `authorize` already checked that the repository exists.
    state.repo(&ctx.repo).expect("authorized repository exists")
}

fn repo_mut<'a>(state: &'a mut State, ctx: &Ctx) -> &'a mut Repo {
    state
        .repo_mut(&ctx.repo)
        .expect("authorized repository exists")
}

fn unprocessable(message: &str) -> Resp {
    Resp::error(422, message)
}

pub fn ref_json(state: &State, full_name: &str, name: &str, sha: &str) -> Value {
    let base = format!("{}/repos/{full_name}", state.base_url);
    json!({
        "ref": name, "node_id": node_id("REF", u64::from_str_radix(&sha[..8.min(sha.len())], 16).unwrap_or(0)),
        "url": format!("{base}/git/{name}"),
        "object": {"type": "commit", "sha": sha, "url": format!("{base}/git/commits/{sha}")},
    })
}

pub fn get_ref(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let name = format!("refs/{}", ctx.param("ref"));
    let sha = repo(state, ctx)
        .refs
        .get(&name)
        .cloned()
        .ok_or_else(Resp::not_found)?;
    Ok(Resp::ok(ref_json(state, &ctx.repo, &name, &sha)))
}

/// `GET /repos/{owner}/{repo}/git/matching-refs/{ref}`: every ref whose name starts with
/// `refs/{ref}` (an empty list when none does).
pub fn list_matching_refs(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let prefix = format!("refs/{}", ctx.param("ref"));
    let refs: Vec<(String, String)> = repo(state, ctx)
        .refs
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, sha)| (name.clone(), sha.clone()))
        .collect();
    let items: Vec<Value> = refs
        .iter()
        .map(|(name, sha)| ref_json(state, &ctx.repo, name, sha))
        .collect();
    Ok(Resp::ok(Value::Array(items)))
}

/// GitHub refuses ref updates from an App without the `workflows` permission when they
/// change anything under `.github/workflows/`; returns the first such path.
fn workflow_change(repo: &Repo, old: Option<&str>, new: &str) -> Option<String> {
    let files = |commit: Option<&str>| -> FileMap {
        commit
            .and_then(|c| repo.store.commit(c))
            .map(|c| repo.store.files(&c.tree))
            .unwrap_or_default()
    };
    let (before, after) = (files(old), files(Some(new)));
    let is_workflow = |p: &String| p.starts_with(".github/workflows/");
    before
        .keys()
        .chain(after.keys())
        .filter(|p| is_workflow(p))
        .find(|p| before.get(*p) != after.get(*p))
        .cloned()
}

fn check_workflows(state: &State, ctx: &Ctx, old: Option<&str>, new: &str) -> Result<(), Resp> {
    let token_perms = ctx
        .req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .and_then(|(_, t)| state.tokens.get(t.trim()))
        .map(|t| t.permissions.clone())
        .unwrap_or_default();
    if super::has_permission(&token_perms, "workflows", "write") {
        return Ok(());
    }
    match workflow_change(repo(state, ctx), old, new) {
        Some(path) => Err(unprocessable(&format!(
            "refusing to allow a GitHub App to create or update workflow `{path}` without `workflows` permission"
        ))),
        None => Ok(()),
    }
}

pub fn create_ref(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let name = ctx.str("ref").unwrap_or_default().to_string();
    let sha = ctx.str("sha").unwrap_or_default().to_string();
    if !name.starts_with("refs/") || name.matches('/').count() < 2 {
        return Err(unprocessable("Reference name must be fully qualified"));
    }
    let r = repo(state, ctx);
    if r.refs.contains_key(&name) {
        return Err(unprocessable("Reference already exists"));
    }
    let Some(commit) = r.store.commit(&sha) else {
        return Err(unprocessable("Object does not exist"));
    };
    let parent = commit.parents.first().cloned();
    check_workflows(state, ctx, parent.as_deref(), &sha)?;
    let r = repo_mut(state, ctx);
    r.refs.insert(name.clone(), sha.clone());
    r.pushed_at = now();
    Ok(Resp::created(ref_json(state, &ctx.repo, &name, &sha)))
}

pub fn update_ref(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let name = format!("refs/{}", ctx.param("ref"));
    let sha = ctx.str("sha").unwrap_or_default().to_string();
    let force = ctx
        .body
        .get("force")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let r = repo(state, ctx);
    let Some(old) = r.refs.get(&name).cloned() else {
        return Err(unprocessable("Reference does not exist"));
    };
    if r.store.commit(&sha).is_none() {
        return Err(unprocessable("Object does not exist"));
    }
    if !force && !r.store.is_ancestor(&old, &sha) {
        return Err(unprocessable("Update is not a fast forward"));
    }
    check_workflows(state, ctx, Some(&old), &sha)?;
    let r = repo_mut(state, ctx);
    r.refs.insert(name.clone(), sha.clone());
    r.pushed_at = now();
    Ok(Resp::ok(ref_json(state, &ctx.repo, &name, &sha)))
}

pub fn delete_ref(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let name = format!("refs/{}", ctx.param("ref"));
    match repo_mut(state, ctx).refs.remove(&name) {
        Some(_) => Ok(Resp::no_content()),
        None => Err(unprocessable("Reference does not exist")),
    }
}

/// A tree-ish as GitHub accepts it in `/git/trees/{tree_sha}`: a tree, a commit, or a
/// branch name.
fn resolve_tree(r: &Repo, tree_ish: &str) -> Option<String> {
    match r.store.get(tree_ish) {
        Some(Object::Tree(_)) => Some(tree_ish.to_string()),
        Some(Object::Commit(c)) => Some(c.tree.clone()),
        _ => {
            let sha = r
                .branch_sha(tree_ish)
                .or_else(|| r.refs.get(&format!("refs/tags/{tree_ish}")))?;
            r.store.commit(sha).map(|c| c.tree.clone())
        }
    }
}

fn entry_json(state: &State, full_name: &str, r: &Repo, path: &str, e: &git::TreeEntry) -> Value {
    let kind = e.kind();
    let mut v = json!({"path": path, "mode": e.mode, "type": kind, "sha": e.sha});
    let base = format!("{}/repos/{full_name}", state.base_url);
    match kind {
        "blob" => {
            v["size"] = Value::from(r.store.blob(&e.sha).map_or(0, <[u8]>::len));
            v["url"] = Value::from(format!("{base}/git/blobs/{}", e.sha));
        }
        "tree" => v["url"] = Value::from(format!("{base}/git/trees/{}", e.sha)),
        _ => {}
    }
    v
}

fn tree_json(state: &State, full_name: &str, r: &Repo, tree: &str, recursive: bool) -> Value {
    let mut truncated = false;
    let entries: Vec<Value> = if recursive {
        let all = r.store.walk(tree);
        // GitHub cuts a recursive listing past its limit and says so; a plain listing of
        // one directory is whole.
        truncated = all.len() > state.tree_limit;
        all.iter()
            .take(state.tree_limit)
            .map(|(p, e)| entry_json(state, full_name, r, p, e))
            .collect()
    } else {
        let mut es = r.store.tree(tree).unwrap_or_default().to_vec();
        git::sort_entries(&mut es);
        es.iter()
            .map(|e| entry_json(state, full_name, r, &e.name, e))
            .collect()
    };
    json!({
        "sha": tree, "url": format!("{}/repos/{full_name}/git/trees/{tree}", state.base_url),
        "tree": entries, "truncated": truncated,
    })
}

pub fn get_tree(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let r = repo(state, ctx);
    let tree = resolve_tree(r, ctx.param("tree_sha")).ok_or_else(Resp::not_found)?;
    // GitHub treats any value of `recursive` as true (the docs say so explicitly).
    let recursive = ctx.query("recursive").is_some();
    Ok(Resp::ok(tree_json(state, &ctx.repo, r, &tree, recursive)))
}

pub fn create_tree(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let base_tree = ctx.str("base_tree").map(String::from);
    let entries = ctx
        .body
        .get("tree")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let r = repo_mut(state, ctx);
    let mut files: FileMap = match &base_tree {
        Some(b) => {
            if r.store.tree(b).is_none() {
                return Err(unprocessable(&format!("base_tree {b} is not a valid tree")));
            }
            r.store.files(b)
        }
        None => FileMap::new(),
    };
    for e in &entries {
        let path = e
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_matches('/')
            .to_string();
        let mode = e
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or(git::MODE_FILE)
            .to_string();
        if path.is_empty()
            || path
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(unprocessable(&format!("tree.path {path:?} is invalid")));
        }
        let content = e.get("content").and_then(Value::as_str);
        let sha = e.get("sha");
        if content.is_some() && sha.is_some() {
            return Err(unprocessable(
                "Only one of tree.sha and tree.content may be specified",
            ));
        }
        let prefix = format!("{path}/");
        match (content, sha) {
            (Some(text), _) => {
                let blob = r.store.insert_blob(text.as_bytes());
                files.retain(|p, _| !p.starts_with(&prefix));
                files.insert(path, (mode, blob));
            }
            (None, Some(Value::Null)) => {
                // Deleting a path that is not there is an error on GitHub, not a no-op.
                let before = files.len();
                files.retain(|p, _| p != &path && !p.starts_with(&prefix));
                if files.len() == before {
                    return Err(unprocessable("GitRPC::BadObjectState"));
                }
            }
            (None, Some(Value::String(sha))) => {
                files.retain(|p, _| p != &path && !p.starts_with(&prefix));
                if mode == MODE_TREE {
                    if r.store.tree(sha).is_none() {
                        return Err(unprocessable(&format!(
                            "tree.sha {sha} is not a valid tree"
                        )));
                    }
                    for (p, v) in r.store.files(sha) {
                        files.insert(format!("{prefix}{p}"), v);
                    }
                } else if mode == git::MODE_SUBMODULE {
                    files.insert(path, (mode, sha.clone()));
                } else {
                    if r.store.blob(sha).is_none() {
                        return Err(unprocessable(&format!(
                            "tree.sha {sha} is not a valid blob"
                        )));
                    }
                    files.insert(path, (mode, sha.clone()));
                }
            }
            _ => return Err(unprocessable("Must supply either tree.sha or tree.content")),
        }
    }
    let tree = r.store.write_files(&files);
    let r = repo(state, ctx);
    Ok(Resp::created(tree_json(state, &ctx.repo, r, &tree, false)))
}

pub fn get_blob(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let sha = ctx.param("file_sha");
    let data = repo(state, ctx)
        .store
        .blob(sha)
        .ok_or_else(Resp::not_found)?;
    // GitHub wraps base64 content at 60 columns like `base64` does.
    let encoded = B64.encode(data);
    let wrapped: Vec<&str> = encoded
        .as_bytes()
        .chunks(60)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    Ok(Resp::ok(json!({
        "sha": sha, "node_id": node_id("B", data.len() as u64), "size": data.len(),
        "url": format!("{}/repos/{}/git/blobs/{sha}", state.base_url, ctx.repo),
        "content": format!("{}\n", wrapped.join("\n")), "encoding": "base64",
    })))
}

pub fn create_blob(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let content = ctx.str("content").unwrap_or_default();
    let data = match ctx.str("encoding").unwrap_or("utf-8") {
        "base64" => {
            let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
            B64.decode(compact)
                .map_err(|_| unprocessable("content is not valid Base64"))?
        }
        "utf-8" | "utf8" => content.as_bytes().to_vec(),
        other => return Err(unprocessable(&format!("encoding {other} is not supported"))),
    };
    let sha = repo_mut(state, ctx).store.insert_blob(&data);
    Ok(Resp::created(
        json!({"url": format!("{}/repos/{}/git/blobs/{sha}", state.base_url, ctx.repo), "sha": sha}),
    ))
}

pub fn commit_json(state: &State, full_name: &str, sha: &str, c: &Commit) -> Value {
    let base = format!("{}/repos/{full_name}", state.base_url);
    let sig = |s: &Signature| json!({"name": s.name, "email": s.email, "date": s.rfc3339()});
    json!({
        "sha": sha, "node_id": node_id("C", u64::from_str_radix(&sha[..8.min(sha.len())], 16).unwrap_or(0)),
        "url": format!("{base}/git/commits/{sha}"), "html_url": format!("https://github.com/{full_name}/commit/{sha}"),
        "author": sig(&c.author), "committer": sig(&c.committer), "message": c.message,
        "tree": {"sha": c.tree, "url": format!("{base}/git/trees/{}", c.tree)},
        "parents": c.parents.iter().map(|p| json!({
            "sha": p, "url": format!("{base}/git/commits/{p}"), "html_url": format!("https://github.com/{full_name}/commit/{p}"),
        })).collect::<Vec<_>>(),
        "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
    })
}

pub fn get_commit(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let sha = ctx.param("commit_sha");
    let c = repo(state, ctx)
        .store
        .commit(sha)
        .ok_or_else(Resp::not_found)?;
    Ok(Resp::ok(commit_json(state, &ctx.repo, sha, c)))
}

/// A signature from the API's `{name, email, date}`; `date` defaults to now.
fn signature(v: Option<&Value>, default: &Signature) -> Result<Signature, Resp> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(default.clone());
    };
    let time = match v.get("date").and_then(Value::as_str) {
        Some(d) => chrono::DateTime::parse_from_rfc3339(d)
            .map_err(|_| unprocessable(&format!("{d} is not a valid date")))?
            .timestamp(),
        None => now(),
    };
    Ok(Signature {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&default.name)
            .to_string(),
        email: v
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or(&default.email)
            .to_string(),
        time,
        tz: "+0000".into(),
    })
}

pub fn bot_signature(state: &mut State) -> Signature {
    let login = state.bot_login();
    let id = state.user_id(&login);
    Signature {
        name: login.clone(),
        email: format!("{id}+{login}@users.noreply.github.com"),
        time: now(),
        tz: "+0000".into(),
    }
}

pub fn create_commit(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let default = bot_signature(state);
    let author = signature(ctx.body.get("author"), &default)?;
    let committer = signature(ctx.body.get("committer"), &author)?;
    let tree = ctx.str("tree").unwrap_or_default().to_string();
    let parents: Vec<String> = ctx
        .body
        .get("parents")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let r = repo_mut(state, ctx);
    if r.store.tree(&tree).is_none() {
        return Err(unprocessable("Tree SHA does not exist"));
    }
    if parents.iter().any(|p| r.store.commit(p).is_none()) {
        return Err(unprocessable(
            "Parent SHA does not exist or is not a commit object",
        ));
    }
    let commit = Commit {
        tree,
        parents,
        author,
        committer,
        message: ctx.str("message").unwrap_or_default().to_string(),
    };
    let sha = r.store.insert(Object::Commit(Box::new(commit.clone())));
    Ok(Resp::created(commit_json(state, &ctx.repo, &sha, &commit)))
}
