//! What a running container's monitor does, in a crate of its own so that
//! `berth-monitor` (the process that stays with each detached container)
//! links only this: relaying the container's output to its json-file log
//! and to attached clients ([`relay`]), the attach protocol ([`frames`]),
//! and the log writer ([`jsonlog`]); the user's side of a container's
//! terminal ([`terminal`]), for the binaries that hand it their stdio; and
//! berth's one wall clock ([`clock`]), which the log needs and the engine
//! and network share; and berth's one parser of sizes ([`size`]), which
//! every crate that takes one shares, this being the lowest of them.

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING). Test modules may print why they skipped.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

pub mod clock;
pub mod frames;
pub mod jsonlog;
pub mod relay;
pub mod size;
pub mod terminal;
