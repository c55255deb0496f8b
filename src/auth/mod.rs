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
pub mod introspection;
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

/// The kinds of access token an issuer issues (`issuers[].token_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenFormat {
    /// Signed JWTs, verified with the issuer's keys.
    #[default]
    Jwt,
    /// Opaque tokens, introspected (RFC 7662).
    Opaque,
    /// Both: a JWS-shaped token (three base64url parts, a JSON header) is a JWT, any other is
    /// introspected.
    Auto,
}

/// What a routed request presents for authentication.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    /// The SHA-256 of the connection's client certificate, for certificate-bound tokens.
    pub client_cert: Option<&'a [u8; 32]>,
    /// The request a DPoP proof must describe: its method, its scheme (`https` over TLS, here
    /// or at a trusted proxy), its canonical host and normalised path.
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    /// The hosts a DPoP proof may name (`dpop_proofs.hosts`, on a route without `match.host`);
    /// empty: any.
    pub dpop_hosts: &'a [String],
    /// For an opaque token: the introspecting issuer (snapshot index) and its answer, asked by
    /// [`crate::admission::admit`] before this (an async call).
    pub introspection: Option<(usize, &'a introspection::Answer)>,
    /// Set to the DPoP proof this request used, once this process accepted it: admission then
    /// claims it across replicas (an async call).
    pub proof_used: &'a std::sync::OnceLock<dpop::ProofUse>,
}

/// The issuer that introspects `token` on `route` (snapshot index and client): an opaque token
/// (not JWS-shaped), or any token when none of the route's issuers takes JWTs.
pub fn introspecting_issuer<'s>(
    token: &str,
    route: &Route,
    snapshot: &'s Snapshot,
) -> Option<(usize, &'s introspection::Introspector)> {
    let RouteAuth::Protected { issuers, .. } = &route.auth else {
        return None;
    };
    // Most routes have no introspecting issuer: nothing to look at then.
    let introspecting = issuers.iter().find_map(|&i| {
        let issuer = snapshot.issuers.get(i)?;
        Some((i, issuer.introspector.as_deref()?))
    })?;
    let takes_jwt = |i: &usize| {
        snapshot.issuers.get(*i).is_some_and(|issuer| {
            matches!(issuer.token_format, TokenFormat::Jwt | TokenFormat::Auto)
        })
    };
    if !jwt::looks_like_jws(token) {
        return Some(introspecting);
    }
    // A JWS-shaped token: a JWT when the route takes JWTs, and never sent to this server when
    // its (unverified) `iss` names another configured issuer: it is not that server's token.
    if issuers.iter().any(takes_jwt) {
        return None;
    }
    let other_issuer = jwt::unverified_iss(token).is_some_and(|iss| {
        snapshot
            .issuers
            .iter()
            .enumerate()
            .any(|(i, issuer)| i != introspecting.0 && issuer.issuer == iss)
    });
    (!other_issuer).then_some(introspecting)
}

