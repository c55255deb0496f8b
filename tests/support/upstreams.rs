//! Upstreams for the gateway under test: the real echo server, a silent one, a closed port, and
//! one that holds requests until released.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::sync::watch;

/// The real echo upstream (the demo backend) on a free port.
pub async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(portcullis::demo::echo::serve(listener));
    addr
}

/// An upstream that accepts connections and never answers.
pub async fn silent_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// An HTTP/1.0 upstream, as old backends are: each connection gets `HTTP/1.0 200 OK` and
/// `body`, with a `Content-Length` when `with_length`, else delimited by closing the connection.
pub async fn http10_upstream(body: &'static str, with_length: bool) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let length = match with_length {
                    true => format!("Content-Length: {}\r\n", body.len()),
                    false => String::new(),
                };
                let response =
                    format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n{length}\r\n{body}");
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// An address nothing listens on (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// What the echo upstream reports it received.
pub struct Echoed(pub Value);

impl Echoed {
    pub fn header(&self, name: &str) -> Option<Vec<String>> {
        self.0["headers"][name].as_array().map(|v| {
            v.iter()
                .map(|s| s.as_str().unwrap_or_default().to_owned())
                .collect()
        })
    }
    pub fn header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0["headers"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
    pub fn target(&self) -> &str {
        self.0["target"].as_str().unwrap_or_default()
    }
}

pub async fn echoed(resp: reqwest::Response) -> Echoed {
    assert_eq!(resp.status(), 200, "expected the upstream's answer");
    Echoed(resp.json().await.unwrap())
}

/// An upstream that holds every request until released: `arrived` yields once per request that
/// reached it, and sending `true` on `release` lets them all answer 200.
pub struct GatedUpstream {
    pub addr: SocketAddr,
    pub arrived: tokio::sync::mpsc::UnboundedReceiver<()>,
    pub release: watch::Sender<bool>,
}

pub async fn gated_upstream() -> GatedUpstream {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrive_tx, arrived) = tokio::sync::mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let arrive_tx = arrive_tx.clone();
            let released = released.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let arrive_tx = arrive_tx.clone();
                    let mut released = released.clone();
                    async move {
                        let _ = arrive_tx.send(());
                        let _ = released.wait_for(|r| *r).await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"released")),
                        ))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    GatedUpstream {
        addr,
        arrived,
        release,
    }
}
