//! Opaque tokens (RFC 7662 introspection) against a real authorization server (oidc-provider,
//! tests/support/authserver): active tokens forwarded and cached, a token revoked at the server
//! (RFC 7009) refused once its cache entry ends, inactive answers cached, and an outage of the
//! endpoint served from the cache, with `503` for tokens it does not hold.

use crate::support::authserver::AuthServer;
use crate::support::*;
use serde_json::Value;

/// The standard configuration with a second issuer, the authorization server, whose opaque
/// tokens are introspected (its own client credentials in a file), on the `orders-read` route.
fn gateway(
    server: &AuthServer,
    echo: std::net::SocketAddr,
    dir: &std::path::Path,
) -> (TestGateway, String) {
    let secret = dir.join("introspection-secret");
    std::fs::write(&secret, "portcullis-secret\n").unwrap();
    let issuer = format!(
        "  - id: as
    issuer: \"{issuer}\"
    token_format: opaque
    audiences: [\"{AUDIENCE}\"]
    introspection:
      endpoint: \"{issuer}/token/introspection\"
      client_id: portcullis
      client_secret_file: \"{secret}\"
      max_ttl: 2s
      inactive_ttl: 60s
",
        issuer = server.issuer,
        secret = secret.display()
    );
    let yaml = config(echo, closed_port(), closed_port())
        .replacen("issuers:\n", &format!("issuers:\n{issuer}"), 1)
        .replacen("      issuers: [corp]\n", "      issuers: [corp, as]\n", 1);
    (TestGateway::start(&yaml), yaml)
}

async fn status(gw: &TestGateway, token: &str) -> (u16, Option<String>) {
    let resp = client()
        .get(gw.url("/orders/1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), retry)
}

/// `portcullis explain` of `GET /orders/1` with `token`, on the running gateway's configuration.
fn explain_cli(yaml: &str, dir: &tempfile::TempDir, token: &str) -> (Option<i32>, String) {
    let config = dir.path().join("cli-gateway.yaml");
    let yaml = yaml.replace("{listen}", "127.0.0.1:8080").replace(
        "jwks_file: jwks.json",
        &format!("jwks_file: \"{}\"", fixtures().join("jwks.json").display()),
    );
    std::fs::write(&config, yaml).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let out = assert_cmd::Command::cargo_bin("portcullis")
        .unwrap()
        .args(["explain", "-c"])
        .arg(&config)
        .arg("--url=http://api.example.com/orders/1")
        .arg(format!("--token=@{}", token_file.display()))
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

fn counted(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_introspected_cached_revoked_and_survive_an_outage() {
    let server = AuthServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (gw, yaml) = gateway(&server, echo_upstream().await, dir.path());
    let active = r#"portcullis_introspection_requests_total{issuer="as",result="active"}"#;
    let inactive = r#"portcullis_introspection_requests_total{issuer="as",result="inactive"}"#;

    // Active: forwarded with the identity the server gave; the second request is a cache hit.
    let token = server
        .opaque_token("plain", "plain-secret", "read:orders")
        .await;
    let first: Value = client()
        .get(gw.url("/orders/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["headers"]["x-auth-client-id"][0], "plain", "{first}");
    assert_eq!(
        first["headers"]["x-auth-scopes"][0], "read:orders",
        "{first}"
    );
    assert_eq!(status(&gw, &token).await.0, 200);
    let metrics = gw.metrics_text().await;
    assert_eq!(counted(&metrics, active), 1, "{metrics}");
    let hits = r#"portcullis_introspection_cache_hits_total{issuer="as"}"#;
    assert!(counted(&metrics, hits) >= 1, "{metrics}");
    // A JWT of the other issuer on the same route is verified, never sent to the server.
    let jwt = Issuer::rsa(&claims("read:orders"));
    assert_eq!(status(&gw, &jwt).await.0, 200);
    // An under-scoped opaque token: 403, from the server's `scope`.
    let narrow = server
        .opaque_token("plain", "plain-secret", "write:orders")
        .await;
    assert_eq!(status(&gw, &narrow).await.0, 403);

    // Revoked at the server (RFC 7009): refused once the cache entry (max_ttl 2s) ends.
    server.revoke("plain", "plain-secret", &token).await;
    eventually(
        "the revoked token is refused",
        std::time::Duration::from_secs(15),
        || {
            let (gw, token) = (&gw, &token);
            async move { status(gw, token).await.0 == 401 }
        },
    )
    .await;
    // The inactive answer is kept: asking again does not call the server.
    assert_eq!(status(&gw, &token).await.0, 401);
    assert_eq!(counted(&gw.metrics_text().await, inactive), 1);

    // `portcullis explain` asks the route's introspecting issuer, as the gateway does.
    let (exit, text) = explain_cli(&yaml, &dir, &narrow);
    assert_eq!(exit, Some(15), "{text}");
    assert!(text.contains("pass  introspection"), "{text}");
    let (exit, text) = explain_cli(&yaml, &dir, &token);
    assert_eq!(exit, Some(13), "{text}");
    assert!(text.contains("FAIL  introspection inactive"), "{text}");

    // An outage: a token answered before is served from the cache; one never seen gets 503 with
    // Retry-After (it may be fine), not 401.
    let cached = server
        .opaque_token("plain", "plain-secret", "read:orders")
        .await;
    let unseen = server
        .opaque_token("plain", "plain-secret", "read:orders")
        .await;
    assert_eq!(status(&gw, &cached).await.0, 200);
    drop(server);
    assert_eq!(status(&gw, &cached).await.0, 200);
    assert_eq!(status(&gw, &unseen).await, (503, Some("5".to_owned())));
    let body: Value = client()
        .get(gw.url("/orders/1"))
        .bearer_auth(&unseen)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}

/// A gateway whose `orders-read` route also takes the opaque tokens of the server, described by
/// `introspection` (the issuer has `discovery: true`); one active token is forwarded after one
/// introspection call.
async fn an_active_token_passes(server: &AuthServer, introspection: &str) {
    let issuer = format!(
        "  - {{ id: as, issuer: \"{}\", discovery: true, token_format: opaque, audiences: [\"{AUDIENCE}\"], introspection: {{ {introspection} }} }}\n",
        server.issuer
    );
    let yaml = config(echo_upstream().await, closed_port(), closed_port())
        .replacen("issuers:\n", &format!("issuers:\n{issuer}"), 1)
        .replacen("      issuers: [corp]\n", "      issuers: [corp, as]\n", 1);
    let gw = TestGateway::start(&yaml);
    let token = server
        .opaque_token("plain", "plain-secret", "read:orders")
        .await;
    assert_eq!(status(&gw, &token).await.0, 200);
    let metrics = gw.metrics_text().await;
    let active = r#"portcullis_introspection_requests_total{issuer="as",result="active"}"#;
    assert_eq!(counted(&metrics, active), 1, "{metrics}");
}

/// Without `endpoint`, an issuer with `discovery: true` is introspected at its discovery
/// document's `introspection_endpoint` (RFC 8414), found on first use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_introspection_endpoint_can_come_from_discovery() {
    let server = AuthServer::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("introspection-secret");
    std::fs::write(&secret, "portcullis-secret").unwrap();
    let introspection = format!(
        "client_id: portcullis, client_secret_file: \"{}\"",
        secret.display()
    );
    an_active_token_passes(&server, &introspection).await;
}

/// `auth: private_key_jwt` (RFC 7523): the gateway authenticates to the introspection endpoint
/// with a client assertion signed by its private key (tests/fixtures/ec-private.pem, whose
/// public key the authorization server holds for the client `portcullis-jwt`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_can_authenticate_with_a_signed_client_assertion() {
    let server = AuthServer::start();
    an_active_token_passes(
        &server,
        "client_id: portcullis-jwt, auth: private_key_jwt, private_key_file: ec-private.pem, key_id: test-ec-1",
    )
    .await;
}

/// From the real server: an opaque token that expired (three seconds of life) is refused once its
/// cache entry ends (the entry never outlives `exp`); a DPoP-bound opaque token (the answer
/// carries `cnf.jkt`) is accepted only with a proof by its key, as a JWT would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_dpop_bound_opaque_tokens_are_checked_like_jwts() {
    let server = AuthServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = gateway(&server, echo_upstream().await, dir.path());
    let short = server
        .opaque_token_for(
            "https://short-api.test",
            "plain",
            "plain-secret",
            "read:orders",
            None,
        )
        .await;
    assert_eq!(status(&gw, &short).await.0, 200);
    eventually(
        "the expired token is refused",
        std::time::Duration::from_secs(15),
        || {
            let (gw, short) = (&gw, &short);
            async move { status(gw, short).await.0 == 401 }
        },
    )
    .await;

    let client_key = crate::dpop::DpopClient::new();
    let for_token_endpoint =
        client_key.proof("POST", &format!("{}/token", server.issuer), "", |c| {
            c.as_object_mut().unwrap().remove("ath");
        });
    let bound = server
        .opaque_token_for(
            "https://opaque-api.test",
            "dpop",
            "dpop-secret",
            "read:orders",
            Some(&for_token_endpoint),
        )
        .await;
    let htu = format!("http://{}/orders/1", gw.addr);
    let with_proof = client()
        .get(gw.url("/orders/1"))
        .header("authorization", format!("DPoP {bound}"))
        .header("dpop", client_key.proof("GET", &htu, &bound, |_| {}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_proof.status(), 200);
    assert_eq!(
        status(&gw, &bound).await.0,
        401,
        "a DPoP-bound token as Bearer"
    );
}
