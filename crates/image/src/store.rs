//! The image store: blobs on disk, metadata in SQLite (WAL), unpacked
//! layers shared by chain id.
//!
//! Consistency rule: files are written before the rows that name them, in
//! one transaction per change, and rows are deleted before their files.
//! So a command killed at any point leaves, at worst, files no row names
//! (`check` finds and removes them), never a row without its files.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::blobs::{BlobError, BlobStore};
use crate::digest::Digest;
use crate::layer::{self, LayerError, UnpackOptions};
use crate::oci::{self, Config, Descriptor, Manifest};
use crate::reference::Reference;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("image database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("image {0:?} not found locally; pull it or load it")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,          -- config digest: the image id
    manifest TEXT NOT NULL,       -- manifest blob digest
    created TEXT,
    size INTEGER NOT NULL,        -- uncompressed size of its layers
    added TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,        -- docker.io/library/busybox:latest
    image TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS layers (
    chain TEXT PRIMARY KEY,       -- chain id: the layer with all below it
    diff TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image TEXT NOT NULL REFERENCES images(id),
    position INTEGER NOT NULL,
    chain TEXT NOT NULL REFERENCES layers(chain),
    PRIMARY KEY (image, position)
);
CREATE TABLE IF NOT EXISTS image_blobs (
    image TEXT NOT NULL REFERENCES images(id),
    digest TEXT NOT NULL,
    PRIMARY KEY (image, digest)
);
";

/// An image as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: Digest,
    pub manifest: Digest,
    pub created: Option<String>,
    pub size: u64,
    pub tags: Vec<String>,
    /// Chain ids, bottom layer first.
    pub layers: Vec<Digest>,
}

/// What `check` found (and repaired).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub temp_files: usize,
    pub unreferenced_blobs: usize,
    pub unreferenced_layers: usize,
    pub corrupt_blobs: Vec<Digest>,
    pub missing: Vec<String>,
}

#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    pub blobs: BlobStore,
    db: Connection,
    /// Most uncompressed bytes accepted per layer.
    pub max_layer_bytes: u64,
}

