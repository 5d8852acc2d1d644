//! `delete`: removes a stopped (or, forced, any) container and its state.

use std::time::{Duration, Instant};

use super::Container;
use crate::error::{Error, Result};
use crate::signal;
use crate::state::Status;

impl Container {
    /// Deletes the container; returns warnings (a failed poststop hook
    /// does not fail delete, as the spec says).
    pub fn delete(self, force: bool) -> Result<Vec<String>> {
        match self.status() {
            Status::Stopped => {}
            Status::Created | Status::Creating => self.kill_and_wait()?,
            Status::Running | Status::Paused if force => self.kill_and_wait()?,
            Status::Running | Status::Paused => {
                return Err(Error::Init(format!(
                    "cannot delete container {} that is not stopped: {}",
                    self.id(),
                    self.status()
                )))
            }
        }
        // A create killed after making the cgroups and before recording
        // them left them where the spec puts them.
        let cgroups = match &self.state.cgroups {
            Some(c) => Some(c.clone()),
            None => crate::cgroups::Manager::for_container(&self.state.config, self.id()).ok(),
        };
        if let Some(c) = cgroups {
            if self.state.cgroups.is_none() {
                // Whatever that create left in them (an init that never got
                // a pid on record) goes first.
                for pid in c.pids().unwrap_or_default() {
                    let _ = signal::send(pid, libc::SIGKILL);
                }
            }
            c.remove()?;
        }
        self.dir.remove()?;
        Ok(self.run_hooks_warning(crate::hooks::Point::Poststop, Status::Stopped))
    }

    /// SIGKILL to every process of the container, then waits (the caller is
    /// rarely the parent) until the init is gone or a zombie.
    fn kill_and_wait(&self) -> Result<()> {
        if self.state.pid <= 0 {
            return Ok(());
        }
        let _ = self.signal_all(libc::SIGKILL);
        let _ = signal::send(self.state.pid, libc::SIGKILL);
        // A paused container's processes die only once thawed.
        if let Some(c) = self.state.cgroups.as_ref().filter(|c| c.is_frozen()) {
            let _ = c.freeze(false);
        }
        // Our own child (run, or create's failure path) must be reaped.
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(self.state.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.state.init_alive() {
            if Instant::now() > deadline {
                return Err(Error::Init(format!(
                    "container {} did not die after SIGKILL",
                    self.id()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(self.state.pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
        Ok(())
    }
}
