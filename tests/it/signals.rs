//! Signals at the binary level. SIGTERM: the gateway stops accepting, lets an in-flight request
//! finish, and exits 0 as soon as it has drained (well before the grace period ends). SIGHUP:
//! the configuration is reloaded at once. The binary runs on sockets the test bound and handed
//! over; the test waits on the binary's log lines, never on time.

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_then_exits_0() {
    let mut gated = gated_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
admin: {{ address: "{{admin}}" }}
shutdown: {{ grace_period: 30s }}
upstreams: [{{ id: gated, url: "http://{}" }}]
routes: [{{ id: slow, match: {{ path_prefix: / }}, upstream: gated, auth: public }}]
"#,
        gated.addr
    );
    let mut gw = GatewayProcess::start(&yaml, dir.path()).await;
    let listen = gw.listen;

    let slow = tokio::spawn(client().get(format!("http://{listen}/report")).send());
    gated.arrived.recv().await.unwrap();

    let terminated = Instant::now();
    gw.signal("-TERM");
    // Pingora logs this when the accept loop has ended: nothing new is accepted after it.
    gw.wait_for_log(&format!("Shutting down {listen}")).await;
    let late = tokio::spawn(client().get(format!("http://{listen}/late")).send());

    gated.release.send(true).unwrap();
    let resp = slow.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "released");

    let status = tokio::task::spawn_blocking(move || {
        let status = gw.child.wait().unwrap();
        (status, gw)
    })
    .await
    .unwrap()
    .0;
    assert!(status.success(), "exit status {status:?}");
    assert!(
        terminated.elapsed() < Duration::from_secs(20),
        "it waited out the 30 s grace period"
    );
    assert!(
        late.await.unwrap().is_err(),
        "a connection made after SIGTERM was served"
    );
}

#[tokio::test]
async fn sighup_reloads_at_once_even_without_a_content_change() {
    let echo = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
admin: {{ address: "{{admin}}" }}
upstreams: [{{ id: e, url: "http://{echo}" }}]
routes: [{{ id: r, match: {{ path_prefix: / }}, upstream: e, auth: public }}]
"#
    );
    let mut gw = GatewayProcess::start(&yaml, dir.path()).await;
    gw.wait_for_log("SIGHUP reloads").await; // the handler is installed
    let metrics = format!("http://{}/metrics", gw.admin);
    let applied = "portcullis_config_reloads_total{result=\"applied\"} 1";
    let before = client()
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!before.contains(applied));

    // The file is unchanged, so only the signal can cause this reload.
    gw.signal("-HUP");
    gw.wait_for_log("configuration reloaded").await;
    let after = client()
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(after.contains(applied), "{after}");
    let resp = client()
        .get(format!("http://{}/x", gw.listen))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// The configuration of the drain tests: `/slow` waits at the gated upstream, the rest echoes.
fn two_upstreams(
    echo: std::net::SocketAddr,
    gated: std::net::SocketAddr,
    shutdown: &str,
) -> String {
    format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
admin: {{ address: "{{admin}}" }}
shutdown: {shutdown}
upstreams: [{{ id: echo, url: "http://{echo}" }}, {{ id: gated, url: "http://{gated}" }}]
routes:
  - {{ id: slow, match: {{ path_prefix: /slow }}, upstream: gated, auth: public }}
  - {{ id: load, match: {{ path_prefix: / }}, upstream: echo, auth: public }}
"#
    )
}

