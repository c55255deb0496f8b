//! The request path's one error type, [`GatewayError`], and its one renderer, [`render`].
//!
//! Every rejection the gateway produces (no route, malformed request, missing or invalid token,
//! insufficient scope, upstream failure) is a `GatewayError`. [`render`] turns it into the status,
//! the RFC 6750 §3 `WWW-Authenticate` challenge and a small JSON body. The client only ever sees a
//! generic description; the precise reason ([`GatewayError::reason`]) goes to logs and metrics.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// `Retry-After` for a request refused because issuer keys are not loaded yet.
pub const KEYS_RETRY_AFTER_SECONDS: u32 = 5;

/// The realm announced in every Bearer challenge.
pub const REALM: &str = "portcullis";

/// Every way the request path can refuse or fail a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// No route matches host and path.
    NoRoute,
    /// Routes match host and path, none of them this method (405 with `Allow`).
    MethodNotAllowed { allow: Arc<str> },
    /// The method, request-target form or host is refused before routing.
    BadTarget(TargetFault),
    /// The request path cannot be normalised safely.
    BadPath(PathFault),
    /// The request's credentials are malformed.
    InvalidRequest(RequestFault),
    /// A protected route was called without a bearer token.
    MissingToken,
    /// The `Authorization` header uses another scheme (`Basic`, `DPoP`): the same answer as no
    /// credentials (RFC 6750 §3.1), with its own reason in logs and metrics.
    UnsupportedScheme,
    /// The bearer token was refused.
    InvalidToken(TokenFault),
    /// The DPoP proof was refused (RFC 9449 §7.1); `algs` are the accepted proof algorithms.
    InvalidDpopProof {
        fault: crate::auth::dpop::ProofFault,
        algs: Arc<str>,
    },
    /// The token is valid but lacks the route's scopes; the challenge lists them.
    InsufficientScope { required: Arc<str> },
    /// The token's issuer has no usable keys yet; retry shortly (503, not 401).
    KeysUnavailable,
    /// The introspection endpoint did not answer for an opaque token not in the cache: the token
    /// may be fine, so 503 and retry, not 401.
    IntrospectionUnavailable,
    /// The upstream could not be reached or failed mid-request.
    UpstreamUnavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The TLS connection uses an older version than the listener's `min_version`.
    TlsVersionTooOld,
    /// A CORS preflight the route's policy does not allow (origin, method or headers): `403`
    /// with no CORS header.
    CorsRefused,
    /// A rate limit of the route refused the request (RFC 6585 §4: 429, with `Retry-After`).
    RateLimited(Arc<crate::rate_limit::Throttled>),
}

pub use crate::auth::bearer::RequestFault;
pub use crate::auth::jwt::TokenFault;
pub use crate::routes::PathFault;
pub use crate::target::TargetFault;

impl From<PathFault> for GatewayError {
    fn from(fault: PathFault) -> Self {
        GatewayError::BadPath(fault)
    }
}

impl From<TargetFault> for GatewayError {
    fn from(fault: TargetFault) -> Self {
        GatewayError::BadTarget(fault)
    }
}

impl From<crate::auth::bearer::BearerError> for GatewayError {
    fn from(e: crate::auth::bearer::BearerError) -> Self {
        use crate::auth::bearer::BearerError;
        match e {
            BearerError::UnsupportedScheme => GatewayError::UnsupportedScheme,
            BearerError::Request(fault) => GatewayError::InvalidRequest(fault),
            BearerError::MalformedToken => GatewayError::InvalidToken(TokenFault::Malformed),
        }
    }
}

impl From<RequestFault> for GatewayError {
    fn from(fault: RequestFault) -> Self {
        GatewayError::InvalidRequest(fault)
    }
}

/// A refused token is 401 `invalid_token`, except when the issuer's keys are not loaded: that is
/// the gateway's problem, 503 and retry.
impl From<TokenFault> for GatewayError {
    fn from(fault: TokenFault) -> Self {
        match fault {
            TokenFault::KeysNotLoaded => GatewayError::KeysUnavailable,
            fault => GatewayError::InvalidToken(fault),
        }
    }
}

