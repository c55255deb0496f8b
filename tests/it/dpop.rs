//! DPoP (RFC 9449) through the proxy: a DPoP-bound access token (`cnf.jkt`) is accepted with
//! `Authorization: DPoP` and a fresh proof, signed by the key the token names, for this very
//! request; each check of §4.3 failing alone is refused with its own reason, and the right
//! challenge (§7.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::*;

const CHALLENGE: &str = "DPoP algs=\"ES256 ES384 EdDSA PS256 RS256\", error=\"invalid_dpop_proof\"";
const INVALID_TOKEN: &str = "Bearer realm=\"portcullis\", error=\"invalid_token\"";

/// A client's DPoP key (P-256), made for the test.
pub struct DpopClient {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
}

impl DpopClient {
    pub fn new() -> DpopClient {
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        DpopClient {
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .unwrap(),
        }
    }

    fn jwk(&self) -> Value {
        use aws_lc_rs::signature::KeyPair;
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    /// RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
    pub fn jkt(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    /// A proof for `method` `htu` with `token`, then `edit`ed.
    pub fn proof(
        &self,
        method: &str,
        htu: &str,
        token: &str,
        edit: impl FnOnce(&mut Value),
    ) -> String {
        static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let ath = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            token.as_bytes(),
        ));
        let jti = JTI.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut claims = json!({
            "jti": format!("proof-{jti}"), "htm": method, "htu": htu, "iat": now(), "ath": ath,
        });
        edit(&mut claims);
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk() });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// (status, challenge) of `GET path` with `authorization` and the `DPoP` header `proof`.
async fn call(
    gw: &TestGateway,
    path: &str,
    authorization: &str,
    proof: Option<&str>,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut req = client()
        .get(gw.url(path))
        .header("authorization", authorization);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    for (n, v) in extra {
        req = req.header(*n, *v);
    }
    let resp = req.send().await.unwrap();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (resp.status().as_u16(), challenge)
}

