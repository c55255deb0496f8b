//! Writing a rendered [`GatewayError`] to the client.

use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::error::{render, GatewayError};

/// Answer the request with `error`, through the one renderer.
pub async fn reject(
    session: &mut Session,
    error: &GatewayError,
    request_id: &str,
) -> pingora::Result<()> {
    let rendered = render(error);
    let mut resp = ResponseHeader::build(rendered.status, Some(4))?;
    resp.insert_header(CONTENT_TYPE, "application/json")?;
    resp.insert_header(CONTENT_LENGTH, rendered.body.len())?;
    resp.insert_header(CACHE_CONTROL, "no-store")?;
    if !request_id.is_empty() {
        resp.insert_header(crate::request_id::HEADER, request_id)?;
    }
    if let Some(seconds) = rendered.retry_after {
        resp.insert_header(RETRY_AFTER, seconds.to_string())?;
    }
    if let Some(allow) = rendered.allow {
        resp.insert_header(ALLOW, &*allow)?;
    }
    if let Some(challenge) = rendered.www_authenticate {
        resp.insert_header(WWW_AUTHENTICATE, challenge)?;
    }
    // A rejected request's body is never read: the connection cannot be reused safely.
    if !session.is_body_empty() {
        session.set_keepalive(None);
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(rendered.body), true)
            .await?;
    }
    Ok(())
}
