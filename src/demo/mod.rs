//! `portcullis demo`: the shipped configuration, a built-in echo backend and freshly minted
//! demo tokens, so a newcomer sees an authenticated request work (and fail) in one command.
//!
//! The signing key under `deploy/demo/` is a DEMO-ONLY key: it is public, in the repository.

pub mod echo;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::routes::PathMatch;
use crate::snapshot::{RouteAuth, Snapshot};

/// Demo token minting failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot read the demo signing key {path}: {source}")]
    Key {
        path: String,
        source: std::io::Error,
    },
    #[error("the demo signing key is not an RSA private key: {0}")]
    KeyFormat(jsonwebtoken::errors::Error),
    #[error("cannot sign a demo token: {0}")]
    Sign(jsonwebtoken::errors::Error),
    #[error("the configuration has no issuer or no protected route to demonstrate")]
    NothingToShow,
    #[error("cannot start the demo backend on {address}: {source}")]
    Backend {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Tokens for the demo: one that works, one without the route's scope, one expired.
#[derive(Debug, Clone)]
pub struct DemoTokens {
    pub valid: String,
    pub under_scoped: String,
    pub expired: String,
}

/// Claims for a demo token of `snapshot`'s first issuer, granting `scopes`, valid from `iat`
/// for `lifetime` seconds.
fn claims(
    snapshot: &Snapshot,
    scopes: &str,
    iat: i64,
    lifetime: i64,
    serial: u32,
) -> Result<serde_json::Value, DemoError> {
    let issuer = snapshot.issuers.first().ok_or(DemoError::NothingToShow)?;
    let audience = issuer.audiences.first().ok_or(DemoError::NothingToShow)?;
    Ok(json!({
        "iss": issuer.issuer,
        "aud": audience,
        "sub": "demo-user",
        "client_id": "demo-client",
        "scope": scopes,
        "iat": iat,
        "exp": iat + lifetime,
        "jti": format!("demo-{iat}-{serial}"),
    }))
}

/// Mint the three demo tokens with the RSA key at `key_path`, whose JWKS `kid` is `kid`.
pub fn mint(
    snapshot: &Snapshot,
    key_path: &Path,
    kid: &str,
    now: i64,
) -> Result<DemoTokens, DemoError> {
    let pem = std::fs::read(key_path).map_err(|source| DemoError::Key {
        path: key_path.display().to_string(),
        source,
    })?;
    let key = EncodingKey::from_rsa_pem(&pem).map_err(DemoError::KeyFormat)?;
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let scopes = demo_scopes(snapshot).ok_or(DemoError::NothingToShow)?;
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(&header, &claims, &key).map_err(DemoError::Sign)
    };
    Ok(DemoTokens {
        valid: sign(claims(snapshot, &scopes, now, 3600, 1)?)?,
        under_scoped: sign(claims(snapshot, "profile", now, 3600, 2)?)?,
        expired: sign(claims(snapshot, &scopes, now - 7200, 3600, 3)?)?,
    })
}

/// The scopes of the first protected route that requires any.
fn demo_scopes(snapshot: &Snapshot) -> Option<String> {
    snapshot.routes.iter().find_map(|r| match &r.auth {
        RouteAuth::Protected { scopes, .. } if !scopes.requirement.is_empty() => {
            let mut s = scopes.requirement.all_of.clone();
            s.extend(scopes.requirement.any_of.first().cloned());
            Some(s.join(" "))
        }
        _ => None,
    })
}

/// The curl commands printed by `portcullis demo`.
pub fn instructions(snapshot: &Snapshot, tokens: &DemoTokens) -> String {
    let base = snapshot
        .listeners
        .first()
        .map(|l| format!("http://{}", l.address))
        .unwrap_or_default();
    let mut protected = None;
    let mut public = None;
    for (m, idx) in snapshot.route_table.iter() {
        let route = &snapshot.routes[idx];
        let path = match &m.path {
            PathMatch::Exact(p) => p.clone(),
            PathMatch::Prefix(p) => format!("{}/42", p.trim_end_matches('/')),
        };
        let host = m
            .host
            .as_ref()
            .map(|h| format!(" -H 'Host: {h}'"))
            .unwrap_or_default();
        let allows_get = m
            .methods
            .as_ref()
            .is_none_or(|ms| ms.contains(&http::Method::GET));
        match &route.auth {
            RouteAuth::Protected { scopes, .. }
                if allows_get && !scopes.requirement.is_empty() && protected.is_none() =>
            {
                protected = Some((path, host));
            }
            RouteAuth::Public if allows_get && public.is_none() => public = Some((path, host)),
            _ => {}
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nportcullis demo: gateway on {base}, echo backend behind it."
    );
    let _ = writeln!(
        out,
        "Tokens are signed with the DEMO-ONLY key in deploy/demo/ and expire in 1 hour.\n"
    );
    if let Some((path, host)) = &protected {
        let _ = writeln!(
            out,
            "# 200: a valid token; the backend echoes the identity headers it received"
        );
        let _ = writeln!(
            out,
            "curl -i{host} -H 'Authorization: Bearer {}' {base}{path}\n",
            tokens.valid
        );
        let _ = writeln!(
            out,
            "# 403 insufficient_scope: a valid token without the route's scope"
        );
        let _ = writeln!(
            out,
            "curl -i{host} -H 'Authorization: Bearer {}' {base}{path}\n",
            tokens.under_scoped
        );
        let _ = writeln!(out, "# 401 invalid_token: an expired token");
        let _ = writeln!(
            out,
            "curl -i{host} -H 'Authorization: Bearer {}' {base}{path}\n",
            tokens.expired
        );
        let _ = writeln!(out, "# 401: no token at all");
        let _ = writeln!(out, "curl -i{host} {base}{path}\n");
        let _ = writeln!(
            out,
            "# 200, and the forged identity header never reaches the backend"
        );
        let _ = writeln!(
            out,
            "curl -i{host} -H 'X-Auth-Subject: admin' -H 'Authorization: Bearer {}' {base}{path}\n",
            tokens.valid
        );
    }
    if let Some((path, host)) = &public {
        let _ = writeln!(out, "# 200: a public route, no token needed");
        let _ = writeln!(out, "curl -i{host} {base}{path}\n");
    }
    let _ = writeln!(out, "Stop with Ctrl-C.");
    out
}

/// Start the echo backend on every loopback upstream of the snapshot, each on its own thread.
pub fn start_backends(snapshot: &Snapshot) -> Result<Vec<SocketAddr>, DemoError> {
    let mut started = Vec::new();
    for upstream in &snapshot.upstreams {
        let address = upstream.address;
        if !address.ip().is_loopback() || started.contains(&address) {
            continue;
        }
        let listener = std::net::TcpListener::bind(address)
            .map_err(|source| DemoError::Backend { address, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| DemoError::Backend { address, source })?;
        std::thread::Builder::new()
            .name("demo-backend".into())
            .spawn(move || run_backend(listener))
            .map_err(|source| DemoError::Backend { address, source })?;
        started.push(address);
    }
    Ok(started)
}

fn run_backend(listener: std::net::TcpListener) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "demo backend runtime failed to start");
            return;
        }
    };
    runtime.block_on(async move {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                if let Err(e) = echo::serve(listener).await {
                    tracing::error!(error = %e, "demo backend stopped");
                }
            }
            Err(e) => tracing::error!(error = %e, "demo backend cannot listen"),
        }
    });
}
