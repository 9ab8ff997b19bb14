//! Issues (and the issue side of pull requests): labels, assignees, comments, reactions.

use serde_json::{Value, json};

use super::super::state::{Comment, Issue, Reaction, State, node_id, now, ts};
use super::{Ctx, HandlerResult, Resp};

fn number(ctx: &Ctx) -> u64 {
    ctx.param_u64("issue_number").unwrap_or(0)
}

fn issue_mut<'a>(state: &'a mut State, ctx: &Ctx) -> Result<&'a mut Issue, Resp> {
    let n = number(ctx);
    state
        .repo_mut(&ctx.repo)
        .and_then(|r| r.issues.get_mut(&n))
        .ok_or_else(Resp::not_found)
}

pub fn list(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let r = state
        .repo(&ctx.repo)
        .cloned()
        .expect("authorized repository exists");
    let want = ctx.query("state").unwrap_or("open");
    let labels: Vec<&str> = ctx
        .query("labels")
        .map(|l| l.split(',').collect())
        .unwrap_or_default();
    let creator = ctx.query("creator");
    let mut numbers: Vec<u64> = r
        .issues
        .values()
        .filter(|i| want == "all" || i.state == want)
        .filter(|i| labels.iter().all(|l| i.labels.iter().any(|x| x == l)))
        .filter(|i| creator.is_none_or(|c| c.eq_ignore_ascii_case(&i.user)))
        .map(|i| i.number)
        .collect();
    if ctx.query("direction") != Some("asc") {
        numbers.reverse();
    }
    let items = numbers
        .into_iter()
        .map(|n| state.issue_json(&ctx.repo, n))
        .collect();
    Ok(super::paged(state, ctx, items))
}

pub fn get(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let n = number(ctx);
    let v = state.issue_json(&ctx.repo, n);
    if v.is_null() {
        return Err(Resp::not_found());
    }
    Ok(Resp::ok(v))
}

fn label_names(v: &Value) -> Vec<String> {
    let list = match v {
        Value::Object(o) => o.get("labels").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    match list {
        Value::String(s) => vec![s],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("name").and_then(Value::as_str).map(String::from),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub fn create(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let title = match ctx.body.get("title") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(Resp::validation_failed(
                "Issue",
                "title",
                "missing_field",
                None,
            ));
        }
    };
    let labels =
        label_names(&json!({"labels": ctx.body.get("labels").cloned().unwrap_or(Value::Null)}));
    for l in &labels {
        state.ensure_label(&ctx.repo, l);
    }
    let id = state.id();
    let user = state.bot_login();
    let t = now();
    let repo = state
        .repo_mut(&ctx.repo)
        .expect("authorized repository exists");
    let n = repo.next_number();
    repo.issues.insert(
        n,
        Issue {
            number: n,
            id,
            node_id: node_id("I", id),
            title,
            body: ctx.str("body").map(String::from),
            state: "open".into(),
            state_reason: None,
            user,
            labels,
            assignees: strings(ctx.body.get("assignees")),
            created_at: t,
            updated_at: t,
            closed_at: None,
            closed_by: None,
            pull: None,
        },
    );
    Ok(Resp::created(state.issue_json(&ctx.repo, n)))
}

pub fn update(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let labels = ctx
        .body
        .get("labels")
        .map(|l| label_names(&json!({"labels": l})));
    for l in labels.iter().flatten() {
        state.ensure_label(&ctx.repo, l);
    }
    let actor = state.bot_login();
    let issue = issue_mut(state, ctx)?;
    if let Some(t) = ctx.body.get("title") {
        issue.title = t
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| t.to_string());
    }
    if let Some(b) = ctx.body.get("body") {
        issue.body = b.as_str().map(String::from);
    }
    if let Some(l) = labels {
        issue.labels = l;
    }
    if ctx.body.get("assignees").is_some() {
        issue.assignees = strings(ctx.body.get("assignees"));
    }
    match ctx.str("state") {
        Some("closed") if issue.state == "open" => {
            issue.state = "closed".into();
            issue.closed_at = Some(now());
            issue.closed_by = Some(actor);
            issue.state_reason = Some(ctx.str("state_reason").unwrap_or("completed").to_string());
        }
        Some("open") if issue.state == "closed" => {
            issue.state = "open".into();
            issue.closed_at = None;
            issue.closed_by = None;
            issue.state_reason = Some("reopened".into());
        }
        _ => {}
    }
    issue.updated_at = now();
    Ok(Resp::ok(state.issue_json(&ctx.repo, number(ctx))))
}

fn labels_of(state: &mut State, ctx: &Ctx) -> Resp {
    let r = state
        .repo(&ctx.repo)
        .cloned()
        .expect("authorized repository exists");
    let names = r
        .issues
        .get(&number(ctx))
        .map(|i| i.labels.clone())
        .unwrap_or_default();
    let items = names
        .iter()
        .filter_map(|n| r.labels.get(n))
        .map(|l| state.label_json(&ctx.repo, l))
        .collect();
    Resp::ok(Value::Array(items))
}

