//! The request the upstream receives: exactly what was routed and authorised (normalised path in
//! origin-form, canonical host, no `access_token`), with every header a backend could trust
//! stripped, then the forwarding and identity headers set; and its answer in the client's HTTP version.

use std::net::IpAddr;

use http::header::{AUTHORIZATION, HOST};
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::RequestCtx;
use crate::admission::Routed;
use crate::auth::Principal;
use crate::snapshot::{Route, Snapshot};
use crate::{forwarding, identity};

/// Turn the client's request into the upstream's, for a request `request_filter` admitted.
pub fn prepare(
    session: &Session,
    upstream_request: &mut RequestHeader,
    ctx: &RequestCtx,
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
    let tls = session.digest().and_then(|d| d.ssl_digest.as_ref());
    let peer_ip = super::peer_ip(session);
    // Behind a trusted TLS-terminating proxy that names the client certificate, the backend
    // hears of it from the gateway, as over TLS (the proxy's header itself is stripped).
    let terminated = match tls {
        Some(_) => None,
        None => ctx
            .snapshot
            .forwarding
            .forwarded_client_cert(&upstream_request.headers, peer_ip)
            .and_then(|digest| crate::tls::ClientCertificate::forwarded_hash(&digest)),
    };
    let downstream = Downstream {
        peer_ip,
        tls: tls.is_some(),
        client_cert: tls
            .and_then(|t| t.extension.get::<crate::tls::TlsConnection>())
            .and_then(|c| c.client_cert.as_ref())
            .and_then(|c| c.forwarded_header())
            .or(terminated.as_ref()),
    };
    let forward = Forward {
        route,
        routed,
        path: &ctx.path,
        principal: ctx.principal.as_deref(),
        request_id: &ctx.request_id,
    };
    rewrite(upstream_request, &ctx.snapshot, &forward, &downstream)
}

/// What the upstream request states about the client's connection.
pub struct Downstream<'a> {
    pub peer_ip: Option<IpAddr>,
    pub tls: bool,
    /// The verified client certificate, as `X-Forwarded-Client-Cert` carries it.
    pub client_cert: Option<&'a HeaderValue>,
}

/// An admitted request: where it goes and who sent it.
pub struct Forward<'a> {
    pub route: &'a Route,
    pub routed: &'a Routed,
    /// The normalised path the upstream receives.
    pub path: &'a str,
    pub principal: Option<&'a Principal>,
    pub request_id: &'a str,
}

/// [`prepare`] without the session: the client's request `req` (Pingora's copy of it) becomes the
/// upstream's. Public for the request-path bench, which compares a proxied request's work with a
/// decision's.
pub fn rewrite(
    req: &mut RequestHeader,
    snapshot: &Snapshot,
    forward: &Forward<'_>,
    downstream: &Downstream<'_>,
) -> Result<()> {
    let routed = forward.routed;
    // The upstream sees exactly what was routed and authorised: the normalised path in
    // origin-form, the canonical host, no `access_token` in the query.
    rewrite_target(
        req,
        forward.path,
        routed.absolute_form,
        routed.method_override.is_some(),
    )?;
    if let Some(host) = &routed.upstream_host {
        req.insert_header(HOST, host.as_str())?;
    }
    let policy = &snapshot.forwarding;
    let trusted = policy.trusts(downstream.peer_ip);
    let keep = forwarding::Keep {
        method_override: routed.method_override.is_some(),
        forwarding: trusted,
    };
    forwarding::strip(req, policy, keep);
    forwarding::join_cookie_crumbs(req)?;
    identity::strip(req, &snapshot.identity);
    if let Some(principal) = forward.principal {
        identity::set(req, forward.route, principal);
    }
    if !forward.route.forward_token {
        req.remove_header(&AUTHORIZATION);
        // The proof goes with the token: a backend could replay both on another replica.
        req.remove_header("dpop");
    }
    // `Host` is canonical by now (set above when the client's was not): X-Forwarded-Host
    // shares its value, without a copy.
    let host = req.headers.get(HOST).cloned();
    let peer = forwarding::Peer {
        ip: downstream.peer_ip,
        tls: downstream.tls,
        host,
        trusted,
    };
    forwarding::set(req, peer)?;
    // The verified client certificate, as Envoy forwards it; never what the client sent (that
    // was stripped with the other identity headers).
    if let Some(cert) = downstream.client_cert {
        req.insert_header(X_FORWARDED_CLIENT_CERT, cert.clone())?;
    }
    req.insert_header(crate::request_id::HEADER, forward.request_id)?;
    Ok(())
}

/// Envoy's header for the verified client certificate.
const X_FORWARDED_CLIENT_CERT: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-client-cert");

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

/// The upstream's response header as the client gets it, in the client's HTTP version: an
/// HTTP/1.0 backend's answer goes to an HTTP/1.x client as `HTTP/1.1` (RFC 9110 §6.2: a server
/// answers in the highest version it conforms to, up to the request's major version; nginx and
/// Envoy do the same). Pingora then re-frames a body the backend delimited by closing its
/// connection as chunked; [`frame_for_http10_client`] undoes that for HTTP/1.0 clients.
/// HTTP/2 clients are framed by Pingora.
pub fn relay_response(session: &Session, response: &mut ResponseHeader) {
    let client = session.req_header().version;
    let http1 = matches!(client, http::Version::HTTP_10 | http::Version::HTTP_11);
    if http1 && response.version != http::Version::HTTP_11 {
        response.set_version(http::Version::HTTP_11);
    }
}

/// An HTTP/1.0 client cannot read chunked framing (RFC 9112 §6.1): a chunked answer (from an
/// HTTP/1.1 backend, or Pingora's re-framing of a close-delimited one) goes to it delimited by
/// closing the connection instead. Runs after Pingora's own response conversion.
pub fn frame_for_http10_client(session: &mut Session, response: &mut ResponseHeader) {
    if session.req_header().version != http::Version::HTTP_10 {
        return;
    }
    // Only plain `chunked`: Pingora undoes that framing and nothing else, so a body with another
    // transfer-coding (`gzip, chunked`, which no client asked for) is left as it was.
    let chunked_only = response
        .headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if chunked_only {
        response.remove_header(&http::header::TRANSFER_ENCODING);
        session.set_keepalive(None);
    }
}
