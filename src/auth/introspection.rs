//! Opaque access tokens: OAuth 2.0 Token Introspection (RFC 7662).
//!
//! Only the authorization server can say whether an opaque token is valid. An [`Introspector`]
//! (one per issuer with `introspection:`, kept across reloads while its settings are unchanged)
//! asks it, and keeps the answer:
//! - an active answer for at most `min(exp, now + max_ttl)` (a revocation entry of the gateway
//!   applies on every request all the same, since the principal is checked against the list);
//! - an inactive answer for `inactive_ttl`, in a separate map;
//! - both bounded in entries: when full of live entries, answers are not kept (requests still get
//!   them), so a flood of distinct tokens cannot grow memory;
//! - one request in flight per token (the others wait for its answer), and at most
//!   `max_concurrency` per issuer: past that, and on timeout or error, an uncached token gets
//!   `503` with `Retry-After`, never `401` (the token may be fine).
//!
//! The answer's claims are checked like a JWT's ([`check_claims`]) and become the same
//! [`super::Principal`], so scopes, revocation and identity headers work unchanged. Neither the
//! token nor the client secret is ever logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::{Map, Value};

use super::jwt::TokenFault;
use crate::snapshot::{Issuer, Secret};

/// `introspection:` of an issuer, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct IntrospectionSettings {
    /// The endpoint; empty: taken from the issuer's discovery document
    /// (`introspection_endpoint`, RFC 8414) on first use.
    pub endpoint: String,
    /// The issuer (`iss`), whose discovery document names the endpoint when `endpoint` is empty.
    pub issuer: String,
    pub client_id: String,
    /// How the gateway authenticates to the endpoint.
    pub client_auth: ClientAuth,
    pub timeout: Duration,
    pub max_ttl: Duration,
    pub inactive_ttl: Duration,
    pub max_concurrency: usize,
    pub cache_entries: usize,
    pub max_response_bytes: usize,
}

/// The gateway's client authentication at the introspection endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1).
    SecretBasic(Secret),
    /// `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): a short-lived assertion signed
    /// with this key (PEM, kept as a secret) on each call.
    PrivateKeyJwt {
        pem: Secret,
        algorithm: super::algorithm::Algorithm,
        key_id: Option<String>,
    },
}

/// Why an introspection gave no active token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionFault {
    /// `active: false`: the token is not (or no longer) valid.
    Inactive,
    /// The endpoint did not answer usably: `timeout`, `status`, `malformed`, `busy`,
    /// `discovery` (the discovery document names no usable endpoint),
    /// (`max_concurrency` reached), `unreachable`, `not_called` (a caller that does not
    /// introspect, such as `explain`).
    Unavailable(&'static str),
}

/// An active token's claims, as the authorization server gave them.
pub type Claims = Arc<Map<String, Value>>;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct IntrospectionStats {
    pub active: AtomicU64,
    pub inactive: AtomicU64,
    pub errors: AtomicU64,
    pub cache_hits: AtomicU64,
    /// Microseconds spent in calls, and how many calls.
    pub call_micros: AtomicU64,
    pub calls: AtomicU64,
}

/// What the authorization server said of a token.
pub type Answer = Result<Claims, IntrospectionFault>;

/// The introspection client and cache of one issuer.
#[derive(Debug)]
pub struct Introspector {
    settings: IntrospectionSettings,
    http: reqwest::Client,
    /// The signing key of `private_key_jwt`, parsed once.
    assertion_key: Option<jsonwebtoken::EncodingKey>,
    active: DashMap<[u8; 32], (Claims, i64)>,
    inactive: DashMap<[u8; 32], i64>,
    in_flight: DashMap<[u8; 32], Arc<tokio::sync::OnceCell<Answer>>>,
    slots: tokio::sync::Semaphore,
    /// The endpoint: configured, or found by discovery once (a failed lookup is tried again).
    endpoint: tokio::sync::OnceCell<String>,
    /// When a discovery lookup last failed: the next one waits 5 s, not every request's.
    discovery_failed_at: std::sync::atomic::AtomicI64,
    /// When a full map was last swept (active, inactive): at most once a second, so a full map
    /// of live entries costs one scan a second, not one per answer.
    swept: [std::sync::atomic::AtomicI64; 2],
    pub stats: IntrospectionStats,
}

/// The SHA-256 of a token: the cache key (the token itself is never kept).
fn key(token: &str) -> [u8; 32] {
    let mut k = [0u8; 32];
    k.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    k
}

