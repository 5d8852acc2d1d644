//! `inspect`: Docker's JSON for containers, images, networks and volumes
//! (made by the engine), as JSON or through `--format`.

use std::path::Path;

use crate::format::{self, Found};
use anyhow::{Context, Result};
use berth_engine::inspect::types::to_value;
use berth_engine::Engine;

/// `container inspect`: containers only, as docker's.
pub fn inspect_containers(
    root: &Path,
    runroot: &Path,
    names: &[String],
    format: Option<&str>,
    size: bool,
) -> Result<i32> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    inspect(&engine, names, format, Some("container"), size)
}

pub(crate) fn inspect(
    engine: &Engine,
    names: &[String],
    format: Option<&str>,
    kind: Option<&str>,
    size: bool,
) -> Result<i32> {
    // Docker's client tries each kind in turn (container, image,
    // network, volume, then swarm kinds this engine has none of).
    const KINDS: [&str; 10] = [
        "config",
        "container",
        "image",
        "network",
        "node",
        "plugin",
        "secret",
        "service",
        "task",
        "volume",
    ];
    if let Some(k) = kind {
        if !KINDS.contains(&k) {
            // docker's client words this one without its "Error: ".
            eprintln!("\"{k}\" is not a valid value for --type");
            return Ok(1);
        }
    }
    let wants = |k: &str| kind.is_none_or(|want| want == k);
    let found = |json, type_name| Found {
        json,
        type_name,
        raw_fallback: true,
    };
    format::inspect_each(names, format, |n| {
        if wants("container") {
            if let Ok(r) = engine.find(n) {
                let mut doc = engine.container_json(&r);
                if size {
                    // docker's SizeRw (the container's own layer) and
                    // SizeRootFs (with its image's).
                    let (rw, root) = engine.container_sizes(&r);
                    doc.size_rw = Some(rw);
                    doc.size_root_fs = Some(root);
                }
                return Ok(found(to_value(&doc), "*types.ContainerJSON"));
            }
        }
        if wants("image") {
            if let Ok(img) = engine.images().resolve(n) {
                let json = berth_engine::inspect::image_json(engine.images(), &img)
                    .map_err(|e| format!("Error: {e}"))?;
                return Ok(found(to_value(&json), "types.ImageInspect"));
            }
        }
        if wants("network") {
            if let Ok(net) = engine.network_inspect(n) {
                return Ok(found(to_value(&net), "types.NetworkResource"));
            }
        }
        if wants("volume") {
            if let Ok(vol) = engine.volume_inspect(n) {
                return Ok(found(to_value(&vol), "types.Volume"));
            }
        }
        Err(match kind {
            Some(k @ ("container" | "image" | "network" | "volume")) => {
                format!("Error: No such {k}: {n}")
            }
            _ => format!("Error: No such object: {n}"),
        })
    })
}
