//! Images whose layer blobs arrive as streams read once (a pull).
//!
//! Each layer goes through one pass: the bytes as they arrive are hashed
//! (the blob digest the manifest names) and, when compressed, written to a
//! temp blob; the same bytes are decompressed, unpacked and hashed again
//! (the diff_id the config names). The layer directory is placed and the
//! blob named only once both digests matched: a corrupt, truncated or
//! substituted layer leaves nothing under any name. A plain layer keeps no
//! blob (its tar-split gives it back, as for `load`); a compressed one
//! keeps its exact bytes, so a push sends the same digest back.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::blobs::BlobWriter;
use crate::digest::Digest;
use crate::oci::{self, Manifest};
use crate::reference::Reference;
use crate::store::{Image, ImageStore, LayerSource, Stager, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// Opens the stream of layer `i` (by its position in the manifest). Called
/// once per layer that is needed, more only in rare fallbacks.
pub type FetchLayer<'a> = dyn Fn(usize) -> io::Result<Box<dyn Read + Send + 'a>> + Sync + 'a;

/// What a verified stream left: the temp blob it wrote (if any) once its
/// digest matched, or why it did not.
type Arrival = Arc<Mutex<Option<std::result::Result<Option<BlobWriter>, String>>>>;

/// A blob stream checked against its descriptor as it is read: never more
/// bytes than the descriptor's size, and at its end the digest it names.
/// A mismatch is a read error, so whatever consumes the stream fails.
struct Verifying<'a> {
    inner: Box<dyn Read + Send + 'a>,
    hasher: Sha256,
    expected: Digest,
    size: u64,
    count: u64,
    out: Option<BlobWriter>,
    arrival: Arrival,
    finished: bool,
}

impl Verifying<'_> {
    fn finish(&mut self) -> io::Result<usize> {
        self.finished = true;
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        let mut slot = self.arrival.lock().unwrap_or_else(|e| e.into_inner());
        if actual != self.expected {
            let msg = format!(
                "blob digest mismatch: expected {}, got {actual}",
                self.expected
            );
            *slot = Some(Err(msg.clone()));
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        *slot = Some(Ok(self.out.take()));
        Ok(0)
    }
}

