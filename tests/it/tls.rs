//! HTTPS: TLS termination with certificates made in the test, SNI, hot certificate reload,
//! HTTP/2, client certificates, and HTTPS upstreams.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::support::tls::*;
use crate::support::*;
use serde_json::Value;

/// The standard test config with its listener speaking TLS (`tls` is the YAML of the listener's
/// `tls` mapping, indented under it).
fn tls_config(echo: SocketAddr, tls: &str) -> String {
    config(echo, closed_port(), closed_port()).replacen(
        "    address: \"{listen}\"\n",
        &format!("    address: \"{{listen}}\"\n    tls:\n{tls}"),
        1,
    )
}

fn pair_yaml(cert: &Path, key: &Path) -> String {
    format!(
        "        - cert_file: \"{}\"\n          key_file: \"{}\"\n",
        cert.display(),
        key.display()
    )
}

fn read_token() -> String {
    Issuer::rsa(&claims("read:orders"))
}

/// A gateway with one HTTPS listener serving `api.test` with a certificate of its own test CA.
struct Https {
    gw: TestGateway,
    ca: TestCa,
    _dir: tempfile::TempDir,
}

impl Https {
    /// `extra` is more YAML under the listener's `tls`; `{clients_ca}` in it names a file holding
    /// the CA of `clients`.
    async fn start(upstream: SocketAddr, extra: &str, clients: Option<&TestCa>) -> Https {
        Self::start_with(upstream, extra, clients, |yaml| yaml).await
    }

    /// [`Https::start`], with `edit` applied to the configuration.
    async fn start_with(
        upstream: SocketAddr,
        extra: &str,
        clients: Option<&TestCa>,
        edit: impl FnOnce(String) -> String,
    ) -> Https {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("portcullis test CA");
        let (cert, key) = ca.server(&["api.test"]).write(dir.path(), "api");
        let clients_ca = dir.path().join("clients-ca.crt");
        if let Some(c) = clients {
            std::fs::write(&clients_ca, c.pem()).unwrap();
        }
        let extra = extra.replace("{clients_ca}", &clients_ca.display().to_string());
        let yaml = tls_config(
            upstream,
            &format!("      certificates:\n{}{extra}", pair_yaml(&cert, &key)),
        );
        Https {
            gw: TestGateway::start(&edit(yaml)),
            ca,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://api.test:{}{path}", self.gw.addr.port())
    }

    fn client(&self, identity: Option<&Pair>) -> reqwest::Client {
        https_client(&self.ca.pem(), identity, &["api.test"], self.gw.addr)
    }

    async fn connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        connect(self.gw.addr, "api.test", &self.ca.pem(), None)
            .await
            .unwrap()
    }
}

/// HTTPS over HTTP/1.1 and over HTTP/2 (ALPN): the same routing and token checks.
#[tokio::test]
async fn https_requests_are_authenticated_over_http1_and_http2() {
    let https = Https::start(echo_upstream().await, "", None).await;
    let url = https.url("/orders/1");
    let mut config = client_config(&https.ca.pem(), None);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let http1_only = https_client_with(config, &["api.test"], https.gw.addr);
    for (client, version) in [
        (http1_only, http::Version::HTTP_11),
        (https.client(None), http::Version::HTTP_2),
    ] {
        let resp = client
            .get(&url)
            .bearer_auth(read_token())
            .send()
            .await
            .unwrap();
        assert_eq!((resp.version(), resp.status().as_u16()), (version, 200));
        let echoed: Value = resp.json().await.unwrap();
        assert_eq!(echoed["headers"]["x-auth-subject"][0], "alice");
        assert_eq!(echoed["headers"]["x-forwarded-proto"][0], "https");

        let resp = client.get(&url).send().await.unwrap();
        assert_eq!((resp.version(), resp.status().as_u16()), (version, 401));
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"portcullis\""
        );
        let insufficient = Issuer::rsa(&claims("profile"));
        let resp = client
            .get(&url)
            .bearer_auth(insufficient)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
    }
}

