//! Request handling: every request goes through [`dispatch`], which does what GitHub's edge
//! does (fault injection, rate limit headers, OpenAPI validation, authentication, permission
//! checks, conditional requests) and then hands the operation to the handler for its
//! `operationId`.

mod apps;
mod checks;
mod git;
mod graphql;
mod issues;
mod pulls;
mod repos;

pub use issues::add_comment as issues_add_comment;

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::auth::{self, Auth};
use super::openapi::{self, Operation};
use super::state::{Fault, RequestRecord, State, Violation, now};

pub const DOCS: &str = "https://docs.github.com/rest";

/// A request as the fake's router sees it.
pub struct Req {
    pub method: String,
    /// Percent-decoded path.
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A response before it becomes HTTP.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn new(status: u16, body: Value) -> Resp {
        Resp {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }
    pub fn ok(body: Value) -> Resp {
        Resp::new(200, body)
    }
    pub fn created(body: Value) -> Resp {
        Resp::new(201, body)
    }
    pub fn no_content() -> Resp {
        Resp {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }
    /// GitHub's error shape: `{"message", "documentation_url", "status"}`.
    pub fn error(status: u16, message: &str) -> Resp {
        Resp::new(
            status,
            json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}),
        )
    }
    pub fn not_found() -> Resp {
        Resp::error(404, "Not Found")
    }
    /// 422 "Validation Failed" with one `errors` entry, as GitHub reports semantic errors.
    pub fn validation_failed(
        resource: &str,
        field: &str,
        code: &str,
        message: Option<&str>,
    ) -> Resp {
        let mut e = json!({"resource": resource, "field": field, "code": code});
        if let Some(m) = message {
            e["message"] = Value::from(m);
        }
        Resp::new(
            422,
            json!({"message": "Validation Failed", "errors": [e], "documentation_url": DOCS, "status": "422"}),
        )
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Resp {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// What a handler gets besides the state.
pub struct Ctx<'a> {
    pub op: &'a Operation,
    pub req: &'a Req,
    pub body: Value,
    /// `owner/name` of the repository the path names (checked to exist and be visible).
    pub repo: String,
    pub installation: Option<u64>,
}

impl Ctx<'_> {
    pub fn param(&self, name: &str) -> &str {
        self.op
            .params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
    pub fn param_u64(&self, name: &str) -> Option<u64> {
        self.param(name).parse().ok()
    }
    pub fn query(&self, name: &str) -> Option<&str> {
        self.req
            .query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn str(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }
}

pub type HandlerResult = Result<Resp, Resp>;

pub fn dispatch(state: &mut State, req: &Req) -> Resp {
    let op = openapi::spec().find(&req.method, &req.path);
    let mut resp = handle(state, req, op.as_ref());
    let mut not_modified = false;
    if let Some(body) = &resp.body
        && resp.status == 200
        && req.method == "GET"
    {
        // Conditional requests: a strong ETag over the body; a match answers 304, which
        // GitHub does not count against the rate limit.
        let etag = format!("\"{}\"", &git_sha256(body.to_string().as_bytes())[..40]);
        let matches = req
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == etag)
            });
        if matches {
            resp = Resp {
                status: 304,
                body: None,
                headers: Vec::new(),
            };
            not_modified = true;
        }
        resp.headers.push(("etag".into(), etag));
    }
    if !not_modified && resp.status != 401 {
        state.rate_used += 1;
    }
    let remaining = state.rate_limit.saturating_sub(state.rate_used);
    resp.headers
        .push(("x-ratelimit-limit".into(), state.rate_limit.to_string()));
    resp.headers
        .push(("x-ratelimit-remaining".into(), remaining.to_string()));
    resp.headers
        .push(("x-ratelimit-used".into(), state.rate_used.to_string()));
    resp.headers
        .push(("x-ratelimit-reset".into(), state.rate_reset.to_string()));
    resp.headers
        .push(("x-ratelimit-resource".into(), "core".into()));
    resp.headers
        .push(("x-github-api-version-selected".into(), "2022-11-28".into()));
    state.log.push(RequestRecord {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.raw_query.clone(),
        status: resp.status,
        operation: op.map(|o| o.id),
        not_modified,
    });
    resp
}

