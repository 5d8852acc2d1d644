//! Attaching to a running container's stdio: `berth attach`, and `run -it`
//! / `start -a` of a container with a terminal, which start a detached
//! monitor and attach to it (so that the detach keys leave the container
//! running, as with docker).
//!
//! The monitor listens on a unix socket, `<runroot>/attach/<id>`; each
//! connection is a client. Both directions carry frames: one kind byte, a
//! big-endian u32 length, the payload.
//!
//! ```text
//! client → monitor   STDIN data, RESIZE rows:u16 cols:u16, SIGNAL sig:i32
//! monitor → client   STDOUT data, STDERR data, EXIT code:i32, ERROR text
//! ```
//!
//! The monitor never blocks on a client: a client that does not read for
//! a few seconds is dropped.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Context, Error, Result};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const RESIZE: u8 = 3;
pub const SIGNAL: u8 = 4;
pub const EXIT: u8 = 5;
pub const ERROR: u8 = 6;

/// Larger frames are a protocol error (the monitor sends at most what one
/// read returns, the client likewise).
const MAX_FRAME: usize = 1 << 20;

/// How long a write to a client may wait before the client is dropped.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A frame: kind, length, payload.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    f.extend_from_slice(payload);
    f
}

/// Splits a byte stream into frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame; Err when the stream is not frames.
    pub fn next_frame(&mut self) -> std::result::Result<Option<(u8, Vec<u8>)>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_FRAME {
            return Err(format!("attach frame of {len} bytes is too large"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

/// Where a container's monitor listens.
pub fn socket_path(runroot: &Path, id: &str) -> PathBuf {
    runroot.join("attach").join(id)
}

/// Runs `f` on a path to `path` that fits in a unix socket address (108
/// bytes): long paths go through `/proc/self/fd/N/` of their directory.
fn short_path<T>(path: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    if path.as_os_str().len() < 100 {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let d = std::fs::File::open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    f(&short)
}

/// The monitor's side: the listening socket and the clients attached.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    listener: UnixListener,
    clients: Vec<Conn>,
}

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    decoder: Decoder,
}

/// What a client asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Stdin(Vec<u8>),
    Resize(u16, u16),
    Signal(i32),
}

impl Server {
    /// Listens for the container `id` (a stale socket is replaced).
    pub fn bind(runroot: &Path, id: &str) -> Result<Server> {
        let path = socket_path(runroot, id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        }
        let _ = std::fs::remove_file(&path);
        let listener = short_path(&path, |p| UnixListener::bind(p))
            .ctx(|| format!("listen on {}", path.display()))?;
        listener
            .set_nonblocking(true)
            .ctx(|| "set the attach socket non-blocking".into())?;
        Ok(Server {
            path,
            listener,
            clients: Vec::new(),
        })
    }

    /// Waits up to `timeout` for a first client (`run -it` connects before
    /// the container starts, so that it misses no output).
    pub fn wait_for_client(&mut self, timeout: Duration) -> Result<()> {
        let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {}
            _ => {
                return Err(Error::Invalid(
                    "no client attached to the container in time".into(),
                ))
            }
        }
        self.accept();
        if self.clients.is_empty() {
            return Err(Error::Invalid("the attaching client went away".into()));
        }
        Ok(())
    }

    /// The descriptors to poll: the listener, then each client.
    pub fn poll_fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(self.clients.iter().map(|c| c.stream.as_fd()))
            .collect()
    }

    /// Accepts the clients waiting.
    pub fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                self.clients.push(Conn {
                    stream,
                    decoder: Decoder::default(),
                });
            }
        }
    }

    /// Reads from the clients whose descriptors polled ready (`ready[i]`
    /// for the i-th client of [`poll_fds`](Self::poll_fds) after the
    /// listener); clients that closed or misbehave are dropped.
    pub fn read(&mut self, ready: &[bool]) -> Vec<Request> {
        let mut requests = Vec::new();
        let mut buf = [0u8; 8192];
        let mut keep = Vec::with_capacity(self.clients.len());
        for (i, mut c) in std::mem::take(&mut self.clients).into_iter().enumerate() {
            if !ready.get(i).copied().unwrap_or(false) {
                keep.push(c);
                continue;
            }
            let alive = match c.stream.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    c.decoder.push(&buf[..n]);
                    decode_requests(&mut c.decoder, &mut requests)
                }
                Err(e) => matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ),
            };
            if alive {
                keep.push(c);
            }
        }
        self.clients = keep;
        requests
    }

    /// Sends a frame to every client; one that cannot take it is dropped.
    pub fn broadcast(&mut self, kind: u8, payload: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let f = frame(kind, payload);
        self.clients.retain(|c| send(&c.stream, &f));
    }

    /// The container is done: tells each client its exit code and lets
    /// them go.
    pub fn finish(&mut self, code: i32) {
        self.broadcast(EXIT, &code.to_be_bytes());
        self.clients.clear();
    }

    /// The container could not start: tells the clients why.
    pub fn fail(&mut self, message: &str) {
        self.broadcast(ERROR, message.as_bytes());
        self.clients.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn decode_requests(d: &mut Decoder, out: &mut Vec<Request>) -> bool {
    loop {
        match d.next_frame() {
            Ok(None) => return true,
            Err(_) => return false,
            Ok(Some((STDIN, data))) => out.push(Request::Stdin(data)),
            Ok(Some((RESIZE, p))) if p.len() == 4 => out.push(Request::Resize(
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )),
            Ok(Some((SIGNAL, p))) if p.len() == 4 => {
                out.push(Request::Signal(i32::from_be_bytes([
                    p[0], p[1], p[2], p[3],
                ])))
            }
            Ok(Some(_)) => return false,
        }
    }
}

/// Writes all of `data` to a non-blocking socket, waiting a bounded time
/// for room; false if the client is gone or too slow.
fn send(stream: &UnixStream, mut data: &[u8]) -> bool {
    let deadline = std::time::Instant::now() + CLIENT_WRITE_TIMEOUT;
    while !data.is_empty() {
        match (&*stream).write(data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return false;
                }
                let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLOUT)];
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            Err(_) => return false,
        }
    }
    true
}

