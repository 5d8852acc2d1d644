//! The user's side of a container's terminal: raw mode, window size, and
//! the relay between the user's stdio and a pty master (a foreground
//! `berth-runtime run` or `berth exec -t`). The user's descriptors are
//! handed in by the binary that owns them; nothing here reaches for the
//! process's own stdio.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::relay::{exit_code, ready, send_signal, set_window_size, write_all};

/// The user's terminal as the binary hands it over: where input comes
/// from, where output goes, and where its size is read.
#[derive(Debug, Clone, Copy)]
pub struct UserTerminal<'a> {
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
}

/// Puts a terminal in raw mode until dropped; nothing when the descriptor
/// is not a terminal.
#[derive(Debug)]
pub struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Option<Termios>,
}

impl<'a> RawMode<'a> {
    pub fn enter(fd: BorrowedFd<'a>) -> RawMode<'a> {
        let Ok(saved) = tcgetattr(fd) else {
            return RawMode { fd, saved: None };
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(fd, SetArg::TCSANOW, &raw);
        RawMode {
            fd,
            saved: Some(saved),
        }
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = tcsetattr(self.fd, SetArg::TCSANOW, t);
        }
    }
}

/// The size (rows, columns) of the terminal behind `fd`; None when it is
/// not a terminal.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into a valid struct.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

fn copy_window_size(user: &UserTerminal<'_>, master: BorrowedFd<'_>) {
    if let Some((rows, cols)) = window_size(user.stdout) {
        set_window_size(master, rows, cols);
    }
}

fn failed(what: &str) -> impl FnOnce(nix::Error) -> io::Error + '_ {
    move |e| io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

/// Relays between the user's terminal and `master` until `pid` exits;
/// returns its exit code. The user's terminal is raw meanwhile, its size
/// follows, other signals go to `pid`. What the container writes goes to
/// the user's stdout and to `tee`.
pub fn relay_and_wait(
    master: OwnedFd,
    pid: Pid,
    user: UserTerminal<'_>,
    tee: &mut dyn FnMut(&[u8]),
) -> io::Result<i32> {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(failed("block signals"))?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(failed("signalfd"))?;
    let _raw = RawMode::enter(user.stdin);
    copy_window_size(&user, master.as_fd());
    let mut stdin_open = true;
    let mut master_open = true;
    let mut buf = [0u8; 8192];
    let mut exit: Option<i32> = None;
    loop {
        // Reap first: the process may already be gone.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) if st.pid() == Some(pid) => exit = exit_code(st).or(exit),
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
            fds.push(PollFd::new(user.stdin, PollFlags::POLLIN));
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
            Err(e) => return Err(failed("poll")(e)),
        }
        let ready = ready(fds);
        if ready[0] {
            if let Ok(Some(info)) = sfd.read_signal() {
                let sig = i32::try_from(info.ssi_signo).unwrap_or(0);
                if sig == libc::SIGWINCH {
                    copy_window_size(&user, master.as_fd());
                } else if sig != libc::SIGCHLD {
                    let _ = send_signal(pid, sig);
                }
            }
        }
        let mut i = 1;
        if master_open {
            if ready[i] {
                match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                    Ok(0) | Err(nix::errno::Errno::EIO) => master_open = false,
                    Ok(n) => {
                        let _ = write_all(user.stdout, &buf[..n]);
                        tee(&buf[..n]);
                    }
                    Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                    Err(e) => return Err(failed("read the pty")(e)),
                }
            }
            i += 1;
        }
        if stdin_open && ready.get(i).copied().unwrap_or(false) {
            match nix::unistd::read(user.stdin.as_raw_fd(), &mut buf) {
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
