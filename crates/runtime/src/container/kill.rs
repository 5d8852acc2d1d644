//! `kill`: a signal to the init, or with `all` to every process of the
//! container.

use super::Container;
use crate::error::{Context, Error, Result};
use crate::signal;
use crate::state::Status;

impl Container {
    pub fn kill(&self, sig: i32, all: bool) -> Result<()> {
        if self.status() == Status::Stopped {
            return Err(Error::NotRunning);
        }
        if all {
            for pid in signal::pids_in_pid_namespace_of(self.state.pid) {
                match signal::send(pid, sig) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => return Err(e).ctx(|| format!("send signal {sig} to {pid}")),
                }
            }
            return Ok(());
        }
        match signal::send(self.state.pid, sig) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ESRCH) => Err(Error::NotRunning),
            Err(e) => Err(e).ctx(|| format!("send signal {sig} to the container")),
        }
    }
}
