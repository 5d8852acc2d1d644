//! Terminals: a pty made inside the container, its master sent to the
//! client's console socket with SCM_RIGHTS (runc's protocol, which conmon
//! and containerd speak), its slave made the controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Box as ConsoleSize;

use crate::error::{Context, Error, Result};
use crate::syscall::fd_path;

/// Connects to the client's console socket (done on the host side, before
/// the process enters the container's mount namespace).
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).ctx(|| format!("connect to console socket {}", path.display()))
}

/// A pty whose master was handed to the client.
#[derive(Debug)]
pub struct Pty {
    pub slave: OwnedFd,
    pub slave_path: String,
}

/// Opens a pty from the current /dev/ptmx (the container's, once
/// pivot_root is done), sends its master over `socket`, and returns the
/// slave.
///
/// /dev/ptmx is resolved inside the root and checked to be the ptmx device
/// (5:2) before it is opened, and the slave comes from the master itself
/// (TIOCGPTPEER), never from a path: an image that brings its own /dev
/// cannot hand the runtime some other file to bind on /dev/console.
pub fn create_and_send(socket: &UnixStream, size: Option<&ConsoleSize>) -> Result<Pty> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /".into())?;
    // SAFETY: fresh descriptor from open.
    let root = unsafe { OwnedFd::from_raw_fd(root) };
    let ptmx = saferoot::open_in_root(&root, Path::new("/dev/ptmx"), OFlag::O_PATH)
        .ctx(|| "open /dev/ptmx".into())?;
    let st = nix::sys::stat::fstat(ptmx.as_raw_fd()).ctx(|| "stat /dev/ptmx".into())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || nix::sys::stat::major(st.st_rdev) != 5
        || nix::sys::stat::minor(st.st_rdev) != 2
    {
        return Err(Error::UnsafeRootfs(format!(
            "/dev/ptmx is not the pty multiplexer (mode {:o})",
            st.st_mode
        )));
    }
    let master = nix::fcntl::open(
        fd_path(&ptmx).as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /dev/ptmx".into())?;
    // SAFETY: fresh descriptor from open.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid pointer.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    nix::errno::Errno::result(rc).ctx(|| "unlock the pty".into())?;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to a valid pointer.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) };
    nix::errno::Errno::result(rc).ctx(|| "read the pty number".into())?;
    let slave_path = format!("/dev/pts/{number}");
    if let Some(sz) = size {
        let ws = libc::winsize {
            ws_row: u16::try_from(sz.height()).unwrap_or(u16::MAX),
            ws_col: u16::try_from(sz.width()).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let slave = nix::errno::Errno::result(slave).ctx(|| format!("open {slave_path}"))?;
    // SAFETY: TIOCGPTPEER returned a fresh descriptor we now own.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let fds = [master.as_raw_fd()];
    let name = slave_path.as_bytes();
    let iov = [IoSlice::new(name)];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| "send pty master to console socket".into())?;
    Ok(Pty { slave, slave_path })
}

/// Makes the pty slave the controlling terminal of the process's session
/// (made by [`new_session`]) and its stdin, stdout and stderr.
pub fn make_controlling(slave: RawFd) -> Result<()> {
    // SAFETY: TIOCSCTTY with 0 takes no pointer.
    let rc = unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(rc).ctx(|| "set controlling terminal".into())?;
    for target in 0..3 {
        nix::unistd::dup2(slave, target).ctx(|| format!("dup2 pty to fd {target}"))?;
    }
    Ok(())
}

/// Puts the process in a session of its own, with no controlling
/// terminal. Every process the runtime starts in a container does this
/// first: a process still in the caller's session can open `/dev/tty` and
/// read what the user types, or push input into the user's shell with
/// TIOCSTI (which needs the terminal to be the caller's controlling one,
/// or CAP_SYS_ADMIN).
pub fn new_session() -> Result<()> {
    nix::unistd::setsid()
        .map(drop)
        .ctx(|| "start a new session".into())
}
