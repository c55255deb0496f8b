//! `rate_limits:` (mode, table size, headers, the default limits) and `routes[].rate_limit`,
//! compiled into [`crate::rate_limit`]'s types.

use super::*;
use crate::rate_limit::{KeyPart, Mode, Quota, RateLimit};

/// Keys the local table holds when `rate_limits.max_keys` is not set.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
const NANOS: u64 = 1_000_000_000;
const MAX_BURST: u64 = 1_000_000;
/// A year, in nanoseconds.
const MAX_CAPACITY: u64 = 366 * 86_400 * NANOS;

/// `rate_limits:` compiled: mode, table size, headers, and the default limits.
pub(super) struct GatewayLimits {
    pub mode: Mode,
    pub max_keys: usize,
    pub headers: bool,
    pub default: Vec<Arc<RateLimit>>,
}

pub(super) fn compile_rate_limits(
    cx: &mut Ctx,
    file: Option<&Spanned<RateLimitsFile>>,
    redis_configured: bool,
) -> GatewayLimits {
    let mut out = GatewayLimits {
        mode: Mode::Local,
        max_keys: DEFAULT_MAX_KEYS,
        headers: false,
        default: Vec::new(),
    };
    let Some(file) = file else { return out };
    let f = &file.value;
    if let Some(mode) = &f.mode {
        match mode.value.as_str() {
            "local" => {}
            "redis" if redis_configured => out.mode = Mode::Redis,
            "redis" => cx.error(
                mode.referenced,
                "rate_limits.mode",
                "redis shares budgets through the server of revocation.redis, which is not configured",
            ),
            other => cx.error(
                mode.referenced,
                "rate_limits.mode",
                format!("\"{other}\" is not a mode: local or redis"),
            ),
        }
    }
    if let Some(n) = &f.max_keys {
        match usize::try_from(n.value) {
            Ok(n) if (1_000..=10_000_000).contains(&n) => out.max_keys = n,
            _ => cx.error(
                n.referenced,
                "rate_limits.max_keys",
                "between 1000 and 10000000 (1,000,000 keys take 34 MB, allocated at start-up)",
            ),
        }
    }
    out.headers = f.headers.as_ref().is_some_and(|h| h.value);
    if let Some(list) = &f.default {
        out.default = compile_limit_list(cx, "rate_limits.default", list, "default", None);
    }
    out
}

/// A list of limits whose budget is `budget`. `public`: the location of a public route's
/// `auth`, where limits keyed by identity are refused (there is no token to key them by).
pub(super) fn compile_limit_list(
    cx: &mut Ctx,
    path: &str,
    list: &Spanned<OneOrMany<RateLimitFile>>,
    budget: &str,
    public: Option<()>,
) -> Vec<Arc<RateLimit>> {
    let mut out: Vec<Arc<RateLimit>> = Vec::new();
    let single = list.value.0.len() == 1;
    for (i, l) in list.value.0.iter().enumerate() {
        let at = match single {
            true => path.to_owned(),
            false => format!("{path}[{i}]"),
        };
        let Some(limit) = compile_limit(cx, &at, l, budget) else {
            continue;
        };
        if public.is_some() && limit.needs_identity() {
            cx.error(
                l.key.referenced,
                format!("{at}.key"),
                "a public route has no token to count by: key by ip or route",
            );
            continue;
        }
        if out.iter().any(|o| o.name == limit.name) {
            cx.error(
                l.key.referenced,
                format!("{at}.name"),
                format!(
                    "two limits named \"{}\": name them apart (name: ...)",
                    limit.name
                ),
            );
            continue;
        }
        out.push(Arc::new(limit));
    }
    out
}

