//! `push`: an image's blobs, then its manifest, exactly as the store
//! keeps them, so the registry's digests are the store's.
//!
//! Each blob is first asked for (`HEAD`): one the registry has is skipped.
//! One another repository of the same registry has (the image is tagged
//! there too) is mounted instead of sent. The rest are uploaded, in
//! parallel, streamed from the store (a compressed blob as it came, a plain
//! layer rebuilt from its files and tar-split) and hashed as they go: a
//! local blob that no longer matches its digest fails the push instead of
//! publishing it. Uploads are monolithic (`POST` then one `PUT`), or
//! chunked (`PATCH` per chunk) when a chunk size is given.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use berth_image::digest::Digest;
use berth_image::oci::{self, Manifest};
use berth_image::store::{Image, ImageStore};
use berth_image::Reference;
use sha2::{Digest as _, Sha256};

use crate::client::{query_escape, Body, Client};
use crate::error::{RegistryError, Result};
use crate::progress::{short, Progress};

/// How a push goes.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Blobs uploaded at once (Docker's default is 5).
    pub max_concurrent_uploads: usize,
    /// Upload in chunks of this many bytes (`PATCH`) instead of one `PUT`.
    pub chunk_size: Option<u64>,
    /// Gzip uncompressed layers on the way (the pushed manifest then
    /// names the compressed blobs, so its digest differs from the
    /// store's).
    pub gzip: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            max_concurrent_uploads: 5,
            chunk_size: None,
            gzip: false,
        }
    }
}

/// The repositories of the same registry an image is also tagged in:
/// where its blobs can be mounted from.
pub fn mount_sources(image: &Image, dest: &Reference) -> Vec<String> {
    let mut out: Vec<String> = image
        .tags
        .iter()
        .chain(&image.digests)
        .filter_map(|t| t.parse::<Reference>().ok())
        .filter(|r| r.registry == dest.registry && r.repository != dest.repository)
        .map(|r| r.repository)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The token scopes a push of `image` to `dest` needs.
pub fn scopes(image: &Image, dest: &Reference) -> Vec<String> {
    let mut v = vec![Client::scope(&dest.repository, "pull,push")];
    v.extend(
        mount_sources(image, dest)
            .iter()
            .map(|r| Client::scope(r, "pull")),
    );
    v
}

/// A stream hashed (and counted for progress) as it is read.
struct Hashing<'a, R> {
    inner: R,
    hasher: &'a Mutex<Sha256>,
    id: &'a str,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(&buf[..n]);
        self.progress.advance(self.id, n as u64);
        Ok(n)
    }
}

/// `location` with `digest=` added to its query.
fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={}", query_escape(digest))
}

/// Opens a blob's content, with its size, when it must be sent.
type OpenBlob<'a> = dyn Fn() -> Result<(Box<dyn Read>, u64)> + Sync + 'a;

struct Uploader<'a> {
    client: &'a Client,
    repo: &'a str,
    mounts: Vec<String>,
    opts: &'a PushOptions,
    progress: &'a dyn Progress,
}

