//! Where the runtime may mount or write inside a container, and checks that
//! what it opened there is what it meant to open.
//!
//! The attacks this stops (runc's CVE-2025-31133, -52565, -52881): an image
//! (or a volume another container shares) plants symlinks or mounts where
//! the runtime mounts or writes during setup, so that a bind meant for
//! /dev/console or a masked path, or a sysctl write, lands on a host-global
//! procfs file such as /proc/sys/kernel/core_pattern. Every place is opened
//! once, without leaving the root, checked through its descriptor (where it
//! resolved to, which filesystem and mount it is on), and then used through
//! that descriptor, so nothing swapped in afterwards is looked at.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{major, minor, SFlag};

use crate::error::{Context, Error, Result};
use crate::syscall::{fd_path, open_in_root};

/// `path` cleaned without touching the filesystem: absolute, `.` dropped,
/// `..` taken off the end (never above `/`).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Where the descriptor `fd` sits in the container, as a path from the
/// container's root `root`: the kernel's name of the inode we resolved,
/// not the path we asked for, so symlinks on the way are accounted for.
pub fn resolved_path(root: &OwnedFd, fd: &OwnedFd) -> Result<PathBuf> {
    let host = |f: &OwnedFd| {
        std::fs::read_link(fd_path(f))
            .ctx(|| format!("read the path of descriptor {}", f.as_raw_fd()))
    };
    let root_path = host(root)?;
    let path = host(fd)?;
    match path.strip_prefix(&root_path) {
        Ok(rel) => Ok(Path::new("/").join(rel)),
        Err(_) => Err(Error::UnsafeRootfs(format!(
            "{} resolved outside the container root",
            path.display()
        ))),
    }
}

fn under(path: &Path, top: &str) -> bool {
    path.starts_with(top)
}

/// Filesystems a host kernel exposes under /sys: the only things that may
/// be bound into a container's /sys tree.
const KERNEL_FS: [i64; 10] = [
    libc::SYSFS_MAGIC,
    libc::CGROUP_SUPER_MAGIC,
    libc::CGROUP2_SUPER_MAGIC,
    libc::DEBUGFS_MAGIC,
    libc::TRACEFS_MAGIC,
    libc::SECURITYFS_MAGIC,
    libc::BPF_FS_MAGIC,
    // PSTOREFS_MAGIC and EFIVARFS_MAGIC, which libc does not name.
    0x6165_676c,
    libc::SELINUX_MAGIC,
    0xde5e_81e4,
];

/// What is about to be mounted on a spec destination.
#[derive(Debug, Clone, Copy)]
pub enum Mounted {
    /// A fresh filesystem of this type (`proc`, `sysfs`, `tmpfs`, ...).
    Fresh(Option<&'static str>),
    /// The `cgroup` mount type (a cgroup2 mount, or a tmpfs of v1 ones).
    Cgroup,
    /// A bind of a host path: its filesystem type, and whether it is in the
    /// host's /sys tree.
    Bind { fs: i64, in_host_sys: bool },
}

impl Mounted {
    pub fn fresh(typ: &str) -> Mounted {
        Mounted::Fresh(match typ {
            "proc" => Some("proc"),
            "sysfs" => Some("sysfs"),
            _ => None,
        })
    }

    fn is_proc(self) -> bool {
        match self {
            Mounted::Fresh(t) => t == Some("proc"),
            Mounted::Bind { fs, .. } => fs == libc::PROC_SUPER_MAGIC,
            Mounted::Cgroup => false,
        }
    }

