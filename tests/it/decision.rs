//! Decision mode behind a real nginx (`auth_request`, deploy/nginx/auth_request.conf, the
//! configuration docs/decision-mode.md shows): nginx asks portcullis' decision listener about
//! each request, then proxies to the echo backend. Each case answers as proxy mode does.

use crate::support::keyserver::{fixture_jwks, rotating_jwks, KeyServer};
use crate::support::nginx::Nginx;
use crate::support::revocations::*;
use crate::support::*;
use serde_json::{json, Value};

/// The nginx server block of the docs, filled in.
fn nginx_server(decision: std::net::SocketAddr, backend: std::net::SocketAddr) -> String {
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/auth_request.conf"),
    )
    .unwrap();
    template
        .replace("{decision}", &decision.to_string())
        .replace("{backend}", &backend.to_string())
}

const DECISION: &str =
    "decision: { address: \"{decision}\", protocol: nginx, trusted_proxies: [\"127.0.0.1\"] }\n";

struct Setup {
    gw: TestGateway,
    nginx: Nginx,
}

async fn setup(yaml: &str, backend: std::net::SocketAddr) -> Setup {
    let gw = TestGateway::start(&format!("{yaml}\n{DECISION}"));
    let nginx = Nginx::start(&nginx_server(gw.decision.unwrap(), backend)).await;
    Setup { gw, nginx }
}

