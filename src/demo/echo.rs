//! A small HTTP/1.1 echo backend: it answers every request with a JSON description of what it
//! received (method, target, headers, body size). It stands in for a legacy API in the demo and
//! in tests, showing exactly which headers the gateway forwarded.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

const MAX_ECHO_BODY: usize = 1024 * 1024;

/// Serve echo responses on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve_connection(stream));
    }
}

/// Serve echo responses on one connection (plain TCP, or TLS in tests of HTTPS upstreams).
pub async fn serve_connection<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // A client hanging up mid-request is not the echo server's problem.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(echo))
        .await;
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let target = req.uri().to_string();
    let mut headers: Map<String, Value> = Map::new();
    for (name, value) in req.headers() {
        let entry = headers
            .entry(name.as_str())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(Value::String(
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
    }
    let body_bytes = match Limited::new(req.into_body(), MAX_ECHO_BODY).collect().await {
        Ok(collected) => collected.to_bytes().len(),
        Err(_) => 0,
    };
    let body = json!({
        "service": "portcullis demo echo backend",
        "method": method,
        "target": target,
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
