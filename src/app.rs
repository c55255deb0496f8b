//! Bootstrap, one for production and tests: configuration → [`Stores`] and a snapshot →
//! [`Services`] (the proxy, the admin listener, the background tasks) → a Pingora server
//! ([`run`]) or the test harness.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pingora::proxy::{http_proxy_service_with_name, HttpProxy};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::config::{self, Compiled, ConfigErrors};
use crate::drain::{exit_when_drained, InFlight, Signals};
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::reload::{Refreshers, ReloadOutcome, ReloadWatcher};
use crate::revocation::file::{FileError, FileLoad, RevocationFile};
use crate::snapshot::{Snapshot, SnapshotHolder};
use crate::stores::Stores;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot listen on {address} ({name}): {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the server: {0}")]
    Server(String),
}

/// Pingora's server settings for portcullis.
///
/// On SIGTERM Pingora closes the listeners, waits `grace_period_seconds` for in-flight requests
/// (the drain watcher exits earlier once none is left, see [`crate::drain`]), then stops its
/// runtimes, dropping whatever still runs.
pub fn server_conf(shutdown_grace: std::time::Duration) -> ServerConf {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    ServerConf {
        threads,
        grace_period_seconds: Some(shutdown_grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    }
}

/// The proxy service, listening on every listener of the current snapshot.
pub fn proxy_service(
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
    in_flight: Arc<InFlight>,
    conf: &Arc<ServerConf>,
) -> Result<Service<HttpProxy<Gateway>>, RunError> {
    let snapshot = snapshots.current();
    let mut service = http_proxy_service_with_name(
        conf,
        Gateway::new(snapshots, metrics, in_flight),
        "portcullis proxy",
    );
    for listener in &snapshot.listeners {
        let address = listener.address.to_string();
        match &listener.tls {
            None => service.add_tcp(&address),
            Some(tls) => {
                let settings = crate::tls::settings(tls).map_err(|e| {
                    RunError::Server(format!("TLS on listener {}: {e}", listener.name))
                })?;
                service.add_tls_with_settings(&address, None, settings);
            }
        }
    }
    Ok(service)
}

/// How often certificate files are checked for changes.
pub const CERTIFICATE_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Watch the certificate files of every TLS listener and swap in changed pairs; a bad new pair
/// is refused (logged, counted) and the old one keeps serving. Runs until `shutdown`.
pub async fn watch_certificates(
    stores: Arc<Stores>,
    metrics: Metrics,
    interval: std::time::Duration,
    mut shutdown: ShutdownWatch,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        for store in stores.certificate_stores() {
            // Reading and parsing the files is blocking work.
            let checked = Arc::clone(&store);
            let outcome = match tokio::task::spawn_blocking(move || checked.reload_if_changed())
                .await
            {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(listener = %store.listener, error = %e, "certificate check failed");
                    continue;
                }
            };
            match outcome {
                None => {}
                Some(crate::tls::CertReload::Applied) => {
                    tracing::info!(listener = %store.listener, "TLS certificates reloaded");
                    metrics.record_certificate_reload(&store.listener, "applied");
                }
                Some(crate::tls::CertReload::Refused(e)) => {
                    tracing::error!(listener = %store.listener, error = %e, "new TLS certificates refused; the previous ones keep serving");
                    metrics.record_certificate_reload(&store.listener, "refused");
                }
            }
        }
    }
}

/// The admin service (`/metrics`, `/healthz`, `/readyz`) on the snapshot's admin address.
pub fn admin_service(
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
    in_flight: Arc<InFlight>,
) -> Service<AdminApp> {
    let address = snapshots.current().admin_address;
    let mut service = Service::new(
        "portcullis admin".to_owned(),
        AdminApp::new(snapshots, metrics, in_flight),
    );
    service.add_tcp(&address.to_string());
    service.threads = Some(1); // a few requests a second: no runtime thread per core
    service
}