/// (status, WWW-Authenticate, echoed request when it reached the backend).
async fn call(
    url: String,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> (u16, String, Option<Value>) {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (n, v) in extra {
        req = req.header(*n, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenges: Vec<&str> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(challenges.len() <= 1, "{challenges:?}");
    let challenge = challenges
        .first()
        .map(|c| (*c).to_owned())
        .unwrap_or_default();
    let echoed = match status {
        200 => resp.json::<Value>().await.ok(),
        _ => None,
    };
    (status, challenge, echoed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_each_request_is_answered_as_in_proxy_mode() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_upstream().await;
    let yaml = with_admin(&config(echo, closed_port(), closed_port()), dir.path(), "");
    let s = setup(&yaml, echo).await;
    let (gw, nginx) = (&s.gw, &s.nginx);

    let valid = token("ok-1", "alice", "orders-ui", now());
    let mut expired_claims = claims("read:orders");
    expired_claims["exp"] = json!(now() - 600);
    let expired = Issuer::rsa(&expired_claims);
    let under_scoped = Issuer::rsa(&claims("profile"));
    let stolen = token("stolen-1", "bob", "cli", now());
    revoke(
        gw,
        json!({"type": "jti", "jti": "stolen-1", "exp": now() + 600}),
    )
    .await;

    let cases: [(&str, &str, Option<&str>, u16); 6] = [
        ("valid", "/orders/1", Some(&valid), 200),
        ("expired", "/orders/1", Some(&expired), 401),
        ("wrong scope", "/orders/1", Some(&under_scoped), 403),
        ("revoked", "/orders/1", Some(&stolen), 401),
        ("no token", "/orders/1", None, 401),
        ("public", "/public/x", None, 200),
    ];
    for (name, path, token, expected) in cases {
        let through_nginx = call(nginx.url(path), token, &[]).await;
        let proxied = call(gw.url(path), token, &[]).await;
        assert_eq!(through_nginx.0, expected, "{name}: {}", nginx.log());
        assert_eq!(
            through_nginx.0, proxied.0,
            "{name}: decision and proxy mode differ"
        );
        assert_eq!(through_nginx.1, proxied.1, "{name}: the challenge differs");
    }
    // RFC 6750 §3.1: the challenges nginx passes on are portcullis' own.
    let (_, challenge, _) = call(nginx.url("/orders/1"), Some(&expired), &[]).await;
    assert_eq!(
        challenge,
        "Bearer realm=\"portcullis\", error=\"invalid_token\""
    );

    // The identity headers the backend sees are the ones the decision set; forged ones are
    // replaced, and the token does not reach the backend.
    let forged = [("x-auth-subject", "admin"), ("x-legacy-user", "root")];
    let (status, _, echoed) = call(nginx.url("/orders/1"), Some(&valid), &forged).await;
    assert_eq!(status, 200);
    let headers = &echoed.unwrap()["headers"];
    assert_eq!(headers["x-auth-subject"], json!(["alice"]), "{headers}");
    assert_eq!(headers["x-legacy-user"], json!(["alice"]), "{headers}");
    assert_eq!(
        headers["x-auth-client-id"],
        json!(["orders-ui"]),
        "{headers}"
    );
    assert!(headers.get("authorization").is_none(), "{headers}");
    let (status, _, echoed) = call(nginx.url("/public/x"), None, &forged).await;
    assert_eq!(status, 200);
    let headers = &echoed.unwrap()["headers"];
    assert!(headers.get("x-auth-subject").is_none(), "{headers}");

    // nginx forwards the path as the client sent it: a path whose normal form is another
    // (public) route's is refused, never allowed for a backend to read its own way.
    // The same for anything else the proxy would have rewritten or stripped before the backend
    // saw it: a fragment Pingora drops, a method override the route does not honour, a token
    // in the query, a header under the identity prefix or with `_` that nginx passes on.
    for (raw, headers) in [
        ("/orders/../public/x", ""),
        ("/public/./x", ""),
        ("//public/x", ""),
        ("/public#/../orders/1", ""),
        ("/public/x?_method=DELETE", ""),
        ("/public/x", "X-HTTP-Method-Override: DELETE\r\n"),
        ("/public/x?access_token=abc", ""),
        ("/public/x", "X-Auth-Roles: admin\r\n"),
        ("/public/x", "X-Remote-User: admin\r\n"),
    ] {
        let status = raw_status(nginx.addr, raw, headers).await;
        assert_ne!(
            status,
            200,
            "{raw} {headers} reached the backend: {}",
            nginx.log()
        );
    }
    assert_eq!(raw_status(nginx.addr, "/public/x", "").await, 200);

    // Decisions are counted apart from proxied requests (`mode="decision"`).
    let metrics = gw.metrics_text().await;
    for series in [
        "portcullis_requests_total{method=\"GET\",mode=\"decision\",route=\"orders-read\",status_class=\"2xx\"}",
        "portcullis_rejections_total{mode=\"decision\",reason=\"expired\",route=\"orders-read\"}",
        "portcullis_rejections_total{mode=\"proxy\",reason=\"expired\",route=\"orders-read\"}",
        "portcullis_rejections_total{mode=\"decision\",reason=\"path_not_canonical\",route=\"public\"}",
    ] {
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series}"));
        assert!(n >= 1.0, "{series} {n}");
    }

    // Unmatched: denied by default (a status nginx passes on).
    let (status, _, _) = call(nginx.url("/nowhere"), Some(&valid), &[]).await;
    assert_eq!(status, 403);
}

/// An unknown `kid` makes the decision refresh the issuer's keys once, as the proxy does: the
/// first request after a rotation is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_a_rotated_key_is_accepted_on_its_first_request() {
    let server = KeyServer::start(fixture_jwks()).await;
    let iss = "https://idp.decision.test";
    let echo = echo_upstream().await;
    let yaml = format!(
        "listeners: [{{ name: test, address: \"{{listen}}\" }}]\n\
         issuers: [{{ id: idp, issuer: \"{iss}\", audiences: [\"{AUDIENCE}\"], algorithms: [RS256], jwks_uri: \"{}\" }}]\n\
         upstreams: [{{ id: echo, url: \"http://{echo}\" }}]\n\
         routes: [{{ id: api, match: {{ path_prefix: /api }}, upstream: echo }}]\n",
        server.jwks_url()
    );
    let s = setup(&yaml, echo).await;
    let mut c = claims("");
    c["iss"] = json!(iss);
    eventually("the keys load", std::time::Duration::from_secs(10), || {
        let url = s.nginx.url("/api/x");
        let t = Issuer::rsa(&c);
        async move { call(url, Some(&t), &[]).await.0 == 200 }
    })
    .await;
    server.serve(rotating_jwks());
    let rotated = Issuer::rsa_untrusted("test-rsa-2", &c);
    let (status, _, _) = call(s.nginx.url("/api/x"), Some(&rotated), &[]).await;
    assert_eq!(status, 200, "no 401 window after a rotation");
}

/// The decision listener believes descriptions only from `trusted_proxies`; anyone else gets
/// 403, whatever they describe.
#[tokio::test]
async fn a_peer_outside_trusted_proxies_gets_no_decision() {
    let echo = echo_upstream().await;
    let yaml = config(echo, closed_port(), closed_port());
    let gw = TestGateway::start(&format!(
        "{yaml}\ndecision: {{ address: \"{{decision}}\", protocol: nginx, trusted_proxies: [\"192.0.2.1\"] }}\n"
    ));
    let resp = client()
        .get(format!("http://{}/", gw.decision.unwrap()))
        .header("x-original-uri", "/public/x")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

/// Traefik's ForwardAuth and Envoy's ext_authz (HTTP service) are not in the registries these
/// tests can reach: their requests are replayed in the shapes their documentation gives
/// (Traefik: X-Forwarded-Method/-Proto/-Host/-Uri; Envoy: the original method, path_prefix +
/// path, the original Host), against the decision listener.
#[tokio::test]
async fn traefik_and_envoy_request_shapes_are_decided_like_the_proxy() {
    let echo = echo_upstream().await;
    let yaml = config(echo, closed_port(), closed_port());
    let valid = Issuer::rsa(&claims("read:orders"));
    let under_scoped = Issuer::rsa(&claims("profile"));
    for protocol in ["traefik", "envoy"] {
        let settings = match protocol {
            "envoy" => "protocol: envoy, path_prefix: /ext_authz",
            _ => "protocol: traefik",
        };
        let gw = TestGateway::start(&format!(
            "{yaml}\ndecision: {{ address: \"{{decision}}\", {settings}, trusted_proxies: [\"127.0.0.1\"] }}\n"
        ));
        let decision = gw.decision.unwrap();
        let ask = |token: &str| {
            let req = match protocol {
                "envoy" => client()
                    .get(format!("http://{decision}/ext_authz/orders/1"))
                    .header("host", "api.example.com"),
                _ => client()
                    .get(format!("http://{decision}/"))
                    .header("x-forwarded-method", "GET")
                    .header("x-forwarded-proto", "https")
                    .header("x-forwarded-host", "api.example.com")
                    .header("x-forwarded-uri", "/orders/1"),
            };
            req.bearer_auth(token).send()
        };
        let allowed = ask(&valid).await.unwrap();
        assert_eq!(allowed.status(), 200, "{protocol}");
        assert_eq!(allowed.headers()["x-auth-subject"], "alice", "{protocol}");
        let refused = ask(&under_scoped).await.unwrap();
        assert_eq!(refused.status(), 403, "{protocol}");
        assert_eq!(
            refused.headers()["www-authenticate"],
            "Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"read:orders\"",
            "{protocol}"
        );
        // A description that is not complete is refused, never allowed.
        let incomplete = client()
            .get(format!("http://{decision}/"))
            .bearer_auth(&valid)
            .send()
            .await
            .unwrap();
        assert_eq!(incomplete.status(), 400, "{protocol}");
    }
}

/// The nginx example in docs/decision-mode.md is the configuration these tests run.
#[test]
fn the_docs_show_the_nginx_configuration_the_tests_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let conf = std::fs::read_to_string(root.join("deploy/nginx/auth_request.conf")).unwrap();
    let doc = std::fs::read_to_string(root.join("docs/decision-mode.md")).unwrap();
    assert!(
        doc.contains(&conf),
        "docs/decision-mode.md does not show deploy/nginx/auth_request.conf"
    );
}

/// The status of a raw `GET path` (reqwest would resolve dot segments before sending).
async fn raw_status(addr: std::net::SocketAddr, path: &str, headers: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: api.example.com\r\n{headers}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The decision listener speaks HTTPS when given `tls`, as a listener does: an ingress across
/// the network asks over TLS.
#[tokio::test]
async fn the_decision_listener_can_speak_tls() {
    use crate::support::tls::*;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("decision CA");
    let (cert, key) = ca
        .server(&["portcullis-decision"])
        .write(dir.path(), "decision");
    let echo = echo_upstream().await;
    let yaml = format!(
        "{}\ndecision:\n  address: \"{{decision}}\"\n  protocol: traefik\n  trusted_proxies: [\"127.0.0.1\"]\n  tls:\n    certificates:\n      - {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
        config(echo, closed_port(), closed_port()),
        cert.display(),
        key.display()
    );
    let gw = TestGateway::start(&yaml);
    let decision = gw.decision.unwrap();
    let https = https_client(&ca.pem(), None, &["portcullis-decision"], decision);
    let answer = https
        .get(format!("https://portcullis-decision:{}/", decision.port()))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-host", "api.example.com")
        .header("x-forwarded-uri", "/orders/1")
        .bearer_auth(Issuer::rsa(&claims("read:orders")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-auth-subject"], "alice");
    // Plain HTTP to it is no decision.
    let plain = client()
        .get(format!("http://{decision}/"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-host", "api.example.com")
        .header("x-forwarded-uri", "/public/x")
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
}

/// A table of requests: the decision (asked directly, as nginx would ask) and the proxy answer
/// each with the same status and challenge, except where decision mode is deliberately
/// stricter or different (documented in docs/decision-mode.md): no route is 403 there.
#[tokio::test]
async fn decisions_and_proxied_requests_agree_on_a_table_of_requests() {
    let echo = echo_upstream().await;
    let yaml = config(echo, closed_port(), closed_port());
    let gw = TestGateway::start(&format!("{yaml}\n{DECISION}"));
    let decision = gw.decision.unwrap();
    let mut wrong_aud = claims("read:orders");
    wrong_aud["aud"] = json!("billing-api");
    let mut expired = claims("read:orders");
    expired["exp"] = json!(now() - 600);
    let valid = Issuer::rsa(&claims("read:orders"));
    let admin = Issuer::rsa(&claims("admin tenant:a"));
    let cases: Vec<(&str, &str, &str, Option<String>)> = vec![
        ("GET", "api.example.com", "/orders/1", Some(valid.clone())),
        ("HEAD", "api.example.com", "/orders/1", Some(valid.clone())),
        ("POST", "api.example.com", "/orders/1", Some(valid.clone())),
        ("GET", "api.example.com", "/orders/1", None),
        (
            "GET",
            "api.example.com",
            "/orders/1",
            Some(Issuer::rsa(&expired)),
        ),
        (
            "GET",
            "api.example.com",
            "/orders/1",
            Some(Issuer::rsa(&wrong_aud)),
        ),
        (
            "GET",
            "api.example.com",
            "/orders/1",
            Some(Issuer::rsa_untrusted("test-rsa-1", &claims("read:orders"))),
        ),
        (
            "GET",
            "api.example.com",
            "/orders/1",
            Some("not-a-jwt".to_owned()),
        ),
        ("GET", "admin.example.com", "/orders/1", Some(valid.clone())),
        ("GET", "admin.example.com", "/orders/1", Some(admin)),
        ("GET", "api.example.com", "/public/x", None),
        (
            "GET",
            "api.example.com",
            "/orders/%2F..",
            Some(valid.clone()),
        ),
        ("DELETE", "api.example.com", "/healthz", None),
    ];
    for (method, host, path, token) in cases {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut proxied = client().request(m, gw.url(path)).header("host", host);
        let mut asked = client()
            .get(format!("http://{decision}/_portcullis"))
            .header("x-original-uri", path)
            .header("x-original-method", method)
            .header("x-original-host", host);
        if let Some(t) = &token {
            proxied = proxied.bearer_auth(t);
            asked = asked.bearer_auth(t);
        }
        let (p, d) = (proxied.send().await.unwrap(), asked.send().await.unwrap());
        let challenge = |r: &reqwest::Response| r.headers().get("www-authenticate").cloned();
        let case = format!("{method} {host}{path} token: {}", token.is_some());
        assert_eq!(p.status(), d.status(), "{case}");
        assert_eq!(challenge(&p), challenge(&d), "{case}");
        if p.status() == 405 {
            assert_eq!(p.headers().get("allow"), d.headers().get("allow"), "{case}");
        }
    }
    // Decisions are counted and logged under the described method, not the question's GET.
    let metrics = gw.metrics_text().await;
    let post = "portcullis_requests_total{method=\"POST\",mode=\"decision\",route=\"-\",status_class=\"4xx\"} 1";
    assert!(metrics.contains(post), "{metrics}");
}

/// A decision service alone, the shape of deploy/kubernetes/decision/: no proxy listener, no
/// upstream. The real binary starts, answers the ingress's questions, and exits 0 on SIGTERM.
#[tokio::test]
async fn a_decision_service_runs_without_proxy_listeners_or_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("jwks.json"), dir.path().join("jwks.json")).unwrap();
    let yaml = format!(
        r#"admin: {{ address: "{{admin}}" }}
decision: {{ address: "{{decision}}", protocol: traefik, trusted_proxies: ["127.0.0.1"] }}
issuers:
  - {{ id: corp, issuer: "{ISSUER}", jwks_file: jwks.json, audiences: ["{AUDIENCE}"] }}
identity: {{ headers: {{ X-Auth-Subject: sub }} }}
routes:
  - {{ id: orders, match: {{ path_prefix: /orders }}, auth: {{ scopes: {{ all_of: [read:orders] }} }} }}
"#
    );
    let mut gw = GatewayProcess::start(&yaml, dir.path()).await;
    let decision = gw.decision.unwrap();
    let ask = |token: Option<String>| {
        let mut req = client()
            .get(format!("http://{decision}/"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-host", "api.example.com")
            .header("x-forwarded-uri", "/orders/7");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let allowed = ask(Some(Issuer::rsa(&claims("read:orders"))))
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["x-auth-subject"], "alice");
    // RFC 6750 §3.1: no token, 401 with a bare Bearer challenge.
    let refused = ask(None).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    gw.wait_for_log("decision listener").await;
    gw.signal("-TERM");
    let (status, _) = gw.remaining_logs_until_exit().await;
    assert!(status.success(), "exit status {status:?}");
}

/// Answers carry their length, so the ingress (Envoy, Traefik, nginx with `keepalive`) asks again
/// on the same connection: three decisions in turn on one connection are all answered, and so
/// are two scrapes of the admin listener. Without a length Pingora closes the connection after
/// each answer.
#[tokio::test]
async fn decisions_and_admin_answers_keep_the_connection_alive() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = echo_upstream().await;
    let yaml = config(echo, closed_port(), closed_port());
    let gw = TestGateway::start(&format!(
        "{yaml}\ndecision: {{ address: \"{{decision}}\", protocol: nginx, trusted_proxies: [\"127.0.0.1\"] }}\n"
    ));
    let token = Issuer::rsa(&claims("read:orders"));
    let ask = format!(
        "GET /_portcullis HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer {token}\r\nX-Original-URI: /orders/1\r\nX-Original-Method: GET\r\nX-Original-Host: api.example.com\r\n\r\n"
    );
    let refused = "GET /_portcullis HTTP/1.1\r\nHost: d\r\nX-Original-URI: /orders/1\r\nX-Original-Method: GET\r\nX-Original-Host: api.example.com\r\n\r\n".to_owned();
    let scrape = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".to_owned();
    for (addr, exchanges) in [
        (
            gw.decision.unwrap(),
            vec![(ask.clone(), "200"), (refused, "401"), (ask, "200")],
        ),
        (gw.admin, vec![(scrape.clone(), "200"), (scrape, "200")]),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        for (i, (request, status)) in exchanges.into_iter().enumerate() {
            stream.write_all(request.as_bytes()).await.unwrap();
            let answer = read_one_response(&mut stream).await;
            assert_eq!(
                answer,
                Some(status),
                "answer {i} on one connection to {addr}"
            );
        }
    }

    /// The status of the next response, read to the end of its Content-Length; `None` when the
    /// connection closed first or the response has no length.
    async fn read_one_response(stream: &mut tokio::net::TcpStream) -> Option<&'static str> {
        let mut buf = Vec::new();
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))?
                    .trim()
                    .parse()
                    .ok()?;
                if buf.len() >= end + 4 + length {
                    return match head.split(' ').nth(1) {
                        Some("200") => Some("200"),
                        Some("401") => Some("401"),
                        _ => Some("other"),
                    };
                }
            }
            let mut chunk = [0u8; 65536];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The DPoP scheme is not supported in decision mode (the ingress's description carries no
/// scheme for the proof's `htu`): answered as another scheme is, 401 with a Bearer challenge.
#[tokio::test]
async fn the_dpop_scheme_is_refused_in_decision_mode() {
    let echo = echo_upstream().await;
    let yaml = config(echo, closed_port(), closed_port());
    let gw = TestGateway::start(&format!(
        "{yaml}\ndecision: {{ address: \"{{decision}}\", protocol: traefik, trusted_proxies: [\"127.0.0.1\"] }}\n"
    ));
    let client_key = crate::dpop::DpopClient::new();
    let mut bound = claims("read:orders");
    bound["cnf"] = json!({ "jkt": client_key.jkt() });
    let token = Issuer::rsa(&bound);
    let proof = client_key.proof("GET", "https://api.example.com/orders/1", &token, |_| {});
    let answer = client()
        .get(format!("http://{}/", gw.decision.unwrap()))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example.com")
        .header("x-forwarded-uri", "/orders/1")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(
        answer.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\""
    );
}

/// Traefik's `forwardAuth` passes a refusal on as it is: a decision past a rate limit is the
/// proxy's `429` with `Retry-After` and the RateLimit fields, each client address (the ingress's
/// `X-Forwarded-For`, believed from a trusted proxy) counted apart.
#[tokio::test]
async fn rate_limits_apply_to_decisions_per_client_address() {
    let yaml = config(echo_upstream().await, closed_port(), closed_port());
    let gw = TestGateway::start(&format!(
        "{yaml}\ndecision: {{ address: \"{{decision}}\", protocol: traefik, trusted_proxies: [\"127.0.0.1\"] }}\nforwarding: {{ trusted_proxies: [127.0.0.1/32] }}\nrate_limits: {{ default: {{ key: ip, rate: 1/m, burst: 1 }} }}\n"
    ));
    let decision = gw.decision.unwrap();
    let ask = |client_ip: &'static str| {
        client()
            .get(format!("http://{decision}/"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "api.example.com")
            .header("x-forwarded-uri", "/public/x")
            .header("x-forwarded-for", client_ip)
            .send()
    };
    assert_eq!(ask("198.51.100.1").await.unwrap().status(), 200);
    let refused = ask("198.51.100.1").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "60");
    assert_eq!(refused.headers()["ratelimit"], "\"ip\";r=0;t=60");
    assert_eq!(refused.headers()["ratelimit-policy"], "\"ip\";q=1;w=60");
    assert_eq!(ask("198.51.100.2").await.unwrap().status(), 200);
    let metrics = gw.metrics_text().await;
    for line in [
        r#"portcullis_rate_limited_total{limit="ip",route="public"} 1"#,
        r#"portcullis_rejections_total{mode="decision",reason="rate_limited",route="public"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}
