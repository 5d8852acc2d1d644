//! Keeping the runtime's own binary out of a container's reach
//! (CVE-2019-5736 and its variants).
//!
//! Every process the runtime starts inside a container is a fork of the
//! runtime: until its final execve, `/proc/self/exe` is the runtime's
//! binary on the host. A container program that execs a file starting with
//! `#!/proc/self/exe` (or that an `exec`, a health check or a build step is
//! tricked into running) makes the kernel execute that binary inside the
//! container, where the process can then open it through
//! `/proc/<pid>/exe` and, once the runtime stops executing it, write to it:
//! the next container start runs the attacker's code as host root.
//! Non-dumpable processes do not help: the re-executed binary is a fresh,
//! dumpable process of the container's.
//!
//! The protection: before it starts any container process, the runtime
//! re-executes itself from a read-only view of its binary, so that
//! whatever `/proc/self/exe` reaches is read-only:
//! - first choice: a detached clone of a bind mount of the binary
//!   (`open_tree(OPEN_TREE_CLONE)`), made read-only with `mount_setattr`
//!   and executed through its descriptor (`execveat`). The mount is in no
//!   namespace (no one can remount it), costs no copy, and goes away with
//!   the last process executing it. Opening it for writing fails with
//!   EROFS whichever way it is reached.
//! - fallback (no new mount API, or no privilege to clone mounts): a
//!   sealed memfd copy (`F_SEAL_WRITE` and friends), as runc did first.
//!
//! A binary already on a read-only mount (`ST_RDONLY`) needs neither: that
//! is also how a re-executed runtime recognises itself.
//!
//! Nor does one that no process of the user namespace the runtime runs in
//! can write, which is where an ordinary user's berth runs (in its pause
//! process's namespace, whose containers are in it or in namespaces nested
//! in it, and so never hold an id it does not map): its owner is not
//! mapped there, its mode gives group and others no write, and it has no
//! ACL. Then the owner's bits apply to no process of the namespace, no
//! capability there reaches the file (the kernel grants capabilities over
//! an inode only when its owner is mapped), and the group's and others'
//! bits deny writing; the read-only view would protect nothing, and its
//! copy (a rootless process cannot clone the host's mounts) cost 15 ms
//! a start. Inside a user namespace an unmapped owner reads as the
//! overflow uid, which may also be a mapped one: the owner is recorded as
//! the host sees it before the namespace is joined ([`joining_user_namespace`]).
//! A process that joined the namespace is still executed once more
//! inside it, plainly (see [`ensure_protected`]).

use std::ffi::{CStr, CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

use crate::error::{Context, Error, Result};

/// Environment variable carrying the path of the binary as installed
/// (`/proc/self/exe` of a re-executed runtime names no useful path: the
/// binary is on a detached mount or in a memfd).
pub const ORIGINAL_EXE_ENV: &str = "BERTH_ORIGINAL_EXE";

/// Set for the re-executed process only (it removes it): one that finds
/// it and is still not protected gives up instead of looping.
const REEXEC_GUARD_ENV: &str = "BERTH_EXE_REEXECUTED";

/// The binary's device, inode and owner as the host's user namespace sees
/// them (`DEV:INO:UID`), recorded before joining another one.
pub const HOST_OWNER_ENV: &str = "BERTH_EXE_HOST_OWNER";

/// Set to `memfd` to skip the read-only clone and use the sealed copy
/// (how the fallback is tested and measured).
pub const METHOD_ENV: &str = "BERTH_EXE_PROTECTION";

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
#[derive(Debug, Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// The path of the binary as installed: the file beside which the
/// runtime's companions (berth-monitor) live.
pub fn original_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ORIGINAL_EXE_ENV) {
        return Ok(PathBuf::from(p));
    }
    std::fs::read_link("/proc/self/exe").ctx(|| "read /proc/self/exe".into())
}

/// Whether the running binary is one no container can write: on a
/// read-only mount, a sealed memfd, or a file no process of our user
/// namespace may write (see the module's doc).
pub fn is_protected() -> Result<bool> {
    let st =
        nix::sys::statvfs::statvfs("/proc/self/exe").ctx(|| "statvfs /proc/self/exe".into())?;
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Ok(true);
    }
    if unwritable_in_our_user_namespace() {
        return Ok(true);
    }
    let fd = nix::fcntl::open(
        "/proc/self/exe",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "open /proc/self/exe".into())?;
    // SAFETY: fresh descriptor from open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: F_GET_SEALS takes no argument; a file that is no memfd
    // answers EINVAL.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    Ok(seals >= 0 && seals & libc::F_SEAL_WRITE != 0)
}

