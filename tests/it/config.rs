//! Configuration compiling: every error at once, each with its YAML location.

use portcullis::config::load_str;
use portcullis::snapshot::{ClaimSource, RouteAuth};

const GOOD: &str = r#"
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
    match: { path_prefix: /orders/ }
    upstream: orders
  - id: health
    match: { path: /healthz }
    upstream: orders
    auth: public
"#;

#[test]
fn a_minimal_config_compiles_with_safe_defaults() {
    let compiled = load_str(GOOD, &crate::support::fixtures()).unwrap();
    let s = &compiled.snapshot;
    assert_eq!(
        s.issuers[0].algorithms,
        [portcullis::auth::algorithm::Algorithm::RS256]
    );
    assert_eq!(s.issuers[0].leeway.as_secs(), 30);
    assert_eq!(s.issuers[0].scope_claims, ["scope", "scp"]);
    assert_eq!(s.limits.max_token_bytes, 8192);
    // A route without `auth` is protected by every issuer.
    assert!(matches!(&s.routes[0].auth, RouteAuth::Protected { issuers, .. } if issuers == &[0]));
    assert!(matches!(s.routes[1].auth, RouteAuth::Public));
    let headers: Vec<(&str, &ClaimSource)> = s.routes[0]
        .identity_headers
        .iter()
        .map(|(n, c)| (n.as_str(), c))
        .collect();
    assert_eq!(headers.len(), 4);
    assert!(headers.contains(&("x-auth-scopes", &ClaimSource::Scopes)));
    assert_eq!(s.identity.strip_prefixes, ["x-auth-"]);
}

#[test]
fn every_semantic_error_is_reported_with_its_line() {
    let bad = r#"
listeners:
  - name: http
    address: "localhost"
issuers:
  - id: corp
    issuer: "https://idp.test"
    jwks_file: jwks.json
    audiences: []
    algorithms: [RS256, HS256, none]
    leeway: soon
upstreams:
  - id: orders
    url: "ftp://127.0.0.1:9000"
routes:
  - id: orders
    match: { path_prefix: /orders/../admin }
    upstream: ordrs
    auth:
      issuers: [corp, nobody]
      scopes: { all_of: ["read orders"] }
  - id: orders
    match: { path: /x, path_prefix: /y }
    upstream: orders
    auth: open
"#;
    let errors = load_str(bad, &crate::support::fixtures()).unwrap_err().0;
    let found: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e.line.unwrap(), e.path.as_str()))
        .collect();
    let expect = [
        (4, "listeners[0].address"),
        (9, "issuers[0].audiences"),
        (10, "issuers[0].algorithms"),
        (10, "issuers[0].algorithms"),
        (11, "issuers[0].leeway"),
        (14, "upstreams[0].url"),
        (17, "routes[0].match.path_prefix"),
        (18, "routes[0].upstream"),
        (20, "routes[0].auth.issuers"),
        (21, "routes[0].auth.scopes.all_of"),
        (22, "routes[1].id"),
        (23, "routes[1].match"),
        (25, "routes[1].auth"),
    ];
    for e in &expect {
        assert!(found.contains(e), "missing {e:?} in {errors:#?}");
    }
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    let text = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("unknown upstream \"ordrs\" (known: orders)"),
        "{text}"
    );
    assert!(
        text.contains("unsigned and symmetric algorithms are never accepted"),
        "{text}"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_location() {
    let typo = GOOD.replace(
        "    audiences: [orders-api]",
        "    audiences: [orders-api]\n    audience: [x]",
    );
    let errors = load_str(&typo, &crate::support::fixtures()).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, Some(10));
    assert!(errors[0].message.contains("audience"), "{}", errors[0]);
}

#[test]
fn missing_audiences_and_key_source_are_errors() {
    let no_aud = GOOD
        .replace("    audiences: [orders-api]\n", "")
        .replace("    jwks_file: jwks.json\n", "");
    let errors = load_str(&no_aud, &crate::support::fixtures())
        .unwrap_err()
        .0;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["issuers[0].audiences", "issuers[0]"]);
    assert!(
        errors[1].message.contains("exactly one key source"),
        "{}",
        errors[1]
    );
}

