//! The one admission function: [`admit`] decides whether a request is forwarded, and how.
//!
//! ```text
//! admit ─ route::route ─ target::read      request line and host        (Step::Target)
//!       │               routes::normalize_path                          (Step::Path)
//!       │               RouteTable::lookup + ambiguity refusals          (Step::Route)
//!       ├ TLS version against the listener's min_version                (Step::Tls)
//!       ├ rate limits keyed by ip / route, before any signature check   (Step::RateLimit)
//!       ├ auth::authenticate ─ bearer::extract                          (Step::Bearer)
//!       │                     the verified-token cache                  (Step::Cache)
//!       │                     on a miss, jwt::verify_for  jws … signature … profile
//!       │                     revocation list, scopes
//!       ├ unknown kid: KeyRefresh::refresh, then authenticate once more (Step::KeyRefresh)
//!       └ rate limits keyed by identity (client_id, sub, issuer)        (Step::RateLimit)
//! ```
//!
//! Every caller goes through it: the proxy's `request_filter` (with the live key refresh and
//! [`Silent`]), `portcullis explain` (with [`NoRefresh`] and a [`Recorder`]), the request-path
//! bench and the tests. The checks report to an [`Observer`] type parameter, so `explain` lists
//! exactly the checks the proxy runs, in the proxy's order, and the proxy pays nothing for it.

pub mod observe;
pub mod refresh;
pub mod route;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pingora::http::RequestHeader;

pub use observe::{Check, Observer, Recorder, Silent, Step, Traced};
pub use refresh::{KeyRefresh, NoRefresh};
pub use route::{route, Routed};

pub use crate::auth::cache::CacheUse;
use crate::auth::jwt::unknown_kid_context;
use crate::auth::{authenticate, Denied, Principal};
use crate::error::{GatewayError, TokenFault};
use crate::rate_limit::{self as limits, Checked, RateLimit, Subject};
use crate::snapshot::Snapshot;

/// What the admission path knows about the connection a request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plain,
    /// TLS, negotiated below the listener's `min_version` or not, with the SHA-256 of the
    /// client certificate when the client presented one (for certificate-bound tokens).
    Tls {
        below_min_version: bool,
        client_cert: Option<[u8; 32]>,
    },
    /// Plain HTTP over TLS a proxy in front terminated (a trusted proxy's
    /// `X-Forwarded-Proto: https`, or a `forwarding.client_cert_proxies` peer), with the SHA-256
    /// of the client certificate it names in `forwarding.client_cert_header`, if any.
    Terminated {
        client_cert: Option<[u8; 32]>,
    },
}

/// The connection a request came on: its TLS facts and the client's address (the peer, or
/// what trusted proxies say: [`crate::forwarding::ForwardingPolicy::client_ip`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    pub transport: Transport,
    pub client_ip: Option<std::net::IpAddr>,
}

impl From<Transport> for Connection {
    /// A connection whose client address is unknown (benches, tests, `explain` without one).
    fn from(transport: Transport) -> Self {
        Connection {
            transport,
            client_ip: None,
        }
    }
}

/// A request that may proceed.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Where it goes and in which canonical form.
    pub routed: Routed,
    /// The verified identity; `None` on public routes.
    pub principal: Option<Arc<Principal>>,
    /// The `RateLimit` field for the answer, when `rate_limits.headers` asks for it.
    pub ratelimit: Option<http::HeaderValue>,
}

/// A request that may not, and how far it got.
#[derive(Debug, Clone)]
pub struct Refused {
    pub error: GatewayError,
    /// The route, when the request was refused after routing (for the access log).
    pub routed: Option<Routed>,
    /// The verified identity, when refused after verification (for the access log).
    pub principal: Option<Arc<Principal>>,
}

