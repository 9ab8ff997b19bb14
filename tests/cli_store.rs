//! `digestif migrate`, `trigger` and `jobs` through the built binary, on a SQLite file
//! (and `migrate` on a PostgreSQL schema through the URL's `options`).

#[path = "support/backends.rs"]
mod backends;

use std::process::{Command, Output};

use backends::TestDb;
use chrono::Utc;
use digestif::store::{Backend, NewRepository, Store};

fn digestif(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_digestif"))
        .args(args)
        .env("DIGESTIF_DATABASE_URL", url)
        .output()
        .expect("run digestif")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn migrate_creates_then_reports_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let url = format!("sqlite://{}", path.display());
    let out = digestif(&url, &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("applied 0001 initial"), "{stdout}");
    assert!(stdout.contains("applied 0002 pr handoff"), "{stdout}");
    assert!(path.exists());
    let out = digestif(&url, &["migrate"]);
    assert_eq!(
        text(&out.stdout),
        format!("database is up to date (version {})\n", latest())
    );
    // --database-url beats the environment.
    let other = dir.path().join("other.db");
    let out = digestif(
        "sqlite:///nonexistent-dir/x.db",
        &[
            "migrate",
            "--database-url",
            &format!("sqlite://{}", other.display()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(other.exists());
}

#[test]
fn bad_database_urls_are_usage_errors() {
    let out = digestif("mysql://x/y", &["migrate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("sqlite:, postgres://"),
        "{}",
        text(&out.stderr)
    );
    let out = digestif("postgres://nobody:secret@127.0.0.1:99999/x", &["jobs"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(!err.contains("secret"), "password redacted: {err}");
}

#[tokio::test]
async fn migrate_works_on_postgres() {
    let db = TestDb::new(Backend::Postgres, false).await.unwrap();
    let schema = db.schema.clone().unwrap();
    // libpq-style options select the test schema for the subprocess.
    let url = format!("{}?options=-c%20search_path%3D{schema}", db.url);
    let out = tokio::task::spawn_blocking(move || digestif(&url, &["migrate"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("database is at version {}", latest())));
    assert_eq!(
        db.store.applied_migrations().await.unwrap(),
        (1..=latest()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn trigger_enqueues_a_scan_that_jobs_lists() {
    let db = TestDb::new(Backend::Sqlite, true).await.unwrap();
    let url = db.url.clone();
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || digestif(&url, args))
    };

    let out = run(&["trigger", "octo/app"]).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("octo/app is not known"));

    let s: &Store = &db.store;
    let now = Utc::now();
    s.upsert_installation(7, "octo", "Organization", now)
        .await
        .unwrap();
    s.upsert_repository(
        &NewRepository {
            id: 42,
            installation_id: 7,
            full_name: "octo/App",
            default_branch: Some("main"),
            archived: None,
        },
        now,
    )
    .await
    .unwrap();

    let out = run(&["trigger", "octo/app"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "queued scan of octo/App as job 1\n");
    // Triggering again while queued is the same job.
    let out = run(&["trigger", "OCTO/APP"]).await.unwrap();
    assert_eq!(text(&out.stdout), "queued scan of octo/App as job 1\n");
    // The store (a running server's, say) sees it.
    let jobs = s.list_jobs(None, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload.0["reason"], "trigger");

    let out = run(&["jobs"]).await.unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("queued 1  running 0  done 0  dead 0\n"),
        "{stdout}"
    );
    assert!(stdout.contains("scan_repo"), "{stdout}");
    assert!(
        stdout.contains(r#"{"fresh":true,"reason":"trigger","repository_id":42}"#),
        "{stdout}"
    );

    // Make it dead, then list dead jobs as JSON and retry it.
    let j = s
        .lease_jobs("w", 1, std::time::Duration::from_secs(60), Utc::now())
        .await
        .unwrap()
        .remove(0);
    s.fail_job(
        &j,
        "w",
        &digestif::jobs::JobError::Permanent("no such repository".into()),
        &Default::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    let out = run(&["jobs", "--dead", "--format", "json"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["counts"]["dead"], 1);
    assert_eq!(v["jobs"][0]["state"], "dead");
    assert_eq!(v["jobs"][0]["last_error"], "no such repository");
    let out = run(&["jobs", "--state", "queued"]).await.unwrap();
    assert!(!text(&out.stdout).contains("scan_repo"));
    let out = run(&["jobs", "--retry", "1"]).await.unwrap();
    assert_eq!(text(&out.stdout), "job 1 queued again\n");
    let out = run(&["jobs", "--retry", "1"]).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The newest migration version (both sets have the same numbers).
fn latest() -> i64 {
    digestif::store::Store::migrators()[0]
        .1
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn repos_lists_installation_scans_and_status_as_text_and_json() {
    let db = TestDb::new(Backend::Sqlite, true).await.unwrap();
    let url = db.url.clone();
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || digestif(&url, args))
    };
    let out = run(&["repos"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "no repositories (install the App on some)\n"
    );

    let s: &Store = &db.store;
    let now = Utc::now();
    s.upsert_installation(7, "octo", "Organization", now)
        .await
        .unwrap();
    for (id, name) in [(1, "octo/api"), (2, "octo/web"), (3, "octo/old")] {
        s.upsert_repository(
            &NewRepository {
                id,
                installation_id: 7,
                full_name: name,
                default_branch: Some("main"),
                archived: None,
            },
            now,
        )
        .await
        .unwrap();
    }
    s.record_scan_result(1, "ok", None, now).await.unwrap();
    s.record_scan_result(
        2,
        "error",
        Some("ghcr.io: authentication required\nsecond line"),
        now,
    )
    .await
    .unwrap();
    s.set_repository_archived(3, true, now).await.unwrap();

    let out = run(&["repos"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("repository  installation  status")
            && lines[0].ends_with("last error"),
        "{stdout}"
    );
    // By name; one line each, a multi-line error by its first line.
    assert!(
        lines[1].starts_with("octo/api    octo          ok  "),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("octo/old    octo          archived"),
        "{stdout}"
    );
    assert!(
        lines[3].starts_with("octo/web    octo          error"),
        "{stdout}"
    );
    assert!(
        lines[3].ends_with("ghcr.io: authentication required"),
        "{stdout}"
    );
    assert!(lines[1].contains(&now.format("%Y-%m-%d %H:%M UTC").to_string()));

    let out = run(&["repos", "--format", "json"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let repos = v["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 3);
    assert_eq!(repos[0]["full_name"], "octo/api");
    assert_eq!(repos[0]["installation"], "octo");
    assert_eq!(repos[0]["installation_id"], 7);
    assert_eq!(repos[0]["status"], "ok");
    assert!(repos[0]["last_scan_at"].is_string());
    assert!(repos[0]["next_scan_at"].is_string());
    assert_eq!(repos[1]["status"], "archived");
    assert_eq!(repos[2]["status"], "error");
    assert_eq!(
        repos[2]["last_error"],
        "ghcr.io: authentication required\nsecond line"
    );

    // The other commands' JSON, for scripts.
    let out = run(&["trigger", "octo/api", "--format", "json"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["repository"], "octo/api");
    assert!(v["job_id"].as_i64().unwrap() > 0);
    let out = run(&["migrate", "--format", "json"]).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["applied"], serde_json::json!([]));
    assert_eq!(v["version"], latest());
}

/// `--help` shows the database URL from the environment with its password hidden, as the
/// error messages do, for every command that reads it.
#[test]
fn help_never_prints_the_database_password() {
    for (url, shown) in [
        (
            "postgres://digestif:hunter2-secret@db.internal:5432/digestif",
            "postgres://digestif:***@db.internal:5432/digestif",
        ),
        // A password holding an unencoded `@` is hidden whole.
        (
            "postgresql://app:p@ss-hunter2-secret@db/x",
            "postgresql://app:***@db/x",
        ),
    ] {
        for command in ["serve", "repos", "jobs", "migrate", "trigger"] {
            for args in [
                vec![command, "--help"],
                vec![command, "-h"],
                vec!["help", command],
            ] {
                let out = digestif(url, &args);
                let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
                assert_eq!(out.status.code(), Some(0), "{args:?}: {all}");
                assert!(
                    !all.contains("hunter2"),
                    "{args:?} prints the password:\n{all}"
                );
                assert!(
                    all.contains(&format!("[env: DIGESTIF_DATABASE_URL={shown}]")),
                    "{args:?} does not show the redacted URL:\n{all}"
                );
            }
        }
    }
    // Unset, it reads as clap shows any unset variable.
    let out = Command::new(env!("CARGO_BIN_EXE_digestif"))
        .args(["migrate", "--help"])
        .env_remove("DIGESTIF_DATABASE_URL")
        .output()
        .expect("run digestif");
    assert!(
        text(&out.stdout).contains("[env: DIGESTIF_DATABASE_URL=] [default: sqlite://digestif.db]"),
        "{}",
        text(&out.stdout)
    );
}
