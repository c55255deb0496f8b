//! JWT access-token verification: structure, header policy, key choice, signature, claims.
//!
//! The order matters for safety: the issuer is picked by exact `iss` among the route's issuers,
//! the algorithm must be in that issuer's allow-list (never taken on trust from the token, RFC 8725
//! §3.1), the key is chosen by `kid` and must fit the algorithm, and the signature is verified
//! before any other claim is believed. Embedded keys (`jwk`, `jku`, `x5u`, `x5c`) are never used.
//! Time is a parameter (`now`, seconds since the epoch) so every claim check is unit-tested.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::algorithm::Algorithm;
use super::jwks::{KeySet, VerificationKey};
use crate::admission::observe::{Observer, Silent, Step};
use crate::snapshot::Issuer;

/// Why a bearer token was refused (RFC 6750 §3.1 `invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// Not three base64url parts with JSON header and payload.
    Malformed,
    /// `alg` is not in the issuer's allow-list (this includes `none` and every HMAC algorithm).
    AlgorithmNotAllowed,
    /// The header names a `crit` extension this gateway does not understand (RFC 7515 §4.1.11).
    UnsupportedCritical,
    /// No key of the issuer has this `kid`, or no key fits a token without `kid`.
    UnknownKid,
    /// The key chosen by `kid` cannot verify this algorithm (for example an RSA key for `ES256`).
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// `iss` is missing or is not one of the route's issuers.
    WrongIssuer,
    /// `aud` is missing or names none of the issuer's audiences.
    WrongAudience,
    /// `exp` is missing or not a number.
    MissingExpiry,
    /// `exp` is in the past (beyond leeway).
    Expired,
    /// `nbf` is in the future (beyond leeway).
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    IssuedInFuture,
    /// `typ` differs from the issuer's required `token_type`.
    WrongType,
    /// The token is on the revocation list.
    Revoked(crate::revocation::RevokedBy),
    /// `exp - iat` (or `exp - now` without `iat`) exceeds `revocation.max_token_lifetime`: a
    /// revocation could expire before the token does.
    LifetimeTooLong,
    /// With `token_type: at+jwt`, a claim RFC 9068 §2.2 requires is missing or has the wrong type.
    ProfileViolation,
    /// The issuer's keys have not loaded yet (or went past their maximum staleness): the token
    /// cannot be checked, which is the gateway's problem, not the client's.
    KeysNotLoaded,
    /// Bound to a client certificate (`cnf.x5t#S256`, RFC 8705 §3) on a connection without one.
    CertificateMissing,
    /// Bound to another client certificate than this connection's.
    CertificateMismatch,
    /// Bound to a DPoP key (`cnf.jkt`, RFC 9449): never accepted as a bearer token.
    DpopBound,
    /// A `cnf` whose binding cannot be checked (another method, or malformed).
    UnsupportedConfirmation,
    /// `Authorization: DPoP` with a token not bound to a DPoP key (RFC 9449 §7.1).
    DpopUnbound,
    /// The issuer's `dpop: required`, and the token is not DPoP-bound.
    DpopRequired,
    /// The proof's key is not the one the token is bound to (`cnf.jkt`).
    DpopKeyMismatch,
    /// Introspection says the (opaque) token is not active (RFC 7662 §2.2).
    Inactive,
    /// Introspection says the token is a refresh token, not an access token.
    NotAnAccessToken,
}

