//! The runtime's processes (a container's init, an exec'd process) inherit
//! the caller's stdin, stdout and stderr. [`Redirect`] puts other
//! descriptors there for the while of such a call and puts ours back.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Context, Result};

/// Descriptors placed on some of 0, 1, 2 until dropped.
#[derive(Debug)]
pub struct Redirect {
    /// (target, what it was), restored on drop.
    saved: Vec<(RawFd, OwnedFd)>,
}

impl Redirect {
    /// Puts each `source` on its `target` (0, 1 or 2).
    pub fn new(pairs: &[(RawFd, RawFd)]) -> Result<Redirect> {
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
