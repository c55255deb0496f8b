//! `X-Request-Id`: keep a well-formed incoming id (so traces join up across hops), otherwise
//! generate one. A malformed id is replaced, never logged as sent, so clients cannot inject log
//! content or unbounded strings through it.

use http::HeaderMap;

/// A `HeaderName` constant: nothing parses the name per request.
pub const HEADER: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Longest incoming id kept.
const MAX_LEN: usize = 128;

/// The id for this request: the client's, when it is 1–128 characters of `[A-Za-z0-9._:-]`
/// (UUIDs, ULIDs, Envoy and nginx ids all fit) and sent once; otherwise a fresh random one.
pub fn from_request(headers: &HeaderMap) -> String {
    let mut values = headers.get_all(HEADER).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if is_well_formed(v.as_bytes()) => {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        }
        _ => generate(),
    }
}

pub fn is_well_formed(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// 128 random bits as 32 lower-case hex digits.
pub fn generate() -> String {
    format!("{:032x}", fastrand::u128(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn keeps_a_well_formed_id() {
        assert_eq!(
            from_request(&headers(&["0f8c7e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"])),
            "0f8c7e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
        );
    }

    #[test]
    fn replaces_malformed_missing_or_repeated_ids() {
        for bad in [vec![], vec!["has space"], vec!["quote\""], vec!["a", "b"]] {
            let id = from_request(&headers(&bad));
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(from_request(&headers(&[&"x".repeat(129)])), "x".repeat(129));
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(generate(), generate());
    }
}
