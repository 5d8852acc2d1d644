//! `inspect`: Docker's JSON for containers, images, networks and volumes
//! (made by the engine), as JSON or through `--format`.

use std::path::Path;

use anyhow::{Context, Result};
use berth_engine::Engine;
use serde_json::Value;

use crate::format;

/// `container inspect`: containers only, as docker's.
pub fn inspect_containers(
    root: &Path,
    runroot: &Path,
    names: &[String],
    format: Option<&str>,
) -> Result<i32> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    inspect(&engine, names, format, Some("container"))
}

pub(crate) fn inspect(
    engine: &Engine,
    names: &[String],
    format: Option<&str>,
    kind: Option<&str>,
) -> Result<i32> {
    // With -f, objects go through the template as docker's inspector
    // does (errors gathered, output at the end); without, as JSON.
    let mut inspector = format.map(format::Inspector::new).transpose()?;
    let mut out = Vec::new();
    let mut code = 0;
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
    for n in names {
        let mut v = None;
        if wants("container") {
            if let Ok(r) = engine.find(n) {
                v = Some((engine.container_json(&r), "*types.ContainerJSON"));
            }
        }
        if v.is_none() && wants("image") {
            if let Ok(img) = engine.images().resolve(n) {
                v = Some((
                    berth_engine::inspect::image_json(engine.images(), &img)?,
                    "types.ImageInspect",
                ));
            }
        }
        if v.is_none() && wants("network") {
            if let Ok(net) = engine.network_inspect(n) {
                v = Some((net, "types.NetworkResource"));
            }
        }
        if v.is_none() && wants("volume") {
            if let Ok(vol) = engine.volume_inspect(n) {
                v = Some((vol, "types.Volume"));
            }
        }
        let missing = match kind {
            Some(k @ ("container" | "image" | "network" | "volume")) => {
                format!("Error: No such {k}: {n}")
            }
            _ => format!("Error: No such object: {n}"),
        };
        match (v, inspector.as_mut()) {
            (Some((v, type_name)), Some(i)) => i.add(&v, type_name, true),
            (Some((v, _)), None) => out.push(v),
            (None, Some(i)) => i.error(missing),
            (None, None) => {
                eprintln!("{missing}");
                code = 1;
            }
        }
    }
    match inspector {
        Some(i) => i.finish(&mut std::io::stdout().lock()),
        None => {
            println!("{}", crate::format::inspect_json(&Value::Array(out))?);
            Ok(code)
        }
    }
}
