//! The repository's own settings: `.github/digestif.yml` (or `.yaml`, or `.digestif.yml`).
//!
//! Parsing is strict: an unknown key or a bad value is an error with line and column, so a
//! typo never silently turns into a default. A repository without the file gets defaults.

use std::fmt;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde_saphyr::Spanned;
use thiserror::Error;

use crate::reference::Reference;

/// Where digestif looks for the file, first match wins.
pub const CONFIG_PATHS: [&str; 3] = [
    ".github/digestif.yml",
    ".github/digestif.yaml",
    ".digestif.yml",
];

/// The largest configuration file digestif reads, in bytes. A real one is a few hundred
/// bytes; any pull request (forks included) makes the server read the file it proposes,
/// so a bigger one is refused before it is fetched.
pub const MAX_CONFIG_SIZE: u64 = 128 * 1024;

/// The error for a file over [`MAX_CONFIG_SIZE`].
pub fn too_large() -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        line: None,
        column: None,
        message: format!(
            "the file is larger than {} KiB, the most digestif reads of a configuration file",
            MAX_CONFIG_SIZE / 1024
        ),
    }])
}

/// One problem in the file, with the 1-based line and column it points at.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{message}", position(*line, *column))]
pub struct ConfigError {
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

fn position(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

/// All problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// How updates are bundled into pull requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// One PR for every digest update in the repository.
    #[default]
    All,
    /// One PR per image (all its tags and files).
    Image,
    /// One PR per file.
    File,
    /// One PR per reference.
    None,
}

/// `ignore:` entry: an image, optionally narrowed to tags (globs) or digests.
#[derive(Debug, Clone)]
pub struct IgnoreRule {
    /// Normalised `registry/repository`, e.g. `docker.io/library/node`.
    pub image: String,
    pub tags: Option<GlobSet>,
    pub tag_patterns: Vec<String>,
    pub digests: Vec<String>,
}

impl IgnoreRule {
    /// Whether this rule ignores `image` (normalised name) at `tag` / `digest`.
    pub fn matches(&self, image: &str, tag: Option<&str>, digest: Option<&str>) -> bool {
        if self.image != image {
            return false;
        }
        if let Some(tags) = &self.tags
            && !tag.is_some_and(|t| tags.is_match(t))
        {
            return false;
        }
        if !self.digests.is_empty() && !digest.is_some_and(|d| self.digests.iter().any(|x| x == d))
        {
            return false;
        }
        true
    }
}

/// A validated configuration with every default filled in.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    /// A 5-field cron expression or `hourly`, `daily`, `weekly`, `monthly`.
    pub schedule: String,
    pub timezone: chrono_tz::Tz,
    pub pin: bool,
    pub include: GlobSet,
    pub exclude: GlobSet,
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub ignore: Vec<IgnoreRule>,
    pub group: Group,
    pub min_age: Duration,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub automerge: bool,
    pub commit_message_prefix: Option<String>,
    /// Open PRs at most; 0 means no limit.
    pub pr_limit: u32,
    /// PRs created per hour at most; 0 means no limit.
    pub pr_hourly_limit: u32,
    /// `None` means the repository's default branch.
    pub base_branch: Option<String>,
    pub dashboard: bool,
}

pub const DEFAULT_SCHEDULE: &str = "daily";
pub const DEFAULT_PR_LIMIT: u32 = 5;

impl Default for RepoConfig {
    fn default() -> Self {
        let all = glob_set(&["**".to_string()]).unwrap_or_else(|_| GlobSet::empty());
        RepoConfig {
            schedule: DEFAULT_SCHEDULE.to_string(),
            timezone: chrono_tz::UTC,
            pin: false,
            include: all,
            exclude: GlobSet::empty(),
            include_patterns: vec!["**".to_string()],
            exclude_patterns: Vec::new(),
            ignore: Vec::new(),
            group: Group::All,
            min_age: Duration::ZERO,
            labels: Vec::new(),
            reviewers: Vec::new(),
            assignees: Vec::new(),
            automerge: false,
            commit_message_prefix: None,
            pr_limit: DEFAULT_PR_LIMIT,
            pr_hourly_limit: 0,
            base_branch: None,
            dashboard: false,
        }
    }
}

