//! The built binary as a process, for signal and CLI tests.

use std::net::SocketAddr;

use pingora::server::Fds;

use super::*;

/// The built binary, running on sockets this test bound on `127.0.0.1:0` and handed over the
/// way a graceful upgrade does (`run --upgrade`), so there is no port to guess and no start-up to
/// wait for: connections queue in the backlog until the binary accepts them. Its JSON log lines
/// arrive on a channel, so tests wait for events it logs. Killed when dropped.
pub struct GatewayProcess {
    pub child: std::process::Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// The probes listener, when the YAML has a `{probes}` placeholder.
    pub probes: Option<SocketAddr>,
    /// The decision listener, when the YAML has a `{decision}` placeholder.
    pub decision: Option<SocketAddr>,
    /// The configuration file and the upgrade socket (for [`Self::take_over`]).
    config: std::path::PathBuf,
    sock: std::path::PathBuf,
    logs: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Lines read by [`Self::start`] while waiting, still to be seen by the test.
    pending: std::collections::VecDeque<String>,
}

impl GatewayProcess {
    /// Start the binary on `yaml` (with `{listen}` and `{admin}` placeholders), written to `dir`.
    /// Returns once it handles the shutdown signals (before that, SIGTERM would kill it).
    pub async fn start(yaml: &str, dir: &std::path::Path) -> GatewayProcess {
        let mut gw = Self::start_reading(yaml, dir, None).await;
        let mut seen = std::collections::VecDeque::new();
        let read = async {
            loop {
                let line = gw
                    .next_line()
                    .await
                    .expect("the gateway exited before handling signals");
                let ready = line.contains("shutdown signals handled");
                seen.push_back(line);
                if ready {
                    break;
                }
            }
        };
        // A bound on a broken test, not a synchronisation delay.
        tokio::time::timeout(std::time::Duration::from_secs(60), read)
            .await
            .expect("the gateway did not handle signals within 60 s");
        gw.pending = seen;
        gw
    }

    /// The next log line: those [`Self::start`] read first, then the binary's.
    async fn next_line(&mut self) -> Option<String> {
        match self.pending.pop_front() {
            Some(line) => Some(line),
            None => self.logs.recv().await,
        }
    }

    /// As [`Self::start`], but nothing reads the binary's stderr (a stalled log collector) until
    /// the returned sender is used: the pipe fills, and so does anything behind it.
    pub async fn start_holding_logs(
        yaml: &str,
        dir: &std::path::Path,
    ) -> (GatewayProcess, std::sync::mpsc::Sender<()>) {
        let (release, held) = std::sync::mpsc::channel();
        (Self::start_reading(yaml, dir, Some(held)).await, release)
    }

    async fn start_reading(
        yaml: &str,
        dir: &std::path::Path,
        held: Option<std::sync::mpsc::Receiver<()>>,
    ) -> GatewayProcess {
        use std::os::fd::AsRawFd;
        let (listener, listen) = bind_free();
        let (admin_listener, admin) = bind_free();
        let probes = yaml.contains("{probes}").then(bind_free);
        let decision = yaml.contains("{decision}").then(bind_free);
        let path = dir.join("gateway.yaml");
        let mut yaml = yaml
            .replace("{listen}", &listen.to_string())
            .replace("{admin}", &admin.to_string());
        if let Some((_, probes)) = &probes {
            yaml = yaml.replace("{probes}", &probes.to_string());
        }
        if let Some((_, decision)) = &decision {
            yaml = yaml.replace("{decision}", &decision.to_string());
        }
        std::fs::write(&path, yaml).unwrap();
        let sock = dir.join("upgrade.sock");
        let (child, logs) = spawn_binary(&path, &sock, held);
        let mut fds = Fds::new();
        fds.add(listen.to_string(), listener.as_raw_fd());
        fds.add(admin.to_string(), admin_listener.as_raw_fd());
        if let Some((probes_listener, probes)) = &probes {
            fds.add(probes.to_string(), probes_listener.as_raw_fd());
        }
        if let Some((decision_listener, decision)) = &decision {
            fds.add(decision.to_string(), decision_listener.as_raw_fd());
        }
        // Pingora's upgrade protocol: retried until the binary listens on the socket.
        let sock_path = sock.display().to_string();
        tokio::task::spawn_blocking(move || fds.send_to_sock(sock_path.as_str()).map(|_| ()))
            .await
            .unwrap()
            .unwrap();
        // The binary has its own copies now; closing ours lets the sockets close when it exits.
        drop((listener, admin_listener));
        GatewayProcess {
            child,
            listen,
            admin,
            probes: probes.map(|(_, a)| a),
            decision: decision.map(|(_, a)| a),
            config: path,
            sock,
            logs,
            pending: Default::default(),
        }
    }

    /// A second binary on the same configuration, started with `run --upgrade`: it waits on the
    /// upgrade socket for this one's listening sockets, which this one sends on `SIGQUIT`.
    /// Returns once the new binary is listening on that socket.
    pub async fn take_over(&self) -> GatewayProcess {
        let (child, logs) = spawn_binary(&self.config, &self.sock, None);
        let mut new = GatewayProcess {
            child,
            listen: self.listen,
            admin: self.admin,
            probes: self.probes,
            decision: self.decision,
            config: self.config.clone(),
            sock: self.sock.clone(),
            logs,
            pending: Default::default(),
        };
        // Pingora logs this once it listens on the upgrade socket and nothing has arrived yet.
        new.wait_for_log("No incoming socket transfer").await;
        new
    }

    /// Wait until the binary logs a line containing `needle`, and return it.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        let wait = async {
            while let Some(line) = self.next_line().await {
                if line.contains(needle) {
                    return line;
                }
            }
            panic!("the gateway exited without logging {needle:?}");
        };
        // A bound on a broken test, not a synchronisation delay.
        tokio::time::timeout(std::time::Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("no log line {needle:?} within 60 s"))
    }

    /// Every line still to come, until the binary exits (it must be stopping), and its status.
    pub async fn remaining_logs_until_exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let mut lines = Vec::new();
        let read = async {
            while let Some(line) = self.next_line().await {
                lines.push(line);
            }
        };
        // A bound on a broken test, not a synchronisation delay.
        tokio::time::timeout(std::time::Duration::from_secs(60), read)
            .await
            .expect("the gateway did not exit within 60 s");
        let status = self.child.wait().unwrap();
        (status, lines)
    }

    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary on `config`, taking its sockets over from `sock`, with its JSON log lines on a
/// channel (read only after `held` fires, when given).
fn spawn_binary(
    config: &std::path::Path,
    sock: &std::path::Path,
    held: Option<std::sync::mpsc::Receiver<()>>,
) -> (
    std::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--log-format", "json", "run", "--upgrade", "--upgrade-sock"])
        .arg(sock)
        .arg("-c")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, logs) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        if let Some(held) = held {
            let _ = held.recv();
        }
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    (child, logs)
}
