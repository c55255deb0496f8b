//! Token rules beyond the signature: the revocation horizon (`max_token_lifetime`), the RFC 9068
//! profile, per-route audiences, numeric subjects, and the configuration checks that keep a
//! route from failing open.

use crate::support::revocations::*;
use crate::support::*;
use portcullis::config::load_str;
use serde_json::{json, Value};

const DAY: i64 = 24 * 3600;

struct Setup {
    gw: TestGateway,
    _dir: tempfile::TempDir,
}

/// The standard configuration plus an RFC 9068 issuer, a billing route with its own audience,
/// and the admin API.
async fn gateway() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_upstream().await;
    let yaml = config(echo, closed_port(), closed_port())
        .replace(
            "upstreams:",
            &format!(
                r#"  - id: strict
    issuer: "https://strict.test"
    jwks_file: jwks.json
    audiences: ["{AUDIENCE}"]
    algorithms: [RS256]
    token_type: at+jwt
upstreams:"#
            ),
        )
        .replace(
            "routes:",
            r#"routes:
  - id: strict
    match: { path_prefix: /strict }
    upstream: echo
    auth: { issuers: [strict] }
  - id: billing
    match: { path_prefix: /billing }
    upstream: echo
    auth: { issuers: [corp], audiences: [billing-api] }"#,
        );
    let yaml = with_admin(&yaml, dir.path(), "max_token_lifetime: 24h");
    Setup {
        gw: TestGateway::start(&yaml),
        _dir: dir,
    }
}

fn with(mut c: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

#[tokio::test]
async fn tokens_outliving_max_token_lifetime_are_refused() {
    let s = gateway().await;
    let now = now();
    // A 48 h token would be accepted again once a 24 h revocation entry expired: refused.
    let long = Issuer::rsa(&with(
        claims("read:orders"),
        json!({"iat": now, "exp": now + 2 * DAY}),
    ));
    assert_eq!(status_of(&s.gw, "/orders/1", &long).await, 401);
    let no_iat = Issuer::rsa(&with(
        claims("read:orders"),
        json!({"iat": null, "exp": now + 2 * DAY}),
    ));
    assert_eq!(status_of(&s.gw, "/orders/1", &no_iat).await, 401);
    let day = Issuer::rsa(&with(
        claims("read:orders"),
        json!({"iat": now, "exp": now + DAY}),
    ));
    assert_eq!(status_of(&s.gw, "/orders/1", &day).await, 200);
    let text = s.gw.metrics_text().await;
    assert!(text.contains("reason=\"lifetime_too_long\""), "{text}");
}

#[tokio::test]
async fn revocations_outlive_every_token_they_cover() {
    let s = gateway().await;
    let now = now();
    let (code, _) = admin(
        &s.gw,
        reqwest::Method::POST,
        Some(ADMIN_TOKEN),
        Some(json!({"type": "subject", "issuer": "corp", "sub": "alice"})),
    )
    .await;
    assert_eq!(code, 201);
    let (_, list) = admin(&s.gw, reqwest::Method::GET, Some(ADMIN_TOKEN), None).await;
    let entry = &list["revocations"][0];
    let expires_at = entry["expires_at"].as_i64().unwrap();
    let cutoff = entry["issued_before"].as_i64().unwrap();
    // A token issued just before the cutoff lives at most 24 h and is accepted a leeway (30 s)
    // past its `exp`; its `iat` may itself be a leeway late.
    assert!(cutoff >= now);
    assert!(
        expires_at >= cutoff + DAY + 60,
        "entry expires at {expires_at}, cutoff {cutoff}"
    );
}

#[tokio::test]
async fn the_rfc_9068_profile_is_enforced_for_at_jwt_issuers() {
    let s = gateway().await;
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "test-rsa-1"});
    let base = with(claims("read:orders"), json!({"iss": "https://strict.test"}));
    let ok = Issuer::rsa_with_header(&header, &base);
    assert_eq!(status_of(&s.gw, "/strict", &ok).await, 200);
    // RFC 9068 §2.2: client_id, sub, iat and jti are REQUIRED; scope is a string.
    for broken in [
        json!({"client_id": null}),
        json!({"jti": null}),
        json!({"iat": null}),
        json!({"sub": null}),
        json!({"scope": ["read:orders"]}),
        json!({"scope": "read:orders\tprofile"}),
    ] {
        let token = Issuer::rsa_with_header(&header, &with(base.clone(), broken.clone()));
        assert_eq!(status_of(&s.gw, "/strict", &token).await, 401, "{broken}");
    }
    let text = s.gw.metrics_text().await;
    assert!(text.contains("reason=\"profile_violation\""), "{text}");
}

