//! A process-wide cache with request coalescing: concurrent askers of one key share one
//! fetch, and its answer is reused while fresh.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::http::lock;

type Slot<V> = Arc<OnceCell<(Instant, V)>>;

pub struct Coalescing<K, V> {
    map: Mutex<HashMap<K, Slot<V>>>,
    /// Above this many entries, expired ones are dropped (the map must not grow forever in
    /// a long-running server).
    soft_cap: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Coalescing<K, V> {
    pub fn new(soft_cap: usize) -> Self {
        Coalescing {
            map: Mutex::new(HashMap::new()),
            soft_cap,
        }
    }

    /// The cached value of `key` if it is younger than `ttl(value)`, or else the value of one
    /// `fetch` shared by everyone asking meanwhile.
    pub async fn get_or_fetch<F, Fut>(&self, key: K, ttl: impl Fn(&V) -> Duration, fetch: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let fresh = |slot: &Slot<V>| match slot.get() {
            // In flight: join it.
            None => true,
            Some((at, v)) => at.elapsed() < ttl(v),
        };
        let slot = {
            let mut map = lock(&self.map);
            match map.get(&key) {
                Some(s) if fresh(s) => s.clone(),
                _ => {
                    if map.len() >= self.soft_cap {
                        map.retain(|_, s| fresh(s));
                    }
                    let s: Slot<V> = Arc::new(OnceCell::new());
                    map.insert(key, s.clone());
                    s
                }
            }
        };
        let (_, v) = slot
            .get_or_init(|| async {
                let v = fetch().await;
                (Instant::now(), v)
            })
            .await;
        v.clone()
    }

    /// The value of `key` if one is cached and fresh; never fetches or waits.
    pub fn peek(&self, key: &K, ttl: impl Fn(&V) -> Duration) -> Option<V> {
        let map = lock(&self.map);
        let (at, v) = map.get(key)?.get()?;
        (at.elapsed() < ttl(v)).then(|| v.clone())
    }

    /// Drops `key`, so the next ask fetches again (e.g. a token the server rejected).
    pub fn forget(&self, key: &K) {
        lock(&self.map).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_askers_share_one_fetch_and_expired_entries_refetch() {
        let cache = Arc::new(Coalescing::<String, usize>::new(100));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(
                        "k".to_string(),
                        |_| Duration::from_secs(60),
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
            .get_or_fetch("k".into(), |_| Duration::ZERO, || async { 99 })
            .await;
        assert_eq!(v, 99, "a zero TTL refetches");
    }
}
