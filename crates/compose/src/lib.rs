//! `berth compose`: Compose files as a project of containers, networks
//! and volumes, driven through berth's engine library (never the `berth`
//! binary).
//!
//! ```text
//! locate.rs   the files, .env / --env-file, the project's name
//! yaml.rs     each file as JSON ─ interpolate.rs ─ schema.rs ─ canon.rs (long forms)
//! merge.rs    the files as one model ─ extends.rs ─ include.rs
//! resolve.rs  profiles, env_file, paths, references      = project.rs: Project
//! up.rs, resources.rs, down.rs, wait.rs, oneoff.rs     over berth_engine's calls
//!             (service.rs: a service as a ContainerConfig)
//! ```
//!
//! Docker Compose's conventions hold, so tools and people find things:
//! containers `<project>-<service>-<n>`, the network `<project>_default`,
//! volumes `<project>_<name>`, the `com.docker.compose.*` labels.

// A library never prints nor exits (CONTRIBUTING).
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

pub mod canon;
pub mod down;
pub mod env;
pub mod error;
pub mod extends;
mod include;
pub mod interpolate;
pub mod locate;
pub mod members;
pub mod merge;
pub mod oneoff;
pub mod project;
mod resolve;
pub mod resources;
pub mod schema;
pub mod service;
pub mod shell;
pub mod units;
pub mod up;
pub mod wait;
pub mod yaml;

pub use error::{Error, Result};
pub use project::{LoadOptions, Project};
