//! Compiling the file model into a [`Snapshot`], collecting every error with its YAML location.
//!
//! The compiler never stops at the first problem: each section is checked, each error recorded
//! with `line:column` and a path such as `routes[2].match.path_prefix`, and only a configuration
//! without errors becomes a snapshot. Warnings (risky but valid settings) travel alongside.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use pingora::upstreams::peer::HttpPeer;
use serde_saphyr::{Location, Spanned};

use super::file::*;
use super::{ConfigError, ConfigErrors};
use crate::auth::algorithm::Algorithm;
use crate::auth::fetch::{check_key_url, HttpKeySource, KeySource, Remote};
use crate::auth::jwks::KeySet;
use crate::auth::keys::{IssuerKeys, RefreshPolicy};
use crate::auth::scope::{is_valid_scope_token, ScopeRequirement};
use crate::revocation::mirror::RedisSettings;
use crate::routes::{normalize_path, PathMatch, RouteMatch, RouteTable};
use crate::snapshot::*;

/// A compiled configuration and the warnings it raised.
#[derive(Debug)]
pub struct Compiled {
    pub snapshot: Snapshot,
    pub warnings: Vec<ConfigError>,
}

/// Identity headers used when `identity.headers` is not given.
pub const DEFAULT_IDENTITY_HEADERS: [(&str, &str); 4] = [
    ("x-auth-subject", "sub"),
    ("x-auth-client-id", "client_id"),
    ("x-auth-scopes", "scope"),
    ("x-auth-issuer", "iss"),
];
const DEFAULT_STRIP_PREFIX: &str = "x-auth-";
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
const MAX_LEEWAY: Duration = Duration::from_secs(300);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Headers that may never be set from claims: they carry transport, framing or credentials.
const FORBIDDEN_IDENTITY_HEADERS: [&str; 14] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "x-request-id",
];

struct Ctx {
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl Ctx {
    fn error(&mut self, at: Location, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::at(at, path, message));
    }
    fn warn(&mut self, at: Location, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigError::at(at, path, message));
    }
}

/// Compile a parsed file. Relative file paths (`jwks_file`) resolve against `base_dir`, the
/// directory of the configuration file.
pub fn compile(file: GatewayFile, base_dir: &Path) -> Result<Compiled, ConfigErrors> {
    let mut cx = Ctx {
        errors: Vec::new(),
        warnings: Vec::new(),
    };

    let listeners = compile_listeners(&mut cx, &file.listeners, base_dir);
    // Ids resolve by position in the file even when their entry has errors, so a broken issuer
    // is reported once, where it is, and not again as "unknown" by every route naming it.
    let issuers = compile_issuers(&mut cx, &file.issuers, base_dir);
    let issuer_ids: HashMap<&str, usize> = file
        .issuers
        .iter()
        .enumerate()
        .map(|(i, f)| (f.value.id.value.as_str(), i))
        .collect();
    let upstreams = compile_upstreams(&mut cx, &file.upstreams, base_dir);
    let upstream_ids: HashMap<&str, usize> = file
        .upstreams
        .value
        .iter()
        .enumerate()
        .map(|(i, f)| (f.value.id.value.as_str(), i))
        .collect();
    let (identity, gateway_headers) = compile_identity(&mut cx, file.identity.as_ref());
    let (forwarding, forwarding_errors) = super::forwarding::compile(file.forwarding.as_ref());
    cx.errors.extend(forwarding_errors);
    let limits = compile_limits(&mut cx, file.limits.as_ref());
    let admin_address = compile_admin(&mut cx, file.admin.as_ref(), &listeners);
    check_logging(&mut cx, file.logging.as_ref());
    let admin_token = compile_admin_token(&mut cx, file.admin.as_ref(), base_dir);
    let max_token_lifetime = match file
        .revocation
        .as_ref()
        .and_then(|r| r.max_token_lifetime.as_ref())
    {
        None => DEFAULT_MAX_TOKEN_LIFETIME,
        Some(t) => parse_duration(&mut cx, t, "revocation.max_token_lifetime")
            .unwrap_or(DEFAULT_MAX_TOKEN_LIFETIME),
    };
    let revocation_redis = compile_redis(&mut cx, file.revocation.as_ref());
    let shutdown_grace = match file.shutdown.as_ref() {
        None => DEFAULT_SHUTDOWN_GRACE,
        Some(s) => parse_duration(&mut cx, &s.grace_period, "shutdown.grace_period")
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
    };

    let mut routes = Vec::new();
    let mut route_locations = Vec::new();
    let mut matches = Vec::new();
    let mut strip_names = gateway_headers
        .iter()
        .map(|(n, _)| n.clone())
        .collect::<Vec<_>>();
    let mut seen_ids = HashSet::new();
    let mut seen_matches: Vec<(String, RouteMatch)> = Vec::new();
    if file.routes.value.is_empty() {
        cx.error(
            file.routes.referenced,
            "routes",
            "at least one route is required",
        );
    }
    for (i, route) in file.routes.value.iter().enumerate() {
        let path = format!("routes[{i}]");
        let r = &route.value;
        if !seen_ids.insert(r.id.value.as_str()) {
            cx.error(
                r.id.referenced,
                format!("{path}.id"),
                format!("duplicate route id \"{}\"", r.id.value),
            );
        }
        let matcher = compile_match(&mut cx, &path, &r.matcher);
        let path_parameters = allow_keyword(
            &mut cx,
            r.matcher.value.path_parameters.as_ref(),
            &format!("{path}.match.path_parameters"),
        );
        let script_path_info = allow_keyword(
            &mut cx,
            r.matcher.value.script_path_info.as_ref(),
            &format!("{path}.match.script_path_info"),
        );
        let method_override = allow_keyword(
            &mut cx,
            r.method_override.as_ref(),
            &format!("{path}.method_override"),
        );
        let upstream = match upstream_ids.get(r.upstream.value.as_str()) {
            Some(&u) => Some(u),
            None => {
                cx.error(
                    r.upstream.referenced,
                    format!("{path}.upstream"),
                    format!(
                        "unknown upstream \"{}\" (known: {})",
                        r.upstream.value,
                        known(upstream_ids.keys())
                    ),
                );
                None
            }
        };
        let auth = compile_route_auth(
            &mut cx,
            &path,
            route.referenced,
            r.auth.as_ref(),
            &issuer_ids,
        );
        let mut headers = gateway_headers.clone();
        if let Some(extra) = &r.identity {
            for (name, source) in
                compile_header_map(&mut cx, &format!("{path}.identity.headers"), &extra.headers)
            {
                strip_names.push(name.clone());
                headers.retain(|(n, _)| n != name);
                headers.push((name, source));
            }
        }
        if let Some(m) = &matcher {
            if let Some((other, _)) = seen_matches.iter().find(|(_, seen)| same_match(seen, m)) {
                cx.error(
                    r.matcher.referenced,
                    format!("{path}.match"),
                    format!("same host, path and methods as route \"{other}\": this route could never be chosen for them"),
                );
            }
            seen_matches.push((r.id.value.clone(), m.clone()));
            if method_override
                && m.methods
                    .as_ref()
                    .is_some_and(|ms| ms.contains(&Method::POST))
            {
                cx.error(
                    r.matcher.referenced,
                    format!("{path}.method_override"),
                    "a route that honours method overrides is chosen by the overriding method: list that method (PUT, PATCH, DELETE), not POST",
                );
            }
        }
        if matches!(auth, Some(RouteAuth::Public)) && r.forward_token {
            cx.warn(
                route.referenced,
                format!("{path}.forward_token"),
                "a public route forwards whatever Authorization header a client sends, unverified",
            );
        }
        if let (Some(m), Some(upstream), Some(auth)) = (matcher, upstream, auth) {
            matches.push(m);
            route_locations.push(r.matcher.referenced);
            routes.push(Route {
                id: Arc::from(r.id.value.as_str()),
                upstream,
                auth,
                identity_headers: headers,
                forward_token: r.forward_token,
                method_override,
                path_parameters,
                script_path_info,
            });
        }
    }
    strip_names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    strip_names.dedup();

    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }
    let route_table = RouteTable::new(matches);
    warn_risky_routes(&mut cx, &route_table, &routes, &route_locations);
    warn_hostless_routes_on_virtual_hosts(&mut cx, &route_table, &routes, &route_locations);
    let snapshot = Snapshot {
        listeners,
        // Without errors every entry compiled, so positions still match the ids above.
        issuers: issuers
            .into_iter()
            .flatten()
            .map(|issuer| {
                Arc::new(Issuer {
                    max_token_lifetime,
                    ..issuer
                })
            })
            .collect(),
        upstreams: upstreams.into_iter().flatten().collect(),
        routes,
        route_table,
        identity: IdentityPolicy {
            strip_names,
            ..identity
        },
        forwarding,
        admin_address,
        admin_token,
        max_token_lifetime,
        revocation_state_file: file
            .revocation
            .as_ref()
            .and_then(|r| r.state_file.as_ref())
            .map(|f| base_dir.join(&f.value)),
        revocation_file: file
            .revocation
            .as_ref()
            .and_then(|r| r.file.as_ref())
            .map(|f| base_dir.join(&f.value)),
        shutdown_grace,
        revocation_redis,
        revocations: Arc::default(),
        revocation_mirror: None,
        limits,
    };
    Ok(Compiled {
        snapshot,
        warnings: cx.warnings,
    })
}

