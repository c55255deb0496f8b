//! Reloads the way Kubernetes performs them: kubelet updates a mounted ConfigMap or Secret by
//! writing a new directory and swapping the `..data` symlink ([`Volume`]). Each file the
//! gateway reads is checked with that exact layout: the swap is picked up (the poll interval,
//! 2 s by default and 20 ms here, bounds the delay), and a swap to something invalid keeps the
//! last good configuration and reports it. TLS certificates: `tls.rs`.

use crate::support::keyserver::{fixture_jwks, rotated_jwks};
use crate::support::kubelet::Volume;
use crate::support::*;
use portcullis::reload::ReloadOutcome;

fn config(echo: std::net::SocketAddr, admin_token: bool, revocation_file: bool) -> String {
    let mut yaml = format!(
        r#"listeners: [{{ name: t, address: "{{listen}}" }}]
admin: {{ address: "{{admin}}"{token} }}
issuers:
  - {{ id: corp, issuer: "{ISSUER}", jwks_file: jwks.json, audiences: ["{AUDIENCE}"] }}
upstreams: [{{ id: echo, url: "http://{echo}" }}]
routes:
  - {{ id: api, match: {{ path_prefix: /api }}, upstream: echo, auth: {{ issuers: [corp] }} }}
"#,
        token = if admin_token {
            ", token_file: admin-token"
        } else {
            ""
        }
    );
    if revocation_file {
        yaml.push_str("revocation: { file: revoked.jsonl }\n");
    }
    yaml
}

/// The next reload's outcome. The bound is on a broken test (a swap that is never picked up),
/// not a synchronisation delay.
async fn next_reload(gw: &mut TestGateway) -> ReloadOutcome {
    tokio::time::timeout(std::time::Duration::from_secs(30), gw.reloads.changed())
        .await
        .expect("the swap was not picked up within 30 s")
        .unwrap();
    gw.reloads.borrow_and_update().clone().unwrap()
}

fn applied() -> ReloadOutcome {
    ReloadOutcome::Applied {
        restart_needed: vec![],
    }
}

async fn status(gw: &TestGateway, token: &str) -> u16 {
    status_of(gw, "/api/orders", token).await
}

/// A gateway reloading from `gateway.yaml` in a kubelet volume that also holds the fixture
/// JWKS and `extra` files; with the content `gateway.yaml` has once the gateway's addresses are
/// in it, to publish again.
fn gateway_on_volume(yaml: &str, extra: &[(&str, &[u8])]) -> (Volume, TestGateway, Vec<u8>) {
    let jwks = fixture_jwks().to_string().into_bytes();
    let mut files = vec![("gateway.yaml", yaml.as_bytes()), ("jwks.json", &jwks[..])];
    files.extend_from_slice(extra);
    let volume = Volume::new(&files);
    let gw = TestGateway::start_reloading(&volume.path("gateway.yaml"));
    let yaml = volume.read("gateway.yaml");
    (volume, gw, yaml)
}

/// The JWKS the gateway starts with, plus the second RSA key (`test-rsa-2`).
fn both_keys() -> Vec<u8> {
    let mut jwks = fixture_jwks();
    let added = rotated_jwks()["keys"][0].clone();
    jwks["keys"].as_array_mut().unwrap().push(added);
    jwks.to_string().into_bytes()
}

#[tokio::test]
async fn a_jwks_file_swap_is_picked_up_without_sighup_and_a_bad_one_keeps_the_last_good_keys() {
    let echo = echo_upstream().await;
    let (mut volume, mut gw, yaml) = gateway_on_volume(&config(echo, false, false), &[]);
    // Signed by the second key, which the mounted JWKS does not hold yet: RFC 6750 §3.1.
    let token = Issuer::rsa_untrusted("test-rsa-2", &claims(""));
    assert_eq!(status(&gw, &token).await, 401);

    // The identity provider rotated: the ConfigMap now holds both keys.
    volume.publish(&[("gateway.yaml", &yaml), ("jwks.json", &both_keys())]);
    assert_eq!(next_reload(&mut gw).await, applied());
    assert_eq!(status(&gw, &token).await, 200);

    // A broken key set is refused, located, and the keys in use stay.
    volume.publish(&[("gateway.yaml", &yaml), ("jwks.json", b"{\"keys\": []}")]);
    match next_reload(&mut gw).await {
        ReloadOutcome::Rejected(errors) => {
            assert_eq!(errors.0[0].path, "issuers[0].jwks_file", "{errors}");
            assert!(
                errors.0[0].message.contains("no usable signing key"),
                "{errors}"
            );
        }
        other => panic!("a JWKS without keys was applied: {other:?}"),
    }
    assert_eq!(status(&gw, &token).await, 200);
}

