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
