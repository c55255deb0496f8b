//! SIGTERM at the binary level: the gateway stops accepting, lets an in-flight request finish,
//! and exits 0 as soon as it has drained (well before the grace period ends).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A port that was free a moment ago (the binary binds it itself).
fn free_port() -> std::net::SocketAddr {
    closed_port()
}

/// Wait for the spawned binary to answer on its admin listener: it binds asynchronously, so
/// poll with a bounded number of attempts.
async fn wait_until_serving(admin: std::net::SocketAddr) {
    let c = client();
    for _ in 0..500 {
        if let Ok(resp) = c.get(format!("http://{admin}/healthz")).send().await {
            if resp.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the gateway did not start");
}

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--log-format", "text", "run", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_serving(admin).await;

    let slow = tokio::spawn(client().get(format!("http://{listen}/report")).send());
    gated.arrived.recv().await.unwrap();

    let terminated = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
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

    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        terminated.elapsed() < Duration::from_secs(20),
        "it waited out the 30 s grace period"
    );
}
