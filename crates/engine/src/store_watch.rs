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
