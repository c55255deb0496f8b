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

/// Longest `User-Agent` logged, in bytes.
const MAX_USER_AGENT: usize = 256;

/// Every field of one access-log line (docs/metrics.md#logs documents each; a test there checks
/// the documentation and the line agree).
struct Line<'a> {
    mode: &'static str,
    request_id: &'a str,
    route: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    reason: &'a str,
    latency_ms: f64,
    upstream_ms: f64,
    upstream_status: i32,
    conn: Connection<'a>,
    who: Identity<'a>,
    proxy_error: &'a str,
}

impl Line<'_> {
    fn emit(&self) {
        tracing::info!(
            target: "portcullis::access",
            mode = self.mode,
            request_id = self.request_id,
            route = self.route,
            method = self.method,
            path = capped(self.path, MAX_PATH),
            status = self.status,
            reason = self.reason,
            latency_ms = self.latency_ms,
            upstream_ms = self.upstream_ms,
            upstream_status = self.upstream_status,
            client_addr = %ClientAddr(self.conn.client_addr),
            user_agent = capped(self.conn.user_agent, MAX_USER_AGENT),
            request_bytes = self.conn.request_bytes,
            response_bytes = self.conn.response_bytes,
            tls_version = self.conn.tls_version,
            tls_cipher = self.conn.tls_cipher,
            issuer = self.who.issuer,
            client_id = capped(self.who.client_id, MAX_CLAIM),
            sub = capped(self.who.sub, MAX_CLAIM),
            jti = capped(self.who.jti, MAX_CLAIM),
            proxy_error = self.proxy_error,
            "request"
        );
    }
}

/// The peer address, or `-` (formatted without allocating).
struct ClientAddr<'a>(Option<&'a pingora::protocols::l4::socket::SocketAddr>);

impl std::fmt::Display for ClientAddr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pingora::protocols::l4::socket::SocketAddr::Inet(a)) => write!(f, "{a}"),
            Some(pingora::protocols::l4::socket::SocketAddr::Unix(_)) => f.write_str("unix"),
            None => f.write_str("-"),
        }
    }
}

/// The TLS version as nginx and OpenSSL name it (`TLSv1.3`); rustls says `TLSv1_3`.
fn tls_version(v: &str) -> &str {
    match v {
        "TLSv1_3" => "TLSv1.3",
        "TLSv1_2" => "TLSv1.2",
        other => other,
    }
}

/// What the connection says of a request: peer, user agent, body bytes, TLS.
struct Connection<'a> {
    client_addr: Option<&'a pingora::protocols::l4::socket::SocketAddr>,
    user_agent: &'a str,
    request_bytes: usize,
    response_bytes: usize,
    tls_version: &'a str,
    tls_cipher: &'a str,
}

impl Connection<'_> {
    /// A request whose session is gone (cut at shutdown).
    const GONE: Connection<'static> = Connection {
        client_addr: None,
        user_agent: "-",
        request_bytes: 0,
        response_bytes: 0,
        tls_version: "-",
        tls_cipher: "-",
    };
}

fn connection(session: &pingora::protocols::http::ServerSession) -> Connection<'_> {
    let tls = session.digest().and_then(|d| d.ssl_digest.as_ref());
    Connection {
        client_addr: session.client_addr(),
        user_agent: session
            .req_header()
            .headers
            .get(http::header::USER_AGENT)
            .map(|v| std::str::from_utf8(v.as_bytes()).unwrap_or("(not UTF-8)"))
            .unwrap_or("-"),
        request_bytes: session.body_bytes_read(),
        response_bytes: session.body_bytes_sent(),
        tls_version: tls.map(|t| tls_version(&t.version)).unwrap_or("-"),
        tls_cipher: tls.map(|t| &*t.cipher).unwrap_or("-"),
    }
}

/// The verified identity's fields, `-` when there is none.
struct Identity<'a> {
    issuer: &'a str,
    client_id: &'a str,
    sub: &'a str,
    jti: &'a str,
}

fn identity(principal: Option<&crate::auth::Principal>) -> Identity<'_> {
    Identity {
        issuer: principal.map(|p| &*p.issuer_id).unwrap_or("-"),
        client_id: principal
            .and_then(|p| p.client_id.as_deref())
            .unwrap_or("-"),
        sub: principal.and_then(|p| p.subject.as_deref()).unwrap_or("-"),
        jti: principal.and_then(|p| p.jti.as_deref()).unwrap_or("-"),
    }
}

