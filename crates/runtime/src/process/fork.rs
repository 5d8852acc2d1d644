//! Forking, optionally straight into a cgroup.
//!
//! `clone3(CLONE_INTO_CGROUP)` makes the child a member of a cgroup2
//! directory from its first instruction: nothing runs unaccounted and no
//! migration (with its threadgroup lock) is needed. Kernels or setups that
//! refuse it get a plain fork followed by a `cgroup.procs` write.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid};

use crate::error::{Context, Result};

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Opens a cgroup2 directory for `fork_into` (before the caller leaves
/// the host's mount namespace).
pub fn open_cgroup(dir: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open cgroup {}", dir.display()))?;
    // SAFETY: fresh descriptor from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Forks; with `cgroup2`, the child is born in that cgroup.
///
/// The caller must be single-threaded.
pub fn fork_into(cgroup2: Option<&OwnedFd>) -> Result<ForkResult> {
    clone_into(cgroup2, CloneFlags::empty())
}

/// [`fork_into`], the child born in the new namespaces `namespaces` too
/// (a new user namespace first, owning the others, as clone(2) does it).
///
/// The caller must be single-threaded.
pub fn clone_into(cgroup2: Option<&OwnedFd>, namespaces: CloneFlags) -> Result<ForkResult> {
    let ns = u64::from(namespaces.bits().unsigned_abs());
    let Some(fd) = cgroup2 else {
        return plain_clone(namespaces);
    };
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP | ns,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd.as_raw_fd().unsigned_abs().into(),
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM or a stack behaves like fork: the
    // child gets a copy of the address space and returns here with 0. The
    // caller is single-threaded (documented), as for fork.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(rc) {
        Ok(0) => Ok(ForkResult::Child),
        Ok(pid) => Ok(ForkResult::Parent {
            child: Pid::from_raw(i32::try_from(pid).unwrap_or(-1)),
        }),
        Err(_) => {
            let res = plain_clone(namespaces)?;
            if let ForkResult::Parent { child } = res {
                let procs = nix::fcntl::openat(
                    Some(fd.as_raw_fd()),
                    "cgroup.procs",
                    OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| "open cgroup.procs".into())?;
                // SAFETY: fresh descriptor from openat.
                let procs = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(procs) });
                std::io::Write::write_all(&mut &procs, child.as_raw().to_string().as_bytes())
                    .ctx(|| "write cgroup.procs".into())?;
            }
            Ok(res)
        }
    }
}

/// fork(2), or with namespaces clone(2) used as fork (no new stack).
fn plain_clone(namespaces: CloneFlags) -> Result<ForkResult> {
    if namespaces.is_empty() {
        // SAFETY: the caller is single-threaded, so the child may run any
        // code (no lock can be held by a thread that does not exist there).
        return unsafe { nix::unistd::fork() }.ctx(|| "fork".into());
    }
    let flags =
        libc::c_ulong::from(namespaces.bits().unsigned_abs()) | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: clone(2) with a null stack and without CLONE_VM behaves like
    // fork: the child continues on a copy of this stack. The caller is
    // single-threaded (documented), as for fork.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match Errno::result(rc).ctx(|| format!("clone into namespaces {namespaces:?}"))? {
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(i32::try_from(pid).unwrap_or(-1)),
        }),
    }
}
