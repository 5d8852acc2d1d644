//! `berth kube play` and `berth kube generate`: Kubernetes YAML run as
//! berth pods through the engine's library API, and pods written back as
//! YAML a cluster accepts.
//!
//! Reading (documents.rs): each document of a file is parsed with the
//! Kubernetes API's own types (k8s-openapi), after which the typed value
//! is written back and compared with what the file said: a key the types
//! do not know (a typo, a field of a newer API) is an error naming it,
//! since those types would drop it silently. Fields the types know but
//! berth does not do are warnings naming them.
//!
//! Playing (play.rs): a Pod is one pod named as the document; a
//! Deployment `replicas` pods and a DaemonSet and a Job one, named
//! `<name>-pod-<i>` as podman names them; containers are
//! `<pod>-<container>`. ConfigMaps and Secrets become environment
//! variables and files, a PersistentVolumeClaim a named volume, a Service
//! published ports (nodePort) and a name in every played pod's hosts file.
//!
//! Writing (generate.rs): a pod (or a lone container) as a v1 Pod, with
//! `--service` a NodePort Service for its published ports.

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING).
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

mod documents;
mod expansion;
mod generate;
mod play;
mod quantity;

pub use documents::{parse, Document, Parsed};
pub use generate::{generate, GenerateOptions};
pub use play::{down, play, DownReport, PlayOptions, PlayReport, PlayedPod};

/// What can go wrong, each one line naming the file, the document and the
/// field where there is one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read: "read {path}: {error}" (the cause in
    /// the line, not as a source: front ends print the chain).
    #[error("read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// A document is not YAML, not a Kubernetes object of a kind berth
    /// plays, or has a field wrong: "{0}" (the file and document named).
    #[error("{0}")]
    Invalid(String),
    /// What the file asks contradicts what exists: "{0}" (a pod of that
    /// name without --replace).
    #[error("{0}")]
    Conflict(String),
    /// The engine refused or failed: "{context}: {error}".
    #[error("{context}: {error}")]
    Engine {
        context: String,
        error: berth_engine::Error,
    },
    /// Writing YAML failed (a value serde_yaml cannot write).
    #[error("write YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

impl Error {
    /// The engine's kind of failure, for front ends' exit codes.
    pub fn engine_error(&self) -> Option<&berth_engine::Error> {
        match self {
            Error::Engine { error, .. } => Some(error),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to an engine result.
trait EngineContext<T> {
    fn during(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> EngineContext<T> for berth_engine::Result<T> {
    fn during(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|error| Error::Engine {
            context: what(),
            error,
        })
    }
}
