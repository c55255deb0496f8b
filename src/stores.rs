//! Runtime state, apart from configuration: the revocation list and its Redis mirror, the keys of
//! remote issuers, and the certificate stores of TLS listeners. One [`Stores`] lives as long as
//! the process; every compiled [`crate::snapshot::Snapshot`] refers to it.
//!
//! Compiling asks the stores for these values instead of making them, so a reload keeps what is
//! unchanged without copying anything: an issuer whose key source is the same keeps its loaded
//! keys (and its refresher, which follows the keys), a listener keeps the certificate store its
//! bound TLS acceptor resolves from, and the revocation list is the same list.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::auth::cache::{CacheSettings, TokenCache};
use crate::auth::fetch::KeySource;
use crate::auth::keys::IssuerKeys;
use crate::revocation::mirror::{RedisMirror, RedisSettings};
use crate::revocation::RevocationList;
use crate::snapshot::Snapshot;
use crate::tls::{CertStore, PairFiles};

/// The gateway's runtime state.
#[derive(Default)]
pub struct Stores {
    /// The revocation list every snapshot checks.
    pub revocations: Arc<RevocationList>,
    keys: Mutex<Vec<RemoteKeys>>,
    /// Introspection clients, by issuer id and settings: a reload that changes neither keeps
    /// the client, its cache and its counters.
    introspectors: Mutex<Vec<(Arc<str>, Arc<crate::auth::introspection::Introspector>)>>,
    certificates: Mutex<Vec<ListenerCertificates>>,
    /// Decided by the first snapshot compiled into these stores: the one the process starts
    /// with, whose listeners are bound and whose Redis mirror runs.
    started: OnceLock<Started>,
}

/// What the process started with.
pub struct Started {
    /// The Redis mirror of the revocation list, when the first configuration had Redis.
    pub mirror: Option<Arc<RedisMirror>>,
    /// The verified-token cache, when the first configuration enabled it (a later one may turn
    /// it off; turning it on or resizing it needs a restart).
    pub token_cache: Option<Arc<TokenCache>>,
    /// DPoP proofs seen (RFC 9449 §11.1), sized by the first configuration, kept across reloads.
    pub dpop_replay: Arc<crate::auth::dpop::ReplayCache>,
    /// The rate limits' local table, sized by the first configuration's `rate_limits.max_keys`.
    pub rate_limits: Arc<crate::rate_limit::LimitStore>,
    pub settings: StartSettings,
}

/// The settings that take effect only at start-up: a reload that changes them is reported as
/// needing a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct StartSettings {
    /// Name, address and TLS of each listener.
    pub listeners: Vec<(String, SocketAddr, bool)>,
    pub admin_address: SocketAddr,
    pub probes_address: Option<SocketAddr>,
    /// The decision listener's address, and whether it speaks TLS.
    pub decision_address: Option<(SocketAddr, bool)>,
    pub revocation_file: Option<PathBuf>,
    pub revocation_state_file: Option<PathBuf>,
    pub revocation_redis: Option<RedisSettings>,
    pub shutdown_grace: Duration,
    pub auth_cache: CacheSettings,
    /// `dpop_proofs.max_replay_entries`.
    pub dpop_replay_entries: usize,
    /// `rate_limits.max_keys`.
    pub rate_limit_keys: usize,
}

impl StartSettings {
    pub fn of(snapshot: &Snapshot) -> StartSettings {
        StartSettings {
            listeners: snapshot
                .listeners
                .iter()
                .map(|l| (l.name.clone(), l.address, l.tls.is_some()))
                .collect(),
            admin_address: snapshot.admin_address,
            probes_address: snapshot.probes_address,
            decision_address: (snapshot.decision.as_ref()).map(|d| (d.address, d.tls.is_some())),
            revocation_file: snapshot.revocation_file.clone(),
            revocation_state_file: snapshot.revocation_state_file.clone(),
            revocation_redis: snapshot.revocation_redis.clone(),
            shutdown_grace: snapshot.shutdown_grace,
            auth_cache: snapshot.auth_cache,
            dpop_replay_entries: snapshot.dpop.max_replay_entries,
            rate_limit_keys: snapshot.rate_limiting.max_keys,
        }
    }

