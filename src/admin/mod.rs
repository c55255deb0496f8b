//! The admin listener: `/metrics`, `/healthz`, `/readyz` and the revocations API ([`revocations`]).
//! It listens on `admin.address`, never on a public listener. The probes listener
//! (`admin.probes_address`) is the same app without the API: read-only, for the pod IP.

pub mod revocations;

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Map, Value};

use crate::drain::InFlight;
use crate::metrics::Metrics;
use crate::snapshot::{Snapshot, SnapshotHolder};

/// Serves the admin endpoints from the current snapshot and the metrics registry.
pub struct AdminApp {
    snapshots: Arc<SnapshotHolder>,
    metrics: Metrics,
    /// Whether a drain has begun: `/readyz` then answers 503.
    in_flight: Arc<InFlight>,
    /// Whether `/revocations` is served: on the admin listener, never on the probes listener.
    api: bool,
}

impl AdminApp {
    /// The admin listener: the probes, the metrics and the API.
    pub fn new(snapshots: Arc<SnapshotHolder>, metrics: Metrics, in_flight: Arc<InFlight>) -> Self {
        AdminApp {
            snapshots,
            metrics,
            in_flight,
            api: true,
        }
    }

    /// The probes listener: `/healthz`, `/readyz` and `/metrics`, nothing that changes state.
    pub fn probes(
        snapshots: Arc<SnapshotHolder>,
        metrics: Metrics,
        in_flight: Arc<InFlight>,
    ) -> Self {
        AdminApp {
            snapshots,
            metrics,
            in_flight,
            api: false,
        }
    }
}

/// Readiness: every check by name, and whether all pass. The configuration is loaded by
/// construction (a snapshot exists); listeners were bound before the server started. A
/// draining gateway is not ready: load balancers that poll readiness stop sending sooner.
pub fn readiness(snapshot: &Snapshot, draining: bool) -> (bool, Value) {
    let mut checks = Map::new();
    checks.insert("config".into(), json!("ok"));
    let mut ready = !draining;
    if draining {
        checks.insert("shutdown".into(), json!("draining"));
    }
    for issuer in &snapshot.issuers {
        let state = if issuer.keys.is_loaded() {
            "ok"
        } else {
            ready = false;
            "keys not loaded"
        };
        checks.insert(format!("issuer_keys:{}", issuer.id), json!(state));
    }
    if let Some(mirror) = &snapshot.revocation_mirror {
        let status = mirror.status();
        let state = if !status.synced_once {
            "not synchronised with Redis yet".to_owned()
        } else if status.connected && status.ready() {
            "ok".to_owned()
        } else if status.connected {
            format!(
                "no answer from Redis for {}s (max_staleness {}s)",
                status.staleness.as_secs(),
                status.max_staleness.as_secs()
            )
        } else {
            format!(
                "disconnected from Redis for {}s (max_staleness {}s)",
                status.staleness.as_secs(),
                status.max_staleness.as_secs()
            )
        };
        ready &= status.ready();
        checks.insert("revocation_mirror".into(), json!(state));
    }
    (ready, json!({ "ready": ready, "checks": checks }))
}

/// Largest admin request body accepted.
const MAX_ADMIN_BODY: usize = 64 * 1024;

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, StatusCode> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ADMIN_BODY {
                    return Err(StatusCode::PAYLOAD_TOO_LARGE);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(StatusCode::BAD_REQUEST),
        }
    }
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    // Without a length Pingora delimits the body by closing the connection (no keep-alive for
    // a scraper or a probe).
    let length = http::HeaderValue::from(resp.body().len());
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, length);
    resp
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let snapshot = self.snapshots.current();
        let path = session.req_header().uri.path().to_owned();
        let method = session.req_header().method.clone();
        if !self.api && !matches!(path.as_str(), "/metrics" | "/healthz" | "/readyz") {
            return respond(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec());
        }
        if path == "/revocations" {
            let body = match read_body(session).await {
                Ok(b) => b,
                Err(status) => {
                    return respond(
                        status,
                        "application/json",
                        b"{\"error\":\"body too large or unreadable\"}".to_vec(),
                    )
                }
            };
            let now = crate::clock::unix_now();
            let (status, value) = revocations::handle(
                &method,
                &session.req_header().headers,
                &body,
                &snapshot,
                now,
            )
            .await;
            let mut resp = respond(status, "application/json", value.to_string().into_bytes());
            if status == StatusCode::UNAUTHORIZED {
                // RFC 6750 §3: a 401 names the scheme the client must use.
                resp.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
                );
            }
            return resp;
        }
        if method != http::Method::GET && method != http::Method::HEAD {
            return respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"GET only\n".to_vec(),
            );
        }
        match path.as_str() {
            "/metrics" => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(&snapshot).into_bytes(),
            ),
            "/healthz" => respond(
                StatusCode::OK,
                "application/json",
                b"{\"alive\":true}".to_vec(),
            ),
            "/readyz" => {
                let (ready, body) = readiness(&snapshot, self.in_flight.is_draining());
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                respond(status, "application/json", body.to_string().into_bytes())
            }
            _ => respond(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
