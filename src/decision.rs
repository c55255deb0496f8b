//! Decision mode: the admission of the proxy, answered to an ingress that asks before it
//! forwards (nginx `auth_request`, Traefik `ForwardAuth`, Envoy `ext_authz` over HTTP).
//!
//! The ingress describes the client's request in its own way ([`Protocol`]); [`described`]
//! rebuilds that request, and [`crate::admission::admit`] (the proxy's one admission function,
//! with its normalisation and hardening) decides it. Allowed: `200` with the identity headers
//! for the ingress to pass on. Refused: the same status, `WWW-Authenticate` and body the proxy
//! would send. No upstream is called. The description is believed only from the configured
//! ingress peers (`decision.trusted_proxies`): anyone else could describe any request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;

use crate::admission::{self, CacheUse, KeyRefresh, Silent, Transport};
use crate::error::{render, GatewayError};
use crate::metrics::Metrics;
use crate::snapshot::{Snapshot, SnapshotHolder};

/// How the ingress describes the original request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// nginx `auth_request` and ingress-nginx (`auth-url`): `X-Original-URI` (or ingress-nginx's
    /// `X-Original-URL`, never both), `X-Original-Method`, and the host from `X-Original-URL`,
    /// else `X-Original-Host`, else the subrequest's `Host`. The client's headers come along
    /// (nginx passes them to the subrequest).
    Nginx,
    /// Traefik `ForwardAuth`: `X-Forwarded-Method`, `X-Forwarded-Host`, `X-Forwarded-Uri`
    /// (and `X-Forwarded-Proto`), with the client's headers.
    Traefik,
    /// Envoy `ext_authz` (HTTP service): the original method, the original path after
    /// `path_prefix`, the original `Host`, and the headers Envoy was told to send.
    Envoy { path_prefix: String },
}

impl Protocol {
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Nginx => "nginx",
            Protocol::Traefik => "traefik",
            Protocol::Envoy { .. } => "envoy",
        }
    }
}

/// What a request that matches no route gets: refused (`403`). An `allow` would skip every
/// check that runs once a route is found (case folding, the canonical path), so `GET
/// /ORDERS/1` would pass to a case-insensitive backend: not offered until it can be made safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    Deny,
}

/// `decision:` compiled.
#[derive(Debug, Clone)]
pub struct DecisionSettings {
    pub address: SocketAddr,
    pub protocol: Protocol,
    /// The ingress peers whose descriptions are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub unmatched: Unmatched,
    /// HTTPS, as on a listener (certificates reloaded by the same watcher).
    pub tls: Option<crate::tls::ListenerTls>,
}

impl DecisionSettings {
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        // On a `[::]` listener IPv4 peers arrive as `::ffff:a.b.c.d`.
        peer.map(|ip| ip.to_canonical())
            .is_some_and(|ip| self.trusted_proxies.iter().any(|n| n.contains(&ip)))
    }
}

/// Why a decision request does not describe a request (answered `400`, never allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionFault {
    #[error("the original method is missing or malformed")]
    Method,
    #[error("the original URI is missing or is not an origin-form path")]
    Uri,
    #[error("the original host is missing or malformed")]
    Host,
    #[error("a header describing the request is sent more than once")]
    Duplicate,
    #[error("a header describing the request is not visible ASCII")]
    NotText,
}

impl DescriptionFault {
    pub fn reason(self) -> &'static str {
        match self {
            DescriptionFault::Method => "decision_method_missing",
            DescriptionFault::Uri => "decision_uri_missing",
            DescriptionFault::Host => "decision_host_missing",
            DescriptionFault::Duplicate => "decision_header_duplicate",
            DescriptionFault::NotText => "decision_header_not_text",
        }
    }
}

/// The one value of `name`, if sent once; sent twice is a fault (which one would the ingress
/// have meant?).
fn one<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, DescriptionFault> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(DescriptionFault::Duplicate);
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| DescriptionFault::Duplicate)
}

