//! The backend sees exactly what was authorised: request targets, hosts, methods and headers
//! that a legacy backend could read differently from the gateway are refused or canonicalised.
//! Each test is one row of the hardening table (issue #10), sent as raw bytes so no client
//! library normalises anything on the way.

use std::net::SocketAddr;

use crate::support::*;
use serde_json::Value;

/// The route table of the issue: a public catch-all, an admin host route, and `/orders` read and
/// write routes, plus opt-in routes for method overrides and path parameters.
fn config(echo: SocketAddr, extra: &str) -> String {
    format!(
        r#"
listeners:
  - name: test
    address: "{{listen}}"
issuers:
  - id: corp
    issuer: "{ISSUER}"
    jwks_file: jwks.json
    audiences: ["{AUDIENCE}"]
    algorithms: [RS256]
upstreams:
  - id: echo
    url: "http://{echo}"
identity:
  headers: {{ X-Auth-Subject: sub, X-Auth-Scopes: scope }}
{extra}
routes:
  - id: catch-all
    match: {{ path_prefix: / }}
    upstream: echo
    auth: public
  - id: admin
    match: {{ host: admin.example.com, path_prefix: /orders }}
    upstream: echo
    auth: {{ scopes: {{ all_of: [admin] }} }}
  - id: orders-read
    match: {{ path_prefix: /orders, methods: [GET, HEAD] }}
    upstream: echo
    auth: {{ scopes: {{ all_of: ["read:orders"] }} }}
  - id: orders-write
    match: {{ path_prefix: /orders, methods: [POST, PUT, DELETE] }}
    upstream: echo
    auth: {{ scopes: {{ all_of: ["write:orders"] }} }}
  - id: tickets-read
    match: {{ path_prefix: /tickets, methods: [GET, POST] }}
    upstream: echo
    auth: {{ scopes: {{ all_of: ["read:tickets"] }} }}
  - id: tickets-delete
    match: {{ path_prefix: /tickets, methods: [DELETE] }}
    upstream: echo
    method_override: allow
    auth: {{ scopes: {{ all_of: ["delete:tickets"] }} }}
  - id: servlet
    match: {{ path_prefix: /app, path_parameters: allow }}
    upstream: echo
    auth: public
  - id: express
    match: {{ path_prefix: /reports, case_insensitive: true }}
    upstream: echo
    auth: {{ scopes: {{ all_of: ["read:reports"] }} }}
"#
    )
}

async fn gateway(extra: &str) -> TestGateway {
    let echo = echo_upstream().await;
    TestGateway::start(&config(echo, extra))
}

fn token(scope: &str) -> String {
    Issuer::rsa(&claims(scope))
}

/// A raw HTTP/1.1 exchange; the answer and, when the echo upstream served it, what it received.
struct Exchange {
    status: u16,
    head: String,
    echoed: Option<Echoed>,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn echoed(&self) -> &Echoed {
        self.echoed
            .as_ref()
            .unwrap_or_else(|| panic!("not forwarded: {} {}", self.status, self.head))
    }

    /// Refused by the gateway, never forwarded: the gateway's JSON body, not the echo's.
    fn assert_refused(&self, status: u16, reason_hint: &str) {
        assert_eq!(self.status, status, "{reason_hint}: {}", self.head);
        assert!(self.echoed.is_none(), "{reason_hint}: reached the upstream");
    }
}

/// Send `request` (CRLF line ends, without the final empty line; `Connection: close` is added)
/// and read the whole answer.
async fn send(gw: &TestGateway, request: &str) -> Exchange {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let bytes = format!(
        "{}\r\nConnection: close\r\n\r\n",
        request.replace('\n', "\r\n")
    );
    stream.write_all(bytes.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    // Bounded: a broken gateway fails the test instead of hanging it.
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut buf),
    )
    .await
    .expect("an answer within 30 s")
    .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let echoed = serde_json::from_str::<Value>(body)
        .ok()
        .filter(|v| v.get("target").is_some())
        .map(Echoed);
    Exchange {
        status,
        head: head.to_owned(),
        echoed,
    }
}

#[tokio::test]
async fn targets_that_are_not_origin_form_are_refused() {
    // Pingora parses `x:/orders/1` and `orders/1` as `/` (the public catch-all) but forwards the
    // raw bytes, which Go's net/http serves as `/orders/1`.
    let gw = gateway("").await;
    for target in [
        "x:/orders/1",
        "orders/1",
        "*",
        "ftp://api.example.com/orders/1",
    ] {
        let ex = send(
            &gw,
            &format!("GET {target} HTTP/1.1\nHost: api.example.com"),
        )
        .await;
        ex.assert_refused(400, target);
    }
    let text = gw.metrics_text().await;
    assert!(text.contains("reason=\"target_form\""), "{text}");
}

