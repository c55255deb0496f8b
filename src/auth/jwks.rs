//! Issuer key sets: parsing a JWKS document (RFC 7517) into verification keys.
//!
//! Each key is loaded on its own: a key that fails to parse is reported with its `kid` and the
//! other keys still load. Keys for encryption (`use: enc`) are skipped, symmetric (`oct`) keys are
//! refused, and a key's `alg`, when present, pins the one algorithm it may verify.

use std::collections::HashMap;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{DecodingKey, DecodingKeyKind};
use serde_json::Value;

use super::algorithm::{Algorithm, KeyType, Verification};

/// One public key, ready to verify: parsed once, when the key set loads, into the crypto
/// library's key for each algorithm it may verify, so a verification builds no key.
#[derive(Debug, Clone)]
pub struct VerificationKey {
    pub kid: Option<String>,
    pub key_type: KeyType,
    /// The algorithm the JWK's `alg` pins, if any.
    pub alg: Option<Algorithm>,
    /// The parsed key, per algorithm it accepts.
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
    /// SHA-256 of the key's public parameters, `kid` and pinned `alg`: the verified-token cache
    /// keeps a token only while its issuer still has this very key.
    pub fingerprint: [u8; 32],
}

impl VerificationKey {
    /// True when this key may verify a token signed with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.key_type == alg.key_type() && self.alg.is_none_or(|pinned| pinned == alg)
    }

    /// Whether `signature` (decoded) signs `message` under `alg` with this key.
    pub fn verifies(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

/// The crypto library's key for each algorithm in `algorithms`, from the JWK's key material.
fn parse_verifiers(
    key: &DecodingKey,
    algorithms: impl Iterator<Item = Algorithm>,
) -> Result<Vec<(Algorithm, ParsedPublicKey)>, String> {
    algorithms
        .map(|alg| {
            let parsed = match (alg.verification(), key.kind()) {
                (Verification::Rsa(params), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                    RsaPublicKeyComponents { n, e }.to_parsed_public_key(params)
                }
                (Verification::Other(algorithm), DecodingKeyKind::SecretOrDer(bytes)) => {
                    ParsedPublicKey::new(algorithm, bytes)
                }
                _ => return Err(format!("the key material does not fit {alg}")),
            };
            parsed
                .map(|p| (alg, p))
                .map_err(|e| format!("unusable key material for {alg}: {e}"))
        })
        .collect()
}

/// The keys of one issuer, indexed by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
    by_kid: HashMap<String, usize>,
}

/// A key that could not be loaded, with what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLoadError {
    /// Position in the `keys` array.
    pub index: usize,
    pub kid: Option<String>,
    pub message: String,
}

impl std::fmt::Display for KeyLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key {} (kid \"{kid}\"): {}", self.index, self.message),
            None => write!(f, "key {} (no kid): {}", self.index, self.message),
        }
    }
}

/// Why a document is not a JWKS at all (one key's problem is a [`KeyLoadError`] instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("not valid JSON: {0}")]
    NotJson(String),
    #[error("not a JWKS: no \"keys\" array")]
    NoKeysArray,
}