/// The request the decision request describes, with the client's headers (minus the ones that
/// described it) and `Host` set to the described host.
pub fn described(
    protocol: &Protocol,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<RequestHeader, DescriptionFault> {
    let (method, target, host, used): (Method, String, String, &[&str]) = match protocol {
        Protocol::Nginx => {
            // Exactly one of the two forms: a client can send the one its ingress does not set
            // (plain nginx sets X-Original-URI, ingress-nginx X-Original-URL), and the two could
            // name different requests.
            let (target, url_host) = match (
                one(headers, "x-original-uri")?,
                one(headers, "x-original-url")?,
            ) {
                // ingress-nginx with `auth-method` sends both: they must name the same target.
                (Some(uri), Some(url)) => {
                    let parsed: http::Uri = url.parse().map_err(|_| DescriptionFault::Uri)?;
                    match parsed.path_and_query().map(|p| p.as_str()) == Some(uri) {
                        true => (
                            uri.to_owned(),
                            parsed.authority().map(|a| a.as_str().to_owned()),
                        ),
                        false => return Err(DescriptionFault::Duplicate),
                    }
                }
                (Some(uri), None) => (uri.to_owned(), None),
                (None, Some(url)) => {
                    let parsed: http::Uri = url.parse().map_err(|_| DescriptionFault::Uri)?;
                    let target = parsed.path_and_query().ok_or(DescriptionFault::Uri)?;
                    let host = parsed.authority().ok_or(DescriptionFault::Host)?;
                    (target.as_str().to_owned(), Some(host.as_str().to_owned()))
                }
                (None, None) => return Err(DescriptionFault::Uri),
            };
            let method = one(headers, "x-original-method")?.ok_or(DescriptionFault::Method)?;
            // Never X-Forwarded-Host: plain nginx passes the client's on to the subrequest.
            // `Host` is the subrequest's own (nginx sets it), a safe last resort.
            let host = match url_host {
                Some(h) => h,
                None => one(headers, "x-original-host")?
                    .or(one(headers, "host")?)
                    .ok_or(DescriptionFault::Host)?
                    .to_owned(),
            };
            let method =
                Method::from_bytes(method.as_bytes()).map_err(|_| DescriptionFault::Method)?;
            (
                method,
                target,
                host,
                &[
                    "x-original-url",
                    "x-original-uri",
                    "x-original-method",
                    "x-original-host",
                ],
            )
        }
        Protocol::Traefik => {
            let method = one(headers, "x-forwarded-method")?.ok_or(DescriptionFault::Method)?;
            let target = one(headers, "x-forwarded-uri")?.ok_or(DescriptionFault::Uri)?;
            let host = one(headers, "x-forwarded-host")?.ok_or(DescriptionFault::Host)?;
            let method =
                Method::from_bytes(method.as_bytes()).map_err(|_| DescriptionFault::Method)?;
            (
                method,
                target.to_owned(),
                host.to_owned(),
                &["x-forwarded-method", "x-forwarded-uri"],
            )
        }
        Protocol::Envoy { path_prefix } => {
            let target = path_and_query
                .strip_prefix(path_prefix.as_str())
                .filter(|t| t.starts_with('/'))
                .ok_or(DescriptionFault::Uri)?;
            let host = one(headers, "host")?.ok_or(DescriptionFault::Host)?;
            (method.clone(), target.to_owned(), host.to_owned(), &[])
        }
    };
    // A fragment never reaches a server: Pingora's parser would drop it (and everything after
    // it) while the ingress forwards it, so `/public#/../orders` could be authorised as `/public`.
    if !target.starts_with('/') || target.contains('#') {
        return Err(DescriptionFault::Uri);
    }
    // No header-name case map: the described request is decided, never forwarded.
    let mut req = RequestHeader::build_no_case(method, target.as_bytes(), Some(headers.len()))
        .map_err(|_| DescriptionFault::Uri)?;
    for (name, value) in headers {
        if name == http::header::HOST || used.contains(&name.as_str()) {
            continue;
        }
        req.append_header(name.clone(), value.clone())
            .map_err(|_| DescriptionFault::Duplicate)?;
    }
    req.insert_header(http::header::HOST, host)
        .map_err(|_| DescriptionFault::Host)?;
    Ok(req)
}

/// Why the ingress would forward `original` differently from how the proxy would have, after
/// it was routed as `routed`: the proxy rewrites what it forwards (normal path, no
/// `access_token`, no override it did not honour, no header the client may not send), an
/// ingress forwards the client's request as it is. Such a request is refused, never allowed.
fn forwarded_differently(
    original: &RequestHeader,
    routed: &crate::admission::Routed,
    snapshot: &crate::snapshot::Snapshot,
    protocol: &Protocol,
) -> Option<&'static str> {
    if routed.path != original.uri.path() {
        return Some(crate::routes::PathFault::NotCanonical.reason());
    }
    let honoured = routed.method_override.is_some();
    match crate::target::method_override(original) {
        Ok(Some(_)) if !honoured => return Some("decision_method_override"),
        Err(_) => return Some("decision_method_override"),
        _ => {}
    }
    if original
        .uri
        .query()
        .is_some_and(|q| crate::query::has(q, crate::auth::bearer::ACCESS_TOKEN_PARAM))
    {
        return Some("decision_query_token");
    }
    let keep = crate::forwarding::Keep {
        method_override: honoured,
        // Client-address headers are the ingress's to set; the rest are not the client's.
        forwarding: true,
    };
    let identity = &snapshot.identity;
    let forged = original.headers.keys().any(|name| {
        let n = name.as_str();
        let own = match protocol {
            // What ingress-nginx sets on its auth subrequest.
            Protocol::Nginx => matches!(n, "x-auth-request-redirect" | "x-sent-from"),
            // Traefik describes the request in X-Forwarded-* (set by Traefik, never the client's
            // with trustForwardHeader: false).
            Protocol::Traefik => n.starts_with("x-forwarded-"),
            Protocol::Envoy { .. } => false,
        };
        // The identity headers themselves are the ingress's to replace (every example in
        // docs/decision-mode.md does, from this answer; Envoy is told to remove the ones the
        // answer does not set): a forged one is overwritten, as the proxy overwrites it.
        let identity_header = identity.strip_names.iter().any(|s| s == name);
        !own && !identity_header
            && (crate::forwarding::doomed(n, &snapshot.forwarding, keep)
                || identity
                    .strip_prefixes
                    .iter()
                    .any(|p| n.starts_with(p.as_str())))
    });
    forged.then_some("decision_forged_header")
}

