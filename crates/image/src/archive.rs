//! Image archives: `load` (docker-archive and oci-archive, recognised by
//! their contents), `save` (docker-archive), and `import` of a rootfs
//! tarball.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::oci::{self, Descriptor, Manifest};
use crate::reference::Reference;
use crate::store::{Image, ImageStore, LayerSource, StoreError};

/// Most bytes of a manifest, index or config an archive may hold: each is
/// read whole into memory. Real ones are kilobytes; registries cap
/// manifests at 4 MiB.
const METADATA_LIMIT: u64 = 32 << 20;

type Result<T> = std::result::Result<T, StoreError>;

fn invalid(s: impl Into<String>) -> StoreError {
    StoreError::Malformed(s.into())
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// An archive read in place: each member's offset and size, found in one
/// pass over the tar headers; members are then read by seeking, not
/// copied out first (an image archive is mostly layer data).
struct Archive {
    file: fs::File,
    members: std::collections::HashMap<std::path::PathBuf, (u64, u64)>,
    /// An OCI layout directory instead of a tar: members are its files,
    /// opened inside it (a symlink in a hostile layout cannot point out).
    dir: Option<std::os::fd::OwnedFd>,
}

impl Archive {
    fn index(file: fs::File) -> Result<Archive> {
        let mut members = std::collections::HashMap::new();
        {
            // Guarded: a pax header of gigabytes would be read whole.
            let mut a = tar::Archive::new(crate::tar_guard::TarGuard::new(&file));
            for e in a.entries().map_err(io_err("read archive"))? {
                let e = e.map_err(io_err("read archive"))?;
                if matches!(
                    e.header().entry_type(),
                    tar::EntryType::Regular | tar::EntryType::Continuous
                ) {
                    let name =
                        crate::layer::clean(&e.path().map_err(io_err("archive entry name"))?);
                    members.insert(name, (e.raw_file_position(), e.size()));
                }
            }
        }
        Ok(Archive {
            file,
            members,
            dir: None,
        })
    }

    fn directory(path: &Path) -> Result<Archive> {
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| StoreError::Io {
            context: format!("open {}", path.display()),
            source: e.into(),
        })?;
        // SAFETY: a fresh descriptor from open.
        let dir = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let file = fs::File::open("/dev/null").map_err(io_err("open /dev/null"))?;
        Ok(Archive {
            file,
            members: std::collections::HashMap::new(),
            dir: Some(dir),
        })
    }

    fn open_in_dir(&self, name: &str) -> Option<Result<fs::File>> {
        let dir = self.dir.as_ref()?;
        Some(
            saferoot::open_in_root(dir, Path::new(name), nix::fcntl::OFlag::O_RDONLY)
                .map(fs::File::from)
                .map_err(|e| StoreError::Io {
                    context: format!("open {name} in the layout"),
                    source: e.into(),
                }),
        )
    }

    fn has(&self, name: &str) -> bool {
        match self.open_in_dir(name) {
            Some(f) => f.is_ok(),
            None => self
                .members
                .contains_key(&crate::layer::clean(Path::new(name))),
        }
    }

    /// A member's content. Read with pread: readers of several members
    /// (layers unpacked at once) share no file offset.
    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>> {
        if let Some(f) = self.open_in_dir(name) {
            return Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f?)));
        }
        let &(offset, size) = self
            .members
            .get(&crate::layer::clean(Path::new(name)))
            .ok_or_else(|| invalid(format!("the archive has no {name}")))?;
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            ReadAt {
                file: &self.file,
                pos: offset,
                end: offset + size,
            },
        )))
    }

    /// A metadata member whole (manifest.json, index.json, a config):
    /// bounded, since it is held in memory.
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open(name)?
            .take(METADATA_LIMIT + 1)
            .read_to_end(&mut v)
            .map_err(io_err(format!("read {name}")))?;
        if v.len() as u64 > METADATA_LIMIT {
            return Err(invalid(format!(
                "{name} is over the limit of {METADATA_LIMIT} bytes"
            )));
        }
        Ok(v)
    }

    fn json(&self, name: &str) -> Result<Value> {
        serde_json::from_slice(&self.read(name)?).map_err(|e| invalid(format!("{name}: {e}")))
    }
}

/// A range of a file, read with pread.
struct ReadAt<'a> {
    file: &'a fs::File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = std::os::unix::fs::FileExt::read_at(self.file, &mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Loads every image of an OCI layout directory.
pub fn load_dir(
    store: &mut ImageStore,
    dir: &Path,
    platform: Option<&oci::Platform>,
) -> Result<Vec<Loaded>> {
    let a = Archive::directory(dir)?;
    if !(a.has("index.json") && a.has("oci-layout")) {
        return Err(invalid(format!(
            "{} is not an OCI image layout (no oci-layout or index.json)",
            dir.display()
        )));
    }
    load_oci(store, &a, platform)
}

/// An image a load stored, and the names the archive gave it (the image
/// may have had others already).
#[derive(Debug)]
pub struct Loaded {
    pub image: Image,
    pub names: Vec<Reference>,
}

