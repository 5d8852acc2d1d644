//! COPY and ADD: what a step reads ([`checksum`]) and what it writes
//! ([`apply`]), with Docker's (BuildKit's) semantics.
//!
//! The executor gives a [`Source`] (the build context with its
//! `.dockerignore`, or another stage's or an image's root filesystem for
//! `COPY --from`), the evaluated [`CopyStep`] and the destination root (the
//! stage's writable rootfs, or an empty directory for `COPY --link`).
//!
//! Both roots are hostile. Every path is resolved inside its root
//! (`openat2(RESOLVE_IN_ROOT)` via saferoot, plus a component-by-component
//! resolver of our own where the resolved name matters), and every entry is
//! created with `*at` calls on a directory descriptor and a single name that
//! is never followed. So no symlink in the context, in the source rootfs, in
//! the image at the destination or in an ADDed archive leads to the host.
//!
//! Semantics (BuildKit's `dockerfile2llb` and `fsutil/copy`, the Dockerfile
//! reference for COPY and ADD):
//! - Sources are cleaned and clamped at the source root (`../../x` is
//!   `<root>/x`). A source that is a symlink is followed inside the root
//!   (BuildKit's `FollowSymlinks`); symlinks below a copied directory are
//!   copied as links, their target text unchanged. With `--parents` nothing
//!   is followed (BuildKit walks with include patterns there).
//! - Globs (`*`, `?`, `[...]`, `\` escapes, Go's `filepath.Match`) match per
//!   path component; `**` spans directories only with `--parents`. A glob
//!   may match nothing (`COPY package.json yarn.lock* ./` is an idiom); a
//!   plain path must exist (`"x": not found in the build context`), and the
//!   step fails if nothing at all matched (`COPY failed: no source files
//!   were specified`). Paths excluded by `.dockerignore` do not exist for
//!   matching, copying or hashing; a directory excluded while a `!`
//!   exception re-includes something below it holds just that.
//! - A relative destination is joined to the WORKDIR. A destination ending
//!   in `/` (or `.`) is a directory. More than one source (counting glob
//!   matches) needs such a destination (the Dockerfile reference's rule).
//!   Missing parent directories are made 0755, owned by the `--chown` user
//!   (else 0:0). A directory source copies its contents; a non-directory
//!   into an existing directory keeps its name. The destination is resolved
//!   inside the root following the image's symlinks, as BuildKit does.
//! - Ownership: `--chown=user[:group]`, names looked up in
//!   [`ApplyOptions::users_root`]'s `/etc/passwd` and `/etc/group`; a user
//!   without a group uses the same number as the gid (the reference's
//!   rule). Without `--chown`, context files are 0:0 and `--from` files keep
//!   their owners.
//! - `--chmod`: octal (`755`, `0644`) or symbolic (`u+x,g-w,a=rX,o=u`),
//!   applied to every file and directory copied (not to symlinks nor
//!   extracted archives).
//! - `--exclude` patterns are `.dockerignore` patterns, matched as BuildKit
//!   does against paths relative to the source being copied (with
//!   `--parents`, relative to the pivot); a source that a glob matched is
//!   also matched by its path below the glob's fixed prefix, so
//!   `COPY --exclude=*.txt hom* /mydir/` leaves out `home.txt`.
//! - `--parents` keeps each source's path under the destination, from the
//!   source root or from a `/./` pivot (`./a/./b/c` keeps `b/c`); the
//!   directories on the way get their source's metadata.
//! - Heredocs (`COPY <<EOF /dest`) are files named by the delimiter, mode
//!   0644 before `--chmod`.
//! - Copied entries keep their mode (with the set-id and sticky bits), mtime
//!   and atime, and the `user.*` and `security.capability` xattrs. Regular
//!   files, directories, symlinks, fifos and devices are copied (devices as
//!   BuildKit does); sockets are skipped in the context (its transfer
//!   cannot carry them) and recreated from a rootfs. Hard links inside one
//!   source are copied as separate files.
//! - ADD of a local file that is a tar (by content: a tar header, plain or
//!   compressed with gzip, bzip2, xz or zstd) extracts it into the
//!   destination, which is then a directory (`--unpack=false` turns this
//!   off). Extraction is [`berth_image::layer::extract`], which resolves every
//!   entry inside the destination. The archive's owners are kept unless
//!   `--chown` is given.
//! - ADD of an http(s) URL downloads it (name: the URL path's last segment,
//!   `__unnamed__` if none, as BuildKit names it), mode 0600 before
//!   `--chmod`, mtime from `Last-Modified`. `--checksum=sha256:<hex>` is
//!   verified before anything is written. URLs are extracted only with
//!   `--unpack=true`. Git URLs are refused for now.
//!
//! [`checksum`] hashes what the step would read and nothing else (no
//! mtimes). For an ADD URL it hashes the URL and `--checksum`, not the
//! content: without `--checksum` the executor should re-download (or not
//! cache the step); with it, the key already pins the content.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use sha2::{Digest as _, Sha256};

use crate::ignore::{clean_path, has_wildcards, match_component, IgnoreMatcher};
use crate::parser::Heredoc;
use crate::stage::CopyStep;

/// Where a COPY or ADD reads from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The build context directory; paths excluded by `.dockerignore` do not
    /// exist for COPY/ADD.
    Context {
        dir: &'a Path,
        ignore: Option<&'a IgnoreMatcher>,
    },
    /// Another stage's or an image's root filesystem (`COPY --from`); no
    /// ignore file applies and owners are kept.
    Rootfs(&'a Path),
}

/// What [`apply`] needs besides the step.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// Where `--chown` names are looked up (its `/etc/passwd` and
    /// `/etc/group`, read inside this root); usually the destination root.
    pub users_root: &'a Path,
    /// The HTTP client for ADD URLs; `None`: a default one (rustls with the
    /// webpki roots, 30 s connect timeout).
    pub http: Option<&'a ureq::Agent>,
}

/// What [`apply`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Fifos, devices and sockets.
    pub special: u64,
    /// Bytes of regular files written (not counting extracted archives).
    pub bytes: u64,
    /// Archives extracted by ADD, and their entries.
    pub archives: u64,
    pub archive_entries: u64,
}

/// A COPY or ADD that cannot be done; one line naming the problem and the
/// path (the executor prefixes the Dockerfile line).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{instruction} failed: no source files were specified{detail}")]
    NoSources {
        instruction: &'static str,
        /// `: <sources> matched nothing`, or empty when none were named.
        detail: String,
    },
    #[error("{path:?}: not found in the {place}")]
    NotFound { path: String, place: &'static str },
    #[error("{instruction} with more than one source file: the destination {dest:?} must be a directory and end with a /")]
    DestNotDirectory {
        instruction: &'static str,
        dest: String,
    },
    #[error("invalid --{flag}={value:?}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("--chown={spec}: {reason}")]
    Owner { spec: String, reason: String },
    #[error("COPY does not accept URLs ({url}): use ADD")]
    UrlInCopy { url: String },
    #[error("ADD of a git repository is not implemented yet: {url}")]
    Git { url: String },
    #[error("download {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("download {url}: checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: {reason}")]
    Target { path: String, reason: String },
    #[error("extract {archive:?} into {dest}: {reason}")]
    Extract {
        archive: String,
        dest: String,
        reason: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

type Result<T, E = CopyError> = std::result::Result<T, E>;

fn io_err<E: Into<io::Error>>(context: impl FnOnce() -> String) -> impl FnOnce(E) -> CopyError {
    move |e| CopyError::Io {
        context: context(),
        source: e.into(),
    }
}

fn shown(p: &Path) -> String {
    format!("/{}", p.display())
}

// ---------------------------------------------------------------------------
// Flags

/// The step's flags, checked.
#[derive(Debug, Default)]
struct Flags {
    chown: Option<String>,
    chmod: Option<Chmod>,
    excludes: Option<IgnoreMatcher>,
    parents: bool,
    unpack: Option<bool>,
    checksum: Option<String>,
}

fn flag_bool(flag: &'static str, value: Option<&str>) -> Result<bool> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(CopyError::Flag {
            flag,
            value: v.into(),
            reason: "expected true or false".into(),
        }),
    }
}

fn parse_flags(step: &CopyStep) -> Result<Flags> {
    let mut f = Flags::default();
    let mut excludes = Vec::new();
    for flag in &step.flags {
        let v = flag.value.as_deref();
        let need = |name: &'static str| {
            v.filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or(CopyError::Flag {
                    flag: name,
                    value: String::new(),
                    reason: "a value is required".into(),
                })
        };
        match flag.name.as_str() {
            "chown" => f.chown = Some(need("chown")?),
            "chmod" => f.chmod = Some(Chmod::parse(&need("chmod")?)?),
            "exclude" => excludes.push(need("exclude")?),
            "parents" => f.parents = flag_bool("parents", v)?,
            "unpack" => f.unpack = Some(flag_bool("unpack", v)?),
            "checksum" => {
                let c = need("checksum")?;
                let hex = c.strip_prefix("sha256:").unwrap_or("");
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(CopyError::Flag {
                        flag: "checksum",
                        value: c,
                        reason: "expected sha256:<64 hex digits>".into(),
                    });
                }
                f.checksum = Some(c.to_ascii_lowercase());
            }
            // --from is resolved by the executor, --link changes only its
            // destination root, --keep-git-dir matters for git sources.
            "from" | "link" | "keep-git-dir" => {}
            other => {
                return Err(CopyError::Flag {
                    flag: "flag",
                    value: other.into(),
                    reason: "unknown COPY/ADD flag".into(),
                })
            }
        }
    }
    if !excludes.is_empty() {
        for e in &excludes {
            IgnoreMatcher::parse("--exclude", e).map_err(|_| CopyError::Flag {
                flag: "exclude",
                value: e.clone(),
                reason: "syntax error in pattern".into(),
            })?;
        }
        f.excludes = IgnoreMatcher::parse("--exclude", &excludes.join("\n")).ok();
    }
    Ok(f)
}

/// A `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chmod {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

/// One `who op perms` clause of a symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    /// The mode bits the clause may touch.
    who: u32,
    ops: Vec<(u8, Perm)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    /// `rwxst`, with `X` (execute if a directory or already executable).
    Bits { bits: u32, cond_x: bool },
    /// `=u`, `+g`, ...: another class's current permissions.
    Copy(u8),
}

impl Chmod {
    fn parse(s: &str) -> Result<Chmod> {
        let bad = |reason: &str| CopyError::Flag {
            flag: "chmod",
            value: s.into(),
            reason: reason.into(),
        };
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return match u32::from_str_radix(s, 8) {
                Ok(m) if m <= 0o7777 && s.len() <= 5 => Ok(Chmod::Octal(m)),
                _ => Err(bad("expected an octal mode up to 7777")),
            };
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let b = part.as_bytes();
            let mut i = 0;
            let mut who = 0;
            while i < b.len() && matches!(b[i], b'u' | b'g' | b'o' | b'a') {
                who |= match b[i] {
                    b'u' => 0o4700,
                    b'g' => 0o2070,
                    b'o' => 0o1007,
                    _ => 0o7777,
                };
                i += 1;
            }
            if who == 0 {
                who = 0o7777;
            }
            let mut ops = Vec::new();
            while i < b.len() {
                let op = b[i];
                if !matches!(op, b'+' | b'-' | b'=') {
                    return Err(bad("expected an octal mode or [ugoa][+-=][rwxXst]"));
                }
                i += 1;
                if i < b.len() && matches!(b[i], b'u' | b'g' | b'o') {
                    ops.push((op, Perm::Copy(b[i])));
                    i += 1;
                    continue;
                }
                let (mut bits, mut cond_x) = (0, false);
                while i < b.len() && !matches!(b[i], b'+' | b'-' | b'=') {
                    bits |= match b[i] {
                        b'r' => 0o444,
                        b'w' => 0o222,
                        b'x' => 0o111,
                        b's' => 0o6000,
                        b't' => 0o1000,
                        b'X' => {
                            cond_x = true;
                            0
                        }
                        _ => return Err(bad("unknown permission letter")),
                    };
                    i += 1;
                }
                ops.push((op, Perm::Bits { bits, cond_x }));
            }
            if ops.is_empty() {
                return Err(bad("expected an octal mode or [ugoa][+-=][rwxXst]"));
            }
            clauses.push(Clause { who, ops });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    fn apply(&self, mut mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        for c in clauses {
            for (op, perm) in &c.ops {
                let bits = match perm {
                    Perm::Bits { bits, cond_x } => {
                        let x = *cond_x && (is_dir || mode & 0o111 != 0);
                        bits | if x { 0o111 } else { 0 }
                    }
                    Perm::Copy(w) => {
                        let class = match w {
                            b'u' => (mode >> 6) & 7,
                            b'g' => (mode >> 3) & 7,
                            _ => mode & 7,
                        };
                        class * 0o111
                    }
                } & c.who;
                mode = match op {
                    b'+' => mode | bits,
                    b'-' => mode & !bits,
                    _ => (mode & !c.who) | bits,
                };
            }
        }
        mode & 0o7777
    }
}

// ---------------------------------------------------------------------------
// Descriptors and stat helpers

/// Takes ownership of a descriptor a syscall just returned.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: every caller passes a descriptor fresh from a successful
    // open/openat that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn open_root(p: &Path) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        p,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(owned(fd))
}

