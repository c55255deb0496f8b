//! DPoP proofs (RFC 9449): the checks of §4.3 on one proof, and the replay cache of §11.1.
//!
//! A DPoP-bound access token (`cnf.jkt`) is usable only with a fresh proof, signed by the key
//! the token names, for this very request. [`check`] runs every check RFC 9449 §4.3 lists on the
//! proof of one request, against what the gateway routed ([`Expected`]); [`ReplayCache`]
//! remembers each proof's `jti` for as long as its `iat` is acceptable, so a proof is used once.
//!

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dashmap::DashMap;
use serde_json::{Map, Value};

use super::algorithm::Algorithm;

/// Why a DPoP proof was refused (RFC 9449 §7.1: `401`, `error="invalid_dpop_proof"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofFault {
    /// No `DPoP` header.
    Missing,
    /// More than one `DPoP` header (§4.3 step 1).
    Multiple,
    /// Not a compact JWS with JSON header and payload, or a required claim missing or mistyped.
    Malformed,
    /// `typ` is not `dpop+jwt` (§4.3 step 4).
    Type,
    /// `alg` is not an asymmetric algorithm of the allow-list (§4.3 step 5).
    Algorithm,
    /// `jwk` is missing, not a usable public key for `alg`, or holds a private key (step 7).
    Key,
    /// The signature does not verify with `jwk` (step 6).
    Signature,
    /// `htm` is not the request's method (step 8).
    Method,
    /// `htu` is not the request's URI (step 9).
    Uri,
    /// `iat` is outside the accepted window (step 11).
    Stale,
    /// `ath` is not the hash of the access token (step 12).
    AccessTokenHash,
    /// This proof (`jti`) was used before (§11.1).
    Replayed,
}

impl ProofFault {
    /// Every fault (the label values of `portcullis_rejections_total`, initialised at 0).
    pub const ALL: [Self; 12] = [
        Self::Missing,
        Self::Multiple,
        Self::Malformed,
        Self::Type,
        Self::Algorithm,
        Self::Key,
        Self::Signature,
        Self::Method,
        Self::Uri,
        Self::Stale,
        Self::AccessTokenHash,
        Self::Replayed,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "dpop_proof_missing",
            Self::Multiple => "dpop_proof_multiple",
            Self::Malformed => "dpop_proof_malformed",
            Self::Type => "dpop_proof_typ",
            Self::Algorithm => "dpop_proof_alg",
            Self::Key => "dpop_proof_jwk",
            Self::Signature => "dpop_proof_signature",
            Self::Method => "dpop_proof_htm",
            Self::Uri => "dpop_proof_htu",
            Self::Stale => "dpop_proof_iat",
            Self::AccessTokenHash => "dpop_proof_ath",
            Self::Replayed => "dpop_proof_replayed",
        }
    }
}

/// The request a proof must describe, as the gateway routed it.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub method: &'a str,
    /// `http` or `https`: the listener's, or a trusted proxy's `X-Forwarded-Proto`.
    pub scheme: &'a str,
    /// The canonical host (lower case, no trailing dot), with a port only when not the
    /// scheme's default.
    pub authority: &'a str,
    /// The normalised path.
    pub path: &'a str,
    /// The access token the proof comes with (`ath`).
    pub access_token: &'a str,
    /// Asymmetric algorithms accepted for proofs.
    pub algorithms: &'a [Algorithm],
    pub now: i64,
    /// How far in the past (`max_age`) and the future (`leeway`) `iat` may be.
    pub max_age: Duration,
    pub leeway: Duration,
    /// `dpop_proofs.hosts` on a route without `match.host` (whose host is whatever the client
    /// sent): the `htu` host must be one of them. Empty: no such check.
    pub hosts: &'a [String],
}

/// A proof that passed every check of [`check`] but replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key: the token's `cnf.jkt` must equal it.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

