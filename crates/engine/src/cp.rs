//! `cp`: files and directories between a container and the host, or a tar
//! stream, with docker's rules for what lands where.
//!
//! Inside a container every path is resolved inside its root
//! (`openat2(RESOLVE_IN_ROOT)`, see saferoot): a symlink the container
//! planted (`/x -> /etc`) means its own `/etc`, never the host's. A running
//! container is reached through its init's root (`/proc/PID/root`), so its
//! volumes and binds are where the container sees them; a stopped one
//! through its rootfs, mounted for the while.
//!
//! The source is written as a tar stream (entries opened one by one,
//! without following links, relative to their directory's descriptor) and
//! extracted by [`berth_image::layer::extract`] into the destination directory.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_image::tree_tar;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::error::{Context, Error, Result};
use crate::{Engine, Record, Status};

/// A directory tree to copy from or into: the host's `/` or a container's
/// root.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// How to name it in errors: "container X" or "the host".
    what: String,
    /// A container's (what is copied in keeps its owners).
    container: bool,
    /// A container's user (`-u`), to whom `-a` gives what is copied in.
    user: Option<String>,
    /// A stopped container's rootfs we mounted, unmounted on drop.
    mounted: Option<berth_image::snapshot::Snapshot>,
    /// A running container's ids when it has a user namespace of its own:
    /// its mounts are idmapped, so what is written there is written as
    /// its root (see userns::as_container_root).
    id_map: Option<crate::userns::IdMap>,
}

impl Drop for Root {
    fn drop(&mut self) {
        if let Some(s) = &self.mounted {
            let _ = s.unmount();
        }
    }
}

impl Root {
    /// The host's file system; relative paths are taken from our cwd.
    pub fn host() -> Result<Root> {
        Ok(Root {
            fd: open_path(Path::new("/"), OFlag::O_DIRECTORY)?,
            what: "the host".into(),
            container: false,
            user: None,
            mounted: None,
            id_map: None,
        })
    }

    /// A directory of the host taken as a root of its own (an image's
    /// layers mounted read-only): nothing resolves outside it.
    pub fn dir(path: &Path, what: &str) -> Result<Root> {
        Ok(Root {
            fd: open_path(path, OFlag::O_DIRECTORY)?,
            what: what.to_string(),
            container: true,
            user: None,
            mounted: None,
            id_map: None,
        })
    }

    /// A container's file system as it sees it.
    pub fn container(engine: &Engine, r: &Record) -> Result<Root> {
        let what = format!("container {}", r.name);
        let running = matches!(r.status, Status::Running | Status::Paused)
            && crate::alive(r.pid, r.pid_start);
        if running {
            let fd = open_path(
                Path::new(&format!("/proc/{}/root", r.pid)),
                OFlag::O_DIRECTORY,
            )?;
            // The init could have gone and its pid been reused in between.
            if !crate::alive(r.pid, r.pid_start) {
                return Err(Error::CopyFailed(format!("{what} stopped while copying")));
            }
            return Ok(Root {
                fd,
                what,
                container: true,
                user: Some(r.config.user.clone()).filter(|u| !u.is_empty()),
                mounted: None,
                id_map: r.config.id_map,
            });
        }
        let snap = engine.snapshot(r)?;
        snap.unmount()?;
        snap.mount()?;
        let fd = open_path(&snap.merged, OFlag::O_DIRECTORY);
        let root = Root {
            fd: match fd {
                Ok(fd) => fd,
                Err(e) => {
                    let _ = snap.unmount();
                    return Err(e);
                }
            },
            what,
            container: true,
            user: Some(r.config.user.clone()).filter(|u| !u.is_empty()),
            mounted: Some(snap),
            id_map: None,
        };
        Ok(root)
    }

    fn resolve(&self, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        saferoot::open_in_root(&self.fd, path, flags)
    }

    fn stat(&self, path: &Path, follow: bool) -> Option<FileStat> {
        let flags = if follow {
            OFlag::O_PATH
        } else {
            OFlag::O_PATH | OFlag::O_NOFOLLOW
        };
        let fd = self.resolve(path, flags).ok()?;
        nix::sys::stat::fstat(fd.as_raw_fd()).ok()
    }
}

