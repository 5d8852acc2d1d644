//! `system check --rebuild`: a new database for a store whose database
//! was lost or damaged, made from the content on disk.
//!
//! Blobs are named by their digest and layers by their chain id, so an
//! image is known again from its manifest blob alone: its config blob
//! gives the diff_ids, they give the chain ids, and the layers must all be
//! unpacked under those names. What only the database held is gone: tags
//! (salvaged from the old database where its pages still read), containers
//! and the build cache. The old database is moved aside, never deleted,
//! and nothing on disk is removed: what no rebuilt image names is left for
//! the next `system check` to remove, once the user agrees.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::database;
use crate::digest::Digest;
use crate::oci::{self, Manifest};
use crate::reference::Reference;
use crate::store::{ImageStore, Result, StoreError};
use crate::tarsplit;

/// A manifest is a small JSON document; blobs larger than this are layers
/// and are not read.
const MAX_MANIFEST: u64 = 4 << 20;

/// What a rebuild did.
#[derive(Debug, Default)]
pub struct Rebuilt {
    /// Where the old database (and its -wal and -shm) now is.
    pub moved_aside: Option<PathBuf>,
    /// Image ids found complete and recorded.
    pub images: Vec<Digest>,
    /// Tags salvaged from the old database.
    pub tags: Vec<String>,
    /// Manifests found whose image is not complete on disk, and why.
    pub incomplete: Vec<String>,
}

/// Moves the database of `root` aside and records every image whose
/// manifest, config and layers are on disk in a new one.
pub fn rebuild(root: &Path) -> Result<Rebuilt> {
    let mut out = Rebuilt {
        moved_aside: move_aside(root)?,
        ..Rebuilt::default()
    };
    let old_tags = out
        .moved_aside
        .as_deref()
        .map(salvage_tags)
        .unwrap_or_default();
    let mut store = ImageStore::open_over_content(root)?;
    for blob in store.blobs.list()? {
        if !looks_like_manifest(&store, &blob) {
            continue;
        }
        match record(&mut store, &blob) {
            Ok(Some(id)) => {
                if !out.images.contains(&id) {
                    out.images.push(id);
                }
            }
            Ok(None) => {}
            Err(why) => out.incomplete.push(format!("manifest {blob}: {why}")),
        }
    }
    for (name, image) in old_tags {
        let Ok(id) = image.parse::<Digest>() else {
            continue;
        };
        let Ok(reference) = name.parse::<Reference>() else {
            continue;
        };
        if out.images.contains(&id) && store.tag(&id.to_string(), &reference).is_ok() {
            out.tags.push(name);
        }
    }
    Ok(out)
}

/// Renames `berth.db` and its -wal and -shm to `berth.db.damaged-<time>`
/// (a name not taken yet); where it went.
fn move_aside(root: &Path) -> Result<Option<PathBuf>> {
    let db = root.join(database::FILE);
    if !db.exists() {
        // Without the database, a stray WAL would be replayed into the new one.
        for suffix in ["-wal", "-shm"] {
            let stray = root.join(format!("{}{suffix}", database::FILE));
            if stray.exists() {
                let to = free_name(root, &format!("{}{suffix}.stray", database::FILE));
                fs::rename(&stray, &to).map_err(|source| StoreError::Io {
                    context: format!("move {} aside", stray.display()),
                    source,
                })?;
            }
        }
        return Ok(None);
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = free_name(root, &format!("{}.damaged-{secs}", database::FILE));
    // The WAL and shared memory first: a database renamed without them
    // would be read back without the changes its WAL holds.
    for suffix in ["-wal", "-shm"] {
        let from = root.join(format!("{}{suffix}", database::FILE));
        if from.exists() {
            let mut to = aside.clone().into_os_string();
            to.push(suffix);
            fs::rename(&from, &to).map_err(|source| StoreError::Io {
                context: format!("move {} aside", from.display()),
                source,
            })?;
        }
    }
    fs::rename(&db, &aside).map_err(|source| StoreError::Io {
        context: format!("move {} aside", db.display()),
        source,
    })?;
    Ok(Some(aside))
}

/// `root/name`, or with `.1`, `.2`... added until no file has it.
fn free_name(root: &Path, name: &str) -> PathBuf {
    let mut p = root.join(name);
    let mut n = 0;
    while p.symlink_metadata().is_ok() {
        n += 1;
        p = root.join(format!("{name}.{n}"));
    }
    p
}

/// The tags the old database still gives (name, image id); none when its
/// pages do not read.
fn salvage_tags(old: &Path) -> Vec<(String, String)> {
    // Read-only, with the WAL moved beside it: its last changes count.
    let Ok(db) = Connection::open_with_flags(old, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Vec::new();
    };
    let Ok(mut st) = db.prepare("SELECT name, image FROM tags") else {
        return Vec::new();
    };
    let Ok(rows) = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))) else {
        return Vec::new();
    };
    // Rows up to the first damaged page.
    rows.map_while(std::result::Result::ok).collect()
}

/// A small blob that starts as a JSON object: worth parsing.
fn looks_like_manifest(store: &ImageStore, blob: &Digest) -> bool {
    let Ok(f) = store.blobs.open_blob(blob) else {
        return false;
    };
    if f.metadata().map_or(true, |m| m.len() > MAX_MANIFEST) {
        return false;
    }
    let mut head = [0u8; 64];
    let n = f.take(64).read(&mut head).unwrap_or(0);
    head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Records the image of manifest `blob` if all of it is on disk: its id;
/// None if the blob is no manifest; an error saying what is missing.
fn record(store: &mut ImageStore, blob: &Digest) -> std::result::Result<Option<Digest>, String> {
    let bytes = store.blobs.read(blob).map_err(|e| e.to_string())?;
    if serde_json::from_slice::<Manifest>(&bytes).is_err() {
        return Ok(None);
    }
    let (m, config, diffs) = store.manifest_parts(blob).map_err(|e| e.to_string())?;
    let chains = oci::chain_ids(&diffs);
    let mut sizes = Vec::with_capacity(chains.len());
    for (chain, diff) in chains.iter().zip(&diffs) {
        if !store.layer_dir(chain).is_dir() {
            return Err(format!("layer {chain} is not on disk"));
        }
        let split = store.split_path(chain);
        let size = if split.is_file() {
            let record = fs::read(&split).map_err(|e| format!("layer {chain}: {e}"))?;
            tarsplit::size(&record).map_err(|e| format!("layer {chain}: {e}"))?
        } else {
            // Kept as its tar, a blob named by its diff_id.
            fs::metadata(store.blobs.path(diff))
                .map_err(|_| format!("layer {chain} has neither a tar-split nor its tar"))?
                .len()
        };
        sizes.push(size);
    }
    let img = store
        .record_image(blob, &m, &config, &diffs, &sizes, &[])
        .map_err(|e| e.to_string())?;
    Ok(Some(img.id))
}
