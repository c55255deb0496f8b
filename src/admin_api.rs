//! The admin API for revocations on the admin listener: `GET /revocations` lists,
//! `POST /revocations` adds, `DELETE /revocations` removes. JSON in and out, every field checked,
//! and every call needs `Authorization: Bearer <admin token>`.
//!
//! A plain function of (method, headers, body, snapshot, now), so it is tested without sockets.

use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::bearer;
use crate::auth::revocation::Revocation;
use crate::auth::revocation_redis::{RedisMirror, RedisWriteError};
use crate::snapshot::Snapshot;

/// Longest admin token accepted in a request.
const MAX_ADMIN_TOKEN_LEN: usize = 4096;

/// Longest identifier accepted (`jti`, `sub`, `client_id`).
const MAX_ID_LEN: usize = 1024;

/// What a client sends: like [`Revocation`], with the expiry and cutoff optional.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum RevocationRequest {
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

fn error(status: StatusCode, message: impl Into<String>) -> (StatusCode, Value) {
    (status, json!({ "error": message.into() }))
}

/// Handle one `/revocations` call.
pub async fn handle(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    snapshot: &Snapshot,
    now: i64,
) -> (StatusCode, Value) {
    let Some(expected) = &snapshot.admin_token else {
        return error(
            StatusCode::NOT_FOUND,
            "the admin API is disabled: set admin.token_file or admin.token_env",
        );
    };
    // The same RFC 6750 parsing as the request path; a malformed header is simply not the token.
    let presented = bearer::extract(headers, MAX_ADMIN_TOKEN_LEN).ok().flatten();
    if !presented.is_some_and(|p| expected.matches(p.as_bytes())) {
        return error(
            StatusCode::UNAUTHORIZED,
            "a valid admin bearer token is required",
        );
    }
    let list = &snapshot.revocations;
    match *method {
        Method::GET => (StatusCode::OK, json!({ "revocations": list.entries() })),
        Method::POST | Method::DELETE => {
            let request: RevocationRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
            };
            let entry = match validate(request, snapshot, now) {
                Ok(e) => e,
                Err(message) => return error(StatusCode::BAD_REQUEST, message),
            };
            if let Some(redis) = &snapshot.revocation_mirror {
                return write_redis(method, redis, &entry).await;
            }
            if *method == Method::POST {
                match list.add_durably(&entry) {
                    Ok(()) => {
                        tracing::info!(revocation = ?entry, "revocation added");
                        (StatusCode::CREATED, json!(entry))
                    }
                    Err(e) => persist_failed(e),
                }
            } else {
                match list.remove_durably(&entry) {
                    Ok(true) => {
                        tracing::info!(revocation = ?entry, "revocation removed");
                        (StatusCode::OK, json!(entry))
                    }
                    Ok(false) => error(StatusCode::NOT_FOUND, "no such revocation"),
                    Err(e) => persist_failed(e),
                }
            }
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "GET, POST or DELETE"),
    }
}

/// With Redis, Redis is the store: a change is answered 2xx only once Redis has it.
async fn write_redis(
    method: &Method,
    redis: &RedisMirror,
    entry: &Revocation,
) -> (StatusCode, Value) {
    let unavailable = |e: RedisWriteError| {
        tracing::error!(error = %e, "cannot write the revocation to Redis; the change was not made");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Redis is unreachable: the revocation was not stored; nothing changed",
        )
    };
    if *method == Method::POST {
        match redis.add(entry).await {
            Ok(()) => {
                tracing::info!(revocation = ?entry, "revocation added (Redis)");
                (StatusCode::CREATED, json!(entry))
            }
            Err(e) => unavailable(e),
        }
    } else {
        match redis.remove(entry).await {
            Ok(true) => {
                tracing::info!(revocation = ?entry, "revocation removed (Redis)");
                (StatusCode::OK, json!(entry))
            }
            Ok(false) => error(StatusCode::NOT_FOUND, "no such revocation"),
            Err(e) => unavailable(e),
        }
    }
}

fn persist_failed(e: crate::auth::journal::JournalError) -> (StatusCode, Value) {
    if let crate::auth::journal::JournalError::NotOwner = e {
        tracing::warn!(error = %e, "revocation change refused during an upgrade hand-over");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is being upgraded: the revocation was not stored; retry in a few seconds",
        );
    }
    tracing::error!(error = %e, "cannot write the revocation journal; the change was not made");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the revocation could not be stored; nothing changed",
    )
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

fn validate(r: RevocationRequest, snapshot: &Snapshot, now: i64) -> Result<Revocation, String> {
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
