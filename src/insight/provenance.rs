//! The facts a SLSA provenance attestation adds: who built the image, from which source.
//!
//! BuildKit writes SLSA v0.2 by default (`predicate.builder.id`, and the repository and
//! commit under `predicate.metadata["https://mobyproject.org/buildkit@v1#metadata"].vcs`)
//! and v1 on request (`predicate.runDetails.builder.id`, the same `vcs` under
//! `runDetails.metadata`, keyed `buildkit_metadata` or the v0.2 key).

use serde_json::Value;

/// What the provenance says, where it says it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// `builder.id`, when not empty (BuildKit leaves it empty outside CI).
    pub builder: Option<String>,
    /// The source repository (`vcs.source`), as written (`git@github.com:o/r.git`).
    pub source: Option<String>,
    /// The source commit (`vcs.revision`).
    pub revision: Option<String>,
}

pub fn is_provenance_predicate(t: &str) -> bool {
    t.starts_with("https://slsa.dev/provenance/")
}

const BUILDKIT_METADATA: &str = "https://mobyproject.org/buildkit@v1#metadata";

/// Reads a provenance in-toto statement; `None` when it is not one.
pub fn parse_statement(bytes: &[u8]) -> Option<Provenance> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let t = v.get("predicateType")?.as_str()?;
    if !is_provenance_predicate(t) {
        return None;
    }
    let p = v.get("predicate")?;
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let builder = text(p.pointer("/builder/id")).or(text(p.pointer("/runDetails/builder/id")));
    let vcs = [p.get("metadata"), p.pointer("/runDetails/metadata")]
        .into_iter()
        .flatten()
        .flat_map(|m| [m.get(BUILDKIT_METADATA), m.get("buildkit_metadata")])
        .flatten()
        .find_map(|m| m.get("vcs"));
    Some(Provenance {
        builder,
        source: text(vcs.and_then(|v| v.get("source"))),
        revision: text(vcs.and_then(|v| v.get("revision"))),
    })
}

/// `https://github.com/o/r` for a GitHub repository written any way git accepts it
/// (`git@github.com:o/r.git`, `https://github.com/o/r.git`, `ssh://git@github.com/o/r`);
/// `None` for other hosts.
pub fn github_repo(source: &str) -> Option<String> {
    let s = source.trim().trim_end_matches('/');
    let rest = s
        .strip_prefix("https://github.com/")
        .or_else(|| s.strip_prefix("http://github.com/"))
        .or_else(|| s.strip_prefix("git@github.com:"))
        .or_else(|| s.strip_prefix("ssh://git@github.com/"))
        .or_else(|| s.strip_prefix("git://github.com/"))?;
    let rest = rest.split(['#', '?']).next().unwrap_or(rest);
    let mut parts = rest.split('/');
    let owner = parts.next().filter(|p| valid_part(p))?;
    let repo = parts.next()?.trim_end_matches(".git");
    if !valid_part(repo) {
        return None;
    }
    Some(format!("https://github.com/{owner}/{repo}"))
}

fn valid_part(p: &str) -> bool {
    !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_min_provenance_from_dockers_docs() {
        let bytes = std::fs::read(format!(
            "{}/tests/fixtures/attestations/provenance-statement.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let p = parse_statement(&bytes).unwrap();
        assert_eq!(p.builder, None, "an empty builder id is no builder");
        assert_eq!(p.source.as_deref(), Some("git@github.com:<org>/<repo>.git"));
        assert_eq!(
            p.revision.as_deref(),
            Some("a9ba846486420e07d30db1107411ac3697ecab68")
        );
        // The placeholder is not a repository anyone can link to.
        assert_eq!(github_repo(p.source.as_deref().unwrap()), None);
    }

    #[test]
    fn slsa_v1_shape() {
        let v1 = serde_json::json!({
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"runDetails": {
                "builder": {"id": "https://github.com/acme/app/actions/runs/1/attempts/1"},
                "metadata": {"buildkit_metadata": {"vcs": {
                    "source": "https://github.com/acme/app.git", "revision": "abc"}}}}}
        });
        let p = parse_statement(&serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!(
            p.builder.as_deref(),
            Some("https://github.com/acme/app/actions/runs/1/attempts/1")
        );
        assert_eq!(p.revision.as_deref(), Some("abc"));
        assert_eq!(parse_statement(b"{\"predicateType\": \"x\"}"), None);
    }

    #[test]
    fn github_repositories_in_every_spelling() {
        for s in [
            "git@github.com:docker-library/python.git",
            "https://github.com/docker-library/python",
            "https://github.com/docker-library/python.git/",
            "ssh://git@github.com/docker-library/python",
            "https://github.com/docker-library/python#master:3.12/slim-bookworm",
        ] {
            assert_eq!(
                github_repo(s).as_deref(),
                Some("https://github.com/docker-library/python"),
                "{s}"
            );
        }
        assert_eq!(github_repo("https://gitlab.com/a/b"), None);
        assert_eq!(github_repo("https://github.com/a"), None);
        assert_eq!(github_repo("https://github.com/a/b c"), None);
    }
}
