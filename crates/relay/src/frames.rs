//! The attach protocol between a container's monitor and its clients
//! (`berth attach`, `run -it`): frames of one kind byte, a big-endian u32
//! length and the payload, over the unix socket `<runroot>/attach/<id>`.
//!
//! ```text
//! client → monitor   STDIN data, RESIZE rows:u16 cols:u16, SIGNAL sig:i32
//! monitor → client   STDOUT data, STDERR data, EXIT code:i32, ERROR text
//! ```
//!
//! The monitor never blocks on a client: a client that does not read for
//! a few seconds is dropped.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

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
pub fn short_path<T>(path: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
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
    pub fn bind(runroot: &Path, id: &str) -> io::Result<Server> {
        let path = socket_path(runroot, id);
        if let Some(dir) = path.parent() {
            // Whoever connects gets the container's terminal (a root shell
            // in it): the directory is root's alone.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let _ = std::fs::remove_file(&path);
        let listener = short_path(&path, |p| UnixListener::bind(p))?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            path,
            listener,
            clients: Vec::new(),
        })
    }

    /// Takes over a listening socket (inherited as `fd` across exec) at
    /// `path`.
    ///
    /// # Safety
    /// `fd` must be an open listening unix socket that nothing else owns.
    pub unsafe fn from_fd(fd: RawFd, path: PathBuf) -> Server {
        // SAFETY: the caller's contract.
        let listener = unsafe { UnixListener::from_raw_fd(fd) };
        let _ = listener.set_nonblocking(true);
        Server {
            path,
            listener,
            clients: Vec::new(),
        }
    }

    /// A duplicate of the listening socket, to hand to another program
    /// (close-on-exec: the caller clears that before exec).
    pub fn listener_dup(&self) -> io::Result<OwnedFd> {
        self.listener.as_fd().try_clone_to_owned()
    }

    /// How many clients are attached.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Waits up to `timeout` for a first client (`run -it` connects before
    /// the container starts, so that it misses no output).
    pub fn wait_for_client(&mut self, timeout: Duration) -> io::Result<()> {
        let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no client attached to the container in time",
                ))
            }
        }
        self.accept();
        if self.clients.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the attaching client went away",
            ));
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
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
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
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
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
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
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
    fn a_server_hands_frames_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server::bind(dir.path(), "c1").unwrap();
        let mut c = UnixStream::connect(socket_path(dir.path(), "c1")).unwrap();
        s.accept();
        c.write_all(&frame(STDIN, b"typed")).unwrap();
        c.write_all(&frame(RESIZE, &[0, 24, 0, 80])).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let reqs = s.read(&[true]);
        assert_eq!(
            reqs,
            vec![Request::Stdin(b"typed".to_vec()), Request::Resize(24, 80)]
        );
        s.broadcast(STDOUT, b"out");
        s.finish(3);
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(
            got,
            [frame(STDOUT, b"out"), frame(EXIT, &3i32.to_be_bytes())].concat()
        );
    }
}
