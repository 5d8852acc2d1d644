//! Directories and files of a store that only its owner (root) may reach.
//!
//! A store holds image layers and container upper directories (setuid
//! binaries a local user could run as a root shell) and secrets (the
//! environment in `berth.db`, `config.json`, `state.json`, the logs). Its
//! top directories are made 0700 and its secret files 0600 when they are
//! created, and an existing store whose top directories are looser (made
//! by an older berth, or chmod-ed open) is tightened: the modes of
//! everything inside then no longer matter to another user, who cannot
//! traverse into it. Docker closed its data directory for the same attack
//! (CVE-2021-41091); no berth container needs to
//! traverse the store's host path (containers run without a user namespace
//! and reach their rootfs and bind sources through mounts made by root), so
//! there is no group or other execute bit to keep.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of a store's directories.
pub const DIR_MODE: u32 = 0o700;
/// The mode of a store's secret files.
pub const FILE_MODE: u32 = 0o600;

/// A path whose mode was tightened: what it was, for the notice a binary
/// prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tightened {
    pub path: PathBuf,
    pub was: u32,
    pub now: u32,
    /// An empty directory (made for the store by someone else, mkdir or
    /// mktemp): nothing was exposed, so there is nothing to warn about.
    pub empty: bool,
}

impl std::fmt::Display for Tightened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was mode {:04o}, readable by other users: now {:04o}",
            self.path.display(),
            self.was,
            self.now
        )
    }
}

/// Creates `path` (and missing parents) as a directory only its owner can
/// enter; an existing one with any group or other bit is tightened to 0700
/// and reported. A symlink (a store moved to a bigger disk) is followed: the
/// directory it names is what must be closed.
pub fn private_dir(path: &Path) -> io::Result<Option<Tightened>> {
    // The mode is given at creation (not chmod-ed afterwards), so there is
    // no moment when the new directory is open; a umask only removes bits.
    if let Err(e) = DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
    {
        // A file in the way says so, not "File exists".
        return match std::fs::metadata(path) {
            Ok(m) if !m.is_dir() => Err(not_a_directory()),
            _ => Err(e),
        };
    }
    tighten(path, DIR_MODE, true)
}

/// Tightens an existing file to 0600 (a missing one is not an error):
/// `berth.db` and its WAL of a store made before its modes were closed.
pub fn private_existing_file(path: &Path) -> io::Result<Option<Tightened>> {
    match tighten(path, FILE_MODE, false) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        other => other,
    }
}

/// Opens `path` for writing (created, or truncated), readable only by its
/// owner: an existing file is tightened through its descriptor first.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    close_file(&f)?;
    Ok(f)
}

/// Opens `path` for appending (created if missing), readable only by its
/// owner: a container's log.
pub fn append_private_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    close_file(&f)?;
    Ok(f)
}

/// Writes `data` to a new (or truncated) 0600 file.
pub fn write_private_file(path: &Path, data: &[u8]) -> io::Result<()> {
    io::Write::write_all(&mut create_private_file(path)?, data)
}

/// The callers name the path.
fn not_a_directory() -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        "it exists and is not a directory",
    )
}

fn close_file(f: &File) -> io::Result<()> {
    let mode = f.metadata()?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        f.set_permissions(Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

fn tighten(path: &Path, mode: u32, dir: bool) -> io::Result<Option<Tightened>> {
    let meta = std::fs::metadata(path)?;
    if dir && !meta.is_dir() {
        return Err(not_a_directory());
    }
    let was = meta.permissions().mode() & 0o7777;
    if was & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode))?;
    let empty = dir && std::fs::read_dir(path)?.next().is_none();
    Ok(Some(Tightened {
        path: path.to_path_buf(),
        was,
        now: mode,
        empty,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_directories_are_0700_whatever_the_umask() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        assert_eq!(private_dir(&d).unwrap(), None);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);
    }

    #[test]
    fn open_directories_are_tightened_and_reported() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("store");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("berth.db"), b"").unwrap();
        let got = private_dir(&d).unwrap().unwrap();
        assert_eq!((got.was, got.now, got.empty), (0o755, 0o700, false));
        assert!(got.to_string().contains("0755"), "{got}");
        assert_eq!(mode(&d), 0o700);
        assert_eq!(private_dir(&d).unwrap(), None);
    }

    #[test]
    fn an_empty_directory_is_tightened_and_said_empty() {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), Permissions::from_mode(0o755)).unwrap();
        assert!(private_dir(t.path()).unwrap().unwrap().empty);
        assert_eq!(mode(t.path()), 0o700);
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"").unwrap();
        assert!(private_dir(&f).is_err());
    }

    #[test]
    fn files_are_0600_new_or_old() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("config.json");
        write_private_file(&f, b"{}").unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        write_private_file(&f, b"{}").unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        drop(append_private_file(&f).unwrap());
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, Permissions::from_mode(0o640)).unwrap();
        assert_eq!(private_existing_file(&f).unwrap().unwrap().was, 0o640);
        assert_eq!(private_existing_file(&t.path().join("none")).unwrap(), None);
    }
}
