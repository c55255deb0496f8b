//! What the upstream is told about the request besides identity: every header a legacy backend
//! would trust for routing, method, client address or identity is removed unless the gateway set
//! it, then `X-Forwarded-*` and `X-Real-IP` are set from the connection and the routed host.
//!
//! The order is strip, then set, on every route, public ones too. Identity headers from verified
//! claims are [`crate::identity`]'s job and run after this.

use std::net::IpAddr;

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// `forwarding:` compiled: whose forwarding headers are believed, and what else is stripped.
#[derive(Debug, Clone, Default)]
pub struct ForwardingPolicy {
    /// Peers (load balancers, ingress) whose `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are
    /// kept and appended to. Empty: every client's are replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `forwarding.strip_headers`: removed in addition to the built-in lists.
    pub strip_names: Vec<HeaderName>,
    /// `forwarding.client_cert_header`: where a TLS-terminating proxy names the client
    /// certificate (Envoy's `X-Forwarded-Client-Cert` format); read only from
    /// `client_cert_proxies`, never forwarded.
    pub client_cert_header: Option<HeaderName>,
    /// `forwarding.client_cert_proxies`: the proxies believed in `client_cert_header`.
    pub client_cert_proxies: Vec<ipnet::IpNet>,
}

impl ForwardingPolicy {
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        // On a `[::]` listener IPv4 peers arrive as `::ffff:a.b.c.d`.
        peer.map(|ip| ip.to_canonical())
            .is_some_and(|ip| self.trusted_proxies.iter().any(|net| net.contains(&ip)))
    }

    /// The client's address, for limits keyed by `ip`: the peer's; or, when the peer is a
    /// trusted proxy, the right-most `X-Forwarded-For` address that is not one (what nginx's
    /// `real_ip_recursive` and Envoy's `xff_num_trusted_hops` arrive at). Only trusted proxies
    /// wrote the hops read: whatever a client put further left is never reached. A hop that is
    /// not an address stops the walk at the last one that was.
    pub fn client_ip(&self, headers: &http::HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let mut client = peer?.to_canonical();
        if !self.trusts(Some(client)) {
            return Some(client);
        }
        let lines = headers.get_all(X_FORWARDED_FOR).iter().rev();
        let hops = lines.flat_map(|l| l.as_bytes().rsplit(|&b| b == b','));
        for hop in hops {
            let Some(ip) = std::str::from_utf8(hop).ok().and_then(hop_address) else {
                break;
            };
            client = ip.to_canonical();
            if !self.trusts(Some(client)) {
                break;
            }
        }
        Some(client)
    }

    /// Whether a plain-HTTP request came over TLS that a proxy in front terminated: from a
    /// `client_cert_proxies` peer, or from a trusted proxy that says `X-Forwarded-Proto: https`
    /// (exactly once). Decides the scheme a DPoP proof must name.
    pub fn terminated_tls(&self, headers: &http::HeaderMap, peer: Option<IpAddr>) -> bool {
        let canonical = peer.map(|ip| ip.to_canonical());
        if canonical.is_some_and(|ip| self.client_cert_proxies.iter().any(|n| n.contains(&ip))) {
            return true;
        }
        let mut proto = headers.get_all("x-forwarded-proto").iter();
        self.trusts(peer)
            && proto
                .next()
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
            && proto.next().is_none()
    }

    /// The SHA-256 of the client certificate a TLS-terminating proxy names in
    /// `client_cert_header`, for a request that came from `peer` over plain HTTP. `None` when the
    /// header is not configured, the peer is not one of `client_cert_proxies`, or the header does
    /// not name exactly one certificate (several headers, or several elements: which would be
    /// the client's?).
    pub fn forwarded_client_cert(
        &self,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Option<[u8; 32]> {
        let name = self.client_cert_header.as_ref()?;
        let peer = peer?.to_canonical();
        if !self
            .client_cert_proxies
            .iter()
            .any(|net| net.contains(&peer))
        {
            return None;
        }
        let mut values = headers.get_all(name).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        xfcc_hash(value.to_str().ok()?)
    }
}

