//! Attaching to a running container's stdio: `berth attach`, and `run -it`
//! / `start -a` of a container with a terminal, which start a detached
//! monitor and attach to it (so that the detach keys leave the container
//! running, as with docker).
//!
//! The monitor's side and the protocol are in [`berth_relay::frames`]; this is
//! the client's.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

pub use berth_relay::frames::{
    frame, socket_path, write_input, Decoder, Request, Server, ERROR, EXIT, RESIZE, SIGNAL, STDERR,
    STDIN, STDOUT,
};

use crate::error::{Context, Error, Result};

/// Parses docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a,ctrl-@`, ...): a
/// comma-separated list of single characters or `ctrl-X` with X one of
/// `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`. An empty string disables them.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|k| {
            let bad =
                || Error::InvalidOption(format!("invalid detach keys {s:?}: unknown key {k:?}"));
            if let Some(c) = k.strip_prefix("ctrl-") {
                let [c] = c.as_bytes() else {
                    return Err(bad());
                };
                match c.to_ascii_lowercase() {
                    c @ b'a'..=b'z' => Ok(c - b'a' + 1),
                    b'@' => Ok(0),
                    c @ (b'[' | b'\\' | b']' | b'^' | b'_') => Ok(c - b'[' + 27),
                    _ => Err(bad()),
                }
            } else {
                match k.as_bytes() {
                    [c] if c.is_ascii() => Ok(*c),
                    _ => Err(bad()),
                }
            }
        })
        .collect()
}

/// Docker's default detach keys: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// Watches typed input for the detach sequence, holding back a partial
/// match until it is known not to be one.
#[derive(Debug)]
pub struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    pub fn new(keys: Vec<u8>) -> DetachKeys {
        DetachKeys { keys, matched: 0 }
    }

    /// The input to pass on, and whether the sequence was typed (what
    /// follows it is dropped).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        if self.keys.is_empty() {
            return (input.to_vec(), false);
        }
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: what was held back goes through,
            // and this byte may begin a new match.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// How a client attaches.
#[derive(Debug)]
pub struct Options {
    /// The container has a terminal: our terminal goes raw, its size
    /// follows ours, and output is one stream.
    pub tty: bool,
    /// Our stdin goes to the container's.
    pub stdin: bool,
    pub detach_keys: Vec<u8>,
    /// Signals we receive go to the container (not with a terminal, where
    /// ctrl-c is a byte like any other).
    pub sig_proxy: bool,
}

/// How an attachment ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The container exited with this code.
    Exited(i32),
    /// The user typed the detach keys; the container runs on.
    Detached,
}

impl Outcome {
    /// What the attaching command exits with: the container's code, or 0
    /// for a detach.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(code) => *code,
            Outcome::Detached => 0,
        }
    }
}

/// Connects to the monitor of container `id`.
pub fn connect(runroot: &Path, id: &str) -> Result<UnixStream> {
    let path = socket_path(runroot, id);
    berth_relay::frames::short_path(&path, |p| UnixStream::connect(p)).map_err(|e| {
        Error::Monitor(format!(
            "cannot attach to container {id}: its monitor does not answer ({e})"
        ))
    })
}

/// The user's side of an attachment, handed over by the front end that
/// owns it (the library never reaches for the process's own stdio).
#[derive(Debug, Clone, Copy)]
pub struct UserStdio<'a> {
    /// What the user types (read only with [`Options::stdin`]); put in raw
    /// mode with [`Options::tty`].
    pub stdin: BorrowedFd<'a>,
    /// The container's output; its terminal size is the container's.
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
}

/// Relays the user's stdio to and from the container through `stream`
/// until the container exits or the user detaches.
pub fn relay(stream: UnixStream, opts: &Options, user: UserStdio<'_>) -> Result<Outcome> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    if opts.sig_proxy && !opts.tty {
        for s in berth_relay::relay::PROXIED_SIGNALS {
            set.add(s);
        }
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .ctx(|| "block signals".into())?;
    let result = relay_inner(stream, opts, user, &set);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    result
}

