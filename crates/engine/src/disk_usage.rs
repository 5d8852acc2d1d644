//! `system df`: what the store's images, containers, volumes and build
//! cache take on disk, and how much of it nothing uses.

use std::path::Path;

use crate::{Engine, Result, Status};

/// One kind of object's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// How many there are.
    pub count: usize,
    /// How many are in use (images and volumes a container names, running
    /// or paused containers).
    pub active: usize,
    /// Bytes on disk.
    pub size: u64,
    /// Bytes that removing what is not in use would free.
    pub reclaimable: u64,
}

/// The store's disk use, as `docker system df` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskUsage {
    /// Images: their layers, the build cache's own layers aside.
    pub images: Usage,
    /// Containers: their writable layers.
    pub containers: Usage,
    pub volumes: Usage,
    /// Build cache entries and the layers only they keep; nothing is in
    /// use between builds.
    pub build_cache: Usage,
}

impl Engine {
    /// What the store takes on disk, by kind of object.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let images = self.images.list()?;
        let (cache_entries, cache_size) = self.images.cache_usage()?;
        // docker's figures: each layer once, sized by its files' bytes;
        // what in-use images hold is not reclaimable.
        let mut all = std::collections::BTreeSet::new();
        let mut held = std::collections::BTreeSet::new();
        let mut active_images = 0;
        for img in &images {
            all.extend(img.layers.iter().cloned());
            if self.image_in_use(img)? {
                active_images += 1;
                held.extend(img.layers.iter().cloned());
            }
        }
        let sized = |set: &std::collections::BTreeSet<berth_image::Digest>| -> Result<u64> {
            let mut n = 0;
            for c in set {
                n += self.images.layer_content_size(c)?;
            }
            Ok(n)
        };
        let (layers, used) = (sized(&all)?, sized(&held)?);
        let containers = self.list()?;
        let (mut running, mut total_rw, mut running_rw) = (0, 0, 0);
        for r in &containers {
            let rw = dir_size(&self.container_dir(&r.id).join("fs/upper"));
            total_rw += rw;
            if matches!(r.status, Status::Running | Status::Paused) {
                running += 1;
                running_rw += rw;
            }
        }
        let volumes = self.volumes.list()?;
        let (mut in_use, mut total_vol, mut used_vol) = (0, 0, 0);
        for v in &volumes {
            let size = dir_size(&v.mountpoint);
            total_vol += size;
            if self.volume_users(&v.name).is_ok_and(|u| !u.is_empty()) {
                in_use += 1;
                used_vol += size;
            }
        }
        Ok(DiskUsage {
            images: Usage {
                count: images.len(),
                active: active_images,
                size: layers,
                reclaimable: layers.saturating_sub(used.min(layers)),
            },
            containers: Usage {
                count: containers.len(),
                active: running,
                size: total_rw,
                reclaimable: total_rw.saturating_sub(running_rw),
            },
            volumes: Usage {
                count: volumes.len(),
                active: in_use,
                size: total_vol,
                reclaimable: total_vol.saturating_sub(used_vol),
            },
            build_cache: Usage {
                count: cache_entries,
                active: 0,
                size: cache_size,
                reclaimable: cache_size,
            },
        })
    }
}

/// `system df -v`: every object with its own figures.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiskUsageVerbose {
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
    pub volumes: Vec<VolumeUsage>,
    pub build_cache: Vec<berth_image::cache::CacheEntryUsage>,
    /// The build cache's bytes, as `system df` counts them.
    pub build_cache_size: u64,
}

/// One image: its size, the part of it other images share, its users.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImageUsage {
    pub image: berth_image::store::Image,
    pub size: u64,
    /// The bytes of its layers that another image has too.
    pub shared: u64,
    /// How many containers are made from it.
    pub containers: usize,
}

/// One container: its own layer's bytes and how many volumes it mounts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ContainerUsage {
    pub record: crate::db::Record,
    pub size_rw: u64,
}

/// One volume: how many containers mount it, and its bytes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VolumeUsage {
    pub volume: crate::volumes::Volume,
    pub links: usize,
    pub size: u64,
}

impl Engine {
    /// Every image, container, volume and build cache entry with its disk
    /// use, as `docker system df -v` lists them.
    pub fn disk_usage_verbose(&self) -> Result<DiskUsageVerbose> {
        let images = self.images.list()?;
        let mut holders: std::collections::BTreeMap<&berth_image::Digest, usize> =
            std::collections::BTreeMap::new();
        for img in &images {
            for l in &img.layers {
                *holders.entry(l).or_default() += 1;
            }
        }
        let mut image_rows = Vec::with_capacity(images.len());
        for img in &images {
            let mut shared = 0;
            for l in img.layers.iter().filter(|l| holders[l] > 1) {
                shared += self.images.layer_content_size(l)?;
            }
            image_rows.push(ImageUsage {
                size: self.images.content_size(img)?,
                shared,
                containers: self.db.users_of_image(&img.id.to_string())?.len(),
                image: img.clone(),
            });
        }
        let records = self.list()?;
        let containers = records
            .iter()
            .map(|r| ContainerUsage {
                size_rw: self.container_sizes(r).0,
                record: r.clone(),
            })
            .collect();
        let mut volumes = Vec::new();
        for v in self.volumes.list()? {
            let links = records
                .iter()
                .filter(|r| r.config.uses_volume(&v.name))
                .count();
            volumes.push(VolumeUsage {
                size: dir_size(&v.mountpoint),
                links,
                volume: v,
            });
        }
        Ok(DiskUsageVerbose {
            images: image_rows,
            containers,
            volumes,
            build_cache: self.images.cache_entries()?,
            build_cache_size: self.images.cache_usage()?.1,
        })
    }
}

impl Engine {
    /// A container's sizes as docker's `inspect --size` and `ps -s` give
    /// them: its own layer's files (SizeRw: Docker's init layer of
    /// mountpoint files aside, as it keeps them apart) and that plus its
    /// image's (SizeRootFs).
    pub fn container_sizes(&self, r: &crate::db::Record) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let upper = self.container_dir(&r.id).join("fs/upper");
        let init: u64 = crate::initlayer::INIT_PATHS
            .iter()
            .filter_map(|p| upper.join(p).symlink_metadata().ok())
            .filter(|m| !m.is_dir())
            .map(|m| m.size())
            .sum();
        let rw = berth_image::store::content_size_of(&upper).saturating_sub(init);
        let image = self
            .images
            .resolve(&r.image_id)
            .and_then(|img| self.images.content_size(&img))
            .unwrap_or(0);
        (rw, rw + image)
    }
}

/// The bytes of the files under `p` (what cannot be read counts nothing).
pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    total += m.len();
                }
            }
        }
    }
    total
}
