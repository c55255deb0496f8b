//! What admission may wait for: refreshing an issuer's keys for an unknown `kid`, and asking an
//! authorization server about an opaque token (RFC 7662).

use std::future::Future;

use crate::auth::introspection::{IntrospectionFault, Introspector};
use crate::snapshot::Issuer;

/// Refreshes an issuer's keys when a token names a `kid` they lack, and introspects opaque
/// tokens.
pub trait KeyRefresh {
    /// Refresh `issuer`'s keys for `kid`; `true` when they changed and the token is worth
    /// checking again.
    fn refresh(&self, issuer: &Issuer, kid: Option<&str>) -> impl Future<Output = bool> + Send;

    /// Why a refresh may not have happened, for `explain`.
    fn describe(&self) -> &'static str {
        "no new keys, or the last refresh was too recent"
    }

    /// Claim a DPoP proof across replicas: `Ok(false)` when another one claimed it first. This
    /// default claims nothing (`explain` and tests must not spend a client's proof).
    fn claim_proof(
        &self,
        _mirror: &crate::revocation::mirror::RedisMirror,
        _used: crate::auth::dpop::ProofUse,
    ) -> impl Future<Output = Result<bool, crate::revocation::mirror::RedisWriteError>> + Send {
        std::future::ready(Ok(true))
    }

    /// Run the rate limits' check in Redis ([`crate::rate_limit::redis`]); `None` when this
    /// caller does not ask Redis (`explain`, tests): the local table decides.
    fn rate_check(
        &self,
        _mirror: &crate::revocation::mirror::RedisMirror,
        _keys: &[String],
        _args: &[u64],
    ) -> impl Future<Output = Option<Result<Vec<i64>, crate::revocation::mirror::RedisWriteError>>> + Send
    {
        std::future::ready(None)
    }

    /// The answer for an opaque `token`: its introspector's cache, else its endpoint.
    fn introspect(
        &self,
        introspector: &Introspector,
        token: &str,
    ) -> impl Future<Output = Result<crate::auth::introspection::Claims, IntrospectionFault>> + Send
    {
        let cached = introspector
            .cached(token, crate::clock::unix_now())
            .unwrap_or(Err(IntrospectionFault::Unavailable("not_called")));
        std::future::ready(cached)
    }
}

/// Never refreshes: `explain` and unit tests see the keys as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRefresh;

impl KeyRefresh for NoRefresh {
    fn refresh(&self, _: &Issuer, _: Option<&str>) -> impl Future<Output = bool> + Send {
        std::future::ready(false)
    }

    fn describe(&self) -> &'static str {
        "this caller does not refresh keys"
    }
}

/// The request path's refresh: shared with every other request that needs it, bounded in time
/// (see `IssuerKeys::refresh_for_unknown_kid`); `on_refresh` is told which issuer refreshed.
pub struct Refresh<F> {
    pub on_refresh: F,
}

impl<F: Fn(&str) + Sync> KeyRefresh for Refresh<F> {
    async fn refresh(&self, issuer: &Issuer, kid: Option<&str>) -> bool {
        let refreshed = issuer.keys.refresh_for_unknown_kid(kid).await;
        if refreshed {
            (self.on_refresh)(&issuer.id);
        }
        refreshed
    }

    async fn introspect(
        &self,
        introspector: &Introspector,
        token: &str,
    ) -> Result<crate::auth::introspection::Claims, IntrospectionFault> {
        introspector.introspect(token, crate::clock::unix_now).await
    }

    async fn claim_proof(
        &self,
        mirror: &crate::revocation::mirror::RedisMirror,
        used: crate::auth::dpop::ProofUse,
    ) -> Result<bool, crate::revocation::mirror::RedisWriteError> {
        mirror.claim_once(&used.id, used.until).await
    }

    async fn rate_check(
        &self,
        mirror: &crate::revocation::mirror::RedisMirror,
        keys: &[String],
        args: &[u64],
    ) -> Option<Result<Vec<i64>, crate::revocation::mirror::RedisWriteError>> {
        Some(
            mirror
                .eval(crate::rate_limit::redis::script(), keys, args)
                .await,
        )
    }
}