#[test]
fn unreadable_or_empty_key_files_are_located_errors() {
    let missing = GOOD.replace("jwks_file: jwks.json", "jwks_file: nope.json");
    let errors = load_str(&missing, &crate::support::fixtures())
        .unwrap_err()
        .0;
    assert_eq!(
        (errors[0].line, errors[0].path.as_str()),
        (Some(8), "issuers[0].jwks_file")
    );
    let not_jwks = GOOD.replace("jwks_file: jwks.json", "jwks_file: rsa-public.pem");
    assert!(load_str(&not_jwks, &crate::support::fixtures()).is_err());
}

#[test]
fn a_protected_route_without_any_issuer_is_an_error() {
    let yaml = r#"
listeners: [{ name: http, address: "127.0.0.1:8080" }]
upstreams: [{ id: u, url: "http://127.0.0.1:9000" }]
routes:
  - id: r
    match: { path_prefix: / }
    upstream: u
"#;
    let errors = load_str(yaml, &crate::support::fixtures()).unwrap_err().0;
    assert!(
        errors[0].message.contains("needs an issuer"),
        "{}",
        errors[0]
    );
}

#[test]
fn identity_headers_may_not_take_over_transport_headers() {
    let yaml = GOOD.replace(
        "routes:",
        "identity:\n  headers: { Authorization: sub, X-Forwarded-For: sub }\nroutes:",
    );
    let errors = load_str(&yaml, &crate::support::fixtures()).unwrap_err().0;
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn duplicate_matches_are_refused() {
    let yaml = GOOD.replace(
        "match: { path: /healthz }",
        "match: { path_prefix: /orders }",
    );
    let errors = load_str(&yaml, &crate::support::fixtures()).unwrap_err().0;
    assert!(
        errors[0]
            .message
            .contains("same host, path and methods as route \"orders\""),
        "{}",
        errors[0]
    );
}

#[test]
fn non_loopback_plain_http_is_a_warning() {
    let yaml = GOOD.replace("127.0.0.1:8080", "0.0.0.0:8080");
    let compiled = load_str(&yaml, &crate::support::fixtures()).unwrap();
    assert!(compiled
        .warnings
        .iter()
        .any(|w| w.message.contains("plain HTTP")));
}

#[test]
fn remote_key_sources_must_be_https_and_exactly_one() {
    let plain = GOOD.replace(
        "jwks_file: jwks.json",
        "jwks_uri: \"http://idp.example.com/keys\"",
    );
    let errors = load_str(&plain, &crate::support::fixtures()).unwrap_err().0;
    assert_eq!(
        (errors[0].line, errors[0].path.as_str()),
        (Some(8), "issuers[0].jwks_uri")
    );
    assert!(errors[0].message.contains("https"), "{}", errors[0]);

    let two = GOOD.replace(
        "jwks_file: jwks.json",
        "jwks_file: jwks.json\n    discovery: true",
    );
    let errors = load_str(&two, &crate::support::fixtures()).unwrap_err().0;
    assert!(
        errors[0].message.contains("exactly one key source"),
        "{}",
        errors[0]
    );

    let remote = GOOD.replace(
        "jwks_file: jwks.json",
        "jwks_uri: \"https://idp.test/keys\"\n    jwks_refresh: { interval: 10m, timeout: 0s, max_response_bytes: 12 }",
    );
    let errors = load_str(&remote, &crate::support::fixtures())
        .unwrap_err()
        .0;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "issuers[0].jwks_refresh.timeout",
            "issuers[0].jwks_refresh.max_response_bytes"
        ]
    );
}

#[test]
fn a_remote_issuer_starts_without_keys() {
    let remote = GOOD
        .replace("jwks_file: jwks.json", "discovery: true")
        .replace("https://idp.test", "https://idp.test/realms/a");
    let compiled = load_str(&remote, &crate::support::fixtures()).unwrap();
    assert!(compiled.snapshot.issuers[0].key_source.is_some());
    assert!(!compiled.snapshot.keys_ready());
}