/// The probes service (`/metrics`, `/healthz`, `/readyz`, no API) on `admin.probes_address`.
pub fn probes_service(
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
    in_flight: Arc<InFlight>,
) -> Option<Service<AdminApp>> {
    let address = snapshots.current().probes_address?;
    let mut service = Service::new(
        "portcullis probes".to_owned(),
        AdminApp::probes(snapshots, metrics, in_flight),
    );
    service.add_tcp(&address.to_string());
    service.threads = Some(1);
    Some(service)
}

/// The decision service (decision mode) on `decision.address`, when configured.
pub fn decision_service(
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
) -> Result<Option<Service<crate::decision::DecisionApp>>, RunError> {
    let Some(settings) = snapshots.current().decision.clone() else {
        return Ok(None);
    };
    let mut service = Service::new(
        "portcullis decision".to_owned(),
        crate::decision::DecisionApp::new(snapshots, metrics),
    );
    let address = settings.address.to_string();
    match &settings.tls {
        Some(tls) => {
            let tls = crate::tls::settings(tls)
                .map_err(|e| RunError::Server(format!("decision listener TLS: {e}")))?;
            service.add_tls_with_settings(&address, None, tls);
        }
        None => service.add_tcp(&address),
    }
    Ok(Some(service))
}

/// Where the configuration comes from.
pub enum ConfigFrom {
    /// A file, watched and reloaded on change and on SIGHUP.
    File(PathBuf),
    /// YAML text, compiled once; relative paths resolve against `base_dir` (tests).
    Text { yaml: String, base_dir: PathBuf },
}

/// How often the background tasks look for changes.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub config: std::time::Duration,
    pub certificates: std::time::Duration,
}

impl Intervals {
    pub const PRODUCTION: Intervals = Intervals {
        config: std::time::Duration::from_secs(2),
        certificates: CERTIFICATE_POLL_INTERVAL,
    };
}

/// The configuration compiled into long-lived stores, with the revocation journal and file
/// opened: everything before the services are made.
pub struct Prepared {
    from: ConfigFrom,
    /// The config file's content hash before it was read (so a change in between is seen).
    loaded_hash: Option<u64>,
    stores: Arc<Stores>,
    snapshot: Snapshot,
    revocation_file: Option<(Arc<RevocationFile>, Option<u64>)>,
}

/// Everything a running gateway is made of. `run` and the test harness both build it with
/// [`Services::prepare`] and [`Prepared::build`], then start its services their own way: the
/// one difference between production and tests is how sockets are bound and tasks spawned.
pub struct Services {
    pub stores: Arc<Stores>,
    pub snapshots: Arc<SnapshotHolder>,
    pub metrics: Metrics,
    pub in_flight: Arc<InFlight>,
    pub proxy: Service<HttpProxy<Gateway>>,
    pub admin: Service<AdminApp>,
    /// The probes listener, when `admin.probes_address` is set.
    pub probes: Option<Service<AdminApp>>,
    /// The decision listener, when `decision` is set.
    pub decision: Option<Service<crate::decision::DecisionApp>>,
    /// Background tasks, each run until shutdown: the reload watcher (with the key refreshers,
    /// revocation purge and revocation file), the certificate watcher, the Redis mirror.
    pub tasks: Vec<Task>,
    /// Reload outcomes and revocation-file loads, as they happen (tests wait on them).
    pub reloads: watch::Receiver<Option<ReloadOutcome>>,
    pub revocation_file_loads: watch::Receiver<Option<Result<FileLoad, FileError>>>,
}

impl Services {
    /// Compile the configuration into new stores, open the revocation journal (replaying it)
    /// and load the revocation file.
    pub fn prepare(from: ConfigFrom) -> Result<Prepared, RunError> {
        let stores = Stores::new();
        let (compiled, loaded_hash) = match &from {
            ConfigFrom::File(path) => {
                let hash = crate::reload::content_hash(path);
                (config::load_into(path, &stores)?, hash)
            }
            ConfigFrom::Text { yaml, base_dir } => {
                (config::load_str_into(yaml, base_dir, &stores)?, None)
            }
        };
        let Compiled {
            snapshot, warnings, ..
        } = compiled;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        open_revocation_journal(&snapshot)?;
        let revocation_file = open_revocation_file(&snapshot);
        Ok(Prepared {
            from,
            loaded_hash,
            stores,
            snapshot,
            revocation_file,
        })
    }
}

