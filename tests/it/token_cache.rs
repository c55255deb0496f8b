//! The verified-token cache (on by default) never makes a refusal an admission: a cached token is
//! still refused once revoked, once expired, once its key is rotated out, and on a route whose
//! scopes it lacks.

use std::net::SocketAddr;

use portcullis::admission::{admit_now, CacheUse, Silent, Transport};
use portcullis::error::{GatewayError, TokenFault};
use serde_json::json;

use crate::support::keyserver::{fixture_jwks, rotated_jwks, KeyServer};
use crate::support::revocations::{revoke, with_admin};
use crate::support::*;

/// The proxy's cache counters, from `/metrics`.
async fn cache_events(gw: &TestGateway) -> (u64, u64) {
    let text = gw.metrics_text().await;
    let count = |event: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "portcullis_token_cache_events_total{{event=\"{event}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (count("hit"), count("miss"))
}

async fn get(gw: &TestGateway, host: &str, path: &str, token: &str) -> u16 {
    client()
        .get(gw.url(path))
        .header("host", host)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_cached_token_is_refused_on_the_next_request_once_revoked() {
    let echo = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(&with_admin(
        &config(echo, closed_port(), closed_port()),
        dir.path(),
        "",
    ));
    let mut c = claims("read:orders");
    c["jti"] = json!("cached-then-revoked");
    let token = Issuer::rsa(&c);
    assert_eq!(get(&gw, "api.example.com", "/orders/1", &token).await, 200);
    assert_eq!(get(&gw, "api.example.com", "/orders/1", &token).await, 200);
    assert_eq!(cache_events(&gw).await, (1, 1), "verified once, then a hit");
    revoke(&gw, json!({"type": "jti", "jti": "cached-then-revoked"})).await;
    assert_eq!(get(&gw, "api.example.com", "/orders/1", &token).await, 401);
    assert_eq!(cache_events(&gw).await, (2, 1), "refused on a cache hit");
}

#[tokio::test]
async fn a_cached_token_gets_403_on_a_route_needing_a_scope_it_lacks() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders"));
    assert_eq!(get(&gw, "api.example.com", "/orders/1", &token).await, 200);
    // The host route needs `admin` and a tenant scope: the cached verification does not carry
    // the first route's authorisation.
    assert_eq!(
        get(&gw, "admin.example.com", "/orders/1", &token).await,
        403
    );
    assert_eq!(cache_events(&gw).await, (1, 1));
}

#[test]
fn a_cached_token_is_refused_once_past_exp() {
    portcullis::install_crypto_provider();
    let yaml = config(closed_port(), closed_port(), closed_port())
        .replace("{listen}", "127.0.0.1:8080")
        .replace("leeway: 30s", "leeway: 0s");
    let snapshot = portcullis::config::load_str(&yaml, &fixtures())
        .unwrap()
        .snapshot;
    let t0 = now();
    let mut c = claims("read:orders");
    c["exp"] = json!(t0 + 10);
    let token = Issuer::rsa(&c);
    let mut req = pingora::http::RequestHeader::build("GET", b"/orders/1", None).unwrap();
    req.insert_header("host", "api.example.com").unwrap();
    req.insert_header("authorization", format!("Bearer {token}"))
        .unwrap();
    let admit = |at: i64| {
        admit_now(
            &req,
            Transport::Plain,
            &snapshot,
            at,
            CacheUse::Fill,
            &mut Silent,
        )
        .map(|_| ())
        .map_err(|r| r.error)
    };
    assert_eq!(admit(t0), Ok(()));
    assert_eq!(admit(t0 + 9), Ok(()));
    let cache = snapshot.token_cache.as_ref().unwrap().stats();
    assert_eq!((cache.hits, cache.misses), (1, 1));
    assert_eq!(
        admit(t0 + 10),
        Err(GatewayError::InvalidToken(TokenFault::Expired))
    );
}

#[tokio::test]
async fn a_rotated_out_key_ends_its_cached_tokens() {
    let server = KeyServer::start(fixture_jwks()).await;
    let iss = server.issuer();
    let echo: SocketAddr = echo_upstream().await;
    let yaml = format!(
        "listeners: [{{ name: test, address: \"{{listen}}\" }}]
issuers:
  - id: idp
    issuer: \"{iss}\"
    jwks_uri: \"{}\"
    audiences: [\"{AUDIENCE}\"]
    algorithms: [RS256]
upstreams: [{{ id: echo, url: \"http://{echo}\" }}]
routes: [{{ id: api, match: {{ path_prefix: /api }}, upstream: echo }}]
",
        server.jwks_url()
    );
    let gw = TestGateway::start(&yaml);
    let mut status = gw.snapshots.current().issuers[0].keys.status().unwrap();
    status.wait_for(|s| s.attempts >= 1).await.unwrap();
    let mut c = claims("");
    c["iss"] = json!(iss);
    let old = Issuer::rsa(&c);
    assert_eq!(get(&gw, "api.example.com", "/api/x", &old).await, 200);
    assert_eq!(get(&gw, "api.example.com", "/api/x", &old).await, 200);
    assert_eq!(cache_events(&gw).await, (1, 1));
    // The IdP rotates test-rsa-1 out; a token under the new key makes the gateway fetch.
    server.serve(rotated_jwks());
    let new = Issuer::rsa_untrusted("test-rsa-2", &c);
    assert_eq!(get(&gw, "api.example.com", "/api/x", &new).await, 200);
    // The old token's entry names a key its issuer no longer has: verified again, refused.
    assert_eq!(get(&gw, "api.example.com", "/api/x", &old).await, 401);
}

#[tokio::test]
async fn a_cache_hit_sets_the_same_identity_headers_as_the_verification() {
    let gw = standard_gateway().await;
    let mut c = claims("read:orders profile");
    c["client_id"] = json!("orders-ui");
    let token = Issuer::rsa(&c);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let resp = client()
            .get(gw.url("/orders/1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let echoed = echoed(resp).await;
        let headers: Vec<_> = [
            "x-auth-subject",
            "x-auth-client-id",
            "x-auth-scopes",
            "x-auth-issuer",
            "x-legacy-user",
        ]
        .into_iter()
        .map(|name| echoed.header(name))
        .collect();
        assert!(headers.iter().all(Option::is_some), "{headers:?}");
        seen.push(headers);
    }
    assert_eq!(
        cache_events(&gw).await,
        (1, 1),
        "the second request was a hit"
    );
    assert_eq!(seen[0], seen[1]);
}
