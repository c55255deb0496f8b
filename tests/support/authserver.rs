//! A real authorization server: oidc-provider (tests/support/authserver/server.mjs), installed
//! into target/authserver/ by tests/support/authserver/setup.sh (`make test-deps` runs it; it
//! is quick and idempotent, so a test runs it too). It listens on a free loopback port of its
//! own choosing and says which; it exits when the test drops it (its stdin closes).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct AuthServer {
    /// `http://127.0.0.1:PORT`: the `iss` of its tokens, and where discovery starts.
    pub issuer: String,
    child: Child,
}

impl AuthServer {
    pub fn start() -> AuthServer {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let setup = Command::new("bash")
            .arg(root.join("tests/support/authserver/setup.sh"))
            .status()
            .expect("bash runs tests/support/authserver/setup.sh");
        assert!(setup.success(), "tests/support/authserver/setup.sh failed");
        // The public key of tests/fixtures/ec-private.pem: the gateway's `private_key_jwt` client.
        let fixture: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("tests/fixtures/jwks.json")).unwrap(),
        )
        .unwrap();
        let client_jwks = serde_json::json!({ "keys": [fixture["keys"][1]] });
        let mut child = Command::new("node")
            .arg(root.join("target/authserver/server.mjs"))
            .env("PORTCULLIS_CLIENT_JWKS", client_jwks.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is installed (make test installs it)");
        // Its first line, once it listens; EOF if it failed to start.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stdout = BufReader::new(stdout);
        stdout
            .read_line(&mut line)
            .expect("the authorization server's first line");
        // It writes notices later (oidc-provider's `attention`): keep reading, or it dies of
        // EPIPE on the first one.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let said: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the authorization server did not start ({e}): {line:?}"));
        let issuer = said["issuer"].as_str().expect("issuer").to_owned();
        AuthServer { issuer, child }
    }

    /// An access token for `client` (client_credentials, client_secret_basic) with `scope`. A
    /// `client_cert` (PEM) is the TLS client certificate the token endpoint sees (sent in the
    /// `x-client-cert` header, as a TLS terminator in front of it would): a certificate-bound
    /// client's token names it in `cnf.x5t#S256`.
    pub async fn token(
        &self,
        client: &str,
        secret: &str,
        scope: &str,
        client_cert: Option<&str>,
    ) -> String {
        self.token_with(client, secret, scope, client_cert, None)
            .await
    }

    /// [`AuthServer::token`], with a DPoP proof for `POST {issuer}/token` (RFC 9449 §5): a
    /// DPoP-bound client's token then names the proof's key in `cnf.jkt`.
    pub async fn token_with(
        &self,
        client: &str,
        secret: &str,
        scope: &str,
        client_cert: Option<&str>,
        dpop_proof: Option<&str>,
    ) -> String {
        let mut headers = Vec::new();
        if let Some(pem) = client_cert {
            headers.push(("x-client-cert", url_encode(pem)));
        }
        if let Some(proof) = dpop_proof {
            headers.push(("dpop", proof.to_owned()));
        }
        self.post(
            "/token",
            client,
            secret,
            &format!("grant_type=client_credentials&scope={}", url_encode(scope)),
            &headers,
        )
        .await
        .1["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token"))
            .to_owned()
    }

    /// An opaque access token (for the resource `https://opaque-api.test`) for `client`.
    pub async fn opaque_token(&self, client: &str, secret: &str, scope: &str) -> String {
        self.opaque_token_for("https://opaque-api.test", client, secret, scope, None)
            .await
    }

    /// An opaque access token for `resource` (`https://short-api.test`: three seconds of life),
    /// DPoP-bound when the request carries `dpop_proof`.
    pub async fn opaque_token_for(
        &self,
        resource: &str,
        client: &str,
        secret: &str,
        scope: &str,
        dpop_proof: Option<&str>,
    ) -> String {
        let body = format!(
            "grant_type=client_credentials&scope={}&resource={}",
            url_encode(scope),
            url_encode(resource)
        );
        let headers: Vec<(&str, String)> = dpop_proof
            .map(|p| ("dpop", p.to_owned()))
            .into_iter()
            .collect();
        let (_, answer) = self.post("/token", client, secret, &body, &headers).await;
        let token = answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {answer}"));
        assert!(token.split('.').count() < 3, "not opaque: {token}");
        token.to_owned()
    }

    /// A form `body` posted to `path` as `client` (client_secret_basic): the status and the JSON
    /// answer (`null` when there is none).
    async fn post(
        &self,
        path: &str,
        client: &str,
        secret: &str,
        body: &str,
        headers: &[(&str, String)],
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.issuer))
            .basic_auth(client, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    /// Revoke `token` (RFC 7009), as `client`.
    pub async fn revoke(&self, client: &str, secret: &str, token: &str) {
        let body = format!("token={}", url_encode(token));
        let (status, _) = self
            .post("/token/revocation", client, secret, &body, &[])
            .await;
        assert_eq!(status, 200, "revocation refused");
    }
}

/// Percent-encode everything but unreserved characters (RFC 3986 §2.3), as the gateway's own
/// introspection client encodes its form.
fn url_encode(text: &str) -> String {
    portcullis::auth::introspection::form_encode(text)
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
