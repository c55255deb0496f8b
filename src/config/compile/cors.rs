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
                    if h.value == "*" {
                        if credentials {
                            cx.error(
                                h.referenced,
                                format!("{path}.{key}"),
                                "with allow_credentials browsers read \"*\" as a literal header name: list the headers",
                            );
                            good = false;
                        }
                        out.push("*".to_owned());
                        continue;
                    }
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
    if !text.is_ascii() {
        return Err(format!(
            "\"{text}\": browsers send an international host name in its ASCII form: write it as xn--…"
        ));
    }
    let lower = text.to_ascii_lowercase();
    let bad = || {
        format!("\"{text}\" is not an origin: scheme://host[:port], no path (a leading *. for every subdomain)")
    };
    let (scheme, rest) = lower.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return Err(bad());
    }
    // `[v6]` or a name, then `:port` or nothing.
    let v6_host;
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (address, after) = v6.split_once(']').ok_or_else(bad)?;
            let address = address.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            v6_host = format!("[{}]", whatwg_ipv6(address));
            (v6_host.as_str(), after)
        }
        None => match rest.split_once(':') {
            Some((h, p)) => (h, &rest[h.len()..][..p.len() + 1]),
            None => (rest, ""),
        },
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => String::new(),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            // Browsers leave the scheme's default port out of `Origin`.
            match (scheme, p.parse::<u16>()) {
                ("https", Ok(443)) | ("http", Ok(80)) => String::new(),
                (_, Ok(n)) if n > 0 => format!(":{n}"),
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    };
    let name_ok = |h: &str| {
        h.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    // A host whose last label is a number is an IPv4 address to a browser, which writes it
    // in dotted decimal (`127.1` and `0x7f.0.0.1` are `127.0.0.1`): only that form can match.
    let numeric = |h: &str| {
        h.rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x"))
    };
    match host.strip_prefix("*.") {
        Some(suffix) if name_ok(suffix) && !numeric(suffix) => Ok(OriginRule::Subdomains {
            scheme: scheme.to_owned(),
            suffix: format!(".{suffix}"),
            port,
        }),
        Some(_) => Err(bad()),
        None if host.starts_with('[') => Ok(OriginRule::Exact(format!("{scheme}://{host}{port}"))),
        None if numeric(host) => match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) if ip.to_string() == host => {
                Ok(OriginRule::Exact(format!("{scheme}://{host}{port}")))
            }
            _ => Err(format!(
                "\"{text}\": browsers write an IPv4 host in dotted decimal (127.0.0.1): use that form"
            )),
        },
        None if name_ok(host) => Ok(OriginRule::Exact(format!("{scheme}://{host}{port}"))),
        None => Err(bad()),
    }
}

/// An IPv6 address as the URL standard serialises a host (and browsers write `Origin`): eight
/// lower-case hex pieces without leading zeros, the first longest run of two or more zero pieces
/// as `::`, never an embedded IPv4 form.
fn whatwg_ipv6(address: std::net::Ipv6Addr) -> String {
    let pieces = address.segments();
    let (mut best, mut run) = ((0, 0), (0, 0));
    for (i, &p) in pieces.iter().enumerate() {
        if p == 0 {
            run = if run.1 == 0 {
                (i, 1)
            } else {
                (run.0, run.1 + 1)
            };
            if run.1 > best.1 {
                best = run;
            }
        } else {
            run = (0, 0);
        }
    }
    let hex = |ps: &[u16]| ps.iter().map(|p| format!("{p:x}")).collect::<Vec<_>>();
    if best.1 < 2 {
        return hex(&pieces).join(":");
    }
    let (start, end) = (best.0, best.0 + best.1);
    format!(
        "{}::{}",
        hex(&pieces[..start]).join(":"),
        hex(&pieces[end..]).join(":")
    )
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

    /// An origin is written as browsers send it: no default port, an IPv6 host in brackets,
    /// an international name in its ASCII form (a rule that could never match is refused).
    #[test]
    fn origins_are_kept_in_the_form_browsers_send() {
        assert_eq!(
            origin_rule("HTTPS://App.Example.com:443"),
            Ok(OriginRule::Exact("https://app.example.com".into()))
        );
        assert_eq!(
            origin_rule("http://localhost:80"),
            Ok(OriginRule::Exact("http://localhost".into()))
        );
        assert_eq!(
            origin_rule("https://[::1]:8443"),
            Ok(OriginRule::Exact("https://[::1]:8443".into()))
        );
        assert_eq!(
            origin_rule("https://[2001:db8::1]"),
            Ok(OriginRule::Exact("https://[2001:db8::1]".into()))
        );
        // IPv6 as browsers serialise it (the URL standard's host serialiser).
        for (written, sent) in [
            ("https://[2001:0DB8:0:0::1]", "https://[2001:db8::1]"),
            ("https://[0:0:0:0:0:0:0:1]", "https://[::1]"),
            ("http://[::ffff:1.2.3.4]", "http://[::ffff:102:304]"),
            ("https://[1:0:0:2:0:0:0:3]", "https://[1:0:0:2::3]"),
            ("https://[1:0:2:3:4:5:6:7]", "https://[1:0:2:3:4:5:6:7]"),
        ] {
            assert_eq!(
                origin_rule(written),
                Ok(OriginRule::Exact(sent.into())),
                "{written}"
            );
        }
        assert_eq!(
            origin_rule("http://127.0.0.1:8080"),
            Ok(OriginRule::Exact("http://127.0.0.1:8080".into()))
        );
        assert_eq!(
            origin_rule("https://a_b.example.com"),
            Ok(OriginRule::Exact("https://a_b.example.com".into()))
        );
        assert_eq!(
            origin_rule("https://*.tenant.example:443"),
            Ok(OriginRule::Subdomains {
                scheme: "https".into(),
                suffix: ".tenant.example".into(),
                port: String::new()
            })
        );
        for bad in [
            "https://bücher.example",
            "https://[::1",
            "https://[not-v6]",
            "https://app.example.com:0",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "https://a b.example",
            "https://user@app.example.com",
            "https://app.example.com:443/x",
            "http://127.1",
            "http://0x7f.0.0.1",
            "http://010.0.0.1",
            "http://2130706433",
            "https://*.0.1",
            "https://a..example",
        ] {
            assert!(origin_rule(bad).is_err(), "{bad}");
        }
    }

    /// `allowed_headers: ["*"]` is the Fetch standard's wildcard, which browsers honour only
    /// without credentials (and never for `Authorization`).
    #[test]
    fn a_header_wildcard_needs_no_credentials() {
        let (policy, errors) =
            compile("{ allowed_origins: [\"https://a.example\"], allowed_headers: [\"*\"] }");
        assert!(errors.is_empty(), "{errors:?}");
        let policy = policy.unwrap();
        let origin = HeaderValue::from_static("https://a.example");
        assert!(policy
            .preflight(&origin, "GET", Some("x-anything, content-type"))
            .is_some());
        assert!(policy
            .preflight(&origin, "GET", Some("authorization"))
            .is_none());
        let (policy, _) = compile(
            "{ allowed_origins: [\"https://a.example\"], allowed_headers: [\"*\", authorization] }",
        );
        assert!(policy
            .unwrap()
            .preflight(&origin, "GET", Some("authorization, x-y"))
            .is_some());
        let (policy, errors) = compile("{ allowed_origins: [\"https://a.example\"], allowed_headers: [\"*\"], allow_credentials: true }");
        assert!(policy.is_none());
        assert!(errors.iter().any(|e| e.contains("literal")), "{errors:?}");
    }
}
