//! `routes[]`: matches, route options and the auth rules of each route.

use super::*;

/// Same host and path, and a method both take: the later one is never chosen for it.
pub(super) fn same_match(a: &RouteMatch, b: &RouteMatch) -> bool {
    a.same_location(b)
        && match (&a.methods, &b.methods) {
            (None, None) => true,
            (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
            _ => false,
        }
}

/// `allow` or `refuse` (the default) for an opt-in.
pub(super) fn allow_keyword(cx: &mut Ctx, value: Option<&Text>, path: &str) -> bool {
    match value.map(|v| (v.value.as_str(), v.referenced)) {
        None | Some(("refuse", _)) => false,
        Some(("allow", _)) => true,
        Some((other, at)) => {
            cx.error(
                at,
                path,
                format!("\"{other}\" is not valid: write `allow` or `refuse`"),
            );
            false
        }
    }
}

pub(super) fn compile_match(
    cx: &mut Ctx,
    path: &str,
    m: &Spanned<MatchFile>,
) -> Option<RouteMatch> {
    let f = &m.value;
    let mut ok = true;
    let host = f.host.as_ref().and_then(|h| {
        // Requests are matched on their canonical host (no trailing dot), so the config is too.
        let lower = h.value.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower).to_owned();
        let valid = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            cx.error(
                h.referenced,
                format!("{path}.match.host"),
                format!("\"{}\" is not a host name (no scheme, no port)", h.value),
            );
            ok = false;
        }
        valid.then_some(lower)
    });
    let path_match = match (&f.path, &f.path_prefix) {
        (Some(p), None) => {
            normalized_config_path(cx, &format!("{path}.match.path"), p).map(PathMatch::Exact)
        }
        (None, Some(p)) => {
            normalized_config_path(cx, &format!("{path}.match.path_prefix"), p).map(|p| {
                // `/orders/` and `/orders` mean the same prefix on segment boundaries.
                let trimmed = p.trim_end_matches('/');
                PathMatch::Prefix(if trimmed.is_empty() {
                    "/".to_owned()
                } else {
                    trimmed.to_owned()
                })
            })
        }
        _ => {
            cx.error(
                m.referenced,
                format!("{path}.match"),
                "exactly one of `path` and `path_prefix` is required",
            );
            None
        }
    };
    let methods = f.methods.as_ref().map(|list| {
        let mut out = Vec::new();
        for meth in list {
            let valid =
                !meth.value.is_empty() && meth.value.bytes().all(|b| b.is_ascii_uppercase());
            match Method::from_bytes(meth.value.as_bytes()) {
                Ok(m) if valid => out.push(m),
                _ => {
                    cx.error(
                        meth.referenced,
                        format!("{path}.match.methods"),
                        format!("\"{}\" is not an upper-case HTTP method", meth.value),
                    );
                    ok = false;
                }
            }
        }
        out
    });
    let case_insensitive = f.case_insensitive.as_ref().is_some_and(|c| c.value);
    match (ok, path_match) {
        (true, Some(path)) => Some(RouteMatch {
            host,
            path,
            case_insensitive,
            methods,
        }),
        _ => None,
    }
}

pub(super) fn normalized_config_path(cx: &mut Ctx, path: &str, p: &Text) -> Option<String> {
    match normalize_path(&p.value) {
        Ok(n) if n == p.value || n.trim_end_matches('/') == p.value.trim_end_matches('/') => {
            Some(n.into_owned())
        }
        Ok(n) => {
            cx.error(
                p.referenced,
                path,
                format!("\"{}\" is not normalised; write \"{n}\"", p.value),
            );
            None
        }
        Err(e) => {
            cx.error(
                p.referenced,
                path,
                format!("\"{}\" is not a valid path ({e:?})", p.value),
            );
            None
        }
    }
}

