//! Carrying out the commands people give on digestif's PRs: who may give them, then one
//! handler per command. Reading a command from a comment is [`crate::commands::parse`].

use chrono::{DateTime, Utc};

use super::handler::Handler;
use super::pulls::{ignore_digests, unignore_digests};
use crate::commands::{self, Command};
use crate::github::{issues, repo};
use crate::jobs::JobError;
use crate::render;
use crate::store::{IgnoreSource, NewIgnore, PrStatus, PullRequest};

/// What a command comes to.
enum Reply {
    /// Done in the store; a scan (enqueued at once) carries it out on GitHub, and a 👍 on
    /// the comment says it was heard.
    Rescan,
    /// Nothing to carry out: this answer is posted instead.
    Say(String),
}

/// What every command handler may use.
struct Context<'a> {
    h: &'a Handler,
    pr: &'a PullRequest,
    /// Who gave the command.
    sender: &'a str,
    now: DateTime<Utc>,
}

/// Comment `comment_id` on PR `number`: carries out the command in `body` if the sender
/// may write to the repository, and answers.
pub async fn comment(
    h: &Handler,
    repository_id: i64,
    number: i64,
    comment_id: i64,
    body: &str,
    sender: &str,
) -> Result<(), JobError> {
    let Some(command) = commands::parse(body) else {
        return Ok(());
    };
    let Some(repo) = h.repository(repository_id).await? else {
        return Ok(());
    };
    let Some(pr) = h.store.pr_by_number(repository_id, number).await? else {
        return Ok(());
    };
    let api = h.github.installation(repo.installation_id as u64)?;
    let full = repo.full_name.as_str();
    if !repo::can_write(&api, full, sender).await? {
        issues::comment(
            &api,
            full,
            number,
            &format!("Sorry @{sender}, only people with write access to this repository can give digestif commands."),
        )
        .await?;
        return Ok(());
    }
    let cx = Context {
        h,
        pr: &pr,
        sender,
        now: h.clock.now(),
    };
    let reply = match &command {
        Command::Rebase => rebase(&cx).await?,
        Command::Recreate => recreate(&cx).await?,
        Command::IgnoreDigest => ignore_digest(&cx).await?,
        Command::IgnoreImage => ignore_image(&cx).await?,
        Command::Unignore(image) => unignore(&cx, image).await?,
        Command::Unknown(text) => unknown(text),
    };
    match reply {
        Reply::Say(text) => issues::comment(&api, full, number, &text).await?,
        Reply::Rescan => {
            issues::react_to_comment(&api, full, comment_id, "+1").await?;
            h.store
                .enqueue(
                    &super::Work::ScanRepo {
                        repository_id,
                        reason: format!("command on #{number}"),
                        // A person asked: `rebase` right after an upstream push must see it.
                        fresh: true,
                    }
                    .to_job(),
                    cx.now,
                )
                .await?;
        }
    }
    Ok(())
}

/// `@digestif rebase`: digestif takes the PR back (after a person pushed to it) and
/// rebuilds it on the current base.
async fn rebase(cx: &Context<'_>) -> Result<Reply, JobError> {
    cx.h.store
        .hand_back_pr(cx.pr.repository_id, cx.pr.number, cx.now)
        .await?;
    Ok(Reply::Rescan)
}

/// `@digestif recreate` on a closed PR: its digests may be proposed again.
async fn recreate(cx: &Context<'_>) -> Result<Reply, JobError> {
    if cx.pr.state == PrStatus::Open {
        return Ok(Reply::Say(
            "This pull request is open; `@digestif rebase` regenerates it.".to_string(),
        ));
    }
    unignore_digests(cx.h, cx.pr).await?;
    Ok(Reply::Rescan)
}

/// `@digestif ignore this digest`: the digests this PR proposes are never proposed again.
async fn ignore_digest(cx: &Context<'_>) -> Result<Reply, JobError> {
    let reason = format!("`@digestif ignore this digest` on #{}", cx.pr.number);
    ignore_digests(cx.h, cx.pr, &reason, IgnoreSource::Command, cx.sender).await?;
    Ok(Reply::Rescan)
}

/// `@digestif ignore this image`: no updates at all for the images this PR updates.
async fn ignore_image(cx: &Context<'_>) -> Result<Reply, JobError> {
    let reason = format!("`@digestif ignore this image` on #{}", cx.pr.number);
    let mut images: Vec<&str> = cx.pr.updates.0.iter().map(|k| k.image.as_str()).collect();
    images.dedup();
    for image in images {
        cx.h.store
            .add_ignore(
                cx.pr.repository_id,
                &NewIgnore {
                    image,
                    tag: None,
                    digest: None,
                    reason: &reason,
                    source: IgnoreSource::Command,
                    created_by: Some(cx.sender),
                },
                cx.now,
            )
            .await?;
    }
    Ok(Reply::Rescan)
}

/// `@digestif unignore IMAGE`: lifts every ignore of `image` in this repository.
async fn unignore(cx: &Context<'_>, image: &str) -> Result<Reply, JobError> {
    let name = crate::reference::Reference::parse(image)
        .map(|r| r.name())
        .unwrap_or_else(|_| image.to_string());
    let n =
        cx.h.store
            .remove_ignores(cx.pr.repository_id, &name, None)
            .await?;
    Ok(if n == 0 {
        Reply::Say(format!("Nothing was ignored for {}.", render::code(&name)))
    } else {
        Reply::Rescan
    })
}

/// Anything else after `@digestif`: the list of commands.
fn unknown(text: &str) -> Reply {
    Reply::Say(format!(
        "digestif does not know {}. Commands: `@digestif rebase`, `@digestif recreate`, \
         `@digestif ignore this digest`, `@digestif ignore this image`, `@digestif unignore IMAGE`.",
        render::code(text)
    ))
}