/// Set by [`joining_user_namespace`]: the process joined a user namespace
/// after it was executed.
static JOINED_USER_NAMESPACE: AtomicBool = AtomicBool::new(false);

/// Call before joining a user namespace with `setns`, while the process
/// has one thread (it sets the environment). Records the running binary's
/// owner as the host's user namespace sees it ([`HOST_OWNER_ENV`]), for
/// this process and those it starts: inside, an unmapped owner cannot be
/// told from a mapped one. And marks the process as one that must be
/// executed again inside the namespace before it starts containers
/// ([`ensure_protected`] does it).
pub fn joining_user_namespace() -> Result<()> {
    JOINED_USER_NAMESPACE.store(true, Ordering::Relaxed);
    let st = nix::sys::stat::stat("/proc/self/exe").ctx(|| "stat /proc/self/exe".into())?;
    std::env::set_var(
        HOST_OWNER_ENV,
        format!("{}:{}:{}", st.st_dev, st.st_ino, st.st_uid),
    );
    Ok(())
}

/// True when the running binary's owner (as recorded by
/// [`joining_user_namespace`]) is not mapped in our user namespace, its mode
/// lets neither group nor others write, and it has no ACL that could.
/// False whenever anything cannot be told: the initial namespace maps
/// every id, so root on the host is never exempt.
fn unwritable_in_our_user_namespace() -> bool {
    let Some(recorded) = std::env::var_os(HOST_OWNER_ENV) else {
        return false;
    };
    let Some((dev, ino, owner)) = parse_host_owner(&recorded.to_string_lossy()) else {
        return false;
    };
    let Some(st) = running_binary_closed() else {
        return false;
    };
    // Another binary than the one recorded (berth executed another berth):
    // its owner is unknown.
    if (st.st_dev, st.st_ino) != (dev, ino) {
        return false;
    }
    let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else {
        return false;
    };
    id_unmapped(&map, owner).unwrap_or(false)
}

fn parse_host_owner(text: &str) -> Option<(u64, u64, u32)> {
    let mut f = text.split(':');
    let dev = f.next()?.parse().ok()?;
    let ino = f.next()?.parse().ok()?;
    let uid = f.next()?.parse().ok()?;
    f.next().is_none().then_some((dev, ino, uid))
}

/// Whether `id` (of the parent namespace) is in no range of `map` (a
/// /proc/PID/uid_map read by a process of that namespace: inside, outside,
/// count per line); `None` when the map cannot be read.
fn id_unmapped(map: &str, id: u32) -> Option<bool> {
    for line in map.lines() {
        let mut f = line.split_whitespace().map(|w| w.parse::<u64>());
        let (Some(Ok(_inside)), Some(Ok(outside)), Some(Ok(count))) =
            (f.next(), f.next(), f.next())
        else {
            return None;
        };
        if (outside..outside.saturating_add(count)).contains(&u64::from(id)) {
            return Some(false);
        }
    }
    Some(true)
}

/// Whether `path` has an access ACL; `None` when that cannot be told.
fn has_acl(path: &CStr) -> Option<bool> {
    // SAFETY: getxattr with a null buffer and size 0 only returns the
    // value's size; both strings are NUL-terminated.
    let rc = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    if rc >= 0 {
        return Some(true);
    }
    match Errno::last() {
        Errno::ENODATA | Errno::EOPNOTSUPP => Some(false),
        _ => None,
    }
}

/// Whether the host's initial user namespace is ours (its map is the
/// identity over every id): there `stat` shows the host's owner.
pub fn in_initial_user_namespace() -> bool {
    // saferoot reads the map once; a namespace joined since is flagged.
    !JOINED_USER_NAMESPACE.load(Ordering::Relaxed)
        && !saferoot::idmap::in_unprivileged_user_namespace()
}

