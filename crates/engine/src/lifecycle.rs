//! The verbs that manage a container once it exists: stop, restart, kill,
//! rm, pause and unpause, rename, wait, update, top (diff, export and
//! commit are in changes.rs). Each `container_*` call takes the container
//! by the key a user types (a name, an id or an id's prefix) and its
//! options; the record-taking methods below them are what the monitor,
//! `run --rm` and `system check` share.

use std::time::Instant;

use crate::config::{Resources, RestartPolicy};
use crate::error::Context;
use crate::{
    alive, config, forget_commit_pause, spec, ContainerConfig, Engine, Error, Record, Result,
    Status,
};

/// `stop` and `restart`.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct StopOptions {
    /// Seconds between the stop signal and SIGKILL (default: the
    /// container's `--stop-timeout`, else 10).
    pub timeout: Option<u32>,
}

/// `kill`.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct KillOptions {
    /// The signal's number (default SIGKILL).
    pub signal: Option<i32>,
}

/// `rm`.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct RemoveOptions {
    /// Kill a running container first instead of refusing.
    pub force: bool,
    /// Remove its anonymous volumes too.
    pub volumes: bool,
}

/// `wait`.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct WaitOptions {
    /// Give up (an error naming the container) once this has passed;
    /// without it, wait as long as the container runs.
    pub deadline: Option<Instant>,
}

/// `update`: what is set replaces the container's value; the rest stays.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct UpdateOptions {
    pub resources: Resources,
    pub restart: Option<RestartPolicy>,
}

/// `top`.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct TopOptions {
    /// The host `ps`'s options (default `-ef`).
    pub ps_args: Vec<String>,
}

/// How a container ended (`wait`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExitReport {
    pub id: String,
    pub exit_code: i32,
    pub oom_killed: bool,
}

/// The container's processes as the host's `ps` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopReport {
    /// `ps`'s column titles.
    pub titles: Vec<String>,
    /// One row per process, a field per title: as Docker's API gives
    /// them, the last column takes the rest of the line (a command with
    /// its arguments).
    pub processes: Vec<Vec<String>>,
}

impl Engine {
    /// Stops the container: its stop signal, SIGKILL after the timeout;
    /// returns once its exit is recorded. A stopped container is left as
    /// it is.
    pub fn container_stop(&self, key: &str, opts: &StopOptions) -> Result<()> {
        let r = self.find(key)?;
        self.stop(&r, opts.timeout)
    }

    /// Stops the container (as [`Engine::container_stop`]) and starts it
    /// again, detached under a new monitor.
    pub fn container_restart(&self, key: &str, opts: &StopOptions) -> Result<()> {
        let r = self.find(key)?;
        self.stop(&r, opts.timeout)?;
        let r = self.find(&r.id)?;
        self.db.set_stopped_by_user(&r.id, false)?;
        crate::monitor::start_detached(self, &r)?;
        self.db.container_event(&r, "restart", &[]);
        Ok(())
    }

    /// Sends a signal to the container's init. SIGKILL and SIGTERM count
    /// as the user stopping it: its restart policy does not bring it back.
    pub fn container_kill(&self, key: &str, opts: &KillOptions) -> Result<()> {
        let r = self.find(key)?;
        let sig = opts.signal.unwrap_or(libc::SIGKILL);
        if sig == libc::SIGKILL || sig == libc::SIGTERM {
            self.db.set_stopped_by_user(&r.id, true)?;
        }
        self.kill(&r, sig)
    }

    /// Removes the container, its filesystem and its log.
    pub fn container_remove(&self, key: &str, opts: &RemoveOptions) -> Result<()> {
        let r = self.find(key)?;
        self.remove(&r, opts.force, opts.volumes)
    }

    /// Freezes the container's processes.
    pub fn container_pause(&self, key: &str) -> Result<()> {
        let r = self.find(key)?;
        self.set_paused(&r, true)
    }

    /// Thaws the container's processes.
    pub fn container_unpause(&self, key: &str) -> Result<()> {
        let r = self.find(key)?;
        self.set_paused(&r, false)
    }

    /// Gives the container a new name (docker's rules for names).
    pub fn container_rename(&self, key: &str, new_name: &str) -> Result<()> {
        let r = self.find(key)?;
        let new_name = crate::names::container_name(new_name)?;
        if r.name == new_name {
            return Err(Error::SameName);
        }
        self.db.rename(&r.id, &new_name)?;
        let renamed = self.find(&r.id)?;
        self.db
            .container_event(&renamed, "rename", &[("oldName", &r.name)]);
        Ok(())
    }

