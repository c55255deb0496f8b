//! `identity`: claim → header mappings and the prefixes stripped from every request.

use super::*;

pub(super) fn compile_identity(
    cx: &mut Ctx,
    identity: Option<&IdentityFile>,
) -> (IdentityPolicy, Vec<(HeaderName, ClaimSource)>) {
    let headers = match identity.and_then(|i| i.headers.as_ref()) {
        Some(map) => compile_header_map(cx, "identity.headers", map),
        None => DEFAULT_IDENTITY_HEADERS
            .iter()
            .map(|(h, c)| (HeaderName::from_static(h), claim_source(c)))
            .collect(),
    };
    let strip_prefixes = match identity.and_then(|i| i.strip_prefixes.as_ref()) {
        None => vec![DEFAULT_STRIP_PREFIX.to_owned()],
        Some(list) => {
            let mut out = Vec::new();
            for p in &list.value {
                let lower = p.value.to_ascii_lowercase();
                if lower.is_empty() || HeaderName::from_bytes(lower.as_bytes()).is_err() {
                    cx.error(
                        p.referenced,
                        "identity.strip_prefixes",
                        format!("\"{}\" is not a header-name prefix", p.value),
                    );
                } else if FORBIDDEN_IDENTITY_HEADERS
                    .iter()
                    .any(|f| f.starts_with(&lower))
                {
                    cx.error(
                        p.referenced,
                        "identity.strip_prefixes",
                        format!("\"{}\" would strip standard headers", p.value),
                    );
                } else {
                    out.push(lower);
                }
            }
            out
        }
    };
    (
        IdentityPolicy {
            strip_prefixes,
            strip_names: Vec::new(),
        },
        headers,
    )
}

pub(super) fn claim_source(claim: &str) -> ClaimSource {
    match claim {
        "scope" | "scp" => ClaimSource::Scopes,
        other => ClaimSource::Claim(other.to_owned()),
    }
}

pub(super) fn compile_header_map(
    cx: &mut Ctx,
    path: &str,
    map: &HeaderMapFile,
) -> Vec<(HeaderName, ClaimSource)> {
    let mut out = Vec::new();
    for (name, claim) in &map.value {
        let header = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                cx.error(
                    map.referenced,
                    path,
                    format!("\"{name}\" is not a valid header name"),
                );
                continue;
            }
        };
        let lower = header.as_str();
        if lower.contains(['_', '.']) {
            cx.error(
                map.referenced,
                path,
                format!("\"{name}\" contains `_` or `.`: CGI, WSGI, Rack and PHP read it as the same variable as its `-` spelling, which a client can send; use `-`"),
            );
            continue;
        }
        if FORBIDDEN_IDENTITY_HEADERS.contains(&lower) || lower.starts_with("x-forwarded-") {
            cx.error(
                map.referenced,
                path,
                format!("\"{name}\" cannot carry identity: the gateway owns it"),
            );
            continue;
        }
        if claim.value.is_empty() {
            cx.error(
                claim.referenced,
                format!("{path}.{name}"),
                "the claim name must not be empty",
            );
            continue;
        }
        out.push((header, claim_source(&claim.value)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn identity_headers_are_checked_without_files() {
        let mut cx = Ctx::default();
        let file: IdentityFile = parse(
            "headers: { X-Auth-Subject: sub, X_User: sub, X.Group: groups, Authorization: sub }\nstrip_prefixes: [x-auth-]",
        );
        let (policy, headers) = compile_identity(&mut cx, Some(&file));
        assert_eq!(policy.strip_prefixes, ["x-auth-"]);
        assert_eq!(headers.len(), 1, "{headers:?}");
        let m = messages(&cx);
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(m.iter().any(|e| e.contains("X_User")));
        assert!(m.iter().any(|e| e.contains("X.Group")));
        assert!(m.iter().any(|e| e.contains("Authorization")));
    }
}
