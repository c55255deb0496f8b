//! A client can never reach a protected path through a spelling that matches a public route.

use crate::support::*;

/// Send a raw request line, since HTTP clients normalise paths themselves.
async fn raw_get(gw: &TestGateway, target: &str, token: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn dot_segments_through_a_public_route_land_on_the_protected_route() {
    let gw = standard_gateway().await;
    for target in [
        "/public/../orders/1",
        "/public/%2e%2e/orders/1",
        "/public/%2E%2E/orders/1",
        "//public/./../orders/1",
        "/public/x/../../orders/1",
    ] {
        let (status, text) = raw_get(&gw, target, None).await;
        assert_eq!(status, 401, "{target} must hit the protected route: {text}");
    }
}

#[tokio::test]
async fn the_upstream_receives_the_normalised_path() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders"));
    let (status, text) = raw_get(&gw, "/public/../%6Frders//7/./?q=1", Some(&token)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"target\":\"/orders/7/?q=1\""), "{text}");
}

#[tokio::test]
async fn ambiguous_spellings_are_400() {
    let gw = standard_gateway().await;
    for target in [
        "/public%2F..%2Forders/1",
        "/public/..%2Forders/1",
        "/public/..%5Corders/1",
        "/public/..;/orders/1",
        "/public/.;x/orders",
        "/../orders/1",
        "/public/../../orders/1",
        "/public/%00",
        "/public/%zz",
    ] {
        let (status, text) = raw_get(&gw, target, None).await;
        assert_eq!(status, 400, "{target}: {text}");
    }
}

#[tokio::test]
async fn prefix_matching_respects_segment_boundaries() {
    let gw = standard_gateway().await;
    // "/publicity" is not under "/public": no route, not the public one.
    let (status, _) = raw_get(&gw, "/publicity", None).await;
    assert_eq!(status, 404);
    let (status, _) = raw_get(&gw, "/public", None).await;
    assert_eq!(status, 200);
}