    /// Waits until the container is no longer running; how it ended.
    pub fn container_wait(&self, key: &str, opts: &WaitOptions) -> Result<ExitReport> {
        let r = self.find(key)?;
        let limit = opts
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let r = self
            .poll_record(&r.id, limit, |r| !r.status.is_active(), "")
            .map_err(|e| match e {
                // Not stuck, as poll_record's words would have it: the
                // caller stopped waiting.
                Error::Stuck { status, .. } if opts.deadline.is_some() => Error::WaitDeadline {
                    name: key.to_string(),
                    status,
                },
                e => e,
            })?;
        Ok(ExitReport {
            id: r.id,
            exit_code: r.exit_code,
            oom_killed: r.oom_killed,
        })
    }

    /// New limits (applied at once if it runs) and restart policy, kept
    /// for its next starts.
    pub fn container_update(&self, key: &str, opts: &UpdateOptions) -> Result<()> {
        let r = self.find(key)?;
        self.update(&r, &opts.resources, opts.restart.clone())
    }

    /// The container's processes, by the host's `ps`; refused unless it
    /// runs.
    pub fn container_top(&self, key: &str, opts: &TopOptions) -> Result<TopReport> {
        let r = self.find(key)?;
        let lines = self.top(&r, &opts.ps_args)?;
        let titles: Vec<String> = lines
            .first()
            .map(|h| h.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let last = titles.len().saturating_sub(1);
        let processes = lines
            .iter()
            .skip(1)
            .map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                let mut row: Vec<String> =
                    fields.iter().take(last).map(|f| f.to_string()).collect();
                row.push(fields.get(last..).unwrap_or_default().join(" "));
                row
            })
            .collect();
        Ok(TopReport { titles, processes })
    }
}

impl Engine {
    /// `update`: new limits (applied now if it runs) and restart policy,
    /// kept for its next starts.
    pub fn update(
        &self,
        r: &Record,
        resources: &config::Resources,
        restart: Option<config::RestartPolicy>,
    ) -> Result<()> {
        let mut cfg = r.config.clone();
        let n = &mut cfg.resources;
        let set = |dst: &mut Option<i64>, v: Option<i64>| {
            if v.is_some() {
                *dst = v;
            }
        };
        set(&mut n.memory, resources.memory);
        set(&mut n.memory_swap, resources.memory_swap);
        set(&mut n.memory_reservation, resources.memory_reservation);
        set(&mut n.nano_cpus, resources.nano_cpus);
        set(&mut n.cpu_quota, resources.cpu_quota);
        set(&mut n.pids_limit, resources.pids_limit);
        if resources.cpu_shares.is_some() {
            n.cpu_shares = resources.cpu_shares;
        }
        if resources.cpu_period.is_some() {
            n.cpu_period = resources.cpu_period;
        }
        if resources.cpuset_cpus.is_some() {
            n.cpuset_cpus.clone_from(&resources.cpuset_cpus);
        }
        if resources.cpuset_mems.is_some() {
            n.cpuset_mems.clone_from(&resources.cpuset_mems);
        }
        if let Some(p) = restart {
            if cfg.auto_remove && p.name != "no" {
                return Err(Error::Conflict(
                    "cannot update the restart policy of a container started with --rm".into(),
                ));
            }
            cfg.restart = p;
        }
        if matches!(r.status, Status::Running | Status::Paused) {
            // Only what changed goes to the cgroups (the spec builder makes
            // the OCI form of it).
            let only = ContainerConfig {
                resources: resources.clone(),
                ..ContainerConfig::default()
            };
            let oci = spec::resources(&only)?;
            let mut c = berth_runtime::Container::load(&self.runtime_root(), &r.id)?;
            c.update(&oci)?;
        }
        self.db.set_config(&r.id, &cfg)
    }

    /// `top`: the host's `ps` limited to the container's processes.
    pub fn top(&self, r: &Record, ps_args: &[String]) -> Result<Vec<String>> {
        self.running_container(r)?;
        Ok(berth_runtime::Container::load(&self.runtime_root(), &r.id)?.ps_table(ps_args)?)
    }

