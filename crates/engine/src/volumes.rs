//! Named and anonymous volumes: directories under `<root>/volumes/<name>/_data`
//! with a row each in the `volumes` table. A volume that is empty when a
//! container first mounts it is filled with what the image has at the
//! mount point, as docker does (read inside the rootfs: an image's
//! symlinks cannot point the copy at the host), file by file without
//! holding the tree in memory (see `tree_copy`), the volume's top
//! directory taking the owner and mode the image gives that directory.
//!
//! The local driver's options (`volume create --opt type=tmpfs --opt
//! device=tmpfs --opt o=size=64m`, `type=none,o=bind,device=/path`, nfs...)
//! are kept in `<name>/opts.json`, as Docker keeps them, and mounted on
//! `_data` when a container using the volume starts (see `mount`), so
//! everything after that (filling, binding into the container) is the same
//! as for a plain volume; the mount goes when the last such container
//! stops, or when the volume is removed.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Context, Error, Result};

/// A volume as `volume inspect` shows it, fields in docker's order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Volume {
    #[serde(rename = "CreatedAt")]
    pub created: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Labels")]
    pub labels: Labels,
    #[serde(rename = "Mountpoint")]
    pub mountpoint: PathBuf,
    #[serde(rename = "Name")]
    pub name: String,
    /// The local driver's options (`type`, `device`, `o`); Docker shows
    /// none for an anonymous volume as null, for a named one as `{}`.
    #[serde(rename = "Options")]
    pub options: Option<std::collections::BTreeMap<String, String>>,
    #[serde(rename = "Scope")]
    pub scope: String,
    #[serde(skip)]
    pub anonymous: bool,
}

/// A volume's labels: none (docker's `null`) for a volume a container made
/// without any (`-v name:/x`), a map (`{}` when empty) for one `volume
/// create` made. Read as a map either way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Labels(pub Option<std::collections::BTreeMap<String, String>>);

impl std::ops::Deref for Labels {
    type Target = std::collections::BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        static NONE: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        self.0.as_ref().unwrap_or(&NONE)
    }
}

/// Refuses a volume driver other than the local one (`""` is the default),
/// in docker's daemon's words.
pub fn check_driver(driver: &str) -> Result<()> {
    match driver {
        "" | "local" => Ok(()),
        other => Err(Error::InvalidOption(format!(
            "error looking up volume plugin {other}: plugin {other:?} not found"
        ))),
    }
}

/// The volumes of a store.
#[derive(Debug)]
pub struct Volumes {
    root: PathBuf,
    conn: std::rc::Rc<Connection>,
}

/// A volume's creation time as docker shows it: RFC 3339 to the second
/// (`2026-12-05T16:38:28Z`); berth records it to the nanosecond.
fn whole_seconds(created: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(created, &Rfc3339)
        .ok()
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok())
        .unwrap_or_else(|| created.to_string())
}