/// Loads every image of an archive file; returns them with their names.
/// `platform` picks an image out of an index (default: the host's).
pub fn load_file(
    store: &mut ImageStore,
    mut file: fs::File,
    platform: Option<&oci::Platform>,
) -> Result<Vec<Loaded>> {
    // `docker save img | gzip` loads in docker: a compressed archive is
    // unpacked to a temp file of the store first (its members are read
    // in no useful order).
    let mut head = [0u8; 4];
    let n = std::io::Read::read(&mut file, &mut head).map_err(io_err("read archive"))?;
    std::io::Seek::rewind(&mut file).map_err(io_err("read archive"))?;
    if crate::layer::is_compressed(&head[..n]) {
        let mut plain =
            tempfile::tempfile_in(store.root().join("tmp")).map_err(io_err("temp file"))?;
        let mut input = crate::layer::decompress(file).map_err(io_err("read archive"))?;
        std::io::copy(&mut input, &mut plain).map_err(io_err("decompress archive"))?;
        std::io::Seek::rewind(&mut plain).map_err(io_err("read archive"))?;
        file = plain;
    }
    let a = Archive::index(file)?;
    if a.has("index.json") && a.has("oci-layout") {
        load_oci(store, &a, platform)
    } else if a.has("manifest.json") {
        load_docker(store, &a)
    } else {
        Err(invalid(
            "not an image archive: no manifest.json (docker-archive) or index.json (oci-archive)",
        ))
    }
}

/// Loads from a stream (stdin): spooled to a temp file of the store first,
/// since an archive's members come in no useful order.
pub fn load(
    store: &mut ImageStore,
    mut input: impl Read,
    platform: Option<&oci::Platform>,
) -> Result<Vec<Loaded>> {
    let mut spool = tempfile::tempfile_in(store.root().join("tmp")).map_err(io_err("temp file"))?;
    std::io::copy(&mut input, &mut spool).map_err(io_err("read archive"))?;
    std::io::Seek::rewind(&mut spool).map_err(io_err("read archive"))?;
    load_file(store, spool, platform)
}

