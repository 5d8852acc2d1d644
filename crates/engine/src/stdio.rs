//! A container process's stdio: pipes (or /dev/null) made here, the
//! container's ends handed to the runtime as owned descriptors (the
//! launcher, [`crate::launch`]), ours kept for the relay. It is the only way
//! this crate gives a container process its stdio: run, start, exec,
//! health checks and build steps.

use std::os::fd::OwnedFd;

use crate::error::{Context, Result};

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

    /// The container's ends, for the launcher (once): the runtime closes
    /// them once its child has them.
    pub fn take_stdio(&mut self) -> Result<berth_runtime::Stdio> {
        let [stdin, stdout, stderr] = self.theirs.take().ok_or_else(|| {
            crate::Error::Process("the container's stdio was already given".into())
        })?;
        Ok(berth_runtime::Stdio {
            stdin,
            stdout,
            stderr,
        })
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
