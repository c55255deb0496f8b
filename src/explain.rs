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
use crate::error::render;
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
    transport: Transport,
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
    let (status, reason, verdict) = match decision {
        Ok(admitted) => {
            let route = &snapshot.routes[admitted.routed.route];
            let upstream = &snapshot.upstreams[route.upstream];
            let verdict = format!(
                "forwarded to upstream \"{}\" ({}) as {}",
                upstream.id, upstream.address, admitted.routed.path
            );
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
    }
}

/// The explanation as text for a terminal.
pub fn to_text(e: &Explanation) -> String {
    let mut out = String::new();
    for c in &e.checks {
        let _ = match c.failure {
            None => writeln!(out, "pass  {:<11} {}", c.name(), c.detail),
            Some(reason) if c.detail.is_empty() => {
                writeln!(out, "FAIL  {:<11} {reason}", c.name())
            }
            Some(reason) => writeln!(out, "FAIL  {:<11} {reason}: {}", c.name(), c.detail),
        };
    }
    let _ = writeln!(out, "\nresponse: {}", e.verdict);
    out
}
