//! The cost of a local rate-limit check (target: at most 200 ns), and the memory of the table
//! holding 1,000,000 keys (target: at most 100 MB).
//!
//! `cargo bench --bench rate_limit`: criterion's `rate_limit/*`, then the memory figure
//! (RSS growth of a 1,000,000-key table filled with as many distinct keys) printed last.
//! Figures: benches/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, Criterion};
use portcullis::rate_limit::{check_local, KeyPart, LimitStore, Quota, RateLimit, Subject};

const MILLION: usize = 1_000_000;

fn limit(name: &str, key: &[KeyPart]) -> Arc<RateLimit> {
    Arc::new(RateLimit {
        name: Arc::from(name),
        budget: Arc::from("default"),
        key: key.to_vec(),
        // Generous enough that every check is allowed: the common case.
        quota: Quota {
            interval: 1_000,
            burst: 1_000_000,
        },
        rate: "1000000/s".to_owned(),
    })
}

fn checks(c: &mut Criterion) {
    let store = LimitStore::new(MILLION);
    let table = &store.local;
    let by_ip = [limit("ip", &[KeyPart::Ip])];
    let both = [
        limit("ip", &[KeyPart::Ip]),
        limit("ip_route", &[KeyPart::Ip, KeyPart::Route]),
    ];
    let ip = |i: usize| Some(std::net::Ipv4Addr::from(0x0a00_0000 | i as u32).into());
    // Fill the table: the checks below run against a full one.
    for i in 0..MILLION {
        let subject = Subject {
            ip: ip(i),
            route: "orders",
            principal: None,
        };
        check_local(table, &by_ip, &subject, table.now(), &mut Vec::new());
    }
    let mut group = c.benchmark_group("rate_limit");
    // One limit, one client: hash the key, find its slot, compare-and-swap its TAT (and the
    // outcome's vector, as admission makes one per request).
    let one = Subject {
        ip: ip(7),
        route: "orders",
        principal: None,
    };
    group.bench_function("check/one_key", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            check_local(
                table,
                black_box(&by_ip),
                black_box(&one),
                table.now(),
                &mut out,
            );
            out
        })
    });
    // A million clients in turn: every check misses the CPU caches, as under real traffic.
    let mut i = 0usize;
    group.bench_function("check/million_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % MILLION;
            let subject = Subject {
                ip: ip(i),
                route: "orders",
                principal: None,
            };
            let mut out = Vec::new();
            check_local(table, black_box(&by_ip), &subject, table.now(), &mut out);
            out
        })
    });
    group.bench_function("check/two_limits", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            check_local(
                table,
                black_box(&both),
                black_box(&one),
                table.now(),
                &mut out,
            );
            out
        })
    });
    group.finish();
}

/// Resident memory of this process, from /proc (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn memory() {
    let before = rss_bytes();
    let store = LimitStore::new(MILLION);
    let by_ip = [limit("ip", &[KeyPart::Ip])];
    for i in 0..MILLION as u32 {
        let subject = Subject {
            ip: Some(std::net::Ipv4Addr::from(0x0a00_0000 | i).into()),
            route: "orders",
            principal: None,
        };
        check_local(
            &store.local,
            &by_ip,
            &subject,
            store.local.now(),
            &mut Vec::new(),
        );
    }
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "rate_limit/memory: {MILLION} distinct keys in a max_keys={MILLION} table: table {:.1} MB ({} slots), RSS growth {:.1} MB, live keys evicted {}",
        store.local.bytes() as f64 / 1e6,
        store.local.slots(),
        grown as f64 / 1e6,
        store.local.evicted_active(),
    );
}

criterion_group!(benches, checks);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    memory();
}
