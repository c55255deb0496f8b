//! Compiling the file model into a [`Snapshot`], collecting every error with its YAML location.
//!
//! The compiler never stops at the first problem: each section is checked, each error recorded
//! with `line:column` and a path such as `routes[2].match.path_prefix`, and only a configuration
//! without errors becomes a snapshot. Warnings (risky but valid settings) travel alongside.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
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
use crate::source::Source;
use crate::stores::{StartSettings, Stores};

mod admin;
mod cors;
mod decision;
mod identity;
mod issuers;
mod lints;
mod listeners;
mod rate_limits;
mod revocation;
mod routes;
mod shutdown;
mod upstreams;
mod values;
use admin::*;
use cors::*;
use decision::*;
use identity::*;
use issuers::*;
use lints::*;
use listeners::*;
use rate_limits::*;
use revocation::*;
use routes::*;
use shutdown::*;
use upstreams::*;
use values::*;

/// A compiled configuration and the warnings it raised.
#[derive(Debug)]
pub struct Compiled {
    pub snapshot: Snapshot,
    pub warnings: Vec<ConfigError>,
    /// What this machine could not check, compiled with [`Secrets::Deferred`]: absent secrets,
    /// upstream host names that do not resolve here.
    pub unchecked: Vec<(Unchecked, ConfigError)>,
}

/// What `validate` leaves for the machine the gateway runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchecked {
    /// A secret that is absent (a Kubernetes Secret not mounted in CI).
    Secret,
    /// An upstream host name that does not resolve here (a cluster Service name in CI).
    HostName,
}

impl std::fmt::Display for Unchecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unchecked::Secret => "secret",
            Unchecked::HostName => "host name",
        })
    }
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

/// Where relative paths resolve, and what the compiler reads files, variables, DNS and the
/// clock through.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    pub base_dir: &'a Path,
    pub src: &'a dyn Source,
    /// The runtime state the snapshot refers to: remote keys and certificate stores are reused
    /// from it when unchanged.
    pub stores: &'a Stores,
    /// Whether secrets that are absent here are errors ([`Secrets::Required`], to run) or only
    /// noted ([`Secrets::Deferred`], for `validate` in CI, where Secrets are not mounted).
    pub secrets: Secrets,
}

/// What an absent secret (`admin.token_env` unset, `admin.token_file` missing,
/// `revocation.redis.url_env` unset, TLS files missing) or an upstream host name that does not
/// resolve is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Secrets {
    /// An error: the gateway cannot run without it.
    #[default]
    Required,
    /// Noted in [`Compiled::unchecked`]; the rest of the file is checked as usual.
    Deferred,
}

impl Inputs<'_> {
    /// A path from the file, resolved against the config's directory.
    fn path(&self, relative: &str) -> std::path::PathBuf {
        self.base_dir.join(relative)
    }
}

#[derive(Default)]
struct Ctx {
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    /// Files read to compile that nothing else watches: [`Snapshot::watched_files`].
    watched: Vec<(std::path::PathBuf, u64)>,
    secrets: Secrets,
    unchecked: Vec<(Unchecked, ConfigError)>,
}

impl Ctx {
    /// Remember that the snapshot holds what `path` contained: `bytes`, as read.
    fn watch(&mut self, path: std::path::PathBuf, bytes: &[u8]) {
        self.watched.push((path, crate::reload::bytes_hash(bytes)));
    }
    fn error(&mut self, at: Location, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::at(at, path, message));
    }
    fn warn(&mut self, at: Location, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigError::at(at, path, message));
    }
    /// A secret that is absent here: an error, or only noted when secrets are deferred.
    fn missing_secret(&mut self, at: Location, path: impl Into<String>, message: String) {
        self.not_checkable(Unchecked::Secret, at, path, message);
    }
    /// Something only the machine the gateway runs on can check: an error, or only noted when
    /// deferred.
    fn not_checkable(
        &mut self,
        what: Unchecked,
        at: Location,
        path: impl Into<String>,
        message: String,
    ) {
        match self.secrets {
            Secrets::Required => self.error(at, path, message),
            Secrets::Deferred => self
                .unchecked
                .push((what, ConfigError::at(at, path, message))),
        }
    }
}

/// Compile a parsed file on this machine, into `stores`. Relative file paths (`jwks_file`)
/// resolve against `base_dir`, the directory of the configuration file.
pub fn compile(
    file: GatewayFile,
    base_dir: &Path,
    stores: &Stores,
) -> Result<Compiled, ConfigErrors> {
    compile_with(
        file,
        Inputs {
            base_dir,
            src: &crate::source::System,
            stores,
            secrets: Secrets::Required,
        },
    )
}