/// Decide `req`: route it, check the TLS version, authenticate it against the route and, when
/// the token names a `kid` its issuer's keys lack, refresh those keys once through `refresh` and
/// authenticate again. `now` is read for each attempt (a refresh may take a while). Each check is
/// reported to `obs` as it runs.
pub async fn admit<R: KeyRefresh, O: Observer>(
    req: &RequestHeader,
    connection: impl Into<Connection>,
    snapshot: &Snapshot,
    now: impl Fn() -> i64,
    refresh: &R,
    cache: CacheUse,
    obs: &mut O,
) -> Result<Admitted, Refused> {
    let Connection {
        transport,
        client_ip,
    } = connection.into();
    let routed = route(req, snapshot, obs).map_err(|error| Refused {
        error,
        routed: None,
        principal: None,
    })?;
    // A connection below the listener's minimum TLS version is refused before its route is
    // kept: the access log shows no route for it.
    check_tls(transport, obs).map_err(|error| Refused {
        error,
        routed: None,
        principal: None,
    })?;
    let route_limits = &snapshot.routes[routed.route].rate_limits;
    let mut limiter = Limiter {
        snapshot,
        route: routed.route,
        refresh,
        checked: Vec::new(),
    };
    let mut subject = Subject {
        ip: client_ip,
        route: &snapshot.routes[routed.route].id,
        principal: None,
    };
    // Floods without a token are cut here, before any signature is checked.
    if let Err(error) = limiter
        .check(&route_limits.before_auth, &subject, obs)
        .await
    {
        return Err(Refused::routed(error, routed, None));
    }
    let principal =
        match authorise(req, snapshot, &routed, &transport, now, refresh, cache, obs).await {
            Ok(principal) => principal,
            Err(denied) => return Err(Refused::routed(denied.error, routed, denied.principal)),
        };
    // Only a verified identity is counted: nobody spends another client's budget.
    subject.principal = principal.as_deref();
    if let Err(error) = limiter.check(&route_limits.after_auth, &subject, obs).await {
        return Err(Refused::routed(error, routed, principal));
    }
    let ratelimit = match snapshot.rate_limiting.headers {
        true => limits::headers::ratelimit(&limiter.checked),
        false => None,
    };
    Ok(Admitted {
        routed,
        principal,
        ratelimit,
    })
}

impl Refused {
    /// Refused once routed to `routed`.
    fn routed(error: GatewayError, routed: Routed, principal: Option<Arc<Principal>>) -> Self {
        Refused {
            error,
            routed: Some(routed),
            principal,
        }
    }
}

/// A route's rate limits for one request, and what they answered so far.
struct Limiter<'s, 'r, R> {
    snapshot: &'s Snapshot,
    route: usize,
    refresh: &'r R,
    checked: Vec<Checked<'s>>,
}

impl<'s, R: KeyRefresh> Limiter<'s, '_, R> {
    /// Check `route_limits` for `subject`: in Redis (`rate_limits.mode: redis`) while it can be
    /// asked, else in this process's table (each fallback counted). Appends the outcomes to
    /// `checked`; a refusal is `429`.
    async fn check<O: Observer>(
        &mut self,
        route_limits: &'s [Arc<RateLimit>],
        subject: &Subject<'_>,
        obs: &mut O,
    ) -> Result<(), GatewayError> {
        let (snapshot, refresh, routed_route, checked) =
            (self.snapshot, self.refresh, self.route, &mut self.checked);
        if route_limits.is_empty() {
            return Ok(());
        }
        let settings = &snapshot.rate_limiting;
        let mut shared = None;
        let mut fell_back = false;
        if let (limits::Mode::Redis, Some(mirror)) =
            (settings.mode, snapshot.revocation_mirror.as_ref())
        {
            // While the mirror knows Redis is down, and for a short pause after a failed call,
            // the local table decides at once (no connect attempt and timeout per request).
            fell_back = true;
            let store = &settings.store;
            if mirror.status().connected && !store.redis_paused(store.local.now()) {
                let keys = limits::redis_keys(&mirror.settings().key_prefix, route_limits, subject);
                let args = limits::redis::args(route_limits);
                match refresh.rate_check(mirror, &keys, &args).await {
                    Some(Ok(reply)) => shared = limits::redis::outcomes(route_limits, &reply),
                    Some(Err(e)) => {
                        if store.pause_redis(store.local.now()) {
                            tracing::warn!(error = %e, "rate limits checked in each replica's own table for 2 s: Redis failed");
                        }
                    }
                    None => fell_back = false,
                }
            }
            fell_back &= shared.is_none();
        }
        if fell_back {
            settings
                .store
                .redis_fallbacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let in_redis = shared.is_some();
        let start = checked.len();
        match shared {
            Some(outcomes) => checked.extend(outcomes),
            None => {
                let table = &settings.store.local;
                limits::check_local(table, route_limits, subject, table.now(), checked);
            }
        }
        let outcomes = &checked[start..];
        let policy = snapshot.routes[routed_route].rate_limits.policy.as_ref();
        let throttled = limits::throttled(outcomes, policy);
        obs.record(
            Step::RateLimit,
            throttled.as_ref().map(|_| "rate_limited"),
            || describe_limits(outcomes, subject, in_redis, settings.mode),
        );
        match throttled {
            Some(t) => Err(GatewayError::RateLimited(Arc::new(t))),
            None => Ok(()),
        }
    }
}

