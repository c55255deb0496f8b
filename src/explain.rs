//! `portcullis explain`: why a request would be admitted or refused, check by check.
//!
//! It runs the same functions as the request path (routing, bearer extraction, the JWT checks,
//! scopes) on a request described on the command line, and prints each check with pass/fail and
//! the exact reason, then the response the gateway would give.

use std::fmt::Write as _;

use http::Method;
use pingora::http::RequestHeader;

use crate::auth::algorithm::Algorithm;
use crate::auth::bearer;
use crate::auth::jwt::{self, ParsedToken};
use crate::auth::principal::claim_text;
use crate::auth::scope::ScopeSet;
use crate::error::{render, GatewayError, TokenFault};
use crate::proxy::decision;
use crate::routes::PathMatch;
use crate::snapshot::{RouteAuth, Snapshot};

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// The full explanation of one request.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub checks: Vec<Check>,
    /// The status the gateway would answer with (200 stands for "forwarded upstream").
    pub status: u16,
    pub verdict: String,
}

/// Build the request `method url` (with `token` as a bearer token, if any).
pub fn request(method: &Method, url: &str, token: Option<&str>) -> Result<RequestHeader, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req =
        RequestHeader::build(method.clone(), target.as_bytes(), None).map_err(|e| e.to_string())?;
    if let Some(authority) = uri.authority() {
        req.insert_header(http::header::HOST, authority.as_str())
            .map_err(|e| e.to_string())?;
    }
    if let Some(token) = token {
        req.insert_header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .map_err(|e| e.to_string())?;
    }
    Ok(req)
}

fn check(checks: &mut Vec<Check>, name: &'static str, result: Result<String, String>) -> bool {
    let passed = result.is_ok();
    let detail = result.unwrap_or_else(|e| e);
    checks.push(Check {
        name,
        passed,
        detail,
    });
    passed
}

fn fault(f: TokenFault) -> String {
    GatewayError::InvalidToken(f).reason().to_owned()
}

/// Explain `req` against `snapshot` at `now`.
pub fn explain(req: &RequestHeader, snapshot: &Snapshot, now: i64) -> Explanation {
    let mut checks = Vec::new();
    let routed = decision::route(req, snapshot);
    let route_idx = match &routed {
        Ok(r) => {
            let route = &snapshot.routes[r.route];
            let matcher = snapshot
                .route_table
                .iter()
                .find(|(_, i)| *i == r.route)
                .map(|(m, _)| m);
            let why = matcher.map(describe_match).unwrap_or_default();
            check(
                &mut checks,
                "route",
                Ok(format!(
                    "\"{}\" ({why}); upstream path {}",
                    route.id, r.path
                )),
            );
            Some(r.route)
        }
        Err(e) => {
            check(
                &mut checks,
                "route",
                Err(format!(
                    "{} (normalised path, host and method matched no route)",
                    e.reason()
                )),
            );
            None
        }
    };
    if let Some(route_idx) = route_idx {
        explain_auth(&mut checks, req, snapshot, route_idx, now);
    }
    let (status, verdict) = match decision::decide(req, snapshot, now) {
        Ok(admitted) => {
            let route = &snapshot.routes[admitted.route];
            let upstream = &snapshot.upstreams[route.upstream];
            (
                200,
                format!(
                    "forwarded to upstream \"{}\" ({}) as {}",
                    upstream.id, upstream.address, admitted.path
                ),
            )
        }
        Err(e) => {
            let r = render(&e);
            let challenge = r
                .www_authenticate
                .map(|c| format!(", WWW-Authenticate: {c}"))
                .unwrap_or_default();
            (
                r.status,
                format!(
                    "{} {}{challenge} (reason: {})",
                    r.status,
                    String::from_utf8_lossy(&r.body),
                    e.reason()
                ),
            )
        }
    };
    Explanation {
        checks,
        status,
        verdict,
    }
}

fn describe_match(m: &crate::routes::RouteMatch) -> String {
    let mut parts = Vec::new();
    if let Some(h) = &m.host {
        parts.push(format!("host {h}"));
    }
    parts.push(match &m.path {
        PathMatch::Exact(p) => format!("path {p}"),
        PathMatch::Prefix(p) => format!("path_prefix {p}"),
    });
    if let Some(ms) = &m.methods {
        parts.push(format!(
            "methods {}",
            ms.iter().map(Method::as_str).collect::<Vec<_>>().join(",")
        ));
    }
    parts.join(", ")
}

