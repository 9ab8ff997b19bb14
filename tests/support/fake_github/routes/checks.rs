//! Check runs.

use serde_json::{Value, json};

use super::super::state::{CheckRun, State, now};
use super::{Ctx, HandlerResult, Resp};

fn parse_time(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp())
}

/// Applies the fields GitHub lets create and update set; `completed` needs a conclusion.
fn apply(run: &mut CheckRun, body: &Value) -> Result<(), Resp> {
    if let Some(n) = body.get("name").and_then(Value::as_str) {
        run.name = n.to_string();
    }
    for (field, slot) in [
        ("details_url", &mut run.details_url),
        ("external_id", &mut run.external_id),
    ] {
        if let Some(v) = body.get(field) {
            *slot = v.as_str().map(String::from);
        }
    }
    if let Some(t) = parse_time(body.get("started_at")) {
        run.started_at = t;
    }
    if let Some(o) = body.get("output") {
        run.output = o.clone();
    }
    if let Some(s) = body.get("status").and_then(Value::as_str) {
        run.status = s.to_string();
    }
    if let Some(c) = body.get("conclusion").and_then(Value::as_str) {
        // Setting a conclusion completes the run, as on GitHub.
        run.conclusion = Some(c.to_string());
        run.status = "completed".into();
    }
    if run.status == "completed" {
        if run.conclusion.is_none() {
            return Err(Resp::validation_failed(
                "CheckRun",
                "conclusion",
                "missing_field",
                None,
            ));
        }
        run.completed_at = Some(parse_time(body.get("completed_at")).unwrap_or_else(now));
    }
    Ok(())
}

pub fn create(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let head_sha = ctx.str("head_sha").unwrap_or_default().to_string();
    let r = state.repo(&ctx.repo).expect("authorized repository exists");
    if r.store.commit(&head_sha).is_none() {
        return Err(Resp::validation_failed(
            "CheckRun",
            "head_sha",
            "invalid",
            Some("No commit found for SHA"),
        ));
    }
    let id = state.id();
    let mut run = CheckRun {
        id,
        name: String::new(),
        head_sha,
        status: "queued".into(),
        conclusion: None,
        details_url: None,
        external_id: None,
        started_at: now(),
        completed_at: None,
        output: json!({}),
    };
    apply(&mut run, &ctx.body)?;
    state
        .repo_mut(&ctx.repo)
        .expect("authorized repository exists")
        .check_runs
        .insert(id, run);
    Ok(Resp::created(state.check_run_json(&ctx.repo, id)))
}

pub fn update(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let id = ctx.param_u64("check_run_id").unwrap_or(0);
    let run = state
        .repo_mut(&ctx.repo)
        .and_then(|r| r.check_runs.get_mut(&id))
        .ok_or_else(Resp::not_found)?;
    let mut updated = run.clone();
    apply(&mut updated, &ctx.body)?;
    *run = updated;
    Ok(Resp::ok(state.check_run_json(&ctx.repo, id)))
}

pub fn get(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let id = ctx.param_u64("check_run_id").unwrap_or(0);
    let v = state.check_run_json(&ctx.repo, id);
    if v.is_null() {
        return Err(Resp::not_found());
    }
    Ok(Resp::ok(v))
}

pub fn list_for_ref(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let r = state
        .repo(&ctx.repo)
        .cloned()
        .expect("authorized repository exists");
    let reference = ctx.param("ref");
    let sha = r
        .branch_sha(reference)
        .cloned()
        .unwrap_or_else(|| reference.to_string());
    let name = ctx.query("check_name");
    let ids: Vec<u64> = r
        .check_runs
        .values()
        .filter(|c| c.head_sha == sha && name.is_none_or(|n| n == c.name))
        .map(|c| c.id)
        .collect();
    let total = ids.len();
    let items = ids
        .into_iter()
        .map(|id| state.check_run_json(&ctx.repo, id))
        .collect();
    let (page, link) = super::paginate(state, ctx, items);
    let mut resp = Resp::ok(json!({"total_count": total, "check_runs": page}));
    if let Some(l) = link {
        resp = resp.header("link", l);
    }
    Ok(resp)
}
