//! The request-path decision (`admission::admit`: normalise + route lookup + token validation +
//! revocation + scope check) for an RS256 and an ES256 token, plus its parts. Figures and machine:
//! benches/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pingora::http::RequestHeader;
use portcullis::admission::{admit_now, CacheUse, Silent, Transport};
use portcullis::routes::normalize_path;
use serde_json::json;

const CONFIG: &str = r#"
listeners: [{ name: bench, address: "127.0.0.1:8080" }]
issuers:
  - id: corp
    issuer: "https://idp.bench"
    jwks_file: jwks.json
    audiences: [orders-api]
    algorithms: [RS256, ES256]
  - id: opaque
    issuer: "https://as.bench"
    token_format: opaque
    audiences: [orders-api]
    introspection:
      endpoint: "http://127.0.0.1:9/introspect"
      client_id: portcullis
      client_secret_file: bench-introspection-secret
upstreams: [{ id: echo, url: "http://127.0.0.1:9000" }]
routes:
  - { id: health, match: { path: /healthz }, upstream: echo, auth: public }
  - { id: users, match: { path_prefix: /users }, upstream: echo, auth: { scopes: { all_of: [read:users] } } }
  - { id: billing, match: { host: billing.example.com, path_prefix: /invoices }, upstream: echo }
  - id: orders
    match: { path_prefix: /orders, methods: [GET, HEAD] }
    upstream: echo
    auth: { scopes: { all_of: ["read:orders"] } }
"#;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn token(alg: Algorithm, kid: &str, pem: &str) -> String {
    let bytes = std::fs::read(fixtures().join(pem)).unwrap();
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&bytes).unwrap(),
        _ => EncodingKey::from_rsa_pem(&bytes).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let claims = json!({
        "iss": "https://idp.bench", "aud": "orders-api", "sub": "alice", "client_id": "ui",
        "scope": "read:orders write:orders profile", "iat": 1_900_000_000i64, "exp": 1_900_000_600i64,
        "jti": "8f14e45f-ceea-467f-a8f2-3f0f1c1d2e3f",
    });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn request(token: &str) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/orders/42/items?limit=10", None).unwrap();
    req.insert_header("host", "api.example.com").unwrap();
    req.insert_header("authorization", format!("Bearer {token}"))
        .unwrap();
    req
}

