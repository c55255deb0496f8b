//! Rate limits on the real gateway: a limit hit and recovered after its interval, the burst,
//! keys isolated from each other (clients, addresses behind a trusted proxy), IP limits before
//! authentication and identity limits after, budgets shared by two gateways through a real
//! `redis-server`, and a Redis outage (this replica's table decides, counted).
//!
//! RFC 6585 §4: `429 Too Many Requests`, with `Retry-After`; the `RateLimit` and
//! `RateLimit-Policy` fields of draft-ietf-httpapi-ratelimit-headers-11 (§3, §4).

use std::time::Duration;

use crate::support::redis::RedisServer;
use crate::support::revocations::{token, with_admin};
use crate::support::*;

/// (status, `Retry-After`, `RateLimit`, `RateLimit-Policy`, the JSON body's `error`).
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    ratelimit: Option<String>,
    policy: Option<String>,
    error: Option<String>,
}

async fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = client().get(gw.url(path));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = req.send().await.unwrap();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (retry_after, ratelimit, policy) = (
        header("retry-after"),
        header("ratelimit"),
        header("ratelimit-policy"),
    );
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    Answer {
        status,
        retry_after,
        ratelimit,
        policy,
        error: body["error"].as_str().map(str::to_owned),
    }
}

async fn as_client(gw: &TestGateway, client_id: &str) -> Answer {
    let bearer = format!("Bearer {}", token("j", "alice", client_id, now()));
    get(gw, "/orders/1", &[("authorization", &bearer)]).await
}

async fn gateway(limits: &str) -> TestGateway {
    let yaml = config(echo_upstream().await, closed_port(), closed_port());
    TestGateway::start(&format!("{yaml}{limits}"))
}

