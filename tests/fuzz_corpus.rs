//! Replays every input kept under `fuzz/corpus/TARGET/` through the property its fuzz
//! target checks (fuzz/props.rs), so what fuzzing found once stays fixed without nightly
//! Rust or libFuzzer.

use std::path::Path;

#[path = "../fuzz/props.rs"]
mod props;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails its property", path.display());
        n += 1;
    }
    assert!(n > 0, "{} holds no inputs", dir.display());
}

#[test]
fn reference_corpus() {
    replay("reference", props::reference);
}

#[test]
fn dockerfile_corpus() {
    replay("dockerfile", props::dockerfile);
}

#[test]
fn yaml_corpus() {
    replay("yaml", props::yaml);
}

#[test]
fn edit_corpus() {
    replay("edit", props::edit);
}

#[test]
fn config_corpus() {
    replay("config", props::config);
}
