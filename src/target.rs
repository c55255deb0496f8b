//! What a request is about, read once and strictly: its method, its request-target form and its
//! host, each refused or put in the one canonical form that both routing and the upstream see.
//!
//! Legacy backends parse requests their own way. Wherever one could read a request differently
//! from how the gateway routed it, the request is refused here (400) or canonicalised, and the
//! canonical form is what goes upstream (RFC 9112 §3.2, RFC 9110 §7.2, RFC 9113 §8.3.1).
//! Nothing here does I/O or allocates on an already-canonical request.

use http::header::HOST;
use http::Method;
use pingora::http::RequestHeader;

/// Why the request line or host was refused (400 `invalid_request`, no challenge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetFault {
    /// A method with lower-case letters (`delete`): Werkzeug and others upper-case it, Go does
    /// not; routing must not depend on which.
    MethodNotUpperCase,
    /// Not origin-form (`/…`) nor an `http(s)://` absolute-form target: `x:/a`, `a/b`, `*`,
    /// authority-form. Pingora would route them as `/` and forward the raw bytes.
    TargetForm,
    /// No `Host` (RFC 9112 §3.2: 400 for HTTP/1.1; HTTP/1.0 too, as it goes upstream as 1.1).
    MissingHost,
    /// More than one `Host` header (RFC 9112 §3.2: 400).
    DuplicateHost,
    /// A host that is not `name[:port]` or `[v6]:port` (userinfo, spaces, commas, empty labels).
    InvalidHost,
    /// `Host` names another host than the absolute-form target or HTTP/2 `:authority`.
    HostMismatch,
    /// Method-override headers that disagree or name no valid upper-case method.
    InvalidMethodOverride,
}

impl TargetFault {
    /// Every fault (the label values of `portcullis_rejections_total`, initialised at 0).
    pub const ALL: [Self; 7] = [
        Self::MethodNotUpperCase,
        Self::TargetForm,
        Self::MissingHost,
        Self::DuplicateHost,
        Self::InvalidHost,
        Self::HostMismatch,
        Self::InvalidMethodOverride,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            TargetFault::MethodNotUpperCase => "method_not_upper_case",
            TargetFault::TargetForm => "target_form",
            TargetFault::MissingHost => "host_missing",
            TargetFault::DuplicateHost => "host_duplicate",
            TargetFault::InvalidHost => "host_invalid",
            TargetFault::HostMismatch => "host_mismatch",
            TargetFault::InvalidMethodOverride => "method_override_invalid",
        }
    }
}

/// A request host in canonical form: lower case, without a trailing dot, with its port if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host<'a> {
    /// `host[:port]` as the upstream receives it in `Host`.
    authority: std::borrow::Cow<'a, str>,
    /// Length of the host part (without `:port`).
    host_len: usize,
    /// True when `authority` is byte-for-byte what the client sent in `Host`.
    pub as_sent: bool,
}

impl Host<'_> {
    /// The host without port: what routes match.
    pub fn name(&self) -> &str {
        &self.authority[..self.host_len]
    }

    /// `host[:port]`: what the upstream gets in `Host`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn into_owned(self) -> Host<'static> {
        Host {
            authority: std::borrow::Cow::Owned(self.authority.into_owned()),
            host_len: self.host_len,
            as_sent: self.as_sent,
        }
    }
}

/// The checked request line and host.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The path part of the target, not yet normalised (see [`crate::routes::normalize_path`]).
    pub path: &'a str,
    /// Always present once [`read`] succeeds; an `Option` for callers that build targets.
    pub host: Option<Host<'a>>,
    /// The target was absolute-form: the upstream must get origin-form and `Host` instead.
    pub absolute_form: bool,
}

/// RFC 9110 §9.1: methods are case-sensitive and registered methods are upper case. A method
/// with a lower-case letter is refused rather than guessed at.
pub fn check_method(method: &Method) -> Result<(), TargetFault> {
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(TargetFault::MethodNotUpperCase);
    }
    Ok(())
}

