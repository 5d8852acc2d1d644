//! Mounting the spec's `mounts` into the container's root, before
//! pivot_root. Every destination is resolved inside the root and the mount
//! is made on `/proc/self/fd/<n>` of the resolved descriptor, so a symlink
//! in the rootfs can never redirect a mount onto a host path.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

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
}

pub fn mount_one(root: &OwnedFd, m: &Mount, cx: MountContext<'_>) -> Result<()> {
    let dest = m.destination();
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| Error::SpecInvalid(format!("mount {}: {e}", dest.display())))?;
    let typ = m.typ().as_deref().unwrap_or("");
    if opts.bind || typ == "bind" {
        return bind(root, m, &opts, cx);
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return super::cgroupfs::mount_cgroup(root, dest, &opts, cx);
    }
    let target = mkdir_all_in_root(root, dest)?;
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let data = opts.data();
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
    apply_propagation(root, &opts, dest)
}

/// Re-resolves `dest` after something was mounted on it: a descriptor opened
/// before the mount still names the covered directory, not the new mount.
pub fn reopen(root: &OwnedFd, dest: &Path) -> Result<OwnedFd> {
    open_in_root(root, dest, OFlag::O_PATH).ctx(|| format!("open {}", dest.display()))
}

fn bind(root: &OwnedFd, m: &Mount, opts: &MountOptions, cx: MountContext<'_>) -> Result<()> {
    let dest = m.destination();
    let src = m.source().as_ref().ok_or_else(|| {
        Error::SpecInvalid(format!("bind mount {} has no source", dest.display()))
    })?;
    let src = if src.is_absolute() {
        src.clone()
    } else {
        cx.bundle.join(src)
    };
    let meta = std::fs::metadata(&src).ctx(|| format!("bind mount source {}", src.display()))?;
    let target = if meta.is_dir() {
        mkdir_all_in_root(root, dest)?
    } else {
        touch_in_root(root, dest)?
    };
    let mut flags = MsFlags::MS_BIND;
    if opts.recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(
        Some(&src),
        fd_path(&target).as_str(),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .ctx(|| format!("bind {} on {}", src.display(), dest.display()))?;
    let extra = opts.flags - MsFlags::MS_REMOUNT;
    if !extra.is_empty() {
        remount_bind(&fd_path(&reopen(root, dest)?), extra)
            .ctx(|| format!("remount {} with its options", dest.display()))?;
    }
    apply_propagation(root, opts, dest)
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

fn apply_propagation(root: &OwnedFd, opts: &MountOptions, dest: &Path) -> Result<()> {
    for p in &opts.propagation {
        let target = reopen(root, dest)?;
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
