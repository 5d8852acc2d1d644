//! Mounting the spec's `mounts` into the container's root, before
//! pivot_root. Every destination is resolved inside the root and the mount
//! is made on `/proc/self/fd/<n>` of the resolved descriptor, so a symlink
//! in the rootfs can never redirect a mount onto a host path.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use super::guard::{self, Mounted};
use super::options::MountOptions;
use crate::error::{Context, Error, Result};
use crate::syscall::{fd_path, mkdir_all_in_root, open_in_root, touch_in_root};

/// What the mount step needs to know about the container.
#[derive(Debug, Clone, Copy)]
pub struct MountContext<'a> {
    /// The bundle directory: relative bind sources are taken from it.
    pub bundle: &'a Path,
    /// The container has its own user namespace.
    pub userns: bool,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// See [`super::RootfsPlan::hierarchies`].
    pub hierarchies: &'a [crate::cgroups::v1::Hierarchy],
}

/// `idmapped`: the bind's source already cloned and idmapped by the
/// parent (see idmapped.rs), attached instead of a bind of the source.
pub fn mount_one(
    root: &OwnedFd,
    m: &Mount,
    cx: MountContext<'_>,
    idmapped: Option<std::os::fd::RawFd>,
) -> Result<()> {
    let dest = m.destination();
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| Error::SpecInvalid(format!("mount {}: {e}", dest.display())))?;
    let typ = m.typ().as_deref().unwrap_or("");
    if opts.bind || typ == "bind" {
        return bind(root, m, &opts, cx, idmapped);
    }
    if typ == "cgroup" || typ == "cgroup2" {
        guard::check_destination(dest, Mounted::Cgroup)?;
        return super::cgroupfs::mount_cgroup(root, dest, &opts, cx);
    }
    let what = Mounted::fresh(typ);
    // Checked as written, then where it resolved in the rootfs: a
    // `/data -> /proc/sys` symlink in the image must not put a tmpfs there.
    guard::check_destination(dest, what)?;
    let target = mkdir_all_in_root(root, dest)?;
    guard::check_resolved_destination(root, dest, &target, what)?;
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let mut data = opts.data();
    if typ == "devpts" && cx.userns && !gid_mapped(data.as_deref()) {
        // A user namespace mapping no tty group (rootless with the user's
        // id alone): devpts refuses gid=5 there, as runc finds too; the
        // terminals then belong to the container's root group.
        data = data.map(|d| {
            d.split(',')
                .filter(|o| !o.starts_with("gid="))
                .collect::<Vec<_>>()
                .join(",")
        });
    }
    let res = mount(
        Some(&source),
        fd_path(&target).as_str(),
        Some(typ),
        opts.flags,
        data.as_deref(),
    );
    match res {
        Ok(()) => {}
        // Without owning the network or ipc namespace (as in a user
        // namespace that shares them) sysfs and mqueue cannot be mounted
        // fresh; runc falls back to a bind of the host's, and so do we.
        Err(Errno::EPERM) if (typ == "sysfs" || typ == "mqueue") && cx.userns => {
            let host = if typ == "sysfs" {
                "/sys"
            } else {
                "/dev/mqueue"
            };
            mount(
                Some(host),
                fd_path(&target).as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| format!("bind {host} on {}", dest.display()))?;
        }
        Err(e) => {
            return Err(e).ctx(|| format!("mount {typ} on {}", dest.display()));
        }
    }
    apply_propagation(root, &opts, dest, &target)
}

/// Whether the `gid=` of devpts' options (if any) is mapped in this
/// process's user namespace.
fn gid_mapped(data: Option<&str>) -> bool {
    let Some(gid) = data
        .unwrap_or_default()
        .split(',')
        .find_map(|o| o.strip_prefix("gid="))
        .and_then(|g| g.parse::<u64>().ok())
    else {
        return true;
    };
    let map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    map.lines().any(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        f.len() == 3 && gid >= f[0] && gid - f[0] < f[2]
    })
}

/// Re-resolves `dest` after something was mounted on it: a descriptor opened
/// before the mount still names the covered directory, not the new mount.
pub fn reopen(root: &OwnedFd, dest: &Path) -> Result<OwnedFd> {
    open_in_root(root, dest, OFlag::O_PATH).ctx(|| format!("open {}", dest.display()))
}

/// [`reopen`], checked to land where `before` (the descriptor the mount was
/// made on) is: a symlink swapped in on the way since (a volume another
/// container shares can do that) would otherwise point the remount that
/// makes a mount read-only at some other place.
pub fn reopen_same(root: &OwnedFd, dest: &Path, before: &OwnedFd) -> Result<OwnedFd> {
    let fd = reopen(root, dest)?;
    let want = guard::resolved_path(root, before)?;
    let got = guard::resolved_path(root, &fd)?;
    if want != got {
        return Err(Error::UnsafeRootfs(format!(
            "{} moved from {} to {} while it was mounted",
            dest.display(),
            want.display(),
            got.display()
        )));
    }
    Ok(fd)
}

