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
        // An HTTP/1.0 client never gets chunked framing (RFC 9112 §6.1): the body is
        // delimited by its length or by the close, even when it asked to keep the connection.
        for connection in ["", "Connection: keep-alive\r\n"] {
            let raw = raw_exchange(
                gw.addr,
                &format!("GET /down/b HTTP/1.0\r\nHost: api.example.com\r\n{connection}\r\n"),
            )
            .await;
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK"), "{raw}");
            assert!(
                !head.to_ascii_lowercase().contains("transfer-encoding"),
                "{raw}"
            );
            assert_eq!(
                body, "from an old backend",
                "with_length {with_length}: {raw}"
            );
        }
    }
    // An HTTP/1.1 backend's chunked answer reaches an HTTP/1.0 client unchunked too.
    let gw = TestGateway::start(&config(
        echo_upstream().await,
        closed_port(),
        chunked_upstream().await,
    ));
    let raw = raw_exchange(
        gw.addr,
        "GET /down/c HTTP/1.0\r\nHost: api.example.com\r\n\r\n",
    )
    .await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{raw}"
    );
    assert_eq!(body, "chunk onechunk two", "{raw}");
}

/// Send one raw request and read its response: the head, then a `Content-Length` body, or
/// everything until the gateway closes the connection (bounded: a close-delimited response that
/// never ends fails the test instead of hanging it). Chunked framing is not decoded.
async fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = async {
        let mut byte = [0u8; 1];
        while !out.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).await.unwrap(),
                1,
                "closed in the head"
            );
            out.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&out).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|n| n.trim().parse::<usize>().unwrap());
        match length {
            Some(n) => {
                let mut body = vec![0; n];
                stream.read_exact(&mut body).await.unwrap();
                out.extend_from_slice(&body);
            }
            None => {
                stream.read_to_end(&mut out).await.unwrap();
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("the response did not end");
    String::from_utf8(out).unwrap()
}

/// An HTTP/1.1 upstream answering with a chunked body, keeping its connection open.
async fn chunked_upstream() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nchunk one\r\n9\r\nchunk two\r\n0\r\n\r\n")
                    .await;
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    addr
}