/// Warnings for valid but risky routing: a route that can never be chosen, and a public prefix
/// over protected routes (they win by longest match, but one spelling slip opens them).
fn warn_risky_routes(cx: &mut Ctx, table: &RouteTable, routes: &[Route], locations: &[Location]) {
    let ordered: Vec<(&RouteMatch, usize)> = table.iter().collect();
    for (pos, (m, idx)) in ordered.iter().enumerate() {
        let path = format!("routes[{}]", idx);
        if let Some((_, winner)) = ordered[..pos]
            .iter()
            .find(|(earlier, _)| covers(earlier, m))
        {
            cx.warn(
                locations[*idx],
                format!("{path}.match"),
                format!(
                    "route \"{}\" is never chosen: route \"{}\" takes every request it matches",
                    routes[*idx].id, routes[*winner].id
                ),
            );
        }
        if !matches!(routes[*idx].auth, RouteAuth::Public) {
            continue;
        }
        let PathMatch::Prefix(_) = &m.path else {
            continue;
        };
        for (other, other_idx) in &ordered {
            let protected = !matches!(routes[*other_idx].auth, RouteAuth::Public);
            let same_host = m.host.is_none() || m.host == other.host;
            if protected && *other_idx != *idx && same_host && other.path.is_within(&m.path) {
                cx.warn(
                    locations[*idx],
                    format!("{path}.auth"),
                    format!(
                        "public prefix of route \"{}\" contains the protected route \"{}\" (which wins by longest match); check this is intended",
                        routes[*idx].id, routes[*other_idx].id
                    ),
                );
            }
        }
    }
}

/// A route without `host` on an upstream that host-bound routes also use: requests for any other
/// host (`Host: 10.0.0.5`) reach that upstream through it, and a backend serving several virtual
/// hosts answers them with its default one, which may be a host-bound route's application.
fn warn_hostless_routes_on_virtual_hosts(
    cx: &mut Ctx,
    table: &RouteTable,
    routes: &[Route],
    locations: &[Location],
) {
    let entries: Vec<(&RouteMatch, usize)> = table.iter().collect();
    for (m, idx) in &entries {
        if m.host.is_some() {
            continue;
        }
        let shared = entries.iter().find(|(other, other_idx)| {
            other.host.is_some() && routes[*other_idx].upstream == routes[*idx].upstream
        });
        if let Some((other, other_idx)) = shared {
            cx.warn(
                locations[*idx],
                format!("routes[{idx}].match"),
                format!(
                    "route \"{}\" takes requests for any host to the upstream that route \"{}\" serves for {}: a backend with virtual hosts answers unknown hosts with its default one; give this route a host, or check the backend's default",
                    routes[*idx].id,
                    routes[*other_idx].id,
                    other.host.as_deref().unwrap_or_default()
                ),
            );
        }
    }
}

/// True when every request `inner` matches is also matched by `outer`.
fn covers(outer: &RouteMatch, inner: &RouteMatch) -> bool {
    let host = outer.host.is_none() || outer.host == inner.host;
    if inner.case_insensitive && !outer.case_insensitive {
        return false;
    }
    let methods = match (&outer.methods, &inner.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => i.iter().all(|m| o.contains(m)),
    };
    let path = match (&inner.path, &outer.path) {
        (PathMatch::Exact(p), _) => PathMatch::Exact(p.clone()).is_within(&outer.path),
        (PathMatch::Prefix(p), PathMatch::Prefix(q)) => {
            q == "/" || p == q || p.starts_with(&format!("{q}/"))
        }
        (PathMatch::Prefix(_), PathMatch::Exact(_)) => false,
    };
    host && methods && path
}

fn known<'a>(names: impl Iterator<Item = &'a &'a str>) -> String {
    let mut v: Vec<&str> = names.copied().collect();
    v.sort_unstable();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