fn at_open(dir: &OwnedFd, name: &OsStr, flags: OFlag, mode: u32) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(mode),
    )?;
    Ok(owned(fd))
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn is_dir(st: &FileStat) -> bool {
    kind(st) == SFlag::S_IFDIR
}

fn is_symlink(st: &FileStat) -> bool {
    kind(st) == SFlag::S_IFLNK
}

/// `lstat` of `rel` inside `root` (its last component not followed).
fn lstat_in(root: &OwnedFd, rel: &Path) -> nix::Result<FileStat> {
    if rel.as_os_str().is_empty() {
        return nix::sys::stat::fstat(root.as_raw_fd());
    }
    let fd = saferoot::open_in_root(root, rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
    nix::sys::stat::fstat(fd.as_raw_fd())
}

fn readlink_in(root: &OwnedFd, rel: &Path) -> nix::Result<OsString> {
    let fd = saferoot::open_in_root(root, rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
    nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")
}

/// A path resolved inside a root: `path` exists and has no symlinks;
/// `missing` are the components after it that do not exist.
#[derive(Debug)]
struct Resolved {
    path: PathBuf,
    missing: Vec<OsString>,
    st: Option<FileStat>,
}

/// Resolves `rel` inside `root` component by component, following
/// symlinks as if `root` were `/` (the last one only if `follow_final`).
/// `visible` hides entries (a `.dockerignore`'d path does not exist).
fn resolve(
    root: &OwnedFd,
    rel: &Path,
    follow_final: bool,
    visible: &dyn Fn(&Path, &FileStat) -> bool,
) -> nix::Result<Resolved> {
    let mut pending: Vec<OsString> = Vec::new();
    for c in rel.components().rev() {
        match c {
            Component::Normal(n) => pending.push(n.to_os_string()),
            Component::ParentDir => pending.push("..".into()),
            _ => {}
        }
    }
    let mut cur = PathBuf::new();
    let mut st = nix::sys::stat::fstat(root.as_raw_fd())?;
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            cur.pop();
            st = lstat_in(root, &cur)?;
            continue;
        }
        let cand = cur.join(&c);
        let found = match lstat_in(root, &cand) {
            Ok(s) if visible(&cand, &s) => Some(s),
            Ok(_) | Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        let Some(s) = found else {
            let mut missing: Vec<OsString> = Vec::new();
            pending.push(c);
            while let Some(m) = pending.pop() {
                if m == ".." {
                    if missing.pop().is_none() {
                        cur.pop();
                    }
                } else {
                    missing.push(m);
                }
            }
            return Ok(Resolved {
                path: cur,
                missing,
                st: None,
            });
        };
        if is_symlink(&s) && (follow_final || !pending.is_empty()) {
            links += 1;
            if links > 40 {
                return Err(Errno::ELOOP);
            }
            let target = readlink_in(root, &cand)?;
            let t = Path::new(&target);
            if t.is_absolute() {
                cur = PathBuf::new();
            }
            for comp in t.components().rev() {
                match comp {
                    Component::Normal(n) => pending.push(n.to_os_string()),
                    Component::ParentDir => pending.push("..".into()),
                    _ => {}
                }
            }
            if t.is_absolute() {
                st = nix::sys::stat::fstat(root.as_raw_fd())?;
            }
            continue;
        }
        if !pending.is_empty() && !is_dir(&s) {
            return Err(Errno::ENOTDIR);
        }
        cur = cand;
        st = s;
    }
    Ok(Resolved {
        path: cur,
        missing: Vec::new(),
        st: Some(st),
    })
}

// ---------------------------------------------------------------------------
// The source side

/// The source root, with what is visible in it.
struct SrcFs<'a> {
    root: OwnedFd,
    ignore: Option<&'a IgnoreMatcher>,
    context: bool,
    /// Excluded directories that hold something re-included.
    memo: RefCell<HashMap<PathBuf, bool>>,
}

impl<'a> SrcFs<'a> {
    fn open(src: &Source<'a>) -> Result<SrcFs<'a>> {
        let (dir, ignore, context) = match *src {
            Source::Context { dir, ignore } => (dir, ignore, true),
            Source::Rootfs(dir) => (dir, None, false),
        };
        let root = open_root(dir).map_err(io_err(|| format!("open {}", dir.display())))?;
        Ok(SrcFs {
            root,
            ignore,
            context,
            memo: RefCell::default(),
        })
    }

    fn place(&self) -> &'static str {
        if self.context {
            "build context"
        } else {
            "source stage or image"
        }
    }

    fn not_found(&self, path: &str) -> CopyError {
        CopyError::NotFound {
            path: path.into(),
            place: self.place(),
        }
    }

    fn visible(&self, rel: &Path, st: &FileStat) -> bool {
        // A socket cannot be part of a build context transfer.
        if self.context && kind(st) == SFlag::S_IFSOCK {
            return false;
        }
        let Some(ig) = self.ignore else { return true };
        if rel.as_os_str().is_empty() || !ig.is_excluded(&rel.to_string_lossy()) {
            return true;
        }
        if !is_dir(st) || !ig.has_exceptions() {
            return false;
        }
        if let Some(v) = self.memo.borrow().get(rel) {
            return *v;
        }
        let v = self
            .raw_list(rel)
            .map(|l| l.iter().any(|(n, s)| self.visible(&rel.join(n), s)))
            .unwrap_or(false);
        self.memo.borrow_mut().insert(rel.to_path_buf(), v);
        v
    }

    fn raw_list(&self, rel: &Path) -> Result<Vec<(OsString, FileStat)>> {
        let ctx = || format!("read directory {}", shown(rel));
        let fd = saferoot::open_in_root(
            &self.root,
            rel,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        )
        .map_err(io_err(ctx))?;
        let mut dir = nix::dir::Dir::from(fd).map_err(io_err(ctx))?;
        let dirfd = dir.as_raw_fd();
        let mut out = Vec::new();
        for e in dir.iter() {
            let e = e.map_err(io_err(ctx))?;
            let name = OsStr::from_bytes(e.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let st = nix::sys::stat::fstatat(Some(dirfd), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(io_err(|| format!("stat {}", shown(&rel.join(name)))))?;
            out.push((name.to_os_string(), st));
        }
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(out)
    }

    /// The visible entries of a directory, sorted by name.
    fn list(&self, rel: &Path) -> Result<Vec<(OsString, FileStat)>> {
        let mut l = self.raw_list(rel)?;
        l.retain(|(n, st)| self.visible(&rel.join(n), st));
        Ok(l)
    }

    fn resolve(&self, rel: &Path, follow_final: bool) -> nix::Result<Resolved> {
        resolve(&self.root, rel, follow_final, &|p, st| self.visible(p, st))
    }

    /// Opens a regular file (never blocking on a fifo swapped in since it
    /// was listed).
    fn open_file(&self, rel: &Path) -> Result<File> {
        let ctx = || format!("open {}", shown(rel));
        let fd = saferoot::open_in_root(
            &self.root,
            rel,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        )
        .map_err(io_err(ctx))?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io_err(ctx))?;
        if kind(&st) != SFlag::S_IFREG {
            return Err(CopyError::Target {
                path: shown(rel),
                reason: "changed while being copied: no longer a regular file".into(),
            });
        }
        Ok(File::from(fd))
    }

    fn open_dir(&self, rel: &Path) -> Result<OwnedFd> {
        saferoot::open_in_root(
            &self.root,
            rel,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        )
        .map_err(io_err(|| format!("open {}", shown(rel))))
    }

    fn readlink(&self, rel: &Path) -> Result<OsString> {
        readlink_in(&self.root, rel).map_err(io_err(|| format!("readlink {}", shown(rel))))
    }
}

/// A source path that matched.
#[derive(Debug)]
struct Matched {
    /// The source as written in the Dockerfile.
    written: String,
    /// Where it is in the source root, symlinks resolved.
    path: PathBuf,
    /// Its name in a destination directory (the unresolved last component).
    name: OsString,
    st: FileStat,
    /// `--parents`: the pivot (resolved) and the path kept under the
    /// destination.
    parents: Option<(PathBuf, PathBuf)>,
    /// The path `--exclude` sees for the match itself, if any.
    exclude_self: Option<String>,
}

/// What a step copies, in order.
#[derive(Debug)]
enum Item<'s> {
    Tree(Box<Matched>),
    Heredoc(&'s Heredoc),
    Url(&'s str),
}

/// Whether a COPY/ADD source is an http(s) URL.
pub fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

fn is_git(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    if l.starts_with("git@") || l.starts_with("git://") || l.starts_with("ssh://") {
        return true;
    }
    if !is_url(&l) {
        return false;
    }
    let path = l.split(['?', '#']).next().unwrap_or("");
    path.ends_with(".git") || l.contains(".git#")
}

fn heredoc_for<'s>(word: &str, heredocs: &'s [Heredoc]) -> Option<&'s Heredoc> {
    let name = word.strip_prefix("<<")?;
    let name = name.strip_prefix('-').unwrap_or(name);
    let name = name.trim_matches(|c| c == '"' || c == '\'');
    heredocs.iter().find(|h| h.name == name)
}

/// The destination, absolute and cleaned, and whether it names a directory.
fn dest_path(step: &CopyStep) -> (PathBuf, bool) {
    let d = step.dest.as_str();
    let dir = d.is_empty() || d == "." || d.ends_with('/') || d.ends_with("/.");
    let abs = if d.starts_with('/') {
        d.to_string()
    } else {
        format!("/{}/{}", step.workdir, d)
    };
    let clean = clean_path(&abs);
    (saferoot::relative(Path::new(&clean)), dir)
}

fn rel_of(p: &Path) -> PathBuf {
    let r = saferoot::relative(p);
    if r == Path::new(".") {
        PathBuf::new()
    } else {
        r
    }
}

