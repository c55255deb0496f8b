//! Runtime state, apart from configuration: the revocation list and its Redis mirror, the keys of
//! remote issuers, and the certificate stores of TLS listeners. One [`Stores`] lives as long as
//! the process; every compiled [`crate::snapshot::Snapshot`] refers to it.
//!
//! Compiling asks the stores for these values instead of making them, so a reload keeps what is
//! unchanged without copying anything: an issuer whose key source is the same keeps its loaded
//! keys (and its refresher, which follows the keys), a listener keeps the certificate store its
//! bound TLS acceptor resolves from, and the revocation list is the same list.

use std::sync::Arc;

use parking_lot::Mutex;

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
    mirror: Mutex<Option<Arc<RedisMirror>>>,
    keys: Mutex<Vec<RemoteKeys>>,
    certificates: Mutex<Vec<ListenerCertificates>>,
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
    /// unchanged, a new one (`load()`) for a listener without one.
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
        all.push(ListenerCertificates {
            listener: listener.to_owned(),
            files: files.to_vec(),
            tls13_only,
            store: Arc::clone(&store),
        });
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

    /// The Redis mirror of the revocation list for `settings`. There is one per process: a
    /// reload with other settings keeps the running one (and is reported as needing a restart).
    pub fn mirror(&self, settings: &RedisSettings) -> Arc<RedisMirror> {
        let mut mirror = self.mirror.lock();
        match &*mirror {
            Some(running) => Arc::clone(running),
            None => {
                let created = RedisMirror::new(settings.clone(), Arc::clone(&self.revocations));
                *mirror = Some(Arc::clone(&created));
                created
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
    }
}