fn load_docker(store: &mut ImageStore, a: &Archive) -> Result<Vec<Loaded>> {
    let manifest = a.json("manifest.json")?;
    let entries = manifest
        .as_array()
        .ok_or_else(|| invalid("manifest.json is not a list"))?;
    let mut out = Vec::new();
    for entry in entries {
        let config_name = entry["Config"]
            .as_str()
            .ok_or_else(|| invalid("manifest.json entry without Config"))?;
        let config = a.read(config_name)?;
        let names = entry["Layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                l.as_str()
                    .ok_or_else(|| invalid("a layer name is not a string"))
            })
            .collect::<Result<Vec<_>>>()?;
        // Each layer is unpacked straight from the archive (no copy of it
        // is stored: its tar-split is), several at once.
        let sources: Vec<Box<LayerSource<'_>>> = names
            .iter()
            .map(|&name| {
                Box::new(move || -> Result<Box<dyn Read + '_>> { a.open(name) })
                    as Box<LayerSource<'_>>
            })
            .collect();
        let sources: Vec<&LayerSource<'_>> = sources.iter().map(|s| s.as_ref()).collect();
        let tags = entry["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|t| {
                t.parse::<Reference>()
                    .map_err(|e| invalid(format!("tag {t:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let image = store.add_from_layers(&config, &sources, &tags)?;
        out.push(Loaded { image, names: tags });
    }
    Ok(out)
}

fn blob_name(digest: &str) -> Result<String> {
    let d: Digest = digest.parse().map_err(|e| invalid(format!("{e}")))?;
    Ok(format!("blobs/sha256/{}", d.hex()))
}

/// Stores one blob of an OCI layout, checking it against its digest.
fn put_verified(store: &ImageStore, a: &Archive, desc: &Descriptor) -> Result<Digest> {
    put_verified_max(store, a, desc, None)
}

/// A manifest or config, read whole afterwards: bounded like metadata.
fn put_metadata(store: &ImageStore, a: &Archive, desc: &Descriptor) -> Result<Digest> {
    put_verified_max(store, a, desc, Some(METADATA_LIMIT))
}

fn put_verified_max(
    store: &ImageStore,
    a: &Archive,
    desc: &Descriptor,
    limit: Option<u64>,
) -> Result<Digest> {
    let want: Digest = desc.digest.parse().map_err(|e| invalid(format!("{e}")))?;
    store
        .blobs
        .put(a.open(&blob_name(&desc.digest)?)?, Some(&want), limit)
        .map_err(|e| match e {
            crate::blobs::BlobError::TooLarge { limit } => invalid(format!(
                "{} is over the limit of {limit} bytes",
                desc.digest
            )),
            e => e.into(),
        })
}

/// Whether `p` is the platform `want` asks for (a variant only when
/// `want` names one).
fn platform_matches(p: &oci::Platform, want: &oci::Platform) -> bool {
    p.os == want.os
        && p.architecture == want.architecture
        && want
            .variant
            .as_ref()
            .is_none_or(|v| p.variant.as_ref() == Some(v))
}

fn platform_name(p: &oci::Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// The manifests of an index to load for `want` (the host's platform
/// unless given): the first that matches, or an error naming the
/// platforms the index has.
fn pick_platform(manifests: &[Descriptor], want: &oci::Platform) -> Result<Descriptor> {
    if let Some(d) = manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_none_or(|p| platform_matches(p, want))
    }) {
        return Ok(d.clone());
    }
    let have: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(platform_name))
        .collect();
    Err(invalid(format!(
        "the archive has no image for platform {} (it has {})",
        platform_name(want),
        have.join(", ")
    )))
}

fn load_oci(
    store: &mut ImageStore,
    a: &Archive,
    platform: Option<&oci::Platform>,
) -> Result<Vec<Loaded>> {
    let index: Value = a.json("index.json")?;
    let want = platform.cloned().unwrap_or_else(oci::host_platform);
    let top: Vec<Descriptor> = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| serde_json::from_value(m.clone()).map_err(|e| invalid(format!("index.json: {e}"))))
        .collect::<Result<_>>()?;
    // Manifests listed in index.json with their platforms are the
    // variants of one image when --platform is given: keep the one asked
    // for. Without it, every listed image is loaded, as before.
    let top_has_platforms = top.iter().any(|d| {
        d.platform.is_some() && d.media_type != oci::OCI_INDEX && d.media_type != oci::DOCKER_LIST
    });
    let top: Vec<Descriptor> = if platform.is_some() && top_has_platforms {
        let (indexes, manifests): (Vec<Descriptor>, Vec<Descriptor>) = top
            .into_iter()
            .partition(|d| d.media_type == oci::OCI_INDEX || d.media_type == oci::DOCKER_LIST);
        let mut keep = indexes;
        keep.push(pick_platform(&manifests, &want)?);
        keep
    } else {
        top
    };
    let mut out = Vec::new();
    for desc in top {
        let mut manifests = vec![desc.clone()];
        if desc.media_type == oci::OCI_INDEX || desc.media_type == oci::DOCKER_LIST {
            let nested = a.json(&blob_name(&desc.digest)?)?;
            let listed: Vec<Descriptor> = nested["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| serde_json::from_value::<Descriptor>(v.clone()).ok())
                .collect();
            manifests = vec![pick_platform(&listed, &want)?];
        }
        let name = desc
            .annotations
            .as_ref()
            .and_then(|a| {
                a.get("org.opencontainers.image.ref.name")
                    .or_else(|| a.get("io.containerd.image.name"))
            })
            .and_then(Value::as_str)
            .map(String::from);
        for md in manifests {
            let manifest_digest = put_metadata(store, a, &md)?;
            let manifest: Manifest =
                serde_json::from_slice(&store.blobs.read(&manifest_digest)?)
                    .map_err(|e| invalid(format!("manifest {}: {e}", md.digest)))?;
            let config_digest = put_metadata(store, a, &manifest.config)?;
            let config: oci::Config = serde_json::from_slice(&store.blobs.read(&config_digest)?)
                .map_err(|e| invalid(format!("config {config_digest}: {e}")))?;
            // A plain layer whose digest is its diff_id is unpacked straight
            // from the archive (the unpack checks that digest, and its
            // tar-split gives the blob back). A compressed one is stored
            // as it is: its exact bytes cannot be made again.
            let mut names = Vec::new();
            for (i, l) in manifest.layers.iter().enumerate() {
                let name = blob_name(&l.digest)?;
                let plain = config.rootfs.diff_ids.get(i) == Some(&l.digest) && {
                    let mut head = [0u8; 4];
                    let n = a
                        .open(&name)?
                        .read(&mut head)
                        .map_err(io_err(format!("read {name}")))?;
                    !crate::layer::is_compressed(&head[..n])
                };
                if !plain {
                    put_verified(store, a, l)?;
                }
                names.push((
                    plain,
                    name,
                    l.digest
                        .parse::<Digest>()
                        .map_err(|e| invalid(format!("{e}")))?,
                ));
            }
            let blobs = store.blobs.clone();
            let blobs = &blobs;
            let sources: Vec<Box<LayerSource<'_>>> = names
                .iter()
                .map(|(plain, name, digest)| -> Box<LayerSource<'_>> {
                    if *plain {
                        Box::new(move || a.open(name))
                    } else {
                        Box::new(move || -> Result<Box<dyn Read + '_>> {
                            Ok(Box::new(blobs.open_blob(digest)?))
                        })
                    }
                })
                .collect();
            let sources: Vec<&LayerSource<'_>> = sources.iter().map(|s| s.as_ref()).collect();
            // A full reference as the name is a tag; a bare tag has no
            // repository to go with, so the image stays untagged.
            let tags: Vec<Reference> = name
                .iter()
                .filter(|n| n.contains('/') || n.contains(':'))
                .filter_map(|n| n.parse().ok())
                .collect();
            let image = store.add_image_from(&manifest_digest, &tags, Some(&sources))?;
            out.push(Loaded { image, names: tags });
        }
    }
    Ok(out)
}