/// An `X-Forwarded-For` hop: an address, or an address with a port (`192.0.2.1:443`,
/// `[2001:db8::1]:443`) as some load balancers write it.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// The `Hash` (hex SHA-256 of the DER certificate) of an `X-Forwarded-Client-Cert` value with
/// exactly one element, in Envoy's format: `key=value` pairs separated by `;`, elements by `,`,
/// values optionally double-quoted (`Subject="CN=a,O=b"`, `\"` inside).
pub fn xfcc_hash(value: &str) -> Option<[u8; 32]> {
    let mut pairs = Vec::new();
    let (mut key, mut current, mut in_value) = (String::new(), String::new(), false);
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        match (quoted, escaped, c) {
            (true, true, _) => {
                current.push(c);
                escaped = false;
            }
            (true, false, '\\') => escaped = true,
            (true, false, '"') => quoted = false,
            (true, false, _) => current.push(c),
            (false, _, '"') if in_value && current.is_empty() => quoted = true,
            (false, _, '=') if !in_value => {
                key = std::mem::take(&mut current);
                in_value = true;
            }
            (false, _, ';') => {
                pairs.push((std::mem::take(&mut key), std::mem::take(&mut current)));
                in_value = false;
            }
            // A second element: ambiguous.
            (false, _, ',') => return None,
            (false, _, _) => current.push(c),
        }
    }
    if quoted {
        return None;
    }
    pairs.push((key, current));
    let mut hashes = pairs
        .iter()
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("hash"));
    let hex = hashes.next()?.1.trim();
    if hashes.next().is_some() || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}

/// Headers that legacy stacks and other gateways' backends trust for the caller's identity
/// (oauth2-proxy, Kong, Kubernetes' authenticating proxy, Apache `REMOTE_USER`, cloud load
/// balancers). Only the gateway speaks for identity, so they are removed from every request.
fn is_foreign_identity(name: &str) -> bool {
    matches!(
        name,
        "remote-user"
            | "x-remote-user"
            | "x-remote-group"
            | "x-forwarded-user"
            | "x-forwarded-email"
            | "x-forwarded-preferred-username"
            | "x-forwarded-groups"
            | "x-forwarded-access-token"
            | "x-authenticated-userid"
            | "x-authenticated-user"
            | "x-authenticated-scope"
            | "x-user-id"
            | "x-user"
            | "x-username"
            | "x-email"
            | "x-auth-request-user"
            | "x-auth-request-email"
            | "x-auth-request-preferred-username"
            | "x-auth-request-groups"
            | "x-auth-request-access-token"
            | "x-consumer-id"
            | "x-consumer-username"
            | "x-consumer-custom-id"
            | "x-consumer-groups"
            | "x-anonymous-consumer"
            | "x-credential-identifier"
            | "x-credential-username"
            | "x-userinfo"
            | "x-id-token"
            | "x-jwt-assertion"
            | "x-jwt-payload"
            | "x-ms-client-principal"
            | "x-ms-client-principal-id"
            | "x-ms-client-principal-name"
            | "x-goog-authenticated-user-email"
            | "x-goog-authenticated-user-id"
            | "x-amzn-oidc-identity"
            | "x-amzn-oidc-data"
            | "x-amzn-oidc-accesstoken"
            | "x-ssl-client-cert"
            | "x-ssl-client-verify"
            | "x-ssl-client-s-dn"
            | "x-client-cert"
            | "x-client-verify"
            | "x-client-dn"
            | "ssl-client-cert"
            | "x-forwarded-client-cert"
            | "x-webauth-user"
            | "iv-user"
            | "iv-groups"
    ) || name.starts_with("x-remote-extra-")
        || name.starts_with("cf-access-")
        || name.starts_with("x-pomerium-")
}