#[tokio::test]
async fn absolute_form_is_routed_by_its_authority() {
    // RFC 9112 §3.2.2: the target's authority is the host; the admin host route applies.
    let gw = gateway("").await;
    let read = token("read:orders");
    let ex = send(
        &gw,
        &format!("GET http://admin.example.com/orders/7 HTTP/1.1\nAuthorization: Bearer {read}"),
    )
    .await;
    ex.assert_refused(403, "read token on the admin host");

    let admin = token("admin");
    let ex = send(
        &gw,
        &format!(
            "GET http://ADMIN.example.com/orders/7?x=1 HTTP/1.1\nAuthorization: Bearer {admin}"
        ),
    )
    .await;
    let echoed = ex.echoed();
    // The backend gets origin-form and the canonical host: the same request that was routed.
    assert_eq!(echoed.target(), "/orders/7?x=1");
    assert_eq!(echoed.header("host").unwrap(), ["admin.example.com"]);

    // A Host naming another host than the target is refused, not guessed at.
    let ex = send(
        &gw,
        &format!(
            "GET http://admin.example.com/orders/7 HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {admin}"
        ),
    )
    .await;
    ex.assert_refused(400, "host mismatch");
}

#[tokio::test]
async fn http11_without_exactly_one_host_is_400() {
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
    // request message that lacks a Host header field and to any request message that contains
    // more than one Host header field line or a Host header field with an invalid field value."
    let gw = gateway("").await;
    send(&gw, "GET /public HTTP/1.1")
        .await
        .assert_refused(400, "no Host");
    send(
        &gw,
        "GET /public HTTP/1.1\nHost: a.example\nHost: b.example",
    )
    .await
    .assert_refused(400, "two Hosts");
    for bad in [
        "admin.example.com@api.example.com",
        "api.example.com, admin.example.com",
        "admin.example.com..",
    ] {
        send(&gw, &format!("GET /orders/1 HTTP/1.1\nHost: {bad}"))
            .await
            .assert_refused(400, bad);
    }
}

#[tokio::test]
async fn host_variants_select_the_host_route_as_virtual_hosts_do() {
    let gw = gateway("").await;
    let read = token("read:orders");
    for host in [
        "admin.example.com.",
        "admin.example.com:80",
        "ADMIN.Example.COM",
    ] {
        let ex = send(
            &gw,
            &format!("GET /orders/7 HTTP/1.1\nHost: {host}\nAuthorization: Bearer {read}"),
        )
        .await;
        ex.assert_refused(403, host);
    }
    let admin = token("admin");
    for (host, forwarded) in [
        ("admin.example.com.", "admin.example.com"),
        ("admin.example.com:80", "admin.example.com:80"),
        ("ADMIN.Example.COM", "admin.example.com"),
    ] {
        let ex = send(
            &gw,
            &format!("GET /orders/7 HTTP/1.1\nHost: {host}\nAuthorization: Bearer {admin}"),
        )
        .await;
        let echoed = ex.echoed();
        assert_eq!(echoed.header("host").unwrap(), [forwarded], "{host}");
        assert_eq!(
            echoed.header("x-forwarded-host").unwrap(),
            [forwarded],
            "{host}"
        );
    }
}

#[tokio::test]
async fn a_method_no_route_lists_is_405_and_never_falls_through() {
    // Like nginx's `limit_except`: the most specific host and path decide; an unlisted method is
    // refused (RFC 9110 §15.5.6) instead of reaching the public catch-all without a token.
    let gw = gateway("").await;
    for method in ["OPTIONS", "PATCH", "TRACE", "PROPFIND"] {
        let ex = send(
            &gw,
            &format!("{method} /orders/1 HTTP/1.1\nHost: api.example.com"),
        )
        .await;
        ex.assert_refused(405, method);
        assert_eq!(
            ex.header("allow"),
            Some("DELETE, GET, HEAD, POST, PUT"),
            "{method}"
        );
    }
}

#[tokio::test]
async fn methods_that_are_not_upper_case_are_refused() {
    // Werkzeug upper-cases `delete` and runs its DELETE handler; Go does not.
    let gw = gateway("").await;
    for method in ["delete", "Get", "pOST"] {
        send(
            &gw,
            &format!("{method} /orders/1 HTTP/1.1\nHost: api.example.com"),
        )
        .await
        .assert_refused(400, method);
    }
}

