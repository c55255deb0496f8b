//! Configuration hot reload: on SIGHUP or when the file's content changes (Kubernetes swaps a
//! ConfigMap's symlink; polling the content catches that), load, compile and swap the snapshot.
//!
//! A request keeps the snapshot it started with, so in-flight requests finish on their version.
//! An invalid file is refused with its located errors logged and counted, and the old snapshot
//! keeps serving. Remote issuers whose key source did not change keep their loaded keys and
//! refresher (compiling takes them from the long-lived [`Stores`]), so a reload never makes the
//! gateway unready. Listener and admin addresses cannot
//! change live: such changes are reported as needing a restart, and the rest applies.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::auth::keys::IssuerKeys;
use crate::config::{self, ConfigError, ConfigErrors};
use crate::metrics::Metrics;
use crate::revocation::file::{FileError, FileLoad, RevocationFile};
use crate::snapshot::{Snapshot, SnapshotHolder};
use crate::stores::{StartSettings, Stores};

/// Log what a revocation-file load found.
pub fn log_revocation_file_load(path: &Path, result: &Result<FileLoad, FileError>) {
    match result {
        Ok(load) => {
            for p in &load.problems {
                tracing::warn!("{p}; the other entries are used");
            }
            tracing::info!(path = %path.display(), entries = load.entries, "revocation file loaded");
        }
        Err(e) => {
            tracing::error!(path = %path.display(), "revocation file not loaded, previous entries kept: {e}")
        }
    }
}

/// How often expired revocation entries are dropped.
const REVOCATION_PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new snapshot serves; the listed changes need a restart to take effect.
    Applied { restart_needed: Vec<String> },
    /// The file is invalid; the old snapshot keeps serving.
    Rejected(ConfigErrors),
}

impl ReloadOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            ReloadOutcome::Applied { .. } => "applied",
            ReloadOutcome::Rejected(_) => "rejected",
        }
    }
}

/// The running key refreshers, one per remote issuer of the current snapshot.
#[derive(Default)]
pub struct Refreshers {
    running: Mutex<Vec<(Arc<IssuerKeys>, watch::Sender<bool>)>>,
}