fn digest(s: &str) -> Result<Digest> {
    s.parse::<Digest>()
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<ImageStore> {
        fs::create_dir_all(root.join("layers"))
            .map_err(io_err(format!("create {}", root.display())))?;
        fs::create_dir_all(root.join("tmp"))
            .map_err(io_err(format!("create {}", root.display())))?;
        let blobs = BlobStore::open(root)?;
        let db = Connection::open(root.join("berth.db"))?;
        // WAL: readers never wait for a writer; busy_timeout: two commands
        // writing at once wait for each other instead of failing.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        db.busy_timeout(std::time::Duration::from_secs(30))?;
        db.execute_batch(SCHEMA)?;
        Ok(ImageStore {
            root: root.to_path_buf(),
            blobs,
            db,
            max_layer_bytes: 64 << 30,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// syncfs(2) on the store's filesystem.
    fn sync_filesystem(&self) -> Result<()> {
        let dir =
            fs::File::open(&self.root).map_err(io_err(format!("open {}", self.root.display())))?;
        // SAFETY: syncfs takes a live descriptor and touches no memory.
        let rc = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) };
        if rc != 0 {
            return Err(StoreError::Io {
                context: "sync the store".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// A scratch directory on the store's filesystem (renames stay atomic).
    pub fn temp_dir(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("work-")
            .tempdir_in(self.root.join("tmp"))
            .map_err(io_err("create a temp dir"))
    }

    /// Where a layer is unpacked.
    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join("layers").join(chain.hex()).join("diff")
    }

    /// Unpacks the layer blob `blob` (whose uncompressed digest is `diff`)
    /// as chain `chain`, unless it is there already.
    fn ensure_layer(&self, chain: &Digest, diff: &Digest, blob: &Digest) -> Result<u64> {
        if let Some(size) = self
            .db
            .query_row(
                "SELECT size FROM layers WHERE chain = ?1",
                params![chain.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
        {
            if self.layer_dir(chain).is_dir() {
                return Ok(u64::try_from(size).unwrap_or(0));
            }
        }
        let dir = self.layer_dir(chain);
        let parent = dir.parent().unwrap_or(&self.root).to_path_buf();
        let _ = fs::remove_dir_all(&parent);
        fs::create_dir_all(&parent).map_err(io_err(format!("create {}", parent.display())))?;
        let opts = UnpackOptions {
            diff_id: Some(diff.clone()),
            max_bytes: self.max_layer_bytes,
            record_split: false,
        };
        let u = layer::unpack(self.blobs.open_blob(blob)?, &dir, &opts)?;
        Ok(u.size)
    }

    /// Adds an image whose blobs (manifest, config, layers) are stored:
    /// unpacks its layers, then records it and its tags in one transaction.
    pub fn add_image(&mut self, manifest: &Digest, tags: &[Reference]) -> Result<Image> {
        let m: Manifest = serde_json::from_slice(&self.blobs.read(manifest)?)
            .map_err(|e| StoreError::Invalid(format!("manifest {manifest}: {e}")))?;
        let config_digest = digest(&m.config.digest)?;
        let config: Config = serde_json::from_slice(&self.blobs.read(&config_digest)?)
            .map_err(|e| StoreError::Invalid(format!("config {config_digest}: {e}")))?;
        let diffs: Vec<Digest> = config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| digest(d))
            .collect::<Result<_>>()?;
        if diffs.len() != m.layers.len() {
            return Err(StoreError::Invalid(format!(
                "manifest {manifest} has {} layers but its config {} diff_ids",
                m.layers.len(),
                diffs.len()
            )));
        }
        let chains = oci::chain_ids(&diffs);
        let mut sizes = Vec::new();
        for ((layer, diff), chain) in m.layers.iter().zip(&diffs).zip(&chains) {
            sizes.push(self.ensure_layer(chain, diff, &digest(&layer.digest)?)?);
        }
        // Files before rows: one flush of the store's filesystem makes the
        // blobs and unpacked layers durable before the transaction names
        // them (cheaper than a sync per blob, and it covers the layers).
        self.sync_filesystem()?;
        let tx = self.db.transaction()?;
        let id = config_digest.to_string();
        tx.execute(
            "INSERT INTO images (id, manifest, created, size, added) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET manifest = excluded.manifest",
            params![
                id,
                manifest.to_string(),
                config.created,
                i64::try_from(sizes.iter().sum::<u64>()).unwrap_or(i64::MAX),
                now()
            ],
        )?;
        for (i, ((chain, diff), size)) in chains.iter().zip(&diffs).zip(&sizes).enumerate() {
            tx.execute(
                "INSERT OR IGNORE INTO layers (chain, diff, size) VALUES (?1, ?2, ?3)",
                params![
                    chain.to_string(),
                    diff.to_string(),
                    i64::try_from(*size).unwrap_or(i64::MAX)
                ],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO image_layers (image, position, chain) VALUES (?1, ?2, ?3)",
                params![id, i64::try_from(i).unwrap_or(0), chain.to_string()],
            )?;
        }
        let mut blobs = vec![manifest.to_string(), config_digest.to_string()];
        blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
        for b in blobs {
            tx.execute(
                "INSERT OR IGNORE INTO image_blobs (image, digest) VALUES (?1, ?2)",
                params![id, b],
            )?;
        }
        for t in tags {
            tx.execute(
                "INSERT OR REPLACE INTO tags (name, image) VALUES (?1, ?2)",
                params![t.to_string(), id],
            )?;
        }
        tx.commit()?;
        self.get(&id)
    }

    /// Stores a manifest for `config` and `layers` (descriptors of stored
    /// blobs) and adds the image.
    pub fn add_from_parts(
        &mut self,
        config: &[u8],
        layers: Vec<Descriptor>,
        tags: &[Reference],
    ) -> Result<Image> {
        let config_digest = self.blobs.put_bytes(config, None)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: oci::OCI_CONFIG.into(),
                digest: config_digest.to_string(),
                size: config.len() as u64,
                platform: None,
                annotations: None,
            },
            layers,
            annotations: None,
        };
        let bytes =
            serde_json::to_vec(&manifest).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let manifest_digest = self.blobs.put_bytes(&bytes, None)?;
        self.add_image(&manifest_digest, tags)
    }

    /// Stores a layer stream as a blob: as given (`compressed`), or
    /// decompressed first so the blob is the plain tar.
    pub fn put_layer_blob(&self, input: impl Read) -> Result<Descriptor> {
        let d = self.blobs.put(
            layer::decompress(input).map_err(io_err("read layer"))?,
            None,
            Some(self.max_layer_bytes),
        )?;
        let size = fs::metadata(self.blobs.path(&d))
            .map_err(io_err("stat layer"))?
            .len();
        Ok(Descriptor {
            media_type: oci::OCI_LAYER.into(),
            digest: d.to_string(),
            size,
            platform: None,
            annotations: None,
        })
    }

    fn tags_of(&self, id: &str) -> Result<Vec<String>> {
        let mut st = self
            .db
            .prepare("SELECT name FROM tags WHERE image = ?1 ORDER BY name")?;
        let rows = st.query_map(params![id], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn get(&self, id: &str) -> Result<Image> {
        let (manifest, created, size): (String, Option<String>, i64) = self
            .db
            .query_row(
                "SELECT manifest, created, size FROM images WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let mut st = self
            .db
            .prepare("SELECT chain FROM image_layers WHERE image = ?1 ORDER BY position")?;
        let layers = st
            .query_map(params![id], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?
            .iter()
            .map(|c| digest(c))
            .collect::<Result<_>>()?;
        Ok(Image {
            id: digest(id)?,
            manifest: digest(&manifest)?,
            created,
            size: u64::try_from(size).unwrap_or(0),
            tags: self.tags_of(id)?,
            layers,
        })
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<Image>> {
        let mut st = self
            .db
            .prepare("SELECT id FROM images ORDER BY added DESC, id")?;
        let ids = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        ids.iter().map(|id| self.get(id)).collect()
    }

    /// Finds an image by reference (`busybox`, `localhost/app:1`), full or
    /// short id (`sha256:…`, or a unique hex prefix of at least 3), or
    /// manifest digest (`name@sha256:…`).
    pub fn resolve(&self, name: &str) -> Result<Image> {
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 3 && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut st = self.db.prepare("SELECT id FROM images WHERE id LIKE ?1")?;
            let ids = st
                .query_map(
                    params![format!("sha256:{}%", hex.to_ascii_lowercase())],
                    |r| r.get::<_, String>(0),
                )?
                .collect::<std::result::Result<Vec<_>, _>>()?;
            match ids.len() {
                1 => return self.get(&ids[0]),
                0 => {}
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "image id prefix {name:?} is ambiguous; give more of it"
                    )))
                }
            }
        }
        let r: Reference = name
            .parse()
            .map_err(|e: crate::reference::ReferenceError| StoreError::Invalid(e.to_string()))?;
        if let Some(d) = &r.digest {
            let id: Option<String> = self
                .db
                .query_row(
                    "SELECT id FROM images WHERE manifest = ?1",
                    params![d.to_string()],
                    |row| row.get(0),
                )
                .optional()?;
            return id.map_or_else(
                || Err(StoreError::NotFound(name.to_string())),
                |id| self.get(&id),
            );
        }
        let id: Option<String> = self
            .db
            .query_row(
                "SELECT image FROM tags WHERE name = ?1",
                params![r.to_string()],
                |row| row.get(0),
            )
            .optional()?;
        id.map_or_else(
            || Err(StoreError::NotFound(name.to_string())),
            |id| self.get(&id),
        )
    }

    pub fn tag(&mut self, source: &str, target: &Reference) -> Result<()> {
        let img = self.resolve(source)?;
        self.db.execute(
            "INSERT OR REPLACE INTO tags (name, image) VALUES (?1, ?2)",
            params![target.to_string(), img.id.to_string()],
        )?;
        Ok(())
    }

    /// Removes a tag, or (by id, or its last tag) the image; with `force`,
    /// an image by id loses all its tags. Returns what happened, as
    /// docker prints it ("Untagged: …", "Deleted: …").
    pub fn remove(&mut self, name: &str, force: bool) -> Result<Vec<String>> {
        let img = self.resolve(name)?;
        let mut out = Vec::new();
        let by_tag = name
            .parse::<Reference>()
            .ok()
            .map(|r| r.to_string())
            .filter(|t| img.tags.contains(t));
        let tx = self.db.transaction()?;
        match by_tag {
            Some(t) => {
                tx.execute("DELETE FROM tags WHERE name = ?1", params![t])?;
                out.push(format!("Untagged: {t}"));
            }
            None if img.tags.len() > 1 && !force => {
                return Err(StoreError::Invalid(format!(
                    "image {} is referenced by several tags ({}); remove them, or use --force",
                    &img.id.hex()[..12],
                    img.tags.join(", ")
                )))
            }
            None => {
                for t in &img.tags {
                    tx.execute("DELETE FROM tags WHERE name = ?1", params![t])?;
                    out.push(format!("Untagged: {t}"));
                }
            }
        }
        let left: i64 = tx.query_row(
            "SELECT COUNT(*) FROM tags WHERE image = ?1",
            params![img.id.to_string()],
            |r| r.get(0),
        )?;
        if left == 0 {
            let id = img.id.to_string();
            tx.execute("DELETE FROM image_layers WHERE image = ?1", params![id])?;
            tx.execute("DELETE FROM image_blobs WHERE image = ?1", params![id])?;
            tx.execute("DELETE FROM images WHERE id = ?1", params![id])?;
            out.push(format!("Deleted: {id}"));
        }
        tx.commit()?;
        self.collect_garbage()?;
        Ok(out)
    }

    /// Deletes layers and blobs no image uses (rows first, then files).
    pub fn collect_garbage(&mut self) -> Result<(usize, usize)> {
        let tx = self.db.transaction()?;
        let unused_layers: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT chain FROM layers WHERE chain NOT IN (SELECT chain FROM image_layers)",
            )?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<std::result::Result<Vec<_>, _>>()?;
            v
        };
        for c in &unused_layers {
            tx.execute("DELETE FROM layers WHERE chain = ?1", params![c])?;
        }
        tx.commit()?;
        for c in &unused_layers {
            let d = digest(c)?;
            let _ = fs::remove_dir_all(self.layer_dir(&d).parent().unwrap_or(&self.root));
        }
        let used: std::collections::HashSet<String> = {
            let mut st = self.db.prepare("SELECT DISTINCT digest FROM image_blobs")?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            v
        };
        let mut removed = 0;
        for b in self.blobs.list()? {
            if !used.contains(&b.to_string()) {
                self.blobs.remove(&b)?;
                removed += 1;
            }
        }
        Ok((unused_layers.len(), removed))
    }

    /// Finds what a killed command may have left and repairs it: temp
    /// files, blobs and layer directories no row names, blobs whose
    /// content does not match their name, rows whose files are missing.
    pub fn check(&mut self) -> Result<CheckReport> {
        let mut report = CheckReport {
            temp_files: self.blobs.clean_temp()?,
            ..Default::default()
        };
        for e in fs::read_dir(self.root.join("tmp"))
            .map_err(io_err("read tmp"))?
            .flatten()
        {
            let _ = fs::remove_dir_all(e.path());
            report.temp_files += 1;
        }
        let known: std::collections::HashSet<String> = {
            let mut st = self.db.prepare("SELECT chain FROM layers")?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            v
        };
        for e in fs::read_dir(self.root.join("layers"))
            .map_err(io_err("read layers"))?
            .flatten()
        {
            let name = format!("sha256:{}", e.file_name().to_string_lossy());
            if !known.contains(&name) {
                let _ = fs::remove_dir_all(e.path());
                report.unreferenced_layers += 1;
            } else if !e.path().join("diff").is_dir() {
                report.missing.push(format!("layer {name}"));
            }
        }
        for b in self.blobs.list()? {
            if !self.blobs.verify(&b)? {
                self.blobs.remove(&b)?;
                report.corrupt_blobs.push(b);
            }
        }
        let (_, unreferenced) = self.collect_garbage()?;
        report.unreferenced_blobs = unreferenced;
        let mut st = self.db.prepare("SELECT DISTINCT digest FROM image_blobs")?;
        let used: Vec<String> = st
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        drop(st);
        for u in used {
            if !self.blobs.contains(&digest(&u)?) {
                report.missing.push(format!("blob {u}"));
            }
        }
        Ok(report)
    }

    /// The manifest and config of an image, parsed.
    pub fn manifest_and_config(&self, img: &Image) -> Result<(Manifest, serde_json::Value)> {
        let m: Manifest = serde_json::from_slice(&self.blobs.read(&img.manifest)?)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let c: serde_json::Value = serde_json::from_slice(&self.blobs.read(&img.id)?)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        Ok((m, c))
    }

    /// Disk use: (images, their layers' size, blobs' size).
    pub fn disk_usage(&self) -> Result<(usize, u64, u64)> {
        let images: i64 = self
            .db
            .query_row("SELECT COUNT(*) FROM images", [], |r| r.get(0))?;
        let layers: i64 =
            self.db
                .query_row("SELECT COALESCE(SUM(size), 0) FROM layers", [], |r| {
                    r.get(0)
                })?;
        let mut blobs = 0u64;
        for b in self.blobs.list()? {
            blobs += fs::metadata(self.blobs.path(&b))
                .map(|m| m.len())
                .unwrap_or(0);
        }
        Ok((
            usize::try_from(images).unwrap_or(0),
            u64::try_from(layers).unwrap_or(0),
            blobs,
        ))
    }
}
