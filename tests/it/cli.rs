//! The binary's command-line contract: validate, exit codes, help.

use assert_cmd::Command;

fn portcullis() -> Command {
    Command::cargo_bin("portcullis").unwrap()
}

#[test]
fn validate_accepts_the_shipped_gateway_yaml() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.yaml");
    portcullis()
        .args(["validate", "-c"])
        .arg(shipped)
        .assert()
        .success();
}

#[test]
fn validate_reports_several_errors_with_line_numbers_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        r#"listeners:
  - name: http
    address: "127.0.0.1:8080"
upstreams:
  - id: orders
    url: "http://127.0.0.1:9000"
    read_timeout: forever
routes:
  - id: orders
    match: { path_prefix: /orders }
    upstream: missing
    auth: public
"#,
    )
    .unwrap();
    let out = portcullis()
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "{}:7:19: upstreams[0].read_timeout",
            path.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:11:15: routes[0].upstream: unknown upstream \"missing\"",
            path.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}

/// A parser error (unknown key, wrong shape) has the form of a compile error: the file, the line
/// and column once, the key path, and plain language; no parser snippet naming `<input>`.
#[test]
fn parser_errors_name_the_file_the_key_path_and_what_the_key_takes() {
    let dir = tempfile::tempdir().unwrap();
    let validate = |yaml: &str| {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = portcullis()
            .args(["validate", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64));
        (path, String::from_utf8(out.stderr).unwrap())
    };
    let head = "listeners: [{ name: http, address: \"127.0.0.1:8080\" }]\n\
        upstreams: [{ id: app, url: \"http://127.0.0.1:9000\" }]\n";
    let (path, stderr) = validate(&format!(
        "{head}issuers:\n  - id: idp\n    issuer: https://idp.example\n    audience: [api]\nroutes: []\n"
    ));
    let first = stderr.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "{}:6:5: issuers[0].audience: unknown key `audience`; did you mean `audiences`? (known keys: `id`, `issuer`",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.matches(":6:5").count(), 1, "{stderr}");
    assert!(
        !stderr.contains("<input>") && !stderr.contains("line 6"),
        "{stderr}"
    );
    let (_, stderr) = validate(&format!(
        "{head}routes:\n  - id: r\n    match: {{ path_prefix: / }}\n    upstream: app\n    auth:\n      scopes: [\"items:read\"]\n"
    ));
    assert!(
        stderr.contains(":8:15: routes[0].auth.scopes: `scopes` takes a mapping with the keys `all_of`, `any_of`, not a list"),
        "{stderr}"
    );
    let (_, stderr) = validate(&format!(
        "{head}routes: []\nupstream_defaults: {{ connect_timeout: 0s }}\n"
    ));
    assert!(
        stderr.contains(
            ":4:1: upstream_defaults: unknown key `upstream_defaults` (known keys: `listeners`"
        ),
        "{stderr}"
    );
}

/// `0s` where zero makes no sense is refused with its location; where zero means something
/// (`drain_delay`, `leeway`), it is accepted (docs/configuration.md says what it means).
#[test]
fn zero_durations_are_refused_where_they_make_no_sense() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        "listeners: [{ name: http, address: \"127.0.0.1:8080\" }]\n\
         upstreams: [{ id: app, url: \"http://127.0.0.1:9000\", connect_timeout: 0s }]\n\
         routes: [{ id: r, match: { path_prefix: / }, upstream: app, auth: public }]\n\
         shutdown: { drain_delay: 0s }\n",
    )
    .unwrap();
    let out = portcullis()
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(":2:71: upstreams[0].connect_timeout: \"0s\" must be more than zero"),
        "{stderr}"
    );
    assert!(stderr.contains("1 error(s)"), "{stderr}");
}

