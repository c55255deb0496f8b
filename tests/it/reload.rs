//! Configuration hot reload: a changed file applies without dropping in-flight requests; an
//! invalid file is refused and the old configuration keeps serving.

use crate::support::keyserver::{fixture_jwks, KeyServer};
use crate::support::*;
use portcullis::reload::ReloadOutcome;

fn config(echo: std::net::SocketAddr, gated: std::net::SocketAddr, extra_route: &str) -> String {
    format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
admin: {{ address: "{{admin}}" }}
issuers:
  - {{ id: corp, issuer: "{ISSUER}", jwks_file: "{jwks}", audiences: ["{AUDIENCE}"] }}
upstreams:
  - {{ id: echo, url: "http://{echo}" }}
  - {{ id: gated, url: "http://{gated}" }}
routes:
  - {{ id: slow, match: {{ path_prefix: /slow }}, upstream: gated, auth: public }}
  - {{ id: api, match: {{ path_prefix: /api }}, upstream: echo, auth: public }}
{extra_route}"#,
        jwks = fixtures().join("jwks.json").display()
    )
}

/// Replace the config file's routes part, keeping the addresses the gateway was started with.
fn rewrite(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from));
    replace_file(path, &text.replace(from, to));
}

/// Write a new file and rename it over the old one, as Kubernetes' symlink swap does atomically.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A gateway reloading from a config file in a temporary directory (kept alive by the caller),
/// with an echo and a gated upstream.
async fn reloading_gateway() -> (
    TestGateway,
    GatedUpstream,
    std::path::PathBuf,
    tempfile::TempDir,
) {
    let echo = echo_upstream().await;
    let gated = gated_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config(echo, gated.addr, "")).unwrap();
    let gw = TestGateway::start_reloading(&path);
    (gw, gated, path, dir)
}

async fn next_reload(gw: &mut TestGateway) -> ReloadOutcome {
    gw.reloads.changed().await.unwrap();
    gw.reloads.borrow_and_update().clone().unwrap()
}