impl GatewayError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::NoRoute => 404,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::BadPath(_)
            | GatewayError::BadTarget(_)
            | GatewayError::InvalidRequest(_) => 400,
            GatewayError::MissingToken
            | GatewayError::UnsupportedScheme
            | GatewayError::InvalidToken(_)
            | GatewayError::InvalidDpopProof { .. } => 401,
            GatewayError::InsufficientScope { .. }
            | GatewayError::TlsVersionTooOld
            | GatewayError::CorsRefused => 403,
            GatewayError::KeysUnavailable | GatewayError::IntrospectionUnavailable => 503,
            GatewayError::UpstreamUnavailable => 502,
            GatewayError::UpstreamTimeout => 504,
            GatewayError::RateLimited(_) => 429,
        }
    }

    /// A stable, bounded label for logs and metrics: never derived from request data.
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "no_route",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::BadTarget(fault) => fault.reason(),
            GatewayError::UnsupportedScheme => "unsupported_scheme",
            GatewayError::BadPath(fault) => fault.reason(),
            GatewayError::InvalidRequest(fault) => fault.reason(),
            GatewayError::MissingToken => "missing",
            GatewayError::InvalidToken(fault) => fault.reason(),
            GatewayError::InvalidDpopProof { fault, .. } => fault.reason(),
            GatewayError::InsufficientScope { .. } => "insufficient_scope",
            GatewayError::KeysUnavailable => "keys_not_loaded",
            GatewayError::IntrospectionUnavailable => "introspection_unavailable",
            GatewayError::UpstreamUnavailable => "upstream_unavailable",
            GatewayError::UpstreamTimeout => "upstream_timeout",
            GatewayError::TlsVersionTooOld => "tls_version_too_old",
            GatewayError::CorsRefused => "cors_refused",
            GatewayError::RateLimited(_) => "rate_limited",
        }
    }

    /// The reasons a request on a route can be refused or failed with, once routed (the
    /// `reason` label values initialised at 0 for that route): for a protected route the
    /// credential, token, revocation, scope and upstream reasons; for a public one the upstream's.
    pub fn route_reasons(protected: bool) -> Vec<&'static str> {
        let mut reasons = vec![
            "upstream_unavailable",
            "upstream_timeout",
            "cors_refused",
            "rate_limited",
        ];
        if protected {
            reasons.extend([
                "missing",
                "unsupported_scheme",
                "insufficient_scope",
                "introspection_unavailable",
            ]);
            reasons.extend(RequestFault::ALL.map(RequestFault::reason));
            reasons.extend(TokenFault::ALL.map(TokenFault::reason));
            reasons.extend(crate::auth::dpop::ProofFault::ALL.map(|f| f.reason()));
        }
        reasons
    }

    /// The reasons of a request refused before a route was kept (route `-`).
    pub fn unrouted_reasons() -> Vec<&'static str> {
        let mut reasons = vec!["no_route", "method_not_allowed", "tls_version_too_old"];
        reasons.extend(TargetFault::ALL.map(TargetFault::reason));
        reasons.extend(PathFault::ALL.map(PathFault::reason));
        reasons
    }

    /// The `error` code of the JSON body (and, for auth errors, of the challenge).
    fn code(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::BadPath(_)
            | GatewayError::BadTarget(_)
            | GatewayError::InvalidRequest(_) => "invalid_request",
            // RFC 6750 §3.1: a request without credentials carries no error code in the
            // challenge; the body still needs one.
            GatewayError::MissingToken | GatewayError::UnsupportedScheme => "unauthorized",
            GatewayError::InvalidToken(_) => "invalid_token",
            GatewayError::InvalidDpopProof { .. } => "invalid_dpop_proof",
            GatewayError::InsufficientScope { .. } => "insufficient_scope",
            GatewayError::KeysUnavailable | GatewayError::IntrospectionUnavailable => {
                "temporarily_unavailable"
            }
            GatewayError::UpstreamUnavailable => "bad_gateway",
            GatewayError::UpstreamTimeout => "gateway_timeout",
            GatewayError::TlsVersionTooOld => "tls_version_too_old",
            GatewayError::CorsRefused => "cors_refused",
            GatewayError::RateLimited(_) => "rate_limited",
        }
    }

    /// The generic description shown to clients; it never says which check failed.
    fn description(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "No route matches this request.",
            GatewayError::MethodNotAllowed { .. } => "This method is not allowed here.",
            GatewayError::BadTarget(_) => "The request is malformed.",
            GatewayError::BadPath(_) => "The request path is malformed.",
            GatewayError::InvalidRequest(_) => "The request's credentials are malformed.",
            GatewayError::MissingToken | GatewayError::UnsupportedScheme => {
                "A bearer access token is required."
            }
            GatewayError::InvalidToken(_) => "The access token is invalid or expired.",
            GatewayError::InvalidDpopProof { .. } => "The DPoP proof is invalid.",
            GatewayError::InsufficientScope { .. } => {
                "The access token does not grant the scope this request needs."
            }
            GatewayError::KeysUnavailable => "The gateway cannot check tokens yet; retry shortly.",
            GatewayError::IntrospectionUnavailable => {
                "The gateway cannot check this token now; retry shortly."
            }
            GatewayError::UpstreamUnavailable => "The upstream service is unavailable.",
            GatewayError::UpstreamTimeout => "The upstream service did not answer in time.",
            GatewayError::TlsVersionTooOld => "This endpoint requires a newer TLS version.",
            GatewayError::CorsRefused => "This origin may not call this API from a browser.",
            GatewayError::RateLimited(_) => "Too many requests; retry after the time given.",
        }
    }

    /// The RFC 6750 §3 `WWW-Authenticate` value, for errors that carry a challenge.
    pub fn www_authenticate(&self) -> Option<String> {
        match self {
            GatewayError::MissingToken | GatewayError::UnsupportedScheme => {
                Some(format!("Bearer realm=\"{REALM}\""))
            }
            // A malformed credentials header is an auth failure (RFC 6750 §3.1 invalid_request),
            // a malformed path is not.
            GatewayError::InvalidRequest(_) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_request\""
            )),
            GatewayError::InvalidToken(_) => {
                Some(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""))
            }
            // RFC 9449 §7.1.
            GatewayError::InvalidDpopProof { algs, .. } => Some(format!(
                "DPoP algs=\"{algs}\", error=\"invalid_dpop_proof\""
            )),
            GatewayError::InsufficientScope { required } => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{required}\""
            )),
            _ => None,
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for GatewayError {}

