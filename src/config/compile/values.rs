//! Values shared by sections (durations), and the small sections (`logging`, `limits`).

use super::*;

/// `logging.level` must be a valid filter (`info`, `warn,portcullis=debug`), `format` json or text.
/// They are applied at start-up, before the configuration compiles; here they are only checked.
pub(super) fn check_logging(cx: &mut Ctx, logging: Option<&LoggingFile>) {
    let Some(logging) = logging else { return };
    if let Some(level) = &logging.level {
        if tracing_subscriber::EnvFilter::try_new(&level.value).is_err() {
            cx.error(
                level.referenced,
                "logging.level",
                format!(
                    "\"{}\" is not a log filter (for example info, or warn,portcullis=debug)",
                    level.value
                ),
            );
        }
    }
    if let Some(format) = &logging.format {
        if crate::telemetry::parse_format(&format.value).is_none() {
            cx.error(
                format.referenced,
                "logging.format",
                format!("\"{}\" is not a log format: json or text", format.value),
            );
        }
    }
    if let Some(lines) = &logging.buffer_lines {
        let range = crate::telemetry::BUFFER_LINES_RANGE;
        if !usize::try_from(lines.value).is_ok_and(|n| range.contains(&n)) {
            cx.error(
                lines.referenced,
                "logging.buffer_lines",
                format!(
                    "must be between {} and {} lines",
                    range.start(),
                    range.end()
                ),
            );
        }
    }
}

pub(super) fn compile_limits(cx: &mut Ctx, limits: Option<&LimitsFile>) -> Limits {
    let mut out = Limits::default();
    if let Some(max) = limits.and_then(|l| l.max_token_bytes.as_ref()) {
        match usize::try_from(max.value) {
            Ok(v) if (256..=64 * 1024).contains(&v) => out.max_token_bytes = v,
            _ => cx.error(
                max.referenced,
                "limits.max_token_bytes",
                "must be between 256 and 65536",
            ),
        }
    }
    out
}

/// `auth_cache`: on by default; bounded by entries, bytes and time.
pub(super) fn compile_auth_cache(
    cx: &mut Ctx,
    file: Option<&AuthCacheFile>,
) -> crate::auth::cache::CacheSettings {
    let mut out = crate::auth::cache::CacheSettings::default();
    let Some(file) = file else {
        return out;
    };
    if let Some(enabled) = &file.enabled {
        out.enabled = enabled.value;
    }
    let mut bounded = |value: &Option<Spanned<u64>>,
                       path: &str,
                       range: std::ops::RangeInclusive<u64>,
                       what: &str| {
        let v = value.as_ref()?;
        if range.contains(&v.value) {
            Some(v.value)
        } else {
            cx.error(
                v.referenced,
                path,
                format!(
                    "must be between {} and {} {what}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    };
    if let Some(n) = bounded(
        &file.max_entries,
        "auth_cache.max_entries",
        1..=10_000_000,
        "entries",
    ) {
        out.max_entries = n;
    }
    if let Some(n) = bounded(
        &file.max_bytes,
        "auth_cache.max_bytes",
        1024 * 1024..=16 * 1024 * 1024 * 1024,
        "bytes",
    ) {
        out.max_bytes = n;
    }
    if let Some(t) = &file.max_ttl {
        match parse_duration(cx, t, "auth_cache.max_ttl") {
            Some(d) if d.is_zero() || d > Duration::from_secs(24 * 3600) => cx.error(
                t.referenced,
                "auth_cache.max_ttl",
                "must be more than zero and at most 24h (entries never outlive their token's exp)",
            ),
            Some(d) => out.max_ttl = d,
            None => {}
        }
    }
    out
}

/// The longest duration any setting accepts: enough for every timeout, interval and lifetime here,
/// and far from the overflow of time arithmetic.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A duration that must be more than zero: a zero timeout, interval, lifetime or grace period
/// would refuse or cut everything, so `0s` is an error rather than a surprise.
pub(super) fn parse_duration(cx: &mut Ctx, t: &Text, path: &str) -> Option<Duration> {
    let d = parse_duration_or_zero(cx, t, path)?;
    if d.is_zero() {
        cx.error(
            t.referenced,
            path,
            format!("\"{}\" must be more than zero", t.value),
        );
        return None;
    }
    Some(d)
}

/// A duration where zero has a documented meaning (`leeway: 0s`: none; `drain_delay: 0s`: close
/// the listeners at once).
pub(super) fn parse_duration_or_zero(cx: &mut Ctx, t: &Text, path: &str) -> Option<Duration> {
    match humantime::parse_duration(&t.value) {
        Ok(d) if d > MAX_DURATION => {
            cx.error(
                t.referenced,
                path,
                format!("\"{}\" is too long: at most 30 days", t.value),
            );
            None
        }
        Ok(d) => Some(d),
        Err(_) => {
            cx.error(
                t.referenced,
                path,
                format!(
                    "\"{}\" is not a duration (for example 500ms, 30s, 2m)",
                    t.value
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn durations_are_parsed_bounded_and_located() {
        let mut cx = Ctx::default();
        let ok: Text = parse("30s");
        assert_eq!(
            parse_duration(&mut cx, &ok, "x"),
            Some(Duration::from_secs(30))
        );
        let long: Text = parse("31d");
        assert_eq!(
            parse_duration(&mut cx, &long, "shutdown.grace_period"),
            None
        );
        let bad: Text = parse("soon");
        assert_eq!(parse_duration(&mut cx, &bad, "leeway"), None);
        let zero: Text = parse("0s");
        assert_eq!(
            parse_duration(&mut cx, &zero, "upstreams[0].connect_timeout"),
            None
        );
        assert_eq!(
            parse_duration_or_zero(&mut cx, &zero, "shutdown.drain_delay"),
            Some(Duration::ZERO)
        );
        let m = messages(&cx);
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(m[0].contains("shutdown.grace_period") && m[0].contains("at most 30 days"));
        assert!(m[1].contains("is not a duration"));
        assert!(
            m[2].contains("upstreams[0].connect_timeout")
                && m[2].contains("must be more than zero"),
            "{}",
            m[2]
        );
    }

    #[test]
    fn the_auth_cache_is_on_by_default_and_its_bounds_are_checked() {
        let compile = |yaml: &str| {
            let mut cx = Ctx::default();
            let file: Option<AuthCacheFile> = (!yaml.is_empty()).then(|| parse(yaml));
            let settings = compile_auth_cache(&mut cx, file.as_ref());
            (settings, messages(&cx))
        };
        let (defaults, errors) = compile("");
        assert!(errors.is_empty());
        assert_eq!(defaults, crate::auth::cache::CacheSettings::default());
        assert!(defaults.enabled);
        let (set, errors) =
            compile("{ enabled: false, max_entries: 10, max_bytes: 2097152, max_ttl: 1m }");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (set.enabled, set.max_entries, set.max_bytes, set.max_ttl),
            (false, 10, 2_097_152, Duration::from_secs(60))
        );
        let (_, errors) = compile("{ max_entries: 0, max_bytes: 1024, max_ttl: 0s }");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("auth_cache.max_entries"),
            "{}",
            errors[0]
        );
        assert!(errors[1].contains("auth_cache.max_bytes"), "{}", errors[1]);
        assert!(errors[2].contains("auth_cache.max_ttl"), "{}", errors[2]);
        assert!(errors.iter().all(|e| e.starts_with("1:")), "{errors:?}");
    }
}