    /// The settings of `new` that differ from these, by configuration key.
    pub fn changed_in(&self, new: &StartSettings) -> Vec<String> {
        let mut changes = Vec::new();
        let mut differs = |changed: bool, key: &str| {
            if changed {
                changes.push(key.to_owned());
            }
        };
        differs(self.listeners != new.listeners, "listeners");
        differs(self.admin_address != new.admin_address, "admin.address");
        differs(
            self.probes_address != new.probes_address,
            "admin.probes_address",
        );
        differs(
            self.decision_address != new.decision_address,
            "decision.address / decision.tls",
        );
        differs(
            self.revocation_file != new.revocation_file,
            "revocation.file",
        );
        differs(
            self.revocation_state_file != new.revocation_state_file,
            "revocation.state_file",
        );
        differs(
            self.revocation_redis != new.revocation_redis,
            "revocation.redis",
        );
        differs(
            self.shutdown_grace != new.shutdown_grace,
            "shutdown.grace_period",
        );
        differs(
            self.dpop_replay_entries != new.dpop_replay_entries,
            "dpop_proofs.max_replay_entries",
        );
        differs(
            self.rate_limit_keys != new.rate_limit_keys,
            "rate_limits.max_keys",
        );
        changes
    }
}

/// A remote issuer's keys, by what defines them.
struct RemoteKeys {
    /// Issuer id, `iss`, source and refresh policy: equal origins share keys.
    origin: String,
    keys: Arc<IssuerKeys>,
    source: Arc<dyn KeySource>,
}

/// The certificate store a listener's TLS acceptor resolves from.
struct ListenerCertificates {
    listener: String,
    files: Vec<PairFiles>,
    tls13_only: bool,
    store: Arc<CertStore>,
}

/// What [`Stores::certificates`] found.
pub enum Certificates {
    /// The listener's store, new or unchanged.
    Current(Arc<CertStore>),
    /// The listener already has a store with other files or versions: its bound acceptor keeps
    /// that one until a restart.
    Bound(Arc<CertStore>),
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("revocations", &self.revocations.len())
            .field("remote_keys", &self.keys.lock().len())
            .field("certificate_stores", &self.certificates.lock().len())
            .finish()
    }
}

impl Stores {
    pub fn new() -> Arc<Stores> {
        Arc::new(Stores::default())
    }

    /// The introspection client of issuer `id` with `settings`: the running one when both are
    /// unchanged, else a new one.
    pub fn introspector(
        &self,
        id: &Arc<str>,
        settings: crate::auth::introspection::IntrospectionSettings,
    ) -> Result<Arc<crate::auth::introspection::Introspector>, String> {
        let mut all = self.introspectors.lock();
        if let Some((_, known)) = all
            .iter()
            .find(|(i, known)| i == id && *known.settings() == settings)
        {
            return Ok(Arc::clone(known));
        }
        let made = Arc::new(crate::auth::introspection::Introspector::new(settings)?);
        all.retain(|(i, _)| i != id);
        all.push((Arc::clone(id), Arc::clone(&made)));
        Ok(made)
    }

    /// The keys of a remote issuer defined by `origin`: the ones already loaded when the origin
    /// is unchanged, else `build()`'s.
    pub fn remote_keys<E>(
        &self,
        origin: String,
        build: impl FnOnce() -> Result<(IssuerKeys, Arc<dyn KeySource>), E>,
    ) -> Result<(Arc<IssuerKeys>, Arc<dyn KeySource>), E> {
        let mut all = self.keys.lock();
        if let Some(known) = all.iter().find(|k| k.origin == origin) {
            return Ok((Arc::clone(&known.keys), Arc::clone(&known.source)));
        }
        let (keys, source) = build()?;
        let keys = Arc::new(keys);
        all.push(RemoteKeys {
            origin,
            keys: Arc::clone(&keys),
            source: Arc::clone(&source),
        });
        Ok((keys, source))
    }

    /// Forget the keys no issuer of `snapshot` uses (after a reload made it current).
    pub fn retain_keys_of(&self, snapshot: &Snapshot) {
        self.keys.lock().retain(|k| {
            snapshot
                .issuers
                .iter()
                .any(|i| Arc::ptr_eq(&i.keys, &k.keys))
        });
    }

