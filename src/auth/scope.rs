//! Scopes: the normalised set a token grants ([`ScopeSet`]) and what a route requires
//! ([`ScopeRequirement`]).
//!
//! Tokens carry scopes as a space-delimited `scope` string (RFC 8693 §4.2, RFC 9068 §2.2.3) or as
//! an `scp` array (or string) as Entra ID and Okta do. Both are merged into one set and compared
//! by exact string equality: `read:orders` is never granted by `read:orders-archive`.

use serde_json::{Map, Value};

/// The scopes granted by a token, sorted and deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<String>);

impl ScopeSet {
    /// Collect scopes from the given claims of a token's payload.
    ///
    /// A string claim is split on ASCII spaces and tabs; an array contributes its string elements
    /// (each also split, so `["a b"]` grants `a` and `b`); other JSON types contribute nothing.
    /// Only valid scope tokens (RFC 6749 §3.3) count: a Unicode space is not a delimiter, so
    /// `"read\u{a0}admin"` grants nothing rather than `admin`.
    pub fn from_claims(claims: &Map<String, Value>, claim_names: &[String]) -> Self {
        let mut scopes = Vec::new();
        let mut add = |s: &str| {
            scopes.extend(
                s.split([' ', '\t'])
                    .filter(|t| is_valid_scope_token(t))
                    .map(str::to_owned),
            )
        };
        for name in claim_names {
            match claims.get(name) {
                Some(Value::String(s)) => add(s),
                Some(Value::Array(items)) => {
                    for item in items {
                        if let Value::String(s) = item {
                            add(s);
                        }
                    }
                }
                _ => {}
            }
        }
        scopes.sort_unstable();
        scopes.dedup();
        ScopeSet(scopes)
    }

    /// Build a set from scope strings (tests, demo).
    pub fn from_scopes<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        let mut v: Vec<String> = scopes.into_iter().map(Into::into).collect();
        v.sort_unstable();
        v.dedup();
        ScopeSet(v)
    }

    /// Exact membership.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.binary_search_by(|s| s.as_str().cmp(scope)).is_ok()
    }

    /// The scopes, space-delimited, in sorted order (for identity headers).
    pub fn to_header_value(&self) -> String {
        self.0.join(" ")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// What a route requires. Both lists are honoured when both are given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeRequirement {
    /// Every one of these must be granted.
    pub all_of: Vec<String>,
    /// At least one of these must be granted (ignored when empty).
    pub any_of: Vec<String>,
}

impl ScopeRequirement {
    pub fn is_satisfied_by(&self, granted: &ScopeSet) -> bool {
        self.all_of.iter().all(|s| granted.contains(s))
            && (self.any_of.is_empty() || self.any_of.iter().any(|s| granted.contains(s)))
    }

    /// The `scope` attribute of an `insufficient_scope` challenge (RFC 6750 §3): every scope this
    /// requirement names, `all_of` first.
    pub fn challenge(&self) -> String {
        let mut parts: Vec<&str> = self.all_of.iter().map(String::as_str).collect();
        for s in &self.any_of {
            if !parts.contains(&s.as_str()) {
                parts.push(s);
            }
        }
        parts.join(" ")
    }

    pub fn is_empty(&self) -> bool {
        self.all_of.is_empty() && self.any_of.is_empty()
    }
}

/// True when `scope` is a valid RFC 6749 §3.3 scope-token (printable ASCII, no space, `"` or `\`).
pub fn is_valid_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_spaces_do_not_split_scopes() {
        let claims = serde_json::json!({"scp": ["read\u{a0}admin"], "scope": "a\u{2003}b c"});
        let set =
            ScopeSet::from_claims(claims.as_object().unwrap(), &["scope".into(), "scp".into()]);
        assert_eq!(set.to_header_value(), "c");
    }
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn names() -> Vec<String> {
        vec!["scope".into(), "scp".into()]
    }

    #[test]
    fn merges_scope_string_and_scp_array() {
        let set = ScopeSet::from_claims(
            &claims(json!({"scope": "read:orders  write:orders", "scp": ["admin", "read:orders"]})),
            &names(),
        );
        assert_eq!(set.to_header_value(), "admin read:orders write:orders");
    }

    #[test]
    fn scp_may_be_a_string_and_odd_types_are_ignored() {
        let set = ScopeSet::from_claims(&claims(json!({"scp": "a b", "scope": 42})), &names());
        assert_eq!(set.to_header_value(), "a b");
    }

    #[test]
    fn only_configured_claims_count() {
        let set = ScopeSet::from_claims(&claims(json!({"roles": "admin"})), &names());
        assert!(set.is_empty());
    }

    #[test]
    fn matching_is_exact_never_substring() {
        let granted = ScopeSet::from_scopes(["read:orders-archive", "read"]);
        let req = ScopeRequirement {
            all_of: vec!["read:orders".into()],
            any_of: vec![],
        };
        assert!(!req.is_satisfied_by(&granted));
    }

    #[test]
    fn all_of_and_any_of_are_both_honoured() {
        let req = ScopeRequirement {
            all_of: vec!["read:orders".into()],
            any_of: vec!["tenant:a".into(), "tenant:b".into()],
        };
        assert!(req.is_satisfied_by(&ScopeSet::from_scopes(["read:orders", "tenant:b"])));
        assert!(!req.is_satisfied_by(&ScopeSet::from_scopes(["read:orders"])));
        assert!(!req.is_satisfied_by(&ScopeSet::from_scopes(["tenant:a"])));
        assert_eq!(req.challenge(), "read:orders tenant:a tenant:b");
    }

    #[test]
    fn empty_requirement_is_satisfied_by_any_token() {
        assert!(ScopeRequirement::default().is_satisfied_by(&ScopeSet::default()));
    }

    #[test]
    fn validates_scope_tokens() {
        assert!(is_valid_scope_token("read:orders"));
        assert!(!is_valid_scope_token("read orders"));
        assert!(!is_valid_scope_token("a\"b"));
        assert!(!is_valid_scope_token(""));
    }
}
