//! Paths inside a root that must never resolve outside it: a container's
//! rootfs, an image layer being unpacked. Every lookup goes through
//! `openat2(RESOLVE_IN_ROOT)`, so `..` and symlinks (absolute or relative)
//! resolve as if the root were `/`, and creating what is missing happens
//! relative to descriptors that were resolved that way.
//!
//! [`private`] keeps a store's own directories and files out of other
//! users' reach; [`userdb`] reads a root's /etc/passwd and /etc/group
//! inside it and resolves users as Docker does.

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING). Test modules may print why they skipped.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

pub mod idmap;
pub mod private;
pub mod userdb;

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// An error with the path it is about.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct Error {
    pub context: String,
    #[source]
    pub source: Errno,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

trait Ctx<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, Errno> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error {
            context: context(),
            source,
        })
    }
}

/// Opens `path` (absolute or relative, taken relative to `root`) so that its
/// resolution never leaves `root`.
pub fn open_in_root(root: &OwnedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    open_how(root, &relative(path), flags, ResolveFlag::RESOLVE_IN_ROOT)
}

/// Like [`open_in_root`], but no symlink may be crossed anywhere on the
/// way (`RESOLVE_NO_SYMLINKS`): for places where the kernel, not the image,
/// decides what is there (/dev/null, /proc, /sys), a symlink is already an
/// attack, and following it even inside the root could land on a host-global
/// file such as /proc/sys/kernel/core_pattern.
pub fn open_in_root_no_symlinks(root: &OwnedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    open_how(
        root,
        &relative(path),
        flags,
        ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
}

/// Opens `path` strictly below the directory `dir` without crossing a
/// symlink or a mount point (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_XDEV`): what is opened lives on the same filesystem mount as
/// `dir`, so nothing bind-mounted or planted below `dir` can stand in for it.
pub fn open_beneath_same_mount(dir: &OwnedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    open_how(
        dir,
        &relative(path),
        flags,
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_XDEV,
    )
}

fn open_how(dir: &OwnedFd, rel: &Path, flags: OFlag, resolve: ResolveFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = loop {
        match openat2(dir.as_raw_fd(), rel, how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The filesystem type (`statfs.f_type`, e.g. `libc::PROC_SUPER_MAGIC`) of
/// the file an open descriptor names.
pub fn fs_type(fd: &impl AsRawFd) -> nix::Result<i64> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fstatfs fills the buffer it is given for a live descriptor.
    let rc = unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    Errno::result(rc)?;
    // SAFETY: fstatfs succeeded, so it wrote the whole struct.
    let st = unsafe { st.assume_init() };
    Ok(st.f_type)
}

/// The id of the mount an open descriptor is on (`statx` `STATX_MNT_ID`):
/// two descriptors with the same id are on the very same mount, which a
/// filesystem type alone cannot tell (a second procfs, a bind of one file).
pub fn mount_id(fd: &impl AsRawFd) -> nix::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::statx>::uninit();
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH makes statx
    // describe the descriptor itself; it fills the buffer it is given.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            st.as_mut_ptr(),
        )
    };
    Errno::result(rc)?;
    // SAFETY: statx succeeded, so it wrote the struct.
    let st = unsafe { st.assume_init() };
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok(st.stx_mnt_id)
}

/// `path` made relative (leading `/` and `.` dropped; `.` for the root).
pub fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Opens (creating what is missing, mode 0755) the directory `path` inside
/// `root`, and returns an `O_PATH` descriptor of it. A dangling symlink on
/// the way is followed inside the root and its target created, as
/// `mkdir -p` does in a chroot.
pub fn mkdir_all_in_root(root: &OwnedFd, path: &Path) -> Result<OwnedFd> {
    mkdir_all_depth(root, &relative(path), 0, &mut Made::default())
}

/// [`mkdir_all_in_root`], with each directory it creates made exactly mode
/// 0755 (whatever the umask) and owned by `owner` (uid, gid), as a
/// Dockerfile's WORKDIR makes them; says whether it created any.
pub fn mkdir_all_in_root_owned(
    root: &OwnedFd,
    path: &Path,
    owner: (u32, u32),
) -> Result<(OwnedFd, bool)> {
    let mut made = Made {
        owner: Some(owner),
        any: false,
    };
    let fd = mkdir_all_depth(root, &relative(path), 0, &mut made)?;
    Ok((fd, made.any))
}

/// What [`mkdir_all_depth`] does to the directories it creates, and
/// whether it created one.
#[derive(Debug, Default)]
struct Made {
    owner: Option<(u32, u32)>,
    any: bool,
}

impl Made {
    /// Sets the owner and mode of `name`, just created in `parent`.
    fn created(&mut self, parent: &OwnedFd, name: &CString, shown: &Path) -> Result<()> {
        self.any = true;
        let Some((uid, gid)) = self.owner else {
            return Ok(());
        };
        let dirfd = reopen_dir(parent).ctx(|| format!("open parent of {}", shown.display()))?;
        // O_NOFOLLOW: the name was made a directory by us a moment ago;
        // should anything have replaced it by a link, nothing is followed.
        let fd = nix::fcntl::openat(
            Some(dirfd.as_raw_fd()),
            name.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", shown.display()))?;
        // SAFETY: openat returned a fresh descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        nix::unistd::fchown(fd.as_raw_fd(), Some(uid.into()), Some(gid.into()))
            .ctx(|| format!("chown {}", shown.display()))?;
        // After the chown, which may clear set-id bits; 0755 whatever the
        // umask of the caller.
        nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))
            .ctx(|| format!("chmod {}", shown.display()))?;
        Ok(())
    }
}