fn git_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn violation(state: &mut State, req: &Req, message: String) {
    state.violations.push(Violation {
        method: req.method.clone(),
        path: req.path.clone(),
        message,
    });
}

fn handle(state: &mut State, req: &Req, op: Option<&Operation>) -> Resp {
    if let Some(fault) = state.faults.pop_front() {
        return match fault {
            Fault::SecondaryRateLimit { retry_after } => Resp::error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            )
            .header("retry-after", retry_after.to_string()),
            Fault::BadGateway => Resp::error(502, "Server Error"),
        };
    }
    let body = if req.body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(v) => Some(v),
            Err(e) => {
                violation(state, req, format!("body is not JSON: {e}"));
                return Resp::error(400, "Problems parsing JSON");
            }
        }
    };
    let auth = auth::authenticate(state, &req.headers);
    // GraphQL is not part of the REST description; it has its own endpoint and handler.
    if req.path == "/graphql" && req.method == "POST" {
        return match auth {
            Ok(Auth::Installation { installation, .. }) => {
                graphql::handle(state, installation, body.unwrap_or(Value::Null))
            }
            Ok(_) => Resp::error(401, "This endpoint requires you to be authenticated."),
            Err(e) => e,
        };
    }
    let Some(op) = op else {
        violation(
            state,
            req,
            format!(
                "no operation `{} {}` in GitHub's OpenAPI description",
                req.method, req.path
            ),
        );
        return Resp::not_found();
    };
    let spec = openapi::spec();
    let mut errors = spec.check_query(op, &req.query);
    errors.extend(spec.check_body(op, body.as_ref()));
    if !errors.is_empty() {
        let message = format!("{} ({}): {}", op.id, op.template, errors.join("; "));
        violation(state, req, message);
        return Resp::error(422, &format!("Invalid request.\n\n{}", errors.join("\n")));
    }
    let mut ctx = Ctx {
        op,
        req,
        body: body.unwrap_or(Value::Null),
        repo: String::new(),
        installation: None,
    };
    let resp = match authorize(state, &mut ctx, auth) {
        Ok(()) => match body_too_long(&ctx) {
            Some((refused, message)) => {
                violation(
                    state,
                    req,
                    format!("{} ({}): {message}", op.id, op.template),
                );
                refused
            }
            None => route(state, &ctx).unwrap_or_else(|e| e),
        },
        Err(e) => e,
    };
    if let Some(b) = &resp.body
        && (200..300).contains(&resp.status)
    {
        let errors = spec.check_response(op, resp.status, b);
        if !errors.is_empty() {
            let message = format!(
                "fake's response to {} does not match GitHub's schema: {}",
                op.id,
                errors.join("; ")
            );
            violation(state, req, message);
        }
    }
    resp
}

/// GitHub's limit on issue, pull request and comment bodies, in characters. It is not in
/// the OpenAPI description (check-run summaries' 65,535 is, and is checked there).
pub const BODY_LIMIT: usize = 65_536;

/// GitHub refuses a body over [`BODY_LIMIT`] characters with 422 "Validation Failed",
/// `body is too long (maximum is 65536 characters)`; the resource names the object.
fn body_too_long(ctx: &Ctx) -> Option<(Resp, String)> {
    let resource = match ctx.op.id.as_str() {
        "issues/create" | "issues/update" => "Issue",
        "issues/create-comment" | "issues/update-comment" => "IssueComment",
        "pulls/create" | "pulls/update" => "PullRequest",
        _ => return None,
    };
    let chars = ctx.str("body")?.chars().count();
    if chars <= BODY_LIMIT {
        return None;
    }
    let message = format!("body is too long (maximum is {BODY_LIMIT} characters)");
    let resp = Resp::validation_failed(resource, "body", "custom", Some(&message));
    Some((resp, format!("{message}; it has {chars}")))
}

