//! The verification layer against published signature vectors (RFC 7520, RFC 8037, RFC 7515),
//! copied from shared/vectors into tests/fixtures/jose_vectors.json.

use portcullis::auth::algorithm::Algorithm;
use portcullis::auth::jwks::KeySet;
use portcullis::auth::jwt::verify_signature;
use portcullis::error::TokenFault;
use serde_json::{json, Value};

fn vectors() -> Vec<Value> {
    let text =
        std::fs::read_to_string(crate::support::fixtures().join("jose_vectors.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

/// Only the public members of the vector's JWK.
fn public_jwks(jwk: &Value) -> Vec<u8> {
    let mut public = serde_json::Map::new();
    for member in ["kty", "kid", "use", "crv", "n", "e", "x", "y", "k"] {
        if let Some(v) = jwk.get(member) {
            public.insert(member.into(), v.clone());
        }
    }
    json!({ "keys": [public] }).to_string().into_bytes()
}

fn split(compact: &str) -> (&str, &str) {
    compact.rsplit_once('.').unwrap()
}

fn kid_of(compact: &str) -> Option<String> {
    use base64::Engine;
    let header = compact.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&bytes).unwrap();
    header["kid"].as_str().map(str::to_owned)
}

/// A vector whose algorithm portcullis supports, with its public key loaded.
struct Supported {
    id: String,
    alg: Algorithm,
    keys: KeySet,
    compact: String,
}

impl Supported {
    fn parts(&self) -> (&str, &str, Option<String>) {
        let (input, signature) = split(&self.compact);
        (input, signature, kid_of(&self.compact))
    }
}

fn supported_vectors() -> Vec<Supported> {
    let mut out = Vec::new();
    for v in vectors() {
        let Ok(alg) = v["alg"].as_str().unwrap().parse::<Algorithm>() else {
            continue;
        };
        let (keys, errors) = KeySet::from_jwks_json(&public_jwks(&v["jwk"])).unwrap();
        if errors.is_empty() {
            out.push(Supported {
                id: v["id"].as_str().unwrap().to_owned(),
                alg,
                keys,
                compact: v["compact"].as_str().unwrap().to_owned(),
            });
        }
    }
    out
}

#[test]
fn supported_vectors_verify_and_reject_a_flipped_bit() {
    let vectors = supported_vectors();
    let ids: Vec<&str> = vectors.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(
        ids,
        ["rfc7520-4.1", "rfc7520-4.2", "rfc8037-A.4", "rfc7515-A.3"]
    );
    for v in &vectors {
        let (input, signature, kid) = v.parts();
        assert!(
            verify_signature(input, signature, kid.as_deref(), v.alg, &v.keys).is_ok(),
            "{}",
            v.id
        );

        // Flip one bit of the signature.
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
        sig[7] ^= 0x01;
        let flipped = URL_SAFE_NO_PAD.encode(sig);
        assert_eq!(
            verify_signature(input, &flipped, kid.as_deref(), v.alg, &v.keys),
            Err(TokenFault::BadSignature),
            "{}",
            v.id
        );
    }
}

#[test]
fn a_different_algorithm_than_the_key_fits_is_refused() {
    for v in supported_vectors() {
        let (input, signature, kid) = v.parts();
        for other in Algorithm::ALL.into_iter().filter(|a| *a != v.alg) {
            let got = verify_signature(input, signature, kid.as_deref(), other, &v.keys);
            assert!(got.is_err(), "{} verified as {other}", v.id);
        }
    }
}

#[test]
fn unsupported_vectors_cannot_even_be_loaded_or_named() {
    for v in vectors() {
        let alg = v["alg"].as_str().unwrap();
        if alg == "ES512" || alg == "HS256" {
            assert!(
                alg.parse::<Algorithm>().is_err(),
                "{alg} must not be nameable"
            );
            let (keys, errors) = KeySet::from_jwks_json(&public_jwks(&v["jwk"])).unwrap();
            assert!(
                keys.is_empty() && errors.len() == 1,
                "{}: {errors:?}",
                v["id"]
            );
        }
    }
}

#[test]
fn vector_payloads_are_not_access_tokens() {
    use portcullis::auth::jwt::verify;
    use portcullis::snapshot::Issuer;
    for v in supported_vectors() {
        let issuer = Issuer {
            id: "rfc".into(),
            issuer: "https://rfc.example".into(),
            audiences: vec!["api".into()],
            algorithms: vec![v.alg],
            leeway: std::time::Duration::from_secs(30),
            scope_claims: vec!["scope".into()],
            token_type: None,
            dpop: portcullis::auth::dpop::DpopMode::Allowed,
            token_format: portcullis::auth::TokenFormat::Jwt,
            introspector: None,
            rfc9068: false,
            max_token_lifetime: std::time::Duration::from_secs(24 * 3600),
            keys: std::sync::Arc::new(portcullis::auth::keys::IssuerKeys::fixed(
                "rfc".into(),
                v.keys,
            )),
            key_source: None,
        };
        // Text payloads are malformed; JSON ones lack iss/aud or are expired.
        let got = verify(&v.compact, [(0, &issuer)], crate::support::now());
        assert!(got.is_err(), "{} was accepted as an access token", v.id);
    }
}
