//! The `cgroup` mount type: what a container sees at /sys/fs/cgroup.
//!
//! On a pure cgroup v2 host that is one cgroup2 mount. On a v1 or hybrid
//! host it is a tmpfs holding one mount per v1 hierarchy (and `unified` for
//! the v2 one), as runc and Docker lay it out. In a cgroup namespace each
//! hierarchy is mounted fresh (the kernel roots it at the namespace); without
//! one, the container's own cgroup directory is bind-mounted, so it never
//! sees its siblings.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};

use super::guard;
use super::mounts::{remount_bind, reopen_same, MountContext};
use super::options::MountOptions;
use crate::cgroups::v1::{own_cgroup, Hierarchy};
use crate::error::{Context, Result};
use crate::syscall::{fd_path, mkdir_all_in_root};

pub fn mount_cgroup(
    root: &OwnedFd,
    dest: &Path,
    opts: &MountOptions,
    cx: MountContext<'_>,
) -> Result<()> {
    let hierarchies = cx.hierarchies;
    // Our own cgroups, for the binds: read once for all the hierarchies.
    let own_text = std::cell::OnceCell::new();
    let flags = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    let readonly = opts.flags.contains(MsFlags::MS_RDONLY);
    // The same test the cgroup manager uses, so both agree on the layout.
    let pure_v2 = crate::cgroups::host_layout() == crate::cgroups::Layout::Unified;
    if pure_v2 {
        let h = hierarchies
            .iter()
            .find(|h| h.mount_point == "/sys/fs/cgroup")
            .cloned();
        let parent = mkdir_all_in_root(root, dest.parent().unwrap_or(Path::new("/")))?;
        let name = dest.file_name().unwrap_or_default().to_os_string();
        let target = mkdir_all_in_root(root, dest)?;
        guard::check_resolved_destination(root, dest, &target, guard::Mounted::Cgroup)?;
        return mount_hierarchy(
            &parent,
            &name,
            (h.as_ref(), &own_text),
            flags,
            readonly,
            cx,
            dest,
        );
    }
    // v1 or hybrid: a tmpfs with one directory per hierarchy.
    let target = mkdir_all_in_root(root, dest)?;
    guard::check_resolved_destination(root, dest, &target, guard::Mounted::Cgroup)?;
    mount(
        Some("tmpfs"),
        fd_path(&target).as_str(),
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )
    .ctx(|| format!("mount tmpfs on {}", dest.display()))?;
    // A tmpfs we just mounted holds no symlinks: its directories are made
    // and opened relative to it, without resolving from the root each time.
    let tmpfs = reopen_same(root, dest, &target)?;
    if saferoot::fs_type(&tmpfs).ctx(|| format!("statfs {}", dest.display()))? != libc::TMPFS_MAGIC
    {
        return Err(crate::error::Error::UnsafeRootfs(format!(
            "{} is not the tmpfs just mounted on it",
            dest.display()
        )));
    }
    for h in hierarchies
        .iter()
        .filter(|h| h.mount_point.starts_with("/sys/fs/cgroup/"))
    {
        let name = &h.mount_point["/sys/fs/cgroup/".len()..];
        if name.is_empty() || name.contains('/') {
            continue;
        }
        let sub = dest.join(name);
        nix::sys::stat::mkdirat(
            Some(tmpfs.as_raw_fd()),
            name,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .ctx(|| format!("mkdir {}", sub.display()))?;
        mount_hierarchy(
            &tmpfs,
            std::ffi::OsStr::new(name),
            (Some(h), &own_text),
            flags,
            readonly,
            cx,
            &sub,
        )?;
    }
    let target = reopen_same(root, dest, &target)?;
    if readonly {
        remount_bind(&fd_path(&target), flags | MsFlags::MS_RDONLY)
            .or_else(|_| {
                mount(
                    None::<&str>,
                    fd_path(&target).as_str(),
                    None::<&str>,
                    MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
                    Some("mode=755"),
                )
            })
            .ctx(|| format!("make {} read-only", dest.display()))?;
    }
    Ok(())
}

/// Opens `name` in `dir` without following a symlink.
fn open_sub(dir: &OwnedFd, name: &std::ffi::OsStr, dest: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {}", dest.display()))?;
    // SAFETY: fresh descriptor from openat.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Mounts hierarchy `h` on `parent/name`; `own_text` caches
/// /proc/self/cgroup.
fn mount_hierarchy(
    parent: &OwnedFd,
    name: &std::ffi::OsStr,
    (h, own_text): (Option<&Hierarchy>, &std::cell::OnceCell<String>),
    flags: MsFlags,
    readonly: bool,
    cx: MountContext<'_>,
    dest: &Path,
) -> Result<()> {
    let Some(h) = h else { return Ok(()) };
    let target_fd = open_sub(parent, name, dest)?;
    let target = fd_path(&target_fd);
    let target = target.as_str();
    let ro = if readonly {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    if cx.cgroupns {
        let data = if h.fstype == "cgroup2" {
            None
        } else {
            Some(h.options.as_str())
        };
        let fs = h.fstype.as_str();
        if mount(Some(fs), target, Some(fs), flags | ro, data).is_ok() {
            return Ok(());
        }
        // A hierarchy already mounted with other options cannot be mounted
        // again with these; fall through to a bind of our own cgroup.
    }
    let own_text =
        own_text.get_or_init(|| std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default());
    let own = own_cgroup(h, own_text).unwrap_or_else(|| "/".to_string());
    let rel = own
        .strip_prefix(h.root.as_str())
        .unwrap_or(&own)
        .trim_start_matches('/');
    let src = Path::new(&h.mount_point).join(rel);
    mount(
        Some(&src),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind {} on {}", src.display(), dest.display()))?;
    // Reopened: the descriptor from before the bind names the covered dir.
    remount_bind(&fd_path(&open_sub(parent, name, dest)?), flags | ro)
        .ctx(|| format!("remount {}", dest.display()))
}
