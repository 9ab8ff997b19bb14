//! `GET /`: the operator's status page — installations, repositories with their last and
//! next scan, open pull requests, recent errors and dead jobs. Server-rendered HTML, no
//! scripts. Everything shown that came from outside (repository names, error messages) is
//! escaped by maud.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::WebState;
use super::admin::{self, Access};
use crate::store::{Installation, Job, JobCounts, JobState, OpenPr, RepoError, RepoOverview};

/// Rows shown per section; the rest is counted, not listed (`digestif repos` lists all).
const MAX_REPOS: i64 = 500;
const MAX_ROWS: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

pub async fn page(
    State(state): State<WebState>,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let token = query.ok().and_then(|Query(q)| q.token);
    let now = state.clock.now().timestamp();
    let lifetime = state.ops.session_lifetime;
    let response = match admin::check(
        state.ops.admin_token.as_deref(),
        &headers,
        token.as_deref(),
        now,
        lifetime,
    ) {
        Access::Off => (StatusCode::NOT_FOUND, off()).into_response(),
        Access::Denied => (StatusCode::UNAUTHORIZED, login(token.is_some())).into_response(),
        Access::Login => match &state.ops.admin_token {
            Some(t) => admin::login_redirect(t, "/", state.ops.secure_cookies, now, lifetime),
            None => (StatusCode::NOT_FOUND, off()).into_response(),
        },
        Access::Granted => match gather(&state).await {
            Ok(data) => render(&state, &data).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "status page: database");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    layout(
                        "digestif: database unavailable",
                        html! { p { "The database did not answer: " code { (e) } } },
                    ),
                )
                    .into_response()
            }
        },
    };
    admin::harden(response)
}

struct Data {
    installations: Vec<Installation>,
    repos: Vec<RepoOverview>,
    repo_total: i64,
    prs: Vec<OpenPr>,
    errors: Vec<RepoError>,
    dead: Vec<Job>,
    counts: JobCounts,
    budgets: Vec<crate::registry::BudgetUsage>,
    now: DateTime<Utc>,
}