/// Writes `images` as a docker-archive (what `docker save` and `podman
/// save` write, and every peer loads).
pub fn save_docker(
    store: &ImageStore,
    images: &[(Image, Vec<String>)],
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut manifest = Vec::new();
    let mut repositories: std::collections::BTreeMap<String, serde_json::Map<String, Value>> =
        std::collections::BTreeMap::new();
    let mut written = std::collections::HashSet::new();
    for (img, tags) in images {
        let (m, config) = store.manifest_and_config(img)?;
        let config_bytes = store.blobs.read(&img.id)?;
        let config_name = format!("{}.json", img.id.hex());
        append(&mut tar, &config_name, &config_bytes)?;
        let diffs = config["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut layer_names = Vec::new();
        for ((layer, diff), chain) in m.layers.iter().zip(diffs).zip(&img.layers) {
            let diff: Digest = diff
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| invalid(format!("{e}")))?;
            let name = format!("{}/layer.tar", diff.hex());
            if written.insert(name.clone()) {
                // docker-archive layers are plain tars.
                let blob: Digest = layer.digest.parse().map_err(|e| invalid(format!("{e}")))?;
                let plain = crate::layer::decompress(store.open_layer_blob(chain, &blob)?.0)
                    .map_err(io_err("read layer"))?;
                let tmp =
                    tempfile::tempfile_in(store.root().join("tmp")).map_err(io_err("temp file"))?;
                let mut tmp_w = tmp.try_clone().map_err(io_err("temp file"))?;
                let (_, size) = crate::blobs::copy_hashing(plain, &mut tmp_w, None)?;
                let mut h = tar::Header::new_gnu();
                h.set_size(size);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                let mut tmp = tmp;
                std::io::Seek::seek(&mut tmp, std::io::SeekFrom::Start(0))
                    .map_err(io_err("temp file"))?;
                tar.append_data(&mut h, &name, tmp)
                    .map_err(io_err("write archive"))?;
            }
            layer_names.push(name);
        }
        // The legacy `repositories` file docker writes beside the manifest:
        // repository -> tag -> the top layer's directory.
        if let Some(top) = layer_names.last().and_then(|l| l.split('/').next()) {
            for t in tags {
                if let Some((repo, tag)) = t.rsplit_once(':').filter(|(r, _)| !r.contains('@')) {
                    repositories
                        .entry(repo.to_string())
                        .or_default()
                        .insert(tag.to_string(), json!(top));
                }
            }
        }
        manifest.push(json!({"Config": config_name, "RepoTags": tags, "Layers": layer_names}));
    }
    append(
        &mut tar,
        "manifest.json",
        &serde_json::to_vec(&manifest).map_err(|e| invalid(e.to_string()))?,
    )?;
    if !repositories.is_empty() {
        append(
            &mut tar,
            "repositories",
            &serde_json::to_vec(&repositories).map_err(|e| invalid(e.to_string()))?,
        )?;
    }
    tar.into_inner()
        .map_err(io_err("write archive"))?
        .flush()
        .map_err(io_err("write archive"))?;
    Ok(())
}

/// Writes `images` as an oci-archive (an OCI image layout in a tar): the
/// stored blobs as they are, and an index naming each image by its tags.
pub fn save_oci(
    store: &ImageStore,
    images: &[(Image, Vec<String>)],
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    append(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written = std::collections::HashSet::new();
    let mut manifests = Vec::new();
    for (img, tags) in images {
        let (m, _) = store.manifest_and_config(img)?;
        let mut blobs = vec![(img.manifest.clone(), None), (img.id.clone(), None)];
        for (l, chain) in m.layers.iter().zip(&img.layers) {
            blobs.push((
                l.digest.parse().map_err(|e| invalid(format!("{e}")))?,
                Some(chain),
            ));
        }
        for (b, chain) in blobs {
            if written.insert(b.clone()) {
                let (f, size): (Box<dyn Read>, u64) = match chain {
                    Some(chain) => store.open_layer_blob(chain, &b)?,
                    None => {
                        let f = store.blobs.open_blob(&b)?;
                        let size = f.metadata().map_err(io_err("stat blob"))?.len();
                        (Box::new(f), size)
                    }
                };
                let mut h = tar::Header::new_gnu();
                h.set_size(size);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, format!("blobs/sha256/{}", b.hex()), f)
                    .map_err(io_err("write archive"))?;
            }
        }
        let size = store.blobs.read(&img.manifest)?.len();
        let names: Vec<Option<&String>> = if tags.is_empty() {
            vec![None]
        } else {
            tags.iter().map(Some).collect()
        };
        for name in names {
            let mut d = json!({"mediaType": oci::OCI_MANIFEST, "digest": img.manifest.to_string(), "size": size});
            if let Some(n) = name {
                d["annotations"] = json!({"org.opencontainers.image.ref.name": n});
            }
            manifests.push(d);
        }
    }
    let index = json!({"schemaVersion": 2, "mediaType": oci::OCI_INDEX, "manifests": manifests});
    append(
        &mut tar,
        "index.json",
        &serde_json::to_vec(&index).map_err(|e| invalid(e.to_string()))?,
    )?;
    tar.into_inner()
        .map_err(io_err("write archive"))?
        .flush()
        .map_err(io_err("write archive"))?;
    Ok(())
}

