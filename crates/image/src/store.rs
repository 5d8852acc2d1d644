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
use std::rc::Rc;

use rusqlite::{params, Connection, OptionalExtension};

use crate::blobs::{BlobError, BlobStore};
use crate::database::{self, DatabaseError};
use crate::digest::Digest;
use crate::layer::{self, LayerError, UnpackOptions};
use crate::oci::{self, Config, Descriptor, Manifest};
use crate::reference::Reference;
use crate::tarsplit;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("image database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// No such image: {0}
    #[error("No such image: {0}")]
    NotFound(String),
    /// Image content that does not parse or does not agree with itself
    /// (a manifest, a config, an archive's files): "{0}".
    #[error("{0}")]
    Malformed(String),
    /// A name, prefix or option the caller gave is wrong: "{0}" ("image
    /// id prefix x is ambiguous; give more of it").
    #[error("{0}")]
    InvalidOption(String),
    /// The request needs force: "{0}" ("image x is referenced by several
    /// tags ...").
    #[error("{0}")]
    Conflict(String),
    /// The store's records disagree with its files (a layer missing, a
    /// build cache entry unreadable): "{0}".
    #[error("{0}")]
    Damaged(String),
    /// A layer's download failed on the way: "{0}".
    #[error("{0}")]
    Fetch(String),
    /// encode manifest: {0}
    #[error("encode manifest: {0}")]
    Encode(serde_json::Error),
    /// {context}: {source}
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// A connection to the store's database (`root/berth.db`), set up as
/// [`berth_store::configure`] says and at the schema's current version.
///
/// A missing or empty database is started only over an empty store: over
/// existing layers and blobs it would name none of them, and the next
/// `system check` would delete them all (see [`crate::database`]).
pub fn open_connection(root: &Path) -> std::result::Result<Connection, DatabaseError> {
    connect(root, false)
}

/// As [`open_connection`]; with `over_content`, a new database may be
/// started over existing content (only `system check --rebuild`, which then
/// names that content in it).
fn connect(root: &Path, over_content: bool) -> std::result::Result<Connection, DatabaseError> {
    let path = root.join(database::FILE);
    let new = if over_content {
        database::file_state(&path)?.is_some()
    } else {
        database::guard_new(root)?
    };
    let sqlite = |source| DatabaseError::Sqlite {
        path: path.clone(),
        source,
    };
    let schema = |source| DatabaseError::Schema {
        path: path.clone(),
        source,
    };
    let mut db = berth_store::configure(&path).map_err(schema)?;
    berth_store::migrate(&mut db).map_err(schema)?;
    if new {
        database::mark_born_empty(&db).map_err(sqlite)?;
    }
    Ok(db)
}

/// The bytes of the files and symlinks under `dir` (not following
/// links), each inode once, as docker's `directory.Size` counts a layer.
pub fn content_size_of(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                todo.push(e.path());
            } else if m.size() > 0 && (m.nlink() < 2 || seen.insert((m.dev(), m.ino()))) {
                total += m.size();
            }
        }
    }
    total
}

/// An image as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: Digest,
    pub manifest: Digest,
    pub created: Option<String>,
    pub size: u64,
    pub tags: Vec<String>,
    /// `name@sha256:…` references (full names, sorted): the digests the
    /// image was pulled by or pushed as in each repository, Docker's
    /// RepoDigests. They live in the `tags` table beside the tags, as
    /// Docker's reference store keeps both kinds under one name space.
    pub digests: Vec<String>,
    /// Chain ids, bottom layer first.
    pub layers: Vec<Digest>,
}

impl Image {
    /// Whether any reference (tag or digest) still names the image.
    pub fn is_referenced(&self) -> bool {
        !self.tags.is_empty() || !self.digests.is_empty()
    }
}

/// The repository part of a full reference (`registry/repo:tag`,
/// `registry/repo@sha256:…`): what Docker groups references by.
fn repository_of(reference: &str) -> &str {
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => &name[..slash + i],
        None => name,
    }
}

/// What `check` found (and repaired).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub temp_files: usize,
    pub unreferenced_blobs: usize,
    pub unreferenced_layers: usize,
    pub corrupt_blobs: Vec<Digest>,
    /// Layers whose files no longer give their tar back (removed).
    pub corrupt_layers: Vec<Digest>,
    pub missing: Vec<String>,
}

