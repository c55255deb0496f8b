//! A revocation as clients write it (admin API bodies, revocation-file lines): parsed, checked
//! against the configuration, and given its expiry.

use serde::Deserialize;

use super::Revocation;
use crate::snapshot::Snapshot;

/// Longest identifier accepted (`jti`, `sub`, `client_id`).
const MAX_ID_LEN: usize = 1024;

/// What a client sends: like [`Revocation`], with the expiry and cutoff optional.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RevocationRequest {
    Jti {
        jti: String,
        #[serde(default)]
        issuer: Option<String>,
        /// The token's `exp`; without it the entry lives `max_token_lifetime`.
        #[serde(default)]
        exp: Option<i64>,
    },
    Subject {
        issuer: String,
        sub: String,
        /// Default: now (every token issued so far).
        #[serde(default)]
        issued_before: Option<i64>,
    },
    Client {
        issuer: String,
        client_id: String,
        #[serde(default)]
        issued_before: Option<i64>,
    },
}

/// Why a revocation is refused (the admin API answers 400 with this message; the revocation
/// file logs it with the line number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("invalid entry: {0}")]
    Invalid(String),
    #[error("{field} must be 1 to {MAX_ID_LEN} characters")]
    BadId { field: &'static str },
    #[error("unknown issuer \"{issuer}\" (configured: {known})")]
    UnknownIssuer { issuer: String, known: String },
    #[error("exp is in the past: that token is already refused as expired")]
    AlreadyExpired,
    /// A revocation-file line that is not JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// A subject or client entry of the revocation file without `issued_before`.
    #[error("a {kind} entry in the revocation file needs `issued_before` (seconds since the epoch): without it the cutoff would move to the time of every re-read")]
    MissingCutoff { kind: String },
}

/// Parse and check one revocation as the admin API and the revocation file write it.
pub fn parse_revocation(
    value: serde_json::Value,
    snapshot: &Snapshot,
    now: i64,
) -> Result<Revocation, RevocationError> {
    let request: RevocationRequest =
        serde_json::from_value(value).map_err(|e| RevocationError::Invalid(e.to_string()))?;
    validate(request, snapshot, now)
}

pub fn validate(
    r: RevocationRequest,
    snapshot: &Snapshot,
    now: i64,
) -> Result<Revocation, RevocationError> {
    // Every entry outlives the last moment its tokens could be accepted: `exp` (at most
    // `max_token_lifetime` after `iat`, which the token checks enforce) plus the leeway margin.
    let margin = snapshot.revocation_margin_secs();
    let lifetime = i64::try_from(snapshot.max_token_lifetime.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(margin);
    let id = |field: &'static str, value: &str| {
        if value.is_empty() || value.len() > MAX_ID_LEN {
            Err(RevocationError::BadId { field })
        } else {
            Ok(())
        }
    };
    let issuer = |value: &str| {
        if snapshot.issuers.iter().any(|i| &*i.id == value) {
            Ok(())
        } else {
            let known: Vec<&str> = snapshot.issuers.iter().map(|i| &*i.id).collect();
            Err(RevocationError::UnknownIssuer {
                issuer: value.to_owned(),
                known: known.join(", "),
            })
        }
    };
    Ok(match r {
        RevocationRequest::Jti {
            jti,
            issuer: scope,
            exp,
        } => {
            id("jti", &jti)?;
            if let Some(i) = &scope {
                issuer(i)?;
            }
            let expires_at = match exp {
                Some(exp) => exp.saturating_add(margin),
                None => now.saturating_add(lifetime),
            };
            if expires_at <= now {
                return Err(RevocationError::AlreadyExpired);
            }
            Revocation::Jti {
                jti,
                issuer: scope,
                expires_at,
            }
        }
        RevocationRequest::Subject {
            issuer: iss,
            sub,
            issued_before,
        } => {
            issuer(&iss)?;
            id("sub", &sub)?;
            let cutoff = issued_before.unwrap_or(now);
            Revocation::Subject {
                issuer: iss,
                sub,
                issued_before: cutoff,
                expires_at: cutoff.saturating_add(lifetime),
            }
        }
        RevocationRequest::Client {
            issuer: iss,
            client_id,
            issued_before,
        } => {
            issuer(&iss)?;
            id("client_id", &client_id)?;
            let cutoff = issued_before.unwrap_or(now);
            Revocation::Client {
                issuer: iss,
                client_id,
                issued_before: cutoff,
                expires_at: cutoff.saturating_add(lifetime),
            }
        }
    })
}
