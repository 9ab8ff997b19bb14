//! `POST /graphql`, only as far as the app uses it: the `enablePullRequestAutoMerge`
//! mutation. Anything else gets GraphQL's `errors` array (GraphQL answers 200 even then).

use serde_json::{Value, json};

use super::super::state::{AutoMerge, State};
use super::Resp;

pub fn handle(state: &mut State, installation: u64, body: Value) -> Resp {
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let variables = body.get("variables").cloned().unwrap_or(Value::Null);
    if !query.contains("enablePullRequestAutoMerge") {
        return gql_error(
            "This fake GitHub only implements the enablePullRequestAutoMerge mutation",
        );
    }
    // Each argument is inline in the query text or a `$variable` (any name) bound in
    // `variables`; a variable named like the argument is accepted too.
    let arg = |name: &str| -> Option<String> {
        match inline_arg(query, name) {
            Some(v) => match v.strip_prefix('$') {
                Some(var) => variables.get(var).and_then(Value::as_str).map(String::from),
                None => Some(v),
            },
            None => variables
                .get(name)
                .and_then(Value::as_str)
                .map(String::from),
        }
    };
    let pr_id = arg("pullRequestId");
    let Some(pr_id) = pr_id else {
        return gql_error(
            "Argument 'pullRequestId' on InputObject 'EnablePullRequestAutoMergeInput' is required",
        );
    };
    let method = arg("mergeMethod").unwrap_or_else(|| "MERGE".into());
    if !["MERGE", "SQUASH", "REBASE"].contains(&method.as_str()) {
        return gql_error(&format!(
            "Argument 'mergeMethod' has an invalid value ({method})."
        ));
    }
    let actor = state.bot_login();
    let found = state
        .repos
        .values_mut()
        .filter(|r| r.installation == installation)
        .find_map(|r| {
            let allowed = r.allow_auto_merge;
            r.issues
                .values_mut()
                .find(|i| i.pull.as_ref().is_some_and(|p| p.node_id == pr_id))
                .map(|i| (allowed, i))
        });
    let Some((allowed, issue)) = found else {
        return gql_error(&format!(
            "Could not resolve to a node with the global id of '{pr_id}'"
        ));
    };
    if issue.state != "open" {
        return gql_error("Pull request is not in the correct state to enable auto-merge");
    }
    if !allowed {
        return gql_error("Pull request Auto merge is not allowed for this repository");
    }
    let number = issue.number;
    if let Some(p) = issue.pull.as_mut() {
        p.auto_merge = Some(AutoMerge {
            merge_method: method.clone(),
            enabled_by: actor.clone(),
        });
    }
    Resp::ok(json!({"data": {"enablePullRequestAutoMerge": {
        "clientMutationId": null,
        "pullRequest": {"id": pr_id, "number": number, "autoMergeRequest": {"mergeMethod": method, "enabledBy": {"login": actor}}},
    }}}))
}

fn gql_error(message: &str) -> Resp {
    Resp::ok(json!({"data": null, "errors": [{"type": "UNPROCESSABLE", "message": message}]}))
}

/// `name: "value"` or `name: VALUE` inside the query text.
fn inline_arg(query: &str, name: &str) -> Option<String> {
    // Not `$name: Type` in the operation's variable declarations.
    let key = format!("{name}:");
    let at = query
        .match_indices(&key)
        .map(|(i, _)| i)
        .find(|&i| !query[..i].ends_with('$'))?;
    let rest = &query[at + key.len()..];
    let rest = rest.trim_start();
    let value: String = if let Some(q) = rest.strip_prefix('"') {
        q.chars().take_while(|c| *c != '"').collect()
    } else {
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
            .collect()
    };
    (!value.is_empty()).then_some(value)
}
