//! Recovering digestif's pull-request records from GitHub when the store has none for a
//! repository (its database was lost or replaced): the body of each PR digestif opened
//! carries a hidden state marker ([`render::marker`]) naming its branch and updates.
//! Without this, a PR a person closed would be proposed again, and an open one would be
//! treated as new.

use std::collections::BTreeMap;

use super::handler::Handler;
use crate::github::api::Api;
use crate::github::git::{self, Branch};
use crate::github::pulls::{self, Listed};
use crate::github::webhook::BRANCH_PREFIX;
use crate::jobs::JobError;
use crate::render;
use crate::store::{IgnoreSource, NewIgnore, PrStatus, PrUpsert, Repository};

/// Records the PRs on digestif's branches of `repo` from their markers: the open one of
/// each branch, or else a closed unmerged one (closed by a person: its digests are ignored
/// again, as when the close was first seen). Returns how many were recorded.
pub async fn adopt_prs(h: &Handler, api: &Api, repo: &Repository) -> Result<usize, JobError> {
    let now = h.clock.now();
    let mut adopted = 0;
    for branch in git::branches_starting_with(api, &repo.full_name, BRANCH_PREFIX).await? {
        let listed = pulls::all_for_branch(api, &repo.full_name, &branch.name).await?;
        let Some((pull, state)) = to_adopt(&listed, &branch) else {
            continue;
        };
        let Some(marker) = pull.body.as_deref().and_then(render::parse_marker) else {
            continue;
        };
        if marker.branch != branch.name {
            continue;
        }
        let number = pull.number as i64;
        h.store
            .upsert_pr(
                &PrUpsert {
                    repository_id: repo.id,
                    number,
                    branch: &branch.name,
                    state,
                    head_sha: Some(&pull.head.sha),
                    // Unknown: an open PR is rebuilt on the current base at once.
                    base_sha: None,
                    updates: &marker.updates,
                    base_blobs: &BTreeMap::new(),
                    details_pending: false,
                },
                now,
            )
            .await?;
        if state == PrStatus::Closed {
            let reason = format!("pull request #{number} closed without merging");
            for k in &marker.updates {
                let ignore = NewIgnore {
                    image: &k.image,
                    tag: k.tag.as_deref(),
                    digest: Some(&k.new),
                    reason: &reason,
                    source: IgnoreSource::ClosedPr,
                    created_by: None,
                };
                h.store.add_ignore(repo.id, &ignore, now).await?;
            }
        }
        tracing::info!(repo = %repo.full_name, number, branch = %branch.name, state = state.as_str(), "pull request record recovered from its body");
        adopted += 1;
    }
    Ok(adopted)
}

/// The PR of `branch` to record: the open one; else the newest closed unmerged one the
/// branch still points at. digestif deletes the branch of a PR it closes itself, so that
/// one was closed by a person; merged PRs need no record.
fn to_adopt<'a>(listed: &'a [Listed], branch: &Branch) -> Option<(&'a Listed, PrStatus)> {
    if let Some(open) = listed.iter().find(|p| p.state == "open") {
        return Some((open, PrStatus::Open));
    }
    listed
        .iter()
        .filter(|p| p.state == "closed" && p.merged_at.is_none() && p.head.sha == branch.sha)
        .max_by_key(|p| p.number)
        .map(|p| (p, PrStatus::Closed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::pulls::ListedHead;

    fn pull(number: u64, state: &str, merged: bool, sha: &str) -> Listed {
        Listed {
            number,
            state: state.into(),
            merged_at: merged.then(|| "2026-01-01T00:00:00Z".to_string()),
            body: None,
            head: ListedHead {
                branch: "digestif/all".into(),
                sha: sha.into(),
            },
        }
    }

    #[test]
    fn the_open_pr_wins_then_a_closed_one_the_branch_still_points_at() {
        let branch = Branch {
            name: "digestif/all".into(),
            sha: "b".into(),
        };
        let listed = [pull(3, "closed", false, "b"), pull(5, "open", false, "c")];
        assert_eq!(
            to_adopt(&listed, &branch).map(|(p, s)| (p.number, s)),
            Some((5, PrStatus::Open))
        );
        // #2 was closed by digestif (its branch was deleted and made again since); #4 merged.
        let listed = [
            pull(2, "closed", false, "a"),
            pull(3, "closed", false, "b"),
            pull(4, "closed", true, "b"),
        ];
        assert_eq!(
            to_adopt(&listed, &branch).map(|(p, s)| (p.number, s)),
            Some((3, PrStatus::Closed))
        );
        let listed = [pull(2, "closed", false, "a"), pull(4, "closed", true, "b")];
        assert_eq!(to_adopt(&listed, &branch).map(|(p, _)| p.number), None);
    }
}
