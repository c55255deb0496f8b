//! `revocation.redis`: the shared revocation store.

use super::*;

pub(super) const DEFAULT_REDIS_PREFIX: &str = "portcullis:revocations";

pub(super) const DEFAULT_REDIS_RESYNC: Duration = Duration::from_secs(60);

pub(super) const DEFAULT_REDIS_MAX_STALENESS: Duration = Duration::from_secs(300);

pub(super) const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// `revocation.redis`: the URL (from the file or an environment variable) parsed, never echoed
/// (it may hold a password), and the timings checked.
pub(super) fn compile_redis(
    cx: &mut Ctx,
    revocation: Option<&RevocationFile>,
    inputs: &Inputs<'_>,
) -> Option<RedisSettings> {
    let revocation = revocation?;
    let redis_at = revocation.redis.as_ref()?.referenced;
    let redis = &revocation.redis.as_ref()?.value;
    if let (Some(state), Some(_)) = (
        &revocation.state_file,
        &redis.url.as_ref().or(redis.url_env.as_ref()),
    ) {
        cx.error(
            state.referenced,
            "revocation.state_file",
            "give revocation.state_file or revocation.redis, not both: with Redis, Redis is where admin-API revocations are kept",
        );
    }
    // `None`: a secret URL that is absent here and deferred (`validate`): the other settings
    // are still checked.
    let url = match (&redis.url, &redis.url_env) {
        (Some(_), Some(env)) => {
            cx.error(
                env.referenced,
                "revocation.redis.url_env",
                "give url or url_env, not both",
            );
            return None;
        }
        (Some(url), None) => Some((url.value.clone(), url, "revocation.redis.url")),
        (None, Some(env)) => match inputs.src.var(&env.value) {
            Some(v) => Some((v.trim().to_owned(), env, "revocation.redis.url_env")),
            None => {
                cx.missing_secret(
                    env.referenced,
                    "revocation.redis.url_env",
                    format!("the environment variable {} is not set", env.value),
                );
                None
            }
        },
        (None, None) => {
            cx.error(redis_at, "revocation.redis", "give url or url_env");
            return None;
        }
    };
    let client = url.and_then(|(url, at, path)| match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("redis") => match crate::revocation::mirror::client_with_keepalive(&url) {
            Ok(c) => Some(c),
            Err(_) => {
                // The parser's message is not echoed: it could quote a password.
                cx.error(
                    at.referenced,
                    path,
                    "not a valid Redis URL: expected redis://[user:password@]host:port[/db]",
                );
                None
            }
        },
        Some("rediss") => {
            cx.error(at.referenced, path, "rediss:// (TLS to Redis) is not supported yet; use redis:// on a private network or a TLS sidecar");
            None
        }
        _ => {
            cx.error(
                at.referenced,
                path,
                "expected redis://[user:password@]host:port[/db]",
            );
            None
        }
    });
    let duration = |cx: &mut Ctx, t: &Option<Text>, name: &str, default: Duration| match t {
        None => default,
        // Zero is refused by parse_duration.
        Some(t) => parse_duration(cx, t, &format!("revocation.redis.{name}")).unwrap_or(default),
    };
    let resync_interval = duration(
        cx,
        &redis.resync_interval,
        "resync_interval",
        DEFAULT_REDIS_RESYNC,
    );
    let max_staleness = duration(
        cx,
        &redis.max_staleness,
        "max_staleness",
        DEFAULT_REDIS_MAX_STALENESS,
    );
    let timeout = duration(cx, &redis.timeout, "timeout", DEFAULT_REDIS_TIMEOUT);
    let key_prefix = match &redis.key_prefix {
        None => DEFAULT_REDIS_PREFIX.to_owned(),
        Some(p) => {
            let ok = !p.value.is_empty()
                && p.value.len() <= 128
                && p.value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":_.-".contains(&b));
            if !ok {
                cx.error(
                    p.referenced,
                    "revocation.redis.key_prefix",
                    "1 to 128 of A-Z a-z 0-9 : _ . -",
                );
            }
            p.value.clone()
        }
    };
    let client = client?;
    let description = client.get_connection_info().addr().to_string();
    Some(RedisSettings {
        client,
        description,
        key_prefix,
        resync_interval,
        max_staleness,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::source::Memory;

    fn redis(yaml: &str, src: &Memory) -> (Option<RedisSettings>, Vec<String>) {
        let mut cx = Ctx::default();
        let file: RevocationFile = parse(yaml);
        let out = compile_redis(&mut cx, Some(&file), &inputs(src));
        (out, messages(&cx))
    }

    #[test]
    fn the_redis_url_may_come_from_a_variable_of_the_source() {
        let src = Memory::new(NOW).var("REDIS_URL", "redis://:secret@10.0.0.5:6380/2\n");
        let (settings, errors) = redis(
            "redis: { url_env: REDIS_URL, key_prefix: \"gw:prod\", resync_interval: 30s }",
            &src,
        );
        assert_eq!(errors, Vec::<String>::new());
        let settings = settings.unwrap();
        assert_eq!(settings.key_prefix, "gw:prod");
        assert_eq!(settings.resync_interval, Duration::from_secs(30));
        assert!(
            settings.description.contains("10.0.0.5"),
            "{}",
            settings.description
        );
        assert!(!format!("{settings:?}").contains("secret"));
    }

    #[test]
    fn redis_mistakes_are_reported_without_quoting_the_url() {
        let src = Memory::new(NOW).var("BAD_URL", "redis://:secret@[nonsense");
        for (yaml, expected) in [
            ("redis: { url_env: UNSET }", "UNSET is not set"),
            ("redis: { url_env: BAD_URL }", "not a valid Redis URL"),
            ("redis: { url: \"rediss://10.0.0.5\" }", "rediss://"),
            (
                "redis: { url: \"redis://10.0.0.5\", timeout: 0s }",
                "more than zero",
            ),
            (
                "redis: { url: \"redis://10.0.0.5\", key_prefix: \"a b\" }",
                "1 to 128",
            ),
            (
                "state_file: s.jsonl\nredis: { url: \"redis://10.0.0.5\" }",
                "not both",
            ),
        ] {
            let (_, errors) = redis(yaml, &src);
            assert_eq!(errors.len(), 1, "{yaml}: {errors:?}");
            assert!(errors[0].contains(expected), "{yaml}: {}", errors[0]);
            assert!(!errors[0].contains("secret"), "{}", errors[0]);
        }
    }
}
