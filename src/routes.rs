//! Request-path normalisation and the route table: which route serves `(host, path, method)`.
//!
//! Normalisation happens before matching and the normalised path is what the upstream receives,
//! so a client can never reach a protected path through a spelling that matched a public route.
//! Nothing here does I/O.

use http::Method;
use std::borrow::Cow;

/// Why a request path was refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathFault {
    /// The path does not start with `/`.
    NotAbsolute,
    /// An encoded `/` (`%2F`) or `\` (`%5C`), or a literal `\`.
    EncodedSeparator,
    /// A NUL byte, literal or encoded.
    Nul,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// A `..` segment that would climb above `/`.
    ClimbsAboveRoot,
    /// A dot segment carrying path parameters (`..;x`), which some servlet containers resolve.
    DotSegmentParameters,
    /// The request target is not valid UTF-8.
    NotUtf8,
    /// A segment carries path parameters (`/admin;x/users`), which servlet containers strip
    /// before mapping; refused unless the route says `path_parameters: allow`.
    Parameters,
    /// Upper case that a case-insensitive backend would route to another route.
    CaseAmbiguous,
    /// A trailing `/` or a format suffix (`/x.json`) that backends disagree about, and that
    /// selects another route depending on the reading.
    SuffixAmbiguous,
    /// A `.php` segment followed by more path (`/index.php/admin`): PHP front controllers route
    /// on what follows; refused unless the route says `script_path_info: allow`.
    ScriptPathInfo,
    /// Decision mode: the described path is not in the normal form the route matched (dot
    /// segments, `//`, encodings the gateway would rewrite). The ingress forwards it as sent,
    /// so a backend could read it as another path.
    NotCanonical,
}

impl PathFault {
    /// Every fault (the label values of `portcullis_rejections_total`, initialised at 0).
    pub const ALL: [Self; 12] = [
        Self::NotAbsolute,
        Self::EncodedSeparator,
        Self::Nul,
        Self::BadPercentEncoding,
        Self::ClimbsAboveRoot,
        Self::DotSegmentParameters,
        Self::NotUtf8,
        Self::Parameters,
        Self::CaseAmbiguous,
        Self::SuffixAmbiguous,
        Self::ScriptPathInfo,
        Self::NotCanonical,
    ];

