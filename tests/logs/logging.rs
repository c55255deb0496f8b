//! Logs never contain a token, Authorization, Cookie or access_token value (at trace level, so
//! the admission trace is covered too).

use crate::support::logs::captured;
use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn tokens_cookies_and_query_tokens_never_reach_the_logs() {
    // The gateway's own subscriber set-up, at the most verbose level anyone could ask for.
    let captured = captured();

    let gw = standard_gateway().await;
    let c = client();
    let valid = Issuer::rsa(&claims("read:orders"));
    let mut expired_claims = claims("read:orders");
    expired_claims["exp"] = json!(now() - 3600);
    let expired = Issuer::rsa(&expired_claims);
    let forged = Issuer::rsa_untrusted("test-rsa-1", &claims("read:orders"));
    for token in [&valid, &expired, &forged] {
        c.get(gw.url("/orders/1"))
            .bearer_auth(token)
            .header("cookie", "session=cookie-secret-value")
            .header("proxy-authorization", "Basic cHJveHktc2VjcmV0")
            .send()
            .await
            .unwrap();
    }
    c.get(gw.url(&format!("/public/x?access_token={valid}")))
        .send()
        .await
        .unwrap();
    // A failing upstream makes Pingora log an error line describing the request.
    let failed = c
        .get(gw.url(&format!("/down?access_token={valid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    c.get(gw.url("/orders/1"))
        .header("authorization", "Bearer not-a-jwt-secret")
        .send()
        .await
        .unwrap();
    drop(gw); // stop the gateway so every log line is written

    let logs = captured.text();
    assert!(
        logs.contains("portcullis::access"),
        "the access log was captured"
    );
    let served = logs
        .lines()
        .find(|l| {
            l.contains("portcullis::access")
                && l.contains("\"status\":200")
                && l.contains("\"route\":\"orders-read\"")
        })
        .expect("an access line for the served request");
    for field in [
        "request_id",
        "method",
        "path",
        "reason",
        "latency_ms",
        "upstream_ms",
        "issuer",
        "client_id",
        "sub",
        "jti",
    ] {
        assert!(
            served.contains(&format!("\"{field}\"")),
            "access line lacks {field}: {served}"
        );
    }
    for secret in [
        valid.as_str(),
        valid.split('.').nth(2).unwrap(), // any part of a token, e.g. its signature
        expired.split('.').nth(1).unwrap(),
        forged.split('.').nth(2).unwrap(),
        "cookie-secret-value",
        "cHJveHktc2VjcmV0",
        "not-a-jwt-secret",
    ] {
        let line = logs.lines().find(|l| l.contains(secret));
        assert!(
            line.is_none(),
            "a secret reached the logs: {}",
            line.unwrap_or_default()
        );
    }
}

/// The access line of a request refused after its token was verified says who was refused
/// (`issuer`, `sub`, `client_id`, `jti`), and a request that matched no route says which path
/// it asked for (without the query), so "who was refused a write, and where" can be answered.
#[tokio::test]
async fn refusals_after_verification_name_the_identity_and_no_route_names_the_path() {
    let captured = captured();
    let gw = standard_gateway().await;
    let c = client();
    let token = Issuer::rsa(&claims("read:orders"));
    // The admin route needs the `admin` scope: 403 insufficient_scope for a verified token.
    let refused = c
        .get(gw.url("/orders/1"))
        .header("host", "admin.example.com")
        .header("x-request-id", "log-test-insufficient-scope")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let unrouted = c
        .get(gw.url("/nowhere/at-all?access_token=query-secret-value"))
        .header("x-request-id", "log-test-no-route")
        .send()
        .await
        .unwrap();
    assert_eq!(unrouted.status(), 404);
    drop(gw); // stop the gateway so every log line is written

    let line = |id: &str| -> serde_json::Value {
        let text = captured.text();
        let line = text
            .lines()
            .find(|l| l.contains("portcullis::access") && l.contains(id))
            .unwrap_or_else(|| panic!("no access line for {id}"))
            .to_owned();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        value.get("fields").cloned().unwrap_or(value)
    };
    let refused = line("log-test-insufficient-scope");
    assert_eq!(refused["status"], 403, "{refused}");
    assert_eq!(refused["reason"], "insufficient_scope", "{refused}");
    assert_eq!(refused["route"], "admin", "{refused}");
    assert_eq!(refused["issuer"], "corp", "{refused}");
    assert_eq!(refused["sub"], "alice", "{refused}");
    assert_eq!(refused["client_id"], "orders-ui", "{refused}");
    assert_eq!(refused["jti"], "jti-1", "{refused}");
    // Latency in milliseconds with at most microsecond digits.
    let latency = refused["latency_ms"].to_string();
    assert!(
        latency.split('.').nth(1).is_none_or(|d| d.len() <= 3),
        "{latency}"
    );
    let unrouted = line("log-test-no-route");
    assert_eq!(unrouted["status"], 404, "{unrouted}");
    assert_eq!(unrouted["reason"], "no_route", "{unrouted}");
    assert_eq!(unrouted["path"], "/nowhere/at-all", "{unrouted}");
    assert_eq!(unrouted["sub"], "-", "{unrouted}");
    assert!(!captured.text().contains("query-secret-value"));
}