impl Prepared {
    /// The compiled configuration.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Make the services: the proxy on every listener, the admin listener, and the tasks.
    pub fn build(self, conf: &Arc<ServerConf>, intervals: Intervals) -> Result<Services, RunError> {
        let metrics = Metrics::new().map_err(|e| RunError::Server(format!("metrics: {e}")))?;
        metrics.record_config_applied();
        let mirror = self.snapshot.revocation_mirror.clone();
        if let Some(settings) = &self.snapshot.revocation_redis {
            tracing::info!(redis = %settings.description, prefix = %settings.key_prefix, "revocations shared through Redis");
        }
        let snapshots = Arc::new(SnapshotHolder::new(self.snapshot));
        let in_flight = Arc::new(InFlight::default());
        let proxy = proxy_service(
            Arc::clone(&snapshots),
            metrics.clone(),
            Arc::clone(&in_flight),
            conf,
        )?;
        let admin = admin_service(
            Arc::clone(&snapshots),
            metrics.clone(),
            Arc::clone(&in_flight),
        );
        let decision = decision_service(Arc::clone(&snapshots), metrics.clone())?;
        let probes = probes_service(
            Arc::clone(&snapshots),
            metrics.clone(),
            Arc::clone(&in_flight),
        );
        let (outcomes, reloads) = watch::channel(None);
        let (revocation_loads, revocation_file_loads) = watch::channel(None);
        let watcher = ReloadWatcher {
            path: match self.from {
                ConfigFrom::File(path) => Some(path),
                ConfigFrom::Text { .. } => None,
            },
            stores: Arc::clone(&self.stores),
            snapshots: Arc::clone(&snapshots),
            refreshers: Arc::new(Refreshers::default()),
            metrics: metrics.clone(),
            poll_interval: intervals.config,
            loaded_hash: self.loaded_hash,
            outcomes,
            revocation_file: self.revocation_file,
            revocation_loads,
        };
        let mut tasks = vec![Task::new(
            "config reload and key refresh",
            move |shutdown| Box::pin(watcher.run(shutdown)),
        )];
        if !self.stores.certificate_stores().is_empty() {
            let (stores, metrics) = (Arc::clone(&self.stores), metrics.clone());
            tasks.push(Task::new("certificate reload", move |shutdown| {
                Box::pin(watch_certificates(
                    stores,
                    metrics,
                    intervals.certificates,
                    shutdown,
                ))
            }));
        }
        if let Some(mirror) = mirror {
            tasks.push(Task::new("revocation mirror", move |shutdown| {
                Box::pin(mirror.run(shutdown))
            }));
        }
        Ok(Services {
            stores: self.stores,
            snapshots,
            metrics,
            in_flight,
            proxy,
            admin,
            probes,
            decision,
            tasks,
            reloads,
            revocation_file_loads,
        })
    }
}

type TaskFn = Box<dyn FnOnce(ShutdownWatch) -> BoxFuture<'static, ()> + Send>;

/// A background task that runs until shutdown: a Pingora background service in production,
/// spawned by the test harness.
pub struct Task {
    pub name: &'static str,
    start: parking_lot::Mutex<Option<TaskFn>>,
}

impl Task {
    fn new(
        name: &'static str,
        start: impl FnOnce(ShutdownWatch) -> BoxFuture<'static, ()> + Send + 'static,
    ) -> Task {
        Task {
            name,
            start: parking_lot::Mutex::new(Some(Box::new(start))),
        }
    }

    /// The task, to run until `shutdown` flips.
    pub fn run(self, shutdown: ShutdownWatch) -> BoxFuture<'static, ()> {
        match self.start.into_inner() {
            Some(start) => start(shutdown),
            None => Box::pin(async {}),
        }
    }
}