pub(super) fn compile_route_auth(
    cx: &mut Ctx,
    path: &str,
    route_at: Location,
    auth: Option<&Spanned<AuthFile>>,
    issuer_ids: &HashMap<&str, usize>,
) -> Option<RouteAuth> {
    let rules = match auth.map(|a| (&a.value, a.referenced)) {
        Some((AuthFile::Keyword(k), _)) if k == "public" => return Some(RouteAuth::Public),
        Some((AuthFile::Keyword(k), at)) => {
            cx.error(
                at,
                format!("{path}.auth"),
                format!(
                    "\"{k}\" is not valid: write `public` or a mapping with `issuers`/`scopes`"
                ),
            );
            return None;
        }
        Some((AuthFile::Rules(rules), _)) => Some(&**rules),
        None => None,
    };
    let mut ok = true;
    let issuers: Vec<usize> = match rules.and_then(|r| r.issuers.as_ref()) {
        None => {
            if issuer_ids.is_empty() {
                cx.error(route_at, format!("{path}.auth"), "a protected route needs an issuer, and none is configured (use `auth: public` for an open route)");
                ok = false;
            }
            let mut all: Vec<usize> = issuer_ids.values().copied().collect();
            all.sort_unstable();
            all
        }
        Some(list) => {
            if list.value.is_empty() {
                cx.error(
                    list.referenced,
                    format!("{path}.auth.issuers"),
                    "an empty issuer list would refuse every token",
                );
                ok = false;
            }
            let mut out = Vec::new();
            for id in &list.value {
                match issuer_ids.get(id.value.as_str()) {
                    Some(&i) => out.push(i),
                    None => {
                        cx.error(
                            id.referenced,
                            format!("{path}.auth.issuers"),
                            format!(
                                "unknown issuer \"{}\" (known: {})",
                                id.value,
                                known(issuer_ids.keys())
                            ),
                        );
                        ok = false;
                    }
                }
            }
            out
        }
    };
    let mut requirement = ScopeRequirement::default();
    if let Some(scopes) = rules.and_then(|r| r.scopes.as_ref()) {
        for (list, name, target) in [
            (&scopes.all_of, "all_of", &mut requirement.all_of),
            (&scopes.any_of, "any_of", &mut requirement.any_of),
        ] {
            let Some(list) = list else { continue };
            // An empty list would remove the check silently (a template that renders `[]`).
            if list.value.is_empty() {
                cx.error(
                    list.referenced,
                    format!("{path}.auth.scopes.{name}"),
                    "an empty scope list would let a token without scopes through: remove the key or name a scope",
                );
                ok = false;
            }
            for s in &list.value {
                if is_valid_scope_token(&s.value) {
                    target.push(s.value.clone());
                } else {
                    cx.error(
                        s.referenced,
                        format!("{path}.auth.scopes.{name}"),
                        format!("\"{}\" is not a valid scope (RFC 6749 §3.3)", s.value),
                    );
                    ok = false;
                }
            }
        }
    }
    let audiences = rules.and_then(|r| r.audiences.as_ref()).map(|list| {
        if list.value.is_empty() || list.value.iter().any(|a| a.value.is_empty()) {
            cx.error(
                list.referenced,
                format!("{path}.auth.audiences"),
                "audiences must name at least one non-empty audience (or be left out to use the issuers')",
            );
            ok = false;
        }
        list.value.iter().map(|a| a.value.clone()).collect()
    });
    let challenge = Arc::from(requirement.challenge().as_str());
    ok.then_some(RouteAuth::Protected {
        audiences,
        issuers,
        scopes: RouteScopes {
            requirement,
            challenge,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn matches_compile_to_canonical_hosts_and_normal_paths() {
        let mut cx = Ctx::default();
        let m: Spanned<MatchFile> = parse(
            "{ host: Admin.Example.com., path_prefix: /orders/, methods: [GET], case_insensitive: true }",
        );
        let compiled = compile_match(&mut cx, "routes[0]", &m).unwrap();
        assert_eq!(compiled.host.as_deref(), Some("admin.example.com"));
        assert_eq!(compiled.path, PathMatch::Prefix("/orders".into()));
        assert!(compiled.case_insensitive);
        assert!(messages(&cx).is_empty());

        let bad: Spanned<MatchFile> = parse("{ path: /a/../b, methods: [get] }");
        assert!(compile_match(&mut cx, "routes[1]", &bad).is_none());
        let m = messages(&cx);
        assert!(
            m.iter()
                .any(|e| e.contains("routes[1].match.path") && e.contains("write \"/b\"")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|e| e.contains("upper-case HTTP method")),
            "{m:?}"
        );
    }
}
