//! TLS termination: certificates chosen by SNI from a store that is swapped whole when the files
//! change, client certificates, and the Pingora TLS settings of a listener.
//!
//! Everything that can fail is done when the configuration compiles ([`load_pair`],
//! [`load_ca`]) so a bad file is a located config error, never a panic at bind time. The store
//! is the rustls certificate resolver: a handshake reads the current set through an `ArcSwap`.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{TlsAccept, TlsAcceptCallbacks};
use pingora::protocols::tls::TlsRef;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, RootCertStore};
use tokio::sync::watch;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::source::{Source, System};

/// One certificate and key pair of a listener, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Names this pair serves; `None`: the DNS names in the certificate.
    pub server_names: Option<Vec<String>>,
}

/// A loaded, checked pair.
#[derive(Debug, Clone)]
pub struct LoadedPair {
    pub key: Arc<CertifiedKey>,
    /// The names it is chosen for (lower case; `*.example.com` for wildcards).
    pub names: Vec<String>,
    /// The leaf certificate's `notAfter`, seconds since the epoch.
    pub not_after: i64,
}

/// Why certificates, keys or a TLS configuration could not be loaded; the messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a PEM certificate file: {reason}", path.display())]
    NotPemCertificates {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("{}: no PEM certificate in it", path.display())]
    NoCertificate { path: std::path::PathBuf },
    #[error("{}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: std::path::PathBuf },
    #[error("{} does not match the certificate {}: {reason}", key.display(), cert.display())]
    KeyMismatch {
        key: std::path::PathBuf,
        cert: std::path::PathBuf,
        reason: String,
    },
    #[error("{}: cannot parse the certificate: {reason}", path.display())]
    CertificateParse {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("at least one certificate is required")]
    NoPair,
    #[error("{}: not a usable CA certificate: {reason}", path.display())]
    UnusableCa {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("TLS settings: {0}")]
    Settings(String),
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

