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
    #[error("network unreachable: cannot reach {host}: {detail}")]
    Unreachable { host: String, detail: String },
    /// Nothing listens where the registry should be: docker's words (Go's
    /// HTTP client and dialer), which people and scripts recognise.
    #[error("Get \"{url}\": dial tcp {host}: connect: connection refused")]
    Refused { url: String, host: String },
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { media_type: String, what: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{host} answered HTTP {status} to {what}{detail}")]
    Http {
        host: String,
        status: u16,
        what: String,
        detail: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("auth file {path}: {detail}")]
    AuthFile { path: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, RegistryError>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RegistryError {
    let context = context.into();
    move |source| RegistryError::Io { context, source }
}
