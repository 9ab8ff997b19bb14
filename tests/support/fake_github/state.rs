//! Everything the fake GitHub knows, behind one `Mutex`: the App, installations and their
//! tokens, repositories with git objects, issues/pulls, comments, check runs, and the
//! request log and violations the tests inspect.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Value, json};

use super::git::ObjectStore;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn ts(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// GitHub's global node ids are opaque base64; a stable made-up one is as good.
pub fn node_id(prefix: &str, id: u64) -> String {
    use base64::Engine;
    let raw = format!("{prefix}{id}");
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
    )
}

#[derive(Clone, Debug)]
pub struct App {
    pub id: u64,
    pub slug: String,
    pub name: String,
    /// Public half of the App key, to verify App JWTs.
    pub public_pem: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Installation {
    pub id: u64,
    pub account: String,
    pub account_type: String,
    pub permissions: BTreeMap<String, String>,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub installation: u64,
    pub expires_at: i64,
    pub permissions: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Label {
    pub id: u64,
    pub name: String,
    pub color: String,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub struct AutoMerge {
    pub merge_method: String,
    pub enabled_by: String,
}

#[derive(Clone, Debug)]
pub struct Pull {
    pub id: u64,
    pub node_id: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub draft: bool,
    pub merged_at: Option<i64>,
    pub merged_by: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub requested_reviewers: Vec<String>,
    pub requested_teams: Vec<String>,
    pub auto_merge: Option<AutoMerge>,
    pub maintainer_can_modify: bool,
}

/// An issue, or a pull request (GitHub's pulls are issues with extra data and share the
/// number sequence, labels, assignees and comments).
#[derive(Clone, Debug)]
pub struct Issue {
    pub number: u64,
    pub id: u64,
    pub node_id: String,
    pub title: String,
    pub body: Option<String>,
    pub state: String,
    pub state_reason: Option<String>,
    pub user: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub closed_by: Option<String>,
    pub pull: Option<Pull>,
}

#[derive(Clone, Debug)]
pub struct Reaction {
    pub id: u64,
    pub user: String,
    pub content: String,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct Comment {
    pub id: u64,
    pub issue_number: u64,
    pub body: String,
    pub user: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub reactions: Vec<Reaction>,
}

#[derive(Clone, Debug)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub output: Value,
}

#[derive(Clone, Debug)]
pub struct Repo {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub private: bool,
    pub default_branch: String,
    pub installation: u64,
    pub created_at: i64,
    pub pushed_at: i64,
    pub store: ObjectStore,
    /// Full ref name (`refs/heads/main`) → commit sha.
    pub refs: BTreeMap<String, String>,
    pub labels: BTreeMap<String, Label>,
    pub issues: BTreeMap<u64, Issue>,
    pub comments: BTreeMap<u64, Comment>,
    pub check_runs: BTreeMap<u64, CheckRun>,
    /// Collaborator login → `admin` | `write` | `read` | `none`.
    pub permissions: HashMap<String, String>,
    /// The repository setting "Allow auto-merge" (off on GitHub until an admin turns it on).
    pub allow_auto_merge: bool,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    pub fn branch_sha(&self, branch: &str) -> Option<&String> {
        self.refs.get(&format!("refs/heads/{branch}"))
    }

    pub fn next_number(&self) -> u64 {
        self.issues.keys().next_back().copied().unwrap_or(0) + 1
    }
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub operation: Option<String>,
    /// A 304 answer to `If-None-Match`; it did not count against the rate limit.
    pub not_modified: bool,
}

/// Something the fake's client did that GitHub would reject (or a response of the fake
/// that does not match GitHub's schema: a bug in the fake).
#[derive(Clone, Debug)]
pub struct Violation {
    pub method: String,
    pub path: String,
    pub message: String,
}

/// Failure injected into the next requests.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 403 secondary rate limit with `Retry-After` (seconds).
    SecondaryRateLimit { retry_after: u64 },
    /// 502 Bad Gateway (GitHub's answer when a backend times out).
    BadGateway,
}

pub struct State {
    pub base_url: String,
    pub app: App,
    pub installations: BTreeMap<u64, Installation>,
    /// Lower-cased `owner/name` → repository (GitHub's names are case-insensitive).
    pub repos: BTreeMap<String, Repo>,
    pub tokens: HashMap<String, Token>,
    pub users: HashMap<String, u64>,
    pub next_id: u64,
    pub log: Vec<RequestRecord>,
    pub violations: Vec<Violation>,
    pub faults: VecDeque<Fault>,
    pub rate_limit: u64,
    pub rate_used: u64,
    pub rate_reset: i64,
    pub token_lifetime: i64,
    /// `Link` headers with absolute URLs (like GitHub) instead of path-only ones.
    pub absolute_links: bool,
    /// Codes handed out by the "new App from a manifest" page, with the manifest, until
    /// converted (`POST /app-manifests/{code}/conversions`).
    pub manifest_codes: HashMap<String, Value>,
    /// The webhook secret the last manifest conversion handed out.
    pub app_webhook_secret: Option<String>,
    /// GitHub Enterprise Server's shape: REST under `/api/v3`, GraphQL at `/api/graphql`.
    pub ghes: bool,
    /// Requests to keep waiting (see `FakeGitHub::hold_next`).
    pub holds: Vec<Hold>,
    /// Recursive trees with more entries than this come back truncated, as GitHub's do
    /// past its limit (100,000 entries or 7 MB).
    pub tree_limit: usize,
}

/// One request to hold: the first `method path` (API-relative) waits at the door until
/// `release` is cancelled; `reached` is cancelled when it arrives.
#[derive(Clone, Debug)]
pub struct Hold {
    pub method: String,
    pub path: String,
    pub reached: tokio_util::sync::CancellationToken,
    pub release: tokio_util::sync::CancellationToken,
}

impl State {
    pub fn new(app: App) -> State {
        State {
            base_url: String::new(),
            app,
            installations: BTreeMap::new(),
            repos: BTreeMap::new(),
            tokens: HashMap::new(),
            users: HashMap::new(),
            next_id: 1000,
            log: Vec::new(),
            violations: Vec::new(),
            faults: VecDeque::new(),
            rate_limit: 5000,
            rate_used: 0,
            rate_reset: now() + 3600,
            token_lifetime: 3600,
            absolute_links: false,
            manifest_codes: HashMap::new(),
            app_webhook_secret: None,
            ghes: false,
            holds: Vec::new(),
            tree_limit: 100_000,
        }
    }

    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn user_id(&mut self, login: &str) -> u64 {
        if let Some(id) = self.users.get(login) {
            return *id;
        }
        let id = self.id();
        self.users.insert(login.to_string(), id);
        id
    }

    pub fn repo(&self, full_name: &str) -> Option<&Repo> {
        self.repos.get(&full_name.to_ascii_lowercase())
    }

    pub fn repo_mut(&mut self, full_name: &str) -> Option<&mut Repo> {
        self.repos.get_mut(&full_name.to_ascii_lowercase())
    }

    pub fn bot_login(&self) -> String {
        format!("{}[bot]", self.app.slug)
    }

    // ---- JSON shapes, as GitHub renders them -------------------------------------------

    pub fn user_json(&mut self, login: &str) -> Value {
        let id = self.user_id(login);
        let base = &self.base_url;
        let is_bot = login.ends_with("[bot]");
        let is_org = self
            .installations
            .values()
            .any(|i| i.account == login && i.account_type == "Organization");
        let kind = if is_bot {
            "Bot"
        } else if is_org {
            "Organization"
        } else {
            "User"
        };
        json!({
            "login": login, "id": id, "node_id": node_id("U", id),
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
            "gravatar_id": "",
            "url": format!("{base}/users/{login}"),
            "html_url": format!("https://github.com/{login}"),
            "followers_url": format!("{base}/users/{login}/followers"),
            "following_url": format!("{base}/users/{login}/following{{/other_user}}"),
            "gists_url": format!("{base}/users/{login}/gists{{/gist_id}}"),
            "starred_url": format!("{base}/users/{login}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{base}/users/{login}/subscriptions"),
            "organizations_url": format!("{base}/users/{login}/orgs"),
            "repos_url": format!("{base}/users/{login}/repos"),
            "events_url": format!("{base}/users/{login}/events{{/privacy}}"),
            "received_events_url": format!("{base}/users/{login}/received_events"),
            "type": kind, "user_view_type": "public", "site_admin": false,
        })
    }

    pub fn app_json(&mut self) -> Value {
        let owner = self.user_json("digestif-dev");
        let a = &self.app;
        json!({
            "id": a.id, "slug": a.slug, "node_id": node_id("A", a.id), "client_id": format!("Iv1.{:016x}", a.id),
            "owner": owner, "name": a.name, "description": "Pins container images by digest",
            "external_url": "https://example.invalid/digestif", "html_url": format!("https://github.com/apps/{}", a.slug),
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "permissions": {"contents": "write", "pull_requests": "write", "issues": "write", "checks": "write", "metadata": "read"},
            "events": ["push", "pull_request", "issue_comment", "installation"],
        })
    }

    pub fn installation_json(&mut self, id: u64) -> Value {
        let Some(inst) = self.installations.get(&id).cloned() else {
            return Value::Null;
        };
        let account = self.user_json(&inst.account);
        let target_id = account["id"].clone();
        let base = &self.base_url;
        json!({
            "id": inst.id, "account": account, "repository_selection": "selected",
            "access_tokens_url": format!("{base}/app/installations/{id}/access_tokens"),
            "repositories_url": format!("{base}/installation/repositories"),
            "html_url": format!("https://github.com/settings/installations/{id}"),
            "app_id": self.app.id, "app_slug": self.app.slug, "client_id": format!("Iv1.{:016x}", self.app.id),
            "target_id": target_id, "target_type": inst.account_type,
            "permissions": inst.permissions, "events": ["push", "pull_request", "issue_comment"],
            "created_at": ts(inst.created_at), "updated_at": ts(inst.created_at),
            "single_file_name": null, "has_multiple_single_files": false, "single_file_paths": [],
            "suspended_by": null, "suspended_at": null,
        })
    }

    pub fn repo_json(&mut self, full_name: &str) -> Value {
        let Some(r) = self.repo(full_name).cloned() else {
            return Value::Null;
        };
        let owner = self.user_json(&r.owner);
        let open = r.issues.values().filter(|i| i.state == "open").count();
        let fname = r.full_name();
        let u = format!("{}/repos/{fname}", self.base_url);
        let mut v = json!({
            "id": r.id, "node_id": node_id("R", r.id), "name": r.name, "full_name": fname, "owner": owner,
            "private": r.private, "html_url": format!("https://github.com/{fname}"), "description": null,
            "fork": false, "url": u, "homepage": null, "language": null, "mirror_url": null, "license": null,
            "clone_url": format!("https://github.com/{fname}.git"), "git_url": format!("git://github.com/{fname}.git"),
            "ssh_url": format!("git@github.com:{fname}.git"), "svn_url": format!("https://github.com/{fname}"),
        });
        // Split in two: one `json!` this size exceeds the macro recursion limit.
        let more = json!({
            "forks": 0, "forks_count": 0, "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "size": 1,
            "default_branch": r.default_branch, "open_issues": open, "open_issues_count": open,
            "is_template": false, "topics": [], "has_issues": true, "has_projects": true, "has_wiki": true,
            "has_pages": false, "has_downloads": true, "has_discussions": false, "archived": false, "disabled": false,
            "visibility": if r.private { "private" } else { "public" },
            "pushed_at": ts(r.pushed_at), "created_at": ts(r.created_at), "updated_at": ts(r.pushed_at),
            "allow_rebase_merge": true, "allow_squash_merge": true, "allow_merge_commit": true,
            "allow_auto_merge": true, "delete_branch_on_merge": false, "allow_forking": true,
            "web_commit_signoff_required": false, "network_count": 0, "subscribers_count": 0,
            "permissions": {"admin": false, "maintain": false, "push": true, "triage": true, "pull": true},
        });
        if let (Some(a), Value::Object(b)) = (v.as_object_mut(), more) {
            a.extend(b);
        }
        // The many `*_url` templates every repository object carries.
        for (key, suffix) in [
            ("archive_url", "/{archive_format}{/ref}"),
            ("assignees_url", "/assignees{/user}"),
            ("blobs_url", "/git/blobs{/sha}"),
            ("branches_url", "/branches{/branch}"),
            ("collaborators_url", "/collaborators{/collaborator}"),
            ("comments_url", "/comments{/number}"),
            ("commits_url", "/commits{/sha}"),
            ("compare_url", "/compare/{base}...{head}"),
            ("contents_url", "/contents/{+path}"),
            ("contributors_url", "/contributors"),
            ("deployments_url", "/deployments"),
            ("downloads_url", "/downloads"),
            ("events_url", "/events"),
            ("forks_url", "/forks"),
            ("git_commits_url", "/git/commits{/sha}"),
            ("git_refs_url", "/git/refs{/sha}"),
            ("git_tags_url", "/git/tags{/sha}"),
            ("hooks_url", "/hooks"),
            ("issue_comment_url", "/issues/comments{/number}"),
            ("issue_events_url", "/issues/events{/number}"),
            ("issues_url", "/issues{/number}"),
            ("keys_url", "/keys{/key_id}"),
            ("labels_url", "/labels{/name}"),
            ("languages_url", "/languages"),
            ("merges_url", "/merges"),
            ("milestones_url", "/milestones{/number}"),
            (
                "notifications_url",
                "/notifications{?since,all,participating}",
            ),
            ("pulls_url", "/pulls{/number}"),
            ("releases_url", "/releases{/id}"),
            ("stargazers_url", "/stargazers"),
            ("statuses_url", "/statuses/{sha}"),
            ("subscribers_url", "/subscribers"),
            ("subscription_url", "/subscription"),
            ("tags_url", "/tags"),
            ("teams_url", "/teams"),
            ("trees_url", "/git/trees{/sha}"),
        ] {
            v[key] = Value::from(format!("{u}{suffix}"));
        }
        v
    }

    pub fn label_json(&self, full_name: &str, l: &Label) -> Value {
        json!({
            "id": l.id, "node_id": node_id("LA", l.id),
            "url": format!("{}/repos/{full_name}/labels/{}", self.base_url, l.name),
            "name": l.name, "color": l.color, "description": l.description, "default": false,
        })
    }

    /// The label, created (like GitHub does when adding an unknown label) if missing.
    pub fn ensure_label(&mut self, full_name: &str, name: &str) -> Label {
        let id = self.id();
        let repo = self.repo_mut(full_name).expect("repo exists");
        repo.labels
            .entry(name.to_string())
            .or_insert_with(|| Label {
                id,
                name: name.to_string(),
                color: "ededed".into(),
                description: None,
            })
            .clone()
    }

    pub fn issue_json(&mut self, full_name: &str, number: u64) -> Value {
        let Some(repo) = self.repo(full_name).cloned() else {
            return Value::Null;
        };
        let Some(i) = repo.issues.get(&number).cloned() else {
            return Value::Null;
        };
        let base = format!("{}/repos/{}", self.base_url, repo.full_name());
        let user = self.user_json(&i.user);
        let assignees: Vec<Value> = i.assignees.iter().map(|a| self.user_json(a)).collect();
        let labels: Vec<Value> = i
            .labels
            .iter()
            .filter_map(|l| repo.labels.get(l))
            .map(|l| self.label_json(&repo.full_name(), l))
            .collect();
        let closed_by = i.closed_by.as_deref().map(|u| self.user_json(u));
        let comments = repo
            .comments
            .values()
            .filter(|c| c.issue_number == number)
            .count();
        let mut v = json!({
            "id": i.id, "node_id": i.node_id, "url": format!("{base}/issues/{number}"),
            "repository_url": base, "labels_url": format!("{base}/issues/{number}/labels{{/name}}"),
            "comments_url": format!("{base}/issues/{number}/comments"), "events_url": format!("{base}/issues/{number}/events"),
            "html_url": format!("https://github.com/{}/{}/{number}", repo.full_name(), if i.pull.is_some() { "pull" } else { "issues" }),
            "number": number, "state": i.state, "state_reason": i.state_reason, "title": i.title, "body": i.body,
            "user": user, "labels": labels, "assignee": assignees.first().cloned(), "assignees": assignees,
            "milestone": null, "locked": false, "active_lock_reason": null, "comments": comments,
            "closed_at": i.closed_at.map(ts), "created_at": ts(i.created_at), "updated_at": ts(i.updated_at),
            "closed_by": closed_by, "author_association": "NONE",
            "timeline_url": format!("{base}/issues/{number}/timeline"),
        });
        if let Some(p) = &i.pull {
            v["pull_request"] = json!({
                "url": format!("{base}/pulls/{number}"), "html_url": format!("https://github.com/{}/pull/{number}", repo.full_name()),
                "diff_url": format!("https://github.com/{}/pull/{number}.diff", repo.full_name()),
                "patch_url": format!("https://github.com/{}/pull/{number}.patch", repo.full_name()),
                "merged_at": p.merged_at.map(ts),
            });
            v["draft"] = Value::Bool(p.draft);
        }
        v
    }

    pub fn pull_json(&mut self, full_name: &str, number: u64) -> Value {
        let issue = self.issue_json(full_name, number);
        let Some(repo) = self.repo(full_name).cloned() else {
            return Value::Null;
        };
        let Some(p) = repo.issues.get(&number).and_then(|i| i.pull.clone()) else {
            return Value::Null;
        };
        let fname = repo.full_name();
        let base = format!("{}/repos/{fname}", self.base_url);
        let repo_v = self.repo_json(&fname);
        let owner = self.user_json(&repo.owner);
        let reviewers: Vec<Value> = p
            .requested_reviewers
            .iter()
            .map(|u| self.user_json(u))
            .collect();
        let teams: Vec<Value> = p
            .requested_teams
            .iter()
            .map(|slug| {
                let id = self.user_id(&format!("team:{slug}"));
                json!({
                    "id": id, "node_id": node_id("T", id), "url": format!("{}/teams/{id}", self.base_url),
                    "members_url": format!("{}/teams/{id}/members{{/member}}", self.base_url), "name": slug,
                    "description": null, "permission": "pull", "privacy": "closed", "notification_setting": "notifications_enabled",
                    "html_url": format!("https://github.com/orgs/{}/teams/{slug}", repo.owner),
                    "repositories_url": format!("{}/teams/{id}/repos", self.base_url), "slug": slug, "parent": null, "type": "organization",
                })
            })
            .collect();
        let merged_by = p.merged_by.as_deref().map(|u| self.user_json(u));
        let auto_merge = match &p.auto_merge {
            Some(a) => {
                json!({"enabled_by": self.user_json(&a.enabled_by), "merge_method": a.merge_method.to_lowercase(), "commit_title": "", "commit_message": ""})
            }
            None => Value::Null,
        };
        // A head branch deleted after the PR keeps showing the last sha it had.
        let head_sha = repo
            .branch_sha(&p.head_ref)
            .cloned()
            .unwrap_or(p.head_sha.clone());
        let base_sha = repo
            .branch_sha(&p.base_ref)
            .cloned()
            .unwrap_or(p.base_sha.clone());
        let link = |href: String| json!({"href": href});
        let state = issue["state"].clone();
        // The pull-request schemas type a label's description as a plain string.
        let mut labels = issue["labels"].clone();
        for l in labels.as_array_mut().into_iter().flatten() {
            if l["description"].is_null() {
                l["description"] = Value::from("");
            }
        }
        let head = json!({"label": format!("{}:{}", repo.owner, p.head_ref), "ref": p.head_ref, "sha": head_sha, "user": owner.clone(), "repo": repo_v.clone()});
        let base_v = json!({"label": format!("{}:{}", repo.owner, p.base_ref), "ref": p.base_ref, "sha": base_sha, "user": owner, "repo": repo_v});
        let links = json!({
            "self": link(format!("{base}/pulls/{number}")), "html": link(format!("https://github.com/{fname}/pull/{number}")),
            "issue": link(format!("{base}/issues/{number}")), "comments": link(format!("{base}/issues/{number}/comments")),
            "review_comments": link(format!("{base}/pulls/{number}/comments")),
            "review_comment": link(format!("{base}/pulls/comments{{/number}}")),
            "commits": link(format!("{base}/pulls/{number}/commits")), "statuses": link(format!("{base}/statuses/{head_sha}")),
        });
        let first = json!({
            "url": format!("{base}/pulls/{number}"), "id": p.id, "node_id": p.node_id,
            "html_url": format!("https://github.com/{fname}/pull/{number}"),
            "diff_url": format!("https://github.com/{fname}/pull/{number}.diff"),
            "patch_url": format!("https://github.com/{fname}/pull/{number}.patch"),
            "issue_url": format!("{base}/issues/{number}"), "commits_url": format!("{base}/pulls/{number}/commits"),
            "review_comments_url": format!("{base}/pulls/{number}/comments"),
            "review_comment_url": format!("{base}/pulls/comments{{/number}}"),
            "comments_url": format!("{base}/issues/{number}/comments"), "statuses_url": format!("{base}/statuses/{head_sha}"),
        });
        merge(
            first,
            json!({
                "number": number, "state": state, "locked": false, "title": issue["title"], "user": issue["user"],
                "body": issue["body"], "labels": labels, "milestone": null, "active_lock_reason": null,
                "created_at": issue["created_at"], "updated_at": issue["updated_at"], "closed_at": issue["closed_at"],
                "merged_at": p.merged_at.map(ts), "merge_commit_sha": p.merge_commit_sha,
                "assignee": issue["assignee"], "assignees": issue["assignees"],
                "requested_reviewers": reviewers, "requested_teams": teams,
                "head": head, "base": base_v,
                "_links": links,
                "author_association": "NONE", "auto_merge": auto_merge, "draft": p.draft,
                "merged": p.merged_at.is_some(), "mergeable": null, "rebaseable": null, "mergeable_state": "unknown",
                "merged_by": merged_by, "comments": issue["comments"], "review_comments": 0,
                "maintainer_can_modify": p.maintainer_can_modify, "commits": 1, "additions": 0, "deletions": 0, "changed_files": 0,
            }),
        )
    }

    pub fn comment_json(&mut self, full_name: &str, id: u64) -> Value {
        let Some(c) = self
            .repo(full_name)
            .and_then(|r| r.comments.get(&id))
            .cloned()
        else {
            return Value::Null;
        };
        let base = format!("{}/repos/{full_name}", self.base_url);
        let user = self.user_json(&c.user);
        let mut rollup = json!({"url": format!("{base}/issues/comments/{id}/reactions"), "total_count": c.reactions.len()});
        for k in [
            "+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket",
        ] {
            rollup[k] = Value::from(c.reactions.iter().filter(|r| r.content == k).count());
        }
        json!({
            "id": id, "node_id": node_id("IC", id), "url": format!("{base}/issues/comments/{id}"), "body": c.body,
            "html_url": format!("https://github.com/{full_name}/issues/{}#issuecomment-{id}", c.issue_number),
            "user": user, "created_at": ts(c.created_at), "updated_at": ts(c.updated_at),
            "issue_url": format!("{base}/issues/{}", c.issue_number), "author_association": "NONE", "reactions": rollup,
        })
    }

    pub fn check_run_json(&mut self, full_name: &str, id: u64) -> Value {
        let Some(c) = self
            .repo(full_name)
            .and_then(|r| r.check_runs.get(&id))
            .cloned()
        else {
            return Value::Null;
        };
        let app = self.app_json();
        let suite = self.user_id(&format!("suite:{full_name}:{}", c.head_sha));
        let mut output = json!({"title": null, "summary": null, "text": null, "annotations_count": 0,
            "annotations_url": format!("{}/repos/{full_name}/check-runs/{id}/annotations", self.base_url)});
        if let Some(o) = c.output.as_object() {
            for k in ["title", "summary", "text"] {
                if let Some(v) = o.get(k) {
                    output[k] = v.clone();
                }
            }
        }
        json!({
            "id": id, "head_sha": c.head_sha, "node_id": node_id("CR", id), "external_id": c.external_id,
            "url": format!("{}/repos/{full_name}/check-runs/{id}", self.base_url),
            "html_url": format!("https://github.com/{full_name}/runs/{id}"), "details_url": c.details_url,
            "status": c.status, "conclusion": c.conclusion, "started_at": ts(c.started_at),
            "completed_at": c.completed_at.map(ts), "output": output, "name": c.name,
            "check_suite": {"id": suite}, "app": app, "pull_requests": [],
        })
    }
}

/// `a` with `b`'s fields added (for JSON objects too large for one `json!`).
pub fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}
