//! Idmapped mounts: a detached copy of a mount whose files are seen through
//! a user namespace's id mapping (`mount_setattr` with `MOUNT_ATTR_IDMAP`,
//! Linux 5.12). A container with its own user namespace sees the host's
//! files (image layers, volumes, binds) owned by its own root this way, and
//! writes through them as the host's root: no layer is ever copied to
//! change its owners.
//!
//! Here because the layers (crates/image) and the binds (crates/runtime)
//! both need it, and both already depend on this crate. Neither nix 0.29
//! nor libc wraps `mount_setattr`, so the syscalls are made directly.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// `struct mount_attr` of <linux/mount.h>.
#[repr(C)]
#[derive(Debug, Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// A detached copy of the mount tree at `path` (its submounts too with
/// `recursive`), as `mount --bind` would make but attached nowhere.
pub fn clone_tree(path: &Path, recursive: bool) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: open_tree reads a NUL-terminated path that outlives the call;
    // the flags are plain integers.
    let rc = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    let fd = Errno::result(rc)?;
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the detached mount `mnt` (and with `recursive` its submounts) show
/// its files through `userns`'s mapping: an id `k` on disk is seen as what
/// `k` in that namespace is on the host. Once per mount: the kernel refuses
/// to change a mapping already set, and a mount already attached.
pub fn set_idmap(
    mnt: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        userns_fd: u64::try_from(userns.as_raw_fd()).map_err(|_| Errno::EBADF)?,
        ..MountAttr::default()
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: mount_setattr reads `size` bytes of a valid, live mount_attr
    // and the empty NUL-terminated path (AT_EMPTY_PATH: the descriptor).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// A user namespace with the given `uid_map` and `gid_map` (the kernel's
/// text: "inside outside count" lines), held by descriptor only: to idmap
/// mounts with. Made by a child cloned straight into a new user namespace
/// that shares our memory (CLONE_VM: no page tables copied, a fraction of
/// a fork's cost in a large process) and waits until the maps are written
/// and the namespace is opened. The child only makes async-signal-safe
/// calls on its own small stack, so any process may call this. Needs
/// CAP_SETUID/CAP_SETGID over the ids mapped (root).
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> Result<OwnedFd, Errno> {
    namespaces_with_maps(uid_map, gid_map, 0, |proc| {
        let f = std::fs::File::open(format!("{proc}/ns/user")).map_err(io_errno)?;
        Ok(OwnedFd::from(f))
    })
}

/// [`userns_with_maps`] with more namespaces (`flags`: `CLONE_NEWNET`,
/// `CLONE_NEWIPC`, `CLONE_NEWUTS`...) made at once inside the new user
/// namespace, so that it owns them (a pod's namespaces, which members in
/// that user namespace can join). `hold` runs with the maps written,
/// given the child's `/proc/<pid>`, while the child keeps the namespaces
/// alive: it opens or bind-mounts what must outlive the child.
pub fn namespaces_with_maps<T>(
    uid_map: &str,
    gid_map: &str,
    flags: libc::c_int,
    hold: impl FnOnce(&str) -> Result<T, Errno>,
) -> Result<T, Errno> {
    let (done_r, done_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let fds: [libc::c_int; 2] = [done_r.as_raw_fd(), done_w.as_raw_fd()];
    let mut stack = vec![0u8; 64 * 1024];
    // The stack grows down from its (16-byte aligned) top.
    let top = stack.as_mut_ptr().wrapping_add(stack.len());
    let top = top.wrapping_sub(top as usize % 16);
    // SAFETY: the child runs `wait_for_parent` on its own stack (`stack`,
    // alive until it is reaped below) and only reads `fds`, which outlive
    // it too; it makes raw syscalls and exits without touching anything
    // else of the memory it shares with us.
    let pid = unsafe {
        libc::clone(
            wait_for_parent,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_NEWUSER | flags | libc::SIGCHLD,
            fds.as_ptr().cast_mut().cast(),
        )
    };
    let pid = nix::unistd::Pid::from_raw(Errno::result(pid)?);
    let opened = (|| {
        let proc = format!("/proc/{}", pid.as_raw());
        // setgroups is left allowed: a namespace lending its mapping to
        // mounts runs no process, and a pod's members set their groups.
        std::fs::write(format!("{proc}/uid_map"), uid_map).map_err(io_errno)?;
        std::fs::write(format!("{proc}/gid_map"), gid_map).map_err(io_errno)?;
        hold(&proc)
    })();
    // The child waits on `done`: closing our write end lets it exit.
    drop(done_w);
    let _ = nix::sys::wait::waitpid(pid, None);
    drop(done_r);
    drop(stack);
    opened
}

/// The child of [`userns_with_maps`]: closes its copy of the write end
/// (else its read would never see the parent close its own), waits for the
/// parent to close it, and exits.
extern "C" fn wait_for_parent(fds: *mut libc::c_void) -> libc::c_int {
    let fds: *const libc::c_int = fds.cast_const().cast();
    let mut b = 0u8;
    // SAFETY: `fds` points to two descriptors the parent keeps alive until
    // we are reaped; close and read are plain syscalls on them.
    unsafe {
        libc::close(*fds.add(1));
        libc::read(*fds, std::ptr::addr_of_mut!(b).cast(), 1);
    }
    0
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Clones `path`'s mount and idmaps it with `userns`: what a bind mount of
/// `path` would show, seen through the namespace's mapping.
pub fn idmapped_clone(
    path: &Path,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<OwnedFd, Errno> {
    let fd = clone_tree(path, recursive)?;
    set_idmap(fd.as_fd(), userns, recursive)?;
    Ok(fd)
}

/// Whether this process runs in a user namespace that is not the host's
/// full identity mapping: berth run by an ordinary user (rootless), inside
/// the namespace its pause process keeps. Overlayfs then needs `user.`
/// xattrs, and cgroups the user was not delegated cannot be made. Read once.
pub fn in_unprivileged_user_namespace() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => !is_identity_map(&map),
        // No /proc: nothing says otherwise.
        Err(_) => false,
    })
}

/// The initial namespace's map: every id to itself, one line.
fn is_identity_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A file owned by root on disk is seen as owned by the namespace's
    /// root on the host, through the idmapped clone only.
    #[test]
    fn an_idmapped_clone_shows_root_as_the_mapped_id() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "idmap test needs root");
            eprintln!("skipped: idmap test needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let ns = userns_with_maps("0 200000 65536\n", "0 200000 65536\n").unwrap();
        let m = idmapped_clone(dir.path(), ns.as_fd(), false).unwrap();
        let seen = std::fs::metadata(format!("/proc/self/fd/{}/f", m.as_raw_fd())).unwrap();
        assert_eq!((seen.uid(), seen.gid()), (200_000, 200_000));
        let plain = std::fs::metadata(dir.path().join("f")).unwrap();
        assert_eq!(plain.uid(), 0);
    }

    #[test]
    fn only_the_full_identity_map_is_the_hosts() {
        assert!(super::is_identity_map("         0          0 4294967295\n"));
        assert!(!super::is_identity_map(
            "         0       1001          1\n         1     100000      65536\n"
        ));
        assert!(!super::is_identity_map("0 0 65536\n"));
    }
}