/// Which App permission an operation needs, as GitHub documents per endpoint.
fn required_permission(op: &Operation) -> Option<(&'static str, &'static str)> {
    let write = op.method != "get";
    let level = if write { "write" } else { "read" };
    let id = op.id.as_str();
    let perm = if id.starts_with("git/") || id == "repos/get-content" || id.contains("branch") {
        "contents"
    } else if id.starts_with("pulls/") {
        "pull_requests"
    } else if id.starts_with("issues/") || id.starts_with("reactions/") {
        "issues"
    } else if id.starts_with("checks/") {
        "checks"
    } else if op.template.starts_with("/repos/{owner}/{repo}") {
        "metadata"
    } else {
        return None;
    };
    Some((perm, if perm == "metadata" { "read" } else { level }))
}

pub fn has_permission(perms: &BTreeMap<String, String>, perm: &str, level: &str) -> bool {
    match perms.get(perm).map(String::as_str) {
        Some("write") | Some("admin") => true,
        Some("read") => level == "read",
        _ => perm == "metadata",
    }
}

fn authorize(state: &mut State, ctx: &mut Ctx, auth: Result<Auth, Resp>) -> Result<(), Resp> {
    let auth = auth?;
    // The manifest conversion is the one call made before the App has any credentials.
    if ctx.op.id == "apps/create-from-manifest" {
        return Ok(());
    }
    let needs_jwt = ctx.op.template.starts_with("/app")
        || ctx.op.template == "/repos/{owner}/{repo}/installation";
    if needs_jwt {
        return match auth {
            Auth::App => {
                if ctx.op.template == "/repos/{owner}/{repo}/installation" {
                    let name = format!("{}/{}", ctx.param("owner"), ctx.param("repo"));
                    ctx.repo = state
                        .repo(&name)
                        .map(|r| r.full_name())
                        .ok_or_else(Resp::not_found)?;
                }
                Ok(())
            }
            _ => Err(Resp::error(401, "A JSON web token could not be decoded")),
        };
    }
    let (installation, permissions) = match auth {
        Auth::Installation {
            installation,
            permissions,
        } => (installation, permissions),
        Auth::App => {
            return Err(Resp::error(403, "Resource not accessible by integration"));
        }
        Auth::Anonymous => return Err(Resp::error(401, "Requires authentication")),
    };
    ctx.installation = Some(installation);
    if ctx.op.params.contains_key("owner") && ctx.op.params.contains_key("repo") {
        let name = format!("{}/{}", ctx.param("owner"), ctx.param("repo"));
        // A repository outside the installation is invisible, exactly like a missing one.
        match state.repo(&name) {
            Some(r) if r.installation == installation => ctx.repo = r.full_name(),
            _ => return Err(Resp::not_found()),
        }
    }
    if let Some((perm, level)) = required_permission(ctx.op)
        && !has_permission(&permissions, perm, level)
    {
        return Err(Resp::error(403, "Resource not accessible by integration"));
    }
    Ok(())
}

