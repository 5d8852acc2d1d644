//! A directory tree as a tar stream: berth's one walker, for the two
//! forms it writes.
//!
//! - [`Form::Layer`]: a container's overlay upper directory as an image
//!   layer (`commit`, build steps): overlay's whiteouts become `.wh.<name>`
//!   entries and opaque directories a `.wh..wh..opq` entry, every xattr
//!   but overlay's own is carried, and the tree must hold still (stopped or
//!   paused): a change while it is read is an error, since the layer would
//!   not be what was listed.
//! - [`Form::Archive`]: a tree as Docker's archives carry it (`cp`,
//!   `export`, a build's `--output`): directories named `dir/`, the one
//!   xattr Docker keeps (a file capability), optionally only what is on the
//!   top's own mount, and a tree that may change meanwhile (a running
//!   container): what went away is left out, a file whose size changed is
//!   cut or padded to what its header said.
//!
//! Both: entries sorted by name, so the same tree gives the same bytes;
//! numeric owners, whole-second times; a second name of an inode as a hard
//! link to the first; sockets left out (tar has no type for them); every
//! path opened below the top with `openat2(RESOLVE_IN_ROOT)` and no
//! symlink followed.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::c_char;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};

use crate::snapshot::SnapshotError;

/// overlayfs' mark of an opaque directory: `trusted.overlay.opaque` as the
/// host's root mounts it, `user.overlay.opaque` in a user namespace
/// (rootless: overlayfs' `userxattr`, since `trusted.*` is the initial
/// namespace's alone). One store is always used one way: a user's own.
pub(crate) fn opaque_xattr() -> &'static std::ffi::CStr {
    if saferoot::idmap::in_unprivileged_user_namespace() {
        c"user.overlay.opaque"
    } else {
        c"trusted.overlay.opaque"
    }
}

/// The prefix of every xattr overlayfs keeps for itself (see [`opaque_xattr`]).
fn overlay_xattr_prefix() -> &'static [u8] {
    if saferoot::idmap::in_unprivileged_user_namespace() {
        b"user.overlay."
    } else {
        b"trusted.overlay."
    }
}
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The one xattr Docker's archives carry: a file capability (`ping`'s
/// cap_net_raw) is part of what the file does.
const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// Which of the two forms to write (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Layer,
    Archive,
}

/// What to write of the tree.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    pub form: Form,
    /// The name the top goes by in the stream (`cp c:/etc -`: `etc/`,
    /// `etc/hosts`...); `None` writes the top's entries at the top (a
    /// layer, `export`, `cp c:/etc/. -`), and then the top must be a
    /// directory.
    pub top_name: Option<&'a Path>,
    /// Only what is on this mount (a mount id, saferoot::mount_id): a
    /// directory on another mount is written empty, anything else on one
    /// is left out (a running container's /proc, volumes, bind-mounted
    /// files).
    pub same_mount: Option<u64>,
    /// Entries left out, by their path below the top (`etc/hosts`).
    pub skip: &'a [&'a Path],
    /// Times later than this (unix seconds) written as it: reproducible
    /// builds (`SOURCE_DATE_EPOCH`).
    pub clamp_mtime: Option<i64>,
    /// Owners as a container with its own user namespace sees them: the
    /// tree is read through its idmapped mounts, which show host ids.
    pub unshift: Option<Unshift>,
}

/// A user namespace's mapping read backwards: host id `uid + k` (`gid +
/// k`) is the container's `k`, for `k` below `size`; any other id is the
/// overflow id, 65534, as the kernel shows an unmapped one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unshift {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl Unshift {
    fn apply(&self, meta: &mut Meta) {
        let inside = |id: u32, base: u32| {
            id.checked_sub(base)
                .filter(|k| *k < self.size)
                .unwrap_or(65_534)
        };
        meta.uid = inside(meta.uid, self.uid);
        meta.gid = inside(meta.gid, self.gid);
    }
}