impl KeySet {
    /// Parse a JWKS document. `Err` when the document itself is not a JWKS; otherwise the keys
    /// that loaded and one error per key that did not.
    pub fn from_jwks_json(document: &[u8]) -> Result<(KeySet, Vec<KeyLoadError>), JwksError> {
        let doc: Value =
            serde_json::from_slice(document).map_err(|e| JwksError::NotJson(e.to_string()))?;
        let Some(Value::Array(entries)) = doc.get("keys") else {
            return Err(JwksError::NoKeysArray);
        };
        let mut set = KeySet::default();
        let mut errors = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
            match load_key(entry) {
                Ok(None) => {}
                Ok(Some(key)) => {
                    if let Some(kid) = &key.kid {
                        if set.by_kid.contains_key(kid) {
                            errors.push(KeyLoadError {
                                index,
                                kid: Some(kid.clone()),
                                message: "duplicate kid; the first key with this kid is used"
                                    .into(),
                            });
                            continue;
                        }
                        set.by_kid.insert(kid.clone(), set.keys.len());
                    }
                    set.keys.push(key);
                }
                Err(message) => errors.push(KeyLoadError {
                    index,
                    kid,
                    message,
                }),
            }
        }
        Ok((set, errors))
    }

    pub fn by_kid(&self, kid: &str) -> Option<&VerificationKey> {
        self.by_kid.get(kid).map(|&i| &self.keys[i])
    }

    /// Keys that may verify `alg`, for tokens without `kid`.
    pub fn accepting(&self, alg: Algorithm) -> impl Iterator<Item = &VerificationKey> {
        self.keys.iter().filter(move |k| k.accepts(alg))
    }

    /// Every key.
    pub fn iter(&self) -> impl Iterator<Item = &VerificationKey> {
        self.keys.iter()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// `Ok(None)` for a key that is skipped on purpose (encryption keys).
/// The key of a JWK that travels with what it signs (a DPoP proof's `jwk`, RFC 9449 §4.2),
/// parsed for `alg` only. `None` for a key marked for encryption.
pub fn key_for(entry: &Value, alg: Algorithm) -> Result<Option<VerificationKey>, String> {
    load_key_for(entry, Some(alg))
}

fn load_key(entry: &Value) -> Result<Option<VerificationKey>, String> {
    load_key_for(entry, None)
}

/// A JWKS entry's key, for every algorithm its type and `alg` allow, or for `only`.
fn load_key_for(entry: &Value, only: Option<Algorithm>) -> Result<Option<VerificationKey>, String> {
    if entry.get("kty").and_then(Value::as_str) == Some("oct") {
        return Err("symmetric (oct) keys are not supported".into());
    }
    let jwk: Jwk =
        serde_json::from_value(entry.clone()).map_err(|e| format!("invalid JWK: {e}"))?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let key_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyType::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyType::EcP256,
            EllipticCurve::P384 => KeyType::EcP384,
            ref other => return Err(format!("unsupported curve {other:?}")),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => KeyType::Ed25519,
            ref other => return Err(format!("unsupported OKP curve {other:?}")),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are not supported".into())
        }
        _ => return Err("unsupported key type".into()),
    };
    let alg = match &jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(
            signing_algorithm(a)
                .ok_or_else(|| format!("alg {a:?} is not a supported signing algorithm"))?,
        ),
    };
    if let Some(alg) = alg {
        if alg.key_type() != key_type {
            return Err(format!("alg {alg} does not fit a {key_type:?} key"));
        }
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key material: {e}"))?;
    let identity = serde_json::json!([jwk.common.key_id, alg.map(|a| a.as_str()), jwk.algorithm]);
    let digest = ring::digest::digest(&ring::digest::SHA256, identity.to_string().as_bytes());
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(digest.as_ref());
    let accepted = Algorithm::ALL.into_iter().filter(|a| {
        a.key_type() == key_type
            && alg.is_none_or(|pinned| pinned == *a)
            && only.is_none_or(|o| o == *a)
    });
    let verifiers = parse_verifiers(&key, accepted)?;
    Ok(Some(VerificationKey {
        kid: jwk.common.key_id.clone(),
        key_type,
        alg,
        verifiers,
        fingerprint,
    }))
}

fn signing_algorithm(a: &KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn loads_good_keys_and_reports_bad_ones_by_kid() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "good", "alg": "RS256", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "broken", "n": 12},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "mismatch", "alg": "ES256", "n": RSA_N, "e": "AQAB"},
        ]});
        let (set, errors) = KeySet::from_jwks_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.by_kid("good").is_some());
        assert!(set.by_kid("enc").is_none());
        let kids: Vec<_> = errors.iter().map(|e| e.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["broken", "secret", "mismatch"]);
    }

    #[test]
    fn pinned_alg_restricts_the_key() {
        let doc = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k", "alg": "PS256", "n": RSA_N, "e": "AQAB"}]});
        let (set, _) = KeySet::from_jwks_json(doc.to_string().as_bytes()).unwrap();
        let key = set.by_kid("k").unwrap();
        assert!(key.accepts(Algorithm::PS256));
        assert!(!key.accepts(Algorithm::RS256));
        assert!(!key.accepts(Algorithm::ES256));
    }

    #[test]
    fn a_document_without_keys_is_an_error() {
        assert!(KeySet::from_jwks_json(b"{\"foo\": 1}").is_err());
        assert!(KeySet::from_jwks_json(b"not json").is_err());
    }
}
