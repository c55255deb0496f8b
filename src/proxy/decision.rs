//! The admission decision for one request, as a plain function: normalise the path, find the
//! route, authenticate. [`decide`] is what `request_filter` runs; it needs no socket.

use pingora::http::RequestHeader;

use crate::auth::jwt::unknown_kid_context;
use crate::auth::{authenticate, Principal};
use crate::error::{GatewayError, PathFault, TokenFault};
use crate::routes::{host_without_port, normalize_path};
use crate::snapshot::Snapshot;

/// A request that may proceed.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Index of the route in the snapshot.
    pub route: usize,
    /// The normalised path, which is what the upstream receives.
    pub path: String,
    /// The verified identity; `None` on public routes.
    pub principal: Option<Principal>,
}

/// Where a request goes: its route and the normalised path the upstream will receive.
#[derive(Debug, Clone)]
pub struct Routed {
    pub route: usize,
    pub path: String,
}

/// Normalise the path and find the route (no authentication yet).
pub fn route(req: &RequestHeader, snapshot: &Snapshot) -> Result<Routed, GatewayError> {
    if !req.raw_path_is_utf8() {
        return Err(GatewayError::BadPath(PathFault::NotUtf8));
    }
    let path = normalize_path(req.uri.path()).map_err(GatewayError::BadPath)?;
    let route = snapshot
        .route_table
        .lookup(request_host(req), &path, &req.method)
        .ok_or(GatewayError::NoRoute)?;
    Ok(Routed { route, path })
}

/// Route and authenticate `req` against `snapshot` at time `now` (seconds since the epoch).
pub fn decide(
    req: &RequestHeader,
    snapshot: &Snapshot,
    now: i64,
) -> Result<Admitted, GatewayError> {
    let Routed { route, path } = route(req, snapshot)?;
    let principal = authenticate(&req.headers, &snapshot.routes[route], snapshot, now)?;
    Ok(Admitted {
        route,
        path,
        principal,
    })
}

/// The request's host without port: the URI authority (HTTP/2 `:authority`, absolute-form),
/// else the `Host` header.
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    let authority = match req.uri.authority() {
        Some(a) => Some(a.as_str()),
        None => req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok()),
    };
    authority.map(host_without_port)
}

/// [`authenticate`] for an already routed request, and when the token names a `kid` its issuer's
/// keys lack, one refresh of those keys (shared with every other request that needs it, bounded
/// in time) and one more attempt. This is how a key rotation is picked up on the first request
/// that uses the new key. `on_refresh` is told which issuer refreshed.
pub async fn authenticate_with_key_refresh(
    req: &RequestHeader,
    snapshot: &Snapshot,
    route: usize,
    now: impl Fn() -> i64,
    on_refresh: impl Fn(&str),
) -> Result<Option<Principal>, GatewayError> {
    let route = &snapshot.routes[route];
    let first = authenticate(&req.headers, route, snapshot, now());
    let Err(GatewayError::InvalidToken(TokenFault::UnknownKid)) = &first else {
        return first;
    };
    let token = crate::auth::bearer::extract(&req.headers, snapshot.limits.max_token_bytes)
        .ok()
        .flatten();
    let issuers = snapshot.issuers.iter().map(|i| &**i).enumerate();
    let Some((issuer, kid)) = token.and_then(|t| unknown_kid_context(t, issuers)) else {
        return first;
    };
    let keys = &snapshot.issuers[issuer].keys;
    if keys.refresh_for_unknown_kid(kid.as_deref()).await {
        on_refresh(&snapshot.issuers[issuer].id);
        return authenticate(&req.headers, route, snapshot, now());
    }
    first
}
