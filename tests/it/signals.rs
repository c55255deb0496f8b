//! Signals at the binary level. SIGTERM: the gateway stops accepting, lets an in-flight request
//! finish, and exits 0 as soon as it has drained (well before the grace period ends). SIGHUP:
//! the configuration is reloaded at once. The binary runs on sockets the test bound and handed
//! over; the test waits on the binary's log lines, never on time.

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
