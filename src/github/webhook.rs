//! GitHub webhook deliveries: signature check and the few fields digestif acts on.
//!
//! Parsing is deliberately narrow (small serde structs): a payload only has to carry what
//! we use, so GitHub adding or renaming unrelated fields never breaks intake.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use thiserror::Error;

use crate::extract;
use crate::repo_config::CONFIG_PATHS;

/// Branches digestif owns start with this.
pub const BRANCH_PREFIX: &str = "digestif/";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("missing X-Hub-Signature-256 header")]
    MissingSignature,
    #[error("malformed X-Hub-Signature-256 header")]
    MalformedSignature,
    #[error("signature does not match the payload")]
    BadSignature,
    #[error("invalid {event} payload: {message}")]
    Payload { event: String, message: String },
}

/// GitHub caps webhook payloads at 25 MB.
pub const MAX_PAYLOAD: usize = 25 * 1024 * 1024;

/// The largest body accepted for a delivery of `event`, checked against `Content-Length`
/// before any of it is read. Events whose payloads carry lists that grow with the
/// repository or the installation (pushed commits' file lists, repository lists) may be as
/// large as GitHub sends; the others carry at most two texts of 65,536 characters (an issue
/// or pull request body and a comment, or a body and its previous version); events digestif
/// ignores are acknowledged only when small.
pub fn body_limit(event: &str) -> usize {
    match event {
        "push" | "installation" | "installation_repositories" => MAX_PAYLOAD,
        "pull_request" | "issue_comment" | "issues" | "repository" | "ping" => 2 * 1024 * 1024,
        _ => 64 * 1024,
    }
}

/// What any delivery says about itself, for the log line and the delivery record: its
/// `action`, `installation.id` and `repository.full_name`, each when present and of that
/// type. Read without building the document (the payload is parsed once more, narrowly, for
/// its event); a body that is not a JSON object says nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub action: Option<String>,
    pub installation: Option<i64>,
    pub repository: Option<String>,
}

