//! Signature verification per algorithm: portcullis' `jwt::verify_signature` (keys parsed once,
//! when the key set loads) against the crypto library's own verify with a pre-parsed key (the
//! floor), and against `jsonwebtoken::crypto::verify` (which builds the key on every call, as
//! portcullis did before). Figures: benches/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use aws_lc_rs::signature::ParsedPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use portcullis::auth::algorithm::{Algorithm, Verification};
use portcullis::auth::jwks::KeySet;
use portcullis::auth::jwt::verify_signature;
use serde_json::{json, Value};

/// A signed token, its key set (one key, kid "k") and the key's JWK.
struct Case {
    alg: Algorithm,
    token: String,
    keys: KeySet,
    jwk: Value,
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn case(alg: Algorithm, encoding: &EncodingKey, mut jwk: Value) -> Case {
    jwk["kid"] = json!("k");
    jwk.as_object_mut().unwrap().remove("alg");
    let mut header = Header::new(alg.to_jsonwebtoken());
    header.kid = Some("k".into());
    let claims = json!({"iss": "https://idp.bench", "sub": "alice", "exp": 1_900_000_600i64});
    let token = jsonwebtoken::encode(&header, &claims, encoding).unwrap();
    let keys = KeySet::from_jwks_json(json!({"keys": [jwk]}).to_string().as_bytes())
        .unwrap()
        .0;
    Case {
        alg,
        token,
        keys,
        jwk,
    }
}

fn cases() -> Vec<Case> {
    let fixture_jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let rsa_jwk = fixture_jwks["keys"][0].clone();
    let ec_jwk = fixture_jwks["keys"][1].clone();
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap();
    // P-384 and Ed25519 keys made here: their public JWKs from the raw public keys.
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let point = p384.public_key_raw();
    let p384_jwk = json!({
        "kty": "EC", "crv": "P-384",
        "x": URL_SAFE_NO_PAD.encode(&point[1..49]), "y": URL_SAFE_NO_PAD.encode(&point[49..]),
    });
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed_jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(ed.public_key_raw())});
    vec![
        case(Algorithm::RS256, &rsa, rsa_jwk.clone()),
        case(Algorithm::PS256, &rsa, rsa_jwk),
        case(Algorithm::ES256, &ec, ec_jwk),
        case(
            Algorithm::ES384,
            &EncodingKey::from_ec_pem(p384.serialize_pem().as_bytes()).unwrap(),
            p384_jwk,
        ),
        case(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).unwrap(),
            ed_jwk,
        ),
    ]
}

fn bench(c: &mut Criterion) {
    portcullis::install_crypto_provider();
    let mut group = c.benchmark_group("verify");
    for case in cases() {
        let (input, signature) = case.token.rsplit_once('.').unwrap();
        let name = case.alg.as_str();
        assert!(verify_signature(input, signature, Some("k"), case.alg, &case.keys).is_ok());
        group.bench_function(format!("{name}/portcullis"), |b| {
            b.iter(|| {
                verify_signature(
                    black_box(input),
                    black_box(signature),
                    Some("k"),
                    case.alg,
                    &case.keys,
                )
            })
        });
        // The floor: the library's verify with a key parsed beforehand (base64 decoding included,
        // as portcullis must decode the signature too).
        let decoding =
            DecodingKey::from_jwk(&serde_json::from_value(case.jwk.clone()).unwrap()).unwrap();
        let parsed = match (case.alg.verification(), decoding.kind()) {
            (Verification::Rsa(p), jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e }) => {
                aws_lc_rs::signature::RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(p)
                    .unwrap()
            }
            (Verification::Other(a), jsonwebtoken::DecodingKeyKind::SecretOrDer(bytes)) => {
                ParsedPublicKey::new(a, bytes).unwrap()
            }
            _ => unreachable!(),
        };
        group.bench_function(format!("{name}/aws-lc-parsed"), |b| {
            b.iter(|| {
                let sig = URL_SAFE_NO_PAD.decode(black_box(signature)).unwrap();
                parsed.verify_sig(black_box(input).as_bytes(), &sig).is_ok()
            })
        });
        // ring's P-256, for the ES256 target (ring is already in the tree, for SHA-256).
        if let (Algorithm::ES256, jsonwebtoken::DecodingKeyKind::SecretOrDer(point)) =
            (case.alg, decoding.kind())
        {
            let key = ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point.to_vec(),
            );
            let sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
            assert!(key.verify(input.as_bytes(), &sig).is_ok());
            group.bench_function(format!("{name}/ring"), |b| {
                b.iter(|| {
                    let sig = URL_SAFE_NO_PAD.decode(black_box(signature)).unwrap();
                    key.verify(black_box(input).as_bytes(), &sig).is_ok()
                })
            });
        }
        group.bench_function(format!("{name}/jsonwebtoken"), |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(
                    black_box(signature),
                    black_box(input).as_bytes(),
                    &decoding,
                    case.alg.to_jsonwebtoken(),
                )
            })
        });
    }
    group.finish();

    // A DPoP proof (RFC 9449 §4.3, every check but replay): its ES256 signature with a key that
    // comes in the proof (parsed per proof), plus the claims. Target: ≤ 1.5× `verify/ES256`.
    let fixture_jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let mut jwk = fixture_jwks["keys"][1].clone();
    for member in ["kid", "alg", "use"] {
        jwk.as_object_mut().unwrap().remove(member);
    }
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(serde_json::from_value(jwk).unwrap());
    let token = "an.access.token";
    let now = 1_900_000_000i64;
    let ath = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ));
    let claims = json!({
        "jti": "e1j3V_bKic8-LAEB", "htm": "GET", "htu": "https://api.example.com/orders/7",
        "iat": now, "ath": ath,
    });
    let ec = EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap();
    let proof = jsonwebtoken::encode(&header, &claims, &ec).unwrap();
    let expected = portcullis::auth::dpop::Expected {
        method: "GET",
        scheme: "https",
        authority: "api.example.com",
        path: "/orders/7",
        access_token: token,
        algorithms: &[Algorithm::ES256],
        now,
        max_age: std::time::Duration::from_secs(60),
        leeway: std::time::Duration::from_secs(5),
        hosts: &[],
    };
    assert!(portcullis::auth::dpop::check(&proof, &expected).is_ok());
    c.bench_function("dpop/proof_es256", |b| {
        b.iter(|| portcullis::auth::dpop::check(black_box(&proof), black_box(&expected)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
