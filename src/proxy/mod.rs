//! The Pingora proxy: each phase is short and delegates to plain functions.
//!
//! - `request_filter`: [`decision::route`] then [`decision::authenticate_with_key_refresh`], or
//!   reject via [`respond`];
//! - `upstream_peer`: the route's prebuilt peer;
//! - `upstream_request_filter`: the request as routed (normalised path, canonical host), then
//!   strip-then-set: [`forwarding`] and [`identity`] headers;
//! - `fail_to_proxy`: upstream failures as 502/504 through the same renderer;
//! - `logging`: one access-log line.

pub mod ctx;
pub mod decision;
pub mod respond;

use std::sync::Arc;

use async_trait::async_trait;
use http::header::{AUTHORIZATION, HOST};
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};

pub use ctx::RequestCtx;

use crate::error::GatewayError;
use crate::metrics::{Metrics, RequestRecord};
use crate::snapshot::SnapshotHolder;
use crate::{forwarding, identity};

/// The gateway's `ProxyHttp` implementation.
pub struct Gateway {
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
    in_flight: Arc<crate::drain::InFlight>,
}

impl Gateway {
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
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.snapshots.current(), self.in_flight.enter())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.request_id = crate::request_id::from_request(&session.req_header().headers);
        let too_old = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|s| s.extension.get::<crate::tls::TlsConnection>())
            .is_some_and(|c| c.below_min_version);
        let outcome = match decision::route(session.req_header(), &ctx.snapshot) {
            Ok(_) if too_old => Err(GatewayError::TlsVersionTooOld),
            Ok(mut routed) => {
                ctx.route = Some(routed.route);
                ctx.path = std::mem::take(&mut routed.path);
                let route = routed.route;
                ctx.routed = Some(routed);
                let on_refresh = |issuer: &str| self.metrics.record_unknown_kid_refresh(issuer);
                let req = session.req_header();
                decision::authenticate_with_key_refresh(
                    req,
                    &ctx.snapshot,
                    route,
                    crate::clock::unix_now,
                    on_refresh,
                )
                .await
                .map(|principal| ctx.principal = principal)
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => Ok(false),
            Err(error) => {
                respond::reject(session, &error, &ctx.request_id).await?;
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
        Ok(Box::new(
            ctx.snapshot.upstreams[route.upstream].peer.clone(),
        ))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let route = ctx.route().ok_or_else(|| {
            Error::explain(ErrorType::InternalError, "upstream request without a route")
        })?;

        let Some(routed) = ctx.routed.as_ref() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "upstream request without a routed request",
            ));
        };
        // The upstream sees exactly what was routed and authorised: the normalised path in
        // origin-form, the canonical host, no `access_token` in the query.
        rewrite_target(
            upstream_request,
            &ctx.path,
            routed.absolute_form,
            routed.method_override.is_some(),
        )?;
        if let Some(host) = &routed.upstream_host {
            upstream_request.insert_header(HOST, host.as_str())?;
        }
        let peer_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let policy = &ctx.snapshot.forwarding;
        let trusted = policy.trusts(peer_ip);
        let keep = forwarding::Keep {
            method_override: routed.method_override.is_some(),
            forwarding: trusted,
        };
        forwarding::strip(upstream_request, policy, keep);
        forwarding::join_cookie_crumbs(upstream_request)?;
        identity::strip(upstream_request, &ctx.snapshot.identity);
        if let Some(principal) = &ctx.principal {
            identity::set(upstream_request, route, principal);
        }
        if !route.forward_token {
            upstream_request.remove_header(&AUTHORIZATION);
        }
        let tls = session.digest().and_then(|d| d.ssl_digest.as_ref());
        // `Host` is canonical by now (set above when the client's was not): X-Forwarded-Host
        // shares its value, without a copy.
        let host = upstream_request.headers.get(HOST).cloned();
        let peer = forwarding::Peer {
            ip: peer_ip,
            tls: tls.is_some(),
            host,
            trusted,
        };
        forwarding::set(upstream_request, peer)?;
        set_client_certificate(tls, upstream_request)?;
        upstream_request.insert_header(crate::request_id::HEADER, ctx.request_id.as_str())?;
        ctx.upstream_started = Some(std::time::Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_elapsed = ctx.upstream_started.map(|t| t.elapsed());
        // The client gets the id the gateway used, whatever the upstream answered.
        upstream_response.insert_header(crate::request_id::HEADER, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let error = match (e.esource(), e.etype()) {
            (
                ErrorSource::Upstream,
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ) => Some(GatewayError::UpstreamTimeout),
            (ErrorSource::Upstream, _) => Some(GatewayError::UpstreamUnavailable),
            // The client went away: nobody to answer.
            (
                ErrorSource::Downstream,
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
            ) => None,
            _ => None,
        };
        // The connection is not reused after a proxy failure: say so (`Connection: close`), or a
        // client reusing it would see its next request fail.
        session.set_keepalive(None);
        let code = match &error {
            Some(err) => {
                if let Err(write_err) = respond::reject(session, err, &ctx.request_id).await {
                    tracing::debug!(error = %write_err, "could not write the error response");
                }
                err.status()
            }
            None => match e.esource() {
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        if error.is_none() && code > 0 {
            let _ = session.respond_error(code).await;
        }
        ctx.error = error;
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
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
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let req = session.req_header();
        self.metrics.record_request(&RequestRecord {
            route: ctx.route().map(|r| &*r.id).unwrap_or("-"),
            method: &req.method,
            status,
            rejection: ctx.error.as_ref().map(GatewayError::reason),
            duration: ctx.started.elapsed(),
            upstream_duration: ctx.upstream_elapsed,
        });
        let principal = ctx.principal.as_ref();
        // Never log a token, Authorization, Cookie or the raw query: only bounded, verified fields.
        tracing::info!(
            target: "portcullis::access",
            request_id = %ctx.request_id,
            route = ctx.route().map(|r| &*r.id).unwrap_or("-"),
            method = %req.method,
            path = %if ctx.path.is_empty() { "-" } else { ctx.path.as_str() },
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
}

/// Envoy's header for the verified client certificate.
const X_FORWARDED_CLIENT_CERT: &str = "x-forwarded-client-cert";

/// The verified client certificate, as Envoy forwards it; never what the client sent (that was
/// stripped with the other identity headers).
fn set_client_certificate(
    tls: Option<&std::sync::Arc<pingora::protocols::tls::SslDigest>>,
    req: &mut RequestHeader,
) -> Result<()> {
    let connection = tls.and_then(|t| t.extension.get::<crate::tls::TlsConnection>());
    if let Some(v) = connection
        .and_then(|c| c.client_cert.as_ref())
        .and_then(|c| c.forwarded_header())
    {
        req.insert_header(X_FORWARDED_CLIENT_CERT, v.clone())?;
    }
    Ok(())
}

/// Send the normalised `path` in origin-form, with the query minus any `access_token`
/// (RFC 6750 §2.3 tokens never reach a backend's logs) and, unless the route honoured it, any
/// `_method` override. Most requests are already in that form and cost nothing here.
fn rewrite_target(
    req: &mut RequestHeader,
    path: &str,
    absolute_form: bool,
    override_honoured: bool,
) -> Result<()> {
    let query = req.uri.query();
    let dropped: &[&str] = if override_honoured {
        &[crate::auth::bearer::ACCESS_TOKEN_PARAM]
    } else {
        &[
            crate::auth::bearer::ACCESS_TOKEN_PARAM,
            crate::target::METHOD_OVERRIDE_PARAM,
        ]
    };
    let stripped = query.and_then(|q| crate::query::without(q, dropped));
    if !absolute_form && stripped.is_none() && req.uri.path() == path {
        return Ok(());
    }
    let target = match stripped.as_deref().or(query) {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    };
    let uri = target.parse::<http::Uri>().map_err(|e| {
        Error::because(
            ErrorType::InternalError,
            "normalised target is not a URI",
            e,
        )
    })?;
    req.set_uri(uri);
    Ok(())
}
