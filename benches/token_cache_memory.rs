//! Memory of the verified-token cache: RSS growth for 100,000 cached tokens of a typical shape
//! (an access token with a dozen claims and four scopes). Prints the figure; asserts nothing.
//! Run with `cargo bench --bench token_cache_memory` (and `-- default` for the default bounds).
//! Figures: benches/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use portcullis::auth::cache::{digest, CacheSettings, Cached, TokenCache};
use portcullis::auth::principal::Principal;
use serde_json::json;

const TOKENS: usize = 100_000;

/// Resident memory of this process, from /proc (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    portcullis::install_crypto_provider();
    // The default identity headers (sub, client_id, scope, iss) and one route header (email).
    let config = "listeners: [{ name: bench, address: \"127.0.0.1:8080\" }]
issuers: [{ id: corp, issuer: \"https://idp.bench\", jwks_file: jwks.json, audiences: [orders-api] }]
upstreams: [{ id: echo, url: \"http://127.0.0.1:9000\" }]
routes: [{ id: orders, match: { path_prefix: /orders }, upstream: echo, identity: { headers: { X-User-Email: email } } }]
";
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let snapshot = portcullis::config::load_str(config, &fixtures)
        .unwrap()
        .snapshot;
    let issuer = Arc::clone(&snapshot.issuers[0]);
    let key = issuer
        .keys
        .current()
        .unwrap()
        .by_kid("test-rsa-1")
        .unwrap()
        .fingerprint;
    // One configuration per process, so the RSS growth is this cache's alone: `room` (bounds
    // large enough for every token: what 100,000 entries cost) by default, `default` (the
    // default bounds: what fits in them) when asked.
    let roomy = CacheSettings {
        max_bytes: 1024 * 1024 * 1024,
        max_entries: TOKENS as u64,
        ..CacheSettings::default()
    };
    match std::env::args().any(|a| a == "default") {
        true => fill(
            "default bounds",
            CacheSettings::default(),
            &issuer,
            key,
            &snapshot.kept_claims,
        ),
        false => fill("room for all", roomy, &issuer, key, &snapshot.kept_claims),
    }
}

fn fill(
    label: &str,
    settings: CacheSettings,
    issuer: &Arc<portcullis::snapshot::Issuer>,
    key: [u8; 32],
    kept_claims: &[String],
) {
    let cache = TokenCache::new(settings);
    let now = 1_900_000_000i64;
    let before = rss_bytes();
    for i in 0..TOKENS {
        let claims = json!({
            "iss": "https://idp.bench", "aud": "orders-api", "sub": format!("user-{i:08}"),
            "client_id": "orders-ui", "azp": "orders-ui", "iat": now, "nbf": now, "exp": now + 3600,
            "jti": format!("8f14e45f-ceea-467f-a8f2-{i:012}"),
            "scope": "read:orders write:orders profile email",
            "email": format!("user-{i:08}@example.com"), "name": "A. User",
        });
        let claims = claims.as_object().unwrap().clone();
        let principal = Principal::from_claims(claims, issuer);
        let entry = Cached::new(
            issuer,
            Some("test-rsa-1".into()),
            key,
            &principal,
            kept_claims,
            now,
            now + 300,
        )
        .unwrap();
        cache.insert(digest(&format!("token-{i}")), entry, now);
    }
    let after = rss_bytes();
    let stats = cache.stats();
    println!(
        "token_cache_memory ({label}): {TOKENS} inserted, {} entries cached, RSS growth {:.1} MB ({} bytes/entry), \
         estimated by the cache {:.1} MB, evictions {}",
        stats.entries,
        (after - before) as f64 / 1e6,
        (after - before) / stats.entries.max(1),
        stats.bytes as f64 / 1e6,
        stats.evictions
    );
}
