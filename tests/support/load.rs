//! A bounded keep-alive HTTP/1.1 load with no retries, to count every failed request across a
//! drain or an upgrade. Each worker holds one connection and reuses it until a response says
//! `Connection: close`, like a pooled client; an error anywhere (connect, send, status, body) is a
//! failure, counted and kept, never retried (hyper's pooled client would retry some silently).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::sync::watch;

#[derive(Debug, Default)]
pub struct LoadStats {
    /// 200 responses read in full.
    pub ok: AtomicU64,
    /// Requests that did not get one, with why (in `errors`).
    pub failed: AtomicU64,
    /// Responses with `Connection: close`.
    pub closed: AtomicU64,
    /// Responses without it, to requests sent after [`Load::mark_draining`].
    pub kept_alive_after_drain: AtomicU64,
    /// Responses to requests sent after [`Load::mark_draining`].
    pub after_drain: AtomicU64,
    pub errors: parking_lot::Mutex<Vec<String>>,
    draining: AtomicBool,
}

impl LoadStats {
    /// Every request so far succeeded; otherwise fail with why each did not.
    pub fn assert_no_failure(&self) {
        assert_eq!(
            self.failed.load(Ordering::SeqCst),
            0,
            "failed requests: {:?}",
            self.errors.lock()
        );
    }
}

pub struct Load {
    pub stats: Arc<LoadStats>,
    stop: watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` connections to `addr`, each sending `GET path` back to back.
    pub fn start(addr: SocketAddr, path: &'static str, workers: usize) -> Load {
        let stats = Arc::new(LoadStats::default());
        let (stop, stopped) = watch::channel(false);
        let workers = (0..workers)
            .map(|_| tokio::spawn(worker(addr, path, Arc::clone(&stats), stopped.clone())))
            .collect();
        Load {
            stats,
            stop,
            workers,
        }
    }

    /// From now on, responses are expected to close their connection.
    pub fn mark_draining(&self) {
        self.stats.draining.store(true, Ordering::SeqCst);
    }

    /// Wait until `n` more requests have succeeded than when called, or one has failed (the
    /// caller's check of [`LoadStats::failed`] then reports why).
    pub async fn wait_for_more(&self, n: u64) {
        let target = self.stats.ok.load(Ordering::SeqCst) + n;
        let stats = Arc::clone(&self.stats);
        super::eventually(
            &format!("{n} more successful requests"),
            std::time::Duration::from_secs(60),
            || {
                let stats = Arc::clone(&stats);
                async move {
                    stats.ok.load(Ordering::SeqCst) >= target
                        || stats.failed.load(Ordering::SeqCst) > 0
                }
            },
        )
        .await;
    }

    /// Stop sending, let each worker finish its current request, and return the counts.
    pub async fn stop(self) -> Arc<LoadStats> {
        let _ = self.stop.send(true);
        for w in self.workers {
            w.await.unwrap();
        }
        self.stats
    }
}

async fn worker(
    addr: SocketAddr,
    path: &'static str,
    stats: Arc<LoadStats>,
    stopped: watch::Receiver<bool>,
) {
    let mut conn: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> = None;
    while !*stopped.borrow() {
        let draining = stats.draining.load(Ordering::SeqCst);
        let outcome = async {
            let sender = match conn.as_mut() {
                Some(s) => s,
                None => {
                    let stream = tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    let (sender, connection) =
                        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                            .await
                            .map_err(|e| format!("handshake: {e}"))?;
                    tokio::spawn(connection);
                    conn.insert(sender)
                }
            };
            let request = http::Request::get(path)
                .header(http::header::HOST, addr.to_string())
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let resp = sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let close = resp
                .headers()
                .get(http::header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let status = resp.status();
            resp.into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?;
            if status != 200 {
                return Err(format!("status {status}"));
            }
            Ok(close)
        }
        .await;
        match outcome {
            Ok(close) => {
                stats.ok.fetch_add(1, Ordering::SeqCst);
                if draining {
                    stats.after_drain.fetch_add(1, Ordering::SeqCst);
                }
                if close {
                    stats.closed.fetch_add(1, Ordering::SeqCst);
                    conn = None;
                } else if draining {
                    stats.kept_alive_after_drain.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::SeqCst);
                stats.errors.lock().push(e);
                conn = None;
            }
        }
    }
}