    /// A stable, bounded label for logs and metrics (the request's reason).
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAbsolute => "path_not_absolute",
            Self::EncodedSeparator => "path_encoded_separator",
            Self::Nul => "path_nul",
            Self::BadPercentEncoding => "path_bad_percent_encoding",
            Self::ClimbsAboveRoot => "path_climbs_above_root",
            Self::DotSegmentParameters => "path_dot_segment_parameters",
            Self::NotUtf8 => "path_not_utf8",
            Self::Parameters => "path_parameters",
            Self::CaseAmbiguous => "path_case_ambiguous",
            Self::SuffixAmbiguous => "path_suffix_ambiguous",
            Self::ScriptPathInfo => "path_script_info",
            Self::NotCanonical => "path_not_canonical",
        }
    }
}

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
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathFault> {
    if !raw.starts_with('/') {
        return Err(PathFault::NotAbsolute);
    }
    // Most paths are normal already: no copy, no per-segment work.
    if is_normal(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    normalize_full(raw).map(Cow::Owned)
}

/// [`normalize_path`] without its fast path; `raw` starts with `/`.
fn normalize_full(raw: &str) -> Result<String, PathFault> {
    // Segments are decoded straight into `out`; `starts` remembers where each begins, so `..`
    // truncates instead of allocating: two allocations however many segments the path has.
    let mut out = String::with_capacity(raw.len());
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing_slash = false;
    for raw_segment in raw[1..].split('/') {
        trailing_slash = raw_segment.is_empty();
        if raw_segment.is_empty() {
            continue;
        }
        let start = out.len();
        out.push('/');
        decode_segment_into(raw_segment, &mut out)?;
        match &out[start + 1..] {
            "." => {
                out.truncate(start);
                trailing_slash = true;
            }
            ".." => {
                out.truncate(start);
                let previous = starts.pop().ok_or(PathFault::ClimbsAboveRoot)?;
                out.truncate(previous);
                trailing_slash = true;
            }
            s if is_dot_segment_with_parameters(s) => return Err(PathFault::DotSegmentParameters),
            _ => starts.push(start),
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// True when a segment other than the last ends in `.php`, `.phtml` or `.phar` (any case): PHP
/// front controllers (Symfony, Laravel, CodeIgniter) route `/index.php/admin/users` as
/// `/admin/users`.
pub fn has_script_path_info(path: &str) -> bool {
    if !path.contains('.') {
        return false;
    }
    let mut segments = path.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none_or(|next| next.is_empty());
        let name = segment.split(';').next().unwrap_or_default().as_bytes();
        let is_script = [&b".php"[..], b".phtml", b".phar"].iter().any(|ext| {
            name.len() > ext.len() && name[name.len() - ext.len()..].eq_ignore_ascii_case(ext)
        });
        if !last && is_script {
            return true;
        }
    }
    false
}

/// True when `path` ends in `/` or its last segment has a `.`: the forms that lenient matching
/// (`/x/`, `/x.json` as `/x`) may route differently from strict matching.
pub fn has_suffix_form(path: &str) -> bool {
    (path.len() > 1 && path.ends_with('/'))
        || path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.'))
}

/// `path` with the escapes that .NET and Java case-insensitive comparisons fold to ASCII letters
/// (`%C5%BF` ſ → s, `%C4%B1` ı → i, `%E2%84%AA` K → k) replaced by those letters; `None` when it
/// has none (the common case costs no allocation).
pub fn with_unicode_folds(path: &str) -> Option<String> {
    const FOLDS: [(&str, &str); 3] = [("%C5%BF", "s"), ("%C4%B1", "i"), ("%E2%84%AA", "k")];
    // Most paths have no escape at all: one byte scan, no substring searches.
    if !path.contains('%') || !FOLDS.iter().any(|(e, _)| path.contains(e)) {
        return None;
    }
    let mut out = path.to_owned();
    for (escape, letter) in FOLDS {
        out = out.replace(escape, letter);
    }
    Some(out)
}

/// The path as servlet containers (Tomcat, Jetty, Spring) map it: the `;parameters` of every
/// segment removed (`/admin;x/users` → `/admin/users`), empty segments dropped. `None` when the
/// path has no parameters (an encoded `%3B` is not one). Only called when the path has a `;`.
pub fn without_path_parameters(path: &str) -> Option<String> {
    if !path.contains(';') {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        let name = segment.split(';').next().unwrap_or_default();
        // `/a/;x` is `/a/` to Tomcat: an empty last name leaves a trailing slash.
        trailing_slash = name.is_empty();
        if !name.is_empty() {
            out.push('/');
            out.push_str(name);
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Some(out)
}

/// True when [`normalize_path`] would return `raw` unchanged: no escape, backslash or NUL, no
/// empty segment but a trailing one, no dot segment (with or without parameters).
fn is_normal(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut start = 1;
    for i in 1..=bytes.len() {
        match bytes.get(i) {
            Some(b'%' | b'\\' | 0 | 0x80..) => return false,
            Some(b'/') | None => {
                let segment = &bytes[start..i];
                if segment.is_empty() && i < bytes.len() {
                    return false;
                }
                let head = segment.split(|&b| b == b';').next().unwrap_or_default();
                if head == b"." || head == b".." {
                    return false;
                }
                start = i + 1;
            }
            Some(_) => {}
        }
    }
    true
}

fn is_dot_segment_with_parameters(segment: &str) -> bool {
    match segment.split_once(';') {
        Some((head, _)) => head == "." || head == "..",
        None => false,
    }
}

/// Append `segment`, decoded as [`normalize_path`] says, to `out`.
fn decode_segment_into(segment: &str, out: &mut String) -> Result<(), PathFault> {
    let bytes = segment.as_bytes();
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
                    c if is_unreserved(c) || is_plain_in_segment(c) => out.push(char::from(c)),
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
            b if b >= 0x80 => {
                // Raw UTF-8 is what `%XX` would decode to: one spelling, the encoded one.
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(b & 0x0F)]));
                i += 1;
            }
            _ => {
                // Copy a run of plain ASCII bytes at once.
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b'%' | b'\\' | 0 | 0x80..) {
                    i += 1;
                }
                out.push_str(&segment[start..i]);
            }
        }
    }
    Ok(())
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