/// Compile a parsed file, reading only through `inputs.src`: a pure function of the file and
/// the source.
pub fn compile_with(file: GatewayFile, inputs: Inputs<'_>) -> Result<Compiled, ConfigErrors> {
    let base_dir = inputs.base_dir;
    let mut cx = Ctx {
        secrets: inputs.secrets,
        ..Ctx::default()
    };

    let listeners = compile_listeners(
        &mut cx,
        file.listeners.as_ref(),
        file.decision.is_some(),
        &inputs,
    );
    // Proxy listeners forward to upstreams; a decision service alone has none.
    let proxy = file.listeners.as_ref().is_some_and(|l| !l.value.is_empty());
    // Ids resolve by position in the file even when their entry has errors, so a broken issuer
    // is reported once, where it is, and not again as "unknown" by every route naming it.
    let issuers = compile_issuers(&mut cx, &file.issuers, &inputs);
    let issuer_ids: HashMap<&str, usize> = file
        .issuers
        .iter()
        .enumerate()
        .map(|(i, f)| (f.value.id.value.as_str(), i))
        .collect();
    let upstreams = compile_upstreams(&mut cx, file.upstreams.as_ref(), proxy, &inputs);
    let upstream_ids: HashMap<&str, usize> = file
        .upstreams
        .iter()
        .flat_map(|u| u.value.iter())
        .enumerate()
        .map(|(i, f)| (f.value.id.value.as_str(), i))
        .collect();
    let (identity, gateway_headers) = compile_identity(&mut cx, file.identity.as_ref());
    let (forwarding, forwarding_errors) = super::forwarding::compile(file.forwarding.as_ref());
    cx.errors.extend(forwarding_errors);
    if let Some(header) = file
        .forwarding
        .as_ref()
        .and_then(|f| f.client_cert_header.as_ref())
    {
        if !listeners.is_empty() && listeners.iter().all(|l| l.tls.is_some()) {
            cx.warn(
                header.referenced,
                "forwarding.client_cert_header",
                "every listener speaks TLS, where the connection's own client certificate counts: this header is read only on plain listeners",
            );
        }
    }
    let limits = compile_limits(&mut cx, file.limits.as_ref());
    let auth_cache = compile_auth_cache(&mut cx, file.auth_cache.as_ref());
    let redis_configured = file.revocation.as_ref().is_some_and(|r| r.redis.is_some());
    let dpop = compile_dpop_proofs(&mut cx, file.dpop_proofs.as_ref(), redis_configured);
    let rate_limits = compile_rate_limits(&mut cx, file.rate_limits.as_ref(), redis_configured);
    let admin_address = compile_admin(&mut cx, file.admin.as_ref(), &listeners);
    let probes_address =
        compile_probes_address(&mut cx, file.admin.as_ref(), &listeners, admin_address);
    let mut taken: Vec<(String, SocketAddr)> = listeners
        .iter()
        .map(|l| (l.name.clone(), l.address))
        .collect();
    taken.push(("admin.address".to_owned(), admin_address));
    taken.extend(probes_address.map(|a| ("admin.probes_address".to_owned(), a)));
    let decision = compile_decision(&mut cx, file.decision.as_ref(), &taken, &inputs);
    check_logging(&mut cx, file.logging.as_ref());
    let admin_token = compile_admin_token(&mut cx, file.admin.as_ref(), &inputs);
    let max_token_lifetime = match file
        .revocation
        .as_ref()
        .and_then(|r| r.max_token_lifetime.as_ref())
    {
        None => DEFAULT_MAX_TOKEN_LIFETIME,
        Some(t) => parse_duration(&mut cx, t, "revocation.max_token_lifetime")
            .unwrap_or(DEFAULT_MAX_TOKEN_LIFETIME),
    };
    let revocation_redis = compile_redis(&mut cx, file.revocation.as_ref(), &inputs);
    let (shutdown_grace, drain_delay) = compile_shutdown(&mut cx, file.shutdown.as_ref());

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
    let gateway_cors = file
        .cors
        .as_ref()
        .and_then(|c| compile_cors(&mut cx, "cors", c));
    for (i, route) in file.routes.value.iter().enumerate() {
        let path = format!("routes[{i}]");
        let r = &route.value;
        let cors = match &r.cors {
            Some(c) => compile_cors(&mut cx, &format!("{path}.cors"), c),
            None => gateway_cors.clone(),
        };
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
        // `Some(None)`: no upstream, in a decision service that forwards nothing.
        let upstream = match &r.upstream {
            None if proxy => {
                cx.error(
                    route.referenced,
                    format!("{path}.upstream"),
                    "required: the listeners forward this route's requests to it",
                );
                None
            }
            None => Some(None),
            Some(named) => match upstream_ids.get(named.value.as_str()) {
                Some(&u) => Some(Some(u)),
                None => {
                    cx.error(
                        named.referenced,
                        format!("{path}.upstream"),
                        format!(
                            "unknown upstream \"{}\" (known: {})",
                            named.value,
                            known(upstream_ids.keys())
                        ),
                    );
                    None
                }
            },
        };
        let auth = compile_route_auth(
            &mut cx,
            &path,
            route.referenced,
            r.auth.as_ref(),
            &issuer_ids,
        );
        let public = matches!(auth, Some(RouteAuth::Public));
        // A route's own limits replace the default; a public route skips the default's limits
        // keyed by identity (it has no token to count by).
        let route_limits = match &r.rate_limit {
            Some(list) => compile_limit_list(
                &mut cx,
                &format!("{path}.rate_limit"),
                list,
                &format!("route:{}", r.id.value),
                public.then_some(()),
            ),
            None => (rate_limits.default.iter())
                .filter(|l| !(public && l.needs_identity()))
                .cloned()
                .collect(),
        };
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
                cors,
                rate_limits: crate::rate_limit::RouteLimits::new(&route_limits),
                any_host: r.matcher.value.host.is_none(),
            });
        }
    }
    // An opaque token names no issuer: it goes to the one introspecting issuer of its route,
    // never to several (each would learn the token).
    for (i, route) in routes.iter().enumerate() {
        let RouteAuth::Protected { issuers: ids, .. } = &route.auth else {
            continue;
        };
        let introspecting: Vec<&str> = ids
            .iter()
            .filter_map(|&n| issuers.get(n)?.as_ref())
            .filter(|issuer| issuer.introspector.is_some())
            .map(|issuer| &*issuer.id)
            .collect();
        if introspecting.len() > 1 {
            cx.error(
                route_locations[i],
                format!("routes[{i}].auth.issuers"),
                format!(
                    "opaque tokens name no issuer, and would be sent to the introspection endpoints of {}: name one of them in auth.issuers",
                    introspecting.join(", ")
                ),
            );
        }
    }
    strip_names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    strip_names.dedup();

    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }
    let route_table = RouteTable::new(matches);
    // What the verified-token cache keeps of a token: the claims a principal is made from
    // (identity, `iat` for revocation cutoffs, every issuer's scope claims), `aud` (checked per
    // route), and the identity headers' claims.
    let mut kept_claims: Vec<String> =
        // `cnf`: a token's binding is checked on every request, cache hits included.
        ["aud", "azp", "client_id", "cnf", "exp", "iat", "jti", "nbf", "sub"]
            .map(String::from)
            .to_vec();
    kept_claims.extend(
        issuers
            .iter()
            .flatten()
            .flat_map(|i| i.scope_claims.iter().cloned()),
    );
    kept_claims.extend(routes.iter().flat_map(|r| {
        r.identity_headers
            .iter()
            .filter_map(|(_, source)| match source {
                ClaimSource::Claim(name) => Some(name.clone()),
                ClaimSource::Scopes => None,
            })
    }));
    kept_claims.sort();
    kept_claims.dedup();
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
        config_sha256: String::new(),
        admin_address,
        probes_address,
        decision,
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
        drain_delay,
        revocation_redis,
        revocations: Arc::clone(&inputs.stores.revocations),
        // Set below, from what the process started with.
        dpop_replay: Arc::default(),
        dpop,
        revocation_mirror: None,
        auth_cache,
        kept_claims,
        token_cache: None,
        limits,
        // The table is set below, from what the process started with.
        rate_limiting: crate::rate_limit::RateLimiting {
            mode: rate_limits.mode,
            headers: rate_limits.headers,
            max_keys: rate_limits.max_keys,
            store: Arc::new(crate::rate_limit::LimitStore::new(0)),
        },
        meters: Vec::new(),
        decision_meters: Vec::new(),
        watched_files: std::mem::take(&mut cx.watched),
    };
    // The first snapshot compiled into these stores decides what the process starts with (and
    // creates the Redis mirror); a reload keeps that mirror.
    let started = inputs.stores.start(StartSettings::of(&snapshot));
    let route_ids = || (snapshot.routes.iter().map(|r| Arc::clone(&r.id))).chain([Arc::from("-")]);
    let meters = route_ids().map(crate::metrics::RouteMeters::new).collect();
    let decision_meters = match snapshot.decision {
        Some(_) => route_ids()
            .map(|id| crate::metrics::RouteMeters::for_mode(id, "decision"))
            .collect(),
        None => Vec::new(),
    };
    let snapshot = Snapshot {
        meters,
        decision_meters,
        revocation_mirror: started.mirror.clone(),
        dpop_replay: Arc::clone(&started.dpop_replay),
        rate_limiting: crate::rate_limit::RateLimiting {
            store: Arc::clone(&started.rate_limits),
            ..snapshot.rate_limiting.clone()
        },
        token_cache: started
            .token_cache
            .clone()
            .filter(|_| snapshot.auth_cache.enabled),
        ..snapshot
    };
    Ok(Compiled {
        snapshot,
        warnings: cx.warnings,
        unchecked: cx.unchecked,
    })
}