/// The paths a source names: a plain path (which must exist), or a glob.
fn expand(fs: &SrcFs<'_>, written: &str, parents: bool) -> Result<Vec<Matched>> {
    let (pivot, rest) = match written.find("/./") {
        Some(i) if parents => (&written[..i], &written[i + 3..]),
        _ => ("", written),
    };
    let full = clean_path(&format!("/{pivot}/{rest}"));
    let comps: Vec<&str> = full.split('/').filter(|c| !c.is_empty()).collect();
    let pivot_comps = clean_path(&format!("/{pivot}"))
        .split('/')
        .filter(|c| !c.is_empty())
        .count();
    // A path that does not resolve is not found; other failures say why.
    let nf = |e: Errno| match e {
        Errno::ENOENT | Errno::ENOTDIR => fs.not_found(written),
        e => io_err(|| format!("resolve {written:?}"))(e),
    };
    let wild = comps.iter().position(|c| has_wildcards(c));
    let mut found: Vec<(PathBuf, OsString, Option<String>)> = Vec::new();
    match wild {
        None => {
            let rel: PathBuf = comps.iter().collect();
            let r = fs.resolve(&rel, !parents).map_err(nf)?;
            if !r.missing.is_empty() {
                return Err(fs.not_found(written));
            }
            let name = comps.last().map(OsString::from).unwrap_or_default();
            found.push((r.path, name, None));
        }
        Some(w) => {
            let base: PathBuf = comps[..w].iter().collect();
            let r = match fs.resolve(&base, true) {
                Ok(r) => r,
                Err(Errno::ENOTDIR) => return Ok(Vec::new()),
                Err(e) => return Err(io_err(|| format!("resolve {written:?}"))(e)),
            };
            if !r.missing.is_empty() || !r.st.as_ref().is_some_and(is_dir) {
                return Ok(Vec::new());
            }
            let mut hits = Vec::new();
            glob_walk(fs, &r.path, &comps[w..], parents, written, &mut hits)?;
            hits.sort();
            hits.dedup();
            for hit in hits {
                let below = hit.strip_prefix(&r.path).unwrap_or(&hit);
                let exclude_self = Some(below.to_string_lossy().into_owned());
                let name = hit.file_name().map(OsStr::to_os_string).unwrap_or_default();
                let path = if parents {
                    hit
                } else {
                    let r = fs.resolve(&hit, true).map_err(nf)?;
                    if !r.missing.is_empty() {
                        return Err(fs.not_found(&hit.to_string_lossy()));
                    }
                    r.path
                };
                found.push((path, name, exclude_self));
            }
        }
    }
    // With --parents, the path kept is the one below the pivot.
    let pivot = if parents {
        let p: PathBuf = comps[..pivot_comps.min(comps.len())].iter().collect();
        Some(fs.resolve(&p, true).map(|r| r.path).map_err(nf)?)
    } else {
        None
    };
    let mut out = Vec::new();
    for (path, name, exclude_self) in found {
        let st = lstat_in(&fs.root, &path).map_err(nf)?;
        let (parents, exclude_self) = match &pivot {
            Some(pivot) => {
                let kept = path.strip_prefix(pivot).unwrap_or(&path).to_path_buf();
                let exclude = kept.to_string_lossy().into_owned();
                (Some((pivot.clone(), kept)), Some(exclude))
            }
            None => (None, exclude_self),
        };
        out.push(Matched {
            written: written.into(),
            path,
            name,
            st,
            parents,
            exclude_self,
        });
    }
    Ok(out)
}

/// Matches `pats` (one per component) below the directory `dir`.
fn glob_walk(
    fs: &SrcFs<'_>,
    dir: &Path,
    pats: &[&str],
    double_star: bool,
    written: &str,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    let Some((&p, rest)) = pats.split_first() else {
        return Ok(());
    };
    let entries = fs.list(dir)?;
    if double_star && p == "**" {
        // Zero directories, then one or more.
        if rest.is_empty() {
            out.extend(entries.iter().map(|(n, _)| dir.join(n)));
            return Ok(());
        }
        glob_walk(fs, dir, rest, double_star, written, out)?;
        for (n, st) in &entries {
            if is_dir(st) {
                glob_walk(fs, &dir.join(n), pats, double_star, written, out)?;
            }
        }
        return Ok(());
    }
    for (n, st) in &entries {
        let m = match_component(p, &n.to_string_lossy()).ok_or_else(|| CopyError::Flag {
            flag: "source",
            value: written.into(),
            reason: "syntax error in pattern".into(),
        })?;
        if !m {
            continue;
        }
        if rest.is_empty() {
            out.push(dir.join(n));
        } else if is_dir(st) {
            glob_walk(fs, &dir.join(n), rest, double_star, written, out)?;
        }
    }
    Ok(())
}

/// The sources of a step, matched, in order; errors before anything is
/// written.
fn items<'s>(fs: &SrcFs<'_>, step: &'s CopyStep, flags: &Flags) -> Result<Vec<Item<'s>>> {
    let instruction = if step.add { "ADD" } else { "COPY" };
    let mut items = Vec::new();
    for s in &step.sources {
        if let Some(h) = heredoc_for(s, &step.heredocs) {
            items.push(Item::Heredoc(h));
            continue;
        }
        if is_url(s) || (step.add && is_git(s)) {
            if !step.add {
                return Err(CopyError::UrlInCopy { url: s.clone() });
            }
            if is_git(s) {
                return Err(CopyError::Git { url: s.clone() });
            }
            items.push(Item::Url(s));
            continue;
        }
        if let Some(c) = &flags.checksum {
            return Err(CopyError::Flag {
                flag: "checksum",
                value: c.clone(),
                reason: format!("only HTTP(S) sources can be verified, not {s:?}"),
            });
        }
        items.extend(
            expand(fs, s, flags.parents)?
                .into_iter()
                .map(|m| Item::Tree(Box::new(m))),
        );
    }
    // Heredocs not named among the words (the parser keeps them apart).
    for h in &step.heredocs {
        if !step
            .sources
            .iter()
            .any(|s| heredoc_for(s, &step.heredocs).is_some_and(|x| std::ptr::eq(x, h)))
        {
            items.push(Item::Heredoc(h));
        }
    }
    if items.is_empty() {
        return Err(CopyError::NoSources {
            instruction,
            detail: if step.sources.is_empty() {
                String::new()
            } else {
                format!(": {} matched nothing", step.sources.join(" "))
            },
        });
    }
    let (_, dir) = dest_path(step);
    if items.len() > 1 && !dir && !flags.parents {
        return Err(CopyError::DestNotDirectory {
            instruction,
            dest: step.dest.clone(),
        });
    }
    Ok(items)
}

/// One entry to copy.
#[derive(Debug)]
struct Node {
    /// Where it is in the source root.
    src: PathBuf,
    /// Where it goes, below the item's destination directory (empty: the
    /// destination itself).
    dst: PathBuf,
    st: FileStat,
}

/// The entries of a matched source, parents before children, with
/// `--exclude` applied.
fn nodes(fs: &SrcFs<'_>, m: &Matched, ex: Option<&IgnoreMatcher>) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    if let (Some(x), Some(e)) = (ex, &m.exclude_self) {
        if x.is_excluded(e) {
            return Ok(out);
        }
    }
    match &m.parents {
        Some((pivot, kept)) => {
            // The directories between the pivot and the match.
            let mut src = pivot.clone();
            let mut dst = PathBuf::new();
            let comps: Vec<_> = kept.components().collect();
            for c in comps.iter().take(comps.len().saturating_sub(1)) {
                src.push(c);
                dst.push(c);
                let st =
                    lstat_in(&fs.root, &src).map_err(io_err(|| format!("stat {}", shown(&src))))?;
                out.push(Node {
                    src: src.clone(),
                    dst: dst.clone(),
                    st,
                });
            }
            out.push(Node {
                src: m.path.clone(),
                dst: kept.clone(),
                st: m.st,
            });
            if is_dir(&m.st) {
                collect(fs, &m.path, kept, &kept.to_string_lossy(), ex, &mut out)?;
            }
        }
        None if is_dir(&m.st) => collect(fs, &m.path, Path::new(""), "", ex, &mut out)?,
        None => out.push(Node {
            src: m.path.clone(),
            dst: PathBuf::new(),
            st: m.st,
        }),
    }
    Ok(out)
}

fn collect(
    fs: &SrcFs<'_>,
    src: &Path,
    dst: &Path,
    xrel: &str,
    ex: Option<&IgnoreMatcher>,
    out: &mut Vec<Node>,
) -> Result<()> {
    for (name, st) in fs.list(src)? {
        let n = name.to_string_lossy();
        let x = if xrel.is_empty() {
            n.into_owned()
        } else {
            format!("{xrel}/{n}")
        };
        let excluded = ex.is_some_and(|m| m.is_excluded(&x));
        let node = Node {
            src: src.join(&name),
            dst: dst.join(&name),
            st,
        };
        if is_dir(&st) {
            if excluded && !ex.is_some_and(IgnoreMatcher::has_exceptions) {
                continue;
            }
            let mut sub = Vec::new();
            collect(fs, &node.src, &node.dst, &x, ex, &mut sub)?;
            if excluded && sub.is_empty() {
                continue;
            }
            out.push(node);
            out.append(&mut sub);
        } else if !excluded {
            out.push(node);
        }
    }
    Ok(())
}

/// The xattrs copied: `user.*` and file capabilities.
fn read_xattrs(fd: &impl AsRawFd) -> Vec<(CString, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length; the kernel writes at most
    // that many bytes.
    let n = unsafe {
        libc::flistxattr(
            fd.as_raw_fd(),
            names.as_mut_ptr().cast::<libc::c_char>(),
            names.len(),
        )
    };
    let Ok(n) = usize::try_from(n) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n.min(names.len())].split(|b| *b == 0) {
        if !(name.starts_with(b"user.") || name == b"security.capability") {
            continue;
        }
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 65536];
        // SAFETY: `cname` is NUL-terminated; the buffer is valid for its
        // length.
        let len = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                cname.as_ptr(),
                value.as_mut_ptr().cast::<libc::c_void>(),
                value.len(),
            )
        };
        if let Ok(len) = usize::try_from(len) {
            value.truncate(len);
            out.push((cname, value));
        }
    }
    out.sort();
    out
}

