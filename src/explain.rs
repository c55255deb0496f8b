//! `portcullis explain`: why a request would be admitted or refused, check by check.
//!
//! It runs [`admission::admit_now`], the admission function the proxy runs, with a
//! [`Recorder`] as its observer: the checks it prints are the ones the proxy runs, in the proxy's
//! order, stopping where the proxy stops. It does not refresh keys ([`admission::NoRefresh`]),
//! looks into the verified-token cache without changing it (the CLI's own cache is empty, so it
//! always shows the full verification), and sees the connection as plain HTTP unless told
//! otherwise.

use std::fmt::Write as _;

use http::Method;
use pingora::http::RequestHeader;

use crate::admission::{self, Check, Recorder, Transport};
use crate::error::{render, GatewayError, TokenFault};
use crate::snapshot::Snapshot;

/// The full explanation of one request.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Every check the admission path ran, in order; the last one failed when refused.
    pub checks: Vec<Check>,
    /// The status the gateway would answer with (200 stands for "forwarded upstream").
    pub status: u16,
    /// The reason logs and metrics would carry; `None` when forwarded.
    pub reason: Option<&'static str>,
    /// The route the access log and metrics would name; `None` when refused before one was
    /// kept (bad target or path, no route, TLS version).
    pub route: Option<std::sync::Arc<str>>,
    pub verdict: String,
    /// The refusal, when refused.
    pub refusal: Option<GatewayError>,
    /// Why the revocation check cannot be trusted here (a source the gateway reads and `explain`
    /// could not): the check then shows as unknown, never as a pass ([`Self::revocation_unknown`]).
    pub revocation_unknown: Option<String>,
}

/// `portcullis explain`'s exit status: 0 when the request would be forwarded, one code per kind
/// of refusal, so CI can assert on it (docs/troubleshooting.md lists them).
pub mod exit {
    /// Forwarded upstream.
    pub const FORWARDED: u8 = 0;
    /// 400: the request line, host, path or `Authorization` header is malformed.
    pub const MALFORMED: u8 = 10;
    /// 404 or 405: no route for this host, path and method.
    pub const NO_ROUTE: u8 = 11;
    /// 401 without an error code: no bearer token (or another scheme).
    pub const NO_TOKEN: u8 = 12;
    /// 401 `invalid_token`: signature, issuer, audience, expiry, type, profile.
    pub const INVALID_TOKEN: u8 = 13;
    /// 401 `invalid_token`: the token is revoked.
    pub const REVOKED: u8 = 14;
    /// 403: the token lacks the route's scopes (or the TLS version is too old).
    pub const FORBIDDEN: u8 = 15;
    /// 503: the issuer's keys could not be loaded.
    pub const KEYS_UNAVAILABLE: u8 = 16;
    /// Every check passed, but a revocation source could not be read: forwarded unless revoked
    /// there.
    pub const REVOCATION_UNKNOWN: u8 = 20;
}

/// Why `explain` cannot build the request it was asked about.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("\"{url}\" is not a URL: {source}")]
    NotUrl {
        url: String,
        source: http::uri::InvalidUri,
    },
    /// The token (never quoted: it is a credential) cannot be a header value.
    #[error("the token cannot be sent in an Authorization header")]
    BadToken,
    #[error("cannot build the request: {0}")]
    Build(String),
}

/// Build the request `method url` (with `token` as a bearer token, if any).
pub fn request(
    method: &Method,
    url: &str,
    token: Option<&str>,
) -> Result<RequestHeader, RequestError> {
    let uri: http::Uri = url.parse().map_err(|source| RequestError::NotUrl {
        url: url.to_owned(),
        source,
    })?;
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let build = |e: pingora::BError| RequestError::Build(e.to_string());
    let mut req = RequestHeader::build(method.clone(), target.as_bytes(), None).map_err(build)?;
    if let Some(authority) = uri.authority() {
        req.insert_header(http::header::HOST, authority.as_str())
            .map_err(build)?;
    }
    if let Some(token) = token {
        req.insert_header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .map_err(|_| RequestError::BadToken)?;
    }
    Ok(req)
}

/// Explain `req` on a plain-HTTP connection against `snapshot` at `now`.
pub fn explain(req: &RequestHeader, snapshot: &Snapshot, now: i64) -> Explanation {
    explain_on(req, Transport::Plain, snapshot, now)
}

