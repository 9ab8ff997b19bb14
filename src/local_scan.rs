//! Scanning a local directory tree: walk it (honouring `.gitignore`) and extract every file.

use std::path::{Path, PathBuf};

use crate::extract::{self, Extraction, FileError};

/// Options for walking a tree.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Also read files that `.gitignore` and friends exclude.
    pub no_ignore: bool,
}

/// A candidate file, with its path relative to the root (`/`-separated).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub relative: String,
    pub path: PathBuf,
}

/// Lists the files under `root` that an extractor may read, in a stable order.
/// Walk errors (unreadable directories, broken symlinks) come back as `FileError`s.
pub fn candidates(root: &Path, options: &WalkOptions) -> (Vec<Candidate>, Vec<FileError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        // Workflows live in .github, so hidden files must be walked; .git must not.
        .hidden(false)
        .filter_entry(|e| e.file_name() != ".git")
        .git_ignore(!options.no_ignore)
        .git_exclude(!options.no_ignore)
        .git_global(false)
        .ignore(!options.no_ignore)
        // A checkout copied without its .git still has a .gitignore that means something.
        .require_git(false)
        .sort_by_file_path(|a, b| a.cmp(b))
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                errors.push(FileError {
                    file: String::new(),
                    line: None,
                    message: e.to_string(),
                });
                continue;
            }
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let relative = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if extract::kind_for_path(&relative).is_some() {
            files.push(Candidate {
                relative,
                path: path.to_path_buf(),
            });
        }
    }
    (files, errors)
}

/// A file read with a size cap.
#[derive(Debug, PartialEq, Eq)]
pub enum Capped {
    Bytes(Vec<u8>),
    /// Over the cap: its size when the file system said so (then nothing was read), or
    /// `None` when reading found more than the cap (a file that grew, a device).
    TooLarge(Option<u64>),
}

/// Reads `path` unless it is bigger than `cap` bytes: the size is checked first, and at
/// most `cap + 1` bytes are ever read, so a huge (or endless) file costs nothing.
pub fn read_capped(path: &Path, cap: usize) -> std::io::Result<Capped> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > cap as u64 {
        return Ok(Capped::TooLarge(Some(len)));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > cap {
        return Ok(Capped::TooLarge(None));
    }
    Ok(Capped::Bytes(bytes))
}

/// Reads and extracts every candidate file under `root`.
pub fn scan_dir(root: &Path, options: &WalkOptions) -> Extraction {
    let (files, errors) = candidates(root, options);
    let mut out = Extraction {
        errors,
        ..Extraction::default()
    };
    for c in files {
        match read_capped(&c.path, extract::MAX_FILE_SIZE) {
            Ok(Capped::Bytes(bytes)) => {
                if let Some(e) = extract::extract_file(&c.relative, &bytes) {
                    out.merge(e);
                }
            }
            Ok(Capped::TooLarge(size)) => {
                if let Some(e) = extract::oversized_file(&c.relative, size) {
                    out.merge(e);
                }
            }
            Err(e) => out.errors.push(FileError {
                file: c.relative,
                line: None,
                message: format!("cannot read file: {e}"),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_one_byte_past_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = dir.path().join("small");
        std::fs::write(&small, b"FROM a\n").expect("write");
        assert_eq!(
            read_capped(&small, 7).expect("read"),
            Capped::Bytes(b"FROM a\n".to_vec())
        );
        assert_eq!(
            read_capped(&small, 6).expect("read"),
            Capped::TooLarge(Some(7))
        );
        // A device that never ends and reports no size: reading stops after cap + 1 bytes.
        assert_eq!(
            read_capped(Path::new("/dev/zero"), 1024).expect("read"),
            Capped::TooLarge(None)
        );
    }
}