/// Same host and path, and a method both take: the later one is never chosen for it.
fn same_match(a: &RouteMatch, b: &RouteMatch) -> bool {
    a.same_location(b)
        && match (&a.methods, &b.methods) {
            (None, None) => true,
            (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
            _ => false,
        }
}

/// `allow` or `refuse` (the default) for an opt-in.
fn allow_keyword(cx: &mut Ctx, value: Option<&Text>, path: &str) -> bool {
    match value.map(|v| (v.value.as_str(), v.referenced)) {
        None | Some(("refuse", _)) => false,
        Some(("allow", _)) => true,
        Some((other, at)) => {
            cx.error(
                at,
                path,
                format!("\"{other}\" is not valid: write `allow` or `refuse`"),
            );
            false
        }
    }
}

fn compile_listeners(
    cx: &mut Ctx,
    listeners: &Spanned<Vec<Spanned<ListenerFile>>>,
    base_dir: &Path,
) -> Vec<Listener> {
    if listeners.value.is_empty() {
        cx.error(
            listeners.referenced,
            "listeners",
            "at least one listener is required",
        );
    }
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, l) in listeners.value.iter().enumerate() {
        let path = format!("listeners[{i}]");
        let l = &l.value;
        if l.name.value.is_empty() || !names.insert(l.name.value.clone()) {
            cx.error(
                l.name.referenced,
                format!("{path}.name"),
                "listener names must be non-empty and unique",
            );
        }
        match l.address.value.parse::<SocketAddr>() {
            Ok(address) => {
                if !addresses.insert(address) {
                    cx.error(
                        l.address.referenced,
                        format!("{path}.address"),
                        format!("address {address} is used by another listener"),
                    );
                }
                if !address.ip().is_loopback() && l.tls.is_none() {
                    cx.warn(
                        l.address.referenced,
                        format!("{path}.address"),
                        "plain HTTP on a non-loopback address: tokens travel unencrypted",
                    );
                }
                let tls = match &l.tls {
                    None => None,
                    Some(t) => match compile_listener_tls(cx, &l.name.value, t, &path, base_dir) {
                        Some(tls) => Some(tls),
                        None => continue,
                    },
                };
                out.push(Listener {
                    name: l.name.value.clone(),
                    address,
                    tls,
                });
            }
            Err(_) => cx.error(
                l.address.referenced,
                format!("{path}.address"),
                format!(
                    "\"{}\" is not an IP:port address (for example 0.0.0.0:8080 or [::]:8080)",
                    l.address.value
                ),
            ),
        }
    }
    out
}

/// A listener's `tls`: every pair loaded and matched, the client CA loaded; errors located at
/// the setting that names the bad file.
fn compile_listener_tls(
    cx: &mut Ctx,
    listener: &str,
    tls: &Spanned<ListenerTlsFile>,
    path: &str,
    base_dir: &Path,
) -> Option<crate::tls::ListenerTls> {
    use crate::tls::{ClientAuthMode, PairFiles};
    let path = format!("{path}.tls");
    let t = &tls.value;
    let mut ok = true;
    if t.certificates.value.is_empty() {
        cx.error(
            t.certificates.referenced,
            format!("{path}.certificates"),
            "at least one certificate is required",
        );
        ok = false;
    }
    let now = crate::clock::unix_now();
    let mut pairs = Vec::new();
    for (i, c) in t.certificates.value.iter().enumerate() {
        let at = format!("{path}.certificates[{i}]");
        let c = &c.value;
        let files = PairFiles {
            cert_file: base_dir.join(&c.cert_file.value),
            key_file: base_dir.join(&c.key_file.value),
            server_names: c.server_names.as_ref().map(|names| {
                names
                    .iter()
                    .filter(|n| {
                        let host = n.value.strip_prefix("*.").unwrap_or(&n.value);
                        let valid = matches!(
                            rustls::pki_types::ServerName::try_from(host),
                            Ok(rustls::pki_types::ServerName::DnsName(_))
                        );
                        if !valid {
                            cx.error(
                                n.referenced,
                                format!("{at}.server_names"),
                                format!("\"{}\" is not a host name (or *.domain)", n.value),
                            );
                            ok = false;
                        }
                        valid
                    })
                    .map(|n| n.value.clone())
                    .collect()
            }),
        };
        // Report the cert file's own problems at cert_file, the key's at key_file.
        if let Err(e) = crate::tls::read_certificates(&files.cert_file) {
            cx.error(c.cert_file.referenced, format!("{at}.cert_file"), e);
            ok = false;
            continue;
        }
        if let Err(e) = crate::tls::read_key(&files.key_file) {
            cx.error(c.key_file.referenced, format!("{at}.key_file"), e);
            ok = false;
            continue;
        }
        match crate::tls::load_pair(&files) {
            Ok(pair) => {
                if pair.not_after < now {
                    cx.warn(
                        c.cert_file.referenced,
                        format!("{at}.cert_file"),
                        format!("the certificate {} has expired", c.cert_file.value),
                    );
                }
                if pair.names.is_empty() {
                    cx.warn(
                        c.cert_file.referenced,
                        format!("{at}.cert_file"),
                        "the certificate names no host: it can only serve as the default",
                    );
                }
            }
            Err(e) => {
                cx.error(c.key_file.referenced, format!("{at}.key_file"), e);
                ok = false;
            }
        }
        pairs.push(files);
    }
    let tls13_only = match t.min_version.as_ref().map(|v| v.value.as_str()) {
        None | Some("1.2") => false,
        Some("1.3") => true,
        Some(other) => {
            let at = t
                .min_version
                .as_ref()
                .map(|v| v.referenced)
                .unwrap_or(tls.referenced);
            cx.error(
                at,
                format!("{path}.min_version"),
                format!("\"{other}\" is not a TLS version: \"1.2\" or \"1.3\""),
            );
            ok = false;
            false
        }
    };
    let (client_auth, client_verifier) = match &t.client_auth {
        None => (ClientAuthMode::None, None),
        Some(ca) => {
            let mode = match ca.value.mode.value.as_str() {
                "none" => Some(ClientAuthMode::None),
                "optional" => Some(ClientAuthMode::Optional),
                "required" => Some(ClientAuthMode::Required),
                other => {
                    cx.error(
                        ca.value.mode.referenced,
                        format!("{path}.client_auth.mode"),
                        format!("\"{other}\": expected none, optional or required"),
                    );
                    None
                }
            };
            match (mode, &ca.value.ca_file) {
                (None, _) => {
                    ok = false;
                    (ClientAuthMode::None, None)
                }
                (Some(ClientAuthMode::None), _) => (ClientAuthMode::None, None),
                (Some(_), None) => {
                    cx.error(
                        ca.referenced,
                        format!("{path}.client_auth.ca_file"),
                        "optional and required client authentication need the clients' CA (ca_file)",
                    );
                    ok = false;
                    (ClientAuthMode::None, None)
                }
                (Some(mode), Some(file)) => {
                    let verifier = crate::tls::load_ca(&base_dir.join(&file.value))
                        .and_then(|roots| crate::tls::client_verifier(roots, mode));
                    match verifier {
                        Ok(v) => (mode, Some(v)),
                        Err(e) => {
                            cx.error(file.referenced, format!("{path}.client_auth.ca_file"), e);
                            ok = false;
                            (ClientAuthMode::None, None)
                        }
                    }
                }
            }
        }
    };
    if !ok {
        return None;
    }
    match crate::tls::CertStore::load(listener, pairs, tls13_only) {
        Ok(store) => Some(crate::tls::ListenerTls {
            store: Arc::new(store),
            client_auth,
            client_verifier,
        }),
        Err(e) => {
            // The files changed between the checks above and now.
            cx.error(tls.referenced, path, e);
            None
        }
    }
}