/// Decide whether a request may use `route`, each check reported to `obs` as it runs.
///
/// `Ok(None)` for a public route (any token is ignored), `Ok(Some(principal))` for a verified
/// token that carries the route's scopes, otherwise the RFC 6750 rejection. Call it through
/// [`crate::admission::admit`], which routes first and refreshes keys for an unknown `kid`.
pub fn authenticate<O: Observer>(
    presented: &Presented<'_>,
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
    let credential = bearer::credential(presented.headers, snapshot.limits.max_token_bytes)
        .map_err(GatewayError::from)
        .and_then(|credential| credential.ok_or(GatewayError::MissingToken))
        // RFC 6750 §2: a client MUST NOT use more than one method to send the token.
        .and_then(
            |credential| match presented.query.is_some_and(bearer::query_has_access_token) {
                true => Err(GatewayError::InvalidRequest(
                    RequestFault::TokenInHeaderAndQuery,
                )),
                false => Ok(credential),
            },
        );
    let credential = seen(obs, Step::Bearer, credential, |c| {
        format!(
            "Authorization: {}, {} bytes",
            c.scheme.name(),
            c.token.len()
        )
    })?;
    let token = credential.token;
    let (principal, issuer) = match presented.introspection {
        Some((index, answer)) => introspected(index, answer, audiences, snapshot, now, obs)?,
        None => verified(token, issuers, audiences, snapshot, now, cache, obs)?,
    };
    let after_verification = |error| Denied {
        error,
        principal: Some(Arc::clone(&principal)),
    };
    // With `Authorization: DPoP`, the proof of this request (RFC 9449 §4.3), on every request.
    let proof = match (credential.scheme, issuer.dpop) {
        (bearer::Scheme::Dpop, dpop::DpopMode::Allowed | dpop::DpopMode::Required) => {
            let proof = dpop_proof(presented, token, snapshot, &issuer, now);
            let proof = seen(obs, Step::Dpop, proof, |p| {
                format!(
                    "signed by key {} for {} {}://{}{}",
                    p.jkt, presented.method, presented.scheme, presented.authority, presented.path
                )
            })
            .map_err(after_verification)?;
            Some(proof)
        }
        _ => None,
    };
    // On every request, a cached token too: the binding is to this connection and this proof.
    let held = binding::Possession {
        client_cert: presented.client_cert,
        dpop_jkt: match credential.scheme {
            bearer::Scheme::Dpop => Some(proof.as_ref().map_or("", |p| p.jkt.as_str())),
            bearer::Scheme::Bearer => None,
        },
    };
    let bound =
        binding::check(&principal.claims, held, issuer.dpop).map_err(GatewayError::InvalidToken);
    seen(obs, Step::Binding, bound, |b| match b {
        binding::Bound::Not => "not bound (no cnf): a bearer token".to_owned(),
        binding::Bound::Certificate => {
            "cnf.x5t#S256: the client certificate of this connection".to_owned()
        }
        binding::Bound::Dpop => "cnf.jkt: the key of this request's DPoP proof".to_owned(),
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
    // A proof is used once (RFC 9449 §11.1): remembered only now, for a request that passed
    // everything else, so refused requests cannot fill the memory of proofs.
    if let Some(proof) = &proof {
        let recorded = remember_proof(proof, snapshot, &issuer, now).map(|used| {
            let _ = presented.proof_used.set(used);
        });
        seen(obs, Step::Replay, recorded, |()| {
            "the proof's jti was not seen before from this key".to_owned()
        })
        .map_err(after_verification)?;
    }
    Ok(Some(principal))
}

/// Record a proof that passed [`dpop_proof`], for as long as its `iat` can pass the check.
fn remember_proof(
    proof: &dpop::Proof,
    snapshot: &Snapshot,
    issuer: &Issuer,
    now: i64,
) -> Result<dpop::ProofUse, GatewayError> {
    let window = snapshot
        .dpop
        .max_age
        .saturating_add(issuer.leeway.saturating_mul(2));
    let expires = proof
        .iat
        .saturating_add(i64::try_from(window.as_secs()).unwrap_or(i64::MAX));
    snapshot
        .dpop_replay
        .first_use(proof, expires, now)
        .map(|()| dpop::ProofUse {
            id: proof.id(),
            until: expires,
        })
        .map_err(|fault| GatewayError::InvalidDpopProof {
            fault,
            algs: Arc::clone(&snapshot.dpop.algs),
        })
}

/// The principal of an opaque token from its introspection answer, checked like a JWT's
/// claims ([`introspection::check_claims`]).
fn introspected<O: Observer>(
    index: usize,
    answer: &introspection::Answer,
    audiences: Option<&[String]>,
    snapshot: &Snapshot,
    now: i64,
    obs: &mut O,
) -> Result<(Arc<Principal>, Arc<Issuer>), GatewayError> {
    let issuer = snapshot
        .issuers
        .get(index)
        .ok_or(GatewayError::IntrospectionUnavailable)?;
    let checked = match answer {
        Ok(claims) => {
            introspection::check_claims(claims, issuer, audiences.unwrap_or(&issuer.audiences), now)
                .map(|()| claims)
                .map_err(GatewayError::InvalidToken)
        }
        Err(introspection::IntrospectionFault::Inactive) => {
            Err(GatewayError::InvalidToken(TokenFault::Inactive))
        }
        Err(introspection::IntrospectionFault::Unavailable(_)) => {
            Err(GatewayError::IntrospectionUnavailable)
        }
    };
    let claims = seen(obs, Step::Introspection, checked, |_| {
        format!("issuer \"{}\": active", issuer.id)
    })?;
    let principal = Arc::new(Principal::from_claims((**claims).clone(), issuer));
    Ok((principal, Arc::clone(issuer)))
}

/// The DPoP proof of this request (one `DPoP` header, RFC 9449 §4.3), checked; replay is
/// checked last ([`remember_proof`]).
fn dpop_proof(
    presented: &Presented<'_>,
    token: &str,
    snapshot: &Snapshot,
    issuer: &Issuer,
    now: i64,
) -> Result<dpop::Proof, GatewayError> {
    let refused = |fault| GatewayError::InvalidDpopProof {
        fault,
        algs: Arc::clone(&snapshot.dpop.algs),
    };
    let mut values = presented.headers.get_all("dpop").iter();
    let value = values.next().ok_or(refused(dpop::ProofFault::Missing))?;
    if values.next().is_some() {
        return Err(refused(dpop::ProofFault::Multiple));
    }
    let value = value
        .to_str()
        .map_err(|_| refused(dpop::ProofFault::Malformed))?;
    let expected = dpop::Expected {
        method: presented.method,
        scheme: presented.scheme,
        authority: presented.authority,
        path: presented.path,
        access_token: token,
        algorithms: &snapshot.dpop.algorithms,
        now,
        max_age: snapshot.dpop.max_age,
        leeway: issuer.leeway,
        hosts: presented.dpop_hosts,
    };
    dpop::check(value, &expected).map_err(refused)
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
