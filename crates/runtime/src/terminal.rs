//! The client side of a container's terminal: a console socket of one's own
//! to receive the pty master (used by a foreground `berth-runtime run`
//! without `--console-socket`, as runc does, and by the engine), and a relay
//! between the caller's terminal and the master. The caller's terminal is
//! put in raw mode (restored on the way out), window size changes follow,
//! other signals are forwarded.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use berth_relay::relay::write_all;

use crate::error::{Context, Error, Result};

/// A console socket of our own, in a private temp directory.
#[derive(Debug)]
pub struct ConsoleSocket {
    dir: PathBuf,
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new(root: &Path, id: &str) -> Result<ConsoleSocket> {
        let dir = root.join(format!(".console-{id}-{}", std::process::id()));
        saferoot::private::private_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
        let path = dir.join("sock");
        let listener = UnixListener::bind(&path).ctx(|| format!("bind {}", path.display()))?;
        Ok(ConsoleSocket {
            dir,
            path,
            listener,
        })
    }

    /// The pty master the container's init (or exec'd process) sent.
    pub fn receive_master(&self) -> Result<OwnedFd> {
        let (conn, _) = self
            .listener
            .accept()
            .ctx(|| "accept on the console socket".into())?;
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ctx(|| "receive the pty master".into())?;
        for c in msg.cmsgs().ctx(|| "read control message".into())? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(fd) = fds.first() {
                    // SAFETY: the descriptor was just received and is ours.
                    return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
                }
            }
        }
        Err(Error::NoPtyMaster)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Puts our terminal (stdin) in raw mode until dropped; nothing when stdin
/// is not a terminal.
#[derive(Debug)]
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

fn copy_window_size(master: BorrowedFd<'_>) {
    if let Some((rows, cols)) = window_size() {
        set_window_size(master, rows, cols);
    }
}

/// Our terminal's size (rows, columns), from stdout; None when stdout is
/// not a terminal.
pub fn window_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into a valid struct.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

pub use berth_relay::relay::set_window_size;

/// The exit code of an exec: with a console socket of our own, the exec
/// was detached so that we relay its terminal until it exits; without one,
/// a detached exec counts as 0.
pub fn finish_exec(outcome: crate::ExecOutcome, console: Option<ConsoleSocket>) -> Result<i32> {
    match (outcome, console) {
        (crate::ExecOutcome::Detached(pid), Some(s)) => {
            relay_and_wait(s.receive_master()?, Pid::from_raw(pid), &mut |_| {})
        }
        (crate::ExecOutcome::Detached(_), None) => Ok(0),
        (crate::ExecOutcome::Exited(code), _) => Ok(code),
    }
}

/// Relays between our terminal and `master` until `pid` exits; returns its
/// exit code. What the container writes goes to our stdout and to `tee`.
pub fn relay_and_wait(master: OwnedFd, pid: Pid, tee: &mut dyn FnMut(&[u8])) -> Result<i32> {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .ctx(|| "block signals".into())?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).ctx(|| "signalfd".into())?;
    let _raw = RawMode::enter();
    copy_window_size(master.as_fd());
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut stdin_open = true;
    let mut master_open = true;
    let mut buf = [0u8; 8192];
    let mut exit: Option<i32> = None;
    loop {
        // Reap first: the process may already be gone.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) if st.pid() == Some(pid) => exit = crate::container::exit_code(st).or(exit),
                Ok(_) => {}
            }
        }
        if let Some(code) = exit {
            if !master_open {
                return Ok(code);
            }
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if master_open {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        // Once the process exited, drain what the pty still holds, briefly.
        let timeout = if exit.is_some() {
            PollTimeout::from(100u8)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => master_open = false,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).ctx(|| "poll".into()),
        }
        let ready = berth_relay::relay::ready(fds);
        if ready[0] {
            if let Ok(Some(info)) = sfd.read_signal() {
                let sig = i32::try_from(info.ssi_signo).unwrap_or(0);
                if sig == libc::SIGWINCH {
                    copy_window_size(master.as_fd());
                } else if sig != libc::SIGCHLD {
                    let _ = crate::signal::send(pid.as_raw(), sig);
                }
            }
        }
        let mut i = 1;
        if master_open {
            if ready[i] {
                match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                    Ok(0) | Err(nix::errno::Errno::EIO) => master_open = false,
                    Ok(n) => {
                        let _ = write_all(stdout.as_fd(), &buf[..n]);
                        tee(&buf[..n]);
                    }
                    Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                    Err(e) => return Err(e).ctx(|| "read the pty".into()),
                }
            }
            i += 1;
        }
        if stdin_open && ready.get(i).copied().unwrap_or(false) {
            match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => {
                    let _ = write_all(master.as_fd(), &buf[..n]);
                }
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}
