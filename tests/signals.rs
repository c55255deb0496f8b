//! Signals at the binary level. SIGTERM: the gateway stops accepting, lets an in-flight request
//! finish, and exits 0 as soon as it has drained (well before the grace period ends). SIGHUP:
//! the configuration is reloaded at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_then_exits_0() {
    let mut gated = gated_upstream().await;
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            r#"listeners: [{{ name: t, address: "{listen}" }}]
admin: {{ address: "{admin}" }}
shutdown: {{ grace_period: 30s }}
upstreams: [{{ id: gated, url: "http://{}" }}]
routes: [{{ id: slow, match: {{ path_prefix: / }}, upstream: gated, auth: public }}]
"#,
            gated.addr
        ),
    )
    .unwrap();
    let mut child = spawn_gateway_binary(&path);
    wait_until_serving(admin).await;

    let slow = tokio::spawn(client().get(format!("http://{listen}/report")).send());
    gated.arrived.recv().await.unwrap();

    let terminated = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Once the listeners are closed, new connections are refused while the old request runs.
    let mut refused = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(listen).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener kept accepting after SIGTERM");

    gated.release.send(true).unwrap();
    let resp = slow.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "released");

    let status = tokio::task::spawn_blocking(move || child.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        terminated.elapsed() < Duration::from_secs(20),
        "it waited out the 30 s grace period"
    );
}

#[tokio::test]
async fn sighup_reloads_at_once_even_without_a_content_change() {
    let echo = echo_upstream().await;
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            r#"listeners: [{{ name: t, address: "{listen}" }}]
admin: {{ address: "{admin}" }}
upstreams: [{{ id: e, url: "http://{echo}" }}]
routes: [{{ id: r, match: {{ path_prefix: / }}, upstream: e, auth: public }}]
"#
        ),
    )
    .unwrap();
    let child = spawn_gateway_binary(&path);
    wait_until_serving(admin).await;
    let applied = "portcullis_config_reloads_total{result=\"applied\"} 1";
    let metrics = || async {
        client()
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(!metrics().await.contains(applied));

    // The file is unchanged, so only the signal can cause this reload.
    assert!(Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let mut reloaded = false;
    for _ in 0..500 {
        if metrics().await.contains(applied) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(reloaded, "SIGHUP did not reload");
    assert_eq!(
        client()
            .get(format!("http://{listen}/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(child);
}
