//! `start` of a container that exists (made by `create`, or stopped), and
//! `attach` to one that runs: which way it runs (under a monitor of its
//! own, or here with the caller's stdio relayed) is decided here, so that
//! every front end starts containers the same way.

use std::os::unix::net::UnixStream;

use berth_relay::relay::Caller;

use crate::{alive, monitor, Engine, Error, Result, Status};

/// `start`.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct StartOptions {
    /// The caller's stdio to attach (`start -a`, `start -i`): the container
    /// runs in this process, its output relayed there (and its input read
    /// from `stdin`, when given) until it ends. A container with a terminal
    /// is attached through its monitor instead ([`Started::Terminal`]), so
    /// that the detach keys leave it running.
    pub attach: Option<Caller>,
}

/// What `start` did.
#[derive(Debug)]
pub enum Started {
    /// It was running (or paused) already: nothing was done.
    AlreadyRunning,
    /// Started under a monitor of its own, which runs on.
    Detached,
    /// Started under a monitor of its own with a client attached from the
    /// start (nothing it prints is missed): relay `stream` with
    /// [`attach::relay`](crate::attach::relay). `open_stdin`: whether the
    /// container takes input (`-i` at create).
    Terminal {
        stream: UnixStream,
        open_stdin: bool,
    },
    /// Ran here, attached, until it ended for good: its exit code.
    Exited(i32),
}

/// What `attach` connected to.
#[derive(Debug)]
pub struct Attachment {
    /// The container's monitor: relay it with
    /// [`attach::relay`](crate::attach::relay).
    pub stream: UnixStream,
    /// The container has a terminal (one output stream, raw input).
    pub tty: bool,
    /// The container takes input (`-i` at create).
    pub open_stdin: bool,
}

impl Engine {
    /// `start`: the container named by `key` (a name, an id or its prefix)
    /// runs as `opts` say. The caller must be single-threaded: the
    /// monitor is forked.
    pub fn container_start(&mut self, key: &str, opts: StartOptions) -> Result<Started> {
        let r = self.find(key)?;
        if r.status.is_active() {
            return Ok(Started::AlreadyRunning);
        }
        // A container started again is no longer one its user stopped
        // (the restart policy applies to it again).
        self.db().set_stopped_by_user(&r.id, false)?;
        match opts.attach {
            Some(_) if r.config.tty => Ok(Started::Terminal {
                stream: monitor::start_attached(self, &r)?,
                open_stdin: r.config.open_stdin,
            }),
            Some(caller) => Ok(Started::Exited(monitor::run(
                self,
                &r.id,
                monitor::Mode::Foreground { caller },
            )?)),
            None => {
                monitor::start_detached(self, &r)?;
                Ok(Started::Detached)
            }
        }
    }

    /// `attach`: a connection to the monitor of the running container
    /// `key`, journaled as docker's `attach` event; a paused or stopped
    /// container is refused in docker's words.
    pub fn container_attach(&self, key: &str) -> Result<Attachment> {
        let r = self.find(key)?;
        if r.status == Status::Paused {
            return Err(Error::AttachPaused);
        }
        if r.status != Status::Running || !alive(r.pid, r.pid_start) {
            return Err(Error::AttachStopped);
        }
        let stream = crate::attach::connect(self.runroot(), &r.id)?;
        self.db().container_event(&r, "attach", &[]);
        Ok(Attachment {
            stream,
            tty: r.config.tty,
            open_stdin: r.config.open_stdin,
        })
    }
}