#[async_trait::async_trait]
impl BackgroundService for Task {
    async fn start(&self, shutdown: ShutdownWatch) {
        let start = self.start.lock().take();
        if let Some(start) = start {
            start(shutdown).await;
        }
    }
}

/// Load and compile the configuration, logging its warnings.
pub fn load(path: &Path) -> Result<Snapshot, ConfigErrors> {
    let Compiled {
        snapshot, warnings, ..
    } = config::load(path)?;
    for w in &warnings {
        tracing::warn!(config = %path.display(), "{w}");
    }
    Ok(snapshot)
}

/// Run the gateway until a shutdown signal (SIGTERM: graceful, SIGINT: fast).
/// With `upgrade`, the listening sockets are taken over from a running instance (Pingora's
/// graceful upgrade: that instance then gets SIGQUIT and drains).
pub fn run(config_path: &Path, upgrade: bool, upgrade_sock: Option<&Path>) -> Result<(), RunError> {
    let prepared = Services::prepare(ConfigFrom::File(config_path.to_path_buf()))?;
    let snapshot = prepared.snapshot();
    if !upgrade {
        check_listeners_free(snapshot)?;
    }
    for l in &snapshot.listeners {
        let scheme = if l.tls.is_some() { "https" } else { "http" };
        tracing::info!(listener = %l.name, address = %l.address, scheme, "listening");
    }
    match snapshot.admin_token {
        Some(_) => tracing::info!(
            address = %snapshot.admin_address,
            "admin endpoints: /metrics /healthz /readyz /revocations (GET, POST, DELETE with the admin token)"
        ),
        None => tracing::info!(
            address = %snapshot.admin_address,
            "admin endpoints: /metrics /healthz /readyz; /revocations is disabled (set admin.token_file or admin.token_env)"
        ),
    }
    if let Some(address) = snapshot.probes_address {
        tracing::info!(%address, "probe endpoints: /metrics /healthz /readyz");
    }
    if let Some(d) = &snapshot.decision {
        tracing::info!(address = %d.address, protocol = d.protocol.name(), "decision listener: answers forward-auth requests of the ingress");
    }
    let opt = pingora::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let snapshot_grace = snapshot.shutdown_grace;
    let mut conf = server_conf(snapshot.shutdown_grace);
    if let Some(sock) = upgrade_sock {
        conf.upgrade_sock = sock.display().to_string();
    }
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let services = prepared.build(&server.configuration, Intervals::PRODUCTION)?;
    exit_when_drained(
        server.watch_execution_phase(),
        Arc::clone(&services.in_flight),
        crate::drain::QUIET.min(snapshot_grace),
    );
    server.add_service(services.proxy);
    server.add_service(services.admin);
    if let Some(probes) = services.probes {
        server.add_service(probes);
    }
    if let Some(decision) = services.decision {
        server.add_service(decision);
    }
    for task in services.tasks {
        server.add_service(background_service(task.name, task));
    }
    let in_flight = Arc::clone(&services.in_flight);
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals {
            in_flight: services.in_flight,
            snapshots: services.snapshots,
        }),
    });
    // The grace period ran out (or a fast shutdown): Pingora stopped its runtimes, and every
    // request still in flight was cut and logged as it was dropped.
    in_flight.log_exit("stopped");
    Ok(())
}

/// `portcullis drain`: send SIGTERM to the gateway of this container and return its pid. The
/// gateway is `pid` when given, else the one other process running this same binary (same
/// file, by device and inode) in this mount namespace (this container); with
/// `shareProcessNamespace` pid 1 is the pause container, and other containers' processes are in
/// other mount namespaces, so neither can be hit.
pub fn drain(pid: Option<i32>) -> Result<i32, String> {
    let own = process_identity("self").map_err(|e| format!("/proc/self: {e}"))?;
    let own_pid = std::process::id() as i32;
    let pid = match pid {
        Some(pid) => match process_identity(&pid.to_string()) {
            Ok(found) if found == own => pid,
            Ok(_) => {
                return Err(format!(
                    "process {pid} is not portcullis in this container (another binary or another mount namespace)"
                ))
            }
            Err(e) => return Err(format!("process {pid}: {e}")),
        },
        None => {
            let entries =
                std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
            let found: Vec<i32> = entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&p| p != own_pid)
                .filter(|p| process_identity(&p.to_string()).is_ok_and(|id| id == own))
                .collect();
            match found.as_slice() {
                [pid] => *pid,
                [] => return Err("no portcullis gateway runs in this container".to_owned()),
                many => {
                    return Err(format!(
                        "several portcullis processes in this container ({many:?}): give the gateway's pid with --pid"
                    ))
                }
            }
        }
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|e| format!("cannot signal process {pid}: {e}"))?;
    Ok(pid)
}

