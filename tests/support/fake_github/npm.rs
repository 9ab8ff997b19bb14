//! Fetches one file out of a published npm package, once per machine.
//!
//! GitHub's OpenAPI description and the webhook examples are large generated files that we
//! must not commit, so the first test that needs one runs `npm pack` into a cache directory
//! outside the source tree. A file lock keeps parallel test binaries from fetching twice.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::Command;

/// Returns the path of `file` (relative to the package root) from `package@version`.
/// `env_override` names a variable that may point at an already extracted copy (set by
/// `scripts/test` or by a developer working offline).
pub fn package_file(package: &str, version: &str, file: &str, env_override: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_override) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env_override}={} is not a file", p.display());
        return p;
    }
    let safe = format!(
        "{}-{version}",
        package.trim_start_matches('@').replace('/', "-")
    );
    let root = std::env::temp_dir().join("digestif-npm");
    let dir = root.join(&safe);
    let target = dir.join(file);
    if target.is_file() {
        return target;
    }
    fs::create_dir_all(&root).expect("create npm cache dir");
    let lock = File::create(root.join(format!("{safe}.lock"))).expect("create npm lock file");
    lock.lock().expect("lock npm cache");
    if target.is_file() {
        return target;
    }
    let work = tempfile::tempdir_in(&root).expect("temp dir for npm pack");
    let out = Command::new("npm")
        .args([
            "pack",
            "--silent",
            &format!("{package}@{version}"),
            "--pack-destination",
        ])
        .arg(work.path())
        .current_dir(work.path())
        .output()
        .expect("run `npm pack` (is npm installed?)");
    assert!(
        out.status.success(),
        "npm pack {package}@{version} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tgz = fs::read_dir(work.path())
        .expect("read npm pack output")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .expect("npm pack produced no .tgz");
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&tgz)
        .arg("-C")
        .arg(work.path())
        .arg(format!("package/{file}"))
        .status()
        .expect("run tar");
    assert!(status.success(), "{file} not found in {package}@{version}");
    let extracted = work.path().join("package").join(file);
    fs::create_dir_all(target.parent().expect("file has a parent")).expect("create cache dir");
    // Rename last so a reader never sees a half-written file.
    fs::rename(&extracted, &target).expect("move extracted file into the cache");
    target
}
