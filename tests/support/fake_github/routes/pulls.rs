//! Pull requests.

use serde_json::Value;

use super::super::state::{Issue, Pull, State, node_id, now};
use super::{Ctx, HandlerResult, Resp};

fn number(ctx: &Ctx) -> u64 {
    ctx.param_u64("pull_number").unwrap_or(0)
}

fn pull_exists(state: &State, ctx: &Ctx, n: u64) -> bool {
    state
        .repo(&ctx.repo)
        .and_then(|r| r.issues.get(&n))
        .is_some_and(|i| i.pull.is_some())
}

pub fn list(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let r = state
        .repo(&ctx.repo)
        .cloned()
        .expect("authorized repository exists");
    let want_state = ctx.query("state").unwrap_or("open");
    // `head` is `owner:branch`; GitHub ignores the filter when the owner part is missing.
    let head = ctx
        .query("head")
        .and_then(|h| h.split_once(':'))
        .map(|(o, b)| (o.to_string(), b.to_string()));
    let base = ctx.query("base");
    let mut numbers: Vec<u64> = r
        .issues
        .values()
        .filter(|i| want_state == "all" || i.state == want_state)
        .filter_map(|i| i.pull.as_ref().map(|p| (i, p)))
        .filter(|(_, p)| {
            head.as_ref()
                .is_none_or(|(o, b)| o.eq_ignore_ascii_case(&r.owner) && *b == p.head_ref)
        })
        .filter(|(_, p)| base.is_none_or(|b| b == p.base_ref))
        .map(|(i, _)| i.number)
        .collect();
    if ctx.query("direction") != Some("asc") {
        numbers.reverse();
    }
    let items = numbers
        .into_iter()
        .map(|n| simple(state.pull_json(&ctx.repo, n)))
        .collect();
    Ok(super::paged(state, ctx, items))
}

/// `pull-request-simple`: the list shape, without the counters of the full object.
fn simple(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in [
            "merged",
            "mergeable",
            "rebaseable",
            "mergeable_state",
            "merged_by",
            "comments",
            "review_comments",
            "maintainer_can_modify",
            "commits",
            "additions",
            "deletions",
            "changed_files",
        ] {
            o.remove(k);
        }
    }
    v
}

pub fn get(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let n = number(ctx);
    if !pull_exists(state, ctx, n) {
        return Err(Resp::not_found());
    }
    Ok(Resp::ok(state.pull_json(&ctx.repo, n)))
}

pub fn create(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let r = state
        .repo(&ctx.repo)
        .cloned()
        .expect("authorized repository exists");
    let head_param = ctx.str("head").unwrap_or_default();
    let (head_owner, head_ref) = head_param.split_once(':').unwrap_or((&r.owner, head_param));
    let base_ref = ctx.str("base").unwrap_or_default();
    if !head_owner.eq_ignore_ascii_case(&r.owner) {
        // Forks are not modelled: a head in another owner's repository does not exist here.
        return Err(Resp::validation_failed(
            "PullRequest",
            "head",
            "invalid",
            None,
        ));
    }
    let Some(head_sha) = r.branch_sha(head_ref).cloned() else {
        return Err(Resp::validation_failed(
            "PullRequest",
            "head",
            "invalid",
            None,
        ));
    };
    let Some(base_sha) = r.branch_sha(base_ref).cloned() else {
        return Err(Resp::validation_failed(
            "PullRequest",
            "base",
            "invalid",
            None,
        ));
    };
    let duplicate = r.issues.values().any(|i| {
        i.state == "open"
            && i.pull
                .as_ref()
                .is_some_and(|p| p.head_ref == head_ref && p.base_ref == base_ref)
    });
    if duplicate {
        let msg = format!("A pull request already exists for {}:{head_ref}.", r.owner);
        return Err(Resp::validation_failed(
            "PullRequest",
            "",
            "custom",
            Some(&msg),
        ));
    }
    if r.store.is_ancestor(&head_sha, &base_sha) {
        let msg = format!("No commits between {base_ref} and {head_ref}");
        return Err(Resp::validation_failed(
            "PullRequest",
            "",
            "custom",
            Some(&msg),
        ));
    }
    let (issue_id, pull_id) = (state.id(), state.id());
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
            id: issue_id,
            node_id: node_id("I", issue_id),
            title: ctx.str("title").unwrap_or_default().to_string(),
            body: ctx.str("body").map(String::from),
            state: "open".into(),
            state_reason: None,
            user,
            labels: Vec::new(),
            assignees: Vec::new(),
            created_at: t,
            updated_at: t,
            closed_at: None,
            closed_by: None,
            pull: Some(Pull {
                id: pull_id,
                node_id: node_id("PR", pull_id),
                head_ref: head_ref.to_string(),
                head_sha,
                base_ref: base_ref.to_string(),
                base_sha,
                draft: ctx
                    .body
                    .get("draft")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                merged_at: None,
                merged_by: None,
                merge_commit_sha: None,
                requested_reviewers: Vec::new(),
                requested_teams: Vec::new(),
                auto_merge: None,
                maintainer_can_modify: ctx
                    .body
                    .get("maintainer_can_modify")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            }),
        },
    );
    Ok(Resp::created(state.pull_json(&ctx.repo, n)))
}

