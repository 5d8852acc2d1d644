//! Waiting for the store to change: a poll that wakes when a row is
//! written rather than at its next tick.
//!
//! Why: `compose up` waits on other processes' rows (a dependency's
//! health, written by its monitor) in a loop that sleeps a few
//! milliseconds between reads; each hop of a healthcheck chain paid half a
//! tick on average. SQLite in WAL mode appends every commit to
//! `berth.db-wal` (a checkpoint writes `berth.db`), so an inotify watch on
//! both wakes a waiter at a commit. Any commit wakes it, its own rows or
//! not: the caller reads again and waits again, as after a tick. The wait
//! still ends at its deadline: a missed or impossible watch (no inotify,
//! no WAL file yet) only makes it the plain sleep it was.
//!
//! The last close of an inotify descriptor with watches waits for the
//! kernel's fsnotify mark reaper (`fsnotify_destroy_group` flushes it, and
//! it waits out an SRCU grace period): 5 to 20 ms on the 6.x kernels
//! measured, removing the watches first or not, and `compose up` closed it
//! just before it answered. So the last close is left to a detached
//! grandchild that holds a copy of the descriptor until this process has
//! let go of its own (see [`hand_off_last_close`]).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// An inotify descriptor watching the store's database files.
#[derive(Debug)]
pub struct StoreWatch {
    fd: Option<OwnedFd>,
}

impl StoreWatch {
    /// Watches the database files of the store at `root`. Never fails:
    /// without a watch, [`StoreWatch::wait`] sleeps.
    pub fn new(root: &Path) -> StoreWatch {
        // SAFETY: inotify_init1 takes flags only and returns a new
        // descriptor (or -1).
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return StoreWatch { fd: None };
        }
        // SAFETY: inotify_init1 just returned this descriptor; nothing
        // else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut watched = false;
        for name in ["berth.db-wal", "berth.db"] {
            let Ok(path) =
                std::ffi::CString::new(root.join(name).into_os_string().into_encoded_bytes())
            else {
                continue;
            };
            // SAFETY: the path is NUL-terminated and outlives the call;
            // the descriptor is ours.
            let wd =
                unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) };
            watched |= wd >= 0;
        }
        StoreWatch {
            fd: watched.then_some(fd),
        }
    }

    /// Returns once the store was written, or `at_most` has passed.
    pub fn wait(&self, at_most: Duration) {
        let Some(fd) = &self.fd else {
            std::thread::sleep(at_most);
            return;
        };
        let ms = u16::try_from(at_most.as_millis()).unwrap_or(u16::MAX);
        let mut pfd = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)).is_ok_and(|n| n > 0) {
            // Drained: the next wait waits for the next write.
            let mut buf = [0u8; 4096];
            while nix::unistd::read(fd.as_raw_fd(), &mut buf).is_ok_and(|n| n > 0) {}
        }
    }
}

impl Drop for StoreWatch {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            hand_off_last_close(fd);
        }
    }
}

/// Closes `fd` here at once, leaving its last (slow) close to a detached
/// grandchild: the grandchild inherits a copy, waits until this process has
/// closed its copy and the write end of a pipe, then exits, which closes the
/// descriptor; the system reaps it. When anything of this fails, `fd` is
/// simply closed here.
fn hand_off_last_close(fd: OwnedFd) {
    let Ok((read_end, write_end)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return;
    };
    let keep = [fd.as_raw_fd(), read_end.as_raw_fd()];
    // SAFETY: the children make only async-signal-safe system calls
    // (fork, close_range, read, _exit) on descriptors they own, so a fork
    // of a process with other threads is sound; neither returns into Rust
    // code of the parent's.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: as above; the intermediate child exits at once so that
            // the grandchild is reparented (to init or a subreaper).
            if unsafe { libc::fork() } == 0 {
                wait_for_parents_close(keep[0].max(keep[1]), keep[0].min(keep[1]), keep[1]);
            }
            // SAFETY: _exit ends the intermediate child, running none of the
            // parent's destructors or atexit handlers.
            unsafe { libc::_exit(0) }
        }
        child if child > 0 => {
            // The intermediate child ends at once: no zombie is left.
            while nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None)
                == Err(nix::errno::Errno::EINTR)
            {}
        }
        _ => {}
    }
    drop(read_end);
    drop(fd);
    drop(write_end);
}

/// The grandchild of [`hand_off_last_close`]: closes every descriptor but
/// `low` and `high` (the watch and the pipe's read end `pipe`), waits for
/// the pipe's end of file (the parent's copies are closed by then), and
/// exits, which closes the watch's last copy.
fn wait_for_parents_close(high: i32, low: i32, pipe: i32) -> ! {
    let ranges = [(0, low - 1), (low + 1, high - 1), (high + 1, i32::MAX)];
    for (first, last) in ranges {
        if first <= last {
            // SAFETY: close_range(2) on this single-threaded child's own
            // descriptors; nothing here uses them afterwards.
            unsafe {
                libc::syscall(libc::SYS_close_range, first, last, 0u32);
            }
        }
    }
    let mut byte = 0u8;
    loop {
        // SAFETY: reads into a one-byte buffer that outlives the call.
        let n = unsafe { libc::read(pipe, std::ptr::addr_of_mut!(byte).cast(), 1) };
        if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    // SAFETY: _exit ends the grandchild; its descriptors close with it.
    unsafe { libc::_exit(0) }
}

impl crate::Engine {
    /// A watch on this store's database (see [`StoreWatch`]).
    pub fn watch_store(&self) -> StoreWatch {
        StoreWatch::new(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A write to the WAL wakes a long wait at once; without one, the wait
    /// lasts its time (no spurious wake, which would make the caller spin).
    #[test]
    fn a_write_wakes_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("berth.db-wal");
        std::fs::write(&wal, b"").unwrap();
        let w = StoreWatch::new(dir.path());
        assert!(w.fd.is_some(), "no inotify watch");
        let t = Instant::now();
        w.wait(Duration::from_millis(50));
        assert!(
            t.elapsed() >= Duration::from_millis(50),
            "woke with no write"
        );
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::write(&wal, b"frame").unwrap();
        });
        let t = Instant::now();
        w.wait(Duration::from_secs(30));
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the write did not wake it"
        );
        writer.join().unwrap();
    }
}