/// What makes a process "this binary in this container": the executable's device and inode
/// (read through the `/proc/PID/exe` link, so a replaced file still compares right) and the
/// mount namespace.
fn process_identity(proc: &str) -> std::io::Result<(u64, u64, std::path::PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata(format!("/proc/{proc}/exe"))?;
    let mount_ns = std::fs::read_link(format!("/proc/{proc}/ns/mnt"))?;
    Ok((exe.dev(), exe.ino(), mount_ns))
}

/// Open the revocation journal, when configured: replay it into the snapshot's list and have
/// the admin API write it from now on.
pub fn open_revocation_journal(snapshot: &Snapshot) -> Result<(), RunError> {
    let Some(path) = &snapshot.revocation_state_file else {
        return Ok(());
    };
    let (journal, problems) = crate::revocation::journal::Journal::open(
        path,
        &snapshot.revocations,
        crate::clock::unix_now(),
    )
    .map_err(|e| RunError::Server(format!("revocation state file {}: {e}", path.display())))?;
    for p in &problems {
        tracing::warn!("{p}");
    }
    tracing::info!(entries = snapshot.revocations.len(), path = %path.display(), "revocations restored");
    let follower = !journal.is_owner();
    snapshot.revocations.attach_journal(journal);
    if follower {
        // An upgrade hand-over: the previous process still owns the journal. Take it over (and
        // what it appended meanwhile) as soon as that process has exited.
        let list = Arc::clone(&snapshot.revocations);
        std::thread::Builder::new()
            .name("journal-takeover".into())
            .spawn(move || {
                if let Some(journal) = list.journal() {
                    match journal.take_over(&list, crate::clock::unix_now()) {
                        Ok(problems) => problems.iter().for_each(|p| tracing::warn!("{p}")),
                        Err(e) => tracing::error!(error = %e, "cannot take over the revocation journal; admin writes stay refused"),
                    }
                }
            })
            .map_err(|e| RunError::Server(format!("journal take-over thread: {e}")))?;
    }
    Ok(())
}

/// Load the revocation file, when configured; returns it with the hash of the content loaded,
/// for the reload watcher to re-read it on change.
pub fn open_revocation_file(snapshot: &Snapshot) -> Option<(Arc<RevocationFile>, Option<u64>)> {
    let path = snapshot.revocation_file.as_ref()?;
    let file = Arc::new(RevocationFile::new(path));
    let hash = crate::reload::content_hash(path);
    let result = file.load(snapshot, crate::clock::unix_now());
    crate::reload::log_revocation_file_load(path, &result);
    Some((file, hash))
}

/// What `portcullis explain` is asked.
#[derive(Debug, Clone, Copy)]
pub struct ExplainArgs<'a> {
    pub config: &'a Path,
    pub method: &'a str,
    pub url: &'a str,
    /// The token, or `@FILE`.
    pub token: Option<&'a str>,
    /// The client certificate (PEM file) the request comes with, over TLS.
    pub client_cert: Option<&'a Path>,
    /// A DPoP proof, or `@FILE`: the token goes as `Authorization: DPoP` with it.
    pub dpop_proof: Option<&'a str>,
    /// The client's address, for rate limits keyed by ip.
    pub client_ip: Option<std::net::IpAddr>,
    /// A running gateway's admin address, whose revocation list is read.
    pub admin: Option<&'a str>,
    /// The admin token [default: the configuration's `admin.token_file` / `token_env`].
    pub admin_token_file: Option<&'a Path>,
}

