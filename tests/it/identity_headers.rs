//! Client-sent identity headers never reach the upstream, on protected and public routes.

use crate::support::*;

#[tokio::test]
async fn forged_identity_headers_are_stripped_on_protected_routes() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders"));
    let resp = client()
        .get(gw.url("/orders/1"))
        .bearer_auth(token)
        .header("X-Auth-Subject", "admin")
        .header("x-auth-subject", "root")
        .header("X-Auth-Roles", "superuser")
        .header("X-Legacy-User", "root")
        .send()
        .await
        .unwrap();
    let echoed = echoed(resp).await;
    assert_eq!(echoed.header("x-auth-subject").unwrap(), ["alice"]);
    assert_eq!(echoed.header("x-legacy-user").unwrap(), ["alice"]);
    assert_eq!(echoed.header("x-auth-roles"), None);
}

#[tokio::test]
async fn forged_identity_headers_are_stripped_on_public_routes() {
    let gw = standard_gateway().await;
    let resp = client()
        .get(gw.url("/public/page"))
        .header("X-Auth-Subject", "admin")
        .header("X-Auth-Scopes", "admin")
        .header("X-Legacy-User", "root")
        .send()
        .await
        .unwrap();
    let echoed = echoed(resp).await;
    assert_eq!(echoed.header("x-auth-subject"), None);
    assert_eq!(echoed.header("x-auth-scopes"), None);
    assert_eq!(
        echoed.header("x-legacy-user"),
        None,
        "per-route identity names are stripped everywhere"
    );
}

#[tokio::test]
async fn a_token_on_a_public_route_sets_no_identity() {
    let gw = standard_gateway().await;
    let token = Issuer::rsa(&claims("read:orders"));
    let resp = client()
        .get(gw.url("/healthz"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let echoed = echoed(resp).await;
    assert_eq!(echoed.header("x-auth-subject"), None);
    assert_eq!(echoed.header("authorization"), None);
}