impl Options<'_> {
    /// A form's defaults: the top's entries at the top, everything kept.
    pub fn new(form: Form) -> Options<'static> {
        Options {
            form,
            top_name: None,
            same_mount: None,
            skip: &[],
            clamp_mtime: None,
            unshift: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tar entries, whiteouts and opaque markers included (pax and
    /// long-name headers not).
    pub entries: u64,
    /// Deleted files (`.wh.<name>` entries).
    pub whiteouts: u64,
    /// Directories whose lower content is hidden (`.wh..wh..opq` entries).
    pub opaque_dirs: u64,
    /// Hard link entries (a second name of an inode already written).
    pub hard_links: u64,
    /// Sockets left out.
    pub sockets_skipped: u64,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let context = context.into();
    move |source| SnapshotError::Io { context, source }
}

/// Writes the tree at `top` (a descriptor of it, O_PATH will do; not
/// followed if it is a symlink) to `out` as a tar stream in `opts`' form.
/// The tar's end-of-archive blocks are written; `out` is not flushed.
pub fn write(top: &OwnedFd, opts: &Options<'_>, out: impl Write) -> Result<Stats, SnapshotError> {
    let mut stats = Stats::default();
    let st = nix::sys::stat::fstat(top.as_raw_fd())
        .map_err(|e| io_err("stat the top of the tree")(e.into()))?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let mut items = Vec::new();
    if let Some(name) = opts.top_name {
        match top_item(top, &st, name, opts.form)? {
            Some(item) => items.push(item),
            None => stats.sockets_skipped += 1,
        }
    } else if !is_dir {
        return Err(SnapshotError::Path {
            path: PathBuf::from("."),
            reason: "not a directory: only a directory's entries can stand at the top".into(),
        });
    }
    if is_dir {
        let mut below = walk(top, opts, &mut stats)?;
        if let Some(name) = opts.top_name {
            for i in &mut below {
                i.name = name.join(&i.path);
            }
        }
        items.extend(below);
    }
    items.retain(|i| !opts.skip.contains(&i.path.as_path()));
    if let Some(c) = opts.clamp_mtime {
        for i in &mut items {
            i.meta.mtime = i.meta.mtime.min(c);
        }
    }
    if let Some(u) = &opts.unshift {
        for i in &mut items {
            u.apply(&mut i.meta);
        }
    }
    items.sort_by(|a, b| {
        a.name
            .as_os_str()
            .as_bytes()
            .cmp(b.name.as_os_str().as_bytes())
    });
    let mut tar = tar::Builder::new(out);
    // The first name written of each inode with more than one.
    let mut written: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for item in &items {
        write_item(&mut tar, top, item, opts.form, &mut written, &mut stats)?;
    }
    tar.into_inner().map_err(io_err("write the tar"))?;
    Ok(stats)
}

/// The top itself as an entry named `name` (`cp c:/etc/hosts -`); `None`
/// for a socket.
fn top_item(
    top: &OwnedFd,
    st: &libc::stat,
    name: &Path,
    form: Form,
) -> Result<Option<Item>, SnapshotError> {
    let path = CString::new(saferoot::fd_path(top)).map_err(|_| SnapshotError::Path {
        path: name.to_path_buf(),
        reason: "contains a NUL byte".into(),
    })?;
    let kind = match kind_of(st, || {
        nix::fcntl::readlinkat(Some(top.as_raw_fd()), "")
            .map_err(|e| io_err(format!("readlink {}", name.display()))(e.into()))
    })? {
        Some(k) => k,
        None => return Ok(None),
    };
    let xattrs = match kind {
        // The magic link of an O_PATH descriptor of a symlink leads
        // nowhere to ask.
        Kind::Symlink(_) => Vec::new(),
        // Through the descriptor's magic link, followed: the top itself.
        _ => carried(
            xattrs(&path, true).map_err(io_err(format!("xattrs of {}", name.display())))?,
            form,
        ),
    };
    Ok(Some(Item {
        path: PathBuf::new(),
        name: name.to_path_buf(),
        kind,
        meta: Meta::of(st),
        xattrs,
        top: true,
    }))
}

/// An entry's kind by its mode; `None` for a socket.
fn kind_of(
    st: &libc::stat,
    link: impl FnOnce() -> Result<OsString, SnapshotError>,
) -> Result<Option<Kind>, SnapshotError> {
    Ok(Some(match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        libc::S_IFLNK => Kind::Symlink(PathBuf::from(link()?)),
        libc::S_IFCHR => Kind::Special(tar::EntryType::Char),
        libc::S_IFBLK => Kind::Special(tar::EntryType::Block),
        libc::S_IFIFO => Kind::Special(tar::EntryType::Fifo),
        _ => return Ok(None),
    }))
}

