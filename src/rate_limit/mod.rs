//! Rate limits: GCRA per key ([`gcra`]), in this process's table or shared through Redis
//! ([`redis`]), and the IETF `RateLimit` / `RateLimit-Policy` fields ([`headers`]).
//!
//! A route's limits ([`RouteLimits`]) are its own `rate_limit` or the gateway-wide default.
//! Each limit counts requests per key: the values of its key parts ([`KeyPart`]) for the
//! request, within the limit's budget (a default limit's budget is shared by every route that
//! uses it, unless `route` is one of its key parts). Every limit must allow a request.
//!
//! [`crate::admission::admit`] checks the limits keyed by the client address (`ip`, alone or
//! with `route`) right after routing, before any signature is checked, so a flood without
//! tokens costs no crypto; every other limit once the token is verified: those keyed by
//! identity (`client_id`, `sub`, `issuer`), so nobody can spend another client's budget, and
//! those keyed by `route` alone, so requests that never reach the backend do not use up its
//! budget.

pub mod gcra;
pub mod headers;
pub mod redis;

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

pub use gcra::{LocalLimiter, Outcome, Quota};

use crate::auth::Principal;

/// What a limit counts requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyPart {
    /// The client address: the peer, or what trusted proxies say it is (`X-Forwarded-For`);
    /// an IPv6 address by its /64 (one subscriber's network: a client has a whole /64 to pick
    /// addresses from).
    Ip,
    /// The route's id.
    Route,
    /// The configured id of the token's issuer.
    Issuer,
    /// `client_id` (or `azp`).
    ClientId,
    /// `sub`.
    Sub,
}

impl KeyPart {
    pub const ALL: [KeyPart; 5] = [
        KeyPart::Ip,
        KeyPart::Route,
        KeyPart::Issuer,
        KeyPart::ClientId,
        KeyPart::Sub,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyPart::Ip => "ip",
            KeyPart::Route => "route",
            KeyPart::Issuer => "issuer",
            KeyPart::ClientId => "client_id",
            KeyPart::Sub => "sub",
        }
    }

    pub fn parse(name: &str) -> Option<KeyPart> {
        KeyPart::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Known only once a token is verified.
    pub fn is_identity(self) -> bool {
        matches!(self, KeyPart::Issuer | KeyPart::ClientId | KeyPart::Sub)
    }
}

/// One compiled limit.
#[derive(Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// The policy's name in `RateLimit-Policy`, metrics and logs (`name`, or the key parts
    /// joined with `_`).
    pub name: Arc<str>,
    /// Whose budget: `default` for a gateway-wide limit, else `route:<id>`.
    pub budget: Arc<str>,
    /// Sorted, without repeats.
    pub key: Vec<KeyPart>,
    pub quota: Quota,
    /// The rate as configured (`100/s`), for `explain`.
    pub rate: String,
}

impl RateLimit {
    /// Checked after authentication: keyed by the token's identity, or not by the address
    /// (a `route` budget counts only requests that may reach the backend).
    pub fn after_auth(&self) -> bool {
        !self.key.contains(&KeyPart::Ip) || self.key.iter().any(|p| p.is_identity())
    }

    /// Keyed by the token's identity: nothing to count by on a public route.
    pub fn needs_identity(&self) -> bool {
        self.key.iter().any(|p| p.is_identity())
    }

    /// `client_id` and `sub` are unique only within their issuer: a key naming either also
    /// counts by issuer, so another issuer's token with the same value spends nothing here.
    fn by_issuer(&self) -> bool {
        self.key.contains(&KeyPart::Issuer)
            || self.key.contains(&KeyPart::ClientId)
            || self.key.contains(&KeyPart::Sub)
    }

    /// The key's parts and values for a request, as `explain` shows them.
    pub fn describe_key(&self, subject: &Subject) -> String {
        let parts: Vec<String> = self
            .key
            .iter()
            .map(|&p| format!("{}={}", p.name(), subject.value(p)))
            .collect();
        parts.join(",")
    }
}

/// A route's limits, split by when they are checked, with its `RateLimit-Policy` value.
#[derive(Debug, Clone, Default)]
pub struct RouteLimits {
    pub before_auth: Vec<Arc<RateLimit>>,
    pub after_auth: Vec<Arc<RateLimit>>,
    pub policy: Option<http::HeaderValue>,
}