/// Writes `images` as an OCI image layout directory `dir` (which must not
/// exist yet): made beside it and renamed when complete.
pub fn save_oci_dir(store: &ImageStore, images: &[(Image, Vec<String>)], dir: &Path) -> Result<()> {
    if dir.exists() {
        return Err(StoreError::InvalidOption(format!(
            "{} exists: give a new directory",
            dir.display()
        )));
    }
    let tmp = dir.with_extension("berth-partial");
    crate::leftover::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.join("blobs/sha256"))
        .map_err(io_err(format!("create {}", tmp.display())))?;
    // Spooled to a file, not a Vec: the archive holds every layer.
    let mut spool = tempfile::tempfile_in(store.root().join("tmp")).map_err(io_err("temp file"))?;
    save_oci(store, images, std::io::BufWriter::new(&mut spool))?;
    std::io::Seek::rewind(&mut spool).map_err(io_err("read the spooled layout"))?;
    let mut a = tar::Archive::new(std::io::BufReader::new(&spool));
    for e in a.entries().map_err(io_err("write layout"))? {
        let mut e = e.map_err(io_err("write layout"))?;
        let name = crate::layer::clean(&e.path().map_err(io_err("write layout"))?);
        let mut f = fs::File::create(tmp.join(&name))
            .map_err(io_err(format!("write {}", name.display())))?;
        std::io::copy(&mut e, &mut f).map_err(io_err(format!("write {}", name.display())))?;
    }
    fs::rename(&tmp, dir).map_err(io_err(format!("rename to {}", dir.display())))
}

fn append(tar: &mut tar::Builder<impl Write>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
        .map_err(io_err("write archive"))
}

/// Applies `--change` instructions (Dockerfile syntax: CMD, ENTRYPOINT,
/// ENV, WORKDIR, USER, EXPOSE, LABEL) to an image config's `config`.
pub fn apply_change(config: &mut Value, change: &str) -> Result<()> {
    let (instr, arg) = change
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((change.trim(), ""));
    let arg = arg.trim();
    let list = |a: &str| -> Value {
        match serde_json::from_str::<Vec<String>>(a) {
            Ok(v) => json!(v),
            Err(_) => json!(["/bin/sh", "-c", a]),
        }
    };
    let c = &mut config["config"];
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => c["Cmd"] = list(arg),
        "ENTRYPOINT" => c["Entrypoint"] = list(arg),
        "WORKDIR" => c["WorkingDir"] = json!(arg),
        "USER" => c["User"] = json!(arg),
        "ENV" => {
            let pairs = key_values(arg);
            let env = c["Env"].as_array().cloned().unwrap_or_default();
            let mut env: Vec<String> = env
                .into_iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            for (k, v) in pairs {
                env.retain(|e| e.split_once('=').map(|x| x.0) != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
            c["Env"] = json!(env);
        }
        "LABEL" => {
            for (k, v) in key_values(arg) {
                c["Labels"][k] = json!(v);
            }
        }
        "EXPOSE" => {
            for p in arg.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                c["ExposedPorts"][p] = json!({});
            }
        }
        other => {
            return Err(StoreError::InvalidOption(format!(
                "--change {other:?}: use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER or WORKDIR"
            )))
        }
    }
    Ok(())
}

/// `A=1 B="two words"` or the old `A value` form.
fn key_values(arg: &str) -> Vec<(String, String)> {
    if !arg.contains('=') {
        return match arg.split_once(char::is_whitespace) {
            Some((k, v)) => vec![(k.to_string(), v.trim().to_string())],
            None => Vec::new(),
        };
    }
    let mut out = Vec::new();
    let mut rest = arg.trim();
    while let Some((k, after)) = rest.split_once('=') {
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            match q.split_once('"') {
                Some((v, n)) => (v.to_string(), n),
                None => (q.to_string(), ""),
            }
        } else {
            match after.split_once(char::is_whitespace) {
                Some((v, n)) => (v.to_string(), n),
                None => (after.to_string(), ""),
            }
        };
        out.push((k.trim().to_string(), v));
        rest = next.trim();
    }
    out
}

/// Imports a rootfs tarball (plain, gzip or zstd) from a stream: spooled
/// to a temp file of the store first, since a layer whose files cannot
/// give its tar back is read a second time.
pub fn import(
    store: &mut ImageStore,
    mut input: impl Read,
    changes: &[String],
    message: Option<&str>,
    platform: Option<&oci::Platform>,
    tags: &[Reference],
) -> Result<Image> {
    let mut spool = tempfile::tempfile_in(store.root().join("tmp")).map_err(io_err("temp file"))?;
    std::io::copy(&mut input, &mut spool).map_err(io_err("read the tarball"))?;
    import_file(store, spool, changes, message, platform, tags)
}

/// Imports a rootfs tarball file (plain, gzip or zstd) as a one-layer
/// image, unpacked straight from it; `platform` is what its config says
/// (this host's when none is given).
pub fn import_file(
    store: &mut ImageStore,
    file: fs::File,
    changes: &[String],
    message: Option<&str>,
    platform: Option<&oci::Platform>,
    tags: &[Reference],
) -> Result<Image> {
    let size = file.metadata().map_err(io_err("stat the tarball"))?.len();
    let source = || -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            ReadAt {
                file: &file,
                pos: 0,
                end: size,
            },
        )))
    };
    let (diff, layer_size) = store.ensure_bottom_layer(&source)?;
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let platform = platform.cloned().unwrap_or_else(oci::host_platform);
    let mut config = json!({
        "created": created,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]},
        "history": [{"created": created, "created_by": "", "comment": message.unwrap_or("Imported from -")}],
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    for c in changes {
        apply_change(&mut config, c)?;
    }
    let bytes = serde_json::to_vec(&config).map_err(|e| invalid(e.to_string()))?;
    let parsed: oci::Config =
        serde_json::from_value(config).map_err(|e| invalid(format!("image config: {e}")))?;
    store.add_from_sized(&bytes, parsed, &[diff], &[layer_size], tags)
}

