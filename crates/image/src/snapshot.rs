//! Overlay snapshots: a container's root filesystem as overlayfs over the
//! unpacked layers of its image, and the reverse, the container's changes
//! (its upper directory) written out as a new layer.
//!
//! Mounting uses the new mount API (`fsopen`, `fsconfig`, `fsmount`,
//! `move_mount`) and passes every lower layer with its own
//! `fsconfig("lowerdir+")` call (Linux 6.8). The classic `mount(2)` takes
//! all options as one string of at most a page, so `lowerdir=a:b:c` stops
//! at a few dozen layers, fewer as store paths get longer; images with 128
//! layers and more exist. `mount(2)` remains the fallback where the new API
//! is missing (ENOSYS, as some seccomp filters answer) or lacks `lowerdir+`,
//! and a mount that does not fit in its page is refused with an error that
//! names the limit rather than cut short.
//!
//! The diff walks the upper directory without ever following a symlink: the
//! upper directory belongs to the container, which may replace any directory
//! on the way with a symlink to the host's `/`. Every lookup is resolved
//! inside the upper directory (saferoot, `openat2(RESOLVE_IN_ROOT)`) and the
//! final component is never followed, so a diff can only ever read what the
//! container itself can (CVE-2018-15664 was `docker cp` getting this wrong).

use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libc::{c_char, c_int, c_long, c_uint};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::tree_tar;
pub(crate) use crate::tree_tar::lxattrs;
use crate::tree_tar::opaque_xattr;

/// Most lower layers overlayfs stacks (`OVL_MAX_STACK` in the kernel).
pub const MAX_LAYERS: usize = 500;

/// Longest `mount(2)` data: one page, less its terminating NUL.
pub const MOUNT_DATA_LIMIT: usize = 4095;

/// Longest string `fsconfig(FSCONFIG_SET_STRING)` copies (the kernel's
/// `strndup_user(value, 256)` counts the NUL). Longer paths go as a
/// descriptor (`FSCONFIG_SET_FD`, which overlayfs takes since Linux 6.13).
const FSCONFIG_STRING_LIMIT: usize = 255;

/// `MOUNT_ATTR_RDONLY` from `uapi/linux/mount.h`. libc declares it as
/// `u64`; `fsmount(2)` takes its attributes as an `unsigned int`.
const MOUNT_ATTR_RDONLY: c_uint = 0x1;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "a snapshot needs at least one layer (overlayfs has no lowerdir otherwise); \
         give it an empty layer"
    )]
    NoLayers,
    #[error("snapshot has {count} layers; overlayfs stacks at most {limit}")]
    TooManyLayers { count: usize, limit: usize },
    #[error("layer {}: {reason}", path.display())]
    Layer { path: PathBuf, reason: String },
    #[error(
        "overlay mount options for {layers} layers are {len} bytes, over the {limit}-byte \
         limit of mount(2) data; the new mount API (Linux 6.8 and later: fsopen with \
         lowerdir+) has no such limit, but this kernel does not offer it"
    )]
    MountDataTooLong {
        layers: usize,
        len: usize,
        limit: usize,
    },
    #[error("overlay path {}: {reason}", path.display())]
    Path { path: PathBuf, reason: String },
    #[error("mount overlay at {}: {step}: {source}{}", merged.display(), kernel_says(log))]
    Mount {
        merged: PathBuf,
        step: String,
        source: io::Error,
        /// What the kernel logged on the filesystem context, if anything.
        log: String,
    },
    #[error("unmount {}: {source}", merged.display())]
    Unmount { merged: PathBuf, source: Errno },
    #[error(
        "diff: {} starts with .wh., which layers reserve for whiteouts; rename it first",
        path.display()
    )]
    ReservedName { path: PathBuf },
    #[error(
        "diff: {} changed while the diff was taken; stop or pause the container first",
        path.display()
    )]
    Changed { path: PathBuf },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn kernel_says(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {log})")
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let context = context.into();
    move |source| SnapshotError::Io { context, source }
}

/// A container's root filesystem: overlayfs with the image's layers below
/// and the container's own changes in `upper`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The unpacked layers, top first (the order overlayfs stacks them).
    pub lower: Vec<PathBuf>,
    /// Where the container's changes land.
    pub upper: PathBuf,
    /// overlayfs's scratch space; must be on the same filesystem as `upper`.
    pub work: PathBuf,
    /// The mount point: the container's view.
    pub merged: PathBuf,
}

/// Whether the mount has an upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// Whether the mount's end syncs the upper layer's file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Synced,
    /// overlayfs's `volatile`: for an upper thrown away afterwards.
    Volatile,
}

/// Which kernel interface is asked for the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// fsopen/fsconfig/fsmount/move_mount, falling back to `Classic`.
    New,
    /// mount(2) only: what the fallback does, forced by tests.
    #[cfg_attr(not(test), allow(dead_code))]
    Classic,
}

/// What one overlay mount stacks.
#[derive(Debug)]
struct Spec<'a> {
    lower: Vec<&'a Path>,
    /// upperdir and workdir.
    upper: Option<(&'a Path, &'a Path)>,
}

impl Snapshot {
    /// Makes `dir/{upper,work,merged}` for a container over
    /// `layers_top_first`. Directories that exist are kept, so preparing
    /// again after a restart finds the container's changes where they were.
    pub fn prepare(layers_top_first: &[PathBuf], dir: &Path) -> Result<Snapshot, SnapshotError> {
        if layers_top_first.is_empty() {
            return Err(SnapshotError::NoLayers);
        }
        if layers_top_first.len() > MAX_LAYERS {
            return Err(SnapshotError::TooManyLayers {
                count: layers_top_first.len(),
                limit: MAX_LAYERS,
            });
        }
        let mut lower = Vec::with_capacity(layers_top_first.len());
        for l in layers_top_first {
            let m = fs::metadata(l).map_err(|e| SnapshotError::Layer {
                path: l.clone(),
                reason: e.to_string(),
            })?;
            if !m.is_dir() {
                return Err(SnapshotError::Layer {
                    path: l.clone(),
                    reason: "not a directory".into(),
                });
            }
            // Absolute, so the snapshot means the same whatever the working
            // directory of whoever mounts it.
            lower.push(std::path::absolute(l).map_err(io_err(format!("{}", l.display())))?);
        }
        let dir = std::path::absolute(dir).map_err(io_err(format!("{}", dir.display())))?;
        fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let snap = Snapshot {
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
        };
        if make_dir(&snap.upper, 0o755)? {
            // The root of the container's view is the upper directory's root:
            // give it the image's owner and mode, not whatever ours were.
            let top = fs::metadata(&snap.lower[0])
                .map_err(io_err(format!("{}", snap.lower[0].display())))?;
            use std::os::unix::fs::MetadataExt;
            std::os::unix::fs::chown(&snap.upper, Some(top.uid()), Some(top.gid()))
                .map_err(io_err(format!("chown {}", snap.upper.display())))?;
            fs::set_permissions(&snap.upper, fs::Permissions::from_mode(top.mode() & 0o7777))
                .map_err(io_err(format!("chmod {}", snap.upper.display())))?;
        }
        make_dir(&snap.work, 0o700)?;
        make_dir(&snap.merged, 0o755)?;
        Ok(snap)
    }