    fn running_container(&self, r: &Record) -> Result<()> {
        if matches!(r.status, Status::Running | Status::Paused) {
            return Ok(());
        }
        Err(Error::NotRunning(r.id.clone()))
    }

    /// Freezes (`pause`) or thaws (`unpause`) the container's processes.
    pub fn set_paused(&self, r: &Record, paused: bool) -> Result<()> {
        // A killed commit's marker would make `system check` thaw what the
        // user paused from now on.
        if let Some(marker) = self.killed_commit_pause(&r.id) {
            forget_commit_pause(&marker)?;
        }
        let (from, to) = if paused {
            (Status::Running, Status::Paused)
        } else {
            (Status::Paused, Status::Running)
        };
        if r.status != from {
            return Err(match (paused, r.status) {
                (true, Status::Paused) => Error::AlreadyPaused(r.id.clone()),
                (true, _) => Error::NotRunning(r.id.clone()),
                (false, _) => Error::NotPaused(r.id.clone()),
            });
        }
        let c = berth_runtime::Container::load(&self.runtime_root(), &r.id)?;
        if paused {
            c.pause()?;
        } else {
            c.resume()?;
        }
        self.db.set_status(&r.id, to, Some(from))?;
        self.db
            .container_event(r, if paused { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// How long a container killed with SIGKILL may take to be recorded as
    /// exited (its monitor reaps it and writes the row) before stop and rm
    /// give up with an error instead of waiting forever.
    const KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

    /// Ends the restart back-off of a container whose `stopped_by_user` the
    /// caller set: its monitor sees the flag within a step of the back-off
    /// and records the container exited instead of starting it again.
    /// Returns the settled record: exited, or (when the monitor had begun a
    /// new life before it looked) running, for the caller to stop.
    fn end_backoff(&self, id: &str) -> Result<Record> {
        self.poll_record(
            id,
            Some(Self::KILL_GRACE),
            |r| !matches!(r.status, Status::Restarting | Status::Starting),
            "its monitor did not end the restart back-off",
        )
    }

    /// Sends `sig` to the container's init. A container waiting to be
    /// restarted has no process: as Docker does, any signal then counts as
    /// the user stopping it, and it stays exited.
    pub fn kill(&self, r: &Record, sig: i32) -> Result<()> {
        if r.status == Status::Restarting {
            self.db.set_stopped_by_user(&r.id, true)?;
            let now = self.end_backoff(&r.id)?;
            self.db
                .container_event(r, "kill", &[("signal", &sig.to_string())]);
            if !now.status.is_active() {
                return Ok(());
            }
            return self.kill(&now, sig);
        }
        if !matches!(r.status, Status::Running | Status::Paused) || !alive(r.pid, r.pid_start) {
            return Err(Error::NotRunning(r.id.clone()));
        }
        berth_runtime::signal::send(r.pid, sig).ctx(|| format!("signal {}", r.pid))?;
        self.db
            .container_event(r, "kill", &[("signal", &sig.to_string())]);
        Ok(())
    }

    /// Stops the container: its stop signal, then SIGKILL after `timeout`
    /// seconds; returns once the monitor recorded the exit.
    pub fn stop(&self, r: &Record, timeout: Option<u32>) -> Result<()> {
        self.db.set_stopped_by_user(&r.id, true)?;
        let settled;
        let r = if r.status == Status::Restarting {
            settled = self.end_backoff(&r.id)?;
            if !settled.status.is_active() {
                self.db.container_event(&settled, "stop", &[]);
                return Ok(());
            }
            &settled
        } else {
            r
        };
        if !matches!(
            r.status,
            Status::Running | Status::Paused | Status::Restarting
        ) {
            return Ok(());
        }
        let timeout = timeout.or(r.config.stop_timeout).unwrap_or(10);
        let sig = if r.config.stop_signal.is_empty() {
            libc::SIGTERM
        } else {
            berth_runtime::signal::parse_signal(&r.config.stop_signal)?
        };
        if r.status == Status::Paused {
            if let Ok(c) = berth_runtime::Container::load(&self.runtime_root(), &r.id) {
                let _ = c.resume();
            }
        }
        if alive(r.pid, r.pid_start) {
            let _ = berth_runtime::signal::send(r.pid, sig);
            self.db
                .container_event(r, "kill", &[("signal", &sig.to_string())]);
            let deadline =
                std::time::Instant::now() + std::time::Duration::from_secs(timeout.into());
            while alive(r.pid, r.pid_start) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if alive(r.pid, r.pid_start) {
                if let Ok(c) = berth_runtime::Container::load(&self.runtime_root(), &r.id) {
                    let _ = c.kill(libc::SIGKILL, true);
                }
                let _ = berth_runtime::signal::send(r.pid, libc::SIGKILL);
                self.db.container_event(r, "kill", &[("signal", "9")]);
            }
        }
        self.wait_exited_within(&r.id, Some(Self::KILL_GRACE))?;
        self.db.container_event(r, "stop", &[]);
        Ok(())
    }

    /// Waits until the container is no longer active; returns its record.
    /// (`berth wait`: as long as it takes.)
    pub fn wait_exited(&self, id: &str) -> Result<Record> {
        self.wait_exited_within(id, None)
    }

    /// As [`Engine::wait_exited`], giving up after `limit` with an error
    /// that says what is stuck.
    fn wait_exited_within(&self, id: &str, limit: Option<std::time::Duration>) -> Result<Record> {
        self.poll_record(
            id,
            limit,
            |r| !r.status.is_active(),
            "its monitor did not record the exit after SIGKILL",
        )
    }

    /// Reads the container's record (reconciled with its processes) until
    /// `settled` says so, backing off from 2 to 50 ms; past `limit`, an
    /// error naming the container, its state and `stuck`.
    fn poll_record(
        &self,
        id: &str,
        limit: Option<std::time::Duration>,
        settled: impl Fn(&Record) -> bool,
        stuck: &str,
    ) -> Result<Record> {
        let deadline = limit.map(|l| std::time::Instant::now() + l);
        let mut delay = 2;
        let mut monitor = None;
        loop {
            let r = self.reconcile(
                self.db
                    .get(id)?
                    .ok_or_else(|| Error::NoSuchContainer(id.into()))?,
            )?;
            if settled(&r) {
                return Ok(r);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() > d) {
                return Err(Error::Stuck {
                    name: r.name.clone(),
                    status: r.status.to_string(),
                    stuck: stuck.to_string(),
                });
            }
            if monitor.is_none() {
                monitor = monitor_pidfd(&r);
            }
            let pause = std::time::Duration::from_millis(delay);
            match monitor.take() {
                // What is waited for is what the monitor records as it
                // ends (an exit, a removal): its end wakes the wait at
                // once instead of up to a back-off step later. Once it
                // has ended, its descriptor stays readable: sleeps again.
                Some(fd) => {
                    let mut fds = [nix::poll::PollFd::new(
                        std::os::fd::AsFd::as_fd(&fd),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    let ms = u16::try_from(delay).unwrap_or(u16::MAX);
                    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                        Ok(0) | Err(nix::errno::Errno::EINTR) => monitor = Some(fd),
                        Ok(_) => {}
                        Err(_) => std::thread::sleep(pause),
                    }
                }
                None => std::thread::sleep(pause),
            }
            delay = (delay * 2).min(50);
        }
    }

    /// Removes a container: refused while it runs unless `force` (then it
    /// is killed first).
    pub fn remove(&self, r: &Record, force: bool, anonymous_volumes: bool) -> Result<()> {
        self.remove_with(r, force, anonymous_volumes, false)
    }

    /// [`Engine::remove`], but the container's directory (its overlay's
    /// upper and work directories, its files) is only moved into the
    /// store's trash, for [`Engine::sweep_trash`] to delete later: the
    /// container is gone (no row, no name) when this returns, its files
    /// are not yet. A foreground `run --rm` reports the exit code first
    /// and deletes after: on a disk mounted `discard`, every directory
    /// freed waits for a synchronous discard (ten per container).
    pub fn remove_to_trash(&self, r: &Record, force: bool, anonymous_volumes: bool) -> Result<()> {
        self.remove_with(r, force, anonymous_volumes, true)
    }

    fn remove_with(
        &self,
        r: &Record,
        force: bool,
        anonymous_volumes: bool,
        to_trash: bool,
    ) -> Result<()> {
        match self.remove_once(r, force, anonymous_volumes, to_trash) {
            // The store's disk is full (this container filled it, likely):
            // its log (going anyway) and the store's reserve make room for
            // the database's writes, and removing the container frees more.
            Err(e) if e.is_disk_full() && (force || !r.status.is_active()) => {
                let freed = self.empty_logs(r) | berth_image::reserve::release(&self.root);
                if !freed {
                    return Err(e);
                }
                let r = self
                    .db
                    .get(&r.id)?
                    .ok_or(Error::NoSuchContainer(r.id.clone()))?;
                self.remove_once(&r, force, anonymous_volumes, to_trash)
            }
            done => done,
        }
    }

    /// Empties a container's log files (truncated: its monitor may still
    /// hold them open, and a file unlinked but open frees nothing); whether
    /// there was anything in them.
    fn empty_logs(&self, r: &Record) -> bool {
        let log = self.log_path(&r.id);
        let mut freed = false;
        for n in 0..r.config.log.max_file.max(1) {
            let path = if n == 0 {
                log.clone()
            } else {
                berth_relay::jsonlog::rotated(&log, n)
            };
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                freed |= f.metadata().is_ok_and(|m| m.len() > 0) && f.set_len(0).is_ok();
            }
        }
        freed
    }

    fn remove_once(
        &self,
        r: &Record,
        force: bool,
        anonymous_volumes: bool,
        to_trash: bool,
    ) -> Result<()> {
        if r.status.is_active() {
            if !force {
                return Err(Error::RemoveActive {
                    id: r.id.clone(),
                    status: r.status.to_string(),
                });
            }
            self.db.set_stopped_by_user(&r.id, true)?;
            let settled;
            let r = if r.status == Status::Restarting {
                settled = self.end_backoff(&r.id)?;
                &settled
            } else {
                r
            };
            if let Ok(c) = berth_runtime::Container::load(&self.runtime_root(), &r.id) {
                let _ = c.kill(libc::SIGKILL, true);
                // A paused container's processes die only once thawed
                // (Docker's rm -f removes paused containers too).
                if c.status() == berth_runtime::Status::Paused {
                    let _ = c.resume();
                }
            }
            if alive(r.pid, r.pid_start) {
                let _ = berth_runtime::signal::send(r.pid, libc::SIGKILL);
            }
            self.wait_exited_within(&r.id, Some(Self::KILL_GRACE))?;
        }
        self.cleanup_runtime(r)?;
        // Its monitor may have marked it so with its exit already.
        if r.status != Status::Removing {
            self.db.set_status(&r.id, Status::Removing, None)?;
        }
        self.remove_files(r, to_trash)?;
        // The row and its event in one commit.
        self.db.in_transaction(|db| {
            db.delete(&r.id)?;
            db.container_event(r, "destroy", &[]);
            Ok(())
        })?;
        if anonymous_volumes {
            for m in r.config.mounts.iter().filter(|m| m.kind == "volume") {
                let anonymous = self.volumes.get(&m.source).is_ok_and(|v| v.anonymous);
                if anonymous && self.volume_users(&m.source)?.is_empty() {
                    self.volumes.remove(&m.source)?;
                    self.db.volume_event("destroy", &m.source);
                }
            }
        }
        Ok(())
    }
}

impl Engine {
    /// Deletes a container's directory (its overlay's upper and work
    /// directories, its files), or with `to_trash` moves it into the
    /// store's trash in one rename ([`crate::trash`]).
    fn remove_files(&self, r: &Record, to_trash: bool) -> Result<()> {
        let dir = self.container_dir(&r.id);
        let snapshot = self.snapshot(r);
        if let (true, Ok(s)) = (to_trash, &snapshot) {
            // Nothing may stay mounted in what is deleted later: a
            // recursive delete would go through a mount into what it shows.
            s.unmount_all()?;
            if crate::trash::put(&self.root, &dir)? {
                return Ok(());
            }
        }
        if let Ok(s) = snapshot {
            s.remove()?;
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                context: format!("remove {}", dir.display()),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// The monitor `r` names as a pidfd (readable once it exits), when that
/// process still is the monitor: opened first and checked after, so a pid
/// reused meanwhile is never waited on.
fn monitor_pidfd(r: &Record) -> Option<std::os::fd::OwnedFd> {
    if r.monitor_pid <= 0 || r.monitor_start == 0 {
        return None;
    }
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new
    // descriptor or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, r.monitor_pid, 0) };
    let fd = std::os::fd::RawFd::try_from(fd)
        .ok()
        .filter(|fd| *fd >= 0)?;
    // SAFETY: pidfd_open just returned this descriptor, owned by nobody else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    crate::alive(r.monitor_pid, r.monitor_start).then_some(fd)
}
