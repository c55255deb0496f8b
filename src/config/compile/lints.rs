//! Warnings for valid but risky routing (a route never chosen, a public prefix over protected
//! routes, a host-less route over a virtual-host upstream).

use super::*;

/// Warnings for valid but risky routing: a route that can never be chosen, and a public prefix
/// over protected routes (they win by longest match, but one spelling slip opens them).
pub(super) fn warn_risky_routes(
    cx: &mut Ctx,
    table: &RouteTable,
    routes: &[Route],
    locations: &[Location],
) {
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
pub(super) fn warn_hostless_routes_on_virtual_hosts(
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
            other.host.is_some()
                && routes[*idx].upstream.is_some()
                && routes[*other_idx].upstream == routes[*idx].upstream
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
pub(super) fn covers(outer: &RouteMatch, inner: &RouteMatch) -> bool {
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