/// Docker's rule for volume names.
pub fn validate(name: &str) -> Result<()> {
    let ok = name.len() >= 2
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '_' | '.' | '-')));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOption(format!(
            "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }
}

impl Volumes {
    /// The volumes of the store at `root`, through the engine's database
    /// connection.
    pub fn open(root: &Path, db: &crate::db::Db) -> Result<Volumes> {
        let conn = db.connection();
        Ok(Volumes {
            root: root.join("volumes"),
            conn,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    fn row(&self, name: &str) -> Result<Option<Volume>> {
        Ok(self
            .conn
            .query_row(
                "SELECT name, created, labels, anonymous FROM volumes WHERE name = ?1",
                params![name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                },
            )
            .optional()?
            .map(|(name, created, labels, anonymous)| Volume {
                mountpoint: self.path(&name),
                // A volume a container made without options has none
                // (null); `volume create` writes its options, `{}` too.
                options: if anonymous {
                    None
                } else {
                    self.stored_options(&name)
                },
                name,
                created: whole_seconds(&created),
                driver: "local".into(),
                // A container's volume made without labels stores `null`.
                labels: Labels(serde_json::from_str(&labels).unwrap_or(Some(Default::default()))),
                scope: "local".into(),
                anonymous,
            }))
    }

    /// The volume named `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<Volume> {
        self.row(name)?
            .ok_or_else(|| Error::NoSuchVolume(name.to_string()))
    }

    /// Creates a volume (a random name if none); an existing one is
    /// returned as it is, as docker does.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<Volume> {
        self.create_with_options(name, labels, &std::collections::BTreeMap::new())
    }

    /// `create` with the local driver's options, checked as Docker's
    /// local driver checks them (what is missing is only found at mount).
    pub fn create_with_options(
        &self,
        name: Option<&str>,
        labels: &std::collections::BTreeMap<String, String>,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Volume> {
        self.make(name, labels, options, false)
    }

    /// A volume a container's mount makes (`-v name:/x`, `--mount`'s
    /// volume-* options, an image's VOLUME): as `create_with_options`,
    /// but docker shows its labels and options as null when it has none.
    pub fn create_for_mount(
        &self,
        name: Option<&str>,
        labels: &std::collections::BTreeMap<String, String>,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Volume> {
        self.make(name, labels, options, true)
    }

    fn make(
        &self,
        name: Option<&str>,
        labels: &std::collections::BTreeMap<String, String>,
        options: &std::collections::BTreeMap<String, String>,
        for_mount: bool,
    ) -> Result<Volume> {
        validate_options(options)?;
        let anonymous = name.is_none();
        let name = name.map_or_else(crate::random_id, str::to_string);
        validate(&name)?;
        if let Some(v) = self.row(&name)? {
            return Ok(v);
        }
        let dir = self.path(&name);
        // The volume's own directory is root's; `_data` inside keeps the
        // mode its content needs (filled from the image).
        if let Some(top) = dir.parent() {
            saferoot::private::private_dir(top).ctx(|| format!("create {}", top.display()))?;
        }
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        if !options.is_empty() || !for_mount {
            let text = serde_json::to_vec(options).map_err(|source| Error::Encode {
                what: "volume options",
                source,
            })?;
            let path = self.root.join(&name).join("opts.json");
            std::fs::write(&path, text).ctx(|| format!("write {}", path.display()))?;
        }
        let labels_json = if for_mount && labels.is_empty() {
            "null".to_string()
        } else {
            serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
        };
        self.conn.execute(
            "INSERT OR IGNORE INTO volumes (name, created, labels, anonymous) VALUES (?1, ?2, ?3, ?4)",
            params![name, crate::now(), labels_json, anonymous],
        )?;
        self.get(&name)
    }

    pub fn list(&self) -> Result<Vec<Volume>> {
        let names: Vec<String> = self
            .conn
            .prepare("SELECT name FROM volumes ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        names.iter().map(|n| self.get(n)).collect()
    }

    /// The local driver's options of a volume (none: empty).
    pub fn options(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        self.stored_options(name).unwrap_or_default()
    }

    /// The options file of a volume, if it has one.
    fn stored_options(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
        std::fs::read(self.root.join(name).join("opts.json"))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
    }

    /// Mounts what the volume's options name on its `_data` (once: a
    /// volume already mounted, by another container that uses it, stays
    /// as it is); nothing for a volume without options. Docker's words
    /// on failure.
    pub fn mount(&self, name: &str) -> Result<()> {
        let opts = self.options(name);
        if opts.is_empty() {
            return Ok(());
        }
        let data = self.path(name);
        let _lock = self.lock(name)?;
        if is_mountpoint(&data) {
            return Ok(());
        }
        let fail = |why: String, errno: Option<nix::errno::Errno>| Error::VolumeMount {
            message: format!(
                "error while mounting volume '{}': failed to mount local volume: {why}",
                data.display()
            ),
            errno: errno.map(|e| e as i32),
        };
        let device = opts.get("device").map_or("", String::as_str);
        if device.is_empty() {
            return Err(fail("missing device in volume options".into(), None));
        }
        let kind = opts.get("type").map_or("", String::as_str);
        let (flags, extra) =
            mount_flags(opts.get("o").map_or("", String::as_str)).map_err(|e| fail(e, None))?;
        let without_propagation = flags
            & !(MsFlags::MS_SHARED
                | MsFlags::MS_PRIVATE
                | MsFlags::MS_SLAVE
                | MsFlags::MS_UNBINDABLE);
        nix::mount::mount(
            Some(device),
            &data,
            Some(kind),
            without_propagation,
            (!extra.is_empty()).then_some(extra.as_str()),
        )
        .map_err(|e| {
            let mut what = format!("mount {device}:{}", data.display());
            if !without_propagation.is_empty() {
                what.push_str(&format!(", flags: {:#x}", without_propagation.bits()));
            }
            if !extra.is_empty() {
                what.push_str(&format!(", data: {extra}"));
            }
            fail(format!("{what}: {}", go_errno(e)), Some(e))
        })?;
        // A read-only bind needs a second pass, as mount(8) does it.
        let ro_bind = MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        if without_propagation.contains(ro_bind) {
            nix::mount::mount(
                None::<&str>,
                &data,
                None::<&str>,
                without_propagation | MsFlags::MS_REMOUNT,
                None::<&str>,
            )
            .map_err(|e| {
                fail(
                    format!("remount {} read-only: {}", data.display(), go_errno(e)),
                    Some(e),
                )
            })?;
        }
        Ok(())
    }

    /// Unmounts a volume's options mount (the last container using it
    /// stopped, or the volume goes); nothing if it is not mounted.
    pub fn unmount(&self, name: &str) -> Result<()> {
        let data = self.path(name);
        if !self.root.join(name).is_dir() {
            // Its directory is gone (a damaged or very old store): nothing
            // can be mounted on it, and rm must still be able to forget it.
            return Ok(());
        }
        let _lock = self.lock(name)?;
        if is_mountpoint(&data) {
            nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH)
                .ctx(|| format!("unmount {}", data.display()))?;
        }
        Ok(())
    }

    /// Serialises mounting and unmounting one volume between processes.
    fn lock(&self, name: &str) -> Result<nix::fcntl::Flock<std::fs::File>> {
        let path = self.root.join(name).join(".lock");
        let f = std::fs::File::create(&path).ctx(|| format!("create {}", path.display()))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .ctx(|| format!("lock {}", path.display()))
    }

    /// Removes a volume (the caller checked that no container uses it).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        // An options mount goes first: removing the tree under a bind
        // would delete the host directory's files.
        self.unmount(name)?;
        let data = self.path(name);
        if is_mountpoint(&data) {
            return Err(Error::InUse(format!(
                "remove {name}: {} is still mounted",
                data.display()
            )));
        }
        // The row goes first: a crash leaves a directory without a row,
        // which a later create of the same name simply reuses.
        self.conn
            .execute("DELETE FROM volumes WHERE name = ?1", params![name])?;
        let dir = self.root.join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove {}", dir.display())),
        }
    }

    /// Fills an empty volume with what `rootfs` has at `dest` (resolved
    /// inside `rootfs`); nothing if the volume has content or the image
    /// has nothing there. True when it filled it.
    pub fn populate(&self, name: &str, rootfs: &Path, dest: &str) -> Result<bool> {
        let data = self.path(name);
        let empty = std::fs::read_dir(&data)
            .ctx(|| format!("read {}", data.display()))?
            .next()
            .is_none();
        if !empty {
            return Ok(false);
        }
        let root = open_dir(rootfs)?;
        let Ok(src) =
            saferoot::open_in_root(&root, Path::new(dest), OFlag::O_PATH | OFlag::O_DIRECTORY)
        else {
            return Ok(false);
        };
        let dst = open_dir(&data)?;
        crate::tree_copy::copy_tree(&src, &dst).map_err(|e| match e {
            Error::Nul(m) => Error::Nul(format!("fill volume {name} from {dest}: {m}")),
            Error::Io { context, source } => Error::Io {
                context: format!("fill volume {name} from {dest}: {context}"),
                source,
            },
            Error::Sys { context, source } => Error::Sys {
                context: format!("fill volume {name} from {dest}: {context}"),
                source,
            },
            other => other,
        })?;
        Ok(true)
    }
}

/// The options Docker's local driver takes, and what each needs with it.
const OPTIONS: &[&str] = &["type", "o", "device", "size"];
const NEEDS: &[(&str, &[&str])] = &[
    ("device", &["type"]),
    ("type", &["device"]),
    ("o", &["device", "type"]),
];

/// Docker's local driver's check of `volume create --opt`, in its words.
pub fn validate_options(opts: &std::collections::BTreeMap<String, String>) -> Result<()> {
    if let Some(bad) = opts.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(Error::InvalidOption(format!("invalid option: {bad:?}")));
    }
    if let Some(size) = opts.get("size") {
        match berth_relay::size::ram_in_bytes(size) {
            Err(e) => return Err(Error::InvalidOption(e.to_string())),
            // berth's volumes have no quota (Docker's need xfs project quotas).
            Ok(n) if n > 0 => {
                return Err(Error::InvalidOption(
                    "quota size requested but no quota support".into(),
                ))
            }
            Ok(_) => {}
        }
    }
    for (opt, needs) in NEEDS {
        if opts.contains_key(*opt) {
            if let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n)) {
                return Err(Error::InvalidOption(format!(
                    "missing required option: {missing:?}"
                )));
            }
        }
    }
    Ok(())
}

