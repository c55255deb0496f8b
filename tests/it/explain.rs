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
            "binding",
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
    assert_eq!(out.status.code(), Some(15), "insufficient scope");
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
    assert_eq!(out.status.code(), Some(14), "revoked");
}

/// `portcullis explain` with `args` on the config file `config`: (exit status, stdout).
fn explain_cli(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = assert_cmd::Command::cargo_bin("portcullis")
        .unwrap()
        .args(["explain", "-c"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    (out.status.code(), text)
}

/// CI can assert on the exit status: one code per kind of refusal (docs/troubleshooting.md).
#[test]
fn the_exit_status_names_the_kind_of_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    let yaml = config_yaml_for_cli().replace("revocation: { file: \"{revoked}\" }", "");
    std::fs::write(&config, yaml).unwrap();
    let mut expired = claims("read:orders");
    expired["exp"] = json!(now() - 600);
    let cases: [(&str, Option<String>, i32); 7] = [
        ("/orders/7", Some(Issuer::rsa(&claims("read:orders"))), 0),
        ("/orders/a%2fb", None, 10),
        ("/nowhere", None, 11),
        ("/orders/7", None, 12),
        ("/orders/7", Some(Issuer::rsa(&expired)), 13),
        ("/orders/7", Some(Issuer::rsa(&claims("profile"))), 15),
        ("/public/x", None, 0),
    ];
    for (path, token, code) in cases {
        let token_file = dir.path().join("token");
        let mut args = vec![format!("--url=http://api.example.com{path}")];
        if let Some(t) = &token {
            std::fs::write(&token_file, t).unwrap();
            args.push(format!("--token=@{}", token_file.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, text) = explain_cli(&config, &args);
        assert_eq!(status, Some(code), "{path}: {text}");
    }
}

/// `--client-cert`: explain checks a certificate-bound token (RFC 8705 §3) against the client
/// certificate the request would come with, as the TLS listener does.
#[test]
fn explain_checks_a_certificate_bound_token_against_the_client_certificate() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    let yaml = config_yaml_for_cli().replace("revocation: { file: \"{revoked}\" }", "");
    std::fs::write(&config, yaml).unwrap();
    let clients = crate::support::tls::TestCa::new("clients CA");
    let (ui, other) = (clients.client("ui"), clients.client("other"));
    let (ui_pem, other_pem) = (dir.path().join("ui.crt"), dir.path().join("other.crt"));
    std::fs::write(&ui_pem, &ui.cert_pem).unwrap();
    std::fs::write(&other_pem, &other.cert_pem).unwrap();
    let mut bound = claims("read:orders");
    bound["cnf"] = json!({ "x5t#S256": base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, &ui.der())) });
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, Issuer::rsa(&bound)).unwrap();
    let token = format!("--token=@{}", token_file.display());
    let url = "--url=https://api.example.com/orders/7";
    let cert = |pem: &std::path::Path| format!("--client-cert={}", pem.display());
    let (status, text) = explain_cli(&config, &[url, &token, &cert(&ui_pem)]);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("pass  binding"), "{text}");
    let (status, text) = explain_cli(&config, &[url, &token, &cert(&other_pem)]);
    assert_eq!(status, Some(13), "{text}");
    assert!(
        text.contains("FAIL  binding     cnf_certificate_mismatch"),
        "{text}"
    );
    let (status, text) = explain_cli(&config, &[url, &token]);
    assert_eq!(status, Some(13), "{text}");
    assert!(
        text.contains("FAIL  binding     cnf_certificate_missing"),
        "{text}"
    );
}