/// Writes all of `data` to a descriptor that may be non-blocking (a
/// container's stdin pipe or pty), waiting a bounded time for room.
pub fn write_input(fd: BorrowedFd<'_>, mut data: &[u8]) {
    let deadline = std::time::Instant::now() + CLIENT_WRITE_TIMEOUT;
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return;
                }
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            Err(_) => return,
        }
    }
}

/// Parses docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a,ctrl-@`, ...): a
/// comma-separated list of single characters or `ctrl-X` with X one of
/// `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`. An empty string disables them.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|k| {
            let bad = || Error::Invalid(format!("invalid detach keys {s:?}: unknown key {k:?}"));
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

/// Connects to the monitor of container `id`.
pub fn connect(runroot: &Path, id: &str) -> Result<UnixStream> {
    let path = socket_path(runroot, id);
    short_path(&path, |p| UnixStream::connect(p)).map_err(|e| {
        Error::Invalid(format!(
            "cannot attach to container {id}: its monitor does not answer ({e})"
        ))
    })
}

/// Relays our stdio to and from the container through `stream` until the
/// container exits or the user detaches.
pub fn relay(stream: UnixStream, opts: &Options) -> Result<Outcome> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    let proxied = [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ];
    if opts.sig_proxy && !opts.tty {
        for s in proxied {
            set.add(s);
        }
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .ctx(|| "block signals".into())?;
    let result = relay_inner(stream, opts, &set);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    result
}

fn relay_inner(mut stream: UnixStream, opts: &Options, set: &SigSet) -> Result<Outcome> {
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .ctx(|| "signalfd".into())?;
    let _raw = (opts.tty && opts.stdin).then(runtime::terminal::RawMode::enter);
    let resize = |stream: &mut UnixStream| -> Result<()> {
        if let Some((rows, cols)) = runtime::terminal::window_size() {
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
        nix::fcntl::fcntl(0, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
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
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            let n = match stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).ctx(|| "read from the container's monitor".into()),
            };
            if n == 0 {
                return Err(Error::Invalid(
                    "the container's monitor went away before the container exited".into(),
                ));
            }
            decoder.push(&buf[..n]);
            while let Some((kind, p)) = decoder.next_frame().map_err(Error::Invalid)? {
                match kind {
                    STDOUT => write_out(1, &p),
                    STDERR => write_out(2, &p),
                    EXIT if p.len() == 4 => {
                        return Ok(Outcome::Exited(i32::from_be_bytes([
                            p[0], p[1], p[2], p[3],
                        ])))
                    }
                    ERROR => return Err(Error::Invalid(String::from_utf8_lossy(&p).into_owned())),
                    _ => {
                        return Err(Error::Invalid(format!(
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

fn write_out(fd: i32, mut data: &[u8]) {
    // SAFETY: 1 and 2 stay open for the whole process; borrowed briefly.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_whole_and_split() {
        let mut d = Decoder::default();
        let a = frame(STDOUT, b"hello");
        let b = frame(EXIT, &7i32.to_be_bytes());
        let all = [a, b].concat();
        d.push(&all[..3]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&all[3..]);
        assert_eq!(d.next_frame().unwrap(), Some((STDOUT, b"hello".to_vec())));
        assert_eq!(
            d.next_frame().unwrap(),
            Some((EXIT, 7i32.to_be_bytes().to_vec()))
        );
        assert_eq!(d.next_frame().unwrap(), None);
        let mut bad = Decoder::default();
        bad.push(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(bad.next_frame().is_err());
    }

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
