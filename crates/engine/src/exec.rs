//! `exec`: a new process in a running container, through the launcher.
//!
//! The engine resolves the process (the container's own as the template,
//! docker's flags over it), gives it pipes or a terminal, starts it and
//! records the events; the caller relays its stdio (its terminal, its raw
//! mode and window size are the caller's) and reports the exit with
//! [`Engine::exec_ended`].

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::config::ContainerConfig;
use crate::db::{Record, Status};
use crate::error::{Error, Result};
use crate::Engine;

/// What to run in a running container (docker's exec flags).
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// `KEY=VALUE` entries, each replacing the container's own `KEY`.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// docker's `--user`: name or id, with an optional group.
    pub user: Option<String>,
    /// Every capability, as `--privileged` gives.
    pub privileged: bool,
    /// A terminal: its master is sent to [`ExecIo::Terminal`]'s socket.
    pub tty: bool,
    /// Without a terminal, stdin is a pipe the caller feeds.
    pub interactive: bool,
    /// Nobody reads the output: /dev/null on all three.
    pub detach: bool,
}

/// The caller's side of an exec'd process's stdio.
#[derive(Debug)]
pub enum ExecIo {
    /// Its stdout (0) and stderr (1) to relay, and its stdin's write end
    /// with `interactive`.
    Pipes {
        streams: Vec<(OwnedFd, usize)>,
        input: Option<OwnedFd>,
    },
    /// A terminal, whose master the runtime sends to this socket.
    Terminal(berth_runtime::terminal::ConsoleSocket),
    /// Detached: nothing to relay.
    Discarded,
}

/// A process started in a container.
#[derive(Debug)]
pub struct ExecSession {
    /// docker's exec id (in the events).
    pub exec_id: String,
    /// Its host pid: our child, for the caller to wait for.
    pub pid: i32,
    pub io: ExecIo,
}

impl Engine {
    /// Starts `req` in the running container `r`. An error before the
    /// process runs is [`Error::NotRunning`] when the container is not running
    /// (docker's "Container ID is not running"), another error when the
    /// process could not be started (no such program, no such user...).
    ///
    /// The caller must be single-threaded: the runtime forks.
    pub fn exec(&self, r: &Record, req: &ExecRequest) -> Result<ExecSession> {
        if r.status == Status::Paused {
            return Err(Error::ExecPaused(r.name.clone()));
        }
        // Not running by its record, or no runtime state to exec in:
        // docker's one answer for both.
        let c = Some(r)
            .filter(|r| r.status == Status::Running)
            .and_then(|r| berth_runtime::Container::load(&self.runtime_root(), &r.id).ok())
            .ok_or_else(|| Error::NotRunning(r.id.clone()))?;
        let process = exec_process(&c, r, req)?;
        if req.tty && req.detach {
            return Err(Error::InvalidOption(
                "exec -d -t: a detached terminal has no reader; leave out -t".into(),
            ));
        }
        let (mut pipes, console) = if req.tty {
            let console = berth_runtime::terminal::ConsoleSocket::new(
                &self.runroot,
                &format!("exec-{}", &r.id[..12.min(r.id.len())]),
            )?;
            (None, Some(console))
        } else if req.detach {
            (Some(crate::stdio::Pipes::discard()?), None)
        } else {
            (Some(crate::stdio::Pipes::new(req.interactive)?), None)
        };
        let exec_id = crate::random_id();
        let command = req.command.join(" ");
        let ev = [("execID", exec_id.as_str())];
        self.db
            .container_event(r, &format!("exec_create: {command}"), &ev);
        self.db
            .container_event(r, &format!("exec_start: {command}"), &ev);
        let stdio = pipes
            .as_mut()
            .map(crate::stdio::Pipes::take_stdio)
            .transpose()?;
        let pid = crate::launch::exec(
            &c,
            crate::launch::Exec {
                process,
                stdio,
                console_socket: console.as_ref().map(|c| c.path.clone()),
            },
        )?;
        let io = match (console, pipes) {
            (Some(console), _) => ExecIo::Terminal(console),
            (None, Some(p)) if !req.detach => ExecIo::Pipes {
                streams: p.streams,
                input: p.input,
            },
            _ => ExecIo::Discarded,
        };
        Ok(ExecSession { exec_id, pid, io })
    }

    /// Records the end of an attached exec (docker's `exec_die`).
    pub fn exec_ended(&self, r: &Record, exec_id: &str, code: i32) {
        let code_text = code.to_string();
        self.db.container_event(
            r,
            "exec_die",
            &[("execID", exec_id), ("exitCode", &code_text)],
        );
    }
}

/// The container's own process as the template, the request over it.
fn exec_process(
    c: &berth_runtime::Container,
    r: &Record,
    req: &ExecRequest,
) -> Result<oci_spec::runtime::Process> {
    let mut process = c.state.config.process().clone().unwrap_or_default();
    process.set_args(Some(req.command.clone()));
    process.set_terminal(Some(req.tty));
    let user = match &req.user {
        Some(u) => {
            let rootfs = PathBuf::from(format!("/proc/{}/root", r.pid));
            Some(crate::spec::resolve_user(&rootfs, u, &r.config.group_add)?)
        }
        None => None,
    };
    let mut env = process.env().clone().unwrap_or_default();
    fn key(e: &str) -> &str {
        e.split('=').next().unwrap_or("")
    }
    // HOME is the -u user's when neither the container's config nor -e
    // set it (the container's process got its own user's, as runc gives
    // each process its user's home).
    let home = user
        .as_ref()
        .filter(|_| {
            !r.config
                .env
                .iter()
                .chain(&req.env)
                .any(|e| key(e) == "HOME")
        })
        .map(|u| format!("HOME={}", u.home));
    for e in req.env.iter().chain(&home) {
        env.retain(|x| key(x) != key(e));
        env.push(e.clone());
    }
    if req.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    if let Some(w) = &req.workdir {
        process.set_cwd(w.into());
    }
    if let Some(user) = user {
        let mut pu = process.user().clone();
        pu.set_uid(user.uid);
        pu.set_gid(user.gid);
        pu.set_additional_gids(Some(user.additional_gids));
        process.set_user(pu);
    }
    if req.privileged {
        let all: Vec<String> = crate::spec::capabilities(&ContainerConfig {
            privileged: true,
            ..Default::default()
        })?;
        // oci-spec parses the bare name ("CHOWN"), not the CAP_ form the
        // engine lists: parsing "CAP_CHOWN" failed for every name and left
        // the process with no capabilities at all.
        let set: std::collections::HashSet<oci_spec::runtime::Capability> = all
            .iter()
            .map(|c| c.strip_prefix("CAP_").unwrap_or(c).parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::InvalidOption(format!("exec --privileged: {e}")))?;
        let mut caps = process.capabilities().clone().unwrap_or_default();
        caps.set_bounding(Some(set.clone()));
        caps.set_effective(Some(set.clone()));
        caps.set_permitted(Some(set));
        process.set_capabilities(Some(caps));
    }
    Ok(process)
}
