//! `container prune`.

use std::path::Path;

use anyhow::{Context, Result};
use berth_engine::{Engine, Status};

use crate::format;
use crate::ps::dir_size;
/// `berth container prune`: removes every container that is not running.
pub fn prune(root: &Path, runroot: &Path) -> Result<i32> {
    let engine = Engine::open(root, runroot)
        .with_context(|| format!("open the store at {}", root.display()))?;
    let mut freed = 0;
    println!("Deleted Containers:");
    for r in engine.list()? {
        if matches!(r.status, Status::Exited | Status::Created) {
            freed += dir_size(&engine.container_dir(&r.id).join("fs/upper"));
            engine.remove(&r, false, false)?;
            println!("{}", r.id);
        }
    }
    println!("\nTotal reclaimed space: {}", format::size(freed));
    Ok(0)
}