#[test]
fn risky_routing_is_warned_about() {
    let yaml = r#"
listeners: [{ name: http, address: "127.0.0.1:8080" }]
issuers: [{ id: corp, issuer: "https://idp.test", jwks_file: jwks.json, audiences: [a] }]
upstreams: [{ id: u, url: "http://127.0.0.1:9000" }]
routes:
  - { id: everything, match: { path_prefix: /api }, upstream: u }
  - { id: reads, match: { path_prefix: /api, methods: [GET] }, upstream: u }
  - { id: open, match: { path_prefix: /public }, upstream: u, auth: public }
  - { id: secret, match: { path: /public/admin }, upstream: u }
"#;
    let compiled = load_str(yaml, &crate::support::fixtures()).unwrap();
    let warnings: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.contains("routes[1].match")
            && w.contains("\"reads\" is never chosen: route \"everything\"")),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("8:")
            && w.contains("\"open\" contains the protected route \"secret\"")),
        "{warnings:#?}"
    );
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
}

#[test]
fn logging_settings_are_checked_and_follow_their_precedence() {
    use portcullis::telemetry::{settings, LogFormat, LogSettings, BUFFERED_LINES};
    let bad = format!("{GOOD}logging: {{ level: \"info,[\", format: xml, buffer_lines: 2 }}\n");
    let errors = load_str(&bad, &crate::support::fixtures()).unwrap_err().0;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["logging.level", "logging.format", "logging.buffer_lines"]
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            "{GOOD}logging: {{ level: \"warn,portcullis=debug\", format: text, buffer_lines: 64 }}\n"
        ),
    )
    .unwrap();
    let expected_level =
        std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,portcullis=debug".into());
    let expect = |format, directives: &str, buffer_lines| LogSettings {
        format,
        directives: directives.to_owned(),
        buffer_lines,
    };
    assert_eq!(
        settings(None, &path),
        expect(LogFormat::Text, &expected_level, 64)
    );
    assert_eq!(
        settings(Some(LogFormat::Json), &path),
        expect(LogFormat::Json, &expected_level, 64)
    );
    let default_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    assert_eq!(
        settings(None, &dir.path().join("missing.yaml")),
        expect(LogFormat::Json, &default_level, BUFFERED_LINES)
    );
}

#[test]
fn absurd_durations_are_located_errors_not_overflows() {
    let yaml = GOOD.replace(
        "jwks_file: jwks.json",
        "jwks_uri: \"https://idp.test/keys\"\n    jwks_refresh: { max_interval: 500000000y }",
    );
    let errors = load_str(&yaml, &crate::support::fixtures()).unwrap_err().0;
    assert_eq!(errors[0].path, "issuers[0].jwks_refresh.max_interval");
    assert!(
        errors[0].message.contains("at most 30 days"),
        "{}",
        errors[0]
    );
}

#[test]
fn redis_settings_are_checked_without_echoing_the_url() {
    let with = |redis: &str| format!("{GOOD}revocation:\n  redis: {redis}\n");
    let ok = load_str(
        &with("{ url: \"redis://:s3cret@127.0.0.1:6379/2\", max_staleness: 30s }"),
        &crate::support::fixtures(),
    )
    .unwrap();
    let settings = ok.snapshot.revocation_redis.as_ref().unwrap();
    assert_eq!(settings.description, "127.0.0.1:6379");
    assert_eq!(settings.key_prefix, "portcullis:revocations");
    assert_eq!(settings.max_staleness.as_secs(), 30);
    assert_eq!(settings.resync_interval.as_secs(), 60);
    assert!(!format!("{:?}", ok.snapshot).contains("s3cret"));

    let errors = |redis: &str| {
        load_str(&with(redis), &crate::support::fixtures())
            .unwrap_err()
            .to_string()
    };
    let e = errors("{ url: \"http://:s3cret@cache:6379\" }");
    assert!(
        e.starts_with("22:") && e.contains("revocation.redis.url"),
        "{e}"
    );
    assert!(
        e.contains("expected redis://") && !e.contains("s3cret"),
        "{e}"
    );
    let e = errors("{ url: \"rediss://cache:6380\" }");
    assert!(e.contains("not supported yet"), "{e}");
    let e = errors("{ key_prefix: x }");
    assert!(e.contains("give url or url_env"), "{e}");
    let e = errors("{ url: \"redis://cache\", resync_interval: 0s, key_prefix: \"a b\" }");
    assert!(
        e.contains("revocation.redis.resync_interval: \"0s\" must be more than zero"),
        "{e}"
    );
    assert!(e.contains("revocation.redis.key_prefix"), "{e}");
    let e = errors("{ url_env: PORTCULLIS_TEST_UNSET_REDIS_URL }");
    assert!(
        e.contains("PORTCULLIS_TEST_UNSET_REDIS_URL is not set"),
        "{e}"
    );
    let both =
        format!("{GOOD}revocation:\n  state_file: /tmp/x\n  redis: {{ url: \"redis://cache\" }}\n");
    let e = load_str(&both, &crate::support::fixtures())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("revocation.state_file") && e.contains("not both"),
        "{e}"
    );
}