#[tokio::test]
async fn route_audiences_override_the_issuers() {
    let s = gateway().await;
    let orders = Issuer::rsa(&claims("read:orders"));
    let billing = Issuer::rsa(&with(claims("read:orders"), json!({"aud": "billing-api"})));
    // A token for orders does not open billing, though its issuer is the same.
    assert_eq!(status_of(&s.gw, "/billing/1", &orders).await, 401);
    assert_eq!(status_of(&s.gw, "/billing/1", &billing).await, 200);
    // And a billing token does not open orders.
    assert_eq!(status_of(&s.gw, "/orders/1", &billing).await, 401);
}

#[tokio::test]
async fn a_numeric_subject_is_its_decimal_text_for_headers_and_revocation() {
    let s = gateway().await;
    let token = Issuer::rsa(&with(
        claims("read:orders"),
        json!({"sub": 42, "client_id": 7, "iat": now() - 5}),
    ));
    let resp = client()
        .get(s.gw.url("/orders/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(echoed(resp).await.header("x-auth-subject").unwrap(), ["42"]);
    revoke(
        &s.gw,
        json!({"type": "subject", "issuer": "corp", "sub": "42"}),
    )
    .await;
    assert_eq!(status_of(&s.gw, "/orders/1", &token).await, 401);
    let other = Issuer::rsa(&with(
        claims("read:orders"),
        json!({"sub": 43, "client_id": 7, "iat": now() - 5}),
    ));
    assert_eq!(status_of(&s.gw, "/orders/1", &other).await, 200);
    revoke(
        &s.gw,
        json!({"type": "client", "issuer": "corp", "client_id": "7"}),
    )
    .await;
    assert_eq!(status_of(&s.gw, "/orders/1", &other).await, 401);
}

const BASE: &str = r#"
listeners:
  - name: http
    address: "127.0.0.1:8080"
issuers:
  - id: corp
    issuer: "https://idp.test"
    jwks_file: jwks.json
    audiences: [orders-api]
upstreams:
  - id: orders
    url: "http://127.0.0.1:9000"
routes:
  - id: orders
    match: { path_prefix: /orders }
    upstream: orders
"#;

fn errors(yaml: &str) -> Vec<String> {
    load_str(yaml, &fixtures())
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn empty_scope_lists_are_refused_where_they_are() {
    for list in ["all_of", "any_of"] {
        let yaml = format!("{BASE}    auth: {{ scopes: {{ {list}: [] }} }}\n");
        let errors = errors(&yaml);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("17:")
                && errors[0].contains(&format!("routes[0].auth.scopes.{list}")),
            "{errors:?}"
        );
    }
}

#[test]
fn empty_route_audiences_are_refused() {
    let errors = errors(&format!("{BASE}    auth: {{ audiences: [] }}\n"));
    assert!(errors[0].contains("routes[0].auth.audiences"), "{errors:?}");
}

#[test]
fn identity_header_names_with_underscores_are_refused() {
    let yaml = BASE.replace("routes:", "identity: { headers: { X_User: sub } }\nroutes:");
    let errors = errors(&yaml);
    assert!(errors[0].contains("X_User"), "{errors:?}");
}

#[test]
fn forward_token_on_a_public_route_warns() {
    let yaml = format!("{BASE}    auth: public\n    forward_token: true\n");
    let compiled = load_str(&yaml, &fixtures()).unwrap();
    let warnings: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("routes[0].forward_token") && w.contains("unverified")),
        "{warnings:?}"
    );
}

#[test]
fn new_route_options_are_checked() {
    let yaml = format!(
        "{BASE}    method_override: sometimes\n  - id: b\n    match: {{ path_prefix: /b, path_parameters: maybe }}\n    upstream: orders\n"
    );
    let errors = errors(&yaml);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("routes[0].method_override"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("routes[1].match.path_parameters"),
        "{errors:?}"
    );
}

#[test]
fn a_hostless_route_sharing_a_virtual_host_upstream_warns() {
    let yaml = format!(
        "{BASE}  - id: admin\n    match: {{ host: admin.example.com, path_prefix: /admin }}\n    upstream: orders\n"
    );
    let compiled = load_str(&yaml, &fixtures()).unwrap();
    let warnings: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("routes[0].match") && w.contains("virtual hosts")),
        "{warnings:?}"
    );
}
