//! The generated corpus: cross products of small lists, partners rotating on strides coprime
//! with the list lengths so every value meets many different partners.
use std::fmt::Write as _;

use bytes::Bytes;
use http_body_util::Empty;

use super::oracle::{split_absolute, AsSent};
use super::Cred;

pub type Headers = &'static [(&'static str, &'static str)];

pub const TARGETS: [&str; 40] = [
    "/orders/1",
    "/orders",
    "/ORDERS/1",
    "/Orders/1",
    "/%6Frders/1",
    "/%4Frders/1",
    "/%256Frders/1",
    "/public/../orders/1",
    "/public/%2e%2e/orders/1",
    "/public/%2E%2E/orders/1",
    "//orders/1",
    "/./orders/1",
    "/orders;x/1",
    "/orders/1;jsessionid=x",
    "/public;/../orders/1",
    "/public\\..\\orders/1",
    "/public%5c..%5corders/1",
    "/orders%2F1",
    "/public/..%2Forders/1",
    "x:/orders/1",
    "orders/1",
    "*",
    "http://admin.example.com/orders/7",
    "http://api.example.com/orders/7",
    "HTTP://admin.example.com/orders/7",
    "/orders/1?access_token=x",
    "/%2e%2e/orders",
    "/orders%00/1",
    "/orders%20/1",
    "/orders/1#frag",
    "/public/%252e%252e/orders/1",
    "/orders/.%2e/public",
    "/public/x",
    "/orders/",
    "/ordersX",
    "/orders/1?_method=DELETE",
    "/public/x?_method=DELETE",
    "/public/x?%5Fmethod=DELETE&a=1",
    "/orders.json",
    "/index.php/orders/1",
];

/// `Host` header variants; the first two are the plain API and admin hosts.
pub const HOSTS: [Headers; 13] = [
    &[("Host", "api.example.com")],
    &[("Host", "admin.example.com")],
    &[("Host", "ADMIN.example.com")],
    &[("Host", "admin.example.com.")],
    &[("Host", "admin.example.com:80")],
    &[("Host", "admin.example.com:8080")],
    &[("Host", "admin.example.com..")],
    &[],
    &[("Host", "api.example.com"), ("Host", "admin.example.com")],
    &[("Host", "admin.example.com"), ("Host", "api.example.com")],
    &[("Host", "admin.example.com@api.example.com")],
    &[("Host", "api.example.com, admin.example.com")],
    &[("Host", "")],
];

pub const METHODS: [&str; 11] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "delete", "Get",
    "PROPFIND",
];

/// Override, rewrite, identity and forwarding headers.
pub const HEADER_SETS: [Headers; 18] = [
    &[],
    &[("X-HTTP-Method-Override", "DELETE")],
    &[("X-HTTP-Method", "DELETE")],
    &[("X-Method-Override", "DELETE")],
    &[("X-HTTP-Method-Override", "PATCH")],
    &[("X-Original-URL", "/orders/42")],
    &[("X-Rewrite-URL", "/orders/42")],
    &[("X_Auth_Subject", "mallory")],
    &[("X-Auth-Subject", "mallory")],
    &[("x-auth-subject", "mallory"), ("x-auth-subject", "mallory")],
    &[("X-Auth_Subject", "mallory")],
    &[("X-Forwarded-User", "mallory")],
    &[("X-Remote-User", "mallory")],
    &[("Forwarded", "for=1.2.3.4;host=admin.example.com")],
    &[("X-Forwarded-Host", "admin.example.com")],
    &[("X-Forwarded-For", "1.2.3.4")],
    &[("X-Auth.Subject", "mallory")],
    &[("X-Original.URL", "/orders/42")],
];

const STANDARD_TARGETS: [&str; 5] = [
    "/orders/1",
    "/orders",
    "/Orders/1",
    "/public/x",
    "/orders/1?x=1",
];

/// HTTP/2 `:authority` variants; the first two are the plain API and admin hosts.
pub const AUTHORITIES: [&str; 6] = [
    "api.example.com",
    "admin.example.com",
    "ADMIN.example.com",
    "admin.example.com.",
    "admin.example.com:443",
    "api.example.com:8443",
];

/// A `host` header next to `:authority`, disagreeing with it for some authorities.
const H2_HOST_HEADERS: [Headers; 2] = [
    &[("host", "admin.example.com")],
    &[("host", "api.example.com")],
];

/// One HTTP/1.1 request, sent as raw bytes on its own connection.
pub struct Probe {
    pub method: &'static str,
    pub target: &'static str,
    pub host: Headers,
    pub extra: Headers,
    pub cred: Cred,
}

