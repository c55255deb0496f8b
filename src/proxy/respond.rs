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
    cors: &[(http::HeaderName, http::HeaderValue)],
) -> pingora::Result<()> {
    let rendered = render(error);
    let mut resp = ResponseHeader::build(rendered.status, Some(4))?;
    // The browser application may read why it was refused (CORS, `crate::cors`).
    for (name, value) in cors {
        resp.insert_header(name.clone(), value.clone())?;
    }
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
    if let Some((ratelimit, policy)) = rendered.ratelimit {
        resp.insert_header(crate::rate_limit::headers::RATELIMIT, ratelimit)?;
        if let Some(policy) = policy {
            resp.insert_header(crate::rate_limit::headers::RATELIMIT_POLICY, policy)?;
        }
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

/// What a proxy failure becomes for the client.
enum Failure {
    /// Ours to render (502/504).
    Gateway(GatewayError),
    /// The client went away: nobody to answer.
    ClientGone,
    /// Pingora's own answer with this status (a malformed request body, an internal fault).
    Plain(u16),
}

fn classify(e: &pingora::Error) -> Failure {
    use pingora::{ErrorSource, ErrorType};
    match (e.esource(), e.etype()) {
        (
            ErrorSource::Upstream,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
        ) => Failure::Gateway(GatewayError::UpstreamTimeout),
        (ErrorSource::Upstream, _) => Failure::Gateway(GatewayError::UpstreamUnavailable),
        (
            ErrorSource::Downstream,
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
        ) => Failure::ClientGone,
        (ErrorSource::Downstream, _) => Failure::Plain(400),
        _ => Failure::Plain(500),
    }
}

/// Answer a request the proxy could not complete, and tell Pingora what was answered.
pub async fn fail(
    session: &mut Session,
    e: &pingora::Error,
    ctx: &mut crate::proxy::RequestCtx,
) -> pingora::proxy::FailToProxy {
    // The connection is not reused after a proxy failure: say so (`Connection: close`), or a
    // client reusing it would see its next request fail.
    session.set_keepalive(None);
    let error_code = match classify(e) {
        Failure::Gateway(error) => {
            let cors = super::cors_headers(session, ctx);
            if let Err(write_err) = reject(session, &error, &ctx.request_id, &cors).await {
                tracing::debug!(error = %write_err, "could not write the error response");
            }
            let status = error.status();
            ctx.error = Some(error);
            status
        }
        Failure::ClientGone => 0,
        Failure::Plain(status) => {
            let _ = session.respond_error(status).await;
            status
        }
    };
    pingora::proxy::FailToProxy {
        error_code,
        can_reuse_downstream: false,
    }
}