#[test]
fn validate_reports_a_missing_file_and_exits_64() {
    let out = portcullis()
        .args(["validate", "-c", "/nonexistent/gateway.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("cannot read"));
}

#[test]
fn run_with_an_invalid_config_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, "listeners: []\n").unwrap();
    let out = portcullis()
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn help_explains_each_command() {
    let out = portcullis().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["run", "validate", "demo"] {
        assert!(help.contains(command), "{help}");
    }
}

/// CI validates a ConfigMap without the Secrets mounted and without the cluster's DNS: absent
/// secrets and unresolvable upstream host names are listed as not checked (exit 0);
/// `--secrets` requires them, as `run` does (exit 64).
#[test]
fn validate_defers_absent_secrets_unless_asked_to_check_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        r#"listeners:
  - { name: http, address: "127.0.0.1:8080" }
  - { name: https, address: "127.0.0.1:8443", tls: { certificates: [{ cert_file: tls/tls.crt, key_file: tls/tls.key }] } }
admin: { address: "127.0.0.1:9901", token_env: PORTCULLIS_TEST_UNSET_ADMIN_TOKEN }
upstreams: [{ id: app, url: "http://127.0.0.1:9000" }, { id: svc, url: "http://orders.invalid:8080" }]
routes: [{ id: open, match: { path_prefix: / }, upstream: app, auth: public }, { id: s, match: { path_prefix: /s }, upstream: svc, auth: public }]
"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        portcullis()
            .args(["validate", "-c"])
            .arg(&path)
            .args(args)
            .env_remove("PORTCULLIS_TEST_UNSET_ADMIN_TOKEN")
            .output()
            .unwrap()
    };
    let deferred = run(&[]);
    let stderr = String::from_utf8(deferred.stderr).unwrap();
    assert_eq!(deferred.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(":4:48: admin.token_env: the environment variable PORTCULLIS_TEST_UNSET_ADMIN_TOKEN is not set (secret not checked here"),
        "{stderr}"
    );
    // A cluster Service name resolves only in the cluster (`.invalid` never does, RFC 2606).
    assert!(
        stderr.contains(":5:72: upstreams[1].url: cannot resolve \"orders.invalid\"")
            && stderr.contains("(host name not checked here"),
        "{stderr}"
    );
    // TLS material comes from a Secret too: absent files are deferred, not errors.
    for field in ["cert_file", "key_file"] {
        assert!(
            stderr.lines().any(|l| l.contains(":3:")
                && l.contains(&format!(".{field}: cannot read "))
                && l.ends_with(
                    "(secret not checked here; portcullis validate --secrets requires it)"
                )),
            "{field}: {stderr}"
        );
    }
    let strict = run(&["--secrets"]);
    let stderr = String::from_utf8(strict.stderr).unwrap();
    assert_eq!(strict.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("admin.token_env: the environment variable PORTCULLIS_TEST_UNSET_ADMIN_TOKEN is not set"),
        "{stderr}"
    );
    assert!(stderr.contains("4 error(s)"), "{stderr}");
}

/// A deferred Redis URL does not skip the rest of `revocation.redis`: a bad `key_prefix` still
/// fails `validate`, as it would fail `run`.
#[test]
fn validate_still_checks_the_settings_around_a_deferred_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        r#"listeners: [{ name: http, address: "127.0.0.1:8080" }]
upstreams: [{ id: app, url: "http://127.0.0.1:9000" }]
routes: [{ id: open, match: { path_prefix: / }, upstream: app, auth: public }]
revocation: { redis: { url_env: PORTCULLIS_TEST_UNSET_REDIS_URL, key_prefix: "bad prefix!" } }
"#,
    )
    .unwrap();
    let out = portcullis()
        .args(["validate", "-c"])
        .arg(&path)
        .env_remove("PORTCULLIS_TEST_UNSET_REDIS_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("revocation.redis.key_prefix"), "{stderr}");
    assert!(stderr.contains("1 error(s)"), "{stderr}");
}

