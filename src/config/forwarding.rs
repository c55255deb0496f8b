//! The `forwarding:` section: trusted proxies and extra headers to strip. Pure: no I/O.

use http::HeaderName;

use super::file::ForwardingFile;
use super::ConfigError;
use crate::forwarding::ForwardingPolicy;

/// Networks (CIDR, or a bare address for one host) of trusted peers; `0.0.0.0/0` and `::/0`
/// are refused: anyone could then speak for the client.
pub fn networks<'a>(
    list: impl Iterator<Item = &'a super::file::Text>,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<ipnet::IpNet> {
    let mut out = Vec::new();
    for net in list {
        let text = net.value.trim();
        // A bare address means that one host.
        let parsed = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) if n.prefix_len() == 0 => errors.push(ConfigError::at(
                net.referenced,
                path,
                format!("\"{}\" trusts every address: any client could then forge its address", net.value),
            )),
            // `::ffff:10.0.0.0/104` is `10.0.0.0/8`: peers are compared in canonical form.
            Ok(ipnet::IpNet::V6(v6))
                if v6.prefix_len() >= 96 && v6.addr().to_ipv4_mapped().is_some() =>
            {
                let v4 = v6.addr().to_ipv4_mapped().map(|a| {
                    ipnet::Ipv4Net::new(a, v6.prefix_len() - 96).map(|n| ipnet::IpNet::V4(n.trunc()))
                });
                match v4 {
                    Some(Ok(n)) => out.push(n),
                    _ => out.push(ipnet::IpNet::V6(v6.trunc())),
                }
            }
            Ok(n) => out.push(n.trunc()),
            Err(_) => errors.push(ConfigError::at(
                net.referenced,
                path,
                format!(
                    "\"{}\" is not an address or network (for example 10.0.0.0/8, 192.0.2.7, fd00::/8)",
                    net.value
                ),
            )),
        }
    }
    out
}

