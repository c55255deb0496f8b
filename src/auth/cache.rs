//! The verified-token cache: a token whose signature and claims verified is not verified again
//! on its next request, until it expires.
//!
//! - **Key**: the SHA-256 of the whole token, so a hit is the very token that was verified (a
//!   collision is as hard as breaking SHA-256), and a lookup stores 32 bytes, not the token.
//! - **Value**: the issuer policy that verified it (by identity: a reload that makes new issuer
//!   objects misses), the fingerprint of the key that verified it, the claims the [`Principal`]
//!   is made from and anything reads later (compact JSON: a hit makes the principal again), and
//!   when the entry ends: at the token's `exp`, or `max_ttl` after it was cached, whichever is
//!   first.
//! - **What a hit skips**: the signature and the route-independent claim checks (`typ`, `exp`,
//!   `nbf`, `iat`, lifetime, RFC 9068 profile). The route's checks run on every request: its
//!   issuers, its audiences, the revocation list and its scopes. A hit is never an authorisation.
//! - **What ends an entry early**: the issuer no longer being the same object (a reload changed
//!   the configuration), its keys no longer holding the key that verified the token (a rotation
//!   removed it). Such an entry is a miss, and is dropped.
//! - **What is not cached**: failures (an attacker chooses them), tokens whose `nbf` is still in
//!   the future (they pass within the leeway only), and tokens without `kid` (verified by trying
//!   the first few keys, an order a key-set change may alter). An entry made before a clock step
//!   back misses.
//! - **Bounds**: `max_entries` and `max_bytes`, both hard (each entry weighs at least
//!   `max_bytes / max_entries`); [quick_cache]'s S3-FIFO eviction resists floods of one-off
//!   tokens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

use super::Principal;
use crate::snapshot::Issuer;

/// `auth_cache` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub enabled: bool,
    pub max_entries: u64,
    pub max_bytes: u64,
    /// An entry lives at most this long, even when its token lives longer.
    pub max_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            enabled: true,
            max_entries: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_ttl: Duration::from_secs(300),
        }
    }
}

/// How a request uses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Look up, and keep what verifies (the proxy).
    Fill,
    /// Look up only, changing nothing (`explain`: it reports what the proxy would do).
    Peek,
    /// Verify every time.
    Off,
}

/// One verified token, compact: the principal is made again from its kept claims on a hit.
#[derive(Debug)]
pub struct Cached {
    /// The issuer policy that verified it; compared by identity.
    pub issuer: Arc<Issuer>,
    /// The `kid` of the token, and the fingerprint of the key that verified it.
    pub kid: Box<str>,
    pub key: [u8; 32],
    /// The claims a principal is built from and anything reads later, as compact JSON.
    pub claims: Box<str>,
    /// Seconds since the epoch at which the entry was made, and at which it ends.
    pub cached_at: i64,
    pub expires_at: i64,
}

impl Cached {
    /// The entry for `principal`, verified by `issuer` with the key `key` named `kid`, keeping the
    /// claims in `kept` (sorted). `None` for what is never cached: a token without `kid` (it was
    /// verified by trying the first few keys, an order a key-set change may alter), or one whose
    /// `nbf` is still ahead of `now` (it passed within the leeway only).
    pub fn new(
        issuer: &Arc<Issuer>,
        kid: Option<String>,
        key: [u8; 32],
        principal: &Principal,
        kept: &[String],
        now: i64,
        expires_at: i64,
    ) -> Option<Cached> {
        let nbf_ahead = principal
            .claims
            .get("nbf")
            .and_then(serde_json::Value::as_f64)
            .is_some_and(|nbf| nbf > now as f64);
        if nbf_ahead {
            return None;
        }
        Some(Cached {
            issuer: Arc::clone(issuer),
            kid: kid?.into_boxed_str(),
            key,
            claims: principal.kept_claims(kept).into_boxed_str(),
            cached_at: now,
            expires_at,
        })
    }

    /// The principal again, from the kept claims.
    pub fn principal(&self) -> Option<Principal> {
        let claims = serde_json::from_str(&self.claims).ok()?;
        Some(Principal::from_claims(claims, &self.issuer))
    }

    /// What the entry costs in memory, roughly: calibrated against the RSS growth in
    /// `benches/token_cache_memory.rs` (benches/README.md), so `max_bytes` bounds real memory.
    pub fn bytes(&self) -> u64 {
        /// The entry, its Arc, its two heap strings and the map's slot, with allocator rounding.
        const FIXED: usize = 256;
        (FIXED + self.claims.len() + self.kid.len()) as u64
    }
}

#[derive(Clone)]
struct Weight {
    /// The least an entry weighs: `max_bytes / max_entries`, so both bounds hold.
    floor: u64,
}

