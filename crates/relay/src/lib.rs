//! What a running container's monitor does, in a crate of its own so that
//! `berth-monitor` (the process that stays with each detached container)
//! links only this: relaying the container's output to its json-file log
//! and to attached clients ([`relay`]), the attach protocol ([`frames`]),
//! and the log writer ([`jsonlog`]); and berth's one wall clock
//! ([`clock`]), which the log needs and the engine and network share.

pub mod clock;
pub mod frames;
pub mod jsonlog;
pub mod relay;