fn relay_inner(
    mut stream: UnixStream,
    opts: &Options,
    user: UserStdio<'_>,
    set: &SigSet,
) -> Result<Outcome> {
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .ctx(|| "signalfd".into())?;
    let _raw = (opts.tty && opts.stdin).then(|| berth_relay::terminal::RawMode::enter(user.stdin));
    let resize = |stream: &mut UnixStream| -> Result<()> {
        if let Some((rows, cols)) = berth_relay::terminal::window_size(user.stdout) {
            let mut p = rows.to_be_bytes().to_vec();
            p.extend_from_slice(&cols.to_be_bytes());
            stream
                .write_all(&frame(RESIZE, &p))
                .ctx(|| "write to the container's monitor".into())?;
        }
        Ok(())
    };
    if opts.tty {
        resize(&mut stream)?;
    }
    let stdin = if opts.stdin {
        nix::fcntl::fcntl(
            user.stdin.as_raw_fd(),
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3),
        )
        .ok()
        // SAFETY: fcntl just returned this new descriptor; it is ours.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        None
    };
    let mut stdin_open = stdin.is_some();
    let mut keys = DetachKeys::new(if opts.tty || opts.stdin {
        opts.detach_keys.clone()
    } else {
        Vec::new()
    });
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut fds = vec![
            PollFd::new(stream.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        if let (true, Some(fd)) = (stdin_open, &stdin) {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).ctx(|| "poll".into()),
        }
        let ready = berth_relay::relay::ready(fds);
        if ready[0] {
            let n = match stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).ctx(|| "read from the container's monitor".into()),
            };
            if n == 0 {
                return Err(Error::Monitor(
                    "the container's monitor went away before the container exited".into(),
                ));
            }
            decoder.push(&buf[..n]);
            while let Some((kind, p)) = decoder.next_frame().map_err(Error::Monitor)? {
                match kind {
                    STDOUT => {
                        let _ = berth_relay::relay::write_all(user.stdout, &p);
                    }
                    STDERR => {
                        let _ = berth_relay::relay::write_all(user.stderr, &p);
                    }
                    EXIT if p.len() == 4 => {
                        return Ok(Outcome::Exited(i32::from_be_bytes([
                            p[0], p[1], p[2], p[3],
                        ])))
                    }
                    ERROR => return Err(Error::from_report(&p)),
                    _ => {
                        return Err(Error::Monitor(format!(
                            "unexpected frame {kind} from the container's monitor"
                        )))
                    }
                }
            }
        }
        if ready[1] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = i32::try_from(info.ssi_signo).unwrap_or(0);
                if sig == libc::SIGWINCH {
                    if opts.tty {
                        resize(&mut stream)?;
                    }
                } else {
                    let _ = stream.write_all(&frame(SIGNAL, &sig.to_be_bytes()));
                }
            }
        }
        if let (true, Some(fd)) = (stdin_open && ready.get(2) == Some(&true), &stdin) {
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => {
                    let (pass, detach) = keys.feed(&buf[..n]);
                    if !pass.is_empty() {
                        stream
                            .write_all(&frame(STDIN, &pass))
                            .ctx(|| "write to the container's monitor".into())?;
                    }
                    if detach {
                        return Ok(Outcome::Detached);
                    }
                }
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-[,ctrl-_").unwrap(),
            vec![b'a', 0, 27, 31]
        );
        assert_eq!(parse_detach_keys("").unwrap(), Vec::<u8>::new());
        for bad in ["ctrl-", "ctrl-pp", "ab", "ctrl-1", "x,,y"] {
            assert!(parse_detach_keys(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn detach_sequence_is_held_back_and_released() {
        let mut k = DetachKeys::new(vec![16, 17]);
        assert_eq!(k.feed(b"ab\x10"), (b"ab".to_vec(), false));
        // ctrl-p then x: both go through
        assert_eq!(k.feed(b"x"), (b"\x10x".to_vec(), false));
        // split across reads, with a repeated first key
        assert_eq!(k.feed(b"\x10"), (Vec::new(), false));
        assert_eq!(k.feed(b"\x10\x11rest"), (b"\x10".to_vec(), true));
        let mut none = DetachKeys::new(Vec::new());
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
