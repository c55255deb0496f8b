//! Differential suite: real backend stacks (Flask, Express, Go net/http, PHP) behind the real
//! gateway, fed a generated corpus of awkward requests over HTTP/1.1 (raw bytes) and HTTP/2 (TLS,
//! ALPN h2).
//!
//! What it proves: for every request the gateway forwards and a backend serves, the backend's own
//! reading of it (the method its handler dispatched on, the path it routed on, the host it saw and
//! the `X-Auth-Subject` identity as that stack reads it) is one the gateway could have authorised
//! for the credentials the client presented; every other request was refused. The judge is the
//! `oracle` module: it re-derives, from the backend's view alone, what the route table requires,
//! so a disagreement between how the gateway and a backend parse the same bytes (case, dot
//! segments, encoded separators, duplicate or odd `Host` headers, method overrides, rewrite
//! headers, forged identity headers) shows up as a violation.
//!
//! The backends are installed by `tests/differential/setup.sh` (`make test` runs it) and started
//! by `tests/differential/run-backend.sh NAME`. Run one with its table shown:
//! `cargo test --test differential differential_go -- --nocapture`.
//!
//! Reading the table printed per backend:
//! - `sent`: requests in the corpus for that protocol;
//! - `served`: answered by the backend's handler (the response carries `X-Diff-Backend`); each one
//!   is judged;
//! - `refused by gateway`: the gateway's own refusal (its JSON `error` body, or a bare answer of its
//!   HTTP layer that never reached the proxy path, recognisable by the missing `x-request-id`);
//! - `refused by backend`: proxied, but the backend stack refused it before its handler ran (its
//!   parser or router answered);
//! - `no response`: the connection closed or timed out without a complete response;
//! - `violations`: served requests the gateway could not have authorised; each is listed below the
//!   table with the request (escaped, tokens named rather than shown), the status and the backend's
//!   view. Any violation fails the test.
//!
//! A HEAD has no body, so its backend view cannot be read: a served HEAD is judged on every reading
//! of the request as sent (every host it names), and its identity is not checked. The same header
//! sets are sent with the other methods, whose views are read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::tls::{client_config, TestCa};
use support::{claims, Issuer, TestGateway, AUDIENCE, ISSUER};