#[tokio::test]
async fn each_sni_name_gets_its_own_certificate_and_no_name_gets_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("portcullis test CA");
    let first = ca.server(&["a.test", "127.0.0.1"]);
    let second = ca.server(&["b.test"]);
    let (c1, k1) = first.write(dir.path(), "a");
    let (c2, k2) = second.write(dir.path(), "b");
    let yaml = tls_config(
        echo_upstream().await,
        &format!(
            "      certificates:\n{}{}",
            pair_yaml(&c1, &k1),
            pair_yaml(&c2, &k2)
        ),
    );
    let gw = TestGateway::start(&yaml);
    let a = connect(gw.addr, "a.test", &ca.pem(), None).await.unwrap();
    assert_eq!(served_certificate(&a), first.der());
    let b = connect(gw.addr, "b.test", &ca.pem(), None).await.unwrap();
    assert_eq!(served_certificate(&b), second.der());
    // An IP address sends no SNI: the default (first) pair answers.
    let none = connect(gw.addr, "127.0.0.1", &ca.pem(), None)
        .await
        .unwrap();
    assert_eq!(served_certificate(&none), first.der());
    // Both names proxy requests.
    let mut b = http1(b).await;
    assert_eq!(
        get_status(&mut b, "b.test", "/orders/1", &read_token()).await,
        200
    );
}

/// Kubernetes mounts a Secret as `<dir>/tls.crt -> ..data/tls.crt`, `..data -> ..<version>`, and
/// rotates it by re-pointing `..data` atomically ([`crate::support::kubelet::Volume`]).
struct SecretMount(crate::support::kubelet::Volume);

impl SecretMount {
    fn new(pair: &Pair) -> SecretMount {
        SecretMount(crate::support::kubelet::Volume::new(&[
            ("tls.crt", pair.cert_pem.as_bytes()),
            ("tls.key", pair.key_pem.as_bytes()),
        ]))
    }

    fn publish(&mut self, cert_pem: &str, key_pem: &str) {
        self.0.publish(&[
            ("tls.crt", cert_pem.as_bytes()),
            ("tls.key", key_pem.as_bytes()),
        ]);
    }

    fn yaml(&self) -> String {
        format!(
            "      certificates:\n{}",
            pair_yaml(&self.0.path("tls.crt"), &self.0.path("tls.key"))
        )
    }
}

/// The listener's certificate store, to wait on its reloads.
fn store(gw: &TestGateway) -> Arc<portcullis::tls::CertStore> {
    let snapshot = gw.snapshots.current();
    Arc::clone(&snapshot.listeners[0].tls.as_ref().unwrap().store)
}

async fn next_reload(
    outcomes: &mut tokio::sync::watch::Receiver<Option<portcullis::tls::CertReload>>,
) -> portcullis::tls::CertReload {
    tokio::time::timeout(std::time::Duration::from_secs(20), outcomes.changed())
        .await
        .expect("no certificate reload within 20 s")
        .unwrap();
    outcomes.borrow_and_update().clone().unwrap()
}

