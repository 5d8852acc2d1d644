//! What Docker's "init layer" guarantees before a container starts, and
//! which paths an image may not claim.
//!
//! The engine bind-mounts its own /etc/hosts, /etc/hostname and
//! /etc/resolv.conf into every container. Docker puts an init layer
//! between the image and the container's layer in which these are empty
//! regular files, so whatever the image had there (a symlink into /proc,
//! `../../..` out of the root) never decides where the bind lands. berth has
//! no such layer; it makes the same files regular in the container's own
//! layer before each start, which is what a container sees with Docker.
//! (The runtime also refuses a bind that resolves into /proc or /sys; this
//! keeps such an image working instead of failing.)

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// The files the engine binds over, in /etc.
pub const ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// What Docker's init layer holds and the engine makes in the container's
/// own layer instead: `commit` and `diff` leave these out, as Docker's do.
pub const INIT_PATHS: [&str; 5] = [
    ".dockerenv",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "etc/mtab",
];

/// Makes each of [`ETC_FILES`] in `rootfs` (the container's writable view)
/// a regular file: a symlink there is replaced by an empty file, a missing
/// one created; a directory is refused.
pub fn own_etc_files(rootfs: &Path) -> Result<()> {
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Rootfs(format!("open rootfs {}: {e}", rootfs.display())))?;
    // SAFETY: open returned a new descriptor nobody else owns.
    let root = unsafe { OwnedFd::from_raw_fd(root) };
    // /etc itself resolved inside the root: if the image makes it a symlink
    // somewhere odd, the files go there and the runtime's destination rule
    // judges where the binds land.
    let etc = saferoot::mkdir_all_in_root(&root, Path::new("/etc"))
        .map_err(|e| Error::Rootfs(format!("the image's /etc: {e}")))?;
    let etc = nix::fcntl::open(
        saferoot::fd_path(&etc).as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Rootfs(format!("open the image's /etc: {e}")))?;
    // SAFETY: open returned a new descriptor nobody else owns.
    let etc = unsafe { OwnedFd::from_raw_fd(etc) };
    for name in ETC_FILES {
        let fail = |what: &str, e: Errno| Error::Rootfs(format!("{what} /etc/{name}: {e}"));
        match nix::sys::stat::fstatat(
            Some(etc.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => continue,
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                return Err(Error::Rootfs(format!(
                    "the image's /etc/{name} is a directory: it cannot hold the container's {name}"
                )))
            }
            Ok(_) => nix::unistd::unlinkat(
                Some(etc.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .map_err(|e| fail("replace", e))?,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(fail("stat", e)),
        }
        let fd = nix::fcntl::openat(
            Some(etc.as_raw_fd()),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| fail("create", e))?;
        // SAFETY: openat returned a new descriptor nobody else owns.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    // The rest of Docker's init layer, which tools look for: /.dockerenv
    // ("am I in a container?") and /etc/mtab for mount and df. Made only
    // where the image has nothing by that name.
    let made = |r: nix::Result<()>, what: &str| match r {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(Error::Rootfs(format!("create {what}: {e}"))),
    };
    let env = nix::fcntl::openat(
        Some(root.as_raw_fd()),
        ".dockerenv",
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o755),
    )
    // SAFETY: openat returned a new descriptor nobody else owns.
    .map(|fd| drop(unsafe { OwnedFd::from_raw_fd(fd) }));
    made(env, "/.dockerenv")?;
    made(
        nix::unistd::symlinkat("/proc/mounts", Some(etc.as_raw_fd()), "mtab"),
        "/etc/mtab",
    )?;
    Ok(())
}

/// Refuses an image VOLUME the runtime must not let an image's content
/// stand in for: the root itself, /proc and /sys or anything under them
/// (the kernel's files the runtime masks, makes read-only and writes
/// sysctls to). Docker accepts these and runc then fails at start for /
/// and /proc; berth says so at create, and also for /sys, where runc would
/// let an image's files cover the kernel's. `VOLUME /dev` stays allowed, as
/// in Docker: the runtime checks the /dev/null it binds over masked paths
/// and replaces a symlinked /dev/console.
pub fn check_image_volume(dest: &str) -> Result<()> {
    let mut clean = std::path::PathBuf::from("/");
    for c in Path::new(dest).components() {
        match c {
            std::path::Component::Normal(n) => clean.push(n),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    let refused =
        clean == Path::new("/") || clean.starts_with("/proc") || clean.starts_with("/sys");
    if refused {
        return Err(Error::Rootfs(format!(
            "the image declares VOLUME {dest}: a volume on /, /proc or /sys would cover the kernel's files; refusing to create the container"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_trees_and_the_root_are_refused() {
        for bad in [
            "/",
            "/proc",
            "/proc/sys/kernel",
            "/sys",
            "/sys/kernel",
            "/x/../proc",
            "//",
        ] {
            assert!(check_image_volume(bad).is_err(), "{bad}");
        }
        for ok in ["/dev", "/data", "/var/lib/x", "/procfs", "/system"] {
            assert!(check_image_volume(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn symlinked_etc_files_become_regular_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(
            "/proc/sys/kernel/core_pattern",
            root.path().join("etc/hosts"),
        )
        .unwrap();
        std::os::unix::fs::symlink("../../../../etc/shadow", root.path().join("etc/hostname"))
            .unwrap();
        std::fs::write(root.path().join("etc/resolv.conf"), "nameserver 1.1.1.1\n").unwrap();
        own_etc_files(root.path()).unwrap();
        for name in ETC_FILES {
            let m = std::fs::symlink_metadata(root.path().join("etc").join(name)).unwrap();
            assert!(m.is_file(), "{name}");
        }
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/resolv.conf")).unwrap(),
            "nameserver 1.1.1.1\n",
            "a regular file is kept"
        );
    }
}