/// `--dpop-proof`: the token goes as `Authorization: DPoP` with the proof, and explain runs the
/// proof's checks (RFC 9449 §4.3) and the binding, over https as the URL says.
#[test]
fn explain_checks_a_dpop_proof() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    let yaml = config_yaml_for_cli().replace("revocation: { file: \"{revoked}\" }", "");
    std::fs::write(&config, yaml).unwrap();
    let client_key = crate::dpop::DpopClient::new();
    let mut bound = claims("read:orders");
    bound["cnf"] = json!({ "jkt": client_key.jkt() });
    let token = Issuer::rsa(&bound);
    let url = "https://api.example.com/orders/7";
    let proof = client_key.proof("GET", url, &token, |_| {});
    let (token_file, proof_file) = (dir.path().join("token"), dir.path().join("proof"));
    std::fs::write(&token_file, &token).unwrap();
    std::fs::write(&proof_file, &proof).unwrap();
    let token_arg = format!("--token=@{}", token_file.display());
    let proof_arg = format!("--dpop-proof=@{}", proof_file.display());
    let url_arg = format!("--url={url}");
    let (status, text) = explain_cli(&config, &[&url_arg, &token_arg, &proof_arg]);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("pass  dpop"), "{text}");
    assert!(text.contains("pass  binding"), "{text}");
    // The same proof for another resource: the htu check says so.
    let other = "--url=https://api.example.com/orders/8";
    let (status, text) = explain_cli(&config, &[other, &token_arg, &proof_arg]);
    assert_eq!(status, Some(13), "{text}");
    assert!(text.contains("FAIL  dpop        dpop_proof_htu"), "{text}");
    // Without the proof, a DPoP-bound token is refused as a bearer token.
    let (status, text) = explain_cli(&config, &[&url_arg, &token_arg]);
    assert_eq!(status, Some(13), "{text}");
    assert!(
        text.contains("FAIL  binding     dpop_bound_token"),
        "{text}"
    );
}

/// The config file a running [`TestGateway`] uses, for the CLI: `{listen}` and `{admin}` filled
/// in with `admin` (explain binds nothing), fixture paths absolute.
fn cli_config_beside(
    gateway_yaml: &str,
    admin: std::net::SocketAddr,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let jwks = fixtures().join("jwks.json");
    let yaml = gateway_yaml
        .replace("{listen}", "127.0.0.1:8080")
        .replace("{admin}", &admin.to_string())
        .replace(
            "jwks_file: jwks.json",
            &format!("jwks_file: \"{}\"", jwks.display()),
        );
    let path = dir.join("cli-gateway.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Revoked through the admin API of a running gateway without Redis or a state file: explain
/// alone cannot see it, and says "unknown" (exit 20), never "pass"; given the running gateway's
/// admin address, it sees the revocation the gateway enforces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_does_not_contradict_a_running_gateway_that_revoked_through_its_admin_api() {
    use crate::support::revocations::*;
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_upstream().await;
    let yaml = with_admin(&config(echo, closed_port(), closed_port()), dir.path(), "");
    let gw = TestGateway::start(&yaml);
    let alice = token("a1", "alice", "cli", now() - 60);
    assert_eq!(status(&gw, &alice).await, 200);
    revoke(
        &gw,
        json!({"type": "subject", "issuer": "corp", "sub": "alice", "issued_before": now()}),
    )
    .await;
    assert_eq!(status(&gw, &alice).await, 401, "the gateway refuses alice");
    let config = cli_config_beside(&yaml, gw.admin, dir.path());
    let token_file = dir.path().join("alice");
    std::fs::write(&token_file, &alice).unwrap();
    let token_arg = format!("--token=@{}", token_file.display());
    let url = "--url=http://api.example.com/orders/7";

    let (status, text) = tokio::task::spawn_blocking({
        let (config, token_arg) = (config.clone(), token_arg.clone());
        move || explain_cli(&config, &[url, &token_arg])
    })
    .await
    .unwrap();
    assert_eq!(status, Some(20), "{text}");
    assert!(
        text.contains("????  revocation  unknown (admin API revocations not visible)"),
        "{text}"
    );
    assert!(!text.contains("pass  revocation"), "{text}");

    let admin_arg = format!("--admin={}", gw.admin);
    let (status, text) = tokio::task::spawn_blocking({
        let (config, token_arg) = (config.clone(), token_arg.clone());
        move || explain_cli(&config, &[url, &token_arg, &admin_arg])
    })
    .await
    .unwrap();
    assert_eq!(status, Some(14), "{text}");
    assert!(text.contains("FAIL  revocation  revoked_subject"), "{text}");

    // A wrong admin token is not a pass either.
    let wrong = dir.path().join("wrong-admin-token");
    std::fs::write(&wrong, "not-the-admin-token-at-all").unwrap();
    let admin_arg = format!("--admin={}", gw.admin);
    let wrong_arg = format!("--admin-token-file={}", wrong.display());
    let (status, text) = tokio::task::spawn_blocking(move || {
        explain_cli(&config, &[url, &token_arg, &admin_arg, &wrong_arg])
    })
    .await
    .unwrap();
    assert_eq!(status, Some(20), "{text}");
    assert!(
        text.contains("unknown (the admin API could not be read: ") && text.contains("401"),
        "{text}"
    );
}

/// With Redis configured, explain reads the revocations the replicas share; with Redis down, the
/// revocation check is unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_redis_revocations_and_says_unknown_when_redis_is_down() {
    use crate::support::redis::RedisServer;
    use crate::support::revocations::*;
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_upstream().await;
    let yaml = with_admin(
        &config(echo, closed_port(), closed_port()),
        dir.path(),
        &format!("redis: {{ url: \"{}\", timeout: 500ms }}", redis.url()),
    );
    let gw = TestGateway::start(&yaml);
    let bob = token("b1", "bob", "cli", now() - 60);
    let carol = token("c1", "carol", "cli", now() - 60);
    revoke(
        &gw,
        json!({"type": "subject", "issuer": "corp", "sub": "bob", "issued_before": now()}),
    )
    .await;
    let config = cli_config_beside(&yaml, gw.admin, dir.path());
    let run = |token: &str| {
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).unwrap();
        explain_cli(
            &config,
            &[
                "--url=http://api.example.com/orders/7",
                &format!("--token=@{}", token_file.display()),
            ],
        )
    };
    let (status, text) = run(&bob);
    assert_eq!(status, Some(14), "{text}");
    assert!(text.contains("FAIL  revocation  revoked_subject"), "{text}");
    let (status, text) = run(&carol);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("pass  revocation"), "{text}");
    redis.kill();
    let (status, text) = run(&carol);
    assert_eq!(status, Some(20), "{text}");
    assert!(
        text.contains("????  revocation  unknown (Redis could not be read: "),
        "{text}"
    );
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