fn bind(
    root: &OwnedFd,
    m: &Mount,
    opts: &MountOptions,
    cx: MountContext<'_>,
    idmapped: Option<std::os::fd::RawFd>,
) -> Result<()> {
    let dest = m.destination();
    let src = m.source().as_ref().ok_or_else(|| {
        Error::SpecInvalid(format!("bind mount {} has no source", dest.display()))
    })?;
    let src = if src.is_absolute() {
        src.clone()
    } else {
        cx.bundle.join(src)
    };
    // The source is a host path the caller chose; it is opened once, and
    // the descriptor is what is checked and mounted. An idmapped one was
    // opened by the parent (the init, in the container's user namespace,
    // may not be able to walk the host's path to it), which refused one
    // under /sys.
    let src_fd = match idmapped {
        Some(clone) => {
            // SAFETY: the clone's descriptor stays open (the parent's copy,
            // inherited) for this whole call; it is only read here.
            let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(clone) };
            b.try_clone_to_owned()
                .ctx(|| format!("bind mount source {} (idmapped)", src.display()))?
        }
        None => open_host(&src)?,
    };
    let meta = nix::sys::stat::fstat(src_fd.as_raw_fd())
        .ctx(|| format!("bind mount source {}", src.display()))?;
    let what = Mounted::Bind {
        fs: saferoot::fs_type(&src_fd).ctx(|| format!("statfs {}", src.display()))?,
        in_host_sys: idmapped.is_none()
            && std::fs::read_link(fd_path(&src_fd)).is_ok_and(|p| p.starts_with("/sys")),
    };
    guard::check_destination(dest, what)?;
    let target = if meta.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mkdir_all_in_root(root, dest)?
    } else {
        touch_in_root(root, dest)?
    };
    // A symlink at the destination is followed inside the rootfs (as runc
    // does, so `/etc/resolv.conf -> ../run/...` works), but where it led is
    // held to the same rule: /etc/hosts -> /proc/sys/kernel/core_pattern is
    // refused.
    guard::check_resolved_destination(root, dest, &target, what)?;
    let mut flags = MsFlags::MS_BIND;
    if opts.recursive {
        flags |= MsFlags::MS_REC;
    }
    if let Some(clone) = idmapped {
        // The same source, cloned by the parent (which can idmap it):
        // the checks above were made on the source as the init sees it.
        attach_clone(clone, &target)
            .ctx(|| format!("bind {} (idmapped) on {}", src.display(), dest.display()))?;
    } else {
        mount(
            Some(fd_path(&src_fd).as_str()),
            fd_path(&target).as_str(),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .ctx(|| format!("bind {} on {}", src.display(), dest.display()))?;
    }
    let extra = opts.flags - MsFlags::MS_REMOUNT;
    if !extra.is_empty() {
        remount_bind(&fd_path(&reopen_same(root, dest, &target)?), extra)
            .ctx(|| format!("remount {} with its options", dest.display()))?;
    }
    apply_propagation(root, opts, dest, &target)
}

/// Attaches the detached mount `clone` on the directory or file `target`
/// is open on (no path walked again: a symlink swapped in meanwhile is not
/// followed).
fn attach_clone(clone: std::os::fd::RawFd, target: &OwnedFd) -> nix::Result<()> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: two live descriptors with empty NUL-terminated paths (the
    // EMPTY_PATH flags: the descriptors themselves) and a flag word.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            libc::c_long::from(clone),
            c"".as_ptr(),
            libc::c_long::from(target.as_raw_fd()),
            c"".as_ptr(),
            libc::c_long::from(flags),
        )
    };
    Errno::result(rc).map(drop)
}

fn open_host(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("bind mount source {}", path.display()))?;
    // SAFETY: open returned a fresh descriptor we now own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Remounts a bind mount with `flags`. In a user namespace the flags a mount
/// came with (nodev, nosuid, noexec, and the atime ones) are locked and a
/// remount that drops them fails with EPERM, so they are carried over.
pub fn remount_bind(target: &str, flags: MsFlags) -> nix::Result<()> {
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    match mount(
        None::<&str>,
        target,
        None::<&str>,
        base | flags,
        None::<&str>,
    ) {
        Err(Errno::EPERM) => {
            let locked = locked_flags(target)?;
            mount(
                None::<&str>,
                target,
                None::<&str>,
                base | flags | locked,
                None::<&str>,
            )
        }
        other => other,
    }
}

fn locked_flags(target: &str) -> nix::Result<MsFlags> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let st = statvfs(target)?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    Ok(out)
}

fn apply_propagation(
    root: &OwnedFd,
    opts: &MountOptions,
    dest: &Path,
    before: &OwnedFd,
) -> Result<()> {
    for p in &opts.propagation {
        let target = reopen_same(root, dest, before)?;
        mount(
            None::<&str>,
            fd_path(&target).as_str(),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .ctx(|| format!("set propagation of {}", dest.display()))?;
    }
    Ok(())
}