/// Characters a path segment may carry literally (RFC 3986 §3.3 `pchar`) and that Go, Werkzeug,
/// Django, Tomcat and Laravel decode before routing: `%3A` is routed as `:`, so it is forwarded
/// as `:`. Not `;` (path parameters), not `+` (some apps `urldecode` paths into a space).
fn is_plain_in_segment(c: u8) -> bool {
    matches!(
        c,
        b':' | b'@' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b',' | b'='
    )
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
    /// Compared as bytes: with `fold_case`, ASCII letters compare case-insensitively (the way
    /// Express, ASP.NET and IIS route), so `/ORDERS` cannot slip past an `/orders` route.
    /// With `lenient`, a trailing `/` and a format suffix are the same resource (see below);
    /// strictly, the path must equal an exact route, or continue a prefix with `/`.
    fn matches(&self, path: &str, fold_case: bool, lenient: bool) -> bool {
        let eq = |a: &[u8], b: &[u8]| {
            if fold_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let path = path.as_bytes();
        // What may follow the configured path and still be it to common backends: nothing, a
        // trailing `/` (Express, Laravel, Rails, Spring ≤ 5 serve `/admin/` as `/admin`) or a
        // format suffix in the last segment (`/orders.json`: Rails, Spring ≤ 5.2).
        let suffix_is_same_resource = |rest: &[u8]| match rest.first() {
            None => true,
            Some(b'/') => rest.len() == 1,
            Some(b'.') => !rest.contains(&b'/'),
            Some(_) => false,
        };
        match self {
            PathMatch::Exact(p) if !lenient => eq(path, p.as_bytes()),
            PathMatch::Prefix(p) if !lenient && p != "/" => {
                let p = p.as_bytes();
                path.len() >= p.len()
                    && eq(&path[..p.len()], p)
                    && matches!(path.get(p.len()), None | Some(b'/'))
            }
            PathMatch::Exact(p) => {
                let p = p.as_bytes();
                let p = p.strip_suffix(b"/").filter(|s| !s.is_empty()).unwrap_or(p);
                path.len() >= p.len()
                    && eq(&path[..p.len()], p)
                    && suffix_is_same_resource(&path[p.len()..])
            }
            PathMatch::Prefix(p) if p == "/" => true,
            PathMatch::Prefix(p) => {
                let p = p.as_bytes();
                path.len() >= p.len()
                    && eq(&path[..p.len()], p)
                    && match path.get(p.len()) {
                        None | Some(b'/') => true,
                        Some(b'.') => !path[p.len()..].contains(&b'/'),
                        Some(_) => false,
                    }
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
            PathMatch::Exact(p) | PathMatch::Prefix(p) => other.matches(p, true, false),
        }
    }
}

/// The match criteria of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Lower-case host without port or trailing dot; `None` matches any host.
    pub host: Option<String>,
    pub path: PathMatch,
    /// Compare the path ASCII-case-insensitively (for backends that route that way).
    pub case_insensitive: bool,
    /// `None` matches any method.
    pub methods: Option<Vec<Method>>,
}

/// How `explain` names a route's match: `host h, path_prefix /p, methods GET,HEAD`.
impl std::fmt::Display for RouteMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(host) = &self.host {
            write!(f, "host {host}, ")?;
        }
        match &self.path {
            PathMatch::Exact(p) => write!(f, "path {p}")?,
            PathMatch::Prefix(p) => write!(f, "path_prefix {p}")?,
        }
        if self.case_insensitive {
            f.write_str(", case_insensitive")?;
        }
        if let Some(methods) = &self.methods {
            let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
            write!(f, ", methods {}", names.join(","))?;
        }
        Ok(())
    }
}

impl RouteMatch {
    /// Host and path, without the method: what selects a route's group.
    fn matches_location(&self, host: Option<&str>, path: &str, mode: Mode) -> bool {
        if let Some(want) = &self.host {
            match host {
                Some(h) if h.eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        self.path
            .matches(path, self.case_insensitive || mode.fold, !mode.strict)
    }

    fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    /// Same host, path and case rule: routes that differ only in their methods form a group.
    pub fn same_location(&self, other: &RouteMatch) -> bool {
        self.host == other.host
            && self.path == other.path
            && self.case_insensitive == other.case_insensitive
    }

    /// Ordering key: longer paths first, then exact before prefix, then host-specific first.
    fn precedence(&self) -> (std::cmp::Reverse<usize>, u8, u8) {
        let exact = u8::from(!matches!(self.path, PathMatch::Exact(_)));
        let host = u8::from(self.host.is_none());
        (std::cmp::Reverse(self.path.len()), exact, host)
    }
}

/// What the route table says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// This route (an index into the snapshot's routes) serves it.
    Route(usize),
    /// The most specific host and path have routes, none for this method. The value is the
    /// `Allow` header (RFC 9110 §15.5.6), computed when the table was built. The request never
    /// falls through to a shorter prefix because of its method.
    MethodNotAllowed(std::sync::Arc<str>),
    NoRoute,
}

/// Routes ordered by precedence; the most specific host and path decide, then the method.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// `(match, index into the snapshot's routes, group)`, sorted by precedence then declaration
    /// order.
    entries: Vec<(RouteMatch, usize, usize)>,
    groups: Vec<Group>,
    upper_case_routes: bool,
}

