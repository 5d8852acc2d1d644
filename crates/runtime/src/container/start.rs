//! `start`: releases the init waiting on the exec fifo, so it execs the
//! container's program.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::Container;
use crate::error::{Context, Error, Result};
use crate::state::Status;

impl Container {
    pub fn start(&mut self) -> Result<()> {
        match self.status() {
            Status::Created => {}
            Status::Running | Status::Paused => {
                return Err(Error::Init(
                    "cannot start an already running container".into(),
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
                return Err(Error::Init("container init exited before start".into()))
            }
            Err(e) => return Err(e).ctx(|| format!("open {}", fifo_path.display())),
        };
        fifo.write_all(b"0").ctx(|| "write exec fifo".into())?;
        drop(fifo);
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
