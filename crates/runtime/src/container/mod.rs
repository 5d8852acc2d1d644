//! A container and its lifecycle verbs, one file per verb: `create.rs`,
//! `start.rs`, `kill.rs`, `delete.rs`, `exec.rs`.

mod create;
mod delete;
mod exec;
mod kill;
mod pause;
mod start;
mod update;
mod wait;

use std::path::{Path, PathBuf};

pub use create::CreateOptions;
pub use delete::{purge, remove_trashed_cgroups};
pub use exec::{ExecOptions, ExecOutcome};
pub use wait::{exit_code, wait_forwarding_signals};

use crate::error::Result;
use crate::state::{ContainerState, StateDir, Status};

/// A container known to the runtime root.
#[derive(Debug)]
pub struct Container {
    pub root: PathBuf,
    pub dir: StateDir,
    pub state: ContainerState,
}

impl Container {
    /// Loads an existing container.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        let dir = StateDir::open(root, id)?;
        let state = dir.load(id)?;
        Ok(Container {
            root: root.to_path_buf(),
            dir,
            state,
        })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn status(&self) -> Status {
        self.state.status(&self.dir)
    }

    /// All containers under a root, skipping ones whose state cannot be read.
    pub fn list(root: &Path) -> Result<Vec<Container>> {
        Ok(crate::state::list_ids(root)?
            .into_iter()
            .filter_map(|id| Container::load(root, &id).ok())
            .collect())
    }
}
