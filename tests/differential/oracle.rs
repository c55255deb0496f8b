//! What the route table requires of a request, judged from a backend's view of it.
use super::Cred;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Requirement {
    /// The catch-all route: anyone.
    Public,
    /// A token with this scope.
    Scope(&'static str),
    /// No route allows it: forwarding it at all is a violation.
    Never,
}

pub const ADMIN_HOST: &str = "admin.example.com";

/// Lower case, without a `:port` suffix (outside an IPv6 `[...]`) and one trailing `.`.
pub fn normalise_host(raw: &str) -> String {
    let mut host = raw.to_ascii_lowercase();
    if host.starts_with('[') {
        if let Some(end) = host.find(']') {
            host.truncate(end + 1);
        }
    } else {
        let cut = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => Some(name.len()),
            _ => None,
        };
        if let Some(cut) = cut {
            host.truncate(cut);
        }
    }
    if host.ends_with('.') {
        host.pop();
    }
    host
}

/// Percent-decoded once (bytes; invalid UTF-8 replaced), `\` as `/`, repeated `/` collapsed,
/// dot segments resolved (RFC 3986 §5.2.4), lower case (Express routes case-insensitively).
/// An absolute URI is judged by its path, and a relative path as if rooted: a backend that
/// routes on either still reached what that path names.
pub fn normalise_path(raw: &str) -> String {
    let decoded = percent_decode(raw).replace('\\', "/");
    let decoded = split_absolute(&decoded)
        .map(|(_, path)| path.to_owned())
        .unwrap_or(decoded);
    let rooted = if decoded.starts_with('/') {
        decoded
    } else {
        format!("/{decoded}")
    };
    let mut collapsed = String::with_capacity(rooted.len());
    for c in rooted.chars() {
        if c != '/' || !collapsed.ends_with('/') {
            collapsed.push(c);
        }
    }
    remove_dot_segments(&collapsed).to_lowercase()
}

/// One round of percent-decoding; a `%` without two hex digits stays as it is.
pub fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 §5.2.4 `remove_dot_segments`.
pub fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/" } else { &input[3..] };
            let cut = output.rfind('/').unwrap_or(0);
            output.truncate(cut);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

/// `scheme://authority/path…` as (authority, path from its `/`); `None` for anything else.
pub fn split_absolute(target: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = target.split_once("://")?;
    let mut chars = scheme.chars();
    let is_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let path = &rest[end..];
    Some((&rest[..end], if path.is_empty() { "/" } else { path }))
}

/// What the route table requires of a request the backend saw as (method, path, host).
pub fn requirement(method: &str, path: &str, host: &str) -> Requirement {
    let path = normalise_path(path);
    if path != "/orders" && !path.starts_with("/orders/") {
        return Requirement::Public;
    }
    if normalise_host(host) == ADMIN_HOST {
        return Requirement::Scope("admin");
    }
    match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" => Requirement::Scope("read:orders"),
        "POST" | "PUT" | "DELETE" => Requirement::Scope("write:orders"),
        _ => Requirement::Never,
    }
}

/// What is wrong with a served request of requirement `required` for `cred`, the backend
/// having seen identity `user` (`Some(None)`: none; `None`: not observable).
pub fn problems(required: Requirement, user: Option<Option<&str>>, cred: Cred) -> Vec<String> {
    let mut found = Vec::new();
    match required {
        Requirement::Public => {}
        Requirement::Never => found.push("no route allows this method on /orders".to_owned()),
        Requirement::Scope(scope) if !cred.holds(scope) => found.push(format!(
            "needs scope {scope}, which {} does not hold",
            cred.name()
        )),
        Requirement::Scope(_) => {}
    }
    let subject = cred.subject();
    match user {
        Some(Some(seen)) if Some(seen) != subject => found.push(format!(
            "the backend saw user {seen:?}, but the verified subject is {}",
            subject.map_or_else(|| "none".to_owned(), |s| format!("{s:?}"))
        )),
        Some(None) if required != Requirement::Public && subject.is_some() => found.push(format!(
            "protected, but the backend saw no user (expected {:?})",
            subject.unwrap_or_default()
        )),
        _ => {}
    }
    found
}

/// A request as the client sent it, for judging a served response without a readable view:
/// every host it names, its method and its path.
pub struct AsSent {
    pub method: String,
    pub hosts: Vec<String>,
    pub path: String,
}

impl AsSent {
    /// `target` without query and fragment; no host at all counts as the empty host.
    pub fn new(method: &str, mut hosts: Vec<String>, target: &str) -> AsSent {
        if hosts.is_empty() {
            hosts.push(String::new());
        }
        let path = target.split(['?', '#']).next().unwrap_or_default();
        AsSent {
            method: method.to_owned(),
            hosts,
            path: path.to_owned(),
        }
    }

