//! The typed channel between the runtime and the processes it forks.
//!
//! A `SOCK_SEQPACKET` socketpair keeps message boundaries, so each message is
//! one JSON datagram. Either side closing its end reads as `None`, which is
//! how a child that died before reporting is noticed.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{ChildFailure, Context, Error, Result};

/// Messages exchanged while a container or an exec process is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Intermediate → parent: a new user namespace exists; write its maps.
    UserNsReady,
    /// Parent → intermediate: uid/gid maps are written.
    MappingsWritten,
    /// Parent → intermediate: the container's cgroups exist; join them.
    CgroupsReady,
    /// Intermediate → parent: the host pid of the init (or exec process).
    Pid(i32),
    /// Parent → init: cgroups joined; go on with the setup.
    Continue,
    /// Parent → init: the container's state (OCI JSON), for the hooks the
    /// init runs (createContainer, startContainer).
    State(String),
    /// Init → parent: setup done; about to wait on the exec fifo (create) or
    /// to exec (exec).
    Ready,
    /// Child → parent: setup failed (what kind of failure, and its
    /// message), so that the runtime's caller can tell a missing program
    /// (127) from one it may not execute (126) without reading the text.
    Failed(ChildFailure),
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// The most descriptors one message carries (one per cgroup hierarchy).
pub const MAX_FDS: usize = 16;

/// Makes a connected pair (parent end, child end), both close-on-exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair".into())?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, msg: &Message) -> Result<()> {
        self.send_with_fds(msg, &[])
    }

    /// Receives one message; `None` if the other side closed its end.
    pub fn recv(&self) -> Result<Option<Message>> {
        use nix::sys::socket::{recv, MsgFlags};
        let fd = self.fd.as_raw_fd();
        // The message's whole length first (MSG_TRUNC reports it, MSG_PEEK
        // leaves the message in place), so the buffer fits it: most messages
        // are a few bytes, and a zeroed 64 KiB buffer for each cost its
        // page faults in every process of the create (and truncated a
        // longer state).
        let mut probe = [0u8; 1];
        let len = loop {
            match recv(fd, &mut probe, MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
                Ok(0) => return Ok(None),
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).ctx(|| "receive on sync channel".into()),
            }
        };
        let mut buf = vec![0u8; len];
        loop {
            match recv(fd, &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => return decode(&buf[..n]).map(Some),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).ctx(|| "receive on sync channel".into()),
            }
        }
    }

    /// Sends `msg` with descriptors alongside (SCM_RIGHTS): the receiver
    /// gets its own copies of them, opened with the sender's credentials.
    pub fn send_with_fds(&self, msg: &Message, fds: &[RawFd]) -> Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let data = serde_json::to_vec(msg).map_err(|source| Error::Encode {
            what: "sync message",
            source,
        })?;
        let iov = [std::io::IoSlice::new(&data)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() {
            &[]
        } else {
            &[ControlMessage::ScmRights(fds)]
        };
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .ctx(|| "send on sync channel".into())?;
        Ok(())
    }

    /// [`Channel::expect`] for a short message sent with
    /// [`Channel::send_with_fds`]; returns the descriptors (close-on-exec).
    pub fn expect_with_fds(&self, want: &Message, who: &str) -> Result<Vec<OwnedFd>> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::FromRawFd;
        let mut buf = [0u8; 512];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (n, fds, truncated) = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => {
                    let mut fds = Vec::new();
                    for c in m.cmsgs().ctx(|| "receive on sync channel".into())? {
                        if let ControlMessageOwned::ScmRights(got) = c {
                            // SAFETY: the kernel installed these descriptors
                            // in this process for this message; nothing else
                            // owns them.
                            fds.extend(
                                got.into_iter()
                                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                            );
                        }
                    }
                    let truncated = m
                        .flags
                        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                    break (m.bytes, fds, truncated);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).ctx(|| "receive on sync channel".into()),
            }
        };
        if truncated {
            return Err(Error::Protocol(format!("{who} sent more than expected")));
        }
        let got = (n > 0).then(|| decode(&buf[..n])).transpose()?;
        judge(got, want, who).map(|()| fds)
    }

    /// Receives a message and checks it is the expected one; a `Failed`
    /// message becomes the error it carries.
    pub fn expect(&self, want: &Message, who: &str) -> Result<()> {
        judge(self.recv()?, want, who)
    }
}

