//! The Pingora proxy: each phase is short and delegates to plain functions.
//!
//! - `request_filter`: [`crate::admission::admit`] (through `Gateway::admit`, which adds the
//!   connection's TLS facts and the live key refresh), or reject via [`respond::reject`];
//! - `upstream_peer`: the route's prebuilt peer;
//! - `upstream_request_filter`: [`upstream::prepare`]: the request as routed (normalised path,
//!   canonical host), then strip-then-set: forwarding and identity headers;
//! - `fail_to_proxy`: [`respond::fail`]: upstream failures as 502/504 through the same renderer;
//! - `logging`: [`access_log::record`]: metrics and one access-log line.

pub mod access_log;
pub mod ctx;
pub mod respond;
pub mod upstream;

/// The CORS headers of an actual request's answer: its route's policy, for its `Origin`; and
/// `Vary: Origin` on every answer of a route whose answers depend on it.
pub fn cors_headers(
    session: &Session,
    ctx: &RequestCtx,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let Some(policy) = ctx.route().and_then(|r| r.cors.as_ref()) else {
        return Vec::new();
    };
    let origin = session.req_header().headers.get(http::header::ORIGIN);
    let headers = origin.map(|o| policy.actual(o)).unwrap_or_default();
    match headers.is_empty() && policy.varies() {
        true => vec![(http::header::VARY, http::HeaderValue::from_static("Origin"))],
        false => headers,
    }
}

/// A CORS preflight for a route with a policy: answered here, without a token, never forwarded
/// (`true`); any other `OPTIONS` goes the usual way (`false`).
async fn preflight(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let req = session.req_header();
    let requested = req
        .headers
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok())
        .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok());
    let (Some(method), Some(origin)) = (requested, req.headers.get(http::header::ORIGIN).cloned())
    else {
        return Ok(false);
    };
    // A connection below the listener's TLS min_version gets admission's 403, no CORS answer.
    if below_min_tls(session) {
        let error = GatewayError::TlsVersionTooOld;
        respond::reject(session, &error, &ctx.request_id, &[]).await?;
        ctx.error = Some(error);
        return Ok(true);
    }
    // Routed as the request it announces: host, path, the requested method.
    let mut announced = req.clone();
    announced.set_method(method.clone());
    let snapshot = std::sync::Arc::clone(&ctx.snapshot);
    let Ok(routed) = admission::route(&announced, &snapshot, &mut admission::Silent) else {
        return Ok(false);
    };
    let Some(policy) = snapshot.routes[routed.route].cors.clone() else {
        return Ok(false);
    };
    // Every `Access-Control-Request-Headers` value; one that is not text allows nothing.
    let mut requested = Vec::new();
    for value in req
        .headers
        .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
    {
        requested.push(value.to_str().unwrap_or("\u{0}"));
    }
    let headers = (!requested.is_empty()).then(|| requested.join(","));
    ctx.set_routed(routed);
    match policy.preflight(&origin, method.as_str(), headers.as_deref()) {
        Some(allowed) => {
            let mut resp = pingora::http::ResponseHeader::build(204, Some(allowed.len() + 2))?;
            for (name, value) in allowed {
                resp.insert_header(name, value)?;
            }
            resp.insert_header(crate::request_id::HEADER, ctx.request_id.as_str())?;
            session.write_response_header(Box::new(resp), true).await?;
        }
        None => {
            let error = GatewayError::CorsRefused;
            let vary = [(http::header::VARY, http::HeaderValue::from_static("Origin"))];
            let vary: &[_] = if policy.varies() { &vary } else { &[] };
            respond::reject(session, &error, &ctx.request_id, vary).await?;
            ctx.error = Some(error);
        }
    }
    Ok(true)
}

/// Whether the request came over TLS negotiated below its listener's `min_version`.
fn below_min_tls(session: &Session) -> bool {
    session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .and_then(|ssl| ssl.extension.get::<crate::tls::TlsConnection>())
        .is_some_and(|c| c.below_min_version)
}

/// The address of the peer a request came from (the client, or the proxy in front).
pub fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

use std::sync::Arc;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

pub use ctx::RequestCtx;

use crate::admission::{self, CacheUse::Fill, Silent, Traced};
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::snapshot::SnapshotHolder;

/// The gateway's `ProxyHttp` implementation.
pub struct Gateway {
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
    in_flight: Arc<crate::drain::InFlight>,
}

