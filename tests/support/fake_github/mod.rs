//! A stateful fake of the GitHub REST API (plus the one GraphQL mutation the app uses),
//! served by axum on a loopback port, faithful enough to drive the real octocrab client.
//!
//! Every request is checked against GitHub's OpenAPI description ([`openapi`]); anything
//! GitHub would reject is answered like GitHub (404/422/401/403) *and* recorded as a
//! violation, which fails the test unless the test inspects and clears it. See
//! `tests/fake_github.rs` for usage.

pub mod auth;
pub mod git;
mod npm;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod webhooks;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use state::{App, Installation, Issue, Repo, State, now};
pub use state::{Fault, RequestRecord, Violation};

use self::git::{FileMap, MODE_FILE, Object, Signature};

pub struct FakeGitHub {
    state: Arc<Mutex<State>>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

/// A commit author for [`FakeGitHub::push`].
pub struct Author<'a> {
    pub name: &'a str,
    pub email: &'a str,
}

impl Default for Author<'_> {
    fn default() -> Self {
        Author {
            name: "Octo Cat",
            email: "octocat@example.com",
        }
    }
}

impl FakeGitHub {
    /// Starts a fresh fake on `127.0.0.1:<random port>`. Must run inside a tokio runtime.
    pub async fn start() -> FakeGitHub {
        FakeGitHub::start_shaped(false).await
    }

    /// A fake shaped like GitHub Enterprise Server: REST under `/api/v3` (what [`url`]
    /// returns), GraphQL at `/api/graphql`; any other path is a 404 and a violation.
    ///
    /// [`url`]: FakeGitHub::url
    pub async fn start_ghes() -> FakeGitHub {
        FakeGitHub::start_shaped(true).await
    }

    async fn start_shaped(ghes: bool) -> FakeGitHub {
        // Loaded before serving so the first request does not pay for parsing 13 MB.
        let _ = openapi::spec();
        let key = auth::app_key();
        let app = App {
            id: 4242,
            slug: "digestif".into(),
            name: "digestif".into(),
            public_pem: key.public_pem.clone().into_bytes(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let host = format!("http://{}", listener.local_addr().expect("local addr"));
        let url = if ghes { format!("{host}/api/v3") } else { host };
        let mut st = State::new(app);
        st.base_url = url.clone();
        st.ghes = ghes;
        let state = Arc::new(Mutex::new(st));
        let router = axum::Router::new()
            .fallback(serve)
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeGitHub { state, url, server }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn app_id(&self) -> u64 {
        self.lock().app.id
    }

    pub fn app_slug(&self) -> String {
        self.lock().app.slug.clone()
    }

    /// The App's private key (PKCS#1 PEM, as GitHub hands it out).
    pub fn private_key_pem(&self) -> &'static str {
        &auth::app_key().private_pem
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler must not hide the state from the test's assertions.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds the next `method path` request (path relative to the API root, e.g.
    /// `/repos/acme/widgets/git/blobs`) until the returned hold's `release` is cancelled:
    /// a slow GitHub, or a client paused mid-request. `reached` says it arrived.
    pub fn hold_next(&self, method: &str, path: &str) -> state::Hold {
        let hold = state::Hold {
            method: method.to_string(),
            path: path.to_string(),
            reached: Default::default(),
            release: Default::default(),
        };
        self.lock().holds.push(hold.clone());
        hold
    }

    /// Turns the repository setting "Allow auto-merge" on or off.
    pub fn set_allow_auto_merge(&self, repo: &str, allowed: bool) {
        if let Some(r) = self.lock().repos.get_mut(&repo.to_ascii_lowercase()) {
            r.allow_auto_merge = allowed;
        }
    }

    /// Recursive trees with more than `entries` entries come back `truncated`, holding
    /// the first `entries` (GitHub truncates past 100,000 entries or 7 MB).
    pub fn set_tree_limit(&self, entries: usize) {
        self.lock().tree_limit = entries;
    }

    /// Direct access to the whole state for assertions this API lacks.
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.lock())
    }

    // ---- test controls ------------------------------------------------------------------

    /// What GitHub's "new App from a manifest" page does when the person confirms: keeps
    /// the manifest (the form field's JSON) and returns the code it sends to the manifest's
    /// `redirect_url`.
    pub fn manifest_code(&self, manifest: serde_json::Value) -> String {
        let mut s = self.lock();
        let code = format!("mc{:032x}", rand::random::<u128>());
        s.manifest_codes.insert(code.clone(), manifest);
        code
    }

    /// Installs the App on `account` (an organization) with these permissions, e.g.
    /// `&[("contents", "write"), ("pull_requests", "write")]`. Returns the installation id.
    pub fn create_installation(&self, account: &str, permissions: &[(&str, &str)]) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        let mut perms: BTreeMap<String, String> = permissions
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        perms
            .entry("metadata".into())
            .or_insert_with(|| "read".into());
        s.installations.insert(
            id,
            Installation {
                id,
                account: account.into(),
                account_type: "Organization".into(),
                permissions: perms,
                created_at: now(),
            },
        );
        id
    }

