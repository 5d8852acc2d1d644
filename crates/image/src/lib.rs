//! berth's image store, the way a registry keeps images: blobs by digest,
//! manifests and configs per the OCI image spec, unpacked layers shared
//! between images, an overlay snapshot per container.
//!
//! - [`reference`]: image references parsed as Docker parses them;
//! - [`digest`], [`blobs`]: sha256 digests and the content-addressed blob store;
//! - [`layer`]: unpacking a layer, never outside its root;
//! - [`oci`]: manifests, indexes, configs, chain ids;
//! - [`database`]: whether `berth.db` can be trusted with the content on disk;
//! - [`rebuild`]: a new database for a store whose database was lost, from its content;
//! - [`store`]: images, tags and shared layers, metadata in SQLite;
//! - [`tarsplit`]: a layer's exact tar made again from its unpacked files;
//! - [`archive`]: load (docker- and oci-archive), save, import;
//! - [`cache`]: the builder's cache: a build step's key to its layers;
//! - [`fetched`]: images whose layers arrive as streams (a pull), verified in one pass.

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING). Test modules may print why they skipped.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

pub mod archive;
pub mod blobs;
pub mod cache;
pub mod database;
pub mod digest;
pub mod fetched;
pub mod layer;
mod leftover;
pub mod oci;
pub mod rebuild;
pub mod reference;
pub mod reserve;
pub mod snapshot;
mod sparse;
pub mod store;
mod tar_guard;
pub mod tarsplit;
pub mod tree_tar;

pub use blobs::BlobStore;
pub use digest::Digest;
pub use reference::Reference;
