//! Named and anonymous volumes: directories under `<root>/volumes/<name>/_data`
//! with a row each in the `volumes` table. A volume that is empty when a
//! container first mounts it is filled with what the image has at the
//! mount point, as docker does (read inside the rootfs: an image's
//! symlinks cannot point the copy at the host), file by file without
//! holding the tree in memory (see `tree_copy`), the volume's top
//! directory taking the owner and mode the image gives that directory.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Context, Error, Result};

/// A volume as `volume inspect` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Volume {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "CreatedAt")]
    pub created: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Labels")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(rename = "Mountpoint")]
    pub mountpoint: PathBuf,
    #[serde(rename = "Scope")]
    pub scope: String,
    #[serde(skip)]
    pub anonymous: bool,
}

/// The volumes of a store.
#[derive(Debug)]
pub struct Volumes {
    root: PathBuf,
    conn: std::rc::Rc<Connection>,
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
        Err(Error::Invalid(format!(
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
                name,
                created,
                driver: "local".into(),
                labels: serde_json::from_str(&labels).unwrap_or_default(),
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
        let labels_json = serde_json::to_string(labels).unwrap_or_else(|_| "{}".into());
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

    /// Removes a volume (the caller checked that no container uses it).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
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
    /// has nothing there.
    pub fn populate(&self, name: &str, rootfs: &Path, dest: &str) -> Result<()> {
        let data = self.path(name);
        let empty = std::fs::read_dir(&data)
            .ctx(|| format!("read {}", data.display()))?
            .next()
            .is_none();
        if !empty {
            return Ok(());
        }
        let root = open_dir(rootfs)?;
        let Ok(src) =
            saferoot::open_in_root(&root, Path::new(dest), OFlag::O_PATH | OFlag::O_DIRECTORY)
        else {
            return Ok(());
        };
        let dst = open_dir(&data)?;
        crate::tree_copy::copy_tree(&src, &dst).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("fill volume {name} from {dest}: {m}")),
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
        Ok(())
    }
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
