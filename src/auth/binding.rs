//! Sender-constrained tokens: a token bound to a key (`cnf`, RFC 7800 §3.1) is accepted only
//! from the holder of that key, checked on every request (a cached token too).
//!
//! - `cnf.x5t#S256` (RFC 8705 §3): the base64url SHA-256 of the client certificate the token
//!   was issued to; it must be the certificate of this TLS connection (RFC 8705 §3: otherwise
//!   `401 invalid_token`).
//! - `cnf.jkt` (RFC 9449 §6): a DPoP-bound token. DPoP proofs are not checked yet, so such a
//!   token is refused: a bound token must never be accepted as a plain bearer token (RFC 9449
//!   §7.2), or its binding would protect nothing.
//! - any other confirmation method (`jwk`, `jwe`, `kid`, `jku`), or a `cnf` that is not an object
//!   with one of the above: refused, since its binding cannot be checked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::jwt::TokenFault;

/// RFC 8705 §3.1's confirmation member.
pub const X5T_S256: &str = "x5t#S256";
/// RFC 9449 §6.1's confirmation member.
pub const JKT: &str = "jkt";

/// How a token that passed [`check`] is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// No `cnf`: a bearer token.
    Not,
    /// Bound to the client certificate this connection presented.
    Certificate,
}

/// Check `claims`' `cnf` against the connection's client certificate (`client_cert`: its
/// SHA-256, when the client presented one).
pub fn check(
    claims: &Map<String, Value>,
    client_cert: Option<&[u8; 32]>,
) -> Result<Bound, TokenFault> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(Bound::Not);
    };
    let Some(cnf) = cnf.as_object() else {
        return Err(TokenFault::UnsupportedConfirmation);
    };
    if cnf.contains_key(JKT) {
        return Err(TokenFault::DpopBound);
    }
    let (Some(thumbprint), 1) = (cnf.get(X5T_S256), cnf.len()) else {
        return Err(TokenFault::UnsupportedConfirmation);
    };
    let mut bound_to = [0u8; 32];
    let decoded = thumbprint
        .as_str()
        .and_then(|t| URL_SAFE_NO_PAD.decode_slice(t, &mut bound_to).ok());
    if decoded != Some(32) {
        return Err(TokenFault::UnsupportedConfirmation);
    }
    match client_cert {
        None => Err(TokenFault::CertificateMissing),
        Some(presented) if *presented == bound_to => Ok(Bound::Certificate),
        Some(_) => Err(TokenFault::CertificateMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(cnf: Value) -> Map<String, Value> {
        let Value::Object(m) = json!({ "sub": "alice", "cnf": cnf }) else {
            unreachable!()
        };
        m
    }

    /// The SHA-256 of a certificate, and its `x5t#S256`.
    fn digest() -> [u8; 32] {
        let mut d = [0u8; 32];
        d.copy_from_slice(
            ring::digest::digest(&ring::digest::SHA256, b"a DER certificate").as_ref(),
        );
        d
    }

    fn thumbprint() -> String {
        URL_SAFE_NO_PAD.encode(digest())
    }

    #[test]
    fn an_unbound_token_is_a_bearer_token() {
        let Value::Object(plain) = json!({ "sub": "alice" }) else {
            unreachable!()
        };
        assert_eq!(check(&plain, None), Ok(Bound::Not));
        assert_eq!(check(&plain, Some(&digest())), Ok(Bound::Not));
    }

    /// RFC 8705 §3: the certificate of the connection must be the one the token names.
    #[test]
    fn a_certificate_bound_token_needs_that_certificate() {
        let bound = claims(json!({ "x5t#S256": thumbprint() }));
        assert_eq!(check(&bound, Some(&digest())), Ok(Bound::Certificate));
        assert_eq!(check(&bound, None), Err(TokenFault::CertificateMissing));
        let mut other = digest();
        other[0] ^= 1;
        assert_eq!(
            check(&bound, Some(&other)),
            Err(TokenFault::CertificateMismatch)
        );
    }

    /// RFC 9449 §7.2: a DPoP-bound token is never accepted as a bearer token.
    #[test]
    fn a_dpop_bound_token_is_refused_as_bearer() {
        let bound = claims(json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }));
        assert_eq!(check(&bound, Some(&digest())), Err(TokenFault::DpopBound));
        let both = claims(json!({ "jkt": "x", "x5t#S256": thumbprint() }));
        assert_eq!(check(&both, Some(&digest())), Err(TokenFault::DpopBound));
    }

    #[test]
    fn a_binding_that_cannot_be_checked_is_refused() {
        for cnf in [
            json!("x"),
            json!({}),
            json!({ "jwk": { "kty": "EC" } }),
            json!({ "kid": "k1" }),
            json!({ "x5t#S256": thumbprint(), "kid": "k1" }),
            json!({ "x5t#S256": 42 }),
            json!({ "x5t#S256": "too-short" }),
            json!({ "x5t#S256": format!("{}=", thumbprint()) }),
            // RFC 8705 §3.1's example value: its last character has bits past the digest set,
            // so it is no base64url encoding of a SHA-256.
            json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
        ] {
            assert_eq!(
                check(&claims(cnf.clone()), Some(&digest())),
                Err(TokenFault::UnsupportedConfirmation),
                "{cnf}"
            );
        }
    }
}