impl Introspector {
    pub fn new(settings: IntrospectionSettings) -> Result<Introspector, String> {
        // reqwest needs the process's rustls provider (idempotent), as the key fetcher does.
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .no_proxy()
            // The token travels in the body: never follow a redirect with it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("introspection client: {e}"))?;
        let assertion_key = match &settings.client_auth {
            ClientAuth::SecretBasic(_) => None,
            ClientAuth::PrivateKeyJwt { pem, algorithm, .. } => {
                Some(assertion_key(pem.expose().as_bytes(), *algorithm)?)
            }
        };
        let endpoint = match settings.endpoint.is_empty() {
            true => tokio::sync::OnceCell::new(),
            false => tokio::sync::OnceCell::new_with(Some(settings.endpoint.clone())),
        };
        Ok(Introspector {
            assertion_key,
            endpoint,
            discovery_failed_at: std::sync::atomic::AtomicI64::new(i64::MIN),
            slots: tokio::sync::Semaphore::new(settings.max_concurrency),
            settings,
            http,
            active: DashMap::new(),
            inactive: DashMap::new(),
            in_flight: DashMap::new(),
            swept: [
                std::sync::atomic::AtomicI64::new(i64::MIN),
                std::sync::atomic::AtomicI64::new(i64::MIN),
            ],
            stats: IntrospectionStats::default(),
        })
    }

    pub fn settings(&self) -> &IntrospectionSettings {
        &self.settings
    }

    /// The cached answer for `token`, if one is live at `now`.
    pub fn cached(&self, token: &str, now: i64) -> Option<Answer> {
        let k = key(token);
        if let Some(entry) = self.active.get(&k) {
            if entry.1 > now {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Some(Ok(Arc::clone(&entry.0)));
            }
        }
        if let Some(until) = self.inactive.get(&k) {
            if *until > now {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Some(Err(IntrospectionFault::Inactive));
            }
        }
        None
    }

    /// The answer for `token`: cached, or asked of the endpoint (once, however many requests
    /// carry the token at the same time).
    pub async fn introspect(&self, token: &str, now: impl Fn() -> i64) -> Answer {
        if let Some(answer) = self.cached(token, now()) {
            return answer;
        }
        let k = key(token);
        let cell = Arc::clone(
            self.in_flight
                .entry(k)
                .or_insert_with(|| Arc::new(tokio::sync::OnceCell::new()))
                .value(),
        );
        // Leaves the map with the last request waiting on it, answered or dropped (a client
        // that went away), so the map holds only calls someone still waits for.
        let _leave = InFlight {
            map: &self.in_flight,
            key: k,
            cell: &cell,
        };
        cell.get_or_init(|| async {
            let answer = self.call(token).await;
            self.keep(k, &answer, now());
            answer
        })
        .await
        .clone()
    }

