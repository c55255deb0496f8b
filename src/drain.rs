//! Graceful shutdown, in three steps:
//! 1. **Drain** ([`Signals`]): on `SIGTERM` the gateway keeps accepting for
//!    `shutdown.drain_delay` (the time a load balancer or Kubernetes takes to stop sending), and
//!    every HTTP/1 response says `Connection: close`, so each client moves to a new connection
//!    after its current request instead of reusing one that is about to close. A `SIGQUIT`
//!    upgrade drains the same way while both processes accept on the handed-over sockets.
//! 2. **Close**: Pingora closes the listeners; HTTP/2 connections get `GOAWAY` and idle HTTP/1
//!    connections are closed.
//! 3. **Wait** ([`exit_when_drained`]): Pingora sleeps the whole `grace_period_seconds`, then drops
//!    every task; the process exits as soon as the last in-flight request finishes instead.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pingora::server::{ExecutionPhase, ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::broadcast;

use crate::snapshot::SnapshotHolder;

/// The number of requests being served, and whether the gateway is draining.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    /// Requests ever started: a request that starts and ends within a quiet period still shows.
    started: AtomicU64,
    draining: AtomicBool,
    /// Requests that ended without a response: cut when the grace period ran out.
    cut: AtomicU64,
    lock: Mutex<()>,
    idle: Condvar,
}

/// Held by a request from its start to its end (dropped with the request context).
#[derive(Debug)]
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.started.fetch_add(1, Ordering::AcqRel);
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(Arc::clone(self))
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// From now on every response closes its connection.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether responses must close their connection (a drain has begun).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// How many requests ended without a response (cut at the end of the grace period).
    pub fn cut(&self) -> u64 {
        self.cut.load(Ordering::Acquire)
    }

    /// The last line before the process exits: how many requests were cut, if any.
    pub fn log_exit(&self, what: &str) {
        match self.cut() {
            0 => tracing::info!("{what}; exiting"),
            n => tracing::warn!(
                cut = n,
                "{what}; exiting: {n} request(s) were cut before they finished (shutdown.grace_period ran out, or a fast shutdown), each logged with reason shutdown_cut"
            ),
        }
    }

    /// How many requests have started so far (for [`Self::quiet_since`]).
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }

    /// Whether nothing is in flight and nothing started since `started` was read.
    pub fn quiet_since(&self, started: u64) -> bool {
        self.count() == 0 && self.started() == started
    }

    /// Block until no request is in flight, and none has started for `quiet`: once the
    /// listeners close, connections accepted just before (a TLS handshake, a request still being
    /// read) and HTTP/2 connections writing their last `GOAWAY` need a moment that the request
    /// count does not see.
    pub fn wait_quiet(&self, quiet: Duration) {
        loop {
            self.wait_idle();
            let started = self.started();
            std::thread::sleep(quiet);
            if self.quiet_since(started) {
                return;
            }
        }
    }

    /// Block until no request is in flight.
    pub fn wait_idle(&self) {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.count() > 0 {
            // The timeout only bounds a missed wake-up; the count is the truth.
            guard = match self.idle.wait_timeout(guard, Duration::from_millis(100)) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

impl InFlightGuard {
    /// The request ends without a response: counted for the exit line.
    pub fn record_cut(&self) {
        self.0.cut.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _lock = self.0.lock.lock();
            self.0.idle.notify_all();
        }
    }
}

/// Pingora's shutdown signals, with the drain in front: `SIGTERM` starts draining and ends the
/// wait for a signal only after the current snapshot's `shutdown.drain_delay` (a `SIGINT` meanwhile
/// still stops at once); `SIGQUIT` starts draining and hands the sockets over at once (Pingora then
/// keeps accepting beside the new process for a few seconds); `SIGINT` is a fast shutdown.
pub struct Signals {
    pub in_flight: Arc<InFlight>,
    pub snapshots: Arc<SnapshotHolder>,
}

/// A signal stream, or `None` (logged) if it cannot be installed: that signal then keeps its
/// default action (it terminates the process).
fn listen(kind: SignalKind, name: &str) -> Option<Signal> {
    match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(signal = name, error = %e, "cannot handle this signal");
            None
        }
    }
}

