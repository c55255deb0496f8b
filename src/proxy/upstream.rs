//! The request the upstream receives: exactly what was routed and authorised (normalised path in
//! origin-form, canonical host, no `access_token`), with every header a backend could trust
//! stripped, then the forwarding and identity headers set; and its answer in the client's HTTP version.

use http::header::{AUTHORIZATION, HOST};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::RequestCtx;
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
    Ok(())
}

/// Envoy's header for the verified client certificate.
const X_FORWARDED_CLIENT_CERT: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-client-cert");

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
