//! Authentication and authorisation of one request: [`authenticate`] is the whole decision.
//!
//! It is a plain function of the request headers, the matched route, the snapshot and `now`, so
//! every rule is unit-tested without sockets; the proxy's `request_filter` only calls it.

pub mod algorithm;
pub mod bearer;
pub mod fetch;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod principal;
pub mod scope;

use std::sync::Arc;

use http::HeaderMap;

use crate::error::{GatewayError, RequestFault, TokenFault};
use crate::snapshot::{Route, RouteAuth, Snapshot};
pub use principal::Principal;

/// Decide whether a request may use `route`.
///
/// `Ok(None)` for a public route (any token is ignored), `Ok(Some(principal))` for a verified
/// token that carries the route's scopes, otherwise the RFC 6750 rejection.
pub fn authenticate(
    headers: &HeaderMap,
    query: Option<&str>,
    route: &Route,
    snapshot: &Snapshot,
    now: i64,
) -> Result<Option<Principal>, GatewayError> {
    let (issuers, scopes, audiences) = match &route.auth {
        RouteAuth::Public => return Ok(None),
        RouteAuth::Protected {
            issuers,
            scopes,
            audiences,
        } => (issuers, scopes, audiences.as_deref()),
    };
    let token = bearer::extract(headers, snapshot.limits.max_token_bytes)?
        .ok_or(GatewayError::MissingToken)?;
    // RFC 6750 §2: a client MUST NOT use more than one method to send the token.
    if query.is_some_and(bearer::query_has_access_token) {
        return Err(GatewayError::InvalidRequest(
            RequestFault::TokenInHeaderAndQuery,
        ));
    }
    let candidates = issuers.iter().map(|&i| (i, &*snapshot.issuers[i]));
    let verified =
        jwt::verify_for(token, candidates, audiences, now).map_err(|fault| match fault {
            TokenFault::KeysNotLoaded => GatewayError::KeysUnavailable,
            fault => GatewayError::InvalidToken(fault),
        })?;
    let issuer = &snapshot.issuers[verified.issuer];
    let principal = Principal::new(verified, issuer);
    let facts = crate::revocation::TokenFacts {
        issuer: &issuer.id,
        jti: principal.jti.as_deref(),
        sub: principal.subject.as_deref(),
        client_id: principal.client_id.as_deref(),
        iat: principal::iat_for_cutoffs(&principal.claims, issuer),
    };
    if let Some(by) = snapshot.revocations.check(&facts) {
        return Err(GatewayError::InvalidToken(TokenFault::Revoked(by)));
    }
    // RFC 6750 §3.1: a valid token without the needed scope is 403 insufficient_scope.
    if !scopes.requirement.is_satisfied_by(&principal.scopes) {
        return Err(GatewayError::InsufficientScope {
            required: Arc::clone(&scopes.challenge),
        });
    }
    Ok(Some(principal))
}
