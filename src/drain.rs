//! Graceful shutdown: count in-flight requests, and once Pingora has stopped accepting (its
//! grace period), exit as soon as the last one finishes instead of sleeping out the period.
//!
//! Pingora's graceful terminate closes the listeners, sleeps the whole `grace_period_seconds`,
//! then drops every task. The grace period is therefore the longest a request may take to drain;
//! [`exit_when_drained`] makes the common case (nothing or little in flight) fast.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pingora::server::ExecutionPhase;
use tokio::sync::broadcast;

/// The number of requests being served.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    lock: Mutex<()>,
    idle: Condvar,
}

/// Held by a request from its start to its end (dropped with the request context).
#[derive(Debug)]
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(Arc::clone(self))
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
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

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _lock = self.0.lock.lock();
            self.0.idle.notify_all();
        }
    }
}

/// On a separate thread: when Pingora enters its shutdown grace period (listeners closed), wait
/// for the in-flight requests to finish and exit the process with status 0.
pub fn exit_when_drained(
    mut phases: broadcast::Receiver<ExecutionPhase>,
    in_flight: Arc<InFlight>,
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
                    in_flight.wait_idle();
                    tracing::info!("drained; exiting");
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
}