/// A rolling update sends SIGTERM while the load balancer still routes to the pod. During
/// `shutdown.drain_delay` the gateway keeps accepting, and every response says
/// `Connection: close` (RFC 9112 §9.6), so kept-alive clients move to a new connection after
/// their current request instead of reusing one the gateway is about to close. Under a
/// keep-alive load nothing fails, and a request in flight when the listeners close finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_keep_alive_load_without_a_failed_request() {
    let echo = echo_upstream().await;
    let mut gated = gated_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    // The delay only has to outlast the 200 requests below; the test waits on counts and logs.
    let yaml = two_upstreams(echo, gated.addr, "{ grace_period: 30s, drain_delay: 10s }")
        .replace("admin: {", "admin: { probes_address: \"{probes}\",");
    let mut gw = GatewayProcess::start(&yaml, dir.path()).await;
    let listen = gw.listen;

    let load = load::Load::start(listen, "/load", 8);
    load.wait_for_more(200).await;
    load.stats.assert_no_failure();
    assert_eq!(
        load.stats.closed.load(SeqCst),
        0,
        "kept alive before the drain"
    );
    let slow = tokio::spawn(client().get(format!("http://{listen}/slow")).send());
    gated.arrived.recv().await.unwrap();

    gw.signal("-TERM");
    gw.wait_for_log("SIGTERM: draining").await;
    load.mark_draining();
    // Load balancers that poll readiness take the replica out sooner.
    let ready = client()
        .get(format!("http://{}/readyz", gw.probes.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["checks"]["shutdown"],
        "draining"
    );
    load.wait_for_more(200).await;
    let stats = load.stop().await;
    stats.assert_no_failure();
    assert!(stats.after_drain.load(SeqCst) >= 200);
    assert_eq!(
        stats.kept_alive_after_drain.load(SeqCst),
        0,
        "a response during the drain kept its connection open"
    );

    // Then the listeners close, and the request in flight still completes.
    gw.wait_for_log("drain delay over; closing the listeners")
        .await;
    gw.wait_for_log(&format!("Shutting down {listen}")).await;
    gated.release.send(true).unwrap();
    let resp = slow.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "released");
    let (status, _) = gw.remaining_logs_until_exit().await;
    assert!(status.success(), "exit status {status:?}");
}

/// A binary upgrade (`run --upgrade`, then `SIGQUIT` to the old process) under a keep-alive load:
/// the old process answers with `Connection: close` while both accept on the handed-over
/// sockets, then stops; not one request fails, and the new process serves the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigquit_upgrade_under_keep_alive_load_fails_no_request() {
    let echo = echo_upstream().await;
    let gated = gated_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = two_upstreams(echo, gated.addr, "{ grace_period: 30s }");
    let old = GatewayProcess::start(&yaml, dir.path()).await;

    let load = load::Load::start(old.listen, "/load", 8);
    load.wait_for_more(200).await;
    load.stats.assert_no_failure();
    let new = old.take_over().await;
    old.signal("-QUIT");
    // The old process exits once it has handed over, stopped accepting and drained.
    let (status, old_logs) = old.remaining_logs_until_exit().await;
    assert!(status.success(), "old exit status {status:?}");
    assert!(
        old_logs
            .iter()
            .any(|l| l.contains("SIGQUIT: handing the listening sockets over")),
        "{old_logs:?}"
    );
    // Only the new process is left to answer these.
    load.wait_for_more(200).await;
    let stats = load.stop().await;
    stats.assert_no_failure();
    assert!(
        stats.closed.load(SeqCst) > 0,
        "the old process never asked a client to move"
    );
    let resp = client()
        .get(format!("http://{}/after", new.listen))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// `portcullis drain`, the preStop hook of a native sidecar (whose own SIGTERM comes only after