impl TokenFault {
    /// Every fault, a revocation once per kind (the label values of
    /// `portcullis_rejections_total`, initialised at 0).
    pub const ALL: [Self; 28] = [
        Self::Malformed,
        Self::AlgorithmNotAllowed,
        Self::UnsupportedCritical,
        Self::UnknownKid,
        Self::KeyAlgorithmMismatch,
        Self::BadSignature,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::MissingExpiry,
        Self::Expired,
        Self::NotYetValid,
        Self::IssuedInFuture,
        Self::WrongType,
        Self::Revoked(crate::revocation::RevokedBy::Jti),
        Self::Revoked(crate::revocation::RevokedBy::Subject),
        Self::Revoked(crate::revocation::RevokedBy::Client),
        Self::LifetimeTooLong,
        Self::ProfileViolation,
        Self::KeysNotLoaded,
        Self::CertificateMissing,
        Self::CertificateMismatch,
        Self::DpopBound,
        Self::UnsupportedConfirmation,
        Self::DpopUnbound,
        Self::DpopRequired,
        Self::DpopKeyMismatch,
        Self::Inactive,
        Self::NotAnAccessToken,
    ];

    /// A stable, bounded label for logs and metrics (the request's reason).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed_token",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCritical => "unsupported_crit",
            Self::UnknownKid => "unknown_kid",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingExpiry => "missing_exp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongType => "wrong_type",
            Self::KeysNotLoaded => "keys_not_loaded",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::ProfileViolation => "profile_violation",
            Self::CertificateMissing => "cnf_certificate_missing",
            Self::CertificateMismatch => "cnf_certificate_mismatch",
            Self::DpopBound => "dpop_bound_token",
            Self::UnsupportedConfirmation => "cnf_unsupported",
            Self::DpopUnbound => "dpop_unbound_token",
            Self::DpopRequired => "dpop_required",
            Self::DpopKeyMismatch => "dpop_key_mismatch",
            Self::Inactive => "inactive",
            Self::NotAnAccessToken => "not_access_token",
            Self::Revoked(by) => match by {
                crate::revocation::RevokedBy::Jti => "revoked_jti",
                crate::revocation::RevokedBy::Subject => "revoked_subject",
                crate::revocation::RevokedBy::Client => "revoked_client",
            },
        }
    }
}

/// How many keys a token without `kid` may be tried against, so such tokens cannot make the
/// gateway run an unbounded number of signature checks.
pub const MAX_KIDLESS_CANDIDATES: usize = 3;

/// A token whose signature and claims have been verified.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// Index of the issuer (in the snapshot) that vouched for the token.
    pub issuer: usize,
    pub algorithm: Algorithm,
    /// The fingerprint of the key that verified the signature.
    pub key: [u8; 32],
    pub claims: Map<String, Value>,
}

/// The parts of the JOSE header portcullis reads. Everything else is ignored, in particular
/// `jwk`, `jku`, `x5u` and `x5c`: keys are only ever taken from configuration.
#[derive(Debug, Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A token split and decoded, nothing verified yet.
#[derive(Debug)]
pub struct ParsedToken<'t> {
    pub signing_input: &'t str,
    pub signature: &'t str,
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// Whether the header has a `crit` member.
    pub has_crit: bool,
    pub claims: Map<String, Value>,
}

