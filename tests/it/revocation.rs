//! The revocation list through the admin API, enforced on the request path.

use crate::support::revocations::*;
use crate::support::*;
use serde_json::json;

struct Setup {
    gw: TestGateway,
    _dir: tempfile::TempDir,
}

async fn gateway() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_upstream().await;
    let yaml = with_admin(&config(echo, closed_port(), closed_port()), dir.path(), "");
    Setup {
        gw: TestGateway::start(&yaml),
        _dir: dir,
    }
}

#[tokio::test]
async fn revoking_a_jti_refuses_that_token_only() {
    let s = gateway().await;
    let (stolen, other) = (
        token("stolen", "alice", "ui", now()),
        token("fine", "alice", "ui", now()),
    );
    assert_eq!(status(&s.gw, &stolen).await, 200);
    revoke(
        &s.gw,
        json!({"type": "jti", "jti": "stolen", "exp": now() + 600}),
    )
    .await;
    let resp = client()
        .get(s.gw.url("/orders/1"))
        .bearer_auth(&stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\", error=\"invalid_token\""
    );
    assert_eq!(status(&s.gw, &other).await, 200);
    let metrics = s.gw.metrics_text().await;
    assert!(
        metrics.contains(
            "portcullis_rejections_total{mode=\"proxy\",reason=\"revoked_jti\",route=\"orders-read\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_revocations{type=\"jti\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn revoking_a_subject_refuses_its_older_tokens_only() {
    let s = gateway().await;
    let old = token("a", "alice", "ui", now() - 60);
    let bob = token("b", "bob", "ui", now() - 60);
    revoke(
        &s.gw,
        json!({"type": "subject", "issuer": "corp", "sub": "alice", "issued_before": now() - 30}),
    )
    .await;
    assert_eq!(status(&s.gw, &old).await, 401);
    assert_eq!(status(&s.gw, &bob).await, 200);
    let after_new_login = token("c", "alice", "ui", now());
    assert_eq!(status(&s.gw, &after_new_login).await, 200);
}

#[tokio::test]
async fn revoking_a_client_refuses_its_tokens_only() {
    let s = gateway().await;
    let compromised = token("a", "alice", "leaky-app", now() - 5);
    let other = token("b", "alice", "ui", now() - 5);
    revoke(
        &s.gw,
        json!({"type": "client", "issuer": "corp", "client_id": "leaky-app"}),
    )
    .await;
    assert_eq!(status(&s.gw, &compromised).await, 401);
    assert_eq!(status(&s.gw, &other).await, 200);
}

#[tokio::test]
async fn entries_can_be_listed_and_deleted() {
    let s = gateway().await;
    let t = token("x", "alice", "ui", now());
    let entry = json!({"type": "jti", "jti": "x", "issuer": "corp"});
    revoke(&s.gw, entry.clone()).await;
    let (code, list) = admin(&s.gw, reqwest::Method::GET, Some(ADMIN_TOKEN), None).await;
    assert_eq!(code, 200);
    assert_eq!(list["revocations"][0]["jti"], "x");
    assert_eq!(status(&s.gw, &t).await, 401);
    let (code, _) = admin(
        &s.gw,
        reqwest::Method::DELETE,
        Some(ADMIN_TOKEN),
        Some(entry.clone()),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(status(&s.gw, &t).await, 200);
    let (code, _) = admin(
        &s.gw,
        reqwest::Method::DELETE,
        Some(ADMIN_TOKEN),
        Some(entry),
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn the_admin_api_refuses_missing_or_wrong_tokens() {
    let s = gateway().await;
    let body = json!({"type": "jti", "jti": "x"});
    for token in [
        None,
        Some("wrong-token-wrong-token"),
        Some(&ADMIN_TOKEN[..10]),
    ] {
        let (code, _) = admin(&s.gw, reqwest::Method::POST, token, Some(body.clone())).await;
        assert_eq!(code, 401, "{token:?}");
    }
    // RFC 6750 §3: the 401 names the scheme to use.
    let resp = client()
        .get(s.gw.admin_url("/revocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portcullis-admin\""
    );
    let (code, list) = admin(&s.gw, reqwest::Method::GET, Some(ADMIN_TOKEN), None).await;
    assert_eq!(
        (code, list["revocations"].as_array().unwrap().len()),
        (200, 0)
    );
}

#[tokio::test]
async fn the_admin_api_refuses_bad_bodies_with_a_reason() {
    let s = gateway().await;
    for (body, expect) in [
        (json!({"type": "everything"}), "invalid body"),
        (json!({"type": "jti"}), "invalid body"),
        (
            json!({"type": "jti", "jti": "x", "color": "red"}),
            "invalid body",
        ),
        (json!({"type": "jti", "jti": ""}), "jti must be"),
        (
            // Past `exp` and the leeway margin: no token with that `exp` is accepted any more.
            json!({"type": "jti", "jti": "x", "exp": now() - 3600}),
            "exp is in the past",
        ),
        (
            json!({"type": "subject", "issuer": "nobody", "sub": "alice"}),
            "unknown issuer \"nobody\"",
        ),
        (
            json!({"type": "client", "issuer": "corp", "client_id": "x".repeat(2000)}),
            "client_id must be",
        ),
    ] {
        let (code, answer) = admin(
            &s.gw,
            reqwest::Method::POST,
            Some(ADMIN_TOKEN),
            Some(body.clone()),
        )
        .await;
        assert_eq!(code, 400, "{body}");
        assert!(
            answer["error"].as_str().unwrap().contains(expect),
            "{body}: {answer}"
        );
    }
}

#[tokio::test]
async fn without_an_admin_token_the_api_is_disabled() {
    let gw = standard_gateway().await;
    let (code, answer) = admin(&gw, reqwest::Method::GET, Some(ADMIN_TOKEN), None).await;
    assert_eq!(code, 404);
    assert!(answer["error"].as_str().unwrap().contains("disabled"));
}

/// A configuration with the admin API and a revocation state file in a fresh directory.
async fn state_file_config() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("revocations.jsonl");
    let echo = echo_upstream().await;
    let yaml = with_admin(
        &config(echo, closed_port(), closed_port()),
        dir.path(),
        &format!("state_file: \"{}\"", state.display()),
    );
    (dir, yaml)
}

#[tokio::test]
async fn revocations_survive_a_restart_without_redis() {
    let (_dir, yaml) = state_file_config().await;
    let stolen = token("stolen", "alice", "ui", now());
    {
        let gw = TestGateway::start(&yaml);
        revoke(
            &gw,
            json!({"type": "jti", "jti": "stolen", "exp": now() + 600}),
        )
        .await;
        revoke(
            &gw,
            json!({"type": "subject", "issuer": "corp", "sub": "mallory"}),
        )
        .await;
        assert_eq!(status(&gw, &stolen).await, 401);
    } // the gateway stops here
    let gw = TestGateway::start(&yaml);
    assert_eq!(
        status(&gw, &stolen).await,
        401,
        "the revocation survived the restart"
    );
    let (_, list) = admin(&gw, reqwest::Method::GET, Some(ADMIN_TOKEN), None).await;
    assert_eq!(list["revocations"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_cutoff_covers_tokens_from_an_issuer_whose_clock_runs_ahead() {
    // The identity provider's clock is 10 s ahead (within the 30 s leeway): a token it issued
    // just before the revocation carries an `iat` after the gateway's cutoff.
    let s = gateway().await;
    let ahead = token("ahead", "dave", "ui", now() + 10);
    assert_eq!(status(&s.gw, &ahead).await, 200);
    revoke(
        &s.gw,
        json!({"type": "subject", "issuer": "corp", "sub": "dave"}),
    )
    .await;
    assert_eq!(status(&s.gw, &ahead).await, 401);
}

/// The standard test configuration compiled (no gateway running).
fn standard_snapshot() -> portcullis::snapshot::Snapshot {
    portcullis::install_crypto_provider();
    let yaml =
        config(closed_port(), closed_port(), closed_port()).replace("{listen}", "127.0.0.1:8080");
    portcullis::config::load_str(&yaml, &fixtures())
        .unwrap()
        .snapshot
}

#[test]
fn a_revocation_file_caught_mid_rewrite_never_un_revokes() {
    let snapshot = standard_snapshot();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("revoked.jsonl");
    std::fs::write(
        &path,
        "{\"type\":\"jti\",\"jti\":\"a\"}\n{\"type\":\"jti\",\"jti\":\"b\"}\n",
    )
    .unwrap();
    let file = portcullis::revocation::file::RevocationFile::new(&path);
    file.load(&snapshot, now()).unwrap();
    assert_eq!(snapshot.revocations.len(), 2);
    // Rewritten in place, read half-way: `b` is not there yet and a line is cut.
    std::fs::write(&path, "{\"type\":\"jti\",\"jti\":\"a\"}\n{\"type\":\"j").unwrap();
    let load = file.load(&snapshot, now()).unwrap();
    assert_eq!(load.problems.len(), 1, "{:?}", load.problems);
    assert_eq!(
        snapshot.revocations.len(),
        2,
        "nothing is removed on a bad read"
    );
    // A clean read applies the removal.
    std::fs::write(&path, "{\"type\":\"jti\",\"jti\":\"a\"}\n").unwrap();
    file.load(&snapshot, now()).unwrap();
    assert_eq!(snapshot.revocations.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_hand_over_loses_no_acknowledged_revocation() {
    // `run --upgrade`: the new process starts on the same state file while the old one still
    // answers admin requests on kept-alive connections.
    let (_dir, yaml) = state_file_config().await;
    let old = TestGateway::start(&yaml);
    let new = TestGateway::start(&yaml);
    let entry = |jti: &str| json!({"type": "jti", "jti": jti, "exp": now() + 600});
    // The new process cannot write yet: 503, nothing stored.
    let (code, body) = admin(
        &new,
        reqwest::Method::POST,
        Some(ADMIN_TOKEN),
        Some(entry("early")),
    )
    .await;
    assert_eq!(code, 503, "{body}");
    // The old one still acknowledges a write...
    revoke(&old, entry("during")).await;
    drop(old);
    // ...which the new one enforces once it has taken the journal over.
    let during = token("during", "alice", "ui", now());
    eventually(
        "the new process takes the journal over",
        std::time::Duration::from_secs(10),
        || async {
            admin(
                &new,
                reqwest::Method::POST,
                Some(ADMIN_TOKEN),
                Some(entry("after")),
            )
            .await
            .0 == 201
        },
    )
    .await;
    assert_eq!(status(&new, &during).await, 401);
    assert_eq!(
        status(&new, &token("early", "alice", "ui", now())).await,
        200
    );
}

#[test]
fn a_revocation_file_loads_good_entries_and_reports_bad_lines() {
    let snapshot = standard_snapshot();
    let dir = tempfile::tempdir().unwrap();

    let jsonl = dir.path().join("revoked.jsonl");
    std::fs::write(
        &jsonl,
        "# stolen on 2026-11-20\n{\"type\":\"jti\",\"jti\":\"a\"}\n{\"type\":\"jti\"\nnot json\n{\"type\":\"subject\",\"issuer\":\"corp\",\"sub\":\"mallory\",\"issued_before\":1795300000}\n{\"type\":\"subject\",\"issuer\":\"corp\",\"sub\":\"eve\"}\n",
    )
    .unwrap();
    let file = portcullis::revocation::file::RevocationFile::new(&jsonl);
    let load = file.load(&snapshot, now()).unwrap();
    assert_eq!(load.entries, 2);
    assert_eq!(load.problems.len(), 3, "{:?}", load.problems);
    assert!(
        load.problems[0].contains("revoked.jsonl:3:"),
        "{:?}",
        load.problems
    );
    assert!(
        load.problems[1].contains("revoked.jsonl:4: not JSON"),
        "{:?}",
        load.problems
    );
    // A cutoff without `issued_before` would move to "now" on every re-read.
    assert!(
        load.problems[2].contains(
            "revoked.jsonl:6: a subject entry in the revocation file needs `issued_before`"
        ),
        "{:?}",
        load.problems
    );
    assert_eq!(snapshot.revocations.len(), 2);

    let yaml_file = dir.path().join("revoked.yaml");
    std::fs::write(&yaml_file, "- { type: client, issuer: corp, client_id: leaky, issued_before: 1795300000 }\n- { type: client, issuer: nobody, client_id: x, issued_before: 1795300000 }\n").unwrap();
    let load = portcullis::revocation::file::RevocationFile::new(&yaml_file)
        .load(&snapshot, now())
        .unwrap();
    assert_eq!(load.entries, 1);
    assert!(
        load.problems[0].contains("revoked.yaml:2: unknown issuer \"nobody\""),
        "{:?}",
        load.problems
    );
}

#[tokio::test]
async fn the_revocation_file_hot_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let revoked = dir.path().join("revoked.jsonl");
    std::fs::write(&revoked, "{\"type\":\"jti\",\"jti\":\"a\"}\n").unwrap();
    let path = dir.path().join("gateway.yaml");
    let echo = echo_upstream().await;
    let yaml = format!(
        "{}\nrevocation: {{ file: \"{}\" }}\n",
        config(echo, closed_port(), closed_port()),
        revoked.display()
    )
    .replace(
        "jwks_file: jwks.json",
        &format!("jwks_file: \"{}\"", fixtures().join("jwks.json").display()),
    );
    std::fs::write(&path, yaml).unwrap();
    let mut gw = TestGateway::start_reloading(&path);
    let (a, b) = (
        token("a", "alice", "ui", now()),
        token("b", "alice", "ui", now()),
    );
    assert_eq!(status(&gw, &a).await, 401);
    assert_eq!(status(&gw, &b).await, 200);

    let tmp = dir.path().join("revoked.new");
    std::fs::write(&tmp, "{\"type\":\"jti\",\"jti\":\"b\"}\n").unwrap();
    std::fs::rename(&tmp, &revoked).unwrap();
    gw.revocation_file_loads.changed().await.unwrap();
    assert_eq!(
        status(&gw, &a).await,
        200,
        "left the file: no longer revoked"
    );
    assert_eq!(status(&gw, &b).await, 401);
}
