//! Unpacking a layer (a tar stream, plain, gzip or zstd) into a directory
//! that overlayfs can use as a lower layer.
//!
//! Layers are hostile input. Every entry's parent directory is resolved
//! inside the layer root (saferoot: `openat2(RESOLVE_IN_ROOT)`), names are
//! cleaned so `..` stops at the root, and the final component is created
//! with `*at` calls that never follow it (an existing entry is removed
//! first), so no symlink planted by an earlier entry, no absolute or `..`
//! name and no hard link can write outside the root. Whiteouts become
//! overlayfs whiteouts (`.wh.X`: a 0/0 character device `X`; `.wh..wh..opq`:
//! the `trusted.overlay.opaque` xattr), which overlayfs applies whatever the
//! order of the tar. The decompressed stream is hashed as it is read (the
//! diff_id) and bounded (decompression bombs). The unpack goes to a temp
//! directory renamed into place only when all of it succeeded.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::sparse::{self, MapSource, PaxSparse};
use crate::tar_guard::TarGuard;
use crate::tarsplit::Recorder;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer diff_id mismatch: expected {expected}, got {actual}")]
    DiffId { expected: Digest, actual: Digest },
    #[error("layer is larger than the limit of {limit} bytes uncompressed")]
    TooLarge { limit: u64 },
    #[error("layer entry {path:?}: {reason}")]
    Entry { path: String, reason: String },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LayerError {
    let context = context.into();
    move |source| LayerError::Io { context, source }
}

/// What `unpack` checks.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// The layer's diff_id (the digest of the uncompressed tar), if known.
    pub diff_id: Option<Digest>,
    /// Most uncompressed bytes accepted.
    pub max_bytes: u64,
    /// Record a tar-split (see [`crate::tarsplit`]) while unpacking.
    pub record_split: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            diff_id: None,
            max_bytes: 64 << 30,
            record_split: false,
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub diff_id: Digest,
    /// Uncompressed bytes read.
    pub size: u64,
    pub entries: u64,
    /// The tar-split record, when asked for and when the unpacked files
    /// can give the tar back: not when an entry replaced or removed
    /// something the layer itself had made (its content is gone).
    pub split: Option<Vec<u8>>,
}

/// Hashes and counts what passes through, and stops at the limit.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
    split: Option<Rc<RefCell<Recorder>>>,
    /// Set when the limit stopped the stream: the tar reader wraps (and
    /// sometimes rewords) the error it got, so the unpacker asks this
    /// flag rather than reading the error.
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.over.set(true);
            return Err(io::Error::other(LimitExceeded));
        }
        self.hasher.update(&buf[..n]);
        if let Some(s) = &self.split {
            s.borrow_mut().seen(&buf[..n]);
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct LimitExceeded;
impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("size limit exceeded")
    }
}
impl std::error::Error for LimitExceeded {}

/// Gzip's and zstd's magic numbers: the compressions [`decompress`] reads.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether a stream beginning with `head` is one [`decompress`] unpacks.
pub fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC) || head.starts_with(&ZSTD_MAGIC)
}

/// The decompressed stream of `input`, by its magic bytes.
pub fn decompress<'a>(input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, input);
    let head = buf.fill_buf()?.to_vec();
    Ok(if head.starts_with(&GZIP_MAGIC) {
        Box::new(flate2::read::MultiGzDecoder::new(buf))
    } else if head.starts_with(&ZSTD_MAGIC) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf)?)
    } else {
        Box::new(buf)
    })
}