#[tokio::test]
async fn a_gateway_yaml_swap_is_picked_up_and_an_invalid_one_keeps_the_last_good() {
    let echo = echo_upstream().await;
    let (mut volume, mut gw, yaml) = gateway_on_volume(&config(echo, false, false), &[]);
    let yaml = String::from_utf8(yaml).unwrap();
    let jwks = fixture_jwks().to_string().into_bytes();
    let token = Issuer::rsa(&claims(""));
    assert_eq!(status(&gw, &token).await, 200);

    // The route becomes public under another prefix.
    let moved = yaml.replace("path_prefix: /api", "path_prefix: /v2");
    volume.publish(&[("gateway.yaml", moved.as_bytes()), ("jwks.json", &jwks)]);
    assert_eq!(next_reload(&mut gw).await, applied());
    assert_eq!(status(&gw, &token).await, 404);

    let broken = moved.replace("upstream: echo", "upstream: nowhere");
    volume.publish(&[("gateway.yaml", broken.as_bytes()), ("jwks.json", &jwks)]);
    match next_reload(&mut gw).await {
        ReloadOutcome::Rejected(errors) => {
            assert_eq!(errors.0[0].path, "routes[0].upstream", "{errors}")
        }
        other => panic!("an invalid configuration was applied: {other:?}"),
    }
    let resp = client()
        .get(gw.url("/v2/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the last good configuration serves");
}

#[tokio::test]
async fn an_admin_token_file_swap_is_picked_up() {
    let echo = echo_upstream().await;
    let jwks = fixture_jwks().to_string().into_bytes();
    let (old, new) = ("old-admin-token-0123456789", "new-admin-token-9876543210");
    let (mut volume, mut gw, yaml) = gateway_on_volume(
        &config(echo, true, false),
        &[("admin-token", old.as_bytes())],
    );
    let url = gw.admin_url("/revocations");
    let list = |token: &'static str| client().get(&url).bearer_auth(token).send();
    assert_eq!(list(old).await.unwrap().status(), 200);
    assert_eq!(list(new).await.unwrap().status(), 401);

    volume.publish(&[
        ("gateway.yaml", &yaml),
        ("jwks.json", &jwks),
        ("admin-token", new.as_bytes()),
    ]);
    assert_eq!(next_reload(&mut gw).await, applied());
    assert_eq!(list(new).await.unwrap().status(), 200);
    assert_eq!(list(old).await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_revocation_file_swap_is_picked_up() {
    let echo = echo_upstream().await;
    let jwks = fixture_jwks().to_string().into_bytes();
    let (mut volume, mut gw, yaml) = gateway_on_volume(
        &config(echo, false, true),
        &[("revoked.jsonl", b"# nobody yet\n")],
    );
    let mut claims = claims("");
    claims["sub"] = "mallory".into();
    let token = Issuer::rsa(&claims);
    assert_eq!(status(&gw, &token).await, 200);

    let revoked = format!(
        "{{\"type\":\"subject\",\"issuer\":\"corp\",\"sub\":\"mallory\",\"issued_before\":{}}}\n",
        now() + 60
    );
    volume.publish(&[
        ("gateway.yaml", &yaml),
        ("jwks.json", &jwks),
        ("revoked.jsonl", revoked.as_bytes()),
    ]);
    gw.revocation_file_loads.changed().await.unwrap();
    let load = gw
        .revocation_file_loads
        .borrow_and_update()
        .clone()
        .unwrap();
    assert_eq!(load.unwrap().entries, 1);
    assert_eq!(status(&gw, &token).await, 401, "RFC 6750 §3.1: revoked");
}