/// The xattrs `form` carries of those an entry has.
fn carried(all: Vec<(Vec<u8>, Vec<u8>)>, form: Form) -> Vec<(Vec<u8>, Vec<u8>)> {
    all.into_iter()
        .filter(|(k, _)| match form {
            Form::Layer => !k.starts_with(overlay_xattr_prefix()),
            Form::Archive => k == CAPABILITY_XATTR,
        })
        .collect()
}

/// Ownership, mode, times and identity of an entry, as `lstat` saw it.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    dev: u64,
    ino: u64,
    nlink: u64,
    rdev: u64,
}

impl Meta {
    fn of(st: &libc::stat) -> Meta {
        Meta {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            dev: st.st_dev,
            ino: st.st_ino,
            #[allow(clippy::useless_conversion)] // nlink_t is 32 bits on some targets
            nlink: u64::from(st.st_nlink),
            rdev: st.st_rdev,
        }
    }
}

#[derive(Debug)]
enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
    /// Character or block device, or fifo.
    Special(tar::EntryType),
    /// An overlay whiteout, written as `.wh.<name>`.
    Whiteout,
    /// The `.wh..wh..opq` marker of an opaque directory.
    Opaque,
}

#[derive(Debug)]
struct Item {
    /// Below the top (empty for the top itself): where it is opened.
    path: PathBuf,
    /// Its name in the tar ([`Options::top_name`] joined with `path`).
    name: PathBuf,
    /// The top itself, named by [`Options::top_name`].
    top: bool,
    kind: Kind,
    meta: Meta,
    /// Sorted by name; those the form carries only.
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Item {
    fn new(path: PathBuf, kind: Kind, meta: Meta, xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Item {
        Item {
            name: path.clone(),
            path,
            top: false,
            kind,
            meta,
            xattrs,
        }
    }
}

/// Every entry below `root`, never following a symlink.
fn walk(root: &OwnedFd, opts: &Options<'_>, stats: &mut Stats) -> Result<Vec<Item>, SnapshotError> {
    let layer = opts.form == Form::Layer;
    let mut items = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let dir = match saferoot::open_in_root(
            root,
            &rel,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        ) {
            Ok(d) => d,
            // Listed as a directory, now gone: an archive of a live tree
            // is of what is there.
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) if !layer => continue,
            // Listed as a directory, now something else.
            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                return Err(SnapshotError::Changed { path: rel.clone() })
            }
            Err(e) => return Err(io_err(format!("open {}", rel.display()))(e.into())),
        };
        let dir_path = saferoot::fd_path(&dir);
        let names: Vec<OsString> = fs::read_dir(&dir_path)
            .and_then(|it| it.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(io_err(format!("list {}", rel.display())))?;
        for name in names {
            let path = rel.join(&name);
            let st = match nix::sys::stat::fstatat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                // Deleted since the listing: the tar is of what is there.
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(io_err(format!("stat {}", path.display()))(e.into())),
            };
            let meta = Meta::of(&st);
            let fmt = st.st_mode & libc::S_IFMT;
            if layer && fmt == libc::S_IFCHR && st.st_rdev == 0 {
                let mut wh = WHITEOUT_PREFIX.to_vec();
                wh.extend(name.as_bytes());
                let path = rel.join(OsStr::from_bytes(&wh));
                items.push(Item::new(path, Kind::Whiteout, meta, Vec::new()));
                stats.whiteouts += 1;
                continue;
            }
            if layer && name.as_bytes().starts_with(WHITEOUT_PREFIX) {
                return Err(SnapshotError::ReservedName { path });
            }
            // What lives on another mount: a directory is kept, empty;
            // anything else is left out.
            let elsewhere = match opts.same_mount {
                Some(m) => nix::fcntl::openat(
                    Some(dir.as_raw_fd()),
                    name.as_os_str(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .ok()
                .map(|fd| {
                    // SAFETY: a fresh descriptor from openat, owned here.
                    let fd: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
                    saferoot::mount_id(&fd).ok() != Some(m)
                })
                // Gone since the listing.
                .unwrap_or(true),
                None => false,
            };
            if elsewhere && fmt != libc::S_IFDIR {
                continue;
            }
            let mut entry_path = dir_path.clone().into_bytes();
            entry_path.push(b'/');
            entry_path.extend(name.as_bytes());
            let entry_path = CString::new(entry_path).map_err(|_| SnapshotError::Path {
                path: path.clone(),
                reason: "contains a NUL byte".into(),
            })?;
            let all = match lxattrs(&entry_path) {
                Ok(x) => x,
                Err(e) if !layer && e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(io_err(format!("xattrs of {}", path.display()))(e)),
            };
            let opaque = layer
                && all
                    .iter()
                    .any(|(k, v)| k == opaque_xattr().to_bytes() && v.as_slice() == b"y");
            let xattrs = carried(all, opts.form);
            let link = || {
                nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_os_str())
                    .map_err(|e| io_err(format!("readlink {}", path.display()))(e.into()))
            };
            let kind = match kind_of(&st, link) {
                Ok(Some(k)) => k,
                Ok(None) => {
                    stats.sockets_skipped += 1;
                    continue;
                }
                // Gone (or no longer a link) since the listing.
                Err(_) if !layer => continue,
                Err(e) => return Err(e),
            };
            if matches!(kind, Kind::Dir) {
                if opaque {
                    let marker = path.join(OPAQUE_MARKER);
                    items.push(Item::new(marker, Kind::Opaque, meta, Vec::new()));
                    stats.opaque_dirs += 1;
                }
                if !elsewhere {
                    dirs.push(path.clone());
                }
            }
            items.push(Item::new(path, kind, meta, xattrs));
        }
    }
    Ok(items)
}