    /// Mounts the container's view at `merged`: the layers with `upper` on
    /// top, writable.
    pub fn mount(&self) -> Result<(), SnapshotError> {
        self.mount_as(Access::ReadWrite, Api::New)
    }

    /// The container's view as a detached mount (fsmount's descriptor, in
    /// no mount namespace yet): whoever attaches it with `move_mount`
    /// decides where it lives. The runtime's init attaches it at the rootfs
    /// inside the container's own mount namespace, so the host never has
    /// it mounted and never unmounts it (an unmount costs an RCU grace
    /// period; the namespace's end takes it down with the container's other
    /// mounts at once). None when the kernel lacks the new mount API (or
    /// `lowerdir+`): mount at `merged` then.
    pub fn mount_detached(&self) -> Result<Option<OwnedFd>, SnapshotError> {
        self.detached(Durability::Synced)
    }

    /// [`Self::mount_detached`] for a container whose changes are thrown
    /// away when it stops (`run --rm`): overlayfs's `volatile`, so the
    /// mount's end (the container's mount namespace going away) does not
    /// sync the whole file system under `upper` and wait for the disk, and
    /// the files the container wrote stay in the page cache until they are
    /// deleted (freeing blocks never allocated costs no discard). A host
    /// crash may leave `upper` inconsistent; nobody keeps it. Kernels
    /// before 5.10 lack the option: the mount is then a plain one.
    pub fn mount_detached_disposable(&self) -> Result<Option<OwnedFd>, SnapshotError> {
        self.clear_volatile_marker()?;
        self.detached(Durability::Volatile)
    }

