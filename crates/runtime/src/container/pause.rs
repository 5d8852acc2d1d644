//! `pause` and `resume`: freeze and thaw every process of the container
//! through its freezer cgroup.

use super::Container;
use crate::error::{Error, Result};
use crate::state::Status;

impl Container {
    pub fn pause(&self) -> Result<()> {
        match self.status() {
            Status::Running | Status::Created => {}
            _ => return Err(self.bad_status("pause", "running")),
        }
        self.cgroups()?.freeze(true)
    }

    pub fn resume(&self) -> Result<()> {
        if self.status() != Status::Paused {
            return Err(Error::Init("container not paused".into()));
        }
        self.cgroups()?.freeze(false)
    }

    pub(crate) fn cgroups(&self) -> Result<&crate::cgroups::Manager> {
        self.state
            .cgroups
            .as_ref()
            .ok_or_else(|| Error::Init(format!("container {} has no cgroups", self.id())))
    }

    /// Host pids of the container's processes: from its cgroup, or (no
    /// cgroup) its pid namespace.
    pub fn pids(&self) -> Result<Vec<i32>> {
        if self.status() == Status::Stopped {
            return Ok(Vec::new());
        }
        match &self.state.cgroups {
            Some(c) => c.pids(),
            None => Ok(crate::signal::pids_in_pid_namespace_of(self.state.pid)),
        }
    }
}
