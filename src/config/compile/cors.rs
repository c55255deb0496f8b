//! `cors:` (gateway-wide) and `routes[].cors`, compiled into [`CorsPolicy`].

use super::*;
use crate::cors::{CorsPolicy, OriginRule};

/// One policy; `None` (with errors) when it is unsafe or malformed: `*` with credentials, the
/// `null` origin, an origin that is not `scheme://host[:port]`.
pub(super) fn compile_cors(
    cx: &mut Ctx,
    path: &str,
    file: &Spanned<CorsFile>,
) -> Option<Arc<CorsPolicy>> {
    let f = &file.value;
    let mut ok = true;
    let credentials = f.allow_credentials.as_ref().is_some_and(|c| c.value);
    let mut origins = Vec::new();
    if f.allowed_origins.value.is_empty() {
        cx.error(
            f.allowed_origins.referenced,
            format!("{path}.allowed_origins"),
            "at least one origin is required",
        );
        ok = false;
    }
    for o in &f.allowed_origins.value {
        let at = format!("{path}.allowed_origins");
        match origin_rule(&o.value) {
            Ok(OriginRule::Any) if credentials => {
                cx.error(
                    o.referenced,
                    at,
                    "\"*\" with allow_credentials would let every site read answers with the user's cookies: list the origins",
                );
                ok = false;
            }
            Ok(rule) => origins.push(rule),
            Err(why) => {
                cx.error(o.referenced, at, why);
                ok = false;
            }
        }
    }
    let methods: Vec<Method> = match &f.allowed_methods {
        None => vec![Method::GET, Method::HEAD, Method::POST],
        Some(list) => list
            .value
            .iter()
            .filter_map(|m| match Method::from_bytes(m.value.as_bytes()) {
                Ok(method) if m.value.bytes().all(|b| b.is_ascii_uppercase()) => Some(method),
                _ => {
                    cx.error(
                        m.referenced,
                        format!("{path}.allowed_methods"),
                        format!("\"{}\" is not an upper-case method", m.value),
                    );
                    ok = false;
                    None
                }
            })
            .collect(),
    };
    let names = |cx: &mut Ctx, list: Option<&Spanned<Vec<Text>>>, key: &str, default: &[&str]| {
        let mut out: Vec<String> = Vec::new();
        let mut good = true;
        match list {
            None => out.extend(default.iter().map(|s| (*s).to_owned())),
            Some(list) => {
                for h in &list.value {
                    match HeaderName::from_bytes(h.value.as_bytes()) {
                        Ok(name) => out.push(name.as_str().to_owned()),
                        Err(_) => {
                            cx.error(
                                h.referenced,
                                format!("{path}.{key}"),
                                format!("\"{}\" is not a header name", h.value),
                            );
                            good = false;
                        }
                    }
                }
            }
        }
        (out, good)
    };
    let (headers, good) = names(
        cx,
        f.allowed_headers.as_ref(),
        "allowed_headers",
        &["authorization", "content-type"],
    );
    ok &= good;
    let (exposed, good) = names(cx, f.exposed_headers.as_ref(), "exposed_headers", &[]);
    ok &= good;
    let max_age = match &f.max_age {
        None => Duration::from_secs(600),
        Some(t) => parse_duration_or_zero(cx, t, &format!("{path}.max_age")).unwrap_or_else(|| {
            ok = false;
            Duration::ZERO
        }),
    };
    if !ok {
        return None;
    }
    let joined = |items: Vec<&str>| HeaderValue::from_str(&items.join(", ")).ok();
    let methods_text = joined(methods.iter().map(Method::as_str).collect())?;
    let headers_text = joined(headers.iter().map(String::as_str).collect())?;
    let exposed = match exposed.is_empty() {
        true => None,
        false => Some(joined(exposed.iter().map(String::as_str).collect())?),
    };
    Some(Arc::new(CorsPolicy {
        origins,
        methods,
        headers,
        methods_text,
        headers_text,
        exposed,
        credentials,
        max_age: HeaderValue::from(max_age.as_secs()),
    }))
}

use http::HeaderValue;

/// `*`, `https://app.example.com[:port]`, or `https://*.example.com[:port]`.
fn origin_rule(text: &str) -> Result<OriginRule, String> {
    if text == "*" {
        return Ok(OriginRule::Any);
    }
    if text.eq_ignore_ascii_case("null") {
        return Err(
            "the \"null\" origin is any sandboxed page or local file: it identifies no site"
                .to_owned(),
        );
    }
    let lower = text.to_ascii_lowercase();
    let bad = || {
        format!("\"{text}\" is not an origin: scheme://host[:port], no path (a leading *. for every subdomain)")
    };
    let (scheme, rest) = lower.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@'])
    {
        return Err(bad());
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
            (h, format!(":{p}"))
        }
        Some(_) => return Err(bad()),
        None => (rest, String::new()),
    };
    match host.strip_prefix("*.") {
        Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => Ok(OriginRule::Subdomains {
            scheme: scheme.to_owned(),
            suffix: format!(".{suffix}"),
            port,
        }),
        Some(_) => Err(bad()),
        None if host.contains('*') || host.is_empty() => Err(bad()),
        None => Ok(OriginRule::Exact(lower)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn compile(yaml: &str) -> (Option<Arc<CorsPolicy>>, Vec<String>) {
        let mut cx = Ctx::default();
        let file: Spanned<CorsFile> = parse(yaml);
        let out = compile_cors(&mut cx, "cors", &file);
        (out, messages(&cx))
    }

    /// `validate` refuses the unsafe combinations: `*` with credentials, the `null` origin, and
    /// anything that is not an origin.
    #[test]
    fn unsafe_or_malformed_origins_are_refused() {
        let (policy, errors) = compile(
            "{ allowed_origins: [\"https://app.example.com\", \"https://*.tenant.example:8443\"], allow_credentials: true, max_age: 1h }",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let policy = policy.unwrap();
        assert!(policy.allows("https://x.tenant.example:8443"));
        assert_eq!(policy.max_age, "3600");
        for (yaml, says) in [
            (
                "{ allowed_origins: [\"*\"], allow_credentials: true }",
                "with allow_credentials",
            ),
            ("{ allowed_origins: [\"null\"] }", "identifies no site"),
            (
                "{ allowed_origins: [\"https://app.example.com/path\"] }",
                "is not an origin",
            ),
            (
                "{ allowed_origins: [\"app.example.com\"] }",
                "is not an origin",
            ),
            (
                "{ allowed_origins: [\"https://a.*.example\"] }",
                "is not an origin",
            ),
            ("{ allowed_origins: [] }", "at least one origin"),
            (
                "{ allowed_origins: [\"*\"], allowed_methods: [get] }",
                "upper-case method",
            ),
        ] {
            let (policy, errors) = compile(yaml);
            assert!(policy.is_none(), "{yaml}");
            assert!(
                errors.iter().any(|e| e.contains(says)),
                "{yaml}: {errors:?}"
            );
        }
        // `*` without credentials is allowed.
        assert!(compile("{ allowed_origins: [\"*\"] }").0.is_some());
    }
}
