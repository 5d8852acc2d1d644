//! `inspect`: Docker's JSON for containers and images (made by the
//! engine), as JSON or through `--format`.

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
    for n in names {
        let container = if kind != Some("image") {
            engine.find(n).ok()
        } else {
            None
        };
        let v = match container {
            Some(r) => Some((engine.container_json(&r), "*types.ContainerJSON")),
            None if kind != Some("container") => match engine.images().resolve(n) {
                Ok(img) => Some((
                    berth_engine::inspect::image_json(engine.images(), &img)?,
                    "types.ImageInspect",
                )),
                Err(_) => None,
            },
            None => None,
        };
        let missing = match kind {
            Some("container") => format!("Error: No such container: {n}"),
            Some("image") => format!("Error: No such image: {n}"),
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
