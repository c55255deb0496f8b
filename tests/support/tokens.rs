//! Tokens: the fixture keys, standard claims, and signing helpers (including broken tokens).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub const ISSUER: &str = "https://idp.test/realms/corp";
pub const AUDIENCE: &str = "orders-api";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Claims of a valid token granting `scope`.
pub fn claims(scope: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "client_id": "orders-ui",
        "scope": scope,
        "iat": now,
        "exp": now + 300,
        "jti": "jti-1",
    })
}

/// Signs tokens with the fixture keys.
pub struct Issuer;

impl Issuer {
    fn pem(name: &str) -> Vec<u8> {
        std::fs::read(fixtures().join(name)).expect("fixture key")
    }

    pub fn rsa(claims: &Value) -> String {
        Self::sign(
            Algorithm::RS256,
            Some("test-rsa-1"),
            &EncodingKey::from_rsa_pem(&Self::pem("rsa-private.pem")).unwrap(),
            claims,
        )
    }

    pub fn ec(claims: &Value) -> String {
        Self::sign(
            Algorithm::ES256,
            Some("test-ec-1"),
            &EncodingKey::from_ec_pem(&Self::pem("ec-private.pem")).unwrap(),
            claims,
        )
    }

    /// RS256 with a key the gateway does not trust, under the given kid.
    pub fn rsa_untrusted(kid: &str, claims: &Value) -> String {
        Self::sign(
            Algorithm::RS256,
            Some(kid),
            &EncodingKey::from_rsa_pem(&Self::pem("rsa-other-private.pem")).unwrap(),
            claims,
        )
    }

    pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    /// The "key confusion" attack: HS256 keyed with the RSA public key's PEM bytes.
    pub fn hs256_with_rsa_public_key(claims: &Value) -> String {
        let key = EncodingKey::from_secret(&Self::pem("rsa-public.pem"));
        Self::sign(Algorithm::HS256, Some("test-rsa-1"), &key, claims)
    }

    /// RS256 with the trusted key, but with `header` (raw JSON) as the JOSE header.
    pub fn rsa_with_header(header: &Value, claims: &Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = EncodingKey::from_rsa_pem(&Self::pem("rsa-private.pem")).unwrap();
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256).unwrap();
        format!("{input}.{signature}")
    }

    /// An unsigned token (`alg: none`) with an empty signature part.
    pub fn unsigned(claims: &Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"test-rsa-1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{header}.{payload}.")
    }
}