    /// overlayfs leaves `work/incompat/volatile` behind at every volatile
    /// mount and refuses to mount over it again ("volatile dir exists"): a
    /// disposable upper mounted before (a start after a killed `run --rm`)
    /// has no state worth the refusal.
    fn clear_volatile_marker(&self) -> Result<(), SnapshotError> {
        let marker = self.work.join("work/incompat/volatile");
        match fs::remove_dir_all(&marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err(format!("remove {}", marker.display()))(e))
            }
            _ => Ok(()),
        }
    }

    fn detached(&self, durability: Durability) -> Result<Option<OwnedFd>, SnapshotError> {
        let spec = Spec {
            lower: self.lower.iter().map(PathBuf::as_path).collect(),
            upper: Some((&self.upper, &self.work)),
        };
        if spec.lower.len() > MAX_LAYERS {
            return Err(SnapshotError::TooManyLayers {
                count: spec.lower.len(),
                limit: MAX_LAYERS,
            });
        }
        new_api_mount(&spec, &self.merged, durability)
    }

    /// [`Snapshot::mount_detached`] for a container with a user namespace
    /// of its own: each layer, and the directory holding `upper` and
    /// `work`, is an idmapped clone (see [`saferoot::idmap`]), so the
    /// container's root sees the image's root-owned files as its own and
    /// what it writes lands in `upper` owned by the host's root, as without
    /// a user namespace: no layer is copied, and `diff`, `commit` and
    /// `export` read `upper` as always.
    ///
    /// `userns` maps the container's ids, plus one id past them as the
    /// host's root: overlayfs makes its work directories as the mounter
    /// (root), who must be representable through the upper mount (and no
    /// process of the container can take that id). Needs overlay layers as
    /// descriptors
    /// (`FSCONFIG_SET_FD`, Linux 6.13); an older kernel gets
    /// [`SnapshotError::Mount`] naming the step.
    pub fn mount_detached_idmapped(
        &self,
        userns: std::os::fd::BorrowedFd<'_>,
    ) -> Result<OwnedFd, SnapshotError> {
        self.idmapped(userns, Durability::Synced)
    }

    /// [`Self::mount_detached_idmapped`] for a container whose changes are
    /// thrown away when it stops (`run --rm`): volatile, as
    /// [`Self::mount_detached_disposable`] is.
    pub fn mount_detached_idmapped_disposable(
        &self,
        userns: std::os::fd::BorrowedFd<'_>,
    ) -> Result<OwnedFd, SnapshotError> {
        self.clear_volatile_marker()?;
        self.idmapped(userns, Durability::Volatile)
    }

    fn idmapped(
        &self,
        userns: std::os::fd::BorrowedFd<'_>,
        durability: Durability,
    ) -> Result<OwnedFd, SnapshotError> {
        if self.lower.len() > MAX_LAYERS {
            return Err(SnapshotError::TooManyLayers {
                count: self.lower.len(),
                limit: MAX_LAYERS,
            });
        }
        let fail = |step: String, source: io::Error, log: String| SnapshotError::Mount {
            merged: self.merged.clone(),
            step,
            source,
            log,
        };
        let errno = |e: Errno| io::Error::from_raw_os_error(e as i32);
        let (Some(dir), Some(upper_name), Some(work_name)) = (
            self.upper.parent(),
            self.upper.file_name(),
            self.work.file_name(),
        ) else {
            return Err(SnapshotError::Path {
                path: self.upper.clone(),
                reason: "upper has no parent directory".into(),
            });
        };
        if self.work.parent() != Some(dir) {
            return Err(SnapshotError::Path {
                path: self.work.clone(),
                reason: "work must be beside upper to be idmapped with it".into(),
            });
        }
        let fs = fsopen(c"overlay").map_err(|e| fail("fsopen".into(), e, String::new()))?;
        // Kept until the overlay is made: closing a detached mount's last
        // descriptor unmounts it, under the overlay being configured
        // (which then clones what it was given, see clone_private_mount).
        let mut clones = Vec::with_capacity(self.lower.len());
        for l in &self.lower {
            let m = saferoot::idmap::idmapped_clone(l, userns, false).map_err(|e| {
                fail(
                    format!("idmap layer {}", l.display()),
                    errno(e),
                    String::new(),
                )
            })?;
            fsconfig(
                &fs,
                libc::FSCONFIG_SET_FD,
                Some(c"lowerdir+"),
                None,
                m.as_raw_fd(),
            )
            .map_err(|e| {
                fail(
                    format!("lowerdir+ {} (idmapped)", l.display()),
                    e,
                    fs_log(&fs),
                )
            })?;
            clones.push(m);
        }
        let top = saferoot::idmap::idmapped_clone(dir, userns, false)
            .map_err(|e| fail(format!("idmap {}", dir.display()), errno(e), String::new()))?;
        for (key, name) in [(c"upperdir", upper_name), (c"workdir", work_name)] {
            let sub = nix::fcntl::openat(
                Some(top.as_raw_fd()),
                name,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| {
                fail(
                    format!("open {}", dir.join(name).display()),
                    errno(e),
                    String::new(),
                )
            })?;
            // SAFETY: openat returned a new descriptor that nothing else owns.
            let sub = unsafe { OwnedFd::from_raw_fd(sub) };
            fsconfig(&fs, libc::FSCONFIG_SET_FD, Some(key), None, sub.as_raw_fd()).map_err(
                |e| {
                    fail(
                        format!(
                            "{} {} (idmapped)",
                            key.to_string_lossy(),
                            dir.join(name).display()
                        ),
                        e,
                        fs_log(&fs),
                    )
                },
            )?;
        }
        for (k, v) in FAITHFUL_UPPER {
            fsconfig(&fs, libc::FSCONFIG_SET_STRING, Some(k), Some(v), 0).map_err(|e| {
                let step = format!("{}={}", k.to_string_lossy(), v.to_string_lossy());
                fail(step, e, fs_log(&fs))
            })?;
        }
        if durability == Durability::Volatile {
            set_volatile(&fs).map_err(|e| fail("volatile".into(), e, fs_log(&fs)))?;
        }
        fsconfig(&fs, libc::FSCONFIG_CMD_CREATE, None, None, 0)
            .map_err(|e| fail("create".into(), e, fs_log(&fs)))?;
        drop(clones);
        fsmount(&fs, 0).map_err(|e| fail("fsmount".into(), e, fs_log(&fs)))
    }

    /// Mounts the layers alone at `merged`, read-only, with no upper
    /// directory: the image as it is, to inspect or export it.
    pub fn mount_readonly(&self) -> Result<(), SnapshotError> {
        self.mount_as(Access::ReadOnly, Api::New)
    }

    /// Detaches the mount at `merged` (lazily: a process still inside keeps
    /// its view until it leaves). Unmounting what is not mounted succeeds,
    /// so cleanup can always call it.
    /// Takes every mount stacked on `merged` off it, so that nothing
    /// below the snapshot's directory is mounted any more (before it is
    /// deleted).
    pub fn unmount_all(&self) -> Result<(), SnapshotError> {
        // Each call takes one mount off the stack; the bound only guards
        // against a mount that keeps coming back.
        for _ in 0..64 {
            if !unmount_once(&self.merged)? {
                break;
            }
        }
        Ok(())
    }

    pub fn unmount(&self) -> Result<(), SnapshotError> {
        unmount_once(&self.merged).map(|_| ())
    }

    /// Takes out of `upper` what was made only to mount over, once the
    /// mount is gone: `target` (if still an empty file or directory), the
    /// directories made on the way down to it from `first` (the first
    /// component of `target` the view lacked), and the image's directories
    /// above `first` that overlayfs copied up only to hold them (empty, not
    /// opaque, same mode and owner as below). Paths are absolute in the
    /// container's view. Best effort: what does not qualify stays.
    pub fn remove_mount_stub(&self, first: &Path, target: &Path) {
        let up = |p: &Path| self.upper.join(p.strip_prefix("/").unwrap_or(p));
        match fs::symlink_metadata(up(target)) {
            // A stub that is no longer empty is kept: not an error.
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir(up(target));
            }
            Ok(m) if m.is_file() && m.len() == 0 => {
                let _ = fs::remove_file(up(target));
            }
            _ => {}
        }
        let mut d = target.parent();
        while let Some(p) = d.filter(|p| p.starts_with(first)) {
            if fs::remove_dir(up(p)).is_err() {
                return;
            }
            d = p.parent();
        }
        let mut d = first.parent();
        while let Some(p) = d.filter(|p| *p != Path::new("/")) {
            if !self.remove_copied_up_dir(p) {
                return;
            }
            d = p.parent();
        }
    }

    /// Removes the upper copy of the image's directory `path` if it says
    /// nothing the layers below do not.
    fn remove_copied_up_dir(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let rel = path.strip_prefix("/").unwrap_or(path);
        let upper = self.upper.join(rel);
        let Ok(u) = fs::symlink_metadata(&upper) else {
            return false;
        };
        let Some(l) = self
            .lower
            .iter()
            .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())
        else {
            return false;
        };
        let empty = fs::read_dir(&upper).is_ok_and(|mut r| r.next().is_none());
        let opaque = CString::new(upper.as_os_str().as_bytes())
            .ok()
            .and_then(|c| lxattrs(&c).ok())
            .is_none_or(|all| {
                all.iter()
                    .any(|(k, v)| k == opaque_xattr().to_bytes() && v.as_slice() == b"y")
            });
        u.is_dir()
            && l.is_dir()
            && empty
            && !opaque
            && (u.mode(), u.uid(), u.gid()) == (l.mode(), l.uid(), l.gid())
            && fs::remove_dir(&upper).is_ok()
    }

    /// Unmounts (every mount stacked at `merged`) and deletes `upper`,
    /// `work` and `merged`: the container's changes are gone.
    pub fn remove(self) -> Result<(), SnapshotError> {
        self.unmount_all()?;
        for d in [&self.upper, &self.work] {
            match fs::remove_dir_all(d) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err(format!("remove {}", d.display()))(e))
                }
                _ => {}
            }
        }
        // Only an empty directory: were something still mounted there, a
        // recursive delete would go through the mount into what it shows.
        match fs::remove_dir(&self.merged) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err(format!("remove {}", self.merged.display()))(e))
            }
            _ => Ok(()),
        }
    }

    fn mount_as(&self, access: Access, api: Api) -> Result<(), SnapshotError> {
        let empty;
        let mut spec = Spec {
            lower: self.lower.iter().map(PathBuf::as_path).collect(),
            upper: None,
        };
        if spec.lower.is_empty() {
            return Err(SnapshotError::NoLayers);
        }
        if spec.lower.len() > MAX_LAYERS {
            return Err(SnapshotError::TooManyLayers {
                count: spec.lower.len(),
                limit: MAX_LAYERS,
            });
        }
        match access {
            Access::ReadWrite => spec.upper = Some((&self.upper, &self.work)),
            Access::ReadOnly if spec.lower.len() == 1 => {
                // overlayfs wants two lowers when there is no upper ("at least
                // 2 lowerdir are needed") and refuses one twice ("conflicting
                // lowerdir"); an empty directory below changes nothing. It
                // lives in `work`, which a read-only mount does not use and a
                // writable one only uses through work/work and work/index.
                empty = self.work.join("empty");
                make_dir(&empty, 0o755)?;
                spec.lower.push(&empty);
            }
            Access::ReadOnly => {}
        }
        if api == Api::New && mount_new_api(&spec, &self.merged)? {
            return Ok(());
        }
        mount_classic(&spec, &self.merged)
    }
}