fn explain_auth(
    checks: &mut Vec<Check>,
    req: &RequestHeader,
    snapshot: &Snapshot,
    route_idx: usize,
    now: i64,
) {
    let route = &snapshot.routes[route_idx];
    let RouteAuth::Protected {
        issuers,
        scopes,
        audiences,
    } = &route.auth
    else {
        check(
            checks,
            "auth",
            Ok("public route: no token needed, none used".into()),
        );
        return;
    };
    let token = match bearer::extract(&req.headers, snapshot.limits.max_token_bytes) {
        Ok(Some(t)) => t,
        Ok(None) => {
            check(checks, "token", Err("no bearer token".into()));
            return;
        }
        Err(e) => {
            check(checks, "token", Err(e.reason().to_owned()));
            return;
        }
    };
    let parsed: ParsedToken<'_> = match jwt::parse(token) {
        Ok(p) => p,
        Err(f) => {
            check(checks, "token", Err(fault(f)));
            return;
        }
    };
    check(
        checks,
        "token",
        Ok(format!(
            "JWS, alg {}, kid {}",
            parsed.alg,
            parsed.kid.as_deref().unwrap_or("(none)")
        )),
    );
    if parsed.has_crit {
        check(checks, "crit", Err(fault(TokenFault::UnsupportedCritical)));
        return;
    }
    let iss = parsed
        .claims
        .get("iss")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let Some(&issuer_idx) = issuers.iter().find(|&&i| snapshot.issuers[i].issuer == iss) else {
        let allowed: Vec<&str> = issuers
            .iter()
            .map(|&i| snapshot.issuers[i].issuer.as_str())
            .collect();
        check(
            checks,
            "iss",
            Err(format!(
                "\"{iss}\" is not one of this route's issuers: {}",
                allowed.join(", ")
            )),
        );
        return;
    };
    let issuer = &snapshot.issuers[issuer_idx];
    check(checks, "iss", Ok(format!("issuer \"{}\"", issuer.id)));
    let Ok(alg) = parsed.alg.parse::<Algorithm>().and_then(|a| {
        if issuer.algorithms.contains(&a) {
            Ok(a)
        } else {
            Err(())
        }
    }) else {
        let allowed: Vec<&str> = issuer.algorithms.iter().map(|a| a.as_str()).collect();
        check(
            checks,
            "alg",
            Err(format!(
                "{} is not allowed for this issuer ({})",
                parsed.alg,
                allowed.join(", ")
            )),
        );
        return;
    };
    check(checks, "alg", Ok(alg.to_string()));
    let signature = match issuer.keys.current() {
        None => Err(fault(TokenFault::KeysNotLoaded)),
        Some(keys) => jwt::verify_signature(
            parsed.signing_input,
            parsed.signature,
            parsed.kid.as_deref(),
            alg,
            &keys,
        )
        .map(|()| "verified".to_owned())
        .map_err(fault),
    };
    if !check(checks, "signature", signature) {
        return;
    }
    let claims = &parsed.claims;
    let date = |name: &str| {
        claims
            .get(name)
            .map(|v| format!("{name} {v}, now {now}"))
            .unwrap_or_else(|| format!("no {name}"))
    };
    check(
        checks,
        "typ",
        jwt::check_type(parsed.typ.as_deref(), issuer.token_type.as_deref())
            .map(|()| "ok".into())
            .map_err(fault),
    );
    check(
        checks,
        "exp",
        jwt::check_expiry(claims, issuer, now)
            .map(|()| date("exp"))
            .map_err(|f| format!("{}: {}", fault(f), date("exp"))),
    );
    check(
        checks,
        "nbf",
        jwt::check_not_before(claims, issuer, now)
            .map(|()| date("nbf"))
            .map_err(|f| format!("{}: {}", fault(f), date("nbf"))),
    );
    check(
        checks,
        "iat",
        jwt::check_issued_at(claims, issuer, now)
            .map(|()| date("iat"))
            .map_err(|f| format!("{}: {}", fault(f), date("iat"))),
    );
    let expected = audiences.as_deref().unwrap_or(&issuer.audiences);
    let aud = claims
        .get("aud")
        .map(|v| v.to_string())
        .unwrap_or_else(|| "none".into());
    check(
        checks,
        "aud",
        jwt::check_audience_in(claims, expected)
            .map(|()| aud.clone())
            .map_err(|f| {
                format!(
                    "{}: token aud {aud}, expected one of {}",
                    fault(f),
                    expected.join(", ")
                )
            }),
    );
    check(
        checks,
        "lifetime",
        jwt::check_lifetime(claims, issuer, now)
            .map(|()| format!("at most {}s", issuer.max_token_lifetime.as_secs()))
            .map_err(|f| {
                format!(
                    "{}: longer than revocation.max_token_lifetime ({}s)",
                    fault(f),
                    issuer.max_token_lifetime.as_secs()
                )
            }),
    );
    if issuer.rfc9068 {
        check(
            checks,
            "profile",
            jwt::check_rfc9068_profile(claims)
                .map(|()| "RFC 9068 claims present".to_owned())
                .map_err(|f| format!("{}: RFC 9068 §2.2 claims missing or mistyped", fault(f))),
        );
    }
    let granted = ScopeSet::from_claims(claims, &issuer.scope_claims);
    let scope_detail = format!(
        "granted \"{}\", required \"{}\"",
        granted.to_header_value(),
        scopes.challenge
    );
    check(
        checks,
        "scopes",
        if scopes.requirement.is_satisfied_by(&granted) {
            Ok(scope_detail)
        } else {
            Err(format!("insufficient_scope: {scope_detail}"))
        },
    );
    let (jti, sub, client_id) = (
        claim_text(claims, "jti"),
        claim_text(claims, "sub"),
        claim_text(claims, "client_id").or_else(|| claim_text(claims, "azp")),
    );
    let facts = crate::revocation::TokenFacts {
        issuer: &issuer.id,
        jti: jti.as_deref(),
        sub: sub.as_deref(),
        client_id: client_id.as_deref(),
        iat: crate::auth::principal::iat_for_cutoffs(claims, issuer),
    };
    let revoked = match snapshot.revocations.check(&facts) {
        None => Ok(format!(
            "not revoked ({} entries from the revocation file and state file)",
            snapshot.revocations.len()
        )),
        Some(by) => Err(format!("revoked by {} entry", by.as_str())),
    };
    check(checks, "revocation", revoked);
}

/// The explanation as text for a terminal.
pub fn to_text(e: &Explanation) -> String {
    let mut out = String::new();
    for c in &e.checks {
        let mark = if c.passed { "pass" } else { "FAIL" };
        let _ = writeln!(out, "{mark}  {:<10} {}", c.name, c.detail);
    }
    let _ = writeln!(out, "\nresponse: {}", e.verdict);
    out
}
