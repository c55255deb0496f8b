//! The closed set of JWS algorithms portcullis verifies, and the key types each needs.
//!
//! Only asymmetric algorithms exist here: `none` and the HMAC family cannot even be named, so
//! they can never be allowed by configuration or chosen by a token (RFC 8725 §3.1, §3.2).

use std::fmt;
use std::str::FromStr;

/// A signature algorithm (RFC 7518 §3, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// How aws-lc-rs verifies an algorithm: RSA keys are built from their components, the others
/// parsed from their public-key bytes.
#[derive(Clone, Copy)]
pub enum Verification {
    Rsa(&'static aws_lc_rs::signature::RsaParameters),
    Other(&'static dyn aws_lc_rs::signature::VerificationAlgorithm),
}

/// The key type an algorithm verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl Algorithm {
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The aws-lc-rs verification algorithm (the same ones `jsonwebtoken` verifies with: RSA
    /// keys of 2048 to 8192 bits, fixed-length ECDSA signatures as JWS defines them).
    pub fn verification(self) -> Verification {
        use aws_lc_rs::signature as sig;
        match self {
            Algorithm::RS256 => Verification::Rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
            Algorithm::RS384 => Verification::Rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
            Algorithm::RS512 => Verification::Rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
            Algorithm::PS256 => Verification::Rsa(&sig::RSA_PSS_2048_8192_SHA256),
            Algorithm::PS384 => Verification::Rsa(&sig::RSA_PSS_2048_8192_SHA384),
            Algorithm::PS512 => Verification::Rsa(&sig::RSA_PSS_2048_8192_SHA512),
            Algorithm::ES256 => Verification::Other(&sig::ECDSA_P256_SHA256_FIXED),
            Algorithm::ES384 => Verification::Other(&sig::ECDSA_P384_SHA384_FIXED),
            Algorithm::EdDSA => Verification::Other(&sig::ED25519),
        }
    }

    /// The only key type that may verify this algorithm (RFC 8725 §3.1: no cross-type use).
    pub fn key_type(self) -> KeyType {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyType::Rsa,
            Algorithm::ES256 => KeyType::EcP256,
            Algorithm::ES384 => KeyType::EcP384,
            Algorithm::EdDSA => KeyType::Ed25519,
        }
    }

    /// The same algorithm in `jsonwebtoken`'s vocabulary (benches compare with its `verify`).
    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl FromStr for Algorithm {
    type Err = ();

    /// Exact, case-sensitive names (RFC 7515 §4.1.1: `alg` is case-sensitive).
    fn from_str(s: &str) -> Result<Self, ()> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_hmac_cannot_be_named() {
        for name in ["none", "None", "HS256", "HS384", "HS512", "rs256", ""] {
            assert!(name.parse::<Algorithm>().is_err(), "{name}");
        }
        assert_eq!("ES256".parse::<Algorithm>(), Ok(Algorithm::ES256));
    }

    #[test]
    fn each_algorithm_has_one_key_type() {
        assert_eq!(Algorithm::PS384.key_type(), KeyType::Rsa);
        assert_eq!(Algorithm::ES384.key_type(), KeyType::EcP384);
        assert_eq!(Algorithm::EdDSA.key_type(), KeyType::Ed25519);
    }
}