    fn is_kernel_sys(self) -> bool {
        match self {
            Mounted::Fresh(t) => t == Some("sysfs"),
            Mounted::Bind { fs, in_host_sys } => in_host_sys || KERNEL_FS.contains(&fs),
            Mounted::Cgroup => false,
        }
    }
}

/// The rule for spec mount destinations (taken after symlinks in the
/// rootfs are resolved): nothing covers the root itself; only a procfs goes
/// on /proc and nothing inside it, since the runtime's masks, read-only
/// paths and sysctl writes under /proc must reach the kernel's files and not
/// an image's; only the kernel's own filesystems go on /sys or inside it,
/// and the `cgroup` type on /sys/fs/cgroup. runc has the /proc half of this
/// rule (checkProcMount); berth has no lxcfs exceptions under /proc.
pub fn check_destination(dest: &Path, what: Mounted) -> Result<()> {
    match refusal(&normalize(dest), what) {
        None => Ok(()),
        Some(why) => Err(Error::SpecInvalid(format!(
            "mount destination {}: {why}",
            normalize(dest).display()
        ))),
    }
}

/// Why `dest` (normalized) cannot take `what`, if it cannot.
fn refusal(dest: &Path, what: Mounted) -> Option<&'static str> {
    if dest == Path::new("/") {
        return Some("a mount on / would replace the container's root");
    }
    if dest == Path::new("/proc") {
        return (!what.is_proc()).then_some("only a procfs can be mounted on /proc");
    }
    if under(dest, "/proc") {
        return Some("nothing can be mounted inside /proc");
    }
    if dest == Path::new("/sys") {
        return (!what.is_kernel_sys()).then_some("only a sysfs can be mounted on /sys");
    }
    if under(dest, "/sys") {
        let cgroup = matches!(what, Mounted::Cgroup) && under(dest, "/sys/fs/cgroup");
        return (!cgroup && !what.is_kernel_sys())
            .then_some("only the host's kernel filesystems can be mounted inside /sys");
    }
    None
}

/// [`check_destination`] for where `dest` resolved in the rootfs (`target`,
/// the descriptor of it), naming both when a symlink led elsewhere.
pub fn check_resolved_destination(
    root: &OwnedFd,
    dest: &Path,
    target: &OwnedFd,
    what: Mounted,
) -> Result<()> {
    let at = resolved_path(root, target)?;
    match refusal(&at, what) {
        None => Ok(()),
        Some(why) => Err(Error::SpecInvalid(format!(
            "mount destination {} resolves to {} in the rootfs: {why}",
            dest.display(),
            at.display()
        ))),
    }
}

/// Checks that a place the runtime itself creates or mounts on (a /dev
/// node, /dev/console, the /dev symlinks' directory) resolved outside the
/// kernel's trees: a `dev -> proc/sys/kernel` symlink in the image must not
/// turn a device node or the console bind into a write on a sysctl.
pub fn check_outside_kernel_trees(root: &OwnedFd, fd: &OwnedFd, what: &str) -> Result<()> {
    let path = resolved_path(root, fd)?;
    let fs = saferoot::fs_type(fd).ctx(|| format!("statfs {what}"))?;
    if under(&path, "/proc")
        || under(&path, "/sys")
        || fs == libc::PROC_SUPER_MAGIC
        || fs == libc::SYSFS_MAGIC
    {
        return Err(Error::UnsafeRootfs(format!(
            "{what} resolves to {} in the container, inside /proc or /sys",
            path.display()
        )));
    }
    Ok(())
}

/// Opens the regular file `name` in the directory `dir` to mount on,
/// replacing a symlink (or a missing entry) with an empty file: a symlink
/// there would otherwise redirect the mount. Anything but a regular file, a
/// character device or a symlink is refused.
pub fn file_target(dir: &OwnedFd, name: &str, what: &str) -> Result<OwnedFd> {
    let open = || {
        nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map(|fd| {
            // SAFETY: openat returned a fresh descriptor we now own.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        })
    };
    match open() {
        Ok(fd) => {
            let kind = file_kind(&fd, what)?;
            if kind == SFlag::S_IFREG || kind == SFlag::S_IFCHR {
                return Ok(fd);
            }
            if kind != SFlag::S_IFLNK {
                return Err(Error::UnsafeRootfs(format!(
                    "{what} is not a file (mode {:o})",
                    kind.bits()
                )));
            }
            nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .ctx(|| format!("remove the symlink at {what}"))?;
        }
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| format!("open {what}")),
    }
    match nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    ) {
        // SAFETY: openat returned a fresh descriptor we now own.
        Ok(fd) => drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }),
        Err(e) => return Err(e).ctx(|| format!("create {what}")),
    }
    let fd = open().ctx(|| format!("open {what}"))?;
    if file_kind(&fd, what)? != SFlag::S_IFREG {
        return Err(Error::UnsafeRootfs(format!(
            "{what} changed while it was made"
        )));
    }
    Ok(fd)
}