    /// The certificate store of `listener`: the existing one when its files and versions are
    /// unchanged, a new one (`load()`) for a listener without one. Only the stores of the first
    /// configuration are kept (and watched): theirs are the listeners that are bound.
    pub fn certificates<E>(
        &self,
        listener: &str,
        files: &[PairFiles],
        tls13_only: bool,
        load: impl FnOnce() -> Result<CertStore, E>,
    ) -> Result<Certificates, E> {
        let mut all = self.certificates.lock();
        if let Some(bound) = all.iter().find(|c| c.listener == listener) {
            let store = Arc::clone(&bound.store);
            return Ok(
                match bound.files == files && bound.tls13_only == tls13_only {
                    true => Certificates::Current(store),
                    false => Certificates::Bound(store),
                },
            );
        }
        let store = Arc::new(load()?);
        if self.started.get().is_none() {
            all.push(ListenerCertificates {
                listener: listener.to_owned(),
                files: files.to_vec(),
                tls13_only,
                store: Arc::clone(&store),
            });
        }
        Ok(Certificates::Current(store))
    }

    /// Every listener's certificate store (the certificate watcher reloads them).
    pub fn certificate_stores(&self) -> Vec<Arc<CertStore>> {
        self.certificates
            .lock()
            .iter()
            .map(|c| Arc::clone(&c.store))
            .collect()
    }

    /// Record what the process starts with, on the first call (the first snapshot compiled
    /// into these stores), creating the Redis mirror when it has Redis; later calls return that
    /// first record. A reload therefore keeps the running mirror, whatever its settings say.
    pub fn start(&self, settings: StartSettings) -> &Started {
        self.started.get_or_init(|| Started {
            mirror: settings
                .revocation_redis
                .as_ref()
                .map(|r| RedisMirror::new(r.clone(), Arc::clone(&self.revocations))),
            token_cache: settings
                .auth_cache
                .enabled
                .then(|| Arc::new(TokenCache::new(settings.auth_cache))),
            dpop_replay: Arc::new(crate::auth::dpop::ReplayCache::new(
                settings.dpop_replay_entries,
            )),
            rate_limits: Arc::new(crate::rate_limit::LimitStore::new(settings.rate_limit_keys)),
            settings,
        })
    }