pub(crate) fn open_path(p: &Path, extra: OFlag) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_CLOEXEC | extra, Mode::empty())
        .ctx(|| format!("open {}", p.display()))?;
    // SAFETY: a fresh descriptor from open, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// One end of a copy.
#[derive(Debug)]
pub enum End<'a> {
    /// A path in this tree.
    Path(&'a Root, PathBuf),
    /// A tar stream (`-`): read from it as a source, written to as a
    /// destination. The front end hands it over (its stdin or stdout).
    Stream(Stream<'a>),
}

/// The tar stream of [`End::Stream`].
pub enum Stream<'a> {
    Input(Box<dyn std::io::Read + 'a>),
    Output(Box<dyn Write + 'a>),
}

impl std::fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Input(_) => "Stream::Input",
            Stream::Output(_) => "Stream::Output",
        })
    }
}

/// How a copy treats ownership and links.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `-a`: into a container with a user (`-u`), what is copied belongs
    /// to that user. Otherwise, as Docker 20.10 does (whatever its help
    /// says): into a container the source's uid and gid are kept, -a or
    /// not; onto the host files belong to us, -a or not.
    pub archive: bool,
    /// `-L`: copy what a source symlink points to rather than the link.
    pub follow_link: bool,
}

/// Where the source goes: into `dir`, under the top name `name` (None:
/// the source directory's content goes straight into `dir`).
struct Plan {
    dir: PathBuf,
    name: Option<OsString>,
}

/// docker cp's rules (see `docker cp --help`): a file goes into an existing
/// directory, onto an existing file, or becomes the new name; a directory
/// goes into an existing directory (its content only with `SRC/.`), or
/// becomes the new name; the parent of a new name must exist.
fn plan(src: &Path, src_is_dir: bool, dst_root: &Root, dst: &Path) -> Result<Plan> {
    let src_name = src.file_name().map(OsStr::to_os_string);
    let contents_only = src.as_os_str().as_bytes().ends_with(b"/.");
    let dst_slash = dst.as_os_str().as_bytes().ends_with(b"/");
    match dst_root.stat(dst, true) {
        Some(st) if kind(&st) == SFlag::S_IFDIR => Ok(Plan {
            dir: dst.to_path_buf(),
            name: if src_is_dir && contents_only {
                None
            } else {
                Some(src_name.unwrap_or_else(|| OsString::from(".")))
            },
        }),
        Some(_) if src_is_dir => Err(Error::CopyRefused(format!(
            "cannot copy a directory to a file: {} in {}",
            dst.display(),
            dst_root.what
        ))),
        Some(_) if dst_slash => Err(Error::CopyRefused(format!(
            "{} in {} is not a directory",
            dst.display(),
            dst_root.what
        ))),
        _ if dst_slash && !src_is_dir => Err(no_directory(dst, dst_root)),
        found => {
            // A new name (or a file to replace): its parent must exist.
            let parent = dst
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("/"));
            let parent_ok = dst_root
                .stat(parent, true)
                .is_some_and(|st| kind(&st) == SFlag::S_IFDIR);
            let name = dst.file_name().map(OsStr::to_os_string);
            match (parent_ok, name) {
                (true, Some(name)) => Ok(Plan {
                    dir: parent.to_path_buf(),
                    name: Some(name),
                }),
                _ if found.is_some() => Err(Error::CopyRefused(format!(
                    "cannot copy onto {} in {}",
                    dst.display(),
                    dst_root.what
                ))),
                _ => Err(no_directory(parent, dst_root)),
            }
        }
    }
}

/// A destination directory that is not there, in docker's words: its
/// client's for the host, its daemon's for a container.
fn no_directory(dir: &Path, root: &Root) -> Error {
    if root.container {
        Error::PathNotFound(format!(
            "No such container:path: {}:{}",
            root.what.trim_start_matches("container "),
            dir.display()
        ))
    } else {
        Error::NoOutputDirectory(dir.to_path_buf())
    }
}

