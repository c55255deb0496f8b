//! Logs never contain a token, Authorization, Cookie or access_token value (at trace level, so
//! the admission trace is covered too).

use crate::support::logs::captured;
use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn tokens_cookies_and_query_tokens_never_reach_the_logs() {
    // The gateway's own subscriber set-up, at the most verbose level anyone could ask for.
    let captured = captured();

    let gw = standard_gateway().await;
    let c = client();
    let valid = Issuer::rsa(&claims("read:orders"));
    let mut expired_claims = claims("read:orders");
    expired_claims["exp"] = json!(now() - 3600);
    let expired = Issuer::rsa(&expired_claims);
    let forged = Issuer::rsa_untrusted("test-rsa-1", &claims("read:orders"));
    for token in [&valid, &expired, &forged] {
        c.get(gw.url("/orders/1"))
            .bearer_auth(token)
            .header("cookie", "session=cookie-secret-value")
            .header("proxy-authorization", "Basic cHJveHktc2VjcmV0")
            .send()
            .await
            .unwrap();
    }
    c.get(gw.url(&format!("/public/x?access_token={valid}")))
        .send()
        .await
        .unwrap();
    // A failing upstream makes Pingora log an error line describing the request.
    let failed = c
        .get(gw.url(&format!("/down?access_token={valid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    c.get(gw.url("/orders/1"))
        .header("authorization", "Bearer not-a-jwt-secret")
        .send()
        .await
        .unwrap();
    drop(gw); // stop the gateway so every log line is written

    let logs = captured.text();
    assert!(
        logs.contains("portcullis::access"),
        "the access log was captured"
    );
    let served = logs
        .lines()
        .find(|l| {
            l.contains("portcullis::access")
                && l.contains("\"status\":200")
                && l.contains("\"route\":\"orders-read\"")
        })
        .expect("an access line for the served request");
    for field in [
        "request_id",
        "method",
        "path",
        "reason",
        "latency_ms",
        "upstream_ms",
        "issuer",
        "client_id",
        "sub",
        "jti",
    ] {
        assert!(
            served.contains(&format!("\"{field}\"")),
            "access line lacks {field}: {served}"
        );
    }
    for secret in [
        valid.as_str(),
        valid.split('.').nth(2).unwrap(), // any part of a token, e.g. its signature
        expired.split('.').nth(1).unwrap(),
        forged.split('.').nth(2).unwrap(),
        "cookie-secret-value",
        "cHJveHktc2VjcmV0",
        "not-a-jwt-secret",
    ] {
        let line = logs.lines().find(|l| l.contains(secret));
        assert!(
            line.is_none(),
            "a secret reached the logs: {}",
            line.unwrap_or_default()
        );
    }
}

/// The access line of a request refused after its token was verified says who was refused
/// (`issuer`, `sub`, `client_id`, `jti`), and a request that matched no route says which path
/// it asked for (without the query), so "who was refused a write, and where" can be answered.
#[tokio::test]
async fn refusals_after_verification_name_the_identity_and_no_route_names_the_path() {
    let captured = captured();
    let gw = standard_gateway().await;
    let c = client();
    let token = Issuer::rsa(&claims("read:orders"));
    // The admin route needs the `admin` scope: 403 insufficient_scope for a verified token.
    let refused = c
        .get(gw.url("/orders/1"))
        .header("host", "admin.example.com")
        .header("x-request-id", "log-test-insufficient-scope")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let unrouted = c
        .get(gw.url("/nowhere/at-all?access_token=query-secret-value"))
        .header("x-request-id", "log-test-no-route")
        .send()
        .await
        .unwrap();
    assert_eq!(unrouted.status(), 404);
    drop(gw); // stop the gateway so every log line is written

    let line = |id: &str| -> serde_json::Value {
        let text = captured.text();
        let line = text
            .lines()
            .find(|l| l.contains("portcullis::access") && l.contains(id))
            .unwrap_or_else(|| panic!("no access line for {id}"))
            .to_owned();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        value.get("fields").cloned().unwrap_or(value)
    };
    let refused = line("log-test-insufficient-scope");
    assert_eq!(refused["status"], 403, "{refused}");
    assert_eq!(refused["reason"], "insufficient_scope", "{refused}");
    assert_eq!(refused["route"], "admin", "{refused}");
    assert_eq!(refused["issuer"], "corp", "{refused}");
    assert_eq!(refused["sub"], "alice", "{refused}");
    assert_eq!(refused["client_id"], "orders-ui", "{refused}");
    assert_eq!(refused["jti"], "jti-1", "{refused}");
    // Latency in milliseconds with at most microsecond digits.
    let latency = refused["latency_ms"].to_string();
    assert!(
        latency.split('.').nth(1).is_none_or(|d| d.len() <= 3),
        "{latency}"
    );
    let unrouted = line("log-test-no-route");
    assert_eq!(unrouted["status"], 404, "{unrouted}");
    assert_eq!(unrouted["reason"], "no_route", "{unrouted}");
    assert_eq!(unrouted["path"], "/nowhere/at-all", "{unrouted}");
    assert_eq!(unrouted["sub"], "-", "{unrouted}");
    assert!(!captured.text().contains("query-secret-value"));
}

/// The access-log fields docs/metrics.md documents, read from its table.
fn documented_access_fields() -> Vec<String> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"),
    )
    .unwrap();
    let table = doc
        .split("### Access-log fields")
        .nth(1)
        .expect("docs/metrics.md has an access-log field table");
    let fields: Vec<String> = table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    assert!(fields.len() >= 15, "{fields:?}");
    fields
}

/// The access line of the request with `id`, with its fields (flattened JSON).
fn access_line(text: &str, id: &str) -> serde_json::Map<String, serde_json::Value> {
    let line = text
        .lines()
        .find(|l| l.contains("portcullis::access") && l.contains(id))
        .unwrap_or_else(|| panic!("no access line for {id}"));
    match serde_json::from_str(line).unwrap() {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Every documented field, and nothing else, on an HTTPS request with a body: client address,
/// bounded user agent, body bytes both ways, the upstream's status, the TLS version and cipher.
#[tokio::test]
async fn an_access_line_has_exactly_the_documented_fields() {
    use crate::support::tls::*;
    let captured = captured();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("access log CA");
    let (cert, key) = ca.server(&["api.test"]).write(dir.path(), "api");
    let yaml = config(echo_upstream().await, closed_port(), closed_port()).replacen(
        "    address: \"{listen}\"\n",
        &format!(
            "    address: \"{{listen}}\"\n    tls:\n      certificates:\n        - cert_file: \"{}\"\n          key_file: \"{}\"\n",
            cert.display(),
            key.display()
        ),
        1,
    );
    let gw = TestGateway::start(&yaml);
    let https = https_client(&ca.pem(), None, &["api.test"], gw.addr);
    let long_agent = format!("probe/1.0 {}", "x".repeat(400));
    let resp = https
        .post(format!("https://api.test:{}/public/upload", gw.addr.port()))
        .header("x-request-id", "log-test-fields")
        .header("user-agent", &long_agent)
        .body("twelve bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    let plain = client()
        .get(gw.url("/nowhere"))
        .header("x-request-id", "log-test-plain-unrouted")
        .send()
        .await;
    // The listener speaks TLS: a plain request fails, and is no access line.
    assert!(plain.is_err() || plain.unwrap().status() == 400);
    let refused = https
        .get(format!("https://api.test:{}/orders/1", gw.addr.port()))
        .header("x-request-id", "log-test-refused-fields")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    drop(gw);

    let text = captured.text();
    let documented = documented_access_fields();
    for id in ["log-test-fields", "log-test-refused-fields"] {
        let line = access_line(&text, id);
        let mut keys: Vec<&str> = line
            .keys()
            .map(String::as_str)
            .filter(|k| !["timestamp", "level", "target", "message"].contains(k))
            .collect();
        keys.sort_unstable();
        let mut expected: Vec<&str> = documented.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(
            keys, expected,
            "{id}: the line and docs/metrics.md disagree"
        );
    }
    let ok = access_line(&text, "log-test-fields");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["upstream_status"], 200);
    assert_eq!(ok["request_bytes"], 12);
    assert_eq!(ok["response_bytes"].as_u64(), Some(body.len() as u64));
    let agent = ok["user_agent"].as_str().unwrap();
    assert!(
        agent.starts_with("probe/1.0 x") && agent.len() == 256,
        "{agent}"
    );
    let client_addr = ok["client_addr"].as_str().unwrap();
    assert!(
        client_addr
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .ip()
            .is_loopback(),
        "{client_addr}"
    );
    assert!(
        ok["tls_version"].as_str().unwrap().starts_with("TLSv1."),
        "{ok:?}"
    );
    assert!(
        ok["tls_cipher"].as_str().unwrap().starts_with("TLS"),
        "{ok:?}"
    );
    let refused = access_line(&text, "log-test-refused-fields");
    assert_eq!(refused["upstream_status"], -1);
    assert_eq!(refused["upstream_ms"], -1.0);
    assert_eq!(refused["user_agent"], "-");
    assert_eq!(refused["reason"], "missing");
}

/// Pingora's own lines (bridged from `log`) carry no `log.file`, `log.line` or `log.module_path`:
/// those name paths on the build machine.
#[tokio::test]
async fn pingora_lines_carry_no_build_machine_paths() {
    let captured = captured();
    let gw = standard_gateway().await;
    // An upstream that refuses connections: Pingora logs the failure itself (502; on a loaded
    // machine the connect may time out first, 504: logged by Pingora all the same).
    let resp = client().get(gw.url("/down/x")).send().await.unwrap();
    assert!(
        matches!(resp.status().as_u16(), 502 | 504),
        "{}",
        resp.status()
    );
    drop(gw);
    let text = captured.text();
    let pingora: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"target\":\"pingora"))
        .collect();
    assert!(!pingora.is_empty(), "no pingora line was captured");
    for line in pingora {
        assert!(
            !line.contains("\"log.") && !line.contains(".cargo/registry"),
            "{line}"
        );
    }
}

/// The value of `series` in a Prometheus text exposition (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// A refused client certificate, a missing one and a client refusing the gateway's certificate
/// are counted by reason in `portcullis_tls_handshake_failures_total` (from Pingora's own error
/// line, which names the peer and rustls' reason), every reason at 0 from the first scrape.
#[tokio::test]
async fn tls_handshake_failures_are_counted_by_reason() {
    use crate::support::tls::*;
    let _captured = captured();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server CA");
    let clients = TestCa::new("clients CA");
    let (cert, key) = ca.server(&["api.test"]).write(dir.path(), "api");
    let clients_ca = dir.path().join("clients-ca.crt");
    std::fs::write(&clients_ca, clients.pem()).unwrap();
    let yaml = config(echo_upstream().await, closed_port(), closed_port()).replacen(
        "    address: \"{listen}\"\n",
        &format!(
            "    address: \"{{listen}}\"\n    tls:\n      certificates:\n        - cert_file: \"{}\"\n          key_file: \"{}\"\n      client_auth: {{ mode: required, ca_file: \"{}\" }}\n",
            cert.display(),
            key.display(),
            clients_ca.display()
        ),
        1,
    );
    let gw = TestGateway::start(&yaml);
    let series =
        |reason: &str| format!("portcullis_tls_handshake_failures_total{{reason=\"{reason}\"}}");
    let before = gw.metrics_text().await;
    for reason in [
        "client_cert_missing",
        "client_cert_unknown_ca",
        "timeout",
        "other",
    ] {
        assert!(
            before.lines().any(|l| l.starts_with(&series(reason))),
            "{reason}: {before}"
        );
    }
    let url = format!("https://api.test:{}/public/x", gw.addr.port());
    let mallory = TestCa::new("someone else").client("mallory");
    let alice = clients.client("alice");
    for (trusted_ca, identity) in [
        (ca.pem(), None),                           // no client certificate
        (ca.pem(), Some(&mallory)),                 // a certificate from another CA
        (TestCa::new("other").pem(), Some(&alice)), // the client refuses the gateway's
    ] {
        let client = https_client(&trusted_ca, identity, &["api.test"], gw.addr);
        assert!(client.get(&url).send().await.is_err());
    }
    let ok = https_client(&ca.pem(), Some(&alice), &["api.test"], gw.addr);
    assert_eq!(ok.get(&url).send().await.unwrap().status(), 200);
    // Pingora logs (and so counts) the failure after the client has seen it.
    let expected = [
        ("client_cert_missing", 1.0),
        ("client_cert_unknown_ca", 1.0),
        ("server_cert_refused", 1.0),
    ];
    eventually(
        "the failures are counted",
        std::time::Duration::from_secs(10),
        || {
            let gw = &gw;
            let (before, expected) = (&before, &expected);
            async move {
                let now = gw.metrics_text().await;
                expected.iter().all(|(reason, n)| {
                    sample(&now, &series(reason)) - sample(before, &series(reason)) >= *n
                })
            }
        },
    )
    .await;
}
