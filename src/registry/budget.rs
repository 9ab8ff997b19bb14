//! Per-registry pull budgets: at most N manifest GETs (what Docker Hub counts as pulls) in
//! any sliding window, never exceeded. Resolution may spend all of it; PR details only what
//! is left above a reserve, so details never starve next cycle's lookups.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::http::lock;
use super::settings::normalize_host;

pub const ENV_PULL_BUDGET: &str = "DIGESTIF_REGISTRY_PULL_BUDGET";

/// `limit` pulls per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u32,
    pub window: Duration,
}

/// Docker Hub allows 10 pulls an hour per address without an account and 100 with a free
/// one; half of that is left for the `docker pull`s of the machine digestif runs on.
pub fn docker_hub_default(authenticated: bool) -> Budget {
    Budget {
        limit: if authenticated { 50 } else { 5 },
        window: Duration::from_secs(3600),
    }
}

/// Parses `docker.io=80/6h,ghcr.io=1000/1h` into budgets keyed by registry host
/// (normalised: `index.docker.io` is `docker.io`). `0` means no pulls at all.
pub fn parse(text: &str) -> Result<BTreeMap<String, Budget>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || format!("{item:?} is not REGISTRY=PULLS/WINDOW (e.g. docker.io=80/6h)");
        let (host, rest) = item.split_once('=').ok_or_else(bad)?;
        let (n, w) = rest.split_once('/').ok_or_else(bad)?;
        let limit: u32 = n.trim().parse().map_err(|_| bad())?;
        let window = parse_window(w.trim()).ok_or_else(bad)?;
        if host.trim().is_empty() {
            return Err(bad());
        }
        out.insert(normalize_host(host), Budget { limit, window });
    }
    Ok(out)
}

fn parse_window(w: &str) -> Option<Duration> {
    let split = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
    let (n, unit) = w.split_at(split);
    let n: u64 = if n.is_empty() { 1 } else { n.parse().ok()? };
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    (n > 0).then(|| Duration::from_secs(n * secs))
}

/// How much of a budget is spent, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub registry: String,
    pub budget: Budget,
    pub used: u32,
    /// When the oldest pull in the window leaves it.
    pub frees_in: Option<Duration>,
}

/// Who is asking: resolution may use the whole budget, details only above the reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spender {
    Resolve,
    Details,
}

pub struct Budgets {
    limits: BTreeMap<String, Budget>,
    spent: Mutex<BTreeMap<String, VecDeque<Instant>>>,
}

impl Budgets {
    pub fn new(limits: BTreeMap<String, Budget>) -> Budgets {
        Budgets {
            limits,
            spent: Mutex::default(),
        }
    }

    /// Takes one pull from `host`'s budget; `false` (and nothing taken) when that would go
    /// over it. Hosts without a budget always get one.
    pub fn take(&self, host: &str, who: Spender) -> bool {
        let key = normalize_host(host);
        let Some(b) = self.limits.get(&key) else {
            return true;
        };
        let now = Instant::now();
        let mut spent = lock(&self.spent);
        let q = spent.entry(key).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= b.window)
        {
            q.pop_front();
        }
        let cap = match who {
            Spender::Resolve => b.limit,
            // A quarter is kept for the tag lookups of the next cycles.
            Spender::Details => b.limit - b.limit.div_ceil(4),
        };
        if q.len() as u64 >= u64::from(cap) {
            return false;
        }
        q.push_back(now);
        true
    }

    pub fn usage(&self) -> Vec<Usage> {
        let now = Instant::now();
        let spent = lock(&self.spent);
        self.limits
            .iter()
            .map(|(registry, b)| {
                let live: Vec<&Instant> = spent
                    .get(registry)
                    .map(|q| {
                        q.iter()
                            .filter(|t| now.duration_since(**t) < b.window)
                            .collect()
                    })
                    .unwrap_or_default();
                Usage {
                    registry: registry.clone(),
                    budget: *b,
                    used: live.len() as u32,
                    frees_in: live
                        .first()
                        .map(|t| b.window.saturating_sub(now.duration_since(**t))),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse() {
        let b = parse("docker.io=80/6h, index.docker.io=7/30m ,ghcr.io=0/1d").unwrap();
        assert_eq!(
            b["docker.io"],
            Budget {
                limit: 7,
                window: Duration::from_secs(1800)
            }
        );
        assert_eq!(b["ghcr.io"].limit, 0);
        assert_eq!(parse("").unwrap().len(), 0);
        for bad in [
            "docker.io",
            "docker.io=80",
            "docker.io=x/6h",
            "=1/1h",
            "a=1/6y",
            "a=1/0h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn never_more_than_the_budget_and_details_keep_a_reserve() {
        let b = Budgets::new(parse("docker.io=8/1h").unwrap());
        // Details may take 6 of 8.
        let details = (0..20)
            .filter(|_| b.take("registry-1.docker.io", Spender::Details))
            .count();
        assert_eq!(details, 6);
        let resolve = (0..20)
            .filter(|_| b.take("docker.io", Spender::Resolve))
            .count();
        assert_eq!(resolve, 2);
        assert!(b.take("ghcr.io", Spender::Details), "no budget, no limit");
        let u = b.usage();
        assert_eq!(u[0].used, 8);
        assert!(u[0].frees_in.unwrap() <= Duration::from_secs(3600));
    }
}