/// the app has exited): it starts the gateway's drain, refuses to signal a process that is not
/// this binary, and, without `--pid`, refuses to guess among several gateways.
#[tokio::test]
async fn portcullis_drain_starts_the_drain_of_the_gateway_and_nothing_else() {
    let echo = echo_upstream().await;
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let yaml = format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
admin: {{ address: "{{admin}}" }}
shutdown: {{ drain_delay: 1s }}
upstreams: [{{ id: e, url: "http://{echo}" }}]
routes: [{{ id: r, match: {{ path_prefix: / }}, upstream: e, auth: public }}]
"#
    );
    let mut gw = GatewayProcess::start(&yaml, dir.path()).await;
    let other = GatewayProcess::start(&yaml, other_dir.path()).await;
    let drain = |pid: Option<u32>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command.arg("drain");
        if let Some(pid) = pid {
            command.args(["--pid", &pid.to_string()]);
        }
        command.output().unwrap()
    };
    // This test process is not portcullis: refused, and it is still here to say so.
    let refused = drain(Some(std::process::id()));
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is not portcullis"), "{stderr}");
    // Two gateways here (and maybe more from other tests): which one is not guessed.
    let ambiguous = drain(None);
    assert_eq!(ambiguous.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(stderr.contains("several portcullis processes"), "{stderr}");
    assert!(stderr.contains(&gw.child.id().to_string()), "{stderr}");

    let started = drain(Some(gw.child.id()));
    assert!(started.status.success(), "{started:?}");
    gw.wait_for_log("SIGTERM: draining").await;
    let (status, _) = gw.remaining_logs_until_exit().await;
    assert!(status.success(), "exit status {status:?}");
    drop(other);
}

/// Once shutdown has begun, Pingora listens for no more signals; the gateway still does: a
/// second SIGTERM is logged as ignored, and SIGINT stops at once, even in a long drain delay.
#[tokio::test]
async fn signals_during_a_drain_are_still_answered() {
    let echo = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
admin: {{ address: "{{admin}}" }}
shutdown: {{ drain_delay: 10m }}
upstreams: [{{ id: e, url: "http://{echo}" }}]
routes: [{{ id: r, match: {{ path_prefix: / }}, upstream: e, auth: public }}]
"#
    );
    let mut gw = GatewayProcess::start(&yaml, dir.path()).await;
    gw.signal("-TERM");
    gw.wait_for_log("SIGTERM: draining").await;
    gw.signal("-TERM");
    gw.wait_for_log("SIGTERM ignored: already shutting down")
        .await;
    gw.signal("-INT");
    gw.wait_for_log("SIGINT during shutdown: stopping at once")
        .await;
    // Well before the 10-minute delay.
    let (status, _) = gw.remaining_logs_until_exit().await;
    assert!(status.success(), "exit status {status:?}");
}

/// A request still in flight when the grace period runs out is cut: it gets an access line with
/// `reason: shutdown_cut`, and the last line says how many were cut (it used to leave no trace
/// while the process said `drained; exiting`).
#[tokio::test]
async fn a_request_cut_at_the_end_of_the_grace_period_is_logged_and_counted() {
    let mut gated = gated_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
admin: {{ address: "{{admin}}" }}
shutdown: {{ grace_period: 1s }}
upstreams: [{{ id: gated, url: "http://{}" }}]
routes: [{{ id: slow, match: {{ path_prefix: / }}, upstream: gated, auth: public }}]
"#,
        gated.addr
    );
    let gw = GatewayProcess::start(&yaml, dir.path()).await;
    let listen = gw.listen;
    let stuck = tokio::spawn(
        client()
            .get(format!("http://{listen}/stuck"))
            .header("x-request-id", "cut-at-shutdown")
            .send(),
    );
    gated.arrived.recv().await.unwrap();
    gw.signal("-TERM");
    let (status, logs) = gw.remaining_logs_until_exit().await;
    assert!(status.success(), "exit status {status:?}");
    assert!(
        stuck.await.unwrap().is_err(),
        "the stuck request was answered"
    );
    let cut = logs
        .iter()
        .find(|l| l.contains("portcullis::access") && l.contains("cut-at-shutdown"))
        .unwrap_or_else(|| panic!("no access line for the cut request: {logs:#?}"));
    let cut: serde_json::Value = serde_json::from_str(cut).unwrap();
    assert_eq!(cut["reason"], "shutdown_cut", "{cut}");
    assert_eq!(cut["status"], 0, "{cut}");
    assert_eq!(cut["route"], "slow", "{cut}");
    assert_eq!(cut["path"], "/stuck", "{cut}");
    assert!(
        logs.iter()
            .any(|l| l.contains("exiting: 1 request(s) were cut before they finished")),
        "{logs:#?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("\"drained; exiting\"")),
        "{logs:#?}"
    );
    drop(gated.release);
}