/// Unpacks the layer `input` into `dest` (which must not exist).
pub fn unpack(input: impl Read, dest: &Path, opts: &UnpackOptions) -> Result<Unpacked, LayerError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!(
        ".{}.unpacking-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    crate::leftover::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
    match unpack_into(input, &tmp, opts) {
        Ok(u) => {
            fs::rename(&tmp, dest).map_err(io_err(format!(
                "rename {} to {}",
                tmp.display(),
                dest.display()
            )))?;
            Ok(u)
        }
        Err(e) => {
            crate::leftover::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// The diff_id, size and tar-split record of the plain tar `input` whose
/// files are already in place (written from them, as a build step's layer
/// is from its upper directory): the tar is read, nothing is written. The
/// directory the files are in can then become the layer as it is.
pub fn record(input: impl Read, max_bytes: u64) -> Result<Unpacked, LayerError> {
    let recorder = Rc::new(RefCell::new(
        Recorder::new().map_err(io_err("tar-split record"))?,
    ));
    let mut hashing = Hashing {
        inner: input,
        hasher: Sha256::new(),
        count: 0,
        limit: max_bytes,
        split: Some(recorder.clone()),
        over: Rc::new(Cell::new(false)),
    };
    let over = hashing.over.clone();
    let mut entries = 0u64;
    {
        let mut archive = tar::Archive::new(TarGuard::new(&mut hashing));
        let iter = archive
            .entries()
            .map_err(|e| map_read(e, max_bytes, &over))?;
        for entry in iter {
            let mut entry = entry.map_err(|e| map_read(e, max_bytes, &over))?;
            entries += 1;
            let raw = entry.path().map_err(io_err("entry name"))?.into_owned();
            let regular = matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            );
            if regular {
                recorder.borrow_mut().begin_file();
            }
            let copied =
                io::copy(&mut entry, &mut io::sink()).map_err(|e| map_read(e, max_bytes, &over))?;
            if regular {
                recorder.borrow_mut().end_file(&clean(&raw), copied);
            }
        }
        io::copy(&mut archive.into_inner().into_inner(), &mut io::sink())
            .map_err(|e| map_read(e, max_bytes, &over))?;
    }
    let diff_id = Digest::from_hasher(hashing.hasher);
    let size = hashing.count;
    drop(hashing.split);
    let split = Rc::try_unwrap(recorder)
        .map_err(|_| LayerError::Io {
            context: "tar-split record".into(),
            source: io::Error::other("still shared"),
        })?
        .into_inner()
        .finish()
        .map_err(io_err("tar-split record"))?;
    Ok(Unpacked {
        diff_id,
        size,
        entries,
        split: Some(split),
    })
}

fn unpack_into(
    input: impl Read,
    root_path: &Path,
    opts: &UnpackOptions,
) -> Result<Unpacked, LayerError> {
    let stream = decompress(input).map_err(io_err("read layer"))?;
    let recorder = if opts.record_split {
        Some(Rc::new(RefCell::new(
            Recorder::new().map_err(io_err("tar-split record"))?,
        )))
    } else {
        None
    };
    let mut hashing = Hashing {
        inner: stream,
        hasher: Sha256::new(),
        count: 0,
        limit: opts.max_bytes,
        split: recorder.clone(),
        over: Rc::new(Cell::new(false)),
    };
    let over = hashing.over.clone();
    let mut ctx = Ctx {
        root: open_dir(root_path)?,
        split: recorder,
        clobbered: false,
        parent: None,
        removals: 0,
        buf: vec![0u8; 256 * 1024],
        whiteouts: true,
        owner: None,
        id_shift: None,
        sparse_limit: opts.max_bytes,
    };
    let mut dirs: Vec<(PathBuf, Attrs)> = Vec::new();
    let mut entries = 0u64;
    {
        let mut archive = tar::Archive::new(TarGuard::new(&mut hashing));
        let iter = archive
            .entries()
            .map_err(|e| map_read(e, opts.max_bytes, &over))?;
        for entry in iter {
            let mut entry = entry.map_err(|e| map_read(e, opts.max_bytes, &over))?;
            entries += 1;
            if let Some(d) =
                apply(&mut ctx, &mut entry).map_err(|e| map_layer(e, opts.max_bytes, &over))?
            {
                dirs.push(d);
            }
        }
        // The end-of-archive blocks and padding count for the diff_id.
        io::copy(&mut archive.into_inner().into_inner(), &mut io::sink())
            .map_err(|e| map_read(e, opts.max_bytes, &over))?;
    }
    set_dir_attrs(&ctx, &dirs)?;
    let diff_id = Digest::from_hasher(hashing.hasher);
    if let Some(expected) = &opts.diff_id {
        if *expected != diff_id {
            return Err(LayerError::DiffId {
                expected: expected.clone(),
                actual: diff_id,
            });
        }
    }
    drop(hashing.split);
    let split = match ctx.split.take().map(Rc::try_unwrap) {
        Some(Ok(rec)) if !ctx.clobbered => Some(
            rec.into_inner()
                .finish()
                .map_err(io_err("tar-split record"))?,
        ),
        _ => None,
    };
    Ok(Unpacked {
        diff_id,
        size: hashing.count,
        entries,
        split,
    })
}

/// Owner of what [`extract`] creates.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Every entry owned by this uid:gid instead of the archive's.
    pub owner: Option<(u32, u32)>,
    /// Into a container with a user namespace of its own, through its
    /// idmapped mounts: (host uid, host gid, count) of its ids; an owner
    /// `k` is written as the host's `uid + k` (which the mount stores as
    /// `k`). An owner past the count cannot be represented there.
    pub id_shift: Option<(u32, u32, u32)>,
}

/// Extracts a plain tar stream (`cp`'s, not a layer: `.wh.` names are
/// ordinary) into the existing directory `dir`. Every path is resolved
/// inside `dir`, so neither `..` nor a symlink in the archive or already in
/// the directory leads out of it; directories already there are merged
/// into, anything else in the way is replaced. Returns the entry count.
pub fn extract(input: impl Read, dir: OwnedFd, opts: ExtractOptions) -> Result<u64, LayerError> {
    let mut ctx = Ctx {
        root: dir,
        split: None,
        clobbered: false,
        parent: None,
        removals: 0,
        buf: vec![0u8; 128 * 1024],
        whiteouts: false,
        owner: opts.owner,
        id_shift: opts.id_shift,
        sparse_limit: UnpackOptions::default().max_bytes,
    };
    let mut dirs: Vec<(PathBuf, Attrs)> = Vec::new();
    let mut entries = 0u64;
    let mut archive = tar::Archive::new(TarGuard::new(input));
    for entry in archive.entries().map_err(io_err("read archive"))? {
        let mut entry = entry.map_err(io_err("read archive"))?;
        entries += 1;
        if let Some(d) = apply(&mut ctx, &mut entry)? {
            dirs.push(d);
        }
    }
    set_dir_attrs(&ctx, &dirs)?;
    Ok(entries)
}

/// Directory attributes last, deepest first: creating entries inside a
/// directory changes its mtime.
fn set_dir_attrs(ctx: &Ctx, dirs: &[(PathBuf, Attrs)]) -> Result<(), LayerError> {
    for (path, attrs) in dirs.iter().rev() {
        let fd = saferoot::open_in_root(
            &ctx.root,
            path,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY,
        )
        .map_err(|e| entry_err(path, e))?;
        set_attrs(&fd, None, attrs, false).map_err(|e| entry_err(path, e))?;
    }
    Ok(())
}

fn map_read(e: io::Error, limit: u64, over: &Cell<bool>) -> LayerError {
    if over.get() {
        return LayerError::TooLarge { limit };
    }
    LayerError::Io {
        context: "read layer".into(),
        source: e,
    }
}

/// The limit can strike inside an entry's content copy too, whatever
/// error the entry's step made of it.
fn map_layer(e: LayerError, limit: u64, over: &Cell<bool>) -> LayerError {
    match e {
        LayerError::Io { .. } | LayerError::Entry { .. } if over.get() => {
            LayerError::TooLarge { limit }
        }
        other => other,
    }
}

fn entry_err(path: &Path, e: impl std::fmt::Display) -> LayerError {
    LayerError::Entry {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn open_dir(p: &Path) -> Result<OwnedFd, LayerError> {
    let fd = nix::fcntl::open(
        p,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Io {
        context: format!("open {}", p.display()),
        source: e.into(),
    })?;
    // SAFETY: a fresh descriptor from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A name as the layer's root sees it: `/`, `.` and `..` at the top are
/// dropped, so the result never leaves the root.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Ownership, mode, times and xattrs of an entry.
#[derive(Debug, Clone)]
struct Attrs {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn attrs_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Attrs> {
    let h = entry.header();
    // Empty numeric fields (some writers leave them blank) read as 0.
    let (uid, gid, mode, mtime) = (
        h.uid().unwrap_or(0),
        h.gid().unwrap_or(0),
        h.mode()?,
        h.mtime().unwrap_or(0),
    );
    let mut xattrs = Vec::new();
    if let Some(ext) = entry.pax_extensions()? {
        for e in ext.flatten() {
            if let Some(name) = e.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), e.value_bytes().to_vec()));
            }
        }
    }
    Ok(Attrs {
        uid: u32::try_from(uid).unwrap_or(0),
        gid: u32::try_from(gid).unwrap_or(0),
        mode: mode & 0o7777,
        mtime: i64::try_from(mtime).unwrap_or(0),
        xattrs,
    })
}

/// `name` as one directory entry's name: not empty, not `.` or `..`, no
/// `/` and no NUL. Every name an entry makes or removes passes here, so no
/// name can reach the directory itself, its parent, or a deeper path.
fn entry_name(name: &[u8]) -> Result<CString, String> {
    let shown = String::from_utf8_lossy(name);
    match name {
        b"" => Err("an empty name".into()),
        b"." | b".." => Err(format!("{shown:?} names a directory, not an entry")),
        _ if name.contains(&b'/') => Err(format!("{shown:?} has a '/'")),
        _ => CString::new(name).map_err(|_| format!("{shown:?} has a NUL byte")),
    }
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The state of one unpack.
struct Ctx {
    root: OwnedFd,
    split: Option<Rc<RefCell<Recorder>>>,
    /// An entry replaced or removed something: earlier content may be gone.
    clobbered: bool,
    /// The last parent directory resolved, by its cleaned path. Valid
    /// until something is removed: only a removal can change what an
    /// existing, fully resolved path resolves to. It was resolved inside
    /// the root like every other lookup.
    parent: Option<(PathBuf, OwnedFd)>,
    removals: u64,
    buf: Vec<u8>,
    /// `.wh.` names are whiteouts (a layer), or plain names (`cp`).
    whiteouts: bool,
    /// Every entry's owner instead of the archive's.
    owner: Option<(u32, u32)>,
    /// See [`ExtractOptions::id_shift`].
    id_shift: Option<(u32, u32, u32)>,
    /// Largest sparse file accepted (see `write_gnu_sparse`).
    sparse_limit: u64,
}

impl Ctx {
    /// The directory `path`, from the cache or resolved (and made).
    fn take_parent(&mut self, path: &Path) -> saferoot::Result<OwnedFd> {
        match self.parent.take() {
            Some((p, fd)) if p == path => Ok(fd),
            _ => saferoot::mkdir_all_in_root(&self.root, path),
        }
    }

    /// Removes whatever `name` is in `dir` (not a directory that
    /// `keep_dir` says to keep); true if a directory was kept.
    fn remove_existing(
        &mut self,
        dir: &OwnedFd,
        name: &CString,
        keep_dir: bool,
    ) -> io::Result<bool> {
        // Never `.`/`..`: removing "what is there" would take the directory
        // itself or its parent (callers check names; this is the last wall).
        if entry_name(name.as_bytes()).is_err() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let st = match nix::sys::stat::fstatat(
            Some(dir.as_raw_fd()),
            name.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir && keep_dir {
            return Ok(true);
        }
        self.clobbered = true;
        self.removals += 1;
        if is_dir {
            // A directory replaced by a non-directory: remove it with its
            // content, relative to this descriptor (never through a path).
            let p = PathBuf::from(saferoot::fd_path(dir)).join(OsStr::from_bytes(name.as_bytes()));
            fs::remove_dir_all(p)?;
        } else {
            // SAFETY: a live directory descriptor and a NUL-terminated name.
            Errno::result(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })?;
        }
        Ok(false)
    }

    /// Runs `create` (a `*at` call that fails with EEXIST rather than
    /// follow or replace); on EEXIST removes what is there and runs it
    /// again. Trying first saves a lookup per entry in the usual case.
    fn create_replacing(
        &mut self,
        dir: &OwnedFd,
        name: &CString,
        mut create: impl FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        match create() {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.remove_existing(dir, name, false)?;
                create()
            }
            other => other,
        }
    }
}

/// Applies one entry; returns a directory whose attributes are set at the
/// end.
fn apply<R: Read>(
    ctx: &mut Ctx,
    entry: &mut tar::Entry<'_, R>,
) -> Result<Option<(PathBuf, Attrs)>, LayerError> {
    // A global pax header describes the archive, not a file. Asking for
    // its records would read all of it into memory, whatever its size:
    // it is passed over (its bytes still count for the diff_id and stay
    // in the tar-split), as docker does.
    if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
        return Ok(None);
    }
    let header_name = entry.path().map_err(io_err("entry name"))?.into_owned();
    let sparse = pax_sparse(entry).map_err(|why| entry_err(&header_name, why))?;
    // A pax sparse entry's header name is a made-up GNUSparseFile.N/x.
    let raw = match sparse.as_ref().and_then(|s| s.name.as_deref()) {
        Some(n) => PathBuf::from(OsStr::from_bytes(n)),
        None => header_name,
    };
    let path = clean(&raw);
    let Some(name) = path.file_name().map(OsStr::to_os_string) else {
        if sparse.is_some() {
            return Err(entry_err(&raw, "a sparse file without a name"));
        }
        return Ok(None); // the root itself
    };
    let parent_path = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let parent = ctx
        .take_parent(&parent_path)
        .map_err(|e| entry_err(&raw, e))?;
    let removals = ctx.removals;
    let r = apply_in(ctx, entry, &raw, path, &name, &parent, sparse);
    if ctx.removals == removals {
        ctx.parent = Some((parent_path, parent));
    }
    r
}

