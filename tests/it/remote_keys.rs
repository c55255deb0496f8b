//! Remote issuer keys against a real local key server: discovery, rotation without outage,
//! unknown-kid floods, key-server failures, issuer isolation, readiness.

use std::net::SocketAddr;

use crate::support::keyserver::{
    fixture_jwks, renamed, rotated_jwks, rotating_jwks, KeyServer, Mode,
};
use crate::support::*;
use serde_json::{json, Value};

/// One issuer entry: (id, iss, key-source YAML lines).
fn gateway_config(echo: SocketAddr, issuers: &[(&str, String, String)]) -> String {
    let mut yaml = String::from("listeners: [{ name: test, address: \"{listen}\" }]\nissuers:\n");
    for (id, iss, source) in issuers {
        yaml.push_str(&format!(
            "  - id: {id}\n    issuer: \"{iss}\"\n    audiences: [\"{AUDIENCE}\"]\n    algorithms: [RS256, ES256]\n    {source}\n    jwks_refresh: {{ unknown_kid_cooldown: 30s }}\n"
        ));
    }
    yaml.push_str(&format!(
        "upstreams: [{{ id: echo, url: \"http://{echo}\" }}]\nroutes:\n  - {{ id: api, match: {{ path_prefix: /api }}, upstream: echo }}\n"
    ));
    yaml
}

fn claims_for(iss: &str) -> Value {
    let mut c = claims("");
    c["iss"] = json!(iss);
    c
}

/// Wait until issuer `index` has made at least `attempts` fetch attempts.
async fn fetched(gw: &TestGateway, index: usize, attempts: u64) {
    let mut status = gw.snapshots.current().issuers[index].keys.status().unwrap();
    status.wait_for(|s| s.attempts >= attempts).await.unwrap();
}

