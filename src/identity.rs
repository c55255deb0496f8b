//! Identity headers for the upstream: strip every client-sent one, then set them from the
//! verified principal. Strip-then-set runs on every route, public ones too, so a client can never
//! smuggle `X-Auth-Subject` past the gateway.

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use serde_json::Value;

use crate::auth::Principal;
use crate::snapshot::{ClaimSource, IdentityPolicy, Route};

/// Remove every header the client may not send: names starting with a reserved prefix and every
/// configured identity header name (gateway-wide and per route).
pub fn strip(req: &mut RequestHeader, policy: &IdentityPolicy) {
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|name| {
            let n = name.as_str(); // http stores names in lower case
            policy
                .strip_prefixes
                .iter()
                .any(|p| n.starts_with(p.as_str()))
                || policy.strip_names.iter().any(|s| s == *name)
        })
        .cloned()
        .collect();
    for name in doomed {
        // remove_header drops every value of a repeated header.
        req.remove_header(&name);
    }
}

/// Set the route's identity headers from `principal`, replacing any value (never appending).
/// A claim that is missing, or whose value cannot be a header value, leaves its header absent.
pub fn set(req: &mut RequestHeader, route: &Route, principal: &Principal) {
    for (name, value) in values(route, principal) {
        // insert_header replaces every existing value of the header.
        let _ = req.insert_header(name.clone(), value);
    }
}

/// The route's identity headers for `principal`, as [`set`] sets them (and as a decision
/// answers them).
pub fn values<'a>(
    route: &'a Route,
    principal: &'a Principal,
) -> impl Iterator<Item = (&'a HeaderName, HeaderValue)> + 'a {
    route.identity_headers.iter().filter_map(|(name, source)| {
        let value = match source {
            ClaimSource::Scopes => Some(principal.scopes.to_header_value()),
            ClaimSource::Claim(claim) => principal.claims.get(claim).and_then(claim_to_header_text),
        };
        value
            .and_then(|v| HeaderValue::from_str(&v).ok())
            .map(|v| (name, v))
    })
}

/// The header text of a claim: strings as they are, numbers and booleans in JSON form, arrays
/// joined with spaces, objects as compact JSON. `null` is treated as absent.
///
/// A value a backend would read differently is left absent rather than sent: a string with
/// leading or trailing whitespace (every header parser trims it, so `" admin"` would arrive as
/// `admin`), and an array with an element that is empty or contains a space (`["Domain Admins"]`
/// would arrive as two groups).
pub fn claim_to_header_text(value: &Value) -> Option<String> {
    let ambiguous = |s: &str| s.is_empty() || s.contains(' ');
    match value {
        Value::Null => None,
        Value::String(s) if s.trim() != s => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => Some(value.to_string()),
        Value::Array(items) => {
            let mut parts: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) if ambiguous(s) => return None,
                    Value::String(s) => parts.push(s.clone()),
                    Value::Null => {}
                    other => parts.push(other.to_string()),
                }
            }
            Some(parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scope::ScopeSet;
    use crate::snapshot::RouteAuth;
    use serde_json::json;
    use std::sync::Arc;

    fn policy() -> IdentityPolicy {
        IdentityPolicy {
            strip_prefixes: vec!["x-auth-".into()],
            strip_names: vec![HeaderName::from_static("x-legacy-user")],
        }
    }

    #[test]
    fn strips_prefixed_and_configured_names_case_insensitively() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Auth-Subject", "mallory").unwrap();
        req.append_header("x-auth-subject", "mallory2").unwrap();
        req.append_header("X-AUTH-Scopes", "admin").unwrap();
        req.append_header("X-Legacy-User", "root").unwrap();
        req.append_header("Accept", "*/*").unwrap();
        strip(&mut req, &policy());
        let names: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["accept"]);
    }

    #[test]
    fn sets_values_by_replacing_never_appending() {
        let route = Route {
            id: Arc::from("r"),
            upstream: Some(0),
            auth: RouteAuth::Public,
            identity_headers: vec![
                (
                    HeaderName::from_static("x-auth-subject"),
                    ClaimSource::Claim("sub".into()),
                ),
                (
                    HeaderName::from_static("x-auth-scopes"),
                    ClaimSource::Scopes,
                ),
                (
                    HeaderName::from_static("x-auth-groups"),
                    ClaimSource::Claim("groups".into()),
                ),
                (
                    HeaderName::from_static("x-auth-tenant"),
                    ClaimSource::Claim("tenant".into()),
                ),
                (
                    HeaderName::from_static("x-auth-missing"),
                    ClaimSource::Claim("nope".into()),
                ),
            ],
            forward_token: false,
            method_override: false,
            path_parameters: false,
            script_path_info: false,
            cors: None,
            rate_limits: Default::default(),
            any_host: true,
        };
        let principal = Principal {
            issuer_id: Arc::from("corp"),
            subject: Some("alice".into()),
            client_id: None,
            jti: None,
            iat: None,
            scopes: ScopeSet::from_scopes(["b", "a"]),
            claims: json!({"sub": "alice", "groups": ["eng", "ops"], "tenant": {"id": 7}})
                .as_object()
                .unwrap()
                .clone(),
        };
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("x-auth-subject", "stale").unwrap();
        set(&mut req, &route, &principal);
        let get = |n: &str| {
            req.headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("x-auth-subject"), ["alice"]);
        assert_eq!(get("x-auth-scopes"), ["a b"]);
        assert_eq!(get("x-auth-groups"), ["eng ops"]);
        assert_eq!(get("x-auth-tenant"), ["{\"id\":7}"]);
        assert!(get("x-auth-missing").is_empty());
    }

    #[test]
    fn claims_with_control_characters_are_not_set() {
        assert_eq!(
            claim_to_header_text(&json!("a\r\nb")),
            Some("a\r\nb".into())
        );
        assert!(HeaderValue::from_str("a\r\nb").is_err());
        assert_eq!(claim_to_header_text(&json!(null)), None);
        // What a backend would read differently is not sent at all.
        assert_eq!(claim_to_header_text(&json!(" admin")), None);
        assert_eq!(claim_to_header_text(&json!("admin\t")), None);
        assert_eq!(claim_to_header_text(&json!(["Domain Admins", "x"])), None);
        assert_eq!(claim_to_header_text(&json!(["", "x"])), None);
        assert_eq!(
            claim_to_header_text(&json!(["eng", "ops"])),
            Some("eng ops".into())
        );
        assert_eq!(claim_to_header_text(&json!(true)), Some("true".into()));
    }
}
