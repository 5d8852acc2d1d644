//! `kill`: a signal to the init, or with `all` to every process of the
//! container.

use super::Container;
use crate::error::{Context, Error, Result};
use crate::signal;
use crate::state::Status;

impl Container {
    /// Signals every process of the container. With a freezer, the cgroup
    /// is frozen meanwhile, so nothing can fork a process that escapes the
    /// signal (runc does the same).
    pub(crate) fn signal_all(&self, sig: i32) -> Result<()> {
        let frozen = match &self.state.cgroups {
            Some(c) if !c.is_frozen() => c.freeze(true).is_ok(),
            _ => false,
        };
        let result = self.pids().and_then(|pids| {
            for pid in pids {
                match signal::send(pid, sig) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => return Err(e).ctx(|| format!("send signal {sig} to {pid}")),
                }
            }
            Ok(())
        });
        if frozen {
            if let Some(c) = &self.state.cgroups {
                let _ = c.freeze(false);
            }
        }
        result
    }

    pub fn kill(&self, sig: i32, all: bool) -> Result<()> {
        if self.status() == Status::Stopped {
            return Err(Error::NotRunning);
        }
        if all {
            return self.signal_all(sig);
        }
        match signal::send(self.state.pid, sig) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ESRCH) => Err(Error::NotRunning),
            Err(e) => Err(e).ctx(|| format!("send signal {sig} to the container")),
        }
    }
}