fn compile_issuers(
    cx: &mut Ctx,
    issuers: &[Spanned<IssuerFile>],
    base_dir: &Path,
) -> Vec<Option<Issuer>> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let mut iss_values = HashSet::new();
    for (i, spanned) in issuers.iter().enumerate() {
        let path = format!("issuers[{i}]");
        let f = &spanned.value;
        let mut ok = true;
        if f.id.value.is_empty() || !ids.insert(f.id.value.clone()) {
            cx.error(
                f.id.referenced,
                format!("{path}.id"),
                "issuer ids must be non-empty and unique",
            );
            ok = false;
        }
        if f.issuer.value.is_empty() || !iss_values.insert(f.issuer.value.clone()) {
            cx.error(
                f.issuer.referenced,
                format!("{path}.issuer"),
                "issuer (the exact `iss` value) must be non-empty and unique",
            );
            ok = false;
        }
        let audiences: Vec<String> = match &f.audiences {
            Some(a) if !a.value.is_empty() => {
                for aud in a.value.iter().filter(|a| a.value.is_empty()) {
                    cx.error(
                        aud.referenced,
                        format!("{path}.audiences"),
                        "an audience must not be empty",
                    );
                    ok = false;
                }
                a.value.iter().map(|a| a.value.clone()).collect()
            }
            Some(a) => {
                cx.error(
                    a.referenced,
                    format!("{path}.audiences"),
                    "at least one audience is required: tokens for other APIs must not be accepted",
                );
                ok = false;
                Vec::new()
            }
            None => {
                cx.error(
                    spanned.referenced,
                    format!("{path}.audiences"),
                    "audiences is required: tokens for other APIs must not be accepted",
                );
                ok = false;
                Vec::new()
            }
        };
        let algorithms =
            compile_algorithms(cx, &path, f.algorithms.as_ref()).unwrap_or_else(|| {
                ok = false;
                Vec::new()
            });
        let leeway = match &f.leeway {
            None => DEFAULT_LEEWAY,
            Some(l) => match parse_duration(cx, l, &format!("{path}.leeway")) {
                Some(d) if d > MAX_LEEWAY => {
                    cx.error(
                        l.referenced,
                        format!("{path}.leeway"),
                        "leeway above 5m defeats expiry checks",
                    );
                    ok = false;
                    d
                }
                Some(d) => d,
                None => {
                    ok = false;
                    DEFAULT_LEEWAY
                }
            },
        };
        let scope_claims = match &f.scope_claims {
            None => vec!["scope".to_owned(), "scp".to_owned()],
            Some(s) => s.value.iter().map(|c| c.value.clone()).collect(),
        };
        let token_type = f.token_type.as_ref().map(|t| t.value.clone());
        let id: Arc<str> = Arc::from(f.id.value.as_str());
        let compiled =
            compile_key_source(cx, &path, spanned.referenced, f, base_dir, &algorithms, &id);
        let CompiledKeys {
            keys,
            source: key_source,
            description: key_source_description,
        } = compiled.unwrap_or_else(|| {
            ok = false;
            CompiledKeys {
                keys: IssuerKeys::fixed(Arc::clone(&id), KeySet::default()),
                source: None,
                description: None,
            }
        });
        out.push(ok.then(|| {
            Issuer {
                id,
                issuer: f.issuer.value.clone(),
                audiences,
                algorithms,
                leeway,
                scope_claims,
                rfc9068: token_type
                    .as_deref()
                    .is_some_and(|t| crate::auth::jwt::check_type(Some(t), Some("at+jwt")).is_ok()),
                token_type,
                // Set once `revocation` is compiled.
                max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
                keys: Arc::new(keys),
                key_source,
                key_source_description,
            }
        }));
    }
    out
}

/// An issuer's compiled key source.
struct CompiledKeys {
    keys: IssuerKeys,
    source: Option<Arc<dyn KeySource>>,
    /// For remote sources: what defines them, to carry keys over unchanged sources on reload.
    description: Option<String>,
}

/// Exactly one of `jwks_file`, `jwks_uri`, `discovery: true`.
fn compile_key_source(
    cx: &mut Ctx,
    path: &str,
    issuer_at: Location,
    f: &IssuerFile,
    base_dir: &Path,
    algorithms: &[Algorithm],
    id: &Arc<str>,
) -> Option<CompiledKeys> {
    let discovery = f.discovery.as_ref().filter(|d| d.value);
    let chosen = usize::from(f.jwks_file.is_some())
        + usize::from(f.jwks_uri.is_some())
        + usize::from(discovery.is_some());
    if chosen != 1 {
        cx.error(
            issuer_at,
            path.to_owned(),
            "exactly one key source is required: jwks_file, jwks_uri, or discovery: true",
        );
        return None;
    }
    if let Some(file) = &f.jwks_file {
        if f.jwks_refresh.is_some() {
            cx.warn(
                issuer_at,
                format!("{path}.jwks_refresh"),
                "ignored: a jwks_file is read once",
            );
        }
        let keys = load_jwks_file(cx, path, file, base_dir, algorithms)?;
        return Some(CompiledKeys {
            keys: IssuerKeys::fixed(Arc::clone(id), keys),
            source: None,
            description: None,
        });
    }
    let remote = match (&f.jwks_uri, discovery) {
        (Some(uri), _) => match check_key_url(&uri.value) {
            Ok(()) => Remote::Jwks(uri.value.clone()),
            Err(e) => {
                cx.error(uri.referenced, format!("{path}.jwks_uri"), e);
                return None;
            }
        },
        (None, Some(d)) => match check_key_url(&f.issuer.value) {
            Ok(()) => Remote::Discovery {
                issuer: f.issuer.value.clone(),
            },
            Err(e) => {
                cx.error(
                    d.referenced,
                    format!("{path}.discovery"),
                    format!("discovery needs an https issuer: {e}"),
                );
                return None;
            }
        },
        (None, None) => return None,
    };
    let (policy, timeout, max_bytes) = compile_refresh(cx, path, f.jwks_refresh.as_ref())?;
    let description = format!("{remote:?} {policy:?} timeout={timeout:?} max_bytes={max_bytes}");
    let source = HttpKeySource::new(remote, timeout, max_bytes)
        .map_err(|e| cx.error(issuer_at, path.to_owned(), e))
        .ok()?;
    Some(CompiledKeys {
        keys: IssuerKeys::remote(Arc::clone(id), policy),
        source: Some(Arc::new(source)),
        description: Some(description),
    })
}

const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MAX_JWKS_BYTES: usize = 1024 * 1024;

fn compile_refresh(
    cx: &mut Ctx,
    path: &str,
    r: Option<&JwksRefreshFile>,
) -> Option<(RefreshPolicy, Duration, usize)> {
    let mut policy = RefreshPolicy::default();
    let mut timeout = DEFAULT_FETCH_TIMEOUT;
    let mut max_bytes = DEFAULT_MAX_JWKS_BYTES;
    let Some(r) = r else {
        return Some((policy, timeout, max_bytes));
    };
    let errors_before = cx.errors.len();
    let base = format!("{path}.jwks_refresh");
    let mut set = |value: &Option<Text>, name: &str, target: &mut Duration| {
        if let Some(v) = value {
            if let Some(d) = parse_duration(cx, v, &format!("{base}.{name}")) {
                *target = d;
            }
        }
    };
    set(&r.interval, "interval", &mut policy.interval);
    set(&r.min_interval, "min_interval", &mut policy.min_interval);
    set(&r.max_interval, "max_interval", &mut policy.max_interval);
    set(
        &r.unknown_kid_cooldown,
        "unknown_kid_cooldown",
        &mut policy.unknown_kid_cooldown,
    );
    set(&r.max_staleness, "max_staleness", &mut policy.max_staleness);
    set(&r.timeout, "timeout", &mut timeout);
    if let Some(m) = &r.max_response_bytes {
        match usize::try_from(m.value) {
            Ok(v) if (1024..=16 * 1024 * 1024).contains(&v) => max_bytes = v,
            _ => cx.error(
                m.referenced,
                format!("{base}.max_response_bytes"),
                "must be between 1024 and 16777216",
            ),
        }
    }
    if policy.min_interval > policy.max_interval {
        cx.error(
            Location::UNKNOWN,
            base.clone(),
            "min_interval must not exceed max_interval",
        );
    }
    if timeout.is_zero() || policy.min_interval.is_zero() {
        cx.error(
            Location::UNKNOWN,
            base,
            "timeout and min_interval must be positive",
        );
    }
    (cx.errors.len() == errors_before).then_some((policy, timeout, max_bytes))
}

