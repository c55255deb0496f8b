//! Test support: a real gateway in-process on 127.0.0.1:0, a real echo upstream, a silent
//! upstream, and a token issuer with the fixture keys (RSA and EC).
#![allow(dead_code)]

pub mod keyserver;

use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use pingora::server::Fds;
use pingora::services::Service as _;
use portcullis::snapshot::SnapshotHolder;
use serde_json::{json, Value};
use tokio::sync::watch;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub const ISSUER: &str = "https://idp.test/realms/corp";
pub const AUDIENCE: &str = "orders-api";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Claims of a valid token granting `scope`.
pub fn claims(scope: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "client_id": "orders-ui",
        "scope": scope,
        "iat": now,
        "exp": now + 300,
        "jti": "jti-1",
    })
}

/// Signs tokens with the fixture keys.
pub struct Issuer;

impl Issuer {
    fn pem(name: &str) -> Vec<u8> {
        std::fs::read(fixtures().join(name)).expect("fixture key")
    }

    pub fn rsa(claims: &Value) -> String {
        Self::sign(
            Algorithm::RS256,
            Some("test-rsa-1"),
            &EncodingKey::from_rsa_pem(&Self::pem("rsa-private.pem")).unwrap(),
            claims,
        )
    }

    pub fn ec(claims: &Value) -> String {
        Self::sign(
            Algorithm::ES256,
            Some("test-ec-1"),
            &EncodingKey::from_ec_pem(&Self::pem("ec-private.pem")).unwrap(),
            claims,
        )
    }

    /// RS256 with a key the gateway does not trust, under the given kid.
    pub fn rsa_untrusted(kid: &str, claims: &Value) -> String {
        Self::sign(
            Algorithm::RS256,
            Some(kid),
            &EncodingKey::from_rsa_pem(&Self::pem("rsa-other-private.pem")).unwrap(),
            claims,
        )
    }

    pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    /// The "key confusion" attack: HS256 keyed with the RSA public key's PEM bytes.
    pub fn hs256_with_rsa_public_key(claims: &Value) -> String {
        let key = EncodingKey::from_secret(&Self::pem("rsa-public.pem"));
        Self::sign(Algorithm::HS256, Some("test-rsa-1"), &key, claims)
    }

    /// An unsigned token (`alg: none`) with an empty signature part.
    pub fn unsigned(claims: &Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"test-rsa-1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{header}.{payload}.")
    }
}

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

/// An address nothing listens on (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A gateway running in-process: the real Pingora proxy service on a pre-bound listener.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub metrics: portcullis::metrics::Metrics,
    pub snapshots: Arc<SnapshotHolder>,
    shutdown: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TestGateway {
    /// Start a gateway on `yaml`, where `{listen}` is replaced by the listener address.
    /// Relative paths resolve against `tests/fixtures`.
    pub fn start(yaml: &str) -> TestGateway {
        portcullis::install_crypto_provider();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (listener, addr) = bind_free();
        let (admin_listener, admin) = bind_free();
        let mut yaml = yaml.replace("{listen}", &addr.to_string());
        if !yaml.contains("\nadmin:") {
            yaml.push_str(&format!("\nadmin: {{ address: \"{admin}\" }}\n"));
        }
        let compiled = portcullis::config::load_str(&yaml, &fixtures())
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let snapshots = Arc::new(SnapshotHolder::new(compiled.snapshot));
        let metrics = portcullis::metrics::Metrics::new().unwrap();
        let conf = Arc::new(portcullis::app::server_conf());
        let mut proxy =
            portcullis::app::proxy_service(Arc::clone(&snapshots), metrics.clone(), &conf);
        let mut admin_service =
            portcullis::app::admin_service(Arc::clone(&snapshots), metrics.clone());

        // Hand the bound sockets to Pingora the way a graceful upgrade does: by fd, keyed by address.
        let mut fds = Fds::new();
        fds.add(addr.to_string(), listener.into_raw_fd());
        fds.add(admin.to_string(), admin_listener.into_raw_fd());
        let fds = Arc::new(parking_lot::Mutex::new(fds));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let refresh_snapshot = snapshots.current();
        let refresh_metrics = metrics.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                portcullis::app::spawn_key_refreshers(
                    &refresh_snapshot,
                    &refresh_metrics,
                    &shutdown_rx,
                );
                let admin_fds = Arc::clone(&fds);
                let admin_shutdown = shutdown_rx.clone();
                tokio::spawn(async move {
                    admin_service
                        .start_service(Some(admin_fds), admin_shutdown, 1)
                        .await
                });
                proxy.start_service(Some(fds), shutdown_rx, 1).await;
            });
        });
        TestGateway {
            addr,
            admin,
            metrics,
            snapshots,
            shutdown,
            thread: Mutex::new(Some(thread)),
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// The standard test configuration around the given upstreams.
pub fn config(echo: SocketAddr, silent: SocketAddr, closed: SocketAddr) -> String {
    format!(
        r#"
listeners:
  - name: test
    address: "{{listen}}"
issuers:
  - id: corp
    issuer: "{ISSUER}"
    jwks_file: jwks.json
    audiences: ["{AUDIENCE}", "other-api"]
    algorithms: [RS256, ES256]
    leeway: 30s
upstreams:
  - id: echo
    url: "http://{echo}"
  - id: silent
    url: "http://{silent}"
    read_timeout: 300ms
  - id: closed
    url: "http://{closed}"
    connect_timeout: 500ms
identity:
  headers:
    X-Auth-Subject: sub
    X-Auth-Client-Id: client_id
    X-Auth-Scopes: scope
    X-Auth-Issuer: iss
  strip_prefixes: ["x-auth-"]
routes:
  - id: orders-read
    match: {{ path_prefix: /orders, methods: [GET, HEAD] }}
    upstream: echo
    auth:
      issuers: [corp]
      scopes: {{ all_of: ["read:orders"] }}
    identity: {{ headers: {{ X-Legacy-User: sub }} }}
  - id: admin
    match: {{ host: admin.example.com, path_prefix: /orders }}
    upstream: echo
    auth:
      scopes: {{ all_of: ["admin"], any_of: ["tenant:a", "tenant:b"] }}
  - id: forwarding
    match: {{ path_prefix: /forward }}
    upstream: echo
    forward_token: true
  - id: public
    match: {{ path_prefix: /public }}
    upstream: echo
    auth: public
  - id: health
    match: {{ path: /healthz }}
    upstream: echo
    auth: public
  - id: slow
    match: {{ path_prefix: /slow }}
    upstream: silent
    auth: public
  - id: down
    match: {{ path_prefix: /down }}
    upstream: closed
    auth: public
"#
    )
}

/// A non-blocking listener on a free loopback port (Pingora's tokio listener needs non-blocking).
fn bind_free() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A gateway with the standard configuration and its upstreams.
pub async fn standard_gateway() -> TestGateway {
    let echo = echo_upstream().await;
    let silent = silent_upstream().await;
    TestGateway::start(&config(echo, silent, closed_port()))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
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