/// Whether `token` has the shape of a compact JWS: three base64url parts, the first decoding to
/// a JSON object (`{`). Anything else is an opaque token (`token_format: auto`). Only the path
/// depends on it: both verify fully.
pub fn looks_like_jws(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    // `{"` encodes to `eyJ`, `{` plus whitespace to `ewo`/`ewk`/`e3`... : decode the start only.
    let start = header.get(..4).unwrap_or(header);
    let mut first = [0u8; 3];
    URL_SAFE_NO_PAD
        .decode_slice(start, &mut first)
        .is_ok_and(|n| n > 0 && first[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'))
}

/// The `iss` of a JWS-shaped token's payload, unverified: only to decide where a token may not
/// be sent.
pub fn unverified_iss(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Split a compact JWS into its parts and decode its JSON header and payload.
pub fn parse(token: &str) -> Result<ParsedToken<'_>, TokenFault> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenFault::Malformed)?;
    let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(TokenFault::Malformed)?;
    if signature.is_empty() || payload_b64.contains('.') {
        return Err(TokenFault::Malformed);
    }
    let header: JoseHeader = decode_json(header_b64)?;
    let claims: Map<String, Value> = decode_json(payload_b64)?;
    Ok(ParsedToken {
        signing_input,
        signature,
        alg: header.alg,
        kid: header.kid,
        typ: header.typ,
        has_crit: header.crit.is_some(),
        claims,
    })
}

/// Verify `token` for a route that accepts the issuers `candidates` (snapshot index, issuer).
pub fn verify<'a, I>(token: &str, candidates: I, now: i64) -> Result<VerifiedToken, TokenFault>
where
    I: IntoIterator<Item = (usize, &'a Issuer)>,
    I::IntoIter: Clone,
{
    verify_for(token, candidates, None, now, &mut Silent)
}

/// [`verify`] with the route's audiences (`auth.audiences`) in place of the issuer's, when set,
/// each check reported to `obs` as it runs. The order is the order of [`Step`].
pub fn verify_for<'a, I, O>(
    token: &str,
    candidates: I,
    audiences: Option<&[String]>,
    now: i64,
    obs: &mut O,
) -> Result<VerifiedToken, TokenFault>
where
    I: IntoIterator<Item = (usize, &'a Issuer)>,
    I::IntoIter: Clone,
    O: Observer,
{
    let parsed = parse(token);
    let ParsedToken {
        signing_input,
        signature,
        alg,
        kid,
        typ,
        has_crit,
        claims,
    } = checked(obs, Step::Jws, parsed, |p| {
        format!(
            "compact JWS, alg {}, kid {}",
            p.alg,
            p.kid.as_deref().unwrap_or("(none)")
        )
    })?;

    // RFC 7515 §4.1.11: a recipient must reject a token whose `crit` names an extension it does
    // not understand; portcullis understands none.
    let crit = if has_crit {
        Err(TokenFault::UnsupportedCritical)
    } else {
        Ok(())
    };
    checked(obs, Step::Crit, crit, |()| "no crit header".to_owned())?;
    let algorithm = alg
        .parse::<Algorithm>()
        .map_err(|()| TokenFault::AlgorithmNotAllowed);
    let algorithm = checked(obs, Step::Alg, algorithm, |a| a.to_string())?;

    let iss = claims.get("iss").and_then(Value::as_str);
    let candidates = candidates.into_iter();
    let found = iss
        .and_then(|iss| candidates.clone().find(|(_, issuer)| issuer.issuer == iss))
        .ok_or(TokenFault::WrongIssuer);
    obs.record(Step::Iss, failure(&found), || match &found {
        Ok((_, issuer)) => format!("issuer \"{}\" ({})", issuer.id, issuer.issuer),
        Err(_) => format!(
            "{} is not one of this route's issuers: {}",
            iss.map_or_else(|| "no iss".to_owned(), |iss| format!("\"{iss}\"")),
            candidates
                .clone()
                .map(|(_, i)| i.issuer.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    let (issuer_idx, issuer) = found?;
    let allowed = if issuer.algorithms.contains(&algorithm) {
        Ok(())
    } else {
        Err(TokenFault::AlgorithmNotAllowed)
    };
    checked(obs, Step::AlgAllowed, allowed, |()| {
        format!("{algorithm} is allowed for issuer \"{}\"", issuer.id)
    })?;

    let keys = issuer.keys.current().ok_or(TokenFault::KeysNotLoaded);
    let keys = checked(obs, Step::Keys, keys, |k| {
        format!("{} keys loaded", k.len())
    })?;
    let verified = verify_signature(signing_input, signature, kid.as_deref(), algorithm, &keys);
    let key = checked(obs, Step::Signature, verified, |_| {
        format!("verified with kid {}", kid.as_deref().unwrap_or("(none)"))
    })?;
    let type_ok = check_type(typ.as_deref(), issuer.token_type.as_deref());
    checked(obs, Step::Typ, type_ok, |()| match &issuer.token_type {
        Some(required) => required.clone(),
        None => "no token_type required".to_owned(),
    })?;
    check_claims_observed(
        &claims,
        issuer,
        audiences.unwrap_or(&issuer.audiences),
        now,
        obs,
    )?;
    Ok(VerifiedToken {
        issuer: issuer_idx,
        algorithm,
        key,
        claims,
    })
}

/// The reason a check failed, as logs and metrics name it.
fn failure<T>(result: &Result<T, TokenFault>) -> Option<&'static str> {
    match result {
        Ok(_) => None,
        Err(fault) => Some(fault.reason()),
    }
}

/// Report `result` as `step` to `obs` (`pass` describes a success) and hand it back.
#[inline(always)]
fn checked<T, O: Observer>(
    obs: &mut O,
    step: Step,
    result: Result<T, TokenFault>,
    pass: impl FnOnce(&T) -> String,
) -> Result<T, TokenFault> {
    obs.record(step, failure(&result), || match &result {
        Ok(value) => pass(value),
        Err(_) => String::new(),
    });
    result
}

/// The `kid` of a token that verified (parsed again: only for tokens being cached).
pub fn kid_of(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    decode_json::<JoseHeader>(header).ok()?.kid
}

/// For a token refused with an unknown `kid`: the snapshot index of the issuer its `iss` names
/// (among `candidates`) and its `kid`. Only called on that rare path, so it parses again.
pub fn unknown_kid_context<'a>(
    token: &str,
    candidates: impl IntoIterator<Item = (usize, &'a Issuer)>,
) -> Option<(usize, Option<String>)> {
    let mut parts = token.split('.');
    let header: JoseHeader = decode_json(parts.next()?).ok()?;
    let claims: Map<String, Value> = decode_json(parts.next()?).ok()?;
    let iss = claims.get("iss").and_then(Value::as_str)?;
    let (idx, _) = candidates.into_iter().find(|(_, i)| i.issuer == iss)?;
    Some((idx, header.kid))
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenFault> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenFault::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenFault::Malformed)
}

/// Verify a JWS signature over `signing_input` (`header.payload`) with a key of `keys`: the key
/// named by `kid`, or for a token without `kid` the first few keys that fit `algorithm`. Returns
/// the fingerprint of the key that verified it.
pub fn verify_signature(
    signing_input: &str,
    signature: &str,
    kid: Option<&str>,
    algorithm: Algorithm,
    keys: &KeySet,
) -> Result<[u8; 32], TokenFault> {
    match kid {
        Some(kid) => {
            let key = keys.by_kid(kid).ok_or(TokenFault::UnknownKid)?;
            if !key.accepts(algorithm) {
                return Err(TokenFault::KeyAlgorithmMismatch);
            }
            if signature_matches(signing_input, signature, key, algorithm) {
                Ok(key.fingerprint)
            } else {
                Err(TokenFault::BadSignature)
            }
        }
        None => {
            let mut tried = false;
            for key in keys.accepting(algorithm).take(MAX_KIDLESS_CANDIDATES) {
                tried = true;
                if signature_matches(signing_input, signature, key, algorithm) {
                    return Ok(key.fingerprint);
                }
            }
            Err(if tried {
                TokenFault::BadSignature
            } else {
                TokenFault::UnknownKid
            })
        }
    }
}

fn signature_matches(
    signing_input: &str,
    signature: &str,
    key: &VerificationKey,
    alg: Algorithm,
) -> bool {
    // The key was parsed when its key set loaded: no key is built here.
    URL_SAFE_NO_PAD
        .decode(signature)
        .is_ok_and(|sig| key.verifies(alg, signing_input.as_bytes(), &sig))
}

/// RFC 9068 §4 / RFC 7515 §4.1.9: `typ` compares case-insensitively and may omit `application/`.
pub fn check_type(typ: Option<&str>, required: Option<&str>) -> Result<(), TokenFault> {
    let Some(required) = required else {
        return Ok(());
    };
    // Compared without allocating: this runs on every request of such an issuer.
    fn bare(s: &str) -> &str {
        match s.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &s[12..],
            _ => s,
        }
    }
    match typ {
        Some(t) if bare(t).eq_ignore_ascii_case(bare(required)) => Ok(()),
        _ => Err(TokenFault::WrongType),
    }
}

/// The registered-claim checks: `exp`, `nbf`, `iat`, `aud` (RFC 7519 §4.1), with the issuer's
/// leeway and audiences. `iss` has been matched already, when the issuer was chosen.
pub fn check_claims(
    claims: &Map<String, Value>,
    issuer: &Issuer,
    now: i64,
) -> Result<(), TokenFault> {
    check_claims_for(claims, issuer, &issuer.audiences, now)
}

/// [`check_claims`] with the audiences a route demands instead of the issuer's, then the token's
/// lifetime and, for an RFC 9068 issuer, the profile.
pub fn check_claims_for(
    claims: &Map<String, Value>,
    issuer: &Issuer,
    audiences: &[String],
    now: i64,
) -> Result<(), TokenFault> {
    check_claims_observed(claims, issuer, audiences, now, &mut Silent)
}

/// [`check_claims_for`], each check reported to `obs`.
fn check_claims_observed<O: Observer>(
    claims: &Map<String, Value>,
    issuer: &Issuer,
    audiences: &[String],
    now: i64,
    obs: &mut O,
) -> Result<(), TokenFault> {
    let date = |name: &str| match claims.get(name) {
        Some(v) => format!("{name} {v}, now {now}, leeway {}s", issuer.leeway.as_secs()),
        None => format!("no {name}"),
    };
    let expiry = check_expiry(claims, issuer, now);
    obs.record(Step::Exp, failure(&expiry), || date("exp"));
    expiry?;
    let not_before = check_not_before(claims, issuer, now);
    obs.record(Step::Nbf, failure(&not_before), || date("nbf"));
    not_before?;
    let issued_at = check_issued_at(claims, issuer, now);
    obs.record(Step::Iat, failure(&issued_at), || date("iat"));
    issued_at?;
    let audience = check_audience_in(claims, audiences);
    obs.record(Step::Aud, failure(&audience), || {
        let aud = claims
            .get("aud")
            .map_or_else(|| "none".to_owned(), Value::to_string);
        format!("token aud {aud}, expected one of {}", audiences.join(", "))
    });
    audience?;
    let lifetime = check_lifetime(claims, issuer, now);
    obs.record(Step::Lifetime, failure(&lifetime), || {
        format!(
            "revocation.max_token_lifetime {}s",
            issuer.max_token_lifetime.as_secs()
        )
    });
    lifetime?;
    if issuer.rfc9068 {
        let profile = check_rfc9068_profile(claims);
        obs.record(Step::Profile, failure(&profile), || {
            "RFC 9068 §2.2: sub, client_id, iat, jti, and scope as one string".to_owned()
        });
        profile?;
    }
    Ok(())
}

/// A token may not live longer than `revocation.max_token_lifetime` (`exp - iat`, or `exp - now`
/// without `iat`): revocation entries expire after that long, and a longer-lived token would be
/// accepted again once its entry is gone.
pub fn check_lifetime(
    claims: &Map<String, Value>,
    issuer: &Issuer,
    now: i64,
) -> Result<(), TokenFault> {
    let exp = numeric(claims, "exp")?.ok_or(TokenFault::MissingExpiry)?;
    let start = numeric(claims, "iat")?.unwrap_or(now as f64);
    if exp - start > issuer.max_token_lifetime.as_secs_f64() {
        return Err(TokenFault::LifetimeTooLong);
    }
    Ok(())
}

/// RFC 9068 §2.2: an `at+jwt` access token carries `iss`, `exp`, `aud`, `sub`, `client_id`,
/// `iat` and `jti` (the first three are checked already), and `scope`, when present, is one
/// string of space-delimited scope tokens (RFC 8693 §4.2, RFC 6749 §3.3): an array or a tab
/// there is malformed.
pub fn check_rfc9068_profile(claims: &Map<String, Value>) -> Result<(), TokenFault> {
    for name in ["sub", "client_id", "jti"] {
        match claims.get(name) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(TokenFault::ProfileViolation),
        }
    }
    if !matches!(claims.get("iat"), Some(Value::Number(_))) {
        return Err(TokenFault::ProfileViolation);
    }
    match claims.get("scope") {
        None => Ok(()),
        Some(Value::String(scope))
            if scope
                .split(' ')
                .all(|t| !t.is_empty() && crate::auth::scope::is_valid_scope_token(t)) =>
        {
            Ok(())
        }
        Some(_) => Err(TokenFault::ProfileViolation),
    }
}

fn leeway_secs(issuer: &Issuer) -> f64 {
    issuer.leeway.as_secs_f64()
}

/// RFC 7519 §4.1.4: `exp` is required here, and the current time must be before it.
pub fn check_expiry(
    claims: &Map<String, Value>,
    issuer: &Issuer,
    now: i64,
) -> Result<(), TokenFault> {
    let exp = match claims.get("exp") {
        Some(Value::Number(exp)) => exp.as_f64().ok_or(TokenFault::MissingExpiry)?,
        _ => return Err(TokenFault::MissingExpiry),
    };
    if now as f64 >= exp + leeway_secs(issuer) {
        return Err(TokenFault::Expired);
    }
    Ok(())
}

/// RFC 7519 §4.1.5: not before `nbf`.
pub fn check_not_before(
    claims: &Map<String, Value>,
    issuer: &Issuer,
    now: i64,
) -> Result<(), TokenFault> {
    match numeric(claims, "nbf")? {
        Some(nbf) if now as f64 + leeway_secs(issuer) < nbf => Err(TokenFault::NotYetValid),
        _ => Ok(()),
    }
}

/// RFC 7519 §4.1.6: a token issued in the future is refused.
pub fn check_issued_at(
    claims: &Map<String, Value>,
    issuer: &Issuer,
    now: i64,
) -> Result<(), TokenFault> {
    match numeric(claims, "iat")? {
        Some(iat) if iat > now as f64 + leeway_secs(issuer) => Err(TokenFault::IssuedInFuture),
        _ => Ok(()),
    }
}

/// RFC 7519 §4.1.3: `aud` (string or array) must name one of the issuer's audiences.
pub fn check_audience(claims: &Map<String, Value>, issuer: &Issuer) -> Result<(), TokenFault> {
    check_audience_in(claims, &issuer.audiences)
}

/// `aud` (string or array) must name one of `audiences`.
pub fn check_audience_in(
    claims: &Map<String, Value>,
    audiences: &[String],
) -> Result<(), TokenFault> {
    let ok = match claims.get("aud") {
        Some(Value::String(aud)) => audiences.iter().any(|a| a == aud),
        Some(Value::Array(auds)) => auds
            .iter()
            .filter_map(Value::as_str)
            .any(|aud| audiences.iter().any(|a| a == aud)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TokenFault::WrongAudience)
    }
}

/// An optional NumericDate claim; present but not a number makes the token malformed.
fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, TokenFault> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(TokenFault::Malformed),
        Some(_) => Err(TokenFault::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    /// `token_format: auto`: a compact JWS is a JWT; RFC 6749's opaque example and other
    /// shapes are introspected.
    #[test]
    fn a_jws_shape_is_told_from_an_opaque_token() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
        let spaced = URL_SAFE_NO_PAD.encode("\n {\"alg\":\"ES256\"}");
        assert!(looks_like_jws(&format!("{header}.e30.c2ln")));
        assert!(looks_like_jws(&format!("{spaced}.e30.c2ln")));
        for opaque in [
            "2YotnFZFEjr1zCsicMWpAA",
            "a.b.c",
            "ory_at_abc.def",
            &format!("{header}.e30"),
            &format!("{header}.e30.c2ln.d"),
            "",
        ] {
            assert!(!looks_like_jws(opaque), "{opaque}");
        }
        assert_eq!(
            unverified_iss(&format!(
                "{header}.{}.c2ln",
                URL_SAFE_NO_PAD.encode(r#"{"iss":"https://a"}"#)
            )),
            Some("https://a".to_owned())
        );
    }

    fn issuer() -> Issuer {
        Issuer {
            id: "corp".into(),
            issuer: "https://idp.example.com".into(),
            audiences: vec!["orders-api".into(), "billing-api".into()],
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(30),
            scope_claims: vec!["scope".into(), "scp".into()],
            token_type: None,
            dpop: crate::auth::dpop::DpopMode::Allowed,
            token_format: crate::auth::TokenFormat::Jwt,
            introspector: None,
            rfc9068: false,
            max_token_lifetime: Duration::from_secs(24 * 3600),
            keys: std::sync::Arc::new(crate::auth::keys::IssuerKeys::fixed(
                "corp".into(),
                KeySet::default(),
            )),
            key_source: None,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn accepts_valid_claims_with_string_or_array_audience() {
        let i = issuer();
        assert_eq!(
            check_claims(
                &claims(json!({"exp": NOW + 60, "aud": "orders-api"})),
                &i,
                NOW
            ),
            Ok(())
        );
        assert_eq!(
            check_claims(
                &claims(json!({"exp": NOW + 60, "aud": ["x", "billing-api"]})),
                &i,
                NOW
            ),
            Ok(())
        );
    }

    #[test]
    fn expiry_is_required_and_honours_leeway() {
        let i = issuer();
        let aud = "orders-api";
        assert_eq!(
            check_claims(&claims(json!({"aud": aud})), &i, NOW),
            Err(TokenFault::MissingExpiry)
        );
        assert_eq!(
            check_claims(&claims(json!({"aud": aud, "exp": "soon"})), &i, NOW),
            Err(TokenFault::MissingExpiry)
        );
        assert_eq!(
            check_claims(&claims(json!({"aud": aud, "exp": NOW - 29})), &i, NOW),
            Ok(())
        );
        assert_eq!(
            check_claims(&claims(json!({"aud": aud, "exp": NOW - 30})), &i, NOW),
            Err(TokenFault::Expired)
        );
    }

    #[test]
    fn not_before_and_issued_at_in_the_future_are_refused() {
        let i = issuer();
        let base = json!({"aud": "orders-api", "exp": NOW + 600});
        let with = |k: &str, v: i64| {
            let mut c = claims(base.clone());
            c.insert(k.into(), json!(v));
            c
        };
        assert_eq!(check_claims(&with("nbf", NOW + 30), &i, NOW), Ok(()));
        assert_eq!(
            check_claims(&with("nbf", NOW + 31), &i, NOW),
            Err(TokenFault::NotYetValid)
        );
        assert_eq!(check_claims(&with("iat", NOW + 30), &i, NOW), Ok(()));
        assert_eq!(
            check_claims(&with("iat", NOW + 31), &i, NOW),
            Err(TokenFault::IssuedInFuture)
        );
    }

    #[test]
    fn audience_must_match_one_configured() {
        let i = issuer();
        for aud in [json!("other-api"), json!([]), json!(["other"]), json!(7)] {
            assert_eq!(
                check_claims(&claims(json!({"exp": NOW + 60, "aud": aud})), &i, NOW),
                Err(TokenFault::WrongAudience)
            );
        }
        assert_eq!(
            check_claims(&claims(json!({"exp": NOW + 60})), &i, NOW),
            Err(TokenFault::WrongAudience)
        );
    }

    #[test]
    fn token_type_check_follows_rfc_9068() {
        assert_eq!(check_type(None, None), Ok(()));
        assert_eq!(check_type(Some("JWT"), None), Ok(()));
        assert_eq!(check_type(Some("at+jwt"), Some("at+jwt")), Ok(()));
        assert_eq!(
            check_type(Some("application/AT+JWT"), Some("at+jwt")),
            Ok(())
        );
        assert_eq!(
            check_type(Some("JWT"), Some("at+jwt")),
            Err(TokenFault::WrongType)
        );
        assert_eq!(check_type(None, Some("at+jwt")), Err(TokenFault::WrongType));
    }

    #[test]
    fn structural_garbage_is_malformed() {
        let i = issuer();
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "e30.e30.",
            "!!.e30.c2ln",
            "e30.bm90anNvbg.c2ln",
        ] {
            let got = verify(token, [(0, &i)], NOW).unwrap_err();
            assert!(
                matches!(got, TokenFault::Malformed | TokenFault::AlgorithmNotAllowed),
                "{token}: {got:?}"
            );
        }
    }

    #[test]
    fn tokens_living_longer_than_the_revocation_horizon_are_refused() {
        let i = issuer();
        let day = 24 * 3600;
        let with = |iat: Option<i64>, exp: i64| {
            let mut c = claims(json!({"aud": "orders-api", "exp": exp}));
            if let Some(iat) = iat {
                c.insert("iat".into(), json!(iat));
            }
            c
        };
        assert_eq!(check_claims(&with(Some(NOW), NOW + day), &i, NOW), Ok(()));
        assert_eq!(
            check_claims(&with(Some(NOW - 60), NOW + day), &i, NOW),
            Err(TokenFault::LifetimeTooLong)
        );
        // Without `iat`, what is left of it counts.
        assert_eq!(check_claims(&with(None, NOW + day), &i, NOW), Ok(()));
        assert_eq!(
            check_claims(&with(None, NOW + 2 * day), &i, NOW),
            Err(TokenFault::LifetimeTooLong)
        );
    }

    #[test]
    fn route_audiences_replace_the_issuers() {
        let i = issuer();
        let c = claims(json!({"aud": "billing-api", "exp": NOW + 60}));
        assert_eq!(check_claims(&c, &i, NOW), Ok(()));
        let orders_only = ["orders-api".to_owned()];
        assert_eq!(
            check_claims_for(&c, &i, &orders_only, NOW),
            Err(TokenFault::WrongAudience)
        );
    }

    #[test]
    fn the_rfc_9068_profile_requires_its_claims_and_a_string_scope() {
        let mut i = issuer();
        i.rfc9068 = true;
        let full = json!({
            "iss": "https://idp.example.com", "aud": "orders-api", "exp": NOW + 60,
            "iat": NOW, "sub": "alice", "client_id": "ui", "jti": "1", "scope": "a b"
        });
        assert_eq!(check_claims(&claims(full.clone()), &i, NOW), Ok(()));
        for missing in ["sub", "client_id", "iat", "jti"] {
            let mut c = claims(full.clone());
            c.remove(missing);
            assert_eq!(
                check_claims(&c, &i, NOW),
                Err(TokenFault::ProfileViolation),
                "{missing}"
            );
        }
        for scope in [json!(["a", "b"]), json!("a\tb"), json!("a  b"), json!(7)] {
            let mut c = claims(full.clone());
            c.insert("scope".into(), scope.clone());
            assert_eq!(
                check_claims(&c, &i, NOW),
                Err(TokenFault::ProfileViolation),
                "{scope}"
            );
        }
        let mut c = claims(full);
        c.insert("sub".into(), json!(42));
        assert_eq!(check_claims(&c, &i, NOW), Err(TokenFault::ProfileViolation));
    }
}