/// A state file configured but not on this machine (a laptop, CI) may hold revocations the
/// gateway enforces: unknown, not pass.
#[test]
fn a_state_file_that_is_not_here_makes_the_revocation_check_unknown() {
    use crate::support::revocations::*;
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("state.jsonl");
    let yaml = with_admin(
        &config(closed_port(), closed_port(), closed_port()),
        dir.path(),
        &format!("state_file: \"{}\"", absent.display()),
    );
    let config = cli_config_beside(&yaml, closed_port(), dir.path());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, Issuer::rsa(&claims("read:orders"))).unwrap();
    let (status, text) = explain_cli(
        &config,
        &[
            "--url=http://api.example.com/orders/7",
            &format!("--token=@{}", token_file.display()),
        ],
    );
    assert_eq!(status, Some(20), "{text}");
    assert!(
        text.contains(&format!(
            "????  revocation  unknown (the revocation state file {} is not on this machine)",
            absent.display()
        )),
        "{text}"
    );
    // Refused before the token is read: the admin token would cross the network in clear.
    let (status, _) = explain_cli(
        &config,
        &[
            "--url=http://api.example.com/orders/7",
            &format!("--token=@{}", token_file.display()),
            "--admin=10.1.2.3:9901",
        ],
    );
    assert_eq!(status, Some(1));
}

#[test]
fn explain_shows_which_rate_limits_apply_and_to_which_key() {
    portcullis::install_crypto_provider();
    let yaml = format!(
        "{}rate_limits: {{ default: [ {{ key: ip, rate: 100/s, burst: 200 }}, {{ name: per-client, key: [client_id, route], rate: 20/m }} ] }}\n",
        config(closed_port(), closed_port(), closed_port()).replace("{listen}", "127.0.0.1:8080")
    );
    let snapshot = portcullis::config::load_str(&yaml, &fixtures())
        .unwrap()
        .snapshot;
    let mut c = claims("read:orders");
    c["client_id"] = json!("billing");
    let req = request(
        &Method::GET,
        "http://api.example.com/orders/7",
        Some(&Issuer::rsa(&c)),
    )
    .unwrap();
    let connection = portcullis::admission::Connection {
        transport: portcullis::admission::Transport::Plain,
        client_ip: Some("203.0.113.9".parse().unwrap()),
    };
    let e = portcullis::explain::explain_on(&req, connection, &snapshot, now());
    let limits: Vec<&str> = e
        .checks
        .iter()
        .filter(|c| c.name() == "rate_limit")
        .map(|c| c.detail.as_str())
        .collect();
    // Before authentication the address, after it the client: both in the proxy's order.
    assert_eq!(
        limits,
        [
            "limit \"ip\" (100/s, burst 200, key ip=203.0.113.9): allowed, 199 left; this replica's table",
            "limit \"per-client\" (20/m, burst 20, key route=orders-read,client_id=billing): allowed, 19 left; this replica's table",
        ]
    );
    let names: Vec<&str> = e.checks.iter().map(|c| c.name()).collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("rate_limit") < at("bearer") && names.last() == Some(&"rate_limit"));
}