impl Gateway {
    /// [`admission::admit`] with the connection's TLS facts and the live key refresh; no
    /// observer, unless `portcullis::admission` debug logging is on ([`Traced`]). Keeps what the
    /// later phases need in `ctx`.
    async fn admit(&self, session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        let transport = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .map(|ssl| {
                let connection = ssl.extension.get::<crate::tls::TlsConnection>();
                admission::Transport::Tls {
                    below_min_version: connection.is_some_and(|c| c.below_min_version),
                    client_cert: connection
                        .and_then(|c| c.client_cert.as_ref())
                        .map(|c| c.digest),
                }
            })
            .unwrap_or_else(|| {
                let headers = &session.req_header().headers;
                let peer = peer_ip(session);
                let policy = &ctx.snapshot.forwarding;
                match policy.terminated_tls(headers, peer) {
                    false => admission::Transport::Plain,
                    true => admission::Transport::Terminated {
                        client_cert: policy.forwarded_client_cert(headers, peer),
                    },
                }
            });
        let refresh = admission::refresh::Refresh {
            on_refresh: |issuer: &str| self.metrics.record_unknown_kid_refresh(issuer),
        };
        let (snapshot, req) = (&ctx.snapshot, session.req_header());
        let connection = admission::Connection {
            transport,
            client_ip: snapshot
                .forwarding
                .client_ip(&req.headers, peer_ip(session)),
        };
        let now = crate::clock::unix_now;
        let verdict = if Traced::enabled() {
            let mut traced = Traced {
                request_id: &ctx.request_id,
            };
            admission::admit(req, connection, snapshot, now, &refresh, Fill, &mut traced).await
        } else {
            admission::admit(req, connection, snapshot, now, &refresh, Fill, &mut Silent).await
        };
        match verdict {
            Ok(admitted) => {
                ctx.principal = admitted.principal;
                ctx.ratelimit = admitted.ratelimit;
                ctx.set_routed(admitted.routed);
                Ok(())
            }
            Err(refused) => {
                if let Some(routed) = refused.routed {
                    ctx.set_routed(routed);
                }
                // Refused after verification: the access log says who.
                ctx.principal = refused.principal;
                Err(refused.error)
            }
        }
    }

    pub fn new(
        snapshots: Arc<SnapshotHolder>,
        metrics: Metrics,
        in_flight: Arc<crate::drain::InFlight>,
    ) -> Self {
        Gateway {
            snapshots,
            metrics,
            in_flight,
        }
    }

    /// During a drain, the response closes its connection (`Connection: close`), so the client
    /// sends its next request on a new one ([`crate::drain`]). HTTP/2 gets `GOAWAY` when the
    /// listeners close.
    fn close_if_draining(&self, session: &mut Session) {
        if self.in_flight.is_draining() {
            session.set_keepalive(None);
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.snapshots.current(), self.in_flight.enter())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        self.close_if_draining(session);
        ctx.request_id = crate::request_id::from_request(&session.req_header().headers);
        ctx.method = session.req_header().method.clone();
        let req = session.req_header();
        if crate::cors::is_preflight(&req.method, &req.headers) && preflight(session, ctx).await? {
            return Ok(true);
        }
        match self.admit(session, ctx).await {
            Ok(()) => Ok(false),
            Err(error) => {
                let cors = cors_headers(session, ctx);
                respond::reject(session, &error, &ctx.request_id, &cors).await?;
                ctx.error = Some(error);
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx.route().ok_or_else(|| {
            Error::explain(ErrorType::InternalError, "upstream_peer without a route")
        })?;
        // Every route has an upstream when there are proxy listeners (config compile).
        let upstream = route.upstream.ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                "a route without an upstream, proxied",
            )
        })?;
        Ok(Box::new(ctx.snapshot.upstreams[upstream].peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream::prepare(session, upstream_request, ctx)?;
        ctx.upstream_started = Some(std::time::Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // A drain may have begun while the upstream was answering.
        self.close_if_draining(session);
        ctx.upstream_elapsed = ctx.upstream_started.map(|t| t.elapsed());
        ctx.upstream_status = Some(upstream_response.status.as_u16());
        upstream::relay_response(session, upstream_response);
        // The client gets the id the gateway used, whatever the upstream answered.
        upstream_response.insert_header(crate::request_id::HEADER, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream::frame_for_http10_client(session, upstream_response);
        // `rate_limits.headers`: the gateway's fields replace any the backend sent.
        if let Some(ratelimit) = ctx.ratelimit.take() {
            use crate::rate_limit::headers::{RATELIMIT, RATELIMIT_POLICY};
            upstream_response.insert_header(RATELIMIT, ratelimit)?;
            if let Some(policy) = ctx.route().and_then(|r| r.rate_limits.policy.clone()) {
                upstream_response.insert_header(RATELIMIT_POLICY, policy)?;
            }
        }
        // On a route with a CORS policy the gateway, not the backend, answers for CORS.
        if ctx.route().is_some_and(|r| r.cors.is_some()) {
            let backend: Vec<http::HeaderName> = upstream_response
                .headers
                .keys()
                .filter(|n| crate::cors::is_cors_header(n))
                .cloned()
                .collect();
            for name in backend {
                upstream_response.remove_header(&name);
            }
            for (name, value) in cors_headers(session, ctx) {
                if name == http::header::VARY {
                    upstream_response.append_header(name, value)?;
                } else {
                    upstream_response.insert_header(name, value)?;
                }
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        self.close_if_draining(session);
        respond::fail(session, e, ctx).await
    }

    /// What Pingora prints in its own error lines. Its default includes the request URI with the
    /// query string, which may carry an `access_token`: use the normalised path only.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let path = if ctx.path.is_empty() {
            "-"
        } else {
            ctx.path.as_str()
        };
        format!(
            "{} {path} (request {})",
            session.req_header().method,
            ctx.request_id
        )
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        access_log::record(&self.metrics, session, e, ctx);
    }
}
