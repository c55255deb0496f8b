//! GCRA, the generic cell rate algorithm: one "theoretical arrival time" (TAT) per key, no
//! timers, and a fixed table of atomics that holds the TATs of at most a configured number of
//! keys, so memory is bounded however many distinct keys arrive.
//!
//! A key with quota `burst` requests and one more every `interval`: a request at `now` is
//! allowed when `max(tat, now) + interval <= now + burst * interval`, and moves the key's TAT
//! there. A key whose TAT is in the past has its whole burst again, exactly as if it had never
//! been seen: such a key can be dropped without losing anything, which is how the table evicts.
//!
//! The table is set-associative: a key's hash picks a bucket of [`WAYS`] slots (two cache
//! lines), each a key fingerprint and a TAT. A check reads the bucket and updates one TAT with
//! a compare-and-swap: no lock, no allocation. A new key takes an empty slot, else one whose
//! TAT has passed (nothing lost), else the one with the earliest TAT (its debt is forgiven:
//! counted in [`LocalLimiter::evicted_active`]).

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Slots per bucket.
pub const WAYS: usize = 8;

/// A limit's rate: `burst` requests at once, then one per `interval` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub interval: u64,
    pub burst: u32,
}

impl Quota {
    /// `burst * interval`: how far ahead of now a key's TAT may be after an allowed request.
    pub fn capacity(self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst))
    }
}

/// What a check decided, in nanoseconds from `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed: `remaining` requests more are allowed right now; the whole burst is back in
    /// `full_in`.
    Allowed { remaining: u32, full_in: u64 },
    /// Refused: the next request is allowed in `retry_in`.
    Refused { retry_in: u64 },
}

/// The GCRA step: from the key's TAT (0 for an unknown key) at `now`, the new TAT when the
/// request is allowed (`Ok`), or how long until one would be (`Err`).
pub fn step(tat: u64, now: u64, quota: Quota) -> Result<u64, u64> {
    let new = tat.max(now).saturating_add(quota.interval);
    let ahead = new - now;
    match ahead <= quota.capacity() {
        true => Ok(new),
        false => Err(ahead - quota.capacity()),
    }
}

/// The outcome of an allowed step that moved the TAT to `new` at `now`.
pub fn allowed(new: u64, now: u64, quota: Quota) -> Outcome {
    let ahead = new.saturating_sub(now);
    let spare = quota.capacity().saturating_sub(ahead);
    let remaining = spare.checked_div(quota.interval).unwrap_or(0);
    Outcome::Allowed {
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        full_in: ahead,
    }
}

struct Slot {
    /// The key's fingerprint (its hash, never 0); 0 for an empty slot.
    key: AtomicU64,
    tat: AtomicU64,
}

/// One bucket: two whole cache lines, fetched together.
#[repr(align(128))]
struct Bucket([Slot; WAYS]);

/// The local store of TATs: a fixed table sized at start-up.
pub struct LocalLimiter {
    buckets: Box<[Bucket]>,
    /// Buckets - 1 (a power of two).
    mask: u64,
    /// Keyed with a random key per process, so nobody can aim many keys at one bucket.
    hasher: std::hash::RandomState,
    epoch: Instant,
    evicted_active: AtomicU64,
}

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter")
            .field("slots", &self.slots())
            .finish_non_exhaustive()
    }
}

impl LocalLimiter {
    /// A table for `max_keys` keys (a quarter more slots, rounded up to whole power-of-two
    /// buckets, so keys rarely contend for a bucket before the table is full).
    pub fn new(max_keys: usize) -> Self {
        let wanted = max_keys.saturating_add(max_keys / 4).div_ceil(WAYS).max(1);
        let buckets = wanted.checked_next_power_of_two().unwrap_or(1 << 40);
        let buckets_list = (0..buckets)
            .map(|_| {
                Bucket(std::array::from_fn(|_| Slot {
                    key: AtomicU64::new(0),
                    tat: AtomicU64::new(0),
                }))
            })
            .collect();
        LocalLimiter {
            buckets: buckets_list,
            mask: buckets as u64 - 1,
            hasher: std::hash::RandomState::new(),
            epoch: Instant::now(),
            evicted_active: AtomicU64::new(0),
        }
    }

