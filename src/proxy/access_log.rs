//! One access-log line and the request metrics per request. Only bounded, verified fields: never
//! a token, `Authorization`, `Cookie` or the raw query.

use pingora::proxy::Session;
use pingora::Error;

use super::RequestCtx;
use crate::error::GatewayError;
use crate::metrics::{Metrics, RequestRecord};

/// Longest path logged, in bytes: a line stays bounded (the log writer queues lines, not bytes).
const MAX_PATH: usize = 1024;
/// Longest `sub`, `client_id` or `jti` logged, in bytes.
const MAX_CLAIM: usize = 256;

/// `s` cut to at most `max` bytes, on a character boundary.
fn capped(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Milliseconds, rounded to the microsecond: `1.081`, not `1.0810570000000002`.
fn millis(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Record the finished request `ctx` (status, route, reason, latency, verified identity).
pub fn record(metrics: &Metrics, session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    let req = session.req_header();
    if let Some(meters) = ctx.snapshot.meters(ctx.route) {
        metrics.record_request(&RequestRecord {
            meters,
            method: &req.method,
            status,
            rejection: ctx.error.as_ref().map(GatewayError::reason),
            duration: ctx.started.elapsed(),
            upstream_duration: ctx.upstream_elapsed,
        });
    }
    let principal = ctx.principal.as_ref();
    // Never log a token, Authorization, Cookie or the raw query: only bounded, verified fields.
    tracing::info!(
        target: "portcullis::access",
        request_id = ctx.request_id.as_str(),
        route = ctx.route().map(|r| &*r.id).unwrap_or("-"),
        method = req.method.as_str(),
        // The normalised path once routed; before that (no route, a path refused) the path as
        // sent, without its query.
        path = capped(if ctx.path.is_empty() { req.uri.path() } else { &ctx.path }, MAX_PATH),
        status,
        reason = ctx.error.as_ref().map(GatewayError::reason).unwrap_or("ok"),
        latency_ms = millis(ctx.started.elapsed()),
        upstream_ms = ctx.upstream_elapsed.map(millis).unwrap_or(-1.0),
        issuer = principal.map(|p| &*p.issuer_id).unwrap_or("-"),
        client_id = capped(principal.and_then(|p| p.client_id.as_deref()).unwrap_or("-"), MAX_CLAIM),
        sub = capped(principal.and_then(|p| p.subject.as_deref()).unwrap_or("-"), MAX_CLAIM),
        jti = capped(principal.and_then(|p| p.jti.as_deref()).unwrap_or("-"), MAX_CLAIM),
        proxy_error = e.map(|e| e.etype().as_str()).unwrap_or("-"),
        "request"
    );
}

#[cfg(test)]
mod tests {
    use super::capped;

    #[test]
    fn latencies_are_rounded_to_the_microsecond() {
        let d = std::time::Duration::from_nanos(1_081_057);
        assert_eq!(super::millis(d).to_string(), "1.081");
        assert_eq!(
            super::millis(std::time::Duration::from_millis(30)).to_string(),
            "30"
        );
    }

    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        assert_eq!(capped("/orders/42", 1024), "/orders/42");
        assert_eq!(capped("abcdef", 4), "abcd");
        // "é" is two bytes: a cut inside it backs off to the boundary before it.
        assert_eq!(capped("abcé", 4), "abc");
    }
}