#[tokio::test]
async fn a_limit_refuses_past_its_burst_and_allows_again_after_its_interval() {
    let gw = gateway("rate_limits: { default: { key: client_id, rate: 1/s, burst: 2 } }\n").await;
    for _ in 0..2 {
        assert_eq!(as_client(&gw, "cli").await.status, 200);
    }
    // RFC 6585 §4: 429, with how long to wait; the fields name the limit that refused.
    let refused = as_client(&gw, "cli").await;
    assert_eq!(
        refused,
        Answer {
            status: 429,
            retry_after: Some("1".to_owned()),
            ratelimit: Some("\"client_id\";r=0;t=1".to_owned()),
            policy: Some("\"client_id\";q=2;w=2".to_owned()),
            error: Some("rate_limited".to_owned()),
        }
    );
    // Allowed fields are not sent unless `rate_limits.headers` asks for them.
    assert_eq!(as_client(&gw, "other").await.ratelimit, None);
    // After the Retry-After it gave: one request (one per second), not the whole burst. Any
    // delay under a second more gives the same answers. The wait is the interval under test,
    // not a synchronisation (the gateway's clock is real time; the exact arithmetic is in the
    // unit tests of rate_limit::gcra, on an injected clock).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(as_client(&gw, "cli").await.status, 200);
    assert_eq!(as_client(&gw, "cli").await.status, 429);
    let metrics = gw.metrics_text().await;
    for line in [
        r#"portcullis_rate_limited_total{limit="client_id",route="orders-read"} 2"#,
        r#"portcullis_rejections_total{mode="proxy",reason="rate_limited",route="orders-read"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn the_burst_is_allowed_at_once_and_counted_down_in_the_headers() {
    let gw = gateway(
        "rate_limits: { headers: true, default: { name: per-client, key: client_id, rate: 10/m, burst: 5 } }\n",
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let a = as_client(&gw, "cli").await;
        seen.push((a.status, a.ratelimit.unwrap_or_default()));
    }
    // One request per 6 s: the whole burst is back 6 s after each one counted.
    assert_eq!(
        seen,
        [
            (200, "\"per-client\";r=4;t=6".to_owned()),
            (200, "\"per-client\";r=3;t=12".to_owned()),
            (200, "\"per-client\";r=2;t=18".to_owned()),
            (200, "\"per-client\";r=1;t=24".to_owned()),
            (200, "\"per-client\";r=0;t=30".to_owned()),
            (429, "\"per-client\";r=0;t=6".to_owned()),
        ]
    );
    let allowed = as_client(&gw, "another").await;
    assert_eq!(allowed.policy.as_deref(), Some("\"per-client\";q=5;w=30"));
}

#[tokio::test]
async fn clients_and_addresses_have_budgets_of_their_own() {
    // Behind a trusted proxy (the test client is 127.0.0.1), X-Forwarded-For names the client.
    let gw = gateway(
        "forwarding: { trusted_proxies: [127.0.0.1/32] }\nrate_limits: { default: [ { key: client_id, rate: 1/m, burst: 1 }, { key: ip, rate: 1/m, burst: 3 } ] }\n",
    )
    .await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let bearer = |c: &str| format!("Bearer {}", token("j", "alice", c, now()));
    let call = |ip: &'static str, client: &'static str| {
        let auth = bearer(client);
        let gw = &gw;
        async move {
            get(gw, "/orders/1", &[from(ip)[0], ("authorization", &auth)])
                .await
                .status
        }
    };
    assert_eq!(call("198.51.100.1", "a").await, 200);
    // The same client from anywhere: its one request is spent.
    assert_eq!(call("198.51.100.2", "a").await, 429);
    // Other clients from the first address, until the address's three are spent (an address
    // limit counts every request that arrives, those refused later included).
    assert_eq!(call("198.51.100.1", "b").await, 200);
    assert_eq!(call("198.51.100.1", "c").await, 200);
    assert_eq!(call("198.51.100.1", "d").await, 429);
    // Another address, another client: untouched by all of it.
    assert_eq!(call("198.51.100.3", "e").await, 200);
}

#[tokio::test]
async fn ip_limits_cut_floods_before_authentication_and_identity_limits_count_only_verified_tokens()
{
    let gw = gateway(
        "rate_limits: { default: [ { key: ip, rate: 1/m, burst: 3 }, { key: client_id, rate: 1/m, burst: 1 } ] }\n",
    )
    .await;
    // Without a token: 401 while the address has budget, then 429 (no signature is checked).
    let statuses: Vec<u16> = futures_util::future::join_all(
        (0..4).map(|_| async { get(&gw, "/orders/1", &[]).await.status }),
    )
    .await;
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [401, 401, 401, 429], "{statuses:?}");
    // A public route keeps the default's ip limit (shared by the routes that use the default)
    // and has no identity to count by.
    assert_eq!(get(&gw, "/public/x", &[]).await.status, 429);
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains(r#"portcullis_rate_limited_total{limit="ip",route="orders-read"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_forged_token_spends_nobody_elses_budget() {
    let gw = gateway("rate_limits: { default: { key: client_id, rate: 1/m, burst: 1 } }\n").await;
    let mut forged = claims("read:orders");
    forged["client_id"] = serde_json::json!("victim");
    let forged = format!("Bearer {}", Issuer::rsa_untrusted("evil", &forged));
    for _ in 0..3 {
        assert_eq!(
            get(&gw, "/orders/1", &[("authorization", &forged)])
                .await
                .status,
            401
        );
    }
    assert_eq!(as_client(&gw, "victim").await.status, 200);
}

#[tokio::test]
async fn a_429_carries_the_cors_headers_of_an_allowed_origin() {
    let gw = gateway(
        "cors: { allowed_origins: [\"https://app.example.com\"] }\nrate_limits: { default: { key: ip, rate: 1/m, burst: 1 } }\n",
    )
    .await;
    let origin = ("origin", "https://app.example.com");
    assert_eq!(get(&gw, "/public/x", &[origin]).await.status, 200);
    let resp = client()
        .get(gw.url("/public/x"))
        .header(origin.0, origin.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

struct Replica {
    gw: TestGateway,
    _dir: tempfile::TempDir,
}

/// A gateway whose budgets live in the Redis at `url`, ready (its mirror synchronised).
async fn replica(url: &str) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_upstream().await;
    let yaml = with_admin(
        &config(echo, closed_port(), closed_port()),
        dir.path(),
        &format!("redis: {{ url: \"{url}\", timeout: 500ms }}"),
    );
    let yaml = format!(
        "{yaml}rate_limits: {{ mode: redis, default: {{ key: client_id, rate: 1/m, burst: 3 }} }}\n"
    );
    let r = Replica {
        gw: TestGateway::start(&yaml),
        _dir: dir,
    };
    r.gw.wait_ready().await;
    r
}

fn fallbacks(metrics: &str) -> u64 {
    let line = metrics
        .lines()
        .find(|l| l.starts_with(r#"portcullis_rate_limit_events_total{event="redis_fallback"}"#))
        .unwrap_or_else(|| panic!("no fallback counter in\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_budget_through_redis_and_fall_back_to_their_own_when_it_is_down() {
    let mut redis = RedisServer::start();
    let (a, b) = (replica(&redis.url()).await, replica(&redis.url()).await);
    assert_eq!(as_client(&a.gw, "shared").await.status, 200);
    assert_eq!(as_client(&b.gw, "shared").await.status, 200);
    assert_eq!(as_client(&a.gw, "shared").await.status, 200);
    // Three between them: each alone would have allowed three.
    assert_eq!(as_client(&b.gw, "shared").await.status, 429);
    assert_eq!(as_client(&a.gw, "shared").await.status, 429);
    assert_eq!(fallbacks(&a.gw.metrics_text().await), 0);
    // Redis in Redis: hashed keys, never the client id, expiring.
    let mut c = redis.connection().await;
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*:rl:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains("shared"));
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 180_000, "{ttl}");

    // Redis goes away: each replica's own table decides (a fresh budget of three), counted.
    redis.kill();
    let statuses: Vec<u16> = futures_util::future::join_all(
        (0..4).map(|_| async { as_client(&a.gw, "shared").await.status }),
    )
    .await;
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 200, 200, 429], "{statuses:?}");
    assert!(fallbacks(&a.gw.metrics_text().await) >= 4);
    assert_eq!(as_client(&b.gw, "shared").await.status, 200);
}
