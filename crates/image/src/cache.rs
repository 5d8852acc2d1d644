//! The builder's cache in the image store: a build step's key (its parent,
//! its instruction, the content it read) names the layers it ended with.
//! Cached layers are ordinary layers of the store, kept alive by the cache
//! rows as images keep theirs; `prune` lets them go.

use std::fs;
use std::path::Path;

use rusqlite::{params, OptionalExtension};

use crate::digest::Digest;
use crate::oci;
use crate::store::{Image, ImageStore, Result, StoreError};
use crate::Reference;

/// A layer of a build: its diff_id and uncompressed size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLayer {
    pub diff: Digest,
    pub size: u64,
}

/// What a build step ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Every layer of the step's result, bottom first.
    pub layers: Vec<BuiltLayer>,
    /// When the step ran (RFC 3339).
    pub created: String,
}

use crate::store::now;

impl ImageStore {
    /// Makes directory `files` (a build step's upper directory: overlay's
    /// form, whiteouts as 0/0 devices) the layer over `below` whose plain
    /// tar is at `tar` (written from those files by `snapshot::diff`): the
    /// tar is only read for its digest and tar-split, the files are moved,
    /// not copied. `files` is gone afterwards either way.
    pub fn add_layer_dir(&self, below: &[Digest], files: &Path, tar: &Path) -> Result<BuiltLayer> {
        let f = fs::File::open(tar).map_err(|source| StoreError::Io {
            context: format!("open {}", tar.display()),
            source,
        })?;
        let u = crate::layer::record(
            std::io::BufReader::with_capacity(1 << 20, f),
            self.max_layer_bytes,
        )?;
        let mut diffs = below.to_vec();
        diffs.push(u.diff_id.clone());
        let chain = oci::chain_ids(&diffs)
            .pop()
            .ok_or_else(|| StoreError::Damaged("no layer".into()))?;
        let dest = self.layer_dir(&chain);
        let dest = dest.parent().unwrap_or(&dest).to_path_buf();
        if !dest.is_dir() {
            static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let staging = self.root().join("layers").join(format!(
                ".built-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let placed = (|| {
                fs::create_dir(&staging)?;
                fs::rename(files, staging.join("diff"))?;
                fs::write(
                    staging.join("tar-split"),
                    u.split.as_deref().unwrap_or_default(),
                )?;
                fs::rename(&staging, &dest)
            })();
            if let Err(e) = placed {
                crate::leftover::remove_dir_all(&staging);
                // Another build placed the same layer meanwhile: fine.
                if !dest.is_dir() {
                    return Err(StoreError::Io {
                        context: format!("place layer {chain}"),
                        source: e,
                    });
                }
            }
        }
        Ok(BuiltLayer {
            diff: u.diff_id,
            size: u.size,
        })
    }

    /// The cached outcome of step `key`, if every one of its layers is
    /// still on disk.
    pub fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>> {
        let row: Option<(String, String)> = self
            .db
            .query_row(
                "SELECT diffs, created FROM build_cache WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((diffs, created)) = row else {
            return Ok(None);
        };
        let diffs: Vec<String> = serde_json::from_str(&diffs)
            .map_err(|e| StoreError::Damaged(format!("build cache entry {key}: {e}")))?;
        let diffs: Vec<Digest> = diffs
            .iter()
            .map(|d| {
                d.parse()
                    .map_err(|e: crate::digest::DigestError| StoreError::Damaged(e.to_string()))
            })
            .collect::<Result<_>>()?;
        let mut layers = Vec::with_capacity(diffs.len());
        for (diff, chain) in diffs.iter().zip(oci::chain_ids(&diffs)) {
            match self.layer_size(&chain)? {
                Some(size) => layers.push(BuiltLayer {
                    diff: diff.clone(),
                    size,
                }),
                None => return Ok(None),
            }
        }
        // When it was last used orders `builder prune`; a hit is still a hit
        // without it.
        if let Err(e) = self.db.execute(
            "UPDATE build_cache SET used = ?2 WHERE key = ?1",
            params![key, now()],
        ) {
            tracing::warn!("build cache: record the use of {key}: {e}");
        }
        Ok(Some(CacheEntry { layers, created }))
    }