/// `portcullis explain`: the explanation of one request, as text, and the exit status
/// ([`crate::explain::exit`]).
pub fn explain(args: ExplainArgs<'_>) -> Result<(String, u8), RunError> {
    let snapshot = load(args.config)?;
    let token = match args.token {
        Some(t) => match t.strip_prefix('@') {
            Some(file) => Some(read_secret_file(Path::new(file), "token")?),
            None => Some(t.to_owned()),
        },
        None => None,
    };
    let admin = match args.admin {
        Some(address) => {
            let admin_token = match args.admin_token_file {
                Some(file) => read_secret_file(file, "admin token")?,
                None => snapshot
                    .admin_token
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .ok_or_else(|| {
                        RunError::Server(
                            "--admin needs the admin token: --admin-token-file, or admin.token_file / token_env in the configuration".to_owned(),
                        )
                    })?,
            };
            Some((address, admin_token))
        }
        None => None,
    };
    let mut state = fetch_remote_state_once(&snapshot)?;
    // The revocations a running gateway would also have read from disk (read-only here).
    if let Some(path) = &snapshot.revocation_state_file {
        if !path.exists() {
            state.state_file_missing = Some(path.display().to_string());
        }
        crate::revocation::journal::Journal::replay(
            path,
            &snapshot.revocations,
            crate::clock::unix_now(),
        )
        .map_err(|e| RunError::Server(format!("revocation state file {}: {e}", path.display())))?;
    }
    // Last: the running gateway's list is added to what was read here, never replayed over.
    if let Some((address, token)) = &admin {
        state.admin = Some(read_admin_revocations_once(address, token, &snapshot)?);
    }
    let file_error = match snapshot.revocation_file.as_ref() {
        Some(path) => {
            let loaded = RevocationFile::new(path).load(&snapshot, crate::clock::unix_now());
            crate::reload::log_revocation_file_load(path, &loaded);
            loaded
                .err()
                .map(|e| format!("the revocation file could not be read: {e}"))
        }
        None => None,
    };
    let method = http::Method::from_bytes(args.method.as_bytes())
        .map_err(|e| RunError::Server(format!("method: {e}")))?;
    let mut req = crate::explain::request(&method, args.url, token.as_deref())
        .map_err(|e| RunError::Server(e.to_string()))?;
    if let Some(proof) = args.dpop_proof {
        let proof = match proof.strip_prefix('@') {
            Some(file) => read_secret_file(Path::new(file), "DPoP proof")?,
            None => proof.to_owned(),
        };
        let token = token.as_deref().unwrap_or_default();
        let bad = |_| RunError::Server("the DPoP proof is not a header value".to_owned());
        req.insert_header(http::header::AUTHORIZATION, format!("DPoP {token}"))
            .map_err(bad)?;
        req.insert_header("dpop", proof).map_err(bad)?;
    }
    let https = args
        .url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    let transport = match (args.client_cert, https) {
        (Some(file), _) => crate::admission::Transport::Tls {
            below_min_version: false,
            client_cert: Some(client_cert_digest(file)?),
        },
        // Over TLS (the listener's or a proxy's): the scheme a DPoP proof names.
        (None, true) => crate::admission::Transport::Terminated { client_cert: None },
        (None, false) => crate::admission::Transport::Plain,
    };
    introspect_once(&req, &snapshot)?;
    let connection = crate::admission::Connection {
        transport,
        client_ip: args.client_ip,
    };
    let mut explanation =
        crate::explain::explain_on(&req, connection, &snapshot, crate::clock::unix_now());
    if let Some(why) = unseen_revocations(&snapshot, &state, file_error) {
        explanation = explanation.revocation_unknown(why);
    }
    Ok((
        crate::explain::to_text(&explanation),
        explanation.exit_code(),
    ))
}