impl Weighter<[u8; 32], Arc<Cached>> for Weight {
    fn weight(&self, _: &[u8; 32], entry: &Arc<Cached>) -> u64 {
        entry.bytes().max(self.floor).max(1)
    }
}

/// Counts evictions.
#[derive(Clone, Default)]
struct Evictions(Arc<AtomicU64>);

impl Lifecycle<[u8; 32], Arc<Cached>> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: [u8; 32], _: Arc<Cached>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type Map = quick_cache::sync::Cache<[u8; 32], Arc<Cached>, Weight, DefaultHashBuilder, Evictions>;

/// The cache, with its counters (read by the metrics at scrape time).
pub struct TokenCache {
    map: Map,
    settings: CacheSettings,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Evictions,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("settings", &self.settings)
            .field("entries", &self.map.len())
            .finish()
    }
}

/// What the counters say, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// The lookup key of `token`.
pub fn digest(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

impl TokenCache {
    pub fn new(settings: CacheSettings) -> TokenCache {
        let max_entries = settings.max_entries.max(1);
        let evictions = Evictions::default();
        TokenCache {
            map: Map::with(
                usize::try_from(max_entries).unwrap_or(usize::MAX),
                settings.max_bytes.max(1),
                Weight {
                    floor: settings.max_bytes / max_entries,
                },
                DefaultHashBuilder::default(),
                evictions.clone(),
            ),
            settings,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions,
        }
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// The entry for `key` if it is still good at `now` for `issuers` (the candidates of the
    /// route, as in the current snapshot). A stale entry is dropped (with [`CacheUse::Fill`]) and
    /// reported as a miss.
    pub fn get<'a>(
        &self,
        key: &[u8; 32],
        now: i64,
        mut issuers: impl Iterator<Item = &'a Arc<Issuer>>,
        usage: CacheUse,
    ) -> Option<Arc<Cached>> {
        let found = match usage {
            CacheUse::Fill => self.map.get(key),
            CacheUse::Peek => self.map.peek(key),
            CacheUse::Off => return None,
        };
        // A clock stepped back before `cached_at` could make `nbf` or `iat` fail again: miss.
        let good = found.filter(|entry| {
            entry.cached_at <= now
                && now < entry.expires_at
                && issuers.any(|i| Arc::ptr_eq(i, &entry.issuer))
                && still_has_key(entry)
        });
        if usage == CacheUse::Fill {
            match &good {
                Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
                None => self.misses.fetch_add(1, Ordering::Relaxed),
            };
        }
        if good.is_none() && usage == CacheUse::Fill {
            // Expired, or its issuer or key is gone: nothing will make it good again.
            self.map.remove_if(key, |entry| {
                now >= entry.expires_at || now < entry.cached_at || !still_has_key(entry)
            });
        }
        good
    }

    /// Keep a verified token (made with [`Cached::new`]), unless it ends by `now`.
    pub fn insert(&self, key: [u8; 32], entry: Cached, now: i64) {
        if entry.expires_at <= now {
            return;
        }
        self.map.insert(key, Arc::new(entry));
    }

    /// When an entry made at `now` for a token expiring at `exp` ends, with the configuration's
    /// `max_ttl` (which a reload may change).
    pub fn expiry(&self, exp: Option<f64>, now: i64, max_ttl: Duration) -> i64 {
        let ttl = i64::try_from(max_ttl.as_secs()).unwrap_or(i64::MAX);
        let by_ttl = now.saturating_add(ttl);
        match exp {
            // Truncated: an entry never outlives `exp`.
            Some(exp) if exp.is_finite() => by_ttl.min(exp.floor() as i64),
            _ => now,
        }
    }

    /// Drop the entries of issuer objects `snapshot` does not have (after a reload made it
    /// current): they can never hit again, and they keep the old issuers alive.
    pub fn retain_issuers_of(&self, snapshot: &crate::snapshot::Snapshot) {
        self.map.retain(|_, entry| {
            snapshot
                .issuers
                .iter()
                .any(|i| Arc::ptr_eq(i, &entry.issuer))
        });
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.0.load(Ordering::Relaxed),
            entries: self.map.len() as u64,
            bytes: self.map.weight(),
        }
    }
}