impl TlsError {
    /// The file does not exist (a Secret not mounted yet, for `validate`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, TlsError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Every certificate in a PEM file.
pub fn read_certificates(
    src: &dyn Source,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(src, path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::NotPemCertificates {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read(src: &dyn Source, path: &Path) -> Result<Vec<u8>, TlsError> {
    src.read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(src: &dyn Source, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(src, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey {
        path: path.to_path_buf(),
    })
}

/// Load a pair and check that the key belongs to the certificate.
pub fn load_pair(src: &dyn Source, files: &PairFiles) -> Result<LoadedPair, TlsError> {
    let certs = read_certificates(src, &files.cert_file)?;
    let key = read_key(src, &files.key_file)?;
    let leaf = certs
        .first()
        .cloned()
        .ok_or_else(|| TlsError::NoCertificate {
            path: files.cert_file.clone(),
        })?;
    let key =
        CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::KeyMismatch {
            key: files.key_file.clone(),
            cert: files.cert_file.clone(),
            reason: e.to_string(),
        })?;
    let (_, parsed) =
        X509Certificate::from_der(leaf.as_ref()).map_err(|e| TlsError::CertificateParse {
            path: files.cert_file.clone(),
            reason: e.to_string(),
        })?;
    let names = match &files.server_names {
        Some(names) => names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        None => certificate_names(&parsed),
    };
    Ok(LoadedPair {
        key: Arc::new(key),
        names,
        not_after: parsed.validity().not_after.timestamp(),
    })
}

/// The DNS names of a certificate: its subjectAltName DNS entries, else its common name.
fn certificate_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    names
}

/// The certificates of a listener: by exact name, by wildcard suffix, and the default (the
/// first pair) for clients that send no or an unknown name.
#[derive(Debug)]
pub struct CertificateSet {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` → key under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    pub not_after: Vec<(String, i64)>,
}

impl CertificateSet {
    pub fn new(pairs: &[LoadedPair]) -> Option<CertificateSet> {
        let default = Arc::clone(&pairs.first()?.key);
        let mut set = CertificateSet {
            default,
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            not_after: Vec::new(),
        };
        for pair in pairs {
            for name in &pair.names {
                // The first pair naming a host wins.
                let (map, key) = match name.strip_prefix("*.") {
                    Some(suffix) => (&mut set.wildcard, suffix.to_owned()),
                    None => (&mut set.exact, name.clone()),
                };
                map.entry(key).or_insert_with(|| Arc::clone(&pair.key));
            }
            let label = pair.names.first().cloned().unwrap_or_default();
            set.not_after.push((label, pair.not_after));
        }
        Some(set)
    }

    /// The pair for a server name (SNI), or the default.
    pub fn choose(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return Arc::clone(&self.default);
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Arc::clone(k);
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return Arc::clone(k);
            }
        }
        Arc::clone(&self.default)
    }
}

/// A hash of the content of every file of the pairs (changes when Kubernetes swaps a symlink).
fn files_hash(src: &dyn Source, pairs: &[PairFiles]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in pairs {
        for f in [&p.cert_file, &p.key_file] {
            src.read(f).ok().hash(&mut h);
        }
    }
    h.finish()
}

/// The outcome of a certificate reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertReload {
    Applied,
    Refused(String),
}

/// A listener's certificates: the rustls resolver, swapped whole when the files change.
#[derive(Debug)]
pub struct CertStore {
    pub listener: String,
    pairs: Vec<PairFiles>,
    current: ArcSwap<CertificateSet>,
    loaded_hash: Mutex<u64>,
    /// `min_version: "1.3"`.
    pub tls13_only: bool,
    outcomes: watch::Sender<Option<CertReload>>,
}

impl CertStore {
    /// A store from pairs loaded (and checked) by the caller, with `hash` taken before loading.
    pub fn new(
        listener: &str,
        pairs: Vec<PairFiles>,
        loaded: &[LoadedPair],
        hash: u64,
        tls13_only: bool,
    ) -> Option<CertStore> {
        Some(CertStore {
            listener: listener.to_owned(),
            pairs,
            current: ArcSwap::from_pointee(CertificateSet::new(loaded)?),
            loaded_hash: Mutex::new(hash),
            tls13_only,
            outcomes: watch::channel(None).0,
        })
    }

    /// Load `pairs` into a new store (the compiler's entry point).
    pub fn load(
        src: &dyn Source,
        listener: &str,
        pairs: Vec<PairFiles>,
        tls13_only: bool,
    ) -> Result<CertStore, TlsError> {
        let hash = files_hash(src, &pairs);
        let loaded = pairs
            .iter()
            .map(|p| load_pair(src, p))
            .collect::<Result<Vec<_>, _>>()?;
        CertStore::new(listener, pairs, &loaded, hash, tls13_only).ok_or(TlsError::NoPair)
    }

    pub fn current(&self) -> Arc<CertificateSet> {
        self.current.load_full()
    }

    /// Reload outcomes (tests wait on them).
    pub fn outcomes(&self) -> watch::Receiver<Option<CertReload>> {
        self.outcomes.subscribe()
    }

    /// When any file changed since the last attempt, load every pair again and swap them in;
    /// a pair that fails to load or match keeps the old set serving. Reads the real files.
    pub fn reload_if_changed(&self) -> Option<CertReload> {
        let src = &System;
        let hash = files_hash(src, &self.pairs);
        {
            let mut last = self.loaded_hash.lock();
            if *last == hash {
                return None;
            }
            *last = hash;
        }
        let outcome = match self
            .pairs
            .iter()
            .map(|p| load_pair(src, p))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(loaded) => match CertificateSet::new(&loaded) {
                Some(set) => {
                    self.current.store(Arc::new(set));
                    CertReload::Applied
                }
                None => CertReload::Refused("no certificate".into()),
            },
            Err(e) => CertReload::Refused(e.to_string()),
        };
        self.outcomes.send_replace(Some(outcome.clone()));
        Some(outcome)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // With `min_version: "1.3"`, a client offering no TLS 1.3 suite would negotiate 1.2:
        // returning no certificate aborts its handshake.
        if self.tls13_only
            && !hello.cipher_suites().iter().any(|s| {
                matches!(
                    s,
                    CipherSuite::TLS13_AES_128_GCM_SHA256
                        | CipherSuite::TLS13_AES_256_GCM_SHA384
                        | CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                        | CipherSuite::TLS13_AES_128_CCM_SHA256
                        | CipherSuite::TLS13_AES_128_CCM_8_SHA256
                )
            })
        {
            return None;
        }
        Some(self.current.load().choose(hello.server_name()))
    }
}

/// The CA certificates of a PEM file, as a root store.
pub fn load_ca(src: &dyn Source, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(src, path)? {
        roots.add(cert).map_err(|e| TlsError::UnusableCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Client certificate policy of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    None,
    Optional,
    Required,
}

/// The verifier for client certificates signed by `roots`.
pub fn client_verifier(
    roots: RootCertStore,
    mode: ClientAuthMode,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider()));
    let builder = if mode == ClientAuthMode::Optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))
}

/// The verified client certificate of a connection, for the auth layer (RFC 8705
/// certificate-bound tokens compare `thumbprint` with the token's `cnf.x5t#S256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// base64url (no padding) of the SHA-256 of the DER certificate: RFC 8705's `x5t#S256`.
    pub thumbprint: String,
    /// The same digest in hex (Envoy's `X-Forwarded-Client-Cert` `Hash=`).
    pub sha256_hex: String,
    /// The SHA-256 of the DER certificate.
    pub digest: [u8; 32],
    /// The subject distinguished name, RFC 4514 style.
    pub subject: String,
    forwarded: Option<http::HeaderValue>,
}

impl ClientCertificate {
    pub fn from_der(der: &[u8]) -> ClientCertificate {
        use base64::Engine;
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let subject = X509Certificate::from_der(der)
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default();
        let sha256_hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let escaped = subject.replace('\\', "\\\\").replace('"', "\\\"");
        // Built once per connection, not per request.
        let forwarded =
            http::HeaderValue::from_str(&format!("Hash={sha256_hex};Subject=\"{escaped}\"")).ok();
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.as_ref());
        ClientCertificate {
            thumbprint: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
            sha256_hex,
            digest: sha256,
            subject,
            forwarded,
        }
    }

    /// `X-Forwarded-Client-Cert: Hash=<hex>` for a certificate known by its SHA-256 only (named
    /// by a trusted TLS-terminating proxy).
    pub fn forwarded_hash(digest: &[u8; 32]) -> Option<http::HeaderValue> {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        http::HeaderValue::from_str(&format!("Hash={hex}")).ok()
    }

    /// `X-Forwarded-Client-Cert` as Envoy writes it: `Hash=<hex SHA-256>;Subject="<DN>"`
    /// (`None` when the subject cannot be a header value).
    pub fn forwarded_header(&self) -> Option<&http::HeaderValue> {
        self.forwarded.as_ref()
    }
}

/// What the request path learns of a TLS connection (the extension of Pingora's `SslDigest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConnection {
    /// The verified client certificate, when the client sent one.
    pub client_cert: Option<ClientCertificate>,
    /// Negotiated below the listener's `min_version`: every request is refused.
    pub below_min_version: bool,
}

/// After the handshake: attach the client certificate and the version check to the connection.
struct ConnectionCallback {
    tls13_only: bool,
}

#[async_trait::async_trait]
impl TlsAccept for ConnectionCallback {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        // Pingora's rustls listener offers TLS 1.2 and 1.3 whatever the settings; the resolver
        // turns away clients that offer no 1.3 suite, and this catches the rest.
        let below_min_version = self.tls13_only && tls.version() != Some("TLSv1_3");
        let client_cert = tls.peer_certificate_der().map(ClientCertificate::from_der);
        if client_cert.is_none() && !below_min_version {
            return None;
        }
        Some(Arc::new(TlsConnection {
            client_cert,
            below_min_version,
        }))
    }
}

