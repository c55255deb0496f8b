//! Judging each answer, counting outcomes, and the report.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::oracle::{problems, requirement, AsSent, Requirement};
use super::wire::Reply;
use super::Cred;

/// The header every backend sets on the answers of its handler.
const BACKEND_HEADER: &str = "x-diff-backend";

/// What a backend says it saw.
pub struct View {
    backend: String,
    method: String,
    path: String,
    host: String,
    user: Option<String>,
    headers: Value,
}

impl View {
    /// The path in the form the oracle decodes once: Express reports it raw; Flask, Go and
    /// PHP report it decoded already, so a `%` there is a literal one (decoding it again
    /// would judge a path the backend never routed).
    fn routed_path(&self) -> String {
        if self.backend == "express" {
            self.path.clone()
        } else {
            self.path.replace('%', "%25")
        }
    }

    /// `None` unless the body is the backends' JSON with a string method and path.
    pub fn parse(body: &[u8]) -> Option<View> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let text = |key: &str| match &v[key] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Some(View {
            backend: text("backend"),
            method: v["method"].as_str()?.to_owned(),
            path: v["path"].as_str()?.to_owned(),
            host: text("host"),
            // Anything but null is an identity; a non-string one never matches a subject.
            user: match &v["user"] {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            },
            headers: v["headers"].clone(),
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} saw method {:?} path {:?} host {:?} user {:?}; headers {}",
            self.backend, self.method, self.path, self.host, self.user, self.headers
        )
    }
}

/// The gateway's own refusal: its JSON error body (or, for a HEAD, that rendering's headers
/// without the body), or a bare answer of its HTTP layer that never reached the proxy path
/// (every proxied response carries the gateway's `x-request-id`).
fn refused_by_gateway(reply: &Reply) -> bool {
    let json_error =
        serde_json::from_slice::<Value>(&reply.body).is_ok_and(|v| v.get("error").is_some());
    let bodiless_rendering = reply.body.is_empty()
        && reply.header("content-type") == Some("application/json")
        && reply.header("cache-control") == Some("no-store");
    json_error || bodiless_rendering || reply.header("x-request-id").is_none()
}

pub struct Violation {
    request: String,
    status: u16,
    view: String,
    problems: Vec<String>,
}

/// The outcomes of one protocol's corpus against one backend.
pub struct Tally {
    pub protocol: &'static str,
    pub sent: usize,
    pub served: usize,
    /// Served with a non-public requirement and no problem: the corpus reaches the backend
    /// through the protected routes too.
    pub served_protected_ok: usize,
    pub served_without_view: usize,
    pub refused_by_gateway: usize,
    pub refused_by_backend: usize,
    pub no_response: usize,
    gateway_statuses: BTreeMap<u16, usize>,
    backend_statuses: BTreeMap<u16, usize>,
    no_response_samples: Vec<String>,
    pub violations: Vec<Violation>,
}