/// Headers through which IIS URL Rewrite, Symfony/Laminas-style stacks and some proxies replace
/// the request's URL or method, and `Proxy` (httpoxy: CGI maps it to `HTTP_PROXY`).
fn is_rewrite(name: &str) -> bool {
    matches!(
        name,
        "x-original-url"
            | "x-rewrite-url"
            | "x-original-uri"
            | "x-override-url"
            | "x-envoy-original-path"
            | "x-original-method"
            | "x-original-host"
            | "x-host"
            | "x-script-name"
            | "x-forwarded-script-name"
            | "x-forwarded-prefix"
            | "x-forwarded-uri"
            | "x-forwarded-path"
            | "x-forwarded-method"
            | "proxy"
    )
}

/// Headers that say which host the request was for, which frameworks route on (Laravel
/// `Route::domain`, Symfony host requirements, django-hosts): always the gateway's word, the
/// routed host, even behind a trusted proxy.
fn is_host_claim(name: &str) -> bool {
    matches!(
        name,
        "x-forwarded-host" | "forwarded" | "x-forwarded" | "forwarded-for"
    )
}

/// Headers that describe the client's address or scheme as a proxy saw them: believed only from
/// a trusted proxy. Every other `X-Forwarded-*` is dropped from untrusted peers too.
fn is_forwarding(name: &str) -> bool {
    name.starts_with("x-forwarded-")
        || matches!(
            name,
            "x-real-ip"
                | "x-client-ip"
                | "client-ip"
                | "true-client-ip"
                | "x-cluster-client-ip"
                | "cf-connecting-ip"
                | "fastly-client-ip"
                | "x-original-forwarded-for"
                | "x-scheme"
                | "x-url-scheme"
                | "front-end-https"
                | "x-envoy-external-address"
                | "x-envoy-internal"
        )
}

/// What [`strip`] keeps.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// The route honoured a method override: its headers go to the backend, which will act on it.
    pub method_override: bool,
    /// The peer is a trusted proxy: its forwarding headers are kept.
    pub forwarding: bool,
}

/// Should the client's header `name` (lower case, as `http` stores it) reach the upstream?
pub(crate) fn doomed(name: &str, policy: &ForwardingPolicy, keep: Keep) -> bool {
    // `X_Auth_Subject` and `X-Auth.Subject` are `HTTP_X_AUTH_SUBJECT` to CGI, WSGI, Rack and PHP
    // (PHP maps `.` and ` ` to `_` as well), the same variable as `X-Auth-Subject`: like nginx
    // (`underscores_in_headers off`, `ignore_invalid_headers`), no such name goes through.
    name.contains(['_', '.'])
        || is_foreign_identity(name)
        || is_rewrite(name)
        || is_host_claim(name)
        || (!keep.method_override && crate::target::METHOD_OVERRIDE_HEADERS.contains(&name))
        || (!keep.forwarding && is_forwarding(name))
        || policy.strip_names.iter().any(|s| s.as_str() == name)
}

/// Remove every client header the backend could mistake for the gateway's word, in one pass.
/// Allocates only when there is something to remove.
pub fn strip(req: &mut RequestHeader, policy: &ForwardingPolicy, keep: Keep) {
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| doomed(n.as_str(), policy, keep))
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
}

/// RFC 9113 §8.2.3: an HTTP/2 client may split `Cookie` into one field per cookie; before the
/// request goes to an HTTP/1.1 backend they are joined with `"; "` (gunicorn would join them
/// with `,`, and Werkzeug and Django would then lose every cookie but the first). Allocates only
/// when there are several.
pub fn join_cookie_crumbs(req: &mut RequestHeader) -> pingora::Result<()> {
    let mut crumbs = req.headers.get_all(http::header::COOKIE).iter();
    if crumbs.next().is_none() || crumbs.next().is_none() {
        return Ok(());
    }
    let joined: Vec<&[u8]> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let value = HeaderValue::from_bytes(&joined.join(&b"; "[..]))
        .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "cookie", e))?;
    req.insert_header(http::header::COOKIE, value)?;
    Ok(())
}

