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
