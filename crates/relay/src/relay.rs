//! The monitor's loop: the container's output to the log, to attached
//! clients (and to our own stdio in the foreground), the clients' input to
//! the container, until its init exits and the streams are drained.
//!
//! No threads, no async runtime: one poll over a signalfd, the streams,
//! the attach socket and its clients.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
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
    /// A descriptor to watch for reading (a check's output pipe).
    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// [`Hooks::poll_fd`] has something to read.
    fn readable(&mut self) {}
    /// The loop is about to wait for something to happen (called before
    /// each wait; berth-monitor lets go of its code mappings at the first).
    fn waiting(&self) {}
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

/// A foreground relay's view of the caller: what berth copies between the
/// caller's stdio and the container's pipes, as descriptors the binary
/// hands in (a library does not reach for the process's own). The
/// container never receives a descriptor of the caller: a terminal could
/// be driven (TIOCSTI, reading what the user types), a redirected file
/// reopened, truncated or read back through /proc/self/fd.
#[derive(Debug)]
pub struct Caller {
    /// Feeds the container's input pipe (`-i`); its end of file closes
    /// that pipe.
    pub stdin: Option<OwnedFd>,
    /// Where the container's stdout and stderr go besides the log; `None`
    /// for a stream `run -a` leaves out (the log only).
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Reads the container's output into the log (and onto our stdio, in the
/// foreground, where signals are also forwarded and our stdin may feed the
/// container's) until the init exits and the streams are drained; returns
/// the exit code.
///
/// When a reader of our stdout or stderr goes away, the container's end
/// of that stream is closed, so that its next write fails as it would in
/// a shell pipeline (`berth run img yes | head -1` ends with `yes`).
pub fn relay(
    pid: Pid,
    streams: Vec<(OwnedFd, usize)>,
    caller: Option<&Caller>,
    mut log: Option<&mut jsonlog::Writer>,
    health: &mut dyn Hooks,
    mut clients: Clients<'_>,
) -> io::Result<i32> {
    // Our writes to a pipe whose reader left must be errors we handle,
    // not a death that leaves the container unwatched.
    let _sigpipe = SigpipeIgnored::new();
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    if caller.is_some() {
        for s in PROXIED_SIGNALS {
            set.add(s);
        }
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    let mut streams: Vec<Option<(OwnedFd, usize)>> = streams.into_iter().map(Some).collect();
    if let Some(i) = &clients.input {
        // Never blocked by a container that does not read its input.
        let _ = nix::fcntl::fcntl(
            i.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
    }
    let mut feed = match (&caller, &clients.input) {
        (
            Some(Caller {
                stdin: Some(stdin), ..
            }),
            Some(_),
        ) => Some((Feed::default(), stdin.as_fd())),
        _ => None,
    };
    let mut exit: Option<i32> = None;
    // Allocated at the first read, not before: an idle detached container's
    // monitor never reads, and a zeroed buffer made now would be 32 KiB of
    // touched heap in each of them (calloc clears reused heap pages).
    let mut buf: Vec<u8> = Vec::new();
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
        if exit.is_some() && streams.iter().all(Option::is_none) {
            break;
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let mut which = Vec::new();
        for (i, s) in streams.iter().enumerate() {
            if let Some((fd, _)) = s {
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
        let after_clients = fds.len();
        // Our stdin is read only while the container runs and what was
        // read last is written: a container that does not read its input
        // holds back the caller, as a pipe would.
        let feed_slot = match (&feed, &clients.input) {
            (Some((f, stdin)), Some(input)) if exit.is_none() => {
                if f.pending.is_empty() {
                    fds.push(PollFd::new(*stdin, PollFlags::POLLIN));
                } else {
                    fds.push(PollFd::new(input.as_fd(), PollFlags::POLLOUT));
                }
                Some(after_clients)
            }
            _ => None,
        };
        let hook_slot = match health.poll_fd() {
            Some(fd) => {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                Some(fds.len() - 1)
            }
            None => None,
        };
        // Once the init is gone, what is left in the pipes is drained
        // briefly: a process outside its pid namespace may hold them.
        // To the nanosecond (ppoll): a timeout in whole milliseconds woke
        // up to a millisecond before a check was due, and the turn after
        // it started the check up to a millisecond late, on the path of a
        // compose healthcheck chain at every hop.
        let timeout = if exit.is_some() {
            Some(Duration::from_millis(100))
        } else {
            // The checker's next turn (a check to start or to time out).
            health
                .timeout()
                .map(|d| d.clamp(Duration::from_micros(50), Duration::from_secs(60)))
        };
        health.waiting();
        match ppoll(&mut fds, timeout.map(TimeSpec::from_duration), None) {
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
        if hook_slot.is_some_and(|k| ready[k]) {
            health.readable();
        }
        if let (Some(s), Some(listener)) = (&mut clients.server, ready.get(first_client)) {
            if *listener {
                s.accept();
            }
            for req in s.read(&ready[first_client + 1..after_clients]) {
                match req {
                    crate::frames::Request::Stdin(data) => {
                        if let Some(i) = &clients.input {
                            crate::frames::write_input(i.as_fd(), &data);
                        }
                    }
                    crate::frames::Request::Resize(rows, cols) => {
                        if let (true, Some(Some((m, _)))) = (clients.tty, streams.first()) {
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
        if let (Some(k), Some((f, stdin))) = (feed_slot, &mut feed) {
            if ready[k] && !f.step(*stdin, &clients.input, sized(&mut buf)) {
                // End of our input, or a container that closed its own:
                // the pipe closes, and the container reads its end of file.
                clients.input = None;
                feed = None;
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
            let Some((fd, stream)) = &streams[i] else {
                continue;
            };
            let stream = *stream;
            match nix::unistd::read(fd.as_raw_fd(), sized(&mut buf)) {
                Ok(0) | Err(nix::errno::Errno::EIO) => streams[i] = None,
                Ok(n) => {
                    if let Some(log) = log.as_deref_mut() {
                        log.write(stream, &buf[..n]);
                    }
                    if let Some(s) = &mut clients.server {
                        let kind = if stream == 0 {
                            crate::frames::STDOUT
                        } else {
                            crate::frames::STDERR
                        };
                        s.broadcast(kind, &buf[..n]);
                    }
                    let to = caller.as_ref().and_then(|c| {
                        if stream == 0 {
                            c.stdout.as_ref()
                        } else {
                            c.stderr.as_ref()
                        }
                    });
                    if let Some(to) = to {
                        if let Err(nix::errno::Errno::EPIPE) = write_all(to.as_fd(), &buf[..n]) {
                            // Our reader left: the container's writes to
                            // this stream fail from now on, as in a pipeline.
                            streams[i] = None;
                            CALLER_OUTPUT_LOST.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(_) => streams[i] = None,
            }
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    Ok(exit.unwrap_or(255))
}

/// Set when a foreground relay found its caller's stdout or stderr without
/// a reader: the caller ends as SIGPIPE would end it, once the container is
/// recorded (see [`caller_output_lost`]).
static CALLER_OUTPUT_LOST: AtomicBool = AtomicBool::new(false);

/// A relay in this process lost the reader of our stdout or stderr.
pub fn caller_output_lost() -> bool {
    CALLER_OUTPUT_LOST.load(Ordering::Relaxed)
}

/// The relay's read buffer, made on first use (see [`relay`]): a read
/// into an empty one would look like an end of file.
fn sized(buf: &mut Vec<u8>) -> &mut [u8] {
    if buf.is_empty() {
        buf.resize(32 * 1024, 0);
    }
    buf
}

/// Our stdin on its way to the container's input pipe.
#[derive(Debug, Default)]
struct Feed {
    /// Read from our stdin, not yet taken by the pipe.
    pending: Vec<u8>,
}

impl Feed {
    /// One step: reads our stdin when nothing is pending, else writes what
    /// is (the input is non-blocking). False once the feed is over.
    fn step(&mut self, stdin: BorrowedFd<'_>, input: &Option<OwnedFd>, buf: &mut [u8]) -> bool {
        let Some(input) = input else {
            return false;
        };
        if self.pending.is_empty() {
            match nix::unistd::read(stdin.as_raw_fd(), buf) {
                Ok(0) => return false,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => return true,
                Err(_) => return false,
            }
        }
        while !self.pending.is_empty() {
            match nix::unistd::write(input, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return true,
                // The container closed its stdin: what is left is lost, as
                // in a pipeline.
                Err(_) => return false,
            }
        }
        true
    }
}

/// SIGPIPE ignored until dropped (its previous disposition restored), so
/// that a write to a pipe or socket whose reader left fails with EPIPE
/// instead of ending the process.
#[derive(Debug)]
pub struct SigpipeIgnored {
    previous: Option<nix::sys::signal::SigAction>,
}

impl SigpipeIgnored {
    pub fn new() -> SigpipeIgnored {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler};
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: SIG_IGN runs no code of ours; the previous disposition
        // is restored as it was.
        let previous = unsafe { sigaction(Signal::SIGPIPE, &ignore) }.ok();
        SigpipeIgnored { previous }
    }
}

impl Default for SigpipeIgnored {
    fn default() -> SigpipeIgnored {
        SigpipeIgnored::new()
    }
}

impl Drop for SigpipeIgnored {
    fn drop(&mut self) {
        if let Some(p) = &self.previous {
            // SAFETY: puts back the disposition sigaction returned.
            let _ = unsafe { nix::sys::signal::sigaction(Signal::SIGPIPE, p) };
        }
    }
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

pub(crate) fn send_signal(pid: Pid, sig: i32) -> nix::Result<()> {
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
