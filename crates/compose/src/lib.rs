//! `berth compose`: Compose files as a project of containers, networks
//! and volumes, driven through berth's engine library (never the `berth`
//! binary).
//!
//! ```text
//! files ─ yaml.rs ─ interpolate.rs (.env: env.rs) ─ schema.rs ─ canon.rs ─ merge.rs
//!                                                                     │
//!                                     project.rs (names, profiles, references) ◄┘
//!                                         │
//!                      engine.rs (up, down, ps, logs... over berth_engine)
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
pub mod interpolate;
pub mod members;
pub mod merge;
pub mod oneoff;
pub mod project;
pub mod schema;
pub mod service;
pub mod shell;
pub mod up;
pub mod wait;
pub mod yaml;

pub use error::{Error, Result};
pub use project::{LoadOptions, Project};