/// Creates `path` with `mode` unless it is a directory already; says
/// whether it created it.
fn make_dir(path: &Path, mode: u32) -> Result<bool, SnapshotError> {
    match fs::create_dir(path) {
        Ok(()) => {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(io_err(format!("chmod {}", path.display())))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let m = fs::symlink_metadata(path).map_err(io_err(format!("{}", path.display())))?;
            if m.is_dir() {
                Ok(false)
            } else {
                Err(SnapshotError::Path {
                    path: path.to_path_buf(),
                    reason: "exists and is not a directory".into(),
                })
            }
        }
        Err(e) => Err(io_err(format!("create {}", path.display()))(e)),
    }
}

/// One `umount2`; false when nothing was mounted there.
fn unmount_once(merged: &Path) -> Result<bool, SnapshotError> {
    // UMOUNT_NOFOLLOW: were `merged` replaced by a symlink, the mount it
    // points at is not ours to take down.
    match nix::mount::umount2(merged, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(false),
        Err(source) => Err(SnapshotError::Unmount {
            merged: merged.to_path_buf(),
            source,
        }),
    }
}

fn cpath(path: &Path) -> Result<CString, SnapshotError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| SnapshotError::Path {
        path: path.to_path_buf(),
        reason: "contains a NUL byte".into(),
    })
}

/// `path` escaped for overlayfs's option parser, which splits options at
/// `,` and lowerdir at `:`, and drops a `\` before any character.
fn escape(path: &Path, special: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.as_os_str().len());
    for &b in path.as_os_str().as_bytes() {
        if b == b'\\' || special.contains(&b) {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Options that keep the upper directory a faithful record of the
/// container's changes, so that `diff` sees them: with metacopy a changed
/// owner copies up only metadata (the file would be empty in the diff), and
/// with redirect_dir a renamed directory is recorded as a pointer to the
/// lower one instead of being copied. Both default to off in most kernels;
/// these make it so whatever the host's defaults.
const FAITHFUL_UPPER: [(&CStr, &CStr); 2] = [(c"metacopy", c"off"), (c"redirect_dir", c"off")];

/// [`FAITHFUL_UPPER`] for this process: in a user namespace (rootless)
/// overlayfs refuses `redirect_dir=off` (which a kernel built to always
/// follow redirects reads as "follow") and takes `nofollow`, which makes
/// no redirect either.
fn faithful_upper() -> [(&'static CStr, &'static CStr); 2] {
    if saferoot::idmap::in_unprivileged_user_namespace() {
        [(c"metacopy", c"off"), (c"redirect_dir", c"nofollow")]
    } else {
        FAITHFUL_UPPER
    }
}

/// Whether overlayfs must keep its marks in `user.overlay.*` xattrs (its
/// `userxattr` option): in a user namespace, where `trusted.*` cannot be
/// written; the layers were unpacked with the same marks
/// ([`crate::tree_tar::opaque_xattr`]).
fn user_xattrs() -> bool {
    saferoot::idmap::in_unprivileged_user_namespace()
}

/// The `mount(2)` data for `spec`, or an error naming the page limit.
fn classic_data(spec: &Spec<'_>) -> Result<Vec<u8>, SnapshotError> {
    let mut data = b"lowerdir=".to_vec();
    for (i, l) in spec.lower.iter().enumerate() {
        if i > 0 {
            data.push(b':');
        }
        data.extend(escape(l, b":,"));
    }
    if let Some((upper, work)) = spec.upper {
        data.extend(b",upperdir=");
        data.extend(escape(upper, b":,"));
        data.extend(b",workdir=");
        data.extend(escape(work, b":,"));
        for (k, v) in faithful_upper() {
            data.push(b',');
            data.extend(k.to_bytes());
            data.push(b'=');
            data.extend(v.to_bytes());
        }
    }
    if user_xattrs() {
        data.extend(b",userxattr");
    }
    let upper = spec.upper.iter().flat_map(|(u, w)| [u, w]);
    if let Some(p) = spec
        .lower
        .iter()
        .chain(upper)
        .find(|p| p.as_os_str().as_bytes().contains(&0))
    {
        return Err(SnapshotError::Path {
            path: p.to_path_buf(),
            reason: "contains a NUL byte".into(),
        });
    }
    if data.len() > MOUNT_DATA_LIMIT {
        return Err(SnapshotError::MountDataTooLong {
            layers: spec.lower.len(),
            len: data.len(),
            limit: MOUNT_DATA_LIMIT,
        });
    }
    Ok(data)
}

fn mount_classic(spec: &Spec<'_>, merged: &Path) -> Result<(), SnapshotError> {
    let data = classic_data(spec)?;
    let flags = if spec.upper.is_none() {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    nix::mount::mount(
        Some("overlay"),
        merged,
        Some("overlay"),
        flags,
        Some(OsStr::from_bytes(&data)),
    )
    .map_err(|e| SnapshotError::Mount {
        merged: merged.to_path_buf(),
        step: "mount(2)".into(),
        source: e.into(),
        log: String::new(),
    })
}

/// A `syscall(2)` result as a descriptor.
fn fd_result(rc: c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = c_int::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and a flag; the call only returns a
    // descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsopen,
            fstype.as_ptr(),
            c_long::from(libc::FSOPEN_CLOEXEC),
        )
    };
    fd_result(rc)
}

/// One `fsconfig(2)` call: `value` is a string, or a descriptor in `aux`.
fn fsconfig(
    fs: &OwnedFd,
    cmd: c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
    aux: c_int,
) -> io::Result<()> {
    let key = key.map_or(std::ptr::null(), CStr::as_ptr);
    let value = value.map_or(std::ptr::null::<c_char>(), CStr::as_ptr);
    // SAFETY: a live fs-context descriptor; key and value are NUL-terminated
    // or null, as the command expects, and outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            c_long::from(fs.as_raw_fd()),
            c_long::from(cmd),
            key,
            value,
            c_long::from(aux),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn fsmount(fs: &OwnedFd, attrs: c_uint) -> io::Result<OwnedFd> {
    // SAFETY: a live fs-context descriptor and two flag words.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            c_long::from(fs.as_raw_fd()),
            c_long::from(libc::FSMOUNT_CLOEXEC),
            c_long::from(attrs),
        )
    };
    fd_result(rc)
}