async fn gather(state: &WebState) -> Result<Data, crate::store::StoreError> {
    let s = &state.store;
    Ok(Data {
        installations: s.list_installations().await?,
        repos: s.repositories_overview(MAX_REPOS, 0).await?,
        repo_total: s.count_repositories().await?,
        prs: s.open_prs(MAX_ROWS).await?,
        errors: s.recent_errors(MAX_ROWS).await?,
        dead: s.list_jobs(Some(JobState::Dead), MAX_ROWS).await?,
        counts: s.job_counts().await?,
        budgets: state
            .ops
            .resolver
            .as_ref()
            .map(|r| r.budget_usage())
            .unwrap_or_default(),
        now: state.clock.now(),
    })
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1f2328}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa}code,pre{font:12px ui-monospace,monospace}pre{white-space:pre-wrap;margin:0}
.status{font-weight:600}.ok{color:#1a7f37}.error,.config-error,.dead{color:#cf222e}.pending,.archived,.suspended{color:#6e7781}
.summary span{margin-right:1.5rem}.muted{color:#6e7781}time{white-space:nowrap}
";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

fn off() -> Markup {
    layout(
        "digestif: status page off",
        html! {
            h1 { "digestif" }
            p { "The status page is off." }
            p {
                "To turn it on, set " code { "DIGESTIF_ADMIN_TOKEN" }
                " (or " code { "--admin-token" } ") to a long random secret, restart "
                code { "digestif serve" } ", and open this page as "
                code { "/?token=…" } " once, or send "
                code { "Authorization: Bearer …" } "."
            }
        },
    )
}

fn login(tried: bool) -> Markup {
    layout(
        "digestif: sign in",
        html! {
            h1 { "digestif" }
            @if tried { p.error { "That token is not right." } }
            p { "This page is for the operator. Enter the admin token (" code { "DIGESTIF_ADMIN_TOKEN" } ")." }
            form method="get" action="/" {
                input type="password" name="token" autocomplete="current-password" aria-label="Admin token";
                " "
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn when(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match t {
        None => html! { span.muted { "—" } },
        Some(t) => html! {
            time datetime=(t.to_rfc3339()) title=(t.to_rfc3339()) {
                (t.format("%Y-%m-%d %H:%M UTC")) " " span.muted { "(" (relative(t, now)) ")" }
            }
        },
    }
}

/// `90s`, `5m`, `6h`.
fn human_secs(a: u64) -> String {
    if a < 120 {
        format!("{a}s")
    } else if a < 7200 {
        format!("{}m", a / 60)
    } else {
        format!("{}h", a / 3600)
    }
}

/// `5m ago`, `in 3h`.
fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let a = secs.unsigned_abs();
    let amount = if a < 60 {
        format!("{a}s")
    } else if a < 3600 {
        format!("{}m", a / 60)
    } else if a < 86_400 {
        format!("{}h", a / 3600)
    } else {
        format!("{}d", a / 86_400)
    };
    if secs >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn repo_link(web: &str, full_name: &str) -> Markup {
    html! { a href=(format!("{web}/{full_name}")) { (full_name) } }
}

/// The whole page: a summary line, then one section per kind of thing the operator watches.
fn render(state: &WebState, d: &Data) -> Markup {
    let web = state.ops.github_web_url.trim_end_matches('/');
    layout(
        "digestif status",
        html! {
            (summary(state, d))
            (installations(web, d))
            (repositories(web, d))
            (pull_requests(web, d))
            (errors(web, d))
            (pull_budgets(d))
            (dead_jobs(d))
        },
    )
}

/// The title and one line of facts: version, App id, queue, GitHub rate limit, time.
fn summary(state: &WebState, d: &Data) -> Markup {
    let now = d.now;
    html! {
        h1 { "digestif status" }
        p.summary {
            span { "version " (env!("CARGO_PKG_VERSION")) }
            @if let Some(id) = state.ops.app_id { span { "App id " (id) } }
            span { "queue: " (d.counts.queued) " queued, " (d.counts.running) " running, "
                   (d.counts.dead) " dead" }
            @if let Some(g) = &state.ops.rate_limit {
                @if let Some(r) = g.remaining() { span { "GitHub rate limit left: " (r) } }
            }
            span.muted { "as of " (now.format("%Y-%m-%d %H:%M:%S UTC")) }
        }
    }
}

/// Every installation of the App and its state.
fn installations(web: &str, d: &Data) -> Markup {
    let now = d.now;
    html! {
        h2 #installations { "Installations (" (d.installations.len()) ")" }
        @if d.installations.is_empty() {
            p.muted { "No installations yet: install the App on an account." }
        } @else {
            table {
                thead { tr { th { "Account" } th { "Type" } th { "Id" } th { "State" } th { "Since" } } }
                tbody {
                    @for i in &d.installations {
                        tr {
                            td { a href=(format!("{web}/{}", i.account_login)) { (i.account_login) } }
                            td { (i.account_type) }
                            td { (i.id) }
                            td.status {
                                @if i.deleted_at.is_some() { span.archived { "uninstalled" } }
                                @else if i.suspended_at.is_some() { span.suspended { "suspended" } }
                                @else { span.ok { "active" } }
                            }
                            td { (when(Some(i.created_at), now)) }
                        }
                    }
                }
            }
        }
    }
}

/// The repositories (up to [`MAX_REPOS`]) with their scans, schedule and problem.
fn repositories(web: &str, d: &Data) -> Markup {
    let now = d.now;
    html! {
        h2 #repositories { "Repositories (" (d.repo_total) ")" }
        @if d.repos.is_empty() {
            p.muted { "No repositories yet." }
        } @else {
            table {
                thead { tr { th { "Repository" } th { "Installation" } th { "Status" } th { "Last scan" } th { "Next scan" } th { "Schedule" } th { "Problem" } } }
                tbody {
                    @for r in &d.repos {
                        @let status = r.status();
                        tr {
                            td { (repo_link(web, &r.repo.full_name)) }
                            td { (r.account_login.as_deref().unwrap_or("?")) }
                            td.status { span class=(status) { (status) } }
                            td { (when(r.repo.last_scan_at, now)) }
                            td { (when(r.repo.next_scan_at, now)) }
                            td { code { (r.repo.schedule) } " " span.muted { (r.repo.timezone) } }
                            td {
                                @if let Some(e) = &r.repo.config_error { pre.error { (e) } }
                                @if let Some(e) = &r.repo.last_error { pre { (e) } }
                            }
                        }
                    }
                }
            }
            @if d.repo_total > d.repos.len() as i64 {
                p.muted { "Showing the first " (d.repos.len()) "; " code { "digestif repos" } " lists all." }
            }
        }
    }
}

/// digestif's open pull requests.
fn pull_requests(web: &str, d: &Data) -> Markup {
    let now = d.now;
    html! {
        h2 #pull-requests { "Open pull requests (" (d.prs.len()) ")" }
        @if d.prs.is_empty() {
            p.muted { "None open." }
        } @else {
            table {
                thead { tr { th { "Pull request" } th { "Repository" } th { "Branch" } th { "Updated" } } }
                tbody {
                    @for p in &d.prs {
                        tr {
                            td { a href=(format!("{web}/{}/pull/{}", p.full_name, p.pr.number)) { "#" (p.pr.number) } }
                            td { (repo_link(web, &p.full_name)) }
                            td { code { (p.pr.branch) } }
                            td { (when(Some(p.pr.updated_at), now)) }
                        }
                    }
                }
            }
        }
    }
}

/// Repositories whose last scan or config failed.
fn errors(web: &str, d: &Data) -> Markup {
    let now = d.now;
    html! {
        h2 #errors { "Recent errors (" (d.errors.len()) ")" }
        @if d.errors.is_empty() {
            p.muted { "No repository has a problem." }
        } @else {
            table {
                thead { tr { th { "Repository" } th { "When" } th { "Error" } } }
                tbody {
                    @for e in &d.errors {
                        tr {
                            td { (repo_link(web, &e.full_name)) }
                            td { (when(e.last_scan_at, now)) }
                            td {
                                @if let Some(c) = &e.config_error { pre.error { "config: " (c) } }
                                @if let Some(m) = &e.last_error { pre { (m) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Each registry's pull budget and how much of it is used.
fn pull_budgets(d: &Data) -> Markup {
    html! {
        h2 #pull-budgets { "Registry pull budgets" }
        @if d.budgets.is_empty() {
            p.muted { "No pull budgets (" code { "DIGESTIF_REGISTRY_PULL_BUDGET" } ")." }
        } @else {
            table {
                thead { tr { th { "Registry" } th { "Pulls used" } th { "Budget" } th { "Window" } th { "Next pull frees in" } } }
                tbody {
                    @for b in &d.budgets {
                        tr {
                            td { code { (b.registry) } }
                            td { (b.used) }
                            td { (b.budget.limit) }
                            td { (human_secs(b.budget.window.as_secs())) }
                            td {
                                @match b.frees_in {
                                    Some(f) if b.used >= b.budget.limit => { (human_secs(f.as_secs())) }
                                    _ => { span.muted { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Jobs that used up their attempts, with how to retry one.
fn dead_jobs(d: &Data) -> Markup {
    let now = d.now;
    html! {
        h2 #dead-jobs { "Dead jobs (" (d.counts.dead) ")" }
        @if d.dead.is_empty() {
            p.muted { "No dead jobs." }
        } @else {
            p.muted { "Retry one with " code { "digestif jobs --retry ID" } "." }
            table {
                thead { tr { th { "Id" } th { "Kind" } th { "Attempts" } th { "Ended" } th { "Payload" } th { "Error" } } }
                tbody {
                    @for j in &d.dead {
                        tr {
                            td { (j.id) }
                            td { code { (j.kind) } }
                            td { (j.attempts) "/" (j.max_attempts) }
                            td { (when(j.finished_at.or(Some(j.updated_at)), now)) }
                            td { code { (j.payload.0) } }
                            td { pre.dead { (j.last_error.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        assert_eq!(relative(now - chrono::Duration::minutes(5), now), "5m ago");
        assert_eq!(relative(now + chrono::Duration::hours(3), now), "in 3h");
    }

    #[test]
    fn outside_text_is_escaped() {
        let m = repo_link("https://github.com", "<script>alert(1)</script>");
        let s = m.into_string();
        assert!(!s.contains("<script>"), "{s}");
        assert!(s.contains("&lt;script&gt;"), "{s}");
    }
}
