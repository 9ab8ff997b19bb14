//! `digestif check-config` and `digestif config-schema` through the built binary.

use std::process::Command;

fn digestif(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_digestif"))
        .args(args)
        .output()
        .expect("run digestif")
}

#[test]
fn check_config_reports_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "schedule: weekly\ntimezone: Europe/Berlin\nmin-age: 3d\n",
    )
    .unwrap();
    let out = digestif(&["check-config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));

    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "schedule: weekly\ngroup: everything\n").unwrap();
    let out = digestif(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yml:2:8: unknown variant `everything`"),
        "{stderr}"
    );

    let out = digestif(&["check-config", "/nonexistent/digestif.yml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_config_refuses_schedules_the_server_would_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let never = dir.path().join("never.yml");
    std::fs::write(&never, "pin: true\nschedule: \"0 0 30 2 *\"\n").unwrap();
    let out = digestif(&["check-config", never.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("never.yml:2:") && stderr.contains("never runs"),
        "{stderr}"
    );

    let often = dir.path().join("often.yml");
    std::fs::write(&often, "schedule: \"*/10 * * * *\"\n").unwrap();
    let out = digestif(&["check-config", often.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("often.yml:1:")
            && stderr.contains("runs 10 minutes after a previous run")
            && stderr.contains("at most once every 1 hour"),
        "{stderr}"
    );
    // The operator's minimum, as the server has it.
    let out = digestif(&[
        "check-config",
        "--min-schedule-interval",
        "10m",
        often.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn the_published_schema_file_is_current() {
    let out = digestif(&["config-schema"]);
    assert_eq!(out.status.code(), Some(0));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/digestif.schema.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        printed, committed,
        "schema/digestif.schema.json is stale: run `digestif config-schema > schema/digestif.schema.json`"
    );
}
