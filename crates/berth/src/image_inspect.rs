//! `image inspect`: Docker's JSON for images, or a template over it.

use anyhow::Result;
use berth_image::store::ImageStore;

use crate::format;
use berth_engine::inspect::types::to_value;

/// `image inspect [-f FORMAT] IMAGE...`; `open` opens the store once the
/// template is known to parse.
pub(crate) fn inspect(
    open: impl FnOnce() -> Result<ImageStore>,
    format: Option<&str>,
    images: &[String],
) -> Result<()> {
    match format {
        Some(f) => with_template(open, f, images),
        None => as_json(&open()?, images),
    }
}

fn with_template(
    open: impl FnOnce() -> Result<ImageStore>,
    f: &str,
    images: &[String],
) -> Result<()> {
    let mut inspector = format::Inspector::new(f)?;
    let store = open()?;
    for name in images {
        match store.resolve(name) {
            Ok(img) => inspector.add(
                &to_value(&berth_engine::inspect::image_json(&store, &img)?),
                "types.ImageInspect",
                true,
            ),
            Err(_) => inspector.error(format!("Error: No such image: {name}")),
        }
    }
    let code = inspector.finish(&mut std::io::stdout().lock())?;
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

fn as_json(store: &ImageStore, images: &[String]) -> Result<()> {
    let mut out = Vec::new();
    let mut missing = None;
    // docker prints what it found, then the first missing name.
    for name in images {
        match store.resolve(name) {
            Ok(img) => out.push(to_value(&berth_engine::inspect::image_json(store, &img)?)),
            Err(e @ berth_image::store::StoreError::NotFound(_)) => {
                missing.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!("{}", format::inspect_json(&serde_json::Value::Array(out))?);
    match missing {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