/// How a lookup compares paths.
#[derive(Debug, Clone, Copy, Default)]
struct Mode {
    /// Every route case-insensitive, as a case-folding backend matches.
    fold: bool,
    /// No trailing-slash or format-suffix equivalence.
    strict: bool,
}

/// Routes with the same host and path, differing in their methods.
#[derive(Debug, Clone, Default)]
struct Group {
    /// Indices into `entries`, in precedence order.
    members: Vec<usize>,
    /// The `Allow` value when no route of the group serves every method.
    allow: Option<std::sync::Arc<str>>,
}

impl RouteTable {
    /// Build the table; `matches[i]` belongs to route `i`.
    pub fn new(matches: Vec<RouteMatch>) -> Self {
        let mut sorted: Vec<(RouteMatch, usize)> = matches.into_iter().zip(0..).collect();
        // Stable sort keeps declaration order among equals: the first declared route wins.
        sorted.sort_by_key(|(m, _)| m.precedence());
        // Per group: its first match, members, listed methods, and whether one lists none.
        let mut groups: Vec<(RouteMatch, Vec<usize>, Vec<Method>, bool)> = Vec::new();
        let mut entries = Vec::with_capacity(sorted.len());
        for (m, idx) in sorted {
            let group = match groups.iter().position(|(g, ..)| g.same_location(&m)) {
                Some(g) => g,
                None => {
                    groups.push((m.clone(), Vec::new(), Vec::new(), false));
                    groups.len() - 1
                }
            };
            groups[group].1.push(entries.len());
            match &m.methods {
                Some(list) => groups[group].2.extend(list.iter().cloned()),
                None => groups[group].3 = true,
            }
            entries.push((m, idx, group));
        }
        let groups = groups
            .into_iter()
            .map(|(_, members, mut methods, any)| Group {
                members,
                allow: (!any).then(|| {
                    methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                    methods.dedup();
                    let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
                    std::sync::Arc::from(list.join(", "))
                }),
            })
            .collect();
        let upper_case_routes = entries.iter().any(|(m, _, _)| {
            !m.case_insensitive
                && match &m.path {
                    PathMatch::Exact(p) | PathMatch::Prefix(p) => {
                        p.bytes().any(|b| b.is_ascii_uppercase())
                    }
                }
        });
        RouteTable {
            entries,
            groups,
            upper_case_routes,
        }
    }

    /// The route serving this request.
    ///
    /// The first entry (by precedence) whose host and path match picks the group; within it, a
    /// route listing the method wins over one listing none; if none takes the method, the
    /// request is refused with 405 rather than handed to a less specific route.
    /// `host` is the canonical request host; `path` must already be normalised.
    pub fn lookup(&self, host: Option<&str>, path: &str, method: &Method) -> Lookup {
        self.lookup_with(host, path, method, Mode::default())
    }

    /// [`Self::lookup`] as a backend that matches every path case-insensitively would choose.
    pub fn lookup_folded(&self, host: Option<&str>, path: &str, method: &Method) -> Lookup {
        let mode = Mode {
            fold: true,
            ..Mode::default()
        };
        self.lookup_with(host, path, method, mode)
    }

    /// [`Self::lookup`] as a backend for which `/x/` and `/x.json` are not `/x` would choose.
    pub fn lookup_strict(&self, host: Option<&str>, path: &str, method: &Method) -> Lookup {
        let mode = Mode {
            strict: true,
            ..Mode::default()
        };
        self.lookup_with(host, path, method, mode)
    }

