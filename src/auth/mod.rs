//! Authentication and authorisation of one routed request: [`authenticate`] (bearer → JWT →
//! revocation → scopes).
//!
//! It is a plain function of the request headers, the matched route, the snapshot and `now`, so
//! every rule is unit-tested without sockets. [`crate::admission::admit`] is its one caller on
//! the request path.

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

use crate::admission::observe::{seen, Observer, Step};
use crate::error::{GatewayError, RequestFault, TokenFault};
use crate::snapshot::{Route, RouteAuth, Snapshot};
pub use principal::Principal;

/// Decide whether a request may use `route`, each check reported to `obs` as it runs.
///
/// `Ok(None)` for a public route (any token is ignored), `Ok(Some(principal))` for a verified
/// token that carries the route's scopes, otherwise the RFC 6750 rejection. Call it through
/// [`crate::admission::admit`], which routes first and refreshes keys for an unknown `kid`.
pub fn authenticate<O: Observer>(
    headers: &HeaderMap,
    query: Option<&str>,
    route: &Route,
    snapshot: &Snapshot,
    now: i64,
    obs: &mut O,
) -> Result<Option<Principal>, GatewayError> {
    let (issuers, scopes, audiences) = match &route.auth {
        RouteAuth::Public => {
            obs.record(Step::Public, None, || {
                "public route: no token needed, none used".to_owned()
            });
            return Ok(None);
        }
        RouteAuth::Protected {
            issuers,
            scopes,
            audiences,
        } => (issuers, scopes, audiences.as_deref()),
    };
    let token = bearer::extract(headers, snapshot.limits.max_token_bytes)
        .map_err(GatewayError::from)
        .and_then(|token| token.ok_or(GatewayError::MissingToken))
        // RFC 6750 §2: a client MUST NOT use more than one method to send the token.
        .and_then(
            |token| match query.is_some_and(bearer::query_has_access_token) {
                true => Err(GatewayError::InvalidRequest(
                    RequestFault::TokenInHeaderAndQuery,
                )),
                false => Ok(token),
            },
        );
    let token = seen(obs, Step::Bearer, token, |t| {
        format!("Authorization: Bearer, {} bytes", t.len())
    })?;
    let candidates = issuers.iter().map(|&i| (i, &*snapshot.issuers[i]));
    let verified = jwt::verify_for(token, candidates, audiences, now, obs)?;
    let issuer = &snapshot.issuers[verified.issuer];
    let principal = Principal::new(verified, issuer);
    let facts = crate::revocation::TokenFacts {
        issuer: &issuer.id,
        jti: principal.jti.as_deref(),
        sub: principal.subject.as_deref(),
        client_id: principal.client_id.as_deref(),
        iat: principal::iat_for_cutoffs(&principal.claims, issuer),
    };
    let revoked = match snapshot.revocations.check(&facts) {
        Some(by) => Err(GatewayError::InvalidToken(TokenFault::Revoked(by))),
        None => Ok(()),
    };
    seen(obs, Step::Revocation, revoked, |()| {
        format!(
            "not revoked ({} entries in the list)",
            snapshot.revocations.len()
        )
    })?;
    // RFC 6750 §3.1: a valid token without the needed scope is 403 insufficient_scope.
    let scoped = match scopes.requirement.is_satisfied_by(&principal.scopes) {
        true => Ok(()),
        false => Err(GatewayError::InsufficientScope {
            required: Arc::clone(&scopes.challenge),
        }),
    };
    obs.record(
        Step::Scopes,
        scoped.as_ref().err().map(GatewayError::reason),
        || {
            format!(
                "granted \"{}\", required \"{}\"",
                principal.scopes.to_header_value(),
                scopes.challenge
            )
        },
    );
    scoped?;
    Ok(Some(principal))
}