async fn get(gw: &TestGateway, token: &str) -> reqwest::Response {
    client()
        .get(gw.url("/api/x"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A gateway with one issuer `iss` whose keys come from `server`'s JWKS URL, keys loaded once.
async fn jwks_uri_gateway(server: &KeyServer, iss: &str) -> TestGateway {
    let echo = echo_upstream().await;
    let source = format!("jwks_uri: \"{}\"", server.jwks_url());
    let gw = TestGateway::start(&gateway_config(echo, &[("idp", iss.into(), source)]));
    fetched(&gw, 0, 1).await;
    gw
}

async fn discovery_gateway(server: &KeyServer) -> TestGateway {
    let echo = echo_upstream().await;
    TestGateway::start(&gateway_config(
        echo,
        &[("idp", server.issuer(), "discovery: true".into())],
    ))
}

#[tokio::test]
async fn discovery_resolves_the_jwks_url() {
    let server = KeyServer::start(fixture_jwks()).await;
    let gw = discovery_gateway(&server).await;
    fetched(&gw, 0, 1).await;
    assert!(gw.snapshots.current().keys_ready());
    assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (1, 1));
    let resp = get(&gw, &Issuer::rsa(&claims_for(&server.issuer()))).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn discovery_with_a_mismatched_issuer_is_refused() {
    let server = KeyServer::start(fixture_jwks()).await;
    server.claim_issuer("https://evil.example.com");
    let gw = discovery_gateway(&server).await;
    fetched(&gw, 0, 1).await;
    assert!(!gw.snapshots.current().keys_ready());
    assert_eq!(
        server.jwks_fetches(),
        0,
        "the JWKS of a mismatched issuer is never fetched"
    );
    let resp = get(&gw, &Issuer::rsa(&claims_for(&server.issuer()))).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
}

#[tokio::test]
async fn readiness_is_false_until_keys_load_and_true_after() {
    let server = KeyServer::start(fixture_jwks()).await;
    server.set_mode(Mode::Fail);
    let gw = discovery_gateway(&server).await;
    fetched(&gw, 0, 1).await;
    assert!(!gw.snapshots.current().keys_ready());
    let token = Issuer::rsa(&claims_for(&server.issuer()));
    assert_eq!(
        get(&gw, &token).await.status(),
        503,
        "not 401: the token was never checked"
    );
    server.set_mode(Mode::Serve);
    let mut status = gw.snapshots.current().issuers[0].keys.status().unwrap();
    status.wait_for(|s| s.successes >= 1).await.unwrap(); // the backoff retry
    assert!(gw.snapshots.current().keys_ready());
    assert_eq!(get(&gw, &token).await.status(), 200);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_on_its_first_request() {
    let server = KeyServer::start(fixture_jwks()).await;
    let iss = "https://idp.rotating.test";
    let gw = jwks_uri_gateway(&server, iss).await;
    assert_eq!(get(&gw, &Issuer::rsa(&claims_for(iss))).await.status(), 200);

    // The IdP rotates: it now publishes test-rsa-2 (and still test-rsa-1).
    server.serve(rotating_jwks());
    let rotated = Issuer::rsa_untrusted("test-rsa-2", &claims_for(iss));
    assert_eq!(
        get(&gw, &rotated).await.status(),
        200,
        "no restart, no 401 window"
    );
    assert_eq!(server.jwks_fetches(), 2);
    assert!(
        !server.saw_credentials(),
        "a client's token reached the key endpoint"
    );
}

#[tokio::test]
async fn a_burst_of_random_unknown_kids_causes_a_handful_of_fetches() {
    let server = KeyServer::start(fixture_jwks()).await;
    let iss = "https://idp.flooded.test";
    let gw = jwks_uri_gateway(&server, iss).await;
    let client = client();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..200 {
        let token = Issuer::rsa_untrusted(
            &format!("bogus-{i}-{}", fastrand::u64(..)),
            &claims_for(iss),
        );
        let req = client.get(gw.url("/api/x")).bearer_auth(token);
        requests.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    let fetches = server.jwks_fetches();
    assert!(fetches <= 3, "{fetches} fetches for 200 unknown kids");
}

#[tokio::test]
async fn a_failing_or_garbage_key_server_keeps_valid_tokens_working() {
    let server = KeyServer::start(fixture_jwks()).await;
    let iss = "https://idp.flaky.test";
    let gw = jwks_uri_gateway(&server, iss).await;
    let valid = Issuer::rsa(&claims_for(iss));

    for mode in [Mode::Fail, Mode::Garbage] {
        server.set_mode(mode);
        let before = gw.snapshots.current().issuers[0]
            .keys
            .status()
            .unwrap()
            .borrow()
            .attempts;
        // An unknown kid asks for a refresh (inside the cooldown, the backoff retry comes instead);
        // either way the next fetch fails.
        let unknown = Issuer::rsa_untrusted(&format!("new-{mode:?}"), &claims_for(iss));
        assert_eq!(get(&gw, &unknown).await.status(), 401);
        fetched(&gw, 0, before + 1).await;
        assert!(
            gw.snapshots.current().keys_ready(),
            "{mode:?}: a failed fetch never empties the key set"
        );
        assert_eq!(
            get(&gw, &valid).await.status(),
            200,
            "{mode:?}: last good keys still serve"
        );
    }
}

#[tokio::test]
async fn a_bad_key_in_the_jwks_does_not_stop_the_others() {
    let mut jwks = fixture_jwks();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"kty": "RSA", "kid": "broken", "n": 7}));
    let server = KeyServer::start(jwks).await;
    let iss = "https://idp.partial.test";
    let gw = jwks_uri_gateway(&server, iss).await;
    assert_eq!(get(&gw, &Issuer::rsa(&claims_for(iss))).await.status(), 200);
    assert_eq!(get(&gw, &Issuer::ec(&claims_for(iss))).await.status(), 200);
}

#[tokio::test]
async fn an_oversized_jwks_is_refused() {
    let mut jwks = fixture_jwks();
    for i in 0..4 {
        let copy = renamed(&rotated_jwks(), 0, &format!("copy-{i}"))["keys"][0].clone();
        jwks["keys"].as_array_mut().unwrap().push(copy);
    }
    assert!(jwks.to_string().len() > 2048);
    let server = KeyServer::start(jwks).await;
    let echo = echo_upstream().await;
    let iss = "https://idp.huge.test";
    let source = format!(
        "jwks_uri: \"{}\"\n    jwks_refresh: {{ max_response_bytes: 1024 }}",
        server.jwks_url()
    );
    let yaml = gateway_config(echo, &[("idp", iss.into(), source)])
        .replace("\n    jwks_refresh: { unknown_kid_cooldown: 30s }", "");
    let gw = TestGateway::start(&yaml);
    fetched(&gw, 0, 1).await;
    assert_eq!(server.jwks_fetches(), 1);
    assert!(
        !gw.snapshots.current().keys_ready(),
        "the JWKS exceeds the 1 KiB cap"
    );
}

#[tokio::test]
async fn two_issuers_with_overlapping_kids_stay_isolated() {
    // Both servers publish a key with kid "shared", but different keys.
    let a = KeyServer::start(renamed(&fixture_jwks(), 0, "shared")).await;
    let b = KeyServer::start(renamed(&rotated_jwks(), 0, "shared")).await;
    let echo = echo_upstream().await;
    let (iss_a, iss_b) = ("https://a.test", "https://b.test");
    let gw = TestGateway::start(&gateway_config(
        echo,
        &[
            ("a", iss_a.into(), format!("jwks_uri: \"{}\"", a.jwks_url())),
            ("b", iss_b.into(), format!("jwks_uri: \"{}\"", b.jwks_url())),
        ],
    ));
    fetched(&gw, 0, 1).await;
    fetched(&gw, 1, 1).await;
    let key_a = |iss: &str| {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(
            &std::fs::read(fixtures().join("rsa-private.pem")).unwrap(),
        )
        .unwrap();
        Issuer::sign(
            jsonwebtoken::Algorithm::RS256,
            Some("shared"),
            &key,
            &claims_for(iss),
        )
    };
    let key_b = |iss: &str| Issuer::rsa_untrusted("shared", &claims_for(iss));
    assert_eq!(get(&gw, &key_a(iss_a)).await.status(), 200);
    assert_eq!(get(&gw, &key_b(iss_b)).await.status(), 200);
    assert_eq!(
        get(&gw, &key_b(iss_a)).await.status(),
        401,
        "b's key must not verify a's tokens"
    );
    assert_eq!(
        get(&gw, &key_a(iss_b)).await.status(),
        401,
        "a's key must not verify b's tokens"
    );
}

#[tokio::test]
async fn redirects_to_another_host_are_not_followed() {
    let server = KeyServer::start(fixture_jwks()).await;
    server.set_mode(Mode::RedirectElsewhere);
    let iss = "https://idp.redirecting.test";
    let gw = jwks_uri_gateway(&server, iss).await;
    assert_eq!(
        server.jwks_fetches(),
        0,
        "the redirect target must not be fetched"
    );
    assert!(!gw.snapshots.current().keys_ready());
}