impl Proof {
    /// What identifies a proof against replay: SHA-256 of its key's thumbprint and its `jti`
    /// (a thumbprint has no space).
    pub fn id(&self) -> [u8; 32] {
        let mut id = ring::digest::Context::new(&ring::digest::SHA256);
        id.update(self.jkt.as_bytes());
        id.update(b" ");
        id.update(self.jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(id.finish().as_ref());
        key
    }
}

/// A proof this process accepted, to claim across replicas too (Redis, `SET NX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofUse {
    pub id: [u8; 32],
    /// When it can no longer pass [`check`] (unix seconds).
    pub until: i64,
}

/// The members of a JWK that hold private key material (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// RFC 9449 §4.3 on `proof` (the `DPoP` header's value), steps 2 to 12 except the nonce, which
/// portcullis does not issue, and replay ([`ReplayCache`]).
pub fn check(proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofFault> {
    let (signing_input, signature) = proof.rsplit_once('.').ok_or(ProofFault::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(ProofFault::Malformed)?;
    if payload.contains('.') || signature.is_empty() {
        return Err(ProofFault::Malformed);
    }
    let header = json_object(header)?;
    let claims = json_object(payload)?;
    // Step 4: typ, exactly (media types are case-insensitive: RFC 7515 §4.1.9).
    if !header
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(ProofFault::Type);
    }
    // Step 5: an asymmetric algorithm of the allow-list (never `none` or an HMAC: they are not
    // `Algorithm`s).
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<Algorithm>().ok())
        .filter(|a| expected.algorithms.contains(a))
        .ok_or(ProofFault::Algorithm)?;
    // RFC 7515 §4.1.11: no extension this checker would ignore.
    if header.contains_key("crit") {
        return Err(ProofFault::Malformed);
    }
    // Step 7: a public key, nothing private in it, each member in its one canonical size (so
    // one key has one thumbprint).
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(ProofFault::Key)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m))
        || jwk.contains_key("k")
        || !canonical_key(jwk)
    {
        return Err(ProofFault::Key);
    }
    let key = super::jwks::key_for(&Value::Object(jwk.clone()), alg)
        .ok()
        .flatten()
        .filter(|k| k.accepts(alg))
        .ok_or(ProofFault::Key)?;
    // Step 6: the signature, with that key.
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| ProofFault::Malformed)?;
    if !key.verifies(alg, signing_input.as_bytes(), &signature) {
        return Err(ProofFault::Signature);
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let (Some(jti), Some(htm), Some(htu), Some(iat)) = (
        text("jti"),
        text("htm"),
        text("htu"),
        claims.get("iat").and_then(Value::as_i64),
    ) else {
        return Err(ProofFault::Malformed);
    };
    if jti.is_empty() {
        return Err(ProofFault::Malformed);
    }
    // Step 8: the method, exactly (RFC 9110 §9.1: methods are case-sensitive).
    if htm != expected.method {
        return Err(ProofFault::Method);
    }
    // Step 9: the URI, without query and fragment, after RFC 3986 §6.2.2 and §6.2.3
    // normalisation.
    if !htu_matches(htu, expected) {
        return Err(ProofFault::Uri);
    }
    // Step 11: fresh.
    let max_age = i64::try_from(expected.max_age.as_secs()).unwrap_or(i64::MAX);
    let leeway = i64::try_from(expected.leeway.as_secs()).unwrap_or(i64::MAX);
    if iat < expected.now.saturating_sub(max_age) || iat > expected.now.saturating_add(leeway) {
        return Err(ProofFault::Stale);
    }
    // Step 12: bound to this access token.
    let digest = ring::digest::digest(&ring::digest::SHA256, expected.access_token.as_bytes());
    if text("ath") != Some(URL_SAFE_NO_PAD.encode(digest.as_ref()).as_str()) {
        return Err(ProofFault::AccessTokenHash);
    }
    Ok(Proof {
        jkt: thumbprint(jwk).ok_or(ProofFault::Key)?,
        jti: jti.to_owned(),
        iat,
    })
}