/// The decision listener's app.
pub struct DecisionApp {
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
}

impl DecisionApp {
    pub fn new(snapshots: Arc<SnapshotHolder>, metrics: Metrics) -> Self {
        DecisionApp { snapshots, metrics }
    }
}

/// The answer to one decision request, and what the access log says of it.
pub struct Decision {
    request_id: String,
    /// The described request's method, once described.
    method: Option<Method>,
    response: Response<Vec<u8>>,
    reason: &'static str,
    /// The rate limit that refused it, for `portcullis_rate_limited_total`.
    limit: Option<Arc<str>>,
    route: Option<usize>,
    path: String,
    principal: Option<Arc<crate::auth::Principal>>,
}

/// An answer: `headers`, the request id and `Cache-Control: no-store` (an ingress may cache
/// answers only as configured, never by HTTP caching).
fn answer(
    status: StatusCode,
    mut headers: HeaderMap,
    request_id: &str,
    body: Vec<u8>,
) -> Response<Vec<u8>> {
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(crate::request_id::HEADER, id);
    }
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    // Without a length Pingora delimits the answer by closing the connection: the ingress
    // (Envoy, Traefik, nginx with keepalive) would connect again for every decision.
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A refusal as the proxy renders it.
fn refusal(error: &GatewayError, request_id: &str) -> Response<Vec<u8>> {
    let r = render(error);
    let mut headers = HeaderMap::new();
    let mut set = |name: HeaderName, value: String| {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    };
    if let Some(c) = r.www_authenticate {
        set(http::header::WWW_AUTHENTICATE, c);
    }
    if let Some(allow) = r.allow {
        set(http::header::ALLOW, allow.to_string());
    }
    if let Some(retry) = r.retry_after {
        set(http::header::RETRY_AFTER, retry.to_string());
    }
    if let Some((ratelimit, policy)) = r.ratelimit {
        headers.insert(crate::rate_limit::headers::RATELIMIT, ratelimit);
        if let Some(policy) = policy {
            headers.insert(crate::rate_limit::headers::RATELIMIT_POLICY, policy);
        }
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
    answer(status, headers, request_id, r.body.to_vec())
}

impl Decision {
    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }
}