/// Whether no process of a user namespace whose ids map to these host
/// ranges (start, count) can write the running binary: the namespace maps
/// neither its owner nor its group (so no capability of the namespace
/// reaches the file: the kernel grants none over an unmapped owner), and
/// its mode and ACL let no other user write it. Only said from the host's
/// initial namespace; false whenever anything cannot be told.
fn unwritable_from(uids: &[(u64, u64)], gids: &[(u64, u64)]) -> bool {
    if !in_initial_user_namespace() || uids.is_empty() || gids.is_empty() {
        return false;
    }
    let Some(st) = running_binary_closed() else {
        return false;
    };
    let covers = |ranges: &[(u64, u64)], id: u32| {
        ranges
            .iter()
            .any(|(start, count)| (*start..start.saturating_add(*count)).contains(&u64::from(id)))
    };
    !covers(uids, st.st_uid) && !covers(gids, st.st_gid)
}

/// Whether a container made from `spec` may be started by an unprotected
/// binary: it gets a user namespace of its own (not joined) whose maps
/// leave the binary out of its processes' reach ([`unwritable_from`]).
/// Its processes, and every process that ever enters it, are in that
/// namespace or one below it, where the same holds.
pub fn exempt_for_spec(spec: &oci_spec::runtime::Spec) -> bool {
    let Some(linux) = spec.linux() else {
        return false;
    };
    let own = linux.namespaces().as_ref().is_some_and(|ns| {
        ns.iter()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User && n.path().is_none())
    });
    let ranges = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| (u64::from(m.host_id()), u64::from(m.size())))
            .collect::<Vec<_>>()
    };
    own && unwritable_from(&ranges(linux.uid_mappings()), &ranges(linux.gid_mappings()))
}

/// Whether a process entering the namespaces of `pid` (a running
/// container's init) may come from an unprotected binary: `pid`'s user
/// namespace leaves the binary out of reach ([`unwritable_from`]).
pub fn exempt_for_process(pid: i32) -> bool {
    let ranges = |file: &str| -> Option<Vec<(u64, u64)>> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
        text.lines()
            .map(|l| {
                let f: Vec<u64> = l
                    .split_whitespace()
                    .map(|w| w.parse().ok())
                    .collect::<Option<_>>()?;
                match f.as_slice() {
                    [_inside, outside, count] => Some((*outside, *count)),
                    _ => None,
                }
            })
            .collect()
    };
    match (ranges("uid_map"), ranges("gid_map")) {
        (Some(u), Some(g)) => unwritable_from(&u, &g),
        _ => false,
    }
}

/// A front end's look before it decides not to re-execute itself: the
/// binary is root's (user and group, which berth's id pool never maps into
/// a container), no other user may write it, it has no ACL, and we are in
/// the host's user namespace. The runtime decides again for each process
/// from the container's own maps ([`exempt_for_spec`],
/// [`exempt_for_process`]) and refuses if it does not hold.
pub fn root_owned_and_closed() -> bool {
    in_initial_user_namespace()
        && running_binary_closed().is_some_and(|st| st.st_uid == 0 && st.st_gid == 0)
}

/// The running binary's status, when neither its group nor others may
/// write it and it has no ACL (whose entries could let them); None when it
/// is open so, or cannot be told.
fn running_binary_closed() -> Option<nix::sys::stat::FileStat> {
    let st = nix::sys::stat::stat("/proc/self/exe").ok()?;
    (st.st_mode & 0o022 == 0 && has_acl(c"/proc/self/exe") == Some(false)).then_some(st)
}

/// Refuses to go on unless the binary is protected: the library's own
/// check before it forks anything that enters a container, so no caller
/// can forget [`ensure_protected`].
pub fn require_protected() -> Result<()> {
    match is_protected()? {
        true => Ok(()),
        false => Err(Error::ExeUnprotected),
    }
}