/// `dpop_proofs:`: the window of a proof's `iat` and its algorithms (asymmetric only: the
/// `Algorithm` set has no other).
fn compile_dpop_proofs(
    cx: &mut Ctx,
    file: Option<&DpopProofsFile>,
    redis_configured: bool,
) -> crate::auth::dpop::ProofSettings {
    let defaults = crate::auth::dpop::ProofSettings::default();
    let Some(file) = file else {
        return defaults;
    };
    let (mut max_age, mut algorithms) = (defaults.max_age, defaults.algorithms);
    let mut max_replay_entries = defaults.max_replay_entries;
    if let Some(n) = &file.max_replay_entries {
        match usize::try_from(n.value) {
            Ok(n) if n >= 1_000 => max_replay_entries = n,
            _ => cx.error(
                n.referenced,
                "dpop_proofs.max_replay_entries",
                "at least 1000: every DPoP request of a max_age window takes one",
            ),
        }
    }
    if let Some(age) = &file.max_age {
        match parse_duration(cx, age, "dpop_proofs.max_age") {
            Some(d) if d > Duration::from_secs(600) => cx.error(
                age.referenced,
                "dpop_proofs.max_age",
                "above 10m a captured proof stays usable too long",
            ),
            Some(d) => max_age = d,
            None => {}
        }
    }
    if file.algorithms.is_some() {
        if let Some(list) = compile_algorithms(cx, "dpop_proofs", file.algorithms.as_ref()) {
            algorithms = list;
        }
    }
    let mut settings =
        crate::auth::dpop::ProofSettings::new(max_age, algorithms, max_replay_entries);
    if let Some(list) = &file.hosts {
        if list.value.is_empty() {
            cx.error(
                list.referenced,
                "dpop_proofs.hosts",
                "list at least one host, or leave hosts out",
            );
        }
        for h in &list.value {
            // As a `Host` header is read: lower case, no trailing dot; a port without leading
            // zeros (a proof's `htu` port is compared as a number).
            let host = crate::target::canonical_host(h.value.as_bytes()).ok();
            let canonical = host.as_ref().and_then(|host| {
                let port = host.authority().get(host.name().len() + 1..);
                let port_ok = port
                    .is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0 && n.to_string() == p));
                (port_ok && !host.name().starts_with('[')).then(|| host.authority().to_owned())
            });
            match canonical {
                Some(authority) => settings.hosts.push(authority),
                None => cx.error(
                    h.referenced,
                    "dpop_proofs.hosts",
                    format!("\"{}\" is not a host name with an optional port", h.value),
                ),
            }
        }
    }
    if let Some(share) = &file.share_through_redis {
        settings.share_through_redis = share.value;
        if share.value && !redis_configured {
            cx.error(
                share.referenced,
                "dpop_proofs.share_through_redis",
                "needs revocation.redis: the proofs are claimed there",
            );
        }
    }
    settings
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