impl RepoConfig {
    /// Parses and validates the file's text; every problem found is reported.
    pub fn parse(text: &str) -> Result<RepoConfig, ConfigErrors> {
        if text.trim().is_empty() {
            return Ok(RepoConfig::default());
        }
        let raw: Option<Raw> = serde_saphyr::from_str(text).map_err(|e| {
            let location = e.location();
            ConfigErrors(vec![ConfigError {
                line: location.map(|l| l.line()),
                column: location.map(|l| l.column()),
                message: plain_message(&e),
            }])
        })?;
        match raw {
            Some(raw) => raw.validate(),
            // A file holding only comments is an empty mapping, not an error.
            None => Ok(RepoConfig::default()),
        }
    }

    /// Whether the file at `path` (relative, `/`-separated) is in scope.
    pub fn includes_path(&self, path: &str) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    /// Whether an `ignore:` rule covers this reference.
    pub fn is_ignored(&self, image: &str, tag: Option<&str>, digest: Option<&str>) -> bool {
        self.ignore.iter().any(|r| r.matches(image, tag, digest))
    }
}

/// serde-saphyr renders a source snippet; users see the line and column from us instead.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    // Drop a trailing " at line X column Y" the library may add; we print our own position.
    let text = match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    text.trim().to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    pin: Option<bool>,
    paths: Option<RawPaths>,
    ignore: Option<Vec<RawIgnore>>,
    group: Option<Group>,
    min_age: Option<Spanned<String>>,
    labels: Option<Vec<String>>,
    reviewers: Option<Vec<Spanned<String>>>,
    assignees: Option<Vec<String>>,
    automerge: Option<bool>,
    commit_message: Option<RawCommitMessage>,
    pull_requests: Option<RawPullRequests>,
    base_branch: Option<String>,
    dashboard: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    include: Option<Vec<Spanned<String>>>,
    exclude: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIgnore {
    image: Spanned<String>,
    tags: Option<Vec<Spanned<String>>>,
    digests: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommitMessage {
    prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPullRequests {
    limit: Option<u32>,
    hourly_limit: Option<u32>,
}

fn at<T>(s: &Spanned<T>, message: String) -> ConfigError {
    ConfigError {
        line: Some(s.referenced.line()),
        column: Some(s.referenced.column()),
        message,
    }
}

impl Raw {
    fn validate(self) -> Result<RepoConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let mut c = RepoConfig::default();

        if let Some(tz) = &self.timezone {
            match tz.value.parse::<chrono_tz::Tz>() {
                Ok(t) => c.timezone = t,
                Err(_) => errors.push(at(
                    tz,
                    format!(
                        "timezone {:?} is not an IANA time zone (e.g. Europe/Berlin, UTC)",
                        tz.value
                    ),
                )),
            }
        }
        if let Some(s) = &self.schedule {
            match validate_schedule(&s.value) {
                Ok(()) => c.schedule = s.value.trim().to_string(),
                Err(m) => errors.push(at(s, m)),
            }
        }
        c.pin = self.pin.unwrap_or(false);
        if let Some(paths) = self.paths {
            if let Some(include) = paths.include {
                match spanned_globs(&include) {
                    Ok((set, pats)) => (c.include, c.include_patterns) = (set, pats),
                    Err(e) => errors.push(e),
                }
            }
            if let Some(exclude) = paths.exclude {
                match spanned_globs(&exclude) {
                    Ok((set, pats)) => (c.exclude, c.exclude_patterns) = (set, pats),
                    Err(e) => errors.push(e),
                }
            }
        }
        for rule in self.ignore.unwrap_or_default() {
            match ignore_rule(rule) {
                Ok(r) => c.ignore.push(r),
                Err(e) => errors.push(e),
            }
        }
        c.group = self.group.unwrap_or_default();
        if let Some(m) = &self.min_age {
            match parse_duration(&m.value) {
                Ok(d) => c.min_age = d,
                Err(msg) => errors.push(at(m, msg)),
            }
        }
        c.labels = self.labels.unwrap_or_default();
        for r in self.reviewers.unwrap_or_default() {
            let valid = match r.value.split_once('/') {
                Some((org, team)) => valid_login(org) && valid_team_slug(team),
                None => valid_login(&r.value),
            };
            if valid {
                c.reviewers.push(r.value);
            } else {
                errors.push(at(
                    &r,
                    format!(
                        "reviewer {:?} is neither a user login nor an org/team slug",
                        r.value
                    ),
                ));
            }
        }
        c.assignees = self.assignees.unwrap_or_default();
        c.automerge = self.automerge.unwrap_or(false);
        c.commit_message_prefix = self
            .commit_message
            .and_then(|m| m.prefix)
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty());
        if let Some(p) = self.pull_requests {
            c.pr_limit = p.limit.unwrap_or(DEFAULT_PR_LIMIT);
            c.pr_hourly_limit = p.hourly_limit.unwrap_or(0);
        }
        c.base_branch = self.base_branch.filter(|b| !b.trim().is_empty());
        c.dashboard = self.dashboard.unwrap_or(false);

        if errors.is_empty() {
            Ok(c)
        } else if errors.len() > 1 {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(errors))
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// A schedule is a preset or a standard 5-field cron expression (no seconds field).
pub fn validate_schedule(expr: &str) -> Result<(), String> {
    let expr = expr.trim();
    if matches!(expr, "hourly" | "daily" | "weekly" | "monthly") {
        return Ok(());
    }
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "schedule {expr:?} must be hourly, daily, weekly, monthly or a 5-field cron expression (found {fields} fields)"
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse(expr)
        .map(|_| ())
        .map_err(|e| format!("schedule {expr:?} is not a valid cron expression: {e}"))
}

fn spanned_globs(patterns: &[Spanned<String>]) -> Result<(GlobSet, Vec<String>), ConfigError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let g =
            Glob::new(&p.value).map_err(|e| at(p, format!("invalid glob {:?}: {e}", p.value)))?;
        b.add(g);
    }
    let set = b.build().map_err(|e| ConfigError {
        line: None,
        column: None,
        message: e.to_string(),
    })?;
    Ok((set, patterns.iter().map(|p| p.value.clone()).collect()))
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p)?);
    }
    b.build()
}