fn apply_in<R: Read>(
    ctx: &mut Ctx,
    entry: &mut tar::Entry<'_, R>,
    raw: &Path,
    path: PathBuf,
    name: &OsStr,
    parent: &OwnedFd,
    sparse: Option<PaxSparse>,
) -> Result<Option<(PathBuf, Attrs)>, LayerError> {
    let mut attrs = attrs_of(entry).map_err(|e| entry_err(raw, e))?;
    if let Some((uid, gid)) = ctx.owner {
        (attrs.uid, attrs.gid) = (uid, gid);
    }
    if let Some((ub, gb, n)) = ctx.id_shift {
        if attrs.uid >= n || attrs.gid >= n {
            return Err(entry_err(
                raw,
                io::Error::other(format!(
                    "owner {}:{} is outside the container's {n} ids",
                    attrs.uid, attrs.gid
                )),
            ));
        }
        (attrs.uid, attrs.gid) = (ub + attrs.uid, gb + attrs.gid);
    }
    let err = |e: io::Error| entry_err(raw, e);
    let name_bytes = name.as_bytes();

    // Whiteouts, in overlayfs form. Only the exact opaque marker is one;
    // other `.wh..wh.` names are aufs' own bookkeeping (hard-link
    // directories, its metadata), which docker's unpacker skips too.
    if ctx.whiteouts && name_bytes.starts_with(b".wh..wh.") && name_bytes != b".wh..wh..opq" {
        return Ok(None);
    }
    if ctx.whiteouts && name_bytes == b".wh..wh..opq" {
        let p = CString::new(saferoot::fd_path(parent)).map_err(|_| entry_err(raw, "bad path"))?;
        // SAFETY: NUL-terminated path and value, sizes given.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                crate::tree_tar::opaque_xattr().as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        Errno::result(rc).map_err(|e| err(e.into()))?;
        return Ok(None);
    }
    if let Some(hidden) = name_bytes.strip_prefix(b".wh.").filter(|_| ctx.whiteouts) {
        // `.wh.`, `.wh..` and `.wh...` name no entry of the directory but
        // the directory itself or its parent: removing "what is there"
        // would delete the directory holding the entry, or the one above
        // it (the layer's staging directory at the top).
        let target =
            entry_name(hidden).map_err(|why| entry_err(raw, format!("whiteout refused: {why}")))?;
        ctx.create_replacing(parent, &target, || {
            // SAFETY: live directory descriptor, NUL-terminated name.
            let rc =
                unsafe { libc::mknodat(parent.as_raw_fd(), target.as_ptr(), libc::S_IFCHR, 0) };
            Errno::result(rc).map(drop).map_err(io::Error::from)
        })
        .map_err(err)?;
        return Ok(None);
    }

    let c_name = entry_name(name_bytes).map_err(|why| entry_err(raw, why))?;
    let kind = entry.header().entry_type();
    if sparse.is_some() && !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
        return Err(entry_err(
            raw,
            "sparse headers on an entry that is no regular file",
        ));
    }
    match kind {
        tar::EntryType::Directory => {
            match nix::sys::stat::mkdirat(
                Some(parent.as_raw_fd()),
                c_name.as_c_str(),
                Mode::from_bits_truncate(0o700),
            ) {
                Ok(()) => {}
                Err(Errno::EEXIST) => {
                    if !ctx.remove_existing(parent, &c_name, true).map_err(err)? {
                        nix::sys::stat::mkdirat(
                            Some(parent.as_raw_fd()),
                            c_name.as_c_str(),
                            Mode::from_bits_truncate(0o700),
                        )
                        .map_err(|e| err(e.into()))?;
                    }
                }
                Err(e) => return Err(err(e.into())),
            }
            return Ok(Some((path, attrs)));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            let mut fd = None;
            ctx.create_replacing(parent, &c_name, || {
                fd = Some(
                    nix::fcntl::openat(
                        Some(parent.as_raw_fd()),
                        c_name.as_c_str(),
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o600),
                    )
                    .map_err(io::Error::from)?,
                );
                Ok(())
            })
            .map_err(err)?;
            // SAFETY: a fresh descriptor from openat, owned here.
            let mut file = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd.expect("created")) });
            if let Some(sp) = sparse {
                write_pax_sparse(ctx, entry, &file, &path, sp)
                    .map_err(|why| entry_err(raw, why))?;
            } else if kind == tar::EntryType::GNUSparse {
                write_gnu_sparse(ctx, entry, &file, &path).map_err(err)?;
            } else {
                if let Some(s) = &ctx.split {
                    s.borrow_mut().begin_file();
                }
                let mut copied = 0u64;
                loop {
                    let n = match entry.read(&mut ctx.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(err(e)),
                    };
                    io::Write::write_all(&mut file, &ctx.buf[..n]).map_err(err)?;
                    copied += n as u64;
                }
                if let Some(s) = &ctx.split {
                    s.borrow_mut().end_file(&path, copied);
                }
            }
            set_file_attrs(&file, &attrs).map_err(err)?;
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()
                .map_err(err)?
                .ok_or_else(|| entry_err(raw, "symlink without a target"))?;
            let t = cstr(target.as_os_str()).map_err(err)?;
            ctx.create_replacing(parent, &c_name, || {
                // SAFETY: NUL-terminated strings and a live directory fd. The
                // target is stored as written; it is resolved inside the root
                // whenever it is used (here and by the runtime).
                let rc =
                    unsafe { libc::symlinkat(t.as_ptr(), parent.as_raw_fd(), c_name.as_ptr()) };
                Errno::result(rc).map(drop).map_err(io::Error::from)
            })
            .map_err(err)?;
            set_attrs(parent, Some(&c_name), &attrs, true).map_err(err)?;
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name()
                .map_err(err)?
                .ok_or_else(|| entry_err(raw, "hard link without a target"))?;
            let target = clean(&target);
            // Resolved inside the root: a link to /etc/shadow is a link to
            // the layer's own etc/shadow, or nothing.
            let src = saferoot::open_in_root(&ctx.root, &target, OFlag::O_PATH | OFlag::O_NOFOLLOW)
                .map_err(|e| {
                    entry_err(raw, format!("hard link target {}: {e}", target.display()))
                })?;
            ctx.create_replacing(parent, &c_name, || {
                // SAFETY: live descriptors and NUL-terminated names; AT_EMPTY_PATH
                // links the inode `src` was opened on.
                let rc = unsafe {
                    libc::linkat(
                        src.as_raw_fd(),
                        c"".as_ptr(),
                        parent.as_raw_fd(),
                        c_name.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                };
                Errno::result(rc).map(drop).map_err(io::Error::from)
            })
            .map_err(err)?;
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let h = entry.header();
            let fmt = match kind {
                tar::EntryType::Char => libc::S_IFCHR,
                tar::EntryType::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            let major = u64::from(h.device_major().ok().flatten().unwrap_or(0));
            let minor = u64::from(h.device_minor().ok().flatten().unwrap_or(0));
            ctx.create_replacing(parent, &c_name, || {
                // SAFETY: live directory descriptor, NUL-terminated name.
                let rc = unsafe {
                    libc::mknodat(
                        parent.as_raw_fd(),
                        c_name.as_ptr(),
                        fmt | attrs.mode,
                        libc::makedev(major as u32, minor as u32),
                    )
                };
                Errno::result(rc).map(drop).map_err(io::Error::from)
            })
            .map_err(err)?;
            set_attrs(parent, Some(&c_name), &attrs, false).map_err(err)?;
        }
        // pax and GNU long-name headers are consumed by the tar reader;
        // anything else (sockets, unknown types) is not part of a rootfs.
        _ => {}
    }
    Ok(None)
}

