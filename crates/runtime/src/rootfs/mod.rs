//! The container's root filesystem: mounts, devices, pivot_root, and what is
//! masked or made read-only afterwards.

pub mod cgroupfs;
pub mod devices;
pub mod guard;
pub mod idmapped;
pub mod mounts;
pub mod options;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::error::{Context, Error, Result};
use crate::syscall::fd_path;
use mounts::MountContext;

/// Everything the rootfs steps need.
#[derive(Debug, Clone, Copy)]
pub struct RootfsPlan<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub userns: bool,
    pub cgroupns: bool,
    /// Use chroot instead of pivot_root (`--no-pivot`).
    pub no_pivot: bool,
    /// The init has a mount namespace of its own (new or joined). Without
    /// one (the spec lists none, so the container inherits the runtime's,
    /// as the spec requires) the mounts are made in the host's namespace,
    /// under a private bind of the rootfs, and the root is entered with
    /// chroot; `delete` takes them down (see [`detach_host_mounts`]).
    pub own_mount_ns: bool,
    /// A detached mount to attach at the rootfs first (see
    /// [`crate::CreateOptions::rootfs_mount`]).
    pub rootfs_mount: Option<std::os::fd::RawFd>,
    /// Idmapped clones of bind sources, by spec mount index (see
    /// [`idmapped`]); empty when there are none.
    pub idmapped: &'a [Option<std::os::fd::RawFd>],
    /// The host's cgroup hierarchies, as the runtime read them before it
    /// forked (the init's mount namespace is a copy of its): what a
    /// `cgroup` mount lays out.
    pub hierarchies: &'a [crate::cgroups::v1::Hierarchy],
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", path.display()))?;
    // SAFETY: fresh descriptor from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn propagation_flag(name: &str) -> Result<MsFlags> {
    Ok(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => {
            return Err(Error::SpecInvalid(format!(
                "unknown rootfsPropagation {other:?}"
            )))
        }
    })
}

/// What [`prepare`] leaves for [`finalize`] to check against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prepared {
    /// The mount id of the procfs the spec's mounts put on /proc.
    pub proc_mount_id: Option<u64>,
}

/// Steps before pivot_root, run by the init in its new mount namespace
/// (or, without one, in the host's).
pub fn prepare(plan: &RootfsPlan<'_>) -> Result<Prepared> {
    let linux = plan.spec.linux().as_ref();
    let root_prop = linux.and_then(|l| l.rootfs_propagation().clone());
    // Nothing we mount may propagate back to the host: everything becomes a
    // slave of the host first (runc's default), whatever the spec asks for
    // the root afterwards. In the host's own namespace its / is left alone
    // (runc makes the host's / a slave there); the rootfs bind below is
    // made private instead.
    let first = match root_prop.as_deref() {
        Some(p) if p.contains("private") => propagation_flag(p)? | MsFlags::MS_REC,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    if plan.own_mount_ns {
        mount(None::<&str>, "/", None::<&str>, first, None::<&str>)
            .ctx(|| "make / a slave mount".into())?;
    } else if plan.rootfs_mount.is_some() {
        return Err(Error::SpecInvalid(
            "a detached rootfs mount needs a mount namespace".into(),
        ));
    }
    if let Some(fd) = plan.rootfs_mount {
        attach_detached(fd, plan.rootfs)?;
    }
    // pivot_root needs the new root to be a mount point; without a mount
    // namespace, it is what `delete` takes down with all below it.
    mount(
        Some(plan.rootfs),
        plan.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind rootfs {}", plan.rootfs.display()))?;
    if !plan.own_mount_ns {
        mount(
            None::<&str>,
            plan.rootfs,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("make rootfs {} private", plan.rootfs.display()))?;
    }
    let root = open_dir(plan.rootfs)?;
    let cx = MountContext {
        bundle: plan.bundle,
        userns: plan.userns,
        cgroupns: plan.cgroupns,
        hierarchies: plan.hierarchies,
    };
    let spec_mounts = plan.spec.mounts().clone().unwrap_or_default();
    for (i, m) in spec_mounts.iter().enumerate() {
        let idmapped = plan.idmapped.get(i).copied().flatten();
        mounts::mount_one(&root, m, cx, idmapped)?;
    }
    // The destination rule lets nothing but a procfs onto /proc, so what is
    // there now is the runtime's; finalize checks it still is.
    let proc_mount_id = saferoot::open_in_root_no_symlinks(
        &root,
        Path::new("/proc"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
    )
    .ok()
    .filter(|fd| saferoot::fs_type(fd).ok() == Some(libc::PROC_SUPER_MAGIC))
    .map(|fd| saferoot::mount_id(&fd).ctx(|| "statx /proc".into()))
    .transpose()?;
    // Devices, unless /dev is the host's (a bind mount of it).
    let dev_is_bind = spec_mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    if !dev_is_bind {
        let mut devs = devices::default_devices();
        for d in linux.and_then(|l| l.devices().clone()).unwrap_or_default() {
            let dev = devices::Device::from_spec(&d)?;
            devs.retain(|x| x.path != dev.path);
            devs.push(dev);
        }
        for d in &devs {
            devices::create(&root, d, plan.userns)?;
        }
        let has_pts = spec_mounts
            .iter()
            .any(|m| m.destination() == Path::new("/dev/pts"));
        devices::create_symlinks(&root, has_pts)?;
    }
    Ok(Prepared { proc_mount_id })
}

/// Attaches the detached mount `fd` at `target` in our mount namespace.
fn attach_detached(fd: std::os::fd::RawFd, target: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let to = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| Error::SpecInvalid(format!("rootfs {} has a NUL byte", target.display())))?;
    // SAFETY: a mount descriptor with an empty path (F_EMPTY_PATH: the
    // descriptor itself) and a NUL-terminated target that outlives the
    // call; without MOVE_MOUNT_T_SYMLINKS a symlink there is not followed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            libc::c_long::from(fd),
            c"".as_ptr(),
            libc::c_long::from(libc::AT_FDCWD),
            to.as_ptr(),
            libc::c_long::from(libc::MOVE_MOUNT_F_EMPTY_PATH),
        )
    };
    Errno::result(rc).ctx(|| format!("attach the rootfs mount at {}", target.display()))?;
    Ok(())
}