impl RouteLimits {
    pub fn new(limits: &[Arc<RateLimit>]) -> RouteLimits {
        let (after_auth, before_auth) = limits.iter().cloned().partition(|l| l.after_auth());
        RouteLimits {
            before_auth,
            after_auth,
            policy: headers::policy(limits),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.before_auth.is_empty() && self.after_auth.is_empty()
    }
}

/// Where budgets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In this process: each replica counts its own requests.
    Local,
    /// In the Redis of `revocation.redis`, shared by every replica; this process's table while
    /// Redis cannot be asked.
    Redis,
}

/// `rate_limit:` settings and the runtime table they use.
#[derive(Debug, Clone)]
pub struct RateLimiting {
    pub mode: Mode,
    /// Send `RateLimit` / `RateLimit-Policy` on allowed answers too (always on a `429`).
    pub headers: bool,
    /// `max_keys`, as configured (the table is sized at start-up).
    pub max_keys: usize,
    pub store: Arc<LimitStore>,
}

/// How long checks stay in the local table after a Redis call failed, before Redis is asked
/// again: a Redis that fails every command (out of memory, read-only after a failover) costs a
/// timeout and a log line per pause, not per request.
pub const REDIS_PAUSE: u64 = 2_000_000_000;

/// The runtime side: the local table and the count of checks Redis could not take.
#[derive(Debug)]
pub struct LimitStore {
    pub local: LocalLimiter,
    /// Checks that fell back to the local table because Redis could not be asked.
    pub redis_fallbacks: AtomicU64,
    /// Until when (the local table's clock) Redis is not asked, after a failed call.
    redis_paused_until: AtomicU64,
}

impl LimitStore {
    pub fn new(max_keys: usize) -> Self {
        LimitStore {
            local: LocalLimiter::new(max_keys),
            redis_fallbacks: AtomicU64::new(0),
            redis_paused_until: AtomicU64::new(0),
        }
    }

    pub fn fallbacks(&self) -> u64 {
        self.redis_fallbacks.load(Relaxed)
    }

    /// Whether Redis is not to be asked at `now`.
    pub fn redis_paused(&self, now: u64) -> bool {
        self.redis_paused_until.load(Relaxed) > now
    }

    /// Stop asking Redis for [`REDIS_PAUSE`] from `now`; `true` for the call that started the
    /// pause (the one that logs it).
    pub fn pause_redis(&self, now: u64) -> bool {
        self.redis_paused_until
            .swap(now.saturating_add(REDIS_PAUSE), Relaxed)
            <= now
    }
}

/// What a request is counted by.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub ip: Option<IpAddr>,
    pub route: &'a str,
    pub principal: Option<&'a Principal>,
}

impl Subject<'_> {
    /// A part's value; a token without the claim counts under `-` (every such token shares
    /// that budget), as does a request with no known address.
    fn value(&self, part: KeyPart) -> Value<'_> {
        fn text(s: Option<&str>) -> Value<'_> {
            s.map(Value::Text).unwrap_or(Value::None)
        }
        match part {
            KeyPart::Ip => self
                .ip
                .map(|ip| Value::Ip(network(ip)))
                .unwrap_or(Value::None),
            KeyPart::Route => Value::Text(self.route),
            KeyPart::Issuer => text(self.principal.map(|p| &*p.issuer_id)),
            KeyPart::ClientId => text(self.principal.and_then(|p| p.client_id.as_deref())),
            KeyPart::Sub => text(self.principal.and_then(|p| p.subject.as_deref())),
        }
    }
}

/// An address as limits count it: IPv4 (IPv4-mapped IPv6 included) whole, IPv6 by its /64.
fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy, Hash)]
enum Value<'a> {
    None,
    Ip(IpAddr),
    Text(&'a str),
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::None => f.write_str("-"),
            Value::Ip(ip) => write!(f, "{ip}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

/// A limit's key for one request: its budget, its name and its parts' values.
struct KeyOf<'a> {
    limit: &'a RateLimit,
    subject: &'a Subject<'a>,
}

impl Hash for KeyOf<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.limit.budget.hash(state);
        self.limit.name.hash(state);
        for value in self.values() {
            value.hash(state);
        }
    }
}

