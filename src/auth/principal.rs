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
    pub fn new(token: VerifiedToken, issuer: &Issuer) -> Self {
        let claims = token.claims;
        // A numeric `sub` or `client_id` is its decimal text, as in the identity headers
        // (`identity::claim_to_header_text`), so revocations and headers name the same caller.
        let text = |name: &str| match claims.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
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
