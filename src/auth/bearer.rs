//! Bearer token extraction from request headers (RFC 6750 §2.1).
//!
//! Only the `Authorization` header carries a credential. A token in the `access_token` query
//! parameter is ignored, as OAuth 2.1 forbids it: such a request is treated as having no token.

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::error::RequestFault;

/// The token of `Authorization: Bearer <token>`, `None` when no `Authorization` header is present.
///
/// The scheme is case-insensitive (RFC 7235 §2.1). Two `Authorization` headers, another scheme,
/// an empty token, or a token that is not `token68` (RFC 7235 §2.1) are malformed; a token
/// longer than `max_len` bytes is too large.
pub fn extract(headers: &HeaderMap, max_len: usize) -> Result<Option<&str>, RequestFault> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RequestFault::DuplicateAuthorization);
    }
    let value = value
        .to_str()
        .map_err(|_| RequestFault::MalformedAuthorization)?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(RequestFault::MalformedAuthorization)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(RequestFault::MalformedAuthorization);
    }
    // RFC 6750 §2.1 allows one or more spaces after the scheme; nothing may trail the token.
    let token = token.trim_start_matches(' ');
    if token.len() > max_len {
        return Err(RequestFault::TokenTooLarge);
    }
    if token.is_empty() || !is_token68(token) {
        return Err(RequestFault::MalformedAuthorization);
    }
    Ok(Some(token))
}

/// RFC 7235 §2.1: `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
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
    fn malformed_headers_are_refused() {
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwYXNz",
            "Bearer a b",
            "Bearer a,b",
            "Token abc",
        ] {
            assert_eq!(
                extract(&headers(&[bad]), 100),
                Err(RequestFault::MalformedAuthorization),
                "{bad}"
            );
        }
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        assert_eq!(
            extract(&headers(&["Bearer a", "Bearer b"]), 100),
            Err(RequestFault::DuplicateAuthorization)
        );
    }

    #[test]
    fn oversized_tokens_are_refused() {
        let token = "a".repeat(101);
        assert_eq!(
            extract(&headers(&[&format!("Bearer {token}")]), 100),
            Err(RequestFault::TokenTooLarge)
        );
        assert!(extract(&headers(&[&format!("Bearer {}", &token[..100])]), 100).is_ok());
    }
}
