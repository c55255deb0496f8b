//! Every RFC 6750 rejection, with its status and WWW-Authenticate value, on the real gateway.

use crate::support::*;
use serde_json::json;

const INVALID_TOKEN: &str = "Bearer realm=\"portcullis\", error=\"invalid_token\"";

async fn status_and_challenge(gw: &TestGateway, auth: Option<&str>) -> (u16, String) {
    let mut req = client().get(gw.url("/orders/1"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (resp.status().as_u16(), challenge)
}

async fn assert_invalid_token(token: String) {
    let gw = standard_gateway().await;
    let (status, challenge) = status_and_challenge(&gw, Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, challenge.as_str()), (401, INVALID_TOKEN));
}

#[tokio::test]
async fn missing_token_is_401_without_error_code() {
    let gw = standard_gateway().await;
    assert_eq!(
        status_and_challenge(&gw, None).await,
        (401, "Bearer realm=\"portcullis\"".into())
    );
}

#[tokio::test]
async fn access_token_in_query_is_not_a_credential() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders"));
    let resp = client()
        .get(gw.url(&format!("/orders/1?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\""
    );
}

#[tokio::test]
async fn expired_token_is_401() {
    let mut c = claims("read:orders");
    c["exp"] = json!(now() - 120);
    c["iat"] = json!(now() - 600);
    assert_invalid_token(Issuer::rsa(&c)).await;
}

#[tokio::test]
async fn token_not_yet_valid_is_401() {
    let mut c = claims("read:orders");
    c["nbf"] = json!(now() + 600);
    assert_invalid_token(Issuer::rsa(&c)).await;
}

#[tokio::test]
async fn bad_signature_is_401() {
    assert_invalid_token(Issuer::rsa_untrusted("test-rsa-1", &claims("read:orders"))).await;
}

#[tokio::test]
async fn tampered_payload_is_401() {
    let token = Issuer::rsa(&claims("read:orders"));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut c = claims("read:orders admin");
    c["sub"] = json!("root");
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string());
    assert_invalid_token(parts.join(".")).await;
}

#[tokio::test]
async fn unknown_kid_is_401() {
    assert_invalid_token(Issuer::rsa_untrusted("no-such-kid", &claims("read:orders"))).await;
}

#[tokio::test]
async fn alg_none_is_401() {
    assert_invalid_token(Issuer::unsigned(&claims("read:orders"))).await;
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_401() {
    assert_invalid_token(Issuer::hs256_with_rsa_public_key(&claims("read:orders"))).await;
}

#[tokio::test]
async fn wrong_issuer_is_401() {
    let mut c = claims("read:orders");
    c["iss"] = json!("https://evil.example.com");
    assert_invalid_token(Issuer::rsa(&c)).await;
}

#[tokio::test]
async fn audience_mismatch_is_401() {
    let mut c = claims("read:orders");
    c["aud"] = json!(["billing-api", "inventory-api"]);
    assert_invalid_token(Issuer::rsa(&c)).await;
}

#[tokio::test]
async fn garbage_token_is_401() {
    assert_invalid_token("not.a.jwt".into()).await;
}

#[tokio::test]
async fn insufficient_scope_is_403_naming_the_scope() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders-archive write:orders"));
    let (status, challenge) = status_and_challenge(&gw, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 403);
    assert_eq!(
        challenge,
        "Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"read:orders\""
    );
}

#[tokio::test]
async fn malformed_authorization_is_400_invalid_request() {
    let gw = standard_gateway().await;
    for bad in ["Bearer", "Bearer    "] {
        let (status, challenge) = status_and_challenge(&gw, Some(bad)).await;
        assert_eq!(
            (status, challenge.as_str()),
            (
                400,
                "Bearer realm=\"portcullis\", error=\"invalid_request\""
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn another_scheme_is_401_without_an_error_code() {
    // RFC 6750 §3.1: a request using an unsupported authentication method is answered like one
    // without credentials: a challenge with no error code.
    let gw = standard_gateway().await;
    // (`DPoP` is supported: tests/it/dpop.rs.)
    for other in ["Basic dXNlcjpwYXNz", "Token abc", "Negotiate"] {
        let (status, challenge) = status_and_challenge(&gw, Some(other)).await;
        assert_eq!(
            (status, challenge.as_str()),
            (401, "Bearer realm=\"portcullis\""),
            "{other}"
        );
    }
    let text = gw.metrics_text().await;
    assert!(
        text.contains("reason=\"unsupported_scheme\""),
        "the precise reason is counted: {text}"
    );
}

#[tokio::test]
async fn a_token_that_is_not_base64url_jws_is_401_invalid_token() {
    // RFC 6750 §3.1: "invalid_token: The access token provided is expired, revoked, malformed".
    let gw = standard_gateway().await;
    for bad in [
        "Bearer *",
        "Bearer a!b.c.d",
        "Bearer a b",
        "Bearer abc.d*f.ghi",
    ] {
        let (status, challenge) = status_and_challenge(&gw, Some(bad)).await;
        assert_eq!(
            (status, challenge.as_str()),
            (401, "Bearer realm=\"portcullis\", error=\"invalid_token\""),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn two_authorization_headers_are_400() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders"));
    let resp = client()
        .get(gw.url("/orders/1"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\", error=\"invalid_request\""
    );
}

#[tokio::test]
async fn oversized_token_is_400() {
    let gw = standard_gateway().await;
    let huge = "a".repeat(9 * 1024);
    let (status, _) = status_and_challenge(&gw, Some(&format!("Bearer {huge}"))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn rejection_body_is_generic_json() {
    let gw = standard_gateway().await;
    let mut c = claims("read:orders");
    c["aud"] = json!("billing-api");
    let resp = client()
        .get(gw.url("/orders/1"))
        .bearer_auth(Issuer::rsa(&c))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert!(!body["error_description"].as_str().unwrap().contains("aud"));
}

#[tokio::test]
async fn a_token_with_an_unknown_crit_header_is_401() {
    let header = json!({"alg": "RS256", "kid": "test-rsa-1", "crit": ["exp"], "exp": 1});
    let token = Issuer::rsa_with_header(&header, &claims("read:orders"));
    // The same construction without `crit` is accepted, so the refusal is the crit check's.
    let plain = Issuer::rsa_with_header(
        &json!({"alg": "RS256", "kid": "test-rsa-1"}),
        &claims("read:orders"),
    );
    let gw = standard_gateway().await;
    assert_eq!(
        status_and_challenge(&gw, Some(&format!("Bearer {plain}")))
            .await
            .0,
        200
    );
    assert_eq!(
        status_and_challenge(&gw, Some(&format!("Bearer {token}"))).await,
        (401, INVALID_TOKEN.into())
    );
}

#[tokio::test]
async fn a_token_without_kid_is_verified_against_the_keys_that_fit() {
    let gw = standard_gateway().await;
    let no_kid = Issuer::rsa_with_header(&json!({"alg": "RS256"}), &claims("read:orders"));
    assert_eq!(
        status_and_challenge(&gw, Some(&format!("Bearer {no_kid}")))
            .await
            .0,
        200
    );
    let untrusted = {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(
            &std::fs::read(fixtures().join("rsa-other-private.pem")).unwrap(),
        )
        .unwrap();
        Issuer::sign(
            jsonwebtoken::Algorithm::RS256,
            None,
            &key,
            &claims("read:orders"),
        )
    };
    assert_eq!(
        status_and_challenge(&gw, Some(&format!("Bearer {untrusted}"))).await,
        (401, INVALID_TOKEN.into())
    );
}
