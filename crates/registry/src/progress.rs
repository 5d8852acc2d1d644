//! What a transfer reports as it goes. The library calls these from the
//! threads that move the layers; the binary draws bars or prints lines.

/// Events of a pull or push. `id` is a blob's short digest (12 hex), as
/// Docker shows it. Every method has a do-nothing default, which is also
/// what `-q` uses.
pub trait Progress: Sync {
    /// A blob starts moving; `total` is its size.
    fn start(&self, _id: &str, _action: &str, _total: u64) {}
    /// `n` more bytes of the blob moved.
    fn advance(&self, _id: &str, _n: u64) {}
    /// The blob is done (`status`: "Pull complete", "Pushed",
    /// "Already exists", "Mounted from …").
    fn finish(&self, _id: &str, _status: &str) {}
    /// A line about the whole transfer.
    fn message(&self, _line: &str) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}

/// The short id of a digest string (`sha256:abc…` → its first 12 hex).
pub fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}