/// The issuer still holds the key that verified the token (a rotation may have removed it, or a
/// refresh may have put another key under the same `kid`).
fn still_has_key(entry: &Cached) -> bool {
    let Some(keys) = entry.issuer.keys.current() else {
        return false;
    };
    keys.by_kid(&entry.kid)
        .is_some_and(|k| k.fingerprint == entry.key)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::auth::algorithm::Algorithm;
    use crate::auth::jwks::KeySet;
    use crate::auth::keys::IssuerKeys;

    const NOW: i64 = 1_800_000_000;

    fn keys(jwks: &str) -> KeySet {
        KeySet::from_jwks_json(jwks.as_bytes()).unwrap().0
    }

    fn fixture_keys() -> KeySet {
        keys(include_str!("../../tests/fixtures/jwks.json"))
    }

    fn issuer() -> Arc<Issuer> {
        Arc::new(Issuer {
            id: "corp".into(),
            issuer: "https://idp.test".into(),
            audiences: vec!["orders".into()],
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(30),
            scope_claims: vec!["scope".into()],
            token_type: None,
            dpop: crate::auth::dpop::DpopMode::Allowed,
            token_format: crate::auth::TokenFormat::Jwt,
            introspector: None,
            rfc9068: false,
            max_token_lifetime: Duration::from_secs(24 * 3600),
            keys: Arc::new(IssuerKeys::fixed("corp".into(), fixture_keys())),
            key_source: None,
        })
    }

    /// The claims kept in the tests (sorted).
    fn kept() -> Vec<String> {
        ["aud", "blob", "exp", "iat", "n", "nbf", "scope", "sub"]
            .map(String::from)
            .to_vec()
    }

    fn principal(issuer: &Issuer, claims: serde_json::Value) -> Principal {
        let mut claims = claims.as_object().unwrap().clone();
        claims.insert("sub".into(), json!("alice"));
        Principal::from_claims(claims, issuer)
    }

    fn fingerprint(issuer: &Issuer) -> [u8; 32] {
        let keys = issuer.keys.current().unwrap();
        keys.by_kid("test-rsa-1").unwrap().fingerprint
    }

    /// An entry as the request path makes it, or `None` where it would not cache.
    fn made(
        issuer: &Arc<Issuer>,
        kid: Option<&str>,
        claims: serde_json::Value,
        expires_at: i64,
    ) -> Option<Cached> {
        let p = principal(issuer, claims);
        let kid = kid.map(str::to_owned);
        Cached::new(
            issuer,
            kid,
            fingerprint(issuer),
            &p,
            &kept(),
            NOW,
            expires_at,
        )
    }

    fn entry(issuer: &Arc<Issuer>, claims: serde_json::Value, expires_at: i64) -> Cached {
        made(issuer, Some("test-rsa-1"), claims, expires_at).unwrap()
    }

    fn one(issuer: &Arc<Issuer>) -> impl Iterator<Item = &Arc<Issuer>> {
        std::iter::once(issuer)
    }

    #[test]
    fn an_entry_ends_at_its_expiry_and_is_dropped() {
        let cache = TokenCache::new(CacheSettings::default());
        let corp = issuer();
        cache.insert(digest("t"), entry(&corp, json!({}), NOW + 10), NOW);
        assert!(cache
            .get(&digest("t"), NOW + 9, one(&corp), CacheUse::Fill)
            .is_some());
        assert!(cache
            .get(&digest("t"), NOW + 10, one(&corp), CacheUse::Fill)
            .is_none());
        assert_eq!(cache.stats().entries, 0, "dropped");
        assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
        // Another token never finds it.
        cache.insert(digest("t"), entry(&corp, json!({}), NOW + 10), NOW);
        assert!(cache
            .get(&digest("t2"), NOW, one(&corp), CacheUse::Fill)
            .is_none());
    }

    #[test]
    fn an_entry_never_outlives_exp_or_max_ttl() {
        let cache = TokenCache::new(CacheSettings::default());
        let ttl = Duration::from_secs(300);
        assert_eq!(
            cache.expiry(Some((NOW + 60) as f64 + 0.9), NOW, ttl),
            NOW + 60
        );
        assert_eq!(cache.expiry(Some((NOW + 3600) as f64), NOW, ttl), NOW + 300);
        assert_eq!(cache.expiry(None, NOW, ttl), NOW, "no exp: not cached");
        let corp = issuer();
        cache.insert(digest("gone"), entry(&corp, json!({}), NOW), NOW);
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn a_token_not_yet_valid_is_not_cached() {
        let cache = TokenCache::new(CacheSettings::default());
        let corp = issuer();
        assert!(made(&corp, Some("test-rsa-1"), json!({"nbf": NOW + 5}), NOW + 60).is_none());
        cache.insert(
            digest("t"),
            entry(&corp, json!({"nbf": NOW}), NOW + 60),
            NOW,
        );
        assert_eq!(cache.stats().entries, 1);
    }

    #[test]
    fn another_issuer_policy_or_a_rotated_out_key_misses() {
        let cache = TokenCache::new(CacheSettings::default());
        let corp = issuer();
        cache.insert(digest("t"), entry(&corp, json!({}), NOW + 60), NOW);
        // A reload compiles a new issuer object, even with the same settings.
        let reloaded = issuer();
        assert!(cache
            .get(&digest("t"), NOW, one(&reloaded), CacheUse::Fill)
            .is_none());
        assert_eq!(
            cache.stats().entries,
            1,
            "kept: the old configuration may still serve"
        );
        // The issuer's keys lose the key that verified the token.
        corp.keys
            .install(keys(include_str!("../../tests/fixtures/jwks-rotated.json")));
        assert!(cache
            .get(&digest("t"), NOW, one(&corp), CacheUse::Fill)
            .is_none());
        assert_eq!(cache.stats().entries, 0, "dropped");
        // The same kid with another key is another key.
        cache.insert(digest("u"), entry(&issuer(), json!({}), NOW + 60), NOW);
        let corp = issuer();
        cache.insert(digest("u"), entry(&corp, json!({}), NOW + 60), NOW);
        let renamed = include_str!("../../tests/fixtures/jwks-rotated.json")
            .replace("test-rsa-2", "test-rsa-1");
        corp.keys.install(keys(&renamed));
        assert!(cache
            .get(&digest("u"), NOW, one(&corp), CacheUse::Fill)
            .is_none());
    }

    #[test]
    fn a_token_without_kid_or_a_clock_stepped_back_does_not_hit() {
        let cache = TokenCache::new(CacheSettings::default());
        let corp = issuer();
        assert!(made(&corp, None, json!({}), NOW + 60).is_none());
        cache.insert(digest("t"), entry(&corp, json!({}), NOW + 60), NOW);
        assert!(cache
            .get(&digest("t"), NOW - 1, one(&corp), CacheUse::Fill)
            .is_none());
        assert_eq!(cache.stats().entries, 0, "dropped");
    }

    #[test]
    fn a_reload_drops_the_entries_of_issuers_it_replaced() {
        let cache = TokenCache::new(CacheSettings::default());
        let corp = issuer();
        cache.insert(digest("t"), entry(&corp, json!({}), NOW + 60), NOW);
        let yaml = "listeners: [{ name: t, address: \"127.0.0.1:1\" }]
issuers: [{ id: corp, issuer: \"https://idp.test\", jwks_file: jwks.json, audiences: [orders] }]
upstreams: [{ id: u, url: \"http://127.0.0.1:2\" }]
routes: [{ id: r, match: { path_prefix: / }, upstream: u }]
";
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let reloaded = crate::config::load_str(yaml, &fixtures).unwrap().snapshot;
        cache.retain_issuers_of(&reloaded);
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn a_hit_makes_the_same_principal_from_the_kept_claims() {
        let cache = TokenCache::new(CacheSettings::default());
        let corp = issuer();
        let claims = json!({"scope": "a b", "iat": NOW, "aud": ["x", "y"], "dropped": "z"});
        cache.insert(digest("t"), entry(&corp, claims.clone(), NOW + 60), NOW);
        let hit = cache
            .get(&digest("t"), NOW, one(&corp), CacheUse::Fill)
            .unwrap();
        let again = hit.principal().unwrap();
        let full = principal(&corp, claims);
        assert_eq!(
            (&again.subject, again.iat, again.scopes.to_header_value()),
            (&full.subject, full.iat, full.scopes.to_header_value())
        );
        assert_eq!(again.claims.get("aud"), full.claims.get("aud"));
        assert_eq!(again.claims.get("dropped"), None, "only the kept claims");
    }

    #[test]
    fn peeking_changes_nothing() {
        let cache = TokenCache::new(CacheSettings::default());
        let corp = issuer();
        cache.insert(digest("t"), entry(&corp, json!({}), NOW + 10), NOW);
        assert!(cache
            .get(&digest("t"), NOW, one(&corp), CacheUse::Peek)
            .is_some());
        assert!(cache
            .get(&digest("t"), NOW + 20, one(&corp), CacheUse::Peek)
            .is_none());
        assert!(cache
            .get(&digest("t"), NOW, one(&corp), CacheUse::Off)
            .is_none());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries), (0, 0, 1));
    }

    #[test]
    fn a_flood_of_unique_tokens_stays_within_both_bounds() {
        let settings = CacheSettings {
            max_entries: 1_000,
            max_bytes: 1024 * 1024,
            ..CacheSettings::default()
        };
        let cache = TokenCache::new(settings);
        let corp = issuer();
        let big = "x".repeat(4096);
        for i in 0..20_000 {
            // Small entries first (the entry bound), then big ones (the byte bound).
            let claims = match i < 10_000 {
                true => json!({"n": i}),
                false => json!({"n": i, "blob": big}),
            };
            cache.insert(
                digest(&format!("token-{i}")),
                entry(&corp, claims, NOW + 60),
                NOW,
            );
            let stats = cache.stats();
            assert!(stats.entries <= 1_000, "{stats:?} after {i}");
            assert!(stats.bytes <= 1024 * 1024, "{stats:?} after {i}");
        }
        assert!(cache.stats().evictions >= 19_000, "{:?}", cache.stats());
    }
}