/// Record the finished request `ctx` (status, route, reason, latency, verified identity).
pub fn record(metrics: &Metrics, session: &Session, e: Option<&Error>, ctx: &mut RequestCtx) {
    ctx.logged = true;
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
    if let (Some(GatewayError::RateLimited(t)), Some(route)) = (&ctx.error, ctx.route()) {
        metrics.record_rate_limited(&route.id, &t.limit);
    }
    let conn = connection(session);
    // Never log a token, Authorization, Cookie or the raw query: only bounded, verified fields.
    Line {
        mode: "proxy",
        request_id: ctx.request_id.as_str(),
        route: ctx.route().map(|r| &*r.id).unwrap_or("-"),
        method: req.method.as_str(),
        // The normalised path once routed; before that (no route, a path refused) the path as
        // sent, without its query.
        path: if ctx.path.is_empty() {
            req.uri.path()
        } else {
            &ctx.path
        },
        status,
        reason: ctx.error.as_ref().map(GatewayError::reason).unwrap_or("ok"),
        latency_ms: millis(ctx.started.elapsed()),
        upstream_ms: ctx.upstream_elapsed.map(millis).unwrap_or(-1.0),
        upstream_status: ctx.upstream_status.map(i32::from).unwrap_or(-1),
        conn,
        who: identity(ctx.principal.as_deref()),
        proxy_error: e.map(|e| e.etype().as_str()).unwrap_or("-"),
    }
    .emit();
}

/// The line of a request that ended without a response (see [`RequestCtx`]'s `Drop`):
/// `reason` is [`SHUTDOWN_CUT`] or [`PANIC`]. The session is gone: what it alone knew (peer,
/// bytes, TLS) is `-`.
pub fn record_cut(ctx: &RequestCtx, reason: &'static str) {
    Line {
        mode: "proxy",
        request_id: ctx.request_id.as_str(),
        route: ctx.route().map(|r| &*r.id).unwrap_or("-"),
        method: ctx.method.as_str(),
        path: if ctx.path.is_empty() { "-" } else { &ctx.path },
        status: 0,
        reason,
        latency_ms: millis(ctx.started.elapsed()),
        upstream_ms: ctx.upstream_elapsed.map(millis).unwrap_or(-1.0),
        upstream_status: ctx.upstream_status.map(i32::from).unwrap_or(-1),
        conn: Connection::GONE,
        who: identity(ctx.principal.as_deref()),
        proxy_error: "-",
    }
    .emit();
}

/// One decision (decision mode), for the access log and the metrics.
pub struct Decided<'a> {
    pub request_id: &'a str,
    /// The described request's method (the decision request's own when it described none).
    pub method: &'a http::Method,
    pub status: u16,
    pub reason: &'static str,
    pub route: Option<usize>,
    /// The routed path; empty before routing (the decision request's own path is logged).
    pub path: &'a str,
    pub principal: Option<&'a crate::auth::Principal>,
    /// The rate limit that refused it, if one did.
    pub limit: Option<&'a str>,
}

/// Record one decision: the same line and metrics as a proxied request, with `mode: decision`
/// and the decision-mode route meters.
pub fn record_decision(
    metrics: &Metrics,
    session: &pingora::protocols::http::ServerSession,
    snapshot: &crate::snapshot::Snapshot,
    started: std::time::Instant,
    d: &Decided<'_>,
) {
    if let (Some(limit), Some(route)) = (d.limit, d.route) {
        metrics.record_rate_limited(&snapshot.routes[route].id, limit);
    }
    if let Some(meters) = snapshot.decision_meters(d.route) {
        metrics.record_request(&RequestRecord {
            meters,
            method: d.method,
            status: d.status,
            rejection: (d.reason != "ok").then_some(d.reason),
            duration: started.elapsed(),
            upstream_duration: None,
        });
    }
    Line {
        mode: "decision",
        request_id: d.request_id,
        route: d.route.map(|r| &*snapshot.routes[r].id).unwrap_or("-"),
        method: d.method.as_str(),
        path: match d.path {
            "" => session.req_header().uri.path(),
            p => p,
        },
        status: d.status,
        reason: d.reason,
        latency_ms: millis(started.elapsed()),
        upstream_ms: -1.0,
        upstream_status: -1,
        conn: connection(session),
        who: identity(d.principal),
        proxy_error: "-",
    }
    .emit();
}

/// The reason of a request cut when the runtime stopped (the shutdown grace period ran out).
pub const SHUTDOWN_CUT: &str = "shutdown_cut";
/// The reason of a request whose handling panicked.
pub const PANIC: &str = "panic";

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