    /// Changes an installation's permissions; tokens issued earlier keep theirs, as on GitHub.
    pub fn set_installation_permissions(&self, installation: u64, permissions: &[(&str, &str)]) {
        let mut s = self.lock();
        if let Some(i) = s.installations.get_mut(&installation) {
            i.permissions = permissions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            i.permissions
                .entry("metadata".into())
                .or_insert_with(|| "read".into());
        }
    }

    /// Creates `owner/name` in the installation with one commit on `main` holding `files`.
    /// Returns the full name.
    pub fn create_repo(
        &self,
        installation: u64,
        owner: &str,
        name: &str,
        files: &[(&str, &str)],
    ) -> String {
        let full = format!("{owner}/{name}");
        {
            let mut s = self.lock();
            let id = s.id();
            let t = now();
            let repo = Repo {
                id,
                owner: owner.into(),
                name: name.into(),
                private: false,
                default_branch: "main".into(),
                installation,
                created_at: t,
                pushed_at: t,
                store: Default::default(),
                refs: BTreeMap::new(),
                labels: BTreeMap::new(),
                issues: BTreeMap::new(),
                comments: BTreeMap::new(),
                check_runs: BTreeMap::new(),
                permissions: Default::default(),
                allow_auto_merge: false,
            };
            s.repos.insert(full.to_ascii_lowercase(), repo);
        }
        let changes: Vec<(&str, Option<&str>)> =
            files.iter().map(|(p, c)| (*p, Some(*c))).collect();
        self.push(&full, "main", &changes, Author::default(), "Initial commit");
        full
    }