fn move_mount(mnt: &OwnedFd, to: &CStr) -> io::Result<()> {
    // SAFETY: a live mount descriptor with an empty path (F_EMPTY_PATH: the
    // descriptor itself), and a NUL-terminated target. Without
    // MOVE_MOUNT_T_SYMLINKS a symlink at the target is not followed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            c_long::from(mnt.as_raw_fd()),
            c"".as_ptr(),
            c_long::from(libc::AT_FDCWD),
            to.as_ptr(),
            c_long::from(libc::MOVE_MOUNT_F_EMPTY_PATH),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks overlayfs for `volatile` (no sync of the upper file system at the
/// mount's end). Before Linux 5.10 there is no such option: the mount
/// stays a synced one, which is correct, only slower to end.
fn set_volatile(fs: &OwnedFd) -> io::Result<()> {
    match fsconfig(fs, libc::FSCONFIG_SET_FLAG, Some(c"volatile"), None, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::debug!("overlayfs without volatile: {}", fs_log(fs));
            Ok(())
        }
        r => r,
    }
}

/// The messages the kernel left on a filesystem context ("e overlay: ..."),
/// which say far more than the errno.
fn fs_log(fs: &OwnedFd) -> String {
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    // Each read returns one message; ENODATA when there are no more. The
    // kernel keeps at most a few, the bound is only belt and braces.
    for _ in 0..32 {
        // SAFETY: a live descriptor and a buffer of the given size.
        let n = unsafe { libc::read(fs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let Ok(n) = usize::try_from(n) else { break };
        if n == 0 {
            break;
        }
        let msg = String::from_utf8_lossy(&buf[..n]);
        let msg = msg.trim_end();
        lines.push(msg.strip_prefix("e ").unwrap_or(msg).to_string());
    }
    lines.join("; ")
}

/// Mounts through the new mount API; false when the kernel lacks it (or
/// lacks `lowerdir+`) and mount(2) should be tried.
fn mount_new_api(spec: &Spec<'_>, merged: &Path) -> Result<bool, SnapshotError> {
    let target = cpath(merged)?;
    let Some(mnt) = new_api_mount(spec, merged, Durability::Synced)? else {
        return Ok(false);
    };
    move_mount(&mnt, &target).map_err(|e| SnapshotError::Mount {
        merged: merged.to_path_buf(),
        step: "move_mount".into(),
        source: e,
        log: String::new(),
    })?;
    Ok(true)
}

/// The overlay as a detached mount (`merged` only names it in errors);
/// None when the kernel lacks the new API or `lowerdir+`.
fn new_api_mount(
    spec: &Spec<'_>,
    merged: &Path,
    durability: Durability,
) -> Result<Option<OwnedFd>, SnapshotError> {
    let fail = |step: String, source: io::Error, log: String| SnapshotError::Mount {
        merged: merged.to_path_buf(),
        step,
        source,
        log,
    };
    let fs = match fsopen(c"overlay") {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => return Ok(None),
        Err(e) => return Err(fail("fsopen".into(), e, String::new())),
    };
    let set = |key: &CStr, path: &Path, escaped: bool| -> Result<(), SnapshotError> {
        set_path(&fs, key, path, escaped).map_err(|e| {
            fail(
                format!("{} {}", key.to_string_lossy(), path.display()),
                e,
                fs_log(&fs),
            )
        })
    };
    for (i, l) in spec.lower.iter().enumerate() {
        match set_path(&fs, c"lowerdir+", l, false) {
            Ok(()) => {}
            Err(e) if i == 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                let log = fs_log(&fs);
                // Linux 5.2 to 6.7: the new API without lowerdir+.
                if log.contains("Unknown parameter") {
                    return Ok(None);
                }
                return Err(fail(format!("lowerdir+ {}", l.display()), e, log));
            }
            Err(e) => return Err(fail(format!("lowerdir+ {}", l.display()), e, fs_log(&fs))),
        }
    }
    if user_xattrs() {
        fsconfig(&fs, libc::FSCONFIG_SET_FLAG, Some(c"userxattr"), None, 0)
            .map_err(|e| fail("userxattr".into(), e, fs_log(&fs)))?;
    }
    if let Some((upper, work)) = spec.upper {
        // overlayfs unescapes upperdir and workdir given as strings (not
        // lowerdir+), so a backslash in them must be doubled.
        set(c"upperdir", upper, true)?;
        set(c"workdir", work, true)?;
        for (k, v) in faithful_upper() {
            fsconfig(&fs, libc::FSCONFIG_SET_STRING, Some(k), Some(v), 0).map_err(|e| {
                let step = format!("{}={}", k.to_string_lossy(), v.to_string_lossy());
                fail(step, e, fs_log(&fs))
            })?;
        }
        if durability == Durability::Volatile {
            set_volatile(&fs).map_err(|e| fail("volatile".into(), e, fs_log(&fs)))?;
        }
    }
    fsconfig(&fs, libc::FSCONFIG_CMD_CREATE, None, None, 0)
        .map_err(|e| fail("create".into(), e, fs_log(&fs)))?;
    let attrs = if spec.upper.is_none() {
        MOUNT_ATTR_RDONLY
    } else {
        0
    };
    let mnt = fsmount(&fs, attrs).map_err(|e| fail("fsmount".into(), e, fs_log(&fs)))?;
    Ok(Some(mnt))
}

/// Sets a path option: as a string when it fits, else as a descriptor.
fn set_path(fs: &OwnedFd, key: &CStr, path: &Path, escaped: bool) -> io::Result<()> {
    let invalid = |reason: String| io::Error::new(io::ErrorKind::InvalidInput, reason);
    let value = if escaped {
        escape(path, b"")
    } else {
        path.as_os_str().as_bytes().to_vec()
    };
    if value.len() <= FSCONFIG_STRING_LIMIT {
        let value = CString::new(value).map_err(|_| invalid("path contains a NUL byte".into()))?;
        return fsconfig(fs, libc::FSCONFIG_SET_STRING, Some(key), Some(&value), 0);
    }
    let dir = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: a fresh descriptor from open.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    fsconfig(fs, libc::FSCONFIG_SET_FD, Some(key), None, dir.as_raw_fd()).map_err(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) {
            invalid(format!(
                "path is {} bytes, over fsconfig's {FSCONFIG_STRING_LIMIT}-byte string limit, \
                 and this kernel takes no overlay layer as a descriptor (Linux 6.13 and later do)",
                value.len()
            ))
        } else {
            e
        }
    })
}