#[tokio::test]
async fn a_new_route_applies_without_dropping_an_in_flight_request() {
    let (mut gw, mut gated, path, _dir) = reloading_gateway().await;
    let c = client();
    assert_eq!(c.get(gw.url("/new")).send().await.unwrap().status(), 404);

    // A slow request is in flight on the old configuration.
    let slow = tokio::spawn(c.get(gw.url("/slow/report")).send());
    gated.arrived.recv().await.unwrap();

    rewrite(
        &path,
        "routes:\n",
        "routes:\n  - { id: new, match: { path: /new }, upstream: echo, auth: public }\n",
    );
    assert_eq!(
        next_reload(&mut gw).await,
        ReloadOutcome::Applied {
            restart_needed: vec![]
        }
    );
    assert_eq!(c.get(gw.url("/new")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(gw.url("/api/x")).send().await.unwrap().status(), 200);

    gated.release.send(true).unwrap();
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(slow.text().await.unwrap(), "released");
}

#[tokio::test]
async fn an_invalid_reload_is_refused_and_the_old_config_keeps_serving() {
    let (mut gw, _gated, path, _dir) = reloading_gateway().await;

    rewrite(
        &path,
        "upstream: echo, auth: public }",
        "upstream: nowhere, auth: public }",
    );
    match next_reload(&mut gw).await {
        ReloadOutcome::Rejected(errors) => {
            assert!(
                errors.to_string().contains("unknown upstream \"nowhere\""),
                "{errors}"
            );
            assert!(errors.0[0].line.is_some());
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        client()
            .get(gw.url("/api/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains("portcullis_config_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
}

/// A decision service alone (no listener, routes without upstream) cannot replace a running
/// proxy's configuration: its listeners stay bound until a restart and would admit requests
/// they have nowhere to send. Refused; the proxy keeps serving.
#[tokio::test]
async fn a_reload_to_a_decision_service_alone_is_refused_while_proxying() {
    let (mut gw, _gated, path, _dir) = reloading_gateway().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let listeners = text.lines().find(|l| l.starts_with("listeners:")).unwrap();
    let decision = text
        .replace(
            listeners,
            &format!(
                "decision: {{ address: \"{}\", protocol: nginx, trusted_proxies: [\"127.0.0.1\"] }}",
                closed_port()
            ),
        )
        .replace("upstream: gated, ", "")
        .replace("upstream: echo, ", "");
    replace_file(&path, &decision);
    match next_reload(&mut gw).await {
        ReloadOutcome::Rejected(errors) => assert_eq!(
            errors.to_string(),
            "routes[0].upstream: required: this process serves proxy listeners until it restarts"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        client()
            .get(gw.url("/api/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn listener_changes_are_reported_as_needing_a_restart() {
    let (mut gw, _gated, path, _dir) = reloading_gateway().await;
    let moved = closed_port();
    rewrite(&path, &gw.addr.to_string(), &moved.to_string());
    assert_eq!(
        next_reload(&mut gw).await,
        ReloadOutcome::Applied {
            restart_needed: vec!["listeners".into()]
        }
    );
    // Still serving where it listens.
    assert_eq!(
        client()
            .get(gw.url("/api/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn remote_keys_carry_over_a_reload_without_refetching() {
    let server = KeyServer::start(fixture_jwks()).await;
    let echo = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    let yaml = format!(
        "listeners: [{{ name: t, address: \"{{listen}}\" }}]\nissuers:\n  - {{ id: idp, issuer: \"{}\", discovery: true, audiences: [\"{AUDIENCE}\"] }}\nupstreams: [{{ id: e, url: \"http://{echo}\" }}]\nroutes:\n  - {{ id: api, match: {{ path_prefix: /api }}, upstream: e }}\n",
        server.issuer()
    );
    std::fs::write(&path, yaml).unwrap();
    let mut gw = TestGateway::start_reloading(&path);
    let mut status = gw.snapshots.current().issuers[0].keys.status().unwrap();
    status.wait_for(|s| s.successes >= 1).await.unwrap();

    rewrite(&path, "path_prefix: /api", "path_prefix: /v2");
    assert!(matches!(
        next_reload(&mut gw).await,
        ReloadOutcome::Applied { .. }
    ));
    assert!(
        gw.snapshots.current().keys_ready(),
        "no 503 window after a reload"
    );
    let mut claims = claims("");
    claims["iss"] = serde_json::json!(server.issuer());
    let resp = client()
        .get(gw.url("/v2/x"))
        .bearer_auth(Issuer::rsa(&claims))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        server.discovery_fetches(),
        1,
        "unchanged key source: nothing refetched"
    );
}

#[tokio::test]
async fn rate_limit_budgets_carry_over_a_reload_and_new_limits_apply_at_once() {
    let echo = echo_upstream().await;
    let gated = gated_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    let limits = "rate_limits: { default: { key: ip, rate: 1/h, burst: 2 } }\n";
    std::fs::write(&path, format!("{}{limits}", config(echo, gated.addr, ""))).unwrap();
    let mut gw = TestGateway::start_reloading(&path);
    let status = |gw: &TestGateway| {
        let url = gw.url("/api/x");
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(&gw).await, 200);
    assert_eq!(status(&gw).await, 200);
    assert_eq!(status(&gw).await, 429);
    // A reload that touches neither the limit nor the table: the budget spent stays spent.
    rewrite(&path, "/api }", "/api, methods: [GET] }");
    assert_eq!(
        next_reload(&mut gw).await,
        ReloadOutcome::Applied {
            restart_needed: vec![]
        }
    );
    assert_eq!(status(&gw).await, 429);
    // A larger burst applies at once, to the same budget; a new table size needs a restart.
    rewrite(
        &path,
        "rate: 1/h, burst: 2 }",
        "rate: 1/h, burst: 3 }, max_keys: 2000",
    );
    assert_eq!(
        next_reload(&mut gw).await,
        ReloadOutcome::Applied {
            restart_needed: vec!["rate_limits.max_keys".into()]
        }
    );
    assert_eq!(status(&gw).await, 200);
    assert_eq!(status(&gw).await, 429);
}

#[tokio::test]
async fn a_route_removed_by_a_reload_leaves_the_metrics() {
    let echo = echo_upstream().await;
    let gated = gated_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    let old =
        "  - { id: retired, match: { path_prefix: /retired }, upstream: echo, auth: public }\n";
    std::fs::write(&path, config(echo, gated.addr, old)).unwrap();
    let mut gw = TestGateway::start_reloading(&path);
    let get = |path: &str| client().get(gw.url(path)).send();
    assert_eq!(get("/retired/x").await.unwrap().status(), 200);
    assert_eq!(get("/api/x").await.unwrap().status(), 200);
    let series = |metrics: &str, route: &str| {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(&format!("route=\"{route}\"")))
            .count()
    };
    let before = gw.metrics_text().await;
    assert!(series(&before, "retired") > 0, "{before}");
    rewrite(&path, old, "");
    assert_eq!(
        next_reload(&mut gw).await,
        ReloadOutcome::Applied {
            restart_needed: vec![]
        }
    );
    let after = gw.metrics_text().await;
    assert_eq!(series(&after, "retired"), 0, "{after}");
    // The routes still served keep their series and counts.
    assert!(
        after.contains(r#"portcullis_requests_total{method="GET",mode="proxy",route="api",status_class="2xx"} 1"#),
        "{after}"
    );
}