fn write_xattrs(fd: &impl AsRawFd, xattrs: &[(CString, Vec<u8>)], path: &Path) -> Result<()> {
    for (name, value) in xattrs {
        // SAFETY: `name` is NUL-terminated and `value` valid for its length.
        let rc = unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast::<libc::c_void>(),
                value.len(),
                0,
            )
        };
        match Errno::result(rc) {
            Ok(_) => {}
            // A destination file system without user xattrs loses them, as
            // BuildKit's copy tolerates.
            Err(Errno::ENOTSUP) if name.as_bytes().starts_with(b"user.") => {}
            Err(e) => {
                return Err(io_err(|| {
                    format!("set xattr {} on {}", name.to_string_lossy(), shown(path))
                })(e))
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The checksum

/// Feeds length-prefixed fields, so no two inputs hash alike.
struct Hasher(Sha256);

impl Hasher {
    fn field(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
    }
    fn num(&mut self, n: u64) {
        self.0.update(n.to_le_bytes());
    }
}

/// A content hash (`sha256:<hex>`) of everything the step would read: for
/// each matched source its name and, below it, relative names, file types,
/// modes, owners (only for [`Source::Rootfs`]: context owners are not
/// copied), symlink targets, copied xattrs and file bytes, never times;
/// heredoc bodies; ADD URLs as the URL and `--checksum`. The flags and the
/// destination (joined to the WORKDIR) are part of it. Sorted walks:
/// deterministic.
pub fn checksum(src: &Source<'_>, step: &CopyStep) -> Result<String, CopyError> {
    let flags = parse_flags(step)?;
    let fs = SrcFs::open(src)?;
    let items = items(&fs, step, &flags)?;
    let mut h = Hasher(Sha256::new());
    h.field(b"berth-copy-v1");
    h.field(if step.add { b"ADD" } else { b"COPY" });
    for f in &step.flags {
        h.field(f.name.as_bytes());
        h.field(f.value.as_deref().unwrap_or("\0").as_bytes());
    }
    let (dest, dest_dir) = dest_path(step);
    h.field(dest.as_os_str().as_bytes());
    h.num(u64::from(dest_dir));
    for item in &items {
        match item {
            Item::Heredoc(hd) => {
                h.field(b"heredoc");
                h.field(hd.name.as_bytes());
                h.field(hd.content.as_bytes());
            }
            Item::Url(u) => {
                h.field(b"url");
                h.field(u.as_bytes());
                h.field(flags.checksum.as_deref().unwrap_or("").as_bytes());
            }
            Item::Tree(m) => {
                h.field(b"source");
                h.field(m.written.as_bytes());
                h.field(m.name.as_bytes());
                h.num(u64::from(is_dir(&m.st)));
                for n in nodes(&fs, m, flags.excludes.as_ref())? {
                    hash_node(&fs, &mut h, &n)?;
                }
            }
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.0.finalize())))
}

fn hash_node(fs: &SrcFs<'_>, h: &mut Hasher, n: &Node) -> Result<()> {
    h.field(b"entry");
    h.field(n.dst.as_os_str().as_bytes());
    h.num(u64::from(n.st.st_mode));
    if !fs.context {
        h.num(u64::from(n.st.st_uid));
        h.num(u64::from(n.st.st_gid));
    }
    match kind(&n.st) {
        SFlag::S_IFREG => {
            let mut f = fs.open_file(&n.src)?;
            for (k, v) in read_xattrs(&f) {
                h.field(k.as_bytes());
                h.field(&v);
            }
            let mut inner = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            loop {
                let r = f
                    .read(&mut buf)
                    .map_err(io_err(|| format!("read {}", shown(&n.src))))?;
                if r == 0 {
                    break;
                }
                total += r as u64;
                inner.update(&buf[..r]);
            }
            h.num(total);
            h.field(&inner.finalize());
        }
        SFlag::S_IFDIR => {
            for (k, v) in read_xattrs(&fs.open_dir(&n.src)?) {
                h.field(k.as_bytes());
                h.field(&v);
            }
        }
        SFlag::S_IFLNK => h.field(fs.readlink(&n.src)?.as_bytes()),
        _ => h.num(n.st.st_rdev),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Owners

/// The uid:gid of a `--chown` value: Docker's classic builder's rules,
/// kept once in [`saferoot::userdb::resolve_chown`].
fn resolve_owner(spec: &str, users_root: &Path) -> Result<(u32, u32)> {
    let err = |reason: String| CopyError::Owner {
        spec: spec.into(),
        reason,
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(err("expected user[:group]".into()));
    }
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    for id in std::iter::once(user).chain(group).filter(|s| numeric(s)) {
        if id.parse::<u32>().is_err() {
            return Err(err(format!("id {id} is out of range")));
        }
    }
    let mut root = None;
    let files = |file: &str| -> Result<Option<String>> {
        if root.is_none() {
            root = Some(
                open_root(users_root)
                    .map_err(io_err(|| format!("open {}", users_root.display())))?,
            );
        }
        let Some(r) = root.as_ref() else {
            return Err(err("no users root".into()));
        };
        saferoot::userdb::read_in_root(r, file).map_err(|source| CopyError::Io {
            context: format!("read /{file}"),
            source,
        })
    };
    saferoot::userdb::resolve_chown(user, group, files, |miss| match miss {
        saferoot::userdb::ChownMiss::NoFile { file, what, name } => err(format!(
            "the image has no /{file} to look up {what} {name:?}"
        )),
        saferoot::userdb::ChownMiss::NoEntry { file, what, name } => {
            err(format!("no {what} {name:?} in the image's /{file}"))
        }
    })
}

// ---------------------------------------------------------------------------
// Archives

/// How an ADDed file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Whether `b` starts with a tar header: a valid header checksum (every
/// tar format has one), as Go's `tar.Reader.Next` would accept.
fn is_tar_header(b: &[u8]) -> bool {
    if b.len() < 512 || b[..512].iter().all(|x| *x == 0) {
        return false;
    }
    let field = &b[148..156];
    let digits: String = field
        .iter()
        .take_while(|c| **c != 0 && **c != b' ')
        .skip_while(|c| **c == b' ')
        .map(|c| char::from(*c))
        .collect();
    let Ok(want) = u32::from_str_radix(digits.trim(), 8) else {
        return false;
    };
    let sum: u32 = b[..512]
        .iter()
        .enumerate()
        .map(|(i, x)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*x)
            }
        })
        .sum();
    sum == want
}

/// Collects at most `limit` bytes, then refuses more.
struct Prefix {
    buf: Vec<u8>,
    limit: usize,
}

impl Write for Prefix {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let room = self.limit - self.buf.len();
        if room == 0 {
            return Err(io::Error::other("enough"));
        }
        let n = room.min(b.len());
        self.buf.extend_from_slice(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The compression of `file` if it is a tar archive (read from the start;
/// the offset is put back).
fn archive_kind(file: &mut File) -> io::Result<Option<Compression>> {
    let mut head = Vec::new();
    (&mut *file).take(512).read_to_end(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    let c = sniff(&head);
    let first = match c {
        Compression::None => head,
        Compression::Xz => {
            // Decode only the start: the writer refuses more.
            let mut p = Prefix {
                buf: Vec::new(),
                limit: 512,
            };
            let _ = lzma_rs::xz_decompress(&mut BufReader::new(&mut *file), &mut p);
            p.buf
        }
        _ => {
            let mut buf = Vec::new();
            let _ = with_decoded(c, &mut *file, |r| r.take(512).read_to_end(&mut buf));
            buf
        }
    };
    file.seek(SeekFrom::Start(0))?;
    Ok(is_tar_header(&first).then_some(c))
}

/// Runs `f` on the decompressed stream of `input`.
fn with_decoded<T>(
    c: Compression,
    input: &mut File,
    f: impl FnOnce(&mut dyn Read) -> io::Result<T>,
) -> io::Result<T> {
    match c {
        Compression::None => f(input),
        Compression::Gzip => f(&mut flate2::read::MultiGzDecoder::new(BufReader::new(
            input,
        ))),
        Compression::Bzip2 => f(&mut bzip2::read::MultiBzDecoder::new(input)),
        Compression::Zstd => f(&mut zstd::stream::read::Decoder::new(input)?),
        Compression::Xz => {
            // lzma-rs decodes into a writer: run it on a thread that feeds a
            // pipe, and drain the pipe afterwards so the decoder never
            // writes into a closed one.
            let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
            std::thread::scope(|s| {
                let decoder = s.spawn(move || {
                    let mut w = File::from(wr);
                    lzma_rs::xz_decompress(&mut BufReader::new(input), &mut w)
                        .map_err(|e| e.to_string())
                });
                let mut reader = File::from(rd);
                let out = f(&mut reader);
                let _ = io::copy(&mut reader, &mut io::sink());
                drop(reader);
                let decoded = decoder
                    .join()
                    .unwrap_or_else(|_| Err("the xz decoder failed".into()));
                let t = out?;
                decoded
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("xz: {e}")))?;
                Ok(t)
            })
        }
    }
}

// ---------------------------------------------------------------------------
// Downloads

/// A downloaded URL, verified.
#[derive(Debug)]
struct Download {
    file: File,
    mtime: Option<i64>,
}

fn download(agent: &ureq::Agent, url: &str, checksum: Option<&str>) -> Result<Download> {
    let fail = |reason: String| CopyError::Download {
        url: url.into(),
        reason,
    };
    let resp = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, r) => fail(format!("HTTP {code} {}", r.status_text())),
        ureq::Error::Transport(t) => fail(t.to_string()),
    })?;
    let mtime = resp.header("Last-Modified").and_then(parse_http_date);
    let mut file = tempfile::tempfile().map_err(io_err(|| "create a temporary file".into()))?;
    let mut reader = resp.into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(io_err(|| "write a temporary file".into()))?;
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if let Some(expected) = checksum {
        if expected != actual {
            return Err(CopyError::ChecksumMismatch {
                url: url.into(),
                expected: expected.into(),
                actual,
            });
        }
    }
    file.seek(SeekFrom::Start(0))
        .map_err(io_err(|| "rewind a temporary file".into()))?;
    Ok(Download { file, mtime })
}

/// The file name BuildKit gives a URL: its path's last segment, decoded.
fn url_file_name(url: &str) -> String {
    let after = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after.find('/').map_or("", |i| &after[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let decoded = percent_decode(last);
    if decoded.is_empty() || decoded == "." || decoded == ".." || decoded.contains('/') {
        "__unnamed__".into()
    } else {
        decoded
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = s.get(i + 1..i + 3).filter(|_| b[i] == b'%');
        if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)?;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, se] = hms.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let m = i64::try_from(month).ok()? + 1;
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

// ---------------------------------------------------------------------------
// The destination side

/// Owner, mode, times and xattrs of an entry being written.
#[derive(Debug, Clone)]
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    /// (atime, mtime); `None`: now.
    times: Option<(TimeSpec, TimeSpec)>,
}

fn times_of(st: &FileStat) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    )
}

struct Writer<'a> {
    root: OwnedFd,
    chown: Option<(u32, u32)>,
    chmod: Option<&'a Chmod>,
    context: bool,
    stats: CopyStats,
    /// Directories whose times are set once everything is in them.
    dir_times: Vec<(PathBuf, (TimeSpec, TimeSpec))>,
}