fn ignore_rule(raw: RawIgnore) -> Result<IgnoreRule, ConfigError> {
    let reference =
        Reference::parse(&raw.image.value).map_err(|e| at(&raw.image, format!("ignore: {e}")))?;
    if raw.image.value.contains(['@'])
        || raw
            .image
            .value
            .rsplit('/')
            .next()
            .is_some_and(|l| l.contains(':'))
    {
        return Err(at(
            &raw.image,
            format!(
                "ignore: image {:?} must be a name without tag or digest; put tags under `tags:`",
                raw.image.value
            ),
        ));
    }
    let (tags, tag_patterns) = match &raw.tags {
        Some(t) => {
            let (set, pats) = spanned_globs(t)?;
            (Some(set), pats)
        }
        None => (None, Vec::new()),
    };
    let mut digests = Vec::new();
    for d in raw.digests.unwrap_or_default() {
        crate::reference::Digest::parse(&d.value).map_err(|e| at(&d, format!("ignore: {e}")))?;
        digests.push(d.value);
    }
    Ok(IgnoreRule {
        image: reference.name(),
        tags,
        tag_patterns,
        digests,
    })
}

/// `30m`, `12h`, `3d`, `1w`, `0`, also with long units (`3 days`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad =
        || format!("duration {text:?} must be a number with a unit: m, h, d or w (e.g. 3d, 12h)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let unit_secs = match unit.trim() {
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// GitHub logins: alphanumerics and single hyphens, at most 39 characters.
fn valid_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn valid_team_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// JSON Schema of the file, for editors (`digestif config-schema`).
pub fn json_schema() -> serde_json::Value {
    let strings = serde_json::json!({"type": "array", "items": {"type": "string"}});
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/digestif/digestif/schema/digestif.json",
        "title": "digestif repository configuration",
        "description": "Settings for digestif in .github/digestif.yml",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "schedule": {
                "description": "When to check registries: hourly, daily, weekly, monthly, or a 5-field cron expression.",
                "type": "string",
                "default": DEFAULT_SCHEDULE,
                "examples": ["daily", "0 6 * * 1-5"]
            },
            "timezone": {
                "description": "IANA time zone for the schedule.",
                "type": "string",
                "default": "UTC",
                "examples": ["Europe/Berlin"]
            },
            "pin": {
                "description": "Also add digests to references that only name a tag.",
                "type": "boolean",
                "default": false
            },
            "paths": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "include": {"description": "Globs of files to read.", "default": ["**"], "type": "array", "items": {"type": "string"}},
                    "exclude": {"description": "Globs of files to leave alone.", "default": [], "type": "array", "items": {"type": "string"}}
                }
            },
            "ignore": {
                "description": "Images (optionally only some tags or digests) never to update.",
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "description": "Image name without tag, e.g. node or docker.io/library/node."},
                        "tags": {"type": "array", "items": {"type": "string"}, "description": "Tag globs, e.g. 18*."},
                        "digests": {"type": "array", "items": {"type": "string", "pattern": "^sha(256|384|512):[a-f0-9]+$"}}
                    }
                }
            },
            "group": {
                "description": "How updates are bundled into pull requests.",
                "enum": ["all", "image", "file", "none"],
                "default": "all"
            },
            "min-age": {
                "description": "Wait this long after digestif first saw a digest before proposing it (e.g. 3d, 12h).",
                "type": "string",
                "pattern": "^\\s*(0|[0-9]+\\s*(m|min|mins|minute|minutes|h|hour|hours|d|day|days|w|week|weeks))\\s*$",
                "default": "0"
            },
            "labels": {"description": "Labels for digestif's pull requests.", "default": [], "type": "array", "items": {"type": "string"}},
            "reviewers": {"description": "Users or org/team slugs to request reviews from.", "default": [], "type": "array", "items": {"type": "string"}},
            "assignees": strings.clone(),
            "automerge": {"description": "Enable GitHub auto-merge on digestif's pull requests.", "type": "boolean", "default": false},
            "commit-message": {
                "type": "object",
                "additionalProperties": false,
                "properties": {"prefix": {"type": "string", "description": "Prefix for commit messages and PR titles, e.g. chore(deps)."}}
            },
            "pull-requests": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "limit": {"type": "integer", "minimum": 0, "default": DEFAULT_PR_LIMIT, "description": "Open pull requests at most (0: no limit)."},
                    "hourly-limit": {"type": "integer", "minimum": 0, "default": 0, "description": "Pull requests opened per hour at most (0: no limit)."}
                }
            },
            "base-branch": {"type": "string", "description": "Branch to update; the repository's default branch when absent."},
            "dashboard": {"type": "boolean", "default": false, "description": "Keep a dashboard issue listing every reference and pending update."}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"schedule: "0 6 * * 1-5"   # cron or hourly|daily|weekly|monthly
