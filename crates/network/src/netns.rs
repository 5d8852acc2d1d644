//! The network namespace berth's networks live in: the process's own (the
//! host's, as root), or one given once per process (rootless berth's, the
//! user's own namespace: see the engine's rootless_netns.rs).
//!
//! An ordinary user may enter the namespace their user namespace owns but
//! can never come back to the host's (that needs CAP_SYS_ADMIN over the
//! host's), so the process never moves: what must happen in the namespace
//! does so from a short-lived thread (netlink sockets, which stay in the
//! namespace they were made in; sysctls, which are the calling thread's
//! namespace's) or from a child that enters it before exec (nft, the
//! resolvers).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The namespace and the directory for its state files.
static NETNS: OnceLock<(File, PathBuf)> = OnceLock::new();

/// Makes `ns` the namespace of this process's networks from now on;
/// `state` is a directory of the user's for what root keeps in /run (the
/// stamp of loaded nft rules). The first call wins: a process serves one
/// run state.
pub fn set(ns: File, state: &Path) {
    let _ = NETNS.set((ns, state.to_path_buf()));
}

/// Whether a namespace was set.
pub fn is_set() -> bool {
    NETNS.get().is_some()
}

/// The namespace's descriptor, when one was set (for a child to enter).
pub(crate) fn raw_fd() -> Option<std::os::fd::RawFd> {
    NETNS.get().map(|(ns, _)| ns.as_raw_fd())
}

/// The state directory given with the namespace.
pub(crate) fn state_dir() -> Option<&'static Path> {
    NETNS.get().map(|(_, d)| d.as_path())
}

/// Runs `f` in the namespace: on a thread of its own when one was set
/// (the thread never comes back), here otherwise.
pub(crate) fn run_in<T: Send>(f: impl FnOnce() -> std::io::Result<T> + Send) -> std::io::Result<T> {
    let Some((ns, _)) = NETNS.get() else {
        return f();
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("netns thread panicked")))
    })
}

/// `program` as a command that runs in the namespace.
pub(crate) fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if let Some((ns, _)) = NETNS.get() {
        let raw = ns.as_raw_fd();
        // SAFETY: between fork and exec only setns runs, a system call
        // (async-signal-safe), on a descriptor that lives as long as the
        // process (a static's).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}
