//! Bearer token extraction from request headers (RFC 6750 §2.1), and the `access_token` query
//! parameter (RFC 6750 §2.3), which is never a credential here.
//!
//! Only the `Authorization` header carries a credential. A token in the `access_token` query
//! parameter is ignored, as OAuth 2.1 forbids that method; sent together with a header token it
//! makes the request malformed (RFC 6750 §2: one method only), and it is removed before the
//! request goes upstream in every case, so it never reaches a backend's access log.

use http::header::AUTHORIZATION;
use http::HeaderMap;

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

impl RequestFault {
    /// Every fault (the label values of `portcullis_rejections_total`, initialised at 0).
    pub const ALL: [Self; 4] = [
        Self::DuplicateAuthorization,
        Self::MalformedAuthorization,
        Self::TokenTooLarge,
        Self::TokenInHeaderAndQuery,
    ];

    /// A stable, bounded label for logs and metrics (the request's reason).
    pub fn reason(self) -> &'static str {
        match self {
            Self::DuplicateAuthorization => "duplicate_authorization",
            Self::MalformedAuthorization => "malformed",
            Self::TokenTooLarge => "token_too_large",
            Self::TokenInHeaderAndQuery => "token_in_header_and_query",
        }
    }
}

/// Why the `Authorization` header holds no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// Another scheme (`Basic`, `Token`, `DPoP`): no bearer credentials, 401 without an error
    /// code (RFC 6750 §3.1).
    UnsupportedScheme,
    /// A malformed request: 400 `invalid_request`.
    Request(RequestFault),
    /// A token that is not `token68`: 401 `invalid_token`.
    MalformedToken,
}

/// The token of `Authorization: Bearer <token>`, `None` when no `Authorization` header is present.
///
/// The scheme is case-insensitive (RFC 7235 §2.1). Following RFC 6750 §3.1:
/// - another scheme (`Basic`, `Token`, `DPoP`) is the same as no bearer credentials: 401
///   without an error code ([`BearerError::UnsupportedScheme`]);
/// - a token that is not `token68` is a malformed *token*: 401 `invalid_token`;
/// - two `Authorization` headers, a header that is not visible ASCII, `Bearer` without a token,
///   or a token over `max_len` bytes make a malformed *request*: 400 `invalid_request`.
pub fn extract(headers: &HeaderMap, max_len: usize) -> Result<Option<&str>, BearerError> {
    match credential(headers, max_len)? {
        Some(Credential {
            scheme: Scheme::Bearer,
            token,
        }) => Ok(Some(token)),
        Some(_) => Err(BearerError::UnsupportedScheme),
        None => Ok(None),
    }
}

/// How an access token is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP`, with a `DPoP` proof header (RFC 9449 §7.1).
    Dpop,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => "DPoP",
        }
    }
}

/// An access token and the scheme it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential<'h> {
    pub scheme: Scheme,
    pub token: &'h str,
}

/// As [`extract`], accepting the `DPoP` scheme too (RFC 9449 §7.1: the same `token68` syntax).
pub fn credential(
    headers: &HeaderMap,
    max_len: usize,
) -> Result<Option<Credential<'_>>, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = BearerError::Request(RequestFault::MalformedAuthorization);
    if values.next().is_some() {
        return Err(BearerError::Request(RequestFault::DuplicateAuthorization));
    }
    let value = value.to_str().map_err(|_| malformed)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = match scheme {
        s if s.eq_ignore_ascii_case("bearer") => Scheme::Bearer,
        s if s.eq_ignore_ascii_case("dpop") => Scheme::Dpop,
        _ => return Err(BearerError::UnsupportedScheme),
    };
    // RFC 6750 §2.1 allows one or more spaces after the scheme; nothing may trail the token.
    let token = token.trim_start_matches(' ');
    if token.len() > max_len {
        return Err(BearerError::Request(RequestFault::TokenTooLarge));
    }
    if token.is_empty() {
        return Err(malformed);
    }
    if !is_token68(token) {
        return Err(BearerError::MalformedToken);
    }
    Ok(Some(Credential { scheme, token }))
}

/// RFC 7235 §2.1: `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The query parameter RFC 6750 §2.3 defines, read as backends decode names ([`crate::query`]).
pub const ACCESS_TOKEN_PARAM: &str = "access_token";

/// True when some parameter of `query` is, as a backend decodes it, `access_token`.
pub fn query_has_access_token(query: &str) -> bool {
    crate::query::has(query, ACCESS_TOKEN_PARAM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn no_header_is_no_token() {
        assert_eq!(extract(&headers(&[]), 100), Ok(None));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(
            extract(&headers(&["bearer abc.def.ghi"]), 100),
            Ok(Some("abc.def.ghi"))
        );
        assert_eq!(extract(&headers(&["BEARER abc"]), 100), Ok(Some("abc")));
        assert_eq!(extract(&headers(&["Bearer   abc"]), 100), Ok(Some("abc")));
    }

    #[test]
    fn malformed_headers_are_invalid_requests() {
        for bad in ["Bearer", "Bearer ", "bearer    "] {
            assert_eq!(
                extract(&headers(&[bad]), 100),
                Err(BearerError::Request(RequestFault::MalformedAuthorization)),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_schemes_are_no_bearer_credentials() {
        // RFC 6750 §3.1: "If the request lacks any authentication information (e.g., the client
        // was unaware that authentication is necessary or attempted using an unsupported
        // authentication method), the resource server SHOULD NOT include an error code".
        for other in [
            "Basic dXNlcjpwYXNz",
            "Token abc",
            "DPoP abc.def.ghi",
            "Negotiate",
            "Basic",
        ] {
            assert_eq!(
                extract(&headers(&[other]), 100),
                Err(BearerError::UnsupportedScheme),
                "{other}"
            );
        }
    }

    #[test]
    fn a_token_that_is_not_token68_is_an_invalid_token() {
        // RFC 6750 §3.1: a malformed access token is `invalid_token`.
        for bad in [
            "Bearer a b",
            "Bearer a,b",
            "Bearer *",
            "Bearer a!b.c.d",
            "Bearer ==",
        ] {
            assert_eq!(
                extract(&headers(&[bad]), 100),
                Err(BearerError::MalformedToken),
                "{bad}"
            );
        }
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        assert_eq!(
            extract(&headers(&["Bearer a", "Bearer b"]), 100),
            Err(BearerError::Request(RequestFault::DuplicateAuthorization))
        );
    }

    #[test]
    fn oversized_tokens_are_refused() {
        let token = "a".repeat(101);
        assert_eq!(
            extract(&headers(&[&format!("Bearer {token}")]), 100),
            Err(BearerError::Request(RequestFault::TokenTooLarge))
        );
        assert!(extract(&headers(&[&format!("Bearer {}", &token[..100])]), 100).is_ok());
    }
}