impl Writer<'_> {
    fn new_dir_owner(&self) -> (u32, u32) {
        self.chown.unwrap_or((0, 0))
    }

    fn meta(&self, st: &FileStat) -> Meta {
        let (uid, gid) = self.chown.unwrap_or(if self.context {
            (0, 0)
        } else {
            (st.st_uid, st.st_gid)
        });
        let mode = st.st_mode & 0o7777;
        Meta {
            uid,
            gid,
            mode: self.chmod.map_or(mode, |c| c.apply(mode, is_dir(st))),
            times: Some(times_of(st)),
        }
    }

    fn resolve(&self, rel: &Path) -> Result<Resolved> {
        resolve(&self.root, rel, true, &|_, _| true)
            .map_err(io_err(|| format!("resolve {}", shown(rel))))
    }

    fn open_dir(&self, rel: &Path) -> Result<OwnedFd> {
        saferoot::open_in_root(&self.root, rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(io_err(|| format!("open {}", shown(rel))))
    }

    /// `mkdir -p` inside the root, following the image's symlinks; made
    /// directories are 0755 and owned by the `--chown` user (else 0:0).
    /// Returns the resolved path.
    fn mkdir_p(&mut self, rel: &Path) -> Result<PathBuf> {
        let r = self.resolve(rel)?;
        if r.missing.is_empty() {
            if !r.st.as_ref().is_some_and(is_dir) {
                return Err(CopyError::Target {
                    path: shown(rel),
                    reason: "not a directory".into(),
                });
            }
            return Ok(r.path);
        }
        let mut cur = r.path;
        let mut dir = self.open_dir(&cur)?;
        let (uid, gid) = self.new_dir_owner();
        for name in &r.missing {
            cur.push(name);
            let ctx = || format!("mkdir {}", shown(&cur));
            nix::sys::stat::mkdirat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                Mode::from_bits_truncate(0o700),
            )
            .map_err(io_err(ctx))?;
            let fd = at_open(&dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
                .map_err(io_err(ctx))?;
            nix::unistd::fchown(fd.as_raw_fd(), Some(uid.into()), Some(gid.into()))
                .map_err(io_err(ctx))?;
            nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))
                .map_err(io_err(ctx))?;
            dir = fd;
        }
        Ok(cur)
    }

    /// Makes room for a non-directory `name` in `dir`.
    fn clear(&self, dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<()> {
        match nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_dir(&st) => Err(CopyError::Target {
                path: shown(path),
                reason: "cannot replace a directory with a non-directory".into(),
            }),
            Ok(_) => nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .map_err(io_err(|| format!("remove {}", shown(path)))),
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(io_err(|| format!("stat {}", shown(path)))(e)),
        }
    }

    /// Writes a regular file `name` in `dir` from `content`.
    fn write_file(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        path: &Path,
        content: &mut dyn Read,
        meta: &Meta,
        xattrs: &[(CString, Vec<u8>)],
    ) -> Result<()> {
        self.clear(dir, name, path)?;
        let ctx = || format!("write {}", shown(path));
        let fd = at_open(
            dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY,
            0o600,
        )
        .map_err(io_err(ctx))?;
        let mut out = File::from(fd);
        let n = io::copy(content, &mut out).map_err(io_err(ctx))?;
        // chown before chmod (it clears set-id bits) and before the xattrs
        // (it drops file capabilities).
        nix::unistd::fchown(
            out.as_raw_fd(),
            Some(meta.uid.into()),
            Some(meta.gid.into()),
        )
        .map_err(io_err(ctx))?;
        nix::sys::stat::fchmod(out.as_raw_fd(), Mode::from_bits_truncate(meta.mode))
            .map_err(io_err(ctx))?;
        write_xattrs(&out, xattrs, path)?;
        self.set_times(dir, name, path, meta.times)?;
        self.stats.files += 1;
        self.stats.bytes += n;
        Ok(())
    }

    fn set_times(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        path: &Path,
        times: Option<(TimeSpec, TimeSpec)>,
    ) -> Result<()> {
        let Some((a, m)) = times else { return Ok(()) };
        nix::sys::stat::utimensat(
            Some(dir.as_raw_fd()),
            name,
            &a,
            &m,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io_err(|| format!("set times of {}", shown(path))))
    }

    /// Copies one source entry to `name` in `dir`; returns the new
    /// directory's descriptor for a directory.
    fn place(
        &mut self,
        fs: &SrcFs<'_>,
        node: &Node,
        dir: &OwnedFd,
        name: &OsStr,
        path: &Path,
    ) -> Result<Option<OwnedFd>> {
        let meta = self.meta(&node.st);
        let ctx = || format!("copy {} to {}", shown(&node.src), shown(path));
        let raw = dir.as_raw_fd();
        match kind(&node.st) {
            SFlag::S_IFDIR => {
                match nix::sys::stat::fstatat(Some(raw), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) if is_dir(&st) => {}
                    Ok(_) => {
                        return Err(CopyError::Target {
                            path: shown(path),
                            reason: "cannot copy a directory onto a non-directory".into(),
                        })
                    }
                    Err(Errno::ENOENT) => {
                        nix::sys::stat::mkdirat(Some(raw), name, Mode::from_bits_truncate(0o700))
                            .map_err(io_err(ctx))?;
                    }
                    Err(e) => return Err(io_err(ctx)(e)),
                }
                let fd = at_open(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
                    .map_err(io_err(ctx))?;
                nix::unistd::fchown(fd.as_raw_fd(), Some(meta.uid.into()), Some(meta.gid.into()))
                    .map_err(io_err(ctx))?;
                nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(meta.mode))
                    .map_err(io_err(ctx))?;
                write_xattrs(&fd, &read_xattrs(&fs.open_dir(&node.src)?), path)?;
                self.dir_times
                    .push((path.to_path_buf(), times_of(&node.st)));
                self.stats.dirs += 1;
                return Ok(Some(fd));
            }
            SFlag::S_IFREG => {
                let mut src = fs.open_file(&node.src)?;
                let xattrs = read_xattrs(&src);
                self.write_file(dir, name, path, &mut src, &meta, &xattrs)?;
                return Ok(None);
            }
            SFlag::S_IFLNK => {
                let target = fs.readlink(&node.src)?;
                self.clear(dir, name, path)?;
                nix::unistd::symlinkat(target.as_os_str(), Some(raw), name).map_err(io_err(ctx))?;
                self.stats.symlinks += 1;
            }
            k => {
                self.clear(dir, name, path)?;
                nix::sys::stat::mknodat(
                    Some(raw),
                    name,
                    k,
                    Mode::from_bits_truncate(0o600),
                    node.st.st_rdev,
                )
                .map_err(io_err(ctx))?;
                let fd = at_open(dir, name, OFlag::O_PATH, 0).map_err(io_err(ctx))?;
                std::fs::set_permissions(
                    saferoot::fd_path(&fd),
                    std::os::unix::fs::PermissionsExt::from_mode(meta.mode),
                )
                .map_err(io_err(ctx))?;
                self.stats.special += 1;
            }
        }
        nix::unistd::fchownat(
            Some(raw),
            name,
            Some(meta.uid.into()),
            Some(meta.gid.into()),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io_err(ctx))?;
        self.set_times(dir, name, path, meta.times)?;
        Ok(None)
    }

    /// Places `nodes` (parents first) below the directory `top` (resolved).
    fn place_all(&mut self, fs: &SrcFs<'_>, top: &Path, nodes: &[Node]) -> Result<()> {
        let mut stack: Vec<(PathBuf, OwnedFd)> = vec![(PathBuf::new(), self.open_dir(top)?)];
        for n in nodes {
            let parent = n.dst.parent().unwrap_or(Path::new(""));
            while stack.last().is_some_and(|(p, _)| p != parent) {
                stack.pop();
            }
            let (Some((_, dir)), Some(name)) = (stack.last(), n.dst.file_name()) else {
                return Err(CopyError::Target {
                    path: shown(&top.join(&n.dst)),
                    reason: "entry outside the copied tree".into(),
                });
            };
            let path = top.join(&n.dst);
            if let Some(fd) = self.place(fs, n, dir, name, &path)? {
                stack.push((n.dst.clone(), fd));
            }
        }
        Ok(())
    }

    /// Sets the directory times recorded, deepest first.
    fn finish_dirs(&mut self) -> Result<()> {
        for (path, (a, m)) in std::mem::take(&mut self.dir_times).into_iter().rev() {
            let parent = path.parent().unwrap_or(Path::new(""));
            let Some(name) = path.file_name() else {
                continue;
            };
            let dir = self.open_dir(parent)?;
            self.set_times(&dir, name, &path, Some((a, m)))?;
        }
        Ok(())
    }

    /// Extracts the archive `file` into the directory `dest` (made if
    /// missing).
    fn extract(&mut self, mut file: File, c: Compression, what: &str, dest: &Path) -> Result<()> {
        let target = self.mkdir_p(dest)?;
        let dir = self.open_dir(&target)?;
        let owner = self.chown;
        let entries = with_decoded(c, &mut file, |r| {
            berth_image::layer::extract(
                r,
                dir,
                berth_image::layer::ExtractOptions {
                    owner,
                    ..Default::default()
                },
            )
            .map_err(io::Error::other)
        })
        .map_err(|e| CopyError::Extract {
            archive: what.into(),
            dest: shown(&target),
            reason: e.to_string(),
        })?;
        self.stats.archives += 1;
        self.stats.archive_entries += entries;
        Ok(())
    }

    /// Where a non-directory named `name` lands for the destination `dest`
    /// (`dir`: written as a directory): the parent directory (made,
    /// resolved) and the final name.
    fn file_target(&mut self, dest: &Path, dir: bool, name: &OsStr) -> Result<(PathBuf, OsString)> {
        let r = self.resolve(dest)?;
        let full: PathBuf = r
            .path
            .iter()
            .chain(r.missing.iter().map(OsStr::new))
            .collect();
        if dir || (r.missing.is_empty() && r.st.as_ref().is_some_and(is_dir)) {
            let d = self.mkdir_p(&full)?;
            return Ok((d, name.to_os_string()));
        }
        let parent = full.parent().unwrap_or(Path::new("")).to_path_buf();
        let Some(last) = full.file_name() else {
            return Err(CopyError::Target {
                path: shown(dest),
                reason: "not a file name".into(),
            });
        };
        let last = last.to_os_string();
        Ok((self.mkdir_p(&parent)?, last))
    }
}

fn default_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .build()
}

/// Performs the COPY/ADD into the root filesystem at `root` (a directory on
/// the host). Everything that can fail before writing (sources not found,
/// flags, owners, downloads and their checksums) fails before anything is
/// written.
pub fn apply(
    src: &Source<'_>,
    step: &CopyStep,
    root: &Path,
    opts: &ApplyOptions<'_>,
) -> Result<CopyStats, CopyError> {
    let flags = parse_flags(step)?;
    let fs = SrcFs::open(src)?;
    let items = items(&fs, step, &flags)?;
    let chown = flags
        .chown
        .as_deref()
        .map(|c| resolve_owner(c, opts.users_root))
        .transpose()?;
    let mut downloads = HashMap::new();
    let urls: Vec<&str> = items
        .iter()
        .filter_map(|i| match i {
            Item::Url(u) => Some(*u),
            _ => None,
        })
        .collect();
    if !urls.is_empty() {
        let default;
        let agent = match opts.http {
            Some(a) => a,
            None => {
                default = default_agent();
                &default
            }
        };
        for u in urls {
            downloads.insert(u, download(agent, u, flags.checksum.as_deref())?);
        }
    }
    let mut w = Writer {
        root: open_root(root).map_err(io_err(|| format!("open {}", root.display())))?,
        chown,
        chmod: flags.chmod.as_ref(),
        context: fs.context,
        stats: CopyStats::default(),
        dir_times: Vec::new(),
    };
    let (dest, dest_dir) = dest_path(step);
    let dest = rel_of(&dest);
    // The destination's directory (or its parent) first, as BuildKit does.
    if dest_dir {
        w.mkdir_p(&dest)?;
    } else if let Some(p) = dest.parent() {
        w.mkdir_p(p)?;
    }
    for item in &items {
        match item {
            Item::Heredoc(h) => {
                let (dir, name) = w.file_target(&dest, dest_dir, OsStr::new(&h.name))?;
                let d = w.open_dir(&dir)?;
                let (uid, gid) = w.new_dir_owner();
                let meta = Meta {
                    uid,
                    gid,
                    mode: flags
                        .chmod
                        .as_ref()
                        .map_or(0o644, |c| c.apply(0o644, false)),
                    times: None,
                };
                w.write_file(
                    &d,
                    &name,
                    &dir.join(&name),
                    &mut h.content.as_bytes(),
                    &meta,
                    &[],
                )?;
            }
            Item::Url(u) => {
                let Some(mut dl) = downloads.remove(u) else {
                    continue;
                };
                if flags.unpack == Some(true) {
                    let c = archive_kind(&mut dl.file).map_err(io_err(|| format!("read {u}")))?;
                    if let Some(c) = c {
                        w.extract(dl.file, c, u, &dest)?;
                        continue;
                    }
                }
                let name = url_file_name(u);
                let (dir, name) = w.file_target(&dest, dest_dir, OsStr::new(&name))?;
                let d = w.open_dir(&dir)?;
                let (uid, gid) = w.new_dir_owner();
                let meta = Meta {
                    uid,
                    gid,
                    mode: flags
                        .chmod
                        .as_ref()
                        .map_or(0o600, |c| c.apply(0o600, false)),
                    times: dl.mtime.map(|t| (TimeSpec::new(t, 0), TimeSpec::new(t, 0))),
                };
                w.write_file(&d, &name, &dir.join(&name), &mut dl.file, &meta, &[])?;
            }
            Item::Tree(m) => apply_tree(&mut w, &fs, step, &flags, m, &dest, dest_dir)?,
        }
    }
    w.finish_dirs()?;
    Ok(w.stats)
}