pub fn add_labels(state: &mut State, ctx: &Ctx) -> HandlerResult {
    issue_mut(state, ctx)?;
    let names = label_names(&ctx.body);
    for l in &names {
        state.ensure_label(&ctx.repo, l);
    }
    let issue = issue_mut(state, ctx)?;
    for l in names {
        if !issue.labels.contains(&l) {
            issue.labels.push(l);
        }
    }
    Ok(labels_of(state, ctx))
}

pub fn set_labels(state: &mut State, ctx: &Ctx) -> HandlerResult {
    issue_mut(state, ctx)?;
    let names = label_names(&ctx.body);
    for l in &names {
        state.ensure_label(&ctx.repo, l);
    }
    issue_mut(state, ctx)?.labels = names;
    Ok(labels_of(state, ctx))
}

pub fn remove_label(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let name = ctx.param("name").to_string();
    let issue = issue_mut(state, ctx)?;
    let before = issue.labels.len();
    issue.labels.retain(|l| *l != name);
    if issue.labels.len() == before {
        return Err(Resp::error(404, "Label does not exist"));
    }
    Ok(labels_of(state, ctx))
}

pub fn add_assignees(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let repo = state
        .repo(&ctx.repo)
        .cloned()
        .expect("authorized repository exists");
    let issue = issue_mut(state, ctx)?;
    // GitHub silently drops assignees who cannot be assigned (non-collaborators).
    for a in strings(ctx.body.get("assignees")) {
        let assignable = a.eq_ignore_ascii_case(&repo.owner)
            || repo.permissions.get(&a).is_some_and(|p| p != "none");
        if assignable && !issue.assignees.contains(&a) {
            issue.assignees.push(a);
        }
    }
    Ok(Resp::created(state.issue_json(&ctx.repo, number(ctx))))
}

pub fn list_comments(state: &mut State, ctx: &Ctx) -> HandlerResult {
    issue_mut(state, ctx)?;
    let n = number(ctx);
    let ids: Vec<u64> = state
        .repo(&ctx.repo)
        .map(|r| {
            r.comments
                .values()
                .filter(|c| c.issue_number == n)
                .map(|c| c.id)
                .collect()
        })
        .unwrap_or_default();
    let items = ids
        .into_iter()
        .map(|id| state.comment_json(&ctx.repo, id))
        .collect();
    Ok(super::paged(state, ctx, items))
}

pub fn create_comment(state: &mut State, ctx: &Ctx) -> HandlerResult {
    issue_mut(state, ctx)?;
    let user = state.bot_login();
    let id = add_comment(
        state,
        &ctx.repo,
        number(ctx),
        &user,
        ctx.str("body").unwrap_or_default(),
    );
    Ok(Resp::created(state.comment_json(&ctx.repo, id)))
}

/// Adds a comment (also used by the test control `FakeGitHub::comment`).
pub fn add_comment(state: &mut State, repo: &str, issue: u64, user: &str, body: &str) -> u64 {
    let id = state.id();
    let t = now();
    if let Some(r) = state.repo_mut(repo) {
        r.comments.insert(
            id,
            Comment {
                id,
                issue_number: issue,
                body: body.to_string(),
                user: user.to_string(),
                created_at: t,
                updated_at: t,
                reactions: Vec::new(),
            },
        );
        if let Some(i) = r.issues.get_mut(&issue) {
            i.updated_at = t;
        }
    }
    id
}

fn comment_id(state: &State, ctx: &Ctx) -> Result<u64, Resp> {
    let id = ctx.param_u64("comment_id").unwrap_or(0);
    match state.repo(&ctx.repo) {
        Some(r) if r.comments.contains_key(&id) => Ok(id),
        _ => Err(Resp::not_found()),
    }
}

pub fn get_comment(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let id = comment_id(state, ctx)?;
    Ok(Resp::ok(state.comment_json(&ctx.repo, id)))
}

pub fn update_comment(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let id = comment_id(state, ctx)?;
    if let Some(c) = state
        .repo_mut(&ctx.repo)
        .and_then(|r| r.comments.get_mut(&id))
    {
        c.body = ctx.str("body").unwrap_or_default().to_string();
        c.updated_at = now();
    }
    Ok(Resp::ok(state.comment_json(&ctx.repo, id)))
}

pub fn react(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let id = comment_id(state, ctx)?;
    let content = ctx.str("content").unwrap_or_default().to_string();
    let user = state.bot_login();
    let rid = state.id();
    let comment = state
        .repo_mut(&ctx.repo)
        .and_then(|r| r.comments.get_mut(&id))
        .ok_or_else(Resp::not_found)?;
    // The same reaction by the same user is not duplicated; GitHub answers 200 with it.
    let (status, reaction) = match comment
        .reactions
        .iter()
        .find(|r| r.user == user && r.content == content)
    {
        Some(r) => (200, r.clone()),
        None => {
            let r = Reaction {
                id: rid,
                user: user.clone(),
                content,
                created_at: now(),
            };
            comment.reactions.push(r.clone());
            (201, r)
        }
    };
    let user_v = state.user_json(&reaction.user);
    Ok(Resp::new(
        status,
        json!({"id": reaction.id, "node_id": node_id("REA", reaction.id), "user": user_v, "content": reaction.content, "created_at": ts(reaction.created_at)}),
    ))
}
