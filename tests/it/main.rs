//! The integration tests, one binary: each module is one area, all on the real gateway
//! (in-process through `support::gateway`, or the built binary through `support::process`).
//! One binary links Pingora once instead of once per file; `make test` measured both (see
//! docs/architecture.md). Tests that install a global log subscriber are in `tests/logs/`, and
//! the allocation counts (a counting global allocator) in `tests/allocations.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod cli;
mod config;
mod cors;
mod decision;
mod demo;
mod dpop;
mod explain;
mod hardening;
mod identity_headers;
mod introspection;
mod jose_vectors;
mod kubelet;
mod log_writer;
mod path_normalisation;
mod rate_limits;
mod rejections;
mod reload;
mod remote_keys;
mod request_path;
mod revocation;
mod revocation_redis;
mod signals;
mod tls;
mod token_cache;
mod token_rules;
