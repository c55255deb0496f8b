//! Watching the admission checks as they run, for `explain` and tests.
//!
//! [`admit`](super::admit) reports every check it runs, in the order it runs them, to an
//! [`Observer`]. The proxy passes [`Silent`], whose methods are empty and inlined: the details
//! are closures that are never called, so the hot path pays nothing (no `dyn` call, no string).
//! `explain` passes a [`Recorder`], which keeps each check with its outcome.

use std::fmt;

use crate::error::GatewayError;

/// One check of the admission path, in the order the path runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// The request line and host: method, target form, one valid `Host`.
    Target,
    /// Path normalisation (dot segments, percent-encoding, refused encodings).
    Path,
    /// Route lookup by host, normalised path and method, with the ambiguity refusals.
    Route,
    /// The route's rate limits: those keyed by `ip` and `route` right after routing, those
    /// keyed by identity once the token is verified.
    RateLimit,
    /// The negotiated TLS version against the listener's `min_version` (TLS listeners only).
    Tls,
    /// A public route: no token needed, none used.
    Public,
    /// The bearer token: one `Authorization: Bearer` header, within the size limit, and not also
    /// in the query (RFC 6750 §2).
    Bearer,
    /// An opaque token's introspection answer (RFC 7662): active, and its claims checked like a
    /// JWT's.
    Introspection,
    /// The verified-token cache: a hit skips `jws` to `profile` (the route's audiences are still
    /// checked, then revocation and scopes); a miss verifies.
    Cache,
    /// The compact JWS: three base64url parts with a JSON header and payload.
    Jws,
    /// No `crit` header (RFC 7515 §4.1.11).
    Crit,
    /// `alg` names an algorithm portcullis implements (never `none`).
    Alg,
    /// `iss` is one of the route's issuers.
    Iss,
    /// `alg` is in that issuer's allow-list (RFC 8725 §3.1).
    AlgAllowed,
    /// The issuer's keys are loaded.
    Keys,
    /// The signature verifies with the key `kid` names.
    Signature,
    /// The token's `kid` was unknown: one refresh of the issuer's keys, then the checks again.
    KeyRefresh,
    /// `typ` against the issuer's `token_type`.
    Typ,
    /// `exp` (RFC 7519 §4.1.4).
    Exp,
    /// `nbf` (RFC 7519 §4.1.5).
    Nbf,
    /// `iat` not in the future (RFC 7519 §4.1.6).
    Iat,
    /// `aud` names one of the route's (or issuer's) audiences (RFC 7519 §4.1.3).
    Aud,
    /// `exp - iat` within `revocation.max_token_lifetime`.
    Lifetime,
    /// The RFC 9068 §2.2 claims, for `token_type: at+jwt` issuers.
    Profile,
    /// With `Authorization: DPoP`, the request's DPoP proof (RFC 9449 §4.3), used once.
    Dpop,
    /// A token bound to a key (`cnf`) comes from its holder: the client certificate of the
    /// connection (RFC 8705 §3), or the key of the DPoP proof (RFC 9449 §7.1).
    Binding,
    /// The revocation list.
    Revocation,
    /// The route's scopes (RFC 6750 §3.1 `insufficient_scope`).
    Scopes,
    /// The DPoP proof not used before (RFC 9449 §11.1): checked last, once all else passed.
    Replay,
}

impl Step {
    /// The name `explain` prints.
    pub fn name(self) -> &'static str {
        match self {
            Step::Target => "target",
            Step::Path => "path",
            Step::Route => "route",
            Step::RateLimit => "rate_limit",
            Step::Tls => "tls",
            Step::Public => "public",
            Step::Bearer => "bearer",
            Step::Introspection => "introspection",
            Step::Cache => "cache",
            Step::Jws => "jws",
            Step::Crit => "crit",
            Step::Alg => "alg",
            Step::Iss => "iss",
            Step::AlgAllowed => "alg_allowed",
            Step::Keys => "keys",
            Step::Signature => "signature",
            Step::KeyRefresh => "key_refresh",
            Step::Typ => "typ",
            Step::Exp => "exp",
            Step::Nbf => "nbf",
            Step::Iat => "iat",
            Step::Aud => "aud",
            Step::Lifetime => "lifetime",
            Step::Profile => "profile",
            Step::Dpop => "dpop",
            Step::Replay => "replay",
            Step::Binding => "binding",
            Step::Revocation => "revocation",
            Step::Scopes => "scopes",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Told about each check as it runs. `failure` is the reason (as in logs and metrics) when the
/// check refused the request; `detail` describes what the check saw and is only worth calling
/// when someone reads it.
pub trait Observer {
    fn record(
        &mut self,
        step: Step,
        failure: Option<&'static str>,
        detail: impl FnOnce() -> String,
    );
}

/// The observer of the request path: records nothing, costs nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {
    #[inline(always)]
    fn record(&mut self, _: Step, _: Option<&'static str>, _: impl FnOnce() -> String) {}
}

/// One check and its outcome, as recorded by a [`Recorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub step: Step,
    /// The reason the check refused the request (the logged reason); `None` when it passed.
    pub failure: Option<&'static str>,
    /// What the check saw.
    pub detail: String,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    pub fn name(&self) -> &'static str {
        self.step.name()
    }
}

