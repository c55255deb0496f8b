//! A real `redis-server` on a free port, and a TCP gate that can cut one gateway off from it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A `redis-server` child process with its data in a temporary directory (append-only file,
/// fsync on every write, so a killed server restarts with what it had). Killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        // A free port: bound, released, then given to redis-server. Another process could take
        // it in between; then redis-server fails to bind and we try another one.
        for _ in 0..5 {
            server.port = super::closed_port().port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any free port");
    }

    /// Start redis-server and wait for its "Ready to accept connections" line; `false` when it
    /// exited first (port taken).
    fn spawn(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (make test installs it)");
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(true);
                    }
                }
            }
            if let Some(tx) = ready.take() {
                let _ = tx.send(false);
            }
        });
        let ok = ready_rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or(false);
        if ok {
            self.child = Some(child);
        } else {
            let _ = child.kill();
            let _ = child.wait();
        }
        ok
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGKILL: no shutdown, no goodbye to clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Start again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(
            self.spawn(),
            "redis-server did not restart on {}",
            self.port
        );
    }

    /// A plain client connection, for checks the gateway does not expose.
    pub async fn connection(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP forwarder in front of a server that can be closed: closing drops every forwarded
/// connection and refuses new ones, as a network partition would; opening lets them through.
pub struct Gate {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    stalled: watch::Sender<bool>,
}

impl Gate {
    pub async fn start(target: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let generation = watch::channel(0u64).0;
        let stalled = watch::channel(false).0;
        let (is_open, cuts, stalls) = (Arc::clone(&open), generation.clone(), stalled.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let mut cut = cuts.subscribe();
                cut.mark_unchanged();
                let mut stall = stalls.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                        _ = async {
                            loop {
                                let stalled = *stall.borrow_and_update();
                                if stalled || stall.changed().await.is_err() {
                                    break;
                                }
                            }
                        } => {
                            // A silent drop: both sockets stay open, nothing moves, no FIN or
                            // RST, until the gate is cut.
                            let _held = (inbound, outbound);
                            let _ = cut.changed().await;
                        }
                    }
                });
            }
        });
        Gate {
            addr,
            open,
            generation,
            stalled,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Stop forwarding on every connection without closing any: a peer that vanished without a
    /// word (a dropped NAT entry, a partition), which only a round trip can detect.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }
}