/// What a TLS listener needs at bind time; everything was checked when the config compiled.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub store: Arc<CertStore>,
    pub client_auth: ClientAuthMode,
    pub client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

/// Pingora's TLS settings for a listener: our resolver, ALPN h2 + http/1.1, client
/// certificates when configured.
pub fn settings(tls: &ListenerTls) -> Result<TlsSettings, TlsError> {
    let callbacks: TlsAcceptCallbacks = Box::new(ConnectionCallback {
        tls13_only: tls.store.tls13_only,
    });
    let mut settings =
        TlsSettings::with_callbacks(callbacks).map_err(|e| TlsError::Settings(e.to_string()))?;
    settings.set_cert_resolver(Arc::clone(&tls.store) as Arc<dyn ResolvesServerCert>);
    settings.enable_h2();
    if let Some(v) = &tls.client_verifier {
        settings.set_client_cert_verifier(Arc::clone(v));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> LoadedPair {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let signing = provider().key_provider.load_private_key(der).unwrap();
        LoadedPair {
            key: Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing)),
            names: names.iter().map(|s| s.to_string()).collect(),
            not_after: 0,
        }
    }

    #[test]
    fn sni_chooses_exact_then_wildcard_then_the_default() {
        let (first, exact, wild) = (
            pair(&["default.test"]),
            pair(&["api.example.com"]),
            pair(&["*.example.com"]),
        );
        let set = CertificateSet::new(&[first.clone(), exact.clone(), wild.clone()]).unwrap();
        let is = |chosen: Arc<CertifiedKey>, p: &LoadedPair| Arc::ptr_eq(&chosen, &p.key);
        assert!(is(set.choose(Some("api.example.com")), &exact));
        assert!(
            is(set.choose(Some("API.Example.com.")), &exact),
            "case and root dot"
        );
        assert!(is(set.choose(Some("www.example.com")), &wild));
        assert!(
            is(set.choose(Some("a.b.example.com")), &first),
            "a wildcard covers one label"
        );
        assert!(is(set.choose(Some("unknown.test")), &first));
        assert!(is(set.choose(None), &first));
        assert!(CertificateSet::new(&[]).is_none());
    }

    #[test]
    fn the_client_certificate_is_summarised_for_rfc_8705() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "batch \"job\"");
        let cert = params.self_signed(&key).unwrap();
        let c = ClientCertificate::from_der(cert.der());
        assert_eq!(c.thumbprint.len(), 43, "base64url of 32 bytes");
        assert_eq!(c.sha256_hex.len(), 64);
        assert!(c.subject.contains("CN=batch"), "{}", c.subject);
        let header = c.forwarded_header().unwrap().to_str().unwrap();
        assert!(header.contains("\\\"job\\\""), "quotes escaped: {header}");
        assert!(
            header.starts_with(&format!("Hash={};Subject=\"", c.sha256_hex)),
            "{header}"
        );
    }
}
