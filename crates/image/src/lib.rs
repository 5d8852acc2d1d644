//! berth's image store, the way a registry keeps images: blobs by digest,
//! manifests and configs per the OCI image spec, unpacked layers shared
//! between images, an overlay snapshot per container.
//!
//! Built so far: image references parsed as Docker parses them
//! ([`reference`]), sha256 digests ([`digest`]) and the content-addressed
//! blob store ([`blobs`]). Layers, snapshots, the metadata database and the
//! `berth` commands come next (see the image store issue).

pub mod blobs;
pub mod digest;
pub mod layer;
pub mod reference;

pub use blobs::BlobStore;
pub use digest::Digest;
pub use reference::Reference;
