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
        stderr.contains("line 7, column 19: upstreams[0].read_timeout"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 11, column 15: routes[0].upstream: unknown upstream \"missing\""),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");
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
        stderr.contains("secret not checked: line 4, column 48: admin.token_env: the environment variable PORTCULLIS_TEST_UNSET_ADMIN_TOKEN is not set"),
        "{stderr}"
    );
    // A cluster Service name resolves only in the cluster (`.invalid` never does, RFC 2606).
    assert!(
        stderr.contains("host name not checked: line 5, column 72: upstreams[1].url: cannot resolve \"orders.invalid\""),
        "{stderr}"
    );
    // TLS material comes from a Secret too: absent files are deferred, not errors.
    for field in ["cert_file", "key_file"] {
        assert!(
            stderr.contains("secret not checked: line 3, ")
                && stderr.contains(&format!(".{field}: cannot read ")),
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