    /// Some route that is not case-insensitive has upper case in its path: a lower-case request
    /// may then be another route to a case-folding backend.
    pub fn has_upper_case_routes(&self) -> bool {
        self.upper_case_routes
    }

    fn lookup_with(&self, host: Option<&str>, path: &str, method: &Method, mode: Mode) -> Lookup {
        let Some(group) = self
            .entries
            .iter()
            .find(|(m, _, _)| m.matches_location(host, path, mode))
            .map(|(_, _, g)| *g)
        else {
            return Lookup::NoRoute;
        };
        let Some(group) = self.groups.get(group) else {
            return Lookup::NoRoute;
        };
        let members = || group.members.iter().filter_map(|&e| self.entries.get(e));
        let listing =
            |method: &Method| members().find(|(m, _, _)| m.methods.is_some() && m.allows(method));
        // Go, Express, Flask, Spring and Tomcat answer HEAD with the GET handler: a HEAD no
        // route lists is the GET route's.
        let listed = listing(method).or_else(|| {
            (*method == Method::HEAD)
                .then(|| listing(&Method::GET))
                .flatten()
        });
        if let Some((_, idx, _)) =
            listed.or_else(|| members().find(|(m, _, _)| m.methods.is_none()))
        {
            return Lookup::Route(*idx);
        }
        match &group.allow {
            Some(allow) => Lookup::MethodNotAllowed(std::sync::Arc::clone(allow)),
            None => Lookup::NoRoute,
        }
    }

