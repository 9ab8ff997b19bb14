//! A process-wide cache with request coalescing: concurrent askers of one key share one
//! fetch, and its answer is reused while fresh. Bounded by entries and by (estimated) bytes:
//! past either, the least recently used entries go, so a long-running server's memory stays
//! flat however many tags and digests it meets. Sizes are exported as metrics.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::http::lock;

/// A fetch: when it started, and its answer with when that arrived.
struct Slot<V> {
    started: Instant,
    cell: OnceCell<(Instant, V)>,
}

struct Entry<V> {
    slot: Arc<Slot<V>>,
    /// Position in the recency order.
    used: u64,
    /// Estimated size once the answer is in (0 while in flight).
    bytes: usize,
}

struct State<K, V> {
    map: HashMap<K, Entry<V>>,
    /// Recency tick → key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
    bytes: usize,
    /// (entries, bytes) last added to the metrics.
    reported: (usize, usize),
}

/// How much one cache may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub entries: usize,
    pub bytes: usize,
}

/// What a cache holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub entries: usize,
    pub bytes: usize,
    pub evictions: u64,
}

/// Bookkeeping per entry beyond key and value (map slot, recency index, `Arc`s).
const ENTRY_OVERHEAD: usize = 128;

pub struct Coalescing<K, V> {
    name: &'static str,
    state: Mutex<State<K, V>>,
    limits: Limits,
    /// Estimated bytes of a key and its value.
    weigh: fn(&K, &V) -> usize,
    evictions: std::sync::atomic::AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> Coalescing<K, V> {
    /// `name` labels its metrics (`digestif_registry_cache_entries{cache="…"}`).
    pub fn new(name: &'static str, limits: Limits, weigh: fn(&K, &V) -> usize) -> Self {
        Coalescing {
            name,
            state: Mutex::new(State {
                map: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
                bytes: 0,
                reported: (0, 0),
            }),
            limits: Limits {
                entries: limits.entries.max(1),
                bytes: limits.bytes,
            },
            weigh,
            evictions: Default::default(),
        }
    }

    /// The cached value of `key` if it is younger than `ttl(value)`, or else the value of one
    /// `fetch` shared by everyone asking meanwhile.
    ///
    /// `since`: a value from a fetch that started before this instant is not reused (a
    /// person asked for a fresh answer), but a fetch started since is joined. Values kept
    /// for good (`ttl` of `Duration::MAX`: content-addressed facts) are never refetched.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: K,
        ttl: impl Fn(&V) -> Duration,
        since: Option<Instant>,
        fetch: F,
    ) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let usable = |slot: &Slot<V>| {
            let recent = since.is_none_or(|s| slot.started >= s);
            match slot.cell.get() {
                // In flight: join it, if it is recent enough.
                None => recent,
                Some((at, v)) => {
                    let ttl = ttl(v);
                    at.elapsed() < ttl && (recent || ttl == Duration::MAX)
                }
            }
        };
        let slot = {
            let mut st = lock(&self.state);
            let found = st
                .map
                .get(&key)
                .filter(|e| usable(&e.slot))
                .map(|e| e.slot.clone());
            match found {
                Some(s) => {
                    st.touch(&key);
                    s
                }
                None => {
                    let s = Arc::new(Slot {
                        started: Instant::now(),
                        cell: OnceCell::new(),
                    });
                    st.insert(key.clone(), s.clone());
                    self.evict(&mut st);
                    self.report(&mut st);
                    s
                }
            }
        };
        let mut fetched = false;
        let (_, v) = slot
            .cell
            .get_or_init(|| async {
                fetched = true;
                let v = fetch().await;
                (Instant::now(), v)
            })
            .await;
        if fetched {
            let mut guard = lock(&self.state);
            let st = &mut *guard;
            let bytes = (self.weigh)(&key, v) + ENTRY_OVERHEAD;
            if let Some(e) = st.map.get_mut(&key)
                && Arc::ptr_eq(&e.slot, &slot)
            {
                st.bytes = st.bytes - e.bytes.min(st.bytes) + bytes;
                e.bytes = bytes;
            }
            self.evict(st);
            self.report(st);
        }
        v.clone()
    }

    /// The value of `key` if one is cached and fresh; never fetches or waits.
    pub fn peek(&self, key: &K, ttl: impl Fn(&V) -> Duration) -> Option<V> {
        let mut st = lock(&self.state);
        let (at, v) = st.map.get(key)?.slot.cell.get()?;
        let v = (at.elapsed() < ttl(v)).then(|| v.clone())?;
        st.touch(key);
        Some(v)
    }

    /// Drops `key`, so the next ask fetches again (e.g. a token the server rejected).
    pub fn forget(&self, key: &K) {
        let mut st = lock(&self.state);
        st.remove(key);
        self.report(&mut st);
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What the cache holds now.
    pub fn usage(&self) -> Usage {
        let st = lock(&self.state);
        Usage {
            entries: st.map.len(),
            bytes: st.bytes,
            evictions: self.evictions.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Drops least recently used entries until both limits hold.
    fn evict(&self, st: &mut State<K, V>) {
        let mut n = 0;
        while st.map.len() > self.limits.entries || st.bytes > self.limits.bytes {
            let Some((_, oldest)) = st.order.pop_first() else {
                break;
            };
            if let Some(e) = st.map.remove(&oldest) {
                st.bytes -= e.bytes.min(st.bytes);
                n += 1;
            }
        }
        if n > 0 {
            self.evictions
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            crate::metrics::registry_cache_evicted(self.name, n);
        }
    }

    /// Moves the process-wide gauges by what changed here since the last report, so
    /// several resolvers in one process add up.
    fn report(&self, st: &mut State<K, V>) {
        let now = (st.map.len(), st.bytes);
        let delta = |a: usize, b: usize| a as f64 - b as f64;
        crate::metrics::registry_cache_changed(
            self.name,
            delta(now.0, st.reported.0),
            delta(now.1, st.reported.1),
        );
        st.reported = now;
    }
}

impl<K, V> Drop for Coalescing<K, V> {
    fn drop(&mut self) {
        let st = lock(&self.state);
        crate::metrics::registry_cache_changed(
            self.name,
            -(st.reported.0 as f64),
            -(st.reported.1 as f64),
        );
    }
}

impl<K: Eq + Hash + Clone, V> State<K, V> {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn touch(&mut self, key: &K) {
        let tick = self.next_tick();
        if let Some(e) = self.map.get_mut(key) {
            let old = std::mem::replace(&mut e.used, tick);
            self.order.remove(&old);
            self.order.insert(tick, key.clone());
        }
    }

    fn insert(&mut self, key: K, slot: Arc<Slot<V>>) {
        self.remove(&key);
        let used = self.next_tick();
        self.order.insert(used, key.clone());
        self.map.insert(
            key,
            Entry {
                slot,
                used,
                bytes: 0,
            },
        );
    }

    fn remove(&mut self, key: &K) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&e.used);
            self.bytes -= e.bytes.min(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ROOMY: Limits = Limits {
        entries: 100,
        bytes: usize::MAX,
    };

    // The cache's weigher takes `&K`, and `K` is `String` here.
    #[allow(clippy::ptr_arg)]
    fn weigh(k: &String, v: &usize) -> usize {
        k.len() + v.to_string().len()
    }

    #[tokio::test]
    async fn concurrent_askers_share_one_fetch_and_expired_entries_refetch() {
        let cache = Arc::new(Coalescing::<String, usize>::new("test", ROOMY, weigh));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(
                        "k".to_string(),
                        |_| Duration::from_secs(60),
                        None,
                        || async {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            calls.fetch_add(1, Ordering::SeqCst) + 1
                        },
                    )
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let v = cache
            .get_or_fetch("k".into(), |_| Duration::ZERO, None, || async { 99 })
            .await;
        assert_eq!(v, 99, "a zero TTL refetches");
    }

    #[tokio::test]
    async fn values_that_never_expire_are_still_bounded_by_count_least_recently_used_first() {
        let cache = Coalescing::<String, usize>::new(
            "test",
            Limits {
                entries: 3,
                bytes: usize::MAX,
            },
            weigh,
        );
        let get = |k: &str, v: usize| {
            cache.get_or_fetch(
                k.to_string(),
                |_| Duration::MAX,
                None,
                move || async move { v },
            )
        };
        assert_eq!(get("a", 1).await, 1);
        assert_eq!(get("b", 2).await, 2);
        assert_eq!(get("c", 3).await, 3);
        // `a` is used again, so `b` is the least recently used when `d` arrives.
        assert_eq!(get("a", 10).await, 1);
        assert_eq!(get("d", 4).await, 4);
        let u = cache.usage();
        assert_eq!((u.entries, u.evictions), (3, 1));
        assert_eq!(get("b", 20).await, 20, "b was evicted and fetched again");
        assert_eq!(get("a", 30).await, 1, "a stayed");
        for i in 0..1000 {
            get(&format!("k{i}"), i).await;
        }
        assert_eq!(cache.usage().entries, 3);
    }

    #[tokio::test]
    async fn bytes_are_bounded_too() {
        let limit = 10 * (ENTRY_OVERHEAD + 10);
        let cache = Coalescing::<String, usize>::new(
            "test",
            Limits {
                entries: 1_000_000,
                bytes: limit,
            },
            weigh,
        );
        for i in 0..10_000usize {
            cache
                .get_or_fetch(
                    format!("key{i:05}"),
                    |_| Duration::MAX,
                    None,
                    || async move { i },
                )
                .await;
            assert!(cache.usage().bytes <= limit, "{:?}", cache.usage());
        }
        let u = cache.usage();
        assert!(u.entries >= 9 && u.entries <= 10, "{u:?}");
        assert_eq!(u.bytes, u.entries * (ENTRY_OVERHEAD + 8 + 4));
        cache.forget(&"key09999".to_string());
        assert_eq!(cache.usage().entries, u.entries - 1);
    }

    #[tokio::test]
    async fn a_fresh_ask_refetches_but_joins_a_fetch_started_since() {
        let cache = Arc::new(Coalescing::<String, usize>::new("test", ROOMY, weigh));
        let calls = Arc::new(AtomicUsize::new(0));
        let ask = |since: Option<Instant>, forever: bool| {
            let (cache, calls) = (cache.clone(), calls.clone());
            async move {
                let ttl = move |_: &usize| {
                    if forever {
                        Duration::MAX
                    } else {
                        Duration::from_secs(300)
                    }
                };
                cache
                    .get_or_fetch("tag".to_string(), ttl, since, || async {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        calls.fetch_add(1, Ordering::SeqCst) + 1
                    })
                    .await
            }
        };
        assert_eq!(ask(None, false).await, 1);
        assert_eq!(
            ask(None, false).await,
            1,
            "a scheduled ask reuses the answer"
        );
        let now = Instant::now();
        // Two fresh asks at once: one new request between them.
        let (a, b) = tokio::join!(ask(Some(now), false), ask(Some(now), false));
        assert_eq!((a, b), (2, 2));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The fresh answer is what everyone gets afterwards, for the TTL.
        assert_eq!(ask(None, false).await, 2);
        assert_eq!(ask(Some(now), false).await, 2);
        // A value kept for good is a fact: a fresh ask does not refetch it.
        let later = Instant::now();
        assert_eq!(ask(Some(later), true).await, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
