//! `listeners[]`, with their TLS settings (certificates loaded and matched here).

use super::*;
use crate::stores::Certificates;

/// `listeners[].plaintext`'s one value.
const PLAINTEXT_INTENDED: &str = "behind_tls_terminator";

/// `listeners` may be absent or empty only in a decision service (`decision` set).
pub(super) fn compile_listeners(
    cx: &mut Ctx,
    listeners: Option<&Spanned<Vec<Spanned<ListenerFile>>>>,
    decision_service: bool,
    inputs: &Inputs<'_>,
) -> Vec<Listener> {
    let Some(listeners) = listeners.filter(|l| !l.value.is_empty()) else {
        if !decision_service {
            cx.error(
                listeners.map_or(Location::UNKNOWN, |l| l.referenced),
                "listeners",
                "at least one listener is required (or `decision`, for a decision service alone)",
            );
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, l) in listeners.value.iter().enumerate() {
        let path = format!("listeners[{i}]");
        let l = &l.value;
        if l.name.value.is_empty() || !names.insert(l.name.value.clone()) {
            cx.error(
                l.name.referenced,
                format!("{path}.name"),
                "listener names must be non-empty and unique",
            );
        }
        match l.address.value.parse::<SocketAddr>() {
            Ok(address) => {
                if !addresses.insert(address) {
                    cx.error(
                        l.address.referenced,
                        format!("{path}.address"),
                        format!("address {address} is used by another listener"),
                    );
                }
                let intended = match &l.plaintext {
                    None => false,
                    Some(p) if p.value != PLAINTEXT_INTENDED => {
                        cx.error(
                            p.referenced,
                            format!("{path}.plaintext"),
                            format!(
                                "\"{}\" is not a plaintext setting: the one value is {PLAINTEXT_INTENDED}",
                                p.value
                            ),
                        );
                        false
                    }
                    Some(p) if l.tls.is_some() => {
                        cx.error(
                            p.referenced,
                            format!("{path}.plaintext"),
                            "a listener with tls is not plain HTTP: remove one of the two",
                        );
                        false
                    }
                    Some(_) => true,
                };
                if !address.ip().is_loopback() && l.tls.is_none() && !intended {
                    cx.warn(
                        l.address.referenced,
                        format!("{path}.address"),
                        format!("plain HTTP on a non-loopback address: tokens travel unencrypted (if TLS ends before portcullis, say so: plaintext: {PLAINTEXT_INTENDED})"),
                    );
                }
                let tls = match &l.tls {
                    None => None,
                    Some(t) => match compile_listener_tls(cx, &l.name.value, t, &path, inputs) {
                        Some(tls) => Some(tls),
                        None => continue,
                    },
                };
                out.push(Listener {
                    name: l.name.value.clone(),
                    address,
                    tls,
                });
            }
            Err(_) => cx.error(
                l.address.referenced,
                format!("{path}.address"),
                format!(
                    "\"{}\" is not an IP:port address (for example 0.0.0.0:8080 or [::]:8080)",
                    l.address.value
                ),
            ),
        }
    }
    out
}

/// A listener's `tls`: every pair loaded and matched, the client CA loaded; errors located at
/// the setting that names the bad file.
pub(super) fn compile_listener_tls(
    cx: &mut Ctx,
    listener: &str,
    tls: &Spanned<ListenerTlsFile>,
    path: &str,
    inputs: &Inputs<'_>,
) -> Option<crate::tls::ListenerTls> {
    use crate::tls::{ClientAuthMode, PairFiles};
    let path = format!("{path}.tls");
    let t = &tls.value;
    let mut ok = true;
    if t.certificates.value.is_empty() {
        cx.error(
            t.certificates.referenced,
            format!("{path}.certificates"),
            "at least one certificate is required",
        );
        ok = false;
    }
    let now = inputs.src.now();
    let mut pairs = Vec::new();
    for (i, c) in t.certificates.value.iter().enumerate() {
        let at = format!("{path}.certificates[{i}]");
        let c = &c.value;
        let files = PairFiles {
            cert_file: inputs.path(&c.cert_file.value),
            key_file: inputs.path(&c.key_file.value),
            server_names: c.server_names.as_ref().map(|names| {
                names
                    .iter()
                    .filter(|n| {
                        let host = n.value.strip_prefix("*.").unwrap_or(&n.value);
                        let valid = matches!(
                            rustls::pki_types::ServerName::try_from(host),
                            Ok(rustls::pki_types::ServerName::DnsName(_))
                        );
                        if !valid {
                            cx.error(
                                n.referenced,
                                format!("{at}.server_names"),
                                format!("\"{}\" is not a host name (or *.domain)", n.value),
                            );
                            ok = false;
                        }
                        valid
                    })
                    .map(|n| n.value.clone())
                    .collect()
            }),
        };
        // Report the cert file's own problems at cert_file, the key's at key_file. An absent
        // file is a secret not mounted yet (a Kubernetes Secret): `validate` lists it apart.
        let cert = crate::tls::read_certificates(inputs.src, &files.cert_file).map(|_| ());
        let key = crate::tls::read_key(inputs.src, &files.key_file).map(|_| ());
        let mut readable = true;
        for (result, referenced, field) in [
            (cert, c.cert_file.referenced, "cert_file"),
            (key, c.key_file.referenced, "key_file"),
        ] {
            match result {
                Ok(()) => {}
                Err(e @ crate::tls::TlsError::Read { .. }) if e.is_not_found() => {
                    cx.missing_secret(referenced, format!("{at}.{field}"), e.to_string());
                    readable = false;
                }
                Err(e) => {
                    cx.error(referenced, format!("{at}.{field}"), e.to_string());
                    readable = false;
                }
            }
        }
        if !readable {
            ok = false;
            continue;
        }
        match crate::tls::load_pair(inputs.src, &files) {
            Ok(pair) => {
                if pair.not_after < now {
                    cx.warn(
                        c.cert_file.referenced,
                        format!("{at}.cert_file"),
                        format!("the certificate {} has expired", c.cert_file.value),
                    );
                }
                if pair.names.is_empty() {
                    cx.warn(
                        c.cert_file.referenced,
                        format!("{at}.cert_file"),
                        "the certificate names no host: it can only serve as the default",
                    );
                }
            }
            Err(e) => {
                cx.error(
                    c.key_file.referenced,
                    format!("{at}.key_file"),
                    e.to_string(),
                );
                ok = false;
            }
        }
        pairs.push(files);
    }
    let tls13_only = match t.min_version.as_ref().map(|v| v.value.as_str()) {
        None | Some("1.2") => false,
        Some("1.3") => true,
        Some(other) => {
            let at = t
                .min_version
                .as_ref()
                .map(|v| v.referenced)
                .unwrap_or(tls.referenced);
            cx.error(
                at,
                format!("{path}.min_version"),
                format!("\"{other}\" is not a TLS version: \"1.2\" or \"1.3\""),
            );
            ok = false;
            false
        }
    };
    let (client_auth, client_verifier) = match &t.client_auth {
        None => (ClientAuthMode::None, None),
        Some(ca) => {
            let mode = match ca.value.mode.value.as_str() {
                "none" => Some(ClientAuthMode::None),
                "optional" => Some(ClientAuthMode::Optional),
                "required" => Some(ClientAuthMode::Required),
                other => {
                    cx.error(
                        ca.value.mode.referenced,
                        format!("{path}.client_auth.mode"),
                        format!("\"{other}\": expected none, optional or required"),
                    );
                    None
                }
            };
            match (mode, &ca.value.ca_file) {
                (None, _) => {
                    ok = false;
                    (ClientAuthMode::None, None)
                }
                (Some(ClientAuthMode::None), _) => (ClientAuthMode::None, None),
                (Some(_), None) => {
                    cx.error(
                        ca.referenced,
                        format!("{path}.client_auth.ca_file"),
                        "optional and required client authentication need the clients' CA (ca_file)",
                    );
                    ok = false;
                    (ClientAuthMode::None, None)
                }
                (Some(mode), Some(file)) => {
                    let verifier = crate::tls::load_ca(inputs.src, &inputs.path(&file.value))
                        .and_then(|roots| crate::tls::client_verifier(roots, mode));
                    match verifier {
                        Ok(v) => (mode, Some(v)),
                        Err(e) => {
                            cx.error(
                                file.referenced,
                                format!("{path}.client_auth.ca_file"),
                                e.to_string(),
                            );
                            ok = false;
                            (ClientAuthMode::None, None)
                        }
                    }
                }
            }
        }
    };
    if !ok {
        return None;
    }
    let files = pairs.clone();
    let store = inputs
        .stores
        .certificates(listener, &files, tls13_only, || {
            crate::tls::CertStore::load(inputs.src, listener, pairs, tls13_only)
        });
    match store {
        Ok(store) => Some(crate::tls::ListenerTls {
            store: match store {
                Certificates::Current(store) => store,
                Certificates::Bound(store) => {
                    cx.warn(
                        tls.referenced,
                        path,
                        "changed, but the listener keeps its certificate files and versions until a restart",
                    );
                    store
                }
            },
            client_auth,
            client_verifier,
        }),
        Err(e) => {
            // The files changed between the checks above and now.
            cx.error(tls.referenced, path, e.to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::source::Memory;

    fn listeners(yaml: &str, src: &Memory) -> (Vec<Listener>, Vec<String>) {
        let mut cx = Ctx::default();
        let file: Spanned<Vec<Spanned<ListenerFile>>> = parse(yaml);
        let out = compile_listeners(&mut cx, Some(&file), false, &inputs(src));
        (out, messages(&cx))
    }

    #[test]
    fn intended_plain_http_is_said_by_name_not_by_a_silenced_warning() {
        let src = Memory::new(NOW);
        let warnings = |yaml: &str| {
            let mut cx = Ctx::default();
            let file: Spanned<Vec<Spanned<ListenerFile>>> = parse(yaml);
            compile_listeners(&mut cx, Some(&file), false, &inputs(&src));
            assert_eq!(messages(&cx), Vec::<String>::new());
            cx.warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let plain = warnings(r#"[{ name: pod, address: "0.0.0.0:8080" }]"#);
        assert_eq!(plain.len(), 1);
        assert!(plain[0].contains("tokens travel unencrypted"), "{plain:?}");
        assert!(
            plain[0].contains("plaintext: behind_tls_terminator"),
            "{plain:?}"
        );
        assert_eq!(
            warnings(
                r#"[{ name: pod, address: "0.0.0.0:8080", plaintext: behind_tls_terminator }]"#
            ),
            Vec::<String>::new()
        );
        let (_, errors) = listeners(
            r#"[{ name: pod, address: "0.0.0.0:8080", plaintext: yes }]"#,
            &src,
        );
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("listeners[0].plaintext: \"yes\" is not a plaintext setting"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_tls_listener_loads_its_pair_from_the_source() {
        let (cert, key) = certificate(&["api.test"]);
        let src = Memory::new(NOW)
            .file(at("api.crt"), cert)
            .file(at("api.key"), key);
        let (out, errors) = listeners(
            r#"[{ name: web, address: "127.0.0.1:8443", tls: { certificates: [{ cert_file: api.crt, key_file: api.key }], min_version: "1.3" } }]"#,
            &src,
        );
        assert_eq!(errors, Vec::<String>::new());
        let tls = out[0].tls.as_ref().unwrap();
        assert!(tls.store.tls13_only);
        assert_eq!(tls.store.current().not_after.len(), 1);
    }

    #[test]
    fn missing_mismatched_and_unparsable_tls_files_are_reported_where_they_are_named() {
        let (cert, _) = certificate(&["api.test"]);
        let (_, other_key) = certificate(&["other.test"]);
        let src = Memory::new(NOW)
            .file(at("api.crt"), cert)
            .file(at("other.key"), other_key)
            .file(at("garbage.crt"), "not pem");
        let (out, errors) = listeners(
            r#"
- name: a
  address: "127.0.0.1:1"
  tls: { certificates: [{ cert_file: api.crt, key_file: missing.key }] }
- name: b
  address: "127.0.0.1:2"
  tls: { certificates: [{ cert_file: api.crt, key_file: other.key }] }
- name: c
  address: "127.0.0.1:3"
  tls: { certificates: [{ cert_file: garbage.crt, key_file: other.key }], min_version: "1.1" }
"#,
            &src,
        );
        assert!(
            out.is_empty() || out.iter().all(|l| l.tls.is_none()),
            "{out:?}"
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].contains("listeners[0].tls.certificates[0].key_file"),
            "{}",
            errors[0]
        );
        assert!(errors[0].contains("missing.key"), "{}", errors[0]);
        assert!(
            errors[1].contains("listeners[1].tls.certificates[0].key_file"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("listeners[2].tls.certificates[0].cert_file"),
            "{}",
            errors[2]
        );
        assert!(
            errors[3].contains("listeners[2].tls.min_version"),
            "{}",
            errors[3]
        );
    }

    #[test]
    fn an_expired_certificate_is_a_warning_by_the_sources_clock() {
        let (cert, key) = certificate(&["api.test"]);
        let src = Memory::new(i64::MAX / 2)
            .file(at("api.crt"), cert)
            .file(at("api.key"), key);
        let mut cx = Ctx::default();
        let file: Spanned<Vec<Spanned<ListenerFile>>> = parse(
            r#"[{ name: web, address: "127.0.0.1:8443", tls: { certificates: [{ cert_file: api.crt, key_file: api.key }] } }]"#,
        );
        compile_listeners(&mut cx, Some(&file), false, &inputs(&src));
        assert!(cx.errors.is_empty());
        let warnings: Vec<String> = cx.warnings.iter().map(ToString::to_string).collect();
        assert!(
            warnings.iter().any(|w| w.contains("has expired")),
            "{warnings:?}"
        );
    }

    #[test]
    fn client_authentication_needs_a_readable_ca() {
        let (cert, key) = certificate(&["api.test"]);
        let (ca, _) = certificate(&["clients.test"]);
        let src = Memory::new(NOW)
            .file(at("api.crt"), cert)
            .file(at("api.key"), key)
            .file(at("clients.crt"), ca);
        let tls = "certificates: [{ cert_file: api.crt, key_file: api.key }]";
        let (out, errors) = listeners(
            &format!(
                r#"
- {{ name: a, address: "127.0.0.1:1", tls: {{ {tls}, client_auth: {{ mode: required, ca_file: clients.crt }} }} }}
- {{ name: b, address: "127.0.0.1:2", tls: {{ {tls}, client_auth: {{ mode: optional }} }} }}
- {{ name: c, address: "127.0.0.1:3", tls: {{ {tls}, client_auth: {{ mode: required, ca_file: nowhere.crt }} }} }}
"#
            ),
            &src,
        );
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors[0].contains("listeners[1].tls.client_auth.ca_file"),
            "{}",
            errors[0]
        );
        assert!(errors[1].contains("nowhere.crt"), "{}", errors[1]);
        let a = out.iter().find(|l| l.name == "a").unwrap();
        assert!(a.tls.as_ref().unwrap().client_verifier.is_some());
    }
}
