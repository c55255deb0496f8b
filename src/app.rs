//! Bootstrap: configuration → snapshot → Pingora server with the proxy, admin and key-refresh
//! services.

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
use crate::drain::{exit_when_drained, InFlight};
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::reload::{Refreshers, ReloadWatcher};
use crate::revocation::file::RevocationFile;
use crate::revocation::mirror::RedisMirror;
use crate::snapshot::{Snapshot, SnapshotHolder};

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
    snapshots: Arc<SnapshotHolder>,
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
        for listener in &snapshots.current().listeners {
            let Some(tls) = &listener.tls else { continue };
            match tls.store.reload_if_changed() {
                None => {}
                Some(crate::tls::CertReload::Applied) => {
                    tracing::info!(listener = %listener.name, "TLS certificates reloaded");
                    metrics.record_certificate_reload(&listener.name, "applied");
                }
                Some(crate::tls::CertReload::Refused(e)) => {
                    tracing::error!(listener = %listener.name, error = %e, "new TLS certificates refused; the previous ones keep serving");
                    metrics.record_certificate_reload(&listener.name, "refused");
                }
            }
        }
    }
}

/// Runs [`watch_certificates`] inside the Pingora server.
struct CertificateService {
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
}

#[async_trait::async_trait]
impl BackgroundService for CertificateService {
    async fn start(&self, shutdown: ShutdownWatch) {
        watch_certificates(
            Arc::clone(&self.snapshots),
            self.metrics.clone(),
            CERTIFICATE_POLL_INTERVAL,
            shutdown,
        )
        .await;
    }
}

/// The admin service (`/metrics`, `/healthz`, `/readyz`) on the snapshot's admin address.
pub fn admin_service(snapshots: Arc<SnapshotHolder>, metrics: Metrics) -> Service<AdminApp> {
    let address = snapshots.current().admin_address;
    let mut service = Service::new(
        "portcullis admin".to_owned(),
        AdminApp::new(snapshots, metrics),
    );
    service.add_tcp(&address.to_string());
    service
}

/// How often the configuration file is checked for changes.
const CONFIG_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the reload watcher (SIGHUP, file changes) and through it the key refreshers, inside the
/// Pingora server so they stop with it.
struct ReloadService {
    path: PathBuf,
    loaded_hash: Option<u64>,
    revocation_file: Option<(Arc<RevocationFile>, Option<u64>)>,
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
}

#[async_trait::async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let watcher = ReloadWatcher {
            path: self.path.clone(),
            snapshots: Arc::clone(&self.snapshots),
            refreshers: Arc::new(Refreshers::default()),
            metrics: self.metrics.clone(),
            poll_interval: CONFIG_POLL_INTERVAL,
            loaded_hash: self.loaded_hash,
            revocation_file: self.revocation_file.clone(),
            revocation_loads: tokio::sync::watch::channel(None).0,
            outcomes: tokio::sync::watch::channel(None).0,
        };
        watcher.run(shutdown).await;
    }
}

/// Load and compile the configuration, logging its warnings.
pub fn load(path: &Path) -> Result<Snapshot, ConfigErrors> {
    let Compiled { snapshot, warnings } = config::load(path)?;
    for w in &warnings {
        tracing::warn!(config = %path.display(), "{w}");
    }
    Ok(snapshot)
}

