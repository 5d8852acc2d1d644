//! The library's error type. Messages are lowercase, name the thing that
//! failed, and have no final period.

use std::path::PathBuf;

/// Result alias used across the runtime library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the runtime library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bundle {0}: config.json not found")]
    ConfigMissing(PathBuf),
    #[error("bundle {path}: invalid config.json: {reason}")]
    ConfigInvalid { path: PathBuf, reason: String },
    #[error("invalid spec: {0}")]
    SpecInvalid(String),
    #[error("rootfs {0} does not exist or is not a directory")]
    RootfsMissing(PathBuf),
    #[error("container \"{0}\" already exists")]
    ContainerExists(String),
    #[error("container \"{0}\" does not exist")]
    ContainerNotFound(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.'")]
    InvalidId(String),
    #[error("container \"{id}\" is {status}: {action} needs it {needed}")]
    BadStatus {
        id: String,
        status: String,
        action: &'static str,
        needed: &'static str,
    },
    #[error("container not running")]
    NotRunning,
    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Init(String),
    /// The rootfs (or a volume in it) is laid out to redirect what the
    /// runtime mounts or writes: refused rather than followed.
    #[error("unsafe rootfs: {0}")]
    UnsafeRootfs(String),
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    /// The process would start a container process while its own binary
    /// is writable from inside the container (CVE-2019-5736).
    #[error("the runtime binary is not protected from the container: call berth_runtime::exe::ensure_protected at start-up")]
    ExeUnprotected,
    #[error("state of container \"{id}\" is corrupt: {reason}")]
    StateCorrupt { id: String, reason: String },
}

/// Adds a context string to low-level errors, like anyhow's `.context()` but
/// typed.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