/// What `explain` prints of a limit check.
fn describe_limits(
    outcomes: &[Checked],
    subject: &Subject<'_>,
    in_redis: bool,
    mode: limits::Mode,
) -> String {
    let table = match (in_redis, mode) {
        (true, _) => "shared in Redis",
        (false, limits::Mode::Local) => "this replica's table",
        (false, limits::Mode::Redis) => "this replica's table (Redis not asked)",
    };
    let each: Vec<String> = outcomes
        .iter()
        .map(|c| {
            let l = &c.limit;
            let verdict = match c.outcome {
                limits::Outcome::Allowed { remaining, .. } => format!("allowed, {remaining} left"),
                limits::Outcome::Refused { retry_in } => {
                    format!("refused, retry in {} s", limits::headers::seconds(retry_in))
                }
            };
            format!(
                "limit \"{}\" ({}, burst {}, key {}): {verdict}",
                l.name,
                l.rate,
                l.quota.burst,
                l.describe_key(subject)
            )
        })
        .collect();
    format!("{}; {table}", each.join("; "))
}

/// A TLS connection negotiated below the listener's `min_version` is refused (403).
fn check_tls<O: Observer>(transport: Transport, obs: &mut O) -> Result<(), GatewayError> {
    let Transport::Tls {
        below_min_version, ..
    } = transport
    else {
        return Ok(());
    };
    let version = match below_min_version {
        true => Err(GatewayError::TlsVersionTooOld),
        false => Ok(()),
    };
    observe::seen(obs, Step::Tls, version, |()| {
        "at or above the listener's min_version".to_owned()
    })
}

