//! portcullis: an OAuth 2.0 enforcing reverse-proxy API gateway on Pingora.
//!
//! A request's way through the code:
//! [`proxy`] (thin Pingora phases) → [`admission::admit`], the one admission function:
//! [`admission::route`] ([`target`]: method, target form and host; [`routes`]: normalise, match),
//! the TLS version, [`auth::authenticate`] (bearer → JWT → revocation → scopes), the unknown-`kid`
//! key refresh → [`forwarding`] and [`identity`] (strip, then set headers) → upstream.
//! `explain` runs the same [`admission::admit`] with a recording observer.
//! Configuration is compiled by [`config`] into an immutable [`snapshot::Snapshot`]; every
//! rejection is an [`error::GatewayError`] rendered by [`error::render`].

pub mod admin;
pub mod admission;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cors;
pub mod decision;
pub mod demo;
pub mod drain;
pub mod error;
pub mod explain;
pub mod forwarding;
pub mod identity;
pub mod jwks_from_pem;
pub mod metrics;
pub mod proxy;
pub mod query;
pub mod rate_limit;
pub mod reload;
pub mod request_id;
pub mod revocation;
pub mod routes;
pub mod snapshot;
pub mod source;
pub mod stores;
pub mod target;
pub mod telemetry;
pub mod tls;

/// Install the process-wide rustls crypto provider. Pingora's rustls brings `ring` while
/// other crates may bring `aws-lc-rs`; with two in the tree rustls needs one chosen explicitly.
pub fn install_crypto_provider() {
    // Err only means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
