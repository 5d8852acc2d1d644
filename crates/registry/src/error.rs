//! The errors a transfer ends with; each message names the cause and,
//! where there is one, the fix.

use berth_image::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry has no such manifest (tag or digest), in docker's
    /// words (`name`: the reference as the user wrote it, registry
    /// included); the same whether the tag or the repository is missing,
    /// as the registry's answer is.
    #[error("manifest for {name} not found: manifest unknown: manifest unknown")]
    ManifestUnknown { name: String },
    /// A repository the registry does not have, as docker's daemon words
    /// it for `pull --all-tags`.
    #[error("repository {name} not found: name unknown: repository name not known to registry")]
    RepositoryUnknown { name: String },
    /// 401 with the credentials we had (or none).
    #[error("unauthorized: {registry} refused access to {what}{hint}")]
    Unauthorized {
        registry: String,
        what: String,
        hint: String,
    },
    /// 403: authenticated, not allowed.
    #[error("denied: {registry} does not allow {what}")]
    Denied { registry: String, what: String },
    /// TLS failure talking to {host}: {detail}{hint}
    #[error("TLS failure talking to {host}: {detail}{hint}")]
    Tls {
        host: String,
        detail: String,
        hint: String,
    },
    /// Reading what was to be sent failed on this machine (a layer file
    /// gone from the store): not a network failure.
    // The cause is the source: the CLI prints the chain.
    #[error("reading {what} failed")]
    LocalRead {
        what: String,
        source: std::io::Error,
    },
    /// network unreachable: cannot reach {host}: {detail}
    #[error("network unreachable: cannot reach {host}: {detail}")]
    Unreachable { host: String, detail: String },
    /// Nothing listens where the registry should be: docker's words (Go's
    /// HTTP client and dialer), which people and scripts recognise.
    #[error("Get \"{url}\": dial tcp {host}: connect: connection refused")]
    ConnectionRefused { url: String, host: String },
    /// A v1 index (`search`) refused on both schemes, in docker's words.
    #[error("invalid registry endpoint \"http://{host}/v1/\". HTTPS attempt: {https}. HTTP attempt: {http}")]
    IndexUnreachable {
        host: String,
        https: String,
        http: String,
    },
    /// unsupported media type {media_type:?} for {what}
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { media_type: String, what: String },
    /// {what}: digest mismatch: expected {expected}, got {actual}
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// {host} answered HTTP {status} to {what}{detail}
    #[error("{host} answered HTTP {status} to {what}{detail}")]
    Http {
        host: String,
        status: u16,
        what: String,
        detail: String,
    },
    /// {context}: {source}
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// auth file {path}: {detail}
    #[error("auth file {path}: {detail}")]
    AuthFile { path: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A registry setting the caller gave is wrong (credentials, a CA or
    /// client certificate, registries.conf): "{0}".
    #[error("{0}")]
    InvalidOption(String),
    /// The registry (or its token service) answered outside the
    /// distribution protocol as berth speaks it: "{0}" ("manifest x is not
    /// JSON: ...", "too many redirects for ...").
    #[error("{0}")]
    Protocol(String),
    /// Refused for the user's safety: "{0}" (a token service in plain HTTP
    /// on another origin).
    #[error("{0}")]
    Refused(String),
    /// An index without the platform asked for: "{0}".
    #[error("{0}")]
    NoPlatform(String),
    /// What the local store holds does not agree with itself: "{0}"
    /// ("stored manifest x does not match the image's layers").
    #[error("{0}")]
    Damaged(String),
    /// manifest: {0} (it could not be encoded)
    #[error("manifest: {0}")]
    Encode(serde_json::Error),
}

impl RegistryError {
    /// Whether nothing listened where the registry should be.
    pub fn is_connection_refused(&self) -> bool {
        matches!(self, RegistryError::ConnectionRefused { .. })
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RegistryError {
    let context = context.into();
    move |source| RegistryError::Io { context, source }
}