fn compile_algorithms(
    cx: &mut Ctx,
    path: &str,
    algorithms: Option<&Spanned<Vec<Text>>>,
) -> Option<Vec<Algorithm>> {
    let Some(list) = algorithms else {
        return Some(vec![Algorithm::RS256]);
    };
    if list.value.is_empty() {
        cx.error(
            list.referenced,
            format!("{path}.algorithms"),
            "at least one algorithm is required",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for a in &list.value {
        match a.value.parse::<Algorithm>() {
            Ok(alg) => out.push(alg),
            Err(()) => {
                let why = if a.value.eq_ignore_ascii_case("none")
                    || a.value.to_ascii_uppercase().starts_with("HS")
                {
                    "unsigned and symmetric algorithms are never accepted".to_owned()
                } else {
                    let supported: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
                    format!("supported: {}", supported.join(", "))
                };
                cx.error(
                    a.referenced,
                    format!("{path}.algorithms"),
                    format!("unknown algorithm \"{}\": {why}", a.value),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn load_jwks_file(
    cx: &mut Ctx,
    path: &str,
    file: &Text,
    base_dir: &Path,
    algorithms: &[Algorithm],
) -> Option<KeySet> {
    let at = file.referenced;
    let field = format!("{path}.jwks_file");
    let full = base_dir.join(&file.value);
    let bytes = match std::fs::read(&full) {
        Ok(b) => b,
        Err(e) => {
            cx.error(at, field, format!("cannot read {}: {e}", full.display()));
            return None;
        }
    };
    let (keys, key_errors) = match KeySet::from_jwks_json(&bytes) {
        Ok(v) => v,
        Err(e) => {
            cx.error(at, field, format!("{}: {e}", full.display()));
            return None;
        }
    };
    for e in key_errors {
        cx.warn(
            at,
            field.clone(),
            format!("{}: {e}; the other keys are used", full.display()),
        );
    }
    if keys.is_empty() {
        cx.error(
            at,
            field,
            format!("{}: no usable signing key", full.display()),
        );
        return None;
    }
    for alg in algorithms {
        if keys.accepting(*alg).next().is_none() {
            cx.warn(
                at,
                field.clone(),
                format!("no key in {} can verify {alg}", full.display()),
            );
        }
    }
    Some(keys)
}

/// An upstream's `tls`, loaded for the Pingora peer.
struct UpstreamTls {
    ca: Option<Arc<[pingora::utils::tls::WrappedX509]>>,
    server_name: Option<String>,
    client_cert: Option<Arc<pingora::utils::tls::CertKey>>,
}

/// A connection-pool key for an upstream that trusts `ca`.
fn ca_group_key(id: &str, ca: &[pingora::utils::tls::WrappedX509]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    for c in ca {
        c.borrow_raw_cert().hash(&mut h);
    }
    h.finish()
}

fn compile_upstream_tls(
    cx: &mut Ctx,
    t: &UpstreamTlsFile,
    path: &str,
    base_dir: &Path,
) -> Option<UpstreamTls> {
    use pingora::utils::tls::{CertKey, WrappedX509};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let mut ok = true;
    let wrap = |der: &[u8]| {
        WrappedX509::try_new(der.to_vec(), |d| {
            X509Certificate::from_der(d).map(|(_, c)| c)
        })
    };
    let ca = match &t.ca_file {
        None => None,
        Some(f) => {
            let file = base_dir.join(&f.value);
            let loaded = crate::tls::read_certificates(&file).and_then(|certs| {
                certs
                    .iter()
                    .map(|c| wrap(c.as_ref()).map_err(|e| format!("{}: {e}", file.display())))
                    .collect::<Result<Vec<_>, _>>()
            });
            match loaded {
                Ok(certs) => Some(Arc::from(certs)),
                Err(e) => {
                    cx.error(f.referenced, format!("{path}.tls.ca_file"), e);
                    ok = false;
                    None
                }
            }
        }
    };
    let server_name = t.server_name.as_ref().and_then(|n| {
        if rustls::pki_types::ServerName::try_from(n.value.as_str()).is_ok() {
            Some(n.value.clone())
        } else {
            cx.error(
                n.referenced,
                format!("{path}.tls.server_name"),
                format!("\"{}\" is not a host name", n.value),
            );
            ok = false;
            None
        }
    });
    let client_cert = match (&t.client_cert_file, &t.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let files = crate::tls::PairFiles {
                cert_file: base_dir.join(&cert.value),
                key_file: base_dir.join(&key.value),
                server_names: Some(Vec::new()),
            };
            let loaded = crate::tls::load_pair(&files).and_then(|_| {
                let certs = crate::tls::read_certificates(&files.cert_file)?;
                let key = crate::tls::read_key(&files.key_file)?;
                // Pingora re-derives the key's format from its DER when it connects, and panics
                // if it cannot: make sure it can, here.
                let format = std::mem::discriminant(&key);
                match rustls::pki_types::PrivateKeyDer::try_from(key.secret_der()) {
                    Ok(k) if std::mem::discriminant(&k) == format => {}
                    _ => {
                        return Err(format!(
                            "{}: this private key encoding is not usable for upstream connections; convert it to PKCS#8",
                            files.key_file.display()
                        ))
                    }
                }
                Ok(CertKey::new(
                    certs.iter().map(|c| c.as_ref().to_vec()).collect(),
                    key.secret_der().to_vec(),
                ))
            });
            match loaded {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    cx.error(cert.referenced, format!("{path}.tls.client_cert_file"), e);
                    ok = false;
                    None
                }
            }
        }
        (Some(f), None) | (None, Some(f)) => {
            cx.error(
                f.referenced,
                format!("{path}.tls"),
                "client_cert_file and client_key_file go together",
            );
            ok = false;
            None
        }
    };
    ok.then_some(UpstreamTls {
        ca,
        server_name,
        client_cert,
    })
}

fn compile_upstreams(
    cx: &mut Ctx,
    upstreams: &Spanned<Vec<Spanned<UpstreamFile>>>,
    base_dir: &Path,
) -> Vec<Option<Upstream>> {
    if upstreams.value.is_empty() {
        cx.error(
            upstreams.referenced,
            "upstreams",
            "at least one upstream is required",
        );
    }
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (i, u) in upstreams.value.iter().enumerate() {
        let path = format!("upstreams[{i}]");
        let u = &u.value;
        let mut ok = true;
        if u.id.value.is_empty() || !ids.insert(u.id.value.clone()) {
            cx.error(
                u.id.referenced,
                format!("{path}.id"),
                "upstream ids must be non-empty and unique",
            );
            ok = false;
        }
        let mut timeout = |t: &Option<Text>, name: &str, default: Duration| match t {
            None => Some(default),
            Some(t) => parse_duration(cx, t, &format!("{path}.{name}")),
        };
        let connect = timeout(
            &u.connect_timeout,
            "connect_timeout",
            DEFAULT_CONNECT_TIMEOUT,
        );
        let read = timeout(&u.read_timeout, "read_timeout", DEFAULT_READ_TIMEOUT);
        let write = timeout(&u.write_timeout, "write_timeout", DEFAULT_WRITE_TIMEOUT);
        let target = parse_upstream_url(&u.url.value);
        let target = match target {
            Ok(t) => Some(t),
            Err(message) => {
                cx.error(u.url.referenced, format!("{path}.url"), message);
                None
            }
        };
        let upstream_tls = match (&u.tls, &target) {
            (Some(t), Some((_, false, _))) => {
                cx.error(
                    t.referenced,
                    format!("{path}.tls"),
                    "tls settings need an https:// url",
                );
                ok = false;
                None
            }
            (Some(t), _) => {
                let compiled = compile_upstream_tls(cx, &t.value, &path, base_dir);
                ok &= compiled.is_some();
                compiled
            }
            (None, _) => None,
        };
        let compiled = match (ok, target, connect, read, write) {
            (true, Some((addr, tls, host)), Some(connect), Some(read), Some(write)) => {
                let mut peer = HttpPeer::new(addr, tls, host);
                peer.options.connection_timeout = Some(connect);
                peer.options.read_timeout = Some(read);
                peer.options.write_timeout = Some(write);
                if let Some(t) = upstream_tls {
                    if let Some(ca) = t.ca {
                        // Pingora's connection pool does not key connections by the trusted
                        // CA: without this, a connection verified against one upstream's CA
                        // would be reused for another upstream on the same address and name.
                        peer.group_key = ca_group_key(&u.id.value, &ca);
                        peer.options.ca = Some(ca);
                    }
                    if let Some(name) = t.server_name {
                        peer.sni = name;
                    }
                    peer.client_cert_key = t.client_cert;
                }
                Some(Upstream {
                    id: Arc::from(u.id.value.as_str()),
                    address: addr,
                    peer,
                })
            }
            _ => None,
        };
        out.push(compiled);
    }
    out
}

/// `http(s)://host[:port]` → (resolved address, tls, host for SNI).
///
/// The host is resolved once, here, so the request path never waits on DNS.
fn parse_upstream_url(url: &str) -> Result<(SocketAddr, bool, String), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("\"{url}\": the scheme must be http or https")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("\"{url}\" has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "\"{url}\": credentials in upstream URLs are not supported"
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "\"{url}\": a path or query is not supported; requests keep their own path"
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{host}\": {e}"))?
        .next()
        .ok_or_else(|| format!("\"{host}\" resolves to no address"))?;
    Ok((addr, tls, host))
}

fn compile_identity(
    cx: &mut Ctx,
    identity: Option<&IdentityFile>,
) -> (IdentityPolicy, Vec<(HeaderName, ClaimSource)>) {
    let headers = match identity.and_then(|i| i.headers.as_ref()) {
        Some(map) => compile_header_map(cx, "identity.headers", map),
        None => DEFAULT_IDENTITY_HEADERS
            .iter()
            .map(|(h, c)| (HeaderName::from_static(h), claim_source(c)))
            .collect(),
    };
    let strip_prefixes = match identity.and_then(|i| i.strip_prefixes.as_ref()) {
        None => vec![DEFAULT_STRIP_PREFIX.to_owned()],
        Some(list) => {
            let mut out = Vec::new();
            for p in &list.value {
                let lower = p.value.to_ascii_lowercase();
                if lower.is_empty() || HeaderName::from_bytes(lower.as_bytes()).is_err() {
                    cx.error(
                        p.referenced,
                        "identity.strip_prefixes",
                        format!("\"{}\" is not a header-name prefix", p.value),
                    );
                } else if FORBIDDEN_IDENTITY_HEADERS
                    .iter()
                    .any(|f| f.starts_with(&lower))
                {
                    cx.error(
                        p.referenced,
                        "identity.strip_prefixes",
                        format!("\"{}\" would strip standard headers", p.value),
                    );
                } else {
                    out.push(lower);
                }
            }
            out
        }
    };
    (
        IdentityPolicy {
            strip_prefixes,
            strip_names: Vec::new(),
        },
        headers,
    )
}

fn claim_source(claim: &str) -> ClaimSource {
    match claim {
        "scope" | "scp" => ClaimSource::Scopes,
        other => ClaimSource::Claim(other.to_owned()),
    }
}

fn compile_header_map(
    cx: &mut Ctx,
    path: &str,
    map: &HeaderMapFile,
) -> Vec<(HeaderName, ClaimSource)> {
    let mut out = Vec::new();
    for (name, claim) in &map.value {
        let header = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                cx.error(
                    map.referenced,
                    path,
                    format!("\"{name}\" is not a valid header name"),
                );
                continue;
            }
        };
        let lower = header.as_str();
        if lower.contains(['_', '.']) {
            cx.error(
                map.referenced,
                path,
                format!("\"{name}\" contains `_` or `.`: CGI, WSGI, Rack and PHP read it as the same variable as its `-` spelling, which a client can send; use `-`"),
            );
            continue;
        }
        if FORBIDDEN_IDENTITY_HEADERS.contains(&lower) || lower.starts_with("x-forwarded-") {
            cx.error(
                map.referenced,
                path,
                format!("\"{name}\" cannot carry identity: the gateway owns it"),
            );
            continue;
        }
        if claim.value.is_empty() {
            cx.error(
                claim.referenced,
                format!("{path}.{name}"),
                "the claim name must not be empty",
            );
            continue;
        }
        out.push((header, claim_source(&claim.value)));
    }
    out
}

/// The admin listener: default `127.0.0.1:9901`, never the address of a public listener.
fn compile_admin(cx: &mut Ctx, admin: Option<&AdminFile>, listeners: &[Listener]) -> SocketAddr {
    let default = SocketAddr::from(([127, 0, 0, 1], 9901));
    let Some(address) = admin.and_then(|a| a.address.as_ref()) else {
        return default;
    };
    match address.value.parse::<SocketAddr>() {
        Ok(a) if listeners.iter().any(|l| l.address == a) => {
            cx.error(
                address.referenced,
                "admin.address",
                "the admin listener must not share a public listener's address",
            );
            default
        }
        Ok(a) => {
            if !a.ip().is_loopback() {
                cx.warn(
                    address.referenced,
                    "admin.address",
                    "metrics, readiness and the admin API are exposed beyond this host",
                );
            }
            a
        }
        Err(_) => {
            cx.error(
                address.referenced,
                "admin.address",
                format!("\"{}\" is not an IP:port address", address.value),
            );
            default
        }
    }
}

/// The admin API token, from `token_file` (relative to the config) or `token_env`.
fn compile_admin_token(cx: &mut Ctx, admin: Option<&AdminFile>, base_dir: &Path) -> Option<Secret> {
    let admin = admin?;
    let token = match (&admin.token_file, &admin.token_env) {
        (Some(_), Some(env)) => {
            cx.error(
                env.referenced,
                "admin.token_env",
                "give token_file or token_env, not both",
            );
            return None;
        }
        (Some(file), None) => match std::fs::read_to_string(base_dir.join(&file.value)) {
            Ok(t) => (t.trim().to_owned(), file, "admin.token_file"),
            Err(e) => {
                cx.error(
                    file.referenced,
                    "admin.token_file",
                    format!("cannot read {}: {e}", file.value),
                );
                return None;
            }
        },
        (None, Some(env)) => match std::env::var(&env.value) {
            Ok(t) => (t.trim().to_owned(), env, "admin.token_env"),
            Err(_) => {
                cx.error(
                    env.referenced,
                    "admin.token_env",
                    format!("the environment variable {} is not set", env.value),
                );
                return None;
            }
        },
        (None, None) => return None,
    };
    let (value, at, path) = token;
    let token68 = value
        .trim_end_matches('=')
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !token68 {
        cx.error(at.referenced, path, "the admin token may only use A-Z a-z 0-9 - . _ ~ + / (and trailing =): it is sent as a bearer token");
        return None;
    }
    if value.len() < 16 {
        cx.error(
            at.referenced,
            path,
            "the admin token must be at least 16 characters",
        );
        return None;
    }
    Some(Secret::new(&value))
}

const DEFAULT_REDIS_PREFIX: &str = "portcullis:revocations";
const DEFAULT_REDIS_RESYNC: Duration = Duration::from_secs(60);
const DEFAULT_REDIS_MAX_STALENESS: Duration = Duration::from_secs(300);
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// `revocation.redis`: the URL (from the file or an environment variable) parsed, never echoed
/// (it may hold a password), and the timings checked.
fn compile_redis(cx: &mut Ctx, revocation: Option<&RevocationFile>) -> Option<RedisSettings> {
    let revocation = revocation?;
    let redis_at = revocation.redis.as_ref()?.referenced;
    let redis = &revocation.redis.as_ref()?.value;
    if let (Some(state), Some(_)) = (
        &revocation.state_file,
        &redis.url.as_ref().or(redis.url_env.as_ref()),
    ) {
        cx.error(
            state.referenced,
            "revocation.state_file",
            "give revocation.state_file or revocation.redis, not both: with Redis, Redis is where admin-API revocations are kept",
        );
    }
    let (url, at, path) = match (&redis.url, &redis.url_env) {
        (Some(_), Some(env)) => {
            cx.error(
                env.referenced,
                "revocation.redis.url_env",
                "give url or url_env, not both",
            );
            return None;
        }
        (Some(url), None) => (url.value.clone(), url, "revocation.redis.url"),
        (None, Some(env)) => match std::env::var(&env.value) {
            Ok(v) => (v.trim().to_owned(), env, "revocation.redis.url_env"),
            Err(_) => {
                cx.error(
                    env.referenced,
                    "revocation.redis.url_env",
                    format!("the environment variable {} is not set", env.value),
                );
                return None;
            }
        },
        (None, None) => {
            cx.error(redis_at, "revocation.redis", "give url or url_env");
            return None;
        }
    };
    let client = match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("redis") => match crate::revocation::mirror::client_with_keepalive(&url) {
            Ok(c) => Some(c),
            Err(_) => {
                // The parser's message is not echoed: it could quote a password.
                cx.error(
                    at.referenced,
                    path,
                    "not a valid Redis URL: expected redis://[user:password@]host:port[/db]",
                );
                None
            }
        },
        Some("rediss") => {
            cx.error(at.referenced, path, "rediss:// (TLS to Redis) is not supported yet; use redis:// on a private network or a TLS sidecar");
            None
        }
        _ => {
            cx.error(
                at.referenced,
                path,
                "expected redis://[user:password@]host:port[/db]",
            );
            None
        }
    };
    let duration = |cx: &mut Ctx, t: &Option<Text>, name: &str, default: Duration| match t {
        None => default,
        Some(t) => match parse_duration(cx, t, &format!("revocation.redis.{name}")) {
            Some(d) if d.is_zero() => {
                cx.error(
                    t.referenced,
                    format!("revocation.redis.{name}"),
                    "must be more than zero",
                );
                default
            }
            Some(d) => d,
            None => default,
        },
    };
    let resync_interval = duration(
        cx,
        &redis.resync_interval,
        "resync_interval",
        DEFAULT_REDIS_RESYNC,
    );
    let max_staleness = duration(
        cx,
        &redis.max_staleness,
        "max_staleness",
        DEFAULT_REDIS_MAX_STALENESS,
    );
    let timeout = duration(cx, &redis.timeout, "timeout", DEFAULT_REDIS_TIMEOUT);
    let key_prefix = match &redis.key_prefix {
        None => DEFAULT_REDIS_PREFIX.to_owned(),
        Some(p) => {
            let ok = !p.value.is_empty()
                && p.value.len() <= 128
                && p.value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":_.-".contains(&b));
            if !ok {
                cx.error(
                    p.referenced,
                    "revocation.redis.key_prefix",
                    "1 to 128 of A-Z a-z 0-9 : _ . -",
                );
            }
            p.value.clone()
        }
    };
    let client = client?;
    let description = client.get_connection_info().addr().to_string();
    Some(RedisSettings {
        client,
        description,
        key_prefix,
        resync_interval,
        max_staleness,
        timeout,
    })
}

