//! The two clients: raw HTTP/1.1 bytes on a TCP connection, and HTTP/2 over TLS with hyper.
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{EXCHANGE_BOUND, TLS_NAME};

/// A complete response.
pub struct Reply {
    pub status: u16,
    /// Names in lower case, in order, repeated names kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send `request` on a new connection and read one response (to its end, or to EOF).
/// `head`: the request is a HEAD, so the response has no body whatever it announces.
pub async fn http1_exchange(addr: SocketAddr, request: &[u8], head: bool) -> Result<Reply, String> {
    let deadline = tokio::time::Instant::now() + EXCHANGE_BOUND;
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // A write error means the peer already closed: whatever it answered is still read.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await;
        let n = match read {
            Err(_) => {
                return Err(format!(
                    "no complete response within {EXCHANGE_BOUND:?}: {:?}",
                    String::from_utf8_lossy(&buf)
                ))
            }
            // A reset ends the response like EOF does.
            Ok(Err(_)) => 0,
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return parse_response(&buf, head, true)?.ok_or_else(|| {
                format!(
                    "connection closed {}",
                    if buf.is_empty() {
                        "without an answer".to_owned()
                    } else {
                        format!("mid-response: {:?}", String::from_utf8_lossy(&buf))
                    }
                )
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(reply) = parse_response(&buf, head, false)? {
            return Ok(reply);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The response in `buf`: `Ok(None)` while incomplete, an error when malformed or truncated
/// at `eof`. Interim (1xx) responses are skipped.
pub fn parse_response(buf: &[u8], head: bool, eof: bool) -> Result<Option<Reply>, String> {
    let incomplete = |what: &str| -> Result<Option<Reply>, String> {
        if eof && !buf.is_empty() {
            Err(format!("{what}: {:?}", String::from_utf8_lossy(buf)))
        } else {
            Ok(None)
        }
    };
    let mut rest = buf;
    let (status, headers, body) = loop {
        let Some(end) = find(rest, b"\r\n\r\n") else {
            return incomplete("truncated response head");
        };
        let text = String::from_utf8_lossy(&rest[..end]);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        rest = &rest[end + 4..];
        if !(100..200).contains(&status) || status == 101 {
            break (status, headers, rest);
        }
    };
    let reply = |body: Vec<u8>| Reply {
        status,
        headers: headers.clone(),
        body,
    };
    if head || matches!(status, 101 | 204 | 304) {
        return Ok(Some(reply(Vec::new())));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        return match dechunk(body)? {
            Some(body) => Ok(Some(reply(body))),
            None => incomplete("truncated chunked body"),
        };
    }
    if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad Content-Length {length:?}"))?;
        if body.len() >= length {
            return Ok(Some(reply(body[..length].to_vec())));
        }
        return incomplete("truncated body");
    }
    // Neither: the body runs to EOF.
    if eof {
        Ok(Some(reply(body.to_vec())))
    } else {
        Ok(None)
    }
}

/// A chunked body: `Ok(None)` while incomplete. Trailers are ignored.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&rest[..line_end]);
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size line {line:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Send `request` over HTTP/2 on a new TLS connection (ALPN h2) and read the whole response.
pub async fn h2_exchange(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    request: http::Request<Empty<Bytes>>,
) -> Result<Reply, String> {
    tokio::time::timeout(EXCHANGE_BOUND, h2_unbounded(addr, connector, request))
        .await
        .unwrap_or_else(|_| Err(format!("no complete response within {EXCHANGE_BOUND:?}")))
}

async fn h2_unbounded(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    request: http::Request<Empty<Bytes>>,
) -> Result<Reply, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(TLS_NAME)
        .map_err(|e| format!("server name: {e}"))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    if tls.get_ref().1.alpn_protocol() != Some(&b"h2"[..]) {
        return Err("the listener did not select h2".to_owned());
    }
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(connection);
    sender
        .ready()
        .await
        .map_err(|e| format!("h2 connection: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("h2 request: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("h2 body: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

#[test]
fn responses_are_framed_by_length_chunks_head_or_eof() {
    let fixed = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
    let reply = parse_response(fixed, false, false).unwrap().unwrap();
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(reply.header("x-a"), Some("b"));
    assert!(parse_response(&fixed[..fixed.len() - 1], false, false)
        .unwrap()
        .is_none());
    assert!(parse_response(&fixed[..fixed.len() - 1], false, true).is_err());

    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let reply = parse_response(chunked, false, false).unwrap().unwrap();
    assert_eq!(reply.body, b"abcde");
    assert!(parse_response(&chunked[..60], false, false)
        .unwrap()
        .is_none());

    let head = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 40\r\n\r\n";
    let reply = parse_response(head, true, false).unwrap().unwrap();
    assert_eq!((reply.status, reply.body.len()), (401, 0));

    let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\nbad";
    assert!(parse_response(interim, false, false).unwrap().is_none());
    let reply = parse_response(interim, false, true).unwrap().unwrap();
    assert_eq!((reply.status, reply.body.as_slice()), (400, &b"bad"[..]));

    assert!(parse_response(b"", false, true).unwrap().is_none());
    assert!(parse_response(b"garbage\r\n\r\n", false, true).is_err());
}
