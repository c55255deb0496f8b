//! CORS at the gateway (the Fetch standard's CORS protocol): preflights answered here, without a
//! token and never forwarded, and the `Access-Control-*` headers of actual requests (the
//! gateway's own refusals included) set from one policy per route.
//!
//! A browser sends a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! without credentials: demanding a token there would break every browser client, and forwarding
//! it would make each legacy backend implement CORS. An origin, method or header the policy does
//! not allow gets `403` with no CORS header, which the browser reads as a refusal.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// An allowed origin: exact, or every subdomain of a host (`https://*.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginRule {
    Exact(String),
    /// Scheme, the host suffix after `*` (`.example.com`), and the `:port` part (or empty).
    Subdomains {
        scheme: String,
        suffix: String,
        port: String,
    },
    /// `*`: any origin (never with credentials).
    Any,
}

/// `cors:` compiled.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    pub origins: Vec<OriginRule>,
    pub methods: Vec<Method>,
    /// Lower case.
    pub headers: Vec<String>,
    pub methods_text: HeaderValue,
    pub headers_text: HeaderValue,
    pub exposed: Option<HeaderValue>,
    pub credentials: bool,
    pub max_age: HeaderValue,
}

impl CorsPolicy {
    /// Whether `origin` (the request's `Origin`, as sent) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.origins.iter().any(|rule| match rule {
            OriginRule::Any => true,
            OriginRule::Exact(o) => *o == origin,
            OriginRule::Subdomains {
                scheme,
                suffix,
                port,
            } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|rest| rest.strip_prefix("://"))
                .and_then(|rest| rest.strip_suffix(port.as_str()))
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                .is_some_and(|label| {
                    !label.is_empty()
                        && label.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
                        })
                }),
        })
    }

    /// Whether answers depend on `Origin` (so caches must keep them apart: `Vary: Origin` on
    /// every answer of the route, whatever the request's origin): all but `*` without
    /// credentials.
    pub fn varies(&self) -> bool {
        !self.origins.contains(&OriginRule::Any) || self.credentials
    }

    /// `Access-Control-Allow-Origin`: the origin echoed, or `*` for any origin without
    /// credentials.
    fn allow_origin(&self, origin: &HeaderValue) -> HeaderValue {
        let any = self.origins.contains(&OriginRule::Any) && !self.credentials;
        match any {
            true => HeaderValue::from_static("*"),
            false => origin.clone(),
        }
    }

    /// The answer to a preflight from `origin` for `method` with `requested` headers: its
    /// headers, or `None` when the policy does not allow it.
    pub fn preflight(
        &self,
        origin: &HeaderValue,
        method: &str,
        requested: Option<&str>,
    ) -> Option<Vec<(HeaderName, HeaderValue)>> {
        if !origin.to_str().is_ok_and(|o| self.allows(o)) {
            return None;
        }
        if !self.methods.iter().any(|m| m.as_str() == method) {
            return None;
        }
        // `*` (without credentials: compile refuses it with them) allows every header but
        // `Authorization`, which the Fetch standard never lets a wildcard cover.
        let wildcard = self.headers.iter().any(|h| h == "*");
        let requested_ok = requested.is_none_or(|list| {
            list.split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .all(|h| self.headers.contains(&h) || (wildcard && h != "authorization"))
        });
        if !requested_ok {
            return None;
        }
        let mut out = vec![
            (ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin(origin)),
            (ACCESS_CONTROL_ALLOW_METHODS, self.methods_text.clone()),
            (ACCESS_CONTROL_ALLOW_HEADERS, self.headers_text.clone()),
            (ACCESS_CONTROL_MAX_AGE, self.max_age.clone()),
            (
                VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            ),
        ];
        if self.credentials {
            out.push((
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        Some(out)
    }

    /// The headers of an actual request's answer (`Origin` allowed), the gateway's refusals
    /// included, so the browser application can read why it was refused.
    pub fn actual(&self, origin: &HeaderValue) -> Vec<(HeaderName, HeaderValue)> {
        if !origin.to_str().is_ok_and(|o| self.allows(o)) {
            return Vec::new();
        }
        let mut out = vec![
            (ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin(origin)),
            (VARY, HeaderValue::from_static("Origin")),
        ];
        if self.credentials {
            out.push((
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        if let Some(exposed) = &self.exposed {
            out.push((ACCESS_CONTROL_EXPOSE_HEADERS, exposed.clone()));
        }
        out
    }
}

/// A preflight: `OPTIONS` with `Origin` and one `Access-Control-Request-Method`.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers
            .get_all(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .iter()
            .count()
            == 1
}

/// Whether a backend's response header is one of CORS' (`Access-Control-*`): replaced by the
/// gateway's on a route with a policy (`Vary` gets `Origin` added, never replaced).
pub fn is_cors_header(name: &HeaderName) -> bool {
    name.as_str().starts_with("access-control-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: Vec<OriginRule>, credentials: bool) -> CorsPolicy {
        CorsPolicy {
            origins,
            methods: vec![Method::GET, Method::POST],
            headers: vec!["authorization".into(), "content-type".into()],
            methods_text: HeaderValue::from_static("GET, POST"),
            headers_text: HeaderValue::from_static("authorization, content-type"),
            exposed: None,
            credentials,
            max_age: HeaderValue::from_static("600"),
        }
    }

    #[test]
    fn origins_match_exactly_or_as_subdomains() {
        let p = policy(
            vec![
                OriginRule::Exact("https://app.example.com".into()),
                OriginRule::Subdomains {
                    scheme: "https".into(),
                    suffix: ".tenant.example".into(),
                    port: String::new(),
                },
            ],
            true,
        );
        for ok in [
            "https://app.example.com",
            "HTTPS://APP.example.com",
            "https://a.tenant.example",
            "https://a.b.tenant.example",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for no in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.evil",
            "https://tenant.example",
            "https://eviltenant.example",
            "https://a.tenant.example:444",
            "https://x/y.tenant.example",
            "null",
        ] {
            assert!(!p.allows(no), "{no}");
        }
    }

    #[test]
    fn a_preflight_is_allowed_only_for_its_methods_and_headers() {
        let p = policy(
            vec![OriginRule::Exact("https://app.example.com".into())],
            true,
        );
        let origin = HeaderValue::from_static("https://app.example.com");
        let answer = p
            .preflight(&origin, "POST", Some("Content-Type, Authorization"))
            .unwrap();
        assert!(answer.contains(&(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone())));
        assert!(answer
            .iter()
            .any(|(n, v)| n == ACCESS_CONTROL_ALLOW_CREDENTIALS && v == "true"));
        assert!(p.preflight(&origin, "DELETE", None).is_none());
        assert!(p.preflight(&origin, "POST", Some("x-admin")).is_none());
        let other = HeaderValue::from_static("https://evil.example");
        assert!(p.preflight(&other, "GET", None).is_none());
        assert!(p.actual(&other).is_empty());
        // `*` without credentials answers `*`.
        let any = policy(vec![OriginRule::Any], false);
        assert!(any
            .actual(&other)
            .contains(&(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"))));
    }
}
