//! One access-log line and the request metrics per request. Only bounded, verified fields: never
//! a token, `Authorization`, `Cookie` or the raw query.

use pingora::proxy::Session;
use pingora::Error;

use super::RequestCtx;
use crate::error::GatewayError;
use crate::metrics::{Metrics, RequestRecord};

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
        path = if ctx.path.is_empty() { "-" } else { ctx.path.as_str() },
        status,
        reason = ctx.error.as_ref().map(GatewayError::reason).unwrap_or("ok"),
        latency_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        upstream_ms = ctx.upstream_elapsed.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(-1.0),
        issuer = principal.map(|p| &*p.issuer_id).unwrap_or("-"),
        client_id = principal.and_then(|p| p.client_id.as_deref()).unwrap_or("-"),
        sub = principal.and_then(|p| p.subject.as_deref()).unwrap_or("-"),
        jti = principal.and_then(|p| p.jti.as_deref()).unwrap_or("-"),
        proxy_error = e.map(|e| e.etype().as_str()).unwrap_or("-"),
        "request"
    );
}
