//! Paths inside a root that must never resolve outside it: a container's
//! rootfs, an image layer being unpacked. Every lookup goes through
//! `openat2(RESOLVE_IN_ROOT)`, so `..` and symlinks (absolute or relative)
//! resolve as if the root were `/`, and creating what is missing happens
//! relative to descriptors that were resolved that way.
//!
//! [`private`] keeps a store's own directories and files out of other
//! users' reach.

pub mod private;

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
    let rel = relative(path);
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = loop {
        match openat2(root.as_raw_fd(), &rel, how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
    mkdir_all_depth(root, &relative(path), 0)
}

fn mkdir_all_depth(root: &OwnedFd, rel: &Path, depth: u32) -> Result<OwnedFd> {
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
                    Ok(_) => {}
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
                        return mkdir_all_depth(root, &next, depth + 1);
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
pub fn touch_in_root(root: &OwnedFd, path: &Path) -> Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path, OFlag::O_PATH) {
        return Ok(fd);
    }
    let rel = relative(path);
    let parent = match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => mkdir_all_in_root(root, p)?,
        _ => mkdir_all_in_root(root, Path::new("."))?,
    };
    let name = rel.file_name().unwrap_or_default();
    let dirfd = reopen_dir(&parent).ctx(|| format!("open parent of {}", path.display()))?;
    match nix::fcntl::openat(
        Some(dirfd.as_raw_fd()),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    ) {
        // SAFETY: openat returned a fresh descriptor we now own.
        Ok(fd) => drop(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(e).ctx(|| format!("create {}", path.display())),
    }
    open_in_root(root, path, OFlag::O_PATH).ctx(|| format!("open {}", path.display()))
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