pub fn envelope(body: &[u8]) -> Envelope {
    use serde_json::value::RawValue;
    #[derive(Deserialize)]
    struct Top<'a> {
        #[serde(borrow, default)]
        action: Option<&'a RawValue>,
        #[serde(borrow, default)]
        installation: Option<&'a RawValue>,
        #[serde(borrow, default)]
        repository: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Installation<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Repository<'a> {
        #[serde(borrow, default)]
        full_name: Option<&'a RawValue>,
    }
    fn read<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
        raw.and_then(|r| serde_json::from_str(r.get()).ok())
    }
    let Ok(top) = serde_json::from_slice::<Top>(body) else {
        return Envelope::default();
    };
    Envelope {
        action: read(top.action),
        installation: read::<Installation>(top.installation).and_then(|i| read(i.id)),
        repository: read::<Repository>(top.repository).and_then(|r| read(r.full_name)),
    }
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` over the raw body, in constant time.
pub fn verify_signature(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature)?;
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(WebhookError::MalformedSignature)?;
    let sig = hex::decode(hex_sig).map_err(|_| WebhookError::MalformedSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&sig)
        .map_err(|_| WebhookError::BadSignature)
}

/// The signature header value GitHub would send for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub login: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepoRef {
    pub id: i64,
    pub full_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repository {
    pub id: i64,
    pub full_name: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct InstallationRef {
    id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Sender {
    pub login: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// What a delivery means to digestif.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ping,
    /// created, deleted, suspend, unsuspend, new_permissions_accepted.
    Installation {
        action: String,
        installation_id: i64,
        account: Account,
        repositories: Vec<RepoRef>,
    },
    InstallationRepositories {
        installation_id: i64,
        added: Vec<RepoRef>,
        removed: Vec<RepoRef>,
    },
    /// A push to the default branch that touched the config or a file an extractor reads.
    PushRelevant {
        installation_id: i64,
        repository: Repository,
        head_sha: String,
    },
    /// A push to one of digestif's branches; the handler compares `sender` with the App's bot.
    PushToBotBranch {
        installation_id: i64,
        repository: Repository,
        branch: String,
        head_sha: String,
        sender: Sender,
    },
    PullRequest {
        action: String,
        installation_id: i64,
        repository: Repository,
        number: i64,
        branch: String,
        merged: bool,
        sender: Sender,
    },
    /// A pull request not opened by digestif was opened or got new commits.
    PullRequestHead {
        installation_id: i64,
        repository: Repository,
        number: i64,
        head_sha: String,
    },
    IssueComment {
        installation_id: i64,
        repository: Repository,
        issue_number: i64,
        comment_id: i64,
        body: String,
        sender: Sender,
        is_pull_request: bool,
    },
    /// `issues` edited: the dashboard's "rescan now" box lives in an issue body.
    IssueEdited {
        installation_id: i64,
        repository: Repository,
        issue_number: i64,
        body: String,
        sender: Sender,
    },
    Repository {
        action: String,
        installation_id: i64,
        repository: Repository,
    },
    /// Known event or action that needs nothing from us.
    Ignored {
        reason: String,
    },
}

/// Reads a delivery. Unknown events are `Ignored`, never errors.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, WebhookError> {
    let parsed = match event {
        "ping" => return Ok(Event::Ping),
        "installation" => installation(body),
        "installation_repositories" => installation_repositories(body),
        "push" => push(body),
        "pull_request" => pull_request(body),
        "issue_comment" => issue_comment(body),
        "issues" => issues(body),
        "repository" => repository(body),
        other => {
            return Ok(Event::Ignored {
                reason: format!("event {other} is not used"),
            });
        }
    };
    parsed.map_err(|e| WebhookError::Payload {
        event: event.to_string(),
        message: e.to_string(),
    })
}

/// `installation`: the App was installed, removed, suspended or given new permissions.
fn installation(body: &[u8]) -> Result<Event, serde_json::Error> {
    #[derive(Deserialize)]
    struct P {
        action: String,
        installation: Inst,
        #[serde(default)]
        repositories: Option<Vec<RepoRef>>,
    }
    #[derive(Deserialize)]
    struct Inst {
        id: i64,
        account: Account,
    }
    let p: P = serde_json::from_slice(body)?;
    Ok(Event::Installation {
        action: p.action,
        installation_id: p.installation.id,
        account: p.installation.account,
        repositories: p.repositories.unwrap_or_default(),
    })
}

/// `installation_repositories`: repositories added to or removed from an installation.
fn installation_repositories(body: &[u8]) -> Result<Event, serde_json::Error> {
    #[derive(Deserialize)]
    struct P {
        installation: InstallationRef,
        #[serde(default)]
        repositories_added: Vec<RepoRef>,
        #[serde(default)]
        repositories_removed: Vec<RepoRef>,
    }
    let p: P = serde_json::from_slice(body)?;
    Ok(Event::InstallationRepositories {
        installation_id: p.installation.id,
        added: p.repositories_added,
        removed: p.repositories_removed,
    })
}

/// `push`: a push to digestif's own branch (maybe a person taking over), or to the default
/// branch touching the config or a file an extractor reads; other pushes are ignored.
fn push(body: &[u8]) -> Result<Event, serde_json::Error> {
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "ref")]
        git_ref: String,
        after: String,
        #[serde(default)]
        deleted: bool,
        #[serde(default)]
        commits: Vec<Commit>,
        repository: Repository,
        installation: Option<InstallationRef>,
        sender: Sender,
    }
    #[derive(Deserialize)]
    struct Commit {
        #[serde(default)]
        added: Vec<String>,
        #[serde(default)]
        removed: Vec<String>,
        #[serde(default)]
        modified: Vec<String>,
    }
    let p: P = serde_json::from_slice(body)?;
    let Some(installation) = p.installation else {
        return Ok(Event::Ignored {
            reason: "push without installation".into(),
        });
    };
    let Some(branch) = p.git_ref.strip_prefix("refs/heads/") else {
        return Ok(Event::Ignored {
            reason: format!("push to {}", p.git_ref),
        });
    };
    if p.deleted {
        return Ok(Event::Ignored {
            reason: format!("branch {branch} deleted"),
        });
    }
    if branch.starts_with(BRANCH_PREFIX) {
        return Ok(Event::PushToBotBranch {
            installation_id: installation.id,
            branch: branch.to_string(),
            head_sha: p.after,
            sender: p.sender,
            repository: p.repository,
        });
    }
    if p.repository.default_branch.as_deref() != Some(branch) {
        return Ok(Event::Ignored {
            reason: format!("push to non-default branch {branch}"),
        });
    }
    // GitHub lists at most 2048 commits' files; a push with no commit list
    // (e.g. a large force-push) may have changed anything, so it rescans.
    let relevant = p.commits.is_empty()
        || p.commits.iter().any(|c| {
            c.added
                .iter()
                .chain(&c.removed)
                .chain(&c.modified)
                .any(|f| is_relevant_path(f))
        });
    if relevant {
        Ok(Event::PushRelevant {
            installation_id: installation.id,
            repository: p.repository,
            head_sha: p.after,
        })
    } else {
        Ok(Event::Ignored {
            reason: "push touched no config or image file".into(),
        })
    }
}

/// `pull_request`: on digestif's PRs, closes, reopens, edits and pushes; on others, new
/// heads (their config change gets a check run).
fn pull_request(body: &[u8]) -> Result<Event, serde_json::Error> {
    #[derive(Deserialize)]
    struct P {
        action: String,
        number: i64,
        pull_request: Pr,
        repository: Repository,
        installation: InstallationRef,
        sender: Sender,
    }
    #[derive(Deserialize)]
    struct Pr {
        head: Head,
        #[serde(default)]
        merged: Option<bool>,
    }
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "ref")]
        git_ref: String,
        sha: String,
    }
    let p: P = serde_json::from_slice(body)?;
    if !p.pull_request.head.git_ref.starts_with(BRANCH_PREFIX) {
        // Someone else's PR: it may change digestif's config, which gets a check run.
        if matches!(p.action.as_str(), "opened" | "synchronize" | "reopened") {
            return Ok(Event::PullRequestHead {
                installation_id: p.installation.id,
                repository: p.repository,
                number: p.number,
                head_sha: p.pull_request.head.sha,
            });
        }
        return Ok(Event::Ignored {
            reason: "pull request not opened by digestif".into(),
        });
    }
    if !matches!(
        p.action.as_str(),
        "closed" | "reopened" | "edited" | "synchronize"
    ) {
        return Ok(Event::Ignored {
            reason: format!("pull_request {}", p.action),
        });
    }
    Ok(Event::PullRequest {
        action: p.action,
        installation_id: p.installation.id,
        repository: p.repository,
        number: p.number,
        branch: p.pull_request.head.git_ref,
        merged: p.pull_request.merged.unwrap_or(false),
        sender: p.sender,
    })
}

/// `issue_comment` created mentioning `@digestif`: maybe a command.
fn issue_comment(body: &[u8]) -> Result<Event, serde_json::Error> {
    #[derive(Deserialize)]
    struct P {
        action: String,
        issue: Issue,
        comment: Comment,
        repository: Repository,
        installation: InstallationRef,
        sender: Sender,
    }
    #[derive(Deserialize)]
    struct Issue {
        number: i64,
        #[serde(default)]
        pull_request: Option<serde_json::Value>,
    }
    #[derive(Deserialize)]
    struct Comment {
        id: i64,
        #[serde(default)]
        body: Option<String>,
    }
    let p: P = serde_json::from_slice(body)?;
    let text = p.comment.body.unwrap_or_default();
    if p.action != "created" || !mentions_digestif(&text) {
        return Ok(Event::Ignored {
            reason: "comment without a digestif command".into(),
        });
    }
    Ok(Event::IssueComment {
        installation_id: p.installation.id,
        repository: p.repository,
        issue_number: p.issue.number,
        comment_id: p.comment.id,
        body: text,
        sender: p.sender,
        is_pull_request: p.issue.pull_request.is_some(),
    })
}

/// `issues` edited: maybe the dashboard's "rescan now" box.
fn issues(body: &[u8]) -> Result<Event, serde_json::Error> {
    #[derive(Deserialize)]
    struct P {
        action: String,
        issue: Issue,
        repository: Repository,
        installation: InstallationRef,
        sender: Sender,
    }
    #[derive(Deserialize)]
    struct Issue {
        number: i64,
        #[serde(default)]
        body: Option<String>,
    }
    let p: P = serde_json::from_slice(body)?;
    if p.action != "edited" {
        return Ok(Event::Ignored {
            reason: format!("issues {}", p.action),
        });
    }
    Ok(Event::IssueEdited {
        installation_id: p.installation.id,
        repository: p.repository,
        issue_number: p.issue.number,
        body: p.issue.body.unwrap_or_default(),
        sender: p.sender,
    })
}

/// `repository`: renamed, archived, deleted, edited or transferred.
fn repository(body: &[u8]) -> Result<Event, serde_json::Error> {
    #[derive(Deserialize)]
    struct P {
        action: String,
        repository: Repository,
        installation: Option<InstallationRef>,
    }
    let p: P = serde_json::from_slice(body)?;
    let Some(installation) = p.installation else {
        return Ok(Event::Ignored {
            reason: "repository event without installation".into(),
        });
    };
    if !matches!(
        p.action.as_str(),
        "renamed" | "archived" | "unarchived" | "deleted" | "edited" | "transferred"
    ) {
        return Ok(Event::Ignored {
            reason: format!("repository {}", p.action),
        });
    }
    Ok(Event::Repository {
        action: p.action,
        installation_id: installation.id,
        repository: p.repository,
    })
}

/// Whether a changed path can change what digestif would do.
pub fn is_relevant_path(path: &str) -> bool {
    CONFIG_PATHS.contains(&path) || extract::kind_for_path(path).is_some()
}

fn mentions_digestif(text: &str) -> bool {
    text.to_ascii_lowercase().contains("@digestif")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_keeps_only_fields_of_the_expected_type() {
        let e = envelope(
            br#"{"action":"op\u0065ned","sender":{"id":1},
            "installation":{"id":42,"node_id":"x"},"repository":{"id":7,"full_name":"o/r"}}"#,
        );
        assert_eq!(
            e,
            Envelope {
                action: Some("opened".into()),
                installation: Some(42),
                repository: Some("o/r".into()),
            }
        );
        let wrong = envelope(br#"{"action":1,"installation":{"id":"42"},"repository":[1]}"#);
        assert_eq!(wrong, Envelope::default());
        let nulls =
            envelope(br#"{"action":null,"installation":null,"repository":{"full_name":null}}"#);
        assert_eq!(nulls, Envelope::default());
        for body in [&b"[]"[..], b"", b"{", b"null", b"\xff"] {
            assert_eq!(envelope(body), Envelope::default());
        }
    }

    #[test]
    fn body_limits_fit_what_each_event_carries() {
        for event in ["push", "installation", "installation_repositories"] {
            assert_eq!(body_limit(event), 25 * 1024 * 1024, "{event}");
        }
        for event in [
            "pull_request",
            "issue_comment",
            "issues",
            "repository",
            "ping",
        ] {
            assert_eq!(body_limit(event), 2 * 1024 * 1024, "{event}");
        }
        for event in ["star", "check_run", "", "PUSH"] {
            assert_eq!(body_limit(event), 64 * 1024, "{event}");
        }
    }

    #[test]
    fn signatures_verify_in_constant_time_and_reject_tampering() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let sig = sign(b"secret", body);
        assert!(sig.starts_with("sha256="));
        assert_eq!(verify_signature(b"secret", Some(&sig), body), Ok(()));
        assert_eq!(
            verify_signature(b"other", Some(&sig), body),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_signature(b"secret", Some(&sig), b"{}"),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_signature(b"secret", None, body),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            verify_signature(b"secret", Some("sha1=abc"), body),
            Err(WebhookError::MalformedSignature)
        );
        assert_eq!(
            verify_signature(b"secret", Some("sha256=zz"), body),
            Err(WebhookError::MalformedSignature)
        );
    }

    #[test]
    fn github_documented_signature_example() {
        // From GitHub's "Validating webhook deliveries" docs.
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    fn repo() -> serde_json::Value {
        json!({"id": 42, "full_name": "octo/app", "default_branch": "main", "archived": false})
    }

    #[test]
    fn pushes_to_the_default_branch_rescan_only_when_relevant_files_changed() {
        let push = |r: &str, files: &[&str]| {
            json!({"ref": r, "after": "abc", "deleted": false, "repository": repo(),
                   "installation": {"id": 7}, "sender": {"login": "octocat", "type": "User"},
                   "commits": [{"added": [], "removed": [], "modified": files}]})
            .to_string()
        };
        let e = parse(
            "push",
            push("refs/heads/main", &["src/Dockerfile"]).as_bytes(),
        )
        .unwrap();
        assert!(matches!(
            e,
            Event::PushRelevant {
                installation_id: 7,
                ..
            }
        ));
        let e = parse(
            "push",
            push("refs/heads/main", &[".github/digestif.yml"]).as_bytes(),
        )
        .unwrap();
        assert!(matches!(e, Event::PushRelevant { .. }));
        let e = parse("push", push("refs/heads/main", &["README.md"]).as_bytes()).unwrap();
        assert!(matches!(e, Event::Ignored { .. }));
        let e = parse(
            "push",
            push("refs/heads/feature", &["Dockerfile"]).as_bytes(),
        )
        .unwrap();
        assert!(matches!(e, Event::Ignored { .. }));
        let e = parse("push", push("refs/tags/v1", &["Dockerfile"]).as_bytes()).unwrap();
        assert!(matches!(e, Event::Ignored { .. }));
        let e = parse(
            "push",
            push("refs/heads/digestif/all", &["Dockerfile"]).as_bytes(),
        )
        .unwrap();
        assert!(
            matches!(e, Event::PushToBotBranch { ref branch, ref sender, .. } if branch == "digestif/all" && sender.login == "octocat")
        );
    }

    #[test]
    fn comments_are_commands_only_when_they_mention_digestif() {
        let c = |body: &str| {
            json!({"action": "created", "issue": {"number": 3, "pull_request": {"url": "x"}},
                   "comment": {"id": 9, "body": body}, "repository": repo(),
                   "installation": {"id": 7}, "sender": {"login": "octocat", "type": "User"}})
            .to_string()
        };
        let e = parse("issue_comment", c("@digestif rebase").as_bytes()).unwrap();
        assert!(matches!(
            e,
            Event::IssueComment {
                issue_number: 3,
                comment_id: 9,
                is_pull_request: true,
                ..
            }
        ));
        let e = parse("issue_comment", c("looks good").as_bytes()).unwrap();
        assert!(matches!(e, Event::Ignored { .. }));
    }

    #[test]
    fn unknown_events_are_ignored_and_broken_payloads_are_errors() {
        assert!(matches!(
            parse("star", b"{}").unwrap(),
            Event::Ignored { .. }
        ));
        assert_eq!(parse("ping", b"{}").unwrap(), Event::Ping);
        let e = parse("installation", b"{\"action\": 1}").unwrap_err();
        assert!(matches!(e, WebhookError::Payload { .. }));
        assert!(e.to_string().starts_with("invalid installation payload"));
    }

    #[test]
    fn only_digestif_pull_requests_matter() {
        let pr = |head: &str| {
            json!({"action": "closed", "number": 5, "pull_request": {"head": {"ref": head, "sha": "abc"}, "merged": false},
                   "repository": repo(), "installation": {"id": 7}, "sender": {"login": "octocat", "type": "User"}})
            .to_string()
        };
        let e = parse("pull_request", pr("digestif/all").as_bytes()).unwrap();
        assert!(matches!(
            e,
            Event::PullRequest {
                number: 5,
                merged: false,
                ..
            }
        ));
        let e = parse("pull_request", pr("feature").as_bytes()).unwrap();
        assert!(matches!(e, Event::Ignored { .. }));
        // Others' PRs matter when they get new commits: they may change the config.
        let opened = pr("feature").replace("\"closed\"", "\"synchronize\"");
        let e = parse("pull_request", opened.as_bytes()).unwrap();
        assert!(
            matches!(e, Event::PullRequestHead { number: 5, ref head_sha, .. } if head_sha == "abc")
        );
    }
}
