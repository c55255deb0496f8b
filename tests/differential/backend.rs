//! A backend stack, started by `tests/differential/run-backend.sh NAME` in its own process group.
use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A bound on a broken set-up (a backend that never listens), not a synchronisation delay:
/// the script prints `LISTENING <port>` once the backend accepts connections.
const START_BOUND: Duration = Duration::from_secs(60);

/// How many of the backend's last stderr lines a failure shows.
const STDERR_TAIL: usize = 40;

pub struct Backend {
    port: u16,
    child: Child,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        let mut child = Command::new("bash")
            .arg("tests/differential/run-backend.sh")
            .arg(name)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run tests/differential/run-backend.sh {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let keep = Arc::clone(&tail);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut kept = keep.lock().unwrap();
                if kept.len() == STDERR_TAIL {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            // Read to the end, so the backend never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Owned from here on, so a failed start still kills the group.
        let mut backend = Backend {
            port: 0,
            child,
            stderr: tail,
        };
        let listening = async {
            while let Some(line) = lines.recv().await {
                if let Some(port) = line.trim().strip_prefix("LISTENING ") {
                    return port.trim().parse::<u16>().ok();
                }
            }
            None
        };
        match tokio::time::timeout(START_BOUND, listening).await {
            Ok(Some(port)) => backend.port = port,
            Ok(None) => panic!(
                "backend {name} exited, or printed a malformed LISTENING line, before \
                 listening; its stderr:\n{}",
                backend.stderr_tail()
            ),
            Err(_) => panic!(
                "backend {name} printed no LISTENING line within {START_BOUND:?}; its \
                 stderr:\n{}",
                backend.stderr_tail()
            ),
        }
        backend
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap();
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // The whole process group: the script and the stack it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}