    /// One request to the endpoint (RFC 7662 §2.1), within the concurrency limit.
    async fn call(&self, token: &str) -> Answer {
        // Waits for a slot within the timeout: a burst queues, it is not turned away.
        let started = std::time::Instant::now();
        let slot = tokio::time::timeout(self.settings.timeout, self.slots.acquire()).await;
        let answer = match slot {
            // Bounded as a whole too: a discovery lookup and the call each have the timeout.
            Ok(Ok(_slot)) => {
                let twice = self.settings.timeout.saturating_mul(2);
                tokio::time::timeout(twice, self.request(token))
                    .await
                    .unwrap_or(Err(IntrospectionFault::Unavailable("timeout")))
            }
            _ => Err(IntrospectionFault::Unavailable("busy")),
        };
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.call_micros.fetch_add(micros, Ordering::Relaxed);
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let counter = match &answer {
            Ok(_) => &self.stats.active,
            Err(IntrospectionFault::Inactive) => &self.stats.inactive,
            Err(IntrospectionFault::Unavailable(why)) => {
                tracing::warn!(
                    issuer = %self.settings.issuer,
                    reason = why,
                    "token introspection failed"
                );
                &self.stats.errors
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        answer
    }

    /// The endpoint: configured, or the discovery document's `introspection_endpoint`, for the
    /// same `issuer` (RFC 8414 §3.3) and under the same rules as a configured one.
    async fn endpoint(&self) -> Result<&str, IntrospectionFault> {
        if let Some(found) = self.endpoint.get() {
            return Ok(found.as_str());
        }
        let now = crate::clock::unix_now();
        if self.discovery_failed_at.load(Ordering::Relaxed) > now.saturating_sub(5) {
            return Err(IntrospectionFault::Unavailable("discovery"));
        }
        let found = self
            .endpoint
            .get_or_try_init(|| async {
                let failed = || {
                    self.discovery_failed_at
                        .store(crate::clock::unix_now(), Ordering::Relaxed);
                    IntrospectionFault::Unavailable("discovery")
                };
                let url = super::fetch::discovery_url(&self.settings.issuer);
                let mut response = self.http.get(&url).send().await.map_err(|_| failed())?;
                if !response.status().is_success() {
                    return Err(failed());
                }
                let mut bytes = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(|_| failed())? {
                    if bytes.len() + chunk.len() > self.settings.max_response_bytes {
                        return Err(failed());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                let doc: Value = serde_json::from_slice(&bytes).map_err(|_| failed())?;
                let endpoint = doc
                    .get("introspection_endpoint")
                    .and_then(Value::as_str)
                    .filter(|_| {
                        doc.get("issuer").and_then(Value::as_str) == Some(&self.settings.issuer)
                    })
                    .filter(|e| super::fetch::check_key_url(e).is_ok() && !e.contains(['@', '#']))
                    .ok_or_else(failed)?;
                Ok(endpoint.to_owned())
            })
            .await?;
        Ok(found.as_str())
    }

    async fn request(&self, token: &str) -> Answer {
        let endpoint = self.endpoint().await?;
        let mut body = format!("token={}&token_type_hint=access_token", form_encode(token));
        let mut request = self.http.post(endpoint);
        match (&self.settings.client_auth, &self.assertion_key) {
            (ClientAuth::SecretBasic(secret), _) => {
                request = request.basic_auth(
                    form_encode(&self.settings.client_id),
                    Some(form_encode(secret.expose())),
                );
            }
            (
                ClientAuth::PrivateKeyJwt {
                    algorithm, key_id, ..
                },
                Some(key),
            ) => {
                let assertion = self
                    .client_assertion(endpoint, *algorithm, key_id.as_deref(), key)
                    .ok_or(IntrospectionFault::Unavailable("assertion"))?;
                body.push_str(&format!(
                    "&client_id={}&client_assertion_type={}&client_assertion={}",
                    form_encode(&self.settings.client_id),
                    form_encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    assertion
                ));
            }
            (ClientAuth::PrivateKeyJwt { .. }, None) => {
                return Err(IntrospectionFault::Unavailable("assertion"))
            }
        }
        let sent = request
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(IntrospectionFault::Unavailable("timeout")),
            Err(_) => return Err(IntrospectionFault::Unavailable("unreachable")),
        };
        if !response.status().is_success() {
            tracing::warn!(
                status = response.status().as_u16(),
                "the introspection endpoint refused the gateway's request (check its client credentials)"
            );
            return Err(IntrospectionFault::Unavailable("status"));
        }
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > self.settings.max_response_bytes {
                        return Err(IntrospectionFault::Unavailable("malformed"));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(IntrospectionFault::Unavailable("timeout")),
                Err(_) => return Err(IntrospectionFault::Unavailable("unreachable")),
            }
        }
        let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&bytes) else {
            return Err(IntrospectionFault::Unavailable("malformed"));
        };
        // RFC 7662 §2.2: `active` is REQUIRED and boolean; anything but `true` is inactive.
        match claims.get("active") {
            Some(Value::Bool(true)) => Ok(Arc::new(claims)),
            Some(Value::Bool(false)) => Err(IntrospectionFault::Inactive),
            _ => Err(IntrospectionFault::Unavailable("malformed")),
        }
    }

    /// A client assertion (RFC 7523 §3): `iss` and `sub` the client, `aud` the endpoint, a
    /// minute of life, a fresh `jti`.
    fn client_assertion(
        &self,
        endpoint: &str,
        algorithm: super::algorithm::Algorithm,
        key_id: Option<&str>,
        key: &jsonwebtoken::EncodingKey,
    ) -> Option<String> {
        let now = crate::clock::unix_now();
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti).ok()?;
        let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        let mut header = jsonwebtoken::Header::new(algorithm.to_jsonwebtoken());
        header.kid = key_id.map(str::to_owned);
        let claims = serde_json::json!({
            "iss": self.settings.client_id, "sub": self.settings.client_id, "aud": endpoint,
            "jti": jti, "iat": now, "exp": now + 60,
        });
        jsonwebtoken::encode(&header, &claims, key).ok()
    }