/// What `commit` records besides the layer.
#[derive(Debug, Default)]
pub struct CommitInfo<'a> {
    /// Dockerfile instructions (`-c`), as for import.
    pub changes: &'a [String],
    pub message: Option<&'a str>,
    pub author: Option<&'a str>,
    /// The container's own config section (Env, Cmd, ...) the image gets,
    /// before `changes` apply.
    pub container_config: Option<Value>,
}

/// Makes an image from `base` plus one layer: the plain tar in `layer`
/// (a container's changes, from `snapshot::diff`).
pub fn commit(
    store: &mut ImageStore,
    base: &Image,
    layer: fs::File,
    info: &CommitInfo<'_>,
    tags: &[Reference],
) -> Result<Image> {
    let size = layer.metadata().map_err(io_err("stat the layer"))?.len();
    let diff = {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        let mut r = ReadAt {
            file: &layer,
            pos: 0,
            end: size,
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).map_err(io_err("read the layer"))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        format!("sha256:{}", hex::encode(h.finalize()))
            .parse::<Digest>()
            .map_err(|e| invalid(e.to_string()))?
    };
    let (_, mut config) = store.manifest_and_config(base)?;
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    config["created"] = json!(created);
    // docker's local parent link: `ps --filter ancestor=` and `.Parent`
    // follow it from a committed image to the one it was made from.
    config["parent"] = json!(base.id.to_string());
    if let Some(c) = &info.container_config {
        config["config"] = c.clone();
    }
    if let Some(a) = info.author {
        config["author"] = json!(a);
    }
    // Nothing changed (the diff is the empty tar): no layer, as docker
    // commits it; the history entry says so.
    let empty = diff.to_string() == EMPTY_TAR_DIFF;
    let diffs = config["rootfs"]["diff_ids"]
        .as_array_mut()
        .ok_or_else(|| invalid("base image config has no rootfs.diff_ids"))?;
    if !empty {
        diffs.push(json!(diff.to_string()));
    }
    let mut entry = json!({"created": created, "created_by": "berth commit"});
    if empty {
        entry["empty_layer"] = json!(true);
    }
    if let Some(m) = info.message {
        entry["comment"] = json!(m);
    }
    if let Some(a) = info.author {
        entry["author"] = json!(a);
    }
    match config["history"].as_array_mut() {
        Some(h) => h.push(entry),
        None => config["history"] = json!([entry]),
    }
    for c in info.changes {
        apply_change(&mut config, c)?;
    }
    let bytes = serde_json::to_vec(&config).map_err(|e| invalid(e.to_string()))?;
    let n = base.layers.len();
    let lower = || -> Result<Box<dyn Read + '_>> {
        // The base's layers are stored already: never read.
        Err(invalid("a base layer is missing from the store"))
    };
    let top = || -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            ReadAt {
                file: &layer,
                pos: 0,
                end: size,
            },
        )))
    };
    let mut sources: Vec<&LayerSource<'_>> = vec![&lower; n];
    if !empty {
        sources.push(&top);
    }
    store.add_from_layers(&bytes, &sources, tags)
}

