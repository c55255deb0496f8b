//! Per-issuer key state: the current key set, and for remote sources the one background task
//! that fetches it.
//!
//! Requests only read the current [`KeySet`] (an `ArcSwap` load). All fetching happens in the
//! issuer's refresher task: on schedule (the server's `max-age` within bounds), on backoff after a
//! failure, or when a request meets an unknown `kid`. Such a request waits briefly for the same
//! fetch as every other request (single flight); at most one unknown-`kid` fetch runs per cooldown,
//! and a `kid` still unknown after a fresh fetch is remembered so a flood of bogus `kid`s costs no
//! fetches. A failed fetch never empties the key set: the last good keys serve until they are
//! older than the maximum staleness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::fetch::KeySource;
use super::jwks::KeySet;

/// Timing of remote key refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Refresh interval when the server sends no `max-age`.
    pub interval: Duration,
    /// Bounds applied to the server's `max-age`.
    pub min_interval: Duration,
    pub max_interval: Duration,
    /// At most one refresh triggered by unknown `kid`s per this period.
    pub unknown_kid_cooldown: Duration,
    /// How long a request waits for a refresh it triggered or joined.
    pub unknown_kid_wait: Duration,
    /// The last good keys are dropped when older than this and no fetch has succeeded since.
    pub max_staleness: Duration,
    /// First retry delay after a failed fetch; doubles up to `max_interval`, with jitter.
    pub initial_backoff: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            interval: Duration::from_secs(300),
            min_interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(30),
            unknown_kid_wait: Duration::from_secs(2),
            max_staleness: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(1),
        }
    }
}

/// What the refresher has done, for waiters and readiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStatus {
    /// Completed fetch attempts, successful or not.
    pub attempts: u64,
    pub successes: u64,
    /// When keys were last fetched successfully.
    pub last_success: Option<Instant>,
}

/// The keys of one issuer.
pub struct IssuerKeys {
    issuer_id: Arc<str>,
    current: ArcSwapOption<KeySet>,
    remote: Option<RemoteState>,
}

struct RemoteState {
    policy: RefreshPolicy,
    wake: Notify,
    fetching: AtomicBool,
    status: watch::Sender<FetchStatus>,
    /// When the last unknown-`kid` refresh was requested, and the attempt count at that moment
    /// (unchanged attempts mean that refresh is still pending).
    last_kid_refresh: parking_lot::Mutex<Option<(Instant, u64)>>,
    /// `kid`s still unknown after a fresh fetch, until when to ignore them.
    unknown_kids: DashMap<String, Instant>,
}

/// Bound on remembered unknown `kid`s, so random `kid`s cannot grow memory without limit.
const MAX_REMEMBERED_UNKNOWN_KIDS: usize = 10_000;

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("issuer_id", &self.issuer_id)
            .field("loaded", &self.is_loaded())
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

impl IssuerKeys {
    /// Keys that never change (a `jwks_file`).
    pub fn fixed(issuer_id: Arc<str>, keys: KeySet) -> Self {
        IssuerKeys {
            issuer_id,
            current: ArcSwapOption::from_pointee(keys),
            remote: None,
        }
    }

    /// Keys fetched by a refresher task; empty until the first fetch succeeds.
    pub fn remote(issuer_id: Arc<str>, policy: RefreshPolicy) -> Self {
        let (status, _) = watch::channel(FetchStatus::default());
        IssuerKeys {
            issuer_id,
            current: ArcSwapOption::empty(),
            remote: Some(RemoteState {
                policy,
                wake: Notify::new(),
                fetching: AtomicBool::new(false),
                status,
                last_kid_refresh: parking_lot::Mutex::new(None),
                unknown_kids: DashMap::new(),
            }),
        }
    }