/// Explain `req` arriving over `transport`.
pub fn explain_on(
    req: &RequestHeader,
    transport: impl Into<admission::Connection>,
    snapshot: &Snapshot,
    now: i64,
) -> Explanation {
    let mut recorder = Recorder::default();
    // Peek: explaining changes nothing. On a running gateway's snapshot (tests) the cache says
    // what the proxy would find; `portcullis explain` has a cache of its own, always empty.
    let decision = admission::admit_now(
        req,
        transport,
        snapshot,
        now,
        admission::CacheUse::Peek,
        &mut recorder,
    );
    let routed = match &decision {
        Ok(admitted) => Some(&admitted.routed),
        Err(refused) => refused.routed.as_ref(),
    };
    let route = routed.map(|r| std::sync::Arc::clone(&snapshot.routes[r.route].id));
    let refusal = decision.as_ref().err().map(|r| r.error.clone());
    let (status, reason, verdict) = match decision {
        Ok(admitted) => {
            let route = &snapshot.routes[admitted.routed.route];
            let verdict = match route.upstream.map(|u| &snapshot.upstreams[u]) {
                Some(upstream) => format!(
                    "forwarded to upstream \"{}\" ({}) as {}",
                    upstream.id, upstream.address, admitted.routed.path
                ),
                None => format!(
                    "allowed (a decision service: no upstream) as {}",
                    admitted.routed.path
                ),
            };
            (200, None, verdict)
        }
        Err(refused) => {
            let r = render(&refused.error);
            let challenge = r
                .www_authenticate
                .map(|c| format!(", WWW-Authenticate: {c}"))
                .unwrap_or_default();
            let reason = refused.error.reason();
            let verdict = format!(
                "{} {}{challenge} (reason: {reason})",
                r.status,
                String::from_utf8_lossy(&r.body),
            );
            (r.status, Some(reason), verdict)
        }
    };
    Explanation {
        checks: recorder.checks,
        status,
        reason,
        route,
        verdict,
        refusal,
        revocation_unknown: None,
    }
}

impl Explanation {
    /// Mark the revocation check as unknown: a source the gateway reads (`why`) was not visible.
    /// A request refused before that check, or revoked by what was visible, is not affected.
    pub fn revocation_unknown(mut self, why: String) -> Self {
        let passed_revocation = self
            .checks
            .iter()
            .any(|c| c.step == crate::admission::Step::Revocation && c.passed());
        if passed_revocation {
            self.revocation_unknown = Some(why);
        }
        self
    }

    /// The exit status for this explanation ([`exit`]).
    pub fn exit_code(&self) -> u8 {
        let Some(error) = &self.refusal else {
            return match self.revocation_unknown {
                Some(_) => exit::REVOCATION_UNKNOWN,
                None => exit::FORWARDED,
            };
        };
        match error {
            GatewayError::BadTarget(_)
            | GatewayError::BadPath(_)
            | GatewayError::InvalidRequest(_) => exit::MALFORMED,
            GatewayError::NoRoute | GatewayError::MethodNotAllowed { .. } => exit::NO_ROUTE,
            GatewayError::MissingToken | GatewayError::UnsupportedScheme => exit::NO_TOKEN,
            GatewayError::InvalidToken(TokenFault::Revoked(_)) => exit::REVOKED,
            GatewayError::InvalidToken(_) | GatewayError::InvalidDpopProof { .. } => {
                exit::INVALID_TOKEN
            }
            GatewayError::InsufficientScope { .. }
            | GatewayError::TlsVersionTooOld
            | GatewayError::CorsRefused
            | GatewayError::RateLimited(_) => exit::FORBIDDEN,
            GatewayError::KeysUnavailable
            | GatewayError::IntrospectionUnavailable
            | GatewayError::UpstreamUnavailable
            | GatewayError::UpstreamTimeout => exit::KEYS_UNAVAILABLE,
        }
    }
}

/// The explanation as text for a terminal.
pub fn to_text(e: &Explanation) -> String {
    let mut out = String::new();
    for c in &e.checks {
        if let (crate::admission::Step::Revocation, None, Some(why)) =
            (c.step, c.failure, &e.revocation_unknown)
        {
            let _ = writeln!(out, "????  {:<11} unknown ({why})", c.name());
            continue;
        }
        let _ = match c.failure {
            None => writeln!(out, "pass  {:<11} {}", c.name(), c.detail),
            Some(reason) if c.detail.is_empty() => {
                writeln!(out, "FAIL  {:<11} {reason}", c.name())
            }
            Some(reason) => writeln!(out, "FAIL  {:<11} {reason}: {}", c.name(), c.detail),
        };
    }
    let _ = writeln!(out, "\nresponse: {}", e.verdict);
    if e.refusal.is_none() && e.revocation_unknown.is_some() {
        let _ = writeln!(
            out,
            "unless the token is revoked where explain cannot see: give --admin with the running gateway's admin address"
        );
    }
    out
}
