//! The store's trash: directories of removed containers, moved out of the
//! way in one rename and deleted later, off the path of the command that
//! removed them.
//!
//! Why: on a disk mounted `discard` (this project's CI host), each
//! directory freed waits for a synchronous discard, and a container leaves
//! about ten (its directory, `fs`, `upper`, `work`, `merged`, overlayfs's
//! `work/work`, ...). A foreground `run --rm` would spend more time there
//! than starting the container. The container itself is gone when it is
//! trashed (row, name, mounts); only bytes are left.
//!
//! Sweeping is safe against other sweepers and against being killed half
//! way: sweepers take turns on a lock file (released by the kernel when a
//! sweeper dies), and what a killed one left half deleted is deleted by
//! the next.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Context, Result};

/// The trash of the store at `root`.
pub fn dir(root: &Path) -> PathBuf {
    root.join("trash")
}

/// The lock file sweepers take turns on (its name starts with a dot: it is
/// never swept).
const LOCK: &str = ".lock";

/// How long a sweeper waits for another to finish before it leaves the
/// trash to the next one.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Whether this process trashed something: a command-line front end
/// sweeps once it has answered (a long-lived one calls [`sweep`] when it
/// likes).
static TRASHED: AtomicBool = AtomicBool::new(false);

/// Whether this process has put something in a trash since it started.
pub fn trashed_by_this_process() -> bool {
    TRASHED.load(Ordering::Relaxed)
}

/// A fresh place in the trash of the store at `root` for something named
/// `name` (the trash is made if need be); [`moved_in`] once it is there.
pub fn slot(root: &Path, name: &str) -> Result<PathBuf> {
    let trash = dir(root);
    std::fs::create_dir_all(&trash).ctx(|| format!("create {}", trash.display()))?;
    // Unique even when the same id is trashed twice before a sweep.
    Ok(trash.join(format!("{name}.{}", crate::now_nanos())))
}

/// Records that this process put something in a trash.
pub fn moved_in() {
    TRASHED.store(true, Ordering::Relaxed);
}

/// Moves `victim` (a directory of the store at `root`, nothing mounted
/// below it) into the trash. False when it could not be moved (another
/// file system): the caller deletes it in place. True also when it was
/// not there at all (nothing to delete).
pub fn put(root: &Path, victim: &Path) -> Result<bool> {
    let name = victim
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = slot(root, &name)?;
    match std::fs::rename(victim, &target) {
        Ok(()) => {
            moved_in();
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => Ok(false),
        Err(e) => Err(e).ctx(|| format!("move {} to {}", victim.display(), target.display())),
    }
}

/// Whether the trash of the store at `root` holds anything to delete.
pub fn has_litter(root: &Path) -> bool {
    std::fs::read_dir(dir(root)).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.')))
    })
}

/// Deletes everything in the trash of the store at `root`; how many
/// entries it deleted. Waits (up to [`LOCK_WAIT`]) while another sweeper
/// works, then leaves the rest to the next sweep.
pub fn sweep(root: &Path) -> Result<usize> {
    let trash = dir(root);
    let file = match open_lock(&trash) {
        Ok(f) => f,
        // No trash (nothing was ever trashed here), or no store any more.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).ctx(|| format!("open {}", trash.join(LOCK).display())),
    };
    let Some(_lock) = lock_within(file, LOCK_WAIT) else {
        return Ok(0);
    };
    let entries = std::fs::read_dir(&trash).ctx(|| format!("read {}", trash.display()))?;
    let mut swept = 0;
    for entry in entries {
        let entry = entry.ctx(|| format!("read {}", trash.display()))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // A runtime's state directory may hold the cgroups still to
        // remove: they go first, and while they cannot, the directory
        // stays (it is all that records them) for the next sweep.
        if let Err(e) = berth_runtime::container::remove_trashed_cgroups(&path) {
            tracing::warn!("remove the cgroups recorded in {}: {e}", path.display());
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => swept += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("remove {}", path.display())),
        }
    }
    Ok(swept)
}

/// Opens (makes) the lock file inside the trash directory through a
/// descriptor of the directory: a store deleted meanwhile (a test's
/// temporary one) is not given back a lock file, which would keep its
/// removal from finishing.
fn open_lock(trash: &Path) -> std::io::Result<File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let dir = File::open(trash)?;
    // SAFETY: openat(2) reads the NUL-terminated name and returns a new
    // descriptor (or -1); `dir` stays open across the call.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".lock".as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
            0o600_u32,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// An exclusive lock on `file`, tried until `wait` has passed.
fn lock_within(file: File, wait: Duration) -> Option<nix::fcntl::Flock<File>> {
    let deadline = Instant::now() + wait;
    let mut file = file;
    loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Some(lock),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = f;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trashed_directories_are_swept_and_the_lock_file_kept() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(sweep(root.path()).unwrap(), 0, "no trash yet");
        for n in 0..2 {
            let victim = root.path().join("containers").join("abc");
            std::fs::create_dir_all(victim.join("fs/upper/etc")).unwrap();
            std::fs::write(victim.join("fs/upper/etc/hosts"), format!("{n}")).unwrap();
            assert!(put(root.path(), &victim).unwrap());
            assert!(!victim.exists(), "moved out of the containers");
        }
        assert!(has_litter(root.path()));
        assert_eq!(sweep(root.path()).unwrap(), 2, "both trashed copies");
        assert!(!has_litter(root.path()));
        let left: Vec<_> = std::fs::read_dir(dir(root.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(LOCK)]);
        // Gone already: nothing to move, nothing to fail.
        assert!(put(root.path(), &root.path().join("containers/gone")).unwrap());
    }

    #[test]
    fn a_sweeper_waits_for_the_one_at_work_then_gives_up() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("v");
        std::fs::create_dir(&victim).unwrap();
        assert!(put(root.path(), &victim).unwrap());
        let held = File::create(dir(root.path()).join(LOCK)).unwrap();
        let held = nix::fcntl::Flock::lock(held, nix::fcntl::FlockArg::LockExclusive).unwrap();
        let other = File::open(dir(root.path()).join(LOCK)).unwrap();
        assert!(lock_within(other, Duration::from_millis(100)).is_none());
        drop(held);
        assert_eq!(sweep(root.path()).unwrap(), 1);
    }
}