    /// The keys to verify with now; `None` until a remote source has loaded once.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// Use `keys` from now on (one-off tools such as `explain` fetch once instead of refreshing).
    pub fn install(&self, keys: KeySet) {
        self.current.store(Some(Arc::new(keys)));
    }

    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// How long ago remote keys were last fetched successfully; `None` for fixed keys or before
    /// the first success.
    pub fn age(&self) -> Option<Duration> {
        let last = self.remote.as_ref()?.status.borrow().last_success?;
        Some(Instant::now().duration_since(last))
    }

    /// Follow the refresher's progress (tests, readiness, metrics).
    pub fn status(&self) -> Option<watch::Receiver<FetchStatus>> {
        self.remote.as_ref().map(|r| r.status.subscribe())
    }

    /// A request met `kid`, which the current keys lack. Returns `true` when a fetch completed
    /// while waiting and (for a token with a `kid`) brought that `kid` or left no keys at all,
    /// so the request should verify once more; `false` when no fetch is allowed (fixed keys,
    /// cooldown, `kid` known to be bogus), none finished within the wait bound, or the fetch did
    /// not bring the `kid`.
    pub async fn refresh_for_unknown_kid(&self, kid: Option<&str>) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        let now = Instant::now();
        if let Some(kid) = kid {
            if let Some(until) = remote.unknown_kids.get(kid).map(|e| *e.value()) {
                if now < until {
                    return false;
                }
                remote.unknown_kids.remove(kid);
            }
        }
        let mut status = remote.status.subscribe();
        let seen = status.borrow_and_update().attempts;
        {
            let mut last = remote.last_kid_refresh.lock();
            match *last {
                // Within the cooldown: join a fetch that is requested or running, else give up.
                Some((at, attempts_then))
                    if now.duration_since(at) < remote.policy.unknown_kid_cooldown =>
                {
                    let pending = attempts_then == seen || remote.fetching.load(Ordering::Acquire);
                    if !pending {
                        return false;
                    }
                }
                _ => {
                    *last = Some((now, seen));
                    remote.wake.notify_one();
                }
            }
        }
        let finished = tokio::time::timeout(
            remote.policy.unknown_kid_wait,
            status.wait_for(|s| s.attempts > seen),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let Some(kid) = kid else {
            return finished;
        };
        let known = self
            .current()
            .is_some_and(|keys| keys.by_kid(kid).is_some());
        if finished && !known && remote.unknown_kids.len() < MAX_REMEMBERED_UNKNOWN_KIDS {
            // Remembered until the next successful fetch clears the list, at most max_interval.
            remote
                .unknown_kids
                .insert(kid.to_owned(), Instant::now() + remote.policy.max_interval);
        }
        // Verify again when the fetch brought the kid, or when the keys are now gone (past
        // their staleness): the request then gets 503, not a 401 blaming its token. A fetch that
        // left the kid unknown is no reason to verify again.
        finished && (known || !self.is_loaded())
    }