/// The pax sparse description of `entry`, if it is one.
fn pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Option<PaxSparse>, String> {
    let Some(ext) = entry.pax_extensions().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let records: Vec<_> = ext.flatten().collect();
    sparse::from_pax(records.iter().map(|r| (r.key_bytes(), r.value_bytes())))
}

/// A pax sparse entry (0.0, 0.1, 1.0): its data segments written where the
/// map puts them, the holes left as holes. The map at the start of a 1.0
/// entry's data is read before the file's content begins, so the tar-split
/// keeps it inline; the segments are recorded as such.
fn write_pax_sparse<R: Read>(
    ctx: &mut Ctx,
    entry: &mut tar::Entry<'_, R>,
    file: &fs::File,
    path: &Path,
    sp: PaxSparse,
) -> Result<(), String> {
    let stored = entry.size();
    let (map, map_bytes) = match sp.map {
        MapSource::Header(m) => (m, 0),
        MapSource::Data => sparse::read_map_1_0(entry)?,
    };
    let data_size = stored
        .checked_sub(map_bytes)
        .ok_or("sparse map is larger than the entry")?;
    sparse::check(&map, sp.real_size, data_size)?;
    // Holes cost nothing here, but whatever reads the file later (cp,
    // COPY --from, a container) reads them as zeros: bounded like a
    // layer's bytes, as the old GNU form is.
    if sp.real_size > ctx.sparse_limit {
        return Err(format!(
            "sparse file of {} bytes is over the limit of {} bytes",
            sp.real_size, ctx.sparse_limit
        ));
    }
    if let Some(s) = &ctx.split {
        s.borrow_mut().begin_file();
    }
    for &(off, len) in &map {
        let n = sparse::copy_skipping_zeros(entry, file, off, len, &mut ctx.buf, |_, _| {})
            .map_err(|e| e.to_string())?;
        if n != len {
            return Err("sparse entry ends before its map does".into());
        }
    }
    if let Some(s) = &ctx.split {
        // Only the listed segments: empty ones add nothing to the tar.
        let segs: Vec<_> = map.into_iter().filter(|(_, len)| *len > 0).collect();
        s.borrow_mut().end_sparse(path, &segs);
    }
    file.set_len(sp.real_size).map_err(|e| e.to_string())
}

