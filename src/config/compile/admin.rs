//! `admin`: the admin listener address and the admin API token.

use super::*;

/// The admin listener: default `127.0.0.1:9901`, never the address of a public listener.
pub(super) fn compile_admin(
    cx: &mut Ctx,
    admin: Option<&AdminFile>,
    listeners: &[Listener],
) -> SocketAddr {
    let default = SocketAddr::from(([127, 0, 0, 1], 9901));
    let Some(address) = admin.and_then(|a| a.address.as_ref()) else {
        return default;
    };
    match address.value.parse::<SocketAddr>() {
        Ok(a) if listeners.iter().any(|l| l.address == a) => {
            cx.error(
                address.referenced,
                "admin.address",
                "the admin listener must not share a public listener's address",
            );
            default
        }
        Ok(a) => {
            if !a.ip().is_loopback() {
                cx.warn(
                    address.referenced,
                    "admin.address",
                    "metrics, readiness and the admin API are exposed beyond this host",
                );
            }
            a
        }
        Err(_) => {
            cx.error(
                address.referenced,
                "admin.address",
                format!("\"{}\" is not an IP:port address", address.value),
            );
            default
        }
    }
}

/// `admin.probes_address`: a second, read-only listener for `/healthz`, `/readyz` and
/// `/metrics`, meant for the pod IP; it never shares the admin or a public listener's address.
pub(super) fn compile_probes_address(
    cx: &mut Ctx,
    admin: Option<&AdminFile>,
    listeners: &[Listener],
    admin_address: SocketAddr,
) -> Option<SocketAddr> {
    let address = admin.and_then(|a| a.probes_address.as_ref())?;
    let taken = |a: SocketAddr| {
        listeners
            .iter()
            .map(|l| (l.name.as_str(), l.address))
            .chain(std::iter::once(("admin.address", admin_address)))
            .find(|(_, b)| {
                b.port() == a.port()
                    && (b.ip() == a.ip() || b.ip().is_unspecified() || a.ip().is_unspecified())
            })
            .map(|(name, _)| name.to_owned())
    };
    match address.value.parse::<SocketAddr>() {
        Ok(a) => {
            match taken(a) {
                Some(name) => {
                    cx.error(
                    address.referenced,
                    "admin.probes_address",
                    format!("the probes listener must have a port of its own ({name} listens on it)"),
                );
                    None
                }
                None => Some(a),
            }
        }
        Err(_) => {
            cx.error(
                address.referenced,
                "admin.probes_address",
                format!("\"{}\" is not an IP:port address", address.value),
            );
            None
        }
    }
}