    /// Keys the table holds at most.
    pub fn slots(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// The table's size in bytes (all of it allocated at start-up).
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// Keys dropped while their TAT was still ahead (their debt forgiven), since start-up.
    pub fn evicted_active(&self) -> u64 {
        self.evicted_active.load(Relaxed)
    }

    /// Nanoseconds since this table was made: the clock its TATs count in.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The key of the parts `parts` hashes to (with this process's random hash key).
    pub fn key<T: Hash + ?Sized>(&self, parts: &T) -> u64 {
        self.hasher.hash_one(parts).max(1)
    }

    fn bucket(&self, key: u64) -> &[Slot] {
        // The high bits pick the bucket; the whole hash is the fingerprint.
        let index = ((key >> 20) & self.mask) as usize;
        self.buckets.get(index).map(|b| &b.0[..]).unwrap_or(&[])
    }

    /// Check (and, when allowed, count) one request of `key` at `now`.
    pub fn check(&self, key: u64, quota: Quota, now: u64) -> Outcome {
        let bucket = self.bucket(key);
        if let Some(slot) = bucket.iter().find(|s| s.key.load(Relaxed) == key) {
            return update(&slot.tat, quota, now);
        }
        // A new key: an empty slot, else a passed one, else the earliest.
        for _ in 0..4 {
            let mut victim: Option<(&Slot, u64, u64)> = None;
            for slot in bucket {
                let (k, t) = (slot.key.load(Relaxed), slot.tat.load(Relaxed));
                if k == key {
                    return update(&slot.tat, quota, now);
                }
                if k == 0 || t <= now {
                    victim = Some((slot, k, t));
                    break;
                }
                if victim.is_none_or(|(_, _, best)| t < best) {
                    victim = Some((slot, k, t));
                }
            }
            let Some((slot, old_key, old_tat)) = victim else {
                break;
            };
            if slot
                .key
                .compare_exchange(old_key, key, Relaxed, Relaxed)
                .is_err()
            {
                continue;
            }
            if old_key != 0 && old_tat > now {
                self.evicted_active.fetch_add(1, Relaxed);
            }
            // The slot is this key's now, starting from nothing: its old TAT is replaced
            // unless a request of this key got there first.
            let fresh = match step(0, now, quota) {
                Ok(new) => new,
                Err(retry_in) => return Outcome::Refused { retry_in },
            };
            return match slot.tat.compare_exchange(old_tat, fresh, Relaxed, Relaxed) {
                Ok(_) => allowed(fresh, now, quota),
                Err(_) => update(&slot.tat, quota, now),
            };
        }
        // The bucket kept changing under us: judge the request as a new key's, uncounted.
        match step(0, now, quota) {
            Ok(new) => allowed(new, now, quota),
            Err(retry_in) => Outcome::Refused { retry_in },
        }
    }

    /// Give back the request a check of `key` counted (another limit refused the request):
    /// best effort, a request counted since is not undone.
    pub fn refund(&self, key: u64, quota: Quota, now: u64) {
        let Some(slot) = self.bucket(key).iter().find(|s| s.key.load(Relaxed) == key) else {
            return;
        };
        let _ = slot.tat.fetch_update(Relaxed, Relaxed, |tat| {
            (tat > now).then(|| tat.saturating_sub(quota.interval).max(now))
        });
    }
}

/// The GCRA step on one TAT, retried until the compare-and-swap holds.
fn update(tat: &AtomicU64, quota: Quota, now: u64) -> Outcome {
    let mut current = tat.load(Relaxed);
    loop {
        match step(current, now, quota) {
            Err(retry_in) => return Outcome::Refused { retry_in },
            Ok(new) => match tat.compare_exchange_weak(current, new, Relaxed, Relaxed) {
                Ok(_) => return allowed(new, now, quota),
                Err(seen) => current = seen,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn per_second(n: u64, burst: u32) -> Quota {
        Quota {
            interval: SECOND / n,
            burst,
        }
    }

    fn allowed_now(o: Outcome) -> bool {
        matches!(o, Outcome::Allowed { .. })
    }

    #[test]
    fn a_new_key_has_its_whole_burst_then_one_request_per_interval() {
        let table = LocalLimiter::new(16);
        let quota = per_second(10, 3);
        let key = table.key("client-a");
        let t0 = 5 * SECOND;
        let outcomes: Vec<Outcome> = (0..4).map(|_| table.check(key, quota, t0)).collect();
        assert_eq!(
            outcomes[..3],
            [
                Outcome::Allowed {
                    remaining: 2,
                    full_in: SECOND / 10
                },
                Outcome::Allowed {
                    remaining: 1,
                    full_in: 2 * SECOND / 10
                },
                Outcome::Allowed {
                    remaining: 0,
                    full_in: 3 * SECOND / 10
                },
            ]
        );
        assert_eq!(
            outcomes[3],
            Outcome::Refused {
                retry_in: SECOND / 10
            }
        );
        // One nanosecond early: still refused; at the interval: allowed, and only one.
        assert_eq!(
            table.check(key, quota, t0 + SECOND / 10 - 1),
            Outcome::Refused { retry_in: 1 }
        );
        assert!(allowed_now(table.check(key, quota, t0 + SECOND / 10)));
        assert!(!allowed_now(table.check(key, quota, t0 + SECOND / 10)));
        // After the whole burst's time, the whole burst again.
        let later = t0 + SECOND;
        assert_eq!(
            table.check(key, quota, later),
            Outcome::Allowed {
                remaining: 2,
                full_in: SECOND / 10
            }
        );
    }

    #[test]
    fn keys_do_not_share_a_budget() {
        let table = LocalLimiter::new(16);
        let quota = per_second(1, 1);
        let (a, b) = (table.key("a"), table.key("b"));
        assert!(allowed_now(table.check(a, quota, SECOND)));
        assert!(!allowed_now(table.check(a, quota, SECOND)));
        assert!(allowed_now(table.check(b, quota, SECOND)));
    }

    #[test]
    fn the_table_never_grows_and_keeps_the_keys_still_in_debt() {
        let table = LocalLimiter::new(64);
        let (slots, bytes) = (table.slots(), table.bytes());
        let slow = Quota {
            interval: 3600 * SECOND,
            burst: 1,
        };
        let victim = table.key("victim");
        assert!(allowed_now(table.check(victim, slow, SECOND)));
        // A flood of distinct keys whose TATs pass at once: they evict each other, never the
        // key still in debt (it is the only live one in its bucket, and the newest).
        let brief = Quota {
            interval: 1,
            burst: 1,
        };
        for i in 0..100_000u32 {
            table.check(table.key(&i), brief, 2 * SECOND + u64::from(i));
        }
        assert_eq!((table.slots(), table.bytes()), (slots, bytes));
        assert_eq!(table.evicted_active(), 0);
        assert!(!allowed_now(table.check(victim, slow, 3 * SECOND)));
    }

    #[test]
    fn a_full_bucket_of_live_keys_evicts_the_earliest_and_counts_it() {
        let table = LocalLimiter::new(1);
        assert_eq!(table.slots(), WAYS);
        let slow = Quota {
            interval: 3600 * SECOND,
            burst: 1,
        };
        for i in 0..=WAYS as u64 {
            table.check(table.key(&i), slow, SECOND + i);
        }
        assert_eq!(table.evicted_active(), 1);
        // Key 0 (the earliest TAT) was forgiven; the last one is still remembered.
        assert!(allowed_now(table.check(table.key(&0u64), slow, 2 * SECOND)));
        assert!(!allowed_now(table.check(
            table.key(&(WAYS as u64)),
            slow,
            2 * SECOND
        )));
    }

    #[test]
    fn a_refund_gives_back_one_request() {
        let table = LocalLimiter::new(16);
        let quota = per_second(1, 2);
        let key = table.key("k");
        assert!(allowed_now(table.check(key, quota, SECOND)));
        assert!(allowed_now(table.check(key, quota, SECOND)));
        table.refund(key, quota, SECOND);
        assert!(allowed_now(table.check(key, quota, SECOND)));
        assert!(!allowed_now(table.check(key, quota, SECOND)));
    }

    #[test]
    fn concurrent_checks_of_one_key_allow_exactly_the_burst() {
        let table = std::sync::Arc::new(LocalLimiter::new(16));
        let quota = Quota {
            interval: 3600 * SECOND,
            burst: 1000,
        };
        let key = table.key("shared");
        let start = std::sync::Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (table, start) = (std::sync::Arc::clone(&table), std::sync::Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    (0..500)
                        .filter(|_| allowed_now(table.check(key, quota, SECOND)))
                        .count()
                })
            })
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(allowed, 1000);
    }
}