#[tokio::test]
async fn underscore_and_foreign_identity_headers_never_reach_the_backend() {
    let gw = gateway("").await;
    let forged = [
        "X_Auth_Subject",
        "X-Auth_Subject",
        "X-Auth.Subject",
        "X-Original.URL",
        "X-Script-Name",
        "X-Forwarded-Prefix",
        "X-Remote-User",
        "X-Forwarded-User",
        "X-Authenticated-Userid",
        "X-User-Id",
        "Remote-User",
        "X-Forwarded-Email",
        "X-Auth-Request-User",
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "Proxy",
    ];
    let headers: String = forged.iter().map(|h| format!("\n{h}: admin")).collect();
    for (target, auth) in [
        ("/public", String::new()),
        (
            "/orders/1",
            format!("\nAuthorization: Bearer {}", token("read:orders")),
        ),
    ] {
        let ex = send(
            &gw,
            &format!("GET {target} HTTP/1.1\nHost: api.example.com{auth}{headers}"),
        )
        .await;
        let names = ex.echoed().header_names();
        for h in forged {
            assert!(
                !names.contains(&h.to_ascii_lowercase()),
                "{h} reached the backend on {target}: {names:?}"
            );
        }
        // The subject the backend sees is only ever the verified one.
        let subject = ex.echoed().header("x-auth-subject");
        assert!(subject.is_none() || subject == Some(vec!["alice".to_owned()]));
    }
}

#[tokio::test]
async fn forwarding_headers_from_clients_are_replaced() {
    let gw = gateway("").await;
    let ex = send(
        &gw,
        "GET /public HTTP/1.1\nHost: api.example.com\nX-Forwarded-For: 1.2.3.4\nForwarded: for=1.2.3.4;host=admin.example.com\nX-Real-IP: 1.2.3.4\nX-Forwarded-Host: admin.example.com\nX-Forwarded-Proto: https\nTrue-Client-IP: 1.2.3.4",
    )
    .await;
    let echoed = ex.echoed();
    assert_eq!(echoed.header("x-forwarded-for").unwrap(), ["127.0.0.1"]);
    assert_eq!(echoed.header("x-real-ip").unwrap(), ["127.0.0.1"]);
    assert_eq!(
        echoed.header("x-forwarded-host").unwrap(),
        ["api.example.com"]
    );
    assert_eq!(echoed.header("x-forwarded-proto").unwrap(), ["http"]);
    assert_eq!(echoed.header("forwarded"), None);
    assert_eq!(echoed.header("true-client-ip"), None);
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_are_kept_and_extended() {
    let gw = gateway("forwarding: { trusted_proxies: [\"127.0.0.1/32\"] }").await;
    let ex = send(
        &gw,
        "GET /public HTTP/1.1\nHost: api.example.com\nX-Forwarded-For: 203.0.113.9\nX-Real-IP: 203.0.113.9\nX-Forwarded-Proto: https",
    )
    .await;
    let echoed = ex.echoed();
    assert_eq!(
        echoed.header("x-forwarded-for").unwrap(),
        ["203.0.113.9, 127.0.0.1"]
    );
    assert_eq!(echoed.header("x-real-ip").unwrap(), ["203.0.113.9"]);
    assert_eq!(echoed.header("x-forwarded-proto").unwrap(), ["https"]);
    // The host a framework routes on is the routed one, whoever claims otherwise; identity is
    // never a proxy's to assert.
    let ex = send(
        &gw,
        "GET /public HTTP/1.1\nHost: api.example.com\nX-Forwarded-Host: admin.example.com\nForwarded: host=admin.example.com\nX-Forwarded-User: admin",
    )
    .await;
    let echoed = ex.echoed();
    assert_eq!(
        echoed.header("x-forwarded-host").unwrap(),
        ["api.example.com"]
    );
    assert_eq!(echoed.header("forwarded"), None);
    assert_eq!(echoed.header("x-forwarded-user"), None);
}

#[tokio::test]
async fn configured_strip_headers_are_removed() {
    let gw = gateway("forwarding: { strip_headers: [X-Tenant-Id] }").await;
    let ex = send(
        &gw,
        "GET /public HTTP/1.1\nHost: api.example.com\nX-Tenant-Id: 7",
    )
    .await;
    assert_eq!(ex.echoed().header("x-tenant-id"), None);
}

#[tokio::test]
async fn method_override_is_stripped_unless_the_route_opts_in() {
    let gw = gateway("").await;
    // Not opted in: stripped, and the request is what it says (GET, read scope).
    let read = token("read:orders");
    let ex = send(
        &gw,
        &format!("GET /orders/1 HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {read}\nX-HTTP-Method-Override: DELETE"),
    )
    .await;
    assert_eq!(ex.echoed().header("x-http-method-override"), None);

    // Opted in: a POST overriding to DELETE is routed and authorised as DELETE.
    let read_tickets = token("read:tickets");
    let ex = send(
        &gw,
        &format!("POST /tickets/1 HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {read_tickets}\nX-HTTP-Method-Override: DELETE\nContent-Length: 0"),
    )
    .await;
    ex.assert_refused(403, "override authorised as DELETE");
    let delete = token("delete:tickets");
    let ex = send(
        &gw,
        &format!("POST /tickets/1 HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {delete}\nX-HTTP-Method-Override: DELETE\nContent-Length: 0"),
    )
    .await;
    assert_eq!(
        ex.echoed().header("x-http-method-override").unwrap(),
        ["DELETE"]
    );
    // Overrides only apply to POST (as method-override, Symfony and gorilla do): on GET the
    // header is stripped and the request authorised as GET.
    let ex = send(
        &gw,
        &format!("GET /tickets/1 HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {read_tickets}\nX-HTTP-Method-Override: DELETE"),
    )
    .await;
    assert_eq!(ex.echoed().header("x-http-method-override"), None);
    // Disagreeing override headers are refused.
    send(
        &gw,
        &format!("POST /tickets/1 HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {delete}\nX-HTTP-Method-Override: DELETE\nX-HTTP-Method: PUT\nContent-Length: 0"),
    )
    .await
    .assert_refused(400, "conflicting overrides");
}

#[tokio::test]
async fn access_token_in_the_query_is_refused_with_a_header_token_and_never_forwarded() {
    let gw = gateway("").await;
    let read = token("read:orders");
    // RFC 6750 §2: "Clients MUST NOT use more than one method to transmit the token in each
    // request"; §3.1: such a request is `invalid_request`.
    let ex = send(
        &gw,
        &format!("GET /orders?access_token=x HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {read}"),
    )
    .await;
    ex.assert_refused(400, "token in header and query");
    assert_eq!(
        ex.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\", error=\"invalid_request\"")
    );
    // Everywhere else the parameter is removed before forwarding, however it is spelled.
    for query in [
        "a=1&access_token=secret&b=2",
        "a=1&access%5Ftoken=secret&b=2",
        "a=1&access.token=secret&b=2",
    ] {
        let ex = send(
            &gw,
            &format!("GET /public?{query} HTTP/1.1\nHost: api.example.com"),
        )
        .await;
        assert_eq!(ex.echoed().target(), "/public?a=1&b=2", "{query}");
    }
}