/// Coordinates of their curve's size, an RSA modulus without a leading zero byte.
fn canonical_key(jwk: &Map<String, Value>) -> bool {
    let len = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
    };
    match (
        jwk.get("kty").and_then(Value::as_str),
        jwk.get("crv").and_then(Value::as_str),
    ) {
        (Some("EC"), Some(crv)) => {
            let size = match crv {
                "P-256" => 32,
                "P-384" => 48,
                _ => return false,
            };
            len("x").is_some_and(|x| x.len() == size) && len("y").is_some_and(|y| y.len() == size)
        }
        (Some("OKP"), Some("Ed25519")) => len("x").is_some_and(|x| x.len() == 32),
        (Some("RSA"), _) => len("n").is_some_and(|n| n.first().is_some_and(|b| *b != 0)),
        _ => false,
    }
}

fn json_object(part: &str) -> Result<Map<String, Value>, ProofFault> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProofFault::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| ProofFault::Malformed)
}

/// RFC 7638: the thumbprint of a public JWK, from its required members.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let required: &[&str] = match jwk.get("kty").and_then(Value::as_str)? {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut members = Map::new();
    for name in required {
        members.insert((*name).to_owned(), Value::from(jwk.get(*name)?.as_str()?));
    }
    Some(crate::jwks_from_pem::thumbprint(&members))
}

/// `htu` against the routed request: scheme and host compared case-insensitively, a default
/// port the same as none, the path normalised as the gateway normalises paths, query and
/// fragment ignored.
fn htu_matches(htu: &str, expected: &Expected<'_>) -> bool {
    let without_fragment = htu.split('#').next().unwrap_or_default();
    let Ok(uri) = without_fragment.parse::<http::Uri>() else {
        return false;
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return false;
    };
    // No userinfo: `https://user@host/` names no other resource, but nothing sends it.
    if !scheme.eq_ignore_ascii_case(expected.scheme) || authority.as_str().contains('@') {
        return false;
    }
    let default_port = match expected.scheme {
        "https" => 443,
        _ => 80,
    };
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    let authority = match authority.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host,
    };
    // The routed host keeps a port the client wrote, the scheme's default included.
    let default_suffix = format!(":{default_port}");
    let expected_authority = expected
        .authority
        .strip_suffix(default_suffix.as_str())
        .unwrap_or(expected.authority);
    if authority != expected_authority {
        return false;
    }
    // A proof made for another server that accepts the same tokens names that server's host;
    // the client may send that host here too, but it is not one of this gateway's.
    if !expected.hosts.is_empty()
        && !expected
            .hosts
            .iter()
            .any(|h| h.strip_suffix(default_suffix.as_str()).unwrap_or(h) == authority)
    {
        return false;
    }
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    crate::routes::normalize_path(path).is_ok_and(|p| p == expected.path)
}

/// Proofs seen within their window (RFC 9449 §11.1): a `jti` is accepted once per key. Bounded:
/// entries leave when their `iat` is too old to be accepted again, and past `max_entries` new
/// proofs are refused (as replays) rather than letting memory grow: a flood of proofs is
/// stopped, not remembered.
#[derive(Debug)]
pub struct ReplayCache {
    seen: DashMap<[u8; 32], i64>,
    max_entries: usize,
    /// When a full map was last swept: at most once a second, so a full map of live entries
    /// costs one scan a second, not one per request.
    last_sweep: std::sync::atomic::AtomicI64,
}

/// Proofs remembered at most (`dpop_proofs.max_replay_entries`): about 20 MB, enough for
/// 2,500 DPoP requests a second with the default 60 s window and 30 s leeway.
pub const DEFAULT_MAX_REPLAY_ENTRIES: usize = 300_000;

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(DEFAULT_MAX_REPLAY_ENTRIES)
    }
}

/// How an issuer's tokens may be bound to DPoP keys (`issuers[].dpop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DpopMode {
    /// DPoP-bound tokens are refused, and so is the `DPoP` scheme.
    Disabled,
    /// DPoP-bound tokens with a valid proof, and bearer tokens.
    #[default]
    Allowed,
    /// DPoP-bound tokens only: a bearer token of this issuer is refused.
    Required,
}