/// Makes sure the process runs from a protected binary: returns at once
/// when it does, otherwise replaces the process with the same program,
/// arguments and environment executed from a read-only clone (or sealed
/// copy) of its binary, and does not return.
///
/// Call it first thing in a binary's `main`, before any thread starts,
/// for the commands that start container processes.
pub fn ensure_protected() -> Result<()> {
    let reexecuted = std::env::var_os(REEXEC_GUARD_ENV).is_some();
    if reexecuted {
        // Not for our children (the caller is single-threaded, as
        // documented, so the environment may change).
        std::env::remove_var(REEXEC_GUARD_ENV);
    }
    let argv = || -> Result<Vec<CString>> {
        std::env::args_os()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::Exe("an argument contains a NUL byte".into()))
    };
    if is_protected()? {
        if JOINED_USER_NAMESPACE.load(Ordering::Relaxed) && !reexecuted {
            // A process's memory belongs to the user namespace it was
            // executed in, and the kernel checks access to its
            // non-dumpable forks (a container's init before it executes
            // its program: /proc/PID/ns/net for the network) against that
            // namespace, where we hold no capability: one plain execution
            // inside the namespace joined, no copy.
            std::env::set_var(REEXEC_GUARD_ENV, "1");
            let err = nix::unistd::execv(c"/proc/self/exe", &argv()?).unwrap_err();
            return Err(err).ctx(|| "execute our own binary".into());
        }
        return Ok(());
    }
    if reexecuted {
        return Err(Error::Exe(
            "re-executed from a protected copy of the runtime binary, and it is still writable"
                .into(),
        ));
    }
    Err(exec_protected(&argv()?, true))
}

/// Replaces the process with our own binary, run with `argv` from a
/// protected view of it (or plainly, when it already runs from one): how
/// a process that forks into containers is started without paying for a
/// second start of its parent (the monitor). `guard` marks the new process
/// as a re-execution of this one ([`ensure_protected`]'s loop guard).
/// Returns only the error that stopped it.
pub fn exec_protected(argv: &[CString], guard: bool) -> Error {
    match exec_protected_inner(argv, guard) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn exec_protected_inner(argv: &[CString], guard: bool) -> Result<std::convert::Infallible> {
    if is_protected()? {
        let err = nix::unistd::execv(c"/proc/self/exe", argv).unwrap_err();
        return Err(err).ctx(|| "execute our own binary".into());
    }
    let original = std::fs::read_link("/proc/self/exe").ctx(|| "read /proc/self/exe".into())?;
    let memfd_only = std::env::var_os(METHOD_ENV).is_some_and(|m| m == "memfd");
    let fd = match memfd_only {
        true => sealed_copy()?,
        false => match readonly_clone() {
            Ok(fd) => fd,
            // No new mount API, or no CAP_SYS_ADMIN over our mount
            // namespace (a rootless caller): the copy costs more but
            // protects as well.
            Err(_) => sealed_copy()?,
        },
    };
    let mut envp: Vec<CString> = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k == ORIGINAL_EXE_ENV || k == REEXEC_GUARD_ENV {
            continue;
        }
        let mut kv = OsString::from(&k);
        kv.push("=");
        kv.push(&v);
        if let Ok(c) = CString::new(kv.as_bytes()) {
            envp.push(c);
        }
    }
    let mut kv = OsString::from(ORIGINAL_EXE_ENV);
    kv.push("=");
    kv.push(original.as_os_str());
    envp.push(
        CString::new(kv.as_bytes())
            .map_err(|_| Error::Exe("the binary's path contains a NUL byte".into()))?,
    );
    if guard {
        envp.push(CString::new(format!("{REEXEC_GUARD_ENV}=1")).unwrap_or_default());
    }
    let err = nix::unistd::execveat(
        Some(fd.as_raw_fd()),
        c"",
        argv,
        &envp,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )
    .unwrap_err();
    Err(err).ctx(|| "execute the runtime from its protected copy".into())
}

/// A read-only, detached bind mount of our binary; the descriptor is
/// its root (the file itself).
fn readonly_clone() -> Result<OwnedFd> {
    let path: &CStr = c"/proc/self/exe";
    // SAFETY: open_tree reads a NUL-terminated path; flags are plain ints.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let fd = Errno::result(rc).ctx(|| "clone a mount of the runtime binary".into())?;
    // SAFETY: open_tree returned a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).unwrap_or(-1)) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        ..MountAttr::default()
    };
    // SAFETY: mount_setattr reads `size` bytes of a valid mount_attr and
    // the empty NUL-terminated path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).ctx(|| "make the runtime binary's mount read-only".into())?;
    Ok(fd)
}

