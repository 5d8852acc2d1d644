//! A private `dockerd` from Debian's docker.io (its own data root, exec
//! root and socket; the containerd it manages): the reference for Docker
//! compatibility tests, and a client of berth-runtime.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::snippet::{bash, capture, installed, Out};

/// Debian's client (docker.io), which matches its daemon; another `docker`
/// earlier on PATH may be a different major version.
pub const CLIENT: &str = "/usr/bin/docker";

/// A running private dockerd; dropped, it is stopped and its state removed.
#[derive(Debug)]
pub struct Dockerd {
    dir: PathBuf,
    child: Option<Child>,
}

impl Dockerd {
    /// Starts dockerd with `extra` flags (`--add-runtime ...`) and imports
    /// the busybox fixture as `bb:1` (with CMD sh); None (said, or a failure under CI)
    /// without docker.io or root.
    pub fn start(extra: &[&str]) -> Option<Dockerd> {
        let missing = !installed("dockerd") || !Path::new(CLIENT).exists();
        let root = nix::unistd::Uid::effective().is_root();
        if missing || !root {
            let why = if missing {
                "docker.io (dockerd, /usr/bin/docker) is not installed"
            } else {
                "not root"
            };
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            return None;
        }
        // Short: containerd's sockets live under the exec root. Numbered:
        // the tests of one process (cargo test's threads) each have one.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/berth-dk-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("d.sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let mut d = Dockerd {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = d.sh("$D version --format '{{.Server.Version}}'");
            if out.code() == 0 {
                break;
            }
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "dockerd did not come up ({exited:?})\n{out}\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let tar = crate::busybox_tar(&d.dir);
        // CMD sh, as Store::import_busybox gives berth's copy.
        let out = d.sh(&format!(
            "$D import -c 'CMD [\"sh\"]' {} bb:1",
            tar.display()
        ));
        assert_eq!(out.code(), 0, "docker import\n{out}");
        Some(d)
    }

    /// bash with $D (the docker client on this daemon).
    pub fn sh(&self, snippet: &str) -> Out {
        let mut cmd = bash();
        cmd.arg(snippet).env(
            "D",
            format!("{CLIENT} -H unix://{}", self.dir.join("d.sock").display()),
        );
        capture(cmd, snippet)
    }

    /// The end of dockerd's log.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = self.sh("$D ps -aq | xargs -r $D rm -f >/dev/null 2>&1");
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // What dockerd leaves mounted (its managed containerd's state,
        // shm of containers), deepest first.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {0}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.display()
            ))
            .status();
        if std::thread::panicking() && std::env::var_os("BERTH_TEST_KEEP").is_some() {
            eprintln!("kept {}", self.dir.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