    /// Route indices in precedence order (for diagnostics).
    pub fn iter(&self) -> impl Iterator<Item = (&RouteMatch, usize)> {
        self.entries.iter().map(|(m, i, _)| (m, *i))
    }
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
    fn path_parameters_are_removed_as_servlet_containers_do() {
        assert_eq!(without_path_parameters("/orders/1"), None);
        assert_eq!(
            without_path_parameters("/admin;x/users").as_deref(),
            Some("/admin/users")
        );
        assert_eq!(
            without_path_parameters("/a/1;jsessionid=x").as_deref(),
            Some("/a/1")
        );
        assert_eq!(without_path_parameters("/;x/a/").as_deref(), Some("/a/"));
        assert_eq!(without_path_parameters("/a/;x").as_deref(), Some("/a/"));
        assert_eq!(without_path_parameters("/;x").as_deref(), Some("/"));
        assert_eq!(without_path_parameters("/a%3Bb"), None);
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_normalisation() {
        for raw in [
            "/",
            "/a",
            "/a/",
            "/a/b",
            "/a;x/b",
            "/a/b/",
            "//a",
            "/a//b",
            "/a/.",
            "/a/..",
            "/./a",
            "/a/./",
            "/a%41",
            "/café/x",
            "/.well-known/x",
            "/a..b/.c",
            "/a/..;x",
            "/a/.;x",
            "/x/",
        ] {
            let fast = is_normal(raw).then(|| raw.to_owned());
            if let Some(fast) = fast {
                assert_eq!(Ok(fast), normalize_full(raw), "{raw}");
            }
        }
        assert!(is_normal("/orders/7") && is_normal("/") && is_normal("/a/"));
        assert!(!is_normal("/a//b") && !is_normal("/a/./b") && !is_normal("/%6F"));
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

    fn route(host: Option<&str>, path: PathMatch, methods: Option<Vec<Method>>) -> RouteMatch {
        RouteMatch {
            host: host.map(str::to_owned),
            path,
            case_insensitive: false,
            methods,
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route(None, PathMatch::Prefix("/".into()), None),
            route(
                Some("api.example.com"),
                PathMatch::Prefix("/orders".into()),
                Some(vec![Method::GET, Method::HEAD]),
            ),
            route(None, PathMatch::Exact("/orders/health".into()), None),
            route(None, PathMatch::Prefix("/orders/admin".into()), None),
        ])
    }

    #[test]
    fn longest_match_wins() {
        let t = table();
        let get = Method::GET;
        let at = |host, path| t.lookup(Some(host), path, &get);
        assert_eq!(at("api.example.com", "/orders/7"), Lookup::Route(1));
        assert_eq!(at("api.example.com", "/orders/admin/x"), Lookup::Route(3));
        assert_eq!(at("api.example.com", "/orders/health"), Lookup::Route(2));
        assert_eq!(t.lookup(None, "/other", &get), Lookup::Route(0));
    }

    #[test]
    fn prefix_matches_on_segment_boundaries_only() {
        let t = table();
        let at = |path| t.lookup(Some("api.example.com"), path, &Method::GET);
        assert_eq!(at("/ordersX"), Lookup::Route(0));
        assert_eq!(at("/orders"), Lookup::Route(1));
        assert_eq!(at("/orders/"), Lookup::Route(1));
    }

    #[test]
    fn host_is_honoured() {
        let t = table();
        assert_eq!(
            t.lookup(Some("API.Example.com"), "/orders/7", &Method::HEAD),
            Lookup::Route(1)
        );
        assert_eq!(
            t.lookup(Some("other.example.com"), "/orders/7", &Method::GET),
            Lookup::Route(0)
        );
        assert_eq!(t.lookup(None, "/orders/7", &Method::GET), Lookup::Route(0));
    }

    #[test]
    fn an_unlisted_method_is_405_and_never_falls_through_to_a_shorter_prefix() {
        let t = table();
        assert_eq!(
            t.lookup(Some("api.example.com"), "/orders/7", &Method::POST),
            Lookup::MethodNotAllowed("GET, HEAD".into())
        );
    }

    #[test]
    fn routes_differing_only_in_methods_form_one_group() {
        let orders = || PathMatch::Prefix("/orders".into());
        let t = RouteTable::new(vec![
            route(None, PathMatch::Prefix("/".into()), None),
            route(None, orders(), Some(vec![Method::GET, Method::HEAD])),
            route(None, orders(), Some(vec![Method::POST, Method::DELETE])),
        ]);
        let at = |m: Method| t.lookup(None, "/orders/1", &m);
        assert_eq!(at(Method::GET), Lookup::Route(1));
        assert_eq!(at(Method::DELETE), Lookup::Route(2));
        assert_eq!(
            at(Method::PATCH),
            Lookup::MethodNotAllowed("DELETE, GET, HEAD, POST".into())
        );
        assert_eq!(
            at(Method::OPTIONS),
            Lookup::MethodNotAllowed("DELETE, GET, HEAD, POST".into())
        );
        // A route without methods in the group takes what the others do not list.
        let t = RouteTable::new(vec![
            route(None, orders(), None),
            route(None, orders(), Some(vec![Method::GET])),
        ]);
        assert_eq!(t.lookup(None, "/orders", &Method::GET), Lookup::Route(1));
        assert_eq!(t.lookup(None, "/orders", &Method::PATCH), Lookup::Route(0));
    }

    #[test]
    fn case_insensitive_routes_fold_ascii_case() {
        let mut ci = route(None, PathMatch::Prefix("/orders".into()), None);
        ci.case_insensitive = true;
        let t = RouteTable::new(vec![route(None, PathMatch::Prefix("/".into()), None), ci]);
        assert_eq!(t.lookup(None, "/ORDERS/1", &Method::GET), Lookup::Route(1));
        assert_eq!(t.lookup(None, "/Orders", &Method::GET), Lookup::Route(1));
        assert_eq!(t.lookup(None, "/OrdersX", &Method::GET), Lookup::Route(0));
        // Non-ASCII bytes never panic on a slice boundary.
        assert_eq!(t.lookup(None, "/ordé", &Method::GET), Lookup::Route(0));
        let t = table();
        assert_eq!(
            t.lookup(Some("api.example.com"), "/ORDERS/1", &Method::GET),
            Lookup::Route(0)
        );
    }

    #[test]
    fn no_match_without_catch_all() {
        let t = RouteTable::new(vec![route(None, PathMatch::Exact("/healthz".into()), None)]);
        assert_eq!(t.lookup(None, "/healthzX", &Method::GET), Lookup::NoRoute);
        assert_eq!(t.lookup(None, "/healthz/x", &Method::GET), Lookup::NoRoute);
        assert_eq!(t.lookup(None, "/healthz", &Method::GET), Lookup::Route(0));
    }

    #[test]
    fn trailing_slashes_and_format_suffixes_are_the_same_resource() {
        // Express, Laravel, Rails and Spring ≤ 5 serve `/admin/` and `/admin.json` with the
        // `/admin` handler: so does the route table, so a public catch-all never gets them.
        let t = RouteTable::new(vec![
            route(None, PathMatch::Prefix("/".into()), None),
            route(None, PathMatch::Exact("/admin".into()), None),
            route(None, PathMatch::Prefix("/orders".into()), None),
        ]);
        for (path, want) in [
            ("/admin/", 1),
            ("/admin.json", 1),
            ("/admin.", 1),
            ("/admin/x", 0),
            ("/admin.v2/x", 0),
            ("/adminx", 0),
            ("/orders.json", 2),
            ("/orders/7.json", 2),
            ("/orders.v1/7", 0),
        ] {
            assert_eq!(
                t.lookup(None, path, &Method::GET),
                Lookup::Route(want),
                "{path}"
            );
        }
    }

    #[test]
    fn strict_lookup_keeps_suffixes_apart_so_ambiguity_can_be_seen() {
        // A public `path: /` and a protected `path_prefix: /`: `/.env` is `/` leniently, the
        // protected prefix strictly (Go's FileServer serves the file).
        let t = RouteTable::new(vec![
            route(None, PathMatch::Exact("/".into()), None),
            route(None, PathMatch::Prefix("/".into()), None),
        ]);
        assert_eq!(t.lookup(None, "/.env", &Method::GET), Lookup::Route(0));
        assert_eq!(
            t.lookup_strict(None, "/.env", &Method::GET),
            Lookup::Route(1)
        );
        assert!(has_suffix_form("/.env") && has_suffix_form("/a/") && has_suffix_form("/a/b.c"));
        assert!(!has_suffix_form("/") && !has_suffix_form("/a.b/c"));
    }

    #[test]
    fn upper_case_route_paths_are_flagged_and_unicode_folds_spelled_out() {
        let mut t = table();
        assert!(!t.has_upper_case_routes());
        t = RouteTable::new(vec![route(
            None,
            PathMatch::Prefix("/Account".into()),
            None,
        )]);
        assert!(t.has_upper_case_routes());
        assert_eq!(
            t.lookup_folded(None, "/account/manage", &Method::GET),
            Lookup::Route(0)
        );
        assert_eq!(
            t.lookup(None, "/account/manage", &Method::GET),
            Lookup::NoRoute
        );
        assert_eq!(
            with_unicode_folds("/u%C5%BFers/%C4%B1d/%E2%84%AAey").as_deref(),
            Some("/users/id/key")
        );
        assert_eq!(with_unicode_folds("/users"), None);
    }

    #[test]
    fn path_characters_are_decoded_and_raw_utf8_encoded() {
        assert_eq!(normalize_path("/users%3Asearch").unwrap(), "/users:search");
        assert_eq!(normalize_path("/a%40b%21%2C%3D").unwrap(), "/a@b!,=");
        assert_eq!(normalize_path("/a%2Bb%3Bc%25d").unwrap(), "/a%2Bb%3Bc%25d");
        assert_eq!(normalize_path("/café").unwrap(), "/caf%C3%A9");
        assert_eq!(normalize_path("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn head_is_the_get_route_when_no_route_lists_head() {
        let t = RouteTable::new(vec![
            route(None, PathMatch::Prefix("/reports".into()), None),
            route(
                None,
                PathMatch::Prefix("/reports".into()),
                Some(vec![Method::GET]),
            ),
        ]);
        assert_eq!(
            t.lookup(None, "/reports/1", &Method::HEAD),
            Lookup::Route(1)
        );
        assert_eq!(
            t.lookup(None, "/reports/1", &Method::POST),
            Lookup::Route(0)
        );
    }

    #[test]
    fn folded_lookup_is_what_a_case_insensitive_backend_picks() {
        let t = table();
        let get = Method::GET;
        assert_eq!(
            t.lookup(Some("api.example.com"), "/ORDERS/7", &get),
            Lookup::Route(0)
        );
        assert_eq!(
            t.lookup_folded(Some("api.example.com"), "/ORDERS/7", &get),
            Lookup::Route(1)
        );
    }

    #[test]
    fn script_path_info_is_a_php_segment_with_more_after_it() {
        assert!(has_script_path_info("/index.php/admin/users"));
        assert!(has_script_path_info("/app/INDEX.PHP/x"));
        assert!(has_script_path_info("/index.php;x/y"));
        assert!(!has_script_path_info("/index.php"));
        assert!(!has_script_path_info("/index.php/"));
        assert!(!has_script_path_info("/a/.php/b"));
        assert!(!has_script_path_info("/orders/7"));
    }
}