/// A sealed in-memory copy of our binary.
fn sealed_copy() -> Result<OwnedFd> {
    let src = std::fs::File::open("/proc/self/exe").ctx(|| "open /proc/self/exe".into())?;
    let len = src.metadata().ctx(|| "stat /proc/self/exe".into())?.len();
    let fd = nix::sys::memfd::memfd_create(
        c"berth-runtime",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC
            | nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .ctx(|| "memfd_create".into())?;
    let mut dst = std::fs::File::from(fd);
    // std's copy uses copy_file_range/sendfile: no trip through userspace.
    let copied = std::io::copy(&mut &src, &mut dst).ctx(|| "copy the runtime binary".into())?;
    if copied != len {
        return Err(Error::Exe("the runtime binary changed while copied".into()));
    }
    let fd = OwnedFd::from(dst);
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes an int argument.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    Errno::result(rc).ctx(|| "seal the runtime binary's copy".into())?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_in_any_range_of_the_map_is_mapped() {
        // A rootless pause namespace: the user as 0, subordinate ids after.
        let map = "         0       1000          1\n         1    3000000      65536\n";
        assert_eq!(id_unmapped(map, 0), Some(true), "host root is not mapped");
        assert_eq!(id_unmapped(map, 1000), Some(false));
        assert_eq!(id_unmapped(map, 3000000), Some(false));
        assert_eq!(id_unmapped(map, 3065535), Some(false));
        assert_eq!(id_unmapped(map, 3065536), Some(true));
        assert_eq!(id_unmapped(map, 999), Some(true));
    }

    #[test]
    fn the_initial_namespace_maps_every_id() {
        let map = "         0          0 4294967295\n";
        for id in [0, 1000, u32::MAX - 1] {
            assert_eq!(id_unmapped(map, id), Some(false), "{id}");
        }
    }

    #[test]
    fn a_map_that_cannot_be_read_exempts_nothing() {
        assert_eq!(id_unmapped("0 x 1\n", 0), None);
        assert_eq!(id_unmapped("0 1000\n", 0), None);
    }

    /// The host's namespace maps the binary's owner: never exempt. A child
    /// in a namespace mapping 0 to 100000 (and the test binary root's,
    /// closed to others): exempt; mapping host 0 in: not.
    #[test]
    fn a_process_s_own_user_namespace_exempts_only_when_it_maps_neither_owner_nor_group() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(
            !exempt_for_process(me),
            "the host's namespace maps everyone"
        );
        if !nix::unistd::Uid::effective().is_root() || !in_initial_user_namespace() {
            eprintln!("skipped the child half: needs root in the host's user namespace");
            assert!(std::env::var_os("CI").is_none(), "CI runs tests as root");
            return;
        }
        let st = nix::sys::stat::stat("/proc/self/exe").unwrap();
        let closed = st.st_uid == 0 && st.st_gid == 0 && st.st_mode & 0o022 == 0;
        if !closed {
            eprintln!("the test binary is not root's 0755: the exempt case is not tested");
            assert!(std::env::var_os("CI").is_none(), "CI builds as root");
        }
        for (map, exempt) in [("0 100000 65536", true), ("0 0 1\n1 100000 65535", false)] {
            let mut child = std::process::Command::new("unshare")
                .args(["--user", "sleep", "30"])
                .spawn()
                .expect("unshare (util-linux)");
            let pid = child.id();
            // unshare has made the namespace once it executed sleep.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|e| !e.ends_with("sleep"))
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "unshare never ran sleep"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::fs::write(format!("/proc/{pid}/uid_map"), map).unwrap();
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny").unwrap();
            std::fs::write(format!("/proc/{pid}/gid_map"), map).unwrap();
            let got = exempt_for_process(i32::try_from(pid).unwrap());
            let _ = child.kill();
            let _ = child.wait();
            assert_eq!(
                got,
                exempt && closed,
                "map {map:?}, binary closed: {closed}"
            );
        }
    }

    #[test]
    fn the_recorded_owner_is_three_numbers() {
        assert_eq!(parse_host_owner("2049:1234:0"), Some((2049, 1234, 0)));
        assert_eq!(parse_host_owner("2049:1234"), None);
        assert_eq!(parse_host_owner("2049:1234:0:5"), None);
        assert_eq!(parse_host_owner("a:1:0"), None);
    }
}
