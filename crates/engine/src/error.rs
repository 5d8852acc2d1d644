//! The engine's error type: one line each, naming the thing that failed, in
//! docker's words where docker has some.

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such volume: {0}")]
    NoSuchVolume(String),
    #[error("No such network: {0}")]
    NoSuchNetwork(String),
    #[error("multiple containers match {0:?}: use more of the id")]
    Ambiguous(String),
    #[error("Conflict. The container name \"/{0}\" is already in use")]
    NameInUse(String),
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("Unable to find image '{0}' locally")]
    ImageNotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// `what` is the whole message, in docker's words where docker has
    /// them ("Container ID is not running"): scripts match on them.
    #[error("{what}")]
    State {
        id: String,
        status: String,
        what: String,
    },
    /// A `--filter` the verb refuses (Docker's words).
    #[error(transparent)]
    Filter(#[from] crate::filters::FilterError),
    #[error(transparent)]
    Image(#[from] berth_image::store::StoreError),
    #[error(transparent)]
    Snapshot(#[from] berth_image::snapshot::SnapshotError),
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },
}

impl Error {
    /// Whether the error is the filesystem's being full (SQLite's own
    /// code, or ENOSPC from a write).
    pub fn is_disk_full(&self) -> bool {
        let io_full = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOSPC);
        match self {
            Error::Db(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            Error::Io { source, .. } => io_full(source),
            Error::Sys { source, .. } => *source == nix::errno::Errno::ENOSPC,
            _ => false,
        }
    }
}

/// Adds context to low-level errors.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: context(),
            source,
        })
    }
}