/// Run the gateway until a shutdown signal (SIGTERM: graceful, SIGINT: fast).
/// With `upgrade`, the listening sockets are taken over from a running instance (Pingora's
/// graceful upgrade: that instance then gets SIGQUIT and drains).
pub fn run(config_path: &Path, upgrade: bool, upgrade_sock: Option<&Path>) -> Result<(), RunError> {
    let loaded_hash = crate::reload::content_hash(config_path);
    let mut snapshot = load(config_path)?;
    open_revocation_journal(&snapshot)?;
    let mirror = attach_revocation_mirror(&mut snapshot);
    let revocation_file = open_revocation_file(&snapshot);
    if !upgrade {
        check_listeners_free(&snapshot)?;
    }
    for l in &snapshot.listeners {
        let scheme = if l.tls.is_some() { "https" } else { "http" };
        tracing::info!(listener = %l.name, address = %l.address, scheme, "listening");
    }
    tracing::info!(address = %snapshot.admin_address, "admin endpoints: /metrics /healthz /readyz");
    let metrics = Metrics::new().map_err(|e| RunError::Server(format!("metrics: {e}")))?;
    let snapshots = Arc::new(SnapshotHolder::new(snapshot));
    let in_flight = Arc::new(InFlight::default());
    let opt = pingora::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut conf = server_conf(snapshots.current().shutdown_grace);
    if let Some(sock) = upgrade_sock {
        conf.upgrade_sock = sock.display().to_string();
    }
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    exit_when_drained(server.watch_execution_phase(), Arc::clone(&in_flight));
    let proxy = proxy_service(
        Arc::clone(&snapshots),
        metrics.clone(),
        in_flight,
        &server.configuration,
    )?;
    server.add_service(proxy);
    if snapshots
        .current()
        .listeners
        .iter()
        .any(|l| l.tls.is_some())
    {
        server.add_service(background_service(
            "certificate reload",
            CertificateService {
                snapshots: Arc::clone(&snapshots),
                metrics: metrics.clone(),
            },
        ));
    }
    server.add_service(admin_service(Arc::clone(&snapshots), metrics.clone()));
    let reload = ReloadService {
        path: config_path.to_path_buf(),
        loaded_hash,
        revocation_file,
        snapshots,
        metrics,
    };
    server.add_service(background_service("config reload and key refresh", reload));
    if let Some(mirror) = mirror {
        server.add_service(background_service(
            "revocation mirror",
            MirrorService(mirror),
        ));
    }
    server.run(RunArgs::default());
    Ok(())
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

/// With `revocation.redis`, create the Redis mirror of the snapshot's revocation list (the admin
/// API then writes Redis); run it with [`RedisMirror::run`].
pub fn attach_revocation_mirror(snapshot: &mut Snapshot) -> Option<Arc<RedisMirror>> {
    let settings = snapshot.revocation_redis.clone()?;
    tracing::info!(redis = %settings.description, prefix = %settings.key_prefix, "revocations shared through Redis");
    let mirror = RedisMirror::new(settings, Arc::clone(&snapshot.revocations));
    snapshot.revocation_mirror = Some(Arc::clone(&mirror));
    Some(mirror)
}

/// Runs the Redis revocation mirror inside the Pingora server, so it stops with it.
struct MirrorService(Arc<RedisMirror>);

#[async_trait::async_trait]
impl BackgroundService for MirrorService {
    async fn start(&self, shutdown: ShutdownWatch) {
        Arc::clone(&self.0).run(shutdown).await;
    }
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

/// `portcullis explain`: the explanation of one request, as text.
pub fn explain(
    config_path: &Path,
    method: &str,
    url: &str,
    token: Option<&str>,
) -> Result<String, RunError> {
    let snapshot = load(config_path)?;
    let token = match token {
        Some(t) => match t.strip_prefix('@') {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        RunError::Server(format!("cannot read the token file {file}: {e}"))
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => Some(t.to_owned()),
        },
        None => None,
    };
    fetch_remote_state_once(&snapshot)?;
    // The revocations a running gateway would also have read from disk (read-only here).
    if let Some(path) = &snapshot.revocation_state_file {
        crate::revocation::journal::Journal::replay(
            path,
            &snapshot.revocations,
            crate::clock::unix_now(),
        )
        .map_err(|e| RunError::Server(format!("revocation state file {}: {e}", path.display())))?;
    }
    let _ = open_revocation_file(&snapshot);
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|e| RunError::Server(format!("method: {e}")))?;
    let req = crate::explain::request(&method, url, token.as_deref()).map_err(RunError::Server)?;
    let explanation = crate::explain::explain(&req, &snapshot, crate::clock::unix_now());
    Ok(crate::explain::to_text(&explanation))
}

/// Fetch every remote issuer's keys once, and read the Redis revocations once (for one-off
/// commands); a failure leaves that issuer without keys, which the explanation then reports.
fn fetch_remote_state_once(snapshot: &Snapshot) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Server(e.to_string()))?;
    if let Some(settings) = &snapshot.revocation_redis {
        let mirror = RedisMirror::new(settings.clone(), Arc::clone(&snapshot.revocations));
        if let Err(e) = runtime.block_on(mirror.resync()) {
            tracing::warn!(error = %e, "cannot read the revocations from Redis");
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
    Ok(())
}

/// Pingora panics when a listener cannot bind; find out first and say which one.
fn check_listeners_free(snapshot: &Snapshot) -> Result<(), RunError> {
    let admin = ("admin".to_owned(), snapshot.admin_address);
    let all = snapshot
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.address))
        .chain(std::iter::once(admin));
    for (name, address) in all {
        std::net::TcpListener::bind(address).map_err(|source| RunError::Bind {
            name,
            address,
            source,
        })?;
    }
    Ok(())
}