/// An old GNU sparse entry (`S`), which the tar crate expands: zeros for
/// the holes, data from the tar for the segments. Which is which shows in
/// the tar-split recorder's count: it moves only for bytes read from the
/// tar, so the recorded segments are exactly the stored ones.
fn write_gnu_sparse<R: Read>(
    ctx: &mut Ctx,
    entry: &mut tar::Entry<'_, R>,
    file: &fs::File,
    path: &Path,
) -> io::Result<()> {
    let real_size = entry.size();
    // The tar crate reads a hole as zeros, one buffer at a time: a tiny
    // entry claiming an exabyte would spin for ever. Its size is bounded
    // like a layer's uncompressed bytes.
    if real_size > ctx.sparse_limit {
        return Err(io::Error::other(format!(
            "sparse file of {real_size} bytes is over the limit of {} bytes",
            ctx.sparse_limit
        )));
    }
    let split = ctx.split.clone();
    if let Some(s) = &split {
        s.borrow_mut().begin_file();
    }
    let mut segs: Vec<(u64, u64)> = Vec::new();
    let mut seen = split.as_ref().map_or(0, |s| s.borrow().total());
    let mut odd = false;
    sparse::copy_skipping_zeros(entry, file, 0, real_size, &mut ctx.buf, |at, n| {
        let Some(s) = &split else { return };
        let now = s.borrow().total();
        let from_tar = now - seen;
        seen = now;
        if from_tar == 0 {
            return; // a hole
        }
        if from_tar != n as u64 {
            odd = true;
            return;
        }
        match segs.last_mut() {
            Some((off, len)) if *off + *len == at => *len += from_tar,
            _ => segs.push((at, from_tar)),
        }
    })?;
    if odd {
        return Err(io::Error::other(
            "sparse entry read mixed hole and data in one read",
        ));
    }
    if let Some(s) = &split {
        s.borrow_mut().end_sparse(path, &segs);
    }
    file.set_len(real_size)
}

