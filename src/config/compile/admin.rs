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

/// The admin API token, from `token_file` (relative to the config) or `token_env`.
pub(super) fn compile_admin_token(
    cx: &mut Ctx,
    admin: Option<&AdminFile>,
    base_dir: &Path,
) -> Option<Secret> {
    let admin = admin?;
    let token = match (&admin.token_file, &admin.token_env) {
        (Some(_), Some(env)) => {
            cx.error(
                env.referenced,
                "admin.token_env",
                "give token_file or token_env, not both",
            );
            return None;
        }
        (Some(file), None) => match std::fs::read_to_string(base_dir.join(&file.value)) {
            Ok(t) => (t.trim().to_owned(), file, "admin.token_file"),
            Err(e) => {
                cx.error(
                    file.referenced,
                    "admin.token_file",
                    format!("cannot read {}: {e}", file.value),
                );
                return None;
            }
        },
        (None, Some(env)) => match std::env::var(&env.value) {
            Ok(t) => (t.trim().to_owned(), env, "admin.token_env"),
            Err(_) => {
                cx.error(
                    env.referenced,
                    "admin.token_env",
                    format!("the environment variable {} is not set", env.value),
                );
                return None;
            }
        },
        (None, None) => return None,
    };
    let (value, at, path) = token;
    let token68 = value
        .trim_end_matches('=')
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !token68 {
        cx.error(at.referenced, path, "the admin token may only use A-Z a-z 0-9 - . _ ~ + / (and trailing =): it is sent as a bearer token");
        return None;
    }
    if value.len() < 16 {
        cx.error(
            at.referenced,
            path,
            "the admin token must be at least 16 characters",
        );
        return None;
    }
    Some(Secret::new(&value))
}
