//! The descriptors a container process starts with on 0, 1 and 2, handed
//! to the runtime by its caller as owned descriptors (youki's builder takes
//! them the same way). They are put in place in the forked child only: the
//! caller's own 0, 1 and 2 are never touched, so an in-process caller (the
//! engine's monitor, a build, a health check) needs no process-wide dup2
//! around a runtime call, and two launches cannot see each other's.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Context, Result};

/// A container process's stdin, stdout and stderr.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Stdio {
    /// Puts the three on 0, 1 and 2 of the calling process, which must be
    /// a child forked for the container (never the runtime's caller).
    pub(crate) fn install(&self) -> Result<()> {
        // Copies above 2 first: a source may itself sit on 0, 1 or 2 (a
        // caller that closed its own), where the first dup2 would
        // overwrite the next one's source.
        let mut high = Vec::with_capacity(3);
        for fd in [&self.stdin, &self.stdout, &self.stderr] {
            let n = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
                .ctx(|| "dup a stdio descriptor".into())?;
            // SAFETY: fcntl just returned this descriptor; nobody else owns it.
            high.push(unsafe { OwnedFd::from_raw_fd(n) });
        }
        for (target, fd) in (0..3).zip(&high) {
            // dup2 leaves close-on-exec off the target: the program keeps it.
            nix::unistd::dup2(fd.as_raw_fd(), target).ctx(|| format!("dup2 onto fd {target}"))?;
        }
        Ok(())
    }
}