#[test]
fn tls_files_are_checked_when_the_config_compiles() {
    use crate::support::tls::TestCa;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let (cert, key) = ca.server(&["api.test"]).write(dir.path(), "api");
    let (_, other_key) = ca.server(&["api.test"]).write(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let with_tls = |tls: &str| {
        GOOD.replacen(
            "    address: \"127.0.0.1:8080\"\n",
            &format!("    address: \"0.0.0.0:8443\"\n    tls:\n{tls}"),
            1,
        )
    };
    let pair = |c: &std::path::Path, k: &std::path::Path| {
        format!(
            "      certificates:\n        - cert_file: \"{}\"\n          key_file: \"{}\"\n",
            c.display(),
            k.display()
        )
    };
    let ok = load_str(&with_tls(&pair(&cert, &key)), &crate::support::fixtures()).unwrap();
    assert!(ok.snapshot.listeners[0].tls.is_some());
    assert!(
        ok.warnings
            .iter()
            .all(|w| !w.to_string().contains("plain HTTP")),
        "TLS on a public address is not warned about"
    );

    let error = |tls: String| {
        load_str(&with_tls(&tls), &crate::support::fixtures())
            .unwrap_err()
            .to_string()
    };
    let e = error(pair(&dir.path().join("missing.crt"), &key));
    assert!(
        e.starts_with("7:")
            && e.contains("listeners[0].tls.certificates[0].cert_file: cannot read"),
        "{e}"
    );
    let e = error(pair(&cert, &other_key));
    assert!(
        e.starts_with("8:") && e.contains("key_file") && e.contains("does not match"),
        "{e}"
    );
    let e = error(pair(&garbage, &key));
    assert!(
        e.contains("cert_file") && e.contains("not a PEM certificate"),
        "{e}"
    );
    let e = error(pair(&cert, &cert));
    assert!(
        e.contains("key_file") && e.contains("no PEM private key"),
        "{e}"
    );
    let e = error(format!(
        "{}      min_version: \"1.1\"\n      client_auth: {{ mode: required }}\n",
        pair(&cert, &key)
    ));
    assert!(
        e.contains("min_version") && e.contains("\"1.1\" is not a TLS version"),
        "{e}"
    );
    assert!(
        e.contains("client_auth.ca_file") && e.contains("need the clients' CA"),
        "{e}"
    );
    let e = error(format!(
        "{}          server_names: [\"api.test\", \"not a host\"]\n",
        pair(&cert, &key)
    ));
    assert!(
        e.contains("certificates[0].server_names")
            && e.contains("\"not a host\" is not a host name"),
        "{e}"
    );
}

#[test]
fn an_expired_certificate_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["old.test".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.path().join("old.crt"), dir.path().join("old.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let yaml = GOOD.replacen(
        "    address: \"127.0.0.1:8080\"\n",
        &format!(
            "    address: \"127.0.0.1:8443\"\n    tls:\n      certificates:\n        - cert_file: \"{}\"\n          key_file: \"{}\"\n",
            c.display(),
            k.display()
        ),
        1,
    );
    let compiled = load_str(&yaml, &crate::support::fixtures()).unwrap();
    let warnings: Vec<String> = compiled.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("7:") && w.contains("has expired")),
        "{warnings:?}"
    );
}