    /// The requirement of each reading, strictest included.
    pub fn requirements(&self) -> Vec<Requirement> {
        let mut all: Vec<Requirement> = self
            .hosts
            .iter()
            .map(|host| requirement(&self.method, &self.path, host))
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[test]
fn hosts_are_lower_case_without_port_or_one_trailing_dot() {
    assert_eq!(
        normalise_host("ADMIN.example.com:8080"),
        "admin.example.com"
    );
    assert_eq!(normalise_host("admin.example.com:80"), "admin.example.com");
    assert_eq!(normalise_host("admin.example.com."), "admin.example.com");
    assert_eq!(normalise_host("admin.example.com.:80"), "admin.example.com");
    assert_eq!(normalise_host("admin.example.com.."), "admin.example.com.");
    assert_eq!(normalise_host("[::1]:8080"), "[::1]");
    assert_eq!(normalise_host("[::1]"), "[::1]");
    assert_eq!(
        normalise_host("admin.example.com@api.example.com"),
        "admin.example.com@api.example.com"
    );
    assert_eq!(normalise_host(""), "");
}

#[test]
fn dot_segments_are_removed_as_rfc_3986_says() {
    assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
    assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
    assert_eq!(remove_dot_segments("/../orders"), "/orders");
    assert_eq!(remove_dot_segments("/a/.."), "/");
    assert_eq!(remove_dot_segments("/a/."), "/a/");
    assert_eq!(remove_dot_segments("/..x/y"), "/..x/y");
}

#[test]
fn paths_are_decoded_once_unslashed_and_resolved() {
    for (raw, want) in [
        ("/orders/1", "/orders/1"),
        ("/ORDERS/1", "/orders/1"),
        ("/%6Frders/1", "/orders/1"),
        ("/%256Frders/1", "/%6frders/1"),
        ("/public/../orders/1", "/orders/1"),
        ("/public/%2E%2E/orders/1", "/orders/1"),
        ("/public\\..\\orders/1", "/orders/1"),
        ("/public%5c..%5corders/1", "/orders/1"),
        ("/public/..%2Forders/1", "/orders/1"),
        ("//orders//1", "/orders/1"),
        ("/./orders/1", "/orders/1"),
        ("/../orders", "/orders"),
        ("/orders/.%2e/public", "/public"),
        ("/public/%252e%252e/orders/1", "/public/%2e%2e/orders/1"),
        ("orders/1", "/orders/1"),
        ("http://admin.example.com/orders/7", "/orders/7"),
        ("*", "/*"),
    ] {
        assert_eq!(normalise_path(raw), want, "{raw}");
    }
    assert_eq!(percent_decode("/a%zz%4"), "/a%zz%4");
    assert_eq!(percent_decode("/%ff"), "/\u{fffd}");
}

#[test]
fn requirements_follow_the_route_table() {
    use Requirement::*;
    for (method, path, host, want) in [
        ("GET", "/orders/1", "api.example.com", Scope("read:orders")),
        (
            "head",
            "/orders",
            "api.example.com:80",
            Scope("read:orders"),
        ),
        ("Get", "/Orders/1", "", Scope("read:orders")),
        (
            "delete",
            "/orders/1",
            "api.example.com",
            Scope("write:orders"),
        ),
        (
            "POST",
            "/public/../orders",
            "api.example.com",
            Scope("write:orders"),
        ),
        ("PATCH", "/orders/1", "api.example.com", Never),
        ("PROPFIND", "/ORDERS", "api.example.com", Never),
        ("PATCH", "/orders/1", "ADMIN.example.com.", Scope("admin")),
        ("GET", "/orders/1", "admin.example.com:8080", Scope("admin")),
        (
            "GET",
            "/orders/1",
            "admin.example.com..",
            Scope("read:orders"),
        ),
        ("GET", "/ordersX", "admin.example.com", Public),
        ("GET", "/orders;x/1", "api.example.com", Public),
        ("TRACE", "/public/x", "api.example.com", Public),
    ] {
        assert_eq!(
            requirement(method, path, host),
            want,
            "{method} {path} {host}"
        );
    }
}

#[test]
fn problems_name_missing_scopes_and_foreign_identities() {
    use Requirement::*;
    let read = Scope("read:orders");
    assert!(problems(read, Some(Some("alice")), Cred::Alice).is_empty());
    assert!(problems(Scope("admin"), Some(Some("carol")), Cred::Carol).is_empty());
    assert!(problems(Public, Some(None), Cred::Anonymous).is_empty());
    assert!(problems(Public, Some(Some("bob")), Cred::Bob).is_empty());
    assert!(problems(Public, Some(None), Cred::Bob).is_empty());
    assert_eq!(
        problems(Scope("write:orders"), Some(Some("alice")), Cred::Alice).len(),
        1
    );
    assert_eq!(problems(read, Some(None), Cred::Eve).len(), 1);
    assert_eq!(
        problems(Public, Some(Some("mallory")), Cred::Anonymous).len(),
        1
    );
    assert_eq!(problems(Public, Some(Some("eve")), Cred::Eve).len(), 1);
    assert_eq!(problems(read, Some(Some("mallory")), Cred::Alice).len(), 1);
    assert_eq!(problems(read, Some(None), Cred::Carol).len(), 1);
    assert_eq!(problems(Never, Some(Some("carol")), Cred::Carol).len(), 1);
    assert_eq!(problems(Never, Some(Some("mallory")), Cred::Carol).len(), 2);
    // No view: only the scope is judged.
    assert!(problems(read, None, Cred::Alice).is_empty());
    assert_eq!(problems(read, None, Cred::Anonymous).len(), 1);
}

#[test]
fn a_request_as_sent_is_judged_on_every_host_it_names() {
    let sent = AsSent::new(
        "HEAD",
        vec!["api.example.com".into(), "admin.example.com".into()],
        "/orders/1?x=1#f",
    );
    assert_eq!(sent.path, "/orders/1");
    assert_eq!(
        sent.requirements(),
        [
            Requirement::Scope("admin"),
            Requirement::Scope("read:orders")
        ]
    );
    assert_eq!(AsSent::new("GET", Vec::new(), "*").hosts, [""]);
}