#[tokio::test]
async fn path_parameters_are_refused_unless_the_route_opts_in() {
    // Tomcat, Jetty and Spring strip `;x` before mapping: `/admin;x/users` is `/admin/users`.
    let gw = gateway("").await;
    for target in ["/admin;x/users", "/orders;x/1", "/public/1;jsessionid=x"] {
        send(
            &gw,
            &format!("GET {target} HTTP/1.1\nHost: api.example.com"),
        )
        .await
        .assert_refused(400, target);
    }
    let ex = send(
        &gw,
        "GET /app;jsessionid=1/x HTTP/1.1\nHost: api.example.com",
    )
    .await;
    assert_eq!(ex.echoed().target(), "/app;jsessionid=1/x");
    // A dot segment with parameters is resolved by servlet containers: refused on every route.
    send(
        &gw,
        "GET /app/..;x/orders/1 HTTP/1.1\nHost: api.example.com",
    )
    .await
    .assert_refused(400, "..;x");
    let text = gw.metrics_text().await;
    assert!(text.contains("reason=\"path_parameters\""), "{text}");
}

#[tokio::test]
async fn case_insensitive_routes_catch_every_spelling() {
    // Express, ASP.NET and IIS serve `/REPORTS` with their `/reports` handler.
    let gw = gateway("").await;
    for target in ["/REPORTS/1", "/Reports", "/%52eports/1"] {
        send(
            &gw,
            &format!("GET {target} HTTP/1.1\nHost: api.example.com"),
        )
        .await
        .assert_refused(401, target);
    }
    // On a case-sensitive route, a spelling that a case-folding backend would route elsewhere
    // than the gateway is refused rather than handed to the catch-all.
    send(&gw, "GET /ORDERS/1 HTTP/1.1\nHost: api.example.com")
        .await
        .assert_refused(400, "/ORDERS/1");
    // Upper case that changes nothing is fine.
    let ex = send(&gw, "GET /Docs/Intro HTTP/1.1\nHost: api.example.com").await;
    assert_eq!(ex.echoed().target(), "/Docs/Intro");
    let text = gw.metrics_text().await;
    assert!(text.contains("reason=\"path_case_ambiguous\""), "{text}");
}