/// The SHA-256 of the first certificate of a PEM file, as a TLS listener computes it.
fn client_cert_digest(path: &Path) -> Result<[u8; 32], RunError> {
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| {
        RunError::Server(format!(
            "cannot read the client certificate {}: {e}",
            path.display()
        ))
    })?;
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| {
            RunError::Server(format!(
                "{}: no PEM CERTIFICATE in the file",
                path.display()
            ))
        })?;
    Ok(crate::tls::ClientCertificate::from_der(&der).digest)
}

fn read_secret_file(path: &Path, what: &str) -> Result<String, RunError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| {
            RunError::Server(format!(
                "cannot read the {what} file {}: {e}",
                path.display()
            ))
        })
}

/// What the one-off read of remote state found.
#[derive(Debug, Default)]
struct RemoteState {
    /// Redis could not be read (the reason).
    redis_error: Option<String>,
    /// `revocation.state_file` is configured but not on this machine (its path).
    state_file_missing: Option<String>,
    /// The admin API's list: `Some(Ok(entries))` when read, `Some(Err(reason))` when not.
    admin: Option<Result<usize, String>>,
}

/// Why some revocations the gateway enforces may be invisible to `explain`, if they may be.
fn unseen_revocations(
    snapshot: &Snapshot,
    state: &RemoteState,
    file_error: Option<String>,
) -> Option<String> {
    match &state.admin {
        // The running gateway's own list holds every source it reads.
        Some(Ok(_)) => return None,
        Some(Err(reason)) => return Some(format!("the admin API could not be read: {reason}")),
        None => {}
    }
    let mut why = Vec::new();
    if let Some(e) = &state.redis_error {
        why.push(format!("Redis could not be read: {e}"));
    }
    if let Some(path) = &state.state_file_missing {
        why.push(format!(
            "the revocation state file {path} is not on this machine"
        ));
    }
    // Without Redis or a state file, admin-API revocations live only in the running process.
    let api_in_memory_only = snapshot.admin_token.is_some()
        && snapshot.revocation_mirror.is_none()
        && snapshot.revocation_state_file.is_none();
    if api_in_memory_only {
        why.push("admin API revocations not visible".to_owned());
    }
    why.extend(file_error);
    (!why.is_empty()).then(|| why.join("; "))
}

/// [`read_admin_revocations`] on a runtime of its own; a failure is the reason, logged.
fn read_admin_revocations_once(
    address: &str,
    token: &str,
    snapshot: &Snapshot,
) -> Result<Result<usize, String>, RunError> {
    let base = admin_base_url(address).map_err(RunError::Server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Server(e.to_string()))?;
    let read = runtime.block_on(read_admin_revocations(&base, token, &snapshot.revocations));
    if let Err(e) = &read {
        tracing::warn!(error = %e, "cannot read the revocations from the admin API");
    }
    Ok(read)
}

/// The admin API's base URL for `--admin`: `host:port` or an `http(s)://` URL, without
/// credentials. Plain HTTP only to a loopback address: the admin token must not cross a
/// network in clear text (reach a pod's admin port with `kubectl port-forward` or `exec`).
fn admin_base_url(address: &str) -> Result<String, String> {
    let with_scheme = match address.contains("://") {
        true => address.trim_end_matches('/').to_owned(),
        false => format!("http://{address}"),
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| format!("--admin {address}: not an address: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("--admin: give the address without credentials (the admin token is sent as a bearer token)".to_owned());
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(with_scheme),
        "http" if loopback => Ok(with_scheme),
        "http" => Err(format!(
            "--admin {address}: the admin token would cross the network in clear text; use a loopback address (kubectl port-forward, or run explain in the pod)"
        )),
        other => Err(format!("--admin {address}: scheme {other} is not http or https")),
    }
}

/// The revocation list of a running gateway, through its admin API at `base`, added to `list`.
async fn read_admin_revocations(
    base: &str,
    token: &str,
    list: &crate::revocation::RevocationList,
) -> Result<usize, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        // The token goes to the admin listener itself, never through an HTTP_PROXY.
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("{base}/revocations"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{base}/revocations answered {status}"));
    }
    #[derive(serde::Deserialize)]
    struct Listing {
        revocations: Vec<crate::revocation::Revocation>,
    }
    let listing: Listing = response
        .json()
        .await
        .map_err(|e| format!("{base}/revocations: {e}"))?;
    for r in &listing.revocations {
        list.insert(r);
    }
    Ok(listing.revocations.len())
}