impl Tally {
    pub fn new(protocol: &'static str) -> Tally {
        Tally {
            protocol,
            sent: 0,
            served: 0,
            served_protected_ok: 0,
            served_without_view: 0,
            refused_by_gateway: 0,
            refused_by_backend: 0,
            no_response: 0,
            gateway_statuses: BTreeMap::new(),
            backend_statuses: BTreeMap::new(),
            no_response_samples: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Count one exchange and judge it when served.
    pub fn record(
        &mut self,
        request: String,
        as_sent: &AsSent,
        cred: Cred,
        answer: Result<Reply, String>,
    ) {
        self.sent += 1;
        let reply = match answer {
            Ok(reply) => reply,
            Err(e) => {
                self.no_response += 1;
                if self.no_response_samples.len() < 5 {
                    self.no_response_samples.push(format!("{request}: {e}"));
                }
                return;
            }
        };
        if reply.header(BACKEND_HEADER).is_none() {
            let statuses = if refused_by_gateway(&reply) {
                self.refused_by_gateway += 1;
                &mut self.gateway_statuses
            } else {
                self.refused_by_backend += 1;
                &mut self.backend_statuses
            };
            *statuses.entry(reply.status).or_default() += 1;
            return;
        }
        self.served += 1;
        let (required, found, view) = match View::parse(&reply.body) {
            Some(view) => {
                let required = requirement(&view.method, &view.routed_path(), &view.host);
                let found = problems(required, Some(view.user.as_deref()), cred);
                (vec![required], found, view.describe())
            }
            None => {
                self.served_without_view += 1;
                let required = as_sent.requirements();
                let mut found: Vec<String> = required
                    .iter()
                    .flat_map(|r| problems(*r, None, cred))
                    .collect();
                found.sort();
                found.dedup();
                let view = format!(
                    "none readable (body {:?}); judged on every reading of the request as \
                     sent: {} with host {:?}, path {:?}",
                    String::from_utf8_lossy(&reply.body),
                    as_sent.method,
                    as_sent.hosts,
                    as_sent.path
                );
                (required, found, view)
            }
        };
        if found.is_empty() {
            if required.iter().any(|r| *r != Requirement::Public) {
                self.served_protected_ok += 1;
            }
        } else {
            self.violations.push(Violation {
                request,
                status: reply.status,
                view,
                problems: found,
            });
        }
    }
}

/// The table, the status breakdown, and every violation.
pub fn report(backend: &str, tallies: &[&Tally], elapsed: Duration) -> String {
    let mut out = String::new();
    let row = |out: &mut String, cells: [&dyn std::fmt::Display; 7]| {
        let [protocol, sent, served, gateway, refused, none, violations] = cells;
        writeln!(
            out,
            "{protocol:<9} {sent:>5} {served:>7} {gateway:>19} {refused:>19} {none:>12} {violations:>11}"
        )
        .unwrap();
    };
    writeln!(
        out,
        "differential suite, backend {backend} ({:.1} s)",
        elapsed.as_secs_f64()
    )
    .unwrap();
    row(
        &mut out,
        [
            &"protocol",
            &"sent",
            &"served",
            &"refused by gateway",
            &"refused by backend",
            &"no response",
            &"violations",
        ],
    );
    for t in tallies {
        row(
            &mut out,
            [
                &t.protocol,
                &t.sent,
                &t.served,
                &t.refused_by_gateway,
                &t.refused_by_backend,
                &t.no_response,
                &t.violations.len(),
            ],
        );
    }
    for t in tallies {
        writeln!(
            out,
            "{}: gateway refusals by status {:?}; backend refusals by status {:?}; \
             authorised protected requests served {}; served without a readable view {}",
            t.protocol,
            t.gateway_statuses,
            t.backend_statuses,
            t.served_protected_ok,
            t.served_without_view
        )
        .unwrap();
        for sample in &t.no_response_samples {
            writeln!(out, "  no response: {sample}").unwrap();
        }
    }
    for t in tallies {
        for (i, v) in t.violations.iter().enumerate() {
            writeln!(
                out,
                "VIOLATION {} #{}: {}",
                t.protocol,
                i + 1,
                v.problems.join("; ")
            )
            .unwrap();
            writeln!(out, "  request:      {}", v.request).unwrap();
            writeln!(out, "  response:     {}", v.status).unwrap();
            writeln!(out, "  backend view: {}", v.view).unwrap();
        }
    }
    out
}

#[test]
fn views_parse_and_a_served_request_is_judged_by_its_view() {
    let body = r#"{"backend":"go","method":"DELETE","path":"/Orders/1","host":"api.example.com:80","user":"alice","headers":{}}"#;
    let view = View::parse(body.as_bytes()).unwrap();
    assert_eq!(view.user.as_deref(), Some("alice"));
    assert!(View::parse(br#"{"backend":"go","method":null}"#).is_none());
    assert_eq!(
        View::parse(br#"{"method":"GET","path":"/","user":["a","b"]}"#)
            .unwrap()
            .user
            .as_deref(),
        Some(r#"["a","b"]"#)
    );

    let served = |body: &[u8]| Reply {
        status: 200,
        headers: vec![
            ("x-diff-backend".into(), "go".into()),
            ("x-request-id".into(), "r".into()),
        ],
        body: body.to_vec(),
    };
    let sent = AsSent::new("POST", vec!["api.example.com".into()], "/orders/1");
    let mut tally = Tally::new("HTTP/1.1");
    let bob = body.replace("alice", "bob");
    tally.record("ok".into(), &sent, Cred::Bob, Ok(served(bob.as_bytes())));
    tally.record(
        "wrong".into(),
        &sent,
        Cred::Alice,
        Ok(served(body.as_bytes())),
    );
    tally.record("no view".into(), &sent, Cred::Anonymous, Ok(served(b"")));
    let gateway = Reply {
        status: 401,
        headers: vec![("x-request-id".into(), "r".into())],
        body: br#"{"error":"unauthorized"}"#.to_vec(),
    };
    tally.record("gw".into(), &sent, Cred::Anonymous, Ok(gateway));
    let backend = Reply {
        status: 400,
        headers: vec![("x-request-id".into(), "r".into())],
        body: b"Bad Request".to_vec(),
    };
    tally.record("be".into(), &sent, Cred::Anonymous, Ok(backend));
    tally.record("none".into(), &sent, Cred::Anonymous, Err("closed".into()));
    assert_eq!(
        (
            tally.sent,
            tally.served,
            tally.refused_by_gateway,
            tally.refused_by_backend,
            tally.no_response
        ),
        (6, 3, 1, 1, 1)
    );
    assert_eq!(tally.served_protected_ok, 1);
    assert_eq!(tally.served_without_view, 1);
    let flagged: Vec<&str> = tally
        .violations
        .iter()
        .map(|v| v.request.as_str())
        .collect();
    assert_eq!(flagged, ["wrong", "no view"]);
    let text = report("go", &[&tally], Duration::from_millis(1500));
    assert!(text.contains("VIOLATION HTTP/1.1 #2"), "{text}");
}