/// The admin API token, from `token_file` (relative to the config) or `token_env`.
/// A secret given as a file or an environment variable (not both), trimmed: the text, where
/// it was given and its key path. A file that is not there or an unset variable is a missing
/// secret (an error, or only noted when secrets are deferred).
pub(super) fn secret_text<'f>(
    cx: &mut Ctx,
    inputs: &Inputs<'_>,
    (file, file_path): (Option<&'f Text>, &str),
    (env, env_path): (Option<&'f Text>, &str),
) -> Option<(String, &'f Text, String)> {
    match (file, env) {
        (Some(_), Some(env)) => {
            cx.error(
                env.referenced,
                env_path,
                format!("give {} or {}, not both", leaf(file_path), leaf(env_path)),
            );
            None
        }
        (Some(file), None) => match inputs.src.read(&inputs.path(&file.value)).map(|bytes| {
            cx.watch(inputs.path(&file.value), &bytes);
            String::from_utf8(bytes)
        }) {
            Ok(Ok(t)) => Some((t.trim().to_owned(), file, file_path.to_owned())),
            Ok(Err(_)) => {
                cx.error(
                    file.referenced,
                    file_path,
                    format!("{} is not UTF-8 text", file.value),
                );
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cx.missing_secret(
                    file.referenced,
                    file_path,
                    format!("cannot read {}: {e}", file.value),
                );
                None
            }
            Err(e) => {
                cx.error(
                    file.referenced,
                    file_path,
                    format!("cannot read {}: {e}", file.value),
                );
                None
            }
        },
        (None, Some(env)) => match inputs.src.var(&env.value) {
            Some(t) => Some((t.trim().to_owned(), env, env_path.to_owned())),
            None => {
                cx.missing_secret(
                    env.referenced,
                    env_path,
                    format!("the environment variable {} is not set", env.value),
                );
                None
            }
        },
        (None, None) => None,
    }
}

/// The last part of a key path (`token_file` of `admin.token_file`).
fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

pub(super) fn compile_admin_token(
    cx: &mut Ctx,
    admin: Option<&AdminFile>,
    inputs: &Inputs<'_>,
) -> Option<Secret> {
    let admin = admin?;
    let token = secret_text(
        cx,
        inputs,
        (admin.token_file.as_ref(), "admin.token_file"),
        (admin.token_env.as_ref(), "admin.token_env"),
    )?;
    let (value, at, path) = token;
    let token68 = value
        .trim_end_matches('=')
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !token68 {
        cx.error(at.referenced, &path, "the admin token may only use A-Z a-z 0-9 - . _ ~ + / (and trailing =): it is sent as a bearer token");
        return None;
    }
    if value.len() < 16 {
        cx.error(
            at.referenced,
            &path,
            "the admin token must be at least 16 characters",
        );
        return None;
    }
    Some(Secret::new(&value))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::source::Memory;

    fn token(yaml: &str, src: &Memory) -> (Option<Secret>, Vec<String>) {
        let mut cx = Ctx::default();
        let file: AdminFile = parse(yaml);
        let out = compile_admin_token(&mut cx, Some(&file), &inputs(src));
        (out, messages(&cx))
    }

    #[test]
    fn the_admin_address_defaults_to_loopback_and_never_shares_a_listener() {
        let web = Listener {
            name: "web".to_owned(),
            address: "0.0.0.0:8080".parse().unwrap(),
            tls: None,
        };
        let address = |yaml: &str| {
            let mut cx = Ctx::default();
            let file: Option<AdminFile> = (!yaml.is_empty()).then(|| parse(yaml));
            let a = compile_admin(&mut cx, file.as_ref(), std::slice::from_ref(&web));
            let warnings: Vec<String> = cx.warnings.iter().map(ToString::to_string).collect();
            (a.to_string(), messages(&cx), warnings)
        };
        assert_eq!(address(""), ("127.0.0.1:9901".into(), vec![], vec![]));
        let (a, errors, _) = address(r#"{ address: "0.0.0.0:8080" }"#);
        assert_eq!(a, "127.0.0.1:9901");
        assert!(
            errors[0].contains("must not share a public listener"),
            "{errors:?}"
        );
        let (a, errors, warnings) = address(r#"{ address: "0.0.0.0:9901" }"#);
        assert_eq!((a.as_str(), errors.len()), ("0.0.0.0:9901", 0));
        assert!(
            warnings[0].contains("exposed beyond this host"),
            "{warnings:?}"
        );
        let (_, errors, _) = address(r#"{ address: "localhost:9901" }"#);
        assert!(
            errors[0].contains("is not an IP:port address"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_probes_listener_has_a_port_of_its_own() {
        let web = Listener {
            name: "web".to_owned(),
            address: "0.0.0.0:8080".parse().unwrap(),
            tls: None,
        };
        let probes = |yaml: &str| {
            let mut cx = Ctx::default();
            let file: AdminFile = parse(yaml);
            let a = compile_probes_address(
                &mut cx,
                Some(&file),
                std::slice::from_ref(&web),
                "127.0.0.1:9901".parse().unwrap(),
            );
            (a.map(|a| a.to_string()), messages(&cx), cx.warnings.len())
        };
        assert_eq!(probes("{}"), (None, vec![], 0));
        // On the pod IP by design: no warning, unlike a non-loopback admin.address.
        assert_eq!(
            probes(r#"{ probes_address: "0.0.0.0:9902" }"#),
            (Some("0.0.0.0:9902".into()), vec![], 0)
        );
        for (yaml, expected) in [
            (
                r#"{ probes_address: "127.0.0.1:8080" }"#,
                "web listens on it",
            ),
            (
                r#"{ probes_address: "0.0.0.0:9901" }"#,
                "admin.address listens on it",
            ),
            (r#"{ probes_address: "9902" }"#, "is not an IP:port address"),
        ] {
            let (a, errors, _) = probes(yaml);
            assert_eq!(a, None, "{yaml}");
            assert!(errors[0].contains(expected), "{yaml}: {errors:?}");
        }
    }

    #[test]
    fn the_admin_token_comes_from_a_file_or_a_variable_of_the_source() {
        let src = Memory::new(NOW)
            .file(at("secrets/admin"), "0123456789abcdef-token\n")
            .var("ADMIN_TOKEN", " from-the-environment-0123 ");
        let (from_file, errors) = token("{ token_file: secrets/admin }", &src);
        assert_eq!(errors, Vec::<String>::new());
        assert!(from_file.unwrap().matches(b"0123456789abcdef-token"));
        let (from_env, errors) = token("{ token_env: ADMIN_TOKEN }", &src);
        assert_eq!(errors, Vec::<String>::new());
        assert!(from_env.unwrap().matches(b"from-the-environment-0123"));
    }

    #[test]
    fn unreadable_unset_short_or_unsendable_tokens_are_refused() {
        let src = Memory::new(NOW)
            .file(at("short"), "tiny")
            .file(at("spaces"), "has spaces in the middle of it")
            .file(at("binary"), b"0123456789abcdef\xff".to_vec());
        for (yaml, expected) in [
            ("{ token_file: missing }", "cannot read missing"),
            ("{ token_env: UNSET }", "UNSET is not set"),
            ("{ token_file: short }", "at least 16 characters"),
            ("{ token_file: spaces }", "may only use"),
            ("{ token_file: binary }", "not UTF-8"),
            ("{ token_file: short, token_env: UNSET }", "not both"),
        ] {
            let (out, errors) = token(yaml, &src);
            assert!(out.is_none(), "{yaml}");
            assert_eq!(errors.len(), 1, "{yaml}: {errors:?}");
            assert!(errors[0].contains(expected), "{yaml}: {}", errors[0]);
        }
    }
}