impl KeyOf<'_> {
    /// The values counted by: the key's parts, and the issuer when they name `client_id` or
    /// `sub` without it.
    fn values(&self) -> impl Iterator<Item = Value<'_>> {
        let issuer = (self.limit.by_issuer() && !self.limit.key.contains(&KeyPart::Issuer))
            .then(|| self.subject.value(KeyPart::Issuer));
        let parts = self.limit.key.iter().map(|&p| self.subject.value(p));
        parts.chain(issuer)
    }

    /// The same key as bytes that mean the same on every replica (for Redis): each field
    /// tagged and length-prefixed (a missing value is never the text `-`).
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let mut field = |tag: u8, bytes: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        field(0, self.limit.budget.as_bytes());
        field(0, self.limit.name.as_bytes());
        for value in self.values() {
            match value {
                Value::None => field(1, b""),
                Value::Ip(ip) => field(2, ip.to_string().as_bytes()),
                Value::Text(t) => field(3, t.as_bytes()),
            }
        }
        out
    }
}

/// One limit's outcome for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked<'a> {
    pub limit: &'a RateLimit,
    pub outcome: Outcome,
}

/// A refused request: the limit that refused it, and the `RateLimit` fields of its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub limit: Arc<str>,
    /// `Retry-After` (whole seconds, at least 1).
    pub retry_after: u64,
    pub ratelimit: Option<http::HeaderValue>,
    pub policy: Option<http::HeaderValue>,
}

/// Check `limits` in this process's table at `now` (nanoseconds of its clock), appending each
/// outcome to `out`: every limit in turn; when one refuses, the requests the earlier ones
/// counted are given back.
pub fn check_local<'a>(
    store: &LocalLimiter,
    limits: &'a [Arc<RateLimit>],
    subject: &Subject,
    now: u64,
    out: &mut Vec<Checked<'a>>,
) {
    for (i, limit) in limits.iter().enumerate() {
        let key = store.key(&KeyOf { limit, subject });
        let outcome = store.check(key, limit.quota, now);
        out.push(Checked { limit, outcome });
        if let Outcome::Refused { .. } = outcome {
            for earlier in &limits[..i] {
                let key = store.key(&KeyOf {
                    limit: earlier,
                    subject,
                });
                store.refund(key, earlier.quota, now);
            }
            break;
        }
    }
}

/// The Redis keys of `limits` for `subject`: `<prefix>:rl:<hex>`, the hex the first 16 bytes
/// of the SHA-256 of the key's bytes (no identity in clear in Redis, a bounded key length).
pub fn redis_keys(prefix: &str, limits: &[Arc<RateLimit>], subject: &Subject) -> Vec<String> {
    limits
        .iter()
        .map(|limit| {
            let digest =
                ring::digest::digest(&ring::digest::SHA256, &KeyOf { limit, subject }.bytes());
            let hex: String = digest.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{prefix}:rl:{hex}")
        })
        .collect()
}

