//! The compiled configuration: an immutable, fully typed [`Snapshot`] and its atomic holder.
//!
//! Everything the request path needs is parsed here once (header names, scopes, algorithms,
//! durations, upstream peers), so nothing on the request path re-reads configuration. A request
//! takes one snapshot at its start and sees that one version to its end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderName;
use pingora::upstreams::peer::HttpPeer;

use crate::auth::algorithm::Algorithm;
use crate::auth::fetch::KeySource;
use crate::auth::keys::IssuerKeys;
use crate::auth::scope::ScopeRequirement;
use crate::routes::RouteTable;

/// One complete, validated configuration.
#[derive(Debug)]
pub struct Snapshot {
    pub listeners: Vec<Listener>,
    pub issuers: Vec<Arc<Issuer>>,
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    pub route_table: RouteTable,
    pub identity: IdentityPolicy,
    /// Which client headers are stripped and whose forwarding headers are believed.
    pub forwarding: crate::forwarding::ForwardingPolicy,
    pub limits: Limits,
    /// `rate_limits:`, with the table of the [`crate::stores::Stores`] (kept across reloads).
    pub rate_limiting: crate::rate_limit::RateLimiting,
    /// The first 16 hex digits of the SHA-256 of the `gateway.yaml` text this snapshot was
    /// compiled from (`portcullis_config_info`): replicas serving the same file show the same.
    pub config_sha256: String,
    /// Where `/metrics`, `/healthz`, `/readyz` and the admin API are served.
    pub admin_address: SocketAddr,
    /// `admin.probes_address`: where `/metrics`, `/healthz` and `/readyz` alone are also served.
    pub probes_address: Option<SocketAddr>,
    /// `decision`: the listener answering an ingress's forward-auth requests.
    pub decision: Option<crate::decision::DecisionSettings>,
    /// The admin API's bearer token; `None` disables the API (revocations).
    pub admin_token: Option<Secret>,
    /// Expiry of revocation entries that do not carry their token's `exp`.
    pub max_token_lifetime: Duration,
    /// The revocation journal's path, opened at start-up.
    pub revocation_state_file: Option<std::path::PathBuf>,
    /// The revocation file's path, loaded at start-up and re-read when it changes.
    pub revocation_file: Option<std::path::PathBuf>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How long to keep accepting after SIGTERM, answering with `Connection: close`, before
    /// the listeners close (read from the current snapshot when the signal arrives).
    pub drain_delay: Duration,
    /// `revocation.redis`: share revocations between replicas through Redis.
    pub revocation_redis: Option<crate::revocation::mirror::RedisSettings>,
    /// The revocation list: runtime state, the one of the [`crate::stores::Stores`] this
    /// snapshot was compiled into (every snapshot of a process shares it).
    pub revocations: Arc<crate::revocation::RevocationList>,
    /// DPoP proofs seen, shared by every snapshot of the process.
    pub dpop_replay: Arc<crate::auth::dpop::ReplayCache>,
    /// `dpop_proofs:`.
    pub dpop: crate::auth::dpop::ProofSettings,
    /// The Redis mirror feeding `revocations` when `revocation_redis` is set, from the same
    /// stores; started with the gateway.
    pub revocation_mirror: Option<Arc<crate::revocation::mirror::RedisMirror>>,
    /// `auth_cache`.
    pub auth_cache: crate::auth::cache::CacheSettings,
    /// The claims anything reads after verification (identity headers, `aud`, `iat`, `nbf`,
    /// `exp`), sorted: the verified-token cache keeps only these.
    pub kept_claims: Vec<String>,
    /// The verified-token cache (runtime state, from the stores); `None` when disabled.
    pub token_cache: Option<Arc<crate::auth::cache::TokenCache>>,
    /// The request metrics of each route, by route index, then of the unrouted requests.
    pub meters: Vec<crate::metrics::RouteMeters>,
    /// The same for decisions (decision mode), with `mode="decision"`; empty without it.
    pub decision_meters: Vec<crate::metrics::RouteMeters>,
    /// Files this snapshot was compiled from, besides `gateway.yaml`, that nothing else watches
    /// (`jwks_file`s, `admin.token_file`), with the hash of the content it holds: when one
    /// changes, the configuration is reloaded ([`crate::reload`]). Certificate and revocation
    /// files have watchers of their own.
    pub watched_files: Vec<(std::path::PathBuf, u64)>,
}

impl Snapshot {
    /// The request metrics of route `route`, or of the unrouted requests.
    pub fn meters(&self, route: Option<usize>) -> Option<&crate::metrics::RouteMeters> {
        self.meters.get(route.unwrap_or(self.routes.len()))
    }

    /// The decision-mode metrics of route `route`, or of the unrouted decisions.
    pub fn decision_meters(&self, route: Option<usize>) -> Option<&crate::metrics::RouteMeters> {
        self.decision_meters.get(route.unwrap_or(self.routes.len()))
    }
}

/// A listener: plain HTTP, or HTTPS with `tls`.
#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub tls: Option<crate::tls::ListenerTls>,
}

