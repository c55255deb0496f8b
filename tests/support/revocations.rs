//! Calls to the revocation admin API, and tokens to revoke.

use serde_json::{json, Value};

use super::{claims, client, Issuer, TestGateway};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// `yaml` with the admin API enabled (its token written to a file in `dir`) and `revocation`
/// settings (`""` for none).
pub fn with_admin(yaml: &str, dir: &std::path::Path, revocation: &str) -> String {
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let mut out = format!(
        "{yaml}\nadmin: {{ address: \"{{admin}}\", token_file: \"{}\" }}\n",
        token_file.display()
    );
    if !revocation.is_empty() {
        out.push_str(&format!("revocation: {{ {revocation} }}\n"));
    }
    out
}

pub async fn admin(
    gw: &TestGateway,
    method: reqwest::Method,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client().request(method, gw.admin_url("/revocations"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn revoke(gw: &TestGateway, body: Value) {
    let (status, answer) = admin(gw, reqwest::Method::POST, Some(ADMIN_TOKEN), Some(body)).await;
    assert_eq!(status, 201, "{answer}");
}

pub async fn status(gw: &TestGateway, token: &str) -> u16 {
    super::status_of(gw, "/orders/1", token).await
}

pub fn token(jti: &str, sub: &str, client_id: &str, iat: i64) -> String {
    let mut c = claims("read:orders");
    c["jti"] = json!(jti);
    c["sub"] = json!(sub);
    c["client_id"] = json!(client_id);
    c["iat"] = json!(iat);
    Issuer::rsa(&c)
}
