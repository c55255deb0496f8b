//! Sender-constrained tokens: a token bound to a key (`cnf`, RFC 7800 §3.1) is accepted only
//! from the holder of that key, checked on every request (a cached token too).
//!
//! - `cnf.x5t#S256` (RFC 8705 §3): the base64url SHA-256 of the client certificate the token
//!   was issued to; it must be the certificate of this TLS connection (RFC 8705 §3: otherwise
//!   `401 invalid_token`).
//! - `cnf.jkt` (RFC 9449 §6): the thumbprint of the client's DPoP key; the token must come with
//!   `Authorization: DPoP` and a valid proof signed by that key ([`super::dpop`]). Presented as
//!   `Bearer` it is refused (RFC 9449 §7.2: a bound token is never a bearer token).
//! - any other confirmation method (`jwk`, `jwe`, `kid`, `jku`), or a `cnf` that is not an object
//!   with one of the above: refused, since its binding cannot be checked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::dpop::DpopMode;
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
    /// Bound to the key of this request's DPoP proof.
    Dpop,
}

/// What the request holds to prove possession.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Possession<'a> {
    /// The SHA-256 of the connection's client certificate, when it presented one.
    pub client_cert: Option<&'a [u8; 32]>,
    /// With `Authorization: DPoP`, the thumbprint of the checked proof's key.
    pub dpop_jkt: Option<&'a str>,
}

/// Check `claims`' `cnf` against what the request holds, under the issuer's `dpop` setting.
pub fn check(
    claims: &Map<String, Value>,
    held: Possession<'_>,
    dpop: DpopMode,
) -> Result<Bound, TokenFault> {
    let Some(cnf) = claims.get("cnf") else {
        return match (held.dpop_jkt, dpop) {
            // RFC 9449 §7.1: the DPoP scheme carries DPoP-bound tokens only.
            (Some(_), _) => Err(TokenFault::DpopUnbound),
            (None, DpopMode::Required) => Err(TokenFault::DpopRequired),
            (None, _) => Ok(Bound::Not),
        };
    };
    let Some(cnf) = cnf.as_object() else {
        return Err(TokenFault::UnsupportedConfirmation);
    };
    if let Some(jkt) = cnf.get(JKT) {
        let (Some(jkt), 1) = (jkt.as_str(), cnf.len()) else {
            return Err(TokenFault::UnsupportedConfirmation);
        };
        return match (dpop, held.dpop_jkt) {
            (DpopMode::Disabled, _) | (_, None) => Err(TokenFault::DpopBound),
            (_, Some(proof)) if proof == jkt => Ok(Bound::Dpop),
            (_, Some(_)) => Err(TokenFault::DpopKeyMismatch),
        };
    }
    let (Some(thumbprint), 1) = (cnf.get(X5T_S256), cnf.len()) else {
        return Err(TokenFault::UnsupportedConfirmation);
    };
    if held.dpop_jkt.is_some() {
        return Err(TokenFault::DpopUnbound);
    }
    if dpop == DpopMode::Required {
        return Err(TokenFault::DpopRequired);
    }
    let mut bound_to = [0u8; 32];
    let decoded = thumbprint
        .as_str()
        .and_then(|t| URL_SAFE_NO_PAD.decode_slice(t, &mut bound_to).ok());
    if decoded != Some(32) {
        return Err(TokenFault::UnsupportedConfirmation);
    }
    match held.client_cert {
        None => Err(TokenFault::CertificateMissing),
        Some(presented) if *presented == bound_to => Ok(Bound::Certificate),
        Some(_) => Err(TokenFault::CertificateMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cert(c: Option<&[u8; 32]>) -> Possession<'_> {
        Possession {
            client_cert: c,
            dpop_jkt: None,
        }
    }

    fn allowed(claims: &Map<String, Value>, c: Option<&[u8; 32]>) -> Result<Bound, TokenFault> {
        check(claims, cert(c), DpopMode::Allowed)
    }

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
        assert_eq!(allowed(&plain, None), Ok(Bound::Not));
        assert_eq!(allowed(&plain, Some(&digest())), Ok(Bound::Not));
    }

    /// RFC 8705 §3: the certificate of the connection must be the one the token names.
    #[test]
    fn a_certificate_bound_token_needs_that_certificate() {
        let bound = claims(json!({ "x5t#S256": thumbprint() }));
        assert_eq!(allowed(&bound, Some(&digest())), Ok(Bound::Certificate));
        assert_eq!(allowed(&bound, None), Err(TokenFault::CertificateMissing));
        let mut other = digest();
        other[0] ^= 1;
        assert_eq!(
            allowed(&bound, Some(&other)),
            Err(TokenFault::CertificateMismatch)
        );
    }

    /// RFC 9449 §7.2: a DPoP-bound token is never accepted as a bearer token; with the DPoP
    /// scheme its proof must be signed by the key it names.
    #[test]
    fn a_dpop_bound_token_needs_a_proof_by_its_key() {
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let bound = claims(json!({ "jkt": jkt }));
        assert_eq!(allowed(&bound, Some(&digest())), Err(TokenFault::DpopBound));
        let proof = |jkt| Possession {
            client_cert: None,
            dpop_jkt: Some(jkt),
        };
        assert_eq!(
            check(&bound, proof(jkt), DpopMode::Allowed),
            Ok(Bound::Dpop)
        );
        assert_eq!(
            check(&bound, proof(jkt), DpopMode::Required),
            Ok(Bound::Dpop)
        );
        assert_eq!(
            check(&bound, proof("another-key"), DpopMode::Allowed),
            Err(TokenFault::DpopKeyMismatch)
        );
        assert_eq!(
            check(&bound, proof(jkt), DpopMode::Disabled),
            Err(TokenFault::DpopBound)
        );
        // The DPoP scheme carries DPoP-bound tokens only.
        let Value::Object(plain) = json!({ "sub": "alice" }) else {
            unreachable!()
        };
        assert_eq!(
            check(&plain, proof(jkt), DpopMode::Allowed),
            Err(TokenFault::DpopUnbound)
        );
        let certificate = claims(json!({ "x5t#S256": thumbprint() }));
        assert_eq!(
            check(&certificate, proof(jkt), DpopMode::Allowed),
            Err(TokenFault::DpopUnbound)
        );
        // `dpop: required`: nothing else.
        assert_eq!(
            check(&plain, cert(None), DpopMode::Required),
            Err(TokenFault::DpopRequired)
        );
        assert_eq!(
            check(&certificate, cert(Some(&digest())), DpopMode::Required),
            Err(TokenFault::DpopRequired)
        );
        let both = claims(json!({ "jkt": jkt, "x5t#S256": thumbprint() }));
        assert_eq!(
            check(&both, proof(jkt), DpopMode::Allowed),
            Err(TokenFault::UnsupportedConfirmation)
        );
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
                allowed(&claims(cnf.clone()), Some(&digest())),
                Err(TokenFault::UnsupportedConfirmation),
                "{cnf}"
            );
        }
    }
}