/// The extended attributes of `path` itself (never what a symlink points
/// to), sorted by name.
pub(crate) fn lxattrs(path: &CStr) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    xattrs(path, false)
}

/// The extended attributes of `path`, sorted by name; with `follow`, of
/// what a symlink (a /proc/self/fd magic link) points to.
fn xattrs(path: &CStr, follow: bool) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = xattr_buf(|buf, len| {
        // SAFETY: NUL-terminated path; buffer pointer and its length (null
        // and 0 to ask for the size).
        unsafe {
            if follow {
                libc::listxattr(path.as_ptr(), buf, len)
            } else {
                libc::llistxattr(path.as_ptr(), buf, len)
            }
        }
    });
    let names = match names {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let value = xattr_buf(|buf, len| {
            // SAFETY: NUL-terminated path and name; buffer pointer and length.
            unsafe {
                if follow {
                    libc::getxattr(path.as_ptr(), cname.as_ptr(), buf.cast(), len)
                } else {
                    libc::lgetxattr(path.as_ptr(), cname.as_ptr(), buf.cast(), len)
                }
            }
        });
        match value {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed since the listing.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Runs a size-then-fill xattr call until the buffer is big enough (the
/// value may grow between the two calls).
fn xattr_buf(mut call: impl FnMut(*mut c_char, usize) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let size = call(std::ptr::null_mut(), 0);
        let size = usize::try_from(size).map_err(|_| io::Error::last_os_error())?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        let n = call(buf.as_mut_ptr().cast(), buf.len());
        match usize::try_from(n) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ERANGE) {
                    return Err(e);
                }
            }
        }
    }
}

