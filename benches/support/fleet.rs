//! Many repositories on the fake GitHub pinning tags of a real registry, and a server
//! process (or several) working through them: what the cycle and crash benchmarks share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::support::backends::TestDb;
use chrono::Utc;
use digestif::store::Store;

use super::support::app::PERMS;
use super::support::fake_github::FakeGitHub;
use super::support::registry::{Options as RegistryOptions, TestRegistry};

/// `FROM` lines per Dockerfile.
pub const REFS: usize = 3;

#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub repos: usize,
    pub installations: usize,
    pub tags: usize,
    pub moved_percent: usize,
}

impl Scale {
    pub fn moved(&self) -> usize {
        (self.tags * self.moved_percent).div_ceil(100)
    }
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

/// The tags and their current digests, in a registry on loopback (with its access log).
pub struct World {
    pub registry: Arc<TestRegistry>,
    pub digests: Vec<String>,
    /// How many times tags have been pushed (salts for new images).
    round: usize,
}

pub fn image_name(t: usize) -> String {
    format!("bench/img{}", t / 10)
}

pub fn tag_name(t: usize) -> String {
    format!("1.{}", t % 10)
}

/// A fixed 64-bit mix (splitmix64), so every run picks the same tags.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The distinct tags repository `r` pins.
pub fn tags_of(r: usize, tags: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(REFS);
    let mut k = 0u64;
    while out.len() < REFS {
        let t = (mix(((r as u64) << 8) | k) % tags as u64) as usize;
        if !out.contains(&t) {
            out.push(t);
        }
        k += 1;
    }
    out
}

impl World {
    /// Starts the registry and pushes one small linux/amd64 image under each of `tags` tags
    /// (10 tags per image name).
    pub async fn start(tags: usize) -> World {
        let registry = TestRegistry::start_with(RegistryOptions {
            access_log: true,
            ..Default::default()
        })
        .await;
        let mut world = World {
            registry: Arc::new(registry),
            digests: vec![String::new(); tags],
            round: 0,
        };
        let all: Vec<usize> = (0..tags).collect();
        world.push(&all).await;
        world
    }

    /// A Dockerfile whose stages pin `tags` at the given digests.
    pub fn dockerfile_with(&self, tags: &[(usize, &str)]) -> String {
        let mut s = String::new();
        for (i, &(t, digest)) in tags.iter().enumerate() {
            let r = self
                .registry
                .reference(&image_name(t), &tag_name(t), Some(digest));
            if i + 1 < tags.len() {
                s.push_str(&format!("FROM {r} AS stage{i}\nRUN make stage{i}\n\n"));
            } else {
                s.push_str(&format!("FROM {r}\nCOPY --from=stage0 /out /app\n"));
            }
        }
        s
    }

    /// A Dockerfile whose stages pin `tags` at their current digests.
    pub fn dockerfile(&self, tags: &[usize]) -> String {
        let pins: Vec<(usize, &str)> = tags
            .iter()
            .map(|&t| (t, self.digests[t].as_str()))
            .collect();
        self.dockerfile_with(&pins)
    }

    /// Pushes a new image under each tag in `tags` (8 at a time).
    pub async fn push(&mut self, tags: &[usize]) {
        let salt = self.round;
        self.round += 1;
        let mut set = tokio::task::JoinSet::new();
        let mut pending = tags.iter().copied();
        let spawn = |set: &mut tokio::task::JoinSet<(usize, String)>, t: usize| {
            let reg = self.registry.clone();
            set.spawn(async move {
                let image = reg
                    .push_image(
                        &image_name(t),
                        Some(&tag_name(t)),
                        "linux/amd64",
                        &format!("{t}-{salt}"),
                        false,
                    )
                    .await;
                (t, image.digest)
            });
        };
        for t in pending.by_ref().take(8) {
            spawn(&mut set, t);
        }
        while let Some(done) = set.join_next().await {
            let (t, digest) = done.expect("push task");
            self.digests[t] = digest;
            if let Some(next) = pending.next() {
                spawn(&mut set, next);
            }
        }
    }

    /// Moves `scale.moved()` tags (a different choice each round) and returns them.
    pub async fn move_tags(&mut self, scale: &Scale) -> BTreeSet<usize> {
        let mut order: Vec<usize> = (0..scale.tags).collect();
        let round = self.round as u64;
        order.sort_by_key(|&t| mix((round << 32) | t as u64));
        let moved: BTreeSet<usize> = order.into_iter().take(scale.moved()).collect();
        self.push(&moved.iter().copied().collect::<Vec<_>>()).await;
        moved
    }

