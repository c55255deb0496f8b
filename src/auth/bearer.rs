//! Bearer token extraction from request headers (RFC 6750 §2.1), and the `access_token` query
//! parameter (RFC 6750 §2.3), which is never a credential here.
//!
//! Only the `Authorization` header carries a credential. A token in the `access_token` query
//! parameter is ignored, as OAuth 2.1 forbids that method; sent together with a header token it
//! makes the request malformed (RFC 6750 §2: one method only), and it is removed before the
//! request goes upstream in every case, so it never reaches a backend's access log.

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::error::{GatewayError, RequestFault, TokenFault};

/// The token of `Authorization: Bearer <token>`, `None` when no `Authorization` header is present.
///
/// The scheme is case-insensitive (RFC 7235 §2.1). Following RFC 6750 §3.1:
/// - another scheme (`Basic`, `Token`, `DPoP`) is the same as no bearer credentials: 401
///   without an error code ([`GatewayError::UnsupportedScheme`]);
/// - a token that is not `token68` is a malformed *token*: 401 `invalid_token`;
/// - two `Authorization` headers, a header that is not visible ASCII, `Bearer` without a token,
///   or a token over `max_len` bytes make a malformed *request*: 400 `invalid_request`.
pub fn extract(headers: &HeaderMap, max_len: usize) -> Result<Option<&str>, GatewayError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = GatewayError::InvalidRequest(RequestFault::MalformedAuthorization);
    if values.next().is_some() {
        return Err(GatewayError::InvalidRequest(
            RequestFault::DuplicateAuthorization,
        ));
    }
    let value = value.to_str().map_err(|_| malformed.clone())?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(GatewayError::UnsupportedScheme);
    }
    // RFC 6750 §2.1 allows one or more spaces after the scheme; nothing may trail the token.
    let token = token.trim_start_matches(' ');
    if token.len() > max_len {
        return Err(GatewayError::InvalidRequest(RequestFault::TokenTooLarge));
    }
    if token.is_empty() {
        return Err(malformed);
    }
    if !is_token68(token) {
        return Err(GatewayError::InvalidToken(TokenFault::Malformed));
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

/// True when some parameter of `query` is, as a backend decodes it, `access_token`.
pub fn query_has_access_token(query: &str) -> bool {
    query_params(query).any(is_access_token_param)
}

/// `query` without its `access_token` parameters; `None` when it has none (the common case
/// costs no allocation).
pub fn query_without_access_token(query: &str) -> Option<String> {
    if !query_has_access_token(query) {
        return None;
    }
    let kept: Vec<&str> = query_params(query)
        .filter(|p| !p.is_empty() && !is_access_token_param(p))
        .collect();
    Some(kept.join("&"))
}

/// The `name=value` pieces of a query. Both `&` and `;` separate: older Python and Java
/// parsers split on `;` too.
fn query_params(query: &str) -> impl Iterator<Item = &str> {
    query.split(['&', ';'])
}

/// Is this parameter named `access_token` the way PHP, Rack, Werkzeug or Express would read it?
/// The name is percent-decoded (`+` is a space), and PHP's renaming is applied: leading spaces
/// dropped, ` `, `.` and `[` turned into `_`, so `access.token` and `access_token[]` count too.
fn is_access_token_param(param: &str) -> bool {
    const NAME: &[u8] = b"access_token";
    let name = param.split('=').next().unwrap_or_default().as_bytes();
    if name == NAME {
        return true;
    }
    if !name
        .iter()
        .any(|b| matches!(b, b'%' | b'+' | b'.' | b'[' | b' '))
    {
        return false;
    }
    let mut decoded = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let b = match name[i] {
            b'%' if i + 2 < name.len() => {
                match std::str::from_utf8(&name[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        i += 2;
                        v
                    }
                    None => b'%',
                }
            }
            b'+' => b' ',
            other => other,
        };
        decoded.push(b);
        i += 1;
    }
    let start = decoded
        .iter()
        .position(|&b| b != b' ')
        .unwrap_or(decoded.len());
    let mangled: Vec<u8> = decoded[start..]
        .iter()
        .map(|&b| {
            if matches!(b, b' ' | b'.' | b'[') {
                b'_'
            } else {
                b
            }
        })
        .collect();
    mangled == NAME
        || (mangled.starts_with(NAME) && decoded[start..].get(NAME.len()) == Some(&b'['))
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
                Err(GatewayError::InvalidRequest(
                    RequestFault::MalformedAuthorization
                )),
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
                Err(GatewayError::UnsupportedScheme),
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
                Err(GatewayError::InvalidToken(TokenFault::Malformed)),
                "{bad}"
            );
        }
    }

    #[test]
    fn finds_access_token_parameters_as_backends_decode_them() {
        for q in [
            "access_token=x",
            "a=1&access_token=x",
            "a=1;access_token=x",
            "access%5Ftoken=x",
            "%61ccess_token=x",
            "access.token=x",
            "access+token=x",
            "access%20token=x",
            "access_token[]=x",
            "access_token[a]=x",
            " access_token=x",
            "access_token",
        ] {
            assert!(query_has_access_token(q), "{q}");
        }
        for q in [
            "",
            "a=1",
            "access_tokens=x",
            "xaccess_token=1",
            "token=access_token",
            "access_token%",
        ] {
            assert!(!query_has_access_token(q), "{q}");
        }
    }

    #[test]
    fn removes_access_token_parameters_and_keeps_the_rest() {
        assert_eq!(query_without_access_token("a=1&b=2"), None);
        assert_eq!(
            query_without_access_token("a=1&access_token=x&b=2").as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(
            query_without_access_token("access%5Ftoken=x").as_deref(),
            Some("")
        );
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        assert_eq!(
            extract(&headers(&["Bearer a", "Bearer b"]), 100),
            Err(GatewayError::InvalidRequest(
                RequestFault::DuplicateAuthorization
            ))
        );
    }

    #[test]
    fn oversized_tokens_are_refused() {
        let token = "a".repeat(101);
        assert_eq!(
            extract(&headers(&[&format!("Bearer {token}")]), 100),
            Err(GatewayError::InvalidRequest(RequestFault::TokenTooLarge))
        );
        assert!(extract(&headers(&[&format!("Bearer {}", &token[..100])]), 100).is_ok());
    }
}
