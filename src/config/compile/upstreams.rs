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
    inputs: &Inputs<'_>,
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
            let file = inputs.path(&f.value);
            let loaded = crate::tls::read_certificates(inputs.src, &file)
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
                cert_file: inputs.path(&cert.value),
                key_file: inputs.path(&key.value),
                server_names: Some(Vec::new()),
            };
            let loaded = crate::tls::load_pair(inputs.src, &files).map_err(|e| e.to_string()).and_then(|_| {
                let certs =
                    crate::tls::read_certificates(inputs.src, &files.cert_file).map_err(|e| e.to_string())?;
                let key = crate::tls::read_key(inputs.src, &files.key_file).map_err(|e| e.to_string())?;
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

/// `upstreams` may be absent or empty only without proxy listeners (a decision service).
pub(super) fn compile_upstreams(
    cx: &mut Ctx,
    upstreams: Option<&Spanned<Vec<Spanned<UpstreamFile>>>>,
    proxy: bool,
    inputs: &Inputs<'_>,
) -> Vec<Option<Upstream>> {
    let Some(upstreams) = upstreams.filter(|u| !u.value.is_empty()) else {
        if proxy {
            cx.error(
                upstreams.map_or(Location::UNKNOWN, |u| u.referenced),
                "upstreams",
                "at least one upstream is required: the listeners forward to them",
            );
        }
        return Vec::new();
    };
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
        let target = parse_upstream_url(&u.url.value, inputs.src);
        let target = match target {
            Ok(t) => Some(t),
            // A cluster Service name resolves only in the cluster: `validate` in CI notes it.
            Err(e @ (UpstreamUrlError::Resolve { .. } | UpstreamUrlError::NoAddress { .. })) => {
                cx.not_checkable(
                    Unchecked::HostName,
                    u.url.referenced,
                    format!("{path}.url"),
                    e.to_string(),
                );
                None
            }
            Err(e) => {
                cx.error(u.url.referenced, format!("{path}.url"), e.to_string());
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
                let compiled = compile_upstream_tls(cx, &t.value, &path, inputs);
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
pub(super) fn parse_upstream_url(
    url: &str,
    src: &dyn Source,
) -> Result<(SocketAddr, bool, String), UpstreamUrlError> {
    let url_error = |kind| UpstreamUrlError::Url {
        url: url.to_owned(),
        kind,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| url_error(UrlFault::NotUrl(e.to_string())))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(url_error(UrlFault::Scheme)),
    };
    let authority = uri.authority().ok_or(url_error(UrlFault::NoHost))?;
    if authority.as_str().contains('@') {
        return Err(url_error(UrlFault::Credentials));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(url_error(UrlFault::PathOrQuery));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = src
        .resolve(&host, port)
        .map_err(|e| UpstreamUrlError::Resolve {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .into_iter()
        .next()
        .ok_or_else(|| UpstreamUrlError::NoAddress { host: host.clone() })?;
    Ok((addr, tls, host))
}

/// Why an upstream URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum UpstreamUrlError {
    #[error("\"{url}\"{kind}")]
    Url { url: String, kind: UrlFault },
    #[error("cannot resolve \"{host}\": {reason}")]
    Resolve { host: String, reason: String },
    #[error("\"{host}\" resolves to no address")]
    NoAddress { host: String },
}

/// What is wrong with the URL itself (the message follows the quoted URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum UrlFault {
    #[error(" is not a URL: {0}")]
    NotUrl(String),
    #[error(": the scheme must be http or https")]
    Scheme,
    #[error(" has no host")]
    NoHost,
    #[error(": credentials in upstream URLs are not supported")]
    Credentials,
    #[error(": a path or query is not supported; requests keep their own path")]
    PathOrQuery,
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::source::Memory;

    fn upstreams(yaml: &str, src: &Memory) -> (Vec<Option<Upstream>>, Vec<String>) {
        let mut cx = Ctx::default();
        let file: Spanned<Vec<Spanned<UpstreamFile>>> = parse(yaml);
        let out = compile_upstreams(&mut cx, Some(&file), true, &inputs(src));
        (out, messages(&cx))
    }

    #[test]
    fn host_names_resolve_through_the_source() {
        let src = Memory::new(NOW).host("orders.internal", &["10.1.2.3".parse().unwrap()]);
        let (out, errors) = upstreams(
            r#"
- { id: orders, url: "http://orders.internal:8080", connect_timeout: 1s }
- { id: literal, url: "https://192.0.2.7" }
- { id: unknown, url: "http://nowhere.internal" }
"#,
            &src,
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("upstreams[2].url"), "{}", errors[0]);
        assert!(
            errors[0].contains("cannot resolve \"nowhere.internal\""),
            "{}",
            errors[0]
        );
        let orders = out[0].as_ref().unwrap();
        assert_eq!(orders.address, "10.1.2.3:8080".parse().unwrap());
        assert_eq!(
            orders.peer.options.connection_timeout,
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            out[1].as_ref().unwrap().address,
            "192.0.2.7:443".parse().unwrap()
        );
        assert!(out[2].is_none());
    }

    #[test]
    fn upstream_tls_reads_its_ca_and_client_pair_from_the_source() {
        let (ca, _) = certificate(&["ca.test"]);
        let (client, client_key) = certificate(&["client.test"]);
        let src = Memory::new(NOW)
            .file(at("ca.crt"), ca)
            .file(at("client.crt"), client)
            .file(at("client.key"), client_key);
        let (out, errors) = upstreams(
            r#"
- id: good
  url: "https://192.0.2.1"
  tls: { ca_file: ca.crt, server_name: orders.test, client_cert_file: client.crt, client_key_file: client.key }
- id: bad
  url: "https://192.0.2.2"
  tls: { ca_file: missing.crt, client_cert_file: client.crt }
- id: plain
  url: "http://192.0.2.3"
  tls: { ca_file: ca.crt }
"#,
            &src,
        );
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].contains("upstreams[1].tls.ca_file") && errors[0].contains("missing.crt")
        );
        assert!(errors[1].contains("client_cert_file and client_key_file go together"));
        assert!(errors[2].contains("upstreams[2].tls") && errors[2].contains("https://"));
        let good = out[0].as_ref().unwrap();
        assert_eq!(good.peer.sni, "orders.test");
        assert!(good.peer.options.ca.is_some());
        assert!(good.peer.client_cert_key.is_some());
        assert!(out[1].is_none() && out[2].is_none());
    }

    #[test]
    fn urls_with_paths_credentials_or_other_schemes_are_refused() {
        let src = Memory::new(NOW);
        let (_, errors) = upstreams(
            r#"
- { id: a, url: "http://192.0.2.1/api" }
- { id: b, url: "http://user:pw@192.0.2.1" }
- { id: c, url: "ftp://192.0.2.1" }
- { id: a, url: "http://192.0.2.1", read_timeout: soon }
"#,
            &src,
        );
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].contains("a path or query is not supported"));
        assert!(errors[1].contains("credentials"));
        assert!(errors[2].contains("the scheme must be http or https"));
        assert!(errors[3].contains("upstreams[3].id"));
        assert!(errors[4].contains("upstreams[3].read_timeout"));
    }
}