    /// Run the refresher for a remote issuer until `shutdown` flips. Returns at once for fixed keys.
    pub async fn run_refresher(
        self: Arc<Self>,
        source: Arc<dyn KeySource>,
        metrics: Option<crate::metrics::Metrics>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let Some(remote) = &self.remote else {
            return;
        };
        let policy = &remote.policy;
        let mut backoff = policy.initial_backoff;
        loop {
            remote.fetching.store(true, Ordering::Release);
            let result = source.fetch().await;
            remote.fetching.store(false, Ordering::Release);
            if let Some(m) = &metrics {
                m.record_key_fetch(&self.issuer_id, result.is_ok());
            }
            let now = Instant::now();
            let next = match result {
                Ok(fetched) => {
                    for e in &fetched.key_errors {
                        tracing::warn!(issuer = %self.issuer_id, "key not loaded: {e}; the other keys are used");
                    }
                    tracing::info!(issuer = %self.issuer_id, keys = fetched.keys.len(), "issuer keys fetched");
                    self.current.store(Some(Arc::new(fetched.keys)));
                    remote.unknown_kids.clear();
                    backoff = policy.initial_backoff;
                    remote.status.send_modify(|s| {
                        s.attempts += 1;
                        s.successes += 1;
                        s.last_success = Some(now);
                    });
                    fetched
                        .max_age
                        .unwrap_or(policy.interval)
                        .clamp(policy.min_interval, policy.max_interval)
                }
                Err(e) => {
                    let last_success = remote.status.borrow().last_success;
                    let too_old =
                        last_success.is_none_or(|t| now.duration_since(t) > policy.max_staleness);
                    if too_old && self.is_loaded() {
                        tracing::error!(issuer = %self.issuer_id, "issuer keys are older than the maximum staleness and cannot be refreshed: dropping them");
                        self.current.store(None);
                    }
                    tracing::warn!(issuer = %self.issuer_id, error = %e, retry_in = ?backoff, "issuer key fetch failed; keeping the last good keys");
                    remote.status.send_modify(|s| s.attempts += 1);
                    let delay = jittered(backoff);
                    backoff = backoff.saturating_mul(2).min(policy.max_interval);
                    delay
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = remote.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// `base` ± 20 %, so replicas that failed together do not retry together.
fn jittered(base: Duration) -> Duration {
    base.mul_f64(0.8 + fastrand::f64() * 0.4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::fetch::FetchError;
    use crate::auth::fetch::Fetched;
    use async_trait::async_trait;
    use std::sync::atomic::AtomicU64;

    const RSA_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    fn keyset(kid: &str) -> KeySet {
        let doc =
            serde_json::json!({"keys": [{"kty": "RSA", "kid": kid, "n": RSA_N, "e": "AQAB"}]});
        KeySet::from_jwks_json(doc.to_string().as_bytes())
            .unwrap()
            .0
    }

    /// An in-memory source: serves `kid` (or fails when `failing`), counting fetches.
    struct Scripted {
        kid: parking_lot::Mutex<String>,
        failing: AtomicBool,
        max_age: Option<Duration>,
        fetches: AtomicU64,
    }

    impl Scripted {
        fn new(kid: &str, max_age: Option<Duration>) -> Arc<Self> {
            Arc::new(Scripted {
                kid: parking_lot::Mutex::new(kid.into()),
                failing: AtomicBool::new(false),
                max_age,
                fetches: AtomicU64::new(0),
            })
        }
    }

    #[async_trait]
    impl KeySource for Scripted {
        async fn fetch(&self) -> Result<Fetched, FetchError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(FetchError::Unavailable("down".into()));
            }
            Ok(Fetched {
                keys: keyset(&self.kid.lock()),
                key_errors: vec![],
                max_age: self.max_age,
            })
        }
    }

    fn policy() -> RefreshPolicy {
        RefreshPolicy {
            interval: Duration::from_secs(300),
            min_interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(600),
            unknown_kid_cooldown: Duration::from_secs(30),
            unknown_kid_wait: Duration::from_secs(2),
            max_staleness: Duration::from_secs(3600),
            initial_backoff: Duration::from_secs(1),
        }
    }

    fn start(source: Arc<Scripted>) -> (Arc<IssuerKeys>, watch::Sender<bool>) {
        let keys = Arc::new(IssuerKeys::remote(Arc::from("corp"), policy()));
        let (tx, rx) = watch::channel(false);
        tokio::spawn(Arc::clone(&keys).run_refresher(source, None, rx));
        (keys, tx)
    }

    async fn attempts_reach(keys: &IssuerKeys, n: u64) {
        let mut status = keys.status().unwrap();
        status.wait_for(|s| s.attempts >= n).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_on_max_age_within_bounds() {
        let source = Scripted::new("k1", Some(Duration::from_secs(10))); // below min: 60 s
        let (keys, _stop) = start(Arc::clone(&source));
        attempts_reach(&keys, 1).await;
        assert!(keys.is_loaded());
        let t0 = Instant::now();
        attempts_reach(&keys, 2).await;
        assert_eq!(Instant::now().duration_since(t0), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_keep_keys_and_back_off_until_max_staleness() {
        let source = Scripted::new("k1", None);
        let (keys, _stop) = start(Arc::clone(&source));
        attempts_reach(&keys, 1).await;
        source.failing.store(true, Ordering::SeqCst);
        let t0 = Instant::now();
        attempts_reach(&keys, 2).await; // the scheduled refresh at 300 s fails
        attempts_reach(&keys, 3).await; // retried after ~1 s
        attempts_reach(&keys, 4).await; // then ~2 s
        let gaps = Instant::now().duration_since(t0);
        assert!(
            gaps > Duration::from_secs(302) && gaps < Duration::from_secs(304),
            "{gaps:?}"
        );
        assert!(
            keys.current().unwrap().by_kid("k1").is_some(),
            "stale keys still serve"
        );
        // The keys are dropped by the first failed retry past the maximum staleness (1 h after the
        // last success, at t0), and not before.
        let mut status = keys.status().unwrap();
        status.wait_for(|_| !keys.is_loaded()).await.unwrap();
        let since_success = Instant::now().duration_since(t0);
        let staleness = Duration::from_secs(3600);
        let longest_retry = Duration::from_secs(600).mul_f64(1.2);
        assert!(
            since_success > staleness && since_success <= staleness + longest_retry,
            "{since_success:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_kid_triggers_one_refresh_per_cooldown() {
        let source = Scripted::new("k1", None);
        let (keys, _stop) = start(Arc::clone(&source));
        attempts_reach(&keys, 1).await;
        *source.kid.lock() = "k2".into();
        assert!(keys.refresh_for_unknown_kid(Some("k2")).await);
        assert!(keys.current().unwrap().by_kid("k2").is_some());
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
        // Within the cooldown, another unknown kid does not fetch.
        assert!(!keys.refresh_for_unknown_kid(Some("k3")).await);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
        // After it, one more fetch; the still-unknown kid is then remembered past the cooldown.
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(
            !keys.refresh_for_unknown_kid(Some("k3")).await,
            "fetched, but k3 is still unknown: no reason to verify again"
        );
        assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(
            !keys.refresh_for_unknown_kid(Some("k3")).await,
            "k3 is remembered as unknown"
        );
        assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_that_drops_stale_keys_asks_for_another_check() {
        // The request is then refused as "keys not loaded" (503), not for its kid (401).
        let source = Scripted::new("k1", None);
        let keys = Arc::new(IssuerKeys::remote(
            Arc::from("corp"),
            RefreshPolicy {
                max_staleness: Duration::from_secs(10),
                ..policy()
            },
        ));
        let (_stop, stopped) = watch::channel(false);
        tokio::spawn(Arc::clone(&keys).run_refresher(Arc::clone(&source) as _, None, stopped));
        attempts_reach(&keys, 1).await;
        source.failing.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(keys.is_loaded(), "the next scheduled refresh is at 300 s");
        assert!(keys.refresh_for_unknown_kid(Some("k9")).await);
        assert!(!keys.is_loaded());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_unknown_kids_share_one_fetch() {
        let source = Scripted::new("k1", None);
        let (keys, _stop) = start(Arc::clone(&source));
        attempts_reach(&keys, 1).await;
        let waits: Vec<_> = (0..50)
            .map(|i| {
                let keys = Arc::clone(&keys);
                tokio::spawn(async move {
                    keys.refresh_for_unknown_kid(Some(&format!("bogus-{i}")))
                        .await
                })
            })
            .collect();
        for w in waits {
            w.await.unwrap();
        }
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn fixed_keys_never_refresh() {
        let keys = IssuerKeys::fixed(Arc::from("corp"), keyset("k1"));
        assert!(keys.is_loaded());
        assert!(!keys.refresh_for_unknown_kid(Some("k2")).await);
    }
}