fn mkdir_all_depth(root: &OwnedFd, rel: &Path, depth: u32, made: &mut Made) -> Result<OwnedFd> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    if let Ok(fd) = open_in_root(root, rel, dir_flags) {
        return Ok(fd);
    }
    if depth > 40 {
        return Err(Errno::ELOOP).ctx(|| format!("mkdir {}", rel.display()));
    }
    let comps: Vec<Component<'_>> = rel.components().collect();
    let mut prefix = PathBuf::new();
    let mut parent =
        open_in_root(root, Path::new("."), dir_flags).ctx(|| "open container root".into())?;
    for (i, comp) in comps.iter().enumerate() {
        prefix.push(comp);
        parent = match open_in_root(root, &prefix, dir_flags) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let name = CString::new(comp.as_os_str().as_encoded_bytes())
                    .map_err(|_| Errno::EINVAL)
                    .ctx(|| format!("path {}", rel.display()))?;
                // SAFETY: `parent` is a live directory descriptor and `name`
                // a NUL-terminated single component.
                let rc = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) };
                match Errno::result(rc) {
                    Ok(_) => made.created(&parent, &name, &prefix)?,
                    Err(Errno::EEXIST) => {
                        // A dangling symlink: create its target instead.
                        let target =
                            nix::fcntl::readlinkat(Some(parent.as_raw_fd()), comp.as_os_str())
                                .ctx(|| format!("mkdir {}", prefix.display()))?;
                        let target = Path::new(&target);
                        let mut next = if target.is_absolute() {
                            relative(target)
                        } else {
                            prefix.parent().unwrap_or(Path::new("")).join(target)
                        };
                        for rest in &comps[i + 1..] {
                            next.push(rest);
                        }
                        return mkdir_all_depth(root, &next, depth + 1, made);
                    }
                    Err(e) => return Err(e).ctx(|| format!("mkdir {}", prefix.display())),
                }
                open_in_root(root, &prefix, dir_flags)
                    .ctx(|| format!("open {}", prefix.display()))?
            }
            Err(e) => return Err(e).ctx(|| format!("open {}", prefix.display())),
        };
    }
    Ok(parent)
}

/// Opens (creating an empty file if missing) the file `path` inside `root`,
/// and returns an `O_PATH` descriptor of it; used as a bind-mount target.
/// A dangling symlink is followed inside the root and its target created,
/// as for [`mkdir_all_in_root`].
pub fn touch_in_root(root: &OwnedFd, path: &Path) -> Result<OwnedFd> {
    touch_depth(root, &relative(path), 0)
}

fn touch_depth(root: &OwnedFd, rel: &Path, depth: u32) -> Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, rel, OFlag::O_PATH) {
        return Ok(fd);
    }
    if depth > 40 {
        return Err(Errno::ELOOP).ctx(|| format!("create {}", rel.display()));
    }
    let parent_path = rel.parent().unwrap_or(Path::new(""));
    let parent = if parent_path.as_os_str().is_empty() {
        mkdir_all_in_root(root, Path::new("."))?
    } else {
        mkdir_all_in_root(root, parent_path)?
    };
    let name = rel.file_name().unwrap_or_default();
    let dirfd = reopen_dir(&parent).ctx(|| format!("open parent of {}", rel.display()))?;
    match nix::fcntl::openat(
        Some(dirfd.as_raw_fd()),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    ) {
        // SAFETY: openat returned a fresh descriptor we now own.
        Ok(fd) => drop(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(Errno::EEXIST) => {
            if let Ok(target) = nix::fcntl::readlinkat(Some(dirfd.as_raw_fd()), name) {
                // A dangling symlink: create what it points at instead.
                let target = Path::new(&target);
                let next = if target.is_absolute() {
                    relative(target)
                } else {
                    parent_path.join(target)
                };
                return touch_depth(root, &next, depth + 1);
            }
        }
        Err(e) => return Err(e).ctx(|| format!("create {}", rel.display())),
    }
    open_in_root(root, rel, OFlag::O_PATH).ctx(|| format!("open {}", rel.display()))
}

/// Turns an `O_PATH` directory descriptor into one usable with `*at` calls
/// that create entries.
fn reopen_dir(fd: &OwnedFd) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        fd_path(fd).as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: open returned a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The magic link that names an open descriptor, for syscalls that take paths
/// (mount, chmod): the kernel follows it to exactly the inode we resolved.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_fd(p: &Path) -> OwnedFd {
        let fd = nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        // SAFETY: fresh descriptor from open.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("escape")).unwrap();
        symlink("../../../../", root.path().join("up")).unwrap();
        let r = root_fd(root.path());
        // An absolute symlink is taken relative to the root: the directory is
        // created inside the root, never in `outside`.
        mkdir_all_in_root(&r, Path::new("/escape/made")).unwrap();
        assert!(!outside.path().join("made").exists());
        assert!(root
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("made")
            .is_dir());
        touch_in_root(&r, Path::new("/up/etc/planted")).unwrap();
        assert!(root.path().join("etc/planted").is_file());
    }

    #[test]
    fn relative_paths_drop_the_root() {
        assert_eq!(relative(Path::new("/a/./b")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::from("."));
    }
}