use backend::Backend;
use judge::{report, Tally};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_flask_http1_and_http2() {
    differential("flask").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_express_http1_and_http2() {
    differential("express").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_go_http1_and_http2() {
    differential("go").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_php_http1_and_http2() {
    differential("php").await;
}

/// A bound on one exchange, so a hung connection fails the test instead of stalling it.
const EXCHANGE_BOUND: Duration = Duration::from_secs(15);

/// The name in the TLS listener's certificate, sent as SNI.
const TLS_NAME: &str = "api.test";

/// The whole corpus against one backend: HTTP/1.1 on a plain listener, HTTP/2 on a TLS one.
async fn differential(name: &'static str) {
    let started = Instant::now();
    let backend = Backend::start(name).await;
    let tokens = Tokens::new();
    let plain = TestGateway::start(&gateway_yaml(backend.addr(), ""));
    let tls = TlsGateway::start(backend.addr());

    let mut http1 = Tally::new("HTTP/1.1");
    for probe in corpus::http1() {
        let raw = probe.wire(tokens.authorization(probe.cred).as_deref());
        let answer = wire::http1_exchange(plain.addr, raw.as_bytes(), probe.method == "HEAD").await;
        http1.record(probe.describe(), &probe.as_sent(), probe.cred, answer);
    }

    let mut http2 = Tally::new("HTTP/2");
    let connector = tls.connector();
    for probe in corpus::http2() {
        let answer = match probe.request(tokens.authorization(probe.cred).as_deref()) {
            Ok(request) => wire::h2_exchange(tls.gw.addr, &connector, request).await,
            Err(e) => Err(format!("request not built: {e}")),
        };
        http2.record(probe.describe(), &probe.as_sent(), probe.cred, answer);
    }

    let report = report(name, &[&http1, &http2], started.elapsed());
    println!("{report}");

    // Sanity: enough requests, and both outcomes seen, so a dead or misconfigured backend (or a
    // gateway refusing everything) cannot pass.
    assert!(
        http1.sent >= 300,
        "{name}: HTTP/1.1 corpus too small\n{report}"
    );
    assert!(
        http2.sent >= 40,
        "{name}: HTTP/2 corpus too small\n{report}"
    );
    for tally in [&http1, &http2] {
        let protocol = tally.protocol;
        assert!(
            tally.served > 0 && tally.served_protected_ok > 0,
            "{name} over {protocol}: no authorised protected request was served\n{report}"
        );
        assert!(
            tally.refused_by_gateway > 0,
            "{name} over {protocol}: the gateway refused nothing\n{report}"
        );
    }
    let violations = http1.violations.len() + http2.violations.len();
    assert_eq!(
        violations, 0,
        "{name}: {violations} request(s) served that the gateway could not have authorised\n{report}"
    );
}

/// The gateway configuration of the suite: one upstream, the route table of the issue.
fn gateway_yaml(backend: SocketAddr, tls: &str) -> String {
    format!(
        r#"
listeners:
  - name: differential
    address: "{{listen}}"
{tls}issuers:
  - id: corp
    issuer: "{ISSUER}"
    jwks_file: jwks.json
    audiences: ["{AUDIENCE}"]
    algorithms: [RS256]
upstreams:
  - id: backend
    url: "http://{backend}"
{ROUTES}"#
    )
}

const ROUTES: &str = r#"identity:
  headers: { X-Auth-Subject: sub, X-Auth-Scopes: scope }
routes:
  - id: catch-all
    match: { path_prefix: / }
    upstream: backend
    auth: public
  - id: admin
    match: { host: admin.example.com, path_prefix: /orders, case_insensitive: true }
    upstream: backend
    auth: { scopes: { all_of: [admin] } }
  - id: orders-read
    match: { path_prefix: /orders, methods: [GET, HEAD], case_insensitive: true }
    upstream: backend
    auth: { scopes: { all_of: ["read:orders"] } }
  - id: orders-write
    match: { path_prefix: /orders, methods: [POST, PUT, DELETE], case_insensitive: true }
    upstream: backend
    auth: { scopes: { all_of: ["write:orders"] } }
"#;

/// The same gateway on a TLS listener (a certificate of a CA made for the test), for HTTP/2.
struct TlsGateway {
    gw: TestGateway,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl TlsGateway {
    fn start(backend: SocketAddr) -> TlsGateway {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("differential test CA");
        let (cert, key) = ca.server(&[TLS_NAME]).write(dir.path(), "gateway");
        let tls = format!(
            "    tls:\n      certificates:\n        - cert_file: \"{}\"\n          key_file: \"{}\"\n",
            cert.display(),
            key.display()
        );
        TlsGateway {
            gw: TestGateway::start(&gateway_yaml(backend, &tls)),
            ca_pem: ca.pem(),
            _dir: dir,
        }
    }

    /// A TLS connector trusting the test CA and offering only h2.
    fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut config = client_config(&self.ca_pem, None);
        config.alpn_protocols = vec![b"h2".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// The credentials a request presents: each has a known subject and scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cred {
    /// No token.
    Anonymous,
    /// `read:orders`.
    Alice,
    /// `write:orders`.
    Bob,
    /// `admin read:orders write:orders`.
    Carol,
    /// Every scope, but signed by a key the gateway does not trust: never valid.
    Eve,
}

impl Cred {
    pub const ALL: [Cred; 5] = [
        Cred::Anonymous,
        Cred::Alice,
        Cred::Bob,
        Cred::Carol,
        Cred::Eve,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cred::Anonymous => "none",
            Cred::Alice => "alice",
            Cred::Bob => "bob",
            Cred::Carol => "carol",
            Cred::Eve => "eve",
        }
    }

    /// The subject of a valid token; `None` for no token and for Eve's forged one.
    pub fn subject(self) -> Option<&'static str> {
        match self {
            Cred::Alice | Cred::Bob | Cred::Carol => Some(self.name()),
            Cred::Anonymous | Cred::Eve => None,
        }
    }

    /// The scopes the gateway can verify.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Cred::Alice => &["read:orders"],
            Cred::Bob => &["write:orders"],
            Cred::Carol => &["admin", "read:orders", "write:orders"],
            Cred::Anonymous | Cred::Eve => &[],
        }
    }

    pub fn holds(self, scope: &str) -> bool {
        self.scopes().contains(&scope)
    }

    /// The `Authorization` value shown in reports instead of the token.
    pub fn placeholder(self) -> Option<String> {
        match self {
            Cred::Anonymous => None,
            Cred::Eve => Some("Bearer <eve's token, untrusted key>".to_owned()),
            other => Some(format!("Bearer <{}'s token>", other.name())),
        }
    }
}

/// The tokens behind the credentials, signed once per test.
struct Tokens {
    alice: String,
    bob: String,
    carol: String,
    eve: String,
}

impl Tokens {
    fn new() -> Tokens {
        let claims_of = |sub: &str, scope: &str| {
            let mut c = claims(scope);
            c["sub"] = json!(sub);
            c
        };
        Tokens {
            alice: Issuer::rsa(&claims_of("alice", "read:orders")),
            bob: Issuer::rsa(&claims_of("bob", "write:orders")),
            carol: Issuer::rsa(&claims_of("carol", "admin read:orders write:orders")),
            eve: Issuer::rsa_untrusted(
                "test-rsa-1",
                &claims_of("eve", "admin read:orders write:orders"),
            ),
        }
    }

    /// The `Authorization` header value for `cred`, if it presents a token.
    fn authorization(&self, cred: Cred) -> Option<String> {
        let token = match cred {
            Cred::Anonymous => return None,
            Cred::Alice => &self.alice,
            Cred::Bob => &self.bob,
            Cred::Carol => &self.carol,
            Cred::Eve => &self.eve,
        };
        Some(format!("Bearer {token}"))
    }
}

mod oracle;

mod corpus;

mod wire;

mod judge;

mod backend;
