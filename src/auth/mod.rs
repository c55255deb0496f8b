//! Authentication and authorisation of one routed request: [`authenticate`] (bearer → JWT →
//! revocation → scopes).
//!
//! It is a plain function of the request headers, the matched route, the snapshot and `now`, so
//! every rule is unit-tested without sockets. [`crate::admission::admit`] is its one caller on
//! the request path.

pub mod algorithm;
pub mod bearer;
pub mod binding;
pub mod cache;
pub mod dpop;
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
use crate::snapshot::{Issuer, Route, RouteAuth, Snapshot};
use cache::CacheUse;
pub use principal::Principal;

/// A refused request, with the verified identity when the refusal came after verification
/// (revoked, insufficient scope): the access log says who was refused.
#[derive(Debug, Clone)]
pub struct Denied {
    pub error: GatewayError,
    pub principal: Option<Arc<Principal>>,
}

impl From<GatewayError> for Denied {
    fn from(error: GatewayError) -> Self {
        Denied {
            error,
            principal: None,
        }
    }
}

/// Decide whether a request may use `route`, each check reported to `obs` as it runs.
///
/// `Ok(None)` for a public route (any token is ignored), `Ok(Some(principal))` for a verified
/// token that carries the route's scopes, otherwise the RFC 6750 rejection. Call it through
/// [`crate::admission::admit`], which routes first and refreshes keys for an unknown `kid`.
#[allow(clippy::too_many_arguments)]
pub fn authenticate<O: Observer>(
    headers: &HeaderMap,
    query: Option<&str>,
    client_cert: Option<&[u8; 32]>,
    route: &Route,
    snapshot: &Snapshot,
    now: i64,
    cache: CacheUse,
    obs: &mut O,
) -> Result<Option<Arc<Principal>>, Denied> {
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
    let (principal, issuer) = verified(token, issuers, audiences, snapshot, now, cache, obs)?;
    let after_verification = |error| Denied {
        error,
        principal: Some(Arc::clone(&principal)),
    };
    // On every request, a cached token too: the binding is to this connection.
    let bound = binding::check(&principal.claims, client_cert).map_err(GatewayError::InvalidToken);
    seen(obs, Step::Binding, bound, |b| match b {
        binding::Bound::Not => "not bound (no cnf): a bearer token".to_owned(),
        binding::Bound::Certificate => {
            "cnf.x5t#S256: the client certificate of this connection".to_owned()
        }
    })
    .map_err(after_verification)?;
    let facts = crate::revocation::TokenFacts {
        issuer: &issuer.id,
        jti: principal.jti.as_deref(),
        sub: principal.subject.as_deref(),
        client_id: principal.client_id.as_deref(),
        iat: principal::iat_for_cutoffs(&principal.claims, &issuer),
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
    })
    .map_err(after_verification)?;
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
    scoped.map_err(after_verification)?;
    Ok(Some(principal))
}

/// The verified principal of `token` and the issuer that vouched for it: from the cache when it
/// holds this token for one of the route's issuers (then only the route's audiences are checked
/// here), else by [`jwt::verify_for`] (then kept, with [`CacheUse::Fill`]).
fn verified<O: Observer>(
    token: &str,
    issuers: &[usize],
    audiences: Option<&[String]>,
    snapshot: &Snapshot,
    now: i64,
    cache: CacheUse,
    obs: &mut O,
) -> Result<(Arc<Principal>, Arc<Issuer>), GatewayError> {
    let cache = snapshot
        .token_cache
        .as_deref()
        .filter(|_| cache != CacheUse::Off)
        .map(|c| (c, cache));
    let key = cache.map(|_| cache::digest(token));
    if let (Some((tokens, usage)), Some(key)) = (cache, &key) {
        let candidates = issuers.iter().map(|&i| &snapshot.issuers[i]);
        match tokens.get(key, now, candidates, usage) {
            Some(entry) => {
                if let Some(principal) = entry.principal() {
                    obs.record(Step::Cache, None, || {
                        format!(
                            "hit: verified earlier by issuer \"{}\"; entry ends at {}",
                            entry.issuer.id, entry.expires_at
                        )
                    });
                    let expected = audiences.unwrap_or(&entry.issuer.audiences);
                    let audience = jwt::check_audience_in(&principal.claims, expected);
                    obs.record(Step::Aud, audience.err().map(TokenFault::reason), || {
                        let aud = principal.claims.get("aud");
                        let aud = aud.map_or_else(|| "none".to_owned(), ToString::to_string);
                        format!("token aud {aud}, expected one of {}", expected.join(", "))
                    });
                    audience?;
                    return Ok((Arc::new(principal), Arc::clone(&entry.issuer)));
                }
                obs.record(Step::Cache, None, || "miss".to_owned());
            }
            None => obs.record(Step::Cache, None, || "miss".to_owned()),
        }
    }
    let candidates = issuers.iter().map(|&i| (i, &*snapshot.issuers[i]));
    let verified = jwt::verify_for(token, candidates, audiences, now, obs)?;
    let issuer = Arc::clone(&snapshot.issuers[verified.issuer]);
    let (kid, key_fingerprint) = (jwt::kid_of(token), verified.key);
    let principal = Arc::new(Principal::new(verified, &issuer));
    if let (Some((tokens, CacheUse::Fill)), Some(key)) = (cache, key) {
        let exp = principal
            .claims
            .get("exp")
            .and_then(serde_json::Value::as_f64);
        let expires_at = tokens.expiry(exp, now, snapshot.auth_cache.max_ttl);
        let made = cache::Cached::new(
            &issuer,
            kid,
            key_fingerprint,
            &principal,
            &snapshot.kept_claims,
            now,
            expires_at,
        );
        if let Some(entry) = made {
            tokens.insert(key, entry, now);
        }
    }
    Ok((principal, issuer))
}