impl DecisionApp {
    /// The decision, and the snapshot it was made with (the access log names its routes).
    async fn decide(&self, session: &ServerSession) -> (Arc<Snapshot>, Decision) {
        let snapshot = self.snapshots.current();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let refresh = admission::refresh::Refresh {
            on_refresh: |issuer: &str| self.metrics.record_unknown_kid_refresh(issuer),
        };
        let decision = decide(
            &snapshot,
            session.req_header(),
            peer,
            crate::clock::unix_now,
            &refresh,
        )
        .await;
        (snapshot, decision)
    }
}

/// [`decide`] without a key refresh, at a fixed time: for benches and tests.
pub fn decide_now(
    snapshot: &Snapshot,
    req: &RequestHeader,
    peer: Option<IpAddr>,
    now: i64,
) -> Decision {
    let request_id = || crate::request_id::from_request(&req.headers);
    let future = decide(snapshot, req, peer, || now, &admission::NoRefresh);
    admission::poll_once(future).unwrap_or_else(|| {
        declined(
            request_id(),
            "internal_error",
            StatusCode::INTERNAL_SERVER_ERROR,
        )
    })
}

/// An answer without a described request (the decision request itself was refused).
fn declined(request_id: String, reason: &'static str, status: StatusCode) -> Decision {
    Decision {
        response: answer(status, HeaderMap::new(), &request_id, Vec::new()),
        request_id,
        method: None,
        reason,
        limit: None,
        route: None,
        path: String::new(),
        principal: None,
    }
}