    /// Keep an answer: active until `min(exp, now + max_ttl)`, inactive for `inactive_ttl`;
    /// errors are not kept (the next request asks again).
    fn keep(&self, k: [u8; 32], answer: &Answer, now: i64) {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        match answer {
            Ok(claims) => {
                let exp = claims
                    .get("exp")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX);
                let until = exp.min(now.saturating_add(secs(self.settings.max_ttl)));
                if until > now && self.room(&self.active.len(), now, true) {
                    self.active.insert(k, (Arc::clone(claims), until));
                }
            }
            Err(IntrospectionFault::Inactive) => {
                let until = now.saturating_add(secs(self.settings.inactive_ttl));
                if until > now && self.room(&self.inactive.len(), now, false) {
                    self.inactive.insert(k, until);
                }
            }
            Err(IntrospectionFault::Unavailable(_)) => {}
        }
    }

    /// Whether a map with `len` entries may take one more, after dropping its expired entries
    /// (a sweep at most once a second: a full map of live entries takes no more).
    fn room(&self, len: &usize, now: i64, active: bool) -> bool {
        if *len < self.settings.cache_entries {
            return true;
        }
        if self.swept[usize::from(!active)].fetch_max(now, Ordering::Relaxed) >= now {
            return false;
        }
        match active {
            true => self.active.retain(|_, (_, until)| *until > now),
            false => self.inactive.retain(|_, until| *until > now),
        }
        let len = match active {
            true => self.active.len(),
            false => self.inactive.len(),
        };
        len < self.settings.cache_entries
    }

    /// Keep `answer` for `token` as if the endpoint had just given it: for benches and tests of
    /// the cached path.
    #[doc(hidden)]
    pub fn remember(&self, token: &str, answer: &Answer, now: i64) {
        self.keep(key(token), answer, now);
    }

    /// Entries kept (active, inactive).
    pub fn cache_len(&self) -> (usize, usize) {
        (self.active.len(), self.inactive.len())
    }
}

/// Removes a call from the in-flight map when the last request waiting on it is done with it.
struct InFlight<'a> {
    map: &'a DashMap<[u8; 32], Arc<tokio::sync::OnceCell<Answer>>>,
    key: [u8; 32],
    cell: &'a Arc<tokio::sync::OnceCell<Answer>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // Answered: the answer is in the caches, and the waiters hold their own references, so
        // the entry goes. Not answered (every waiter went away): it goes with the last one (the
        // map's reference and this request's); should two leave at once, the next request for
        // the token answers the entry and removes it.
        self.map.remove_if(&self.key, |_, c| {
            Arc::ptr_eq(c, self.cell) && (c.initialized() || Arc::strong_count(c) <= 2)
        });
    }
}

/// The signing key of `private_key_jwt` for `algorithm`, from PEM.
pub fn assertion_key(
    pem: &[u8],
    algorithm: super::algorithm::Algorithm,
) -> Result<jsonwebtoken::EncodingKey, String> {
    use super::algorithm::KeyType;
    let key = match algorithm.key_type() {
        KeyType::Rsa => jsonwebtoken::EncodingKey::from_rsa_pem(pem),
        KeyType::EcP256 | KeyType::EcP384 => jsonwebtoken::EncodingKey::from_ec_pem(pem),
        KeyType::Ed25519 => jsonwebtoken::EncodingKey::from_ed_pem(pem),
    };
    key.map_err(|e| format!("not a {} private key in PEM: {e}", algorithm.as_str()))
}