#[tokio::test]
async fn rotated_certificate_files_serve_new_handshakes_while_open_connections_keep_working() {
    let ca = TestCa::new("portcullis test CA");
    let old = ca.server(&["api.test"]);
    let mut mount = SecretMount::new(&old);
    let gw = TestGateway::start(&tls_config(echo_upstream().await, &mount.yaml()));
    let mut outcomes = store(&gw).outcomes();

    let open = connect(gw.addr, "api.test", &ca.pem(), None).await.unwrap();
    assert_eq!(served_certificate(&open), old.der());
    let mut open = http1(open).await;
    assert_eq!(
        get_status(&mut open, "api.test", "/orders/1", &read_token()).await,
        200
    );

    let new = ca.server(&["api.test"]);
    mount.publish(&new.cert_pem, &new.key_pem);
    assert_eq!(
        next_reload(&mut outcomes).await,
        portcullis::tls::CertReload::Applied
    );

    let fresh = connect(gw.addr, "api.test", &ca.pem(), None).await.unwrap();
    assert_eq!(
        served_certificate(&fresh),
        new.der(),
        "new handshakes get the new pair"
    );
    assert_eq!(
        get_status(&mut open, "api.test", "/orders/2", &read_token()).await,
        200,
        "the connection opened before the rotation still works"
    );
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains(
            "portcullis_tls_certificate_reloads_total{listener=\"test\",result=\"applied\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_mismatched_key_on_reload_is_refused_and_the_old_certificate_keeps_serving() {
    let ca = TestCa::new("portcullis test CA");
    let old = ca.server(&["api.test"]);
    let mut mount = SecretMount::new(&old);
    let gw = TestGateway::start(&tls_config(echo_upstream().await, &mount.yaml()));
    let mut outcomes = store(&gw).outcomes();

    // A new certificate published with the old key.
    let new = ca.server(&["api.test"]);
    mount.publish(&new.cert_pem, &old.key_pem);
    match next_reload(&mut outcomes).await {
        portcullis::tls::CertReload::Refused(reason) => {
            assert!(reason.contains("does not match"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let conn = connect(gw.addr, "api.test", &ca.pem(), None).await.unwrap();
    assert_eq!(served_certificate(&conn), old.der());
    let mut conn = http1(conn).await;
    assert_eq!(
        get_status(&mut conn, "api.test", "/orders/1", &read_token()).await,
        200
    );
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains(
            "portcullis_tls_certificate_reloads_total{listener=\"test\",result=\"refused\"} 1"
        ),
        "{metrics}"
    );

    // Fixing the key applies the new pair.
    mount.publish(&new.cert_pem, &new.key_pem);
    assert_eq!(
        next_reload(&mut outcomes).await,
        portcullis::tls::CertReload::Applied
    );
    let conn = connect(gw.addr, "api.test", &ca.pem(), None).await.unwrap();
    assert_eq!(served_certificate(&conn), new.der());
}

#[tokio::test]
async fn required_client_auth_refuses_clients_without_a_certificate_from_the_ca() {
    let clients = TestCa::new("clients CA");
    let https = Https::start(
        echo_upstream().await,
        "      client_auth: { mode: required, ca_file: \"{clients_ca}\" }\n",
        Some(&clients),
    )
    .await;
    let url = https.url("/orders/1");

    let anonymous = https.client(None);
    assert!(anonymous
        .get(&url)
        .bearer_auth(read_token())
        .send()
        .await
        .is_err());
    let stranger = TestCa::new("someone else").client("mallory");
    let foreign = https.client(Some(&stranger));
    assert!(foreign
        .get(&url)
        .bearer_auth(read_token())
        .send()
        .await
        .is_err());

    let batch = clients.client("batch-job");
    let trusted = https.client(Some(&batch));
    let resp = trusted
        .get(&url)
        .bearer_auth(read_token())
        .header("x-forwarded-client-cert", "Hash=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed: Value = resp.json().await.unwrap();
    let xfcc = echoed["headers"]["x-forwarded-client-cert"]
        .as_array()
        .unwrap();
    assert_eq!(xfcc.len(), 1, "the forged value is gone: {xfcc:?}");
    let expected = portcullis::tls::ClientCertificate::from_der(batch.der().as_ref());
    assert_eq!(
        xfcc[0],
        expected.forwarded_header().unwrap().to_str().unwrap()
    );
    assert!(
        expected.subject.contains("CN=batch-job"),
        "{}",
        expected.subject
    );
    // The token is still required.
    let resp = trusted.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn optional_client_auth_accepts_clients_with_and_without_a_certificate() {
    let clients = TestCa::new("clients CA");
    let https = Https::start(
        echo_upstream().await,
        "      client_auth: { mode: optional, ca_file: \"{clients_ca}\" }\n",
        Some(&clients),
    )
    .await;
    let url = https.url("/orders/1");
    let resp = https
        .client(None)
        .get(&url)
        .bearer_auth(read_token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed: Value = resp.json().await.unwrap();
    assert!(echoed["headers"].get("x-forwarded-client-cert").is_none());
    let with = https.client(Some(&clients.client("ui")));
    let resp = with
        .get(&url)
        .bearer_auth(read_token())
        .send()
        .await
        .unwrap();
    let echoed: Value = resp.json().await.unwrap();
    assert!(echoed["headers"]["x-forwarded-client-cert"][0]
        .as_str()
        .unwrap()
        .contains("CN=ui"));
}

/// RFC 8705 §3: a token bound to a client certificate (`cnf.x5t#S256`, the base64url SHA-256 of
/// the DER certificate) is accepted only on a connection that presented that certificate, on
/// every request (the second one is a verified-token cache hit); any other connection gets
/// `401 invalid_token`. RFC 9449 §7.2: a DPoP-bound token (`cnf.jkt`) is never accepted as a
/// bearer token.
#[tokio::test]
async fn a_certificate_bound_token_is_accepted_only_with_its_certificate() {
    use base64::Engine as _;
    let clients = TestCa::new("clients CA");
    let https = Https::start(
        echo_upstream().await,
        "      client_auth: { mode: optional, ca_file: \"{clients_ca}\" }\n",
        Some(&clients),
    )
    .await;
    let (ui, other) = (clients.client("ui"), clients.client("other"));
    let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, &ui.der()));
    let mut bound = claims("read:orders");
    bound["cnf"] = serde_json::json!({ "x5t#S256": thumbprint });
    let bound = Issuer::rsa(&bound);
    let url = https.url("/orders/1");
    let status = |client: reqwest::Client, token: String| {
        let url = url.clone();
        async move {
            let resp = client.get(url).bearer_auth(token).send().await.unwrap();
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), challenge)
        }
    };
    let invalid = Some(r#"Bearer realm="portcullis", error="invalid_token""#.to_owned());
    for _ in 0..2 {
        assert_eq!(
            status(https.client(Some(&ui)), bound.clone()).await,
            (200, None)
        );
    }
    assert_eq!(
        status(https.client(None), bound.clone()).await,
        (401, invalid.clone())
    );
    assert_eq!(
        status(https.client(Some(&other)), bound.clone()).await,
        (401, invalid.clone())
    );
    let mut dpop = claims("read:orders");
    dpop["cnf"] = serde_json::json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" });
    assert_eq!(
        status(https.client(Some(&ui)), Issuer::rsa(&dpop)).await,
        (401, invalid)
    );
    let metrics = https.gw.metrics_text().await;
    for reason in [
        "cnf_certificate_missing",
        "cnf_certificate_mismatch",
        "dpop_bound_token",
    ] {
        let series = format!(
            r#"portcullis_rejections_total{{mode="proxy",reason="{reason}",route="orders-read"}} 1"#
        );
        assert!(metrics.contains(&series), "{series}\n{metrics}");
    }
}

/// RFC 8705 end to end with a real authorization server (oidc-provider,
/// tests/support/authserver): its certificate-bound client gets a token naming the client
/// certificate it presented (`cnf.x5t#S256`), and the gateway, which fetched the server's keys by
/// discovery, accepts that token only on a connection presenting the same certificate. The
/// server's unbound client's token needs no certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_of_a_real_authorization_server() {
    let server = crate::support::authserver::AuthServer::start();
    let clients = TestCa::new("clients CA");
    let issuer = format!(
        "  - {{ id: as, issuer: \"{}\", discovery: true, audiences: [\"{AUDIENCE}\"], algorithms: [RS256], token_type: at+jwt }}\n",
        server.issuer
    );
    let https = Https::start_with(
        echo_upstream().await,
        "      client_auth: { mode: optional, ca_file: \"{clients_ca}\" }\n",
        Some(&clients),
        |yaml| {
            yaml.replacen("issuers:\n", &format!("issuers:\n{issuer}"), 1)
                .replacen("      issuers: [corp]\n", "      issuers: [corp, as]\n", 1)
        },
    )
    .await;
    // Ready once the keys of every issuer are loaded (the server's, by discovery).
    https.gw.wait_ready().await;
    let (ui, other) = (clients.client("ui"), clients.client("other"));
    let bound = server
        .token("bound", "bound-secret", "read:orders", Some(&ui.cert_pem))
        .await;
    let plain = server
        .token("plain", "plain-secret", "read:orders", None)
        .await;
    let url = https.url("/orders/1");
    let status = |identity: Option<&Pair>, token: &str| {
        https
            .client(identity)
            .get(url.clone())
            .bearer_auth(token)
            .send()
    };
    let ok = status(Some(&ui), &bound).await.unwrap();
    assert_eq!(ok.status(), 200);
    let echoed: Value = ok.json().await.unwrap();
    assert_eq!(echoed["headers"]["x-auth-client-id"][0], "bound");
    assert_eq!(status(None, &bound).await.unwrap().status(), 401);
    assert_eq!(status(Some(&other), &bound).await.unwrap().status(), 401);
    assert_eq!(status(None, &plain).await.unwrap().status(), 200);
    assert_eq!(status(Some(&other), &plain).await.unwrap().status(), 200);
}

/// Behind a TLS-terminating proxy (RFC 8705 §3 does not say how the certificate gets there):
/// with `forwarding.client_cert_header`, the certificate a trusted proxy names in Envoy's
/// `X-Forwarded-Client-Cert` (`Hash=`) binds as the TLS one does. The backend gets the gateway's
/// own `X-Forwarded-Client-Cert`, never the proxy's. From an untrusted peer the header is
/// ignored and stripped.
#[tokio::test]
async fn a_trusted_proxy_names_the_client_certificate_of_a_bound_token() {
    let echo = echo_upstream().await;
    let digest = ring::digest::digest(&ring::digest::SHA256, b"the client's DER certificate");
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let mut bound = claims("read:orders");
    bound["cnf"] = serde_json::json!({ "x5t#S256": base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        digest.as_ref()
    ) });
    let bound = Issuer::rsa(&bound);
    let forwarding = |trusted: &str| {
        format!(
            "{}forwarding: {{ client_cert_proxies: [\"{trusted}\"], client_cert_header: X-Forwarded-Client-Cert }}\n",
            config(echo, closed_port(), closed_port())
        )
    };
    let gw = TestGateway::start(&forwarding("127.0.0.1"));
    let call = |gw: &TestGateway, xfcc: Option<String>, token: &str| {
        let mut req = client().get(gw.url("/orders/1")).bearer_auth(token);
        if let Some(v) = xfcc {
            req = req.header("x-forwarded-client-cert", v);
        }
        req.send()
    };
    let ok = call(
        &gw,
        Some(format!("By=spiffe://mesh/gw;Hash={hex};Subject=\"CN=ui\"")),
        &bound,
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let echoed: Value = ok.json().await.unwrap();
    assert_eq!(
        echoed["headers"]["x-forwarded-client-cert"],
        serde_json::json!([format!("Hash={hex}")])
    );
    let other = format!("Hash={}", "0".repeat(64));
    let two = format!("Hash={hex},Hash={hex}");
    for xfcc in [None, Some(other), Some(two)] {
        let status = call(&gw, xfcc.clone(), &bound).await.unwrap().status();
        assert_eq!(status, 401, "{xfcc:?}");
    }
    // Not a trusted proxy: the header counts for nothing, and does not reach the backend.
    let gw = TestGateway::start(&forwarding("192.0.2.1"));
    let xfcc = Some(format!("Hash={hex}"));
    assert_eq!(call(&gw, xfcc.clone(), &bound).await.unwrap().status(), 401);
    let plain = call(&gw, xfcc, &Issuer::rsa(&claims("read:orders")))
        .await
        .unwrap();
    let echoed: Value = plain.json().await.unwrap();
    assert!(echoed["headers"].get("x-forwarded-client-cert").is_none());
}

/// An HTTPS echo upstream serving `pair`, requiring a client certificate from `clients` when
/// given.
async fn tls_upstream(pair: &Pair, clients: Option<&TestCa>) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(vec![pair.der()], key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    portcullis::demo::echo::serve_connection(tls).await;
                }
            });
        }
    });
    addr
}