#[tokio::test]
async fn trailing_slashes_format_suffixes_and_head_reach_the_route_backends_would_use() {
    let gw = gateway("").await;
    // `/orders.json` is `/orders` to Rails and Spring ≤ 5.2 but another resource (the public
    // catch-all's) to Go or Django: the readings pick different routes, so it is refused.
    for target in ["/orders.json", "/reports.csv", "/tickets.xml"] {
        send(
            &gw,
            &format!("GET {target} HTTP/1.1\nHost: api.example.com"),
        )
        .await
        .assert_refused(400, target);
    }
    // Where both readings agree, the route is simply the one both pick.
    for target in ["/orders/7.json", "/reports/", "/orders/"] {
        send(
            &gw,
            &format!("GET {target} HTTP/1.1\nHost: api.example.com"),
        )
        .await
        .assert_refused(401, target);
    }
    let ex = send(&gw, "GET /public/app.js HTTP/1.1\nHost: api.example.com").await;
    assert_eq!(ex.echoed().target(), "/public/app.js");
    let text = gw.metrics_text().await;
    assert!(text.contains("reason=\"path_suffix_ambiguous\""), "{text}");
    // HEAD runs the GET handler in Go, Express, Flask, Spring and Tomcat.
    send(&gw, "HEAD /tickets/1 HTTP/1.1\nHost: api.example.com")
        .await
        .assert_refused(401, "HEAD on a GET route");
}

#[tokio::test]
async fn encodings_of_path_characters_are_routed_as_backends_decode_them() {
    let gw = gateway("").await;
    // Go, Werkzeug, Tomcat and Laravel route `%3A` as `:` and raw UTF-8 as its encoding.
    let ex = send(
        &gw,
        "GET /public/users%3Asearch HTTP/1.1\nHost: api.example.com",
    )
    .await;
    assert_eq!(ex.echoed().target(), "/public/users:search");
    let ex = send(&gw, "GET /public/caf\u{e9} HTTP/1.1\nHost: api.example.com").await;
    assert_eq!(ex.echoed().target(), "/public/caf%C3%A9");
    // Escapes .NET and Java fold to ASCII letters (ſ → s) cannot reach a route by the back door.
    send(&gw, "GET /order%C5%BF/1 HTTP/1.1\nHost: api.example.com")
        .await
        .assert_refused(400, "long s");
}

#[tokio::test]
async fn php_script_path_info_is_refused() {
    // Symfony, Laravel and CodeIgniter route `/index.php/orders/1` as `/orders/1`.
    let gw = gateway("").await;
    send(
        &gw,
        "GET /index.php/orders/1 HTTP/1.1\nHost: api.example.com",
    )
    .await
    .assert_refused(400, "/index.php/orders/1");
    let ex = send(&gw, "GET /index.php HTTP/1.1\nHost: api.example.com").await;
    assert_eq!(ex.echoed().target(), "/index.php");
}

#[tokio::test]
async fn a_method_query_parameter_is_an_override() {
    let gw = gateway("").await;
    let read_tickets = token("read:tickets");
    // `POST /tickets/1?_method=DELETE`: Rails, Laravel, Symfony, Express and gorilla run DELETE.
    // On the opted-in route it is authorised as DELETE.
    send(
        &gw,
        &format!("POST /tickets/1?_method=DELETE HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {read_tickets}\nContent-Length: 0"),
    )
    .await
    .assert_refused(403, "_method authorised as DELETE");
    // Elsewhere it is removed before forwarding, so the backend runs what was authorised.
    let write = token("write:orders");
    let ex = send(
        &gw,
        &format!("POST /orders/1?a=1&_method=DELETE HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {write}\nContent-Length: 0"),
    )
    .await;
    assert_eq!(ex.echoed().target(), "/orders/1?a=1");
    // An override backends could read differently (duplicates, `%5F`, `[]`) is refused.
    for query in [
        "_method=PUT&_method=DELETE",
        "%5Fmethod=DELETE",
        "_method[]=DELETE",
    ] {
        send(
            &gw,
            &format!("POST /tickets/1?{query} HTTP/1.1\nHost: api.example.com\nAuthorization: Bearer {write}\nContent-Length: 0"),
        )
        .await
        .assert_refused(400, query);
    }
    let ex = send(
        &gw,
        "GET /public?_method=DELETE&b=2 HTTP/1.1\nHost: api.example.com",
    )
    .await;
    assert_eq!(ex.echoed().target(), "/public?b=2");
}