/// Read the request target and host of `req`.
pub fn read(req: &RequestHeader) -> Result<Target<'_>, TargetFault> {
    check_method(&req.method)?;
    let raw = req.raw_path();
    let mut absolute_form = false;
    let mut target_authority = None;
    if raw.first() != Some(&b'/') {
        // RFC 9112 §3.2.2: absolute-form, from clients talking to a proxy; its authority is the
        // host. Anything else (`x:/a`, `a/b`, `*`, CONNECT's authority-form) is refused.
        let authority = absolute_form_authority(raw).ok_or(TargetFault::TargetForm)?;
        target_authority = Some(authority);
        absolute_form = true;
    }
    // HTTP/2 (and HTTP/1 absolute-form, when Pingora fills it in) carry the authority in the URI.
    let uri_authority = req.uri.authority().map(|a| a.as_str().as_bytes());
    let authority = target_authority.or(uri_authority);

    let mut hosts = req.headers.get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(TargetFault::DuplicateHost);
    }
    let host = match (authority, host_header) {
        (Some(authority), header) => {
            let host = canonical_host(authority)?;
            // RFC 9113 §8.3.1 and RFC 9112 §3.2.2: a `Host` naming something else is refused,
            // not ignored, since a backend may read either.
            if let Some(header) = header {
                if canonical_host(header.as_bytes())?.authority != host.authority {
                    return Err(TargetFault::HostMismatch);
                }
            }
            let as_sent = header.is_some_and(|h| h.as_bytes() == host.authority.as_bytes());
            Some(Host { as_sent, ..host })
        }
        (None, Some(header)) => Some(canonical_host(header.as_bytes())?),
        // HTTP/1.0 may omit Host, but the upstream request is HTTP/1.1, which may not: Go,
        // Tomcat, Node and nginx would answer 400. Refused here, with the reason.
        (None, None) => return Err(TargetFault::MissingHost),
    };
    Ok(Target {
        path: req.uri.path(),
        host,
        absolute_form,
    })
}

/// The authority of an `http://` or `https://` absolute-form target (scheme case-insensitive),
/// when what follows it is a path, a query or nothing.
fn absolute_form_authority(raw: &[u8]) -> Option<&[u8]> {
    let colon = raw.iter().position(|&b| b == b':')?;
    let scheme = &raw[..colon];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return None;
    }
    let rest = raw[colon..].strip_prefix(b"://")?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    (!authority.is_empty()).then_some(authority)
}

/// Check `value` (`host[:port]`) and put it in canonical form: lower case, one trailing dot
/// removed, an empty port removed. Borrowed when already canonical.
///
/// Only letters, digits, `-`, `.` and `_` are accepted in a name (no userinfo, percent-escapes,
/// spaces or commas), no empty label, and a port of 1–5 digits; IPv6 literals in brackets.
pub fn canonical_host(value: &[u8]) -> Result<Host<'_>, TargetFault> {
    let text = std::str::from_utf8(value).map_err(|_| TargetFault::InvalidHost)?;
    let (host, port) = split_port(text)?;
    let valid = if host.starts_with('[') {
        host.len() > 2
            && host.ends_with(']')
            && host[1..host.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        let name = host.strip_suffix('.').unwrap_or(host);
        !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if !valid {
        return Err(TargetFault::InvalidHost);
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let canonical = name.len() == host.len()
        && !name.bytes().any(|b| b.is_ascii_uppercase())
        && port.is_none_or(|p| !p.is_empty());
    if canonical {
        return Ok(Host {
            authority: std::borrow::Cow::Borrowed(text),
            host_len: name.len(),
            as_sent: true,
        });
    }
    let mut authority = name.to_ascii_lowercase();
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        authority.push(':');
        authority.push_str(port);
    }
    Ok(Host {
        authority: std::borrow::Cow::Owned(authority),
        host_len: name.len(),
        as_sent: false,
    })
}

/// Split `host[:port]`; the port must be digits (it may be empty, RFC 3986 §3.2.3).
fn split_port(text: &str) -> Result<(&str, Option<&str>), TargetFault> {
    let split_at = if text.starts_with('[') {
        match text.find(']') {
            Some(end) if end + 1 == text.len() => None,
            Some(end) if text.as_bytes()[end + 1] == b':' => Some(end + 1),
            _ => return Err(TargetFault::InvalidHost),
        }
    } else {
        text.find(':')
    };
    let Some(at) = split_at else {
        return Ok((text, None));
    };
    let port = &text[at + 1..];
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetFault::InvalidHost);
    }
    if !port.is_empty() && port.parse::<u16>().is_err() {
        return Err(TargetFault::InvalidHost);
    }
    Ok((&text[..at], Some(port)))
}