/// A rejection ready to be written: status, optional challenge and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub status: u16,
    pub www_authenticate: Option<String>,
    /// `Retry-After` seconds, for temporary refusals.
    pub retry_after: Option<u32>,
    /// `Allow` (RFC 9110 §10.2.1), for 405.
    pub allow: Option<Arc<str>>,
    /// `RateLimit` and `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers), for 429.
    pub ratelimit: Option<(http::HeaderValue, Option<http::HeaderValue>)>,
    pub body: Bytes,
}

/// The one renderer for every rejection the gateway writes.
pub fn render(error: &GatewayError) -> Rendered {
    let body = serde_json::json!({
        "error": error.code(),
        "error_description": error.description(),
    });
    Rendered {
        status: error.status(),
        www_authenticate: error.www_authenticate(),
        retry_after: match error {
            GatewayError::KeysUnavailable | GatewayError::IntrospectionUnavailable => {
                Some(KEYS_RETRY_AFTER_SECONDS)
            }
            GatewayError::RateLimited(t) => Some(u32::try_from(t.retry_after).unwrap_or(u32::MAX)),
            _ => None,
        },
        ratelimit: match error {
            GatewayError::RateLimited(t) => t.ratelimit.clone().map(|r| (r, t.policy.clone())),
            _ => None,
        },
        allow: match error {
            GatewayError::MethodNotAllowed { allow } => Some(Arc::clone(allow)),
            _ => None,
        },
        body: Bytes::from(body.to_string()),
    }
}

#[cfg(test)]
mod reason_lists {
    use super::*;