    /// What the process started with, once a snapshot was compiled.
    pub fn started(&self) -> Option<&Started> {
        self.started.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::fetch::{FetchError, Fetched, KeySource};
    use crate::auth::keys::RefreshPolicy;

    struct Nowhere;

    #[async_trait::async_trait]
    impl KeySource for Nowhere {
        async fn fetch(&self) -> Result<Fetched, FetchError> {
            Err(FetchError::Unavailable("nowhere".into()))
        }
    }

    fn remote(stores: &Stores, origin: &str) -> Arc<IssuerKeys> {
        let built = stores.remote_keys(origin.to_owned(), || {
            let source: Arc<dyn KeySource> = Arc::new(Nowhere);
            Ok::<_, String>((
                IssuerKeys::remote(Arc::from("corp"), RefreshPolicy::default()),
                source,
            ))
        });
        built.unwrap().0
    }

    #[test]
    fn an_unchanged_origin_keeps_its_keys_and_a_changed_one_gets_new_ones() {
        let stores = Stores::default();
        let first = remote(&stores, "corp https://idp Jwks(a)");
        assert!(Arc::ptr_eq(
            &first,
            &remote(&stores, "corp https://idp Jwks(a)")
        ));
        let changed = remote(&stores, "corp https://idp Jwks(b)");
        assert!(!Arc::ptr_eq(&first, &changed));
        let failed = stores.remote_keys("x".to_owned(), || Err::<(IssuerKeys, _), _>("bad url"));
        assert_eq!(failed.err(), Some("bad url"));
        assert_eq!(stores.keys.lock().len(), 2, "a failed build is not kept");
    }

    #[test]
    fn a_listener_keeps_the_store_its_acceptor_was_bound_with() {
        let made = rcgen::generate_simple_self_signed(vec!["api.test".to_owned()]).unwrap();
        let src = crate::source::Memory::new(0)
            .file("/a.crt", made.cert.pem())
            .file("/a.key", made.signing_key.serialize_pem())
            .file("/b.crt", made.cert.pem())
            .file("/b.key", made.signing_key.serialize_pem());
        let files = |name: &str| {
            vec![PairFiles {
                cert_file: PathBuf::from(format!("/{name}.crt")),
                key_file: PathBuf::from(format!("/{name}.key")),
                server_names: None,
            }]
        };
        let src = &src;
        let load = |name: &str| {
            let files = files(name);
            move || CertStore::load(src, "web", files, false)
        };
        let stores = Stores::default();
        let first = match stores.certificates("web", &files("a"), false, load("a")) {
            Ok(Certificates::Current(store)) => store,
            _ => panic!("a first store is current"),
        };
        match stores.certificates("web", &files("a"), false, load("a")) {
            Ok(Certificates::Current(store)) => assert!(Arc::ptr_eq(&store, &first)),
            _ => panic!("unchanged files keep the store"),
        }
        match stores.certificates("web", &files("b"), false, load("b")) {
            Ok(Certificates::Bound(store)) => assert!(Arc::ptr_eq(&store, &first)),
            _ => panic!("other files keep the bound store, reported as such"),
        }
        match stores.certificates("web", &files("a"), true, load("a")) {
            Ok(Certificates::Bound(store)) => assert!(Arc::ptr_eq(&store, &first)),
            _ => panic!("another min_version keeps the bound store"),
        }
        assert_eq!(stores.certificate_stores().len(), 1);
        let failed = stores.certificates("other", &files("c"), false, load("c"));
        assert!(failed.is_err(), "missing files");
        assert_eq!(
            stores.certificate_stores().len(),
            1,
            "a failed load binds nothing"
        );
        // Once the process has started, a listener added by a reload is not bound: its store
        // is checked, not kept or watched.
        stores.start(settings(false, 10));
        match stores.certificates("added", &files("b"), false, load("b")) {
            Ok(Certificates::Current(store)) => assert!(!Arc::ptr_eq(&store, &first)),
            _ => panic!("an added listener's files are still checked"),
        }
        assert_eq!(stores.certificate_stores().len(), 1);
    }

    fn settings(redis: bool, grace: u64) -> StartSettings {
        StartSettings {
            listeners: vec![("web".to_owned(), "127.0.0.1:8080".parse().unwrap(), false)],
            admin_address: "127.0.0.1:9901".parse().unwrap(),
            probes_address: None,
            decision_address: None,
            revocation_file: None,
            revocation_state_file: None,
            revocation_redis: redis.then(|| RedisSettings {
                client: redis::Client::open("redis://127.0.0.1:1").unwrap(),
                description: "127.0.0.1:1".to_owned(),
                key_prefix: "portcullis".to_owned(),
                resync_interval: Duration::from_secs(60),
                max_staleness: Duration::from_secs(30),
                timeout: Duration::from_secs(1),
            }),
            shutdown_grace: Duration::from_secs(grace),
            auth_cache: CacheSettings::default(),
            dpop_replay_entries: 1_000,
            rate_limit_keys: 1_000,
        }
    }

    #[test]
    fn the_first_configuration_decides_the_mirror_and_what_needs_a_restart() {
        // Redis added by a reload: no mirror that nothing would run; reported instead.
        let stores = Stores::default();
        assert!(stores.started().is_none());
        assert!(stores.start(settings(false, 10)).mirror.is_none());
        let later = stores.start(settings(true, 20));
        assert!(later.mirror.is_none());
        assert_eq!(
            later.settings.changed_in(&settings(true, 20)),
            ["revocation.redis", "shutdown.grace_period"]
        );
        // Redis removed by a reload: the running mirror stays.
        let stores = Stores::default();
        let running = stores.start(settings(true, 10)).mirror.clone().unwrap();
        let later = stores.start(settings(false, 10));
        assert!(Arc::ptr_eq(later.mirror.as_ref().unwrap(), &running));
    }
}
