//! Debian's `docker-registry` on 127.0.0.1 (plain HTTP unless the test
//! adds TLS), started by a test for itself: the loopback registry of the
//! push and pull tests and of the image round trips with a real Docker.

use std::net::TcpStream;

pub use crate::free_port;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The path of a Debian tool, or a panic naming the package script.
pub fn tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!("{name} is missing: scripts/install-deps.sh installs it");
}

/// Debian's docker-registry on 127.0.0.1 with a temp storage dir.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// `extra`: YAML added to the config (tls under http, auth).
    pub fn start(http_extra: &str, auth: &str) -> Registry {
        let bin = tool("docker-registry");
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{http_extra}{auth}",
                dir.path().join("data").display()
            );
            std::fs::write(dir.path().join("config.yml"), config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(&bin)
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut r = Registry {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = r.child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return r;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = r.child.kill();
        }
        panic!("docker-registry did not start");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
