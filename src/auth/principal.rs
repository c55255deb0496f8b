//! The verified identity of a request, built only from a token whose signature and claims passed.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::jwt::VerifiedToken;
use super::scope::ScopeSet;
use crate::snapshot::Issuer;

/// Who is calling, as vouched for by an issuer.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The configured id of the issuer (a bounded label, safe for metrics).
    pub issuer_id: Arc<str>,
    pub subject: Option<String>,
    /// `client_id` (RFC 9068 §2.2), or `azp` when the issuer uses that instead.
    pub client_id: Option<String>,
    pub jti: Option<String>,
    /// `iat`, whole seconds, when present.
    pub iat: Option<i64>,
    pub scopes: ScopeSet,
    /// The full verified payload, for claim → header mapping.
    pub claims: Map<String, Value>,
}

impl Principal {
    /// The claims named in `names` (sorted), as compact JSON: what the verified-token cache keeps
    /// of a principal. [`Principal::from_claims`] makes the same principal again from them, as
    /// long as `names` holds every claim a principal is built from and anything reads later.
    pub fn kept_claims(&self, names: &[String]) -> String {
        let kept: Map<String, Value> = self
            .claims
            .iter()
            .filter(|(name, _)| names.binary_search(name).is_ok())
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Value::Object(kept).to_string()
    }

    pub fn new(token: VerifiedToken, issuer: &Issuer) -> Self {
        Principal::from_claims(token.claims, issuer)
    }

    /// The principal of verified `claims`.
    pub fn from_claims(claims: Map<String, Value>, issuer: &Issuer) -> Self {
        let text = |name: &str| claim_text(&claims, name);
        Principal {
            issuer_id: Arc::clone(&issuer.id),
            subject: text("sub"),
            client_id: text("client_id").or_else(|| text("azp")),
            jti: text("jti"),
            iat: claims.get("iat").and_then(Value::as_f64).map(|v| v as i64),
            scopes: ScopeSet::from_claims(&claims, &issuer.scope_claims),
            claims,
        }
    }
}

/// An identifying claim (`sub`, `client_id`, `azp`, `jti`) as text: a string as it is, a number
/// as its decimal text (as in the identity headers, `identity::claim_to_header_text`), so
/// revocations and headers name the same caller; anything else is absent.
pub fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// `iat` as the revocation check reads it: moved back by the issuer's leeway, so a token whose
/// issuer's clock runs ahead (within the leeway) cannot escape a cutoff made just after it.
pub fn iat_for_cutoffs(claims: &Map<String, Value>, issuer: &Issuer) -> Option<i64> {
    let leeway = i64::try_from(issuer.leeway.as_secs()).unwrap_or(i64::MAX);
    claims
        .get("iat")
        .and_then(Value::as_f64)
        .map(|v| (v as i64).saturating_sub(leeway))
}
