//! Thin, documented helpers over the syscalls the runtime needs where nix has
//! no wrapper, or where the way it is called is itself a security property.
//! Paths inside a container's root go through the `saferoot` crate
//! (`openat2(RESOLVE_IN_ROOT)`), so `..` and symlinks planted in the rootfs
//! resolve inside it and never reach the host.

use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::error::{Context, Error, Result};

pub use saferoot::{fd_path, open_in_root};

/// `saferoot::mkdir_all_in_root` with the runtime's error type.
pub fn mkdir_all_in_root(
    root: &std::os::fd::OwnedFd,
    path: &std::path::Path,
) -> Result<std::os::fd::OwnedFd> {
    saferoot::mkdir_all_in_root(root, path).map_err(from_saferoot)
}

/// `saferoot::touch_in_root` with the runtime's error type.
pub fn touch_in_root(
    root: &std::os::fd::OwnedFd,
    path: &std::path::Path,
) -> Result<std::os::fd::OwnedFd> {
    saferoot::touch_in_root(root, path).map_err(from_saferoot)
}

fn from_saferoot(e: saferoot::Error) -> Error {
    Error::Sys {
        context: e.context,
        source: e.source,
    }
}

/// Closes every descriptor from `from` on except those in `keep`; with
/// `cloexec`, marks them close-on-exec instead of closing them.
pub fn close_fds_from(from: RawFd, keep: &[RawFd], cloexec: bool) -> Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&f| f >= from).collect();
    keep.sort_unstable();
    keep.dedup();
    let flags = if cloexec {
        libc::CLOSE_RANGE_CLOEXEC
    } else {
        0
    };
    let mut lo = from;
    for k in keep.into_iter().chain(std::iter::once(RawFd::MAX)) {
        if k > lo {
            let hi = if k == RawFd::MAX {
                u32::MAX
            } else {
                (k - 1).unsigned_abs()
            };
            // SAFETY: close_range only acts on this process's descriptor
            // table; the ones we still use are outside [lo, hi].
            let rc = unsafe { libc::syscall(libc::SYS_close_range, lo.unsigned_abs(), hi, flags) };
            Errno::result(rc).ctx(|| "close_range".into())?;
        }
        lo = k.saturating_add(1);
    }
    Ok(())
}

/// Clears close-on-exec on a descriptor that must reach the container.
pub fn clear_cloexec(fd: RawFd) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    match fcntl(fd, FcntlArg::F_GETFD) {
        Ok(bits) => {
            let flags = FdFlag::from_bits_truncate(bits) - FdFlag::FD_CLOEXEC;
            fcntl(fd, FcntlArg::F_SETFD(flags)).ctx(|| format!("fcntl fd {fd}"))?;
            Ok(())
        }
        Err(Errno::EBADF) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("fcntl fd {fd}")),
    }
}

/// `prctl(PR_SET_DUMPABLE, 0)`: makes `/proc/<pid>/{exe,fd,mem,...}` of this
/// process unreachable for processes without CAP_SYS_PTRACE over it, which
/// is what stops a container from reopening the runtime binary through
/// `/proc/<pid>/exe` while we stand in its namespaces (CVE-2019-5736).
/// execve of the container's own program restores dumpability.
pub fn set_non_dumpable() -> Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes plain integers.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    Errno::result(rc)
        .map(drop)
        .ctx(|| "prctl(PR_SET_DUMPABLE)".into())
}

/// Makes the calling process a child subreaper, so orphaned descendants
/// (the container init once the intermediate exits) are reparented to it.
pub fn set_child_subreaper() -> Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes plain integers.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    Errno::result(rc)
        .map(drop)
        .ctx(|| "prctl(PR_SET_CHILD_SUBREAPER)".into())
}

/// Asks for `sig` when the parent dies, so a half-made container does not
/// outlive a runtime that was killed.
pub fn set_parent_death_signal(sig: i32) -> Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes plain integers.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) };
    Errno::result(rc)
        .map(drop)
        .ctx(|| "prctl(PR_SET_PDEATHSIG)".into())
}

/// Brings up `lo` in the calling process's network namespace, with two
/// ioctls on a datagram socket (no netlink conversation: the flag is all
/// that changes). For a namespace the process made, where it holds
/// CAP_NET_ADMIN.
pub fn loopback_up() -> Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket(2) takes no pointer; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    let fd = Errno::result(fd).ctx(|| "socket for lo".into())?;
    // SAFETY: a fresh descriptor from socket(2), owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into
    // `req`, a valid ifreq that outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    Errno::result(rc).ctx(|| "read the flags of lo".into())?;
    // SAFETY: SIOCGIFFLAGS filled ifru_flags, the union's member read here.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    // IFF_UP is 1: it fits any width.
    let up = libc::c_short::try_from(libc::IFF_UP).unwrap_or(1);
    if flags & up != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | up;
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`, valid for
    // the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    Errno::result(rc).ctx(|| "bring lo up".into())?;
    Ok(())
}