#[tokio::test]
async fn a_dpop_bound_token_needs_a_fresh_proof_by_its_key_for_this_request() {
    let gw = standard_gateway().await;
    let client_key = DpopClient::new();
    let mut bound = claims("read:orders");
    bound["cnf"] = json!({ "jkt": client_key.jkt() });
    let token = Issuer::rsa(&bound);
    let dpop = format!("DPoP {token}");
    let htu = format!("http://{}/orders/1", gw.addr);
    let proof = |edit: fn(&mut Value)| client_key.proof("GET", &htu, &token, edit);

    // A fresh proof: forwarded, with the token's identity (query ignored by htu).
    let fresh = proof(|_| {});
    assert_eq!(
        call(&gw, "/orders/1?limit=10", &dpop, Some(&fresh), &[]).await,
        (200, String::new())
    );
    // RFC 9449 §11.1: the same proof again is a replay.
    assert_eq!(
        call(&gw, "/orders/1", &dpop, Some(&fresh), &[]).await,
        (401, CHALLENGE.to_owned())
    );
    // Each check of §4.3 failing alone.
    let another = format!("http://{}/orders/2", gw.addr);
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no proof", None, CHALLENGE),
        (
            "htu of another resource",
            Some(client_key.proof("GET", &another, &token, |_| {})),
            CHALLENGE,
        ),
        (
            "htm of another method",
            Some(client_key.proof("POST", &htu, &token, |_| {})),
            CHALLENGE,
        ),
        (
            "iat ten minutes old",
            Some(proof(|c| c["iat"] = json!(now() - 600))),
            CHALLENGE,
        ),
        (
            "ath of another token",
            Some(proof(|c| c["ath"] = json!("bm90IHRoaXMgdG9rZW4"))),
            CHALLENGE,
        ),
        // Signed by another key than the token's cnf.jkt: the token is not this client's.
        (
            "another key",
            Some(DpopClient::new().proof("GET", &htu, &token, |_| {})),
            INVALID_TOKEN,
        ),
    ];
    for (what, proof, challenge) in cases {
        assert_eq!(
            call(&gw, "/orders/1", &dpop, proof.as_deref(), &[]).await,
            (401, challenge.to_owned()),
            "{what}"
        );
    }
    // RFC 9449 §7.2: a DPoP-bound token is no bearer token.
    assert_eq!(
        call(
            &gw,
            "/orders/1",
            &format!("Bearer {token}"),
            Some(&proof(|_| {})),
            &[]
        )
        .await,
        (401, INVALID_TOKEN.to_owned())
    );
    // The DPoP scheme carries DPoP-bound tokens only.
    let plain = Issuer::rsa(&claims("read:orders"));
    let plain_proof = client_key.proof("GET", &htu, &plain, |_| {});
    assert_eq!(
        call(
            &gw,
            "/orders/1",
            &format!("DPoP {plain}"),
            Some(&plain_proof),
            &[]
        )
        .await,
        (401, INVALID_TOKEN.to_owned())
    );
    // A request refused after its proof was checked (here: scope) does not spend the proof:
    // proofs are remembered only for requests that passed everything else.
    let mut narrow = claims("profile");
    narrow["cnf"] = json!({ "jkt": client_key.jkt() });
    let narrow = Issuer::rsa(&narrow);
    let narrow_proof = client_key.proof("GET", &htu, &narrow, |_| {});
    for _ in 0..2 {
        let (status, challenge) = call(
            &gw,
            "/orders/1",
            &format!("DPoP {narrow}"),
            Some(&narrow_proof),
            &[],
        )
        .await;
        assert_eq!(status, 403, "{challenge}");
    }
    // The proof does not reach the backend with the token's identity.
    let echoed: Value = client()
        .get(gw.url("/orders/1"))
        .header("authorization", &dpop)
        .header("dpop", proof(|_| {}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(echoed["headers"].get("dpop").is_none(), "{echoed}");
    let metrics = gw.metrics_text().await;
    for reason in [
        "dpop_proof_replayed",
        "dpop_proof_missing",
        "dpop_proof_htu",
        "dpop_proof_htm",
        "dpop_proof_iat",
        "dpop_proof_ath",
        "dpop_key_mismatch",
        "dpop_bound_token",
        "dpop_unbound_token",
    ] {
        let series = format!(
            r#"portcullis_rejections_total{{mode="proxy",reason="{reason}",route="orders-read"}} 1"#
        );
        assert!(metrics.contains(&series), "{series}\n{metrics}");
    }
}

/// Behind a trusted proxy that terminated TLS (`X-Forwarded-Proto: https`), the proof names
/// the `https` URI the client used; from anyone else that header changes nothing. With
/// `dpop: required`, a bearer token of that issuer is refused.
#[tokio::test]
async fn the_proof_names_the_scheme_the_client_used_and_dpop_can_be_required() {
    let echo = echo_upstream().await;
    let yaml = config(echo, closed_port(), closed_port()).replacen(
        "    leeway: 30s\n",
        "    leeway: 30s\n    dpop: required\n",
        1,
    );
    let trusting = TestGateway::start(&format!(
        "{yaml}forwarding: {{ trusted_proxies: [\"127.0.0.1\"] }}\n"
    ));
    let client_key = DpopClient::new();
    let mut bound = claims("read:orders");
    bound["cnf"] = json!({ "jkt": client_key.jkt() });
    let token = Issuer::rsa(&bound);
    let dpop = format!("DPoP {token}");
    let https = format!("https://{}/orders/1", trusting.addr);
    let https_proof = client_key.proof("GET", &https, &token, |_| {});
    let proto = [("x-forwarded-proto", "https")];
    assert_eq!(
        call(&trusting, "/orders/1", &dpop, Some(&https_proof), &proto).await,
        (200, String::new())
    );
    // Not a trusted proxy: the request came over plain HTTP, which the proof does not name.
    let untrusting = TestGateway::start(&yaml);
    let https = format!("https://{}/orders/1", untrusting.addr);
    let https_proof = client_key.proof("GET", &https, &token, |_| {});
    assert_eq!(
        call(&untrusting, "/orders/1", &dpop, Some(&https_proof), &proto).await,
        (401, CHALLENGE.to_owned())
    );
    // `dpop: required`: a bearer token of this issuer is refused.
    let plain = Issuer::rsa(&claims("read:orders"));
    assert_eq!(
        call(
            &untrusting,
            "/orders/1",
            &format!("Bearer {plain}"),
            None,
            &[]
        )
        .await,
        (401, INVALID_TOKEN.to_owned())
    );
}

/// RFC 9449 end to end with a real authorization server (oidc-provider, tests/support/authserver):
/// its DPoP-bound client gets a token naming its key (`cnf.jkt`, `token_type: DPoP`), which the
/// gateway (keys by discovery) accepts with a fresh proof by that key, and refuses as a bearer
/// token or with another key's proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens_of_a_real_authorization_server() {
    let server = crate::support::authserver::AuthServer::start();
    let echo = echo_upstream().await;
    let issuer = format!(
        "  - {{ id: as, issuer: \"{}\", discovery: true, audiences: [\"{AUDIENCE}\"], algorithms: [RS256], token_type: at+jwt }}\n",
        server.issuer
    );
    let yaml = config(echo, closed_port(), closed_port())
        .replacen("issuers:\n", &format!("issuers:\n{issuer}"), 1)
        .replacen("      issuers: [corp]\n", "      issuers: [corp, as]\n", 1);
    let gw = TestGateway::start(&yaml);
    gw.wait_ready().await;
    let client_key = DpopClient::new();
    let token_endpoint = format!("{}/token", server.issuer);
    let for_token_endpoint = client_key.proof("POST", &token_endpoint, "", |c| {
        c.as_object_mut().unwrap().remove("ath");
    });
    let token = server
        .token_with(
            "dpop",
            "dpop-secret",
            "read:orders",
            None,
            Some(&for_token_endpoint),
        )
        .await;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["cnf"]["jkt"], json!(client_key.jkt()), "{claims}");

    let htu = format!("http://{}/orders/1", gw.addr);
    let dpop = format!("DPoP {token}");
    let fresh = client_key.proof("GET", &htu, &token, |_| {});
    assert_eq!(
        call(&gw, "/orders/1", &dpop, Some(&fresh), &[]).await,
        (200, String::new())
    );
    let again = client_key.proof("GET", &htu, &token, |_| {});
    assert_eq!(
        call(
            &gw,
            "/orders/1",
            &format!("Bearer {token}"),
            Some(&again),
            &[]
        )
        .await,
        (401, INVALID_TOKEN.to_owned())
    );
    let stranger = DpopClient::new().proof("GET", &htu, &token, |_| {});
    assert_eq!(
        call(&gw, "/orders/1", &dpop, Some(&stranger), &[]).await,
        (401, INVALID_TOKEN.to_owned())
    );
}

