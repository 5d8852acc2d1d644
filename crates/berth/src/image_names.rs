//! `tag` and `rmi`: an image's names, given and taken away.

use std::path::Path;

use anyhow::Result;
use berth_image::store::ImageStore;
use berth_image::Reference;

use crate::images::{familiar, image_event};
use crate::{damaged_database, ClientSide};

/// `tag SOURCE TARGET`.
pub(crate) fn tag(store: &mut ImageStore, source: &str, target: &str) -> Result<()> {
    // docker's client checks the new name itself, in these words.
    let target = target.parse::<Reference>().map_err(|e| {
        ClientSide(format!(
            "Error parsing reference: {target:?} is not a valid repository/tag: {}",
            reference_words(&e)
        ))
    })?;
    store.tag(source, &target)?;
    let img = store.resolve(&target.to_string())?;
    image_event(store, "tag", &img, Some(&familiar(&target.to_string())));
    Ok(())
}

/// docker's client's words for a name its reference parser refuses.
pub(crate) fn reference_words(e: &berth_image::reference::ReferenceError) -> &'static str {
    match e {
        berth_image::reference::ReferenceError::Uppercase(_) => {
            "invalid reference format: repository name must be lowercase"
        }
        _ => "invalid reference format",
    }
}

/// A `-t NAME[:TAG]` value, checked as docker's client checks it (a
/// refusal reads `invalid argument ... for "-t, --tag" flag: ...`).
pub(crate) fn tag_flag(s: &str) -> std::result::Result<String, String> {
    s.parse::<Reference>()
        .map(|_| s.to_string())
        .map_err(|e| reference_words(&e).to_string())
}

/// `rmi [-f] IMAGE...`: each image in turn, an error line for each that
/// fails, exit 1 at the end if any did.
pub(crate) fn rmi(
    engine: &mut berth_engine::Engine,
    root: &Path,
    force: bool,
    images: &[String],
) -> Result<()> {
    let mut failed = false;
    for name in images {
        match engine.remove_image(name, force) {
            // Docker names what it untagged as a user writes it.
            Ok(lines) => lines
                .iter()
                .for_each(|l| match l.strip_prefix("Untagged: ") {
                    Some(r) => println!("Untagged: {}", familiar(r)),
                    None => println!("{l}"),
                }),
            Err(e) => {
                // docker's client says "Error:" for a name it could not
                // find, the daemon's words for the rest.
                let conflict = matches!(
                    e,
                    berth_engine::Error::InUse(_)
                        | berth_engine::Error::Image(berth_image::store::StoreError::Conflict(_))
                );
                match damaged_database(root, &e) {
                    Some(line) => eprintln!("Error: {line}"),
                    None if conflict => eprintln!("Error response from daemon: {e}"),
                    None => eprintln!("Error: {e}"),
                }
                // docker: with -f, an image that is not there is no
                // failure (teardown under `set -e`).
                let missing = matches!(
                    e,
                    berth_engine::Error::Image(berth_image::store::StoreError::NotFound(_))
                        | berth_engine::Error::ImageNotFound(_)
                );
                failed |= !(force && missing);
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
