//! Revocations shared between gateways through a real `redis-server` (started on a free port).

use std::time::{Duration, Instant};

use crate::support::redis::{Gate, RedisServer};
use crate::support::revocations::*;
use crate::support::*;
use serde_json::{json, Value};

struct Replica {
    gw: TestGateway,
    _dir: tempfile::TempDir,
}

/// A gateway whose revocations live in the Redis at `url`.
async fn replica(url: &str, redis_settings: &str) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_upstream().await;
    let yaml = with_admin(
        &config(echo, closed_port(), closed_port()),
        dir.path(),
        &format!("redis: {{ url: \"{url}\", timeout: 500ms, {redis_settings} }}"),
    );
    Replica {
        gw: TestGateway::start(&yaml),
        _dir: dir,
    }
}

/// A replica that has synchronised with Redis (its readiness says so).
async fn ready_replica(url: &str, redis_settings: &str) -> Replica {
    let r = replica(url, redis_settings).await;
    eventually("the replica becomes ready", Duration::from_secs(10), || {
        readiness(&r.gw)
    })
    .await;
    r
}

async fn readiness(gw: &TestGateway) -> bool {
    readyz(gw).await.0 == 200
}

async fn readyz(gw: &TestGateway) -> (u16, Value) {
    let resp = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_on_one_replica_is_enforced_by_the_other_within_a_second() {
    let redis = RedisServer::start();
    let a = ready_replica(&redis.url(), "").await;
    let b = ready_replica(&redis.url(), "").await;
    let now = now();
    let stolen = token("stolen", "carol", "cli", now);
    let alice_old = token("a1", "alice", "cli", now - 120);
    let ui_old = token("u1", "dave", "orders-ui", now - 60);
    let fine = token("fine", "erin", "cli", now - 60);
    for t in [&stolen, &alice_old, &ui_old, &fine] {
        assert_eq!(status(&b.gw, t).await, 200);
    }
    let revocations = [
        (
            json!({"type": "jti", "jti": "stolen", "exp": now + 600}),
            &stolen,
        ),
        (
            // A cutoff a minute ago: a token is revoked when issued before it, give or take the
            // 30 s leeway an issuer's clock may be ahead.
            json!({"type": "subject", "issuer": "corp", "sub": "alice", "issued_before": now - 60}),
            &alice_old,
        ),
        (
            json!({"type": "client", "issuer": "corp", "client_id": "orders-ui"}),
            &ui_old,
        ),
    ];
    for (body, revoked) in &revocations {
        revoke(&a.gw, body.clone()).await;
        let made = Instant::now();
        assert_eq!(
            status(&a.gw, revoked).await,
            401,
            "at once where it was made"
        );
        eventually(
            "the other replica enforces it",
            Duration::from_secs(1),
            || async { status(&b.gw, revoked).await == 401 },
        )
        .await;
        assert!(made.elapsed() < Duration::from_secs(1));
    }
    assert_eq!(status(&b.gw, &fine).await, 200, "other tokens pass");
    let newer = token("a2", "alice", "cli", now + 1);
    assert_eq!(
        status(&b.gw, &newer).await,
        200,
        "a login after the cutoff passes"
    );

    // A deletion on B reaches A as well.
    let (code, _) = admin(
        &b.gw,
        reqwest::Method::DELETE,
        Some(ADMIN_TOKEN),
        Some(json!({"type": "jti", "jti": "stolen"})),
    )
    .await;
    assert_eq!(code, 200);
    eventually("the deletion reaches A", Duration::from_secs(1), || async {
        status(&a.gw, &stolen).await == 200
    })
    .await;
    let (_, listed) = admin(&a.gw, reqwest::Method::GET, Some(ADMIN_TOKEN), None).await;
    assert_eq!(
        listed["revocations"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_after_the_revocation_loads_it() {
    let redis = RedisServer::start();
    let a = ready_replica(&redis.url(), "").await;
    let stolen = token("stolen", "carol", "cli", now());
    revoke(
        &a.gw,
        json!({"type": "jti", "jti": "stolen", "exp": now() + 600}),
    )
    .await;
    let late = ready_replica(&redis.url(), "resync_interval: 1h").await;
    assert_eq!(status(&late.gw, &stolen).await, 401);
    assert_eq!(
        status(&late.gw, &token("fine", "carol", "cli", now())).await,
        200
    );
    let metrics = late.gw.metrics_text().await;
    assert!(
        metrics.contains("portcullis_revocation_mirror_connected{store=\"redis\"} 1"),
        "{metrics}"
    );
    // Measured from the last confirmed round trip: at most a PING interval (5 s here).
    let staleness = staleness_gauge(&metrics);
    assert!((0.0..6.0).contains(&staleness), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dropped_subscription_shows_in_readiness() {
    let redis = RedisServer::start();
    let gate = Gate::start(redis.addr()).await;
    let a = ready_replica(&gate.url(), "max_staleness: 1s, resync_interval: 1h").await;
    // Nothing is closed: only a round trip can tell the connection no longer delivers.
    gate.stall();
    eventually(
        "A reports itself not ready",
        Duration::from_secs(10),
        || async { readyz(&a.gw).await.0 == 503 },
    )
    .await;
    let metrics = a.gw.metrics_text().await;
    let staleness = staleness_gauge(&metrics);
    assert!(staleness > 1.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_stored_with_their_expiry_as_ttl() {
    let redis = RedisServer::start();
    let a = ready_replica(&redis.url(), "key_prefix: \"gw:rev\"").await;
    let exp = now() + 600;
    revoke(&a.gw, json!({"type": "jti", "jti": "stolen", "exp": exp})).await;
    let mut conn = redis.connection().await;
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("gw:rev:entry:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        keys,
        vec![r#"gw:rev:entry:["jti",null,"stolen"]"#.to_owned()]
    );
    let expires: i64 = ::redis::cmd("EXPIRETIME")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    // The entry outlives the token's `exp` by the leeway margin (the token is accepted that long).
    let margin = a.gw.snapshots.current().revocation_margin_secs();
    assert!(margin > 0);
    assert_eq!(expires, exp + margin, "the key expires with the entry");
    let stored: String = ::redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        stored,
        json!({"type": "jti", "jti": "stolen", "expires_at": exp + margin})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_resync_heals_missed_announcements_and_drops_expired_entries() {
    let redis = RedisServer::start();
    let a = ready_replica(&redis.url(), "resync_interval: 100ms").await;
    let mut conn = redis.connection().await;
    let exp = now() + 600;
    // Written by "another replica" whose announcement this one missed.
    let key = r#"portcullis:revocations:entry:["jti",null,"missed"]"#;
    let entry = json!({"type": "jti", "jti": "missed", "expires_at": exp}).to_string();
    let _: () = ::redis::cmd("SET")
        .arg(key)
        .arg(&entry)
        .arg("EXAT")
        .arg(exp)
        .query_async(&mut conn)
        .await
        .unwrap();
    let missed = token("missed", "carol", "cli", now());
    eventually("the resync loads it", Duration::from_secs(5), || async {
        status(&a.gw, &missed).await == 401
    })
    .await;
    // Redis expires a key without telling anyone: the next resync drops it from the mirror.
    let _: () = ::redis::cmd("PEXPIRE")
        .arg(key)
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    eventually("the resync drops it", Duration::from_secs(5), || async {
        status(&a.gw, &missed).await == 200
    })
    .await;
    // A malformed value or announcement is ignored, not fatal.
    let _: () = ::redis::cmd("SET")
        .arg(r#"portcullis:revocations:entry:["jti",null,"bad"]"#)
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = ::redis::cmd("PUBLISH")
        .arg("portcullis:revocations:events")
        .arg("{\"op\":\"add\"}")
        .query_async(&mut conn)
        .await
        .unwrap();
    revoke(&a.gw, json!({"type": "jti", "jti": "after", "exp": exp})).await;
    let mut syncs =
        a.gw.snapshots
            .current()
            .revocation_mirror
            .as_ref()
            .unwrap()
            .syncs();
    syncs.mark_unchanged();
    tokio::time::timeout(Duration::from_secs(10), syncs.changed())
        .await
        .expect("a resync within 10 s")
        .unwrap();
    assert!(readiness(&a.gw).await);
    assert_eq!(status(&a.gw, &token("after", "c", "cli", now())).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_mirror_keeps_enforcing_and_catches_up_after_reconnecting() {
    let mut redis = RedisServer::start();
    // A reaches Redis through a gate the test can close; B connects directly.
    let gate = Gate::start(redis.addr()).await;
    let a = ready_replica(&gate.url(), "max_staleness: 1s, resync_interval: 1h").await;
    let b = ready_replica(&redis.url(), "resync_interval: 1h").await;
    let now = now();
    let (first, second, third) = (
        token("first", "carol", "cli", now),
        token("second", "carol", "cli", now),
        token("third", "carol", "cli", now),
    );
    revoke(
        &b.gw,
        json!({"type": "jti", "jti": "first", "exp": now + 600}),
    )
    .await;
    eventually(
        "A gets the first revocation",
        Duration::from_secs(1),
        || async { status(&a.gw, &first).await == 401 },
    )
    .await;

    redis.kill();
    eventually(
        "A reports itself not ready",
        Duration::from_secs(10),
        || async {
            let (code, body) = readyz(&a.gw).await;
            code == 503
                && body["checks"]["revocation_mirror"]
                    .as_str()
                    .unwrap()
                    .starts_with("disconnected from Redis")
        },
    )
    .await;
    assert_eq!(
        status(&a.gw, &first).await,
        401,
        "A still enforces what it had"
    );
    assert_eq!(status(&a.gw, &second).await, 200);
    let metrics = a.gw.metrics_text().await;
    assert!(
        metrics.contains("portcullis_revocation_mirror_connected{store=\"redis\"} 0"),
        "{metrics}"
    );
    // Writing needs Redis: refused, and nothing changes.
    let (code, body) = admin(
        &a.gw,
        reqwest::Method::POST,
        Some(ADMIN_TOKEN),
        Some(json!({"type": "jti", "jti": "third", "exp": now + 600})),
    )
    .await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(status(&a.gw, &third).await, 200);

    // Redis is back (with its data), but A is still cut off; B revokes meanwhile.
    gate.close();
    redis.restart();
    eventually("B reconnects", Duration::from_secs(15), || readiness(&b.gw)).await;
    assert_eq!(
        status(&b.gw, &first).await,
        401,
        "Redis kept the first revocation"
    );
    revoke(
        &b.gw,
        json!({"type": "jti", "jti": "second", "exp": now + 600}),
    )
    .await;
    assert_eq!(
        status(&a.gw, &second).await,
        200,
        "A has not heard of it yet"
    );

    gate.open();
    eventually("A catches up", Duration::from_secs(15), || async {
        status(&a.gw, &second).await == 401
    })
    .await;
    eventually("A is ready again", Duration::from_secs(5), || {
        readiness(&a.gw)
    })
    .await;
    assert_eq!(status(&a.gw, &first).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_never_reached_redis_is_not_ready() {
    let closed = closed_port();
    let r = replica(&format!("redis://{closed}"), "").await;
    let (code, body) = readyz(&r.gw).await;
    assert_eq!(code, 503);
    assert_eq!(
        body["checks"]["revocation_mirror"],
        "not synchronised with Redis yet"
    );
}

/// The value of `portcullis_revocation_mirror_staleness_seconds{store="redis"}`.
fn staleness_gauge(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("portcullis_revocation_mirror_staleness_seconds{store=\"redis\"} ")
        })
        .unwrap()
        .parse()
        .unwrap()
}
