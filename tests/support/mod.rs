//! Test support, by concern: [`tokens`] (fixture keys, claims, signing), [`upstreams`] (echo,
//! silent, closed, gated), [`gateway`] (the real gateway in-process on 127.0.0.1:0), [`process`]
//! (the built binary), plus key servers, Redis, TLS and revocation helpers.
#![allow(dead_code)]

pub mod authserver;
pub mod gateway;
pub mod keyserver;
pub mod kubelet;
pub mod load;
pub mod logs;
pub mod nginx;
pub mod process;
pub mod redis;
pub mod revocations;
pub mod tls;
pub mod tokens;
pub mod upstreams;

// Each test binary uses part of the support: the re-exports it does not use are not an error.
#[allow(unused_imports)]
pub use gateway::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use tokens::*;
#[allow(unused_imports)]
pub use upstreams::*;

/// Poll `check` every 10 ms until it holds; fail the test past `within` (a bound on a broken
/// test, not a synchronisation delay: the condition is what the test waits for).
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