/// A gateway routing `/<id>/…` to each upstream `(id, url, tls)`, where `tls` is the YAML
/// mapping of the upstream's `tls`.
fn upstreams_gateway(upstreams: &[(&str, String, String)]) -> TestGateway {
    let mut yaml = format!(
        "listeners:\n  - {{ name: test, address: \"{{listen}}\" }}\n\
         issuers:\n  - {{ id: corp, issuer: \"{ISSUER}\", jwks_file: jwks.json, audiences: [\"{AUDIENCE}\"] }}\n\
         upstreams:\n"
    );
    for (id, url, tls) in upstreams {
        yaml.push_str(&format!("  - {{ id: {id}, url: \"{url}\", tls: {tls} }}\n"));
    }
    yaml.push_str("routes:\n");
    for (id, _, _) in upstreams {
        yaml.push_str(&format!(
            "  - {{ id: {id}, match: {{ path_prefix: /{id} }}, upstream: {id} }}\n"
        ));
    }
    TestGateway::start(&yaml)
}

#[tokio::test]
async fn an_https_upstream_with_a_private_ca_works_and_an_untrusted_one_gives_502() {
    let dir = tempfile::tempdir().unwrap();
    let private = TestCa::new("internal CA");
    let upstream = tls_upstream(&private.server(&["billing.internal"]), None).await;
    let ca_file = dir.path().join("internal-ca.crt");
    std::fs::write(&ca_file, private.pem()).unwrap();
    let url = format!("https://{upstream}");
    let gw = upstreams_gateway(&[
        (
            "trusted",
            url.clone(),
            format!(
                "{{ ca_file: \"{}\", server_name: billing.internal }}",
                ca_file.display()
            ),
        ),
        ("untrusted", url, "{ server_name: billing.internal }".into()),
    ]);
    let token = read_token();
    let resp = client()
        .get(gw.url("/trusted/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed: Value = resp.json().await.unwrap();
    assert_eq!(echoed["target"], "/trusted/x");
    assert_eq!(
        status_of(&gw, "/untrusted/x", &token).await,
        502,
        "the system roots do not trust the internal CA"
    );
}

#[tokio::test]
async fn an_https_upstream_requiring_a_client_certificate_gets_the_configured_one() {
    let dir = tempfile::tempdir().unwrap();
    let private = TestCa::new("internal CA");
    let gateways = TestCa::new("gateway clients CA");
    let upstream = tls_upstream(&private.server(&["billing.internal"]), Some(&gateways)).await;
    let ca_file = dir.path().join("internal-ca.crt");
    std::fs::write(&ca_file, private.pem()).unwrap();
    let (cert, key) = gateways.client("portcullis").write(dir.path(), "client");
    let url = format!("https://{upstream}");
    let tls = format!(
        "ca_file: \"{}\", server_name: billing.internal",
        ca_file.display()
    );
    let gw = upstreams_gateway(&[
        (
            "with",
            url.clone(),
            format!(
                "{{ {tls}, client_cert_file: \"{}\", client_key_file: \"{}\" }}",
                cert.display(),
                key.display()
            ),
        ),
        ("without", url, format!("{{ {tls} }}")),
    ]);
    let token = read_token();
    assert_eq!(status_of(&gw, "/with/x", &token).await, 200);
    assert_eq!(
        status_of(&gw, "/without/x", &token).await,
        502,
        "the upstream demands a certificate"
    );
}

#[tokio::test]
async fn min_version_1_3_refuses_tls_1_2_clients() {
    // With CORS: a preflight below the minimum version is refused too, not answered.
    let https = Https::start_with(
        echo_upstream().await,
        "      min_version: \"1.3\"\n",
        None,
        |yaml| format!("{yaml}\ncors: {{ allowed_origins: [\"https://app.test\"] }}\n"),
    )
    .await;
    let gw = &https.gw;
    let ca = &https.ca;
    static TLS12_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    // `suites_13`: whether the client offers TLS 1.3 cipher suites at all.
    let request = |versions: &'static [&'static rustls::SupportedProtocolVersion],
                   suites_13: bool| {
        let ca = ca.pem();
        async move {
            let mut provider = rustls::crypto::ring::default_provider();
            if !suites_13 {
                provider
                    .cipher_suites
                    .retain(|s| s.version() == &rustls::version::TLS12);
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots(&ca))
                .with_no_client_auth();
            let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("api.test").unwrap();
            // Refused at the handshake, or at the first request.
            match tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
            {
                Err(_) => None,
                Ok(stream) => {
                    let mut conn = http1(stream).await;
                    let preflight = http::Request::options("/orders/1")
                        .header("host", "api.test")
                        .header("origin", "https://app.test")
                        .header("access-control-request-method", "GET")
                        .body(http_body_util::Empty::new())
                        .unwrap();
                    let preflight = conn.send_request(preflight).await.unwrap();
                    let preflight = preflight.status().as_u16();
                    let get = get_status(&mut conn, "api.test", "/orders/1", &read_token()).await;
                    Some((preflight, get))
                }
            }
        }
    };
    // A client offering no TLS 1.3 suite is turned away by the certificate resolver.
    assert_eq!(request(&TLS12_ONLY, false).await, None);
    // rustls offers its TLS 1.3 suites even when limited to 1.2, so its handshake completes
    // and the request is refused.
    assert_eq!(request(&TLS12_ONLY, true).await, Some((403, 403)));
    assert_eq!(request(&TLS13_ONLY, true).await, Some((204, 200)));
}

/// An upstream that accepts any WebSocket upgrade and then echoes bytes.
async fn websocket_upstream() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_websocket_upgrade_is_authenticated_once_then_proxied() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let https = Https::start(websocket_upstream().await, "", None).await;
    let upgrade = |token: Option<String>| {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        format!(
            "GET /orders/live HTTP/1.1\r\nHost: api.test\r\n{auth}Connection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    async fn head(s: &mut (impl AsyncReadExt + Unpin)) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                s.read(&mut byte).await.unwrap(),
                1,
                "closed early: {head:?}"
            );
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    let mut refused = https.connect().await;
    refused.write_all(upgrade(None).as_bytes()).await.unwrap();
    assert!(head(&mut refused).await.starts_with("HTTP/1.1 401"));

    let mut ws = https.connect().await;
    ws.write_all(upgrade(Some(read_token())).as_bytes())
        .await
        .unwrap();
    let answer = head(&mut ws).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    // Frames flow both ways without further authentication.
    for message in [&b"frame one"[..], b"frame two"] {
        ws.write_all(message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        ws.read_exact(&mut back).await.unwrap();
        assert_eq!(back, message);
    }
}
