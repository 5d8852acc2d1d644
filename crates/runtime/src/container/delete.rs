//! `delete`: removes a stopped (or, forced, any) container and its state.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Container;
use crate::error::{Error, Result};
use crate::signal;
use crate::state::Status;

impl Container {
    /// Deletes the container; returns warnings (a failed poststop hook
    /// does not fail delete, as the spec says).
    pub fn delete(self, force: bool) -> Result<Vec<String>> {
        self.delete_with(force, None, false)
            .map(|(warnings, _)| warnings)
    }

    /// [`Container::delete`], but the state directory is renamed to
    /// `aside` (a caller's trash, deleted later) instead of deleted now:
    /// a directory freed costs a synchronous discard on a disk mounted
    /// `discard` (no cost on a tmpfs, where the rename fails across file
    /// systems and the directory is deleted here). Also returns whether
    /// it was moved.
    pub fn delete_moving_state(self, force: bool, aside: &Path) -> Result<(Vec<String>, bool)> {
        self.delete_with(force, Some(aside), false)
    }

    /// [`Container::delete_moving_state`], and when the state directory
    /// was moved and nothing of the container can be left in its cgroups
    /// (a pid namespace of its own, whose init is reaped: the kernel killed
    /// every other process of it), the cgroups are left for whoever deletes
    /// `aside` to remove with [`remove_trashed_cgroups`]: their paths are
    /// in its state. Ten rmdirs (v1) off the caller's path.
    pub fn delete_moving_state_and_cgroups(
        self,
        force: bool,
        aside: &Path,
    ) -> Result<(Vec<String>, bool)> {
        self.delete_with(force, Some(aside), true)
    }

    fn delete_with(
        self,
        force: bool,
        aside: Option<&Path>,
        cgroups_aside: bool,
    ) -> Result<(Vec<String>, bool)> {
        match self.status() {
            Status::Stopped => {}
            Status::Created | Status::Creating => self.kill_and_wait()?,
            Status::Running | Status::Paused if force => self.kill_and_wait()?,
            Status::Running | Status::Paused => {
                return Err(Error::NotStopped {
                    id: self.id().to_string(),
                    status: self.status().to_string(),
                })
            }
        }
        // A create killed after making the cgroups and before recording
        // them left them where the spec puts them.
        let cgroups = match &self.state.cgroups {
            Some(c) => Some(c.clone()),
            None => crate::cgroups::Manager::for_container(&self.state.config, self.id())
                .ok()
                .and_then(|c| crate::cgroups::unless_rootless_unlimited(c, &self.state.config)),
        };
        // Moved aside with its cgroups still recorded in it, they are left
        // for whoever deletes it (nothing can be in them).
        let mut moved = match aside {
            Some(to) if cgroups_aside && self.all_gone_with_init() => self.dir.move_to(to),
            _ => false,
        };
        if let Some(c) = cgroups.filter(|_| !moved) {
            remove_cgroups(&c)?;
        }
        if let Some(below) = self.state.host_mounts_below {
            crate::rootfs::detach_host_mounts(&self.state.rootfs, below)?;
        }
        if !moved {
            moved = aside.is_some_and(|to| self.dir.move_to(to));
        }
        if !moved {
            self.dir.remove()?;
        }
        let warnings = self.run_hooks_warning(crate::hooks::Point::Poststop, Status::Stopped);
        Ok((warnings, moved))
    }

    /// Whether no process of the container can outlive its init: stopped
    /// (the init reaped or gone), in a pid namespace it made, with its
    /// cgroups recorded (so that whoever finds the state can remove them).
    fn all_gone_with_init(&self) -> bool {
        let own_pid_ns = self
            .state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| {
                ns.iter().any(|n| {
                    n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none()
                })
            });
        own_pid_ns
            && self.state.cgroups.is_some()
            && self.state.host_mounts_below.is_none()
            && self.status() == Status::Stopped
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
                return Err(Error::Unkillable(self.id().to_string()));
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

/// Removes what a create killed before it wrote any state left under
/// `root/<id>`: the processes in the cgroups at `cgroups_path` (where the
/// caller's specs put them), the cgroups and the directory.
pub fn purge(root: &Path, id: &str, cgroups_path: &Path) -> Result<()> {
    crate::state::validate_id(id)?;
    let mut spec = crate::template::default_spec(false);
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_cgroups_path(Some(cgroups_path.to_path_buf()));
    spec.set_linux(Some(linux));
    if let Ok(c) = crate::cgroups::Manager::for_container(&spec, id) {
        kill_remaining(&c);
        c.remove()?;
    }
    crate::state::StateDir {
        path: root.join(id),
    }
    .remove()
}

/// Removes the cgroups recorded in the state directory `dir` that
/// [`Container::delete_moving_state_and_cgroups`] moved aside (whatever
/// is still in them killed first, as a delete would); the directory
/// itself is the caller's to delete afterwards. A directory without state
/// (or without cgroups in it) has nothing to remove.
pub fn remove_trashed_cgroups(dir: &Path) -> Result<()> {
    /// Only the cgroups of the state (which holds the whole spec besides).
    #[derive(serde::Deserialize)]
    struct Recorded {
        cgroups: Option<crate::cgroups::Manager>,
    }
    let path = dir.join(crate::state::StateDir::STATE);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                context: format!("read {}", path.display()),
                source: e,
            })
        }
    };
    let Ok(Recorded { cgroups: Some(c) }) = serde_json::from_slice::<Recorded>(&data) else {
        return Ok(());
    };
    remove_cgroups(&c)
}

/// Removes a container's cgroups. Whatever is still in them dies first:
/// processes of a create that was killed half way (an init blocked on its
/// exec fifo, recorded as "creating" by a creator that is gone, so the
/// state says stopped), or a frozen straggler. The usual end has nothing
/// left (the init reaped, and with a pid namespace of its own every
/// process of it): the rmdirs alone tell, without reading every
/// hierarchy's process list.
fn remove_cgroups(c: &crate::cgroups::Manager) -> Result<()> {
    if !c.remove_if_empty() {
        kill_remaining(c);
        c.remove()?;
    }
    Ok(())
}

/// SIGKILL to every process left in `c` (thawing it if frozen), then waits
/// up to 10 s for them to leave, so that the cgroups can be removed.
fn kill_remaining(c: &crate::cgroups::Manager) {
    let pids = c.pids().unwrap_or_default();
    if pids.is_empty() {
        return;
    }
    for pid in pids {
        let _ = signal::send(pid, libc::SIGKILL);
    }
    if c.is_frozen() {
        let _ = c.freeze(false);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.pids().unwrap_or_default().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}
