//! The admission decision for one request, as a plain function: normalise the path, find the
//! route, authenticate. [`decide`] is what `request_filter` runs; it needs no socket.

use pingora::http::RequestHeader;

use crate::auth::{authenticate, Principal};
use crate::error::{GatewayError, PathFault};
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

/// Route and authenticate `req` against `snapshot` at time `now` (seconds since the epoch).
pub fn decide(
    req: &RequestHeader,
    snapshot: &Snapshot,
    now: i64,
) -> Result<Admitted, GatewayError> {
    if !req.raw_path_is_utf8() {
        return Err(GatewayError::BadPath(PathFault::NotUtf8));
    }
    let path = normalize_path(req.uri.path()).map_err(GatewayError::BadPath)?;
    let route = snapshot
        .route_table
        .lookup(request_host(req), &path, &req.method)
        .ok_or(GatewayError::NoRoute)?;
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