    /// Commits `changes` (path → new content, `None` deletes) on top of `branch` (created
    /// from the default branch if missing) like a `git push` by someone else would.
    /// Returns the new commit sha.
    pub fn push(
        &self,
        repo: &str,
        branch: &str,
        changes: &[(&str, Option<&str>)],
        author: Author,
        message: &str,
    ) -> String {
        let mut s = self.lock();
        let r = s.repo_mut(repo).unwrap_or_else(|| panic!("no repo {repo}"));
        let parent = r
            .branch_sha(branch)
            .or_else(|| r.branch_sha(&r.default_branch.clone()))
            .cloned();
        let mut files: FileMap = parent
            .as_ref()
            .and_then(|p| r.store.commit(p))
            .map(|c| r.store.files(&c.tree.clone()))
            .unwrap_or_default();
        for (path, content) in changes {
            match content {
                Some(c) => {
                    let sha = r.store.insert_blob(c.as_bytes());
                    files.insert(path.to_string(), (MODE_FILE.into(), sha));
                }
                None => {
                    files.remove(*path);
                }
            }
        }
        let tree = r.store.write_files(&files);
        let sig = Signature {
            name: author.name.into(),
            email: author.email.into(),
            time: now(),
            tz: "+0000".into(),
        };
        let commit = git::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author: sig.clone(),
            committer: sig,
            message: format!("{message}\n"),
        };
        let sha = r.store.insert(Object::Commit(Box::new(commit)));
        r.refs.insert(format!("refs/heads/{branch}"), sha.clone());
        r.pushed_at = now();
        sha
    }

    /// Merges PR `number` with a merge commit on its base branch, by `by_user`.
    /// Returns the merge commit sha.
    pub fn merge_pr(&self, repo: &str, number: u64, by_user: &str) -> String {
        let mut s = self.lock();
        let r = s.repo_mut(repo).unwrap_or_else(|| panic!("no repo {repo}"));
        let issue = r
            .issues
            .get(&number)
            .cloned()
            .unwrap_or_else(|| panic!("no PR #{number}"));
        let pull = issue
            .pull
            .clone()
            .unwrap_or_else(|| panic!("#{number} is not a PR"));
        assert_eq!(issue.state, "open", "PR #{number} is not open");
        let head = r
            .branch_sha(&pull.head_ref)
            .cloned()
            .unwrap_or(pull.head_sha.clone());
        let base = r
            .branch_sha(&pull.base_ref)
            .cloned()
            .expect("base branch exists");
        let head_tree = r
            .store
            .commit(&head)
            .map(|c| c.tree.clone())
            .expect("head commit");
        let sig = Signature {
            name: by_user.into(),
            email: format!("{by_user}@example.com"),
            time: now(),
            tz: "+0000".into(),
        };
        // The fake does not do three-way merges: the result is the head's tree.
        let merge = r.store.insert(Object::Commit(Box::new(git::Commit {
            tree: head_tree,
            parents: vec![base, head.clone()],
            author: sig.clone(),
            committer: sig,
            message: format!(
                "Merge pull request #{number} from {}/{}\n",
                r.owner, pull.head_ref
            ),
        })));
        r.refs
            .insert(format!("refs/heads/{}", pull.base_ref), merge.clone());
        let i = r.issues.get_mut(&number).expect("exists");
        let t = now();
        i.state = "closed".into();
        i.closed_at = Some(t);
        i.closed_by = Some(by_user.into());
        i.updated_at = t;
        if let Some(p) = i.pull.as_mut() {
            p.head_sha = head;
            p.merged_at = Some(t);
            p.merged_by = Some(by_user.into());
            p.merge_commit_sha = Some(merge.clone());
        }
        merge
    }

    /// Closes issue or PR `number` without merging, as `by_user`.
    pub fn close_pr(&self, repo: &str, number: u64, by_user: &str) {
        let mut s = self.lock();
        let r = s.repo_mut(repo).unwrap_or_else(|| panic!("no repo {repo}"));
        let i = r
            .issues
            .get_mut(&number)
            .unwrap_or_else(|| panic!("no #{number}"));
        i.state = "closed".into();
        i.closed_at = Some(now());
        i.closed_by = Some(by_user.into());
        i.updated_at = now();
    }

    /// A comment by `user` on issue/PR `number`; returns the comment id.
    pub fn comment(&self, repo: &str, number: u64, user: &str, body: &str) -> u64 {
        routes::issues_add_comment(&mut self.lock(), repo, number, user, body)
    }

    /// Sets `user`'s role on `repo`: `admin`, `maintain`, `write`, `triage`, `read`, `none`.
    pub fn set_permission(&self, repo: &str, user: &str, role: &str) {
        let mut s = self.lock();
        s.repo_mut(repo)
            .unwrap_or_else(|| panic!("no repo {repo}"))
            .permissions
            .insert(user.into(), role.into());
    }

    /// The next `n` requests fail with `fault`.
    pub fn inject_faults(&self, n: usize, fault: Fault) {
        let mut s = self.lock();
        for _ in 0..n {
            s.faults.push_back(fault.clone());
        }
    }

    /// `Link` headers with absolute URLs, as GitHub sends them (octocrab will not send its
    /// credentials to them; see `routes::paginate`).
    pub fn set_absolute_links(&self, absolute: bool) {
        self.lock().absolute_links = absolute;
    }

    /// Installation tokens issued from now on live this long.
    pub fn set_token_lifetime(&self, seconds: i64) {
        self.lock().token_lifetime = seconds;
    }

    // ---- inspectors ---------------------------------------------------------------------

    pub fn pulls(&self, repo: &str) -> Vec<Issue> {
        self.issues_where(repo, |i| i.pull.is_some())
    }

    /// Issues that are not pull requests.
    pub fn issues(&self, repo: &str) -> Vec<Issue> {
        self.issues_where(repo, |i| i.pull.is_none())
    }

    fn issues_where(&self, repo: &str, f: impl Fn(&Issue) -> bool) -> Vec<Issue> {
        self.lock()
            .repo(repo)
            .map(|r| r.issues.values().filter(|i| f(i)).cloned().collect())
            .unwrap_or_default()
    }

    /// Comments on issue/PR `number`, oldest first.
    pub fn comments(&self, repo: &str, number: u64) -> Vec<state::Comment> {
        self.lock()
            .repo(repo)
            .map(|r| {
                r.comments
                    .values()
                    .filter(|c| c.issue_number == number)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn check_runs(&self, repo: &str) -> Vec<state::CheckRun> {
        self.lock()
            .repo(repo)
            .map(|r| r.check_runs.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Content of `path` at `reference` (branch name or commit sha).
    pub fn file_at(&self, repo: &str, reference: &str, path: &str) -> Option<String> {
        let s = self.lock();
        let r = s.repo(repo)?;
        let commit = r
            .branch_sha(reference)
            .cloned()
            .unwrap_or_else(|| reference.to_string());
        r.store
            .file_at_commit(&commit, path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Branch name → head commit sha.
    pub fn branches(&self, repo: &str) -> BTreeMap<String, String> {
        self.lock()
            .repo(repo)
            .map(|r| {
                r.refs
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix("refs/heads/")
                            .map(|b| (b.to_string(), v.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn commit(&self, repo: &str, sha: &str) -> Option<git::Commit> {
        self.lock().repo(repo)?.store.commit(sha).cloned()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().log.clone()
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// Returns and forgets the violations (for tests that provoke one on purpose).
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut self.lock().violations)
    }

    /// Fails the test if any request broke GitHub's contract. Call at the end of each test.
    pub fn assert_no_violations(&self) {
        let v = self.take_violations();
        assert!(
            v.is_empty(),
            "requests GitHub would reject:\n{}",
            format_violations(&v)
        );
    }
}

fn format_violations(v: &[Violation]) -> String {
    v.iter()
        .map(|x| format!("  {} {}: {}", x.method, x.path, x.message))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
        // Violations nobody looked at must not pass silently; but a second panic while
        // unwinding would abort the whole test binary.
        if !std::thread::panicking() {
            let v = self.take_violations();
            assert!(
                v.is_empty(),
                "unchecked fake GitHub violations:\n{}",
                format_violations(&v)
            );
        }
    }
}

/// axum fallback: every request goes through [`routes::dispatch`].
async fn serve(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<State>>>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let query = raw_query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect();
    let mut req = routes::Req {
        method: parts.method.as_str().to_string(),
        path: percent_decode(parts.uri.path()),
        raw_query,
        query,
        headers: parts.headers,
        body,
    };
    let hold = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        if s.ghes {
            // GHES serves REST under /api/v3 and GraphQL at /api/graphql, nothing else.
            let api = match req.path.strip_prefix("/api/v3") {
                Some(rest) if rest.starts_with('/') && rest != "/graphql" => Some(rest.to_string()),
                _ if req.path == "/api/graphql" => Some("/graphql".to_string()),
                _ => None,
            };
            match api {
                Some(p) => req.path = p,
                None => {
                    s.violations.push(Violation {
                        method: req.method.clone(),
                        path: req.path.clone(),
                        message: "GitHub Enterprise Server serves the REST API under /api/v3 and GraphQL at /api/graphql".into(),
                    });
                    return Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Body::from(r#"{"message":"Not Found"}"#))
                        .unwrap_or_else(|_| Response::new(Body::empty()));
                }
            }
        }
        let at = s
            .holds
            .iter()
            .position(|h| h.method == req.method && h.path == req.path);
        at.map(|i| s.holds.remove(i))
    };
    if let Some(h) = hold {
        h.reached.cancel();
        h.release.cancelled().await;
    }
    let resp = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        routes::dispatch(&mut s, &req)
    };
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (k, v) in &resp.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            builder = builder.header(k, v);
        }
    }
    let body = match &resp.body {
        Some(b) => {
            builder = builder.header("content-type", "application/json; charset=utf-8");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