/// `logging.level` must be a valid filter (`info`, `warn,portcullis=debug`), `format` json or text.
/// They are applied at start-up, before the configuration compiles; here they are only checked.
fn check_logging(cx: &mut Ctx, logging: Option<&LoggingFile>) {
    let Some(logging) = logging else { return };
    if let Some(level) = &logging.level {
        if tracing_subscriber::EnvFilter::try_new(&level.value).is_err() {
            cx.error(
                level.referenced,
                "logging.level",
                format!(
                    "\"{}\" is not a log filter (for example info, or warn,portcullis=debug)",
                    level.value
                ),
            );
        }
    }
    if let Some(format) = &logging.format {
        if crate::telemetry::parse_format(&format.value).is_none() {
            cx.error(
                format.referenced,
                "logging.format",
                format!("\"{}\" is not a log format: json or text", format.value),
            );
        }
    }
}

fn compile_limits(cx: &mut Ctx, limits: Option<&LimitsFile>) -> Limits {
    let mut out = Limits::default();
    if let Some(max) = limits.and_then(|l| l.max_token_bytes.as_ref()) {
        match usize::try_from(max.value) {
            Ok(v) if (256..=64 * 1024).contains(&v) => out.max_token_bytes = v,
            _ => cx.error(
                max.referenced,
                "limits.max_token_bytes",
                "must be between 256 and 65536",
            ),
        }
    }
    out
}