impl Read for Verifying<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return self.finish();
        }
        self.count += n as u64;
        if self.count > self.size {
            self.finished = true;
            let msg = format!(
                "blob {} is larger than the {} bytes its descriptor says",
                self.expected, self.size
            );
            *self.arrival.lock().unwrap_or_else(|e| e.into_inner()) = Some(Err(msg.clone()));
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        self.hasher.update(&buf[..n]);
        if let Some(o) = &mut self.out {
            o.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

impl Drop for Verifying<'_> {
    /// A stream the consumer gave up on (a decompressor stopped at the end
    /// of its data before the stream's last bytes, or failed on damaged
    /// data) is read to its end, never past the descriptor's size, so the
    /// blob's digest is still checked: a corrupt blob is reported as one,
    /// not as whatever the decompressor made of it.
    fn drop(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.finished {
            if self.read(&mut buf).is_err() {
                return;
            }
        }
    }
}

/// How much the download thread hands over at a time.
const CHUNK: usize = 1 << 20;

/// The download side of a layer: reads the verified stream and passes
/// it on in chunks, until its end, an error (passed on too), or the
/// reader hanging up (then dropping the stream checks what is left).
fn pump(
    mut v: Verifying<'_>,
    tx: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    free: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        match v.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.send(Ok(buf)).is_err() {
                    return;
                }
            }
            Err(e) => {
                // A reader that hung up wants nothing more.
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// The unpack side: the chunks as a stream; the used ones go back to be
/// filled again.
struct Piped {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    free: std::sync::mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for Piped {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            let used = std::mem::take(&mut self.cur);
            if used.capacity() > 0 {
                // Recycling the buffer: a reader that is gone needs none.
                let _ = self.free.send(used);
            }
            self.pos = 0;
            match self.rx.recv() {
                Ok(Ok(chunk)) => self.cur = chunk,
                Ok(Err(e)) => return Err(e),
                // The download ended (verified) and hung up.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn invalid(s: impl Into<String>) -> StoreError {
    StoreError::Malformed(s.into())
}

fn fetch_failed(s: impl Into<String>) -> StoreError {
    StoreError::Fetch(s.into())
}

fn digest(s: &str) -> Result<Digest> {
    s.parse::<Digest>().map_err(|e| invalid(e.to_string()))
}

/// What a pull still has to do for one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Unpack it (and keep its blob when compressed).
    Unpack,
    /// Its files are there (another image has the layer) but not this
    /// compressed blob: store the blob only.
    Blob,
}

impl ImageStore {
    /// The layers of a stored manifest the store lacks, as positions: what
    /// a pull has to download (for progress: the rest "already exists").
    pub fn missing_layers(&self, manifest: &Digest) -> Result<Vec<usize>> {
        let (m, _, diffs) = self.manifest_parts(manifest)?;
        Ok(self.plan(&m, &diffs)?.into_iter().map(|(i, _)| i).collect())
    }

    fn plan(&self, m: &Manifest, diffs: &[Digest]) -> Result<Vec<(usize, Need)>> {
        let chains = oci::chain_ids(diffs);
        let mut todo: Vec<(usize, Need)> = Vec::new();
        for (i, chain) in chains.iter().enumerate() {
            let blob = digest(&m.layers[i].digest)?;
            let plain = blob == diffs[i];
            if self.layer_size(chain)?.is_none() {
                todo.push((i, Need::Unpack));
            } else if !plain
                && !self.blobs.contains(&blob)
                && !todo
                    .iter()
                    .any(|&(j, _)| m.layers[j].digest == m.layers[i].digest)
            {
                todo.push((i, Need::Blob));
            }
        }
        Ok(todo)
    }

    /// Adds an image whose manifest and config are stored (verified by the
    /// caller), its layers read from `fetch`, up to `workers` at once,
    /// each in one pass (see the module's doc). Nothing is recorded unless
    /// every layer arrived whole and matched; the store is then as before
    /// but for verified blobs and layers no row names (`check` removes
    /// them).
    pub fn add_fetched_image(
        &mut self,
        manifest: &Digest,
        tags: &[Reference],
        fetch: &FetchLayer<'_>,
        workers: usize,
    ) -> Result<Image> {
        let (m, config, diffs) = self.manifest_parts(manifest)?;
        let chains = oci::chain_ids(&diffs);
        let blobs: Vec<Digest> = m
            .layers
            .iter()
            .map(|l| digest(&l.digest))
            .collect::<Result<_>>()?;
        let todo = self.plan(&m, &diffs)?;
        let mut sizes = Vec::with_capacity(chains.len());
        for chain in &chains {
            sizes.push(self.layer_size(chain)?.unwrap_or(0));
        }
        let stager = Stager {
            layers: self.root().join("layers"),
            blobs: &self.blobs,
            max_bytes: self.max_layer_bytes,
        };
        let next = AtomicUsize::new(0);
        let results = Mutex::new(Vec::new());
        let workers = workers.max(1).min(todo.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(i, need)) = todo.get(k) else { break };
                    let r = match need {
                        Need::Unpack => {
                            fetch_layer(&stager, &m, &diffs[i], &chains[i], &blobs[i], i, fetch)
                        }
                        Need::Blob => {
                            fetch_blob(stager.blobs, &blobs[i], m.layers[i].size, i, fetch)
                        }
                    };
                    let failed = r.is_err();
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, r));
                    if failed {
                        // The others stop at their next layer.
                        next.store(todo.len(), Ordering::Relaxed);
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        results.sort_by_key(|(i, _)| *i);
        let failure = results.iter().position(|(_, r)| r.is_err());
        if let Some(f) = failure {
            // What the finished layers put in place is verified but no row
            // names it: take it away again, so a failed pull leaves the
            // store as it was.
            let mut placed = Vec::new();
            let mut stored = Vec::new();
            for (i, r) in &results {
                if let Ok(size) = r {
                    if size.is_some() {
                        placed.push(chains[*i].clone());
                    }
                    stored.push(blobs[*i].clone());
                }
            }
            self.discard_unrecorded(&placed, &stored);
            return Err(results
                .swap_remove(f)
                .1
                .err()
                .unwrap_or_else(|| fetch_failed("pull failed")));
        }
        for (i, r) in results {
            if let Ok(Some(size)) = r {
                sizes[i] = size;
            }
        }
        self.record_image(manifest, &m, &config, &diffs, &sizes, tags)
    }

    /// Removes layers and blobs that no row names (what an interrupted
    /// pull placed); ones a recorded image uses are kept.
    pub fn discard_unrecorded(&self, chains: &[Digest], blobs: &[Digest]) {
        for c in chains {
            if matches!(self.layer_size(c), Ok(None)) {
                crate::leftover::remove_dir_all(&self.root().join("layers").join(c.hex()));
            }
        }
        for b in blobs {
            if matches!(self.blob_used(b), Ok(false)) {
                if let Err(e) = self.blobs.remove(b) {
                    tracing::warn!("remove unrecorded blob {b}: {e} (left behind)");
                }
            }
        }
    }
}

/// Stores the compressed blob of a layer whose files are there.
fn fetch_blob(
    blobs: &crate::blobs::BlobStore,
    blob: &Digest,
    size: u64,
    i: usize,
    fetch: &FetchLayer<'_>,
) -> Result<Option<u64>> {
    let stream = fetch(i).map_err(|e| StoreError::Io {
        context: format!("fetch layer {blob}"),
        source: e,
    })?;
    blobs.put(stream, Some(blob), Some(size))?;
    Ok(None)
}

/// Downloads, verifies and unpacks one layer; returns its size.
fn fetch_layer(
    stager: &Stager<'_>,
    m: &Manifest,
    diff: &Digest,
    chain: &Digest,
    blob: &Digest,
    i: usize,
    fetch: &FetchLayer<'_>,
) -> Result<Option<u64>> {
    let blobs = stager.blobs;
    let keep = blob != diff && !blobs.contains(blob);
    let size = m.layers[i].size;
    let arrivals: Mutex<Vec<Arrival>> = Mutex::new(Vec::new());
    let open = || -> Result<Verifying<'_>> {
        let inner = fetch(i).map_err(|e| StoreError::Io {
            context: format!("fetch layer {blob}"),
            source: e,
        })?;
        let arrival: Arrival = Arc::default();
        arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(arrival.clone());
        Ok(Verifying {
            inner,
            hasher: Sha256::new(),
            expected: blob.clone(),
            size,
            count: 0,
            out: if keep { Some(blobs.writer()?) } else { None },
            arrival,
            finished: false,
        })
    };
    // The download runs on a thread of its own (receive, blob digest,
    // temp blob), the unpack on this one (decompress, diff_id, files):
    // one layer keeps two cores busy. The scope ends when both have, so
    // what the download thread concluded is known below.
    let staged = std::thread::scope(|scope| {
        let first = Mutex::new(None);
        let piped = open().map(|v| {
            let (tx, rx) = std::sync::mpsc::sync_channel(4);
            let (free_tx, free_rx) = std::sync::mpsc::channel();
            scope.spawn(move || pump(v, &tx, &free_rx));
            Piped {
                rx,
                free: free_tx,
                cur: Vec::new(),
                pos: 0,
            }
        })?;
        *first.lock().unwrap_or_else(|e| e.into_inner()) = Some(piped);
        let source = || -> Result<Box<dyn Read + '_>> {
            if let Some(p) = first.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Ok(Box::new(p));
            }
            // A second read (the rare fallback of stage): inline.
            Ok(Box::new(open()?))
        };
        let source: &LayerSource<'_> = &source;
        let r = stager.stage(Some(diff), source);
        // Unread (stage failed before reading): let the thread go.
        drop(first.lock().unwrap_or_else(|e| e.into_inner()).take());
        r
    });
    let (staged, layer_size) = match staged {
        Ok(s) => s,
        Err(e) => {
            // A blob that did not match its digest is the cause of
            // whatever the unpack made of it.
            for a in arrivals.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                if let Some(Err(m)) = &*a.lock().unwrap_or_else(|e| e.into_inner()) {
                    return Err(fetch_failed(format!("layer {blob}: {m}")));
                }
            }
            return Err(e);
        }
    };
    let arrived = (|| {
        for a in arrivals.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            match a.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(Ok(Some(w))) => w.commit(blob)?,
                Some(Ok(None)) => {}
                Some(Err(m)) => return Err(fetch_failed(format!("layer {blob}: {m}"))),
                None => {
                    return Err(fetch_failed(format!(
                        "layer {blob}: its stream has data after the end of the layer"
                    )))
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = arrived {
        crate::leftover::remove_dir_all(&staged.dir);
        return Err(e);
    }
    stager.place(staged, chain)?;
    // Write this layer back now, while other layers still download: the
    // store's one sync before the image is recorded then finds little
    // left to flush instead of the whole image.
    start_writeback(&stager.layers);
    Ok(Some(layer_size))
}

/// syncfs(2) of the filesystem holding `dir` on a thread of its own, so
/// the worker goes on with the next layer; best effort (the sync that
/// matters, before the rows, is the store's own and checked).
fn start_writeback(dir: &std::path::Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        std::thread::spawn(move || {
            // SAFETY: syncfs takes a live descriptor and touches no memory.
            unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{
        Descriptor, OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST,
    };
    use serde_json::json;

    fn layer_tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A manifest of two layers (one gzip, one plain) stored with its
    /// config; returns the manifest digest and the layer blobs.
    fn stored_manifest(store: &ImageStore) -> (Digest, Vec<Vec<u8>>) {
        let a = layer_tar("a", b"first");
        let b = layer_tar("b", b"second");
        let c = layer_tar("c", b"third");
        let blobs = vec![gzip(&a), b.clone(), zstd::encode_all(&c[..], 3).unwrap()];
        let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&a).to_string(), Digest::of(&b).to_string(), Digest::of(&c).to_string()]}}))
        .unwrap();
        let config_digest = store.blobs.put_bytes(&config, None).unwrap();
        let desc = |mt: &str, data: &[u8]| Descriptor {
            media_type: mt.into(),
            digest: Digest::of(data).to_string(),
            size: data.len() as u64,
            platform: None,
            annotations: None,
        };
        let m = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            config: Descriptor {
                digest: config_digest.to_string(),
                ..desc(OCI_CONFIG, &config)
            },
            layers: vec![
                desc(OCI_LAYER_GZIP, &blobs[0]),
                desc(OCI_LAYER, &blobs[1]),
                desc(OCI_LAYER_ZSTD, &blobs[2]),
            ],
            annotations: None,
        };
        let d = store
            .blobs
            .put_bytes(&serde_json::to_vec(&m).unwrap(), None)
            .unwrap();
        (d, blobs)
    }

    #[test]
    fn layers_are_verified_unpacked_and_compressed_blobs_kept() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(dir.path()).unwrap();
        let (manifest, blobs) = stored_manifest(&store);
        assert_eq!(store.missing_layers(&manifest).unwrap(), vec![0, 1, 2]);
        let fetch = |i: usize| -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(io::Cursor::new(blobs[i].clone())))
        };
        let img = store
            .add_fetched_image(&manifest, &["x/y:1".parse().unwrap()], &fetch, 2)
            .unwrap();
        assert_eq!(img.layers.len(), 3);
        assert!(
            store.blobs.contains(&Digest::of(&blobs[2])),
            "zstd blob kept"
        );
        assert!(
            store.blobs.contains(&Digest::of(&blobs[0])),
            "gzip blob kept"
        );
        assert!(
            !store.blobs.contains(&Digest::of(&blobs[1])),
            "plain blob is its tar-split"
        );
        let (mut r, _) = store
            .open_layer_blob(&img.layers[1], &Digest::of(&blobs[1]))
            .unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, blobs[1]);
        assert!(store.missing_layers(&manifest).unwrap().is_empty());
        assert!(store.check().unwrap().missing.is_empty());
    }

    #[test]
    fn a_corrupt_or_truncated_layer_stores_nothing() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        for damage in ["flip", "truncate", "extra"] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = ImageStore::open(dir.path()).unwrap();
            let (manifest, mut blobs) = stored_manifest(&store);
            match damage {
                "flip" => {
                    let n = blobs[1].len();
                    blobs[1][n / 3] ^= 1;
                }
                "truncate" => {
                    let n = blobs[0].len();
                    blobs[0].truncate(n - 5);
                }
                _ => blobs[0].extend_from_slice(b"more"),
            }
            let fetch = |i: usize| -> io::Result<Box<dyn Read + Send>> {
                Ok(Box::new(io::Cursor::new(blobs[i].clone())))
            };
            let e = store
                .add_fetched_image(&manifest, &[], &fetch, 2)
                .unwrap_err();
            assert!(!e.to_string().is_empty());
            assert!(store.list().unwrap().is_empty(), "{damage}");
            let names: Vec<_> = std::fs::read_dir(dir.path().join("layers"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            // Neither the bad layer nor a good one finished beside it.
            assert!(names.is_empty(), "{damage}: {names:?}");
            assert!(!store.blobs.contains(&Digest::of(&blobs[0])), "{damage}");
            for b in store.blobs.list().unwrap() {
                assert!(store.blobs.verify(&b).unwrap());
            }
            assert_eq!(store.blobs.clean_temp().unwrap(), 0, "{damage}: temp left");
        }
    }
}
