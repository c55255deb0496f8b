//! A real HTTP key server for tests: OIDC discovery at `/.well-known/openid-configuration` and a
//! JWKS at `/jwks`, whose content and health the test switches, counting every fetch.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    /// 500 for every request.
    Fail,
    /// 200 with a body that is not JSON.
    Garbage,
    /// `/jwks` redirects to the same server under another host name (`localhost`).
    RedirectElsewhere,
}

struct State {
    jwks: Mutex<Value>,
    mode: Mutex<Mode>,
    /// The `issuer` the discovery document claims; `None`: the server's own URL.
    claimed_issuer: Mutex<Option<String>>,
    jwks_fetches: AtomicU64,
    discovery_fetches: AtomicU64,
    /// Any request that carried Authorization or Cookie.
    saw_credentials: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
pub struct KeyServer {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl KeyServer {
    pub async fn start(jwks: Value) -> KeyServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            jwks: Mutex::new(jwks),
            mode: Mutex::new(Mode::Serve),
            claimed_issuer: Mutex::new(None),
            jwks_fetches: AtomicU64::new(0),
            discovery_fetches: AtomicU64::new(0),
            saw_credentials: std::sync::atomic::AtomicBool::new(false),
        });
        let server = KeyServer { addr, state };
        let handle = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let handle = handle.clone();
                        async move { handle.answer(req) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        server
    }

    /// The issuer URL whose discovery document this server serves.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn serve(&self, jwks: Value) {
        *self.state.jwks.lock() = jwks;
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock() = mode;
    }

    pub fn claim_issuer(&self, issuer: &str) {
        *self.state.claimed_issuer.lock() = Some(issuer.to_owned());
    }

    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> u64 {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Whether any request to this server carried `Authorization` or `Cookie`.
    pub fn saw_credentials(&self) -> bool {
        self.state.saw_credentials.load(Ordering::SeqCst)
    }

    fn answer(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        if req.headers().contains_key(http::header::AUTHORIZATION)
            || req.headers().contains_key(http::header::COOKIE)
        {
            self.state.saw_credentials.store(true, Ordering::SeqCst);
        }
        let (status, body) = match (req.uri().path(), *self.state.mode.lock()) {
            (_, Mode::Fail) => (500, "down".to_owned()),
            ("/jwks", Mode::RedirectElsewhere) => {
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = hyper::StatusCode::FOUND;
                let location = format!("http://localhost:{}/jwks-elsewhere", self.addr.port());
                resp.headers_mut()
                    .insert(http::header::LOCATION, location.parse().unwrap());
                return Ok(resp);
            }
            ("/jwks-elsewhere", _) => {
                self.state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                (200, self.state.jwks.lock().to_string())
            }
            (_, Mode::Garbage) => (200, "<html>not json</html>".to_owned()),
            ("/.well-known/openid-configuration", Mode::Serve) => {
                self.state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
                let issuer = self
                    .state
                    .claimed_issuer
                    .lock()
                    .clone()
                    .unwrap_or_else(|| self.issuer());
                (
                    200,
                    json!({"issuer": issuer, "jwks_uri": self.jwks_url()}).to_string(),
                )
            }
            ("/jwks", Mode::Serve) => {
                self.state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                (200, self.state.jwks.lock().to_string())
            }
            _ => (404, String::new()),
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        Ok(resp)
    }
}

/// The fixture JWKS (`test-rsa-1`, `test-ec-1`).
pub fn fixture_jwks() -> Value {
    serde_json::from_str(&std::fs::read_to_string(super::fixtures().join("jwks.json")).unwrap())
        .unwrap()
}

/// The JWKS of the second RSA key (`test-rsa-2`), for rotation.
pub fn rotated_jwks() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(super::fixtures().join("jwks-rotated.json")).unwrap(),
    )
    .unwrap()
}

/// What an IdP publishes during a rotation: the fixture keys (test-rsa-1 …) and test-rsa-2.
pub fn rotating_jwks() -> Value {
    let mut both = fixture_jwks();
    if let Some(keys) = both["keys"].as_array_mut() {
        keys.push(rotated_jwks()["keys"][0].clone());
    }
    both
}

/// One key of `jwks` (by index) under another `kid`.
pub fn renamed(jwks: &Value, index: usize, kid: &str) -> Value {
    let mut key = jwks["keys"][index].clone();
    key["kid"] = json!(kid);
    json!({ "keys": [key] })
}
