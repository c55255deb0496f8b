//! `decision`: the decision listener for an ingress's forward-auth requests.

use super::*;
use crate::decision::{DecisionSettings, Protocol, Unmatched};

/// The certificate store's name: the certificate watcher and metrics name it like a listener.
pub(crate) const DECISION_TLS_NAME: &str = "decision";

pub(super) fn compile_decision(
    cx: &mut Ctx,
    file: Option<&Spanned<DecisionFile>>,
    taken: &[(String, SocketAddr)],
    inputs: &Inputs<'_>,
) -> Option<DecisionSettings> {
    let file = file?;
    let f = &file.value;
    let address = match f.address.value.parse::<SocketAddr>() {
        Ok(a) => {
            let clash = taken.iter().find(|(_, b)| {
                b.port() == a.port()
                    && (b.ip() == a.ip() || b.ip().is_unspecified() || a.ip().is_unspecified())
            });
            if let Some((name, _)) = clash {
                cx.error(
                    f.address.referenced,
                    "decision.address",
                    format!(
                        "the decision listener must have a port of its own ({name} listens on it)"
                    ),
                );
            }
            Some(a)
        }
        Err(_) => {
            cx.error(
                f.address.referenced,
                "decision.address",
                format!("\"{}\" is not an IP:port address", f.address.value),
            );
            None
        }
    };
    let protocol = match (f.protocol.value.as_str(), &f.path_prefix) {
        ("nginx", None) => Some(Protocol::Nginx),
        ("traefik", None) => Some(Protocol::Traefik),
        ("envoy", Some(p)) if p.value.starts_with('/') && !p.value.ends_with('/') => {
            Some(Protocol::Envoy {
                path_prefix: p.value.clone(),
            })
        }
        ("envoy", Some(p)) => {
            cx.error(
                p.referenced,
                "decision.path_prefix",
                "starts with / and does not end with one: the path_prefix of Envoy's http_service (for example /ext_authz)",
            );
            None
        }
        ("envoy", None) => {
            cx.error(
                file.referenced,
                "decision",
                "protocol envoy needs path_prefix: the path_prefix of Envoy's http_service",
            );
            None
        }
        ("nginx" | "traefik", Some(p)) => {
            cx.error(
                p.referenced,
                "decision.path_prefix",
                "only protocol envoy has a path_prefix",
            );
            None
        }
        (other, _) => {
            cx.error(
                f.protocol.referenced,
                "decision.protocol",
                format!("\"{other}\" is not nginx, traefik or envoy"),
            );
            None
        }
    };
    let mut errors = Vec::new();
    let trusted = crate::config::forwarding::networks(
        f.trusted_proxies.value.iter(),
        "decision.trusted_proxies",
        &mut errors,
    );
    for e in errors {
        cx.errors.push(e);
    }
    if f.trusted_proxies.value.is_empty() {
        cx.error(
            f.trusted_proxies.referenced,
            "decision.trusted_proxies",
            "name the ingress peers (for example 127.0.0.1 for a sidecar nginx, or the ingress pods' network): nobody else may describe a request",
        );
    }
    let unmatched = match f.unmatched.as_ref().map(|u| u.value.as_str()) {
        None | Some("deny") => Unmatched::Deny,
        Some("allow") => {
            cx.error(
                f.unmatched.as_ref().map(|u| u.referenced).unwrap_or(file.referenced),
                "decision.unmatched",
                "allow is not offered: it would skip the checks that run once a route is found (case folding, the canonical path); give the paths portcullis should let through a public route instead",
            );
            Unmatched::Deny
        }
        Some(other) => {
            cx.error(
                f.unmatched
                    .as_ref()
                    .map(|u| u.referenced)
                    .unwrap_or(file.referenced),
                "decision.unmatched",
                format!("\"{other}\" is not deny or allow"),
            );
            Unmatched::Deny
        }
    };
    if taken.iter().any(|(name, _)| name == DECISION_TLS_NAME) && f.tls.is_some() {
        cx.error(
            file.referenced,
            "decision.tls",
            "a listener is named \"decision\", the name the decision listener's certificates go by: rename it",
        );
    }
    let tls = match &f.tls {
        None => None,
        Some(t) => Some(super::listeners::compile_listener_tls(
            cx,
            DECISION_TLS_NAME,
            t,
            "decision",
            inputs,
        )?),
    };
    Some(DecisionSettings {
        address: address?,
        protocol: protocol?,
        trusted_proxies: trusted,
        unmatched,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn compile(yaml: &str) -> (Option<DecisionSettings>, Vec<String>) {
        let mut cx = Ctx::default();
        let file: Spanned<DecisionFile> = parse(yaml);
        let taken = [("web".to_owned(), "0.0.0.0:8080".parse().unwrap())];
        let src = crate::source::Memory::default();
        let out = compile_decision(&mut cx, Some(&file), &taken, &inputs(&src));
        (out, messages(&cx))
    }

    #[test]
    fn each_protocol_compiles_with_its_settings() {
        let (d, e) = compile(
            "{ address: \"127.0.0.1:9191\", protocol: nginx, trusted_proxies: [127.0.0.1] }",
        );
        assert!(e.is_empty(), "{e:?}");
        let d = d.unwrap();
        assert_eq!(
            (d.protocol.clone(), d.unmatched),
            (Protocol::Nginx, Unmatched::Deny)
        );
        assert!(d.trusts(Some("127.0.0.1".parse().unwrap())));
        assert!(!d.trusts(Some("10.0.0.1".parse().unwrap())));
        let (d, e) = compile("{ address: \"0.0.0.0:9191\", protocol: envoy, path_prefix: /ext_authz, trusted_proxies: [10.0.0.0/8], unmatched: deny }");
        assert!(e.is_empty(), "{e:?}");
        let d = d.unwrap();
        assert_eq!(
            d.protocol,
            Protocol::Envoy {
                path_prefix: "/ext_authz".to_owned()
            }
        );
        // IPv4 peers of a `[::]` listener arrive IPv4-mapped.
        assert!(d.trusts(Some("::ffff:10.1.2.3".parse().unwrap())));
    }

    #[test]
    fn mistakes_are_located_errors() {
        for (yaml, path) in [
            ("{ address: \"127.0.0.1:8080\", protocol: nginx, trusted_proxies: [127.0.0.1] }", "decision.address"),
            ("{ address: nowhere, protocol: nginx, trusted_proxies: [127.0.0.1] }", "decision.address"),
            ("{ address: \"127.0.0.1:9191\", protocol: haproxy, trusted_proxies: [127.0.0.1] }", "decision.protocol"),
            ("{ address: \"127.0.0.1:9191\", protocol: envoy, trusted_proxies: [127.0.0.1] }", "decision"),
            ("{ address: \"127.0.0.1:9191\", protocol: nginx, path_prefix: /x, trusted_proxies: [127.0.0.1] }", "decision.path_prefix"),
            ("{ address: \"127.0.0.1:9191\", protocol: nginx, trusted_proxies: [] }", "decision.trusted_proxies"),
            ("{ address: \"127.0.0.1:9191\", protocol: nginx, trusted_proxies: [0.0.0.0/0] }", "decision.trusted_proxies"),
            ("{ address: \"127.0.0.1:9191\", protocol: nginx, trusted_proxies: [127.0.0.1], unmatched: maybe }", "decision.unmatched"),
            ("{ address: \"127.0.0.1:9191\", protocol: nginx, trusted_proxies: [127.0.0.1], unmatched: allow }", "decision.unmatched"),
        ] {
            let (_, e) = compile(yaml);
            assert_eq!(e.len(), 1, "{yaml}: {e:?}");
            assert!(e[0].contains(&format!(": {path}: ")), "{yaml}: {}", e[0]);
        }
    }
}
