//! `explain` and the gateway agree (#11): one table of requests, every admission refusal and the
//! ways through, sent as raw bytes to the real proxy over plain HTTP and TLS. For each request,
//! `explain` (run on the same snapshot, with the same connection facts) gives the status the
//! client got and the reason the access log carries, and lists exactly the checks the proxy ran,
//! in the proxy's order: the proxy's own checks are read from its `portcullis::admission` debug
//! log of that request.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::support::keyserver::{fixture_jwks, rotated_jwks, KeyServer};
use crate::support::logs::{captured, Captured};
use crate::support::revocations::{revoke, with_admin};
use crate::support::tls::{roots, TestCa};
use crate::support::*;
use pingora::http::RequestHeader;
use portcullis::admission::Transport;
use portcullis::explain::{explain_on, Explanation};
use serde_json::{json, Value};

const STRICT: &str = "https://strict.test";

fn logs() -> &'static Captured {
    captured()
}

/// Every route kind: protected with methods, a host route, public, opt-ins, an RFC 9068 issuer,
/// a remote issuer (refresh on unknown `kid`) and one whose keys never load.
fn config(echo: SocketAddr, remote: &str, unreachable: SocketAddr) -> String {
    format!(
        r#"
listeners:
  - name: test
    address: "{{listen}}"
limits: {{ max_token_bytes: 2048 }}
issuers:
  - id: corp
    issuer: "{ISSUER}"
    jwks_file: jwks.json
    audiences: ["{AUDIENCE}"]
    algorithms: [RS256, ES256]
    leeway: 30s
  - id: strict
    issuer: "{STRICT}"
    jwks_file: jwks.json
    audiences: ["{AUDIENCE}"]
    algorithms: [RS256]
    token_type: at+jwt
  - id: remote
    issuer: "{remote}"
    jwks_uri: "{remote}/jwks"
    audiences: ["{AUDIENCE}"]
    algorithms: [RS256]
  - id: unreachable
    issuer: "https://unreachable.test"
    jwks_uri: "http://{unreachable}/jwks"
    audiences: ["{AUDIENCE}"]
    algorithms: [RS256]
upstreams:
  - id: echo
    url: "http://{echo}"
routes:
  - id: admin
    match: {{ host: admin.example.com, path_prefix: /orders }}
    upstream: echo
    auth: {{ issuers: [corp], scopes: {{ all_of: [admin], any_of: ["tenant:a", "tenant:b"] }} }}
  - id: orders-read
    match: {{ path_prefix: /orders, methods: [GET, HEAD] }}
    upstream: echo
    auth: {{ issuers: [corp], scopes: {{ all_of: ["read:orders"] }} }}
  - id: tickets
    match: {{ path_prefix: /tickets, methods: [GET, POST] }}
    upstream: echo
    auth: {{ issuers: [corp], scopes: {{ all_of: ["read:tickets"] }} }}
  - id: tickets-delete
    match: {{ path_prefix: /tickets, methods: [DELETE] }}
    upstream: echo
    method_override: allow
    auth: {{ issuers: [corp], scopes: {{ all_of: ["delete:tickets"] }} }}
  - id: api
    match: {{ path_prefix: /api }}
    upstream: echo
    auth: public
  - id: api-admin
    match: {{ path_prefix: /api/admin }}
    upstream: echo
    auth: {{ issuers: [corp], scopes: {{ all_of: [admin] }} }}
  - id: public
    match: {{ path_prefix: /public }}
    upstream: echo
    auth: public
  - id: strict
    match: {{ path_prefix: /strict }}
    upstream: echo
    auth: {{ issuers: [strict] }}
  - id: remote
    match: {{ path_prefix: /remote }}
    upstream: echo
    auth: {{ issuers: [remote] }}
  - id: unreachable
    match: {{ path_prefix: /unreachable }}
    upstream: echo
    auth: {{ issuers: [unreachable] }}
"#
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Plain,
    /// TLS 1.3 on a listener with `min_version: "1.3"`.
    Tls13,
    /// TLS 1.2 on that listener (the handshake completes; every request is refused).
    Tls12,
}

/// One request of the table and the answer the test expects from the gateway.
struct Case {
    name: &'static str,
    via: Via,
    method: &'static str,
    target: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    status: u16,
    reason: &'static str,
    /// Pingora's own request validation answers 400 before any phase runs (no access line):
    /// `target.rs` checks it again, for explain and for a parser that lets it through.
    refused_by_pingora: bool,
}

const API: &str = "api.example.com";

fn case(
    name: &'static str,
    line: &'static str,
    token: Option<&str>,
    expect: (u16, &'static str),
) -> Case {
    let (method, target) = line.split_once(' ').unwrap();
    let mut headers = vec![("Host", API.to_owned())];
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    Case {
        name,
        via: Via::Plain,
        method,
        target: target.as_bytes().to_vec(),
        headers,
        status: expect.0,
        reason: expect.1,
        refused_by_pingora: false,
    }
}

impl Case {
    fn refused_by_pingora(mut self) -> Case {
        self.refused_by_pingora = true;
        self
    }

    fn via(mut self, via: Via) -> Case {
        self.via = via;
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn without(mut self, name: &str) -> Case {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn raw_target(mut self, target: &[u8]) -> Case {
        self.target = target.to_vec();
        self
    }

    /// The request on the wire, with its request id.
    fn bytes(&self, request_id: &str) -> Vec<u8> {
        let mut out = format!("{} ", self.method).into_bytes();
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in self.head(request_id) {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn head(&self, request_id: &str) -> Vec<(&'static str, String)> {
        let mut head = self.headers.clone();
        head.push(("X-Request-Id", request_id.to_owned()));
        head.push(("Connection", "close".to_owned()));
        head
    }

    /// The same request as Pingora's HTTP/1 parser builds it, for `explain`.
    fn request_header(&self, request_id: &str) -> RequestHeader {
        let mut req = RequestHeader::build(self.method, &self.target, None).unwrap();
        req.set_version(http::Version::HTTP_11);
        for (name, value) in self.head(request_id) {
            req.append_header(name, value).unwrap();
        }
        req
    }

    fn transport(&self) -> Transport {
        match self.via {
            Via::Plain => Transport::Plain,
            Via::Tls13 => Transport::Tls {
                below_min_version: false,
                client_cert: None,
            },
            Via::Tls12 => Transport::Tls {
                below_min_version: true,
                client_cert: None,
            },
        }
    }
}

fn token(scope: &str) -> String {
    Issuer::rsa(&claims(scope))
}

fn with(scope: &str, claim: &str, value: Value) -> String {
    let mut c = claims(scope);
    c[claim] = value;
    Issuer::rsa(&c)
}

fn without_claim(scope: &str, claim: &str) -> String {
    let mut c = claims(scope);
    c.as_object_mut().unwrap().remove(claim);
    Issuer::rsa(&c)
}

fn issued_by(iss: &str, scope: &str) -> Value {
    let mut c = claims(scope);
    c["iss"] = json!(iss);
    c
}

fn strict_token(typ: &str, claims: &Value) -> String {
    Issuer::rsa_with_header(
        &json!({"alg": "RS256", "kid": "test-rsa-1", "typ": typ}),
        claims,
    )
}

fn revocable(jti: &str, sub: &str, client_id: &str) -> String {
    let mut c = claims("read:orders");
    c["jti"] = json!(jti);
    c["sub"] = json!(sub);
    c["client_id"] = json!(client_id);
    c["iat"] = json!(now() - 60);
    Issuer::rsa(&c)
}

/// The table: every refusal admission can give, and the ways through.
fn table(remote: &str) -> Vec<Case> {
    use Via::*;
    let read = token("read:orders");
    let strict_claims = {
        let mut c = issued_by(STRICT, "read:orders");
        c["client_id"] = json!("client-1");
        c["jti"] = json!("jti-strict");
        c["iat"] = json!(now());
        c
    };
    let mut strict_bare = strict_claims.clone();
    strict_bare.as_object_mut().unwrap().remove("client_id");
    let in_days = |d: i64| json!(now() + d * 86_400);
    vec![
        // The request line and host.
        case(
            "lower-case method",
            "get /orders/1",
            Some(&read),
            (400, "method_not_upper_case"),
        ),
        case(
            "relative target",
            "GET orders/1",
            Some(&read),
            (400, "target_form"),
        ),
        case(
            "no host",
            "GET /orders/1",
            Some(&read),
            (400, "host_missing"),
        )
        .without("host"),
        case(
            "two hosts",
            "GET /orders/1",
            Some(&read),
            (400, "host_duplicate"),
        )
        .header("Host", "admin.example.com")
        .refused_by_pingora(),
        case(
            "userinfo host",
            "GET /orders/1",
            Some(&read),
            (400, "host_invalid"),
        )
        .without("host")
        .header("Host", "user@api.example.com")
        .refused_by_pingora(),
        case(
            "authority against host",
            "GET http://admin.example.com/orders/1",
            Some(&read),
            (400, "host_mismatch"),
        )
        .refused_by_pingora(),
        case(
            "bad host",
            "GET /orders/1",
            Some(&read),
            (400, "host_invalid"),
        )
        .without("host")
        .header("Host", "exa!mple.com"),
        case(
            "two overrides",
            "POST /tickets/1",
            Some(&read),
            (400, "method_override_invalid"),
        )
        .header("X-HTTP-Method-Override", "DELETE")
        .header("X-HTTP-Method", "PUT"),
        // The path.
        case(
            "encoded slash",
            "GET /orders%2F1",
            Some(&read),
            (400, "path_encoded_separator"),
        ),
        case(
            "encoded nul",
            "GET /orders/%00",
            Some(&read),
            (400, "path_nul"),
        ),
        case(
            "bad escape",
            "GET /orders/%zz",
            Some(&read),
            (400, "path_bad_percent_encoding"),
        ),
        case(
            "above the root",
            "GET /../orders/1",
            Some(&read),
            (400, "path_climbs_above_root"),
        ),
        case(
            "dot segment parameters",
            "GET /public/..;x/orders/1",
            Some(&read),
            (400, "path_dot_segment_parameters"),
        ),
        case(
            "raw invalid utf-8",
            "GET /",
            Some(&read),
            (400, "path_not_utf8"),
        )
        .raw_target(b"/orders/\xff")
        .refused_by_pingora(),
        case(
            "path parameters",
            "GET /orders;x/1",
            Some(&read),
            (400, "path_parameters"),
        ),
        case(
            "case-folding reading",
            "GET /api/ADMIN/users",
            None,
            (400, "path_case_ambiguous"),
        ),
        case(
            "format suffix",
            "GET /orders.json",
            Some(&read),
            (400, "path_suffix_ambiguous"),
        ),
        case(
            "php path info",
            "GET /api/index.php/admin",
            Some(&read),
            (400, "path_script_info"),
        ),
        // Routing.
        case(
            "no route",
            "GET /nothing/here",
            Some(&read),
            (404, "no_route"),
        ),
        case(
            "method not listed",
            "DELETE /orders/1",
            Some(&read),
            (405, "method_not_allowed"),
        ),
        // The credentials.
        case("no token", "GET /orders/1", None, (401, "missing")),
        case("basic", "GET /orders/1", None, (401, "unsupported_scheme"))
            .header("Authorization", "Basic dXNlcjpwYXNz"),
        case(
            "two authorization headers",
            "GET /orders/1",
            Some(&read),
            (400, "duplicate_authorization"),
        )
        .header("Authorization", &format!("Bearer {read}")),
        case(
            "bearer with a space",
            "GET /orders/1",
            Some("a b"),
            (401, "malformed_token"),
        ),
        case(
            "empty bearer",
            "GET /orders/1",
            Some(""),
            (400, "malformed"),
        ),
        case(
            "huge token",
            "GET /orders/1",
            Some(&"a".repeat(3000)),
            (400, "token_too_large"),
        ),
        case(
            "header and query",
            "GET /orders/1?access_token=x",
            Some(&read),
            (400, "token_in_header_and_query"),
        ),
        // The token.
        case(
            "not a jws",
            "GET /orders/1",
            Some("abc.def"),
            (401, "malformed_token"),
        ),
        case(
            "alg none, empty signature",
            "GET /orders/1",
            Some(&Issuer::unsigned(&claims("read:orders"))),
            (401, "malformed_token"),
        ),
        case(
            "alg none, with a signature",
            "GET /orders/1",
            Some(&Issuer::rsa_with_header(
                &json!({"alg": "none", "kid": "test-rsa-1"}),
                &claims("read:orders"),
            )),
            (401, "algorithm_not_allowed"),
        ),
        case(
            "hs256 key confusion",
            "GET /orders/1",
            Some(&Issuer::hs256_with_rsa_public_key(&claims("read:orders"))),
            (401, "algorithm_not_allowed"),
        ),
        case(
            "crit",
            "GET /orders/1",
            Some(&Issuer::rsa_with_header(
                &json!({"alg": "RS256", "kid": "test-rsa-1", "crit": ["exp"]}),
                &claims("read:orders"),
            )),
            (401, "unsupported_crit"),
        ),
        case(
            "foreign issuer",
            "GET /orders/1",
            Some(&Issuer::rsa(&issued_by("https://evil.test", "read:orders"))),
            (401, "wrong_issuer"),
        ),
        case(
            "alg not allowed for the issuer",
            "GET /strict/1",
            Some(&Issuer::ec(&strict_claims)),
            (401, "algorithm_not_allowed"),
        ),
        case(
            "keys never loaded",
            "GET /unreachable/1",
            Some(&Issuer::rsa(&issued_by("https://unreachable.test", ""))),
            (503, "keys_not_loaded"),
        ),
        case(
            "unknown kid, file keys",
            "GET /orders/1",
            Some(&Issuer::rsa_untrusted(
                "no-such-kid",
                &claims("read:orders"),
            )),
            (401, "unknown_kid"),
        ),
        case(
            "unknown kid, remote keys",
            "GET /remote/1",
            Some(&Issuer::rsa_untrusted(
                "no-such-kid",
                &issued_by(remote, ""),
            )),
            (401, "unknown_kid"),
        ),
        case(
            "rsa kid, es256 alg",
            "GET /orders/1",
            Some(&Issuer::rsa_with_header(
                &json!({"alg": "ES256", "kid": "test-rsa-1"}),
                &claims("read:orders"),
            )),
            (401, "key_algorithm_mismatch"),
        ),
        case(
            "forged signature",
            "GET /orders/1",
            Some(&Issuer::rsa_untrusted("test-rsa-1", &claims("read:orders"))),
            (401, "bad_signature"),
        ),
        case(
            "plain jwt for at+jwt",
            "GET /strict/1",
            Some(&strict_token("JWT", &strict_claims)),
            (401, "wrong_type"),
        ),
        case(
            "expired",
            "GET /orders/1",
            Some(&with("read:orders", "exp", json!(now() - 600))),
            (401, "expired"),
        ),
        case(
            "no exp",
            "GET /orders/1",
            Some(&without_claim("read:orders", "exp")),
            (401, "missing_exp"),
        ),
        case(
            "not yet valid",
            "GET /orders/1",
            Some(&with("read:orders", "nbf", json!(now() + 600))),
            (401, "not_yet_valid"),
        ),
        case(
            "issued in the future",
            "GET /orders/1",
            Some(&with("read:orders", "iat", json!(now() + 600))),
            (401, "issued_in_future"),
        ),
        case(
            "other audience",
            "GET /orders/1",
            Some(&with("read:orders", "aud", json!("billing-api"))),
            (401, "wrong_audience"),
        ),
        case(
            "lives for 30 days",
            "GET /orders/1",
            Some(&with("read:orders", "exp", in_days(30))),
            (401, "lifetime_too_long"),
        ),
        case(
            "at+jwt without client_id",
            "GET /strict/1",
            Some(&strict_token("at+jwt", &strict_bare)),
            (401, "profile_violation"),
        ),
        case(
            "revoked jti",
            "GET /orders/1",
            Some(&revocable("jti-revoked", "bob", "app-1")),
            (401, "revoked_jti"),
        ),
        case(
            "revoked subject",
            "GET /orders/1",
            Some(&revocable("jti-2", "mallory", "app-1")),
            (401, "revoked_subject"),
        ),
        case(
            "revoked client",
            "GET /orders/1",
            Some(&revocable("jti-3", "carol", "stolen-app")),
            (401, "revoked_client"),
        ),
        case(
            "under-scoped",
            "GET /orders/1",
            Some(&token("profile")),
            (403, "insufficient_scope"),
        ),
        case(
            "host route, one of any_of missing",
            "GET /orders/1",
            Some(&token("admin")),
            (403, "insufficient_scope"),
        )
        .without("host")
        .header("Host", "admin.example.com"),
        // The ways through.
        case("valid", "GET /orders/1", Some(&read), (200, "ok")),
        case(
            "head takes the get route",
            "HEAD /orders/1",
            Some(&read),
            (200, "ok"),
        ),
        case("public", "GET /public/x", None, (200, "ok")),
        case(
            "public ignores a bad token",
            "GET /api/users",
            Some("garbage"),
            (200, "ok"),
        ),
        case(
            "host route",
            "GET /orders/1",
            Some(&token("admin tenant:b")),
            (200, "ok"),
        )
        .without("host")
        .header("Host", "Admin.Example.COM."),
        case(
            "absolute-form",
            "GET http://api.example.com/orders/1",
            Some(&read),
            (200, "ok"),
        ),
        case(
            "honoured override",
            "POST /tickets/1",
            Some(&token("delete:tickets")),
            (200, "ok"),
        )
        .header("X-HTTP-Method-Override", "DELETE"),
        case(
            "at+jwt",
            "GET /strict/1",
            Some(&strict_token("at+jwt", &strict_claims)),
            (200, "ok"),
        ),
        case(
            "remote keys",
            "GET /remote/1",
            Some(&Issuer::rsa(&issued_by(remote, ""))),
            (200, "ok"),
        ),
        // TLS: the version is checked after routing, before the token.
        case("tls 1.3", "GET /orders/1", Some(&read), (200, "ok")).via(Tls13),
        case("tls 1.3, no token", "GET /orders/1", None, (401, "missing")).via(Tls13),
        case(
            "tls 1.3, expired",
            "GET /orders/1",
            Some(&with("read:orders", "exp", json!(now() - 600))),
            (401, "expired"),
        )
        .via(Tls13),
        case(
            "tls 1.2",
            "GET /orders/1",
            Some(&read),
            (403, "tls_version_too_old"),
        )
        .via(Tls12),
        case(
            "tls 1.2, public",
            "GET /public/x",
            None,
            (403, "tls_version_too_old"),
        )
        .via(Tls12),
        case(
            "tls 1.2, no route",
            "GET /nothing",
            Some(&read),
            (404, "no_route"),
        )
        .via(Tls12),
    ]
}

/// Every reason admission can give for a request that reaches it. Not listed: `path_not_absolute`
/// (a target that does not start with `/` is `target_form` first), `host_duplicate` and
/// `host_mismatch` and `path_not_utf8` (Pingora 0.9 refuses those requests itself, before any
/// phase: see
/// `refused_by_pingora`), and the upstream failures, which are not admission's.
const EVERY_REASON: &[&str] = &[
    "method_not_upper_case",
    "target_form",
    "host_missing",
    "host_duplicate",
    "host_invalid",
    "host_mismatch",
    "method_override_invalid",
    "path_encoded_separator",
    "path_nul",
    "path_bad_percent_encoding",
    "path_climbs_above_root",
    "path_dot_segment_parameters",
    "path_parameters",
    "path_case_ambiguous",
    "path_suffix_ambiguous",
    "path_script_info",
    "no_route",
    "method_not_allowed",
    "missing",
    "unsupported_scheme",
    "duplicate_authorization",
    "malformed",
    "token_too_large",
    "token_in_header_and_query",
    "malformed_token",
    "algorithm_not_allowed",
    "unsupported_crit",
    "wrong_issuer",
    "keys_not_loaded",
    "unknown_kid",
    "key_algorithm_mismatch",
    "bad_signature",
    "wrong_type",
    "expired",
    "missing_exp",
    "not_yet_valid",
    "issued_in_future",
    "wrong_audience",
    "lifetime_too_long",
    "profile_violation",
    "revoked_jti",
    "revoked_subject",
    "revoked_client",
    "insufficient_scope",
    "tls_version_too_old",
];

/// The plain gateway (with the admin API, for revocations) and the TLS one, on the same routes.
struct Gateways {
    plain: TestGateway,
    tls: TestGateway,
    ca: TestCa,
    _keys: KeyServer,
    _dir: tempfile::TempDir,
}

impl Gateways {
    async fn start(keys: KeyServer) -> Gateways {
        let echo = echo_upstream().await;
        let dir = tempfile::tempdir().unwrap();
        let yaml = config(echo, &keys.issuer(), closed_port());
        let plain = TestGateway::start(&with_admin(&yaml, dir.path(), ""));
        let ca = TestCa::new("admission test CA");
        let (cert, key) = ca.server(&["api.test"]).write(dir.path(), "api");
        let tls_yaml = yaml.replacen(
            "    address: \"{listen}\"\n",
            &format!(
                "    address: \"{{listen}}\"\n    tls:\n      min_version: \"1.3\"\n      certificates:\n        - cert_file: \"{}\"\n          key_file: \"{}\"\n",
                cert.display(),
                key.display()
            ),
            1,
        );
        let tls = TestGateway::start(&tls_yaml);
        let gateways = Gateways {
            plain,
            tls,
            ca,
            _keys: keys,
            _dir: dir,
        };
        gateways.wait_for_remote_keys().await;
        gateways
    }

    /// The remote issuer's keys load in the background: wait until each gateway has them.
    async fn wait_for_remote_keys(&self) {
        for gw in [&self.plain, &self.tls] {
            eventually(
                "remote keys loaded",
                std::time::Duration::from_secs(20),
                || {
                    let loaded = gw
                        .snapshots
                        .current()
                        .issuers
                        .iter()
                        .find(|i| &*i.id == "remote")
                        .is_some_and(|i| i.keys.current().is_some());
                    async move { loaded }
                },
            )
            .await;
        }
    }

    fn for_case(&self, via: Via) -> &TestGateway {
        match via {
            Via::Plain => &self.plain,
            Via::Tls13 | Via::Tls12 => &self.tls,
        }
    }

    /// Send `bytes` on a new connection (over TLS at the case's version); the status.
    async fn send(&self, via: Via, bytes: &[u8]) -> u16 {
        use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
        async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, bytes: &[u8]) -> Vec<u8> {
            s.write_all(bytes).await.unwrap();
            let mut buf = Vec::new();
            // Bounded: a broken gateway fails the test instead of hanging it.
            tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut buf))
                .await
                .expect("an answer within 30 s")
                .unwrap();
            buf
        }
        let addr = self.for_case(via).addr;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let answer = match via {
            Via::Plain => exchange(tcp, bytes).await,
            Via::Tls13 | Via::Tls12 => {
                static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
                static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
                let version: &[&rustls::SupportedProtocolVersion] = match via {
                    Via::Tls12 => &TLS12,
                    _ => &TLS13,
                };
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_protocol_versions(version)
                .unwrap()
                .with_root_certificates(roots(&self.ca.pem()))
                .with_no_client_auth();
                let name = rustls::pki_types::ServerName::try_from("api.test").unwrap();
                let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, tcp)
                    .await
                    .unwrap();
                exchange(stream, bytes).await
            }
        };
        let text = String::from_utf8_lossy(&answer);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"))
    }
}

/// Per request id: the access log's reason, and the checks the proxy traced, in order.
#[derive(Debug, Default)]
struct Logged {
    reason: Option<String>,
    route: Option<String>,
    checks: Vec<(String, Option<String>)>,
}

fn logged(prefix: &str) -> HashMap<String, Logged> {
    let mut out: HashMap<String, Logged> = HashMap::new();
    for line in logs().json_lines() {
        let Some(id) = line["request_id"]
            .as_str()
            .filter(|id| id.starts_with(prefix))
        else {
            continue;
        };
        let entry = out.entry(id.to_owned()).or_default();
        match line["target"].as_str() {
            Some("portcullis::access") => {
                entry.reason = line["reason"].as_str().map(str::to_owned);
                entry.route = line["route"].as_str().map(str::to_owned);
            }
            Some("portcullis::admission") => {
                let failure = line["failure"].as_str().filter(|f| *f != "-");
                entry.checks.push((
                    line["step"].as_str().unwrap().to_owned(),
                    failure.map(str::to_owned),
                ));
            }
            _ => {}
        }
    }
    out
}

fn explained(e: &Explanation) -> Vec<(String, Option<String>)> {
    e.checks
        .iter()
        .map(|c| (c.name().to_owned(), c.failure.map(str::to_owned)))
        .collect()
}

#[tokio::test]
async fn explain_gives_the_gateways_answer_reason_and_checks_for_every_request() {
    logs();
    let keys = KeyServer::start(fixture_jwks()).await;
    let remote = keys.issuer();
    let gws = Gateways::start(keys).await;
    revoke(
        &gws.plain,
        json!({"type": "jti", "issuer": "corp", "jti": "jti-revoked"}),
    )
    .await;
    revoke(
        &gws.plain,
        json!({"type": "subject", "issuer": "corp", "sub": "mallory", "issued_before": now()}),
    )
    .await;
    revoke(&gws.plain, json!({"type": "client", "issuer": "corp", "client_id": "stolen-app", "issued_before": now()})).await;

    let cases = table(&remote);
    assert!(cases.len() >= 40, "{} requests", cases.len());
    let covered: BTreeSet<&str> = cases.iter().map(|c| c.reason).collect();
    let missing: Vec<&&str> = EVERY_REASON
        .iter()
        .filter(|r| !covered.contains(**r))
        .collect();
    assert!(
        missing.is_empty(),
        "reasons the table does not cover: {missing:?}"
    );

    let (mut explanations, mut unexpected) = (Vec::new(), Vec::new());
    for (i, case) in cases.iter().enumerate() {
        let id = format!("agree-{i}");
        let gw = gws.for_case(case.via);
        let explanation = explain_on(
            &case.request_header(&id),
            case.transport(),
            &gw.snapshots.current(),
            now(),
        );
        let status = gws.send(case.via, &case.bytes(&id)).await;
        let got = (status, explanation.reason.unwrap_or("ok"));
        if got != (case.status, case.reason) {
            unexpected.push(format!(
                "{}: gateway {status}, explain {} {:?}, expected {} {}",
                case.name, explanation.status, explanation.reason, case.status, case.reason
            ));
        }
        explanations.push((id, explanation));
    }
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    drop(gws); // every access line is written once the gateways have stopped

    let logged = logged("agree-");
    for ((id, explanation), case) in explanations.iter().zip(&cases) {
        if case.refused_by_pingora {
            assert!(
                !logged.contains_key(id),
                "{}: reached the phases",
                case.name
            );
            assert_eq!(explanation.status, case.status, "{}", case.name);
            continue;
        }
        let log = logged
            .get(id)
            .unwrap_or_else(|| panic!("{} ({id}): nothing logged", case.name));
        assert_eq!(explanation.status, case.status, "{}", case.name);
        assert_eq!(
            log.reason.as_deref(),
            Some(explanation.reason.unwrap_or("ok")),
            "{}: the access log's reason",
            case.name
        );
        assert_eq!(
            log.route.as_deref(),
            Some(explanation.route.as_deref().unwrap_or("-")),
            "{}: the access log's route",
            case.name
        );
        assert_eq!(
            log.checks,
            explained(explanation),
            "{}: the checks the proxy ran, and explain's",
            case.name
        );
        // Refused: the last check is the one that refused, with the logged reason; admitted:
        // every check passed.
        let last = explanation.checks.last().unwrap();
        match explanation.reason {
            Some(reason) => assert_eq!(last.failure, Some(reason), "{}", case.name),
            None => assert!(
                explanation.checks.iter().all(|c| c.passed()),
                "{}",
                case.name
            ),
        }
    }
}

/// A key the gateway has not seen yet: the proxy fails the signature check, refreshes the keys
/// and runs the checks again. `explain` does not refresh: before the request it lists the proxy's
/// first pass; after it, the token is in the verified-token cache, and `explain` lists the hit.
#[tokio::test]
async fn after_a_key_refresh_the_proxy_checks_again_and_caches_the_token() {
    logs();
    let keys = KeyServer::start(fixture_jwks()).await;
    let remote = keys.issuer();
    let mut jwks = fixture_jwks();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .push(rotated_jwks()["keys"][0].clone());
    let gws = Gateways::start(keys.clone()).await;
    keys.serve(jwks);
    let rotated = Issuer::rsa_untrusted("test-rsa-2", &issued_by(&remote, ""));
    let case = case("rotated key", "GET /remote/1", Some(&rotated), (200, "ok"));
    let explain = || {
        explain_on(
            &case.request_header("rotation-1"),
            Transport::Plain,
            &gws.plain.snapshots.current(),
            now(),
        )
    };
    let before = explained(&explain());
    assert_eq!(gws.send(Via::Plain, &case.bytes("rotation-1")).await, 200);
    let after = explain();
    assert_eq!((after.status, after.reason), (200, None));
    drop(gws);

    let log = logged("rotation-").remove("rotation-1").unwrap();
    assert_eq!(log.reason.as_deref(), Some("ok"));
    let refresh = log
        .checks
        .iter()
        .position(|(s, _)| s == "key_refresh")
        .unwrap();
    assert_eq!(log.checks[refresh], ("key_refresh".to_owned(), None));
    // The first pass is what explain listed before the request, up to the failed signature.
    let unknown = ("signature".to_owned(), Some("unknown_kid".to_owned()));
    let signature = before.iter().position(|c| *c == unknown).unwrap();
    assert_eq!(&log.checks[..refresh], &before[..=signature]);
    // The second pass verifies the token, from the bearer check on, and passes.
    let second: Vec<&str> = log.checks[refresh + 1..]
        .iter()
        .map(|(s, failure)| {
            assert_eq!(failure, &None, "{s}");
            s.as_str()
        })
        .collect();
    assert_eq!(second[..3], ["bearer", "cache", "jws"]);
    assert_eq!(second[second.len() - 2..], ["revocation", "scopes"]);
    // Then the token is cached: explain finds it there, and checks only the route's part.
    let names: Vec<&str> = after.checks.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "target",
            "path",
            "route",
            "bearer",
            "cache",
            "aud",
            "binding",
            "revocation",
            "scopes"
        ]
    );
    assert!(
        after.checks[4].detail.starts_with("hit"),
        "{:?}",
        after.checks[4]
    );
}

#[test]
fn explain_lists_the_admission_checks_of_the_shipped_config() {
    // The shipped gateway.yaml, for a request its demo token is refused on: the CLI's text shows
    // the real path's check names, in order, ending in the failing one.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = assert_cmd::Command::cargo_bin("portcullis")
        .unwrap()
        .args(["explain", "-c"])
        .arg(root.join("gateway.yaml"))
        .args(["--url", "http://127.0.0.1:8080/orders/42"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("pass") || l.starts_with("FAIL"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(names, ["target", "path", "route", "bearer"], "{text}");
    assert!(text.contains("FAIL  bearer      missing"), "{text}");
    assert!(text.contains("response: 401"), "{text}");
}
