//! `exec`: a new process in a running container's namespaces and root.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::Process;

use super::create::write_pid_file;
use super::{wait_forwarding_signals, Container};
use crate::channel::{self, Message};
use crate::error::{ChildFailure, Context, Error, Result};
use crate::namespaces;
use crate::process::stdio::Stdio;
use crate::process::{console, exit_child, intermediate, prepare_exec, reset_signals, Finish};
use crate::state::Status;
use crate::syscall;

/// What became of an exec'd process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    /// Running detached, with this host pid.
    Detached(i32),
    /// Waited for: its exit code.
    Exited(i32),
}

/// How a process is exec'd (runc's `exec` flags, the process resolved).
#[derive(Debug)]
pub struct ExecOptions {
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: i32,
    /// The process's stdin, stdout and stderr; without, it inherits the
    /// caller's (as runc's exec does).
    pub stdio: Option<Stdio>,
}

impl Container {
    /// Starts a process in the container. Detached, returns its pid once it
    /// runs; attached, waits and returns its exit code.
    ///
    /// The caller must be single-threaded: it forks.
    pub fn exec(&self, mut opts: ExecOptions) -> Result<ExecOutcome> {
        let stdio = opts.stdio.take();
        let opts = &opts;
        // CVE-2019-5736: as create's, from the container's user namespace.
        if !crate::exe::exempt_for_process(self.state.pid) {
            crate::exe::require_protected()?;
        }
        match self.status() {
            Status::Running | Status::Created => {}
            Status::Paused => return Err(Error::WrongState("cannot exec in a paused container")),
            _ => return Err(Error::WrongState("cannot exec in a stopped container")),
        }
        let pid = self.state.pid;
        if let Some(s) = &stdio {
            s.give_to(self.state.config.linux().as_ref(), opts.process.user())?;
        }
        let types: Vec<_> = self
            .state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ())
            .collect();
        let joins = namespaces::open_of_process(pid, &types)?;
        let root = nix::fcntl::open(
            format!("/proc/{pid}/root").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "open the container's root".into())?;
        // SAFETY: fresh descriptor from open.
        let root = unsafe { OwnedFd::from_raw_fd(root) };
        let terminal = opts.process.terminal().unwrap_or(false);
        let console = match (terminal, &opts.console_socket) {
            (true, Some(p)) => Some(console::connect(p)?),
            (true, None) if opts.detach => {
                return Err(Error::SpecInvalid(
                    "cannot allocate tty if runc will detach without setting console socket".into(),
                ))
            }
            (true, None) => return Err(Error::SpecInvalid(
                "a terminal without --console-socket is not supported yet; pass --console-socket"
                    .into(),
            )),
            (false, _) => None,
        };
        let seccomp = self
            .state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .map(|s| {
                crate::seccomp::Program::for_profile(s, &self.root.join(crate::seccomp::CACHE_DIR))
            })
            .transpose()?;
        let (parent_ch, child_ch) = channel::pair()?;
        syscall::set_child_subreaper()?;
        let userns = joins
            .iter()
            .any(|j| j.typ == oci_spec::runtime::LinuxNamespaceType::User);
        let born_in = intermediate::born_in_cgroup2(userns, self.state.cgroups.as_ref())
            .then(|| self.state.cgroups.as_ref().and_then(|c| c.clone_into_dir()))
            .flatten()
            .map(crate::process::fork::open_cgroup)
            .transpose()?;
        let plan = intermediate::Plan {
            joins: &joins,
            new: nix::sched::CloneFlags::empty(),
            new_user: false,
            time_offsets: Vec::new(),
            cgroups: self.state.cgroups.as_ref(),
            cgroups_pending: false,
            born_in_cgroup2: born_in.is_some(),
            // The cgroups exist: joined as the host's root before the
            // namespaces are entered.
            cgroups_by_files: false,
        };
        // The caller is single-threaded (documented above), as forking
        // needs.
        let middle = match crate::process::fork::fork_into(born_in.as_ref())? {
            ForkResult::Child => {
                drop(parent_ch);
                if let Some(Err(e)) = stdio.as_ref().map(Stdio::install) {
                    let _ = child_ch.send(&Message::Failed(ChildFailure::of(&e)));
                    exit_child(1);
                }
                intermediate::run(&plan, &child_ch, || {
                    let e = match exec_child(
                        &opts.process,
                        &root,
                        console,
                        &child_ch,
                        opts.preserve_fds,
                        seccomp.as_ref(),
                    ) {
                        Ok(never) => match never {},
                        Err(e) => e,
                    };
                    let _ = child_ch.send(&Message::Failed(ChildFailure::of(&e)));
                    exit_child(127);
                });
            }
            ForkResult::Parent { child } => child,
        };
        drop(child_ch);
        // Only the child's copies must stay open (see create).
        drop(stdio);
        let child = match parent_ch.recv() {
            Ok(Some(Message::Pid(p))) => Pid::from_raw(p),
            Ok(Some(Message::Failed(e))) => {
                let _ = waitpid(middle, None);
                return Err(Error::Child(e));
            }
            other => {
                let _ = waitpid(middle, None);
                return Err(Error::Protocol(format!("exec setup failed: {other:?}")));
            }
        };
        let _ = waitpid(middle, None);
        parent_ch.send(&Message::Continue)?;
        // The child's end is close-on-exec: the channel closing without a
        // message means execve succeeded.
        match parent_ch.recv()? {
            None => {}
            Some(Message::Failed(e)) => {
                let _ = waitpid(child, None);
                return Err(Error::Child(e));
            }
            Some(other) => return Err(Error::Protocol(format!("unexpected message {other:?}"))),
        }
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, child.as_raw())?;
        }
        if opts.detach {
            return Ok(ExecOutcome::Detached(child.as_raw()));
        }
        let code = wait_forwarding_signals(child)?;
        Ok(ExecOutcome::Exited(code))
    }
}

fn exec_child(
    process: &Process,
    root: &OwnedFd,
    console: Option<std::os::unix::net::UnixStream>,
    ch: &channel::Channel,
    preserve_fds: i32,
    seccomp: Option<&crate::seccomp::Program>,
) -> Result<std::convert::Infallible> {
    reset_signals();
    console::new_session()?;
    ch.expect(&Message::Continue, "runtime")?;
    nix::unistd::fchdir(root.as_raw_fd()).ctx(|| "enter the container's root".into())?;
    nix::unistd::chroot(".").ctx(|| "chroot into the container's root".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    if let Some(socket) = console {
        let pty = console::create_and_send(&socket, process.console_size().as_ref())?;
        drop(socket);
        console::make_controlling(pty.slave.as_raw_fd())?;
    }
    let exec = prepare_exec(process)?;
    Finish {
        process,
        preserve_fds,
        keep: vec![ch.raw_fd()],
        seccomp,
    }
    .run()?
    .load()?;
    Err(crate::process::execve(&exec))
}