/// Copies `src` to `dst`. Returns what was copied, in entries.
pub fn copy(src: End<'_>, dst: End<'_>, opts: Options) -> Result<u64> {
    let owner = |root: &Root| -> Result<Option<(u32, u32)>> {
        if !root.container {
            return Ok(Some((
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            )));
        }
        match root.user.as_deref() {
            Some(user) if opts.archive => {
                let read = |p| saferoot::userdb::read_in_root(&root.fd, p).ok().flatten();
                let passwd = read("/etc/passwd").unwrap_or_default();
                let group = read("/etc/group").unwrap_or_default();
                let u = crate::spec::parse_user(user, &[], &passwd, &group)?;
                Ok(Some((u.uid, u.gid)))
            }
            _ => Ok(None),
        }
    };
    match (src, dst) {
        (End::Stream(_), End::Stream(_)) => Err(Error::CopyRefused(
            "copying between streams is not supported: one side must be a container".into(),
        )),
        (End::Path(_, _), End::Stream(Stream::Input(_)))
        | (End::Stream(Stream::Output(_)), End::Path(_, _)) => Err(Error::CopyRefused(
            "a tar stream is read as a source and written as a destination".into(),
        )),
        (End::Path(root, path), End::Stream(Stream::Output(out))) => {
            let top = open_source(root, &path, opts.follow_link)?;
            let name = if path.as_os_str().as_bytes().ends_with(b"/.") {
                None
            } else {
                Some(top_name(&path))
            };
            let mut out = std::io::BufWriter::with_capacity(128 * 1024, out);
            let n = write_tar(top, name.as_deref(), None, root.id_map, &mut out)?;
            out.flush().ctx(|| "write to stdout".into())?;
            Ok(n)
        }
        (End::Stream(Stream::Input(input)), End::Path(root, path)) => {
            let dir = root
                .resolve(&path, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .map_err(|_| no_directory(&path, root))?;
            let ex = berth_image::layer::ExtractOptions {
                owner: owner(root)?,
                id_shift: root.id_map.map(|m| (m.uid, m.gid, m.size)),
            };
            crate::userns::as_container_root(root.id_map.as_ref(), || {
                berth_image::layer::extract(input, dir, ex)
            })?
            .map_err(|e| Error::CopyFailed(e.to_string()))
        }
        (End::Path(sroot, spath), End::Path(droot, dpath)) => {
            let top = open_source(sroot, &spath, opts.follow_link)?;
            let st = nix::sys::stat::fstat(top.as_raw_fd()).ctx(|| "stat the source".into())?;
            let plan = plan(&spath, kind(&st) == SFlag::S_IFDIR, droot, &dpath)?;
            let dir = droot
                .resolve(&plan.dir, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .ctx(|| format!("open {} in {}", plan.dir.display(), droot.what))?;
            let ex = berth_image::layer::ExtractOptions {
                owner: owner(droot)?,
                id_shift: droot.id_map.map(|m| (m.uid, m.gid, m.size)),
            };
            // One thread writes the tar into a pipe, we extract from it.
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
            let name = plan.name.clone();
            let unshift = sroot.id_map;
            let writer = std::thread::spawn(move || {
                let mut w = std::io::BufWriter::with_capacity(128 * 1024, std::fs::File::from(w));
                write_tar(top, name.as_deref(), None, unshift, &mut w).and_then(|n| {
                    w.flush().ctx(|| "write the copy".into())?;
                    Ok(n)
                })
            });
            let extracted = crate::userns::as_container_root(droot.id_map.as_ref(), || {
                berth_image::layer::extract(std::fs::File::from(r), dir, ex)
            })?;
            let written = writer
                .join()
                .map_err(|_| Error::CopyFailed("the copy's writer failed".into()))?;
            let n = written?;
            extracted.map_err(|e| Error::CopyFailed(e.to_string()))?;
            Ok(n)
        }
    }
}

/// The directory `path` of `root`, its content at the top of a tar stream
/// written to `out` (`export`), without what is mounted below it (a
/// running container's /proc, /sys, /dev, volumes, binds): the container's
/// own filesystem, as docker exports it.
pub fn archive(root: &Root, path: &Path, out: impl Write) -> Result<u64> {
    let top = open_source(root, path, true)?;
    let mnt = saferoot::mount_id(&top).ok();
    let mut out = std::io::BufWriter::with_capacity(128 * 1024, out);
    let n = write_tar(top, None, mnt, root.id_map, &mut out)?;
    out.flush().ctx(|| "write the archive".into())?;
    Ok(n)
}

/// The source's name in the archive: its last component (`/` is `.`).
fn top_name(p: &Path) -> OsString {
    p.file_name()
        .map(OsStr::to_os_string)
        .unwrap_or_else(|| OsString::from("."))
}

fn open_source(root: &Root, path: &Path, follow: bool) -> Result<OwnedFd> {
    let mut flags = OFlag::O_PATH;
    if !follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    // `dir/.` and `dir/` name the directory itself.
    root.resolve(path, flags).map_err(|e| match e {
        // Docker's words: "No such container:path: NAME:/p".
        nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR if root.container => {
            Error::PathNotFound(format!(
                "No such container:path: {}:{}",
                root.what.trim_start_matches("container "),
                path.display()
            ))
        }
        nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => Error::PathNotFound(format!(
            "Could not find the file {} in {}",
            path.display(),
            root.what
        )),
        e => Error::Sys {
            context: format!("open {} in {}", path.display(), root.what),
            source: e,
        },
    })
}

/// Writes the tree at `top` (an O_PATH descriptor, not followed) as a tar
/// stream named `name` (None: the directory's entries at the top), in
/// Docker's archive form (berth_image::tree_tar). `same_mount`: entries on
/// another mount are left out (a directory that is a mount point is kept,
/// empty). `unshift`: read through a container's idmapped mounts, owners
/// are written as the container sees them.
fn write_tar(
    top: OwnedFd,
    name: Option<&OsStr>,
    same_mount: Option<u64>,
    unshift: Option<crate::userns::IdMap>,
    out: &mut impl Write,
) -> Result<u64> {
    if name.is_none() {
        let st = nix::sys::stat::fstat(top.as_raw_fd()).ctx(|| "stat the source".into())?;
        if kind(&st) != SFlag::S_IFDIR {
            return Err(Error::CopyRefused(
                "the source is not a directory: `/.` copies a directory's content".into(),
            ));
        }
    }
    let mut opts = tree_tar::Options::new(tree_tar::Form::Archive);
    opts.top_name = name.map(Path::new);
    opts.same_mount = same_mount;
    opts.unshift = unshift.map(|m| tree_tar::Unshift {
        uid: m.uid,
        gid: m.gid,
        size: m.size,
    });
    Ok(tree_tar::write(&top, &opts, out)?.entries)
}

/// A `cp` argument: `CONTAINER:PATH`, `-`, or a host path (a colon in a
/// host path needs a `/` or `./` before it, as with docker).
#[derive(Debug, PartialEq, Eq)]
pub enum Arg {
    Container(String, PathBuf),
    Stream,
    Host(PathBuf),
}

impl Arg {
    pub fn parse(s: &str) -> Arg {
        if s == "-" {
            return Arg::Stream;
        }
        if s.starts_with('/') || s.starts_with('.') {
            return Arg::Host(PathBuf::from(s));
        }
        match s.split_once(':') {
            Some((c, p)) if !c.is_empty() => {
                let p = if p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("/{p}")
                };
                Arg::Container(c.to_string(), PathBuf::from(p))
            }
            _ => Arg::Host(PathBuf::from(s)),
        }
    }
}

/// Keeps a pathname's trailing `/` and `/.` through `Path` (which drops
/// them), as docker's rules need them.
pub fn absolute_host(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().ctx(|| "the current directory".into())?;
    let mut s = cwd.into_os_string();
    s.push("/");
    s.push(p.as_os_str());
    Ok(PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_like_docker() {
        assert_eq!(
            Arg::parse("web:/etc/hosts"),
            Arg::Container("web".into(), "/etc/hosts".into())
        );
        assert_eq!(
            Arg::parse("web:tmp"),
            Arg::Container("web".into(), "/tmp".into())
        );
        assert_eq!(Arg::parse("-"), Arg::Stream);
        assert_eq!(Arg::parse("./a:b"), Arg::Host("./a:b".into()));
        assert_eq!(Arg::parse("/a:b"), Arg::Host("/a:b".into()));
        assert_eq!(Arg::parse("file"), Arg::Host("file".into()));
    }
}
