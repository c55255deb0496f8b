//! The shipped gateway.yaml, the demo JWKS and the demo signing key agree: the demo's three tokens
//! get the answers the demo promises.

use std::path::Path;

use pingora::http::RequestHeader;
use portcullis::admission::{admit_now, Admitted, CacheUse, Silent, Transport};
use portcullis::error::{GatewayError, TokenFault};

fn decide(
    req: &pingora::http::RequestHeader,
    snapshot: &portcullis::snapshot::Snapshot,
    now: i64,
) -> Result<Admitted, GatewayError> {
    admit_now(
        req,
        Transport::Plain,
        snapshot,
        now,
        CacheUse::Fill,
        &mut Silent,
    )
    .map_err(|r| r.error)
}

fn request(token: &str) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/orders/42", None).unwrap();
    req.insert_header("host", "127.0.0.1:8080").unwrap();
    req.insert_header("authorization", format!("Bearer {token}"))
        .unwrap();
    req
}

#[test]
fn demo_tokens_get_the_promised_answers_on_the_shipped_config() {
    portcullis::install_crypto_provider();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let snapshot = portcullis::config::load(&root.join("gateway.yaml"))
        .unwrap()
        .snapshot;
    let now = portcullis::clock::unix_now();
    let key = root.join("deploy/demo/demo-signing-key.pem");
    let tokens = portcullis::demo::mint(&snapshot, &key, "demo-rsa-1", now).unwrap();

    let ok = decide(&request(&tokens.valid), &snapshot, now).unwrap();
    assert_eq!(ok.principal.unwrap().subject.as_deref(), Some("demo-user"));
    assert!(matches!(
        decide(&request(&tokens.under_scoped), &snapshot, now),
        Err(GatewayError::InsufficientScope { .. })
    ));
    assert_eq!(
        decide(&request(&tokens.expired), &snapshot, now).unwrap_err(),
        GatewayError::InvalidToken(TokenFault::Expired)
    );

    let text = portcullis::demo::instructions(&snapshot, &tokens);
    assert!(
        text.contains(&format!(
            "Bearer {}' http://127.0.0.1:8080/orders/42",
            tokens.valid
        )),
        "{text}"
    );
    assert!(
        text.contains("curl -i http://127.0.0.1:8080/healthz"),
        "{text}"
    );
}