/// Helpers for the sections' unit tests: YAML text in, the section's file model out; files,
/// variables and DNS from a [`crate::source::Memory`], never the machine's.
#[cfg(test)]
mod test_support {
    use std::path::Path;

    use crate::source::Memory;

    /// The configuration's directory in the tests (nothing is read from it).
    pub(super) const DIR: &str = "/etc/portcullis";
    /// The tests' clock.
    pub(super) const NOW: i64 = 1_800_000_000;

    pub(super) fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_saphyr::from_str(yaml).unwrap()
    }

    /// Inputs reading from `src`, into stores of their own.
    pub(super) fn inputs(src: &Memory) -> super::Inputs<'_> {
        let stores = Box::leak(Box::default());
        super::Inputs {
            base_dir: Path::new(DIR),
            src,
            stores,
            secrets: super::Secrets::Required,
        }
    }

    /// `name` in the tests' configuration directory.
    pub(super) fn at(name: &str) -> String {
        format!("{DIR}/{name}")
    }

    /// A self-signed certificate for `names` and its key, as PEM.
    pub(super) fn certificate(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    pub(super) fn messages(cx: &super::Ctx) -> Vec<String> {
        cx.errors.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::source::Memory;

    const JWKS: &str = include_str!("../../../tests/fixtures/jwks.json");

    fn compile_yaml(yaml: &str, src: &Memory) -> Result<Compiled, ConfigErrors> {
        compile_with(super::super::parse(yaml).unwrap(), inputs(src))
    }

    /// A whole gateway: TLS listener, issuer keys from a file, upstream by host name, admin token
    /// from the environment. Nothing is read from the machine.
    fn machine() -> Memory {
        let (cert, key) = certificate(&["api.test"]);
        Memory::new(NOW)
            .file(at("tls/api.crt"), cert)
            .file(at("tls/api.key"), key)
            .file(at("jwks.json"), JWKS)
            .var("ADMIN_TOKEN", "admin-token-0123456789")
            .host("orders.internal", &["10.0.0.7".parse().unwrap()])
    }

    const GATEWAY: &str = r#"
listeners:
  - name: web
    address: "0.0.0.0:8443"
    tls: { certificates: [{ cert_file: tls/api.crt, key_file: tls/api.key }] }
issuers:
  - { id: corp, issuer: "https://idp.test", jwks_file: jwks.json, audiences: [orders] }
upstreams:
  - { id: orders, url: "http://orders.internal:8080" }
admin: { address: "127.0.0.1:9901", token_env: ADMIN_TOKEN }
revocation: { state_file: state/revocations.jsonl }
routes:
  - id: public
    match: { path_prefix: /orders }
    upstream: orders
    auth: public
  - id: write
    match: { path_prefix: /orders/admin, methods: [POST] }
    upstream: orders
    auth: { scopes: { all_of: ["write:orders"] } }
  - id: shadowed
    match: { path_prefix: /orders/admin, methods: [POST] }
    upstream: orders
    auth: { scopes: { all_of: ["other"] } }
"#;

    /// A decision service alone: no proxy listener, so no upstream to name.
    const DECISION_SERVICE: &str = r#"
issuers:
  - { id: corp, issuer: "https://idp.test", jwks_file: jwks.json, audiences: [orders] }
decision: { address: "0.0.0.0:9191", protocol: nginx, trusted_proxies: [10.0.0.0/8] }
routes:
  - { id: health, match: { path: /healthz }, auth: public }
  - { id: orders, match: { path_prefix: /orders }, auth: { scopes: { all_of: [read] } } }
"#;

    #[test]
    fn a_decision_service_needs_no_listener_and_no_upstream() {
        let compiled = compile_yaml(DECISION_SERVICE, &machine()).unwrap();
        let s = &compiled.snapshot;
        assert!(s.listeners.is_empty() && s.upstreams.is_empty());
        assert!(s.routes.iter().all(|r| r.upstream.is_none()));
        assert!(s.decision.is_some());

        // Without `decision`, the proxy needs a listener.
        let proxy = DECISION_SERVICE.replace("decision:", "# decision:");
        let errors = compile_yaml(&proxy, &machine()).unwrap_err();
        assert_eq!(
            errors.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["listeners: at least one listener is required (or `decision`, for a decision service alone)"]
        );
        // With a listener, every route names an upstream, and there is one.
        let both =
            format!("listeners: [{{ name: web, address: \"0.0.0.0:8080\" }}]\n{DECISION_SERVICE}");
        let errors: Vec<String> = compile_yaml(&both, &machine())
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "upstreams: at least one upstream is required: the listeners forward to them",
                "7:5: routes[0].upstream: required: the listeners forward this route's requests to it",
                "8:5: routes[1].upstream: required: the listeners forward this route's requests to it",
            ]
        );
    }

    #[test]
    fn a_client_cert_header_with_only_tls_listeners_is_said_to_be_unread() {
        let gateway = GATEWAY.replace(
            "  - id: shadowed\n    match: { path_prefix: /orders/admin, methods: [POST] }\n",
            "  - id: shadowed\n    match: { path_prefix: /other }\n",
        );
        let yaml = format!(
            "{gateway}forwarding: {{ client_cert_header: X-Forwarded-Client-Cert, client_cert_proxies: [10.0.0.7] }}\n"
        );
        let compiled = compile_yaml(&yaml, &machine()).unwrap();
        let warnings: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("forwarding.client_cert_header: every listener speaks TLS")),
            "{warnings:#?}"
        );
    }

    /// Opaque tokens: `token_format` and `introspection` go together, an opaque-only issuer
    /// needs no keys, and a route sends opaque tokens to one authorization server only.
    #[test]
    fn introspection_settings_are_checked_together() {
        let machine = machine().var("AS_SECRET", "s3cret");
        let issuer = |id: &str, rest: &str| {
            format!(
                "  - {{ id: {id}, issuer: \"https://{id}.test\", audiences: [orders]{rest} }}\n"
            )
        };
        let introspection = |id: &str| {
            format!(
                ", token_format: opaque, introspection: {{ endpoint: \"https://{id}.test/introspect\", client_id: gw, client_secret_env: AS_SECRET }}"
            )
        };
        let gateway = |issuers: String, route_issuers: &str| {
            format!(
                "listeners: [{{ name: web, address: \"0.0.0.0:8080\" }}]\nissuers:\n{issuers}upstreams: [{{ id: u, url: \"http://10.0.0.7:8080\" }}]\nroutes:\n  - {{ id: r, match: {{ path_prefix: / }}, upstream: u, auth: {{ issuers: [{route_issuers}] }} }}\n"
            )
        };
        let errors = |yaml: String| -> Vec<String> {
            match compile_yaml(&yaml, &machine) {
                Ok(_) => Vec::new(),
                Err(e) => e.0.iter().map(ToString::to_string).collect(),
            }
        };
        let one = gateway(issuer("a", &introspection("a")), "a");
        assert_eq!(errors(one), Vec::<String>::new());
        let no_introspection = gateway(issuer("a", ", token_format: opaque"), "a");
        assert!(errors(no_introspection)[0]
            .contains("issuers[0].introspection: opaque tokens are checked by introspection"));
        let jwt = gateway(
            issuer(
                "a",
                &introspection("a").replace("token_format: opaque", "token_format: jwt"),
            ),
            "a",
        );
        assert!(errors(jwt)
            .iter()
            .any(|e| e.contains("issuers[0].introspection: used only for opaque tokens")));
        let two = gateway(
            format!(
                "{}{}",
                issuer("a", &introspection("a")),
                issuer("b", &introspection("b"))
            ),
            "a, b",
        );
        assert!(errors(two)
            .iter()
            .any(|e| e.contains("routes[0].auth.issuers: opaque tokens name no issuer")));
    }

    #[test]
    fn a_whole_gateway_compiles_from_memory() {
        let yaml = GATEWAY.replace(
            "  - id: shadowed\n    match: { path_prefix: /orders/admin, methods: [POST] }\n",
            "  - id: shadowed\n    match: { path_prefix: /other }\n",
        );
        let compiled = compile_yaml(&yaml, &machine()).unwrap();
        let s = &compiled.snapshot;
        assert!(s.listeners[0].tls.is_some());
        assert_eq!(s.upstreams[0].address, "10.0.0.7:8080".parse().unwrap());
        assert_eq!(s.issuers[0].keys.current().map(|k| k.len()), Some(2));
        assert!(s
            .admin_token
            .as_ref()
            .unwrap()
            .matches(b"admin-token-0123456789"));
        assert_eq!(
            s.revocation_state_file.as_deref(),
            Some(Path::new("/etc/portcullis/state/revocations.jsonl"))
        );
        let warnings: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0].contains("routes[0].auth")
                && warnings[0].contains("contains the protected route \"write\""),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn every_section_reports_its_errors_in_one_run() {
        // An empty machine: no files, no variables, no names.
        let errors = compile_yaml(GATEWAY, &Memory::new(NOW)).unwrap_err();
        let text: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        for expected in [
            "listeners[0].tls.certificates[0].cert_file",
            "issuers[0].jwks_file",
            "upstreams[0].url",
            "admin.token_env",
            "routes[2].match",
        ] {
            assert!(
                text.iter().any(|e| e.contains(expected)),
                "no error at {expected}: {text:#?}"
            );
        }
    }
}