fn compile_match(cx: &mut Ctx, path: &str, m: &Spanned<MatchFile>) -> Option<RouteMatch> {
    let f = &m.value;
    let mut ok = true;
    let host = f.host.as_ref().and_then(|h| {
        // Requests are matched on their canonical host (no trailing dot), so the config is too.
        let lower = h.value.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower).to_owned();
        let valid = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            cx.error(
                h.referenced,
                format!("{path}.match.host"),
                format!("\"{}\" is not a host name (no scheme, no port)", h.value),
            );
            ok = false;
        }
        valid.then_some(lower)
    });
    let path_match = match (&f.path, &f.path_prefix) {
        (Some(p), None) => {
            normalized_config_path(cx, &format!("{path}.match.path"), p).map(PathMatch::Exact)
        }
        (None, Some(p)) => {
            normalized_config_path(cx, &format!("{path}.match.path_prefix"), p).map(|p| {
                // `/orders/` and `/orders` mean the same prefix on segment boundaries.
                let trimmed = p.trim_end_matches('/');
                PathMatch::Prefix(if trimmed.is_empty() {
                    "/".to_owned()
                } else {
                    trimmed.to_owned()
                })
            })
        }
        _ => {
            cx.error(
                m.referenced,
                format!("{path}.match"),
                "exactly one of `path` and `path_prefix` is required",
            );
            None
        }
    };
    let methods = f.methods.as_ref().map(|list| {
        let mut out = Vec::new();
        for meth in list {
            let valid =
                !meth.value.is_empty() && meth.value.bytes().all(|b| b.is_ascii_uppercase());
            match Method::from_bytes(meth.value.as_bytes()) {
                Ok(m) if valid => out.push(m),
                _ => {
                    cx.error(
                        meth.referenced,
                        format!("{path}.match.methods"),
                        format!("\"{}\" is not an upper-case HTTP method", meth.value),
                    );
                    ok = false;
                }
            }
        }
        out
    });
    let case_insensitive = f.case_insensitive.as_ref().is_some_and(|c| c.value);
    match (ok, path_match) {
        (true, Some(path)) => Some(RouteMatch {
            host,
            path,
            case_insensitive,
            methods,
        }),
        _ => None,
    }
}