/// Decide the request that `req`, a decision request from `peer`, describes: believed only
/// from a trusted peer, rebuilt by [`described`], admitted by the proxy's admission function,
/// then refused if the ingress would forward it differently from how it was authorised.
pub async fn decide<R: KeyRefresh>(
    snapshot: &Snapshot,
    req: &RequestHeader,
    peer: Option<IpAddr>,
    now: impl Fn() -> i64,
    refresh: &R,
) -> Decision {
    let request_id = crate::request_id::from_request(&req.headers);
    let decline =
        |reason: &'static str, status: StatusCode| declined(request_id.clone(), reason, status);
    let Some(settings) = snapshot.decision.as_ref() else {
        return decline("decision_disabled", StatusCode::NOT_FOUND);
    };
    if !settings.trusts(peer) {
        return decline("decision_untrusted_peer", StatusCode::FORBIDDEN);
    }
    let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let original = match described(&settings.protocol, &req.method, target, &req.headers) {
        Ok(r) => r,
        Err(fault) => return decline(fault.reason(), StatusCode::BAD_REQUEST),
    };
    // A DPoP proof names the URI the client used, whose scheme the ingress's description
    // does not carry: the DPoP scheme is not supported here (docs/tokens.md), as before DPoP.
    let dpop = matches!(
        crate::auth::bearer::credential(&original.headers, snapshot.limits.max_token_bytes),
        Ok(Some(c)) if c.scheme == crate::auth::bearer::Scheme::Dpop
    );
    // The ingress terminated the client's TLS: it is not this connection's to check.
    let verdict = match dpop {
        true => Err(admission::Refused {
            error: GatewayError::UnsupportedScheme,
            routed: None,
            principal: None,
        }),
        false => {
            admission::admit(
                &original,
                admission::Connection {
                    transport: Transport::Plain,
                    // The ingress's `X-Forwarded-For`, believed when it is a trusted proxy.
                    client_ip: snapshot.forwarding.client_ip(&req.headers, peer),
                },
                snapshot,
                now,
                refresh,
                CacheUse::Fill,
                &mut Silent,
            )
            .await
        }
    };
    match verdict {
        Ok(admitted) => {
            // The ingress forwards the request as the client sent it, not the canonical
            // form the proxy would forward: allowed only when the two are the same, so the
            // backend reads exactly what was authorised (`/public/../orders` is never
            // `/orders`).
            let differs =
                forwarded_differently(&original, &admitted.routed, snapshot, &settings.protocol);
            if let Some(reason) = differs {
                let malformed = GatewayError::BadTarget(crate::target::TargetFault::TargetForm);
                return Decision {
                    response: refusal(&malformed, &request_id),
                    request_id,
                    method: Some(original.method.clone()),
                    reason,
                    limit: None,
                    route: Some(admitted.routed.route),
                    path: admitted.routed.path,
                    principal: admitted.principal,
                };
            }
            let route = &snapshot.routes[admitted.routed.route];
            let mut headers = HeaderMap::new();
            if let Some(p) = &admitted.principal {
                for (name, value) in crate::identity::values(route, p) {
                    headers.insert(name.clone(), value);
                }
            }
            // Envoy overwrites only the headers an answer carries: the identity headers
            // it does not carry (a missing claim, a public route) are removed, so a forged
            // one never reaches the backend.
            if matches!(settings.protocol, Protocol::Envoy { .. }) {
                let unset: Vec<&str> = snapshot
                    .identity
                    .strip_names
                    .iter()
                    .filter(|n| !headers.contains_key(*n))
                    .map(|n| n.as_str())
                    .collect();
                if !unset.is_empty() {
                    // Header names always make a valid value; if not, fail closed: without the
                    // list Envoy would pass a forged identity header on.
                    let Ok(unset) = HeaderValue::try_from(unset.join(",")) else {
                        return decline("internal_error", StatusCode::INTERNAL_SERVER_ERROR);
                    };
                    headers.insert(
                        HeaderName::from_static("x-envoy-auth-headers-to-remove"),
                        unset,
                    );
                }
            }
            Decision {
                response: answer(StatusCode::OK, headers, &request_id, Vec::new()),
                request_id,
                method: Some(original.method.clone()),
                reason: "ok",
                limit: None,
                route: Some(admitted.routed.route),
                path: admitted.routed.path.clone(),
                principal: admitted.principal,
            }
        }
        Err(refused) => {
            let unmatched = matches!(refused.error, GatewayError::NoRoute);
            let error = match unmatched {
                // Fail closed, in a status every ingress passes on as a refusal.
                true => GatewayError::NoRoute,
                false => refused.error,
            };
            let mut response = refusal(&error, &request_id);
            if unmatched {
                *response.status_mut() = StatusCode::FORBIDDEN;
            }
            Decision {
                request_id,
                method: Some(original.method.clone()),
                response,
                reason: error.reason(),
                limit: match &error {
                    GatewayError::RateLimited(t) => Some(Arc::clone(&t.limit)),
                    _ => None,
                },
                route: refused.routed.as_ref().map(|r| r.route),
                path: refused.routed.map(|r| r.path).unwrap_or_default(),
                principal: refused.principal,
            }
        }
    }
}