impl Uploader<'_> {
    /// Makes blob `digest` exist in the repository; `open` gives its
    /// content and size when it must be sent.
    fn ensure(&self, digest: &str, open: &OpenBlob<'_>) -> Result<()> {
        let id = short(digest);
        let what = format!("blob {digest}");
        let head = self.client.send(
            "HEAD",
            &format!("/v2/{}/blobs/{digest}", self.repo),
            &[],
            Body::Empty,
        )?;
        match head.status() {
            200 => {
                self.progress.finish(id, "Layer already exists");
                return Ok(());
            }
            404 => {}
            _ => return Err(self.client.status_error(head, &what)),
        }
        let mut location = None;
        for from in &self.mounts {
            let resp = self.client.send(
                "POST",
                &format!(
                    "/v2/{}/blobs/uploads/?mount={}&from={}",
                    self.repo,
                    query_escape(digest),
                    query_escape(from)
                ),
                &[],
                Body::Empty,
            )?;
            match resp.status() {
                201 => {
                    self.progress.finish(id, &format!("Mounted from {from}"));
                    return Ok(());
                }
                // The registry started an upload instead: use it.
                202 => {
                    location = resp.header("location").map(String::from);
                    break;
                }
                _ => {}
            }
        }
        let location = match location {
            Some(l) => l,
            None => self.start_upload(&what)?,
        };
        let (content, size) = open()?;
        self.progress.start(id, "Pushing", size);
        let hasher = Mutex::new(Sha256::new());
        // ureq sends the body 8 KiB at a time: the store's files are
        // read a megabyte at a time underneath.
        let stream = Hashing {
            inner: io::BufReader::with_capacity(1 << 20, content),
            hasher: &hasher,
            id,
            progress: self.progress,
        };
        let resp = match self.opts.chunk_size {
            None => self.client.send(
                "PUT",
                &with_digest(&location, digest),
                &[("Content-Type", "application/octet-stream".to_string())],
                Body::Stream(Box::new(stream), size, format!("local {what}")),
            )?,
            Some(chunk) => self.chunked(location, stream, size, chunk.max(1), digest)?,
        };
        let actual = Digest::from_hasher(hasher.into_inner().unwrap_or_else(|e| e.into_inner()));
        if actual.to_string() != digest {
            return Err(RegistryError::DigestMismatch {
                what: format!(
                    "local {what} (the store's copy is damaged: run `berth system check`)"
                ),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if resp.status() != 201 {
            return Err(self.client.status_error(resp, &format!("upload of {what}")));
        }
        self.progress.finish(id, "Pushed");
        Ok(())
    }

    /// Sends `stream` in chunks of `chunk` bytes, then closes the upload.
    fn chunked(
        &self,
        location: String,
        stream: impl Read,
        size: u64,
        chunk: u64,
        digest: &str,
    ) -> Result<ureq::Response> {
        let (location, sent) = self.patch_all(location, stream, chunk, digest)?;
        if sent != size {
            return Err(RegistryError::Damaged(format!(
                "blob {digest}: the store gave {sent} bytes, {size} expected"
            )));
        }
        self.client
            .send("PUT", &with_digest(&location, digest), &[], Body::Empty)
    }

    /// PATCHes `stream` to the upload at `location` in chunks; returns the
    /// upload's last location and the bytes sent.
    fn patch_all(
        &self,
        mut location: String,
        mut stream: impl Read,
        chunk: u64,
        what: &str,
    ) -> Result<(String, u64)> {
        let mut offset = 0u64;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            (&mut stream)
                .take(chunk)
                .read_to_end(&mut buf)
                .map_err(|source| RegistryError::LocalRead {
                    what: format!("local blob {what}"),
                    source,
                })?;
            if buf.is_empty() {
                break;
            }
            let end = offset + buf.len() as u64 - 1;
            let resp = self.client.send(
                "PATCH",
                &location,
                &[
                    ("Content-Type", "application/octet-stream".to_string()),
                    ("Content-Range", format!("{offset}-{end}")),
                ],
                Body::Bytes(&buf),
            )?;
            if resp.status() != 202 {
                return Err(self
                    .client
                    .status_error(resp, &format!("chunk {offset}-{end} of blob {what}")));
            }
            if let Some(l) = resp.header("location") {
                location = l.to_string();
            }
            offset = end + 1;
        }
        Ok((location, offset))
    }

    /// Starts an upload; returns its location.
    fn start_upload(&self, what: &str) -> Result<String> {
        let resp = self.client.send(
            "POST",
            &format!("/v2/{}/blobs/uploads/", self.repo),
            &[],
            Body::Empty,
        )?;
        if resp.status() != 202 {
            return Err(self
                .client
                .status_error(resp, &format!("starting the upload of {what}")));
        }
        resp.header("location").map(String::from).ok_or_else(|| {
            RegistryError::Protocol(format!(
                "{} started an upload without a Location",
                self.client.endpoint.host
            ))
        })
    }

    /// Uploads uncompressed layer `plain` gzipped, in one pass: the tar is
    /// read (and checked against its digest), compressed, hashed and sent
    /// in chunks; the digest closes the upload. Returns the compressed
    /// blob's digest and size.
    fn upload_gzip(&self, plain: &Digest, open: &OpenBlob<'_>) -> Result<(Digest, u64)> {
        let plain_str = plain.to_string();
        let id = short(&plain_str);
        let location = self.start_upload(&format!("layer {plain}"))?;
        let (content, size) = open()?;
        self.progress.start(id, "Pushing (gzip)", size);
        let plain_hasher = Mutex::new(Sha256::new());
        let tar = Hashing {
            inner: io::BufReader::with_capacity(1 << 20, content),
            hasher: &plain_hasher,
            id,
            progress: self.progress,
        };
        let gz_hasher = Mutex::new(Sha256::new());
        let compressed = Hashing {
            inner: flate2::read::GzEncoder::new(tar, flate2::Compression::fast()),
            hasher: &gz_hasher,
            id: "",
            progress: &crate::progress::Silent,
        };
        let chunk = self.opts.chunk_size.unwrap_or(16 << 20).max(1);
        let (location, sent) = self.patch_all(location, compressed, chunk, &plain_str)?;
        let actual =
            Digest::from_hasher(plain_hasher.into_inner().unwrap_or_else(|e| e.into_inner()));
        if actual != *plain {
            return Err(RegistryError::DigestMismatch {
                what: format!(
                    "local layer {plain} (the store's copy is damaged: run `berth system check`)"
                ),
                expected: plain_str,
                actual: actual.to_string(),
            });
        }
        let digest = Digest::from_hasher(gz_hasher.into_inner().unwrap_or_else(|e| e.into_inner()));
        let resp = self.client.send(
            "PUT",
            &with_digest(&location, &digest.to_string()),
            &[],
            Body::Empty,
        )?;
        if resp.status() != 201 {
            return Err(self
                .client
                .status_error(resp, &format!("upload of blob {digest}")));
        }
        self.progress.finish(id, "Pushed");
        Ok((digest, sent))
    }
}

/// Pushes `image` as `dest` (a tag or, without one, by digest) and records
/// `dest`'s repository at the pushed digest as one of the image's digest
/// references (Docker's RepoDigests); returns the pushed manifest's digest
/// and size.
pub fn push(
    store: &ImageStore,
    client: &Client,
    image: &Image,
    dest: &Reference,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<(Digest, usize)> {
    let manifest_bytes = store
        .blobs
        .read(&image.manifest)
        .map_err(berth_image::store::StoreError::from)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| RegistryError::Damaged(format!("stored manifest {}: {e}", image.manifest)))?;
    if manifest.layers.len() != image.layers.len() {
        return Err(RegistryError::Damaged(format!(
            "stored manifest {} does not match the image's layers",
            image.manifest
        )));
    }
    let media_type = manifest.media_type.clone().unwrap_or_else(|| {
        if manifest.config.media_type == oci::DOCKER_CONFIG {
            oci::DOCKER_MANIFEST.to_string()
        } else {
            oci::OCI_MANIFEST.to_string()
        }
    });
    let up = Uploader {
        client,
        repo: &dest.repository,
        mounts: mount_sources(image, dest),
        opts,
        progress,
    };
    // Layers in parallel; the first failure stops the others at their
    // next blob.
    let layers: Vec<(Digest, &Digest)> = manifest
        .layers
        .iter()
        .zip(&image.layers)
        .map(|(l, chain)| {
            l.digest
                .parse::<Digest>()
                .map(|d| (d, chain))
                .map_err(|e| RegistryError::Damaged(format!("stored manifest: {e}")))
        })
        .collect::<Result<_>>()?;
    let compress: Vec<bool> = manifest
        .layers
        .iter()
        .map(|l| opts.gzip && (l.media_type == oci::OCI_LAYER || l.media_type == oci::DOCKER_LAYER))
        .collect();
    let compressed: Mutex<Vec<Option<(Digest, u64)>>> = Mutex::new(vec![None; layers.len()]);
    let next = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let workers = opts.max_concurrent_uploads.max(1).min(layers.len());
    // The store's blob directory is shared by the threads; the store
    // itself (its database connection) stays on this one.
    let blobs = store.blobs.clone();
    let opened: Vec<Box<OpenBlob<'_>>> = layers
        .iter()
        .map(|(d, chain)| {
            let d = d.clone();
            let chain = (*chain).clone();
            let root = store.root().to_path_buf();
            let blobs = blobs.clone();
            Box::new(move || open_layer(&root, &blobs, &chain, &d)) as Box<OpenBlob<'_>>
        })
        .collect();
    // docker lists every layer first, the top one first.
    for (d, _) in layers.iter().rev() {
        progress.message(&format!("{}: Preparing", short(&d.to_string())));
    }
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((d, _)) = layers.get(k) else { break };
                let r = if compress[k] {
                    up.upload_gzip(d, &*opened[k]).map(|done| {
                        compressed.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(done);
                    })
                } else {
                    up.ensure(&d.to_string(), &*opened[k])
                };
                if let Err(e) = r {
                    first_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    next.store(layers.len(), Ordering::Relaxed);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    // The config is a blob too, but docker shows layers only.
    let config_up = Uploader {
        progress: &crate::progress::Silent,
        mounts: up.mounts.clone(),
        ..up
    };
    let config = image.id.clone();
    config_up.ensure(&config.to_string(), &|| {
        let f = blobs
            .open_blob(&config)
            .map_err(berth_image::store::StoreError::from)?;
        let size = f
            .metadata()
            .map_err(crate::error::io_err("stat the config blob"))?
            .len();
        Ok((Box::new(f), size))
    })?;

    // Layers sent gzipped are named by their compressed digests in the
    // manifest pushed; the rest of it is the store's, byte for byte.
    let compressed = compressed.into_inner().unwrap_or_else(|e| e.into_inner());
    let (manifest_bytes, manifest_digest) = if compressed.iter().any(Option::is_some) {
        let mut m = manifest.clone();
        for (l, c) in m.layers.iter_mut().zip(&compressed) {
            if let Some((d, size)) = c {
                l.media_type = if l.media_type == oci::DOCKER_LAYER {
                    oci::DOCKER_LAYER_GZIP.to_string()
                } else {
                    oci::OCI_LAYER_GZIP.to_string()
                };
                l.digest = d.to_string();
                l.size = *size;
            }
        }
        let bytes = serde_json::to_vec(&m).map_err(RegistryError::Encode)?;
        let d = Digest::of(&bytes);
        (bytes, d)
    } else {
        (manifest_bytes, image.manifest.clone())
    };
    let target = match (&dest.tag, &dest.digest) {
        (Some(t), _) => t.clone(),
        (None, _) => manifest_digest.to_string(),
    };
    let resp = client.send(
        "PUT",
        &format!("/v2/{}/manifests/{target}", dest.repository),
        &[("Content-Type", media_type.clone())],
        Body::Bytes(&manifest_bytes),
    )?;
    if resp.status() != 201 {
        return Err(client.status_error(resp, &format!("manifest {}", dest.familiar())));
    }
    if let Some(h) = resp.header("docker-content-digest") {
        if h.trim() != manifest_digest.to_string() {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {} as the registry stored it", dest.familiar()),
                expected: manifest_digest.to_string(),
                actual: h.trim().to_string(),
            });
        }
    }
    let pushed_as = Reference {
        tag: None,
        digest: Some(manifest_digest.clone()),
        ..dest.clone()
    };
    store.add_digest_reference(&image.id, &pushed_as)?;
    Ok((manifest_digest, manifest_bytes.len()))
}

