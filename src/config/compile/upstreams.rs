//! `upstreams[]`: URL, timeouts and TLS, compiled into the Pingora peer.

use super::*;

/// An upstream's `tls`, loaded for the Pingora peer.
pub(super) struct UpstreamTls {
    ca: Option<Arc<[pingora::utils::tls::WrappedX509]>>,
    server_name: Option<String>,
    client_cert: Option<Arc<pingora::utils::tls::CertKey>>,
}

/// A connection-pool key for an upstream that trusts `ca`.
pub(super) fn ca_group_key(id: &str, ca: &[pingora::utils::tls::WrappedX509]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    for c in ca {
        c.borrow_raw_cert().hash(&mut h);
    }
    h.finish()
}

pub(super) fn compile_upstream_tls(
    cx: &mut Ctx,
    t: &UpstreamTlsFile,
    path: &str,
    base_dir: &Path,
) -> Option<UpstreamTls> {
    use pingora::utils::tls::{CertKey, WrappedX509};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let mut ok = true;
    let wrap = |der: &[u8]| {
        WrappedX509::try_new(der.to_vec(), |d| {
            X509Certificate::from_der(d).map(|(_, c)| c)
        })
    };
    let ca = match &t.ca_file {
        None => None,
        Some(f) => {
            let file = base_dir.join(&f.value);
            let loaded = crate::tls::read_certificates(&file)
                .map_err(|e| e.to_string())
                .and_then(|certs| {
                    certs
                        .iter()
                        .map(|c| wrap(c.as_ref()).map_err(|e| format!("{}: {e}", file.display())))
                        .collect::<Result<Vec<_>, _>>()
                });
            match loaded {
                Ok(certs) => Some(Arc::from(certs)),
                Err(e) => {
                    cx.error(f.referenced, format!("{path}.tls.ca_file"), e);
                    ok = false;
                    None
                }
            }
        }
    };
    let server_name = t.server_name.as_ref().and_then(|n| {
        if rustls::pki_types::ServerName::try_from(n.value.as_str()).is_ok() {
            Some(n.value.clone())
        } else {
            cx.error(
                n.referenced,
                format!("{path}.tls.server_name"),
                format!("\"{}\" is not a host name", n.value),
            );
            ok = false;
            None
        }
    });
    let client_cert = match (&t.client_cert_file, &t.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let files = crate::tls::PairFiles {
                cert_file: base_dir.join(&cert.value),
                key_file: base_dir.join(&key.value),
                server_names: Some(Vec::new()),
            };
            let loaded = crate::tls::load_pair(&files).map_err(|e| e.to_string()).and_then(|_| {
                let certs =
                    crate::tls::read_certificates(&files.cert_file).map_err(|e| e.to_string())?;
                let key = crate::tls::read_key(&files.key_file).map_err(|e| e.to_string())?;
                // Pingora re-derives the key's format from its DER when it connects, and panics
                // if it cannot: make sure it can, here.
                let format = std::mem::discriminant(&key);
                match rustls::pki_types::PrivateKeyDer::try_from(key.secret_der()) {
                    Ok(k) if std::mem::discriminant(&k) == format => {}
                    _ => {
                        return Err(format!(
                            "{}: this private key encoding is not usable for upstream connections; convert it to PKCS#8",
                            files.key_file.display()
                        ))
                    }
                }
                Ok(CertKey::new(
                    certs.iter().map(|c| c.as_ref().to_vec()).collect(),
                    key.secret_der().to_vec(),
                ))
            });
            match loaded {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    cx.error(cert.referenced, format!("{path}.tls.client_cert_file"), e);
                    ok = false;
                    None
                }
            }
        }
        (Some(f), None) | (None, Some(f)) => {
            cx.error(
                f.referenced,
                format!("{path}.tls"),
                "client_cert_file and client_key_file go together",
            );
            ok = false;
            None
        }
    };
    ok.then_some(UpstreamTls {
        ca,
        server_name,
        client_cert,
    })
}

pub(super) fn compile_upstreams(
    cx: &mut Ctx,
    upstreams: &Spanned<Vec<Spanned<UpstreamFile>>>,
    base_dir: &Path,
) -> Vec<Option<Upstream>> {
    if upstreams.value.is_empty() {
        cx.error(
            upstreams.referenced,
            "upstreams",
            "at least one upstream is required",
        );
    }
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (i, u) in upstreams.value.iter().enumerate() {
        let path = format!("upstreams[{i}]");
        let u = &u.value;
        let mut ok = true;
        if u.id.value.is_empty() || !ids.insert(u.id.value.clone()) {
            cx.error(
                u.id.referenced,
                format!("{path}.id"),
                "upstream ids must be non-empty and unique",
            );
            ok = false;
        }
        let mut timeout = |t: &Option<Text>, name: &str, default: Duration| match t {
            None => Some(default),
            Some(t) => parse_duration(cx, t, &format!("{path}.{name}")),
        };
        let connect = timeout(
            &u.connect_timeout,
            "connect_timeout",
            DEFAULT_CONNECT_TIMEOUT,
        );
        let read = timeout(&u.read_timeout, "read_timeout", DEFAULT_READ_TIMEOUT);
        let write = timeout(&u.write_timeout, "write_timeout", DEFAULT_WRITE_TIMEOUT);
        let target = parse_upstream_url(&u.url.value);
        let target = match target {
            Ok(t) => Some(t),
            Err(message) => {
                cx.error(u.url.referenced, format!("{path}.url"), message);
                None
            }
        };
        let upstream_tls = match (&u.tls, &target) {
            (Some(t), Some((_, false, _))) => {
                cx.error(
                    t.referenced,
                    format!("{path}.tls"),
                    "tls settings need an https:// url",
                );
                ok = false;
                None
            }
            (Some(t), _) => {
                let compiled = compile_upstream_tls(cx, &t.value, &path, base_dir);
                ok &= compiled.is_some();
                compiled
            }
            (None, _) => None,
        };
        let compiled = match (ok, target, connect, read, write) {
            (true, Some((addr, tls, host)), Some(connect), Some(read), Some(write)) => {
                let mut peer = HttpPeer::new(addr, tls, host);
                peer.options.connection_timeout = Some(connect);
                peer.options.read_timeout = Some(read);
                peer.options.write_timeout = Some(write);
                if let Some(t) = upstream_tls {
                    if let Some(ca) = t.ca {
                        // Pingora's connection pool does not key connections by the trusted
                        // CA: without this, a connection verified against one upstream's CA
                        // would be reused for another upstream on the same address and name.
                        peer.group_key = ca_group_key(&u.id.value, &ca);
                        peer.options.ca = Some(ca);
                    }
                    if let Some(name) = t.server_name {
                        peer.sni = name;
                    }
                    peer.client_cert_key = t.client_cert;
                }
                Some(Upstream {
                    id: Arc::from(u.id.value.as_str()),
                    address: addr,
                    peer,
                })
            }
            _ => None,
        };
        out.push(compiled);
    }
    out
}

/// `http(s)://host[:port]` → (resolved address, tls, host for SNI).
///
/// The host is resolved once, here, so the request path never waits on DNS.
pub(super) fn parse_upstream_url(url: &str) -> Result<(SocketAddr, bool, String), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("\"{url}\": the scheme must be http or https")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("\"{url}\" has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "\"{url}\": credentials in upstream URLs are not supported"
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "\"{url}\": a path or query is not supported; requests keep their own path"
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{host}\": {e}"))?
        .next()
        .ok_or_else(|| format!("\"{host}\" resolves to no address"))?;
    Ok((addr, tls, host))
}
