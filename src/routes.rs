//! Request-path normalisation and the route table: which route serves `(host, path, method)`.
//!
//! Normalisation happens before matching and the normalised path is what the upstream receives,
//! so a client can never reach a protected path through a spelling that matched a public route.
//! Nothing here does I/O.

use http::Method;

use crate::error::PathFault;

/// Normalise a request path (the path part of the request target, without the query).
///
/// - percent-encoded unreserved characters (RFC 3986 §2.3) are decoded, other escapes are kept with
///   upper-case hex (RFC 3986 §6.2.2.1);
/// - an encoded `/` or `\`, a literal `\` and any NUL are refused: backends disagree on them;
/// - empty segments (`//`) collapse, `.` segments vanish, `..` removes the previous segment
///   (RFC 3986 §5.2.4) and climbing above `/` is refused;
/// - a dot segment with path parameters (`..;x`) is refused: servlet containers resolve it.
///
/// A trailing `/` is kept, so `/a/` and `/a` stay distinct for the upstream.
pub fn normalize_path(raw: &str) -> Result<String, PathFault> {
    if !raw.starts_with('/') {
        return Err(PathFault::NotAbsolute);
    }
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for raw_segment in raw[1..].split('/') {
        trailing_slash = raw_segment.is_empty();
        if raw_segment.is_empty() {
            continue;
        }
        let segment = decode_segment(raw_segment)?;
        match segment.as_str() {
            "." => trailing_slash = true,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathFault::ClimbsAboveRoot);
                }
                trailing_slash = true;
            }
            s if is_dot_segment_with_parameters(s) => return Err(PathFault::DotSegmentParameters),
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(raw.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

fn is_dot_segment_with_parameters(segment: &str) -> bool {
    match segment.split_once(';') {
        Some((head, _)) => head == "." || head == "..",
        None => false,
    }
}

fn decode_segment(segment: &str) -> Result<String, PathFault> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathFault::BadPercentEncoding);
                };
                let decoded = hi * 16 + lo;
                match decoded {
                    0 => return Err(PathFault::Nul),
                    b'/' | b'\\' => return Err(PathFault::EncodedSeparator),
                    c if is_unreserved(c) => out.push(char::from(c)),
                    _ => {
                        out.push('%');
                        out.push(char::from(HEX_UPPER[usize::from(hi)]));
                        out.push(char::from(HEX_UPPER[usize::from(lo)]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathFault::EncodedSeparator),
            0 => return Err(PathFault::Nul),
            _ => {
                // Copy a run of plain bytes at once; the input is valid UTF-8 and runs end on ASCII.
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b'%' | b'\\' | 0) {
                    i += 1;
                }
                out.push_str(&segment[start..i]);
            }
        }
    }
    Ok(out)
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// How a route matches paths. Both forms hold a normalised path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Exactly this path.
    Exact(String),
    /// This path and everything below it, on segment boundaries (`/orders` ≠ `/ordersX`).
    Prefix(String),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) if p == "/" => true,
            PathMatch::Prefix(p) => {
                path.starts_with(p.as_str())
                    && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p.len(),
        }
    }

    /// True when every path this matcher accepts is also accepted by `other`.
    pub fn is_within(&self, other: &PathMatch) -> bool {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => other.matches(p),
        }
    }
}

/// The match criteria of one route.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// Lower-case host without port; `None` matches any host.
    pub host: Option<String>,
    pub path: PathMatch,
    /// `None` matches any method.
    pub methods: Option<Vec<Method>>,
}

impl RouteMatch {
    fn matches(&self, host: Option<&str>, path: &str, method: &Method) -> bool {
        if let Some(want) = &self.host {
            match host {
                Some(h) if h.eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        if let Some(methods) = &self.methods {
            if !methods.contains(method) {
                return false;
            }
        }
        self.path.matches(path)
    }

    /// Ordering key: longer paths first, then exact before prefix, then host-specific first.
    fn precedence(&self) -> (std::cmp::Reverse<usize>, u8, u8) {
        let exact = u8::from(!matches!(self.path, PathMatch::Exact(_)));
        let host = u8::from(self.host.is_none());
        (std::cmp::Reverse(self.path.len()), exact, host)
    }
}

/// Routes ordered by precedence; `lookup` returns the first that matches.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// `(match, index into the snapshot's routes)`, sorted by precedence then declaration order.
    entries: Vec<(RouteMatch, usize)>,
}

impl RouteTable {
    /// Build the table; `matches[i]` belongs to route `i`.
    pub fn new(matches: Vec<RouteMatch>) -> Self {
        let mut entries: Vec<(RouteMatch, usize)> = matches.into_iter().zip(0..).collect();
        // Stable sort keeps declaration order among equals: the first declared route wins.
        entries.sort_by_key(|(m, _)| m.precedence());
        RouteTable { entries }
    }

    /// The route serving this request: the longest matching path wins.
    ///
    /// `host` is the request host without port; `path` must already be normalised.
    pub fn lookup(&self, host: Option<&str>, path: &str, method: &Method) -> Option<usize> {
        self.entries
            .iter()
            .find(|(m, _)| m.matches(host, path, method))
            .map(|(_, idx)| *idx)
    }