/// Keeps every check, in order.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    pub checks: Vec<Check>,
}

impl Observer for Recorder {
    fn record(
        &mut self,
        step: Step,
        failure: Option<&'static str>,
        detail: impl FnOnce() -> String,
    ) {
        self.checks.push(Check {
            step,
            failure,
            detail: printable(detail()),
        });
    }
}

/// Longest detail kept, in characters: details quote token fields (`kid`, `iss`) a client chose.
const MAX_DETAIL_CHARS: usize = 256;

/// `detail` safe for a log line or a terminal: control characters (newlines, escape sequences)
/// written as escapes, and cut after [`MAX_DETAIL_CHARS`].
pub fn printable(detail: String) -> String {
    let clean = detail.chars().all(|c| !c.is_control()) && detail.len() <= MAX_DETAIL_CHARS;
    if clean {
        return detail;
    }
    let mut out = String::with_capacity(detail.len().min(MAX_DETAIL_CHARS + 8));
    for (n, c) in detail.chars().enumerate() {
        if n == MAX_DETAIL_CHARS {
            out.push('…');
            break;
        }
        match c.is_control() {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    out
}

/// Report `result` as `step` to `obs` and hand it back: the detail of a pass is `pass(value)`,
/// the failure is the error's reason.
#[inline(always)]
pub(crate) fn seen<T, O: Observer>(
    obs: &mut O,
    step: Step,
    result: Result<T, GatewayError>,
    pass: impl FnOnce(&T) -> String,
) -> Result<T, GatewayError> {
    match &result {
        Ok(value) => obs.record(step, None, || pass(value)),
        Err(error) => obs.record(step, Some(error.reason()), String::new),
    }
    result
}

/// The log target of [`Traced`]: `RUST_LOG=portcullis::admission=debug` logs every check of
/// every request.
pub const TRACE_TARGET: &str = "portcullis::admission";

/// Logs each check at debug level under [`TRACE_TARGET`], with the request id: what `explain`
/// prints, for live traffic. The proxy uses it only while that level is enabled. Details never
/// hold a token (the bearer check logs its length only).
#[derive(Debug, Clone, Copy)]
pub struct Traced<'a> {
    pub request_id: &'a str,
}

impl Traced<'_> {
    /// Whether the proxy should trace (one cached filter check).
    #[inline]
    pub fn enabled() -> bool {
        tracing::enabled!(target: TRACE_TARGET, tracing::Level::DEBUG)
    }
}

impl Observer for Traced<'_> {
    fn record(
        &mut self,
        step: Step,
        failure: Option<&'static str>,
        detail: impl FnOnce() -> String,
    ) {
        tracing::debug!(
            target: TRACE_TARGET,
            request_id = self.request_id,
            step = step.name(),
            failure = failure.unwrap_or("-"),
            detail = %printable(detail()),
            "check"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_cannot_forge_log_lines_or_grow_without_bound() {
        assert_eq!(printable("kid k1".to_owned()), "kid k1");
        let forged = printable("kid x\n{\"status\":200}\r\u{1b}[2J".to_owned());
        assert!(!forged.chars().any(char::is_control), "{forged}");
        assert!(
            forged.contains("\\n") && forged.contains("\\u{1b}"),
            "{forged}"
        );
        let long = printable("é".repeat(10_000));
        assert_eq!(long.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(long.ends_with('…'));
    }
}
