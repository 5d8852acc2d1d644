//! `pull`: a manifest (picked from an index by platform), its config, and
//! its layers streamed into the store in one pass each, in parallel.
//!
//! Every byte is checked before anything is named by it: the manifest
//! against the digest asked for and the `Docker-Content-Digest` header,
//! the config and each layer against the manifest's digests (and each
//! layer's content against the config's diff_ids). A mismatch, a
//! truncated stream or an error ends the pull and takes back what it had
//! stored, so the store holds either the whole image or nothing new.

use std::io::{self, Read};

use berth_image::digest::Digest;
use berth_image::oci::{self, Manifest, Platform};
use berth_image::store::{Image, ImageStore};
use berth_image::Reference;
use serde_json::Value;

use crate::client::{Body, Client};
use crate::error::{RegistryError, Result};
use crate::progress::{short, Progress};

/// What `Accept` asks for: the two image manifest formats and their
/// indexes. Schema 1 is not asked for (and refused when sent anyway).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest accepted (Docker's and containerd's limit).
const MAX_MANIFEST: u64 = 4 << 20;

/// How a pull goes.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Platform to pick from an index (default: this host's).
    pub platform: Option<Platform>,
    /// Layers downloaded at once (Docker's default is 3).
    pub max_concurrent_downloads: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            max_concurrent_downloads: 3,
        }
    }
}

/// A manifest (or index) as fetched and verified.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
}

impl Fetched {
    /// Whether it is an index (an OCI index or a Docker manifest list).
    pub fn is_index(&self) -> bool {
        self.media_type == oci::OCI_INDEX || self.media_type == oci::DOCKER_LIST
    }
}