/// What `diff` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// Tar entries, whiteouts and opaque markers included (pax and long-name
    /// headers not).
    pub entries: u64,
    /// Deleted files (`.wh.<name>` entries).
    pub whiteouts: u64,
    /// Directories whose lower content is hidden (`.wh..wh..opq` entries).
    pub opaque_dirs: u64,
    /// Hard link entries (a second name of an inode already written).
    pub hard_links: u64,
    /// Sockets left out: a socket is a live endpoint, not content, and tar
    /// has no type for it (Docker leaves them out too).
    pub sockets_skipped: u64,
    /// Bytes of tar written.
    pub size: u64,
    /// The sha256 of the tar: the new layer's diff_id.
    pub diff_id: Digest,
}

/// Writes the changes recorded in `upper` (a container's upper directory)
/// to `out` as an uncompressed tar layer, in the form image layers use:
/// overlay whiteouts become `.wh.<name>` entries and opaque directories get
/// a `.wh..wh..opq` entry. Entries are sorted by path, numeric owners only,
/// times in whole seconds, so the same changes give the same bytes (and
/// diff_id). The upper directory should not change meanwhile: stop or pause
/// the container first.
pub fn diff(upper: &Path, out: impl Write) -> Result<DiffStats, SnapshotError> {
    diff_clamped(upper, out, None)
}

/// [`diff`] without the entries at `skip` (relative paths, e.g.
/// `etc/hosts`): what an engine put in the upper directory for the
/// container's own use (Docker's init layer, which `commit` leaves out).
pub fn diff_skipping(
    upper: &Path,
    out: impl Write,
    skip: &[&Path],
) -> Result<DiffStats, SnapshotError> {
    diff_inner(upper, out, None, skip)
}

/// [`diff`], with every modification time later than `clamp_mtime` (unix
/// seconds) written as `clamp_mtime`: what a reproducible build asks for
/// (`SOURCE_DATE_EPOCH`), since what a build step creates is stamped with
/// the time it ran.
pub fn diff_clamped(
    upper: &Path,
    out: impl Write,
    clamp_mtime: Option<i64>,
) -> Result<DiffStats, SnapshotError> {
    diff_inner(upper, out, clamp_mtime, &[])
}

fn diff_inner(
    upper: &Path,
    out: impl Write,
    clamp_mtime: Option<i64>,
    skip: &[&Path],
) -> Result<DiffStats, SnapshotError> {
    let root = nix::fcntl::open(
        upper,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| io_err(format!("open {}", upper.display()))(e.into()))?;
    // SAFETY: a fresh descriptor from open.
    let root = unsafe { OwnedFd::from_raw_fd(root) };
    let mut opts = tree_tar::Options::new(tree_tar::Form::Layer);
    opts.skip = skip;
    opts.clamp_mtime = clamp_mtime;
    let mut tally = Tally {
        inner: out,
        hasher: Sha256::new(),
        count: 0,
    };
    let t = tree_tar::write(&root, &opts, &mut tally)?;
    tally.flush().map_err(io_err("write layer"))?;
    Ok(DiffStats {
        entries: t.entries,
        whiteouts: t.whiteouts,
        opaque_dirs: t.opaque_dirs,
        hard_links: t.hard_links,
        sockets_skipped: t.sockets_skipped,
        size: tally.count,
        diff_id: Digest::from_hasher(tally.hasher),
    })
}