/// `--log-format text` writes no ANSI colour codes when stderr is not a terminal (a file, a pipe
/// to a log collector): the escape sequences would end up in the stored logs.
#[test]
fn text_logs_have_no_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    // Held by this test, so `run` logs the config warning, then fails to bind and exits.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let admin = free.local_addr().unwrap();
    drop(free);
    std::fs::write(
        &path,
        format!(
            r#"listeners: [{{ name: http, address: "{}" }}]
admin: {{ address: "{admin}" }}
upstreams: [{{ id: app, url: "http://127.0.0.1:9000" }}]
routes: [{{ id: open, match: {{ path_prefix: / }}, upstream: app, auth: public }}]
"#,
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let out = portcullis()
        .args(["--log-format", "text", "run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exposed beyond this host"), "{stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "colour codes in: {stderr:?}");
}

/// `portcullis jwks` → `jwks_file` → a token signed with the key and that kid is forwarded:
/// the docs' "bring your own issuer" walk-through. RSA comes out as the fixture JWKS has it,
/// P-256 and Ed25519 keys (rcgen) too, each kid its RFC 7638 thumbprint; a private key is
/// refused with the command that gives its public key.
#[test]
fn jwks_turns_public_keys_into_a_key_set_the_gateway_verifies_with() {
    use crate::support::*;
    let dir = tempfile::tempdir().unwrap();
    let p256 = rcgen::KeyPair::generate().unwrap();
    let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let (p256_pem, ed_pem) = (dir.path().join("p256.pem"), dir.path().join("ed.pem"));
    std::fs::write(&p256_pem, p256.public_key_pem()).unwrap();
    std::fs::write(&ed_pem, ed25519.public_key_pem()).unwrap();
    let out = portcullis()
        .arg("jwks")
        .arg(fixtures().join("rsa-public.pem"))
        .arg(&p256_pem)
        .arg(&ed_pem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{set}");
    let fixture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("jwks.json")).unwrap()).unwrap();
    let rsa_fixture = fixture["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "test-rsa-1")
        .unwrap();
    assert_eq!(
        (&keys[0]["n"], &keys[0]["e"]),
        (&rsa_fixture["n"], &rsa_fixture["e"])
    );
    assert_eq!(
        (&keys[1]["kty"], &keys[1]["crv"], &keys[1]["alg"]),
        (&"EC".into(), &"P-256".into(), &"ES256".into())
    );
    assert_eq!(
        (&keys[2]["kty"], &keys[2]["crv"]),
        (&"OKP".into(), &"Ed25519".into())
    );
    for k in keys {
        assert_eq!(
            k["kid"].as_str().unwrap().len(),
            43,
            "a SHA-256 thumbprint: {k}"
        );
    }
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, &out.stdout).unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "listeners: [{{ name: t, address: \"127.0.0.1:8080\" }}]\n\
             issuers: [{{ id: own, issuer: \"{ISSUER}\", jwks_file: jwks.json, audiences: [\"{AUDIENCE}\"], algorithms: [RS256, ES256, EdDSA] }}]\n\
             upstreams: [{{ id: app, url: \"http://127.0.0.1:9000\" }}]\n\
             routes: [{{ id: r, match: {{ path_prefix: / }}, upstream: app }}]\n"
        ),
    )
    .unwrap();
    let explain = |token: &str| {
        let file = dir.path().join("token");
        std::fs::write(&file, token).unwrap();
        portcullis()
            .args(["explain", "-c"])
            .arg(&config)
            .args(["--url", "http://api.example.com/x", "--token"])
            .arg(format!("@{}", file.display()))
            .output()
            .unwrap()
    };
    let claims = claims("read:orders");
    let rsa_key = jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(fixtures().join("rsa-private.pem")).unwrap(),
    )
    .unwrap();
    let ec_key = jsonwebtoken::EncodingKey::from_ec_pem(p256.serialize_pem().as_bytes()).unwrap();
    for (alg, key, jwk) in [
        (jsonwebtoken::Algorithm::RS256, &rsa_key, &keys[0]),
        (jsonwebtoken::Algorithm::ES256, &ec_key, &keys[1]),
    ] {
        let token = Issuer::sign(alg, jwk["kid"].as_str(), key, &claims);
        let out = explain(&token);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{alg:?}: {text}");
    }

    // The same key twice is listed once.
    let twice = portcullis()
        .arg("jwks")
        .arg(fixtures().join("rsa-public.pem"))
        .arg(fixtures().join("rsa-public.pem"))
        .output()
        .unwrap();
    let set: serde_json::Value = serde_json::from_slice(&twice.stdout).unwrap();
    assert_eq!(set["keys"].as_array().unwrap().len(), 1, "{set}");

    let private = portcullis()
        .arg("jwks")
        .arg(fixtures().join("rsa-private.pem"))
        .output()
        .unwrap();
    assert_eq!(private.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&private.stderr);
    assert!(
        stderr.contains("this is a private key") && stderr.contains("-pubout"),
        "{stderr}"
    );
    assert!(private.stdout.is_empty());
}