/// Authentication of a routed request, with one key refresh for an unknown `kid`.
#[allow(clippy::too_many_arguments)]
async fn authorise<R: KeyRefresh, O: Observer>(
    req: &RequestHeader,
    snapshot: &Snapshot,
    routed: &Routed,
    transport: &Transport,
    now: impl Fn() -> i64,
    refresh: &R,
    cache: CacheUse,
    obs: &mut O,
) -> Result<Option<Arc<Principal>>, Denied> {
    let route = &snapshot.routes[routed.route];
    let query = req.uri.query();
    let (scheme, client_cert) = match transport {
        Transport::Tls { client_cert, .. } | Transport::Terminated { client_cert } => {
            ("https", client_cert.as_ref())
        }
        Transport::Plain => ("http", None),
    };
    // The canonical host: the one forwarded when it differs from the client's `Host`.
    let authority = routed
        .upstream_host
        .as_deref()
        .or_else(|| req.headers.get(http::header::HOST)?.to_str().ok())
        .unwrap_or_default();
    // An opaque token: its issuer's authorization server is asked (or its cache) before the
    // checks, which then read the answer.
    let credential = crate::auth::bearer::credential(&req.headers, snapshot.limits.max_token_bytes)
        .ok()
        .flatten();
    let introspecting = credential
        .and_then(|c| crate::auth::introspecting_issuer(c.token, route, snapshot).map(|i| (c, i)));
    let answer = match introspecting {
        Some((c, (index, introspector))) => {
            Some((index, refresh.introspect(introspector, c.token).await))
        }
        None => None,
    };
    let proof_used = std::sync::OnceLock::new();
    let presented = crate::auth::Presented {
        proof_used: &proof_used,
        introspection: answer.as_ref().map(|(i, a)| (*i, a)),
        headers: &req.headers,
        query,
        client_cert,
        // A route that honours a method override acts as the overriding method: the proof
        // must name it (a proof for `POST` is no `DELETE`).
        method: routed
            .method_override
            .as_ref()
            .unwrap_or(&req.method)
            .as_str(),
        scheme,
        authority,
        path: &routed.path,
        dpop_hosts: match route.any_host {
            true => &snapshot.dpop.hosts,
            false => &[],
        },
    };
    let first = authenticate(&presented, route, snapshot, now(), cache, obs);
    let Err(Denied {
        error: GatewayError::InvalidToken(TokenFault::UnknownKid),
        ..
    }) = &first
    else {
        return claim_proof(first, proof_used.get().copied(), snapshot, refresh).await;
    };
    let token = crate::auth::bearer::credential(&req.headers, snapshot.limits.max_token_bytes)
        .ok()
        .flatten()
        .map(|c| c.token);
    let issuers = snapshot.issuers.iter().map(|i| &**i).enumerate();
    let Some((issuer, kid)) = token.and_then(|t| unknown_kid_context(t, issuers)) else {
        return first;
    };
    let issuer = &snapshot.issuers[issuer];
    let refreshed = refresh.refresh(issuer, kid.as_deref()).await;
    let failure = (!refreshed).then_some("unknown_kid");
    obs.record(Step::KeyRefresh, failure, || {
        let kid = kid.as_deref().unwrap_or("(none)");
        match refreshed {
            true => format!("kid {kid}: refreshed the keys of issuer \"{}\"", issuer.id),
            false => format!(
                "kid {kid}: the keys of issuer \"{}\" were not refreshed ({})",
                issuer.id,
                refresh.describe()
            ),
        }
    });
    if !refreshed {
        return first;
    }
    let second = authenticate(&presented, route, snapshot, now(), cache, obs);
    claim_proof(second, proof_used.get().copied(), snapshot, refresh).await
}

/// With Redis (`revocation.redis`), a DPoP proof this process accepted is claimed across the
/// replicas too (`SET NX`): a proof another replica accepted is a replay. When Redis cannot be
/// asked, this process's own memory stands alone (logged): DPoP keeps working.
async fn claim_proof<R: KeyRefresh>(
    authorised: Result<Option<Arc<Principal>>, Denied>,
    used: Option<crate::auth::dpop::ProofUse>,
    snapshot: &Snapshot,
    refresh: &R,
) -> Result<Option<Arc<Principal>>, Denied> {
    let (Ok(principal), Some(used), Some(mirror), true) = (
        &authorised,
        used,
        &snapshot.revocation_mirror,
        snapshot.dpop.share_through_redis,
    ) else {
        return authorised;
    };
    // While the mirror knows Redis is down, this replica's memory decides at once (no connect
    // attempt and timeout per request).
    if !mirror.status().connected {
        return authorised;
    }
    match refresh.claim_proof(mirror, used).await {
        Ok(true) => authorised,
        Ok(false) => Err(Denied {
            error: GatewayError::InvalidDpopProof {
                fault: crate::auth::dpop::ProofFault::Replayed,
                algs: Arc::clone(&snapshot.dpop.algs),
            },
            principal: principal.clone(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "DPoP proof not claimed in Redis: this replica's memory alone guards it");
            authorised
        }
    }
}

/// [`admit`] without a key refresh, at a fixed time: for `explain`, benches and tests, which run
/// it outside an async runtime. With [`NoRefresh`] nothing awaits, so one poll completes it.
pub fn admit_now<O: Observer>(
    req: &RequestHeader,
    transport: impl Into<Connection>,
    snapshot: &Snapshot,
    now: i64,
    cache: CacheUse,
    obs: &mut O,
) -> Result<Admitted, Refused> {
    let future = admit(req, transport, snapshot, || now, &NoRefresh, cache, obs);
    // `None` is unreachable: `NoRefresh` is always ready. Refuse rather than panic.
    poll_once(future).unwrap_or(Err(Refused {
        error: GatewayError::KeysUnavailable,
        routed: None,
        principal: None,
    }))
}

/// The output of `future` if it completes on its first poll (with [`NoRefresh`] nothing awaits).
pub fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}
