//! The authenticated request path end to end: real gateway, real upstream, real tokens.

use crate::support::*;

#[tokio::test]
async fn valid_rsa_token_reaches_upstream_with_exactly_the_identity_headers() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders profile"));
    let resp = client()
        .get(gw.url("/orders/7?x=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let echoed = echoed(resp).await;
    let identity: Vec<String> = echoed
        .header_names()
        .into_iter()
        .filter(|n| n.starts_with("x-auth-") || n == "x-legacy-user")
        .collect();
    assert_eq!(
        identity,
        [
            "x-auth-client-id",
            "x-auth-issuer",
            "x-auth-scopes",
            "x-auth-subject",
            "x-legacy-user"
        ]
    );
    assert_eq!(echoed.header("x-auth-subject").unwrap(), ["alice"]);
    assert_eq!(echoed.header("x-auth-client-id").unwrap(), ["orders-ui"]);
    assert_eq!(
        echoed.header("x-auth-scopes").unwrap(),
        ["profile read:orders"]
    );
    assert_eq!(echoed.header("x-auth-issuer").unwrap(), [ISSUER]);
    assert_eq!(echoed.header("x-legacy-user").unwrap(), ["alice"]);
    assert_eq!(
        echoed.header("authorization"),
        None,
        "the token is not forwarded by default"
    );
    assert_eq!(echoed.target(), "/orders/7?x=1");
}

#[tokio::test]
async fn valid_ec_token_is_accepted() {
    let gw = standard_gateway().await;
    let token = Issuer::ec(&claims("read:orders"));
    let resp = client()
        .get(gw.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        echoed(resp).await.header("x-auth-subject").unwrap(),
        ["alice"]
    );
}

#[tokio::test]
async fn forwarding_headers_are_set_from_the_connection() {
    let gw = standard_gateway().await;
    let resp = client()
        .get(gw.url("/public/x"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let echoed = echoed(resp).await;
    // The client is no trusted proxy: its forwarding headers are replaced, not appended to.
    assert_eq!(echoed.header("x-forwarded-for").unwrap(), ["127.0.0.1"]);
    assert_eq!(echoed.header("x-real-ip").unwrap(), ["127.0.0.1"]);
    assert_eq!(echoed.header("x-forwarded-proto").unwrap(), ["http"]);
    assert_eq!(
        echoed.header("x-forwarded-host").unwrap(),
        [gw.addr.to_string()]
    );
}

#[tokio::test]
async fn forward_token_sends_authorization_upstream() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims(""));
    let resp = client()
        .get(gw.url("/forward"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        echoed(resp).await.header("authorization").unwrap(),
        [format!("Bearer {token}")]
    );
}

#[tokio::test]
async fn any_of_and_all_of_scopes_are_both_enforced() {
    let gw = standard_gateway().await;
    let get = |scope: &'static str| {
        let token = Issuer::rsa(&claims(scope));
        client()
            .get(gw.url("/orders/1"))
            .header("host", "admin.example.com")
            .bearer_auth(token)
            .send()
    };
    assert_eq!(get("admin tenant:b").await.unwrap().status(), 200);
    let denied = get("admin").await.unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"admin tenant:a tenant:b\""
    );
    assert_eq!(get("tenant:a").await.unwrap().status(), 403);
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let gw = standard_gateway().await;
    let resp = client().get(gw.url("/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn method_outside_the_route_is_405_with_allow() {
    // RFC 9110 §15.5.6: 405 lists the methods the target supports in `Allow`.
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders"));
    let resp = client()
        .delete(gw.url("/orders/1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let gw = standard_gateway().await;
    let resp = client().get(gw.url("/down")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");
}

#[tokio::test]
async fn silent_upstream_is_504() {
    let gw = standard_gateway().await;
    let resp = client().get(gw.url("/slow")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "gateway_timeout");
}

#[tokio::test]
async fn a_well_formed_request_id_is_kept_upstream_and_returned() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders"));
    let resp = client()
        .get(gw.url("/orders/1"))
        .bearer_auth(token)
        .header("x-request-id", "req-7f3a.b2:c1_d")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-7f3a.b2:c1_d");
    assert_eq!(
        echoed(resp).await.header("x-request-id").unwrap(),
        ["req-7f3a.b2:c1_d"]
    );
}

#[tokio::test]
async fn a_malformed_or_missing_request_id_is_replaced_and_rejections_carry_one() {
    let gw = standard_gateway().await;
    let resp = client()
        .get(gw.url("/public/x"))
        .header("x-request-id", "evil\tvalue with spaces")
        .send()
        .await
        .unwrap();
    let returned = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(returned.len(), 32);
    assert_eq!(
        echoed(resp).await.header("x-request-id").unwrap(),
        [returned]
    );

    let rejected = client().get(gw.url("/orders/1")).send().await.unwrap();
    assert_eq!(rejected.status(), 401);
    assert_eq!(rejected.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn a_pooled_connection_survives_an_upstream_failure() {
    let gw = standard_gateway().await;
    let c = client();
    let failed = c.get(gw.url("/down")).send().await.unwrap();
    assert_eq!(failed.status(), 502);
    assert_eq!(failed.headers()["connection"], "close");
    // The client's next request must not land on the connection the gateway closed.
    assert_eq!(
        c.get(gw.url("/public/x")).send().await.unwrap().status(),
        200
    );
}

/// Send `requests` (raw HTTP/1.x) one after the other on one connection, reading each response
/// (its status line, headers and body per its framing) before the next; returns each response's
/// status line and body. Stops at a close-delimited body (the connection ends with it).
async fn on_one_connection(addr: std::net::SocketAddr, requests: &[&str]) -> Vec<(String, String)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut stream = BufReader::new(stream);
    let mut answers = Vec::new();
    for request in requests {
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut status = String::new();
        stream.read_line(&mut status).await.unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            headers.push(line.trim_end().to_ascii_lowercase());
        }
        let header = |name: &str| {
            headers
                .iter()
                .find_map(|h| h.strip_prefix(&format!("{name}: ")).map(str::to_owned))
        };
        let mut body = Vec::new();
        if let Some(n) = header("content-length") {
            body.resize(n.parse().unwrap(), 0);
            stream.read_exact(&mut body).await.unwrap();
        } else if header("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let mut size = String::new();
                stream.read_line(&mut size).await.unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                stream.read_exact(&mut chunk).await.unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            stream.read_to_end(&mut body).await.unwrap();
            answers.push((
                status.trim_end().to_owned(),
                String::from_utf8(body).unwrap(),
            ));
            break;
        }
        answers.push((
            status.trim_end().to_owned(),
            String::from_utf8(body).unwrap(),
        ));
    }
    answers
}

/// A backend answering HTTP/1.0 does not make clients see `HTTP/1.0`: they are answered in their
/// own version (RFC 9110 §6.2), and an HTTP/1.1 client's connection stays usable even when the
/// backend delimited its body by closing (the body is re-framed chunked), as nginx and Envoy do.
#[tokio::test]
async fn an_http10_backend_is_relayed_in_the_client_s_version() {
    for with_length in [true, false] {
        let old = http10_upstream("from an old backend", with_length).await;
        let gw = TestGateway::start(&config(echo_upstream().await, closed_port(), old));
        let get = "GET /down/a HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
        let answers = on_one_connection(gw.addr, &[get, get]).await;
        assert_eq!(answers.len(), 2, "with_length {with_length}: {answers:?}");
        for (status, body) in &answers {
            assert_eq!(status, "HTTP/1.1 200 OK", "with_length {with_length}");
            assert_eq!(body, "from an old backend");
        }
        // An HTTP/1.0 client gets a body it can read (never chunked), and the connection closes.
        let answers = on_one_connection(
            gw.addr,
            &["GET /down/b HTTP/1.0\r\nHost: api.example.com\r\n\r\n"],
        )
        .await;
        assert_eq!(answers[0].1, "from an old backend", "{answers:?}");
        assert!(answers[0].0.starts_with("HTTP/1."), "{answers:?}");
    }
}