/// Owner, mode, xattrs and times of a regular file just written, through
/// its own descriptor (no path lookups).
fn set_file_attrs(f: &fs::File, a: &Attrs) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: a live descriptor.
    Errno::result(unsafe { libc::fchown(fd, a.uid, a.gid) })?;
    // After chown, which clears setuid bits.
    // SAFETY: a live descriptor.
    Errno::result(unsafe { libc::fchmod(fd, a.mode) })?;
    for (k, v) in &a.xattrs {
        let ck =
            CString::new(k.clone()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a live descriptor, a NUL-terminated name, value pointer and size.
        Errno::result(unsafe { libc::fsetxattr(fd, ck.as_ptr(), v.as_ptr().cast(), v.len(), 0) })?;
    }
    let t = libc::timespec {
        tv_sec: a.mtime,
        tv_nsec: 0,
    };
    // SAFETY: a live descriptor and two timespecs.
    Errno::result(unsafe { libc::futimens(fd, [t, t].as_ptr()) })?;
    Ok(())
}

/// Sets owner, mode, xattrs and mtime on `fd` (or on `name` in the
/// directory `fd`, without following it).
fn set_attrs(fd: &OwnedFd, name: Option<&CString>, a: &Attrs, is_link: bool) -> io::Result<()> {
    let (dirfd, cname, flags) = match name {
        Some(n) => (fd.as_raw_fd(), n.as_c_str(), libc::AT_SYMLINK_NOFOLLOW),
        None => (fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH),
    };
    // SAFETY: live descriptor, NUL-terminated name; flags keep the call on
    // the entry itself (no following of a symlink).
    Errno::result(unsafe {
        libc::fchownat(
            dirfd,
            cname.as_ptr(),
            a.uid,
            a.gid,
            flags
                | if name.is_some() {
                    0
                } else {
                    libc::AT_SYMLINK_NOFOLLOW
                },
        )
    })?;
    if !is_link {
        // After chown, which clears setuid bits. O_PATH descriptors are
        // changed through their /proc/self/fd name.
        let p = match name {
            Some(n) => PathBuf::from(saferoot::fd_path(fd)).join(OsStr::from_bytes(n.as_bytes())),
            None => PathBuf::from(saferoot::fd_path(fd)),
        };
        let cp = CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: NUL-terminated path.
        Errno::result(unsafe { libc::chmod(cp.as_ptr(), a.mode) })?;
        for (k, v) in &a.xattrs {
            let ck = CString::new(k.clone())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // setxattr, not lsetxattr: the path is a /proc/self/fd magic
            // link, which must be followed to the file (lsetxattr would act
            // on the link itself and fail). Symlinks never get here.
            // SAFETY: NUL-terminated path and name; value pointer and size.
            Errno::result(unsafe {
                libc::setxattr(cp.as_ptr(), ck.as_ptr(), v.as_ptr().cast(), v.len(), 0)
            })?;
        }
    }
    let times = [
        libc::timespec {
            tv_sec: a.mtime,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: a.mtime,
            tv_nsec: 0,
        },
    ];
    // SAFETY: live descriptor, NUL-terminated name, two timespecs.
    Errno::result(unsafe {
        libc::utimensat(
            dirfd,
            cname.as_ptr(),
            times.as_ptr(),
            if name.is_some() {
                libc::AT_SYMLINK_NOFOLLOW
            } else {
                0
            },
        )
    })
    .or_else(|e| {
        if name.is_none() {
            futimes(fd, &times)
        } else {
            Err(e)
        }
    })?;
    Ok(())
}

