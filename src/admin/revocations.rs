//! The admin API for revocations on the admin listener: `GET /revocations` lists,
//! `POST /revocations` adds, `DELETE /revocations` removes. JSON in and out, every field checked,
//! and every call needs `Authorization: Bearer <admin token>`.
//!
//! A plain function of (method, headers, body, snapshot, now), so it is tested without sockets.

use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use crate::auth::bearer;
use crate::revocation::mirror::{RedisMirror, RedisWriteError};
use crate::revocation::request::{validate, RevocationRequest};
use crate::revocation::Revocation;
use crate::snapshot::Snapshot;

/// Longest admin token accepted in a request.
const MAX_ADMIN_TOKEN_LEN: usize = 4096;

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
                Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
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

fn persist_failed(e: crate::revocation::journal::JournalError) -> (StatusCode, Value) {
    if let crate::revocation::journal::JournalError::NotOwner = e {
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