/// Counts and hashes what passes through (size and diff_id of the layer).
struct Tally<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree_tar::pax_record;
    use std::collections::{BTreeMap, HashMap};
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// Unmounts (everything stacked at) a mount point when dropped, so a
    /// failing test leaves no mount behind and its temp dir can go. Declare
    /// it after the temp dir: drops run in reverse, unmount first.
    struct Unmount(PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            while matches!(unmount_once(&self.0), Ok(true)) {}
        }
    }

    fn write(path: &Path, content: &str) {
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).unwrap();
        }
        fs::write(path, content).unwrap();
    }

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    /// bottom: base, shared, gone, dir/{a,b}; middle: shared, whiteout of
    /// gone; top: shared. Returned top first.
    fn three_layers(base: &Path) -> Vec<PathBuf> {
        let (top, middle, bottom) = (base.join("top"), base.join("middle"), base.join("bottom"));
        write(&bottom.join("base"), "bottom");
        write(&bottom.join("shared"), "bottom");
        write(&bottom.join("gone"), "bottom");
        write(&bottom.join("dir/a"), "a");
        write(&bottom.join("dir/b"), "b");
        write(&middle.join("shared"), "middle");
        whiteout(&middle.join("gone"));
        write(&top.join("shared"), "top");
        vec![top, middle, bottom]
    }

    #[test]
    fn three_layers_stack_and_writes_land_in_upper() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let layers = three_layers(tmp.path());
        let snap = Snapshot::prepare(&layers, &tmp.path().join("snap")).unwrap();
        let _guard = Unmount(snap.merged.clone());
        snap.mount().unwrap();
        let m = &snap.merged;
        assert_eq!(read(&m.join("shared")), "top", "top layer wins");
        assert_eq!(read(&m.join("base")), "bottom", "bottom layer shows");
        assert!(
            fs::symlink_metadata(m.join("gone")).is_err(),
            "whited out in the middle layer"
        );
        write(&m.join("new"), "written");
        assert_eq!(read(&snap.upper.join("new")), "written");
        write(&m.join("base"), "changed");
        assert_eq!(read(&snap.upper.join("base")), "changed", "copied up");
        assert_eq!(read(&layers[2].join("base")), "bottom", "lower untouched");
        snap.unmount().unwrap();
        assert!(!m.join("shared").exists(), "unmounted");
        snap.unmount().unwrap(); // not mounted: still fine
    }

    #[test]
    fn one_hundred_fifty_layers_beyond_the_mount_data_page() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let layers: Vec<PathBuf> = (0..150)
            .map(|i| {
                let l = tmp.path().join(format!(
                    "layer-{i:03}-{}",
                    "long-store-path-component-".repeat(2)
                ));
                write(&l.join(format!("f{i:03}")), &i.to_string());
                l
            })
            .collect();
        let snap = Snapshot::prepare(&layers, &tmp.path().join("snap")).unwrap();
        let spec = Spec {
            lower: snap.lower.iter().map(PathBuf::as_path).collect(),
            upper: Some((&snap.upper, &snap.work)),
        };
        assert!(
            matches!(
                classic_data(&spec),
                Err(SnapshotError::MountDataTooLong { .. })
            ),
            "the classic form would not fit"
        );
        let _guard = Unmount(snap.merged.clone());
        snap.mount().unwrap();
        assert_eq!(
            read(&snap.merged.join("f149")),
            "149",
            "bottom layer visible"
        );
        assert_eq!(fs::read_dir(&snap.merged).unwrap().count(), 150);
        snap.unmount().unwrap();

        // Forced through mount(2), the same snapshot is refused up front
        // with the limit named, not cut short.
        let e = snap.mount_as(Access::ReadWrite, Api::Classic).unwrap_err();
        assert!(e.to_string().contains("4095"), "{e}");
        assert_eq!(fs::read_dir(&snap.merged).unwrap().count(), 0);
    }

    #[test]
    fn readonly_mount_shows_the_layers_alone() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let layers = three_layers(tmp.path());
        for (n, api) in [
            (3, Api::New),
            (1, Api::New),
            (3, Api::Classic),
            (1, Api::Classic),
        ] {
            let snap = Snapshot::prepare(&layers[..n], &tmp.path().join("snap")).unwrap();
            write(&snap.upper.join("only-in-upper"), "x");
            let _guard = Unmount(snap.merged.clone());
            snap.mount_as(Access::ReadOnly, api).unwrap();
            let m = &snap.merged;
            assert_eq!(read(&m.join("shared")), "top", "{n} layers, {api:?}");
            assert!(!m.join("only-in-upper").exists(), "no upper");
            assert!(!m.join("empty").exists());
            let e = fs::write(m.join("new"), "x").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EROFS));
            snap.unmount().unwrap();
            fs::remove_file(snap.upper.join("only-in-upper")).unwrap();
        }
    }

    #[test]
    fn odd_characters_and_long_paths_reach_overlay_intact() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let odd = tmp.path().join(r"odd,name:with\backslash");
        let long = tmp.path().join("d".repeat(200)).join("e".repeat(100));
        write(&odd.join("from-odd"), "odd");
        write(&long.join("from-long"), "long");
        for api in [Api::New, Api::Classic] {
            let lowers = if api == Api::New {
                vec![odd.clone(), long.clone()]
            } else {
                vec![odd.clone()]
            };
            let dir = tmp.path().join(format!(r"snap,{api:?}:x\y"));
            let snap = Snapshot::prepare(&lowers, &dir).unwrap();
            let _guard = Unmount(snap.merged.clone());
            snap.mount_as(Access::ReadWrite, api)
                .unwrap_or_else(|e| panic!("{api:?}: {e}"));
            assert_eq!(read(&snap.merged.join("from-odd")), "odd");
            if api == Api::New {
                assert_eq!(read(&snap.merged.join("from-long")), "long");
            }
            write(&snap.merged.join("w"), "w");
            assert_eq!(
                read(&snap.upper.join("w")),
                "w",
                "{api:?}: the upper we named"
            );
            snap.remove().unwrap();
            assert!(!dir.join("upper").exists() && !dir.join("merged").exists());
        }
    }

    #[test]
    fn prepare_refuses_what_overlay_cannot_stack() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Snapshot::prepare(&[], tmp.path()).unwrap_err();
        assert!(matches!(e, SnapshotError::NoLayers), "{e}");
        let many = vec![tmp.path().to_path_buf(); MAX_LAYERS + 1];
        let e = Snapshot::prepare(&many, tmp.path()).unwrap_err();
        assert!(e.to_string().contains("at most 500"), "{e}");
        let e = Snapshot::prepare(&[tmp.path().join("missing")], tmp.path()).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn classic_data_escapes_separators() {
        let (a, b) = (Path::new("/l/a:b"), Path::new(r"/l/c,d\e"));
        let spec = Spec {
            lower: vec![a, b],
            upper: Some((Path::new("/s/u"), Path::new("/s/w"))),
        };
        let data = String::from_utf8(classic_data(&spec).unwrap()).unwrap();
        assert_eq!(
            data,
            r"lowerdir=/l/a\:b:/l/c\,d\\e,upperdir=/s/u,workdir=/s/w,metacopy=off,redirect_dir=off"
        );
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for vlen in [0, 1, 80, 85, 86, 87, 990, 995, 996, 5000] {
            let r = pax_record(b"SCHILY.xattr.user.x", &vec![b'v'; vlen]);
            let s = String::from_utf8(r.clone()).unwrap();
            let (n, _) = s.split_once(' ').unwrap();
            assert_eq!(
                n.parse::<usize>().unwrap(),
                r.len(),
                "value of {vlen} bytes"
            );
        }
    }

    /// An entry's type, mode, content (or link target) and pax records.
    type TarEntry = (tar::EntryType, u32, String, Vec<(String, Vec<u8>)>);

    /// What a tar layer says, by path.
    fn entries(tar: &[u8]) -> BTreeMap<String, TarEntry> {
        let mut out = BTreeMap::new();
        let mut a = tar::Archive::new(tar);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let mode = e.header().mode().unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut x = Vec::new();
            if let Some(ext) = e.pax_extensions().unwrap() {
                for r in ext {
                    let r = r.unwrap();
                    x.push((r.key().unwrap().to_string(), r.value_bytes().to_vec()));
                }
            }
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            let extra = if link.is_empty() { body } else { link };
            out.insert(path, (kind, mode, extra, x));
        }
        out
    }

    fn set_xattr(path: &Path, name: &CStr, value: &[u8]) {
        let p = cpath(path).unwrap();
        // SAFETY: NUL-terminated path and name, value pointer and length.
        let rc = unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    }

    /// A container's changes on the three layers: a new file (0640), a
    /// deleted lower file, a replaced directory, a symlink, hard links (one
    /// of them to a lower file), a fifo, a device.
    fn change(m: &Path) {
        write(&m.join("new"), "new");
        fs::set_permissions(m.join("new"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::remove_file(m.join("base")).unwrap();
        fs::remove_dir_all(m.join("dir")).unwrap();
        write(&m.join("dir/c"), "c");
        std::os::unix::fs::symlink("new", m.join("link")).unwrap();
        fs::hard_link(m.join("new"), m.join("new-hard")).unwrap();
        fs::hard_link(m.join("shared"), m.join("shared-hard")).unwrap();
        nix::unistd::mkfifo(
            &m.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        nix::sys::stat::mknod(
            &m.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            libc::makedev(1, 3),
        )
        .unwrap();
    }

    #[test]
    fn diff_writes_whiteouts_opaque_dirs_and_links() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let layers = three_layers(tmp.path());
        let snap = Snapshot::prepare(&layers, &tmp.path().join("snap")).unwrap();
        let _guard = Unmount(snap.merged.clone());
        snap.mount().unwrap();
        change(&snap.merged);
        set_xattr(&snap.merged.join("new"), c"user.berth", b"kept");
        snap.unmount().unwrap();

        let mut tar = Vec::new();
        let stats = diff(&snap.upper, &mut tar).unwrap();
        assert_eq!(stats.size, tar.len() as u64);
        assert_eq!(stats.diff_id, Digest::of(&tar));
        let e = entries(&tar);
        let names: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                ".wh.base",
                "dir",
                "dir/.wh..wh..opq",
                "dir/c",
                "fifo",
                "link",
                "new",
                "new-hard",
                "null",
                "shared",
                "shared-hard"
            ],
            "sorted, nothing else"
        );
        assert_eq!(e[".wh.base"].0, tar::EntryType::Regular);
        assert_eq!(e["dir"].0, tar::EntryType::Directory);
        assert_eq!(e["dir/.wh..wh..opq"].0, tar::EntryType::Regular);
        assert_eq!(e["dir/c"].2, "c");
        assert_eq!(
            (e["new"].0, e["new"].1, e["new"].2.as_str()),
            (tar::EntryType::Regular, 0o640, "new")
        );
        assert_eq!(
            e["new"].3,
            [("SCHILY.xattr.user.berth".to_string(), b"kept".to_vec())]
        );
        assert_eq!(
            (e["new-hard"].0, e["new-hard"].2.as_str()),
            (tar::EntryType::Link, "new")
        );
        assert_eq!(
            (e["shared-hard"].0, e["shared-hard"].2.as_str()),
            (tar::EntryType::Link, "shared")
        );
        assert_eq!(
            (e["link"].0, e["link"].2.as_str()),
            (tar::EntryType::Symlink, "new")
        );
        assert_eq!(e["fifo"].0, tar::EntryType::Fifo);
        assert_eq!(e["null"].0, tar::EntryType::Char);
        for (path, (_, _, _, x)) in &e {
            assert!(
                x.iter().all(|(k, _)| !k.contains("trusted.overlay")),
                "{path}: overlay's own xattrs stay out"
            );
        }
        assert_eq!(
            (
                stats.whiteouts,
                stats.opaque_dirs,
                stats.hard_links,
                stats.entries
            ),
            (1, 1, 2, 11)
        );

        let mut again = Vec::new();
        diff(&snap.upper, &mut again).unwrap();
        assert_eq!(tar, again, "reproducible");
    }

    /// Everything a view shows, by path: type, mode, owner, content or
    /// target, xattrs, and which paths share an inode.
    fn view(root: &Path) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut inodes: HashMap<u64, PathBuf> = HashMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            let mut names: Vec<_> = fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for p in names {
                let m = fs::symlink_metadata(&p).unwrap();
                let ft = m.file_type();
                let what = if ft.is_dir() {
                    stack.push(p.clone());
                    format!("dir mtime={}", m.mtime())
                } else if ft.is_symlink() {
                    format!("symlink {}", fs::read_link(&p).unwrap().display())
                } else if ft.is_file() {
                    format!("file {:?} mtime={}", read(&p), m.mtime())
                } else if ft.is_fifo() {
                    "fifo".into()
                } else {
                    format!("device {}", m.rdev())
                };
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                let linked = if !ft.is_dir() && m.nlink() > 1 {
                    let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone());
                    format!(" same-inode-as={}", first.display())
                } else {
                    String::new()
                };
                let x = lxattrs(&cpath(&p).unwrap()).unwrap();
                out.insert(
                    rel,
                    format!(
                        "{what} mode={:o} owner={}:{} xattrs={x:?}{linked}",
                        m.mode() & 0o7777,
                        m.uid(),
                        m.gid()
                    ),
                );
            }
        }
        out
    }

    #[test]
    fn diff_unpacked_on_the_lowers_gives_the_container_view() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let layers = three_layers(tmp.path());
        let snap = Snapshot::prepare(&layers, &tmp.path().join("snap")).unwrap();
        let _guard = Unmount(snap.merged.clone());
        snap.mount().unwrap();
        change(&snap.merged);
        // Whole seconds: a tar keeps no more, and neither may the views.
        for p in ["new", "dir/c", "dir", "shared"] {
            let t = nix::sys::time::TimeSpec::new(1_700_000_000, 0);
            nix::sys::stat::utimensat(
                None,
                &snap.merged.join(p),
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .unwrap();
        }
        let container = view(&snap.merged);

        let mut tar = Vec::new();
        let stats = diff(&snap.upper, &mut tar).unwrap();
        let layer = tmp.path().join("committed");
        let u = crate::layer::unpack(&tar[..], &layer, &Default::default()).unwrap();
        assert_eq!(u.diff_id, stats.diff_id);

        let mut stacked = vec![layer];
        stacked.extend(layers);
        let image = Snapshot::prepare(&stacked, &tmp.path().join("image")).unwrap();
        let _guard2 = Unmount(image.merged.clone());
        image.mount_readonly().unwrap();
        let committed = view(&image.merged);
        assert_eq!(committed, container);
        // Sanity: the comparison saw the changes.
        assert!(container.contains_key(Path::new("new-hard")));
        assert!(!container.contains_key(Path::new("base")));
        assert!(!container.contains_key(Path::new("dir/a")));
    }

    #[test]
    fn diff_refuses_names_layers_reserve() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("d/.wh.sneaky"), "x");
        let e = diff(tmp.path(), io::sink()).unwrap_err();
        assert!(matches!(e, SnapshotError::ReservedName { .. }), "{e}");
    }

    #[test]
    fn diff_never_follows_a_symlinked_directory_out_of_upper() {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let host = tempfile::tempdir().unwrap();
        write(&host.path().join("secret"), "host");
        let upper = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(host.path(), upper.path().join("escape")).unwrap();
        let mut tar = Vec::new();
        diff(upper.path(), &mut tar).unwrap();
        let e = entries(&tar);
        assert_eq!(e.keys().collect::<Vec<_>>(), ["escape"]);
        assert_eq!(e["escape"].0, tar::EntryType::Symlink);
        assert!(!String::from_utf8_lossy(&tar).contains("host"));
    }
}
