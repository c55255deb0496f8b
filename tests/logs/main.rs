//! What the gateway logs, captured by its own subscriber: a global one, so these tests have a
//! binary of their own ([`support::logs::captured`] installs it once, at trace level).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod admission;
mod logging;