/// Fetch every remote issuer's keys once, and read the Redis revocations once (for one-off
/// commands); a failure leaves that issuer without keys, which the explanation then reports.
fn fetch_remote_state_once(snapshot: &Snapshot) -> Result<RemoteState, RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Server(e.to_string()))?;
    let mut state = RemoteState::default();
    if let Some(mirror) = &snapshot.revocation_mirror {
        if let Err(e) = runtime.block_on(mirror.resync()) {
            tracing::warn!(error = %e, "cannot read the revocations from Redis");
            state.redis_error = Some(e.to_string());
        }
    }
    for issuer in &snapshot.issuers {
        if let Some(source) = &issuer.key_source {
            match runtime.block_on(source.fetch()) {
                Ok(fetched) => issuer.keys.install(fetched.keys),
                Err(e) => tracing::warn!(issuer = %issuer.id, error = %e, "cannot fetch keys"),
            }
        }
    }
    Ok(state)
}

/// An opaque token: ask its route's introspecting issuer once, as the gateway would (and only
/// that one: the token goes to no other authorization server); the checks then read the answer
/// from the introspector's cache. An endpoint that fails leaves nothing there: the check says
/// unavailable.
fn introspect_once(
    req: &pingora::http::RequestHeader,
    snapshot: &Snapshot,
) -> Result<(), RunError> {
    let Ok(routed) = crate::admission::route(req, snapshot, &mut crate::admission::Silent) else {
        return Ok(());
    };
    let route = &snapshot.routes[routed.route];
    let credential = crate::auth::bearer::credential(&req.headers, snapshot.limits.max_token_bytes);
    let Some(credential) = credential.ok().flatten() else {
        return Ok(());
    };
    let Some((_, introspector)) =
        crate::auth::introspecting_issuer(credential.token, route, snapshot)
    else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Server(e.to_string()))?;
    let answer =
        runtime.block_on(introspector.introspect(credential.token, crate::clock::unix_now));
    if let Err(crate::auth::introspection::IntrospectionFault::Unavailable(why)) = answer {
        tracing::warn!(reason = why, "the introspection endpoint did not answer");
    }
    Ok(())
}

/// Pingora panics when a listener cannot bind; find out first and say which one.
fn check_listeners_free(snapshot: &Snapshot) -> Result<(), RunError> {
    let admin = ("admin".to_owned(), snapshot.admin_address);
    let probes = snapshot
        .probes_address
        .map(|address| ("probes".to_owned(), address));
    let decision = (snapshot.decision.as_ref()).map(|d| ("decision".to_owned(), d.address));
    let all = snapshot
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.address))
        .chain(std::iter::once(admin))
        .chain(probes)
        .chain(decision);
    for (name, address) in all {
        std::net::TcpListener::bind(address).map_err(|source| RunError::Bind {
            name,
            address,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod admin_address_tests {
    use super::admin_base_url;

    #[test]
    fn the_admin_token_goes_in_clear_text_only_to_loopback() {
        assert_eq!(
            admin_base_url("127.0.0.1:9901").unwrap(),
            "http://127.0.0.1:9901"
        );
        assert_eq!(
            admin_base_url("http://[::1]:9901/").unwrap(),
            "http://[::1]:9901"
        );
        assert!(admin_base_url("localhost:9901").is_ok());
        assert!(admin_base_url("https://gw.internal:9901").is_ok());
        let remote = admin_base_url("10.0.0.7:9901").unwrap_err();
        assert!(remote.contains("clear text"), "{remote}");
        let creds = admin_base_url("http://u:p@127.0.0.1:9901").unwrap_err();
        assert!(
            creds.contains("without credentials") && !creds.contains("u:p"),
            "{creds}"
        );
    }
}