#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    pub blobs: BlobStore,
    /// The command's one connection, shared with the engine's tables
    /// (containers, volumes, networks): see [`ImageStore::connection`].
    pub(crate) db: Rc<Connection>,
    /// Most uncompressed bytes accepted per layer.
    pub max_layer_bytes: u64,
}

fn digest(s: &str) -> Result<Digest> {
    s.parse::<Digest>()
        .map_err(|e| StoreError::Malformed(e.to_string()))
}

/// Now, RFC 3339 as Go's RFC3339Nano writes it (trailing zeros of the
/// fraction dropped): the store's image and build-cache times, which
/// image history shows as Docker does.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The plain tar of layer `chain` made again from its files and tar-split
/// under store `root`, checked against `blob` (its diff_id), with its
/// size. A free function: threads that push layers share the store's
/// files but not its database connection.
pub fn open_layer_from_files(
    root: &Path,
    chain: &Digest,
    blob: &Digest,
) -> Result<(Box<dyn Read>, u64)> {
    let layer = root.join("layers").join(chain.hex());
    let record = fs::read(layer.join("tar-split")).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::Blob(BlobError::NotFound(blob.clone())),
        _ => StoreError::Io {
            context: format!("read the tar-split of layer {chain}"),
            source: e,
        },
    })?;
    let size = tarsplit::size(&record).map_err(io_err(format!("tar-split of layer {chain}")))?;
    let r = tarsplit::assemble(record, &layer.join("diff"), blob)
        .map_err(io_err(format!("layer {chain}")))?;
    Ok((Box::new(r), size))
}

/// Opens a layer's stream (as archived or stored: plain or compressed),
/// as often as asked.
pub(crate) type LayerSource<'a> = dyn Fn() -> Result<Box<dyn Read + 'a>> + Sync + 'a;

/// ext4's FS_TOPDIR_FL (`chattr +T`), which the kernel headers name but
/// libc does not.
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Marks `dir` as the top of unrelated directory trees (`chattr +T`), so
/// ext4's Orlov allocator spreads the directories made in it over the
/// disk instead of packing them into its own block group. Unpacked
/// layers are such trees; spread, layers unpacked at once do not contend
/// for one group, and a new layer does not land where a removed one left
/// thousands of freed inodes: ext4 without a journal skips every inode
/// freed in the last minutes, one by one, for every file it creates (with
/// the freed inodes of a 21,000-file image next door, that made a load
/// four to five times slower; containers' snapshots come and go the same
/// way). Best effort: other filesystems have no such hint, or ignore it.
pub fn mark_topdir(dir: &Path) {
    let Ok(f) = fs::File::open(dir) else { return };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut flags: libc::c_int = 0;
    // SAFETY: a live descriptor and a pointer to an int, as the ioctl takes.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        return;
    }
    if flags & FS_TOPDIR_FL == 0 {
        flags |= FS_TOPDIR_FL;
        // SAFETY: as above.
        // Only a placement hint: filesystems without it are fine.
        let _ = unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags) };
    }
}

/// Unpacks layers into place; shared by the threads of one load.
pub(crate) struct Stager<'a> {
    pub(crate) layers: PathBuf,
    pub(crate) blobs: &'a BlobStore,
    pub(crate) max_bytes: u64,
}

/// A layer unpacked beside its final place.
pub(crate) struct Staged {
    pub(crate) dir: PathBuf,
    pub(crate) diff: Digest,
}

