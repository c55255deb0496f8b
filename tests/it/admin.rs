//! The admin listener: Prometheus metrics that move with traffic, health and readiness.

use crate::support::keyserver::{fixture_jwks, KeyServer, Mode};
use crate::support::*;
use serde_json::json;

/// A strict reading of the Prometheus text format: `# HELP`/`# TYPE` comments and
/// `name{label="value",...} number` samples. Returns the samples.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "bad comment: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels: {line}");
        }
        samples.push((series.to_owned(), value));
    }
    samples
}

async fn metrics(gw: &TestGateway) -> Vec<(String, f64)> {
    let resp = client().get(gw.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    parse_prometheus(&resp.text().await.unwrap())
}

fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_parse_and_counters_move_with_requests_and_rejections() {
    let gw = standard_gateway().await;
    let before = metrics(&gw).await;
    let ok = r#"portcullis_requests_total{method="GET",mode="proxy",route="orders-read",status_class="2xx"}"#;
    let missing =
        r#"portcullis_rejections_total{mode="proxy",reason="missing",route="orders-read"}"#;
    let expired =
        r#"portcullis_rejections_total{mode="proxy",reason="expired",route="orders-read"}"#;
    let scope = r#"portcullis_rejections_total{mode="proxy",reason="insufficient_scope",route="orders-read"}"#;
    let no_route = r#"portcullis_rejections_total{mode="proxy",reason="no_route",route="-"}"#;
    assert_eq!(value(&before, ok), 0.0);

    let c = client();
    let valid = Issuer::rsa(&claims("read:orders"));
    for _ in 0..2 {
        assert_eq!(
            c.get(gw.url("/orders/1"))
                .bearer_auth(&valid)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        c.get(gw.url("/orders/1")).send().await.unwrap().status(),
        401
    );
    let mut old = claims("read:orders");
    old["exp"] = json!(now() - 3600);
    assert_eq!(
        c.get(gw.url("/orders/1"))
            .bearer_auth(Issuer::rsa(&old))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let narrow = Issuer::rsa(&claims("profile"));
    assert_eq!(
        c.get(gw.url("/orders/1"))
            .bearer_auth(narrow)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        c.get(gw.url("/nowhere")).send().await.unwrap().status(),
        404
    );

    let after = metrics(&gw).await;
    assert_eq!(value(&after, ok), 2.0);
    assert_eq!(value(&after, missing), 1.0);
    assert_eq!(value(&after, expired), 1.0);
    assert_eq!(value(&after, scope), 1.0);
    assert_eq!(value(&after, no_route), 1.0);
    assert_eq!(
        value(
            &after,
            r#"portcullis_request_duration_seconds_count{route="orders-read"}"#
        ),
        5.0
    );
    assert_eq!(
        value(
            &after,
            r#"portcullis_upstream_duration_seconds_count{route="orders-read"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            &format!(
                r#"portcullis_build_info{{commit="{}",version="0.1.0"}}"#,
                env!("PORTCULLIS_COMMIT")
            )
        ),
        1.0
    );
    assert_eq!(
        value(&after, r#"portcullis_jwks_keys_loaded{issuer="corp"}"#),
        2.0
    );
    // Labels never carry request data.
    let text: String = after.iter().map(|(s, _)| s.as_str()).collect();
    assert!(!text.contains("alice") && !text.contains("/orders/1"));
}

#[tokio::test]
async fn healthz_is_alive() {
    let gw = standard_gateway().await;
    let resp = client().get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn the_admin_endpoints_are_not_on_the_public_listener() {
    let gw = standard_gateway().await;
    let resp = client().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn readyz_flips_when_issuer_keys_load_and_key_fetches_are_counted() {
    let server = KeyServer::start(fixture_jwks()).await;
    server.set_mode(Mode::Fail);
    let echo = echo_upstream().await;
    let yaml = format!(
        "listeners: [{{ name: t, address: \"{{listen}}\" }}]\nissuers:\n  - {{ id: idp, issuer: \"{}\", discovery: true, audiences: [a] }}\nupstreams: [{{ id: e, url: \"http://{echo}\" }}]\nroutes: [{{ id: r, match: {{ path_prefix: / }}, upstream: e }}]\n",
        server.issuer()
    );
    let gw = TestGateway::start(&yaml);
    let mut status = gw.snapshots.current().issuers[0].keys.status().unwrap();
    status.wait_for(|s| s.attempts >= 1).await.unwrap();

    let resp = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["issuer_keys:idp"], "keys not loaded");

    server.set_mode(Mode::Serve);
    status.wait_for(|s| s.successes >= 1).await.unwrap();
    let resp = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let samples = metrics(&gw).await;
    assert!(
        value(
            &samples,
            r#"portcullis_jwks_fetches_total{issuer="idp",result="error"}"#
        ) >= 1.0
    );
    assert_eq!(
        value(
            &samples,
            r#"portcullis_jwks_fetches_total{issuer="idp",result="success"}"#
        ),
        1.0
    );
    assert!(
        value(
            &samples,
            r#"portcullis_jwks_key_set_age_seconds{issuer="idp"}"#
        ) >= 0.0
    );
}

/// `admin.probes_address`: kubelet and Prometheus reach `/healthz`, `/readyz` and `/metrics` on
/// the pod IP while the admin API stays on the private admin listener. Nothing that changes state
/// is served there, even with the right token.
#[tokio::test]
async fn the_probes_listener_serves_probes_and_metrics_but_never_the_admin_api() {
    use crate::support::revocations::{with_admin, ADMIN_TOKEN};
    let echo = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_admin(
        &format!(
            r#"listeners: [{{ name: t, address: "{{listen}}" }}]
upstreams: [{{ id: e, url: "http://{echo}" }}]
routes: [{{ id: r, match: {{ path_prefix: / }}, upstream: e, auth: public }}]"#
        ),
        dir.path(),
        "",
    )
    .replace("admin: {", "admin: { probes_address: \"{probes}\",");
    let gw = TestGateway::start(&yaml);
    let probes = gw.probes.expect("a probes listener");
    let get = |path: &str| client().get(format!("http://{probes}{path}")).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["ready"],
        true
    );
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("portcullis_"), "{metrics}");

    let entry = json!({"type": "jti", "jti": "from-the-pod-network", "exp": 4_000_000_000u64});
    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let resp = client()
            .request(method.clone(), format!("http://{probes}/revocations"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&entry)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            404,
            "{method} /revocations on the probes listener"
        );
    }
    assert_eq!(get("/").await.unwrap().status(), 404);
    // The same write is accepted on the admin listener, so the 404s above are the listener's
    // doing, not a bad request.
    let resp = client()
        .post(gw.admin_url("/revocations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

/// What an on-call engineer and a dashboard read before any traffic: the process metrics, the
/// build and the configuration serving (its digest, which replicas can be compared by, and when
/// it was applied), and every reload and key-fetch result at 0 so `rate()` works from the first
/// scrape. An applied reload changes the digest and the timestamp.
#[tokio::test]
async fn metrics_describe_the_process_build_and_configuration_from_the_first_scrape() {
    let echo = echo_upstream().await;
    let keys = KeyServer::start(fixture_jwks()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    let yaml = format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
issuers: [{{ id: remote, issuer: "{ISSUER}", jwks_uri: "{}", audiences: ["{AUDIENCE}"] }}]
upstreams: [{{ id: e, url: "http://{echo}" }}]
routes: [{{ id: r, match: {{ path_prefix: / }}, upstream: e, auth: public }}]
"#,
        keys.jwks_url()
    );
    std::fs::write(&path, &yaml).unwrap();
    let gw = TestGateway::start_reloading(&path);
    let text = gw.metrics_text().await;
    let samples = parse_prometheus(&text);
    for series in [
        "portcullis_config_reloads_total{result=\"applied\"}",
        "portcullis_config_reloads_total{result=\"rejected\"}",
        "portcullis_jwks_fetches_total{issuer=\"remote\",result=\"error\"}",
    ] {
        assert_eq!(value(&samples, series), 0.0, "{series}\n{text}");
    }
    assert!(
        value(&samples, "process_resident_memory_bytes") > 0.0,
        "{text}"
    );
    assert!(
        value(&samples, "process_cpu_seconds_total") >= 0.0,
        "{text}"
    );
    let build = samples
        .iter()
        .find(|(s, _)| s.starts_with("portcullis_build_info{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        build.0.contains("commit=\"") && build.0.contains("version=\""),
        "{build:?}"
    );
    let digest = |samples: &[(String, f64)]| {
        let info = samples
            .iter()
            .filter(|(s, _)| s.starts_with("portcullis_config_info{"))
            .collect::<Vec<_>>();
        assert_eq!(info.len(), 1, "{info:?}");
        info[0].0.clone()
    };
    let served = std::fs::read(&path).unwrap();
    let sha = ring::digest::digest(&ring::digest::SHA256, &served);
    let hex: String = sha.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest(&samples),
        format!("portcullis_config_info{{sha256=\"{hex}\"}}")
    );
    let applied_at = value(
        &samples,
        "portcullis_config_last_reload_success_timestamp_seconds",
    );
    assert!((applied_at - now() as f64).abs() < 600.0, "{applied_at}");

    let mut reloads = gw.reloads.clone();
    // Replaced in one step (as kubelet does), so the watcher never reads a half-written file.
    let tmp = dir.path().join("gateway.yaml.tmp");
    std::fs::write(
        &tmp,
        format!("{}\n# changed\n", String::from_utf8(served).unwrap()),
    )
    .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    reloads
        .wait_for(|o| matches!(o, Some(portcullis::reload::ReloadOutcome::Applied { .. })))
        .await
        .unwrap();
    let after = parse_prometheus(&gw.metrics_text().await);
    assert_eq!(
        value(
            &after,
            "portcullis_config_reloads_total{result=\"applied\"}"
        ),
        1.0
    );
    assert_ne!(
        digest(&after),
        digest(&samples),
        "the digest follows the file"
    );
    assert!(
        value(
            &after,
            "portcullis_config_last_reload_success_timestamp_seconds"
        ) >= applied_at
    );
}

/// Every reason a route can be refused with is exported at 0 from the first scrape, per route:
/// a protected route's credential, token, revocation and scope reasons, every route's upstream
/// reasons, and the pre-routing reasons under route `-`; a public route has no token reasons.
#[tokio::test]
async fn rejection_reasons_are_at_zero_per_route_from_the_first_scrape() {
    let gw = standard_gateway().await;
    let text = gw.metrics_text().await;
    let samples = parse_prometheus(&text);
    for (route, reason) in [
        ("orders-read", "insufficient_scope"),
        ("orders-read", "expired"),
        ("orders-read", "revoked_subject"),
        ("orders-read", "missing"),
        ("orders-read", "upstream_unavailable"),
        ("public", "upstream_timeout"),
        ("-", "no_route"),
        ("-", "path_encoded_separator"),
        ("-", "host_missing"),
    ] {
        let series = format!(
            "portcullis_rejections_total{{mode=\"proxy\",reason=\"{reason}\",route=\"{route}\"}}"
        );
        assert_eq!(value(&samples, &series), 0.0, "{series}\n{text}");
    }
    assert!(
        !text.contains(
            "portcullis_rejections_total{mode=\"proxy\",reason=\"missing\",route=\"public\"}"
        ),
        "{text}"
    );
    // A refusal counts on the series that was already there.
    let resp = client().get(gw.url("/orders/1")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let after = parse_prometheus(&gw.metrics_text().await);
    assert_eq!(
        value(
            &after,
            "portcullis_rejections_total{mode=\"proxy\",reason=\"missing\",route=\"orders-read\"}"
        ),
        1.0
    );
}

/// The start-up lines name every admin endpoint, `/revocations` included, and say when the
/// revocations API is off (no admin token), so nobody looks for it on a gateway without one.
#[tokio::test]
async fn the_start_up_lines_list_every_admin_endpoint() {
    let echo = echo_upstream().await;
    let base = format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
upstreams: [{{ id: e, url: "http://{echo}" }}]
routes: [{{ id: r, match: {{ path_prefix: / }}, upstream: e, auth: public }}]
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let with_token = crate::support::revocations::with_admin(&base, dir.path(), "");
    let mut gw = GatewayProcess::start(&with_token, dir.path()).await;
    let line = gw.wait_for_log("admin endpoints").await;
    assert!(
        line.contains("/metrics /healthz /readyz /revocations (GET, POST, DELETE"),
        "{line}"
    );
    let other = tempfile::tempdir().unwrap();
    let without = format!("{base}admin: {{ address: \"{{admin}}\" }}\n");
    let mut gw = GatewayProcess::start(&without, other.path()).await;
    let line = gw.wait_for_log("admin endpoints").await;
    assert!(
        line.contains("/revocations is disabled (set admin.token_file or admin.token_env)"),
        "{line}"
    );
}
