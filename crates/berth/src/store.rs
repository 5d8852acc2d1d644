//! The store as each command opens it: closed to other users first, then
//! the engine or the image store alone, with the command line's limits.

use std::process::ExitCode;

use anyhow::{Context, Result};
use berth_image::store::ImageStore;

use crate::Cli;

/// Closes the store and the run state to other users before any command
/// reads or writes them, and says so when an existing one was open.
pub(crate) fn secure_store(cli: &Cli) -> Result<(), ExitCode> {
    match berth_engine::secure_store(&cli.root, &cli.runroot) {
        Ok(changed) => {
            // An empty directory exposed nothing: closed without a word.
            let what: Vec<String> = changed
                .iter()
                .filter(|t| !t.empty)
                .map(|t| format!("{} (was {:04o})", t.path.display(), t.was))
                .collect();
            if what.is_empty() {
                return Ok(());
            }
            eprintln!(
                "berth: notice: closed the store to other users: {} made owner-only",
                what.join(", ")
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("Error: secure the store: {e}");
            Err(ExitCode::from(125))
        }
    }
}

pub(crate) fn open_engine(cli: &Cli) -> Result<berth_engine::Engine> {
    let mut e = berth_engine::Engine::open(&cli.root, &cli.runroot)
        .with_context(|| format!("open the store at {}", cli.root.display()))?;
    e.images_mut().max_layer_bytes = cli.max_layer_size;
    Ok(e)
}

pub(crate) fn open(cli: &Cli) -> Result<ImageStore> {
    let mut store = ImageStore::open(&cli.root)
        .with_context(|| format!("open the store at {}", cli.root.display()))?;
    store.max_layer_bytes = cli.max_layer_size;
    Ok(store)
}