    /// The server's registry settings: plain HTTP on loopback, allowed by name.
    pub fn server_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DIGESTIF_INSECURE_REGISTRIES", self.registry.addr.clone()),
            ("DIGESTIF_ALLOW_PRIVATE_REGISTRIES", "127.0.0.1".to_string()),
        ]
    }
}

/// The repositories of a fleet: `owner/name` (lower case) → the tags its Dockerfile pins.
pub type Pins = BTreeMap<String, Vec<usize>>;

/// Installs the App `scale.installations` times (`org0`, `org1`, …) and creates the
/// repositories round-robin over them, each pinning [`tags_of`] at the current digests.
/// Returns the installation ids and the pins.
pub fn populate(fake: &FakeGitHub, world: &World, scale: &Scale) -> (Vec<u64>, Pins) {
    let installations: Vec<u64> = (0..scale.installations)
        .map(|i| fake.create_installation(&format!("org{i}"), PERMS))
        .collect();
    let mut pins = Pins::new();
    for r in 0..scale.repos {
        let i = r % scale.installations;
        let tags = tags_of(r, scale.tags);
        let text = world.dockerfile(&tags);
        let full = fake.create_repo(
            installations[i],
            &format!("org{i}"),
            &format!("repo{r}"),
            &[("Dockerfile", &text)],
        );
        pins.insert(full.to_ascii_lowercase(), tags);
    }
    (installations, pins)
}

/// The URL a server process reaches the test database by (PostgreSQL: with its schema).
pub fn database_url(db: &TestDb) -> String {
    match &db.schema {
        None => db.url.clone(),
        Some(schema) => format!("{}?options=-c%20search_path%3D{schema}", db.url),
    }
}

/// Sets every repository's next scan in the past, as the scheduler finds it when the cron
/// time comes, and forgets the tag answers replicas share on PostgreSQL, as they are by
/// then (stale after 5 minutes).
pub async fn make_all_due(store: &Store) {
    store
        .forget_registry_tags()
        .await
        .expect("forget shared tag answers");
    let past = Utc::now() - chrono::TimeDelta::seconds(1);
    let mut offset = 0;
    loop {
        let page = store
            .list_repositories(1000, offset)
            .await
            .expect("repositories");
        for r in &page {
            store
                .set_next_scan_at(r.id, Some(past))
                .await
                .expect("make due");
        }
        if page.len() < 1000 {
            break;
        }
        offset += 1000;
    }
}

/// (repositories whose last scan finished after `since`, those of them that failed).
pub async fn scanned_since(store: &Store, since: chrono::DateTime<Utc>) -> (usize, usize) {
    let (mut scanned, mut failed) = (0, 0);
    let mut offset = 0;
    loop {
        let page = store
            .list_repositories(1000, offset)
            .await
            .expect("repositories");
        for r in &page {
            if r.last_scan_at.is_some_and(|t| t >= since) {
                scanned += 1;
                if r.last_scan_status.as_deref() != Some("ok") {
                    failed += 1;
                }
            }
        }
        if page.len() < 1000 {
            break;
        }
        offset += 1000;
    }
    (scanned, failed)
}

/// Polls until all `repos` repositories were scanned after `since` and the queue has been
/// empty three polls running; returns (scanned, failed, the time from `started` until
/// then), or panics after `limit`.
pub async fn wait_for_cycle(
    store: &Store,
    repos: usize,
    since: chrono::DateTime<Utc>,
    started: Instant,
    limit: Duration,
) -> (usize, usize, Duration) {
    let mut quiet_since: Option<Duration> = None;
    let mut quiet = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (scanned, failed) = scanned_since(store, since).await;
        let jobs = store.job_counts().await.expect("job counts");
        if scanned == repos && jobs.queued == 0 && jobs.running == 0 {
            quiet_since.get_or_insert(started.elapsed());
            quiet += 1;
            if quiet == 3 {
                return (scanned, failed, quiet_since.unwrap_or_default());
            }
        } else {
            quiet = 0;
            quiet_since = None;
        }
        assert!(
            started.elapsed() < limit,
            "cycle not done after {limit:?}: {scanned} of {repos} scanned, jobs {jobs:?}"
        );
    }
}
