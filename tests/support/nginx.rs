//! A real nginx (Debian's `nginx-light`, which has `auth_request`) on a free port, with a
//! configuration of the test's, in the foreground (no daemon, no master). Killed on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub struct Nginx {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// Start nginx with `server` (the inside of one `server { }` block; `{listen}` is replaced by
    /// the address it listens on).
    pub async fn start(server: &str) -> Nginx {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let addr = super::closed_port();
            let d = dir.path().display();
            let conf = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 128; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
                 server {{\n{}\n  }}\n}}\n",
                server.replace("{listen}", &addr.to_string())
            );
            let path = dir.path().join("nginx.conf");
            std::fs::write(&path, conf).unwrap();
            // Debian installs it in /usr/sbin, which a non-root PATH may lack.
            let binary = match std::path::Path::new("/usr/sbin/nginx").exists() {
                true => "/usr/sbin/nginx",
                false => "nginx",
            };
            let mut child = Command::new(binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx is installed (make test installs nginx-light)");
            // Up when it accepts; gone when the port was taken (then try another one).
            let started = std::time::Instant::now();
            loop {
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Nginx { addr, dir, child };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(20),
                    "nginx did not listen: {}",
                    std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            assert!(
                log.contains("Address already in use"),
                "nginx failed: {log}"
            );
        }
        panic!("nginx did not start on any free port");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// nginx's error log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