/// RFC 9449 §11.1 across replicas: with `dpop_proofs.share_through_redis` (and
/// `revocation.redis`), a proof accepted by one gateway is a replay at another (`SET NX`). When Redis is gone, each gateway's own memory
/// stands alone: a fresh proof still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_accepted_by_one_replica_is_a_replay_at_another() {
    use crate::support::redis::RedisServer;
    use crate::support::revocations::with_admin;
    let mut redis = RedisServer::start();
    let replica = |dir: &std::path::Path, echo: std::net::SocketAddr| {
        let yaml = with_admin(
            &config(echo, closed_port(), closed_port()),
            dir,
            &format!("redis: {{ url: \"{}\", timeout: 500ms }}", redis.url()),
        );
        TestGateway::start(&format!(
            "{yaml}dpop_proofs: {{ share_through_redis: true }}\n"
        ))
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(dir_a.path(), echo_upstream().await);
    let b = replica(dir_b.path(), echo_upstream().await);
    a.wait_ready().await;
    b.wait_ready().await;
    let client_key = DpopClient::new();
    let mut bound = claims("read:orders");
    bound["cnf"] = json!({ "jkt": client_key.jkt() });
    let token = Issuer::rsa(&bound);
    let dpop = format!("DPoP {token}");
    // The same request URI at both replicas (the proof names the host the client used).
    let host = "api.example.com";
    let htu = format!("http://{host}/orders/1");
    let proof = client_key.proof("GET", &htu, &token, |_| {});
    let with_host = [("host", host)];
    assert_eq!(
        call(&a, "/orders/1", &dpop, Some(&proof), &with_host).await,
        (200, String::new())
    );
    assert_eq!(
        call(&b, "/orders/1", &dpop, Some(&proof), &with_host).await,
        (401, CHALLENGE.to_owned())
    );
    // Redis gone: a fresh proof is accepted, on this replica's memory alone.
    redis.kill();
    let fresh = client_key.proof("GET", &htu, &token, |_| {});
    assert_eq!(
        call(&b, "/orders/1", &dpop, Some(&fresh), &with_host).await,
        (200, String::new())
    );
    assert_eq!(
        call(&b, "/orders/1", &dpop, Some(&fresh), &with_host).await,
        (401, CHALLENGE.to_owned())
    );
}

/// RFC 9449 §4.3 step 9 on a route without `match.host`: the host is whatever the client sends,
/// so a proof captured from another server that accepts the same tokens would name a host the
/// client can send here too. With `dpop_proofs.hosts`, only this gateway's hosts pass.
#[tokio::test]
async fn on_a_hostless_route_a_proof_must_name_one_of_the_gateways_hosts() {
    let yaml = config(echo_upstream().await, closed_port(), closed_port());
    let gw = TestGateway::start(&format!(
        "{yaml}dpop_proofs: {{ hosts: [\"api.example.com\", \"localhost:8080\"] }}\n"
    ));
    let client_key = DpopClient::new();
    let mut bound = claims("read:orders");
    bound["cnf"] = json!({ "jkt": client_key.jkt() });
    let token = Issuer::rsa(&bound);
    let dpop = format!("DPoP {token}");
    let (ours, theirs) = (
        "http://api.example.com/orders/1",
        "http://other-rs.example/orders/1",
    );
    let proof = |htu: &str| client_key.proof("GET", htu, &token, |_| {});
    let host = |h: &'static str| [("host", h)];
    assert_eq!(
        call(
            &gw,
            "/orders/1",
            &dpop,
            Some(&proof(ours)),
            &host("api.example.com")
        )
        .await,
        (200, String::new())
    );
    assert_eq!(
        call(
            &gw,
            "/orders/1",
            &dpop,
            Some(&proof(theirs)),
            &host("other-rs.example")
        )
        .await,
        (401, CHALLENGE.to_owned())
    );
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains(
            r#"portcullis_rejections_total{mode="proxy",reason="dpop_proof_htu",route="orders-read"} 1"#
        ),
        "{metrics}"
    );
}