    /// Route indices in precedence order (for diagnostics).
    pub fn iter(&self) -> impl Iterator<Item = (&RouteMatch, usize)> {
        self.entries.iter().map(|(m, i)| (m, *i))
    }
}

/// The host of a `Host` header or `:authority`, without port, for matching.
pub fn host_without_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        // IPv6 literal: "[::1]:8080"
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_dots_slashes_and_unreserved_escapes() {
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("//orders///7").unwrap(), "/orders/7");
        assert_eq!(normalize_path("/public/../orders").unwrap(), "/orders");
        assert_eq!(normalize_path("/a/./b/").unwrap(), "/a/b/");
        assert_eq!(normalize_path("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize_path("/%6Frders").unwrap(), "/orders");
        assert_eq!(normalize_path("/public/%2e%2e/orders").unwrap(), "/orders");
        assert_eq!(normalize_path("/a%3bb").unwrap(), "/a%3Bb");
        assert_eq!(normalize_path("/caf%C3%A9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn refuses_dangerous_spellings() {
        assert_eq!(
            normalize_path("/orders%2F7"),
            Err(PathFault::EncodedSeparator)
        );
        assert_eq!(
            normalize_path("/orders%5c7"),
            Err(PathFault::EncodedSeparator)
        );
        assert_eq!(
            normalize_path("/orders\\7"),
            Err(PathFault::EncodedSeparator)
        );
        assert_eq!(normalize_path("/a%00"), Err(PathFault::Nul));
        assert_eq!(normalize_path("/a%zz"), Err(PathFault::BadPercentEncoding));
        assert_eq!(normalize_path("/a%2"), Err(PathFault::BadPercentEncoding));
        assert_eq!(normalize_path("/../etc"), Err(PathFault::ClimbsAboveRoot));
        assert_eq!(
            normalize_path("/a/../../b"),
            Err(PathFault::ClimbsAboveRoot)
        );
        assert_eq!(
            normalize_path("/public/..;/orders"),
            Err(PathFault::DotSegmentParameters)
        );
        assert_eq!(normalize_path("orders"), Err(PathFault::NotAbsolute));
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            RouteMatch {
                host: None,
                path: PathMatch::Prefix("/".into()),
                methods: None,
            },
            RouteMatch {
                host: Some("api.example.com".into()),
                path: PathMatch::Prefix("/orders".into()),
                methods: Some(vec![Method::GET, Method::HEAD]),
            },
            RouteMatch {
                host: None,
                path: PathMatch::Exact("/orders/health".into()),
                methods: None,
            },
            RouteMatch {
                host: None,
                path: PathMatch::Prefix("/orders/admin".into()),
                methods: None,
            },
        ])
    }

    #[test]
    fn longest_match_wins() {
        let t = table();
        let get = Method::GET;
        assert_eq!(
            t.lookup(Some("api.example.com"), "/orders/7", &get),
            Some(1)
        );
        assert_eq!(
            t.lookup(Some("api.example.com"), "/orders/admin/x", &get),
            Some(3)
        );
        assert_eq!(
            t.lookup(Some("api.example.com"), "/orders/health", &get),
            Some(2)
        );
        assert_eq!(t.lookup(None, "/other", &get), Some(0));
    }

    #[test]
    fn prefix_matches_on_segment_boundaries_only() {
        let t = table();
        assert_eq!(
            t.lookup(Some("api.example.com"), "/ordersX", &Method::GET),
            Some(0)
        );
        assert_eq!(
            t.lookup(Some("api.example.com"), "/orders", &Method::GET),
            Some(1)
        );
        assert_eq!(
            t.lookup(Some("api.example.com"), "/orders/", &Method::GET),
            Some(1)
        );
    }

    #[test]
    fn host_and_method_are_honoured() {
        let t = table();
        assert_eq!(
            t.lookup(Some("API.Example.com"), "/orders/7", &Method::HEAD),
            Some(1)
        );
        assert_eq!(
            t.lookup(Some("other.example.com"), "/orders/7", &Method::GET),
            Some(0)
        );
        assert_eq!(
            t.lookup(Some("api.example.com"), "/orders/7", &Method::POST),
            Some(0)
        );
        assert_eq!(t.lookup(None, "/orders/7", &Method::GET), Some(0));
    }

    #[test]
    fn no_match_without_catch_all() {
        let t = RouteTable::new(vec![RouteMatch {
            host: None,
            path: PathMatch::Exact("/healthz".into()),
            methods: None,
        }]);
        assert_eq!(t.lookup(None, "/healthz/", &Method::GET), None);
        assert_eq!(t.lookup(None, "/healthz", &Method::GET), Some(0));
    }

    #[test]
    fn strips_port_from_host() {
        assert_eq!(host_without_port("api.example.com:8443"), "api.example.com");
        assert_eq!(host_without_port("[::1]:8080"), "::1");
        assert_eq!(host_without_port("localhost"), "localhost");
    }
}