fn apply_tree(
    w: &mut Writer<'_>,
    fs: &SrcFs<'_>,
    step: &CopyStep,
    flags: &Flags,
    m: &Matched,
    dest: &Path,
    dest_dir: bool,
) -> Result<()> {
    let nodes = nodes(fs, m, flags.excludes.as_ref())?;
    if m.parents.is_some() {
        let top = w.mkdir_p(dest)?;
        return w.place_all(fs, &top, &nodes);
    }
    if is_dir(&m.st) {
        let r = w.resolve(dest)?;
        if r.missing.is_empty() && !r.st.as_ref().is_some_and(is_dir) {
            return Err(CopyError::Target {
                path: shown(dest),
                reason: format!("cannot copy directory {:?} onto a non-directory", m.written),
            });
        }
        let top = w.mkdir_p(dest)?;
        return w.place_all(fs, &top, &nodes);
    }
    let Some(node) = nodes.first() else {
        return Ok(()); // excluded
    };
    if step.add && kind(&m.st) == SFlag::S_IFREG && flags.unpack != Some(false) {
        let mut file = fs.open_file(&m.path)?;
        if let Some(c) =
            archive_kind(&mut file).map_err(io_err(|| format!("read {}", shown(&m.path))))?
        {
            return w.extract(file, c, &m.written, dest);
        }
    }
    let (dir, name) = w.file_target(dest, dest_dir, &m.name)?;
    let d = w.open_dir(&dir)?;
    let path = dir.join(&name);
    w.place(fs, node, &d, &name, &path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::Flag;
    use std::fs;
    use std::io::{BufRead, BufReader as StdBufReader};
    use std::net::TcpListener;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use tempfile::TempDir;

    fn step(add: bool, flags: &[&str], sources: &[&str], dest: &str) -> CopyStep {
        CopyStep {
            line: 1,
            add,
            flags: flags
                .iter()
                .map(|f| {
                    let f = f.trim_start_matches("--");
                    match f.split_once('=') {
                        Some((n, v)) => Flag {
                            name: n.into(),
                            value: Some(v.into()),
                        },
                        None => Flag {
                            name: f.into(),
                            value: None,
                        },
                    }
                })
                .collect(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: dest.into(),
            heredocs: Vec::new(),
            workdir: "/".into(),
        }
    }

    fn copy(flags: &[&str], sources: &[&str], dest: &str) -> CopyStep {
        step(false, flags, sources, dest)
    }

    /// A build context and a destination root.
    struct Env {
        ctx: TempDir,
        root: TempDir,
        ignore: Option<IgnoreMatcher>,
    }

    impl Env {
        fn new() -> Env {
            Env {
                ctx: tempfile::tempdir().unwrap(),
                root: tempfile::tempdir().unwrap(),
                ignore: None,
            }
        }
        fn file(&self, rel: &str, content: &str) -> PathBuf {
            let p = self.ctx.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, content).unwrap();
            p
        }
        fn src(&self) -> Source<'_> {
            Source::Context {
                dir: self.ctx.path(),
                ignore: self.ignore.as_ref(),
            }
        }
        fn run(&self, s: &CopyStep) -> Result<CopyStats> {
            apply(
                &self.src(),
                s,
                self.root.path(),
                &ApplyOptions {
                    users_root: self.root.path(),
                    http: None,
                },
            )
        }
        fn sum(&self, s: &CopyStep) -> String {
            checksum(&self.src(), s).unwrap()
        }
        fn out(&self, rel: &str) -> PathBuf {
            self.root.path().join(rel)
        }
        fn read(&self, rel: &str) -> String {
            fs::read_to_string(self.out(rel)).unwrap()
        }
    }

    fn set_mtime(p: &Path, secs: i64) {
        let t = TimeSpec::new(secs, 0);
        nix::sys::stat::utimensat(
            None,
            p,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_file_keeps_mode_and_mtime_and_is_owned_by_root() {
        let e = Env::new();
        let a = e.file("a.txt", "hello");
        std::os::unix::fs::chown(&a, Some(1234), Some(1234)).unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o4751)).unwrap();
        set_mtime(&a, 1_000_000);
        let stats = e.run(&copy(&[], &["a.txt"], "/dst/")).unwrap();
        assert_eq!((stats.files, stats.bytes), (1, 5));
        let out = e.out("dst/a.txt");
        let m = fs::metadata(&out).unwrap();
        assert_eq!(e.read("dst/a.txt"), "hello");
        assert_eq!(m.mode() & 0o7777, 0o4751);
        assert_eq!((m.uid(), m.gid()), (0, 0));
        assert_eq!(m.mtime(), 1_000_000);
        assert_eq!(mode(&e.out("dst")), 0o755);
    }

    #[test]
    fn destinations_as_docker_names_them() {
        let e = Env::new();
        e.file("a.txt", "a");
        // No trailing slash, missing: the file is named dest.
        e.run(&copy(&[], &["a.txt"], "/x/renamed")).unwrap();
        assert_eq!(e.read("x/renamed"), "a");
        // An existing directory keeps the source's name.
        fs::create_dir_all(e.out("existing")).unwrap();
        e.run(&copy(&[], &["a.txt"], "/existing")).unwrap();
        assert_eq!(e.read("existing/a.txt"), "a");
        // A relative destination is below the WORKDIR; "." is the WORKDIR.
        let mut s = copy(&[], &["a.txt"], "rel/");
        s.workdir = "/work".into();
        e.run(&s).unwrap();
        assert_eq!(e.read("work/rel/a.txt"), "a");
        let mut s = copy(&[], &["a.txt"], ".");
        s.workdir = "/w2".into();
        e.run(&s).unwrap();
        assert_eq!(e.read("w2/a.txt"), "a");
        // An existing file is replaced.
        e.file("b.txt", "b");
        e.run(&copy(&[], &["b.txt"], "/x/renamed")).unwrap();
        assert_eq!(e.read("x/renamed"), "b");
    }

    #[test]
    fn more_than_one_source_needs_a_directory_destination() {
        let e = Env::new();
        e.file("a.txt", "a");
        e.file("b.txt", "b");
        let err = e.run(&copy(&[], &["a.txt", "b.txt"], "/x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "COPY with more than one source file: the destination \"/x\" must be a directory and end with a /"
        );
        let err = e.run(&copy(&[], &["*.txt"], "/x")).unwrap_err();
        assert!(matches!(err, CopyError::DestNotDirectory { .. }));
        assert!(!e.out("x").exists());
        e.run(&copy(&[], &["*.txt"], "/x/")).unwrap();
        assert_eq!(e.read("x/b.txt"), "b");
    }

    #[test]
    fn a_directory_copies_its_contents_and_links_stay_links() {
        let e = Env::new();
        e.file("src/sub/deep.txt", "deep");
        e.file("src/top.txt", "top");
        fs::set_permissions(
            e.ctx.path().join("src/sub"),
            fs::Permissions::from_mode(0o701),
        )
        .unwrap();
        set_mtime(&e.ctx.path().join("src/sub"), 2_000_000);
        // The attack: a link to a host file is copied as the link itself.
        symlink("/etc/passwd", e.ctx.path().join("src/passwd")).unwrap();
        symlink("../../../../../etc/shadow", e.ctx.path().join("src/shadow")).unwrap();
        let stats = e.run(&copy(&[], &["src"], "/app")).unwrap();
        assert_eq!((stats.files, stats.dirs, stats.symlinks), (2, 1, 2));
        assert_eq!(e.read("app/top.txt"), "top");
        assert_eq!(e.read("app/sub/deep.txt"), "deep");
        assert!(!e.out("app/src").exists());
        assert_eq!(mode(&e.out("app/sub")), 0o701);
        assert_eq!(fs::metadata(e.out("app/sub")).unwrap().mtime(), 2_000_000);
        for (name, target) in [
            ("passwd", "/etc/passwd"),
            ("shadow", "../../../../../etc/shadow"),
        ] {
            let p = e.out(&format!("app/{name}"));
            assert!(fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
            assert_eq!(fs::read_link(&p).unwrap(), PathBuf::from(target));
        }
        // The destination directory made for the contents is 0755, root's.
        assert_eq!(mode(&e.out("app")), 0o755);
        // A directory cannot land on a file.
        e.file("f", "x");
        e.run(&copy(&[], &["f"], "/file")).unwrap();
        let err = e.run(&copy(&[], &["src"], "/file")).unwrap_err();
        assert!(err.to_string().contains("onto a non-directory"), "{err}");
    }

    #[test]
    fn sources_never_leave_the_context() {
        let e = Env::new();
        // `..` is clamped at the context root.
        let err = e.run(&copy(&[], &["../../etc/passwd"], "/x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"../../etc/passwd\": not found in the build context"
        );
        e.file("etc/passwd", "context's own");
        e.run(&copy(&[], &["../../etc/passwd"], "/x")).unwrap();
        assert_eq!(e.read("x"), "context's own");
        e.run(&copy(&[], &["/etc/passwd"], "/y")).unwrap();
        assert_eq!(e.read("y"), "context's own");
    }

    #[test]
    fn a_top_level_symlink_is_followed_inside_the_context() {
        let e = Env::new();
        symlink("/etc/hostname", e.ctx.path().join("abs")).unwrap();
        symlink("../../../etc/hostname", e.ctx.path().join("rel")).unwrap();
        symlink("dir", e.ctx.path().join("dirlink")).unwrap();
        e.file("dir/in.txt", "in");
        for l in ["abs", "rel"] {
            let err = e.run(&copy(&[], &[l], "/x")).unwrap_err();
            assert!(matches!(err, CopyError::NotFound { .. }), "{err}");
        }
        e.file("etc/hostname", "inside");
        e.run(&copy(&[], &["abs", "rel"], "/got/")).unwrap();
        // Followed, and named as written.
        assert_eq!(e.read("got/abs"), "inside");
        assert_eq!(e.read("got/rel"), "inside");
        assert!(!fs::symlink_metadata(e.out("got/abs"))
            .unwrap()
            .file_type()
            .is_symlink());
        e.run(&copy(&[], &["dirlink"], "/d/")).unwrap();
        assert_eq!(e.read("d/in.txt"), "in");
        // An intermediate symlink resolves inside the context too.
        symlink("/", e.ctx.path().join("up")).unwrap();
        e.run(&copy(&[], &["up/dir/in.txt"], "/via")).unwrap();
        assert_eq!(e.read("via"), "in");
    }

    #[test]
    fn globs_match_per_component() {
        let e = Env::new();
        e.file("a.txt", "a");
        e.file("b.txt", "b");
        e.file("c.md", "c");
        e.file("d1/x.txt", "x1");
        e.file("d2/y.txt", "y2");
        e.file("*lit", "star");
        e.run(&copy(&[], &["[ab].txt", "nomatch*"], "/g/")).unwrap();
        assert!(e.out("g/a.txt").exists() && e.out("g/b.txt").exists());
        assert!(!e.out("g/c.md").exists());
        // A directory matched copies its contents; `*` spans one component.
        e.run(&copy(&[], &["d?"], "/dirs/")).unwrap();
        assert_eq!(e.read("dirs/x.txt"), "x1");
        assert_eq!(e.read("dirs/y.txt"), "y2");
        e.run(&copy(&[], &["*/*.txt"], "/deep/")).unwrap();
        assert_eq!(e.read("deep/x.txt"), "x1");
        e.run(&copy(&[], &["[*]lit"], "/class")).unwrap();
        assert_eq!(e.read("class"), "star");
        e.run(&copy(&[], &["\\*li?"], "/esc")).unwrap();
        assert_eq!(e.read("esc"), "star");
        let err = e
            .run(&copy(&[], &["nomatch*", "none?"], "/n/"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "COPY failed: no source files were specified: nomatch* none? matched nothing"
        );
        let err = e
            .run(&copy(&[], &["missing.txt", "a.txt"], "/n/"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"missing.txt\": not found in the build context"
        );
    }

    #[test]
    fn dockerignored_paths_do_not_exist() {
        let mut e = Env::new();
        e.file("app/main.rs", "fn main");
        e.file("app/secret.key", "s1");
        e.file("secret.key", "s2");
        e.file("docs/a.md", "a");
        e.file("docs/keep.md", "keep");
        e.ignore =
            Some(IgnoreMatcher::parse(".dockerignore", "**/*.key\ndocs\n!docs/keep.md\n").unwrap());
        let before = e.sum(&copy(&[], &["."], "/ctx/"));
        e.run(&copy(&[], &["."], "/ctx/")).unwrap();
        assert!(e.out("ctx/app/main.rs").exists());
        assert!(!e.out("ctx/app/secret.key").exists());
        assert!(!e.out("ctx/secret.key").exists());
        assert!(!e.out("ctx/docs/a.md").exists());
        assert_eq!(e.read("ctx/docs/keep.md"), "keep");
        let err = e.run(&copy(&[], &["secret.key"], "/x")).unwrap_err();
        assert!(matches!(err, CopyError::NotFound { .. }));
        let err = e.run(&copy(&[], &["*.key"], "/x")).unwrap_err();
        assert!(matches!(err, CopyError::NoSources { .. }));
        e.run(&copy(&[], &["docs"], "/d/")).unwrap();
        assert!(e.out("d/keep.md").exists() && !e.out("d/a.md").exists());
        // Ignored files are not hashed: changing them changes nothing.
        fs::write(e.ctx.path().join("app/secret.key"), "rotated").unwrap();
        fs::write(e.ctx.path().join("docs/a.md"), "edited").unwrap();
        assert_eq!(e.sum(&copy(&[], &["."], "/ctx/")), before);
        fs::write(e.ctx.path().join("docs/keep.md"), "edited").unwrap();
        assert_ne!(e.sum(&copy(&[], &["."], "/ctx/")), before);
        // A symlink to an ignored file leads nowhere.
        symlink("secret.key", e.ctx.path().join("alias")).unwrap();
        assert!(matches!(
            e.run(&copy(&[], &["alias"], "/x")).unwrap_err(),
            CopyError::NotFound { .. }
        ));
    }

    #[test]
    fn checksum_sees_content_modes_and_names_but_not_times() {
        let e = Env::new();
        let a = e.file("d/a.txt", "one");
        let s = copy(&[], &["d"], "/x/");
        let first = e.sum(&s);
        assert!(first.starts_with("sha256:") && first.len() == 71);
        set_mtime(&a, 12345);
        set_mtime(&e.ctx.path().join("d"), 999);
        assert_eq!(e.sum(&s), first);
        fs::write(&a, "two").unwrap();
        let content = e.sum(&s);
        assert_ne!(content, first);
        fs::set_permissions(&a, fs::Permissions::from_mode(0o600)).unwrap();
        let moded = e.sum(&s);
        assert_ne!(moded, content);
        fs::rename(&a, e.ctx.path().join("d/b.txt")).unwrap();
        assert_ne!(e.sum(&s), moded);
        // Context owners are not copied, so not hashed.
        let b = e.ctx.path().join("d/b.txt");
        let named = e.sum(&s);
        std::os::unix::fs::chown(&b, Some(7), Some(7)).unwrap();
        assert_eq!(e.sum(&s), named);
        // They are for a rootfs source, whose owners are kept.
        let r1 = checksum(&Source::Rootfs(e.ctx.path()), &s).unwrap();
        std::os::unix::fs::chown(&b, Some(8), Some(8)).unwrap();
        assert_ne!(checksum(&Source::Rootfs(e.ctx.path()), &s).unwrap(), r1);
        // Flags count.
        assert_ne!(e.sum(&copy(&["--chmod=700"], &["d"], "/x/")), named);
        assert_ne!(e.sum(&copy(&["--chown=1"], &["d"], "/x/")), named);
        // Symlink targets count.
        symlink("t1", e.ctx.path().join("d/l")).unwrap();
        let l1 = e.sum(&s);
        fs::remove_file(e.ctx.path().join("d/l")).unwrap();
        symlink("t2", e.ctx.path().join("d/l")).unwrap();
        assert_ne!(e.sum(&s), l1);
    }

    #[test]
    fn chown_by_number_and_by_name() {
        let e = Env::new();
        e.file("a", "a");
        let n = e.run(&copy(&["--chown=1001"], &["a"], "/n/made/")).unwrap();
        assert_eq!(n.files, 1);
        let m = fs::metadata(e.out("n/made/a")).unwrap();
        // A uid without a gid uses the same number as the gid.
        assert_eq!((m.uid(), m.gid()), (1001, 1001));
        // Directories the step makes get the owner too.
        let d = fs::metadata(e.out("n/made")).unwrap();
        assert_eq!((d.uid(), d.gid()), (1001, 1001));
        let err = e.run(&copy(&["--chown=app"], &["a"], "/x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--chown=app: the image has no /etc/passwd to look up user \"app\""
        );
        fs::create_dir_all(e.out("etc")).unwrap();
        fs::write(
            e.out("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:500:600::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(e.out("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        // A name alone is name:name, as Docker 20.10's classic builder
        // takes it: without a group "app", an error (dockerd: "can't find
        // gid for group app")...
        let err = e.run(&copy(&["--chown=app"], &["a"], "/u1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--chown=app: no group \"app\" in the image's /etc/group"
        );
        // ...and with one, its gid, not the passwd entry's primary group.
        fs::write(e.out("etc/group"), "root:x:0:\nstaff:x:50:\napp:x:700:\n").unwrap();
        e.run(&copy(&["--chown=app"], &["a"], "/u1")).unwrap();
        let m = fs::metadata(e.out("u1")).unwrap();
        assert_eq!((m.uid(), m.gid()), (500, 700));
        e.run(&copy(&["--chown=app:staff"], &["a"], "/u2")).unwrap();
        let m = fs::metadata(e.out("u2")).unwrap();
        assert_eq!((m.uid(), m.gid()), (500, 50));
        e.run(&copy(&["--chown=7:staff"], &["a"], "/u3")).unwrap();
        assert_eq!(fs::metadata(e.out("u3")).unwrap().gid(), 50);
        let err = e.run(&copy(&["--chown=nobody"], &["a"], "/x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--chown=nobody: no user \"nobody\" in the image's /etc/passwd"
        );
        let err = e
            .run(&copy(&["--chown=app:wheel"], &["a"], "/x"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--chown=app:wheel: no group \"wheel\" in the image's /etc/group"
        );
        assert!(e.run(&copy(&["--chown=:1"], &["a"], "/x")).is_err());
        assert!(e
            .run(&copy(&["--chown=99999999999"], &["a"], "/x"))
            .is_err());
        // The users root is read inside itself: a planted absolute symlink
        // does not reach the host's /etc/passwd.
        let other = tempfile::tempdir().unwrap();
        fs::create_dir_all(other.path().join("etc")).unwrap();
        // The host has /etc/group with a root line; the users root has none.
        symlink("/etc/group", other.path().join("etc/passwd")).unwrap();
        let err = apply(
            &e.src(),
            &copy(&["--chown=root"], &["a"], "/x"),
            e.root.path(),
            &ApplyOptions {
                users_root: other.path(),
                http: None,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("no /etc/passwd"), "{err}");
    }

    #[test]
    fn chmod_octal_and_symbolic() {
        let p = |s| Chmod::parse(s).unwrap();
        assert_eq!(p("755").apply(0o600, false), 0o755);
        assert_eq!(p("0644").apply(0o777, true), 0o644);
        assert_eq!(p("u+x").apply(0o644, false), 0o744);
        assert_eq!(p("g-w,o-rwx").apply(0o775, false), 0o750);
        assert_eq!(p("a=r").apply(0o777, false), 0o444);
        assert_eq!(p("a=rX").apply(0o600, true), 0o555);
        assert_eq!(p("a=rX").apply(0o600, false), 0o444);
        assert_eq!(p("+x").apply(0o600, false), 0o711);
        assert_eq!(p("g=u").apply(0o740, false), 0o770);
        assert_eq!(p("u+s").apply(0o755, false), 0o4755);
        assert_eq!(p("o+t").apply(0o777, true), 0o1777);
        for bad in ["9", "77777", "u+q", "z+x", "u", "u+x,"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
        let e = Env::new();
        e.file("d/f", "f");
        e.run(&copy(&["--chmod=go-rwx"], &["d"], "/m/")).unwrap();
        assert_eq!(mode(&e.out("m/f")), 0o600);
        e.run(&copy(&["--chmod=0750"], &["."], "/o/")).unwrap();
        assert_eq!(mode(&e.out("o/d")), 0o750);
        assert_eq!(mode(&e.out("o/d/f")), 0o750);
        let err = e.run(&copy(&["--chmod=abc"], &["d"], "/m/")).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid --chmod=\"abc\""),
            "{err}"
        );
    }

    #[test]
    fn parents_keep_the_source_path() {
        let e = Env::new();
        e.file("x/a.txt", "xa");
        e.file("y/a.txt", "ya");
        e.file("a/b/c/d.txt", "d");
        e.file("src/one/package.json", "1");
        e.file("src/two/three/package.json", "3");
        fs::set_permissions(e.ctx.path().join("x"), fs::Permissions::from_mode(0o711)).unwrap();
        e.run(&copy(
            &["--parents"],
            &["./x/a.txt", "./y/a.txt"],
            "/parents/",
        ))
        .unwrap();
        assert_eq!(e.read("parents/x/a.txt"), "xa");
        assert_eq!(e.read("parents/y/a.txt"), "ya");
        assert_eq!(mode(&e.out("parents/x")), 0o711);
        e.run(&copy(&["--parents"], &["./a/./b/c/d.txt"], "/pivot/"))
            .unwrap();
        assert_eq!(e.read("pivot/b/c/d.txt"), "d");
        e.run(&copy(&["--parents"], &["src/**/package.json"], "/pj/"))
            .unwrap();
        assert_eq!(e.read("pj/src/one/package.json"), "1");
        assert_eq!(e.read("pj/src/two/three/package.json"), "3");
        e.run(&copy(&["--parents"], &["a/b"], "/dir/")).unwrap();
        assert_eq!(e.read("dir/a/b/c/d.txt"), "d");
        // The root itself as a destination.
        e.run(&copy(&[], &["x"], "/")).unwrap();
        assert_eq!(e.read("a.txt"), "xa");
        // Without --parents, the same sources collide into one directory.
        e.run(&copy(&[], &["./x/a.txt", "./y/a.txt"], "/flat/"))
            .unwrap();
        assert_eq!(e.read("flat/a.txt"), "ya");
    }

    #[test]
    fn exclude_patterns() {
        let e = Env::new();
        e.file("dir/a.txt", "a");
        e.file("dir/b.md", "b");
        e.file("dir/sub/c.md", "c");
        e.file("dir/sub/keep.md", "k");
        e.file("home.txt", "h");
        e.file("homer.md", "m");
        e.run(&copy(&["--exclude=*.md"], &["dir"], "/e1/")).unwrap();
        assert!(e.out("e1/a.txt").exists() && !e.out("e1/b.md").exists());
        // `*.md` matches one component: sub/c.md stays.
        assert!(e.out("e1/sub/c.md").exists());
        e.run(&copy(
            &["--exclude=**/*.md", "--exclude=!sub/keep.md"],
            &["dir"],
            "/e2/",
        ))
        .unwrap();
        assert!(!e.out("e2/sub/c.md").exists() && e.out("e2/sub/keep.md").exists());
        e.run(&copy(&["--exclude=sub"], &["dir"], "/e3/")).unwrap();
        assert!(!e.out("e3/sub").exists());
        // The reference's example: hom* without *.txt.
        e.run(&copy(&["--exclude=*.txt"], &["hom*"], "/mydir/"))
            .unwrap();
        assert!(!e.out("mydir/home.txt").exists() && e.out("mydir/homer.md").exists());
        let a = e.sum(&copy(&["--exclude=*.md"], &["dir"], "/e1/"));
        fs::write(e.ctx.path().join("dir/b.md"), "changed").unwrap();
        assert_eq!(e.sum(&copy(&["--exclude=*.md"], &["dir"], "/e1/")), a);
    }

    #[test]
    fn heredocs_become_files() {
        let e = Env::new();
        let mut s = copy(&[], &["<<EOF"], "/etc/motd");
        s.heredocs = vec![Heredoc {
            name: "EOF".into(),
            content: "hello\n".into(),
            expand: true,
            strip_tabs: false,
        }];
        e.run(&s).unwrap();
        assert_eq!(e.read("etc/motd"), "hello\n");
        assert_eq!(mode(&e.out("etc/motd")), 0o644);
        let mut s = copy(&["--chmod=755"], &["<<A", "<<'B'"], "/bin/");
        s.heredocs = vec![
            Heredoc {
                name: "A".into(),
                content: "a".into(),
                expand: true,
                strip_tabs: false,
            },
            Heredoc {
                name: "B".into(),
                content: "b".into(),
                expand: false,
                strip_tabs: false,
            },
        ];
        let sum = e.sum(&s);
        e.run(&s).unwrap();
        assert_eq!(e.read("bin/A"), "a");
        assert_eq!(e.read("bin/B"), "b");
        assert_eq!(mode(&e.out("bin/B")), 0o755);
        s.heredocs[1].content = "c".into();
        assert_ne!(e.sum(&s), sum);
    }

    #[test]
    fn image_symlinks_at_the_destination_stay_inside_the_root() {
        let e = Env::new();
        e.file("a.txt", "planted");
        e.file("d/b.txt", "b");
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), e.out("etc")).unwrap();
        symlink("../../../../../../", e.out("up")).unwrap();
        e.run(&copy(&[], &["a.txt"], "/etc/x")).unwrap();
        e.run(&copy(&[], &["d"], "/etc/dir/")).unwrap();
        e.run(&copy(&[], &["a.txt"], "/up/tmp/y")).unwrap();
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        let inside = e
            .root
            .path()
            .join(outside.path().strip_prefix("/").unwrap());
        assert_eq!(fs::read_to_string(inside.join("x")).unwrap(), "planted");
        assert_eq!(fs::read_to_string(inside.join("dir/b.txt")).unwrap(), "b");
        assert_eq!(e.read("tmp/y"), "planted");
        // A link in the image where a copied directory's child goes is an
        // error, not a way through.
        fs::create_dir_all(e.out("app")).unwrap();
        symlink(outside.path(), e.out("app/d")).unwrap();
        e.file("tree/d/f", "f");
        let err = e.run(&copy(&[], &["tree"], "/app/")).unwrap_err();
        assert!(err.to_string().contains("non-directory"), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // A file replaces a link, never writes through it.
        symlink(outside.path().join("victim"), e.out("app/f")).unwrap();
        e.file("f", "new");
        e.run(&copy(&[], &["f"], "/app/")).unwrap();
        assert!(!outside.path().join("victim").exists());
        assert_eq!(e.read("app/f"), "new");
    }

    #[test]
    fn rootfs_sources_keep_owners_and_special_files() {
        let e = Env::new();
        e.file("usr/bin/tool", "bin");
        std::os::unix::fs::chown(e.ctx.path().join("usr/bin/tool"), Some(42), Some(43)).unwrap();
        nix::unistd::mkfifo(
            &e.ctx.path().join("usr/fifo"),
            Mode::from_bits_truncate(0o640),
        )
        .unwrap();
        let s = copy(&[], &["/usr"], "/copied/");
        let stats = apply(
            &Source::Rootfs(e.ctx.path()),
            &s,
            e.root.path(),
            &ApplyOptions {
                users_root: e.root.path(),
                http: None,
            },
        )
        .unwrap();
        assert_eq!(stats.special, 1);
        let m = fs::metadata(e.out("copied/bin/tool")).unwrap();
        assert_eq!((m.uid(), m.gid()), (42, 43));
        let f = fs::symlink_metadata(e.out("copied/fifo")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&f.file_type()));
        assert_eq!(f.mode() & 0o7777, 0o640);
        // Devices are copied as BuildKit does; context sockets are skipped.
        nix::sys::stat::mknod(
            &e.ctx.path().join("usr/null"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(e.ctx.path().join("usr/sock")).unwrap();
        // From the context, owners are dropped.
        let stats = e.run(&s).unwrap();
        assert_eq!(stats.special, 2);
        assert!(!e.out("copied/sock").exists());
        assert!(matches!(
            e.run(&copy(&[], &["usr/sock"], "/s")).unwrap_err(),
            CopyError::NotFound { .. }
        ));
        let dev = fs::symlink_metadata(e.out("copied/null")).unwrap();
        assert_eq!(dev.rdev(), nix::sys::stat::makedev(1, 3));
        let m = fs::metadata(e.out("copied/bin/tool")).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0));
    }

    #[test]
    fn xattrs_and_hard_links() {
        let e = Env::new();
        let a = e.file("d/a", "same");
        fs::hard_link(&a, e.ctx.path().join("d/b")).unwrap();
        let name = CString::new("user.berth").unwrap();
        // SAFETY: valid NUL-terminated path and name; value valid for its length.
        let rc = unsafe {
            let p = CString::new(a.as_os_str().as_bytes()).unwrap();
            libc::setxattr(p.as_ptr(), name.as_ptr(), b"v".as_ptr().cast(), 1, 0)
        };
        e.run(&copy(&[], &["d"], "/x/")).unwrap();
        // Hard links are copied as separate files.
        let (ma, mb) = (
            fs::metadata(e.out("x/a")).unwrap(),
            fs::metadata(e.out("x/b")).unwrap(),
        );
        assert_ne!(ma.ino(), mb.ino());
        assert_eq!(e.read("x/b"), "same");
        if rc == 0 {
            let f = File::open(e.out("x/a")).unwrap();
            assert_eq!(read_xattrs(&f), vec![(name, b"v".to_vec())]);
        }
    }

    fn tar_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_path(name).unwrap();
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn add_extracts_local_archives_by_content() {
        let e = Env::new();
        let tar = tar_bytes(&[("dir/f.txt", b"inside")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&tar).unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &tar[..], &mut xz).unwrap();
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        let archives = [
            ("plain.bin", tar.clone()),
            ("a.tgz", gz.finish().unwrap()),
            ("a.tbz", bz.finish().unwrap()),
            ("a.txz", xz),
            ("a.tzst", zst),
        ];
        for (name, data) in &archives {
            fs::write(e.ctx.path().join(name), data).unwrap();
            let dest = format!("/out-{name}");
            let stats = e.run(&step(true, &[], &[name], &dest)).unwrap();
            assert_eq!(stats.archives, 1, "{name}");
            assert_eq!(e.read(&format!("out-{name}/dir/f.txt")), "inside", "{name}");
        }
        // --unpack=false copies; COPY never extracts.
        e.run(&step(true, &["--unpack=false"], &["a.tgz"], "/kept/"))
            .unwrap();
        assert!(e.out("kept/a.tgz").is_file());
        e.run(&copy(&[], &["plain.bin"], "/cp")).unwrap();
        assert!(e.out("cp").is_file());
        // A gzip that is not a tar is copied as it is.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"just text").unwrap();
        fs::write(e.ctx.path().join("notes.gz"), gz.finish().unwrap()).unwrap();
        let stats = e.run(&step(true, &[], &["notes.gz"], "/n/")).unwrap();
        assert_eq!(stats.archives, 0);
        assert!(e.out("n/notes.gz").is_file());
        // --chown owns every extracted entry.
        e.run(&step(true, &["--chown=5:6"], &["a.tgz"], "/owned"))
            .unwrap();
        let m = fs::metadata(e.out("owned/dir/f.txt")).unwrap();
        assert_eq!((m.uid(), m.gid()), (5, 6));
    }

    /// A raw tar header with any name (the tar crate refuses `..`).
    fn raw_entry(out: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    #[test]
    fn add_of_a_hostile_archive_stays_inside_the_destination() {
        let e = Env::new();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().to_string();
        let mut t = Vec::new();
        raw_entry(&mut t, "../../../../escape-dotdot", b'0', "", b"x");
        raw_entry(&mut t, &format!("{target}/escape-abs"), b'0', "", b"x");
        raw_entry(&mut t, "link", b'2', &target, b"");
        raw_entry(&mut t, "link/through-link", b'0', "", b"x");
        raw_entry(&mut t, "rel", b'2', "../../../../../../../..", b"");
        raw_entry(&mut t, &format!("rel{target}/through-rel"), b'0', "", b"x");
        t.extend_from_slice(&[0u8; 1024]);
        assert!(is_tar_header(&t));
        fs::write(e.ctx.path().join("evil.tar"), &t).unwrap();
        e.run(&step(true, &[], &["evil.tar"], "/dest/")).unwrap();
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(!e.root.path().join("escape-dotdot").exists());
        assert!(e.out("dest/escape-dotdot").is_file());
        let inner = e
            .out("dest")
            .join(outside.path().strip_prefix("/").unwrap());
        assert!(inner.join("escape-abs").is_file());
        assert!(inner.join("through-link").is_file());
        assert!(inner.join("through-rel").is_file());
    }

    /// Serves `body` on 127.0.0.1 for `n` requests; returns the base URL.
    fn serve(n: usize, body: &'static [u8], headers: &'static str) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in l.incoming().take(n) {
                let Ok(mut c) = conn else { return };
                let mut r = StdBufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
                    body.len()
                );
                let _ = c.write_all(body);
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn add_downloads_urls() {
        let e = Env::new();
        let base = serve(
            4,
            b"payload",
            "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
        );
        let url = format!("{base}/files/tool%20v1.bin?x=1");
        e.run(&step(true, &[], &[&url], "/opt/")).unwrap();
        let p = e.out("opt/tool v1.bin");
        assert_eq!(fs::read(&p).unwrap(), b"payload");
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
        assert_eq!(m.mtime(), 784_111_777);
        // A good checksum passes; a bad one fails before anything is written.
        let good = format!(
            "--checksum=sha256:{}",
            hex::encode(Sha256::digest(b"payload"))
        );
        e.run(&step(true, &[&good], &[&url], "/ok")).unwrap();
        assert_eq!(fs::read(e.out("ok")).unwrap(), b"payload");
        e.file("local", "l");
        let bad = format!("--checksum=sha256:{}", "0".repeat(64));
        let err = e.run(&step(true, &[&bad], &[&url], "/bad/")).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(!e.out("bad").exists());
        // The checksum of a URL step is the URL and --checksum.
        let a = e.sum(&step(true, &[&good], &[&url], "/ok"));
        assert_ne!(a, e.sum(&step(true, &[&bad], &[&url], "/ok")));
        // URLs are extracted only with --unpack=true.
        let tar: &'static [u8] = Box::leak(tar_bytes(&[("t/in.txt", b"t")]).into_boxed_slice());
        let base3 = serve(2, tar, "");
        e.run(&step(true, &[], &[&format!("{base3}/a.tar")], "/raw/"))
            .unwrap();
        assert!(e.out("raw/a.tar").is_file());
        let stats = e
            .run(&step(
                true,
                &["--unpack=true"],
                &[&format!("{base3}/a.tar")],
                "/unpacked",
            ))
            .unwrap();
        assert_eq!(stats.archives, 1);
        assert_eq!(e.read("unpacked/t/in.txt"), "t");
        let base2 = serve(1, b"", "");
        e.run(&step(true, &[], &[&format!("{base2}/")], "/un/"))
            .unwrap();
        assert!(e.out("un/__unnamed__").is_file());
    }

    #[test]
    fn refusals_are_one_line_errors() {
        let e = Env::new();
        e.file("a", "a");
        let cases: Vec<(CopyStep, &str)> = vec![
            (
                copy(&[], &["http://example.invalid/x"], "/x"),
                "COPY does not accept URLs (http://example.invalid/x): use ADD",
            ),
            (
                step(true, &[], &["https://github.com/moby/moby.git"], "/x"),
                "ADD of a git repository is not implemented yet: https://github.com/moby/moby.git",
            ),
            (
                step(true, &[], &["git@github.com:moby/moby"], "/x"),
                "ADD of a git repository is not implemented yet: git@github.com:moby/moby",
            ),
            (
                step(true, &["--checksum=md5:00"], &["a"], "/x"),
                "invalid --checksum=\"md5:00\": expected sha256:<64 hex digits>",
            ),
            (
                copy(&[], &[], "/x"),
                "COPY failed: no source files were specified",
            ),
            (
                copy(&["--parents=maybe"], &["a"], "/x"),
                "invalid --parents=\"maybe\": expected true or false",
            ),
            (
                copy(&["--exclude=[x"], &["a"], "/x"),
                "invalid --exclude=\"[x\": syntax error in pattern",
            ),
        ];
        for (s, want) in cases {
            let err = e.run(&s).unwrap_err().to_string();
            assert_eq!(err, want);
            assert!(!err.contains('\n'));
        }
        let sum = format!("--checksum=sha256:{}", "a".repeat(64));
        let err = e.run(&step(true, &[&sum], &["a"], "/x")).unwrap_err();
        assert!(err.to_string().contains("only HTTP(S) sources"), "{err}");
        // Garbage never panics.
        for src in [
            "",
            "/",
            "..",
            "[",
            "\\",
            "a/../../..",
            "*/*/*/*",
            "<<",
            "<<X",
        ] {
            let _ = e.run(&copy(&[], &[src], "/g/"));
            let _ = checksum(&e.src(), &copy(&["--parents"], &[src], "/g/"));
        }
    }

    #[test]
    fn small_parsers() {
        assert_eq!(url_file_name("https://h/a/b.tar.gz?x#y"), "b.tar.gz");
        assert_eq!(url_file_name("https://h"), "__unnamed__");
        assert_eq!(url_file_name("https://h/dir/"), "dir");
        assert_eq!(url_file_name("https://h/%2e%2e"), "__unnamed__");
        assert_eq!(url_file_name("https://h/a%2Fb"), "__unnamed__");
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert!(!is_tar_header(&[0u8; 512]));
        assert!(!is_tar_header(b"short"));
        assert!(is_tar_header(&tar_bytes(&[("x", b"1")])));
        assert_eq!(sniff(b"BZh91AY"), Compression::Bzip2);
        assert!(
            is_git("git://h/r") && is_git("https://h/r.git#main") && !is_git("https://h/r.tar")
        );
    }
}