/// The first refusal among `checked`, as the error's details.
pub fn throttled(checked: &[Checked], policy: Option<&http::HeaderValue>) -> Option<Throttled> {
    let refused = checked.iter().find_map(|c| match c.outcome {
        Outcome::Refused { retry_in } => Some((c, retry_in)),
        Outcome::Allowed { .. } => None,
    })?;
    let (c, retry_in) = refused;
    let retry_after = headers::seconds(retry_in);
    Some(Throttled {
        limit: Arc::clone(&c.limit.name),
        retry_after,
        ratelimit: headers::ratelimit(std::slice::from_ref(c)),
        policy: policy.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(name: &str, key: &[KeyPart], burst: u32) -> Arc<RateLimit> {
        Arc::new(RateLimit {
            name: Arc::from(name),
            budget: Arc::from("default"),
            key: key.to_vec(),
            quota: Quota {
                interval: 1_000_000_000,
                burst,
            },
            rate: "1/s".to_owned(),
        })
    }

    fn subject(ip: &str) -> Subject<'static> {
        Subject {
            ip: Some(ip.parse().unwrap()),
            route: "orders",
            principal: None,
        }
    }

    /// A failed Redis call pauses Redis for [`REDIS_PAUSE`]: the call that starts the pause is
    /// the one that logs; Redis is asked again once it is over.
    #[test]
    fn a_failed_redis_call_pauses_redis_once_for_its_length() {
        let store = LimitStore::new(1_000);
        let t = 10_000_000_000;
        assert!(!store.redis_paused(t));
        assert!(store.pause_redis(t));
        assert!(
            !store.pause_redis(t + 1),
            "a second failure in the pause logs nothing"
        );
        assert!(store.redis_paused(t + REDIS_PAUSE - 1));
        assert!(!store.redis_paused(t + 1 + REDIS_PAUSE));
        assert!(store.pause_redis(t + 1 + REDIS_PAUSE));
    }

    #[test]
    fn every_limit_must_allow_and_a_refusal_gives_the_others_back() {
        let store = LocalLimiter::new(64);
        let wide = limit("wide", &[KeyPart::Route], 10);
        let narrow = limit("narrow", &[KeyPart::Ip], 1);
        let limits = [wide, narrow];
        let a = subject("192.0.2.1");
        let check = |s: &Subject| {
            let mut out = Vec::new();
            check_local(&store, &limits, s, 1, &mut out);
            out.into_iter()
                .map(|c| (c.limit.name.to_string(), c.outcome))
                .collect::<Vec<_>>()
        };
        let first = check(&a);
        assert!(first
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Allowed { .. })));
        let second = check(&a);
        assert_eq!(
            second[1],
            (
                "narrow".to_owned(),
                Outcome::Refused {
                    retry_in: 1_000_000_000
                }
            )
        );
        // The refused request was given back to "wide": 9 left, not 8, for another address.
        let b = check(&subject("192.0.2.2"));
        assert_eq!(
            b[0].1,
            Outcome::Allowed {
                remaining: 8,
                full_in: 2_000_000_000
            }
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_client_ids_by_issuer() {
        let store = LocalLimiter::new(64);
        let l = limit("ip", &[KeyPart::Ip], 1);
        let key = |s: &Subject| {
            store.key(&KeyOf {
                limit: &l,
                subject: s,
            })
        };
        assert_eq!(
            key(&subject("2001:db8:1:2:aaaa::1")),
            key(&subject("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(
            key(&subject("2001:db8:1:2::1")),
            key(&subject("2001:db8:1:3::1"))
        );
        let by_client = limit("client_id", &[KeyPart::ClientId], 1);
        let principal = |issuer: &str, client: Option<&str>| crate::auth::Principal {
            issuer_id: Arc::from(issuer),
            subject: None,
            client_id: client.map(str::to_owned),
            jti: None,
            iat: None,
            scopes: Default::default(),
            claims: Default::default(),
        };
        let (a, b) = (
            principal("corp", Some("app")),
            principal("partner", Some("app")),
        );
        let (none, dash) = (principal("corp", None), principal("corp", Some("-")));
        let with = |p: &crate::auth::Principal| {
            let s = Subject {
                ip: None,
                route: "r",
                principal: Some(p),
            };
            let k = KeyOf {
                limit: &by_client,
                subject: &s,
            };
            (store.key(&k), k.bytes())
        };
        // Another issuer's token naming the same client spends nothing of this one's budget;
        // a token without the claim is not the client named "-".
        assert_ne!(with(&a), with(&b));
        assert_ne!(with(&none), with(&dash));
        assert_eq!(with(&a), with(&principal("corp", Some("app"))));
    }

    #[test]
    fn ipv4_mapped_addresses_share_the_ipv4_budget_and_keys_hash_apart() {
        let store = LocalLimiter::new(64);
        let l = limit("ip", &[KeyPart::Ip], 1);
        let mapped = subject("::ffff:192.0.2.1");
        let plain = subject("192.0.2.1");
        let key = |s: &Subject| {
            store.key(&KeyOf {
                limit: &l,
                subject: s,
            })
        };
        assert_eq!(key(&mapped), key(&plain));
        assert_ne!(key(&plain), key(&subject("192.0.2.2")));
        let keys = redis_keys("p", std::slice::from_ref(&l), &plain);
        assert_eq!(keys, redis_keys("p", std::slice::from_ref(&l), &mapped));
        assert!(keys[0].starts_with("p:rl:") && keys[0].len() == 5 + 32);
    }
}