/// A message as it came over the channel.
fn decode(data: &[u8]) -> Result<Message> {
    serde_json::from_slice(data).map_err(|e| Error::Protocol(format!("bad sync message: {e}")))
}

/// Whether `got` (None: `who` closed its end) is the message wanted; a
/// `Failed` message becomes the error it carries.
fn judge(got: Option<Message>, want: &Message, who: &str) -> Result<()> {
    match got {
        Some(m) if &m == want => Ok(()),
        Some(Message::Failed(e)) => Err(Error::StartProcess(e)),
        Some(other) => Err(Error::Protocol(format!(
            "{who} sent {other:?}, expected {want:?}"
        ))),
        None => Err(Error::Protocol(format!("{who} exited during setup"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_boundaries() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Pid(42)).unwrap();
        let missing = Error::ExecutableNotFound("nope".into());
        a.send(&Message::Failed(ChildFailure::of(&missing)))
            .unwrap();
        assert_eq!(b.recv().unwrap(), Some(Message::Pid(42)));
        let err = b.expect(&Message::Ready, "init").unwrap_err();
        // The kind crosses the channel, not only the words.
        assert_eq!(err.kind(), crate::ErrorKind::ExecutableNotFound);
        assert_eq!(
            err.to_string(),
            "unable to start container process: exec: \"nope\": executable file not found in $PATH"
        );
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }

    /// Descriptors sent with a message arrive as the receiver's own, with
    /// the message; a plain message is still read by `recv`.
    #[test]
    fn descriptors_travel_with_a_message() {
        use std::io::{Read, Seek, Write};
        let (a, b) = pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"through the channel").unwrap();
        a.send_with_fds(&Message::MappingsWritten, &[file.as_raw_fd()])
            .unwrap();
        drop(file);
        let fds = b
            .expect_with_fds(&Message::MappingsWritten, "runtime")
            .unwrap();
        assert_eq!(fds.len(), 1);
        let mut got = std::fs::File::from(fds.into_iter().next().unwrap());
        got.rewind().unwrap();
        let mut text = String::new();
        got.read_to_string(&mut text).unwrap();
        assert_eq!(text, "through the channel");
        a.send(&Message::Ready).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Message::Ready));
        a.send_with_fds(&Message::Pid(1), &[]).unwrap();
        let err = b
            .expect_with_fds(&Message::MappingsWritten, "runtime")
            .unwrap_err();
        assert!(err.to_string().contains("Pid(1)"), "{err}");
    }

    /// A message longer than any fixed buffer (a state with big
    /// annotations) arrives whole, between two short ones.
    #[test]
    fn long_messages_arrive_whole() {
        let (a, b) = pair().unwrap();
        // Past the 64 KiB the receiver used to read into, under the
        // socket's send buffer (one datagram must fit it).
        let long = Message::State("x".repeat(100 * 1024));
        let sent = long.clone();
        // Sent from another thread: the three need not fit the buffer at once.
        let sender = std::thread::spawn(move || {
            a.send(&Message::Ready).unwrap();
            a.send(&sent).unwrap();
            a.send(&Message::Continue).unwrap();
        });
        assert_eq!(b.recv().unwrap(), Some(Message::Ready));
        assert_eq!(b.recv().unwrap(), Some(long));
        assert_eq!(b.recv().unwrap(), Some(Message::Continue));
        sender.join().unwrap();
    }
}
