//! CORS at the gateway: preflights answered without a token and never forwarded, refused with no
//! CORS header for an origin, method or header the policy does not allow, and the CORS headers
//! on actual answers, the gateway's own 401 included, so a browser application can read why.

use crate::support::*;

const CORS: &str = "cors: { allowed_origins: [\"https://app.example.com\", \"https://*.tenant.example\"], allowed_methods: [GET, POST], allow_credentials: true, exposed_headers: [X-Request-Id] }\n";

/// (status, the named response headers).
async fn call(
    gw: &TestGateway,
    method: reqwest::Method,
    headers: &[(&str, &str)],
    names: &[&str],
) -> (u16, Vec<Option<String>>) {
    let mut req = client().request(method, gw.url("/orders/1"));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = req.send().await.unwrap();
    let values = names
        .iter()
        .map(|n| {
            let all: Vec<&str> = resp
                .headers()
                .get_all(*n)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            (!all.is_empty()).then(|| all.join(", "))
        })
        .collect();
    (resp.status().as_u16(), values)
}

#[tokio::test]
async fn preflights_are_answered_here_without_a_token_and_never_forwarded() {
    // Every upstream refuses connections: a forwarded request would be a 502.
    let gw = TestGateway::start(&format!(
        "{}{CORS}",
        config(closed_port(), closed_port(), closed_port())
    ));
    let preflight = |origin: &'static str, method: &'static str, headers: &'static str| {
        let mut h = vec![
            ("origin", origin),
            ("access-control-request-method", method),
        ];
        if !headers.is_empty() {
            h.push(("access-control-request-headers", headers));
        }
        h
    };
    let names = [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
    ];
    let ok = call(
        &gw,
        reqwest::Method::OPTIONS,
        &preflight("https://a.tenant.example", "GET", "Authorization"),
        &names,
    )
    .await;
    assert_eq!(
        ok,
        (
            204,
            vec![
                Some("https://a.tenant.example".to_owned()),
                Some("true".to_owned()),
                Some("GET, POST".to_owned()),
                Some("authorization, content-type".to_owned()),
                Some("600".to_owned()),
            ]
        )
    );
    // Refused, with no CORS header: another origin, a method or a header the policy lacks. A
    // method no route takes on that path is the router's 405, with no CORS header either.
    for (origin, method, headers, refusal) in [
        ("https://evil.example", "GET", "", 403),
        ("null", "GET", "", 403),
        ("https://app.example.com", "GET", "x-admin", 403),
        ("https://app.example.com", "DELETE", "", 405),
    ] {
        let (status, values) = call(
            &gw,
            reqwest::Method::OPTIONS,
            &preflight(origin, method, headers),
            &names,
        )
        .await;
        assert_eq!(status, refusal, "{origin} {method} {headers}");
        assert!(values.iter().all(Option::is_none), "{values:?}");
    }
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains(r#"portcullis_rejections_total{mode="proxy",reason="cors_refused",route="orders-read"} 3"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn answers_to_allowed_origins_carry_cors_headers_refusals_too() {
    let gw = TestGateway::start(&format!(
        "{}{CORS}",
        config(echo_upstream().await, closed_port(), closed_port())
    ));
    let names = [
        "access-control-allow-origin",
        "vary",
        "www-authenticate",
        "access-control-expose-headers",
    ];
    let origin = ("origin", "https://app.example.com");
    // The gateway's own 401: readable by the application, with its challenge.
    let (status, values) = call(&gw, reqwest::Method::GET, &[origin], &names).await;
    assert_eq!(status, 401);
    assert_eq!(values[0].as_deref(), Some("https://app.example.com"));
    assert_eq!(values[1].as_deref(), Some("Origin"));
    assert!(values[2].is_some());
    // The backend's answer.
    let bearer = format!("Bearer {}", Issuer::rsa(&claims("read:orders")));
    let (status, values) = call(
        &gw,
        reqwest::Method::GET,
        &[origin, ("authorization", bearer.as_str())],
        &names,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(values[0].as_deref(), Some("https://app.example.com"));
    assert_eq!(values[3].as_deref(), Some("x-request-id"));
    // Another origin: no CORS header, the browser keeps the answer from the page.
    let (status, values) = call(
        &gw,
        reqwest::Method::GET,
        &[("origin", "https://evil.example")],
        &names,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(values[0], None);
    // Still `Vary: Origin`: a cache must not hand this answer to the allowed application.
    assert_eq!(values[1].as_deref(), Some("Origin"));
    let (_, values) = call(&gw, reqwest::Method::GET, &[], &names).await;
    assert_eq!(values[1].as_deref(), Some("Origin"));
}