impl Probe {
    /// The bytes on the wire, with `authorization` as the `Authorization` value.
    pub fn wire(&self, authorization: Option<&str>) -> String {
        let mut s = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (name, value) in self.host.iter().chain(self.extra) {
            write!(s, "{name}: {value}\r\n").unwrap();
        }
        if let Some(value) = authorization {
            write!(s, "Authorization: {value}\r\n").unwrap();
        }
        let upper = self.method.to_ascii_uppercase();
        if matches!(
            upper.as_str(),
            "POST" | "PUT" | "PATCH" | "DELETE" | "PROPFIND"
        ) {
            s.push_str("Content-Length: 0\r\n");
        }
        s.push_str("Connection: close\r\n\r\n");
        s
    }

    /// The request for reports: escaped, the token named rather than shown.
    pub fn describe(&self) -> String {
        format!("{:?}", self.wire(self.cred.placeholder().as_deref()))
    }

    pub fn as_sent(&self) -> AsSent {
        let absolute = split_absolute(self.target);
        let mut hosts: Vec<String> = self.host.iter().map(|(_, v)| (*v).to_owned()).collect();
        hosts.extend(absolute.map(|(authority, _)| authority.to_owned()));
        let path = absolute.map_or(self.target, |(_, path)| path);
        AsSent::new(self.method, hosts, path)
    }
}

/// One HTTP/2 request, on its own TLS connection.
pub struct H2Probe {
    pub method: &'static str,
    pub authority: &'static str,
    pub path: &'static str,
    pub extra: Headers,
    pub cred: Cred,
}

impl H2Probe {
    pub fn request(
        &self,
        authorization: Option<&str>,
    ) -> Result<http::Request<Empty<Bytes>>, String> {
        let method = http::Method::from_bytes(self.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut builder = http::Request::builder()
            .method(method)
            .version(http::Version::HTTP_2)
            .uri(format!("https://{}{}", self.authority, self.path));
        for (name, value) in self.extra {
            builder = builder.header(*name, *value);
        }
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        builder.body(Empty::new()).map_err(|e| e.to_string())
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {} (HTTP/2, :authority {})",
            self.method, self.path, self.authority
        );
        for (name, value) in self.extra {
            write!(s, "; {name}: {value}").unwrap();
        }
        if let Some(value) = self.cred.placeholder() {
            write!(s, "; authorization: {value}").unwrap();
        }
        format!("{s:?}")
    }

    pub fn as_sent(&self) -> AsSent {
        let mut hosts = vec![self.authority.to_owned()];
        hosts.extend(
            self.extra
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
                .map(|(_, value)| (*value).to_owned()),
        );
        AsSent::new(self.method, hosts, self.path)
    }
}

/// 35 targets × 13 hosts, then 11 methods × 16 header sets, then 11 methods × 5 credentials:
/// 686 requests.
pub fn http1() -> Vec<Probe> {
    let mut corpus = Vec::new();
    for (t, &target) in TARGETS.iter().enumerate() {
        for (h, &host) in HOSTS.iter().enumerate() {
            corpus.push(Probe {
                method: METHODS[(3 * t + h) % METHODS.len()],
                target,
                host,
                extra: HEADER_SETS[(t + 7 * h) % HEADER_SETS.len()],
                cred: Cred::ALL[(t + 2 * h) % Cred::ALL.len()],
            });
        }
    }
    for (m, &method) in METHODS.iter().enumerate() {
        for (s, &extra) in HEADER_SETS.iter().enumerate() {
            corpus.push(Probe {
                method,
                target: STANDARD_TARGETS[(m + 2 * s) % STANDARD_TARGETS.len()],
                host: HOSTS[(m + s) % 2],
                extra,
                cred: Cred::ALL[(m + 3 * s) % Cred::ALL.len()],
            });
        }
    }
    for (m, &method) in METHODS.iter().enumerate() {
        for (c, &cred) in Cred::ALL.iter().enumerate() {
            corpus.push(Probe {
                method,
                target: "/orders/1",
                host: HOSTS[(m + c) % 2],
                extra: &[],
                cred,
            });
        }
    }
    corpus
}

/// Whether `http::Uri` takes `path` as it is (an h2 `:path` must).
fn uri_keeps(path: &str) -> bool {
    path.starts_with('/')
        && http::Uri::try_from(format!("https://api.example.com{path}"))
            .is_ok_and(|uri| uri.path_and_query().map(|p| p.as_str()) == Some(path))
}