impl Refreshers {
    /// Start refreshers for the snapshot's remote issuers that have none, and stop those whose
    /// issuer left the snapshot. Must run inside a tokio runtime.
    pub fn sync(&self, snapshot: &Snapshot, metrics: &Metrics) {
        let mut running = self.running.lock();
        running.retain(|(keys, stop)| {
            let kept = snapshot.issuers.iter().any(|i| Arc::ptr_eq(&i.keys, keys));
            if !kept {
                let _ = stop.send(true);
            }
            kept
        });
        for issuer in &snapshot.issuers {
            let Some(source) = &issuer.key_source else {
                continue;
            };
            if running
                .iter()
                .any(|(keys, _)| Arc::ptr_eq(keys, &issuer.keys))
            {
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let task = Arc::clone(&issuer.keys).run_refresher(
                Arc::clone(source),
                Some(metrics.clone()),
                stopped,
            );
            tokio::spawn(task);
            running.push((Arc::clone(&issuer.keys), stop));
        }
    }

    /// Stop every refresher.
    pub fn stop_all(&self) {
        for (_, stop) in self.running.lock().drain(..) {
            let _ = stop.send(true);
        }
    }
}

/// A configuration whose routes have no upstream (a decision service alone) cannot replace one
/// whose proxy listeners are bound: they stay bound until a restart, and would admit requests
/// they have nowhere to send.
fn proxies_without_upstream(stores: &Stores, new: &Snapshot) -> Option<ConfigError> {
    let started = stores.started()?;
    if started.settings.listeners.is_empty() {
        return None;
    }
    let (i, _) = new
        .routes
        .iter()
        .enumerate()
        .find(|(_, r)| r.upstream.is_none())?;
    Some(ConfigError::at(
        serde_saphyr::Location::UNKNOWN,
        format!("routes[{i}].upstream"),
        "required: this process serves proxy listeners until it restarts",
    ))
}

/// Load `path` into `stores` and, if valid, make it the current snapshot. Unchanged remote
/// issuers keep their keys and listeners their certificate stores: compiling takes them from
/// `stores`.
pub fn reload(
    path: &Path,
    stores: &Stores,
    snapshots: &SnapshotHolder,
    refreshers: &Refreshers,
    metrics: &Metrics,
) -> ReloadOutcome {
    let loaded =
        config::load_into(path, stores).and_then(|compiled| {
            match proxies_without_upstream(stores, &compiled.snapshot) {
                Some(error) => Err(ConfigErrors(vec![error])),
                None => Ok(compiled),
            }
        });
    let outcome = match loaded {
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(config = %path.display(), "reload refused: {e}");
            }
            ReloadOutcome::Rejected(errors)
        }
        Ok(compiled) => {
            for w in &compiled.warnings {
                tracing::warn!(config = %path.display(), "{w}");
            }
            let new = compiled.snapshot;
            // Compared with what the process started with: that is what is bound and running.
            let restart_needed = stores
                .started()
                .map(|s| s.settings.changed_in(&StartSettings::of(&new)))
                .unwrap_or_default();
            for change in &restart_needed {
                tracing::warn!(config = %path.display(), setting = %change, "changed, but takes effect only after a restart");
            }
            refreshers.sync(&new, metrics);
            stores.retain_keys_of(&new);
            if let Some(cache) = &new.token_cache {
                cache.retain_issuers_of(&new);
            }
            snapshots.replace(new);
            tracing::info!(config = %path.display(), "configuration reloaded");
            ReloadOutcome::Applied { restart_needed }
        }
    };
    metrics.record_reload(outcome.label());
    outcome
}

/// A hash of the file's content. Take it *before* loading the file, and give it to the
/// [`ReloadWatcher`]: a change in between then causes one reload, instead of going unnoticed.
pub fn content_hash(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    Some(bytes_hash(&bytes))
}

/// The hash [`content_hash`] and [`Snapshot::watched_files`] use.
pub fn bytes_hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The current content hashes of `snapshot`'s watched files, when any differs from what the
/// snapshot was compiled from (`None` for a file that cannot be read now).
fn watched_files_changed(snapshot: &Snapshot) -> Option<Vec<Option<u64>>> {
    let now: Vec<Option<u64>> = snapshot
        .watched_files
        .iter()
        .map(|(path, _)| content_hash(path))
        .collect();
    let changed = now
        .iter()
        .zip(&snapshot.watched_files)
        .any(|(now, (_, compiled))| *now != Some(*compiled));
    changed.then_some(now)
}

/// Watches for SIGHUP and file changes and reloads; the outcomes are published on a channel
/// (tests wait on it instead of sleeping).
pub struct ReloadWatcher {
    /// The configuration file; `None` when the configuration was given as text (nothing to
    /// reload, but keys are refreshed and revocations purged all the same).
    pub path: Option<PathBuf>,
    /// The runtime state every snapshot is compiled into.
    pub stores: Arc<Stores>,
    pub snapshots: Arc<SnapshotHolder>,
    pub refreshers: Arc<Refreshers>,
    pub metrics: Metrics,
    /// How often the file's content is compared with the last loaded one.
    pub poll_interval: Duration,
    /// [`content_hash`] of the file as it was before the current snapshot was loaded from it.
    pub loaded_hash: Option<u64>,
    pub outcomes: watch::Sender<Option<ReloadOutcome>>,
    /// The revocation file, when configured, with the hash of its content when last loaded.
    pub revocation_file: Option<(Arc<RevocationFile>, Option<u64>)>,
    /// Results of revocation-file loads (tests wait on it).
    pub revocation_loads: watch::Sender<Option<Result<FileLoad, FileError>>>,
}

