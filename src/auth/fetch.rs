//! Fetching an issuer's JWKS over HTTPS: directly from `jwks_uri`, or through OIDC discovery.
//!
//! The client verifies TLS, follows no redirect to another host, enforces a timeout and caps the
//! body size. Nothing from a client request (and so no token) is ever sent to the key endpoint.

use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use serde::Deserialize;

use super::jwks::{JwksError, KeyLoadError, KeySet};

/// Why keys could not be fetched. The messages name the URL, never a token (none is sent).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("GET {url}: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("GET {url}: status {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url}: body larger than {max} bytes")]
    TooLarge { url: String, max: usize },
    #[error("{url}: not a discovery document: {reason}")]
    NotDiscovery { url: String, reason: String },
    /// OIDC Discovery §4.3: the document's issuer must be the configured one.
    #[error("{url}: issuer \"{found}\" does not match the configured \"{expected}\"")]
    IssuerMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error(transparent)]
    KeyUrl(#[from] KeyUrlError),
    #[error("{url}: {source}")]
    NotJwks { url: String, source: JwksError },
    #[error("{url}: no usable signing key")]
    NoUsableKey { url: String },
    /// A source other than HTTP (tests) could not answer.
    #[error("{0}")]
    Unavailable(String),
}

/// Why a key URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyUrlError {
    #[error("\"{url}\" is not a URL: {reason}")]
    NotUrl { url: String, reason: String },
    #[error("\"{url}\": keys are fetched over https only (plain http only on loopback)")]
    NotHttps { url: String },
}

/// A successful fetch: the usable keys, the per-key problems, and the server's `max-age`.
#[derive(Debug)]
pub struct Fetched {
    pub keys: KeySet,
    pub key_errors: Vec<KeyLoadError>,
    pub max_age: Option<Duration>,
}

/// Where keys come from. The background refresher only knows this trait, so its timing is
/// tested with paused time and an in-memory source, and its I/O with a real HTTP server.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    async fn fetch(&self) -> Result<Fetched, FetchError>;
}

impl std::fmt::Debug for dyn KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySource")
    }
}

/// How remote key documents are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A JWKS URL.
    Jwks(String),
    /// OIDC discovery for this exact issuer: `{issuer}/.well-known/openid-configuration`.
    Discovery { issuer: String },
}

/// Fetches a remote key set with a hardened HTTP client.
pub struct HttpKeySource {
    remote: Remote,
    client: reqwest::Client,
    max_bytes: usize,
}

#[derive(Debug, Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

impl HttpKeySource {
    pub fn new(remote: Remote, timeout: Duration, max_bytes: usize) -> Result<Self, FetchError> {
        // reqwest takes the process-wide rustls provider; make sure there is one.
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            // Follow at most 3 redirects, and only on the same host and scheme.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt.previous().first().is_some_and(|first| {
                    first.host_str() == attempt.url().host_str()
                        && first.scheme() == attempt.url().scheme()
                });
                if attempt.previous().len() >= 3 || !same_origin {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(FetchError::Client)?;
        Ok(HttpKeySource {
            remote,
            client,
            max_bytes,
        })
    }

    /// GET `url`, at most `max_bytes` of body; returns the body and the `max-age`.
    async fn get(&self, url: &str) -> Result<(BytesMut, Option<Duration>), FetchError> {
        let failed = |source| FetchError::Request {
            url: url.to_owned(),
            source,
        };
        let mut resp = self.client.get(url).send().await.map_err(failed)?;
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: resp.status(),
            });
        }
        let max_age = resp
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge {
                    url: url.to_owned(),
                    max: self.max_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    async fn jwks_url(&self) -> Result<String, FetchError> {
        match &self.remote {
            Remote::Jwks(url) => Ok(url.clone()),
            Remote::Discovery { issuer } => {
                let url = discovery_url(issuer);
                let (body, _) = self.get(&url).await?;
                let doc: DiscoveryDocument =
                    serde_json::from_slice(&body).map_err(|e| FetchError::NotDiscovery {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
                // OIDC Discovery §4.3: the issuer in the document must be identical to the one
                // the configuration trusts, or the keys could belong to someone else.
                if doc.issuer != *issuer {
                    return Err(FetchError::IssuerMismatch {
                        url,
                        found: doc.issuer,
                        expected: issuer.clone(),
                    });
                }
                check_key_url(&doc.jwks_uri)?;
                Ok(doc.jwks_uri)
            }
        }
    }
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<Fetched, FetchError> {
        let url = self.jwks_url().await?;
        let (body, max_age) = self.get(&url).await?;
        let (keys, key_errors) = match KeySet::from_jwks_json(&body) {
            Ok(parsed) => parsed,
            Err(source) => return Err(FetchError::NotJwks { url, source }),
        };
        if keys.is_empty() {
            return Err(FetchError::NoUsableKey { url });
        }
        Ok(Fetched {
            keys,
            key_errors,
            max_age,
        })
    }
}

/// `{issuer}/.well-known/openid-configuration`, without a doubled slash.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Keys are only fetched over HTTPS, or plain HTTP on a loopback address (local IdPs, tests).
pub fn check_key_url(url: &str) -> Result<(), KeyUrlError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| KeyUrlError::NotUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(KeyUrlError::NotHttps {
            url: url.to_owned(),
        }),
    }
}

/// The `max-age` directive of a `Cache-Control` value (RFC 9111 §5.2.2.1).
pub fn parse_max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        value
            .trim()
            .trim_matches('"')
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_max_age("Max-Age=\"60\", must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_max_age("no-cache"), None);
        assert_eq!(parse_max_age("max-age=soon"), None);
    }

    #[test]
    fn key_urls_must_be_https_unless_loopback() {
        assert!(check_key_url("https://idp.example.com/keys").is_ok());
        assert!(check_key_url("http://127.0.0.1:8080/keys").is_ok());
        assert!(check_key_url("http://localhost/keys").is_ok());
        assert!(check_key_url("http://[::1]:9/keys").is_ok());
        assert!(check_key_url("http://idp.example.com/keys").is_err());
        assert!(check_key_url("ftp://idp.example.com/keys").is_err());
    }

    #[test]
    fn discovery_url_has_one_slash() {
        assert_eq!(
            discovery_url("https://idp/realms/a/"),
            "https://idp/realms/a/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://idp"),
            "https://idp/.well-known/openid-configuration"
        );
    }
}
