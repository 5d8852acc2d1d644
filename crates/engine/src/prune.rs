//! The prune verbs (`container/image/volume/network prune`, and `system
//! prune` made of them): what they remove, with Docker 20.10's daemon's
//! filters (`label`, `label!`, `until`; `dangling` for images), and a
//! report of what went and the space it took.

use crate::db::Status;
use crate::disk_usage::dir_size;
use crate::filters::{self, Filters};
use crate::{Engine, Error, Result};

/// What a prune removed (container ids, volume or network names) and the
/// bytes it freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: Vec<String>,
    pub reclaimed: u64,
}

/// What `image prune` did, one entry per line Docker prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageDeletion {
    Untagged(String),
    Deleted(String),
}

/// What `image prune` removed, and the bytes it freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImagePruneReport {
    pub deleted: Vec<ImageDeletion>,
    pub reclaimed: u64,
}

/// The filters each prune takes (Docker 20.10's daemon: volumes know no
/// `until`).
pub const CONTAINER_FILTERS: &[&str] = &["label", "label!", "until"];
pub const IMAGE_FILTERS: &[&str] = &["dangling", "label", "label!", "until"];
pub const VOLUME_FILTERS: &[&str] = &["label", "label!"];
pub const NETWORK_FILTERS: &[&str] = &["label", "label!", "until"];

/// Whether an object created at `created` (RFC 3339) is old enough for
/// `until`; one whose time cannot be read is kept, as younger.
fn old_enough(created: Option<&str>, until: Option<i128>) -> bool {
    match until {
        None => true,
        Some(u) => created
            .and_then(filters::rfc3339_nanos)
            .is_some_and(|c| c <= u),
    }
}

impl Engine {
    /// Docker journals every prune, empty or not, with what it freed.
    fn prune_event(&self, kind: &str, reclaimed: u64) {
        self.db
            .event(kind, "prune", "", &[("reclaimed", &reclaimed.to_string())]);
    }

    /// `container prune`: stopped (exited or created) containers the
    /// filters select; the space is what their writable layers held.
    pub fn prune_containers(&self, f: &Filters) -> Result<PruneReport> {
        f.validate(CONTAINER_FILTERS)?;
        let until = f.until(filters::now_nanos())?;
        let mut report = PruneReport::default();
        for r in self.list()? {
            if !matches!(r.status, Status::Exited | Status::Created)
                || !old_enough(Some(&r.created), until)
                || !f.match_labels(&r.config.labels)
            {
                continue;
            }
            let size = dir_size(&self.container_dir(&r.id).join("fs/upper"));
            match self.remove(&r, false, false) {
                Ok(()) => {
                    report.reclaimed += size;
                    report.removed.push(r.id);
                }
                // Started meanwhile: Docker skips what it cannot remove.
                Err(Error::RemoveActive { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.prune_event("container", report.reclaimed);
        Ok(report)
    }

    /// `image prune`: untagged images (every image with `all`, or with
    /// `dangling=false`) that no container uses and the filters select.
    pub fn prune_images(&mut self, f: &Filters, all: bool) -> Result<ImagePruneReport> {
        f.validate(IMAGE_FILTERS)?;
        let until = f.until(filters::now_nanos())?;
        // The CLI adds `dangling=true` (or false with -a); a user's
        // `dangling=false` (or 0) wins, as in Docker.
        let dangling_only = !all && !f.get("dangling").iter().any(|v| v == "false" || v == "0");
        let mut report = ImagePruneReport::default();
        for img in self.images.list()? {
            if (dangling_only && img.is_referenced())
                || !old_enough(img.created.as_deref(), until)
                || self.image_in_use(&img)?
            {
                continue;
            }
            let labels = self
                .image_config(&img)
                .ok()
                .and_then(|c| serde_json::from_value(c["Labels"].clone()).ok())
                .unwrap_or_default();
            if !f.match_labels(&labels) {
                continue;
            }
            // What is reclaimed is the layers that go with the image (its
            // base's stay for the images sharing them); their sizes are
            // read before the rows go.
            let mut sizes = std::collections::HashMap::new();
            for chain in &img.layers {
                if let Some(size) = self.images.layer_size(chain)? {
                    sizes.insert(chain.to_string(), size);
                }
            }
            // Through `remove_image`, for its events (untag, delete).
            let lines = self.remove_image(&img.id.to_string(), true)?;
            for l in lines {
                match l.split_once(": ") {
                    Some(("Untagged", t)) => {
                        report.deleted.push(ImageDeletion::Untagged(familiar(t)))
                    }
                    Some((_, d)) => {
                        report.reclaimed += sizes.get(d).copied().unwrap_or(0);
                        report.deleted.push(ImageDeletion::Deleted(d.to_string()));
                    }
                    None => {}
                }
            }
        }
        self.prune_event("image", report.reclaimed);
        Ok(report)
    }

    /// `volume prune`: unused anonymous volumes (every unused volume with
    /// `all`) the filters select.
    pub fn prune_volumes(&self, f: &Filters, all: bool) -> Result<PruneReport> {
        f.validate(VOLUME_FILTERS)?;
        let mut report = PruneReport::default();
        for v in self.volumes.list()? {
            if !(all || v.anonymous)
                || !f.match_labels(&v.labels)
                || !self.volume_users(&v.name)?.is_empty()
            {
                continue;
            }
            let size = dir_size(&v.mountpoint);
            self.remove_volume(&v.name)?;
            report.reclaimed += size;
            report.removed.push(v.name);
        }
        self.prune_event("volume", report.reclaimed);
        Ok(report)
    }

    /// The build cache (`system prune`): berth's has one kind of entry, the
    /// steps' layers, all of which go; the bytes are the layers only the
    /// cache kept.
    pub fn prune_build_cache(&mut self) -> Result<PruneReport> {
        let keys = self.images.cache_keys()?;
        let (_, reclaimed) = self.images.cache_usage()?;
        self.images.cache_prune()?;
        Ok(PruneReport {
            removed: keys,
            reclaimed,
        })
    }

    /// `network prune`: user networks no container uses that the filters
    /// select (the default one stays, as Docker's predefined ones do).
    pub fn prune_networks(&self, f: &Filters) -> Result<PruneReport> {
        f.validate(NETWORK_FILTERS)?;
        let until = f.until(filters::now_nanos())?;
        let mut report = PruneReport::default();
        for n in self.networks.list()? {
            if n.is_default() || !old_enough(Some(&n.created), until) || !f.match_labels(&n.labels)
            {
                continue;
            }
            // In use: kept, silently, as Docker does.
            if self.remove_network(&n.id).is_ok() {
                self.db.event(
                    "network",
                    "destroy",
                    &n.id,
                    &[("name", &n.name), ("type", "bridge")],
                );
                report.removed.push(n.name);
            }
        }
        self.prune_event("network", 0);
        Ok(report)
    }
}

/// `docker.io/library/x:1` as Docker prints it (`x:1`).
fn familiar(full: &str) -> String {
    full.parse::<berth_image::Reference>()
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}