/// Compile `forwarding:`; every problem is returned with its location.
pub fn compile(file: Option<&ForwardingFile>) -> (ForwardingPolicy, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut policy = ForwardingPolicy::default();
    let Some(file) = file else {
        return (policy, errors);
    };
    policy.trusted_proxies = networks(
        file.trusted_proxies.iter().flat_map(|l| &l.value),
        "forwarding.trusted_proxies",
        &mut errors,
    );
    for name in file.strip_headers.iter().flat_map(|l| &l.value) {
        match HeaderName::from_bytes(name.value.as_bytes()) {
            Ok(h) => policy.strip_names.push(h),
            Err(_) => errors.push(ConfigError::at(
                name.referenced,
                "forwarding.strip_headers",
                format!("\"{}\" is not a header name", name.value),
            )),
        }
    }
    policy.client_cert_proxies = networks(
        file.client_cert_proxies.iter().flat_map(|l| &l.value),
        "forwarding.client_cert_proxies",
        &mut errors,
    );
    if let (None, Some(list)) = (&file.client_cert_header, &file.client_cert_proxies) {
        errors.push(ConfigError::at(
            list.referenced,
            "forwarding.client_cert_proxies",
            "set only with forwarding.client_cert_header",
        ));
    }
    if let Some(header) = &file.client_cert_header {
        let usable = |name: &HeaderName| {
            name == "x-forwarded-client-cert"
                || (name.as_str().starts_with("x-")
                    && !crate::forwarding::doomed(
                        name.as_str(),
                        &ForwardingPolicy::default(),
                        crate::forwarding::Keep {
                            method_override: false,
                            forwarding: false,
                        },
                    ))
        };
        match HeaderName::from_bytes(header.value.as_bytes()) {
            Err(_) => errors.push(ConfigError::at(
                header.referenced,
                "forwarding.client_cert_header",
                format!("\"{}\" is not a header name", header.value),
            )),
            Ok(name) if !usable(&name) => errors.push(ConfigError::at(
                header.referenced,
                "forwarding.client_cert_header",
                format!("\"{}\" means something else to backends or proxies: use X-Forwarded-Client-Cert, or an X- header of your own", header.value),
            )),
            Ok(_) if file.client_cert_proxies.is_none() => errors.push(ConfigError::at(
                header.referenced,
                "forwarding.client_cert_header",
                "needs forwarding.client_cert_proxies: the addresses of the proxies that set it (and remove a client's own) on every request",
            )),
            Ok(name) => {
                // Never forwarded as the client sent it, from any peer.
                policy.strip_names.push(name.clone());
                policy.client_cert_header = Some(name);
            }
        }
    }
    (policy, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_yaml(yaml: &str) -> (ForwardingPolicy, Vec<ConfigError>) {
        let file: ForwardingFile = serde_saphyr::from_str(yaml).unwrap();
        compile(Some(&file))
    }

    #[test]
    fn parses_networks_and_single_addresses() {
        let (policy, errors) = compile_yaml(
            "trusted_proxies: [\"10.0.0.0/8\", \"192.0.2.7\", \"fd00::/8\"]\nstrip_headers: [X-Tenant]",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(policy.trusts(Some("10.9.9.9".parse().unwrap())));
        assert!(policy.trusts(Some("192.0.2.7".parse().unwrap())));
        assert!(!policy.trusts(Some("192.0.2.8".parse().unwrap())));
        assert!(policy.trusts(Some("fd00::1".parse().unwrap())));
        assert_eq!(policy.strip_names, [HeaderName::from_static("x-tenant")]);
    }

    #[test]
    fn a_client_cert_header_needs_its_proxies_and_is_never_forwarded() {
        let (policy, errors) = compile_yaml(
            "client_cert_proxies: [10.0.0.7]\nclient_cert_header: X-Forwarded-Client-Cert",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            policy.client_cert_header.as_ref().map(|h| h.as_str()),
            Some("x-forwarded-client-cert")
        );
        assert!(policy
            .strip_names
            .iter()
            .any(|n| n == "x-forwarded-client-cert"));
        let (_, errors) = compile_yaml(
            "trusted_proxies: [10.0.0.0/8]\nclient_cert_header: X-Forwarded-Client-Cert",
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0]
            .message
            .contains("needs forwarding.client_cert_proxies"));
        for name in ["Authorization", "Host", "X-Forwarded-For", "X-Original-URL"] {
            let (_, errors) = compile_yaml(&format!(
                "client_cert_proxies: [10.0.0.7]\nclient_cert_header: {name}"
            ));
            assert_eq!(errors.len(), 1, "{name}");
        }
        let (_, errors) = compile_yaml("client_cert_proxies: [10.0.0.7]");
        assert!(errors[0].message.contains("only with"));
        // IPv4-mapped networks are the IPv4 ones.
        let (policy, _) = compile_yaml("trusted_proxies: [\"::ffff:10.0.0.0/104\"]");
        assert_eq!(policy.trusted_proxies, ["10.0.0.0/8".parse().unwrap()]);
    }

    #[test]
    fn refuses_bad_networks_and_names_with_their_location() {
        let (_, errors) = compile_yaml(
            "trusted_proxies:\n  - \"10.0.0.0/33\"\n  - \"0.0.0.0/0\"\n  - nonsense\nstrip_headers: [\"bad header\"]",
        );
        let lines: Vec<(Option<u64>, &str)> =
            errors.iter().map(|e| (e.line, e.path.as_str())).collect();
        assert_eq!(
            lines,
            [
                (Some(2), "forwarding.trusted_proxies"),
                (Some(3), "forwarding.trusted_proxies"),
                (Some(4), "forwarding.trusted_proxies"),
                (Some(5), "forwarding.strip_headers"),
            ]
        );
        assert!(errors[1].message.contains("every address"));
    }

    #[test]
    fn absent_section_trusts_nobody() {
        let (policy, errors) = compile(None);
        assert!(errors.is_empty());
        assert!(!policy.trusts(Some("127.0.0.1".parse().unwrap())));
    }
}