// `HeaderName` constants: nothing parses a header name per request.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The connection facts the forwarding headers are made from.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ip: Option<IpAddr>,
    pub tls: bool,
    /// The canonical request host (`host[:port]`), as routed.
    pub host: Option<HeaderValue>,
    /// The peer is a trusted proxy ([`ForwardingPolicy::trusts`]).
    pub trusted: bool,
}

/// Set `X-Forwarded-For` (appended to a trusted proxy's chain, else replaced) and `X-Real-IP`
/// (a trusted proxy's kept, else the peer), `X-Forwarded-Proto` (a trusted proxy's kept, else the
/// listener's scheme) and `X-Forwarded-Host` (always the routed host). [`strip`] has already
/// removed what an untrusted peer sent, and `Forwarded` from everyone.
pub fn set(req: &mut RequestHeader, peer: Peer) -> pingora::Result<()> {
    if let Some(ip) = peer.ip {
        let existing = req
            .headers
            .get(X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty());
        let single_hop = existing.is_none();
        let chain = match existing {
            Some(existing) => format!("{existing}, {ip}"),
            None => ip.to_string(),
        };
        let chain = header_value(chain)?;
        if !req.headers.contains_key(X_REAL_IP) {
            // One hop: the same value as X-Forwarded-For, shared rather than copied.
            let real_ip = if single_hop {
                chain.clone()
            } else {
                header_value(ip.to_string())?
            };
            req.insert_header(X_REAL_IP, real_ip)?;
        }
        req.insert_header(X_FORWARDED_FOR, chain)?;
    }
    if !(peer.trusted && req.headers.contains_key(X_FORWARDED_PROTO)) {
        req.insert_header(X_FORWARDED_PROTO, if peer.tls { "https" } else { "http" })?;
    }
    match peer.host {
        Some(host) => {
            req.insert_header(X_FORWARDED_HOST, host)?;
        }
        None => {
            req.remove_header(&X_FORWARDED_HOST);
        }
    }
    Ok(())
}

