//! `portcullis explain`: the right verdict, with the failing check named, for a valid, an
//! expired and an under-scoped token.

use crate::support::*;
use http::Method;
use portcullis::explain::{explain, request, Explanation};
use serde_json::json;

fn snapshot() -> portcullis::snapshot::Snapshot {
    portcullis::install_crypto_provider();
    let yaml =
        config(closed_port(), closed_port(), closed_port()).replace("{listen}", "127.0.0.1:8080");
    portcullis::config::load_str(&yaml, &fixtures())
        .unwrap()
        .snapshot
}

fn run(token: &str) -> Explanation {
    let req = request(&Method::GET, "http://api.example.com/orders/7", Some(token)).unwrap();
    explain(&req, &snapshot(), now())
}

fn failed(e: &Explanation) -> Vec<&str> {
    e.checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.name())
        .collect()
}

#[test]
fn a_valid_token_passes_every_check_and_is_forwarded() {
    let e = run(&Issuer::rsa(&claims("read:orders")));
    assert_eq!(failed(&e), Vec::<&str>::new(), "{e:#?}");
    let names: Vec<&str> = e.checks.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "target",
            "path",
            "route",
            "bearer",
            "cache",
            "jws",
            "crit",
            "alg",
            "iss",
            "alg_allowed",
            "keys",
            "signature",
            "typ",
            "exp",
            "nbf",
            "iat",
            "aud",
            "lifetime",
            "revocation",
            "scopes",
        ]
    );
    assert_eq!(e.status, 200);
    assert!(
        e.verdict.contains("forwarded to upstream \"echo\""),
        "{}",
        e.verdict
    );
}

#[test]
fn an_expired_token_fails_exp_and_gets_401() {
    let mut c = claims("read:orders");
    c["exp"] = json!(now() - 600);
    let e = run(&Issuer::rsa(&c));
    assert_eq!(failed(&e), ["exp"], "{e:#?}");
    assert_eq!(e.status, 401);
    assert!(
        e.verdict.contains("error=\"invalid_token\"") && e.verdict.contains("reason: expired"),
        "{}",
        e.verdict
    );
}

#[test]
fn an_under_scoped_token_fails_scopes_and_gets_403() {
    let e = run(&Issuer::rsa(&claims("profile")));
    assert_eq!(failed(&e), ["scopes"], "{e:#?}");
    assert_eq!(e.status, 403);
    assert!(e.verdict.contains("scope=\"read:orders\""), "{}", e.verdict);
}

#[test]
fn a_wrong_audience_is_named_with_the_expected_ones() {
    let mut c = claims("read:orders");
    c["aud"] = json!("billing-api");
    let e = run(&Issuer::rsa(&c));
    let aud = e.checks.iter().find(|c| c.name() == "aud").unwrap();
    assert!(
        !aud.passed() && aud.detail.contains("expected one of orders-api, other-api"),
        "{aud:?}"
    );
}

#[test]
fn the_cli_reads_the_token_from_a_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let snapshot = portcullis::config::load(&root.join("gateway.yaml"))
        .unwrap()
        .snapshot;
    let tokens = portcullis::demo::mint(
        &snapshot,
        &root.join("deploy/demo/demo-signing-key.pem"),
        "demo-rsa-1",
        now(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{}\n", tokens.under_scoped)).unwrap();
    let out = assert_cmd::Command::cargo_bin("portcullis")
        .unwrap()
        .args(["explain", "-c"])
        .arg(root.join("gateway.yaml"))
        .args(["--url", "http://127.0.0.1:8080/orders/42", "--token"])
        .arg(format!("@{}", file.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAIL  scopes"), "{text}");
    assert!(text.contains("response: 403"), "{text}");
}

#[test]
fn explain_sees_revocations_from_the_revocation_file() {
    let dir = tempfile::tempdir().unwrap();
    let revoked = dir.path().join("revoked.jsonl");
    std::fs::write(
        &revoked,
        format!(
            "{{\"type\":\"subject\",\"issuer\":\"corp\",\"sub\":\"alice\",\"issued_before\":{}}}\n",
            now()
        ),
    )
    .unwrap();
    let config = dir.path().join("gateway.yaml");
    let yaml = config_yaml_for_cli().replace("{revoked}", &revoked.display().to_string());
    std::fs::write(&config, yaml).unwrap();
    let token_file = dir.path().join("token");
    let mut c = claims("read:orders");
    c["iat"] = json!(now() - 60);
    std::fs::write(&token_file, Issuer::rsa(&c)).unwrap();
    let out = assert_cmd::Command::cargo_bin("portcullis")
        .unwrap()
        .args(["explain", "-c"])
        .arg(&config)
        .args(["--url", "http://api.example.com/orders/7", "--token"])
        .arg(format!("@{}", token_file.display()))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAIL  revocation  revoked_subject"), "{text}");
    assert!(text.contains("response: 401"), "{text}");
}

/// A config with absolute fixture paths (the CLI reads it from a temporary directory).
fn config_yaml_for_cli() -> String {
    let yaml =
        config(closed_port(), closed_port(), closed_port()).replace("{listen}", "127.0.0.1:8080");
    let jwks = fixtures().join("jwks.json");
    format!(
        "{}\nrevocation: {{ file: \"{{revoked}}\" }}\n",
        yaml.replace(
            "jwks_file: jwks.json",
            &format!("jwks_file: \"{}\"", jwks.display())
        )
    )
}