timezone: Europe/Berlin
pin: false                # also add digests to tag-only references
paths: {include: ["**"], exclude: ["test/**"]}
ignore: [{image: "docker.io/library/node", tags: ["18*"]}]
group: all                # all | image | file | none
min-age: 3d               # cooldown since digestif first saw a digest
labels: [dependencies]
reviewers: [octocat, my-org/platform]
assignees: []
automerge: false
commit-message: {prefix: "chore(deps)"}
pull-requests: {limit: 5, hourly-limit: 2}
base-branch: main
dashboard: false
"#;

    #[test]
    fn the_documented_example_parses() {
        let c = RepoConfig::parse(FULL).unwrap();
        assert_eq!(c.schedule, "0 6 * * 1-5");
        assert_eq!(c.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(c.min_age, Duration::from_secs(3 * 86_400));
        assert_eq!(c.reviewers, vec!["octocat", "my-org/platform"]);
        assert_eq!(c.pr_hourly_limit, 2);
        assert_eq!(c.commit_message_prefix.as_deref(), Some("chore(deps)"));
        assert!(c.includes_path("Dockerfile"));
        assert!(!c.includes_path("test/Dockerfile"));
        assert!(c.is_ignored("docker.io/library/node", Some("18-alpine"), None));
        assert!(!c.is_ignored("docker.io/library/node", Some("20"), None));
        assert_eq!(c.base_branch.as_deref(), Some("main"));
    }

    #[test]
    fn missing_or_empty_file_means_defaults() {
        for text in ["", "\n", "# only a comment\n"] {
            let c = RepoConfig::parse(text).unwrap();
            assert_eq!(c.schedule, "daily");
            assert_eq!(c.group, Group::All);
            assert!(!c.pin);
            assert!(c.includes_path("a/b/Dockerfile"));
        }
    }

    #[test]
    fn unknown_keys_are_errors_with_line_and_column() {
        let e = RepoConfig::parse("pin: true\nschedul: daily\n").unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].line, Some(2));
        assert_eq!(e.0[0].column, Some(1));
        assert!(e.0[0].message.contains("schedul"), "{}", e);
        assert!(e.to_string().starts_with("line 2, column 1: "), "{e}");
    }

    #[test]
    fn bad_values_are_errors_with_line_and_column_and_all_are_reported() {
        let text = "schedule: \"0 6 * *\"\ntimezone: Mars/Olympus\nmin-age: soon\nreviewers: [ok, \"bad user\"]\n";
        let e = RepoConfig::parse(text).unwrap_err();
        let lines: Vec<_> = e.0.iter().map(|x| x.line).collect();
        assert_eq!(lines, vec![Some(1), Some(2), Some(3), Some(4)], "{e}");
        assert!(e.to_string().contains("Mars/Olympus"));
        assert!(e.to_string().contains("5-field cron"));
    }

    #[test]
    fn wrong_types_and_enums_are_errors() {
        let e = RepoConfig::parse("group: everything\n").unwrap_err();
        assert_eq!(e.0[0].line, Some(1));
        let e = RepoConfig::parse("pin: maybe\n").unwrap_err();
        assert_eq!(e.0[0].line, Some(1));
        let e = RepoConfig::parse("labels: {a: 1}\n").unwrap_err();
        assert_eq!(e.0[0].line, Some(1));
        let e = RepoConfig::parse("ignore: [{image: \"node:18\"}]\n").unwrap_err();
        assert!(e.to_string().contains("without tag"), "{e}");
        let e = RepoConfig::parse("schedule: \"0 0 6 * * 1\"\n").unwrap_err();
        assert!(e.to_string().contains("6 fields"), "{e}");
        let e = RepoConfig::parse(": : :\n  - [").unwrap_err();
        assert!(e.0[0].line.is_some(), "{e}");
    }

    #[test]
    fn cron_and_presets() {
        for ok in [
            "hourly",
            "daily",
            "weekly",
            "monthly",
            "*/15 * * * *",
            "0 6 * * MON-FRI",
        ] {
            validate_schedule(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["yearly", "61 * * * *", "* * * *", "0 0 0 * * *"] {
            assert!(validate_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(
            parse_duration("2 weeks").unwrap(),
            Duration::from_secs(1_209_600)
        );
        assert!(parse_duration("3").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
    }

    #[test]
    fn ignore_rules_normalise_image_names() {
        let c = RepoConfig::parse("ignore: [{image: node}, {image: ghcr.io/o/i, digests: [\"sha256:1111111111111111111111111111111111111111111111111111111111111111\"]}]\n").unwrap();
        assert!(c.is_ignored("docker.io/library/node", Some("20"), None));
        assert!(!c.is_ignored("ghcr.io/o/i", Some("1"), Some("sha256:22")));
        assert!(c.is_ignored(
            "ghcr.io/o/i",
            Some("1"),
            Some("sha256:1111111111111111111111111111111111111111111111111111111111111111")
        ));
    }

    #[test]
    fn the_schema_lists_exactly_the_keys_the_parser_accepts() {
        let schema = json_schema();
        let props = schema["properties"].as_object().unwrap();
        // Every documented key is accepted...
        let keys: Vec<&String> = props.keys().collect();
        assert_eq!(keys.len(), 15);
        RepoConfig::parse(FULL).unwrap();
        for k in FULL.lines().filter_map(|l| l.split(':').next()) {
            assert!(props.contains_key(k), "{k} missing from the schema");
        }
        // ...and anything else is refused.
        assert!(RepoConfig::parse("extra: 1\n").is_err());
    }
}