impl Stager<'_> {
    /// Unpacks `source` into a new directory under `layers/` (a fresh name
    /// each time, which spreads it: see `mark_topdir`), with its tar-split,
    /// or, when its files cannot give the tar back, with the tar kept as a
    /// blob instead. Returns it and the layer's uncompressed size.
    pub(crate) fn stage(
        &self,
        diff: Option<&Digest>,
        source: &LayerSource<'_>,
    ) -> Result<(Staged, u64)> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = self.layers.join(format!(
            ".unpack-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        fs::create_dir(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let staged = (|| {
            let opts = UnpackOptions {
                diff_id: diff.cloned(),
                max_bytes: self.max_bytes,
                record_split: true,
            };
            let u = layer::unpack(source()?, &dir.join("diff"), &opts)?;
            match &u.split {
                Some(record) => fs::write(dir.join("tar-split"), record)
                    .map_err(io_err("write the tar-split record"))?,
                None => {
                    let input = layer::decompress(source()?).map_err(io_err("read layer"))?;
                    self.blobs
                        .put(input, Some(&u.diff_id), Some(self.max_bytes))?;
                }
            }
            Ok((u.diff_id, u.size))
        })();
        match staged {
            Ok((diff, size)) => Ok((Staged { dir, diff }, size)),
            Err(e) => {
                crate::leftover::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Renames a staged layer to `layers/<chain>`, replacing what a killed
    /// command may have left there (no row names it).
    pub(crate) fn place(&self, staged: Staged, chain: &Digest) -> Result<()> {
        let dest = self.layers.join(chain.hex());
        crate::leftover::remove_dir_all(&dest);
        fs::rename(&staged.dir, &dest).map_err(|e| {
            crate::leftover::remove_dir_all(&staged.dir);
            StoreError::Io {
                context: format!("place layer {chain}"),
                source: e,
            }
        })
    }
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<ImageStore> {
        ImageStore::open_with(root, false)
    }

    /// Opens the store with a new database started over its content: see
    /// [`crate::rebuild`].
    pub(crate) fn open_over_content(root: &Path) -> Result<ImageStore> {
        ImageStore::open_with(root, true)
    }

    fn open_with(root: &Path, over_content: bool) -> Result<ImageStore> {
        // Layers hold setuid binaries and other users' secrets: nobody but
        // root may traverse into the store (see saferoot::private).
        saferoot::private::private_dir(root)
            .map_err(io_err(format!("create {}", root.display())))?;
        fs::create_dir_all(root.join("layers"))
            .map_err(io_err(format!("create {}", root.display())))?;
        mark_topdir(&root.join("layers"));
        fs::create_dir_all(root.join("tmp"))
            .map_err(io_err(format!("create {}", root.display())))?;
        let blobs = BlobStore::open(root)?;
        crate::reserve::keep(root);
        let db = connect(root, over_content)?;
        Ok(ImageStore {
            root: root.to_path_buf(),
            blobs,
            db: Rc::new(db),
            max_layer_bytes: 64 << 30,
        })
    }

    /// The store's database connection, for the other tables of the same
    /// file (one connection per command).
    pub fn connection(&self) -> Rc<Connection> {
        Rc::clone(&self.db)
    }

    /// Frees SQLite's page cache of the store's connection.
    pub fn shrink_memory(&self) {
        // Only a cache: a connection that keeps it works the same.
        let _ = self.db.execute_batch("PRAGMA shrink_memory");
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// syncfs(2) on the store's filesystem.
    pub(crate) fn sync_filesystem(&self) -> Result<()> {
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

    /// A layer's size as docker counts it (its overlay2 `DiffSize`): the
    /// bytes of its files and symlinks, each inode once, directories
    /// nothing; not its tar's, which headers and padding make larger.
    /// Worked out once per layer (layers never change) and kept beside it.
    pub fn layer_content_size(&self, chain: &Digest) -> Result<u64> {
        let kept = self
            .root
            .join("layers")
            .join(chain.hex())
            .join("content-size");
        if let Some(n) = fs::read_to_string(&kept)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return Ok(n);
        }
        let n = content_size_of(&self.layer_dir(chain));
        // Best effort: the next listing works it out again.
        let tmp = kept.with_extension(format!("tmp{}", std::process::id()));
        if fs::write(&tmp, n.to_string()).is_ok() && fs::rename(&tmp, &kept).is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(n)
    }

    /// An image's size as docker shows it (`images`, `inspect`): its
    /// layers' [`ImageStore::layer_content_size`].
    pub fn content_size(&self, img: &Image) -> Result<u64> {
        img.layers
            .iter()
            .map(|c| self.layer_content_size(c))
            .sum::<Result<u64>>()
    }

    /// Where a layer's tar-split record is (when it has one).
    pub fn split_path(&self, chain: &Digest) -> PathBuf {
        self.root.join("layers").join(chain.hex()).join("tar-split")
    }

    /// Whether an image row names blob `d`.
    pub fn blob_used(&self, d: &Digest) -> Result<bool> {
        let n: i64 = self.db.query_row(
            "SELECT COUNT(*) FROM image_blobs WHERE digest = ?1",
            params![d.to_string()],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// The size of layer `chain` if it is recorded and on disk.
    pub fn layer_size(&self, chain: &Digest) -> Result<Option<u64>> {
        let size = self
            .db
            .query_row(
                "SELECT size FROM layers WHERE chain = ?1",
                params![chain.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        Ok(size
            .filter(|_| self.layer_dir(chain).is_dir())
            .map(|s| u64::try_from(s).unwrap_or(0)))
    }

    /// Unpacks the layers (bottom first, by diff_id, each read from its
    /// source) that the store does not have yet, several at once: they are
    /// independent directories. Returns each layer's uncompressed size.
    pub(crate) fn ensure_layers(
        &self,
        diffs: &[Digest],
        sources: &[&LayerSource<'_>],
    ) -> Result<Vec<u64>> {
        let chains = oci::chain_ids(diffs);
        let mut sizes = Vec::with_capacity(chains.len());
        let mut todo = Vec::new();
        for (i, chain) in chains.iter().enumerate() {
            let known = self.layer_size(chain)?;
            if known.is_none() && !todo.iter().any(|&j| chains[j] == *chain) {
                todo.push(i);
            }
            sizes.push(known.unwrap_or(0));
        }
        let stager = Stager {
            layers: self.root.join("layers"),
            blobs: &self.blobs,
            max_bytes: self.max_layer_bytes,
        };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(todo.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = todo.get(k) else { break };
                    let r = stager
                        .stage(Some(&diffs[i]), sources[i])
                        .and_then(|(staged, size)| stager.place(staged, &chains[i]).map(|()| size));
                    let failed = r.is_err();
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, r));
                    if failed {
                        // The others stop at their next layer.
                        next.store(todo.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        results.sort_by_key(|(i, _)| *i);
        for (i, r) in results {
            sizes[i] = r?;
        }
        for (i, chain) in chains.iter().enumerate() {
            if let Some(&j) = todo.iter().find(|&&j| chains[j] == *chain) {
                sizes[i] = sizes[j];
            }
        }
        Ok(sizes)
    }

    /// Unpacks a layer whose diff_id is not known beforehand (an imported
    /// rootfs), as a bottom layer; returns its diff_id and size.
    pub(crate) fn ensure_bottom_layer(&self, source: &LayerSource<'_>) -> Result<(Digest, u64)> {
        let stager = Stager {
            layers: self.root.join("layers"),
            blobs: &self.blobs,
            max_bytes: self.max_layer_bytes,
        };
        let (staged, size) = stager.stage(None, source)?;
        let diff = staged.diff.clone();
        if self.layer_size(&diff)?.is_some() {
            crate::leftover::remove_dir_all(&staged.dir);
        } else {
            stager.place(staged, &diff)?;
        }
        Ok((diff, size))
    }

    /// Adds an image whose blobs (manifest, config, layers) are stored:
    /// unpacks its layers, then records it and its tags in one transaction.
    pub fn add_image(&mut self, manifest: &Digest, tags: &[Reference]) -> Result<Image> {
        self.add_image_from(manifest, tags, None)
    }

    /// A stored manifest, its config and the config's diff_ids, checked
    /// to name as many layers as the manifest.
    pub(crate) fn manifest_parts(
        &self,
        manifest: &Digest,
    ) -> Result<(Manifest, Config, Vec<Digest>)> {
        let m: Manifest = serde_json::from_slice(&self.blobs.read(manifest)?)
            .map_err(|e| StoreError::Malformed(format!("manifest {manifest}: {e}")))?;
        let config_digest = digest(&m.config.digest)?;
        let config: Config = serde_json::from_slice(&self.blobs.read(&config_digest)?)
            .map_err(|e| StoreError::Malformed(format!("config {config_digest}: {e}")))?;
        let diffs: Vec<Digest> = config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| digest(d))
            .collect::<Result<_>>()?;
        if diffs.len() != m.layers.len() {
            return Err(StoreError::Malformed(format!(
                "manifest {manifest} has {} layers but its config {} diff_ids",
                m.layers.len(),
                diffs.len()
            )));
        }
        Ok((m, config, diffs))
    }

    /// Adds an image whose manifest and config are stored, its layers read
    /// from `sources` (by default, the stored blobs).
    pub(crate) fn add_image_from(
        &mut self,
        manifest: &Digest,
        tags: &[Reference],
        sources: Option<&[&LayerSource<'_>]>,
    ) -> Result<Image> {
        let (m, config, diffs) = self.manifest_parts(manifest)?;
        let sizes = match sources {
            Some(s) => self.ensure_layers(&diffs, s)?,
            None => {
                let blob_digests: Vec<Digest> = m
                    .layers
                    .iter()
                    .map(|l| digest(&l.digest))
                    .collect::<Result<_>>()?;
                let blobs = &self.blobs;
                let from_blobs: Vec<Box<LayerSource<'_>>> = blob_digests
                    .iter()
                    .map(|d| {
                        Box::new(move || -> Result<Box<dyn Read>> {
                            Ok(Box::new(blobs.open_blob(d)?))
                        }) as Box<LayerSource<'_>>
                    })
                    .collect();
                let default: Vec<&LayerSource<'_>> =
                    from_blobs.iter().map(|b| b.as_ref()).collect();
                self.ensure_layers(&diffs, &default)?
            }
        };
        self.record_image(manifest, &m, &config, &diffs, &sizes, tags)
    }

    /// Records an image whose files are all in place, after making them
    /// durable: files before rows.
    pub(crate) fn record_image(
        &mut self,
        manifest: &Digest,
        m: &Manifest,
        config: &Config,
        diffs: &[Digest],
        sizes: &[u64],
        tags: &[Reference],
    ) -> Result<Image> {
        let config_digest = digest(&m.config.digest)?;
        let chains = oci::chain_ids(diffs);
        // Files before rows: one flush of the store's filesystem makes the
        // blobs and unpacked layers durable before the transaction names
        // them (cheaper than a sync per blob, and it covers the layers).
        self.sync_filesystem()?;
        let tx = self.db.unchecked_transaction()?;
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
        for (i, ((chain, diff), size)) in chains.iter().zip(diffs).zip(sizes).enumerate() {
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

    /// Adds the image of `config` (its bytes, stored as they are), its
    /// layers read from `sources`: unpacked, each kept as its tar-split (or,
    /// when the files cannot give the tar back, as a blob), and described
    /// in a new manifest as plain tars.
    pub(crate) fn add_from_layers(
        &mut self,
        config: &[u8],
        sources: &[&LayerSource<'_>],
        tags: &[Reference],
    ) -> Result<Image> {
        let parsed: Config = serde_json::from_slice(config)
            .map_err(|e| StoreError::Malformed(format!("image config: {e}")))?;
        let diffs: Vec<Digest> = parsed
            .rootfs
            .diff_ids
            .iter()
            .map(|d| digest(d))
            .collect::<Result<_>>()?;
        if diffs.len() != sources.len() {
            return Err(StoreError::Malformed(format!(
                "{} layers but the config has {} diff_ids",
                sources.len(),
                diffs.len()
            )));
        }
        let sizes = self.ensure_layers(&diffs, sources)?;
        self.add_from_sized(config, parsed, &diffs, &sizes, tags)
    }

    /// Adds the image of `config` whose layers are in place, with their
    /// sizes.
    pub(crate) fn add_from_sized(
        &mut self,
        config: &[u8],
        parsed: Config,
        diffs: &[Digest],
        sizes: &[u64],
        tags: &[Reference],
    ) -> Result<Image> {
        let layers = diffs
            .iter()
            .zip(sizes)
            .map(|(d, size)| Descriptor {
                media_type: oci::OCI_LAYER.into(),
                digest: d.to_string(),
                size: *size,
                platform: None,
                annotations: None,
            })
            .collect();
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
        let bytes = serde_json::to_vec(&manifest).map_err(StoreError::Encode)?;
        let manifest_digest = self.blobs.put_bytes(&bytes, None)?;
        self.record_image(&manifest_digest, &manifest, &parsed, diffs, sizes, tags)
    }

    /// A layer blob of an image as a stream, with its size: the stored
    /// blob, or the plain tar made again from layer `chain`'s files and
    /// tar-split (checked against `blob`, which is then its diff_id).
    pub fn open_layer_blob(&self, chain: &Digest, blob: &Digest) -> Result<(Box<dyn Read>, u64)> {
        match self.blobs.open_blob(blob) {
            Ok(f) => {
                let size = f.metadata().map_err(io_err("stat blob"))?.len();
                Ok((Box::new(f), size))
            }
            Err(BlobError::NotFound(_)) => self.open_layer_from_split(chain, blob),
            Err(e) => Err(e.into()),
        }
    }

    fn open_layer_from_split(&self, chain: &Digest, blob: &Digest) -> Result<(Box<dyn Read>, u64)> {
        open_layer_from_files(&self.root, chain, blob)
    }

    /// The image's (tags, digest references), each sorted.
    fn references_of(&self, id: &str) -> Result<(Vec<String>, Vec<String>)> {
        let mut st = self
            .db
            .prepare("SELECT name FROM tags WHERE image = ?1 ORDER BY name")?;
        let rows = st.query_map(params![id], |r| r.get::<_, String>(0))?;
        let all: Vec<String> = rows.collect::<std::result::Result<_, _>>()?;
        Ok(all.into_iter().partition(|n| !n.contains('@')))
    }

    /// Records `reference` (`name@digest`) as naming the image `id`, as
    /// Docker does for what was pulled by or pushed to a repository.
    pub fn add_digest_reference(&self, id: &Digest, reference: &Reference) -> Result<()> {
        let Some(d) = &reference.digest else {
            return Err(StoreError::InvalidOption(format!(
                "{} has no digest",
                reference.familiar()
            )));
        };
        self.db.execute(
            "INSERT OR REPLACE INTO tags (name, image) VALUES (?1, ?2)",
            params![format!("{}@{d}", reference.name()), id.to_string()],
        )?;
        Ok(())
    }

    /// The image whose stored manifest is `manifest`, if any.
    pub fn find_by_manifest(&self, manifest: &Digest) -> Result<Option<Image>> {
        let id: Option<String> = self
            .db
            .query_row(
                "SELECT id FROM images WHERE manifest = ?1",
                params![manifest.to_string()],
                |row| row.get(0),
            )
            .optional()?;
        id.map(|id| self.get(&id)).transpose()
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
        let (tags, digests) = self.references_of(id)?;
        Ok(Image {
            id: digest(id)?,
            manifest: digest(&manifest)?,
            created,
            size: u64::try_from(size).unwrap_or(0),
            tags,
            digests,
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
    /// digest reference (`name@sha256:…`, one it was pulled by or pushed
    /// as: Docker knows no other).
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
                    return Err(StoreError::InvalidOption(format!(
                        "image id prefix {name:?} is ambiguous; give more of it"
                    )))
                }
            }
        }
        let r: Reference = name
            .parse()
            .map_err(|e: crate::reference::ReferenceError| {
                StoreError::InvalidOption(e.to_string())
            })?;
        // A tag beside a digest is ignored, as Docker does.
        let key = match &r.digest {
            Some(d) => format!("{}@{d}", r.name()),
            None => r.to_string(),
        };
        let id: Option<String> = self
            .db
            .query_row(
                "SELECT image FROM tags WHERE name = ?1",
                params![key],
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

    /// Removes a reference, or (by id, or its last reference) the image,
    /// by Docker's rules: a tag removed with no other tag of its
    /// repository left takes the repository's digest references along; by
    /// id, every reference goes when there is at most one tag and all are
    /// of one repository, else only with `force`. Returns what happened,
    /// as docker prints it ("Untagged: …", "Deleted: …").
    pub fn remove(&mut self, name: &str, force: bool) -> Result<Vec<String>> {
        let img = self.resolve(name)?;
        let mut out = Vec::new();
        let named = name
            .parse::<Reference>()
            .ok()
            .map(|r| match &r.digest {
                Some(d) => format!("{}@{d}", r.name()),
                None => r.to_string(),
            })
            .filter(|n| img.tags.contains(n) || img.digests.contains(n));
        let mut refs: Vec<&String> = img.tags.iter().chain(&img.digests).collect();
        refs.sort();
        let removed: Vec<&String> = match &named {
            Some(n) => {
                let repo = repository_of(n);
                let tag_left = img.tags.iter().any(|t| t != n && repository_of(t) == repo);
                let mut removed: Vec<&String> = refs.iter().copied().filter(|r| *r == n).collect();
                if !n.contains('@') && !tag_left {
                    removed.extend(img.digests.iter().filter(|d| repository_of(d) == repo));
                }
                removed
            }
            None => {
                let single = img.tags.len() <= 1
                    && refs
                        .windows(2)
                        .all(|w| repository_of(w[0]) == repository_of(w[1]));
                if !single && !force {
                    return Err(StoreError::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        &img.id.hex()[..12]
                    )));
                }
                refs
            }
        };
        let tx = self.db.unchecked_transaction()?;
        for r in removed {
            tx.execute("DELETE FROM tags WHERE name = ?1", params![r])?;
            out.push(format!("Untagged: {r}"));
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
            // docker also names each layer the image held alone, top
            // first (its chain id); one the build cache keeps stays.
            for chain in img.layers.iter().rev() {
                let used: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM image_layers WHERE chain = ?1)
                     OR EXISTS (SELECT 1 FROM build_cache_layers WHERE chain = ?1)",
                    params![chain.to_string()],
                    |r| r.get(0),
                )?;
                if !used {
                    out.push(format!("Deleted: {chain}"));
                }
            }
        }
        tx.commit()?;
        self.collect_garbage()?;
        Ok(out)
    }

    /// Deletes layers and blobs no image uses (rows first, then files).
    pub fn collect_garbage(&mut self) -> Result<(usize, usize)> {
        let tx = self.db.unchecked_transaction()?;
        let unused_layers: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT chain FROM layers WHERE chain NOT IN (SELECT chain FROM image_layers)
                 AND chain NOT IN (SELECT chain FROM build_cache_layers)",
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
            crate::leftover::remove_dir_all(self.layer_dir(&d).parent().unwrap_or(&self.root));
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
            crate::leftover::remove_dir_all(&e.path());
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
                crate::leftover::remove_dir_all(&e.path());
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
        // Layers kept as files and a tar-split must still give their tar
        // back; one that does not is removed like a corrupt blob.
        let rows: Vec<(String, String)> = {
            let mut st = self.db.prepare("SELECT chain, diff FROM layers")?;
            let v = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?;
            v
        };
        let mut from_split = std::collections::HashSet::new();
        for (chain, diff) in rows {
            let (chain, diff) = (digest(&chain)?, digest(&diff)?);
            if !self.layer_dir(&chain).is_dir() {
                if !report.missing.contains(&format!("layer {chain}")) {
                    report.missing.push(format!("layer {chain}"));
                }
                continue;
            }
            if !self.split_path(&chain).is_file() {
                continue;
            }
            let intact = self
                .open_layer_from_split(&chain, &diff)
                .and_then(|(mut r, _)| {
                    std::io::copy(&mut r, &mut std::io::sink())
                        .map_err(io_err(format!("layer {chain}")))
                })
                .is_ok();
            if intact {
                from_split.insert(diff.to_string());
            } else {
                crate::leftover::remove_dir_all(
                    self.layer_dir(&chain).parent().unwrap_or(&self.root),
                );
                report.corrupt_layers.push(chain.clone());
                report.missing.push(format!("layer {chain}"));
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
            if !from_split.contains(&u) && !self.blobs.contains(&digest(&u)?) {
                report.missing.push(format!("blob {u}"));
            }
        }
        Ok(report)
    }

    /// The manifest and config of an image, parsed.
    pub fn manifest_and_config(&self, img: &Image) -> Result<(Manifest, serde_json::Value)> {
        let m: Manifest = serde_json::from_slice(&self.blobs.read(&img.manifest)?)
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        let c: serde_json::Value = serde_json::from_slice(&self.blobs.read(&img.id)?)
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the flag was given as 0x4000 (FS_JOURNAL_DATA_FL), which
    /// the kernel refused, so layers were never spread.
    #[test]
    fn the_layers_directory_is_a_top_directory_on_ext4() {
        let dir = tempfile::tempdir().unwrap();
        let st = nix::sys::statfs::statfs(dir.path()).unwrap();
        if st.filesystem_type() != nix::sys::statfs::EXT4_SUPER_MAGIC
            || !nix::unistd::geteuid().is_root()
        {
            return;
        }
        ImageStore::open(dir.path()).unwrap();
        let f = fs::File::open(dir.path().join("layers")).unwrap();
        let mut flags: libc::c_int = 0;
        // SAFETY: a live descriptor and a pointer to an int.
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                libc::FS_IOC_GETFLAGS,
                &mut flags,
            )
        };
        assert_eq!(rc, 0);
        assert_ne!(flags & FS_TOPDIR_FL, 0, "chattr +T");
    }
}