/// A header with `meta`'s owner, mode and time.
fn header(meta: &Meta, kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(u64::from(meta.uid));
    h.set_gid(u64::from(meta.gid));
    h.set_mtime(u64::try_from(meta.mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// One pax record, `<len> <key>=<value>\n`, where `len` counts the whole
/// record, its own digits included.
pub(crate) fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // space, '=', newline
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend(key);
    r.push(b'=');
    r.extend(value);
    r.push(b'\n');
    r
}

fn write_item<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &OwnedFd,
    item: &Item,
    form: Form,
    written: &mut HashMap<(u64, u64), PathBuf>,
    stats: &mut Stats,
) -> Result<(), SnapshotError> {
    let werr = || io_err(format!("write {}", item.name.display()));
    let meta = &item.meta;
    let perm = meta.mode & 0o7777;
    let name = &item.name;
    match &item.kind {
        Kind::Whiteout => {
            stats.entries += 1;
            let mut h = header(meta, tar::EntryType::Regular, 0o600);
            return tar.append_data(&mut h, name, io::empty()).map_err(werr());
        }
        Kind::Opaque => {
            stats.entries += 1;
            let mut h = header(meta, tar::EntryType::Regular, perm & 0o777);
            return tar.append_data(&mut h, name, io::empty()).map_err(werr());
        }
        Kind::Dir => {}
        _ if meta.nlink > 1 => {
            let key = (meta.dev, meta.ino);
            if let Some(first) = written.get(&key) {
                stats.entries += 1;
                stats.hard_links += 1;
                let mut h = header(meta, tar::EntryType::Link, perm);
                return tar.append_link(&mut h, name, first).map_err(werr());
            }
        }
        _ => {}
    }
    // A file is opened before anything of it is written: in an archive of
    // a live tree, one that went away is left out whole.
    let file = match &item.kind {
        Kind::File => match open_file(root, item, form)? {
            Some(f) => Some(f),
            None => return Ok(()),
        },
        _ => None,
    };
    if meta.nlink > 1 && !matches!(item.kind, Kind::Dir) {
        written.insert((meta.dev, meta.ino), name.clone());
    }
    stats.entries += 1;
    if !item.xattrs.is_empty() {
        let mut records = Vec::new();
        for (k, v) in &item.xattrs {
            if k.contains(&b'=') {
                return Err(SnapshotError::Path {
                    path: item.name.clone(),
                    reason: format!(
                        "xattr {:?} has '=' in its name, which pax cannot carry",
                        String::from_utf8_lossy(k)
                    ),
                });
            }
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend(k);
            records.extend(pax_record(&key, v));
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(records.len() as u64);
        h.set_path("PaxHeader").map_err(werr())?;
        h.set_cksum();
        tar.append(&h, records.as_slice()).map_err(werr())?;
    }
    match &item.kind {
        Kind::Dir => {
            let mut h = header(meta, tar::EntryType::Directory, perm);
            // Docker's archives (and GNU tar's) name a directory `dir/`;
            // layers keep the form berth has always written them in, so
            // the same changes keep their diff_id.
            let dir_name = match form {
                Form::Archive => name.join(""),
                Form::Layer => name.clone(),
            };
            tar.append_data(&mut h, dir_name, io::empty())
                .map_err(werr())
        }
        Kind::Symlink(target) => {
            let mut h = header(meta, tar::EntryType::Symlink, perm);
            tar.append_link(&mut h, name, target).map_err(werr())
        }
        Kind::Special(kind) => {
            let mut h = header(meta, *kind, perm);
            if *kind != tar::EntryType::Fifo {
                h.set_device_major(libc::major(meta.rdev)).map_err(werr())?;
                h.set_device_minor(libc::minor(meta.rdev)).map_err(werr())?;
            }
            tar.append_data(&mut h, name, io::empty()).map_err(werr())
        }
        Kind::File => {
            let Some((file, size)) = file else {
                return Ok(());
            };
            let mut h = header(meta, tar::EntryType::Regular, perm);
            h.set_size(size);
            let appended = match form {
                Form::Layer => tar.append_data(
                    &mut h,
                    name,
                    Exact {
                        inner: file.take(size),
                        left: size,
                    },
                ),
                // A file that shrinks while read is padded, one that grows
                // is cut: the header's size holds.
                Form::Archive => tar.append_data(
                    &mut h,
                    name,
                    file.take(size).chain(io::repeat(0)).take(size),
                ),
            };
            appended.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    SnapshotError::Changed {
                        path: item.name.clone(),
                    }
                } else {
                    werr()(e)
                }
            })
        }
        Kind::Whiteout | Kind::Opaque => Ok(()),
    }
}