fn file_kind(fd: &OwnedFd, what: &str) -> Result<SFlag> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).ctx(|| format!("stat {what}"))?;
    Ok(SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT))
}

/// Opens the container's /dev/null to bind over masked files, and checks
/// it is the null device (1:3): an image that brings its own /dev (a
/// `VOLUME /dev`, or no /dev tmpfs) could make it a symlink to
/// /proc/sys/kernel/core_pattern or a regular file, and the "mask" would
/// then be a writable host sysctl (CVE-2025-31133).
///
/// The last component is not followed (a symlink there is refused); a
/// symlinked directory on the way resolves inside the root, which is
/// harmless since only the null device itself passes the check.
pub fn open_dev_null(root: &OwnedFd) -> Result<OwnedFd> {
    let fd = open_in_root(
        root,
        Path::new("/dev/null"),
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
    )
    .map_err(|e| Error::UnsafeRootfs(format!("/dev/null cannot be used to mask paths: {e}")))?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).ctx(|| "stat /dev/null".into())?;
    let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
    if kind != SFlag::S_IFCHR || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3 {
        return Err(Error::UnsafeRootfs(format!(
            "/dev/null is not the null device (mode {:o}, device {}:{}); refusing to bind it over masked paths",
            st.st_mode,
            major(st.st_rdev),
            minor(st.st_rdev)
        )));
    }
    Ok(fd)
}

/// The container's own procfs at /proc, the one the runtime mounted:
/// everything under /proc that is written or mounted on is opened through
/// it, on the same mount, without symlinks.
#[derive(Debug)]
pub struct ProcFs {
    dir: OwnedFd,
}

impl ProcFs {
    /// Opens /proc in `root` and checks it is a procfs, and the very mount
    /// the runtime made (`mount_id`, from [`super::Prepared`]) rather than
    /// something mounted over it later.
    pub fn open(root: &OwnedFd, mount_id: Option<u64>) -> Result<ProcFs> {
        let dir = saferoot::open_in_root_no_symlinks(
            root,
            Path::new("/proc"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
        )
        .map_err(|e| Error::UnsafeRootfs(format!("open /proc: {e}")))?;
        if saferoot::fs_type(&dir).ctx(|| "statfs /proc".into())? != libc::PROC_SUPER_MAGIC {
            return Err(Error::UnsafeRootfs("/proc is not a procfs".into()));
        }
        let Some(want) = mount_id else {
            return Err(Error::UnsafeRootfs(
                "no procfs was mounted on /proc by the spec".into(),
            ));
        };
        let got = saferoot::mount_id(&dir).ctx(|| "statx /proc".into())?;
        if got != want {
            return Err(Error::UnsafeRootfs(format!(
                "/proc is not the procfs the runtime mounted (mount {got}, expected {want})"
            )));
        }
        Ok(ProcFs { dir })
    }

    /// Opens /proc in the current root and checks it is a procfs, without
    /// knowing which mount to expect: for `exec`, which joins a container
    /// whose procfs [`ProcFs::open`] checked at create.
    pub fn open_current() -> Result<ProcFs> {
        let dir = nix::fcntl::open(
            "/proc",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| "open /proc".into())?;
        // SAFETY: open returned a fresh descriptor we now own.
        let dir = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dir) };
        if saferoot::fs_type(&dir).ctx(|| "statfs /proc".into())? != libc::PROC_SUPER_MAGIC {
            return Err(Error::UnsafeRootfs("/proc is not a procfs".into()));
        }
        Ok(ProcFs { dir })
    }

    /// Writes `value` to this process's `name` (`oom_score_adj`, ...) under
    /// /proc/<pid>: no `self` magic link, no other mount on the way (a bind
    /// over /proc/self/... is the CVE-2025-52881 trick to redirect such
    /// writes).
    pub fn write_own(&self, name: &str, value: &str) -> Result<()> {
        let rel = PathBuf::from(std::process::id().to_string()).join(name);
        let fd = self
            .open_path(&rel, OFlag::O_WRONLY)
            .ctx(|| format!("open /proc/{}", rel.display()))?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, value.as_bytes())
            .ctx(|| format!("write /proc/{}", rel.display()))
    }

    /// Opens `path` (absolute under /proc, or relative to it) on this
    /// procfs: no symlink, no other mount on the way (RESOLVE_NO_XDEV is the
    /// kernel comparing mount ids at every step), and procfs at the end.
    pub fn open_path(&self, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        let rel = path.strip_prefix("/proc").unwrap_or(path);
        let fd = saferoot::open_beneath_same_mount(&self.dir, rel, flags)?;
        if saferoot::fs_type(&fd)? != libc::PROC_SUPER_MAGIC {
            return Err(Errno::EXDEV);
        }
        Ok(fd)
    }
}

