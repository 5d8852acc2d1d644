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
