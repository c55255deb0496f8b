//! Routing, the first part of admission: check the request line and host, normalise the path,
//! find the route, and refuse a request that backends could read as another route.

use pingora::http::RequestHeader;

use super::observe::{seen, Observer, Step};
use crate::error::{GatewayError, PathFault};
use crate::routes::{
    has_script_path_info, has_suffix_form, normalize_path, with_unicode_folds,
    without_path_parameters, Lookup,
};
use crate::snapshot::Snapshot;
use crate::target;
use http::Method;

/// Where a request goes, and the canonical form in which the upstream receives it.
#[derive(Debug, Clone)]
pub struct Routed {
    pub route: usize,
    /// The normalised path the upstream receives.
    pub path: String,
    /// `host[:port]` to send as `Host` when it is not byte-for-byte what the client sent
    /// (case, trailing dot, absolute-form, HTTP/2 `:authority`); `None` when it is.
    pub upstream_host: Option<String>,
    /// The target was absolute-form: the upstream gets origin-form.
    pub absolute_form: bool,
    /// The route honoured a method override: routed and authorised as that method.
    pub method_override: Option<Method>,
}

/// Check the request line and host, normalise the path and find the route (no authentication
/// yet). The canonical request this returns is the one forwarded: whatever the backend reads
/// is what was routed here. Reports [`Step::Target`], [`Step::Path`] and [`Step::Route`].
pub fn route<O: Observer>(
    req: &RequestHeader,
    snapshot: &Snapshot,
    obs: &mut O,
) -> Result<Routed, GatewayError> {
    let target = match req.raw_path_is_utf8() {
        true => target::read(req).map_err(GatewayError::BadTarget),
        false => Err(GatewayError::BadPath(PathFault::NotUtf8)),
    };
    let target = seen(obs, Step::Target, target, |t| {
        let form = if t.absolute_form {
            "absolute-form"
        } else {
            "origin-form"
        };
        match &t.host {
            Some(host) => format!("{} {form}, host {}", req.method, host.authority()),
            None => format!("{} {form}, no host", req.method),
        }
    })?;
    let path = normalize_path(target.path).map_err(GatewayError::BadPath);
    let path = seen(obs, Step::Path, path, |p| format!("normalised {p}"))?;
    let chosen = choose(req, snapshot, &target, path);
    seen(obs, Step::Route, chosen, |r| {
        let route = &snapshot.routes[r.route];
        let matcher = snapshot
            .route_table
            .iter()
            .find(|(_, i)| *i == r.route)
            .map(|(m, _)| m.to_string())
            .unwrap_or_default();
        let method = r
            .method_override
            .as_ref()
            .map(|m| format!("; as {m} (method override)"));
        format!(
            "\"{}\" ({matcher}){}; upstream path {}",
            route.id,
            method.unwrap_or_default(),
            r.path
        )
    })
}

/// The route for an already read target and normalised path.
fn choose(
    req: &RequestHeader,
    snapshot: &Snapshot,
    target: &target::Target<'_>,
    path: std::borrow::Cow<'_, str>,
) -> Result<Routed, GatewayError> {
    let host = target.host.as_ref().map(|h| h.name());
    // Servlet containers map `/admin;x/users` as `/admin/users`: route it as they will read it.
    let stripped = without_path_parameters(&path);
    let lookup_path = stripped.as_deref().unwrap_or(&path);
    let table = &snapshot.route_table;

    // Frameworks honour a method override on POST only; a route that opts in is chosen, and
    // authorised, by the overriding method. Elsewhere the override headers are stripped.
    let method_override = match req.method {
        Method::POST => target::method_override(req).map_err(GatewayError::BadTarget)?,
        _ => None,
    };
    let overridden =
        method_override.and_then(|method| match table.lookup(host, lookup_path, &method) {
            Lookup::Route(r) if snapshot.routes[r].method_override => Some((r, method)),
            _ => None,
        });
    let (route, method_override) = match overridden {
        Some((route, method)) => (route, Some(method)),
        None => match table.lookup(host, lookup_path, &req.method) {
            Lookup::Route(route) => (route, None),
            Lookup::MethodNotAllowed(allow) => {
                return Err(GatewayError::MethodNotAllowed { allow })
            }
            Lookup::NoRoute => return Err(GatewayError::NoRoute),
        },
    };
    let method = method_override.as_ref().unwrap_or(&req.method);
    // A backend that matches paths case-insensitively (Express by default, IIS, ASP.NET, Java
    // `equalsIgnoreCase`) would pick the route a case-folding table picks: a spelling that
    // changes the route is refused.
    let unicode_folded = with_unicode_folds(lookup_path);
    if table.has_upper_case_routes()
        || unicode_folded.is_some()
        || lookup_path.bytes().any(|b| b.is_ascii_uppercase())
    {
        let folded_path = unicode_folded.as_deref().unwrap_or(lookup_path);
        if table.lookup_folded(host, folded_path, method) != Lookup::Route(route) {
            return Err(GatewayError::BadPath(PathFault::CaseAmbiguous));
        }
    }
    // `/x/` and `/x.json` are `/x` to Express, Laravel, Rails and Spring ≤ 5, and another
    // resource to Go, Django and Tomcat: when the two readings pick different routes, refuse.
    if has_suffix_form(lookup_path)
        && table.lookup_strict(host, lookup_path, method) != Lookup::Route(route)
    {
        return Err(GatewayError::BadPath(PathFault::SuffixAmbiguous));
    }
    let chosen = &snapshot.routes[route];
    if stripped.is_some() && !chosen.path_parameters {
        return Err(GatewayError::BadPath(PathFault::Parameters));
    }
    // PHP front controllers route `/index.php/admin/users` as `/admin/users`.
    if !chosen.script_path_info && has_script_path_info(lookup_path) {
        return Err(GatewayError::BadPath(PathFault::ScriptPathInfo));
    }
    let upstream_host = target
        .host
        .as_ref()
        .filter(|h| !h.as_sent)
        .map(|h| h.authority().to_owned());
    Ok(Routed {
        route,
        // The one copy of the path: the later phases forward it.
        path: path.into_owned(),
        upstream_host,
        absolute_form: target.absolute_form,
        method_override,
    })
}
