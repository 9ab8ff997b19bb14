//! Which pull requests should exist now, and what goes in them.
//!
//! A pure function over the repository's references (with what the registries said), its
//! config, the bot's pull requests and ignores, and the clock. The writer carries the
//! resulting actions out; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::extract::Found;
use crate::image::ImageSummary;
use crate::reference::Digest;
use crate::repo_config::{Group, RepoConfig};

/// Branch of the separate "pin digests" pull request.
pub const PIN_BRANCH: &str = "digestif/pin";

/// One reference with what the resolver proposes for it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub found: Found,
    /// The digest the registry says the pin should have now (stale or unpinned only).
    pub proposed: Option<Digest>,
    /// The resolution failed this cycle (timeout, rate limit, …): nothing is known.
    pub unknown: bool,
    /// When digestif first saw `proposed` for this image and tag.
    pub first_seen: Option<DateTime<Utc>>,
    /// The pin is one platform's manifest of a multi-platform index.
    pub platform_pin: Option<String>,
    /// The digest the tag points at now (the index a platform pin's new manifest is in).
    pub tag_digest: Option<Digest>,
}

/// One digest change a pull request makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub found: Found,
    pub new_digest: Digest,
    pub platform_pin: Option<String>,
    pub tag_digest: Option<Digest>,
    /// Facts about the new image for the table; filled in after planning, only for the
    /// updates a PR is written for now.
    pub info: Option<ImageSummary>,
    /// What changed inside the image (source, base, packages); filled in like `info`.
    pub details: Option<crate::insight::Details>,
}

impl Update {
    /// What identifies this update across scans (line numbers may move).
    pub fn key(&self) -> UpdateKey {
        UpdateKey {
            file: self.found.file.clone(),
            image: self.found.reference.name(),
            tag: self.found.reference.tag.clone(),
            old: self.found.reference.digest.as_ref().map(|d| d.to_string()),
            new: self.new_digest.to_string(),
        }
    }

    pub fn is_pin(&self) -> bool {
        self.found.reference.digest.is_none()
    }
}

/// The machine state of one update, as recorded on a PR (hidden marker and store).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct UpdateKey {
    pub file: String,
    pub image: String,
    pub tag: Option<String>,
    pub old: Option<String>,
    pub new: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    Open,
    /// Closed without merge.
    Closed,
    Merged,
}

/// A pull request digestif opened earlier, as the store knows it.
#[derive(Debug, Clone)]
pub struct ExistingPr {
    pub number: u64,
    pub branch: String,
    pub state: PrState,
    /// Someone other than digestif pushed to the branch: hands off.
    pub human_edited: bool,
    /// The "I'll stay away" comment was posted already.
    pub handoff_notified: bool,
    pub updates: Vec<UpdateKey>,
    /// Blob sha of each file the PR changes, on the base it was built on.
    pub base_blobs: BTreeMap<String, String>,
    /// Its description said "details will follow" (a registry's pull budget was spent).
    pub details_pending: bool,
}

/// An image, tag or digest a person told digestif to leave alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignore {
    pub image: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Ignore {
    pub fn matches(&self, image: &str, tag: Option<&str>, digest: &str) -> bool {
        self.image == image
            && self.tag.as_deref().is_none_or(|t| Some(t) == tag)
            && self.digest.as_deref().is_none_or(|d| d == digest)
    }
}

