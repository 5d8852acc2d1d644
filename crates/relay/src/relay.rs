//! The monitor's loop: the container's output to the log, to attached
//! clients (and to our own stdio in the foreground), the clients' input to
//! the container, until its init exits and the streams are drained.
//!
//! No threads, no async runtime: one poll over a signalfd, the streams,
//! the attach socket and its clients.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::jsonlog;

/// The attached clients, and where what they type goes.
#[derive(Debug)]
pub struct Clients<'a> {
    pub server: Option<&'a mut crate::frames::Server>,
    /// The container's stdin (a pipe, or the pty master): None when the
    /// container was not given an open stdin.
    pub input: Option<OwnedFd>,
    /// The container has a terminal: the (only) stream is its master.
    pub tty: bool,
}

/// What else the loop drives: the engine's healthchecks.
pub trait Hooks {
    /// How long until `tick` wants to run (None: never).
    fn timeout(&self) -> Option<Duration>;
    fn tick(&mut self);
    /// A child other than the init ended (a check the hooks started).
    fn reaped(&mut self, pid: i32, code: i32);
}

/// No hooks.
#[derive(Debug)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn timeout(&self) -> Option<Duration> {
        None
    }
    fn tick(&mut self) {}
    fn reaped(&mut self, _pid: i32, _code: i32) {}
}

/// The signals passed on to a container by whoever relays its stdio in
/// the foreground (`run`, `attach` with --sig-proxy).
pub const PROXIED_SIGNALS: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Which of the polled descriptors have something to say (events or
/// errors); the poll set is let go so that the descriptors can be used.
pub fn ready(fds: Vec<PollFd<'_>>) -> Vec<bool> {
    fds.iter()
        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
        .collect()
}

/// Exit code as a shell reports it: the code, or 128 + the signal.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Reads the container's output into the log (and onto our stdio, in the
/// foreground, where signals are also forwarded) until the init exits and
/// the streams are drained; returns the exit code.
pub fn relay(
    pid: Pid,
    streams: &[(OwnedFd, usize)],
    copy_to_stdio: bool,
    log: &mut jsonlog::Writer,
    health: &mut dyn Hooks,
    mut clients: Clients<'_>,
) -> io::Result<i32> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    if copy_to_stdio {
        for s in PROXIED_SIGNALS {
            set.add(s);
        }
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    let mut open: Vec<bool> = vec![true; streams.len()];
    let mut exit: Option<i32> = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) if st.pid() == Some(pid) => exit = exit_code(st).or(exit),
                Ok(st) => {
                    if let (Some(p), Some(code)) = (st.pid(), exit_code(st)) {
                        health.reaped(p.as_raw(), code);
                    }
                }
            }
        }
        if exit.is_some() && !open.contains(&true) {
            break;
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let mut which = Vec::new();
        for (i, (fd, _)) in streams.iter().enumerate() {
            if open[i] {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        let first_client = fds.len();
        if exit.is_none() {
            if let Some(s) = &clients.server {
                fds.extend(
                    s.poll_fds()
                        .into_iter()
                        .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
                );
            }
        }
        // Once the init is gone, what is left in the pipes is drained
        // briefly: a process outside its pid namespace may hold them.
        let timeout = if exit.is_some() {
            PollTimeout::from(100u8)
        } else {
            match health.timeout() {
                // The checker's next turn (a check to start or to time out).
                Some(d) => PollTimeout::try_from(d.as_millis().clamp(1, 60_000))
                    .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            }
        };
        match poll(&mut fds, timeout) {
            Ok(0) if exit.is_some() => break,
            Ok(0) => {
                drop(fds);
                health.tick();
                continue;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready = ready(fds);
        if let (Some(s), Some(listener)) = (&mut clients.server, ready.get(first_client)) {
            if *listener {
                s.accept();
            }
            for req in s.read(&ready[first_client + 1..]) {
                match req {
                    crate::frames::Request::Stdin(data) => {
                        if let Some(i) = &clients.input {
                            crate::frames::write_input(i.as_fd(), &data);
                        }
                    }
                    crate::frames::Request::Resize(rows, cols) => {
                        if let (true, Some((m, _))) = (clients.tty, streams.first()) {
                            set_window_size(m.as_fd(), rows, cols);
                        }
                    }
                    crate::frames::Request::Signal(sig) => {
                        if exit.is_none() {
                            let _ = send_signal(pid, sig);
                        }
                    }
                }
            }
        }
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = i32::try_from(info.ssi_signo).unwrap_or(0);
                if sig != libc::SIGCHLD && exit.is_none() {
                    let _ = send_signal(pid, sig);
                }
            }
        }
        for (k, &i) in which.iter().enumerate() {
            if !ready[k + 1] {
                continue;
            }
            let (fd, stream) = &streams[i];
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => open[i] = false,
                Ok(n) => {
                    log.write(*stream, &buf[..n]);
                    if let Some(s) = &mut clients.server {
                        let kind = if *stream == 0 {
                            crate::frames::STDOUT
                        } else {
                            crate::frames::STDERR
                        };
                        s.broadcast(kind, &buf[..n]);
                    }
                    if copy_to_stdio {
                        let (out, err) = (std::io::stdout(), std::io::stderr());
                        let fd = if *stream == 0 {
                            out.as_fd()
                        } else {
                            err.as_fd()
                        };
                        // A reader that went away loses the rest.
                        let _ = write_all(fd, &buf[..n]);
                    }
                }
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(_) => open[i] = false,
            }
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    Ok(exit.unwrap_or(255))
}

/// Writes all of `data` to `fd` (a blocking descriptor); the error that
/// stopped it, if any (a reader that went away).
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn send_signal(pid: Pid, sig: i32) -> nix::Result<()> {
    // SAFETY: kill(2) with a pid and a signal number; no memory involved.
    nix::errno::Errno::result(unsafe { libc::kill(pid.as_raw(), sig) }).map(drop)
}

/// Sets the size of the terminal behind `master`; failures are ignored (a
/// size is a nicety).
pub fn set_window_size(master: BorrowedFd<'_>, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid struct.
    unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}