fn route(state: &mut State, ctx: &Ctx) -> HandlerResult {
    match ctx.op.id.as_str() {
        "apps/get-authenticated" => apps::get_authenticated(state),
        "apps/create-from-manifest" => apps::create_from_manifest(state, ctx),
        "apps/list-installations" => apps::list_installations(state, ctx),
        "apps/get-installation" => apps::get_installation(state, ctx),
        "apps/create-installation-access-token" => apps::create_token(state, ctx),
        "apps/get-repo-installation" => apps::get_repo_installation(state, ctx),
        "apps/list-repos-accessible-to-installation" => apps::list_installation_repos(state, ctx),
        "repos/get" => Ok(Resp::ok(state.repo_json(&ctx.repo))),
        "repos/list-branches" => repos::list_branches(state, ctx),
        "repos/get-branch" => repos::get_branch(state, ctx),
        "repos/get-content" => repos::get_content(state, ctx),
        "repos/get-collaborator-permission-level" => repos::collaborator_permission(state, ctx),
        "git/get-ref" => git::get_ref(state, ctx),
        "git/list-matching-refs" => git::list_matching_refs(state, ctx),
        "git/create-ref" => git::create_ref(state, ctx),
        "git/update-ref" => git::update_ref(state, ctx),
        "git/delete-ref" => git::delete_ref(state, ctx),
        "git/get-tree" => git::get_tree(state, ctx),
        "git/create-tree" => git::create_tree(state, ctx),
        "git/get-blob" => git::get_blob(state, ctx),
        "git/create-blob" => git::create_blob(state, ctx),
        "git/get-commit" => git::get_commit(state, ctx),
        "git/create-commit" => git::create_commit(state, ctx),
        "pulls/list" => pulls::list(state, ctx),
        "pulls/get" => pulls::get(state, ctx),
        "pulls/create" => pulls::create(state, ctx),
        "pulls/update" => pulls::update(state, ctx),
        "pulls/request-reviewers" => pulls::request_reviewers(state, ctx),
        "issues/list-for-repo" => issues::list(state, ctx),
        "issues/get" => issues::get(state, ctx),
        "issues/create" => issues::create(state, ctx),
        "issues/update" => issues::update(state, ctx),
        "issues/add-labels" => issues::add_labels(state, ctx),
        "issues/set-labels" => issues::set_labels(state, ctx),
        "issues/remove-label" => issues::remove_label(state, ctx),
        "issues/add-assignees" => issues::add_assignees(state, ctx),
        "issues/list-comments" => issues::list_comments(state, ctx),
        "issues/create-comment" => issues::create_comment(state, ctx),
        "issues/get-comment" => issues::get_comment(state, ctx),
        "issues/update-comment" => issues::update_comment(state, ctx),
        "reactions/create-for-issue-comment" => issues::react(state, ctx),
        "checks/create" => checks::create(state, ctx),
        "checks/update" => checks::update(state, ctx),
        "checks/get" => checks::get(state, ctx),
        "checks/list-for-ref" => checks::list_for_ref(state, ctx),
        other => {
            state.violations.push(Violation {
                method: ctx.req.method.clone(),
                path: ctx.req.path.clone(),
                message: format!(
                    "operation {other} is valid GitHub API but not implemented by the fake GitHub"
                ),
            });
            Err(Resp::error(
                501,
                &format!("fake GitHub does not implement {other}"),
            ))
        }
    }
}

/// `per_page`/`page` pagination with GitHub's `Link` header (absolute URLs, `rel` next,
/// last, first, prev).
pub fn paginate(state: &State, ctx: &Ctx, items: Vec<Value>) -> (Vec<Value>, Option<String>) {
    let per_page = ctx
        .query("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = ctx
        .query("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let url = |p: usize| {
        let mut q: Vec<String> = ctx
            .req
            .query
            .iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| format!("{k}={}", encode_query(v)))
            .collect();
        q.push(format!("per_page={per_page}"));
        q.push(format!("page={p}"));
        // GitHub's links are absolute, but octocrab only sends credentials to path-only URIs
        // or to api.github.com, so absolute links to the fake's loopback address would make
        // every follow-up page a 401. Path-only links keep octocrab's pagination working.
        let host = if state.absolute_links {
            state.base_url.as_str()
        } else {
            ""
        };
        format!("{host}{}?{}", ctx.req.path, q.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
    }
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", url(1)));
    }
    (slice, (!links.is_empty()).then(|| links.join(", ")))
}

fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A JSON array response with pagination applied.
pub fn paged(state: &State, ctx: &Ctx, items: Vec<Value>) -> Resp {
    let (page, link) = paginate(state, ctx, items);
    let mut r = Resp::ok(Value::Array(page));
    if let Some(l) = link {
        r = r.header("link", l);
    }
    r
}

pub fn now_ts() -> i64 {
    now()
}