    /// Each list names every variant: adding one makes these matches fail to compile until it
    /// is added to its `ALL` too.
    #[test]
    fn the_lists_of_faults_are_complete_and_their_reasons_distinct() {
        for f in TokenFault::ALL {
            match f {
                TokenFault::Malformed
                | TokenFault::AlgorithmNotAllowed
                | TokenFault::UnsupportedCritical
                | TokenFault::UnknownKid
                | TokenFault::KeyAlgorithmMismatch
                | TokenFault::BadSignature
                | TokenFault::WrongIssuer
                | TokenFault::WrongAudience
                | TokenFault::MissingExpiry
                | TokenFault::Expired
                | TokenFault::NotYetValid
                | TokenFault::IssuedInFuture
                | TokenFault::WrongType
                | TokenFault::Revoked(_)
                | TokenFault::LifetimeTooLong
                | TokenFault::ProfileViolation
                | TokenFault::KeysNotLoaded
                | TokenFault::CertificateMissing
                | TokenFault::CertificateMismatch
                | TokenFault::DpopBound
                | TokenFault::UnsupportedConfirmation
                | TokenFault::DpopUnbound
                | TokenFault::DpopRequired
                | TokenFault::DpopKeyMismatch
                | TokenFault::Inactive
                | TokenFault::NotAnAccessToken => {}
            }
        }
        for f in PathFault::ALL {
            match f {
                PathFault::NotAbsolute
                | PathFault::EncodedSeparator
                | PathFault::Nul
                | PathFault::BadPercentEncoding
                | PathFault::ClimbsAboveRoot
                | PathFault::DotSegmentParameters
                | PathFault::NotUtf8
                | PathFault::Parameters
                | PathFault::CaseAmbiguous
                | PathFault::SuffixAmbiguous
                | PathFault::ScriptPathInfo
                | PathFault::NotCanonical => {}
            }
        }
        for f in TargetFault::ALL {
            match f {
                TargetFault::MethodNotUpperCase
                | TargetFault::TargetForm
                | TargetFault::MissingHost
                | TargetFault::DuplicateHost
                | TargetFault::InvalidHost
                | TargetFault::HostMismatch
                | TargetFault::InvalidMethodOverride => {}
            }
        }
        for f in RequestFault::ALL {
            match f {
                RequestFault::DuplicateAuthorization
                | RequestFault::MalformedAuthorization
                | RequestFault::TokenTooLarge
                | RequestFault::TokenInHeaderAndQuery => {}
            }
        }
        let mut all = GatewayError::route_reasons(true);
        all.extend(GatewayError::unrouted_reasons());
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a reason is used twice: {all:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let r = render(&GatewayError::MissingToken);
        assert_eq!(r.status, 401);
        assert_eq!(
            r.www_authenticate.as_deref(),
            Some("Bearer realm=\"portcullis\"")
        );
    }

    #[test]
    fn insufficient_scope_names_required_scopes() {
        let r = render(&GatewayError::InsufficientScope {
            required: Arc::from("read:orders write:orders"),
        });
        assert_eq!(r.status, 403);
        assert_eq!(
            r.www_authenticate.as_deref(),
            Some("Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"read:orders write:orders\"")
        );
    }

    #[test]
    fn body_is_generic_json_and_never_the_precise_reason() {
        let r = render(&GatewayError::InvalidToken(TokenFault::WrongAudience));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert!(!r.body.windows(8).any(|w| w == b"audience"));
    }

    #[test]
    fn keys_not_loaded_is_503_with_retry_after() {
        let r = render(&GatewayError::KeysUnavailable);
        assert_eq!(
            (r.status, r.retry_after, r.www_authenticate),
            (503, Some(5), None)
        );
    }

    #[test]
    fn unsupported_scheme_is_answered_like_no_credentials() {
        // RFC 6750 §3.1: an unsupported authentication method gets no error code.
        let r = render(&GatewayError::UnsupportedScheme);
        assert_eq!(r, render(&GatewayError::MissingToken));
        assert_ne!(
            GatewayError::UnsupportedScheme.reason(),
            GatewayError::MissingToken.reason()
        );
    }

    #[test]
    fn method_not_allowed_carries_allow() {
        let r = render(&GatewayError::MethodNotAllowed {
            allow: Arc::from("GET, HEAD"),
        });
        assert_eq!((r.status, r.allow.as_deref()), (405, Some("GET, HEAD")));
        assert_eq!(r.www_authenticate, None);
    }

    #[test]
    fn path_errors_are_400_without_challenge() {
        let r = render(&GatewayError::BadPath(PathFault::ClimbsAboveRoot));
        assert_eq!(r.status, 400);
        assert_eq!(r.www_authenticate, None);
    }
}