/// A trusted token issuer and its verification policy.
#[derive(Debug)]
pub struct Issuer {
    /// Configuration id, used in logs and metrics.
    pub id: Arc<str>,
    /// The exact `iss` value.
    pub issuer: String,
    /// `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    /// The allow-list; the token's `alg` must be one of these.
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    /// Claims that carry scopes (`scope`, `scp`).
    pub scope_claims: Vec<String>,
    /// Required `typ`, if any (RFC 9068: `at+jwt`).
    pub token_type: Option<String>,
    /// `dpop`: whether its tokens may, or must, be DPoP-bound.
    pub dpop: crate::auth::dpop::DpopMode,
    /// `token_format`: JWTs, opaque tokens (introspected), or both.
    pub token_format: crate::auth::TokenFormat,
    /// The introspection client of an issuer with `introspection:`.
    pub introspector: Option<Arc<crate::auth::introspection::Introspector>>,
    /// `token_type` is `at+jwt`: the RFC 9068 §2.2 claims are required.
    pub rfc9068: bool,
    /// `revocation.max_token_lifetime`: the longest `exp - iat` accepted.
    pub max_token_lifetime: Duration,
    /// The issuer's current keys.
    pub keys: Arc<IssuerKeys>,
    /// Where remote keys are fetched from; `None` for a `jwks_file`.
    pub key_source: Option<Arc<dyn KeySource>>,
}

impl Snapshot {
    /// How long past a token's `exp` it can still be accepted: the leeway, twice (an `iat` may be
    /// a leeway in the future, an `exp` a leeway in the past). Revocation entries outlive that.
    pub fn revocation_margin_secs(&self) -> i64 {
        let leeway = self
            .issuers
            .iter()
            .map(|i| i.leeway)
            .max()
            .unwrap_or_default();
        i64::try_from(leeway.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_mul(2)
    }

    /// True when every issuer's keys have loaded at least once.
    pub fn keys_ready(&self) -> bool {
        self.issuers.iter().all(|i| i.keys.is_loaded())
    }
}

/// A backend the gateway forwards to.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub id: Arc<str>,
    /// The address the upstream's host resolved to when the configuration was compiled.
    pub address: SocketAddr,
    /// The pingora peer, with timeouts and TLS settings applied; cloned per request.
    pub peer: HttpPeer,
}

/// A compiled route. Its match criteria live in the snapshot's [`RouteTable`].
#[derive(Debug, Clone)]
pub struct Route {
    pub id: Arc<str>,
    /// Index into [`Snapshot::upstreams`].
    pub upstream: Option<usize>,
    pub auth: RouteAuth,
    /// Headers set from verified claims, gateway-wide mapping plus this route's additions.
    pub identity_headers: Vec<(HeaderName, ClaimSource)>,
    /// Send the client's `Authorization` header upstream.
    pub forward_token: bool,
    /// `method_override: allow`: a POST with `X-HTTP-Method-Override` is routed and authorised as
    /// the overriding method, and the header goes to the backend.
    pub method_override: bool,
    /// `match.path_parameters: allow`: `;parameters` in path segments are accepted (and the
    /// request is routed as if they were absent, as servlet containers map it).
    pub path_parameters: bool,
    /// `match.script_path_info: allow`: `/index.php/…` paths are accepted.
    pub script_path_info: bool,
    /// CORS: the route's own policy, or the gateway-wide one.
    pub cors: Option<Arc<crate::cors::CorsPolicy>>,
    /// Rate limits: the route's own, or the gateway-wide default.
    pub rate_limits: crate::rate_limit::RouteLimits,
    /// No `match.host`: the route takes whatever host the client sends.
    pub any_host: bool,
}

/// What a route demands of the caller.
#[derive(Debug, Clone)]
pub enum RouteAuth {
    /// Explicitly `auth: public`: no token needed, none used.
    Public,
    /// A valid token from one of `issuers` (snapshot indices) with `scopes`.
    Protected {
        issuers: Vec<usize>,
        scopes: RouteScopes,
        /// `auth.audiences`: replaces the issuers' audiences for this route.
        audiences: Option<Vec<String>>,
    },
}

/// A scope requirement and its precomputed RFC 6750 challenge.
#[derive(Debug, Clone)]
pub struct RouteScopes {
    pub requirement: ScopeRequirement,
    pub challenge: Arc<str>,
}

/// Where an identity header's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimSource {
    /// The normalised scope set, space-delimited (mapping a header to `scope` or `scp`).
    Scopes,
    /// The named claim of the verified payload.
    Claim(String),
}

/// Which client-sent headers are removed before anything is set from claims.
#[derive(Debug, Clone, Default)]
pub struct IdentityPolicy {
    /// Lower-case name prefixes (`x-auth-`).
    pub strip_prefixes: Vec<String>,
    /// Every configured identity header name, gateway-wide and per route.
    pub strip_names: Vec<HeaderName>,
}

/// Request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_token_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_token_bytes: 8 * 1024,
        }
    }
}

/// A secret value that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: &str) -> Self {
        Secret(Arc::from(value))
    }

    /// The value, for the places that send it (`explain --admin` to the admin API, token
    /// introspection to the authorization server).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Compare with a presented value in time independent of where they differ (`subtle`; only
    /// the length is not hidden).
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The current snapshot, swapped whole on reload.
#[derive(Debug)]
pub struct SnapshotHolder(ArcSwap<Snapshot>);

impl SnapshotHolder {
    pub fn new(snapshot: Snapshot) -> Self {
        SnapshotHolder(ArcSwap::from_pointee(snapshot))
    }

    /// The snapshot a request works with from start to end.
    pub fn current(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Replace the snapshot; requests already running keep the one they took.
    pub fn replace(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_the_exact_value_and_never_print() {
        let s = Secret::new("test-admin-token-0123456789");
        assert!(s.matches(b"test-admin-token-0123456789"));
        assert!(!s.matches(b"test-admin-token-012345678"));
        assert!(!s.matches(b"test-admin-token-01234567890"));
        assert!(!s.matches(b"Test-admin-token-0123456789"));
        assert!(!s.matches(b""));
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
    }
}
