//! Test support: a real gateway in-process on 127.0.0.1:0, a real echo upstream, a silent
//! upstream, and a token issuer with the fixture keys (RSA and EC).
#![allow(dead_code)]

pub mod keyserver;
pub mod redis;
pub mod revocations;
pub mod tls;

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

    /// RS256 with the trusted key, but with `header` (raw JSON) as the JOSE header.
    pub fn rsa_with_header(header: &Value, claims: &Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = EncodingKey::from_rsa_pem(&Self::pem("rsa-private.pem")).unwrap();
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256).unwrap();
        format!("{input}.{signature}")
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

/// A gateway running in-process: the real Pingora proxy and admin services on pre-bound
/// listeners, the key refreshers, and (when started from a file) the reload watcher.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub metrics: portcullis::metrics::Metrics,
    pub snapshots: Arc<SnapshotHolder>,
    /// Reload outcomes, when started with [`TestGateway::start_reloading`].
    pub reloads: watch::Receiver<Option<portcullis::reload::ReloadOutcome>>,
    /// Revocation-file reloads (when started from a file with a revocation file).
    pub revocation_file_loads:
        watch::Receiver<Option<Result<portcullis::revocation::file::FileLoad, String>>>,
    shutdown: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TestGateway {
    /// Start a gateway on `yaml`, where `{listen}` is replaced by the listener address.
    /// Relative paths resolve against `tests/fixtures`.
    pub fn start(yaml: &str) -> TestGateway {
        let (listener, addr) = bind_free();
        let (admin_listener, admin) = bind_free();
        let yaml = with_addresses(yaml, addr, admin);
        let compiled = portcullis::config::load_str(&yaml, &fixtures())
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        Self::run(
            compiled.snapshot,
            (listener, addr),
            (admin_listener, admin),
            None,
        )
    }

    /// Start a gateway on the config file `path`, reloading it when its content changes.
    /// `{listen}` and `{admin}` in the file are replaced (in place) by the listener addresses.
    pub fn start_reloading(path: &std::path::Path) -> TestGateway {
        let (listener, addr) = bind_free();
        let (admin_listener, admin) = bind_free();
        let yaml = with_addresses(&std::fs::read_to_string(path).unwrap(), addr, admin);
        std::fs::write(path, yaml).unwrap();
        let loaded_hash = portcullis::reload::content_hash(path);
        let compiled =
            portcullis::config::load(path).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        Self::run(
            compiled.snapshot,
            (listener, addr),
            (admin_listener, admin),
            Some((path.to_path_buf(), loaded_hash)),
        )
    }

    fn run(
        mut snapshot: portcullis::snapshot::Snapshot,
        (listener, addr): (std::net::TcpListener, SocketAddr),
        (admin_listener, admin): (std::net::TcpListener, SocketAddr),
        reload_from: Option<(PathBuf, Option<u64>)>,
    ) -> TestGateway {
        portcullis::install_crypto_provider();
        portcullis::app::open_revocation_journal(&snapshot).unwrap();
        let mirror = portcullis::app::attach_revocation_mirror(&mut snapshot);
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let snapshots = Arc::new(SnapshotHolder::new(snapshot));
        let metrics = portcullis::metrics::Metrics::new().unwrap();
        let conf = Arc::new(portcullis::app::server_conf(
            std::time::Duration::from_secs(1),
        ));
        let in_flight = Arc::new(portcullis::drain::InFlight::default());
        let mut proxy = portcullis::app::proxy_service(
            Arc::clone(&snapshots),
            metrics.clone(),
            in_flight,
            &conf,
        )
        .unwrap();
        let mut admin_service =
            portcullis::app::admin_service(Arc::clone(&snapshots), metrics.clone());

        // Hand the bound sockets to Pingora the way a graceful upgrade does: by fd, keyed by address.
        let mut fds = Fds::new();
        fds.add(addr.to_string(), listener.into_raw_fd());
        fds.add(admin.to_string(), admin_listener.into_raw_fd());
        let fds = Arc::new(parking_lot::Mutex::new(fds));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (outcomes, reloads) = watch::channel(None);
        let (revocation_loads, revocation_file_loads) = watch::channel(None);
        let revocation_file = portcullis::app::open_revocation_file(&snapshots.current());
        let watcher = portcullis::reload::ReloadWatcher {
            path: reload_from
                .as_ref()
                .map(|(p, _)| p.clone())
                .unwrap_or_default(),
            loaded_hash: reload_from.as_ref().and_then(|(_, h)| *h),
            snapshots: Arc::clone(&snapshots),
            refreshers: Arc::new(portcullis::reload::Refreshers::default()),
            metrics: metrics.clone(),
            poll_interval: std::time::Duration::from_millis(20),
            outcomes,
            revocation_file,
            revocation_loads,
        };
        let (cert_snapshots, cert_metrics) = (Arc::clone(&snapshots), metrics.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if reload_from.is_some() {
                    tokio::spawn(watcher.run(shutdown_rx.clone()));
                } else {
                    // No file to watch: only the key refreshers, stopped with the gateway.
                    let refreshers = Arc::clone(&watcher.refreshers);
                    refreshers.sync(&watcher.snapshots.current(), &watcher.metrics);
                    let mut stop = shutdown_rx.clone();
                    tokio::spawn(async move {
                        let _ = stop.changed().await;
                        refreshers.stop_all();
                    });
                }
                if let Some(mirror) = mirror {
                    tokio::spawn(mirror.run(shutdown_rx.clone()));
                }
                tokio::spawn(portcullis::app::watch_certificates(
                    Arc::clone(&cert_snapshots),
                    cert_metrics,
                    std::time::Duration::from_millis(20),
                    shutdown_rx.clone(),
                ));
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
            reloads,
            revocation_file_loads,
            shutdown,
            thread: Mutex::new(Some(thread)),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The Prometheus text of the admin listener's `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let resp = client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
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

/// The status of `GET path` with a bearer token.
pub async fn status_of(gw: &TestGateway, path: &str, token: &str) -> u16 {
    client()
        .get(gw.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `{listen}` and `{admin}` replaced; an `admin` section added when the YAML has none.
fn with_addresses(yaml: &str, addr: SocketAddr, admin: SocketAddr) -> String {
    let mut yaml = yaml
        .replace("{listen}", &addr.to_string())
        .replace("{admin}", &admin.to_string());
    if !yaml.contains("\nadmin:") {
        yaml.push_str(&format!("\nadmin: {{ address: \"{admin}\" }}\n"));
    }
    yaml
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
    portcullis::install_crypto_provider();
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

/// The built binary, running on sockets this test bound on `127.0.0.1:0` and handed over the
/// way a graceful upgrade does (`run --upgrade`), so there is no port to guess and no start-up to
/// wait for: connections queue in the backlog until the binary accepts them. Its JSON log lines
/// arrive on a channel, so tests wait for events it logs. Killed when dropped.
pub struct GatewayProcess {
    pub child: std::process::Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    logs: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl GatewayProcess {
    /// Start the binary on `yaml` (with `{listen}` and `{admin}` placeholders), written to `dir`.
    pub async fn start(yaml: &str, dir: &std::path::Path) -> GatewayProcess {
        use std::io::BufRead;
        use std::os::fd::AsRawFd;
        let (listener, listen) = bind_free();
        let (admin_listener, admin) = bind_free();
        let path = dir.join("gateway.yaml");
        std::fs::write(
            &path,
            yaml.replace("{listen}", &listen.to_string())
                .replace("{admin}", &admin.to_string()),
        )
        .unwrap();
        let sock = dir.join("upgrade.sock");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["--log-format", "json", "run", "--upgrade", "--upgrade-sock"])
            .arg(&sock)
            .arg("-c")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut fds = Fds::new();
        fds.add(listen.to_string(), listener.as_raw_fd());
        fds.add(admin.to_string(), admin_listener.as_raw_fd());
        // Pingora's upgrade protocol: retried until the binary listens on the socket.
        let sock = sock.display().to_string();
        tokio::task::spawn_blocking(move || fds.send_to_sock(sock.as_str()).map(|_| ()))
            .await
            .unwrap()
            .unwrap();
        // The binary has its own copies now; closing ours lets the sockets close when it exits.
        drop((listener, admin_listener));
        GatewayProcess {
            child,
            listen,
            admin,
            logs,
        }
    }

    /// Wait until the binary logs a line containing `needle`, and return it.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        let wait = async {
            while let Some(line) = self.logs.recv().await {
                if line.contains(needle) {
                    return line;
                }
            }
            panic!("the gateway exited without logging {needle:?}");
        };
        // A bound on a broken test, not a synchronisation delay.
        tokio::time::timeout(std::time::Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("no log line {needle:?} within 60 s"))
    }

    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `check` every 10 ms until it holds; fail the test past `within` (a bound on a broken
/// test, not a synchronisation delay: the condition is what the test waits for).
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