fn header_value(text: String) -> pingora::Result<HeaderValue> {
    HeaderValue::try_from(text).map_err(|e| {
        pingora::Error::because(pingora::ErrorType::InternalError, "forwarding header", e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn names(r: &RequestHeader) -> Vec<String> {
        let mut v: Vec<String> = r.headers.keys().map(|n| n.as_str().to_owned()).collect();
        v.sort();
        v
    }

    const STRICT: Keep = Keep {
        method_override: false,
        forwarding: false,
    };

    #[test]
    fn strips_underscored_names_rewrites_overrides_and_foreign_identity() {
        let mut r = request(&[
            ("X_Auth_Subject", "admin"),
            ("X-Auth_Subject", "admin"),
            ("X-Auth.Subject", "admin"),
            ("X-WEBAUTH-USER", "admin"),
            ("Cf-Access-Authenticated-User-Email", "a@b"),
            ("X-Original-URL", "/orders/42"),
            ("X-Rewrite-URL", "/orders/42"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-HTTP-Method", "DELETE"),
            ("X-Method-Override", "DELETE"),
            ("X-Remote-User", "admin"),
            ("X-Forwarded-User", "admin"),
            ("X-Authenticated-Userid", "admin"),
            ("X-User-Id", "1"),
            ("Remote-User", "admin"),
            ("X-Forwarded-Email", "a@b"),
            ("X-Auth-Request-User", "admin"),
            ("X-Remote-Extra-Scopes", "admin"),
            ("Proxy", "http://evil:1"),
            ("Accept", "*/*"),
            ("X-Custom", "kept"),
        ]);
        strip(&mut r, &ForwardingPolicy::default(), STRICT);
        assert_eq!(names(&r), ["accept", "x-custom"]);
    }

    #[test]
    fn the_client_address_is_the_right_most_one_no_trusted_proxy_wrote() {
        let policy = ForwardingPolicy {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..ForwardingPolicy::default()
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let with = |xff: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in xff {
                h.append(
                    "x-forwarded-for",
                    http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
                );
            }
            h
        };
        // An untrusted peer: its own address, whatever it claims.
        assert_eq!(
            policy.client_ip(&with(&["1.1.1.1"]), ip("203.0.113.9")),
            ip("203.0.113.9")
        );
        // Through two trusted proxies; the client's own claim (left) is never reached.
        let chain = with(&["6.6.6.6, 198.51.100.7, 10.1.1.1"]);
        assert_eq!(policy.client_ip(&chain, ip("10.2.2.2")), ip("198.51.100.7"));
        let split = with(&["6.6.6.6", "198.51.100.7", "10.1.1.1"]);
        assert_eq!(policy.client_ip(&split, ip("10.2.2.2")), ip("198.51.100.7"));
        // Garbage to the left of the proxy's hop does not matter; none at all: the proxy.
        let garbage = with(&["\u{ff}nonsense, 198.51.100.7"]);
        assert_eq!(
            policy.client_ip(&garbage, ip("10.2.2.2")),
            ip("198.51.100.7")
        );
        assert_eq!(policy.client_ip(&with(&[]), ip("10.2.2.2")), ip("10.2.2.2"));
        // Hops with ports, as some load balancers write them.
        let ported = with(&["198.51.100.7:5123, 10.1.1.1:443"]);
        assert_eq!(
            policy.client_ip(&ported, ip("10.2.2.2")),
            ip("198.51.100.7")
        );
        let v6 = with(&["[2001:db8::7]:5123"]);
        assert_eq!(policy.client_ip(&v6, ip("10.2.2.2")), ip("2001:db8::7"));
        // IPv4-mapped peers count as IPv4.
        assert_eq!(
            policy.client_ip(&with(&[]), ip("::ffff:203.0.113.9")),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarding_headers_are_kept_only_from_trusted_proxies() {
        let headers = [
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Real-IP", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Protocol", "https"),
            ("True-Client-IP", "1.2.3.4"),
            // Never kept: the host a framework routes on, and URL rewrites.
            ("X-Forwarded-Host", "admin.example.com"),
            ("Forwarded", "for=1.2.3.4;host=admin.example.com"),
            ("X-Forwarded-Prefix", "/admin"),
            ("X-Script-Name", "/admin"),
        ];
        let mut r = request(&headers);
        strip(&mut r, &ForwardingPolicy::default(), STRICT);
        assert!(names(&r).is_empty(), "{:?}", names(&r));
        let mut r = request(&headers);
        let keep = Keep {
            forwarding: true,
            ..STRICT
        };
        strip(&mut r, &ForwardingPolicy::default(), keep);
        assert_eq!(
            names(&r),
            [
                "true-client-ip",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-protocol",
                "x-real-ip"
            ]
        );
    }

    #[test]
    fn honoured_overrides_and_configured_names() {
        let policy = ForwardingPolicy {
            trusted_proxies: Vec::new(),
            strip_names: vec![HeaderName::from_static("x-tenant")],
            client_cert_header: None,
            client_cert_proxies: Vec::new(),
        };
        let mut r = request(&[("X-HTTP-Method-Override", "DELETE"), ("X-Tenant", "a")]);
        let keep = Keep {
            method_override: true,
            ..STRICT
        };
        strip(&mut r, &policy, keep);
        assert_eq!(names(&r), ["x-http-method-override"]);
    }

    #[test]
    fn http2_cookie_crumbs_are_joined_for_http1_backends() {
        let mut r = request(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
        join_cookie_crumbs(&mut r).unwrap();
        let all: Vec<&str> = r
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        let mut r = request(&[("cookie", "a=1")]);
        join_cookie_crumbs(&mut r).unwrap();
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1");
    }

    /// Envoy's `X-Forwarded-Client-Cert`: one element names the certificate by `Hash`; quoted
    /// values may hold `,` and `;`; two elements (or two hashes) name no single certificate.
    #[test]
    fn the_xfcc_hash_of_exactly_one_element() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let digest = xfcc_hash(&format!("Hash={hex}")).unwrap();
        assert_eq!(digest[0], 0x9f);
        assert_eq!(digest[31], 0x08);
        for same in [
            format!("By=spiffe://cluster.local/ns/a/sa/b;Hash={hex};Subject=\"CN=ui,O=a;b\";URI="),
            format!("Subject=\"CN=\\\"q\\\", O=x\";hash={hex}"),
        ] {
            assert_eq!(xfcc_hash(&same), Some(digest), "{same}");
        }
        for none in [
            String::new(),
            "Subject=\"CN=ui\"".to_owned(),
            format!("Hash={hex},Hash={hex}"),
            format!("Hash={hex};Hash={hex}"),
            format!("Hash={}", &hex[..62]),
            format!("Hash={}zz", &hex[..62]),
            format!("Hash={hex};Subject=\"CN=open"),
            format!("Hash=+{}", &hex[1..]),
        ] {
            assert_eq!(xfcc_hash(&none), None, "{none}");
        }
    }

    #[test]
    fn a_forwarded_client_cert_is_read_from_trusted_proxies_only() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let policy = ForwardingPolicy {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            strip_names: vec![],
            client_cert_header: Some(HeaderName::from_static("x-forwarded-client-cert")),
            client_cert_proxies: vec!["10.0.0.7/32".parse().unwrap()],
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-forwarded-client-cert",
            format!("Hash={hex}").parse().unwrap(),
        );
        let proxy = Some("10.0.0.7".parse().unwrap());
        assert!(policy.forwarded_client_cert(&headers, proxy).is_some());
        assert!(policy
            .forwarded_client_cert(&headers, Some("::ffff:10.0.0.7".parse().unwrap()))
            .is_some());
        // A trusted proxy for addresses is not one for certificates.
        assert_eq!(
            policy.forwarded_client_cert(&headers, Some("10.1.2.3".parse().unwrap())),
            None
        );
        headers.append(
            "x-forwarded-client-cert",
            format!("Hash={hex}").parse().unwrap(),
        );
        assert_eq!(policy.forwarded_client_cert(&headers, proxy), None);
    }

    #[test]
    fn trusts_configured_networks_only() {
        let policy = ForwardingPolicy {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            strip_names: Vec::new(),
            client_cert_header: None,
            client_cert_proxies: Vec::new(),
        };
        assert!(policy.trusts(Some("10.1.2.3".parse().unwrap())));
        // IPv4 peers of a `[::]` listener arrive IPv4-mapped.
        assert!(policy.trusts(Some("::ffff:10.1.2.3".parse().unwrap())));
        assert!(policy.trusts(Some("::1".parse().unwrap())));
        assert!(!policy.trusts(Some("11.1.2.3".parse().unwrap())));
        assert!(!policy.trusts(None));
    }

    #[test]
    fn sets_forwarding_headers_from_the_connection() {
        let peer = Peer {
            ip: Some("192.0.2.7".parse().unwrap()),
            tls: true,
            host: Some(HeaderValue::from_static("api.example.com")),
            trusted: false,
        };
        let mut r = request(&[]);
        set(&mut r, peer.clone()).unwrap();
        let get = |r: &RequestHeader, n: &str| {
            r.headers
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(get(&r, "x-forwarded-for"), "192.0.2.7");
        assert_eq!(get(&r, "x-real-ip"), "192.0.2.7");
        assert_eq!(get(&r, "x-forwarded-proto"), "https");
        assert_eq!(get(&r, "x-forwarded-host"), "api.example.com");

        // Behind a trusted proxy: its chain is extended and its address and scheme kept; the
        // host is always the routed one.
        let mut r = request(&[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Real-IP", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
        ]);
        let trusted = Peer {
            trusted: true,
            tls: false,
            ..peer
        };
        set(&mut r, trusted).unwrap();
        assert_eq!(get(&r, "x-forwarded-for"), "203.0.113.9, 192.0.2.7");
        assert_eq!(get(&r, "x-real-ip"), "203.0.113.9");
        assert_eq!(get(&r, "x-forwarded-proto"), "https");
        assert_eq!(get(&r, "x-forwarded-host"), "api.example.com");
    }
}
