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

/// Why a request was malformed at the HTTP level (RFC 6750 §3.1 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// More than one `Authorization` header.
    DuplicateAuthorization,
    /// An `Authorization: Bearer` header that is not `Bearer <token68>`.
    MalformedAuthorization,
    /// A bearer token over the configured size limit.
    TokenTooLarge,
    /// A token in the `Authorization` header and an `access_token` query parameter
    /// (RFC 6750 §2: clients MUST NOT use more than one method).
    TokenInHeaderAndQuery,
}

/// Why a request path was refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathFault {
    /// The path does not start with `/`.
    NotAbsolute,
    /// An encoded `/` (`%2F`) or `\` (`%5C`), or a literal `\`.
    EncodedSeparator,
    /// A NUL byte, literal or encoded.
    Nul,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// A `..` segment that would climb above `/`.
    ClimbsAboveRoot,
    /// A dot segment carrying path parameters (`..;x`), which some servlet containers resolve.
    DotSegmentParameters,
    /// The request target is not valid UTF-8.
    NotUtf8,
    /// A segment carries path parameters (`/admin;x/users`), which servlet containers strip
    /// before mapping; refused unless the route says `path_parameters: allow`.
    Parameters,
    /// Upper case that a case-insensitive backend would route to another route.
    CaseAmbiguous,
    /// A trailing `/` or a format suffix (`/x.json`) that backends disagree about, and that
    /// selects another route depending on the reading.
    SuffixAmbiguous,
    /// A `.php` segment followed by more path (`/index.php/admin`): PHP front controllers route
    /// on what follows; refused unless the route says `script_path_info: allow`.
    ScriptPathInfo,
}

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
}

/// Every way the request path can refuse or fail a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// No route matches host and path.
    NoRoute,
    /// Routes match host and path, none of them this method (405 with `Allow`).
    MethodNotAllowed { allow: Arc<str> },
    /// The method, request-target form or host is refused before routing.
    BadTarget(crate::target::TargetFault),
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
    /// The token is valid but lacks the route's scopes; the challenge lists them.
    InsufficientScope { required: Arc<str> },
    /// The token's issuer has no usable keys yet; retry shortly (503, not 401).
    KeysUnavailable,
    /// The upstream could not be reached or failed mid-request.
    UpstreamUnavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The TLS connection uses an older version than the listener's `min_version`.
    TlsVersionTooOld,
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
            | GatewayError::InvalidToken(_) => 401,
            GatewayError::InsufficientScope { .. } | GatewayError::TlsVersionTooOld => 403,
            GatewayError::KeysUnavailable => 503,
            GatewayError::UpstreamUnavailable => 502,
            GatewayError::UpstreamTimeout => 504,
        }
    }

    /// A stable, bounded label for logs and metrics: never derived from request data.
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "no_route",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::BadTarget(fault) => fault.reason(),
            GatewayError::UnsupportedScheme => "unsupported_scheme",
            GatewayError::BadPath(fault) => match fault {
                PathFault::NotAbsolute => "path_not_absolute",
                PathFault::EncodedSeparator => "path_encoded_separator",
                PathFault::Nul => "path_nul",
                PathFault::BadPercentEncoding => "path_bad_percent_encoding",
                PathFault::ClimbsAboveRoot => "path_climbs_above_root",
                PathFault::DotSegmentParameters => "path_dot_segment_parameters",
                PathFault::NotUtf8 => "path_not_utf8",
                PathFault::Parameters => "path_parameters",
                PathFault::CaseAmbiguous => "path_case_ambiguous",
                PathFault::SuffixAmbiguous => "path_suffix_ambiguous",
                PathFault::ScriptPathInfo => "path_script_info",
            },
            GatewayError::InvalidRequest(fault) => match fault {
                RequestFault::DuplicateAuthorization => "duplicate_authorization",
                RequestFault::MalformedAuthorization => "malformed",
                RequestFault::TokenTooLarge => "token_too_large",
                RequestFault::TokenInHeaderAndQuery => "token_in_header_and_query",
            },
            GatewayError::MissingToken => "missing",
            GatewayError::InvalidToken(fault) => match fault {
                TokenFault::Malformed => "malformed_token",
                TokenFault::AlgorithmNotAllowed => "algorithm_not_allowed",
                TokenFault::UnsupportedCritical => "unsupported_crit",
                TokenFault::UnknownKid => "unknown_kid",
                TokenFault::KeyAlgorithmMismatch => "key_algorithm_mismatch",
                TokenFault::BadSignature => "bad_signature",
                TokenFault::WrongIssuer => "wrong_issuer",
                TokenFault::WrongAudience => "wrong_audience",
                TokenFault::MissingExpiry => "missing_exp",
                TokenFault::Expired => "expired",
                TokenFault::NotYetValid => "not_yet_valid",
                TokenFault::IssuedInFuture => "issued_in_future",
                TokenFault::WrongType => "wrong_type",
                TokenFault::KeysNotLoaded => "keys_not_loaded",
                TokenFault::LifetimeTooLong => "lifetime_too_long",
                TokenFault::ProfileViolation => "profile_violation",
                TokenFault::Revoked(by) => match by {
                    crate::revocation::RevokedBy::Jti => "revoked_jti",
                    crate::revocation::RevokedBy::Subject => "revoked_subject",
                    crate::revocation::RevokedBy::Client => "revoked_client",
                },
            },
            GatewayError::InsufficientScope { .. } => "insufficient_scope",
            GatewayError::KeysUnavailable => "keys_not_loaded",
            GatewayError::UpstreamUnavailable => "upstream_unavailable",
            GatewayError::UpstreamTimeout => "upstream_timeout",
            GatewayError::TlsVersionTooOld => "tls_version_too_old",
        }
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
            GatewayError::InsufficientScope { .. } => "insufficient_scope",
            GatewayError::KeysUnavailable => "temporarily_unavailable",
            GatewayError::UpstreamUnavailable => "bad_gateway",
            GatewayError::UpstreamTimeout => "gateway_timeout",
            GatewayError::TlsVersionTooOld => "tls_version_too_old",
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
            GatewayError::InsufficientScope { .. } => {
                "The access token does not grant the scope this request needs."
            }
            GatewayError::KeysUnavailable => "The gateway cannot check tokens yet; retry shortly.",
            GatewayError::UpstreamUnavailable => "The upstream service is unavailable.",
            GatewayError::UpstreamTimeout => "The upstream service did not answer in time.",
            GatewayError::TlsVersionTooOld => "This endpoint requires a newer TLS version.",
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
        retry_after: matches!(error, GatewayError::KeysUnavailable)
            .then_some(KEYS_RETRY_AFTER_SECONDS),
        allow: match error {
            GatewayError::MethodNotAllowed { allow } => Some(Arc::clone(allow)),
            _ => None,
        },
        body: Bytes::from(body.to_string()),
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