/// The next delivery of `signal`; never, when it could not be installed.
async fn next(signal: &mut Option<Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The signals that arrive once shutdown has begun: SIGINT still stops at once; SIGTERM and
/// SIGQUIT are logged as ignored (a second hand-over cannot start during a drain).
async fn after_shutdown_began(
    mut quit: Option<Signal>,
    mut terminate: Option<Signal>,
    mut interrupt: Option<Signal>,
) {
    loop {
        tokio::select! {
            _ = next(&mut interrupt) => {
                tracing::warn!("SIGINT during shutdown: stopping at once, requests in flight are cut");
                crate::telemetry::finish();
                std::process::exit(0);
            }
            _ = next(&mut quit) => tracing::warn!("SIGQUIT ignored: already shutting down, the sockets are not handed over again"),
            _ = next(&mut terminate) => tracing::warn!("SIGTERM ignored: already shutting down"),
        }
    }
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut quit = listen(SignalKind::quit(), "SIGQUIT");
        let mut terminate = listen(SignalKind::terminate(), "SIGTERM");
        let mut interrupt = listen(SignalKind::interrupt(), "SIGINT");
        tracing::info!(
            "shutdown signals handled: SIGTERM drains then stops, SIGQUIT hands the sockets to a new process, SIGINT stops at once"
        );
        let first = tokio::select! {
            _ = next(&mut quit) => ShutdownSignal::GracefulUpgrade,
            _ = next(&mut terminate) => ShutdownSignal::GracefulTerminate,
            _ = next(&mut interrupt) => return ShutdownSignal::FastShutdown,
        };
        self.in_flight.start_draining();
        // Pingora stops listening for signals once this returns: keep answering them.
        tokio::spawn(after_shutdown_began(quit, terminate, interrupt));
        if let ShutdownSignal::GracefulUpgrade = first {
            tracing::info!("SIGQUIT: handing the listening sockets over; every HTTP/1 response now closes its connection");
            return first;
        }
        let delay = self.snapshots.current().drain_delay;
        tracing::info!(
            drain_delay_ms = delay.as_millis() as u64,
            "SIGTERM: draining; still accepting until the drain delay ends, every HTTP/1 response now closes its connection, /readyz answers 503"
        );
        tokio::time::sleep(delay).await;
        tracing::info!("drain delay over; closing the listeners");
        first
    }
}

/// How long nothing must be in flight before the process exits after the listeners close
/// (bounded by the grace period; [`InFlight::wait_quiet`]).
pub const QUIET: Duration = Duration::from_secs(1);

/// On a separate thread: when Pingora enters its shutdown grace period (listeners closed), wait
/// for the in-flight requests to finish, and `quiet` without a new one, then exit with status 0.
pub fn exit_when_drained(
    mut phases: broadcast::Receiver<ExecutionPhase>,
    in_flight: Arc<InFlight>,
    quiet: Duration,
) {
    let spawned = std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || loop {
            match phases.blocking_recv() {
                Ok(ExecutionPhase::ShutdownGracePeriod) => {
                    tracing::info!(
                        in_flight = in_flight.count(),
                        "listeners closed; draining in-flight requests"
                    );
                    in_flight.wait_quiet(quiet);
                    in_flight.log_exit("drained");
                    crate::telemetry::finish();
                    std::process::exit(0);
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no drain watcher: shutdown waits the full grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_wakes_when_idle() {
        let in_flight = Arc::new(InFlight::default());
        let a = in_flight.enter();
        let b = in_flight.enter();
        assert_eq!(in_flight.count(), 2);
        let waiter = {
            let in_flight = Arc::clone(&in_flight);
            std::thread::spawn(move || in_flight.wait_idle())
        };
        drop(a);
        drop(b);
        waiter.join().unwrap();
        assert_eq!(in_flight.count(), 0);
    }

    #[test]
    fn a_request_that_started_and_ended_breaks_the_quiet() {
        let in_flight = Arc::new(InFlight::default());
        let before = in_flight.started();
        assert!(in_flight.quiet_since(before));
        drop(in_flight.enter());
        assert_eq!(in_flight.count(), 0);
        assert!(
            !in_flight.quiet_since(before),
            "a short request went unseen"
        );
        assert!(in_flight.quiet_since(in_flight.started()));
        let held = in_flight.enter();
        assert!(!in_flight.quiet_since(in_flight.started()));
        drop(held);
    }
}
