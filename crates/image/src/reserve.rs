//! A little room kept on the store's filesystem for the day it fills up.
//!
//! Reading a full store works (SQLite reuses the pages of its WAL index),
//! but removing anything writes the database first, and a write needs new
//! pages: without them the container that filled the disk could not be
//! removed. So the store keeps `reserve`, a file of 1 MiB, and a removal
//! that fails for want of space gives it back and tries again (CockroachDB
//! keeps such a "ballast" file for the same reason). Later commands make it
//! again once there is room.

use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The reserve's name in the store's root.
pub const FILE: &str = "reserve";

/// Enough for the database writes of a few removals (each a handful of
/// 4 KiB pages in the WAL, and its index).
pub const SIZE: u64 = 1 << 20;

/// Makes the reserve when it is missing (or short: a command killed while
/// making it) and the filesystem has room to spare for it: the reserve
/// must never be what fills a disk. Best effort: one `stat` when it is
/// there, which it nearly always is.
pub fn keep(root: &Path) {
    let path = root.join(FILE);
    if fs::metadata(&path).is_ok_and(|m| m.len() == SIZE) {
        return;
    }
    let roomy = nix::sys::statvfs::statvfs(root)
        .is_ok_and(|st| st.blocks_available().saturating_mul(st.fragment_size()) >= 4 * SIZE);
    if !roomy {
        return;
    }
    let made = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .is_ok_and(|f| {
            let len = i64::try_from(SIZE).unwrap_or(i64::MAX);
            nix::fcntl::posix_fallocate(f.as_raw_fd(), 0, len).is_ok()
        });
    if !made {
        crate::leftover::remove_file(&path);
    }
}

/// Gives the reserve back to the filesystem; whether there was one.
pub fn release(root: &Path) -> bool {
    fs::remove_file(root.join(FILE)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_once_then_released() {
        let dir = tempfile::tempdir().unwrap();
        keep(dir.path());
        let path = dir.path().join(FILE);
        assert_eq!(fs::metadata(&path).unwrap().len(), SIZE);
        // A short one (its maker was killed) is made whole.
        fs::write(&path, b"x").unwrap();
        keep(dir.path());
        assert_eq!(fs::metadata(&path).unwrap().len(), SIZE);
        assert!(release(dir.path()));
        assert!(!path.exists());
        assert!(!release(dir.path()));
    }
}
