//! The client side of a container's terminal: a console socket of one's own
//! to receive the pty master (used by a foreground `berth-runtime run`
//! without `--console-socket`, as runc does, and by the engine). Relaying
//! the user's terminal to the master is the binaries' business (they own
//! the terminal), through `berth_relay::terminal`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::unistd::Pid;

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

/// The exit code of an exec: with a console socket of our own, the exec
/// was detached so that we relay its terminal until it exits; without one,
/// a detached exec counts as 0. `relay` relays the user's terminal to the
/// master until the process exits, and returns its exit code.
pub fn finish_exec(
    outcome: crate::ExecOutcome,
    console: Option<ConsoleSocket>,
    relay: impl FnOnce(OwnedFd, Pid) -> std::io::Result<i32>,
) -> Result<i32> {
    match (outcome, console) {
        (crate::ExecOutcome::Detached(pid), Some(s)) => {
            relay(s.receive_master()?, Pid::from_raw(pid))
                .ctx(|| "relay the exec's terminal".into())
        }
        (crate::ExecOutcome::Detached(_), None) => Ok(0),
        (crate::ExecOutcome::Exited(code), _) => Ok(code),
    }
}