/// What `reference` names on its registry: its digest, else its tag, else
/// `latest`.
pub fn manifest_reference(reference: &Reference) -> String {
    match (&reference.digest, &reference.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: Image,
    /// The image manifest's digest.
    pub manifest: Digest,
    /// What the reference named on the registry (an index's digest for a
    /// multi-platform image, else the manifest's): the `Digest:` docker
    /// prints, and the image's digest reference in that repository.
    pub digest: Digest,
    /// The store had the image already.
    pub up_to_date: bool,
}

fn parse_digest(s: &str, what: &str) -> Result<Digest> {
    s.parse()
        .map_err(|e| RegistryError::Protocol(format!("{what}: {e}")))
}

/// Fetches manifest `reference` (a tag or a digest) of `repository`,
/// checked against `expected` and the registry's digest header.
pub fn fetch_manifest(
    client: &Client,
    repository: &str,
    reference: &str,
    expected: Option<&Digest>,
) -> Result<Fetched> {
    let what = format!("{repository}:{reference}");
    let resp = client.send(
        "GET",
        &format!("/v2/{repository}/manifests/{reference}"),
        &[("Accept", MANIFEST_ACCEPT.to_string())],
        Body::Empty,
    )?;
    match resp.status() {
        200 => {}
        404 => {
            let repo = docker_name(client, repository);
            let sep = if reference.contains(':') { '@' } else { ':' };
            return Err(RegistryError::ManifestUnknown {
                name: format!("{repo}{sep}{reference}"),
            });
        }
        _ => return Err(client.status_error(resp, &format!("manifest {what}"))),
    }
    let header_digest = resp.header("docker-content-digest").map(String::from);
    let content_type = resp
        .header("content-type")
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(crate::error::io_err(format!("read manifest {what}")))?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(RegistryError::Protocol(format!(
            "manifest {what} is larger than {MAX_MANIFEST} bytes"
        )));
    }
    let digest = Digest::of(&bytes);
    if let Some(h) = header_digest {
        let h = h.trim();
        if h != digest.to_string() {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {what} (Docker-Content-Digest header)"),
                expected: h.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    if let Some(e) = expected {
        if *e != digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {what}"),
                expected: e.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::Protocol(format!("manifest {what} is not JSON: {e}")))?;
    let media_type = body["mediaType"]
        .as_str()
        .map(String::from)
        .or(content_type.filter(|c| !c.is_empty() && c != "application/json"))
        .unwrap_or_else(|| {
            if body.get("manifests").is_some() {
                oci::OCI_INDEX.to_string()
            } else {
                oci::OCI_MANIFEST.to_string()
            }
        });
    match media_type.as_str() {
        oci::OCI_INDEX | oci::DOCKER_LIST | oci::OCI_MANIFEST | oci::DOCKER_MANIFEST => {}
        other => {
            return Err(RegistryError::UnsupportedMediaType {
                media_type: other.to_string(),
                what: format!("manifest {what} (berth reads OCI and Docker schema 2 images)"),
            })
        }
    }
    Ok(Fetched {
        bytes,
        digest,
        media_type,
    })
}

fn platform_name(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// The manifest of an index for `want`: os and architecture equal, and the
/// variant when `want` names one (else the first listed).
pub fn pick_platform(index: &[u8], want: &Platform, what: &str) -> Result<(Digest, String)> {
    let v: Value = serde_json::from_slice(index)
        .map_err(|e| RegistryError::Protocol(format!("index {what}: {e}")))?;
    let entries = v["manifests"].as_array().cloned().unwrap_or_default();
    let mut have = Vec::new();
    for e in &entries {
        let Ok(p) = serde_json::from_value::<Platform>(e["platform"].clone()) else {
            continue;
        };
        if p.os == want.os
            && p.architecture == want.architecture
            && want
                .variant
                .as_ref()
                .is_none_or(|w| p.variant.as_ref() == Some(w))
        {
            let d = parse_digest(e["digest"].as_str().unwrap_or(""), what)?;
            let mt = e["mediaType"]
                .as_str()
                .unwrap_or(oci::OCI_MANIFEST)
                .to_string();
            return Ok((d, mt));
        }
        have.push(platform_name(&p));
    }
    Err(RegistryError::NoPlatform(format!(
        "{what} has no image for platform {} (it has {})",
        platform_name(want),
        if have.is_empty() {
            "none".to_string()
        } else {
            have.join(", ")
        }
    )))
}

/// The layer formats berth unpacks.
fn check_layer_type(media_type: &str, what: &str) -> Result<()> {
    match media_type {
        oci::OCI_LAYER
        | oci::OCI_LAYER_GZIP
        | oci::OCI_LAYER_ZSTD
        | oci::DOCKER_LAYER
        | oci::DOCKER_LAYER_GZIP => Ok(()),
        other => Err(RegistryError::UnsupportedMediaType {
            media_type: other.to_string(),
            what: what.to_string(),
        }),
    }
}

/// A repository as docker's daemon names it in errors: Docker Hub's
/// without its registry and `library/`, the others' with their registry.
fn docker_name(client: &Client, repository: &str) -> String {
    match client.endpoint.name.as_str() {
        "docker.io" => repository
            .strip_prefix("library/")
            .unwrap_or(repository)
            .to_string(),
        registry => format!("{registry}/{repository}"),
    }
}

/// An image's config blob (`digest`, `size` bytes as its manifest says),
/// checked against its digest and read as JSON (`manifest inspect -v`
/// reads its platform).
pub fn fetch_config(
    client: &Client,
    repository: &str,
    digest: &str,
    size: u64,
) -> Result<serde_json::Value> {
    let expected = parse_digest(digest, "config digest")?;
    if size > MAX_MANIFEST {
        return Err(RegistryError::Protocol(format!(
            "config {digest} is larger than {MAX_MANIFEST} bytes"
        )));
    }
    let mut bytes = Vec::new();
    client
        .blob_stream(repository, digest, size, &crate::progress::Silent)?
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(crate::error::io_err(format!("read config {digest}")))?;
    let actual = Digest::of(&bytes);
    if actual != expected {
        return Err(RegistryError::DigestMismatch {
            what: format!("config of {repository}"),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::Protocol(format!("config {digest}: {e}")))
}

/// The tags of `repository`, in the registry's order (`GET
/// /v2/<name>/tags/list`, following its `Link: <...>; rel="next"` pages).
pub fn list_tags(client: &Client, repository: &str) -> Result<Vec<String>> {
    let mut tags = Vec::new();
    let mut next = Some(format!("/v2/{repository}/tags/list?n=1000"));
    // A registry that links a page to itself would loop: pages are bounded.
    for _ in 0..10_000 {
        let Some(url) = next.take() else {
            return Ok(tags);
        };
        let resp = client.send("GET", &url, &[], Body::Empty)?;
        match resp.status() {
            200 => {}
            404 => {
                return Err(RegistryError::RepositoryUnknown {
                    name: docker_name(client, repository),
                })
            }
            _ => return Err(client.status_error(resp, &format!("the tags of {repository}"))),
        }
        next = resp.header("link").and_then(next_link);
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut body)
            .map_err(|e| RegistryError::Protocol(format!("the tags of {repository}: {e}")))?;
        let page: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::Protocol(format!("the tags of {repository}: {e}")))?;
        // A repository without tags lists `"tags": null`.
        for t in page["tags"].as_array().into_iter().flatten() {
            if let Some(t) = t.as_str() {
                tags.push(t.to_string());
            }
        }
    }
    Err(RegistryError::Protocol(format!(
        "the tags of {repository}: too many pages"
    )))
}

/// The URL of a `Link` header's `rel="next"` (RFC 8288, as the
/// distribution API pages with it).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// Pulls `reference` into `store`.
pub fn pull(
    store: &mut ImageStore,
    client: &Client,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled> {
    let repo = &reference.repository;
    let name = reference.familiar();
    let target = manifest_reference(reference);
    let mut fetched = fetch_manifest(client, repo, &target, reference.digest.as_ref())?;
    let named = fetched.digest.clone();
    let digest_ref = Reference {
        tag: None,
        digest: Some(named.clone()),
        ..reference.clone()
    };
    // Only once the registry answered, as docker says it: a missing
    // repository or an unreachable registry gives the error alone.
    let what = match (&reference.digest, &reference.tag) {
        (Some(_), _) => name.clone(),
        _ => target.clone(),
    };
    progress.message(&format!("{what}: Pulling from {repo}"));
    if fetched.is_index() {
        let want = opts.platform.clone().unwrap_or_else(oci::host_platform);
        let (d, _) = pick_platform(&fetched.bytes, &want, &name)?;
        fetched = fetch_manifest(client, repo, &d.to_string(), Some(&d))?;
        if fetched.is_index() {
            return Err(RegistryError::Protocol(format!(
                "{name}: an index inside an index is not supported"
            )));
        }
    }
    let manifest: Manifest = serde_json::from_slice(&fetched.bytes)
        .map_err(|e| RegistryError::Protocol(format!("manifest of {name}: {e}")))?;
    match manifest.config.media_type.as_str() {
        oci::OCI_CONFIG | oci::DOCKER_CONFIG => {}
        other => {
            return Err(RegistryError::UnsupportedMediaType {
                media_type: other.to_string(),
                what: format!("the config of {name}: it is not a container image"),
            })
        }
    }
    for l in &manifest.layers {
        check_layer_type(&l.media_type, &format!("a layer of {name}"))?;
    }
    let tags: Vec<Reference> = match &reference.tag {
        Some(_) if reference.digest.is_none() => vec![reference.clone()],
        _ => Vec::new(),
    };
    // The store has this image: only the tag moves. Docker calls it up to
    // date only when the tag named it already.
    if let Some(img) = store.find_by_manifest(&fetched.digest)? {
        let mut up_to_date = true;
        for t in &tags {
            up_to_date &= store
                .resolve(&t.to_string())
                .is_ok_and(|had| had.id == img.id);
            store.tag(&img.id.to_string(), t)?;
        }
        store.add_digest_reference(&img.id, &digest_ref)?;
        let image = store.resolve(&img.id.to_string())?;
        return Ok(Pulled {
            image,
            manifest: fetched.digest,
            digest: named,
            up_to_date,
        });
    }

    // Manifest and config first (small, verified); taken back if the
    // layers fail.
    let config_digest = parse_digest(&manifest.config.digest, "config digest")?;
    let mut added = Vec::new();
    let result = (|| {
        if !store.blobs.contains(&config_digest) {
            let resp = client.blob_stream(
                repo,
                &manifest.config.digest,
                manifest.config.size,
                &crate::progress::Silent,
            )?;
            added.push(config_digest.clone());
            store
                .blobs
                .put(resp, Some(&config_digest), Some(manifest.config.size))
                .map_err(|e| RegistryError::Protocol(format!("config of {name}: {e}")))?;
        }
        if !store.blobs.contains(&fetched.digest) {
            added.push(fetched.digest.clone());
            store
                .blobs
                .put_bytes(&fetched.bytes, Some(&fetched.digest))
                .map_err(berth_image::store::StoreError::from)?;
        }
        let missing = store.missing_layers(&fetched.digest)?;
        for (i, l) in manifest.layers.iter().enumerate() {
            if !missing.contains(&i) {
                progress.finish(short(&l.digest), "Already exists");
            }
        }
        let layers = &manifest.layers;
        let fetch = |i: usize| -> io::Result<Box<dyn Read + Send + '_>> {
            let l = &layers[i];
            progress.start(short(&l.digest), "Downloading", l.size);
            let s = client
                .blob_stream(repo, &l.digest, l.size, progress)
                .map_err(|e| io::Error::other(e.to_string()))?;
            Ok(Box::new(Finishing {
                inner: s,
                id: short(&l.digest).to_string(),
                progress,
                done: false,
            }))
        };
        let image = store.add_fetched_image(
            &fetched.digest,
            &tags,
            &fetch,
            opts.max_concurrent_downloads.max(1),
        )?;
        store.add_digest_reference(&image.id, &digest_ref)?;
        Ok(store.resolve(&image.id.to_string())?)
    })();
    match result {
        Ok(image) => Ok(Pulled {
            image,
            manifest: fetched.digest,
            digest: named,
            up_to_date: false,
        }),
        Err(e) => {
            store.discard_unrecorded(&[], &added);
            Err(e)
        }
    }
}

/// Reports a layer's download as complete when its stream ends.
struct Finishing<'a, R> {
    inner: R,
    id: String,
    progress: &'a dyn Progress,
    done: bool,
}

impl<R: Read> Read for Finishing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            self.progress.finish(&self.id, "Pull complete");
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_link_is_the_rel_next_url() {
        assert_eq!(
            super::next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(super::next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(
            super::next_link(r#"</p>; rel="prev", </n>; rel=next"#).as_deref(),
            Some("/n")
        );
    }

    use super::*;

    #[test]
    fn platforms_are_picked_by_os_arch_and_variant() {
        let index = serde_json::to_vec(&serde_json::json!({"manifests": [
            {"mediaType": oci::OCI_MANIFEST, "digest": Digest::of(b"a").to_string(), "size": 1,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": oci::OCI_MANIFEST, "digest": Digest::of(b"b").to_string(), "size": 1,
             "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        ]}))
        .unwrap();
        let p = |a: &str, v: Option<&str>| Platform {
            os: "linux".into(),
            architecture: a.into(),
            variant: v.map(String::from),
        };
        assert_eq!(
            pick_platform(&index, &p("arm", Some("v7")), "x").unwrap().0,
            Digest::of(b"b")
        );
        assert_eq!(
            pick_platform(&index, &p("amd64", None), "x").unwrap().0,
            Digest::of(b"a")
        );
        let e = pick_platform(&index, &p("s390x", None), "busybox:latest").unwrap_err();
        assert_eq!(
            e.to_string(),
            "busybox:latest has no image for platform linux/s390x (it has linux/amd64, linux/arm/v7)"
        );
    }

    #[test]
    fn foreign_layers_are_refused_by_name() {
        let e = check_layer_type(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "a layer of x",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("unsupported media type"), "{e}");
    }
}
