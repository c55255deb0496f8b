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

/// Parse and check one revocation as the admin API and the revocation file write it.
pub fn parse_revocation(
    value: serde_json::Value,
    snapshot: &Snapshot,
    now: i64,
) -> Result<Revocation, String> {
    let request: RevocationRequest =
        serde_json::from_value(value).map_err(|e| format!("invalid entry: {e}"))?;
    validate(request, snapshot, now)
}

pub fn validate(r: RevocationRequest, snapshot: &Snapshot, now: i64) -> Result<Revocation, String> {
    // Every entry outlives the last moment its tokens could be accepted: `exp` (at most
    // `max_token_lifetime` after `iat`, which the token checks enforce) plus the leeway margin.
    let margin = snapshot.revocation_margin_secs();
    let lifetime = i64::try_from(snapshot.max_token_lifetime.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(margin);
    let id = |name: &str, value: &str| -> Result<(), String> {
        if value.is_empty() || value.len() > MAX_ID_LEN {
            Err(format!("{name} must be 1 to {MAX_ID_LEN} characters"))
        } else {
            Ok(())
        }
    };
    let issuer = |value: &str| -> Result<(), String> {
        if snapshot.issuers.iter().any(|i| &*i.id == value) {
            Ok(())
        } else {
            let known: Vec<&str> = snapshot.issuers.iter().map(|i| &*i.id).collect();
            Err(format!(
                "unknown issuer \"{value}\" (configured: {})",
                known.join(", ")
            ))
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
                return Err("exp is in the past: that token is already refused as expired".into());
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