/// `dpop_proofs:` compiled: what every proof is checked against.
#[derive(Debug, Clone)]
pub struct ProofSettings {
    /// How old a proof's `iat` may be (also how long its `jti` is remembered).
    pub max_age: Duration,
    /// Asymmetric algorithms accepted for proofs.
    pub algorithms: Vec<Algorithm>,
    /// Proofs remembered at most (read at start).
    pub max_replay_entries: usize,
    /// Claim accepted proofs in `revocation.redis` too (`dpop_proofs.share_through_redis`).
    pub share_through_redis: bool,
    /// `dpop_proofs.hosts`, lower case: the hosts a proof may name on a route without
    /// `match.host`.
    pub hosts: Vec<String>,
    /// The same, space-separated: the `algs` of the challenge (RFC 9449 §7.1).
    pub algs: std::sync::Arc<str>,
}

impl ProofSettings {
    pub fn new(max_age: Duration, algorithms: Vec<Algorithm>, max_replay_entries: usize) -> Self {
        let algs: Vec<&str> = algorithms.iter().map(|a| a.as_str()).collect();
        ProofSettings {
            max_age,
            max_replay_entries,
            share_through_redis: false,
            hosts: Vec::new(),
            algs: std::sync::Arc::from(algs.join(" ")),
            algorithms,
        }
    }
}

impl Default for ProofSettings {
    fn default() -> Self {
        ProofSettings::new(
            Duration::from_secs(60),
            vec![
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
                Algorithm::PS256,
                Algorithm::RS256,
            ],
            DEFAULT_MAX_REPLAY_ENTRIES,
        )
    }
}

impl ReplayCache {
    pub fn new(max_entries: usize) -> Self {
        ReplayCache {
            seen: DashMap::new(),
            max_entries,
            last_sweep: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }

    /// Record `proof`, accepted until `expires` (its `iat` + the window): `Err(Replayed)` when the
    /// same key already used this `jti` and it has not expired.
    pub fn first_use(&self, proof: &Proof, expires: i64, now: i64) -> Result<(), ProofFault> {
        let key = proof.id();
        if self.seen.len() >= self.max_entries {
            use std::sync::atomic::Ordering::Relaxed;
            if self.last_sweep.fetch_max(now, Relaxed) < now {
                self.seen.retain(|_, until| *until >= now);
            }
            if self.seen.len() >= self.max_entries {
                tracing::warn!(
                    max_entries = self.max_entries,
                    "DPoP replay memory full of live proofs: new proofs are refused (raise dpop_proofs.max_replay_entries)"
                );
                return Err(ProofFault::Replayed);
            }
        }
        match self.seen.entry(key) {
            dashmap::Entry::Occupied(mut e) if *e.get() < now => {
                e.insert(expires);
                Ok(())
            }
            dashmap::Entry::Occupied(_) => Err(ProofFault::Replayed),
            dashmap::Entry::Vacant(e) => {
                e.insert(expires);
                Ok(())
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    const NOW: i64 = 1_900_000_000;
    const TOKEN: &str = "an.access.token";

    /// A client's DPoP key (P-256), made for the test.
    struct Client {
        pair: EcdsaKeyPair,
    }

    impl Client {
        fn new() -> Client {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            Client {
                pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                    .unwrap(),
            }
        }

        fn jwk(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            })
        }

        fn sign(&self, header: Value, claims: Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }

        /// A proof for `GET https://api.example.com/orders/7` with `TOKEN`, then `edit`ed.
        fn proof(&self, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
            let mut header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk() });
            let ath = URL_SAFE_NO_PAD
                .encode(ring::digest::digest(&ring::digest::SHA256, TOKEN.as_bytes()).as_ref());
            let mut claims = json!({
                "jti": "e1j3V_bKic8-LAEB", "htm": "GET",
                "htu": "https://api.example.com/orders/7", "iat": NOW, "ath": ath,
            });
            edit(&mut header, &mut claims);
            self.sign(header, claims)
        }
    }