#[test]
fn upstream_tls_settings_are_checked() {
    let with = |upstream: &str| GOOD.replacen("    url: \"http://127.0.0.1:9000\"\n", upstream, 1);
    let e = load_str(
        &with("    url: \"http://127.0.0.1:9000\"\n    tls: { server_name: billing.internal }\n"),
        &crate::support::fixtures(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("upstreams[0].tls: tls settings need an https:// url"),
        "{e}"
    );
    let e = load_str(
        &with("    url: \"https://127.0.0.1:9000\"\n    tls: { ca_file: missing.pem, client_cert_file: x.pem }\n"),
        &crate::support::fixtures(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("upstreams[0].tls.ca_file: cannot read"), "{e}");
    assert!(
        e.contains("client_cert_file and client_key_file go together"),
        "{e}"
    );
}

#[test]
fn rate_limits_compile_per_route_and_refuse_what_cannot_work_with_their_location() {
    let yaml = format!(
        "{GOOD}rate_limits:\n  max_keys: 5000\n  default:\n    - {{ key: ip, rate: 100/s, burst: 200 }}\n    - {{ key: [client_id, route], rate: 5/10s }}\n"
    );
    let s = load_str(&yaml, &crate::support::fixtures())
        .unwrap()
        .snapshot;
    let names = |i: usize| {
        let l = &s.routes[i].rate_limits;
        let names = |v: &[std::sync::Arc<portcullis::rate_limit::RateLimit>]| {
            v.iter().map(|l| l.name.to_string()).collect::<Vec<_>>()
        };
        (names(&l.before_auth), names(&l.after_auth))
    };
    // The protected route: the ip limit before authentication, the identity one after; the
    // public one has no identity to count by.
    assert_eq!(
        names(0),
        (vec!["ip".to_owned()], vec!["route_client_id".to_owned()])
    );
    assert_eq!(names(1), (vec!["ip".to_owned()], vec![]));
    let limit = &s.routes[0].rate_limits.after_auth[0];
    assert_eq!(
        (limit.quota.interval, limit.quota.burst),
        (2_000_000_000, 5)
    );
    assert_eq!(
        s.routes[0].rate_limits.policy.as_ref().unwrap(),
        "\"ip\";q=200;w=2, \"route_client_id\";q=5;w=10"
    );
    assert_eq!(s.rate_limiting.max_keys, 5000);

    let bad = GOOD
        .replace(
            "    upstream: orders\n    auth: public",
            "    upstream: orders\n    auth: public\n    rate_limit: { key: sub, rate: 1/s }",
        )
        .replace(
            "    match: { path_prefix: /orders/ }\n    upstream: orders\n",
            "    match: { path_prefix: /orders/ }\n    upstream: orders\n    rate_limit:\n      - { key: [ip, tenant], rate: 1/s }\n      - { key: ip, rate: often }\n      - { key: ip, rate: 1/s, burst: 0 }\n      - { key: client_id, rate: 1/s }\n      - { key: client_id, rate: 2/s }\n",
        );
    let bad = format!("{bad}rate_limits: {{ mode: redis }}\n");
    let errors = load_str(&bad, &crate::support::fixtures()).unwrap_err().0;
    let mut found: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e.line.unwrap(), e.path.as_str()))
        .collect();
    found.sort();
    let expect = [
        (18, "routes[0].rate_limit[0].key"),
        (19, "routes[0].rate_limit[1].rate"),
        (20, "routes[0].rate_limit[2].burst"),
        (22, "routes[0].rate_limit[4].name"),
        (27, "routes[1].rate_limit.key"),
        (28, "rate_limits.mode"),
    ];
    assert_eq!(found, expect, "{errors:#?}");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let text = text.join("\n");
    for message in [
        "\"tenant\" is not a key part (known: ip, route, issuer, client_id, sub)",
        "\"often\" is not a rate",
        "two limits named \"client_id\"",
        "a public route has no token to count by",
        "revocation.redis, which is not configured",
    ] {
        assert!(text.contains(message), "{message}\n{text}");
    }
}

#[test]
fn dpop_hosts_are_host_names_in_the_form_a_proof_is_compared_in() {
    let with = |hosts: &str| format!("{GOOD}dpop_proofs: {{ hosts: {hosts} }}\n");
    let ok = load_str(
        &with("[API.Example.com., \"api.example.com:8443\"]"),
        &crate::support::fixtures(),
    )
    .unwrap();
    assert_eq!(
        ok.snapshot.dpop.hosts,
        ["api.example.com", "api.example.com:8443"]
    );
    for bad in [
        "[\"*.example.com\"]",
        "[\"api.example.com:0443\"]",
        "[\"api.example.com:99999\"]",
        "[\"[::1]\"]",
        "[\"user@api.example.com\"]",
        "[]",
    ] {
        let errors = load_str(&with(bad), &crate::support::fixtures())
            .unwrap_err()
            .0;
        assert_eq!(errors.len(), 1, "{bad}: {errors:#?}");
        assert_eq!(errors[0].path, "dpop_proofs.hosts", "{bad}");
    }
}
