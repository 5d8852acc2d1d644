//! `start`: releases the init waiting on the exec fifo, so it execs the
//! container's program.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::Container;
use crate::error::{Context, Error, Result};
use crate::state::Status;

impl Container {
    pub fn start(&mut self) -> Result<()> {
        match self.status() {
            Status::Created => {}
            Status::Stopped => return Err(self.bad_status("start", "created")),
            Status::Running | Status::Paused => {
                return Err(Error::Init(
                    "cannot start an already running container".into(),
                ))
            }
            Status::Creating => return Err(self.bad_status("start", "created")),
        }
        let fifo_path = self.dir.fifo();
        // Non-blocking, so a dead init cannot hang us: we poll and check.
        let mut fifo = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo_path)
            .ctx(|| format!("open {}", fifo_path.display()))?;
        loop {
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(&fifo),
                PollFlags::POLLIN,
            )];
            match poll(&mut fds, PollTimeout::from(100u8)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => {}
                Ok(_) => {
                    let mut buf = [0u8; 1];
                    match fifo.read(&mut buf) {
                        Ok(1) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e).ctx(|| "read exec fifo".into()),
                    }
                }
                Err(e) => return Err(e).ctx(|| "poll exec fifo".into()),
            }
            if !self.state.init_alive() {
                return Err(Error::Init("container init exited before start".into()));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::fs::remove_file(&fifo_path).ctx(|| format!("remove {}", fifo_path.display()))?;
        Ok(())
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