fn normalized_config_path(cx: &mut Ctx, path: &str, p: &Text) -> Option<String> {
    match normalize_path(&p.value) {
        Ok(n) if n == p.value || n.trim_end_matches('/') == p.value.trim_end_matches('/') => {
            Some(n)
        }
        Ok(n) => {
            cx.error(
                p.referenced,
                path,
                format!("\"{}\" is not normalised; write \"{n}\"", p.value),
            );
            None
        }
        Err(e) => {
            cx.error(
                p.referenced,
                path,
                format!("\"{}\" is not a valid path ({e:?})", p.value),
            );
            None
        }
    }
}

fn compile_route_auth(
    cx: &mut Ctx,
    path: &str,
    route_at: Location,
    auth: Option<&Spanned<AuthFile>>,
    issuer_ids: &HashMap<&str, usize>,
) -> Option<RouteAuth> {
    let rules = match auth.map(|a| (&a.value, a.referenced)) {
        Some((AuthFile::Keyword(k), _)) if k == "public" => return Some(RouteAuth::Public),
        Some((AuthFile::Keyword(k), at)) => {
            cx.error(
                at,
                format!("{path}.auth"),
                format!(
                    "\"{k}\" is not valid: write `public` or a mapping with `issuers`/`scopes`"
                ),
            );
            return None;
        }
        Some((AuthFile::Rules(rules), _)) => Some(&**rules),
        None => None,
    };
    let mut ok = true;
    let issuers: Vec<usize> = match rules.and_then(|r| r.issuers.as_ref()) {
        None => {
            if issuer_ids.is_empty() {
                cx.error(route_at, format!("{path}.auth"), "a protected route needs an issuer, and none is configured (use `auth: public` for an open route)");
                ok = false;
            }
            let mut all: Vec<usize> = issuer_ids.values().copied().collect();
            all.sort_unstable();
            all
        }
        Some(list) => {
            if list.value.is_empty() {
                cx.error(
                    list.referenced,
                    format!("{path}.auth.issuers"),
                    "an empty issuer list would refuse every token",
                );
                ok = false;
            }
            let mut out = Vec::new();
            for id in &list.value {
                match issuer_ids.get(id.value.as_str()) {
                    Some(&i) => out.push(i),
                    None => {
                        cx.error(
                            id.referenced,
                            format!("{path}.auth.issuers"),
                            format!(
                                "unknown issuer \"{}\" (known: {})",
                                id.value,
                                known(issuer_ids.keys())
                            ),
                        );
                        ok = false;
                    }
                }
            }
            out
        }
    };
    let mut requirement = ScopeRequirement::default();
    if let Some(scopes) = rules.and_then(|r| r.scopes.as_ref()) {
        for (list, name, target) in [
            (&scopes.all_of, "all_of", &mut requirement.all_of),
            (&scopes.any_of, "any_of", &mut requirement.any_of),
        ] {
            let Some(list) = list else { continue };
            // An empty list would remove the check silently (a template that renders `[]`).
            if list.value.is_empty() {
                cx.error(
                    list.referenced,
                    format!("{path}.auth.scopes.{name}"),
                    "an empty scope list would let a token without scopes through: remove the key or name a scope",
                );
                ok = false;
            }
            for s in &list.value {
                if is_valid_scope_token(&s.value) {
                    target.push(s.value.clone());
                } else {
                    cx.error(
                        s.referenced,
                        format!("{path}.auth.scopes.{name}"),
                        format!("\"{}\" is not a valid scope (RFC 6749 §3.3)", s.value),
                    );
                    ok = false;
                }
            }
        }
    }
    let audiences = rules.and_then(|r| r.audiences.as_ref()).map(|list| {
        if list.value.is_empty() || list.value.iter().any(|a| a.value.is_empty()) {
            cx.error(
                list.referenced,
                format!("{path}.auth.audiences"),
                "audiences must name at least one non-empty audience (or be left out to use the issuers')",
            );
            ok = false;
        }
        list.value.iter().map(|a| a.value.clone()).collect()
    });
    let challenge = Arc::from(requirement.challenge().as_str());
    ok.then_some(RouteAuth::Protected {
        audiences,
        issuers,
        scopes: RouteScopes {
            requirement,
            challenge,
        },
    })
}

/// The longest duration any setting accepts: enough for every timeout, interval and lifetime here,
/// and far from the overflow of time arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

fn parse_duration(cx: &mut Ctx, t: &Text, path: &str) -> Option<Duration> {
    match humantime::parse_duration(&t.value) {
        Ok(d) if d > MAX_DURATION => {
            cx.error(
                t.referenced,
                path,
                format!("\"{}\" is too long: at most 30 days", t.value),
            );
            None
        }
        Ok(d) => Some(d),
        Err(_) => {
            cx.error(
                t.referenced,
                path,
                format!(
                    "\"{}\" is not a duration (for example 500ms, 30s, 2m)",
                    t.value
                ),
            );
            None
        }
    }
}
