//! The verbs that manage a container once it exists: stop, restart, kill,
//! rm, pause and unpause, rename, wait, update, and what reads it in
//! place: top, diff, export, commit. Each takes the container by the key a
//! user types (a name, an id or an id's prefix) and its options; the work
//! itself is `Engine`'s (lib.rs), shared with the monitor and `system
//! check`.

use std::io::Write;
use std::time::Instant;

use berth_image::store::Image;

use crate::config::{Resources, RestartPolicy};
use crate::{Engine, Error, Result};

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

/// `commit`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CommitOptions {
    /// Dockerfile instructions applied to the image's config
    /// (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR).
    pub changes: Vec<String>,
    pub message: Option<String>,
    pub author: Option<String>,
    /// Freeze a running container while its changes are read (docker's
    /// default: true).
    pub pause: bool,
    /// Names for the new image.
    pub tags: Vec<berth_image::Reference>,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            changes: Vec::new(),
            message: None,
            author: None,
            pause: true,
            tags: Vec::new(),
        }
    }
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
    /// `ps`'s header line.
    pub header: String,
    /// One line per process.
    pub processes: Vec<String>,
}

/// What a change in a container's filesystem is (`diff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    /// Docker's letter: A, C or D.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One path the container changed in its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute, as the container sees it.
    pub path: String,
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
        crate::names::validate(new_name)?;
        self.db.rename(&r.id, new_name)?;
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
                Error::State { id, status, .. } if opts.deadline.is_some() => Error::State {
                    what: format!("container {key} is still {status} at the wait's deadline"),
                    id,
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
        let mut lines = self.top(&r, &opts.ps_args)?.into_iter();
        Ok(TopReport {
            header: lines.next().unwrap_or_default(),
            processes: lines.collect(),
        })
    }

    /// What the container changed in its image, sorted by path.
    pub fn container_diff(&self, key: &str) -> Result<Vec<Change>> {
        let r = self.find(key)?;
        Ok(self
            .changes(&r)?
            .into_iter()
            .map(|(kind, path)| Change {
                kind: match kind {
                    'A' => ChangeKind::Added,
                    'D' => ChangeKind::Deleted,
                    _ => ChangeKind::Changed,
                },
                path,
            })
            .collect())
    }

    /// The container's filesystem as a tar stream into `out`.
    pub fn container_export(&self, key: &str, out: impl Write) -> Result<()> {
        let r = self.find(key)?;
        self.export(&r, out)
    }

    /// A new image from the container's changes over its image.
    pub fn container_commit(&mut self, key: &str, opts: &CommitOptions) -> Result<Image> {
        let r = self.find(key)?;
        self.commit(
            &r,
            &opts.changes,
            opts.message.as_deref(),
            opts.author.as_deref(),
            opts.pause,
            &opts.tags,
        )
    }
}