/// utimensat on an O_PATH descriptor: through its /proc/self/fd name.
fn futimes(fd: &OwnedFd, times: &[libc::timespec; 2]) -> nix::Result<i32> {
    let p = CString::new(saferoot::fd_path(fd)).map_err(|_| Errno::EINVAL)?;
    // SAFETY: NUL-terminated path and two timespecs.
    Errno::result(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn raw(
        b: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        data: &[u8],
        link: &str,
        mode: u32,
    ) {
        berth_testkit::raw_tar_entry(b, name, kind, data, link, mode);
    }

    /// The xattrs of `p` (the reader `diff` uses).
    fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        crate::snapshot::lxattrs(&CString::new(p.as_os_str().as_bytes()).unwrap()).unwrap()
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// Root, or a plain word that the test was skipped (a failure under CI).
    fn root_or_skip() -> bool {
        if is_root() {
            return true;
        }
        assert!(std::env::var_os("CI").is_none(), "this test needs root");
        eprintln!("skipped: not root");
        false
    }

    fn normal_layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        raw(&mut b, "etc/", tar::EntryType::Directory, b"", "", 0o755);
        raw(
            &mut b,
            "etc/hostname",
            tar::EntryType::Regular,
            b"layer\n",
            "",
            0o4755,
        );
        raw(
            &mut b,
            "etc/alias",
            tar::EntryType::Symlink,
            b"",
            "hostname",
            0o777,
        );
        raw(
            &mut b,
            "etc/hard",
            tar::EntryType::Link,
            b"",
            "etc/hostname",
            0o644,
        );
        raw(&mut b, "dev-fifo", tar::EntryType::Fifo, b"", "", 0o600);
        raw(&mut b, ".wh.gone", tar::EntryType::Regular, b"", "", 0o600);
        raw(
            &mut b,
            "etc/.wh..wh..opq",
            tar::EntryType::Regular,
            b"",
            "",
            0o600,
        );
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacks_every_kind_and_hashes_the_stream() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let tar = normal_layer();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, &tar).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        for (i, input) in [tar.clone(), gz, zst].into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("layer");
            let u = unpack(
                &input[..],
                &dest,
                &UnpackOptions {
                    diff_id: Some(Digest::of(&tar)),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("input {i}: {e}"));
            assert_eq!(u.diff_id, Digest::of(&tar));
            assert_eq!(
                fs::read_to_string(dest.join("etc/hostname")).unwrap(),
                "layer\n"
            );
            let m = fs::metadata(dest.join("etc/hostname")).unwrap();
            assert_eq!(m.permissions().mode() & 0o7777, 0o4755, "setuid kept");
            assert_eq!(m.mtime(), 1_600_000_000);
            assert_eq!(m.nlink(), 2, "hard link");
            assert_eq!(
                fs::read_link(dest.join("etc/alias")).unwrap(),
                PathBuf::from("hostname")
            );
            assert!(fs::symlink_metadata(dest.join("dev-fifo"))
                .unwrap()
                .file_type()
                .is_fifo());
            let w = fs::symlink_metadata(dest.join("gone")).unwrap();
            assert!(
                w.file_type().is_char_device() && w.rdev() == 0,
                "whiteout as 0/0 char device"
            );
            assert!(
                xattrs(&dest.join("etc"))
                    .contains(&(b"trusted.overlay.opaque".to_vec(), b"y".to_vec())),
                "opaque dir"
            );
            assert_eq!(
                fs::metadata(dest.join("etc")).unwrap().mtime(),
                1_600_000_000,
                "dir time set last"
            );
        }
    }

    /// Regression: xattrs were set with lsetxattr on the /proc/self/fd
    /// link itself, so every layer with an xattr (file capabilities) failed.
    #[test]
    fn xattrs_reach_the_file() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"kept"[..])])
            .unwrap();
        raw(&mut b, "ping", tar::EntryType::Regular, b"x", "", 0o755);
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("layer");
        unpack(&tar[..], &dest, &UnpackOptions::default()).unwrap();
        assert_eq!(
            xattrs(&dest.join("ping")),
            vec![(b"user.berth".to_vec(), b"kept".to_vec())]
        );
    }

    #[test]
    fn hostile_names_stay_inside_the_root() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim"), "keep").unwrap();
        let o = outside.path().to_str().unwrap().trim_start_matches('/');
        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            "../../../escape",
            tar::EntryType::Regular,
            b"x",
            "",
            0o644,
        );
        raw(
            &mut b,
            &format!("/{o}/abs"),
            tar::EntryType::Regular,
            b"x",
            "",
            0o644,
        );
        raw(
            &mut b,
            "link",
            tar::EntryType::Symlink,
            b"",
            &format!("/{o}"),
            0o777,
        );
        raw(
            &mut b,
            "link/through-symlink",
            tar::EntryType::Regular,
            b"x",
            "",
            0o644,
        );
        raw(
            &mut b,
            "up",
            tar::EntryType::Symlink,
            b"",
            "../../../../../..",
            0o777,
        );
        raw(
            &mut b,
            &format!("up/{o}/through-dotdot-link"),
            tar::EntryType::Regular,
            b"x",
            "",
            0o644,
        );
        raw(
            &mut b,
            &format!("../../{o}/.wh.victim"),
            tar::EntryType::Regular,
            b"",
            "",
            0o644,
        );
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("layer");
        unpack(&tar[..], &dest, &UnpackOptions::default()).unwrap();
        let names: Vec<_> = fs::read_dir(outside.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("victim")],
            "nothing written outside"
        );
        assert_eq!(
            fs::read_to_string(outside.path().join("victim")).unwrap(),
            "keep"
        );
        assert!(dest.join("escape").is_file());
        assert!(dest.join(o).join("abs").is_file());
        assert!(dest.join(o).join("through-symlink").is_file());
        assert!(dest.join(o).join("through-dotdot-link").is_file());
        assert!(fs::symlink_metadata(dest.join(o).join("victim"))
            .unwrap()
            .file_type()
            .is_char_device());
    }

    /// `.wh.` + `..` named the parent of the entry's directory: "removing
    /// what is there" deleted it, at the top the directory the layer is
    /// unpacked beside. Every name that is no entry is refused, naming it.
    #[test]
    fn whiteouts_of_dot_and_dotdot_are_refused() {
        if !root_or_skip() {
            return;
        }
        for name in [".wh..", ".wh...", ".wh.", "d/.wh..", "d/.wh...", "d/.wh."] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("beside"), "keep").unwrap();
            let mut b = tar::Builder::new(Vec::new());
            raw(&mut b, "d/", tar::EntryType::Directory, b"", "", 0o755);
            raw(&mut b, "d/keep", tar::EntryType::Regular, b"k", "", 0o644);
            raw(&mut b, name, tar::EntryType::Regular, b"", "", 0o644);
            let tar = b.into_inner().unwrap();
            let dest = dir.path().join("layer");
            let e = unpack(&tar[..], &dest, &UnpackOptions::default()).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("{name:?}")) && msg.contains("whiteout refused"),
                "{name}: {msg}"
            );
            assert!(!msg.contains('\n'), "one line: {msg}");
            assert_eq!(
                fs::read_to_string(dir.path().join("beside")).unwrap(),
                "keep",
                "{name}: the directory beside the layer kept its content"
            );
        }
    }

    /// A NUL inside a pax path cannot shorten the name a `*at` call sees;
    /// aufs' own `.wh..wh.` entries are not whiteouts of `.wh.X`.
    #[test]
    fn odd_names_are_refused_or_skipped() {
        if !root_or_skip() {
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("path", &b"a\0b"[..])]).unwrap();
        raw(&mut b, "x", tar::EntryType::Regular, b"x", "", 0o644);
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = unpack(&tar[..], &dir.path().join("l"), &UnpackOptions::default()).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");

        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            ".wh..wh.plnk/",
            tar::EntryType::Directory,
            b"",
            "",
            0o700,
        );
        raw(
            &mut b,
            "d/.wh..wh.aufs",
            tar::EntryType::Regular,
            b"",
            "",
            0o600,
        );
        let tar = b.into_inner().unwrap();
        let dest = dir.path().join("l2");
        unpack(&tar[..], &dest, &UnpackOptions::default()).unwrap();
        assert!(fs::symlink_metadata(dest.join(".wh.plnk")).is_err());
        assert!(fs::symlink_metadata(dest.join("d/.wh.aufs")).is_err());
        assert!(fs::symlink_metadata(dest.join(".wh..wh.plnk")).is_err());
    }

    /// Sparse entries that lie: an old GNU one claiming an exabyte (the tar
    /// crate would read its hole as zeros for ever), pax ones whose map
    /// points past the file's end or lists more data than the entry has,
    /// or that use a version nobody wrote. Each is refused naming it.
    #[test]
    fn lying_sparse_entries_are_refused() {
        if !root_or_skip() {
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_path("huge").unwrap();
        h.set_mode(0o644);
        h.set_size(512);
        let g = h.as_gnu_mut().unwrap();
        g.set_real_size(1 << 60);
        g.sparse[0].set_offset((1 << 60) - 512);
        g.sparse[0].set_length(512);
        h.set_cksum();
        b.append(&h, &[1u8; 512][..]).unwrap();
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let e = unpack(&tar[..], &dir.path().join("l"), &UnpackOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("\"huge\"") && e.to_string().contains("sparse"),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(60));

        let pax = |recs: &[(&str, &str)], data: &[u8]| {
            let mut b = tar::Builder::new(Vec::new());
            b.append_pax_extensions(recs.iter().map(|(k, v)| (*k, v.as_bytes())))
                .unwrap();
            raw(
                &mut b,
                "GNUSparseFile.1/f",
                tar::EntryType::Regular,
                data,
                "",
                0o644,
            );
            b.into_inner().unwrap()
        };
        let mut map10 = b"1\n0\n4\n".to_vec();
        map10.resize(512, 0);
        map10.extend_from_slice(b"data");
        for (i, tar) in [
            pax(
                &[("GNU.sparse.size", "10"), ("GNU.sparse.map", "8,4")],
                b"data",
            ),
            pax(
                &[("GNU.sparse.size", "10"), ("GNU.sparse.map", "0,9")],
                b"data",
            ),
            pax(
                &[("GNU.sparse.size", "10"), ("GNU.sparse.map", "4,2,0,2")],
                b"data",
            ),
            pax(
                &[
                    ("GNU.sparse.major", "1"),
                    ("GNU.sparse.minor", "0"),
                    ("GNU.sparse.name", "f"),
                    ("GNU.sparse.realsize", "3"),
                ],
                &map10,
            ),
            pax(
                &[("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")],
                b"data",
            ),
            pax(
                &[
                    ("GNU.sparse.size", &(1u64 << 62).to_string()),
                    ("GNU.sparse.map", "0,4"),
                ],
                b"data",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let dest = dir.path().join(format!("p{i}"));
            let e = unpack(&tar[..], &dest, &UnpackOptions::default()).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("layer entry \"") && msg.contains("sparse"),
                "{i}: {msg}"
            );
            assert!(!dest.exists());
        }
    }

    #[test]
    fn hard_link_to_a_host_file_is_refused() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let host = tempfile::tempdir().unwrap();
        let secret = host.path().join("secret");
        fs::write(&secret, "s").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            "hl",
            tar::EntryType::Link,
            b"",
            secret.to_str().unwrap(),
            0o644,
        );
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("layer");
        let e = unpack(&tar[..], &dest, &UnpackOptions::default()).unwrap_err();
        assert!(e.to_string().contains("hard link target"), "{e}");
        assert_eq!(
            fs::metadata(&secret).unwrap().nlink(),
            1,
            "the host file got no new link"
        );
        assert!(!dest.exists(), "nothing left after a failed unpack");
    }

    #[test]
    fn wrong_diff_id_and_bombs_leave_nothing() {
        let tar = {
            let mut b = tar::Builder::new(Vec::new());
            raw(
                &mut b,
                "big",
                tar::EntryType::Regular,
                &vec![0u8; 4 << 20],
                "",
                0o644,
            );
            b.into_inner().unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("layer");
        let wrong = Digest::of(b"not this");
        let e = unpack(
            &tar[..],
            &dest,
            &UnpackOptions {
                diff_id: Some(wrong),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, LayerError::DiffId { .. }), "{e}");
        assert!(!dest.exists());
        // 4 MiB of zeros compress to a few KiB: bounded by max_bytes.
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut e, &tar).unwrap();
            e.finish().unwrap()
        };
        assert!(gz.len() < 64 << 10);
        let e = unpack(
            &gz[..],
            &dest,
            &UnpackOptions {
                diff_id: None,
                max_bytes: 1 << 20,
                record_split: false,
            },
        )
        .unwrap_err();
        assert!(matches!(e, LayerError::TooLarge { .. }), "{e}");
        assert!(!dest.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temp dir left"
        );
    }
}
