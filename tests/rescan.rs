//! A scan a person asks for sees a tag that moved a moment ago, through the whole server
//! (production tag-cache TTL, real registry, fake GitHub): `digestif trigger`, the
//! dashboard's rescan box and `@digestif rebase` ask the registry afresh, concurrent asks
//! for one tag still share one request, and routine scans keep the cache. Also the
//! registry caches' sizes on `/metrics`, and what a repository is told when its registry
//! address is refused.

mod support;

use std::process::Command;
use std::time::Duration;

use support::app::*;
use support::fake_github::FakeGitHub;
use support::registry::TestRegistry;

const REPO: &str = "acme/widgets";

/// `app:1` moved to a new single-platform image; returns its digest.
async fn move_tag(reg: &TestRegistry, salt: &str) -> String {
    reg.push_image("app", Some("1"), "linux/amd64", salt, false)
        .await
        .digest
}

async fn metrics(server: &Running) -> String {
    reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Manifest HEADs sent to `host` so far, from `/metrics`.
async fn heads_to(server: &Running, host: &str) -> u64 {
    let needle = format!("host=\"{host}\"");
    metrics(server)
        .await
        .lines()
        .filter(|l| {
            l.starts_with("digestif_registry_requests_total{")
                && l.contains(&needle)
                && l.contains("kind=\"manifest-head\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The digest the PR branch's Dockerfile carries now.
fn pr_pins(fake: &FakeGitHub, digest: &str) -> bool {
    fake.file_at(REPO, "digestif/all", "Dockerfile")
        .is_some_and(|f| f.matches(digest).count() == 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_a_person_asks_for_sees_a_tag_that_just_moved() {
    let reg = TestRegistry::start().await;
    let old = move_tag(&reg, "zero").await;
    let first = move_tag(&reg, "one").await;
    let pinned = reg.reference("app", "1", Some(&old));
    // Two references to one tag: one lookup serves both.
    let dockerfile = format!("FROM {pinned} AS a\nFROM {pinned}\n");
    let fake = FakeGitHub::start().await;
    let (server, inst) = installed_tuned(
        &fake,
        &reg,
        &[
            ("Dockerfile", &dockerfile),
            (".github/digestif.yml", "dashboard: true\n"),
        ],
        &[("dave", "write")],
        // Production's tag cache: answers are reused for five minutes.
        |c| c.cache_ttl = Duration::from_secs(300),
    )
    .await;
    assert!(pr_pins(&fake, &first), "the first scan opens the PR");
    let pr = fake
        .pulls(REPO)
        .into_iter()
        .find(|p| p.state == "open")
        .expect("PR");

    // The tag moves upstream. A routine scan (a push, the schedule) keeps the cache.
    let second = move_tag(&reg, "two").await;
    let heads = heads_to(&server, &reg.addr).await;
    let repo = server
        .store
        .repository_by_full_name(REPO)
        .await
        .expect("db")
        .expect("repo");
    let routine = digestif::jobs::Work::ScanRepo {
        repository_id: repo.id,
        reason: "schedule".into(),
        fresh: false,
    };
    server
        .store
        .enqueue(&routine.to_job(), chrono::Utc::now())
        .await
        .expect("enqueue");
    server.settle().await;
    assert_eq!(
        heads_to(&server, &reg.addr).await,
        heads,
        "answered from the cache"
    );
    assert!(
        pr_pins(&fake, &first),
        "the cache still says the old digest"
    );

    // `digestif trigger`, beside the running server: the registry is asked again, once
    // for both references, and the PR gets the new digest.
    let db = server.database_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_digestif"))
            .args(["trigger", REPO])
            .env("DIGESTIF_DATABASE_URL", db)
            .output()
            .expect("run digestif trigger")
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the trigger's scan", || async {
        pr_pins(&fake, &second).then_some(())
    })
    .await;
    server.settle().await;
    assert_eq!(heads_to(&server, &reg.addr).await, heads + 1);

    // `@digestif rebase` right after another upstream push.
    let third = move_tag(&reg, "three").await;
    server
        .comment(&fake, inst, pr.number, "dave", "@digestif rebase")
        .await;
    assert!(pr_pins(&fake, &third), "rebase asked afresh");

    // The dashboard's rescan box right after another one.
    let fourth = move_tag(&reg, "four").await;
    let dash = fake
        .issues(REPO)
        .into_iter()
        .find(|i| i.title == "digestif dashboard")
        .expect("dashboard");
    let body = dash.body.clone().unwrap_or_default();
    server
        .tick_rescan_box(&fake, inst, REPO, dash.number, &body)
        .await;
    assert!(pr_pins(&fake, &fourth), "the rescan box asked afresh");

    // The caches' sizes are on /metrics.
    let text = metrics(&server).await;
    for cache in ["tags", "digest-heads", "manifests", "configs", "metadata"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "digestif_registry_cache_entries{{cache=\"{cache}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("no entries gauge for {cache}:\n{text}"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1.0, "{line}");
        assert!(
            text.contains(&format!(
                "digestif_registry_cache_bytes{{cache=\"{cache}\"}}"
            )),
            "{text}"
        );
    }
    fake.assert_no_violations();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registry_is_named_to_the_repository_without_its_addresses() {
    let reg = TestRegistry::start().await;
    // `localhost` resolves to loopback, and the operator exempts only 127.0.0.1 by
    // address: the guard refuses it. The repository must not learn what it resolved to.
    let dockerfile = "FROM localhost:5432/internal/db:1\n";
    let fake = FakeGitHub::start().await;
    let (server, _inst) = installed(
        &fake,
        &reg,
        &[
            ("Dockerfile", dockerfile),
            (".github/digestif.yml", "dashboard: true\n"),
        ],
    )
    .await;
    let dash = fake
        .issues(REPO)
        .into_iter()
        .find(|i| i.title == "digestif dashboard")
        .and_then(|i| i.body)
        .expect("dashboard");
    assert!(
        dash.contains("localhost:5432: registry address not allowed"),
        "{dash}"
    );
    for leak in [
        "127.0.0.1",
        "::1",
        "resolves",
        "Loopback",
        "SSRF",
        "refused",
    ] {
        assert!(!dash.contains(leak), "{leak} in {dash}");
    }
    let repo = server
        .store
        .repository_by_full_name(REPO)
        .await
        .expect("db")
        .expect("repo");
    let refs = server
        .store
        .references_for_repo(repo.id)
        .await
        .expect("references");
    assert_eq!(refs.len(), 1);
    assert_eq!(
        refs[0].message.as_deref(),
        Some("localhost:5432: registry address not allowed")
    );
    fake.assert_no_violations();
    server.stop().await;
}