/// The file of `item`, opened for reading, and its size now; `None` when
/// an archive's file went away or is no longer a file. A layer's must be
/// the inode that was listed.
fn open_file(
    root: &OwnedFd,
    item: &Item,
    form: Form,
) -> Result<Option<(fs::File, u64)>, SnapshotError> {
    use std::os::unix::fs::MetadataExt;
    let werr = || io_err(format!("open {}", item.name.display()));
    let opened = if item.top {
        // The top itself: reopened through its descriptor, the same inode.
        fs::File::open(saferoot::fd_path(root))
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    } else {
        // O_NONBLOCK: were the file swapped for a fifo, opening it must
        // not wait for a writer.
        saferoot::open_in_root(
            root,
            &item.path,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        )
        .map(fs::File::from)
    };
    let file = match (opened, form) {
        (Ok(f), _) => f,
        (Err(Errno::ENOENT | Errno::ELOOP | Errno::ENXIO), Form::Archive) => return Ok(None),
        (Err(Errno::ENOENT | Errno::ELOOP), Form::Layer) => {
            return Err(SnapshotError::Changed {
                path: item.name.clone(),
            })
        }
        (Err(e), _) => return Err(werr()(e.into())),
    };
    let now = file.metadata().map_err(werr())?;
    let same = now.is_file() && now.ino() == item.meta.ino && now.dev() == item.meta.dev;
    match form {
        Form::Layer if !same => Err(SnapshotError::Changed {
            path: item.name.clone(),
        }),
        Form::Archive if !now.is_file() => Ok(None),
        _ => Ok(Some((file, now.size()))),
    }
}

/// Exactly `left` bytes or an error: the header already promised the size,
/// and a file that shrank meanwhile would otherwise shift every entry after
/// it.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while read",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    /// A file capability (cap_net_raw, effective): VFS_CAP_REVISION_2 data.
    const CAP: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    fn set_xattr(p: &Path, name: &str, value: &[u8]) {
        let p = CString::new(p.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        // SAFETY: NUL-terminated path and name; value pointer and length.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "setxattr {name}: {}", io::Error::last_os_error());
    }

    fn o_path(p: &Path) -> OwnedFd {
        let fd = nix::fcntl::open(
            p,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        // SAFETY: a fresh descriptor from open.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// Each entry's name and the xattrs its pax header carries.
    fn entries(tar: &[u8]) -> Vec<(String, Vec<String>)> {
        let mut a = tar::Archive::new(tar);
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let keys = match e.pax_extensions().unwrap() {
                Some(x) => x.map(|x| x.unwrap().key().unwrap().to_string()).collect(),
                None => Vec::new(),
            };
            out.push((e.path().unwrap().to_string_lossy().into_owned(), keys));
        }
        out
    }

    /// An archive names directories `dir/`, sorts its entries, carries a
    /// file's capability (the top's too, read through its descriptor) and
    /// no other xattr; a layer carries every xattr but overlay's.
    #[test]
    fn archives_carry_only_the_capability_and_layers_every_xattr() {
        if !berth_testkit::root_or_skip("archives_carry_only_the_capability_and_layers_every_xattr")
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/f"), b"data").unwrap();
        std::fs::write(d.join("ping"), b"x").unwrap();
        set_xattr(&d.join("ping"), "security.capability", &CAP);
        set_xattr(&d.join("sub/f"), "user.note", b"kept in layers");

        let mut opts = Options::new(Form::Archive);
        opts.top_name = Some(Path::new("d"));
        let mut out = Vec::new();
        write(&o_path(&d), &opts, &mut out).unwrap();
        let cap = vec!["SCHILY.xattr.security.capability".to_string()];
        assert_eq!(
            entries(&out),
            [
                ("d/".to_string(), vec![]),
                ("d/ping".to_string(), cap.clone()),
                ("d/sub/".to_string(), vec![]),
                ("d/sub/f".to_string(), vec![]),
            ]
        );

        // The top alone: its capability read through its O_PATH descriptor.
        let mut opts = Options::new(Form::Archive);
        opts.top_name = Some(Path::new("ping"));
        let mut out = Vec::new();
        write(&o_path(&d.join("ping")), &opts, &mut out).unwrap();
        assert_eq!(entries(&out), [("ping".to_string(), cap.clone())]);

        let mut out = Vec::new();
        write(&o_path(&d), &Options::new(Form::Layer), &mut out).unwrap();
        let layer = entries(&out);
        assert!(
            layer.contains(&(
                "sub/f".to_string(),
                vec!["SCHILY.xattr.user.note".to_string()]
            )),
            "{layer:?}"
        );
        assert!(layer.contains(&("ping".to_string(), cap)), "{layer:?}");
    }

    /// Without a name for the top, only a directory can be written.
    #[test]
    fn a_file_needs_a_name_at_the_top() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let e = write(&o_path(&f), &Options::new(Form::Archive), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
