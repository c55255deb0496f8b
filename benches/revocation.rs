//! Revocation lookups with 1,000,000 `jti` entries (target: under 200 ns), and the memory those
//! entries take (target: under 200 MB), measured from the process's resident set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis::revocation::{Revocation, RevocationList, TokenFacts};

const ENTRIES: usize = 1_000_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A UUID-shaped jti, as most identity providers issue.
fn jti(i: usize) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        i,
        i % 0xffff,
        i % 0xfff,
        (i * 7) % 0xfff,
        i * 31
    )
}

fn bench(c: &mut Criterion) {
    let before = rss_kib();
    let list = RevocationList::default();
    for i in 0..ENTRIES {
        list.insert(&Revocation::Jti {
            jti: jti(i),
            issuer: None,
            expires_at: i64::MAX,
        });
    }
    let after = rss_kib();
    eprintln!(
        "revocation list: {ENTRIES} jti entries use {:.1} MB resident ({} bytes per entry)",
        (after - before) as f64 / 1024.0,
        (after - before) * 1024 / ENTRIES as u64
    );
    let hit = jti(ENTRIES / 2);
    let miss = jti(ENTRIES + 17);
    let facts = |j: &'static str| TokenFacts {
        issuer: "corp",
        jti: Some(j),
        sub: Some("alice"),
        client_id: Some("ui"),
        iat: Some(1),
    };
    let hit: &'static str = Box::leak(hit.into_boxed_str());
    let miss: &'static str = Box::leak(miss.into_boxed_str());
    assert!(list.check(&facts(hit)).is_some());
    assert!(list.check(&facts(miss)).is_none());
    c.bench_function("revocation_check/1M_hit", |b| {
        b.iter(|| list.check(black_box(&facts(hit))))
    });
    c.bench_function("revocation_check/1M_miss", |b| {
        b.iter(|| list.check(black_box(&facts(miss))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
