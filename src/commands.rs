//! The commands people give digestif in comments on its pull requests
//! (`@digestif rebase`, …): reading them from a comment. Pure; what each command does is
//! in `jobs::commands`.

/// The commands people may give on digestif's PRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Rebase,
    Recreate,
    IgnoreDigest,
    IgnoreImage,
    Unignore(String),
    Unknown(String),
}

/// Reads `@digestif <command>` from the first line that addresses digestif; `None` when
/// no line does.
pub fn parse(body: &str) -> Option<Command> {
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| l.to_ascii_lowercase().starts_with("@digestif"))?;
    let rest = line["@digestif".len()..].trim();
    let words: Vec<&str> = rest.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    Some(match lower.as_slice() {
        ["rebase", ..] => Command::Rebase,
        ["recreate", ..] => Command::Recreate,
        ["ignore", "this", "digest", ..] => Command::IgnoreDigest,
        ["ignore", "this", "image", ..] => Command::IgnoreImage,
        ["unignore", _, ..] => Command::Unignore(words[1].to_string()),
        _ => Command::Unknown(rest.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_from_the_addressed_line() {
        assert_eq!(parse("@digestif rebase"), Some(Command::Rebase));
        assert_eq!(
            parse("thanks\n@Digestif  Ignore this DIGEST please"),
            Some(Command::IgnoreDigest)
        );
        assert_eq!(
            parse("@digestif ignore this image"),
            Some(Command::IgnoreImage)
        );
        assert_eq!(
            parse("@digestif unignore docker.io/library/Node"),
            Some(Command::Unignore("docker.io/library/Node".into()))
        );
        assert_eq!(
            parse("@digestif dance"),
            Some(Command::Unknown("dance".into()))
        );
        assert_eq!(parse("no command"), None);
    }

    #[test]
    fn only_the_first_addressed_line_counts_and_case_is_kept_for_the_image() {
        assert_eq!(
            parse("@digestif recreate\n@digestif rebase"),
            Some(Command::Recreate)
        );
        assert_eq!(
            parse("  @DIGESTIF   unignore   Ghcr.io/Acme/App  now"),
            Some(Command::Unignore("Ghcr.io/Acme/App".into()))
        );
        assert_eq!(parse("@digestif"), Some(Command::Unknown(String::new())));
        assert_eq!(
            parse("@digestif unignore"),
            Some(Command::Unknown("unignore".into()))
        );
        assert_eq!(parse("hey @digestif rebase"), None);
    }
}