/// A layer blob from the store, opened on a worker thread: the store's
/// files are shared, its database connection is not, so a read-only
/// store is opened per call for the tar-split path.
fn open_layer(
    root: &std::path::Path,
    blobs: &berth_image::BlobStore,
    chain: &Digest,
    blob: &Digest,
) -> Result<(Box<dyn Read>, u64)> {
    match blobs.open_blob(blob) {
        Ok(f) => {
            let size = f
                .metadata()
                .map_err(crate::error::io_err("stat a layer blob"))?
                .len();
            Ok((Box::new(f), size))
        }
        Err(berth_image::blobs::BlobError::NotFound(_)) => Ok(
            berth_image::store::open_layer_from_files(root, chain, blob)?,
        ),
        Err(e) => Err(berth_image::store::StoreError::from(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_come_from_other_repositories_of_the_same_registry() {
        let img = Image {
            id: Digest::of(b"c"),
            manifest: Digest::of(b"m"),
            created: None,
            size: 0,
            tags: vec![
                "r.example:5000/team/base:1".into(),
                "r.example:5000/team/app:1".into(),
                "other.example/team/base:1".into(),
            ],
            digests: vec![format!("r.example:5000/team/pushed@{}", Digest::of(b"m"))],
            layers: vec![],
        };
        let dest: Reference = "r.example:5000/team/app:2".parse().unwrap();
        assert_eq!(
            mount_sources(&img, &dest),
            vec!["team/base".to_string(), "team/pushed".to_string()]
        );
        assert_eq!(
            scopes(&img, &dest),
            vec![
                "repository:team/app:pull,push".to_string(),
                "repository:team/base:pull".to_string(),
                "repository:team/pushed:pull".to_string()
            ]
        );
    }

    #[test]
    fn the_digest_joins_the_upload_query() {
        assert_eq!(
            with_digest("/v2/a/blobs/uploads/u?_state=x", "sha256:ab"),
            "/v2/a/blobs/uploads/u?_state=x&digest=sha256%3Aab"
        );
        assert_eq!(
            with_digest("http://h/u", "sha256:ab"),
            "http://h/u?digest=sha256%3Aab"
        );
    }
}
