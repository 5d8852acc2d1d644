//! berth's distribution client: images pulled from and pushed to
//! registries over the OCI distribution API (Docker registry v2).
//!
//! - [`endpoint`]: where a registry is (Docker Hub's conventions) and how
//!   to reach it (TLS roots, per-registry CAs, insecure registries);
//! - [`auth`]: credentials (Docker's `config.json`, containers'
//!   `auth.json`) and the challenges a registry answers with;
//! - [`client`]: one registry's HTTP conversation: basic and bearer auth,
//!   redirects that never carry credentials to another host, blob streams
//!   that resume with Range after a dropped connection;
//! - [`pull`], [`push`]: the two transfers; [`progress`]: what they report;
//! - [`search`]: the v1 index's search (`docker search`); [`inspect`]: a
//!   manifest as `docker manifest inspect` shows it.
//!
//! Everything is blocking; layers move in parallel on scoped threads. The
//! library never prints: callers get [`progress::Progress`] events and
//! typed errors whose messages name the cause.

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING). Test modules may print why they skipped.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

pub mod auth;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod inspect;
pub mod progress;
pub mod pull;
pub mod push;
pub mod search;

pub use client::Client;
pub use endpoint::Endpoint;
pub use error::RegistryError;
