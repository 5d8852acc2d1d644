//! The runtime's processes (a container's init, an exec'd process) inherit
//! the stdin, stdout and stderr of the process calling the runtime.
//! [`Pipes`] makes those pipes (or /dev/null), never the caller's own, puts
//! them there for the while of such a call (and ours back), and keeps our
//! ends for the relay. It is the only way this crate gives a container
//! process its stdio: run, start, exec, health checks and build steps.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Context, Result};

/// Descriptors placed on some of 0, 1, 2 until dropped. Private: what a
/// container process gets is always a [`Pipes`].
#[derive(Debug)]
struct Redirect {
    /// (target, what it was), restored on drop.
    saved: Vec<(RawFd, OwnedFd)>,
}

impl Redirect {
    /// Puts each `source` on its `target` (0, 1 or 2).
    fn new(pairs: &[(RawFd, RawFd)]) -> Result<Redirect> {
        let mut r = Redirect {
            saved: Vec::with_capacity(pairs.len()),
        };
        for &(target, _) in pairs {
            let n = nix::fcntl::fcntl(target, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
                .ctx(|| format!("save fd {target}"))?;
            // SAFETY: fcntl just returned this new descriptor, owned by
            // nobody else.
            r.saved.push((target, unsafe { OwnedFd::from_raw_fd(n) }));
        }
        // On a failure here, dropping `r` restores what was already moved.
        for &(target, source) in pairs {
            nix::unistd::dup2(source, target).ctx(|| format!("dup2 onto fd {target}"))?;
        }
        Ok(r)
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        for (target, fd) in &self.saved {
            let _ = nix::unistd::dup2(fd.as_raw_fd(), *target);
        }
    }
}

/// A container process's stdio as pipes (or /dev/null), and our ends of
/// them: what berth relays to and from its caller's descriptors.
///
/// A container process never gets a descriptor of berth's caller. A
/// terminal could be driven (TIOCSTI pushes keystrokes into the user's
/// shell) or read; a file the caller's shell redirected to could be
/// reopened through /proc/self/fd, then truncated, rewritten or read back,
/// and its path is a fact about the host.
#[derive(Debug)]
pub struct Pipes {
    /// The container's 0, 1, 2 (dropped once the runtime has passed them
    /// on: our copies would keep the pipes from reaching end of file).
    theirs: Option<[OwnedFd; 3]>,
    /// The write end of the container's stdin pipe (with `stdin`).
    pub input: Option<OwnedFd>,
    /// The read ends of its stdout (0) and stderr (1), for the relay.
    pub streams: Vec<(OwnedFd, usize)>,
}

impl Pipes {
    /// Two pipes for stdout and stderr, kept apart as docker keeps them;
    /// stdin a pipe with `stdin`, else /dev/null.
    pub fn new(stdin: bool) -> Result<Pipes> {
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into());
        let (in_r, input) = if stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (null()?, None)
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        Ok(Pipes {
            theirs: Some([in_r, out_w, err_w]),
            input,
            streams: vec![(out_r, 0), (err_r, 1)],
        })
    }

    /// One pipe that is both stdout and stderr (what a build step or a
    /// health check wrote, in the order written); stdin /dev/null.
    pub fn merged() -> Result<Pipes> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
        let w2 = w.try_clone().ctx(|| "dup a pipe".into())?;
        Ok(Pipes {
            theirs: Some([null()?, w, w2]),
            input: None,
            streams: vec![(r, 0)],
        })
    }

    /// /dev/null on all three: a detached process's output goes nowhere,
    /// as docker's `exec -d` does.
    pub fn discard() -> Result<Pipes> {
        Ok(Pipes {
            theirs: Some([null()?, null()?, null()?]),
            input: None,
            streams: Vec::new(),
        })
    }

    /// Puts the container's ends on our 0, 1, 2 for the while of a runtime
    /// call (its processes inherit them), then let them go.
    pub fn around<T>(&mut self, call: impl FnOnce() -> T) -> Result<T> {
        let theirs = self.theirs.take().ok_or_else(|| {
            crate::Error::Process("the container's stdio was already given".into())
        })?;
        let out = {
            let _redirect = Redirect::new(&[
                (0, theirs[0].as_raw_fd()),
                (1, theirs[1].as_raw_fd()),
                (2, theirs[2].as_raw_fd()),
            ])?;
            call()
        };
        drop(theirs);
        Ok(out)
    }
}

fn null() -> Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ctx(|| "open /dev/null".into())?;
    Ok(OwnedFd::from(f))
}