fn compile_limit(cx: &mut Ctx, at: &str, l: &RateLimitFile, budget: &str) -> Option<RateLimit> {
    let mut ok = true;
    let mut key = Vec::new();
    for part in &l.key.value.0 {
        match KeyPart::parse(part) {
            Some(p) if !key.contains(&p) => key.push(p),
            Some(_) => {
                cx.error(
                    l.key.referenced,
                    format!("{at}.key"),
                    format!("\"{part}\" is listed twice"),
                );
                ok = false;
            }
            None => {
                cx.error(
                    l.key.referenced,
                    format!("{at}.key"),
                    format!(
                        "\"{part}\" is not a key part (known: {})",
                        KeyPart::ALL.map(KeyPart::name).join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    if l.key.value.0.is_empty() {
        cx.error(
            l.key.referenced,
            format!("{at}.key"),
            "name at least one key part",
        );
        ok = false;
    }
    key.sort();
    let rate = parse_rate(&l.rate.value);
    let (count, period) = match rate {
        Ok(r) => r,
        Err(why) => {
            cx.error(l.rate.referenced, format!("{at}.rate"), why);
            return None;
        }
    };
    let burst = match &l.burst {
        None if count <= MAX_BURST => count,
        None => {
            cx.error(
                l.rate.referenced,
                format!("{at}.burst"),
                format!(
                    "the default burst is the rate's {count}: at most {MAX_BURST}, give a burst"
                ),
            );
            return None;
        }
        Some(b) if (1..=MAX_BURST).contains(&b.value) => b.value,
        Some(b) => {
            cx.error(
                b.referenced,
                format!("{at}.burst"),
                "between 1 and 1000000 requests",
            );
            return None;
        }
    };
    // How far ahead a key's time may run: bounded, so no arithmetic saturates (and Redis's
    // Lua numbers stay exact).
    if (period / count).saturating_mul(burst) > MAX_CAPACITY {
        cx.error(
            l.rate.referenced,
            format!("{at}.rate"),
            "the burst takes more than a year to come back at this rate",
        );
        return None;
    }
    let name = match &l.name {
        Some(n) => {
            let valid = (1..=64).contains(&n.value.len())
                && n.value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !valid {
                cx.error(
                    n.referenced,
                    format!("{at}.name"),
                    "1 to 64 letters, digits, _, . or - (it is sent in RateLimit-Policy)",
                );
                ok = false;
            }
            n.value.clone()
        }
        None => key.iter().map(|p| p.name()).collect::<Vec<_>>().join("_"),
    };
    if !ok {
        return None;
    }
    let interval = period / count;
    Some(RateLimit {
        name: Arc::from(name),
        budget: Arc::from(budget),
        key,
        quota: Quota {
            interval,
            burst: u32::try_from(burst).unwrap_or(u32::MAX),
        },
        rate: l.rate.value.clone(),
    })
}

/// `<n>/<unit>`: requests `n` per `s`, `m`, `h`, `d` or a duration (`10s`), as `n` and the
/// period in nanoseconds; at most one request per microsecond, at least one per 30 days.
fn parse_rate(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("\"{text}\" is not a rate (for example 100/s, 20/m, 5/10s)");
    let (n, unit) = text.split_once('/').ok_or_else(bad)?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    let period = match unit.trim() {
        "s" => NANOS,
        "m" => 60 * NANOS,
        "h" => 3600 * NANOS,
        "d" => 86_400 * NANOS,
        other => humantime::parse_duration(other)
            .ok()
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
            .ok_or_else(bad)?,
    };
    if n == 0 || period > 30 * 86_400 * NANOS {
        return Err(format!(
            "\"{text}\": at least one request, over at most 30 days"
        ));
    }
    if period / n < 1_000 {
        return Err(format!(
            "\"{text}\" is more than one request per microsecond"
        ));
    }
    Ok((n, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_count_and_period() {
        assert_eq!(parse_rate("100/s"), Ok((100, NANOS)));
        assert_eq!(parse_rate("20/m"), Ok((20, 60 * NANOS)));
        assert_eq!(parse_rate("5/10s"), Ok((5, 10 * NANOS)));
        assert_eq!(parse_rate("1000/d"), Ok((1000, 86_400 * NANOS)));
        for bad in ["100", "0/s", "x/s", "10/fortnight", "2000000/s", "1/60d"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