/// The mount flags and the filesystem's own options of an `o=` value, as
/// mount(8) (and Docker's mount package) split them: the runtime's parser
/// of OCI mount options, whose propagation the caller leaves out.
fn mount_flags(o: &str) -> std::result::Result<(MsFlags, String), String> {
    let list: Vec<String> = o
        .split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    let opts = berth_runtime::rootfs::options::MountOptions::parse(&list)?;
    let mut flags = opts.flags;
    if opts.bind {
        flags |= MsFlags::MS_BIND;
    }
    if opts.recursive {
        flags |= MsFlags::MS_REC;
    }
    Ok((flags, opts.data.join(",")))
}

/// An errno as Go's syscall package words it ("no such file or directory").
fn go_errno(e: nix::Error) -> String {
    std::io::Error::from_raw_os_error(e as i32)
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

/// Whether something is mounted on `path` (per this process's mount table).
fn is_mountpoint(path: &Path) -> bool {
    let want = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|t| {
        t.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|m| unescape_mountinfo(m) == want)
    })
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..=i + 3].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(char::from(v));
            i += 4;
        } else {
            out.push(char::from(b[i]));
            i += 1;
        }
    }
    out
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        p,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", p.display()))?;
    // SAFETY: open returned a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
impl crate::Engine {
    /// `volume create`: [`Volumes::create_with_options`], journalled as
    /// docker's daemon does (a `create` event).
    pub fn volume_create(
        &self,
        name: Option<&str>,
        labels: &std::collections::BTreeMap<String, String>,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Volume> {
        let v = self.volumes.create_with_options(name, labels, options)?;
        self.db.volume_event("create", &v.name);
        Ok(v)
    }

    /// Every volume, by name.
    pub fn volume_list(&self) -> Result<Vec<Volume>> {
        self.volumes.list()
    }

    /// A volume by its name.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        self.volumes.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn options_are_checked_as_dockers_local_driver_checks_them() {
        let err = |kv: &[(&str, &str)]| validate_options(&opts(kv)).unwrap_err().to_string();
        assert_eq!(err(&[("foo", "bar")]), "invalid option: \"foo\"");
        assert_eq!(
            err(&[("type", "tmpfs")]),
            "missing required option: \"device\""
        );
        assert_eq!(
            err(&[("device", "tmpfs")]),
            "missing required option: \"type\""
        );
        assert_eq!(
            err(&[("size", "1m")]),
            "quota size requested but no quota support"
        );
        assert_eq!(err(&[("size", "x")]), "invalid size: 'x'");
        assert!(validate_options(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m")
        ]))
        .is_ok());
        assert!(validate_options(&opts(&[("size", "0")])).is_ok());
    }

    #[test]
    fn o_splits_into_flags_and_data_as_mount8_does() {
        let (f, d) = mount_flags("bind,ro").unwrap();
        assert_eq!(f, MsFlags::MS_BIND | MsFlags::MS_RDONLY);
        assert_eq!(d, "");
        let (f, d) = mount_flags("size=1m,nosuid,mode=700").unwrap();
        assert_eq!(f, MsFlags::MS_NOSUID);
        assert_eq!(d, "size=1m,mode=700");
        assert_eq!(mount_flags("ro,rw").unwrap().0, MsFlags::empty());
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
