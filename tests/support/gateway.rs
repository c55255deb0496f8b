//! The gateway under test, in-process: the real Pingora proxy and admin services on pre-bound
//! `127.0.0.1:0` listeners, and the standard configuration.

use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use pingora::server::Fds;
use pingora::services::Service as _;
use portcullis::revocation::file::FileLoad;
use portcullis::snapshot::SnapshotHolder;
use tokio::sync::watch;

use super::*;

/// A gateway running in-process: the real Pingora proxy and admin services on pre-bound
/// listeners, the key refreshers, and (when started from a file) the reload watcher.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The probes listener, when the YAML has a `{probes}` placeholder.
    pub probes: Option<SocketAddr>,
    /// The decision listener, when the YAML has a `{decision}` placeholder.
    pub decision: Option<SocketAddr>,
    pub metrics: portcullis::metrics::Metrics,
    pub snapshots: Arc<SnapshotHolder>,
    /// Reload outcomes, when started with [`TestGateway::start_reloading`].
    pub reloads: watch::Receiver<Option<portcullis::reload::ReloadOutcome>>,
    /// Revocation-file reloads (when started from a file with a revocation file).
    pub revocation_file_loads:
        watch::Receiver<Option<Result<FileLoad, portcullis::revocation::file::FileError>>>,
    shutdown: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TestGateway {
    /// Start a gateway on `yaml`, where `{listen}` is replaced by the listener address.
    /// Relative paths resolve against `tests/fixtures`.
    pub fn start(yaml: &str) -> TestGateway {
        let sockets = Sockets::bind(yaml);
        let yaml = sockets.fill_in(yaml);
        Self::run(
            portcullis::app::ConfigFrom::Text {
                yaml,
                base_dir: fixtures(),
            },
            sockets,
        )
    }

    /// Start a gateway on the config file `path`, reloading it when its content changes.
    /// `{listen}`, `{admin}` and `{probes}` in the file are replaced (in place) by the listener
    /// addresses.
    pub fn start_reloading(path: &std::path::Path) -> TestGateway {
        let yaml = std::fs::read_to_string(path).unwrap();
        let sockets = Sockets::bind(&yaml);
        std::fs::write(path, sockets.fill_in(&yaml)).unwrap();
        Self::run(
            portcullis::app::ConfigFrom::File(path.to_path_buf()),
            sockets,
        )
    }

    /// The production bootstrap (`Services::prepare` and `build`), with the sockets handed over
    /// by fd and the tasks spawned on a runtime of its own.
    fn run(from: portcullis::app::ConfigFrom, sockets: Sockets) -> TestGateway {
        let Sockets {
            listen: (listener, addr),
            admin: (admin_listener, admin),
            probes,
            decision,
        } = sockets;
        portcullis::install_crypto_provider();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let prepared = portcullis::app::Services::prepare(from)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let conf = Arc::new(portcullis::app::server_conf(
            std::time::Duration::from_secs(1),
        ));
        let intervals = portcullis::app::Intervals {
            config: std::time::Duration::from_millis(20),
            certificates: std::time::Duration::from_millis(20),
        };
        let services = prepared.build(&conf, intervals).unwrap();
        let portcullis::app::Services {
            snapshots,
            metrics,
            mut proxy,
            admin: mut admin_service,
            probes: probes_service,
            decision: decision_service,
            tasks,
            reloads,
            revocation_file_loads,
            ..
        } = services;

        // Hand the bound sockets to Pingora the way a graceful upgrade does: by fd, keyed by address.
        let mut fds = Fds::new();
        fds.add(addr.to_string(), listener.into_raw_fd());
        fds.add(admin.to_string(), admin_listener.into_raw_fd());
        let probes_address = probes.as_ref().map(|(_, a)| *a);
        if let Some((probes_listener, probes)) = probes {
            fds.add(probes.to_string(), probes_listener.into_raw_fd());
        }
        let decision_address = decision.as_ref().map(|(_, a)| *a);
        if let Some((decision_listener, decision)) = decision {
            fds.add(decision.to_string(), decision_listener.into_raw_fd());
        }
        let fds = Arc::new(parking_lot::Mutex::new(fds));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                for task in tasks {
                    tokio::spawn(task.run(shutdown_rx.clone()));
                }
                let admin_fds = Arc::clone(&fds);
                let admin_shutdown = shutdown_rx.clone();
                tokio::spawn(async move {
                    admin_service
                        .start_service(Some(admin_fds), admin_shutdown, 1)
                        .await
                });
                if let Some(mut probes_service) = probes_service {
                    let (probes_fds, probes_shutdown) = (Arc::clone(&fds), shutdown_rx.clone());
                    tokio::spawn(async move {
                        probes_service
                            .start_service(Some(probes_fds), probes_shutdown, 1)
                            .await
                    });
                }
                if let Some(mut decision_service) = decision_service {
                    let (decision_fds, decision_shutdown) = (Arc::clone(&fds), shutdown_rx.clone());
                    tokio::spawn(async move {
                        decision_service
                            .start_service(Some(decision_fds), decision_shutdown, 1)
                            .await
                    });
                }
                proxy.start_service(Some(fds), shutdown_rx, 1).await;
            });
        });
        TestGateway {
            addr,
            admin,
            probes: probes_address,
            decision: decision_address,
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
    /// Wait (bounded) until `/readyz` says 200: the keys of every issuer loaded.
    pub async fn wait_ready(&self) {
        let readyz = self.admin_url("/readyz");
        super::eventually(
            "the gateway is ready",
            std::time::Duration::from_secs(30),
            || {
                let readyz = readyz.clone();
                async move {
                    client()
                        .get(readyz)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200)
                }
            },
        )
        .await;
    }

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

/// The sockets a test gateway listens on, bound on `127.0.0.1:0` before it starts.
struct Sockets {
    listen: (std::net::TcpListener, SocketAddr),
    admin: (std::net::TcpListener, SocketAddr),
    /// Only when the YAML has a `{probes}` placeholder.
    probes: Option<(std::net::TcpListener, SocketAddr)>,
    /// Only when the YAML has a `{decision}` placeholder.
    decision: Option<(std::net::TcpListener, SocketAddr)>,
}

impl Sockets {
    fn bind(yaml: &str) -> Sockets {
        Sockets {
            listen: bind_free(),
            admin: bind_free(),
            probes: yaml.contains("{probes}").then(bind_free),
            decision: yaml.contains("{decision}").then(bind_free),
        }
    }

    /// `{listen}`, `{admin}` and `{probes}` replaced; an `admin` section added when the YAML has
    /// none.
    fn fill_in(&self, yaml: &str) -> String {
        let admin = self.admin.1;
        let mut yaml = yaml
            .replace("{listen}", &self.listen.1.to_string())
            .replace("{admin}", &admin.to_string());
        if let Some((_, probes)) = &self.probes {
            yaml = yaml.replace("{probes}", &probes.to_string());
        }
        if let Some((_, decision)) = &self.decision {
            yaml = yaml.replace("{decision}", &decision.to_string());
        }
        if !yaml.contains("\nadmin:") {
            yaml.push_str(&format!("\nadmin: {{ address: \"{admin}\" }}\n"));
        }
        yaml
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
pub fn bind_free() -> (std::net::TcpListener, SocketAddr) {
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