/// Makes the rootfs the process's root: pivot_root, or chroot with
/// `no_pivot`. Afterwards the host's mounts are gone from the namespace.
/// Without a mount namespace of its own, chroot: pivot_root or a move onto
/// / would change the host's root. A chroot is no wall against a process
/// keeping CAP_SYS_CHROOT, but such a container shares the host's mount
/// table by its config's choice: it is not isolated from the host's files.
pub fn enter(plan: &RootfsPlan<'_>) -> Result<()> {
    if !plan.own_mount_ns {
        nix::unistd::chdir(plan.rootfs).ctx(|| format!("chdir {}", plan.rootfs.display()))?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
        nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
        return set_root_propagation(plan);
    }
    if plan.no_pivot {
        nix::unistd::chdir(plan.rootfs).ctx(|| format!("chdir {}", plan.rootfs.display()))?;
        mount(
            Some(plan.rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .ctx(|| "move rootfs to /".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
        nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
        return Ok(());
    }
    let old = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /".into())?;
    // SAFETY: fresh descriptor from open.
    let old = unsafe { OwnedFd::from_raw_fd(old) };
    let new = nix::fcntl::open(
        plan.rootfs,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", plan.rootfs.display()))?;
    // SAFETY: fresh descriptor from open.
    let new = unsafe { OwnedFd::from_raw_fd(new) };
    nix::unistd::fchdir(new.as_raw_fd()).ctx(|| "fchdir rootfs".into())?;
    // pivot_root(".", ".") stacks the old root under the new one; no
    // directory for it is needed inside the rootfs.
    nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root".into())?;
    nix::unistd::fchdir(old.as_raw_fd()).ctx(|| "fchdir old root".into())?;
    // Make sure the unmount cannot propagate to the host.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "make old root a slave".into())?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    set_root_propagation(plan)
}

/// The spec's shared or unbindable rootfsPropagation, on the new root.
fn set_root_propagation(plan: &RootfsPlan<'_>) -> Result<()> {
    if let Some(p) = plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    {
        if p.contains("shared") || p.contains("unbindable") {
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                propagation_flag(&p)?,
                None::<&str>,
            )
            .ctx(|| format!("set rootfsPropagation {p}"))?;
        }
    }
    Ok(())
}

/// The mount id at `rootfs` before a container without a mount namespace
/// binds it: what [`detach_host_mounts`] compares with.
pub fn mount_id_at(rootfs: &Path) -> Result<u64> {
    let fd = open_dir(rootfs)?;
    saferoot::mount_id(&fd).ctx(|| format!("statx {}", rootfs.display()))
}

/// Takes down what a container without a mount namespace mounted in the
/// host's: the rootfs bind and everything below it, detached at once. Only
/// a mount other than the one that was at `rootfs` before (`below`, from
/// [`mount_id_at`]) is touched, so a rootfs that is itself a mount (an
/// overlay its caller made) stays.
pub fn detach_host_mounts(rootfs: &Path, below: u64) -> Result<()> {
    let Ok(now) = mount_id_at(rootfs) else {
        // The rootfs is gone: so is anything mounted on it.
        return Ok(());
    };
    if now != below {
        umount2(rootfs, MntFlags::MNT_DETACH)
            .ctx(|| format!("unmount the container's mounts at {}", rootfs.display()))?;
    }
    Ok(())
}

/// Steps after pivot_root: masked paths, read-only paths, read-only root.
/// Paths are resolved inside the new root; those under /proc on the procfs
/// [`prepare`] mounted.
pub fn finalize(spec: &Spec, prepared: &Prepared) -> Result<()> {
    let root = open_dir(Path::new("/"))?;
    let linux = spec.linux().as_ref();
    let proc = guard::ProcFs::open(&root, prepared.proc_mount_id);
    let proc = proc.as_ref();
    // Opened once, when a file needs it, checked to be the null device,
    // and bound by descriptor.
    let mut null = None;
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        let path = Path::new(&p);
        let Some(target) = guard::open_protected_path(&root, proc, path, "masked path")? else {
            continue;
        };
        through_proc(proc, path)?;
        if target.is_dir()? {
            mask_dir(&target, path)?;
        } else {
            let null = match null {
                Some(ref fd) => fd,
                None => null.insert(guard::open_dev_null(&root)?),
            };
            mask_file(&target, null, path)?;
        }
    }
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        let path = Path::new(&p);
        if let Some(target) = guard::open_protected_path(&root, proc, path, "read-only path")? {
            through_proc(proc, path)?;
            make_readonly(&target, path)?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        mounts::remount_bind("/", MsFlags::MS_RDONLY).ctx(|| "make the root read-only".into())?;
    }
    Ok(())
}

/// After pivot_root, mounts go through /proc/self/fd of the container's
/// /proc: that must be the runtime's procfs, or the magic links could be
/// anything the image put there.
fn through_proc(proc: std::result::Result<&guard::ProcFs, &Error>, path: &Path) -> Result<()> {
    proc.map(drop).map_err(|e| {
        Error::UnsafeRootfs(format!(
            "cannot mount on {}: mounts go through /proc/self/fd, which needs the runtime's procfs on /proc ({e})",
            path.display()
        ))
    })
}

/// Hides a directory under an empty read-only tmpfs.
fn mask_dir(target: &guard::Protected, path: &Path) -> Result<()> {
    mount(
        Some("tmpfs"),
        fd_path(&target.file).as_str(),
        Some("tmpfs"),
        MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .ctx(|| format!("mask {}", path.display()))
}

/// Hides a file under the verified /dev/null, bound read-only as runc does
/// since CVE-2025-31133: nothing needs to write through a mask.
fn mask_file(target: &guard::Protected, null: &OwnedFd, path: &Path) -> Result<()> {
    mount(
        Some(fd_path(null).as_str()),
        fd_path(&target.file).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("mask {}", path.display()))?;
    let top = target.reopen_top(path)?;
    mounts::remount_bind(
        fd_path(&top).as_str(),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
    )
    .ctx(|| format!("make the mask of {} read-only", path.display()))
}

fn make_readonly(target: &guard::Protected, path: &Path) -> Result<()> {
    let at = fd_path(&target.file);
    mount(
        Some(at.as_str()),
        at.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind read-only path {}", path.display()))?;
    let top = target.reopen_top(path)?;
    mounts::remount_bind(
        fd_path(&top).as_str(),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )
    .ctx(|| format!("make {} read-only", path.display()))
}
