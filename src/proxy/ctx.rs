//! Per-request state carried between Pingora phases.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::Principal;
use crate::error::GatewayError;
use crate::snapshot::{Route, Snapshot};

/// What one request knows as it moves through the phases.
pub struct RequestCtx {
    /// Counts this request as in flight until the context is dropped.
    pub _in_flight: crate::drain::InFlightGuard,
    /// `X-Request-Id`: the client's when well-formed, else generated; sent upstream and back.
    pub request_id: String,
    /// The configuration version this request sees from start to end.
    pub snapshot: Arc<Snapshot>,
    pub started: Instant,
    /// Set once the request is admitted.
    pub route: Option<usize>,
    /// The normalised path forwarded upstream.
    pub path: String,
    /// How the upstream request differs from the client's (canonical host, origin-form,
    /// honoured method override); set with `route`.
    pub routed: Option<crate::admission::Routed>,
    pub principal: Option<Arc<Principal>>,
    /// Why the gateway refused or failed the request, for the access log.
    pub error: Option<GatewayError>,
    /// When the request was sent upstream, and how long the upstream took to answer.
    pub upstream_started: Option<Instant>,
    pub upstream_elapsed: Option<std::time::Duration>,
    /// The status the upstream answered with, for the access log.
    pub upstream_status: Option<u16>,
    /// The request's method, for the line of a request cut before `logging` ran.
    pub method: http::Method,
    /// Set by the access log; a context dropped without it was cut ([`Drop`]).
    pub logged: bool,
    /// The `RateLimit` field for the answer (`rate_limits.headers`).
    pub ratelimit: Option<http::HeaderValue>,
}

/// Pingora creates the context once a request has been read and runs `logging` when it ends,
/// so a context dropped unlogged belongs to a request that never finished: the runtime was
/// stopped (at the end of the shutdown grace period, or by a fast shutdown), or a phase
/// panicked. It is logged here, and a shutdown cut is counted for the exit line.
impl Drop for RequestCtx {
    fn drop(&mut self) {
        if self.logged {
            return;
        }
        let reason = match std::thread::panicking() {
            true => super::access_log::PANIC,
            false => {
                self._in_flight.record_cut();
                super::access_log::SHUTDOWN_CUT
            }
        };
        super::access_log::record_cut(self, reason);
    }
}

impl RequestCtx {
    pub fn new(snapshot: Arc<Snapshot>, in_flight: crate::drain::InFlightGuard) -> Self {
        RequestCtx {
            _in_flight: in_flight,
            request_id: String::new(),
            snapshot,
            started: Instant::now(),
            route: None,
            path: String::new(),
            routed: None,
            principal: None,
            error: None,
            upstream_started: None,
            upstream_elapsed: None,
            upstream_status: None,
            method: http::Method::GET,
            logged: false,
            ratelimit: None,
        }
    }

    /// Keep where an admitted (or, for the access log, a refused) request was routed.
    pub fn set_routed(&mut self, mut routed: crate::admission::Routed) {
        self.route = Some(routed.route);
        self.path = std::mem::take(&mut routed.path);
        self.routed = Some(routed);
    }

    pub fn route(&self) -> Option<&Route> {
        self.route.map(|i| &self.snapshot.routes[i])
    }
}