/// Everything the planner looks at.
pub struct Input<'a> {
    pub config: &'a RepoConfig,
    pub candidates: &'a [Candidate],
    pub prs: &'a [ExistingPr],
    pub ignores: &'a [Ignore],
    /// Current blob sha of each file on the base branch.
    pub blobs: &'a BTreeMap<String, String>,
    pub now: DateTime<Utc>,
    /// PRs digestif opened in this repository during the last hour.
    pub created_last_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The base branch already has every new digest.
    AlreadyApplied,
    /// Upstream went back: the pins in the base are current again.
    UpstreamReverted,
    /// The references changed or were removed, or config now ignores them.
    NoLongerNeeded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        branch: String,
        updates: Vec<Update>,
    },
    /// New commit (and body) on an open PR: the digest moved again, or the base changed
    /// under its files.
    Update {
        number: u64,
        branch: String,
        updates: Vec<Update>,
    },
    Close {
        number: u64,
        branch: String,
        reason: CloseReason,
    },
    /// Rewrite only the description of an open PR whose changes are current: its details
    /// were deferred (pull budget) and may be known now. No new commit.
    Describe {
        number: u64,
        branch: String,
        updates: Vec<Update>,
    },
    /// Tell the people on a PR that digestif stopped touching it.
    NotifyHandoff { number: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingReason {
    MinAge { until: DateTime<Utc> },
    OpenLimit { limit: u32 },
    HourlyLimit { limit: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub branch: String,
    pub updates: Vec<UpdateKey>,
    pub reason: PendingReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoredBy {
    Config,
    /// A closed PR or an `@digestif ignore` command.
    Person,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub pending: Vec<Pending>,
    pub ignored: Vec<(UpdateKey, IgnoredBy)>,
}

/// The branch an update belongs on, per the config's grouping.
pub fn branch_for(update: &Update, group: Group) -> String {
    if update.is_pin() {
        return PIN_BRANCH.to_string();
    }
    let r = &update.found.reference;
    let image_tag = match &r.tag {
        Some(t) => format!("{}-{}", r.name(), t),
        None => r.name(),
    };
    let name = match group {
        Group::All => "all".to_string(),
        Group::Image => image_tag,
        Group::File => format!("file-{}", update.found.file),
        Group::None => format!("{}-{}", update.found.file, image_tag),
    };
    format!("digestif/{}", branch_safe(&name))
}

/// Git ref names may not contain `:`, `..`, spaces and a few more; we keep `[A-Za-z0-9._-]`
/// and turn the rest into `-`, so the name is also readable in a URL.
fn branch_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let keep = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let c = if keep { c } else { '-' };
        if c == '.' && out.ends_with('.') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '.');
    trimmed.strip_suffix(".lock").unwrap_or(trimmed).to_string()
}

/// Decides what should happen now: which updates are wanted (or wait, or are ignored),
/// grouped into branches; what happens to each open PR; which new PRs fit the limits.
pub fn plan(input: &Input<'_>) -> Plan {
    let mut out = Plan::default();
    let open: Vec<&ExistingPr> = input
        .prs
        .iter()
        .filter(|p| p.state == PrState::Open)
        .collect();

    let mut eligible: Vec<Update> = Vec::new();
    let mut waiting: Vec<(Update, DateTime<Utc>)> = Vec::new();
    for c in input.candidates {
        match wanted_now(input, c) {
            Wanted::NotAnUpdate => {}
            Wanted::Ignored(key, by) => out.ignored.push((key, by)),
            Wanted::Waits(update, until) => waiting.push((update, until)),
            Wanted::Yes(update) => eligible.push(update),
        }
    }
    eligible.extend(kept_while_unknown(input.candidates, &open));
    let groups = by_branch(eligible, input.config.group);
    out.pending = waiting_for_min_age(waiting, input.config.group);

    let mut open_count = 0u32;
    for pr in &open {
        let decision = open_pr_decision(pr, &groups, &out.pending, input);
        open_count += u32::from(decision.stays_open);
        out.actions.extend(decision.action);
    }
    let handled: BTreeSet<&str> = open.iter().map(|p| p.branch.as_str()).collect();
    let new = groups
        .into_iter()
        .filter(|(branch, _)| !handled.contains(branch.as_str()));
    new_prs_within_limits(new, open_count, input, &mut out);
    out
}

/// What one candidate means for this plan.
enum Wanted {
    /// Nothing to propose, a path the config excludes, or an unpinned reference while
    /// pinning is off.
    NotAnUpdate,
    Ignored(UpdateKey, IgnoredBy),
    /// Wanted once `min-age` has passed, at the given time.
    Waits(Update, DateTime<Utc>),
    Yes(Update),
}

fn wanted_now(input: &Input<'_>, c: &Candidate) -> Wanted {
    let config = input.config;
    let Some(new) = &c.proposed else {
        return Wanted::NotAnUpdate;
    };
    let r = &c.found.reference;
    if !config.includes_path(&c.found.file) || (r.digest.is_none() && !config.pin) {
        return Wanted::NotAnUpdate;
    }
    let update = Update {
        found: c.found.clone(),
        new_digest: new.clone(),
        platform_pin: c.platform_pin.clone(),
        tag_digest: c.tag_digest.clone(),
        info: None,
        details: None,
    };
    let image = r.name();
    let digest = new.to_string();
    if config.is_ignored(&image, r.tag.as_deref(), Some(&digest)) {
        return Wanted::Ignored(update.key(), IgnoredBy::Config);
    }
    if input
        .ignores
        .iter()
        .any(|i| i.matches(&image, r.tag.as_deref(), &digest))
    {
        return Wanted::Ignored(update.key(), IgnoredBy::Person);
    }
    // Pinning adopts what is already in use, so the cooldown applies to moves only.
    if !update.is_pin() && !config.min_age.is_zero() {
        let first = c.first_seen.unwrap_or(input.now);
        let min_age = chrono::Duration::from_std(config.min_age).unwrap_or(chrono::Duration::MAX);
        let until = first
            .checked_add_signed(min_age)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if until > input.now {
            return Wanted::Waits(update, until);
        }
    }
    Wanted::Yes(update)
}

/// A reference whose lookup failed this cycle keeps what its open PR already proposes,
/// so a registry hiccup never shrinks or closes a PR.
fn kept_while_unknown(candidates: &[Candidate], open: &[&ExistingPr]) -> Vec<Update> {
    let mut kept = Vec::new();
    for c in candidates.iter().filter(|c| c.unknown) {
        let key_of = |k: &UpdateKey| {
            k.file == c.found.file
                && k.image == c.found.reference.name()
                && k.tag == c.found.reference.tag
                && k.old == c.found.reference.digest.as_ref().map(|d| d.to_string())
        };
        if let Some(k) = open.iter().flat_map(|p| &p.updates).find(|k| key_of(k))
            && let Ok(new) = k.new.parse::<Digest>()
        {
            kept.push(Update {
                found: c.found.clone(),
                new_digest: new,
                platform_pin: c.platform_pin.clone(),
                tag_digest: c.tag_digest.clone(),
                info: None,
                details: None,
            });
        }
    }
    kept
}

/// The wanted updates on their branches, each branch's in file order.
fn by_branch(eligible: Vec<Update>, group: Group) -> BTreeMap<String, Vec<Update>> {
    let mut groups: BTreeMap<String, Vec<Update>> = BTreeMap::new();
    for u in eligible {
        groups.entry(branch_for(&u, group)).or_default().push(u);
    }
    for g in groups.values_mut() {
        g.sort_by(|a, b| {
            (&a.found.file, a.found.span.start).cmp(&(&b.found.file, b.found.span.start))
        });
    }
    groups
}

/// The branches whose updates wait for `min-age`, each until its earliest update is due.
fn waiting_for_min_age(waiting: Vec<(Update, DateTime<Utc>)>, group: Group) -> Vec<Pending> {
    let mut waiting_groups: BTreeMap<String, (Vec<UpdateKey>, DateTime<Utc>)> = BTreeMap::new();
    for (u, until) in waiting {
        let e = waiting_groups
            .entry(branch_for(&u, group))
            .or_insert((Vec::new(), until));
        e.0.push(u.key());
        e.1 = e.1.min(until);
    }
    waiting_groups
        .into_iter()
        .map(|(branch, (updates, until))| Pending {
            branch,
            updates,
            reason: PendingReason::MinAge { until },
        })
        .collect()
}

/// What happens to one open PR: kept (perhaps updated, described or handed off), or closed.
struct OpenPrDecision {
    action: Option<Action>,
    /// It still counts against `pr-limit`.
    stays_open: bool,
}

fn open_pr_decision(
    pr: &ExistingPr,
    groups: &BTreeMap<String, Vec<Update>>,
    pending: &[Pending],
    input: &Input<'_>,
) -> OpenPrDecision {
    let stays = |action| OpenPrDecision {
        action,
        stays_open: true,
    };
    if pr.human_edited {
        let notify = (!pr.handoff_notified).then_some(Action::NotifyHandoff { number: pr.number });
        return stays(notify);
    }
    let Some(updates) = groups.get(&pr.branch) else {
        // A branch that only waits (min-age) stays open as it is.
        if pending.iter().any(|p| p.branch == pr.branch) {
            return stays(None);
        }
        return OpenPrDecision {
            action: Some(Action::Close {
                number: pr.number,
                branch: pr.branch.clone(),
                reason: close_reason(pr, input.candidates),
            }),
            stays_open: false,
        };
    };
    let wanted: BTreeSet<UpdateKey> = updates.iter().map(Update::key).collect();
    let have: BTreeSet<UpdateKey> = pr.updates.iter().cloned().collect();
    // No recorded base (a `@digestif rebase`, or a PR from before the store kept bases)
    // counts as moved: the PR is rebuilt on the current base.
    let base_moved = pr.base_blobs.is_empty()
        || pr
            .base_blobs
            .iter()
            .any(|(file, sha)| input.blobs.get(file) != Some(sha));
    if wanted != have || base_moved {
        stays(Some(Action::Update {
            number: pr.number,
            branch: pr.branch.clone(),
            updates: updates.clone(),
        }))
    } else if pr.details_pending {
        stays(Some(Action::Describe {
            number: pr.number,
            branch: pr.branch.clone(),
            updates: updates.clone(),
        }))
    } else {
        stays(None)
    }
}

/// New PRs for the branches without an open one, while `pr-limit` and `pr-hourly-limit`
/// allow; the rest are pending with the limit that holds them back.
fn new_prs_within_limits(
    new: impl Iterator<Item = (String, Vec<Update>)>,
    mut open_count: u32,
    input: &Input<'_>,
    out: &mut Plan,
) {
    let config = input.config;
    let mut created = input.created_last_hour;
    for (branch, updates) in new {
        let held_back = if config.pr_limit > 0 && open_count >= config.pr_limit {
            Some(PendingReason::OpenLimit {
                limit: config.pr_limit,
            })
        } else if config.pr_hourly_limit > 0 && created >= config.pr_hourly_limit {
            Some(PendingReason::HourlyLimit {
                limit: config.pr_hourly_limit,
            })
        } else {
            None
        };
        if let Some(reason) = held_back {
            out.pending.push(Pending {
                branch,
                updates: updates.iter().map(Update::key).collect(),
                reason,
            });
            continue;
        }
        open_count += 1;
        created += 1;
        out.actions.push(Action::Create { branch, updates });
    }
}

fn close_reason(pr: &ExistingPr, candidates: &[Candidate]) -> CloseReason {
    let current = |k: &UpdateKey| {
        candidates.iter().find(|c| {
            c.found.file == k.file
                && c.found.reference.name() == k.image
                && c.found.reference.tag == k.tag
        })
    };
    let all = |f: &dyn Fn(&Candidate, &UpdateKey) -> bool| {
        !pr.updates.is_empty()
            && pr
                .updates
                .iter()
                .all(|k| current(k).is_some_and(|c| f(c, k)))
    };
    let digest_of = |c: &Candidate| c.found.reference.digest.as_ref().map(|d| d.to_string());
    if all(&|c, k| digest_of(c).as_deref() == Some(k.new.as_str())) {
        CloseReason::AlreadyApplied
    } else if all(&|c, k| digest_of(c) == k.old && c.proposed.is_none() && !c.unknown) {
        CloseReason::UpstreamReverted
    } else {
        CloseReason::NoLongerNeeded
    }
}

impl Plan {
    /// What may be done from a partial view of the repository (a tree GitHub would not
    /// list completely): open PRs for what was seen, but never close or rewrite an open PR,
    /// whose other references may be in the part not seen. Returns the open PRs left alone.
    pub fn restrict_to_partial_view(&mut self) -> Vec<u64> {
        let mut kept = Vec::new();
        self.actions.retain(|a| match a {
            Action::Update { number, .. }
            | Action::Describe { number, .. }
            | Action::Close { number, .. } => {
                kept.push(*number);
                false
            }
            Action::Create { .. } | Action::NotifyHandoff { .. } => true,
        });
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::extract_file;
    use std::time::Duration;

    fn d(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap()
    }

    /// References from a Dockerfile, each resolved to `proposed`.
    fn candidates(file: &str, text: &str, proposed: &[Option<Digest>]) -> Vec<Candidate> {
        let e = extract_file(file, text.as_bytes()).unwrap();
        assert_eq!(e.references.len(), proposed.len(), "{e:?}");
        e.references
            .into_iter()
            .zip(proposed)
            .map(|(found, p)| Candidate {
                found,
                proposed: p.clone(),
                unknown: false,
                first_seen: Some(t0()),
                platform_pin: None,
                tag_digest: None,
            })
            .collect()
    }

    fn t0() -> DateTime<Utc> {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_partial_view_never_closes_or_rewrites_an_open_pr() {
        let mut p = Plan {
            actions: vec![
                Action::Create {
                    branch: "digestif/a".into(),
                    updates: vec![],
                },
                Action::Update {
                    number: 2,
                    branch: "digestif/b".into(),
                    updates: vec![],
                },
                Action::Close {
                    number: 3,
                    branch: "digestif/c".into(),
                    reason: CloseReason::NoLongerNeeded,
                },
                Action::NotifyHandoff { number: 4 },
            ],
            ..Plan::default()
        };
        assert_eq!(p.restrict_to_partial_view(), [2, 3]);
        assert_eq!(
            p.actions,
            [
                Action::Create {
                    branch: "digestif/a".into(),
                    updates: vec![],
                },
                Action::NotifyHandoff { number: 4 },
            ]
        );
    }

    fn input<'a>(
        config: &'a RepoConfig,
        candidates: &'a [Candidate],
        prs: &'a [ExistingPr],
        ignores: &'a [Ignore],
        blobs: &'a BTreeMap<String, String>,
    ) -> Input<'a> {
        Input {
            config,
            candidates,
            prs,
            ignores,
            blobs,
            now: t0() + chrono::Duration::days(1),
            created_last_hour: 0,
        }
    }

    fn two_images() -> String {
        format!("FROM python:3.12@{}\nFROM node:20@{}\n", d(1), d(2))
    }

    #[test]
    fn group_all_makes_one_pr_with_every_update() {
        let c = candidates("Dockerfile", &two_images(), &[Some(d(3)), Some(d(4))]);
        let cfg = RepoConfig::default();
        let blobs = BTreeMap::new();
        let p = plan(&input(&cfg, &c, &[], &[], &blobs));
        assert_eq!(p.actions.len(), 1);
        let Action::Create { branch, updates } = &p.actions[0] else {
            panic!("{p:?}")
        };
        assert_eq!(branch, "digestif/all");
        assert_eq!(updates.len(), 2);
    }

    #[test]
    fn grouping_modes_pick_stable_branch_names() {
        let c = candidates("build/Dockerfile", &two_images(), &[Some(d(3)), Some(d(4))]);
        let blobs = BTreeMap::new();
        let branches = |g: Group| {
            let cfg = RepoConfig {
                group: g,
                ..RepoConfig::default()
            };
            plan(&input(&cfg, &c, &[], &[], &blobs))
                .actions
                .iter()
                .map(|a| match a {
                    Action::Create { branch, .. } => branch.clone(),
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            branches(Group::Image),
            vec![
                "digestif/docker.io-library-node-20",
                "digestif/docker.io-library-python-3.12"
            ]
        );
        assert_eq!(
            branches(Group::File),
            vec!["digestif/file-build-Dockerfile"]
        );
        assert_eq!(
            branches(Group::None),
            vec![
                "digestif/build-Dockerfile-docker.io-library-node-20",
                "digestif/build-Dockerfile-docker.io-library-python-3.12"
            ]
        );
    }

    #[test]
    fn tag_only_references_get_a_separate_pin_pr_only_when_pin_is_on() {
        let text = format!("FROM python:3.12\nFROM node:20@{}\n", d(2));
        let c = candidates("Dockerfile", &text, &[Some(d(5)), Some(d(4))]);
        let blobs = BTreeMap::new();
        let p = plan(&input(&RepoConfig::default(), &c, &[], &[], &blobs));
        assert_eq!(p.actions.len(), 1);
        let cfg = RepoConfig {
            pin: true,
            ..RepoConfig::default()
        };
        let p = plan(&input(&cfg, &c, &[], &[], &blobs));
        let branches: Vec<_> = p
            .actions
            .iter()
            .map(|a| match a {
                Action::Create { branch, .. } => branch.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(branches, vec!["digestif/all", "digestif/pin"]);
    }

    fn open_pr(branch: &str, updates: Vec<UpdateKey>) -> ExistingPr {
        ExistingPr {
            number: 7,
            branch: branch.into(),
            state: PrState::Open,
            human_edited: false,
            handoff_notified: false,
            updates,
            base_blobs: [("Dockerfile".to_string(), "aaa".to_string())].into(),
            details_pending: false,
        }
    }

    #[test]
    fn a_pr_without_a_recorded_base_is_rebuilt() {
        // What `@digestif rebase` leaves behind.
        let text = format!("FROM python:3.12@{}\n", d(1));
        let c = candidates("Dockerfile", &text, &[Some(d(3))]);
        let cfg = RepoConfig::default();
        let mut pr = open_pr(
            "digestif/all",
            vec![UpdateKey {
                file: "Dockerfile".into(),
                image: "docker.io/library/python".into(),
                tag: Some("3.12".into()),
                old: Some(d(1).to_string()),
                new: d(3).to_string(),
            }],
        );
        pr.base_blobs.clear();
        let blobs: BTreeMap<_, _> = [("Dockerfile".to_string(), "aaa".to_string())].into();
        let p = plan(&input(&cfg, &c, &[pr], &[], &blobs));
        assert!(
            matches!(&p.actions[..], [Action::Update { number: 7, .. }]),
            "{p:?}"
        );
    }

    #[test]
    fn an_open_pr_is_left_alone_when_current_and_updated_when_the_digest_moves_again() {
        let text = format!("FROM python:3.12@{}\n", d(1));
        let c = candidates("Dockerfile", &text, &[Some(d(3))]);
        let blobs: BTreeMap<_, _> = [("Dockerfile".to_string(), "aaa".to_string())].into();
        let cfg = RepoConfig::default();
        let key = |new: Digest| UpdateKey {
            file: "Dockerfile".into(),
            image: "docker.io/library/python".into(),
            tag: Some("3.12".into()),
            old: Some(d(1).to_string()),
            new: new.to_string(),
        };
        let prs = [open_pr("digestif/all", vec![key(d(3))])];
        assert_eq!(plan(&input(&cfg, &c, &prs, &[], &blobs)).actions, vec![]);
        // Same changes, but its description still owes the details: rewrite only that.
        let mut owing = open_pr("digestif/all", vec![key(d(3))]);
        owing.details_pending = true;
        let p = plan(&input(&cfg, &c, &[owing], &[], &blobs));
        assert!(
            matches!(&p.actions[..], [Action::Describe { number: 7, updates, .. }] if updates.len() == 1),
            "{p:?}"
        );
        let prs = [open_pr("digestif/all", vec![key(d(2))])];
        let p = plan(&input(&cfg, &c, &prs, &[], &blobs));
        assert!(
            matches!(&p.actions[..], [Action::Update { number: 7, .. }]),
            "{p:?}"
        );
    }

    #[test]
    fn a_base_change_under_the_prs_files_regenerates_it() {
        let text = format!("FROM python:3.12@{}\n", d(1));
        let c = candidates("Dockerfile", &text, &[Some(d(3))]);
        let cfg = RepoConfig::default();
        let mut pr = open_pr(
            "digestif/all",
            vec![UpdateKey {
                file: "Dockerfile".into(),
                image: "docker.io/library/python".into(),
                tag: Some("3.12".into()),
                old: Some(d(1).to_string()),
                new: d(3).to_string(),
            }],
        );
        pr.base_blobs.insert("Dockerfile".into(), "aaa".into());
        let prs = [pr];
        let same: BTreeMap<_, _> = [("Dockerfile".to_string(), "aaa".to_string())].into();
        assert_eq!(plan(&input(&cfg, &c, &prs, &[], &same)).actions, vec![]);
        let moved: BTreeMap<_, _> = [("Dockerfile".to_string(), "bbb".to_string())].into();
        let p = plan(&input(&cfg, &c, &prs, &[], &moved));
        assert!(matches!(&p.actions[..], [Action::Update { .. }]), "{p:?}");
    }

    #[test]
    fn obsolete_prs_close_with_the_right_reason() {
        let key = UpdateKey {
            file: "Dockerfile".into(),
            image: "docker.io/library/python".into(),
            tag: Some("3.12".into()),
            old: Some(d(1).to_string()),
            new: d(3).to_string(),
        };
        let prs = [open_pr("digestif/all", vec![key])];
        let cfg = RepoConfig::default();
        let blobs = BTreeMap::new();
        // Upstream went back: the file still pins d(1) and the registry agrees.
        let c = candidates(
            "Dockerfile",
            &format!("FROM python:3.12@{}\n", d(1)),
            &[None],
        );
        let p = plan(&input(&cfg, &c, &prs, &[], &blobs));
        assert_eq!(
            p.actions,
            vec![Action::Close {
                number: 7,
                branch: "digestif/all".into(),
                reason: CloseReason::UpstreamReverted
            }]
        );
        // Someone applied the update by hand.
        let c = candidates(
            "Dockerfile",
            &format!("FROM python:3.12@{}\n", d(3)),
            &[None],
        );
        let p = plan(&input(&cfg, &c, &prs, &[], &blobs));
        assert!(matches!(
            &p.actions[..],
            [Action::Close {
                reason: CloseReason::AlreadyApplied,
                ..
            }]
        ));
    }

    #[test]
    fn a_failed_lookup_keeps_what_the_open_pr_proposes() {
        let key = UpdateKey {
            file: "Dockerfile".into(),
            image: "docker.io/library/python".into(),
            tag: Some("3.12".into()),
            old: Some(d(1).to_string()),
            new: d(3).to_string(),
        };
        let prs = [open_pr("digestif/all", vec![key])];
        let mut c = candidates(
            "Dockerfile",
            &format!("FROM python:3.12@{}\n", d(1)),
            &[None],
        );
        c[0].unknown = true;
        let blobs: BTreeMap<_, _> = [("Dockerfile".to_string(), "aaa".to_string())].into();
        let p = plan(&input(&RepoConfig::default(), &c, &prs, &[], &blobs));
        assert_eq!(p.actions, vec![]);
    }

    #[test]
    fn ignores_from_config_and_people_are_applied() {
        let c = candidates("Dockerfile", &two_images(), &[Some(d(3)), Some(d(4))]);
        let blobs = BTreeMap::new();
        let cfg = RepoConfig::parse("ignore: [{image: node}]\n").unwrap();
        let ignores = [Ignore {
            image: "docker.io/library/python".into(),
            tag: Some("3.12".into()),
            digest: Some(d(3).to_string()),
        }];
        let p = plan(&input(&cfg, &c, &[], &ignores, &blobs));
        assert_eq!(p.actions, vec![]);
        let by: Vec<_> = p.ignored.iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(by, vec![IgnoredBy::Person, IgnoredBy::Config]);
        // A later, different digest is proposed again.
        let c = candidates("Dockerfile", &two_images(), &[Some(d(9)), Some(d(4))]);
        let p = plan(&input(&cfg, &c, &[], &ignores, &blobs));
        assert_eq!(p.actions.len(), 1);
    }

    #[test]
    fn min_age_holds_fresh_digests_back() {
        let mut c = candidates("Dockerfile", &two_images(), &[Some(d(3)), Some(d(4))]);
        let blobs = BTreeMap::new();
        let cfg = RepoConfig {
            min_age: Duration::from_secs(3 * 86_400),
            ..RepoConfig::default()
        };
        let now = t0() + chrono::Duration::days(1);
        c[1].first_seen = Some(now - chrono::Duration::days(5));
        let p = plan(&input(&cfg, &c, &[], &[], &blobs));
        let [Action::Create { updates, .. }] = &p.actions[..] else {
            panic!("{p:?}")
        };
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].found.reference.repository, "library/node");
        assert_eq!(
            p.pending[0].reason,
            PendingReason::MinAge {
                until: t0() + chrono::Duration::days(3)
            }
        );
    }

    #[test]
    fn limits_leave_the_rest_pending() {
        let text = format!("FROM a:1@{}\nFROM b:1@{}\nFROM c:1@{}\n", d(1), d(1), d(1));
        let c = candidates("Dockerfile", &text, &[Some(d(2)), Some(d(2)), Some(d(2))]);
        let blobs = BTreeMap::new();
        let cfg = RepoConfig {
            group: Group::Image,
            pr_limit: 2,
            ..RepoConfig::default()
        };
        let p = plan(&input(&cfg, &c, &[], &[], &blobs));
        assert_eq!(p.actions.len(), 2);
        assert_eq!(p.pending[0].reason, PendingReason::OpenLimit { limit: 2 });
        let cfg = RepoConfig {
            group: Group::Image,
            pr_limit: 0,
            pr_hourly_limit: 2,
            ..RepoConfig::default()
        };
        let mut i = input(&cfg, &c, &[], &[], &blobs);
        i.created_last_hour = 1;
        let p = plan(&i);
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.pending.len(), 2);
        assert_eq!(p.pending[0].reason, PendingReason::HourlyLimit { limit: 2 });
    }

    #[test]
    fn a_human_edited_pr_is_handed_off_once() {
        let c = candidates("Dockerfile", &two_images(), &[Some(d(3)), Some(d(4))]);
        let blobs = BTreeMap::new();
        let mut pr = open_pr("digestif/all", vec![]);
        pr.human_edited = true;
        let prs = [pr.clone()];
        let p = plan(&input(&RepoConfig::default(), &c, &prs, &[], &blobs));
        assert_eq!(p.actions, vec![Action::NotifyHandoff { number: 7 }]);
        pr.handoff_notified = true;
        let prs = [pr];
        let p = plan(&input(&RepoConfig::default(), &c, &prs, &[], &blobs));
        assert_eq!(p.actions, vec![]);
    }

    #[test]
    fn branch_names_are_valid_git_refs() {
        assert_eq!(branch_safe("a b:c..d~e^f?g*h[i\\j"), "a-b-c.d-e-f-g-h-i-j");
        assert_eq!(branch_safe("x.lock"), "x");
        assert_eq!(branch_safe("localhost:5000/a"), "localhost-5000-a");
    }
}
