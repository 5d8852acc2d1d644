//! `start`: releases the init waiting on the exec fifo, so it execs the
//! container's program.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::Container;
use crate::error::{Context, Error, Result};
use crate::state::Status;

impl Container {
    /// Starts the program; returns warnings (a failed poststart hook does
    /// not fail start, as the spec says).
    pub fn start(&mut self) -> Result<Vec<String>> {
        match self.status() {
            Status::Created => {}
            Status::Running | Status::Paused => {
                return Err(Error::WrongState(
                    "cannot start an already running container",
                ))
            }
            Status::Stopped | Status::Creating => return Err(self.bad_status("start", "created")),
        }
        let fifo_path = self.dir.fifo();
        // Non-blocking: with the init (the only reader) gone, the open fails
        // with ENXIO instead of hanging.
        let mut fifo = match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo_path)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                return Err(Error::Protocol("container init exited before start".into()))
            }
            Err(e) => return Err(e).ctx(|| format!("open {}", fifo_path.display())),
        };
        fifo.write_all(b"0").ctx(|| "write exec fifo".into())?;
        wait_for_exec(&fifo);
        drop(fifo);
        std::fs::remove_file(&fifo_path).ctx(|| format!("remove {}", fifo_path.display()))?;
        Ok(self.run_hooks_warning(crate::hooks::Point::Poststart, Status::Running))
    }

    /// Runs the hooks of a point whose failures are only warnings.
    pub(crate) fn run_hooks_warning(
        &self,
        point: crate::hooks::Point,
        status: Status,
    ) -> Vec<String> {
        let hooks = crate::hooks::of(self.state.config.hooks().as_ref(), point);
        if hooks.is_empty() {
            return Vec::new();
        }
        let state = serde_json::to_vec(&self.state.report(status)).unwrap_or_default();
        hooks
            .iter()
            .filter_map(|h| {
                crate::hooks::run(h, &state)
                    .err()
                    .map(|e| format!("{} hook {}: {e}", point.name(), h.path().display()))
            })
            .collect()
    }

    pub(crate) fn bad_status(&self, action: &'static str, needed: &'static str) -> Error {
        Error::BadStatus {
            id: self.id().to_string(),
            status: self.status().to_string(),
            action,
            needed,
        }
    }
}

/// How long `start` waits for the program to be executed (the init may run
/// startContainer hooks first): past it, start returns anyway.
const EXEC_DEADLINE_MS: u16 = 10_000;

/// Waits until the init has executed the container's program (or died):
/// its read end of the fifo is close-on-exec and it is the only reader, so
/// the write end reports POLLERR then. The spec has the program running
/// when start returns, and poststart hooks run after it started; a signal
/// sent right after start then reaches the program, not the runtime's init
/// still on its way to execve (runtime-tools' killsig sends one at once,
/// to a shell that must have had the time to set its trap).
fn wait_for_exec(fifo: &std::fs::File) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(u64::from(EXEC_DEADLINE_MS));
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(EXEC_DEADLINE_MS);
        if ms == 0 {
            return;
        }
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let got = fds[0].revents().unwrap_or(PollFlags::empty());
                if got.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
                    return;
                }
            }
        }
    }
}
