//! `portcullis jwks PEM...`: a JWKS (RFC 7517) for public keys, each `kid` its RFC 7638
//! thumbprint, for an issuer whose keys are files (`jwks_file`).
//!
//! It reads `PUBLIC KEY` (SubjectPublicKeyInfo) and `CERTIFICATE` PEM sections: RSA, EC P-256
//! and P-384, and Ed25519, the key types the gateway verifies. A private key is refused: the
//! key set is published, and the tool never needs to hold a signing key.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls::pki_types::pem::SectionKind;
use serde_json::{json, Map, Value};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Why a file gives no key.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: no PEM section (expected PUBLIC KEY or CERTIFICATE)")]
    NoPem { file: String },
    #[error("{file}: this is a private key; give its public key (openssl pkey -in {file} -pubout -out public.pem)")]
    PrivateKey { file: String },
    #[error("{file}: {reason}")]
    Key { file: String, reason: String },
}

/// The JWKS for the keys in `files`, as pretty JSON.
pub fn jwks(files: &[&Path]) -> Result<String, JwksError> {
    let mut keys = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read(file).map_err(|e| JwksError::Read {
            file: name.clone(),
            reason: e.to_string(),
        })?;
        let mut reader = std::io::BufReader::new(text.as_slice());
        let mut found = false;
        loop {
            let section =
                rustls::pki_types::pem::from_buf(&mut reader).map_err(|e| JwksError::Key {
                    file: name.clone(),
                    reason: format!("not PEM: {e}"),
                })?;
            let Some((kind, der)) = section else { break };
            let spki = match kind {
                SectionKind::PublicKey => der,
                SectionKind::Certificate => {
                    certificate_spki(&der).map_err(|reason| JwksError::Key {
                        file: name.clone(),
                        reason,
                    })?
                }
                SectionKind::RsaPrivateKey
                | SectionKind::PrivateKey
                | SectionKind::EcPrivateKey => {
                    return Err(JwksError::PrivateKey { file: name.clone() })
                }
                _ => continue,
            };
            let jwk = jwk_of_spki(&spki).map_err(|reason| JwksError::Key {
                file: name.clone(),
                reason,
            })?;
            // The same key twice (a certificate and its public key) is listed once.
            if !keys.iter().any(|k: &Value| k["kid"] == jwk["kid"]) {
                keys.push(jwk);
            }
            found = true;
        }
        if !found {
            if contains(&text, b"-----BEGIN RSA PUBLIC KEY-----") {
                return Err(JwksError::Key {
                    file: name.clone(),
                    reason: format!("a PKCS#1 RSA PUBLIC KEY: convert it with openssl rsa -RSAPublicKey_in -in {name} -pubout -out public.pem"),
                });
            }
            return Err(JwksError::NoPem { file: name });
        }
    }
    let set = json!({ "keys": keys });
    Ok(serde_json::to_string_pretty(&set).unwrap_or_default())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn certificate_spki(der: &[u8]) -> Result<Vec<u8>, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not a certificate: {e}"))?;
    Ok(cert.public_key().raw.to_vec())
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned big-endian integer without its leading zero bytes (RFC 7518 §6.3.1.1).
fn unsigned(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The JWK of a DER SubjectPublicKeyInfo, with `kid` = its RFC 7638 thumbprint.
pub fn jwk_of_spki(der: &[u8]) -> Result<Value, String> {
    let (_, spki) =
        SubjectPublicKeyInfo::from_der(der).map_err(|e| format!("not a public key: {e}"))?;
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let key = spki.subject_public_key.data.as_ref();
    // The members RFC 7638 §3.2 hashes, then the others.
    let (mut jwk, alg): (Map<String, Value>, Option<&str>) = match algorithm.as_str() {
        OID_RSA => {
            let parsed = spki
                .parsed()
                .map_err(|e| format!("bad RSA public key: {e}"))?;
            let x509_parser::public_key::PublicKey::RSA(rsa) = parsed else {
                return Err("bad RSA public key".to_owned());
            };
            if !(2048..=8192).contains(&rsa.key_size()) {
                return Err(format!(
                    "an RSA key of {} bits: the gateway verifies 2048 to 8192 bits",
                    rsa.key_size()
                ));
            }
            let mut m = Map::new();
            m.insert("e".into(), b64(unsigned(rsa.exponent)).into());
            m.insert("kty".into(), "RSA".into());
            m.insert("n".into(), b64(unsigned(rsa.modulus)).into());
            // RSA keys serve RS* and PS*: the issuer's `algorithms` decides.
            (m, None)
        }
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let (crv, size, alg) = match curve.as_str() {
                OID_P256 => ("P-256", 32, "ES256"),
                OID_P384 => ("P-384", 48, "ES384"),
                other => {
                    return Err(format!(
                        "EC curve {other}: the gateway verifies P-256 and P-384"
                    ))
                }
            };
            if key.len() != 1 + 2 * size || key.first() != Some(&4) {
                return Err(format!("{crv} public key is not an uncompressed point"));
            }
            let mut m = Map::new();
            m.insert("crv".into(), crv.into());
            m.insert("kty".into(), "EC".into());
            m.insert("x".into(), b64(&key[1..=size]).into());
            m.insert("y".into(), b64(&key[1 + size..]).into());
            (m, Some(alg))
        }
        OID_ED25519 => {
            if key.len() != 32 {
                return Err("Ed25519 public key is not 32 bytes".to_owned());
            }
            let mut m = Map::new();
            m.insert("crv".into(), "Ed25519".into());
            m.insert("kty".into(), "OKP".into());
            m.insert("x".into(), b64(key).into());
            (m, Some("EdDSA"))
        }
        other => {
            return Err(format!(
                "key algorithm {other}: the gateway verifies RSA, EC P-256/P-384 and Ed25519"
            ))
        }
    };
    let kid = thumbprint(&jwk);
    jwk.insert("kid".into(), kid.into());
    jwk.insert("use".into(), "sig".into());
    if let Some(alg) = alg {
        jwk.insert("alg".into(), alg.into());
    }
    Ok(Value::Object(jwk))
}

/// RFC 7638 §3: SHA-256 of the required members, in lexicographic order and without
/// whitespace (serde_json's map is sorted), base64url.
pub fn thumbprint(required: &Map<String, Value>) -> String {
    let canonical = Value::Object(required.clone()).to_string();
    b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example.
    #[test]
    fn the_thumbprint_is_rfc_7638_s() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let mut m = Map::new();
        m.insert("e".into(), "AQAB".into());
        m.insert("kty".into(), "RSA".into());
        m.insert("n".into(), n.into());
        assert_eq!(
            thumbprint(&m),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn leading_zeros_are_dropped_from_rsa_integers() {
        assert_eq!(unsigned(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(unsigned(&[1, 0, 1]), &[1, 0, 1]);
    }
}