/// A masked or read-only path, opened: the directory it is in, its name
/// there, and the file itself. What gets mounted on it is reached again
/// by looking `name` up in `parent` (a lookup crosses onto the new mount;
/// `file` still names the covered inode).
#[derive(Debug)]
pub struct Protected {
    pub parent: OwnedFd,
    pub name: std::ffi::OsString,
    pub file: OwnedFd,
}

impl Protected {
    pub fn is_dir(&self) -> Result<bool> {
        Ok(file_kind(&self.file, "protected path")? == SFlag::S_IFDIR)
    }

    /// The mount now on top of `file`, checked to be a different mount from
    /// the one `file` is on.
    pub fn reopen_top(&self, what: &Path) -> Result<OwnedFd> {
        let fd =
            open_child(&self.parent, &self.name).ctx(|| format!("reopen {}", what.display()))?;
        let top = saferoot::mount_id(&fd).ctx(|| format!("statx {}", what.display()))?;
        let below = saferoot::mount_id(&self.file).ctx(|| format!("statx {}", what.display()))?;
        if top == below {
            return Err(Error::UnsafeRootfs(format!(
                "{} is not the mount just made on it",
                what.display()
            )));
        }
        Ok(fd)
    }
}

fn open_child(dir: &OwnedFd, name: &std::ffi::OsStr) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: openat returned a fresh descriptor we now own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Opens a masked or read-only path: under /proc on the container's procfs
/// (no symlink, no other mount, procfs at the end), under /sys without
/// symlinks, elsewhere inside the root (the last component not followed)
/// but never landing in /proc or /sys. `None` when the path does not exist.
pub fn open_protected_path(
    root: &OwnedFd,
    proc: std::result::Result<&ProcFs, &Error>,
    path: &Path,
    what: &str,
) -> Result<Option<Protected>> {
    let norm = normalize(path);
    let (Some(dir), Some(name)) = (norm.parent(), norm.file_name()) else {
        return Err(Error::SpecInvalid(format!(
            "{what} {}: not a file or directory",
            path.display()
        )));
    };
    let missing = |e: Errno| matches!(e, Errno::ENOENT | Errno::ENOTDIR);
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let kernel = if under(&norm, "/proc") {
        Some(libc::PROC_SUPER_MAGIC)
    } else if under(&norm, "/sys") {
        Some(libc::SYSFS_MAGIC)
    } else {
        None
    };
    let parent = match kernel {
        Some(libc::PROC_SUPER_MAGIC) => match proc {
            Ok(proc) => proc.open_path(dir, dir_flags),
            Err(e) => {
                // Without the runtime's procfs on /proc, a path there is the
                // image's own: refuse rather than mask something else.
                return match open_in_root(root, &norm, OFlag::O_PATH) {
                    Err(err) if missing(err) => Ok(None),
                    _ => Err(Error::UnsafeRootfs(format!(
                        "{what} {}: {e}",
                        norm.display()
                    ))),
                };
            }
        },
        Some(_) => saferoot::open_in_root_no_symlinks(root, dir, dir_flags),
        None => open_in_root(root, dir, dir_flags),
    };
    let parent = match parent {
        Ok(fd) => fd,
        Err(e) if missing(e) => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("open the directory of {what} {}", norm.display())),
    };
    let file = match open_child(&parent, name) {
        Ok(fd) => fd,
        Err(e) if missing(e) => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("open {what} {}", norm.display())),
    };
    let refuse = |why: String| {
        Err(Error::UnsafeRootfs(format!(
            "{what} {}: {why}",
            norm.display()
        )))
    };
    match kernel {
        Some(_) => {
            if file_kind(&file, what)? == SFlag::S_IFLNK {
                return refuse("is a symlink".into());
            }
            let same = saferoot::mount_id(&file).ctx(|| format!("statx {}", norm.display()))?
                == saferoot::mount_id(&parent).ctx(|| format!("statx {}", norm.display()))?;
            if kernel == Some(libc::PROC_SUPER_MAGIC)
                && (!same
                    || saferoot::fs_type(&file).ctx(|| format!("statfs {}", norm.display()))?
                        != libc::PROC_SUPER_MAGIC)
            {
                return refuse("is not on the container's procfs".into());
            }
        }
        None => {
            let at = resolved_path(root, &parent)?;
            if under(&at, "/proc") || under(&at, "/sys") {
                return refuse(format!("resolves into {} through a symlink", at.display()));
            }
        }
    }
    Ok(Some(Protected {
        parent,
        name: name.to_os_string(),
        file,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_follow_the_proc_and_sys_rule() {
        let fresh = Mounted::fresh;
        let host_dir = Mounted::Bind {
            fs: libc::EXT4_SUPER_MAGIC,
            in_host_sys: false,
        };
        let host_sys = Mounted::Bind {
            fs: libc::SYSFS_MAGIC,
            in_host_sys: true,
        };
        let ok = |d: &str, m| check_destination(Path::new(d), m).is_ok();
        assert!(ok("/proc", fresh("proc")));
        assert!(!ok("/proc", fresh("tmpfs")));
        assert!(!ok("/proc", host_dir));
        assert!(!ok("/proc/sys", fresh("proc")));
        assert!(!ok("/proc/cpuinfo", host_dir));
        assert!(!ok("/tmp/../proc/sys/kernel", host_dir));
        assert!(!ok("/", host_dir));
        assert!(!ok("/.", fresh("tmpfs")));
        assert!(ok("/sys", fresh("sysfs")));
        assert!(ok("/sys", host_sys));
        assert!(!ok("/sys", host_dir));
        assert!(ok("/sys/fs/cgroup", Mounted::Cgroup));
        assert!(!ok("/sys/kernel", Mounted::Cgroup));
        assert!(!ok("/sys/kernel", host_dir));
        assert!(!ok("/sys/fs/cgroup", fresh("tmpfs")));
        assert!(ok("/sys/kernel/debug", host_sys));
        assert!(ok("/dev", fresh("tmpfs")));
        assert!(ok("/procfoo", host_dir));
        assert!(ok("/etc/hosts", host_dir));
    }

    #[test]
    fn file_targets_replace_symlinks_and_refuse_directories() {
        let dir = tempfile::tempdir().unwrap();
        let fd = nix::fcntl::open(
            dir.path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        // SAFETY: fresh descriptor from open.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", dir.path().join("console"))
            .unwrap();
        file_target(&fd, "console", "console").unwrap();
        assert!(std::fs::symlink_metadata(dir.path().join("console"))
            .unwrap()
            .is_file());
        std::fs::write(dir.path().join("kept"), "x").unwrap();
        file_target(&fd, "kept", "kept").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("kept")).unwrap(),
            "x"
        );
        file_target(&fd, "new", "new").unwrap();
        assert!(dir.path().join("new").is_file());
        std::fs::create_dir(dir.path().join("d")).unwrap();
        assert!(file_target(&fd, "d", "d").is_err());
    }

    #[test]
    fn normalize_stays_under_root() {
        assert_eq!(
            normalize(Path::new("/a/../../proc")),
            PathBuf::from("/proc")
        );
        assert_eq!(
            normalize(Path::new("proc/./sys")),
            PathBuf::from("/proc/sys")
        );
    }
}