/// `application/x-www-form-urlencoded` (RFC 7662 §2.1; the client credentials in Basic too,
/// RFC 6749 §2.3.1).
pub fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An active introspection answer checked like a JWT's claims (RFC 7662 §2.2 and §4): `exp`
/// present and not past, the lifetime within `revocation.max_token_lifetime` (so revocations
/// outlive it), `nbf` not ahead (with the issuer's leeway), `iss` (when given) the issuer, `aud`
/// one of `audiences`, and not a refresh token (`token_type`, or ORY's `token_use`).
pub fn check_claims(
    claims: &Map<String, Value>,
    issuer: &Issuer,
    audiences: &[String],
    now: i64,
) -> Result<(), TokenFault> {
    let leeway = i64::try_from(issuer.leeway.as_secs()).unwrap_or(i64::MAX);
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(TokenFault::MissingExpiry)?;
    if exp.saturating_add(leeway) <= now {
        return Err(TokenFault::Expired);
    }
    super::jwt::check_lifetime(claims, issuer, now)?;
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
        if nbf > now.saturating_add(leeway) {
            return Err(TokenFault::NotYetValid);
        }
    }
    if let Some(iss) = claims.get("iss") {
        if iss.as_str() != Some(issuer.issuer.as_str()) {
            return Err(TokenFault::WrongIssuer);
        }
    }
    let refresh = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .is_some_and(|t| t.to_ascii_lowercase().contains("refresh"))
    };
    // `token_type` (RFC 7662), ORY's `token_use`, Keycloak's `typ` (`Refresh`, `Offline` for an
    // offline refresh token, `ID` for an ID token).
    let keycloak_other = claims
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("offline") || t.eq_ignore_ascii_case("id"));
    if refresh("token_type") || refresh("token_use") || refresh("typ") || keycloak_other {
        return Err(TokenFault::NotAnAccessToken);
    }
    let named = |aud: &str| audiences.iter().any(|a| a == aud);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => named(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(named),
        _ => false,
    };
    if !aud_ok {
        return Err(TokenFault::WrongAudience);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issuer() -> Issuer {
        Issuer {
            id: Arc::from("corp"),
            issuer: "https://idp.test".to_owned(),
            audiences: vec!["orders-api".to_owned()],
            algorithms: vec![],
            leeway: Duration::from_secs(30),
            scope_claims: vec!["scope".to_owned()],
            token_type: None,
            dpop: crate::auth::dpop::DpopMode::Allowed,
            rfc9068: false,
            max_token_lifetime: Duration::from_secs(86_400),
            keys: Arc::new(crate::auth::keys::IssuerKeys::fixed(
                Arc::from("corp"),
                crate::auth::jwks::KeySet::default(),
            )),
            key_source: None,
            token_format: crate::auth::TokenFormat::Opaque,
            introspector: None,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else { unreachable!() };
        m
    }

    const NOW: i64 = 1_900_000_000;

    /// RFC 7662 §4: the resource server checks what a JWT's claims would tell it.
    #[test]
    fn an_active_answer_is_checked_like_a_jwt() {
        let aud = ["orders-api".to_owned()];
        let ok = json!({
            "active": true, "iss": "https://idp.test", "aud": ["x", "orders-api"],
            "exp": NOW + 60, "iat": NOW,
        });
        assert_eq!(check_claims(&claims(ok), &issuer(), &aud, NOW), Ok(()));
        let exp = NOW + 60;
        for typ in ["Refresh", "Offline", "ID"] {
            let keycloak = json!({ "aud": "orders-api", "exp": exp, "typ": typ });
            assert_eq!(
                check_claims(&claims(keycloak), &issuer(), &aud, NOW),
                Err(TokenFault::NotAnAccessToken),
                "{typ}"
            );
        }
        for (answer, fault) in [
            (
                json!({ "aud": "orders-api", "exp": NOW - 31 }),
                TokenFault::Expired,
            ),
            (
                json!({ "aud": "orders-api", "exp": "soon" }),
                TokenFault::MissingExpiry,
            ),
            (json!({ "aud": "orders-api" }), TokenFault::MissingExpiry),
            (
                json!({ "aud": "orders-api", "exp": exp, "iat": NOW - 90_000 }),
                TokenFault::LifetimeTooLong,
            ),
            (
                json!({ "aud": "orders-api", "exp": exp, "nbf": NOW + 31 }),
                TokenFault::NotYetValid,
            ),
            (
                json!({ "aud": "orders-api", "exp": exp, "iss": "https://other.test" }),
                TokenFault::WrongIssuer,
            ),
            (
                json!({ "aud": "billing-api", "exp": exp }),
                TokenFault::WrongAudience,
            ),
            (json!({ "exp": exp }), TokenFault::WrongAudience),
            (
                json!({ "aud": "orders-api", "exp": exp, "token_type": "refresh_token" }),
                TokenFault::NotAnAccessToken,
            ),
            (
                json!({ "aud": "orders-api", "exp": exp, "token_use": "refresh_token" }),
                TokenFault::NotAnAccessToken,
            ),
        ] {
            assert_eq!(
                check_claims(&claims(answer.clone()), &issuer(), &aud, NOW),
                Err(fault),
                "{answer}"
            );
        }
    }

    #[test]
    fn form_encoding_leaves_no_separator_unescaped() {
        assert_eq!(form_encode("a b&c=d+e/é"), "a%20b%26c%3Dd%2Be%2F%C3%A9");
    }
}