    /// Records steps' outcomes (key, entry), their layers' files in place:
    /// made durable first, then named in one transaction.
    pub fn cache_put(&mut self, entries: &[(String, CacheEntry)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.sync_filesystem()?;
        let tx = self.db.unchecked_transaction()?;
        for (key, e) in entries {
            let diffs: Vec<Digest> = e.layers.iter().map(|l| l.diff.clone()).collect();
            let text =
                serde_json::to_string(&diffs.iter().map(ToString::to_string).collect::<Vec<_>>())
                    .map_err(|e| StoreError::Damaged(e.to_string()))?;
            tx.execute("DELETE FROM build_cache WHERE key = ?1", params![key])?;
            tx.execute(
                "INSERT INTO build_cache (key, diffs, created, used) VALUES (?1, ?2, ?3, ?4)",
                params![key, text, e.created, now()],
            )?;
            for (i, (chain, l)) in oci::chain_ids(&diffs).iter().zip(&e.layers).enumerate() {
                tx.execute(
                    "INSERT OR IGNORE INTO layers (chain, diff, size) VALUES (?1, ?2, ?3)",
                    params![
                        chain.to_string(),
                        l.diff.to_string(),
                        i64::try_from(l.size).unwrap_or(i64::MAX)
                    ],
                )?;
                tx.execute(
                    "INSERT INTO build_cache_layers (key, position, chain) VALUES (?1, ?2, ?3)",
                    params![key, i64::try_from(i).unwrap_or(0), chain.to_string()],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The keys of the cache's entries (what `system prune` lists as it
    /// forgets them).
    pub fn cache_keys(&self) -> Result<Vec<String>> {
        let mut st = self
            .db
            .prepare("SELECT key FROM build_cache ORDER BY created")?;
        let keys = st
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<Vec<String>, _>>()?;
        Ok(keys)
    }

    /// Forgets every cache entry and deletes the layers only the cache
    /// kept. Returns how many entries went.
    pub fn cache_prune(&mut self) -> Result<usize> {
        let n = self.db.execute("DELETE FROM build_cache", [])?;
        self.collect_garbage()?;
        Ok(n)
    }

    /// The cache's entries as `system df -v` lists them, oldest first: each
    /// with the bytes of the layers only the cache keeps (those images
    /// share are theirs), and whether another entry holds one of them.
    pub fn cache_entries(&self) -> Result<Vec<CacheEntryUsage>> {
        let mut st = self.db.prepare(
            "SELECT c.key, c.created, c.used, l.chain, \
               (SELECT COUNT(DISTINCT o.key) FROM build_cache_layers o WHERE o.chain = l.chain) \
             FROM build_cache c LEFT JOIN build_cache_layers l ON l.key = c.key \
               AND l.chain NOT IN (SELECT chain FROM image_layers) \
             ORDER BY c.created, c.key, l.position",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut out: Vec<CacheEntryUsage> = Vec::new();
        for (key, created, used, chain, holders) in rows {
            if out.last().is_none_or(|e| e.key != key) {
                out.push(CacheEntryUsage {
                    key,
                    created,
                    last_used: used,
                    size: 0,
                    shared: false,
                });
            }
            let (Some(entry), Some(chain)) = (out.last_mut(), chain) else {
                continue;
            };
            let chain: Digest = chain
                .parse()
                .map_err(|e: crate::digest::DigestError| StoreError::Damaged(e.to_string()))?;
            entry.size += self.layer_content_size(&chain)?;
            entry.shared |= holders > 1;
        }
        Ok(out)
    }

    /// What `system df` shows of the cache: how many entries, and the bytes
    /// of the layers only the cache keeps (those images share are theirs).
    pub fn cache_usage(&self) -> Result<(usize, u64)> {
        let entries: i64 = self
            .db
            .query_row("SELECT COUNT(*) FROM build_cache", [], |r| r.get(0))?;
        let chains: Vec<String> = {
            let mut st = self.db.prepare(
                "SELECT chain FROM layers \
                 WHERE chain IN (SELECT chain FROM build_cache_layers) \
                 AND chain NOT IN (SELECT chain FROM image_layers)",
            )?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            v
        };
        // Sized as docker sizes layers: their files' bytes.
        let mut size = 0;
        for c in &chains {
            let chain: Digest = c
                .parse()
                .map_err(|e: crate::digest::DigestError| StoreError::Damaged(e.to_string()))?;
            size += self.layer_content_size(&chain)?;
        }
        Ok((usize::try_from(entries).unwrap_or(0), size))
    }

    /// An image's layers as a build starts from them: diff_ids and sizes.
    pub fn built_layers(&self, img: &Image) -> Result<Vec<BuiltLayer>> {
        let (_, config) = self.manifest_and_config(img)?;
        let diffs: Vec<Digest> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        if diffs.len() != img.layers.len() {
            return Err(StoreError::Damaged(format!(
                "image {}: its config lists {} layers, the store {}",
                img.id,
                diffs.len(),
                img.layers.len()
            )));
        }
        diffs
            .into_iter()
            .zip(&img.layers)
            .map(|(diff, chain)| {
                let size = self.layer_size(chain)?.ok_or_else(|| {
                    StoreError::Damaged(format!("layer {chain} of image {} is missing", img.id))
                })?;
                Ok(BuiltLayer { diff, size })
            })
            .collect()
    }

    /// Adds the image of `config` (its bytes, stored as they are) whose
    /// layers were all built or cached in place; tags it.
    pub fn add_built_image(
        &mut self,
        config: &[u8],
        layers: &[BuiltLayer],
        tags: &[Reference],
    ) -> Result<Image> {
        let parsed: oci::Config = serde_json::from_slice(config)
            .map_err(|e| StoreError::Malformed(format!("image config: {e}")))?;
        let diffs: Vec<Digest> = layers.iter().map(|l| l.diff.clone()).collect();
        let listed: Vec<&str> = parsed.rootfs.diff_ids.iter().map(String::as_str).collect();
        let ours: Vec<String> = diffs.iter().map(ToString::to_string).collect();
        if listed != ours.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(StoreError::Malformed(
                "the config's diff_ids are not the built layers".into(),
            ));
        }
        for (chain, d) in oci::chain_ids(&diffs).iter().zip(&diffs) {
            if !self.layer_dir(chain).is_dir() {
                return Err(StoreError::Damaged(format!(
                    "layer {d} is not in the store"
                )));
            }
        }
        let sizes: Vec<u64> = layers.iter().map(|l| l.size).collect();
        self.add_from_sized(config, parsed, &diffs, &sizes, tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer of one file made from a directory, as a build step makes it.
    fn layer(
        store: &ImageStore,
        dir: &Path,
        below: &[Digest],
        name: &str,
        body: &[u8],
    ) -> BuiltLayer {
        let files = dir.join(format!("{name}.d"));
        fs::create_dir_all(&files).unwrap();
        fs::write(files.join(name), body).unwrap();
        let tar = dir.join(format!("{name}.tar"));
        crate::snapshot::diff(&files, fs::File::create(&tar).unwrap()).unwrap();
        store.add_layer_dir(below, &files, &tar).unwrap()
    }

    #[test]
    fn a_directory_becomes_a_layer_that_gives_its_tar_back() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&tmp.path().join("store")).unwrap();
        let files = tmp.path().join("upper");
        fs::create_dir_all(files.join("d")).unwrap();
        fs::write(files.join("d/a"), b"alpha").unwrap();
        fs::write(files.join("b"), b"").unwrap();
        std::os::unix::fs::symlink("d/a", files.join("l")).unwrap();
        let tar = tmp.path().join("layer.tar");
        let mut out = fs::File::create(&tar).unwrap();
        crate::snapshot::diff(&files, &mut out).unwrap();
        let bytes = fs::read(&tar).unwrap();
        let layer = store.add_layer_dir(&[], &files, &tar).unwrap();
        assert!(!files.exists());
        assert_eq!(layer.diff, Digest::of(&bytes));
        let chain = oci::chain_ids(std::slice::from_ref(&layer.diff))
            .pop()
            .unwrap();
        assert_eq!(
            fs::read(store.layer_dir(&chain).join("d/a")).unwrap(),
            b"alpha"
        );
        let (mut r, size) =
            crate::store::open_layer_from_files(store.root(), &chain, &layer.diff).unwrap();
        let mut again = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut again).unwrap();
        assert_eq!((again, size), (bytes.clone(), bytes.len() as u64));
    }

    #[test]
    fn cached_layers_live_until_pruned_and_images_keep_theirs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(&tmp.path().join("store")).unwrap();
        let a = layer(&store, tmp.path(), &[], "a", b"one");
        let b = layer(
            &store,
            tmp.path(),
            std::slice::from_ref(&a.diff),
            "b",
            b"two",
        );
        assert_eq!(store.cache_get("k1").unwrap(), None);
        let entry = CacheEntry {
            layers: vec![a.clone(), b.clone()],
            created: "2026-01-01T00:00:00Z".into(),
        };
        store.cache_put(&[("k1".into(), entry.clone())]).unwrap();
        assert_eq!(store.cache_get("k1").unwrap(), Some(entry.clone()));
        // Garbage collection leaves what the cache names.
        store.collect_garbage().unwrap();
        assert_eq!(store.cache_get("k1").unwrap(), Some(entry));
        let chains = oci::chain_ids(&[a.diff.clone(), b.diff.clone()]);
        // An image over the same layers keeps them after the cache goes.
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [a.diff.to_string()]},
        });
        let bytes = serde_json::to_vec(&config).unwrap();
        let img = store
            .add_built_image(&bytes, std::slice::from_ref(&a), &[])
            .unwrap();
        assert_eq!(img.layers, vec![chains[0].clone()]);
        // The config must list exactly the layers given.
        assert!(store
            .add_built_image(&bytes, &[a.clone(), b.clone()], &[])
            .is_err());
        assert_eq!(store.cache_prune().unwrap(), 1);
        assert_eq!(store.cache_get("k1").unwrap(), None);
        assert!(store.layer_dir(&chains[0]).is_dir());
        assert!(!store.layer_dir(&chains[1]).exists());
    }
}

/// One build cache entry as `system df -v` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheEntryUsage {
    /// The step's key (a sha256 of it and every step before).
    pub key: String,
    /// When the step ran, and when a build last used it (RFC 3339).
    pub created: String,
    pub last_used: String,
    /// The bytes of the layers only the cache keeps.
    pub size: u64,
    /// Whether another entry holds one of those layers too.
    pub shared: bool,
}