/// Each target `http::Uri` accepts × 3 authorities, then every header set (plus a conflicting
/// `host`) × 2 methods, then every credential × the plain requests of each route.
pub fn http2() -> Vec<H2Probe> {
    let targets: Vec<&'static str> = TARGETS.iter().copied().filter(|t| uri_keeps(t)).collect();
    let header_sets: Vec<Headers> = HEADER_SETS
        .iter()
        .chain(&H2_HOST_HEADERS)
        .copied()
        .collect();
    let mut corpus = Vec::new();
    for (t, &path) in targets.iter().enumerate() {
        for k in 0..3 {
            corpus.push(H2Probe {
                method: METHODS[(t + 4 * k) % METHODS.len()],
                authority: AUTHORITIES[(t + 2 * k) % AUTHORITIES.len()],
                path,
                extra: header_sets[(2 * t + 5 * k) % header_sets.len()],
                cred: Cred::ALL[(t + 3 * k) % Cred::ALL.len()],
            });
        }
    }
    for (s, &extra) in header_sets.iter().enumerate() {
        for k in 0..2 {
            corpus.push(H2Probe {
                method: if k == 0 {
                    ["GET", "POST"][s % 2]
                } else {
                    METHODS[s % METHODS.len()]
                },
                authority: AUTHORITIES[(s + k) % 2],
                path: STANDARD_TARGETS[(s + k) % STANDARD_TARGETS.len()],
                extra,
                cred: Cred::ALL[(s + 2 * k) % Cred::ALL.len()],
            });
        }
    }
    for cred in Cred::ALL {
        for (method, path) in [
            ("GET", "/orders/1"),
            ("HEAD", "/orders"),
            ("POST", "/orders"),
            ("DELETE", "/orders/1"),
            ("delete", "/orders/1"),
            ("PATCH", "/orders/1"),
        ] {
            corpus.push(H2Probe {
                method,
                authority: AUTHORITIES[0],
                path,
                extra: &[],
                cred,
            });
        }
    }
    corpus
}

#[test]
fn the_http1_corpus_pairs_every_list_value_with_many_partners() {
    let corpus = http1();
    assert!((400..=900).contains(&corpus.len()), "{}", corpus.len());
    let count = |f: &dyn Fn(&Probe) -> bool| corpus.iter().filter(|p| f(p)).count();
    for method in METHODS {
        assert!(count(&|p| p.method == method) >= 30, "{method}");
        for cred in Cred::ALL {
            assert!(count(&|p| p.method == method && p.cred == cred) > 0);
        }
        for extra in HEADER_SETS {
            assert!(count(&|p| p.method == method && p.extra == extra) > 0);
        }
        for host in HOSTS {
            assert!(count(&|p| p.method == method && p.host == host) > 0);
        }
    }
    for target in TARGETS {
        for cred in Cred::ALL {
            assert!(count(&|p| p.target == target && p.cred == cred) > 0);
        }
    }
    for extra in HEADER_SETS {
        assert!(count(&|p| p.extra == extra) >= 30, "{extra:?}");
        for cred in Cred::ALL {
            assert!(count(&|p| p.extra == extra && p.cred == cred) > 0);
        }
    }
    for host in HOSTS {
        assert!(count(&|p| p.host == host) >= TARGETS.len(), "{host:?}");
    }
    for cred in Cred::ALL {
        assert!(count(&|p| p.cred == cred) >= 100, "{cred:?}");
    }
}

#[test]
fn the_http2_corpus_covers_authorities_methods_headers_and_credentials() {
    let corpus = http2();
    assert!((40..=200).contains(&corpus.len()), "{}", corpus.len());
    assert!(uri_keeps("/public\\..\\orders/1") && !uri_keeps("/orders/1#frag") && !uri_keeps("*"));
    for authority in AUTHORITIES {
        assert!(corpus.iter().filter(|p| p.authority == authority).count() >= 5);
    }
    for method in METHODS {
        assert!(corpus.iter().any(|p| p.method == method), "{method}");
    }
    for extra in HEADER_SETS.iter().chain(&H2_HOST_HEADERS) {
        assert!(corpus.iter().any(|p| p.extra == *extra), "{extra:?}");
    }
    for cred in Cred::ALL {
        assert!(corpus.iter().filter(|p| p.cred == cred).count() >= 10);
    }
    for probe in &corpus {
        assert!(
            probe.request(Some("Bearer x")).is_ok(),
            "{}",
            probe.describe()
        );
    }
}