pub fn update(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let n = number(ctx);
    if !pull_exists(state, ctx, n) {
        return Err(Resp::not_found());
    }
    let actor = state.bot_login();
    let repo = state
        .repo_mut(&ctx.repo)
        .expect("authorized repository exists");
    let head_exists = {
        let p = repo.issues[&n].pull.as_ref().expect("is a pull");
        repo.branch_sha(&p.head_ref).is_some()
    };
    if let Some(base) = ctx.str("base")
        && repo.branch_sha(base).is_none()
    {
        return Err(Resp::validation_failed(
            "PullRequest",
            "base",
            "invalid",
            None,
        ));
    }
    let issue = repo.issues.get_mut(&n).expect("checked above");
    if issue.pull.as_ref().is_some_and(|p| p.merged_at.is_some()) && ctx.str("state").is_some() {
        return Err(Resp::validation_failed(
            "PullRequest",
            "state",
            "invalid",
            Some("Cannot change the state of a merged pull request"),
        ));
    }
    if let Some(t) = ctx.str("title") {
        issue.title = t.to_string();
    }
    if let Some(b) = ctx.body.get("body") {
        issue.body = b.as_str().map(String::from);
    }
    match ctx.str("state") {
        Some("closed") if issue.state == "open" => {
            issue.state = "closed".into();
            issue.closed_at = Some(now());
            issue.closed_by = Some(actor);
        }
        Some("open") if issue.state == "closed" => {
            if !head_exists {
                let msg = "state cannot be changed. The head branch has been deleted.";
                return Err(Resp::validation_failed(
                    "PullRequest",
                    "state",
                    "custom",
                    Some(msg),
                ));
            }
            issue.state = "open".into();
            issue.closed_at = None;
            issue.closed_by = None;
        }
        _ => {}
    }
    let p = issue.pull.as_mut().expect("is a pull");
    if let Some(base) = ctx.str("base") {
        p.base_ref = base.to_string();
    }
    if let Some(m) = ctx
        .body
        .get("maintainer_can_modify")
        .and_then(Value::as_bool)
    {
        p.maintainer_can_modify = m;
    }
    issue.updated_at = now();
    Ok(Resp::ok(state.pull_json(&ctx.repo, n)))
}

pub fn request_reviewers(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let n = number(ctx);
    if !pull_exists(state, ctx, n) {
        return Err(Resp::not_found());
    }
    let strings = |k: &str| -> Vec<String> {
        ctx.body
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (users, teams) = (strings("reviewers"), strings("team_reviewers"));
    let repo = state
        .repo_mut(&ctx.repo)
        .expect("authorized repository exists");
    let author = repo.issues[&n].user.clone();
    if users.iter().any(|u| u.eq_ignore_ascii_case(&author)) {
        return Err(Resp::validation_failed(
            "PullRequest",
            "",
            "custom",
            Some("Review cannot be requested from pull request author."),
        ));
    }
    let is_collaborator = |u: &String| {
        u.eq_ignore_ascii_case(&repo.owner) || repo.permissions.get(u).is_some_and(|p| p != "none")
    };
    if !users.iter().all(is_collaborator) {
        let msg = format!(
            "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the {} repository.",
            repo.full_name()
        );
        return Err(Resp::validation_failed(
            "PullRequest",
            "",
            "custom",
            Some(&msg),
        ));
    }
    let p = repo
        .issues
        .get_mut(&n)
        .and_then(|i| i.pull.as_mut())
        .expect("is a pull");
    for u in users {
        if !p.requested_reviewers.contains(&u) {
            p.requested_reviewers.push(u);
        }
    }
    for t in teams {
        if !p.requested_teams.contains(&t) {
            p.requested_teams.push(t);
        }
    }
    Ok(Resp::created(simple(state.pull_json(&ctx.repo, n))))
}