#[async_trait]
impl ServeHttp for DecisionApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let started = std::time::Instant::now();
        let (snapshot, decision) = self.decide(session).await;
        crate::proxy::access_log::record_decision(
            &self.metrics,
            session,
            &snapshot,
            started,
            &crate::proxy::access_log::Decided {
                limit: decision.limit.as_deref(),
                request_id: &decision.request_id,
                method: decision
                    .method
                    .as_ref()
                    .unwrap_or(&session.req_header().method),
                status: decision.response.status().as_u16(),
                reason: decision.reason,
                route: decision.route,
                path: &decision.path,
                principal: decision.principal.as_deref(),
            },
        );
        decision.response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// The subrequest plain nginx sends with `proxy_set_header X-Original-URI $request_uri;`
    /// and `X-Original-Method $request_method` (nginx docs, ngx_http_auth_request_module).
    #[test]
    fn nginx_describes_the_request_in_x_original_headers() {
        let h = headers(&[
            ("host", "api.example.com"),
            ("x-original-uri", "/orders/7?x=1"),
            ("x-original-method", "DELETE"),
            ("authorization", "Bearer abc"),
        ]);
        let r = described(&Protocol::Nginx, &Method::GET, "/auth", &h).unwrap();
        assert_eq!(
            (r.method.as_str(), r.uri.to_string().as_str()),
            ("DELETE", "/orders/7?x=1")
        );
        assert_eq!(r.headers["host"], "api.example.com");
        assert_eq!(r.headers["authorization"], "Bearer abc");
        assert!(r.headers.get("x-original-uri").is_none());
    }

    /// ingress-nginx's auth subrequest: `X-Original-URL` (absolute), `X-Original-Method`,
    /// `X-Auth-Request-Redirect`, and `Host` set to the auth service's host.
    #[test]
    fn ingress_nginx_describes_it_in_x_original_url() {
        let h = headers(&[
            ("host", "portcullis.auth.svc"),
            ("x-original-url", "https://shop.example.com/orders/7"),
            ("x-original-method", "GET"),
            ("x-auth-request-redirect", "/orders/7"),
        ]);
        let r = described(&Protocol::Nginx, &Method::GET, "/", &h).unwrap();
        assert_eq!(r.uri.to_string(), "/orders/7");
        assert_eq!(r.headers["host"], "shop.example.com");
    }

    /// Traefik ForwardAuth (docs: "X-Forwarded-Method, -Proto, -Host, -Uri, -For").
    #[test]
    fn traefik_describes_it_in_x_forwarded_headers() {
        let h = headers(&[
            ("host", "auth:9191"),
            ("x-forwarded-method", "POST"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example.com"),
            ("x-forwarded-uri", "/orders"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        let r = described(&Protocol::Traefik, &Method::GET, "/", &h).unwrap();
        assert_eq!((r.method.as_str(), r.uri.path()), ("POST", "/orders"));
        assert_eq!(r.headers["host"], "api.example.com");
    }

    /// Envoy's ext_authz HTTP service: the original method, `path_prefix` + the original path,
    /// the original `Host`.
    #[test]
    fn envoy_describes_it_with_its_own_method_and_a_prefixed_path() {
        let envoy = Protocol::Envoy {
            path_prefix: "/ext_authz".to_owned(),
        };
        let h = headers(&[("host", "api.example.com"), ("authorization", "Bearer t")]);
        let r = described(&envoy, &Method::PUT, "/ext_authz/orders/7?a=b", &h).unwrap();
        assert_eq!(
            (r.method.as_str(), r.uri.to_string().as_str()),
            ("PUT", "/orders/7?a=b")
        );
        assert_eq!(
            described(&envoy, &Method::PUT, "/other/orders", &h).unwrap_err(),
            DescriptionFault::Uri
        );
    }

    /// Plain nginx sets X-Original-URI and passes the client's other headers: a client adding
    /// X-Original-URL (ingress-nginx's form) must not change the host or path authorised.
    #[test]
    fn both_nginx_forms_at_once_are_refused() {
        let h = headers(&[
            ("host", "api.example.com"),
            ("x-original-uri", "/orders/7"),
            ("x-original-method", "GET"),
            ("x-original-url", "http://public.example.com/public/x"),
        ]);
        assert_eq!(
            described(&Protocol::Nginx, &Method::GET, "/", &h).unwrap_err(),
            DescriptionFault::Duplicate
        );
        // X-Forwarded-Host is the client's in plain nginx: never the described host.
        let h = headers(&[
            ("host", "auth.internal"),
            ("x-original-uri", "/orders/7"),
            ("x-original-method", "GET"),
            ("x-forwarded-host", "admin.example.com"),
        ]);
        let r = described(&Protocol::Nginx, &Method::GET, "/", &h).unwrap();
        assert_eq!(r.headers["host"], "auth.internal");
    }

    #[test]
    fn an_incomplete_or_ambiguous_description_is_refused() {
        let no_method = headers(&[("host", "a"), ("x-original-uri", "/x")]);
        assert_eq!(
            described(&Protocol::Nginx, &Method::GET, "/", &no_method).unwrap_err(),
            DescriptionFault::Method
        );
        let twice = headers(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "a"),
            ("x-forwarded-uri", "/x"),
            ("x-forwarded-uri", "/admin"),
        ]);
        assert_eq!(
            described(&Protocol::Traefik, &Method::GET, "/", &twice).unwrap_err(),
            DescriptionFault::Duplicate
        );
        let absolute = headers(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "a"),
            ("x-forwarded-uri", "http://b/x"),
        ]);
        assert_eq!(
            described(&Protocol::Traefik, &Method::GET, "/", &absolute).unwrap_err(),
            DescriptionFault::Uri
        );
    }
}