/// The diff_id of a tar with no entries (its two zero blocks), docker's
/// `DigestSHA256EmptyTar`.
const EMPTY_TAR_DIFF: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_docker_import() {
        let mut c = json!({"config": {}});
        for ch in [
            "CMD [\"/bin/sh\", \"-c\", \"echo hi\"]",
            "ENTRYPOINT /init",
            "ENV A=1 B=\"two words\"",
            "ENV C 3",
            "WORKDIR /w",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "LABEL x=y",
        ] {
            apply_change(&mut c, ch).unwrap();
        }
        let cfg = &c["config"];
        assert_eq!(cfg["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(cfg["Entrypoint"], json!(["/bin/sh", "-c", "/init"]));
        assert_eq!(cfg["Env"], json!(["A=1", "B=two words", "C=3"]));
        assert_eq!(cfg["WorkingDir"], "/w");
        assert_eq!(cfg["User"], "1000:1000");
        assert!(
            cfg["ExposedPorts"]["53/udp"].is_object() && cfg["ExposedPorts"]["80/tcp"].is_object()
        );
        assert_eq!(cfg["Labels"]["x"], "y");
        assert!(apply_change(&mut c, "RUN rm -rf /").is_err());
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;

    fn rootfs_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("etc/hostname", &b"berth\n"[..]),
            ("bin/hello", &b"#!/bin/sh\necho hi\n"[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn import_save_load_tag_and_remove() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let a = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(a.path()).unwrap();
        let tag: Reference = "example/app:1".parse().unwrap();
        let img = import(
            &mut store,
            &rootfs_tar()[..],
            &["CMD [\"/bin/hello\"]".into()],
            None,
            None,
            std::slice::from_ref(&tag),
        )
        .unwrap();
        assert_eq!(img.tags, vec!["docker.io/example/app:1".to_string()]);
        assert_eq!(store.resolve("example/app:1").unwrap().id, img.id);
        assert_eq!(store.resolve(&img.id.hex()[..12]).unwrap().id, img.id);
        let layer = store.layer_dir(&img.layers[0]);
        assert_eq!(
            fs::read_to_string(layer.join("etc/hostname")).unwrap(),
            "berth\n"
        );
        // docker's size: the files' bytes (6 + 18), not the tar's.
        assert_eq!(store.content_size(&img).unwrap(), 24);
        assert_eq!(store.content_size(&img).unwrap(), 24, "kept, read back");

        // save, then load into another store: same image id, same files.
        let mut archive = Vec::new();
        save_docker(
            &store,
            &[(img.clone(), vec!["example/app:1".into()])],
            &mut archive,
        )
        .unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut other = ImageStore::open(b.path()).unwrap();
        let loaded = load(&mut other, &archive[..], None).unwrap();
        assert_eq!(loaded[0].image.id, img.id, "same config digest");
        assert_eq!(
            fs::read_to_string(
                other
                    .layer_dir(&loaded[0].image.layers[0])
                    .join("bin/hello")
            )
            .unwrap(),
            "#!/bin/sh\necho hi\n"
        );

        // The same through an oci-archive.
        let mut oci_archive = Vec::new();
        save_oci(
            &store,
            &[(img.clone(), vec!["docker.io/example/app:1".into()])],
            &mut oci_archive,
        )
        .unwrap();
        let c = tempfile::tempdir().unwrap();
        let mut third = ImageStore::open(c.path()).unwrap();
        let loaded = load(&mut third, &oci_archive[..], None).unwrap();
        assert_eq!(
            loaded[0].image.id, img.id,
            "same config digest through oci-archive"
        );
        assert_eq!(
            loaded[0].image.tags,
            vec!["docker.io/example/app:1".to_string()]
        );

        // And through an OCI layout directory.
        let layout = c.path().join("layout");
        save_oci_dir(
            &store,
            &[(img.clone(), vec!["docker.io/example/app:1".into()])],
            &layout,
        )
        .unwrap();
        assert!(layout.join("oci-layout").is_file());
        let d = tempfile::tempdir().unwrap();
        let mut fourth = ImageStore::open(d.path()).unwrap();
        assert_eq!(
            load_dir(&mut fourth, &layout, None).unwrap()[0].image.id,
            img.id,
            "same config digest through a layout dir"
        );

        // A second tag, removed: the image stays; the last one: it goes,
        // with its layer and blobs.
        store
            .tag("example/app:1", &"example/app:2".parse().unwrap())
            .unwrap();
        let out = store.remove("example/app:2", false).unwrap();
        assert_eq!(out, vec!["Untagged: docker.io/example/app:2".to_string()]);
        assert!(layer.is_dir());
        let out = store.remove("example/app:1", false).unwrap();
        assert!(
            out.last().unwrap().starts_with("Deleted: sha256:"),
            "{out:?}"
        );
        assert!(!layer.exists(), "the last image's layer is removed");
        assert!(store.blobs.list().unwrap().is_empty(), "and its blobs");
        assert!(matches!(
            store.resolve("example/app:1"),
            Err(StoreError::NotFound(_))
        ));
    }

    /// docker's reference rules for rmi, over tags and digest references
    /// (what pull and push record): REPO@DIGEST takes only that
    /// reference; the last tag of a repository takes its digests along;
    /// by id, references in several repositories need force.
    #[test]
    fn digest_references_follow_docker_s_rmi_rules() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let a = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(a.path()).unwrap();
        let tag: Reference = "r.example/app:1".parse().unwrap();
        let img = import(&mut store, &rootfs_tar()[..], &[], None, None, &[tag]).unwrap();
        let (d1, d2) = (Digest::of(b"one"), Digest::of(b"two"));
        let by = |name: &str, d: &Digest| -> Reference { format!("{name}@{d}").parse().unwrap() };
        store
            .add_digest_reference(&img.id, &by("r.example/app", &d1))
            .unwrap();
        store
            .add_digest_reference(&img.id, &by("r.example/other", &d2))
            .unwrap();
        let img = store.resolve(&img.id.to_string()).unwrap();
        assert_eq!(img.tags, vec!["r.example/app:1".to_string()]);
        assert_eq!(
            img.digests,
            vec![
                format!("r.example/app@{d1}"),
                format!("r.example/other@{d2}")
            ]
        );
        assert_eq!(
            store.resolve(&format!("r.example/other@{d2}")).unwrap().id,
            img.id
        );
        // A digest the image was never pulled by or pushed as names nothing.
        assert!(matches!(
            store.resolve(&format!("r.example/other@{d1}")),
            Err(StoreError::NotFound(_))
        ));
        let id = img.id.hex()[..12].to_string();
        assert!(matches!(
            store.remove(&id, false),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store
                .remove(&format!("r.example/other@{d2}"), false)
                .unwrap(),
            vec![format!("Untagged: r.example/other@{d2}")]
        );
        let out = store.remove("r.example/app:1", false).unwrap();
        assert_eq!(
            out[..2],
            [
                "Untagged: r.example/app:1".to_string(),
                format!("Untagged: r.example/app@{d1}")
            ]
        );
        assert_eq!(
            out[2..],
            [
                format!("Deleted: {}", img.id),
                format!("Deleted: {}", img.layers[0])
            ],
            "the image, then the layer it held alone"
        );
    }

    #[test]
    fn platforms_are_picked_from_an_index() {
        let d = |arch: &str, variant: Option<&str>| Descriptor {
            media_type: oci::OCI_MANIFEST.into(),
            digest: Digest::of(arch.as_bytes()).to_string(),
            size: 1,
            platform: Some(oci::Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(String::from),
            }),
            annotations: None,
        };
        let list = [d("amd64", None), d("arm", Some("v6")), d("arm", Some("v7"))];
        let want = |arch: &str, variant: Option<&str>| oci::Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.map(String::from),
        };
        assert_eq!(
            pick_platform(&list, &want("arm", Some("v7"))).unwrap(),
            list[2]
        );
        assert_eq!(pick_platform(&list, &want("arm", None)).unwrap(), list[1]);
        let e = pick_platform(&list, &want("arm64", None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the archive has no image for platform linux/arm64 (it has linux/amd64, linux/arm/v6, linux/arm/v7)"
        );
    }

    /// An oci-archive whose index.json names a nested index of two
    /// platforms (the same image under both, for the test).
    fn multi_platform_archive(store: &ImageStore, img: &Image) -> Vec<u8> {
        let mut saved = Vec::new();
        save_oci(store, &[(img.clone(), vec![])], &mut saved).unwrap();
        let manifest = store.blobs.read(&img.manifest).unwrap();
        let entry = |arch: &str| {
            json!({"mediaType": oci::OCI_MANIFEST, "digest": img.manifest.to_string(), "size": manifest.len(),
                   "platform": {"os": "linux", "architecture": arch}})
        };
        let nested = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": oci::OCI_INDEX,
            "manifests": [entry("ppc64le"), entry("riscv64")]}))
        .unwrap();
        let nested_digest = Digest::of(&nested);
        let mut b = tar::Builder::new(Vec::new());
        let mut a = tar::Archive::new(&saved[..]);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().into_owned();
            if name != Path::new("index.json") {
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                append(&mut b, name.to_str().unwrap(), &data).unwrap();
            }
        }
        append(
            &mut b,
            &format!("blobs/sha256/{}", nested_digest.hex()),
            &nested,
        )
        .unwrap();
        let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": oci::OCI_INDEX,
            "digest": nested_digest.to_string(), "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "example/multi:1"}}]});
        append(&mut b, "index.json", &serde_json::to_vec(&index).unwrap()).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn load_platform_picks_from_an_index_or_says_what_it_has() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let a = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(a.path()).unwrap();
        let img = import(&mut store, &rootfs_tar()[..], &[], None, None, &[]).unwrap();
        let archive = multi_platform_archive(&store, &img);
        let b = tempfile::tempdir().unwrap();
        let mut other = ImageStore::open(b.path()).unwrap();
        let riscv = oci::Platform {
            architecture: "riscv64".into(),
            os: "linux".into(),
            variant: None,
        };
        let loaded = load(&mut other, &archive[..], Some(&riscv)).unwrap();
        assert_eq!(loaded[0].image.id, img.id);
        assert_eq!(
            loaded[0].image.tags,
            vec!["docker.io/example/multi:1".to_string()]
        );
        let s390x = oci::Platform {
            architecture: "s390x".into(),
            ..riscv
        };
        let e = load(&mut other, &archive[..], Some(&s390x)).unwrap_err();
        assert!(
            e.to_string().contains(
                "no image for platform linux/s390x (it has linux/ppc64le, linux/riscv64)"
            ),
            "{e}"
        );
        if oci::host_platform().architecture != "ppc64le" {
            // By default the host's platform, which this archive lacks.
            assert!(load(&mut other, &archive[..], None).is_err());
        }
    }

    #[test]
    fn a_hostile_archive_stores_nothing() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "this test needs root");
            eprintln!("skipped: not root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut store = ImageStore::open(dir.path()).unwrap();
        // A config whose diff_id does not match the layer.
        let layer = rootfs_tar();
        let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"other").to_string()]}});
        let mut b = tar::Builder::new(Vec::new());
        append(&mut b, "c.json", &serde_json::to_vec(&config).unwrap()).unwrap();
        append(&mut b, "l/layer.tar", &layer).unwrap();
        append(
            &mut b,
            "manifest.json",
            &serde_json::to_vec(
                &json!([{"Config": "c.json", "RepoTags": ["bad:1"], "Layers": ["l/layer.tar"]}]),
            )
            .unwrap(),
        )
        .unwrap();
        let archive = b.into_inner().unwrap();
        let e = load(&mut store, &archive[..], None).unwrap_err();
        assert!(e.to_string().contains("diff_id mismatch"), "{e}");
        assert!(store.list().unwrap().is_empty());
        // Layers are unpacked and checked before any blob is stored: the
        // failed load left nothing.
        assert!(store.blobs.list().unwrap().is_empty());
        let report = store.check().unwrap();
        assert!(report.missing.is_empty(), "{report:?}");
        assert_eq!(fs::read_dir(dir.path().join("layers")).unwrap().count(), 0);
    }
}