impl ReloadWatcher {
    /// Re-read the revocation file when its content changed, off the async workers.
    async fn check_revocation_file(&mut self) {
        let Some((file, last)) = self.revocation_file.clone() else {
            return;
        };
        let snapshots = Arc::clone(&self.snapshots);
        let checked = tokio::task::spawn_blocking(move || {
            let hash = content_hash(file.path());
            if hash == last {
                return (hash, None);
            }
            let result = file.load(&snapshots.current(), crate::clock::unix_now());
            log_revocation_file_load(file.path(), &result);
            (hash, Some(result))
        })
        .await;
        match checked {
            Ok((hash, result)) => {
                if let Some((_, last)) = &mut self.revocation_file {
                    *last = hash;
                }
                if let Some(result) = result {
                    self.revocation_loads.send_replace(Some(result));
                }
            }
            Err(e) => tracing::error!(error = %e, "the revocation file check failed"),
        }
    }

    /// [`reload`] off the async workers: compiling reads files and resolves upstream names.
    async fn reload_blocking(&self, path: PathBuf) -> Option<ReloadOutcome> {
        let (stores, snapshots, refreshers, metrics) = (
            Arc::clone(&self.stores),
            Arc::clone(&self.snapshots),
            Arc::clone(&self.refreshers),
            self.metrics.clone(),
        );
        let reloaded = tokio::task::spawn_blocking(move || {
            reload(&path, &stores, &snapshots, &refreshers, &metrics)
        })
        .await;
        match reloaded {
            Ok(outcome) => Some(outcome),
            Err(e) => {
                tracing::error!(error = %e, "the configuration reload failed");
                None
            }
        }
    }

    /// Run until `shutdown` flips; then stop every key refresher too.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        self.refreshers
            .sync(&self.snapshots.current(), &self.metrics);
        let mut hangup = match &self.path {
            None => None,
            Some(path) => {
                tracing::info!(config = %path.display(), "watching the configuration for changes; SIGHUP reloads");
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on file change only");
                        None
                    }
                }
            }
        };
        let mut last = self.loaded_hash;
        // The watched files' hashes when a reload was last tried for them: a change that gave an
        // invalid configuration is reported once, not on every tick.
        let mut files_tried: Option<Vec<Option<u64>>> = None;
        let mut tick = tokio::time::interval(self.poll_interval);
        let mut purge = tokio::time::interval(REVOCATION_PURGE_INTERVAL);
        loop {
            let forced = tokio::select! {
                _ = purge.tick() => {
                    let removed = self.snapshots.current().revocations.purge_expired(crate::clock::unix_now());
                    if removed > 0 {
                        tracing::info!(removed, "expired revocations dropped");
                    }
                    continue;
                }
                _ = tick.tick() => false,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                _ = shutdown.changed() => break,
            };
            self.check_revocation_file().await;
            let Some(path) = self.path.clone() else {
                continue;
            };
            let hashed = path.clone();
            let snapshot = self.snapshots.current();
            let (now, files) = tokio::task::spawn_blocking(move || {
                (content_hash(&hashed), watched_files_changed(&snapshot))
            })
            .await
            .unwrap_or((last, None));
            let files_changed = files.is_some() && files != files_tried;
            if !forced && now == last && !files_changed {
                continue;
            }
            last = now;
            files_tried = files;
            if forced {
                tracing::info!("SIGHUP: reloading the configuration");
            } else if files_changed {
                tracing::info!("a file the configuration reads changed: reloading");
            }
            if let Some(outcome) = self.reload_blocking(path).await {
                // Only a refused change is remembered: after an applied one, the new snapshot's
                // own hashes are what later content is compared with (a rollback counts).
                if matches!(outcome, ReloadOutcome::Applied { .. }) {
                    files_tried = None;
                }
                self.outcomes.send_replace(Some(outcome));
            }
        }
        self.refreshers.stop_all();
    }
}