/// The headers through which frameworks let a client replace the method (Express's
/// `method-override`, Symfony, gorilla/handlers, Werkzeug's old fixer, ASP.NET).
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The query parameter through which Rails, Laravel, Symfony, Express (`methodOverride('_method')`),
/// gorilla/handlers and Spring's `HiddenHttpMethodFilter` let a client replace the method.
pub const METHOD_OVERRIDE_PARAM: &str = "_method";

/// The method a client asks to override to, through any override header or a `_method` query
/// parameter (its name read as backends decode it): `Ok(None)` when it asks for none. Every
/// override present must name the same upper-case method.
pub fn method_override(req: &RequestHeader) -> Result<Option<Method>, TargetFault> {
    let mut found: Option<&[u8]> = None;
    for name in METHOD_OVERRIDE_HEADERS {
        for value in req.headers.get_all(name) {
            let value = value.as_bytes();
            match found {
                Some(seen) if seen != value => return Err(TargetFault::InvalidMethodOverride),
                _ => found = Some(value),
            }
        }
    }
    let param = match req.uri.query() {
        Some(q) => crate::query::unambiguous_value(q, METHOD_OVERRIDE_PARAM)
            .map_err(|_| TargetFault::InvalidMethodOverride)?,
        None => None,
    };
    if let Some(param) = &param {
        match found {
            Some(seen) if seen != param.as_bytes() => {
                return Err(TargetFault::InvalidMethodOverride)
            }
            _ => found = Some(param.as_bytes()),
        }
    }
    let Some(value) = found else {
        return Ok(None);
    };
    let method = Method::from_bytes(value).map_err(|_| TargetFault::InvalidMethodOverride)?;
    check_method(&method).map_err(|_| TargetFault::InvalidMethodOverride)?;
    Ok(Some(method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Version;

    fn req(method: &str, target: &[u8], hosts: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build(method, target, None).unwrap();
        for h in hosts {
            r.append_header(HOST, *h).unwrap();
        }
        r
    }

    fn host_of(r: &RequestHeader) -> Result<Option<(String, String)>, TargetFault> {
        read(r).map(|t| {
            t.host
                .map(|h| (h.name().to_owned(), h.authority().to_owned()))
        })
    }

    #[test]
    fn origin_form_with_a_canonical_host_borrows() {
        let r = req("GET", b"/orders/1?x=1", &["api.example.com"]);
        let t = read(&r).unwrap();
        assert_eq!(t.path, "/orders/1");
        let host = t.host.unwrap();
        assert!(matches!(host.authority, std::borrow::Cow::Borrowed(_)));
        assert!(host.as_sent);
        assert_eq!(host.name(), "api.example.com");
        assert!(!t.absolute_form);
    }

    #[test]
    fn hosts_are_canonicalised_like_virtual_hosts_read_them() {
        for (sent, name, authority) in [
            (
                "ADMIN.Example.com",
                "admin.example.com",
                "admin.example.com",
            ),
            (
                "admin.example.com.",
                "admin.example.com",
                "admin.example.com",
            ),
            (
                "admin.example.com:80",
                "admin.example.com",
                "admin.example.com:80",
            ),
            (
                "admin.example.com.:8080",
                "admin.example.com",
                "admin.example.com:8080",
            ),
            (
                "admin.example.com:",
                "admin.example.com",
                "admin.example.com",
            ),
            ("[::1]:8080", "[::1]", "[::1]:8080"),
            ("10.0.0.1", "10.0.0.1", "10.0.0.1"),
        ] {
            let r = req("GET", b"/", &[sent]);
            assert_eq!(
                host_of(&r),
                Ok(Some((name.to_owned(), authority.to_owned()))),
                "{sent}"
            );
        }
    }

    #[test]
    fn refuses_hosts_a_backend_could_read_another_way() {
        for bad in [
            "admin.example.com@api.example.com",
            "api.example.com, admin.example.com",
            "admin.example.com..",
            "a..b",
            ".",
            "",
            "admin example.com",
            "admin%2eexample.com",
            "admin.example.com:80:80",
            "admin.example.com:99999",
            "admin.example.com:8a",
            "[::1",
            "[::1]x",
            "a/b",
        ] {
            let r = req("GET", b"/", &[bad]);
            assert_eq!(host_of(&r), Err(TargetFault::InvalidHost), "{bad:?}");
        }
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        // RFC 9112 §3.2: a server MUST respond 400 to HTTP/1.1 without Host or with several.
        let r = req("GET", b"/", &[]);
        assert_eq!(host_of(&r), Err(TargetFault::MissingHost));
        let r = req("GET", b"/", &["a.example", "b.example"]);
        assert_eq!(host_of(&r), Err(TargetFault::DuplicateHost));
        let mut r = req("GET", b"/", &[]);
        r.set_version(Version::HTTP_10);
        assert_eq!(host_of(&r), Err(TargetFault::MissingHost));
    }

    #[test]
    fn only_origin_and_http_absolute_form_targets_are_accepted() {
        for bad in [
            &b"x:/orders/1"[..],
            b"orders/1",
            b"*",
            b"ftp://a.example/x",
            b"http:/x",
        ] {
            let r = req("GET", bad, &["api.example.com"]);
            assert_eq!(
                read(&r).map(|_| ()),
                Err(TargetFault::TargetForm),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn absolute_form_authority_is_the_host() {
        // RFC 9112 §3.2.2: the target's authority names the host, with or without Host.
        let r = req("GET", b"http://ADMIN.example.com/orders/7", &[]);
        let t = read(&r).unwrap();
        assert!(t.absolute_form);
        assert_eq!(t.path, "/orders/7");
        let host = t.host.unwrap();
        assert_eq!(host.authority(), "admin.example.com");
        assert!(!host.as_sent);
        let r = req(
            "GET",
            b"HTTP://admin.example.com/orders/7",
            &["admin.example.com"],
        );
        assert_eq!(
            host_of(&r),
            Ok(Some((
                "admin.example.com".into(),
                "admin.example.com".into()
            )))
        );
        let r = req(
            "GET",
            b"http://admin.example.com/orders/7",
            &["api.example.com"],
        );
        assert_eq!(host_of(&r), Err(TargetFault::HostMismatch));
        let r = req("GET", b"http://user@admin.example.com/orders/7", &[]);
        assert_eq!(host_of(&r), Err(TargetFault::InvalidHost));
    }

    #[test]
    fn methods_must_be_upper_case() {
        let r = req("delete", b"/orders/1", &["a.example"]);
        assert_eq!(read(&r).map(|_| ()), Err(TargetFault::MethodNotUpperCase));
        let r = req("Get", b"/orders/1", &["a.example"]);
        assert_eq!(read(&r).map(|_| ()), Err(TargetFault::MethodNotUpperCase));
        let r = req("PROPFIND", b"/orders/1", &["a.example"]);
        assert!(read(&r).is_ok());
    }

    #[test]
    fn method_overrides_must_agree_and_be_upper_case() {
        let mut r = req("POST", b"/", &["a.example"]);
        assert_eq!(method_override(&r), Ok(None));
        r.append_header("X-HTTP-Method-Override", "DELETE").unwrap();
        assert_eq!(method_override(&r), Ok(Some(Method::DELETE)));
        r.append_header("X-HTTP-Method", "DELETE").unwrap();
        assert_eq!(method_override(&r), Ok(Some(Method::DELETE)));
        r.append_header("X-Method-Override", "PUT").unwrap();
        assert_eq!(method_override(&r), Err(TargetFault::InvalidMethodOverride));
        let mut r = req("POST", b"/", &["a.example"]);
        r.append_header("X-HTTP-Method-Override", "delete").unwrap();
        assert_eq!(method_override(&r), Err(TargetFault::InvalidMethodOverride));
    }

    #[test]
    fn a_method_query_parameter_is_an_override_too() {
        let r = req("POST", b"/orders/7?_method=DELETE", &["a.example"]);
        assert_eq!(method_override(&r), Ok(Some(Method::DELETE)));
        let r = req("POST", b"/orders/7?a=1&%5Fmethod=PUT", &["a.example"]);
        assert_eq!(method_override(&r), Err(TargetFault::InvalidMethodOverride));
        let r = req(
            "POST",
            b"/orders/7?_method=PUT&_method=DELETE",
            &["a.example"],
        );
        assert_eq!(method_override(&r), Err(TargetFault::InvalidMethodOverride));
        let mut r = req("POST", b"/orders/7?_method=DELETE", &["a.example"]);
        r.append_header("X-HTTP-Method-Override", "PUT").unwrap();
        assert_eq!(method_override(&r), Err(TargetFault::InvalidMethodOverride));
    }
}