    fn expected() -> Expected<'static> {
        Expected {
            method: "GET",
            scheme: "https",
            authority: "api.example.com",
            path: "/orders/7",
            access_token: TOKEN,
            algorithms: &[Algorithm::ES256, Algorithm::RS256],
            now: NOW,
            max_age: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            hosts: &[],
        }
    }

    #[test]
    fn a_proof_for_this_request_passes_and_names_its_key() {
        let client = Client::new();
        let proof = check(&client.proof(|_, _| {}), &expected()).unwrap();
        let Value::Object(jwk) = client.jwk() else {
            unreachable!()
        };
        assert_eq!(proof.jkt, thumbprint(&jwk).unwrap());
        assert_eq!((proof.jti.as_str(), proof.iat), ("e1j3V_bKic8-LAEB", NOW));
    }

    /// RFC 9449 §4.3 step 9 with §6.2.2/§6.2.3 normalisation: these name the same resource.
    #[test]
    fn htu_is_compared_after_normalisation_without_query_or_fragment() {
        let client = Client::new();
        for htu in [
            "HTTPS://API.example.com/orders/7",
            "https://api.example.com:443/orders/7",
            "https://api.example.com./orders/7",
            "https://api.example.com/orders/%37",
            "https://api.example.com/orders/7?limit=10",
            "https://api.example.com/orders/7#top",
        ] {
            let proof = client.proof(|_, c| c["htu"] = json!(htu));
            assert!(check(&proof, &expected()).is_ok(), "{htu}");
        }
        // The routed host keeps a default port the client wrote in `Host`.
        let with_port = Expected {
            authority: "api.example.com:443",
            ..expected()
        };
        assert!(check(&client.proof(|_, _| {}), &with_port).is_ok());
    }

    /// With `dpop_proofs.hosts` (a route without `match.host`), a proof made for another server
    /// is refused even when the client sends that server's host.
    #[test]
    fn on_a_hostless_route_htu_must_name_one_of_the_gateways_hosts() {
        let client = Client::new();
        let hosts = [
            "api.example.com:443".to_owned(),
            "api.example.org".to_owned(),
        ];
        let ours = Expected {
            hosts: &hosts,
            ..expected()
        };
        assert!(check(&client.proof(|_, _| {}), &ours).is_ok());
        let elsewhere = Expected {
            authority: "other-rs.example",
            hosts: &hosts,
            ..expected()
        };
        let proof = client.proof(|_, c| c["htu"] = json!("https://other-rs.example/orders/7"));
        assert_eq!(check(&proof, &elsewhere).unwrap_err(), ProofFault::Uri);
        // The same without the list: the check cannot tell this gateway from the other.
        let unlisted = Expected {
            hosts: &[],
            ..elsewhere
        };
        assert!(check(&proof, &unlisted).is_ok());
    }

    /// Each check failing alone, with its own fault.
    #[test]
    fn each_check_fails_alone() {
        let client = Client::new();
        let other = Client::new();
        let cases: Vec<(&str, String, ProofFault)> = vec![
            ("not a JWS", "abc".to_owned(), ProofFault::Malformed),
            (
                "typ",
                client.proof(|h, _| h["typ"] = json!("JWT")),
                ProofFault::Type,
            ),
            (
                "alg none",
                client.proof(|h, _| h["alg"] = json!("none")),
                ProofFault::Algorithm,
            ),
            (
                "alg HS256",
                client.proof(|h, _| h["alg"] = json!("HS256")),
                ProofFault::Algorithm,
            ),
            (
                "alg not allowed",
                client.proof(|h, _| h["alg"] = json!("ES384")),
                ProofFault::Algorithm,
            ),
            (
                "no jwk",
                client.proof(|h, _| {
                    h.as_object_mut().unwrap().remove("jwk");
                }),
                ProofFault::Key,
            ),
            (
                "private jwk",
                client.proof(|h, _| h["jwk"]["d"] = json!("c2VjcmV0")),
                ProofFault::Key,
            ),
            (
                "symmetric jwk",
                client.proof(|h, _| h["jwk"] = json!({ "kty": "oct", "k": "c2VjcmV0" })),
                ProofFault::Key,
            ),
            (
                "another key's jwk",
                client.proof(|h, _| h["jwk"] = other.jwk()),
                ProofFault::Signature,
            ),
            (
                "htm",
                client.proof(|_, c| c["htm"] = json!("POST")),
                ProofFault::Method,
            ),
            (
                "htm case",
                client.proof(|_, c| c["htm"] = json!("get")),
                ProofFault::Method,
            ),
            (
                "htu path",
                client.proof(|_, c| c["htu"] = json!("https://api.example.com/orders/8")),
                ProofFault::Uri,
            ),
            (
                "htu scheme",
                client.proof(|_, c| c["htu"] = json!("http://api.example.com/orders/7")),
                ProofFault::Uri,
            ),
            (
                "htu host",
                client.proof(|_, c| c["htu"] = json!("https://evil.example/orders/7")),
                ProofFault::Uri,
            ),
            (
                "htu port",
                client.proof(|_, c| c["htu"] = json!("https://api.example.com:8443/orders/7")),
                ProofFault::Uri,
            ),
            (
                "crit",
                client.proof(|h, _| h["crit"] = json!(["exp"])),
                ProofFault::Malformed,
            ),
            (
                "a coordinate with a leading zero byte (another thumbprint for the same key)",
                client.proof(|h, _| {
                    let x = URL_SAFE_NO_PAD
                        .decode(h["jwk"]["x"].as_str().unwrap())
                        .unwrap();
                    let padded = [&[0u8][..], &x].concat();
                    h["jwk"]["x"] = json!(URL_SAFE_NO_PAD.encode(padded));
                }),
                ProofFault::Key,
            ),
            (
                "htu userinfo",
                client.proof(|_, c| c["htu"] = json!("https://u@api.example.com/orders/7")),
                ProofFault::Uri,
            ),
            (
                "htu relative",
                client.proof(|_, c| c["htu"] = json!("/orders/7")),
                ProofFault::Uri,
            ),
            (
                "iat too old",
                client.proof(|_, c| c["iat"] = json!(NOW - 61)),
                ProofFault::Stale,
            ),
            (
                "iat in the future",
                client.proof(|_, c| c["iat"] = json!(NOW + 6)),
                ProofFault::Stale,
            ),
            (
                "ath of another token",
                client.proof(|_, c| c["ath"] = json!("x")),
                ProofFault::AccessTokenHash,
            ),
            (
                "no ath",
                client.proof(|_, c| {
                    c.as_object_mut().unwrap().remove("ath");
                }),
                ProofFault::AccessTokenHash,
            ),
            (
                "no jti",
                client.proof(|_, c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
                ProofFault::Malformed,
            ),
        ];
        for (what, proof, fault) in cases {
            assert_eq!(check(&proof, &expected()), Err(fault), "{what}");
        }
        // A signature made over other content.
        let good = client.proof(|_, _| {});
        let forged = client.proof(|_, c| c["htm"] = json!("DELETE"));
        let (input, _) = forged.rsplit_once('.').unwrap();
        let (_, signature) = good.rsplit_once('.').unwrap();
        assert_eq!(
            check(&format!("{input}.{signature}"), &expected()),
            Err(ProofFault::Signature)
        );
    }

    #[test]
    fn a_proof_is_used_once_within_its_window() {
        let client = Client::new();
        let proof = check(&client.proof(|_, _| {}), &expected()).unwrap();
        let cache = ReplayCache::new(2);
        assert_eq!(cache.first_use(&proof, NOW + 65, NOW), Ok(()));
        assert_eq!(
            cache.first_use(&proof, NOW + 65, NOW + 1),
            Err(ProofFault::Replayed)
        );
        // Past its window it can no longer pass `check`; its entry may be reused.
        assert_eq!(cache.first_use(&proof, NOW + 200, NOW + 66), Ok(()));
        // Another key's proof with the same jti is another proof.
        let other = check(&Client::new().proof(|_, _| {}), &expected()).unwrap();
        assert_eq!(cache.first_use(&other, NOW + 65, NOW), Ok(()));
        // Full, with every entry live: refused, not remembered.
        let third = check(
            &client.proof(|_, c| c["jti"] = json!("another")),
            &expected(),
        )
        .unwrap();
        assert_eq!(
            cache.first_use(&third, NOW + 65, NOW),
            Err(ProofFault::Replayed)
        );
        assert_eq!(cache.len(), 2);
    }
}