fn bench(c: &mut Criterion) {
    portcullis::install_crypto_provider();
    let snapshot = portcullis::config::load_str(CONFIG, &fixtures())
        .unwrap()
        .snapshot;
    let now = 1_900_000_100;
    let mut group = c.benchmark_group("decide");
    for (name, alg, kid, pem) in [
        ("rs256", Algorithm::RS256, "test-rsa-1", "rsa-private.pem"),
        ("es256", Algorithm::ES256, "test-ec-1", "ec-private.pem"),
    ] {
        let req = request(&token(alg, kid, pem));
        // Every request verifies (the cache off): the cost of a token seen for the first time.
        let admit = |cache| admit_now(&req, Transport::Plain, &snapshot, now, cache, &mut Silent);
        assert!(admit(CacheUse::Off).is_ok());
        group.bench_function(name, |b| {
            b.iter(|| {
                admit_now(
                    black_box(&req),
                    Transport::Plain,
                    black_box(&snapshot),
                    now,
                    CacheUse::Off,
                    &mut Silent,
                )
            })
        });
        // The same token again: a verified-token cache hit, then the route's checks.
        assert!(admit(CacheUse::Fill).is_ok());
        group.bench_function(format!("{name}_cached"), |b| {
            b.iter(|| {
                admit_now(
                    black_box(&req),
                    Transport::Plain,
                    black_box(&snapshot),
                    now,
                    CacheUse::Fill,
                    &mut Silent,
                )
            })
        });
        // Decision mode: the same request described by nginx's auth subrequest, rebuilt, then
        // the same admission (a cache hit, as for a client calling repeatedly).
        let mut ask = RequestHeader::build("GET", b"/_portcullis", None).unwrap();
        for (n, v) in [
            ("host", "portcullis-decision:9191"),
            ("x-original-uri", "/orders/42/items?limit=10"),
            ("x-original-method", "GET"),
            ("x-original-host", "api.example.com"),
        ] {
            ask.insert_header(n, v).unwrap();
        }
        ask.insert_header("authorization", req.headers["authorization"].clone())
            .unwrap();
        let protocol = portcullis::decision::Protocol::Nginx;
        group.bench_function(format!("{name}_cached_decision"), |b| {
            b.iter(|| {
                let described = portcullis::decision::described(
                    &protocol,
                    &ask.method,
                    "/_portcullis",
                    black_box(&ask.headers),
                )
                .unwrap();
                admit_now(
                    &described,
                    Transport::Plain,
                    black_box(&snapshot),
                    now,
                    CacheUse::Fill,
                    &mut Silent,
                )
            })
        });
    }
    // An opaque token whose introspection answer is cached (RFC 7662): the route's checks on
    // the answer's claims. Target: no dearer than `rs256_cached`, a JWT cache hit.
    let opaque = "2YotnFZFEjr1zCsicMWpAA-opaque-bench-token";
    let issuer = snapshot
        .issuers
        .iter()
        .find(|i| &*i.id == "opaque")
        .unwrap();
    let answer = Ok(std::sync::Arc::new(
        json!({
            "active": true, "iss": "https://as.bench", "aud": "orders-api", "sub": "alice",
            "client_id": "ui", "scope": "read:orders write:orders profile",
            "iat": now - 100, "exp": now + 500, "jti": "8f14e45f-ceea-467f",
        })
        .as_object()
        .unwrap()
        .clone(),
    ));
    issuer
        .introspector
        .as_ref()
        .unwrap()
        .remember(opaque, &answer, now);
    let req = request(opaque);
    assert!(admit_now(
        &req,
        Transport::Plain,
        &snapshot,
        now,
        CacheUse::Fill,
        &mut Silent
    )
    .is_ok());
    group.bench_function("opaque_cached", |b| {
        b.iter(|| {
            admit_now(
                black_box(&req),
                Transport::Plain,
                black_box(&snapshot),
                now,
                CacheUse::Fill,
                &mut Silent,
            )
        })
    });
    group.finish();

    // A whole request's work in each mode, with a steady token (a cache hit) and the headers a
    // typical client sends. Proxy: admission, Pingora's copy of the request header for the
    // upstream (`proxy_h1.rs`: `session.req_header().clone()`), then `upstream::rewrite`
    // (strip, then set the forwarding and identity headers). Decision: `decision::decide_now`,
    // for the subrequest nginx's `auth_request` sends for that request (deploy/nginx): the
    // description rebuilt, admission, the forwarded-differently checks, the answer's headers.
    // The parsing of the request by Pingora and the writing of the answer are common to both
    // and not here (a proxied request also has the upstream's round trip; `make bench-load`).
    let mut group = c.benchmark_group("request");
    let token = token(Algorithm::RS256, "test-rsa-1", "rsa-private.pem");
    let client = [
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("cookie", "session=3f0f1c1d2e3f; theme=dark"),
        ("x-request-id", "7d1c4b2a-9e0f-4c51-8a6b-2f3e4d5c6b7a"),
    ];
    let bearer = format!("Bearer {token}");
    let mut proxied = RequestHeader::build("GET", b"/orders/42/items?limit=10", None).unwrap();
    proxied.insert_header("host", "api.example.com").unwrap();
    for (n, v) in client {
        proxied.insert_header(n, v).unwrap();
    }
    proxied.insert_header("authorization", &bearer).unwrap();
    let mut ask = RequestHeader::build("GET", b"/_portcullis", None).unwrap();
    for (n, v) in [
        ("host", "127.0.0.1:9191"),
        ("x-original-uri", "/orders/42/items?limit=10"),
        ("x-original-method", "GET"),
        ("x-original-host", "api.example.com"),
    ] {
        ask.insert_header(n, v).unwrap();
    }
    for (n, v) in client {
        ask.insert_header(n, v).unwrap();
    }
    ask.insert_header("authorization", &bearer).unwrap();
    let decision = portcullis::config::load_str(
        &format!("{CONFIG}decision: {{ address: \"127.0.0.1:9191\", protocol: nginx, trusted_proxies: [127.0.0.1/32] }}\n"),
        &fixtures(),
    )
    .unwrap()
    .snapshot;
    let loopback = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    let downstream = portcullis::proxy::upstream::Downstream {
        peer_ip: loopback,
        tls: false,
        client_cert: None,
    };
    let proxy = |snapshot: &portcullis::snapshot::Snapshot| {
        let request_id = portcullis::request_id::from_request(&proxied.headers);
        let admitted = admit_now(
            &proxied,
            Transport::Plain,
            snapshot,
            now,
            CacheUse::Fill,
            &mut Silent,
        )
        .unwrap();
        let mut upstream = proxied.clone();
        let forward = portcullis::proxy::upstream::Forward {
            route: &snapshot.routes[admitted.routed.route],
            routed: &admitted.routed,
            path: &admitted.routed.path,
            principal: admitted.principal.as_deref(),
            request_id: &request_id,
        };
        portcullis::proxy::upstream::rewrite(&mut upstream, snapshot, &forward, &downstream)
            .unwrap();
        upstream
    };
    assert!(proxy(&decision).headers.contains_key("x-auth-subject"));
    group.bench_function("proxied", |b| b.iter(|| proxy(black_box(&decision))));
    let decide = || portcullis::decision::decide_now(black_box(&decision), &ask, loopback, now);
    assert_eq!(decide().status(), http::StatusCode::OK);
    group.bench_function("decision", |b| b.iter(decide));
    group.finish();

    c.bench_function("normalize_path", |b| {
        b.iter(|| normalize_path(black_box("/public/../orders//42/./items")))
    });
    // Everything before authentication on a common request: request line and host checks,
    // path normalisation (already normal here), route lookup.
    let plain = request("x.y.z");
    c.bench_function("route", |b| {
        b.iter(|| {
            portcullis::admission::route(black_box(&plain), black_box(&snapshot), &mut Silent)
        })
    });
    c.bench_function("route_lookup", |b| {
        let method = http::Method::GET;
        b.iter(|| {
            snapshot.route_table.lookup(
                black_box(Some("api.example.com")),
                black_box("/orders/42/items"),
                &method,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
